"""The path language-model task, as declared in ``pretext/path-lm.yaml``.

A run config selects it with ``model.name: path_lm`` and ``model.pretext: path-lm`` (a name
under ``pretext/`` or a path to a YAML file). Unknown keys and wrong types are errors naming
the file and key, as for run configs and graph recipes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from graphrec.errors import ConfigError
from graphrec.schema import from_mapping, load_yaml
from graphrec.pretext.recipe import find_pretext_recipe


@dataclass
class PathSampling:
    hops: list[int] = field(default_factory=lambda: [3])  # edges per training path (user -> item -> ... -> item)
    paths_per_user: int = 100  # training paths per user and epoch
    via_users: bool = False  # allow item -> user -> item hops in the middle of a path
    resample: bool = True  # fresh paths every epoch (False: one set, drawn with the run's seed)


@dataclass
class PathModel:
    dim: int = 128
    num_layers: int = 2
    num_heads: int = 4
    dropout: float = 0.1


@dataclass
class PathDecoding:
    hops: int = 3  # edges per generated path
    beam_width: int = 10  # beams kept per user ("sample": paths drawn per user)
    constrained: bool = True  # every hop must be an edge of the training graph
    strategy: Literal["beam", "sample"] = "beam"
    temperature: float = 1.0
    aggregate: Literal["max", "sum"] = "max"  # item score: best path, or all found paths to the item
    batch_size: int = 256  # users decoded at once
    valid_users: int | None = 1000  # users sampled for validation during training (None: all)
    compare_unconstrained: bool = True  # also test without the constraint and report both


@dataclass
class PathLMTask:
    task: Literal["path_lm"] = "path_lm"
    description: str = ""
    paths: PathSampling = field(default_factory=PathSampling)
    model: PathModel = field(default_factory=PathModel)
    decode: PathDecoding = field(default_factory=PathDecoding)

    def __post_init__(self) -> None:
        if not self.paths.hops or any(h < 1 for h in self.paths.hops):
            raise ValueError(f"key 'paths.hops' must list path lengths of at least 1 edge, found {self.paths.hops}")
        for key, value in (("paths.paths_per_user", self.paths.paths_per_user), ("model.dim", self.model.dim),
                           ("model.num_layers", self.model.num_layers), ("model.num_heads", self.model.num_heads),
                           ("decode.beam_width", self.decode.beam_width), ("decode.batch_size", self.decode.batch_size)):
            if value < 1:
                raise ValueError(f"key '{key}' must be at least 1, found {value}")
        if self.decode.hops < 2:
            raise ValueError(f"key 'decode.hops' must be at least 2, found {self.decode.hops}")
        if self.model.dim % self.model.num_heads:
            raise ValueError(f"key 'model.dim' ({self.model.dim}) must be divisible by 'model.num_heads' "
                             f"({self.model.num_heads})")
        if not 0 <= self.model.dropout < 1:
            raise ValueError(f"key 'model.dropout' must be in [0, 1), found {self.model.dropout}")
        if self.decode.temperature <= 0:
            raise ValueError(f"key 'decode.temperature' must be positive, found {self.decode.temperature}")

    @property
    def max_hops(self) -> int:
        return max(max(self.paths.hops), self.decode.hops)


def load_task(path_or_name: str | Path | None, overrides: dict | None = None) -> PathLMTask:
    """Read a path-LM task file (``None``: the defaults); ``overrides`` is a nested mapping of keys."""
    if path_or_name is None:
        payload: dict = {}
        where = "path-lm task"
    else:
        path = find_pretext_recipe(path_or_name)
        payload = load_yaml(path, "pretext task")
        where = str(path)
    if payload.get("task", "path_lm") != "path_lm":
        raise ConfigError(f"{where}: key 'task' is '{payload.get('task')}', but model.name path_lm needs a path_lm task")
    for section, values in (overrides or {}).items():
        payload.setdefault(section, {}).update(values)
    return from_mapping(PathLMTask, payload, where)
