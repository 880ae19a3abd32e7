"""Run configs: dataclasses loaded from YAML, with dotted overrides from the command line.

A config is exactly what :func:`graphrec.pipeline.run` accepts. Unknown keys and
values of the wrong type are errors that name the key (and suggest the closest
valid one). Overrides like ``train.epochs=5`` are parsed with
``ast.literal_eval``: literals only, never code.
"""

from __future__ import annotations

import ast
import copy
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from graphrec.errors import ConfigError
from graphrec.eval.metrics import VALID_METRICS
from graphrec.schema import from_mapping, load_yaml, to_mapping
from graphrec.utils import suggest


@dataclass
class GraphConfig:
    recipe: str = "synthetic"  # a recipe name under graphs/ or a path to a recipe file
    data_root: str = "data"  # the folder the recipe's paths start from
    cache_dir: str | None = None  # built graphs; default $GRAPHREC_CACHE or ~/.cache/graphrec
    rebuild: bool = False


@dataclass
class DomainConfig:
    """split.method: domain: items cut into a source and a target domain by an attribute (Zeng et al., 2021, 4.1).

    Per user and domain the newest num_test rows are test and the num_valid before them valid; in the
    target part, training histories keep their newest max_history rows (the paper: fewer than 10).
    """

    attribute: str = "genre"  # item attribute whose values make the domains (edges item -has_<attribute>-> <attribute>)
    source: list[str] | None = None  # the source domain's values; null: the most common values, ~source_share of items
    source_share: float = 0.7  # automatic source: share of the domain items aimed at (the paper's ML-1m-src: 72%)
    overlap: Literal["source", "target", "exclude"] = "source"  # the domain of an item with values on both sides
    part: Literal["source", "target"] = "target"  # source: pre-training rows; target: fine-tuning and evaluation
    num_valid: int = 2  # newest rows per user before the test rows, held out for validation (the paper: 2)
    num_test: int = 3  # newest rows per user held out for test (the paper: 3)
    max_history: int | None = 9  # target part: training rows each user keeps, the newest; null: all


@dataclass
class SplitConfig:
    # given: the split the data comes with (the recipe's interactions.split_by_file);
    # domain: one domain of a cross-domain split (split.domain), replacing ratios
    method: Literal["random", "temporal", "leave_one_out", "cold_user", "cold_item", "given", "domain"] = "random"
    ratios: list[float] = field(default_factory=lambda: [0.8, 0.1, 0.1])  # train, valid, test
    group_by_user: bool = True  # random split: cut each user's rows by the ratios
    # simulated cold-start users: this share of the users with training rows keeps only 1..cold_history
    # random training rows (the rest dropped, in no part); their valid/test rows stay. 0: off
    cold_users: float = 0.0
    cold_history: int = 9  # the most training rows a cold user keeps (k uniform in 1..min(n, cold_history))
    domain: DomainConfig = field(default_factory=DomainConfig)  # used by method: domain only


@dataclass
class FeatureConfig:
    """The layer-0 inputs of users and items (LightGCN): ID embeddings, text and attributes, fused."""

    id: bool = True  # ID embeddings; false: text/attribute-only inputs where a type has them (cold items)
    text: bool = False  # the graph's PLM text vectors (the recipe's text_features), projected
    attributes: list[str] = field(default_factory=list)  # attribute fields, e.g. [genre]: mean of value embeddings
    fusion: Literal["sum", "concat", "gate"] = "sum"
    id_dropout: float = 0.0  # share of ID vectors zeroed per training step, so text learns to score alone


