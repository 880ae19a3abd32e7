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
    """``graph``: which graph recipe to build, from which files, and where built graphs are cached.

    Attributes:
        recipe: A recipe name under ``graphs/`` (``synthetic``, ``ml-100k``, ...) or a path to a recipe
            YAML file (see ``graphs/template.yaml``).
        data_root: The folder the recipe's file paths start from.
        cache_dir: Where built graphs are cached; ``null``: ``$GRAPHREC_CACHE``, else ``~/.cache/graphrec``.
        rebuild: Build the graph from its files even when a cached copy is current.
    """

    recipe: str = "synthetic"
    data_root: str = "data"
    cache_dir: str | None = None
    rebuild: bool = False


@dataclass
class DomainConfig:
    """``split.domain``: items cut into a source and a target domain by an attribute (Zeng et al., 2021, 4.1).

    Used by ``split.method: domain`` only. Per user and domain the newest ``num_test`` rows are test and
    the ``num_valid`` before them valid; in the target part, training histories keep their newest
    ``max_history`` rows (the paper: fewer than 10).

    Attributes:
        attribute: The item attribute whose values make the domains (edges ``item -has_<attribute>->
            <attribute>``), e.g. ``genre``.
        source: The source domain's attribute values; ``null``: the most common values, about
            ``source_share`` of the items.
        source_share: With an automatic source, the share of the domain items aimed at (the paper's
            ML-1m-src: 72%).
        overlap: The domain of an item with values on both sides: ``source``, ``target``, or ``exclude``
            (in neither).
        part: Which side this run uses: ``source`` for pre-training rows, ``target`` for fine-tuning and
            evaluation.
        num_valid: Newest rows per user and domain before the test rows, held out for validation
            (the paper: 2).
        num_test: Newest rows per user and domain held out for test (the paper: 3).
        max_history: In the target part, the training rows each user keeps, the newest; ``null``: all.
    """

    attribute: str = "genre"
    source: list[str] | None = None
    source_share: float = 0.7
    overlap: Literal["source", "target", "exclude"] = "source"
    part: Literal["source", "target"] = "target"
    num_valid: int = 2
    num_test: int = 3
    max_history: int | None = 9


@dataclass
class SplitConfig:
    """``split``: how the interactions are cut into train, validation and test rows.

    Only training rows enter the message-passing graph; validation and test edges never do.

    Attributes:
        method: ``random`` (per user, by ``ratios``); ``temporal`` (each user's latest rows, needs
            timestamps); ``leave_one_out`` (each user's last row to test, the one before to
            validation); ``cold_user`` / ``cold_item`` (all rows of held-out users or items);
            ``given`` (the split the data came with: the recipe's ``interactions.split_by_file``);
            ``domain`` (one domain of a cross-domain split, see ``split.domain``; replaces ``ratios``).
        ratios: Train, validation and test shares, summing to 1.
        group_by_user: With ``method: random``, cut each user's rows by the ratios (``false``: cut the
            whole table).
        cold_users: Simulated cold-start users: this share of the users with training rows keeps only
            1 to ``cold_history`` random training rows (the rest leave the data); their validation and
            test rows stay. ``0``: off.
        cold_history: The most training rows a cold user keeps (``k`` uniform in
            ``1..min(n, cold_history)``).
        domain: The cross-domain split, used by ``method: domain`` only.
    """

    method: Literal["random", "temporal", "leave_one_out", "cold_user", "cold_item", "given", "domain"] = "random"
    ratios: list[float] = field(default_factory=lambda: [0.8, 0.1, 0.1])
    group_by_user: bool = True
    cold_users: float = 0.0
    cold_history: int = 9
    domain: DomainConfig = field(default_factory=DomainConfig)


@dataclass
class FeatureConfig:
    """``model.features``: the layer-0 inputs of users and items (:class:`graphrec.nn.NodeEmbedding`).

    ID embeddings, text and attributes, fused. Read by ``model.name: lightgcn`` and ``graph``.

    Attributes:
        id: Learn an ID embedding per node; ``false``: text/attribute-only inputs where a type has
            them, so that items without interactions (cold items) can be scored.
        text: Use the graph's PLM text vectors (the recipe's ``text_features``), centred, unit-norm and
            projected to ``model.embedding_dim``.
        attributes: Attribute fields, e.g. ``[genre]``: the mean of learned embeddings of the node's
            values is one more input.
        fusion: How the inputs combine: ``sum``, ``concat`` (then a linear map) or ``gate`` (a learned
            per-dimension softmax over the sources).
        id_dropout: Share of ID vectors zeroed per training step, so that text learns to score alone.
    """

    id: bool = True
    text: bool = False
    attributes: list[str] = field(default_factory=list)
    fusion: Literal["sum", "concat", "gate"] = "sum"
    id_dropout: float = 0.0


