"""Pre-training recipes: which pretext tasks to run, how to weigh them, and for how long.

A recipe is a YAML file under ``pretext/`` (``pretext/template.yaml`` documents every key)::

    name: chest
    tasks:
      masked_node: {node_type: item, target: attributes, fields: null}
      masked_edge: {mask_rate: 0.15}
      metapath: {metapaths: [[user, item, user], [user, item, genre, item, user]]}
    weighting: uncertainty
    curriculum: {order: [masked_node, masked_edge, metapath], stage_steps: 50}

:func:`load_pretext_recipe` reads one (unknown keys are errors naming the file and the key, with
the closest valid key); :func:`build_multitask` resolves it against a graph into a
:class:`graphrec.pretext.MultiTask`. One recipe can serve several graphs: ``fields: null`` takes
whatever attribute fields the graph has, and meta-paths with a hop the graph lacks are skipped
with a warning that names them.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Literal

from torch_geometric.data import HeteroData

from graphrec.errors import ConfigError
from graphrec.graph.metapaths import metapath_name, split_applicable
from graphrec.pretext.base import PretextTask
from graphrec.pretext.contrastive import ContrastiveViews
from graphrec.pretext.masked_edge import DEFAULT_EDGE_TYPES, MaskedEdgePrediction
from graphrec.pretext.masked_node import MaskedNodePrediction, attribute_fields, text_node_types
from graphrec.pretext.metapath import MetaPathPrediction
from graphrec.pretext.multitask import Curriculum, MultiTask
from graphrec.schema import from_mapping, load_yaml
from graphrec.utils import suggest


@dataclass
class MaskedNodeConfig:
    node_type: str = "item"
    target: Literal["attributes", "text"] = "attributes"
    fields: list[str] | None = None  # null: every attribute field of node_type in the graph
    mask_rate: float = 0.15


@dataclass
class MaskedEdgeConfig:
    edge_types: list[list[str]] | None = None  # null: [[user, interacts, item]]
    mask_rate: float = 0.15
    num_negatives: int = 1
    scoring: Literal["dot", "diagonal", "bilinear"] = "dot"


@dataclass
class MetaPathConfig:
    metapaths: list[list[str]] = field(default_factory=lambda: [["user", "item", "user"], ["item", "user", "item"]])
    pairs_per_step: int = 1024
    hidden: int = 64


@dataclass
class ContrastiveConfig:
    view: Literal["edge_dropout", "feature_mask", "noise"] = "edge_dropout"
    rate: float = 0.1
    noise_eps: float = 0.1
    temperature: float = 0.2
    node_types: list[str] = field(default_factory=lambda: ["user", "item"])
    nodes_per_step: int = 2048
    edge_types: list[list[str]] | None = None  # null: every edge type of the graph


@dataclass
class TaskConfigs:
    """Each task is on when its key is present (``{}`` for all defaults)."""

    masked_node: MaskedNodeConfig | None = None
    masked_edge: MaskedEdgeConfig | None = None
    metapath: MetaPathConfig | None = None
    contrastive: ContrastiveConfig | None = None

    def enabled(self) -> list[str]:
        return [f.name for f in fields(self) if getattr(self, f.name) is not None]


@dataclass
class CurriculumConfig:
    order: list[str]
    stage_steps: int = 50


@dataclass
class PretextRecipe:
    """A pre-training recipe: which pretext tasks run, how they are weighed or ordered, and the optimiser settings."""

    name: str = ""
    description: str = ""
    tasks: TaskConfigs = field(default_factory=TaskConfigs)
    weighting: Literal["fixed", "uncertainty"] = "fixed"
    weights: dict[str, float] | None = None
    curriculum: CurriculumConfig | None = None
    steps: int = 200
    lr: float = 1e-3
    weight_decay: float = 0.0
    log_every: int = 10
    source: str = field(default="pretext recipe", init=False, compare=False)  # file it came from, for messages

    def __post_init__(self) -> None:
        enabled = self.tasks.enabled()
        if not enabled:
            names = [f.name for f in fields(TaskConfigs)]
            raise ValueError(f"key 'tasks' turns on no task; give at least one of {names}")
        for key, names in (("weights", list(self.weights or {})),
                           ("curriculum.order", self.curriculum.order if self.curriculum else [])):
            for name in names:
                if name not in enabled:
                    raise ValueError(f"key '{key}' names task '{name}'{suggest(name, enabled)}, which is not among "
                                     f"the recipe's tasks {enabled}")
        for name, weight in (self.weights or {}).items():
            if weight < 0:
                raise ValueError(f"key 'weights.{name}' must be non-negative, found {weight}")
        if self.curriculum is not None:
            if len(set(self.curriculum.order)) < len(self.curriculum.order):
                raise ValueError(f"key 'curriculum.order' lists a task twice: {self.curriculum.order}")
            if self.curriculum.stage_steps < 1:
                raise ValueError(f"key 'curriculum.stage_steps' must be at least 1, "
                                 f"found {self.curriculum.stage_steps}")
        for key, value in (("steps", self.steps), ("log_every", self.log_every)):
            if value < 1:
                raise ValueError(f"key '{key}' must be at least 1, found {value}")
        if self.lr <= 0:
            raise ValueError(f"key 'lr' must be positive, found {self.lr}")
        if self.weight_decay < 0:
            raise ValueError(f"key 'weight_decay' must be non-negative, found {self.weight_decay}")
        self._check_tasks()

    def _check_tasks(self) -> None:
        tasks = self.tasks
        rates = []
        if tasks.masked_node:
            rates.append(("tasks.masked_node.mask_rate", tasks.masked_node.mask_rate))
        if tasks.masked_edge:
            rates.append(("tasks.masked_edge.mask_rate", tasks.masked_edge.mask_rate))
            _check_edge_types("tasks.masked_edge.edge_types", tasks.masked_edge.edge_types)
            if tasks.masked_edge.num_negatives < 1:
                raise ValueError(f"key 'tasks.masked_edge.num_negatives' must be at least 1, "
                                 f"found {tasks.masked_edge.num_negatives}")
        if tasks.metapath:
            for index, metapath in enumerate(tasks.metapath.metapaths):
                if len(metapath) < 2:
                    raise ValueError(f"key 'tasks.metapath.metapaths[{index}]' must list at least two node types, "
                                     f"found {metapath}")
            for key in ("pairs_per_step", "hidden"):
                if getattr(tasks.metapath, key) < 1:
                    raise ValueError(f"key 'tasks.metapath.{key}' must be at least 1, "
                                     f"found {getattr(tasks.metapath, key)}")
        if tasks.contrastive:
            if tasks.contrastive.view != "noise":
                rates.append(("tasks.contrastive.rate", tasks.contrastive.rate))
            _check_edge_types("tasks.contrastive.edge_types", tasks.contrastive.edge_types)
            for key in ("temperature", "noise_eps"):
                if getattr(tasks.contrastive, key) <= 0:
                    raise ValueError(f"key 'tasks.contrastive.{key}' must be positive, "
                                     f"found {getattr(tasks.contrastive, key)}")
        for key, rate in rates:
            if not 0 < rate < 1:
                raise ValueError(f"key '{key}' must be a fraction in (0, 1), found {rate}")


def _check_edge_types(key: str, edge_types: list[list[str]] | None) -> None:
    for index, edge_type in enumerate(edge_types or []):
        if len(edge_type) != 3:
            raise ValueError(f"key '{key}[{index}]' must be [source type, relation, target type], found {edge_type}")


# ---------------------------------------------------------------------------------------------- loading
def default_pretext_dir() -> Path:
    """The built-in pretext recipes: ``pretext/`` of a source checkout, shipped in the package as
    ``graphrec/resources/pretext`` (in a checkout a link to ``pretext/``, which this resolves to)."""
    return (Path(__file__).resolve().parents[1] / "resources" / "pretext").resolve()


def find_pretext_recipe(path_or_name: str | Path) -> Path:
    """A pretext file (a multi-task recipe, or the path LM's task file) by path, or by name under ``pretext/``."""
    candidate = Path(path_or_name)
    if candidate.suffix in (".yaml", ".yml") or candidate.is_file():
        return candidate
    folder = default_pretext_dir()
    path = folder / f"{path_or_name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in folder.glob("*.yaml"))
        raise ConfigError(f"no pretext task or recipe '{path_or_name}'{suggest(str(path_or_name), known)}; known: {known}")
    return path


def load_pretext_recipe(path_or_name: str | Path, overrides: dict | None = None) -> PretextRecipe:
    """Read a pre-training recipe by name (under ``pretext/``) or path.

    Args:
        path_or_name: ``"chest"`` or ``"path/to/recipe.yaml"``.
        overrides: nested mapping merged over the file's keys, e.g. ``{"steps": 10}``.

    Raises:
        ConfigError: the file is missing or malformed, a key is unknown or has a wrong value
            (the message names the file and the dotted key), or the file is a ``task: path_lm``
            file, which configures the path language model rather than multi-task pre-training.
    """
    path = find_pretext_recipe(path_or_name)
    payload = load_yaml(path, "pretext recipe")
    where = str(path)
    if "task" in payload:
        raise ConfigError(f"{where}: key 'task' ({payload['task']!r}) marks a single-task file such as path-lm.yaml, "
                          "which model.name path_lm reads; a pre-training recipe lists its tasks under 'tasks' instead")
    payload = _merge(payload, overrides or {})
    recipe = from_mapping(PretextRecipe, payload, where)
    recipe.name = recipe.name or path.stem
    recipe.source = where
    return recipe


def _merge(base: dict, overrides: dict) -> dict:
    out = dict(base)
    for key, value in overrides.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


# ---------------------------------------------------------------------------------------------- building
def build_multitask(recipe: PretextRecipe, graph: HeteroData, embedding_dim: int) -> MultiTask:
    """The :class:`MultiTask` of ``recipe`` on ``graph`` (the message-passing graph).

    Defaults are resolved against the graph: ``fields: null`` takes every attribute field of the
    masked node type; meta-paths with a hop the graph has no edge for are skipped with a warning
    naming them. A task that cannot apply at all (a missing field, node type or edge type, fewer
    than two usable meta-paths) raises ``ConfigError`` naming the recipe key.
    """
    where = recipe.source
    built: dict[str, PretextTask] = {}
    for name in recipe.tasks.enabled():
        config = getattr(recipe.tasks, name)
        try:
            built[name] = _BUILDERS[name](config, graph, embedding_dim, where)
        except ValueError as exc:
            message = str(exc) if str(exc).startswith("key '") else f"key 'tasks.{name}' cannot apply: {exc}"
            raise ConfigError(f"{where}: {message}") from None
    curriculum = None
    if recipe.curriculum is not None:
        curriculum = Curriculum(recipe.curriculum.order, recipe.curriculum.stage_steps)
    return MultiTask(built, weighting=recipe.weighting, weights=recipe.weights, curriculum=curriculum)


def _masked_node(config: MaskedNodeConfig, graph: HeteroData, dim: int, where: str) -> PretextTask:
    if config.node_type not in graph.node_types:
        raise ValueError(f"key 'tasks.masked_node.node_type' is {config.node_type!r}, which is not in the graph; "
                         f"node types: {graph.node_types}")
    if config.target == "attributes":
        available = sorted(attribute_fields(graph, config.node_type))
        missing = [f for f in config.fields or [] if f not in available]
        if missing or not available:
            what = f"field {missing[0]!r}" if missing else "attribute fields"
            raise ValueError(f"key 'tasks.masked_node.fields': node type {config.node_type!r} has no {what} in the "
                             f"graph; its fields: {available}")
    elif config.node_type not in text_node_types(graph):
        raise ValueError(f"key 'tasks.masked_node.target' is 'text', but node type {config.node_type!r} has no text "
                         f"vectors (x_text); node types with text: {text_node_types(graph)}")
    return MaskedNodePrediction(graph, dim, node_type=config.node_type, target=config.target, fields=config.fields,
                                mask_rate=config.mask_rate)


def _masked_edge(config: MaskedEdgeConfig, graph: HeteroData, dim: int, where: str) -> PretextTask:
    edge_types = None if config.edge_types is None else [tuple(e) for e in config.edge_types]
    for edge_type in edge_types or DEFAULT_EDGE_TYPES:
        if edge_type not in graph.edge_types:
            raise ValueError(f"key 'tasks.masked_edge.edge_types' names {list(edge_type)}, which is not in the graph; "
                             f"edge types: {[list(e) for e in graph.edge_types]}")
    return MaskedEdgePrediction(graph, dim, edge_types=edge_types, mask_rate=config.mask_rate,
                                num_negatives=config.num_negatives, scoring=config.scoring)


def _metapath(config: MetaPathConfig, graph: HeteroData, dim: int, where: str) -> PretextTask:
    edge_types = [e for e in graph.edge_types if graph[e].num_edges > 0]
    applicable, skipped = split_applicable(config.metapaths, edge_types, graph.node_types)
    if skipped:
        details = "; ".join(f"{name} (no {hops[0][0]} -> {hops[0][1]} edges)" for name, hops in skipped.items())
        warnings.warn(f"{where}: tasks.metapath skips meta-paths this graph cannot walk: {details}", stacklevel=3)
    if len(applicable) < 2:
        raise ValueError(f"key 'tasks.metapath.metapaths': {len(applicable)} of the meta-paths apply "
                         f"({[metapath_name(m) for m in applicable]}); at least two are needed to tell apart")
    return MetaPathPrediction(graph, dim, applicable, pairs_per_step=config.pairs_per_step, hidden=config.hidden)


def _contrastive(config: ContrastiveConfig, graph: HeteroData, dim: int, where: str) -> PretextTask:
    for node_type in config.node_types:
        if node_type not in graph.node_types:
            raise ValueError(f"key 'tasks.contrastive.node_types' names {node_type!r}, which is not in the graph; "
                             f"node types: {graph.node_types}")
    edge_types = None
    if config.edge_types is not None:
        edge_types = [tuple(e) for e in config.edge_types]
        for edge_type in edge_types:
            if edge_type not in graph.edge_types:
                raise ValueError(f"key 'tasks.contrastive.edge_types' names {edge_type}, which is not in the graph; "
                                 f"edge types: {graph.edge_types}")
    return ContrastiveViews(dim, view=config.view, rate=config.rate, noise_eps=config.noise_eps,
                            temperature=config.temperature, node_types=config.node_types,
                            nodes_per_step=config.nodes_per_step, edge_types=edge_types)


# The one place a task name in text chooses a class.
_BUILDERS = {"masked_node": _masked_node, "masked_edge": _masked_edge, "metapath": _metapath,
             "contrastive": _contrastive}
TASKS = {"masked_node": MaskedNodePrediction, "masked_edge": MaskedEdgePrediction, "metapath": MetaPathPrediction,
         "contrastive": ContrastiveViews}
