"""The report pages: ``write_report`` for one run, ``compare_runs`` for several side by side."""

from __future__ import annotations

import io
import logging
from html import escape
from pathlib import Path
from typing import Any, Sequence

import yaml

from graphrec.errors import GraphrecError
from graphrec.report.folder import RunFolder, column_names, flatten, is_number, ordered_keys, read_run, yaml_value
from graphrec.report.html import best_row, emphasis, figure, group_row, number, page, section, \
    side_by_side, table, td, th
from graphrec.report.samples import SAMPLE_K, SAMPLE_USERS, sample_recommendations
from graphrec.utils import atomic_write_text

logger = logging.getLogger("graphrec")


def write_report(run_dir: str | Path, out: str | Path | None = None, *, num_users: int = SAMPLE_USERS,
                 k: int = SAMPLE_K) -> Path:
    """Write a run's HTML report (default ``run_dir/report.html``) atomically; return its path.

    Args:
        run_dir: a folder that :func:`graphrec.pipeline.run` wrote.
        out: where to write the page instead.
        num_users: test users whose top-``k`` lists are shown (0: none).
        k: length of those lists.
    """
    run = read_run(run_dir)
    samples: list[dict[str, Any]] = []
    if num_users > 0:
        try:
            samples = sample_recommendations(run.path, num_users, k)
        except (GraphrecError, OSError) as exc:  # e.g. the data moved since the run: the rest still stands
            logger.warning("report: no sample recommendations for %s (%s)", run.path, exc)
    sections = [_facts(run), side_by_side(_metrics_section(run), _curves_section(run.curves)), _buckets_section(run),
                _samples_section(samples), _config_section(run), _environment_section(run.environment)]
    subtitle = f"{run.model} on {run.dataset}"
    path = Path(out) if out is not None else run.path / "report.html"
    atomic_write_text(path, page(run.name, subtitle, sections))
    return path


def compare_runs(run_dirs: Sequence[str | Path], out: str | Path) -> Path:
    """Write one page comparing ``run_dirs`` side by side, atomically; return its path."""
    runs = [read_run(folder) for folder in run_dirs]
    names = column_names([run.path for run in runs])
    header = [th("")] + [f'<th class="num">{escape(name)}<div class="sub">{escape(run.model)} · '
                         f'{escape(run.dataset)}</div></th>' for name, run in zip(names, runs)]
    figures = {f"{name} — {caption}": png for name, run in zip(names, runs) for caption, png in run.curves.items()}
    short_header = [th("")] + [th(name, "num") for name in names]
    sections = [side_by_side(_compare_metrics(runs, header), _compare_buckets(runs, short_header)),
                _compare_configs(runs, header), _curves_section(figures, "Curves")]
    path = Path(out)
    atomic_write_text(path, page(f"Comparison of {len(runs)} runs", " · ".join(names), sections))
    return path


# ------------------------------------------------------------------------------ sections of the comparison
def _compare_metrics(runs: Sequence[RunFolder], header: list[str]) -> str:
    rows: list[list[str]] = []
    for part in ("test", "valid"):
        keys = ordered_keys(run.metrics.get(part, {}) for run in runs)
        rows += [group_row(part, len(runs))] if keys else []
        rows += [best_row(key, [run.metrics.get(part, {}).get(key) for run in runs]) for key in keys]
    rows += [group_row("training", len(runs)),
             best_row("seconds/epoch", [run.metrics.get("seconds_per_epoch") for run in runs]),
             best_row("test eval seconds", [run.metrics.get("test_eval_seconds") for run in runs]),
             best_row("epochs run", [run.metrics.get("epochs_run") for run in runs])]
    return section("Metrics", table(header, rows), "The best value of each row is in bold.")


def _compare_buckets(runs: Sequence[RunFolder], header: list[str]) -> str:
    """The first run's monitored metric per activity bucket, for every run that has buckets."""
    monitor = runs[0].monitor
    buckets = [run.metrics.get("test_buckets") or {} for run in runs]
    labels = list(dict.fromkeys(label for by_bucket in buckets for label in by_bucket))
    if not monitor or not labels:
        return ""
    rows = [best_row(label, [by_bucket.get(label, {}).get(monitor) for by_bucket in buckets]) for label in labels]
    return section(f"Test {monitor} per activity bucket", table(header, rows),
                   "Test users grouped by their number of training interactions.")


def _compare_configs(runs: Sequence[RunFolder], header: list[str]) -> str:
    """The config keys whose values differ between the runs (output.* aside: it always does)."""
    flat = [flatten(run.config) for run in runs]
    differ = [key for key in dict.fromkeys(key for config in flat for key in config)
              if not key.startswith("output.") and len({repr(config.get(key)) for config in flat}) > 1]
    if not differ:
        return ""
    rows = [[th(key, "key")] + [f"<td><code>{escape(yaml_value(config.get(key)))}</code></td>" for config in flat]
            for key in differ]
    return section("Config keys that differ", table(header, rows))