@dataclass
class ModelConfig:
    """``model``: which recommender to train, and its size.

    Attributes:
        name: ``popularity``, ``mf`` (BPR-MF), ``lightgcn``, ``kgat``, ``sasrec``, ``path_lm`` (the KG-path
            language model, see ``pretext``), or ``graph``: node inputs, a heterogeneous encoder
            (``encoder``) and a head; the model that ``graphrec pretrain`` and ``graphrec finetune`` use.
        encoder: With ``name: graph``, the encoder over the whole graph: ``hgt``, ``rgcn``, ``sage``,
            ``lightgcn``, ``diffnet`` or ``kgat``.
        head: With ``name: graph``, how (user, item) representations are scored: ``dot``, ``linear`` (a
            linear map per side, then the dot product) or ``mlp``.
        relations: With ``name: graph``, the relations of the graph the encoder reads besides the
            interactions (e.g. ``[has_genre, rev_has_genre]``; a reverse relation is not added by
            itself); ``null``: every relation of the graph.
        embedding_dim: Width of the embeddings and of every encoder layer.
        num_layers: Propagation layers of LightGCN, KGAT and the ``graph`` encoders; SASRec's
            self-attention blocks.
        num_heads: Attention heads of SASRec and HGT.
        max_length: SASRec: the most recent items of a user's history it reads.
        relation_dim: KGAT: size of the relation embeddings and projections; ``null``: ``embedding_dim``.
        dropout: KGAT: message dropout after each propagation layer; SASRec: dropout.
        pretext: With ``name: path_lm``, its task file: a name under ``pretext/`` (e.g. ``path-lm``) or a
            path.
        features: The layer-0 inputs (ID, text, attributes), see ``model.features``.
        item_init: Whether item ID embeddings start ``random`` or from the PLM vectors of the item texts,
            projected (``text``; SASRec and LightGCN).
        text_model: With ``item_init: text``, a PLM folder to encode the item texts with (e.g. one that
            ``graphrec text tune`` wrote); ``null``: the graph's own text features (the recipe's
            ``text_features`` model).
    """

    name: Literal["lightgcn", "mf", "popularity", "path_lm", "kgat", "sasrec", "graph"] = "lightgcn"
    encoder: Literal["hgt", "rgcn", "sage", "lightgcn", "diffnet", "kgat"] = "hgt"
    head: Literal["dot", "linear", "mlp"] = "dot"
    relations: list[str] | None = None
    embedding_dim: int = 64
    num_layers: int = 3
    num_heads: int = 1
    max_length: int = 50
    relation_dim: int | None = None
    dropout: float = 0.1
    pretext: str | None = None
    features: FeatureConfig = field(default_factory=FeatureConfig)
    item_init: Literal["random", "text"] = "random"
    text_model: str | None = None


