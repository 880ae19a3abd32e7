"""Training curves as PNGs: loss and the monitored validation metric per epoch; pretext losses per step."""

from __future__ import annotations

import io
import os
from typing import Mapping, Sequence

from graphrec.utils import atomic_write_bytes


def plot_history(history: Sequence[Mapping[str, float]], path: str | os.PathLike, monitor: str) -> None:
    """Plot the training loss and ``monitor`` per epoch and write the figure as a PNG, atomically.

    The loss goes on the left axis; the metric, drawn only at the epochs that were evaluated,
    on a second axis at the right. The figure is rendered with matplotlib's Agg canvas, so no
    display and no global pyplot state are involved.

    Args:
        history: ``TrainResult.history``: dicts with ``epoch``, ``loss`` and, when evaluated, metrics.
        path: Where to write the PNG.
        monitor: The metric to plot (e.g. ``"recall@20"``).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.4, 4.0), dpi=100)
    FigureCanvasAgg(figure)
    loss_axis = figure.add_subplot()
    loss_axis.set_xlabel("epoch")
    loss_axis.set_ylabel("training loss", color="tab:blue")
    rows = [row for row in history if "loss" in row]
    if rows:
        loss_axis.plot([row["epoch"] for row in rows], [row["loss"] for row in rows],
                       color="tab:blue", marker=".", label="loss")
    else:
        loss_axis.text(0.5, 0.5, "no training epochs", ha="center", va="center", transform=loss_axis.transAxes)
    evaluated = [row for row in history if monitor in row]
    if evaluated:
        metric_axis = loss_axis.twinx()
        metric_axis.set_ylabel(f"validation {monitor}", color="tab:orange")
        metric_axis.plot([row["epoch"] for row in evaluated], [row[monitor] for row in evaluated],
                         color="tab:orange", marker="o", label=monitor)
        best = max(evaluated, key=lambda row: row[monitor])
        metric_axis.axvline(best["epoch"], color="tab:gray", linestyle="--", linewidth=0.8)
    loss_axis.set_title(f"training loss and validation {monitor}")
    _write_png(figure, path)


def plot_pretext_losses(history: Sequence[Mapping[str, float]], path: str | os.PathLike) -> None:
    """Plot the total pretext loss and each task's (``loss/<task>`` keys) per step; write a PNG atomically.

    Args:
        history: ``PretrainResult.history``: dicts with ``step``, ``loss`` and ``loss/<task>``.
        path: Where to write the PNG.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.4, 4.0), dpi=100)
    FigureCanvasAgg(figure)
    axis = figure.add_subplot()
    steps = [row["step"] for row in history]
    tasks = sorted({key for row in history for key in row if key.startswith("loss/")} - {"loss/total"})
    for key in ["loss", *tasks]:  # a task missing from a row (not yet started) is a gap
        axis.plot(steps, [row.get(key, float("nan")) for row in history], label=key.removeprefix("loss/"),
                  linewidth=2 if key == "loss" else 1)
    axis.set_xlabel("step")
    axis.set_ylabel("pretext loss")
    axis.set_title("pre-training losses")
    axis.legend(fontsize=7)
    axis.grid(alpha=0.3)
    _write_png(figure, path)


def _write_png(figure, path: str | os.PathLike) -> None:
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    atomic_write_bytes(path, buffer.getvalue())
