"""Reading a finished run folder for a report: its metrics, config, environment and curve images."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import yaml

from graphrec.errors import DataError
from graphrec.schema import load_yaml
from graphrec.utils import read_json


@dataclass
class RunFolder:
    """What a run folder holds, read once: metrics, config, environment and the curve images."""

    path: Path
    metrics: dict[str, Any]
    config: dict[str, Any] = field(default_factory=dict)
    environment: dict[str, Any] = field(default_factory=dict)
    curves: dict[str, bytes] = field(default_factory=dict)  # caption -> PNG

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def model(self) -> str:
        model = self.config.get("model", {})
        name = str(model.get("name", "?"))
        return f"{name} ({model.get('encoder')})" if name == "graph" else name

    @property
    def dataset(self) -> str:
        return Path(str(self.config.get("graph", {}).get("recipe", "?"))).stem

    @property
    def monitor(self) -> str | None:
        return self.config.get("train", {}).get("monitor")


def read_run(run_dir: str | Path) -> RunFolder:
    """Read a run folder; a folder without ``metrics.json`` raises :class:`DataError`."""
    folder = Path(run_dir)
    if not (folder / "metrics.json").is_file():
        raise DataError(f"{folder}: not a finished run folder (no metrics.json); pass a folder that `graphrec run` "
                        "or `graphrec finetune` wrote")
    run = RunFolder(folder, read_json(folder / "metrics.json", "run metrics"))
    if (folder / "config.yaml").is_file():
        run.config = load_yaml(folder / "config.yaml", "run config") or {}
    if (folder / "environment.json").is_file():
        run.environment = read_json(folder / "environment.json", "run environment")
    if (folder / "curve.png").is_file():
        run.curves[f"training loss and validation {run.monitor or 'metric'}"] = (folder / "curve.png").read_bytes()
    pretext = _pretext_curve(run)
    if pretext is not None:
        run.curves["pre-training (pretext) losses"] = pretext.read_bytes()
    return run


def _pretext_curve(run: RunFolder) -> Path | None:
    """The pre-training loss plot: in the run folder, or beside the pre-trained checkpoint it started from."""
    candidates = [run.path / "pretrain_curve.png"]
    checkpoint = (run.metrics.get("finetune") or {}).get("checkpoint")
    if checkpoint:
        checkpoint = Path(checkpoint)
        candidates.append((checkpoint if checkpoint.is_dir() else checkpoint.parent) / "pretrain_curve.png")
    return next((path for path in candidates if path.is_file()), None)


def ordered_keys(tables: Iterable[dict[str, Any]]) -> list[str]:
    """Metric keys of several tables: ``name@k`` ones grouped by name in k order, then the others."""
    keys = list(dict.fromkeys(key for table in tables for key, value in table.items() if is_number(value)))
    ranked = [key for key in keys if "@" in key]
    names = list(dict.fromkeys(key.split("@")[0] for key in ranked))
    ranked.sort(key=lambda key: (names.index(key.split("@")[0]), int(key.split("@")[1])
                                 if key.split("@")[1].isdigit() else 0))
    return ranked + [key for key in keys if "@" not in key]


def column_names(paths: Sequence[Path]) -> list[str]:
    """Folder names, with the parent folder added where two runs share a name."""
    names = [path.name for path in paths]
    return [f"{path.parent.name}/{path.name}" if names.count(path.name) > 1 else path.name for path in paths]


def flatten(mapping: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested config sections as dotted keys: ``{"train": {"lr": 0.01}}`` -> ``{"train.lr": 0.01}``."""
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def yaml_value(value: Any) -> str:
    """A config value as it reads in YAML (``null``, ``[10, 20]``)."""
    return yaml.safe_dump(value, default_flow_style=True, width=10**6).strip().removesuffix("\n...").strip()


def is_number(value: Any) -> bool:
    """A finite int or float (not a bool): a value a metrics table can show and rank."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