@dataclass
class TrainConfig:
    """``train``: the training loop, early stopping and the device.

    Attributes:
        epochs: The most passes over the training rows; early stopping may end sooner.
        batch_size: Training rows per step (``path_lm``: paths per step; SASRec: user sequences per step).
        lr: Learning rate of Adam (AdamW for ``path_lm``).
        weight_decay: Weight of the L2 penalty on the batch's layer-0 embeddings; SASRec: Adam's L2 penalty
            on all parameters; ``path_lm``: AdamW's weight decay.
        loss: Recommendation loss against sampled negative items: ``bpr`` or ``bce`` (SASRec and
            ``path_lm`` use their own cross-entropy).
        num_negatives: Negative items sampled per positive.
        device: ``auto`` (CUDA when available), ``cpu``, ``cuda`` or ``cuda:N``.
        eval_every: Epochs between validation runs.
        patience: Validation runs without improvement of ``monitor`` before training stops.
        monitor: Validation metric for early stopping and the best checkpoint, ``<metric>@<k>`` with the
            metric in ``eval.metrics`` and ``k`` in ``eval.ks``.
        progress: Show progress bars.
        batching: What a training step propagates over: ``full``, the whole graph; ``neighbor``, only the
            sampled neighbourhood of the batch's users and items (``fanouts``), so a step costs what the
            batch's subgraph costs. Validation and test still propagate over the whole graph. ``neighbor``
            needs ``model.name: graph`` (any ``model.encoder``).
        fanouts: With ``batching: neighbor``, the neighbours drawn per node and edge type at each hop, one
            per layer (as many as ``model.num_layers``); ``-1``: all neighbours (a step then equals the
            full-batch one).
        sparse_embeddings: With ``batching: neighbor``, update only the rows of the ID embedding tables
            that a step's subgraph gathers (sparse gradients and lazy Adam) instead of every row. For
            tables far larger than a step's subgraph; on the 1M-user synthetic graph on CPU a step was
            5% slower with it (see docs/scaling.md). One process only.
    """

    epochs: int = 100
    batch_size: int = 2048
    lr: float = 1e-3
    weight_decay: float = 1e-4
    loss: Literal["bpr", "bce"] = "bpr"
    num_negatives: int = 1
    device: str = "auto"
    eval_every: int = 1
    patience: int = 10
    monitor: str = "recall@20"
    progress: bool = True
    batching: Literal["full", "neighbor"] = "full"
    fanouts: list[int] = field(default_factory=lambda: [10, 5])
    sparse_embeddings: bool = False


@dataclass
class EvalConfig:
    """``eval``: how validation and test rows are ranked and measured.

    Attributes:
        protocol: ``full``: rank every item for every evaluated user, training (and at test time
            validation) items masked; ``sampled``: rank each user's held-out items against
            ``num_negatives`` sampled items.
        ks: Cut-offs ``K`` of the top-K metrics.
        metrics: Ranking metrics, among ``recall``, ``precision``, ``hr``, ``ndcg``, ``mrr``, ``map``.
        num_negatives: With ``protocol: sampled``, negatives per user.
        candidates: ``all``: rank every item; ``heldout``: rank only the items of the evaluated split
            (the cold-item protocol).
        chunk_size: Users per scoring chunk; ``null`` sizes it from the item count, so memory stays bounded.
        buckets: Test metrics per user-activity bucket (training interactions per user) in
            ``metrics.json`` under ``test_buckets``: edges ``[10, 20, 50, 100]`` give ``<10`` (the
            cold-start report), ``10-19``, ``20-49``, ``50-99`` and ``>=100``; ``[]``: off.
    """

    protocol: Literal["full", "sampled"] = "full"
    ks: list[int] = field(default_factory=lambda: [10, 20])
    metrics: list[str] = field(default_factory=lambda: ["recall", "ndcg", "precision", "hr", "mrr", "map"])
    num_negatives: int = 100
    candidates: Literal["all", "heldout"] = "all"
    chunk_size: int | None = None
    buckets: list[int] = field(default_factory=lambda: [10, 20, 50, 100])


@dataclass
class PretrainConfig:
    """``pretrain``: self-supervised pre-training of a ``model.name: graph`` encoder (``graphrec pretrain``).

    Attributes:
        pretext: The pretext recipe: a name under ``pretext/`` (``chest``, ``masked-edge``,
            ``contrastive``) or a path to one (see ``pretext/template.yaml``).
        steps: Optimisation steps; ``null``: the recipe's ``steps``.
        lr: Learning rate; ``null``: the recipe's ``lr``.
        checkpoint_every: Steps between checkpoints (continue with ``--resume``).
        batching: ``full``: every step runs the pretext tasks on the whole training graph; ``neighbor``:
            on a subgraph sampled around ``batch_nodes`` seed nodes (the tasks mask, hide edges, draw
            views and walk inside it, and put their losses on the seeds), for graphs too large for
            full-batch steps.
        fanouts: With ``batching: neighbor``, neighbours sampled per node and edge type at each hop,
            one entry per encoder layer (``-1``: all of them); ``null``: 10 per layer.
        batch_nodes: With ``batching: neighbor``, seed nodes per step of every node type the tasks
            put losses on (users and items for ``chest``).
    """

    pretext: str = "chest"
    steps: int | None = None
    lr: float | None = None
    checkpoint_every: int = 50
    batching: Literal["full", "neighbor"] = "full"
    fanouts: list[int] | None = None
    batch_nodes: int = 1024

    def __post_init__(self) -> None:
        if self.fanouts is not None and any(f < 1 and f != -1 for f in self.fanouts):
            raise ValueError(f"key 'pretrain.fanouts' must list positive fan-outs or -1 (all neighbours), "
                             f"found {self.fanouts}")
        if self.batch_nodes < 1:
            raise ValueError(f"key 'pretrain.batch_nodes' must be at least 1, found {self.batch_nodes}")