@dataclass
class ModelConfig:
    # graph: node inputs + a heterogeneous encoder (model.encoder) + a head; what pre-training and fine-tuning use
    name: Literal["lightgcn", "mf", "popularity", "path_lm", "kgat", "sasrec", "graph"] = "lightgcn"
    encoder: Literal["hgt", "rgcn", "sage", "lightgcn", "diffnet", "kgat"] = "hgt"  # name: graph only
    head: Literal["dot", "linear", "mlp"] = "dot"  # name: graph: how (user, item) representations are scored
    # name: graph: relations of the graph the encoder reads besides the interactions (e.g. [has_genre,
    # rev_has_genre]; a reverse relation is not added by itself); null: every relation of the graph
    relations: list[str] | None = None
    embedding_dim: int = 64
    num_layers: int = 3  # LightGCN / KGAT / encoder propagation layers; SASRec self-attention blocks
    num_heads: int = 1  # SASRec and HGT attention heads
    max_length: int = 50  # SASRec: the most recent items of a user's history it reads
    relation_dim: int | None = None  # KGAT: size of the relation embeddings and projections; null = embedding_dim
    dropout: float = 0.1  # KGAT: message dropout after each propagation layer; SASRec: dropout
    pretext: str | None = None  # path_lm: its task file, a name under pretext/ (e.g. path-lm) or a path
    features: FeatureConfig = field(default_factory=FeatureConfig)
    # Item ID embeddings start random or from the PLM vectors of the item texts, projected (SASRec, LightGCN)
    item_init: Literal["random", "text"] = "random"
    # item_init: text: a PLM folder to encode the item texts with (e.g. one `graphrec text tune` wrote);
    # null: the graph's own text features (the recipe's text_features model)
    text_model: str | None = None


@dataclass
class TrainConfig:
    epochs: int = 100
    batch_size: int = 2048
    lr: float = 1e-3
    weight_decay: float = 1e-4  # L2 on the batch's layer-0 embeddings
    loss: Literal["bpr", "bce"] = "bpr"
    num_negatives: int = 1
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    eval_every: int = 1  # epochs between validation runs
    patience: int = 10  # validation runs without improvement before stopping
    monitor: str = "recall@20"  # validation metric for early stopping and the best checkpoint
    progress: bool = True


@dataclass
class EvalConfig:
    protocol: Literal["full", "sampled"] = "full"
    ks: list[int] = field(default_factory=lambda: [10, 20])
    metrics: list[str] = field(default_factory=lambda: ["recall", "ndcg", "precision", "hr", "mrr", "map"])
    num_negatives: int = 100  # sampled protocol only
    # all: rank every item; heldout: rank only the items of the evaluated split (the cold-item protocol)
    candidates: Literal["all", "heldout"] = "all"
    chunk_size: int | None = None  # users per scoring chunk; None sizes it from the item count
    # test metrics per user-activity bucket (training interactions per user) in metrics.json test_buckets:
    # edges [10, 20, 50, 100] give <10 (the cold-start report), 10-19, 20-49, 50-99, >=100; []: off
    buckets: list[int] = field(default_factory=lambda: [10, 20, 50, 100])


@dataclass
class PretrainConfig:
    """`graphrec pretrain`: self-supervised pre-training of a model.name: graph encoder."""

    pretext: str = "chest"  # a pretext recipe: a name under pretext/ (chest, masked-edge, contrastive) or a path
    steps: int | None = None  # optimisation steps; null: the recipe's
    lr: float | None = None  # null: the recipe's
    checkpoint_every: int = 50  # steps between checkpoints (resume with --resume)


@dataclass
class FinetuneConfig:
    """`graphrec finetune`: start from a pre-trained encoder and choose what trains."""

    checkpoint: str | None = None  # a folder `graphrec pretrain` wrote (or its encoder.safetensors); null: none
    strategy: Literal["full", "partial", "head", "adapter", "prompt"] = "full"
    frozen: list[str] = field(default_factory=list)  # partial: parameter-name prefixes kept frozen, e.g. [embedding]
    adapter_dim: int = 16  # adapter: bottleneck width
    num_prompts: int = 1  # prompt: prompt vectors per node type


@dataclass
class OutputConfig:
    dir: str = "runs"  # run folders are made under it
    name: str | None = None  # run folder name; default <recipe>-<model>-<time>