# ------------------------------------------------------------------------------ sections of a run's page
def _facts(run: RunFolder) -> str:
    metrics, config = run.metrics, run.config
    monitor = run.monitor
    test_value = metrics.get("test", {}).get(monitor) if monitor else None
    facts = [(f"test {monitor}", number(test_value) if is_number(test_value) else None), ("model", run.model),
             ("dataset", run.dataset), ("seed", config.get("seed")), ("split", config.get("split", {}).get("method")),
             ("evaluation", config.get("eval", {}).get("protocol")),
             ("best epoch", metrics.get("best_epoch")),
             ("epochs run", f"{metrics.get('epochs_run')}{' (stopped early)' if metrics.get('stopped_early') else ''}"
              if "epochs_run" in metrics else None),
             ("seconds / epoch", number(metrics.get("seconds_per_epoch"), 3)),
             ("test evaluation", f"{number(metrics.get('test_eval_seconds'), 2)} s"
              if "test_eval_seconds" in metrics else None),
             ("paths / epoch", metrics.get("paths_per_epoch"))]
    finetune = metrics.get("finetune") or {}
    if finetune:
        facts.append(("fine-tuning", config.get("finetune", {}).get("strategy")))
        if "trainable_parameters" in finetune:
            facts.append(("trained parameters",
                          f"{finetune['trainable_parameters']:,} of {finetune.get('total_parameters', 0):,}"))
    cards = "".join(f'<div class="fact"><div class="label">{escape(label)}</div><div class="value">{escape(str(v))}'
                    f"</div></div>" for label, v in facts if v not in (None, "", "nan"))
    return f'<div class="facts">{cards}</div>'


def _metrics_section(run: RunFolder) -> str:
    """One row per metric name, one column per (split part, cut-off k); metrics without a k span a part."""
    parts = [part for part in ("test", "valid", "test_unconstrained") if run.metrics.get(part)]
    if not parts:
        return ""
    keys = ordered_keys(run.metrics[part] for part in parts)
    names = list(dict.fromkeys(key.split("@")[0] for key in keys if "@" in key))
    ks = list(dict.fromkeys(key.split("@")[1] for key in keys if "@" in key))
    monitor = run.monitor
    span = f' colspan="{len(ks)}"' if len(ks) > 1 else ""
    header = ('<tr><th rowspan="2">metric</th>'
              + "".join(f'<th class="group"{span}>{escape(part.replace("_", " "))}</th>' for part in parts)
              + "</tr><tr>" + "".join(f'<th class="num">@{escape(k)}</th>' for _ in parts for k in ks) + "</tr>")
    rows = []
    for name in names:
        cells = []
        for part in parts:
            for k in ks:
                cell = td(run.metrics[part].get(f"{name}@{k}"))
                if part == "valid" and f"{name}@{k}" == monitor:
                    cell = cell.replace('class="num"', 'class="num monitor"', 1)
                cells.append(cell)
        rows.append(f'<tr>{th(name, "key")}{"".join(cells)}</tr>')
    for key in (key for key in keys if "@" not in key):
        cells = "".join(td(run.metrics[part].get(key), key=key).replace("<td ", f"<td{span} ", 1) for part in parts)
        rows.append(f'<tr>{th(key.replace("_", " "), "key")}{cells}</tr>')
    note = f"The validation {monitor} (highlighted) chose the best epoch." if monitor in keys else ""
    grid = f'<div class="scroll"><table><thead>{header}</thead><tbody>{"".join(rows)}</tbody></table></div>'
    return section("Metrics", grid, note)


def _buckets_section(run: RunFolder) -> str:
    """A column per activity bucket, a row per metric; beside it, the monitored metric as bars."""
    buckets = run.metrics.get("test_buckets") or {}
    if not buckets:
        return ""
    keys = [key for key in ordered_keys(buckets.values()) if key != "num_users"]
    header = [th("metric")] + [th(label, "num") for label in buckets]
    rows = [[th("users", "key")] + [td(values.get("num_users"), key="num_users") for values in buckets.values()]]
    rows += [[th(key, "key")] + [td(values.get(key)) for values in buckets.values()] for key in keys]
    metric = run.monitor if run.monitor in keys else (keys[0] if keys else None)
    plot = figure(_bucket_png(buckets, metric), f"test {metric} per activity bucket") if metric else ""
    return section("Test metrics per activity bucket", f'<div class="split">{table(header, rows)}{plot}</div>',
                   "Test users grouped by their number of training interactions; an empty bucket has no values.")