@dataclass
class FinetuneConfig:
    """``finetune``: start from a pre-trained encoder and choose what trains (``graphrec finetune``).

    Attributes:
        checkpoint: A folder that ``graphrec pretrain`` wrote, or its ``encoder.safetensors``; ``null``:
            train from scratch. ``graphrec finetune --from`` sets it.
        strategy: What trains: ``full`` (everything), ``partial`` (all but the ``frozen`` prefixes),
            ``head`` (only the head), ``adapter`` (bottleneck adapters after every encoder layer, and the
            head) or ``prompt`` (prompt vectors added to the inputs, and the head).
        frozen: With ``strategy: partial``, parameter-name prefixes kept frozen, e.g. ``[embedding]`` or
            ``[encoder.layers.0]``.
        adapter_dim: With ``strategy: adapter``, the bottleneck width.
        num_prompts: With ``strategy: prompt``, prompt vectors per node type.
    """

    checkpoint: str | None = None
    strategy: Literal["full", "partial", "head", "adapter", "prompt"] = "full"
    frozen: list[str] = field(default_factory=list)
    adapter_dim: int = 16
    num_prompts: int = 1


@dataclass
class OutputConfig:
    """``output``: where run folders are written.

    Attributes:
        dir: The folder run folders are made under.
        name: The run folder's name; ``null``: ``<recipe>-<model>-<time>``.
    """

    dir: str = "runs"
    name: str | None = None


@dataclass
class RunConfig:
    """A whole run config: what :func:`graphrec.pipeline.run` accepts.

    Attributes:
        seed: Seeds Python, NumPy and torch; the same seed gives the same split and, on CPU, the same
            metrics.
        graph: The graph recipe and its files.
        split: Train / validation / test split.
        model: The recommender.
        train: The training loop.
        eval: Metrics and protocol.
        pretrain: ``graphrec pretrain`` (``model.name: graph``).
        finetune: ``graphrec finetune`` (``model.name: graph``).
        output: Where the run folder goes.
    """

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
        self._check_batching()
        metric, _, k = self.train.monitor.partition("@")
        if metric not in self.eval.metrics or not k.isdigit() or int(k) not in self.eval.ks:
            raise ValueError(
                f"key 'train.monitor' is '{self.train.monitor}'; it must be <metric>@<k> with the metric in eval.metrics "
                f"{self.eval.metrics} and k in eval.ks {self.eval.ks}"
            )

    def _check_batching(self) -> None:
        train, model = self.train, self.model
        if any(not isinstance(f, int) or isinstance(f, bool) or f < -1 for f in train.fanouts):
            raise ValueError(f"key 'train.fanouts' must list ints >= -1 (-1: all neighbours), found {train.fanouts}")
        if train.batching != "neighbor":
            if train.sparse_embeddings:
                raise ValueError("key 'train.sparse_embeddings' is true, which needs train.batching: neighbor (a "
                                 "full-batch step reads every row of the tables)")
            return
        if model.name != "graph":
            raise ValueError(f"key 'train.batching' is 'neighbor', which only model.name: graph supports (with "
                             f"any model.encoder: hgt, rgcn, sage, lightgcn, diffnet, kgat); found model.name: "
                             f"{model.name}. Use train.batching: full, or model.name: graph with model.encoder: "
                             f"lightgcn for LightGCN")
        if len(train.fanouts) != model.num_layers:
            last = train.fanouts[-1] if train.fanouts else 10
            example = (train.fanouts + [last] * model.num_layers)[: model.num_layers]
            raise ValueError(f"key 'train.fanouts' lists {len(train.fanouts)} fan-outs {train.fanouts}, but "
                             f"model.num_layers is {model.num_layers}; give one per layer, e.g. {example}")


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