@dataclass
class RunConfig:
    seed: int = 0
    graph: GraphConfig = field(default_factory=GraphConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    output: OutputConfig = field(default_factory=OutputConfig)

    def __post_init__(self) -> None:
        if len(self.split.ratios) != 3 or any(r < 0 for r in self.split.ratios) or abs(sum(self.split.ratios) - 1) > 1e-6:
            raise ValueError(f"key 'split.ratios' must be three non-negative numbers summing to 1, found {self.split.ratios}")
        for key, value in (("train.epochs", self.train.epochs), ("train.batch_size", self.train.batch_size),
                           ("model.embedding_dim", self.model.embedding_dim), ("train.num_negatives", self.train.num_negatives),
                           ("eval.num_negatives", self.eval.num_negatives), ("train.eval_every", self.train.eval_every)):
            if value < 1:
                raise ValueError(f"key '{key}' must be at least 1, found {value}")
        if self.model.num_heads < 1 or self.model.max_length < 1:
            raise ValueError(f"keys 'model.num_heads' and 'model.max_length' must be at least 1, found "
                             f"{self.model.num_heads}, {self.model.max_length}")
        if self.model.num_layers < 0:
            raise ValueError(f"key 'model.num_layers' must be >= 0, found {self.model.num_layers}")
        if self.model.relation_dim is not None and self.model.relation_dim < 1:
            raise ValueError(f"key 'model.relation_dim' must be at least 1 or null, found {self.model.relation_dim}")
        if not 0 <= self.model.features.id_dropout < 1:
            raise ValueError(f"key 'model.features.id_dropout' must be in [0, 1), found {self.model.features.id_dropout}")
        if not 0 <= self.model.dropout < 1:
            raise ValueError(f"key 'model.dropout' must be in [0, 1), found {self.model.dropout}")
        for name in self.eval.metrics:
            if name not in VALID_METRICS:
                raise ValueError(f"key 'eval.metrics' names '{name}'{suggest(name, VALID_METRICS)}; "
                                 f"valid metrics: {', '.join(VALID_METRICS)}")
        if self.train.lr <= 0 or self.train.weight_decay < 0:
            raise ValueError(f"keys 'train.lr' (> 0) and 'train.weight_decay' (>= 0) are {self.train.lr}, "
                             f"{self.train.weight_decay}")
        if self.eval.chunk_size is not None and self.eval.chunk_size < 1:
            raise ValueError(f"key 'eval.chunk_size' must be at least 1 or null, found {self.eval.chunk_size}")
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", self.train.device):
            raise ValueError(f"key 'train.device' is '{self.train.device}'; use auto, cpu, cuda or cuda:N")
        if not self.eval.ks or any(k < 1 for k in self.eval.ks):
            raise ValueError(f"key 'eval.ks' must list cut-offs >= 1, found {self.eval.ks}")
        buckets = self.eval.buckets
        if buckets and (buckets[0] < 1 or any(high <= low for low, high in zip(buckets, buckets[1:]))):
            raise ValueError(f"key 'eval.buckets' must list strictly increasing edges >= 1 ([] for none), "
                             f"found {buckets}")
        if not 0 <= self.split.cold_users <= 1:
            raise ValueError(f"key 'split.cold_users' must lie in [0, 1] (the share of users made cold), "
                             f"found {self.split.cold_users}")
        if self.split.cold_history < 1:
            raise ValueError(f"key 'split.cold_history' must be at least 1, found {self.split.cold_history}")
        if self.split.cold_users > 0 and buckets and self.split.cold_history >= buckets[0]:
            raise ValueError(f"key 'split.cold_history' is {self.split.cold_history}, so cold users would miss the "
                             f"cold-start bucket '<{buckets[0]}' of eval.buckets; keep it below {buckets[0]}")
        domain = self.split.domain
        if not 0 < domain.source_share < 1:
            raise ValueError(f"key 'split.domain.source_share' must lie strictly between 0 and 1, "
                             f"found {domain.source_share}")
        if domain.num_valid < 0 or domain.num_test < 0:
            raise ValueError(f"keys 'split.domain.num_valid' and 'split.domain.num_test' must be >= 0, found "
                             f"{domain.num_valid}, {domain.num_test}")
        if domain.max_history is not None and domain.max_history < 1:
            raise ValueError(f"key 'split.domain.max_history' must be at least 1 or null, found {domain.max_history}")
        if domain.source is not None and not domain.source:
            raise ValueError("key 'split.domain.source' lists no value; name the source values or use null "
                             "for the automatic split")
        if self.model.name != "graph" and (self.finetune.checkpoint is not None or self.finetune.strategy != "full"):
            raise ValueError(f"keys 'finetune.*' need model.name: graph (an encoder that can be pre-trained); "
                             f"found model.name: {self.model.name}")
        if self.finetune.adapter_dim < 1 or self.finetune.num_prompts < 1:
            raise ValueError(f"keys 'finetune.adapter_dim' and 'finetune.num_prompts' must be at least 1, found "
                             f"{self.finetune.adapter_dim}, {self.finetune.num_prompts}")
        for key, value in (("pretrain.steps", self.pretrain.steps), ("pretrain.checkpoint_every",
                                                                      self.pretrain.checkpoint_every)):
            if value is not None and value < 1:
                raise ValueError(f"key '{key}' must be at least 1, found {value}")
        if self.pretrain.lr is not None and self.pretrain.lr <= 0:
            raise ValueError(f"key 'pretrain.lr' must be > 0, found {self.pretrain.lr}")
        metric, _, k = self.train.monitor.partition("@")
        if metric not in self.eval.metrics or not k.isdigit() or int(k) not in self.eval.ks:
            raise ValueError(
                f"key 'train.monitor' is '{self.train.monitor}'; it must be <metric>@<k> with the metric in eval.metrics "
                f"{self.eval.metrics} and k in eval.ks {self.eval.ks}"
            )


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> RunConfig:
    """Load a run config file (or the defaults when ``path`` is None) and apply ``key=value`` overrides."""
    payload: dict[str, Any] = load_yaml(path, "run config") if path is not None else {}
    where = str(path) if path is not None else "config"
    payload = apply_overrides(payload, overrides)
    return from_mapping(RunConfig, payload, where)


def apply_overrides(payload: dict[str, Any], overrides: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """Set dotted keys (``train.epochs=5``) in a copy of ``payload``; keys are checked against :class:`RunConfig`."""
    payload = copy.deepcopy(payload)
    defaults = to_mapping(RunConfig())
    for override in overrides:
        key, sep, text = override.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"override '{override}' must look like key=value (e.g. train.epochs=5)")
        parts = key.split(".")
        known = defaults
        target = payload
        for depth, part in enumerate(parts):
            if not isinstance(known, dict) or part not in known:
                valid = list(known) if isinstance(known, dict) else []
                dotted = ".".join(parts[: depth + 1])
                raise ConfigError(f"override '{override}': unknown key '{dotted}'{suggest(part, valid)}")
            known = known[part]
            if depth < len(parts) - 1:
                target = target.setdefault(part, {})
                if not isinstance(target, dict):
                    raise ConfigError(f"override '{override}': '{'.'.join(parts[: depth + 1])}' is not a section")
        target[parts[-1]] = parse_value(text)
    return payload


def parse_value(text: str) -> Any:
    """A Python/YAML literal (``5``, ``1e-3``, ``[10, 20]``, ``true``, ``null``), else the text as a string."""
    text = text.strip()
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("null", "none", "~"):
        return None
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        pass
    if text[:1] in "[{":  # a YAML flow list or mapping of bare words: [embedding, encoder.layers.0]
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError:
            pass
    return text


def dump_config(config: RunConfig) -> str:
    return yaml.safe_dump(to_mapping(config), sort_keys=False)