def _samples_section(samples: list[dict[str, Any]]) -> str:
    if not samples:
        return ""
    cards = []
    for sample in samples:
        items = []
        for row in sample["items"]:
            hit = '<span class="hit">test hit</span>' if row["hit"] else ""
            label = escape(row["name"]) + ("" if row["name"] == row["item"] else
                                           f' <span class="id">[{escape(row["item"])}]</span>')
            why = f'<div class="why">{emphasis(row["explanation"])}</div>' if row.get("explanation") else ""
            items.append(f'<li class="{"is-hit" if row["hit"] else ""}"><div class="row"><span class="item">{label}'
                         f'{hit}</span><span class="score">{row["score"]:.3f}</span></div>{why}</li>')
        hits = sum(row["hit"] for row in sample["items"])
        context = (f'{sample["activity"]} training interactions, e.g. {escape(", ".join(sample["history"]))}'
                   if sample["history"] else "no training interactions")
        cards.append(f'<div class="user"><h3>user {escape(sample["user"])} <span class="sub">{hits} of '
                     f'{len(sample["held_out"])} test items in the top {len(sample["items"])}</span></h3>'
                     f'<p class="context">{context}</p><p class="context">test items: '
                     f'{escape(", ".join(sample["held_out"]))}</p><ol>{"".join(items)}</ol></div>')
    return section("Sample recommendations", f'<div class="users">{"".join(cards)}</div>',
                   "Test users from the least to the most active. Training and validation items are masked, "
                   "as in the test metrics; test items are marked as hits.")


def _config_section(run: RunFolder) -> str:
    if not run.config:
        return ""
    keys = ["model.name", "model.encoder", "model.embedding_dim", "model.num_layers", "train.loss", "train.epochs",
            "train.batch_size", "train.lr", "train.weight_decay", "train.monitor", "split.method", "split.ratios",
            "eval.protocol", "eval.ks", "finetune.checkpoint", "finetune.strategy", "model.pretext"]
    flat = flatten(run.config)
    if flat.get("model.name") != "graph":
        keys = [key for key in keys if key not in ("model.encoder", "finetune.checkpoint", "finetune.strategy")]
    if flat.get("model.name") == "path_lm":  # its size and loss are in the task file model.pretext names
        keys = [key for key in keys if key not in ("model.embedding_dim", "model.num_layers", "train.loss")]
    pairs = "".join(f'<div><dt>{escape(key)}</dt><dd><code>{escape(yaml_value(flat[key]))}</code></dd></div>'
                    for key in keys if flat.get(key) is not None)
    full = yaml.safe_dump(run.config, sort_keys=False)
    return section("Config", f'<dl class="pairs">{pairs}</dl>'
                   f"<details><summary>full config.yaml</summary><pre>{escape(full)}</pre></details>")


def _environment_section(environment: dict[str, Any]) -> str:
    if not environment:
        return ""
    packages = ", ".join(f"{name} {version}" for name, version in (environment.get("packages") or {}).items()
                         if version)
    commit = environment.get("git_commit")
    if commit and environment.get("git_dirty"):
        commit = f"{commit} (with uncommitted changes)"
    facts = [("started", environment.get("started")), ("python", environment.get("python")),
             ("platform", environment.get("platform")), ("device", environment.get("device")),
             ("threads", environment.get("threads")), ("git commit", commit), ("packages", packages)]
    rows = [[th(label, "key"), f"<td>{escape(str(value))}</td>"] for label, value in facts if value]
    files = environment.get("data_files") or {}
    checksums = table([th("data file"), th("sha256")],
                      [[f'<td class="path">{escape(path)}</td>', f"<td><code>{escape(digest)}</code></td>"]
                       for path, digest in files.items()]) if files else ""
    return section("Environment", table([], rows) + checksums)


def _curves_section(curves: dict[str, bytes], title: str = "Training curves") -> str:
    if not curves:
        return ""
    figures = "".join(figure(png, caption) for caption, png in curves.items())
    return section(title, f'<div class="figures">{figures}</div>')


def _bucket_png(buckets: dict[str, dict[str, float]], metric: str) -> bytes:
    """A bar per activity bucket: its test ``metric``, with the bucket's user count above the bar."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    chart = Figure(figsize=(5.2, 3.2), dpi=100)
    FigureCanvasAgg(chart)
    axis = chart.add_subplot()
    labels = list(buckets)
    values = [buckets[label].get(metric, 0.0) for label in labels]
    bars = axis.bar(labels, values, color="#4c72b0")
    for bar, label in zip(bars, labels):
        top = (bar.get_x() + bar.get_width() / 2, bar.get_height())
        axis.annotate(f"{buckets[label].get('num_users', 0)} users", top, ha="center", va="bottom", fontsize=8,
                      color="#555555")
    axis.set_xlabel("training interactions per user")
    axis.set_ylabel(f"test {metric}")
    axis.set_ylim(0, max(values + [1e-9]) * 1.2)
    axis.grid(axis="y", alpha=0.3)
    chart.tight_layout()
    buffer = io.BytesIO()
    chart.savefig(buffer, format="png")
    return buffer.getvalue()
