"""``run(config)``: graph -> split -> model -> train -> evaluate, with everything written to a run folder.

A run folder holds what is needed to evaluate again or recommend later:

    config.yaml        the resolved config
    environment.json   package versions, git commit, device, checksums of the data files
    split.safetensors  the train / valid / test rows of the interaction table
    best.safetensors   the best weights (by the validation metric)
    checkpoint/        the last epoch, for --resume
    history.json       loss and validation metrics per epoch
    metrics.json       validation and test metrics, timings
    curve.png          the training curve
    report.html        a self-contained HTML report (graphrec.report)

Under torchrun (``graphrec run CONFIG --nproc N``) every rank trains (see :mod:`graphrec.distributed`);
rank 0 alone claims and writes the run folder and runs the test evaluation.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import logging
import os
import platform
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from graphrec import distributed
from graphrec.config import FeatureConfig, RunConfig, dump_config, load_config
from graphrec.data.domains import ItemDomains, domain_split, item_domains
from graphrec.data.splits import Split, sparsify_users, split_interactions
from graphrec.errors import CheckpointError, ConfigError
from graphrec.eval import bucket_metrics, full_ranking, sampled_ranking, topk_items, user_activity
from graphrec.graph import GraphBundle, load_graph
from graphrec.graph.recipe import find_recipe
from graphrec.nn import KGAT, MF, DotProductHead, LightGCN, NodeEmbedding, Popularity
from graphrec.schema import from_mapping, to_mapping
from graphrec.train import Trainer, load_weights, plot_history
from graphrec.train.checkpoint import find_checkpoint
from graphrec.utils import atomic_save_tensors, atomic_write_bytes, atomic_write_json, atomic_write_text, \
    load_tensors, read_json, resolve_device, seed_everything, suggest

logger = logging.getLogger("graphrec")


@dataclass
class Result:
    """What :func:`run` returns."""

    run_dir: Path
    test_metrics: dict[str, float]
    valid_metrics: dict[str, float]
    history: list[dict[str, float]] = field(default_factory=list)
    seconds_per_epoch: float = float("nan")
    eval_seconds: float = float("nan")


@dataclass
class Prepared:
    """The data side of a run: the graph, the split and its edge indices."""

    bundle: GraphBundle
    split: Split
    train: torch.Tensor  # [2, E_train]
    valid: torch.Tensor  # [2, E_valid]
    test: torch.Tensor  # [2, E_test]
    # split.method: domain: the [P] items of the split's part, the only ones ranked
    candidate_items: torch.Tensor | None = None


def prepare(config: RunConfig, split_rows: dict[str, np.ndarray] | None = None) -> Prepared:
    """Load (or build) the graph and split its interactions as the config says."""
    bundle = load_graph(find_recipe(config.graph.recipe), config.graph.data_root, config.graph.cache_dir,
                        rebuild=config.graph.rebuild)
    inter = bundle.interactions
    domain = config.split.domain
    domains = _item_domains(config, bundle) if config.split.method == "domain" else None
    if split_rows is not None:  # a saved split, cold users and domains included
        split = Split(train=split_rows["train"], valid=split_rows["valid"], test=split_rows["test"],
                      method=config.split.method)
    elif domains is not None:
        split = domain_split(inter.user, inter.item, domains.item_domain, domain.part, inter.timestamp,
                             domain.num_valid, domain.num_test, domain.max_history, config.seed)
    else:
        split = split_interactions(config.split.method, inter.user, inter.item, inter.timestamp,
                                   tuple(config.split.ratios), config.seed, config.split.group_by_user,
                                   given=inter.split)
    if split_rows is None and config.split.cold_users > 0:
        split = sparsify_users(split, inter.user, config.split.cold_users, config.split.cold_history, config.seed)
    candidates = None if domains is None else torch.from_numpy(domains.items(domain.part))
    return Prepared(bundle, split, inter.edge_index(split.train), inter.edge_index(split.valid),
                    inter.edge_index(split.test), candidates)


def _item_domains(config: RunConfig, bundle: GraphBundle) -> ItemDomains:
    """Every item's domain by the attribute ``split.domain.attribute`` (its ``item -has_<name>-> <name>`` edges)."""
    domain, name = config.split.domain, config.split.domain.attribute
    edge_type = ("item", f"has_{name}", name)
    if edge_type not in bundle.graph.edge_types:
        known = sorted({r[4:] for s, r, _ in bundle.graph.edge_types if s == "item" and r.startswith("has_")})
        raise ConfigError(f"key 'split.domain.attribute' names '{name}', which is not an item attribute of graph "
                          f"'{bundle.name}'{suggest(name, known)}; item attributes: {known}")
    try:
        return item_domains(bundle.graph[edge_type].edge_index, bundle.num_items, bundle.idmap.raw_ids(name),
                            domain.source, domain.overlap, domain.source_share)
    except ConfigError as exc:
        raise ConfigError(f"key 'split.domain': {exc}") from None


def build_model(config: RunConfig, bundle: GraphBundle) -> torch.nn.Module:
    """The recommendation model the config names, sized to (and, for KGAT, built on) ``bundle``'s graph."""
    name, dim = config.model.name, config.model.embedding_dim
    num_users, num_items = bundle.num_users, bundle.num_items
    if name == "kgat":
        return KGAT(num_users, num_items, bundle.graph, embedding_dim=dim, num_layers=config.model.num_layers,
                    relation_dim=config.model.relation_dim, dropout=config.model.dropout)
    if name == "graph":
        from graphrec.transfer import build_graph_model

        return build_graph_model(config, bundle)
    embedding = input_embedding(config, bundle)
    if embedding is not None and name != "lightgcn":
        raise ConfigError(f"key 'model.features': text and attribute inputs are built for lightgcn, not '{name}' "
                          "(lightgcn with num_layers: 0 is matrix factorisation)")
    if name == "lightgcn":
        return LightGCN(num_users, num_items, embedding_dim=dim, num_layers=config.model.num_layers,
                        embedding=embedding)
    if name == "mf":
        return MF(num_users, num_items, embedding_dim=dim)
    if name == "popularity":
        return Popularity(num_users, num_items)
    raise ConfigError(f"key 'model.name': unknown model '{name}'")


def input_embedding(config: RunConfig, bundle: GraphBundle,
                    other_types: dict[str, int] | None = None) -> NodeEmbedding | None:
    """The fused user/item inputs ``model.features`` asks for, or None for plain ID embeddings.

    ``other_types`` (node type -> count) adds ID embeddings for further node types (an encoder's
    entities, genres, tags); a NodeEmbedding is then always returned.
    """
    features, graph = config.model.features, bundle.graph
    if features == FeatureConfig() and not other_types:
        return None
    types = {"user": bundle.num_users, "item": bundle.num_items}
    text = {t: graph[t].x_text for t in types if features.text and "x_text" in graph[t]}
    if features.text and not text:
        raise ConfigError(f"key 'model.features.text' is true, but the graph '{bundle.name}' has no text features on "
                          "users or items; give its recipe text_features: {node_types: [item]} and an items.text")
    attributes: dict[str, tuple[torch.Tensor, int]] = {}
    known = sorted({r[4:] for s, r, _ in graph.edge_types if s in types and r.startswith("has_")})
    for name in features.attributes:
        owners = [s for s, r, _ in graph.edge_types if r == f"has_{name}" and s in types]
        if not owners:
            raise ConfigError(f"key 'model.features.attributes' names '{name}', which is not an attribute of users "
                              f"or items in graph '{bundle.name}'{suggest(name, known)}; attributes: {known}")
        index, num_values = attributes.get(owners[0], (torch.empty(2, 0, dtype=torch.long), 0))
        field_index = graph[owners[0], f"has_{name}", name].edge_index
        # Several fields of one type share a table: each field's values after the previous fields'.
        index = torch.cat([index, field_index + torch.tensor([[0], [num_values]])], dim=1)
        attributes[owners[0]] = (index, num_values + bundle.idmap.num_nodes(name))
    id_types = set(types) if features.id else {t for t in types if t not in text and t not in attributes}
    others = {t: n for t, n in (other_types or {}).items() if t not in types}
    types, id_types = {**types, **others}, id_types | set(others)
    return NodeEmbedding(types, config.model.embedding_dim, id_types=id_types, text_dict=text,
                         has_text_dict={t: graph[t].has_text for t in text}, attribute_dict=attributes,
                         fusion=features.fusion, id_dropout=features.id_dropout)


def score_function(model: torch.nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """Propagate once (no gradients) and return ``score_fn(user_ids [B]) -> scores [B, num_items]``.

    A model that scores users itself (``score_users``, e.g. a sequential model reading each user's
    history) is asked directly.
    """
    if hasattr(model, "score_users"):
        return model.score_users
    was_training = model.training
    model.eval()
    with torch.no_grad():
        user_emb, item_emb = model()
    model.train(was_training)
    head = model if hasattr(model, "score_all") else DotProductHead()

    def score_fn(users: torch.Tensor) -> torch.Tensor:
        return head.score_all(user_emb[users.to(user_emb.device)], item_emb)  # [B, I]

    return score_fn


def evaluate_model(model: torch.nn.Module, config: RunConfig, num_users: int, num_items: int,
                   eval_edges: torch.Tensor, exclude: list[torch.Tensor], candidate_items: torch.Tensor | None = None,
                   per_user: bool = False, users: torch.Tensor | None = None):
    """Rank the held-out ``eval_edges`` with the protocol the config names (``exclude``: items masked).

    ``candidate_items``: the only items ranked (``Prepared.candidate_items``, a domain split's items).
    ``users``: evaluate only these users (default: every user with a held-out item), e.g. one
    data-parallel rank's share.
    Returns the summary; with ``per_user`` ``(summary, per-user values)``, the values None when nothing is held out.
    """
    if eval_edges.shape[1] == 0:
        return ({}, None) if per_user else {}  # nothing held out: no metric rather than a row of zeros
    too_long = [k for k in config.eval.ks if k > num_items]
    if too_long:
        raise ConfigError(f"key 'eval.ks': cut-off {too_long[0]} is larger than the {num_items} items of the graph")
    pool, pool_name = candidate_items, f"items of the split's domain (split.domain.part: {config.split.domain.part})"
    if config.eval.candidates == "heldout":  # rank only the evaluated split's items (e.g. the cold ones)
        heldout = eval_edges[1].unique()
        pool = heldout if pool is None else heldout[torch.isin(heldout, pool.to(heldout.device))]
        pool_name = "held-out items ranked by eval.candidates: heldout"
    too_long = [k for k in config.eval.ks if pool is not None and k > pool.numel()]
    if too_long:
        raise ConfigError(f"key 'eval.ks': cut-off {too_long[0]} is larger than the {pool.numel()} {pool_name}")
    score_fn = score_function(model)
    common = dict(score_fn=score_fn, num_users=num_users, num_items=num_items,
                  eval_edge_index=eval_edges, exclude_edge_indices=exclude, ks=config.eval.ks,
                  names=config.eval.metrics, chunk_size=config.eval.chunk_size, candidate_items=pool,
                  return_per_user=per_user, users=users)
    if config.eval.protocol == "sampled":
        return sampled_ranking(**common, num_negatives=config.eval.num_negatives, seed=config.seed)
    tensors = [*model.parameters(), *model.buffers()]
    return full_ranking(**common, device=tensors[0].device if tensors else "cpu")


def run(config: RunConfig | dict | str | Path, *, resume: bool = False, overwrite: bool = False,
        run_dir: str | Path | None = None) -> Result:
    """Train and evaluate one model as ``config`` says; write a run folder.

    Args:
        config: a :class:`RunConfig`, a mapping of its keys, or a YAML file.
        resume: continue the run in ``run_dir`` (or ``output.dir/output.name``) from its last complete
            checkpoint, on the split saved there; the data files must be unchanged.
        overwrite: replace an existing run folder of that name (only one a run made).
        run_dir: the run folder; default ``output.dir/output.name``, or a new ``<recipe>-<model>-<time>``
            folder when neither is given (never an existing one).
    """
    config = _resolved_paths(_as_config(config))
    with distributed.process_group(config.train.device):  # under torchrun: join the data-parallel group
        seed_everything(config.seed)
        # Rank 0 claims the folder; the other ranks of a data-parallel group use the same one.
        folder = distributed.from_main(lambda: _claim_run_folder(config, run_dir, resume, overwrite))
        main = distributed.is_main()
        # A resume refused (other settings, changed data) must not leave its config in the folder.
        kept = {name: (folder / name).read_bytes() for name in ("config.yaml", "environment.json")
                if main and resume and (folder / name).is_file()}
        try:
            result = _train_and_test(config, folder, resume)
        except Exception:
            for name, payload in kept.items():
                atomic_write_bytes(folder / name, payload)
            if main and not resume and folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()  # failed before writing anything: leave no empty run folder behind
            raise
        if main:
            from graphrec.report import write_report

            write_report(folder)
    return result


_ONE_PROCESS_MODELS = ("path_lm", "sasrec")  # their trainers have no data-parallel mode


def check_data_parallel(config: RunConfig, world_size: int) -> None:
    """Raise :class:`ConfigError` unless ``world_size`` data-parallel processes can train the config's model."""
    if world_size > 1 and config.model.name in _ONE_PROCESS_MODELS:
        raise ConfigError(f"key 'model.name': '{config.model.name}' trains in one process, but this run has "
                          f"{world_size} data-parallel processes (torchrun, --nproc); run it without them")


def _claim_run_folder(config: RunConfig, run_dir: str | Path | None, resume: bool, overwrite: bool) -> Path:
    """:func:`_run_folder`, once it is checked that a data-parallel group can train the config's model."""
    check_data_parallel(config, distributed.world_size())
    return _run_folder(config, run_dir, resume, overwrite)


def _train_and_test(config: RunConfig, folder: Path, resume: bool) -> Result:
    # A resumed run trains on the split it started with, read back from the run folder. Rank 0 first:
    # it builds the graph cache that the other ranks of a data-parallel group then read.
    data = distributed.main_first(lambda: _prepare_from_folder(config, folder) if resume and (
        folder / "split.safetensors").is_file() else prepare(config))
    bundle = data.bundle
    if config.model.name == "path_lm":
        from graphrec.explain.runner import run_path_lm

        _write_run_files(folder, config, data, resume)
        return run_path_lm(config, folder, data, resume)
    if config.model.name == "sasrec":
        from graphrec.sequential import run_sasrec

        _write_run_files(folder, config, data, resume)
        return run_sasrec(config, folder, data, resume)
    model = build_model(config, bundle)
    distributed.from_main(lambda: _write_run_files(folder, config, data, resume))
    extra: dict[str, Any] = {}
    if config.model.name == "graph":  # a pre-trained start and what trains
        from graphrec.transfer import prepare_finetune

        extra["finetune"] = prepare_finetune(model, config, data, resume)
        if distributed.is_main():
            atomic_write_json(folder / "finetune.json", extra["finetune"])
    # Data-parallel: each rank ranks every world-th validation user; the per-user means are all-reduced.
    valid_users = distributed.shard(data.valid[0].unique()) if distributed.world_size() > 1 else None

    def validate(current: torch.nn.Module) -> dict[str, float]:
        metrics = evaluate_model(current, config, bundle.num_users, bundle.num_items, data.valid, [data.train],
                                 data.candidate_items, users=valid_users)
        if valid_users is None or not metrics:
            return metrics
        return distributed.all_reduce_mean(metrics, weight=metrics["num_users"], summed=("num_users",))

    trainer = Trainer(
        model, data.train, epochs=config.train.epochs, batch_size=config.train.batch_size, lr=config.train.lr,
        weight_decay=config.train.weight_decay, loss=config.train.loss, num_negatives=config.train.num_negatives,
        device=str(distributed.local_device(config.train.device)), seed=config.seed,
        eval_fn=validate if len(data.split.valid) else None,
        monitor=config.train.monitor, eval_every=config.train.eval_every, patience=config.train.patience,
        run_dir=folder, resume=resume, progress=config.train.progress,
        batching=config.train.batching, fanouts=config.train.fanouts,
        sparse_embeddings=config.train.sparse_embeddings,
    )
    trained = trainer.fit()
    if distributed.world_size() > 1:  # every rank's weights digest, recorded in metrics.json
        extra["distributed"] = distributed.weights_in_sync(model)
        if not extra["distributed"]["in_sync"]:
            logger.warning("the data-parallel ranks ended with different weights: %s",
                           extra["distributed"]["weights_sha256"])
    if not distributed.is_main():  # rank 0 tests and writes the results
        return Result(run_dir=folder, test_metrics={}, valid_metrics=trained.best_metrics, history=trained.history)
    return finish_run(config, folder, model, data, trained, extra)


def finish_run(config: RunConfig, folder: Path, model: torch.nn.Module, data: Prepared, trained,
               extra: dict[str, Any] | None = None) -> Result:
    """Test the trained ``model``, write ``metrics.json`` and the training curve; the run's :class:`Result`."""
    bundle = data.bundle
    started = time.perf_counter()
    test_metrics, per_user = evaluate_model(model, config, bundle.num_users, bundle.num_items, data.test,
                                            [data.train, data.valid], data.candidate_items, per_user=True)
    eval_seconds = time.perf_counter() - started
    # test metrics per activity bucket (training interactions per user); "<10" is the cold-start report
    test_buckets = {} if per_user is None or not config.eval.buckets else bucket_metrics(
        per_user, None, user_activity(data.train, bundle.num_users), config.eval.buckets)
    epoch_seconds = [row["seconds"] for row in trained.history if "seconds" in row and row.get("loss") is not None]
    result = Result(
        run_dir=folder,
        test_metrics=test_metrics,
        valid_metrics=trained.best_metrics,
        history=trained.history,
        seconds_per_epoch=float(np.mean(epoch_seconds)) if epoch_seconds else float("nan"),
        eval_seconds=eval_seconds,
    )
    atomic_write_json(folder / "metrics.json", {
        "test": test_metrics,
        "test_buckets": test_buckets,
        "valid": trained.best_metrics,
        "best_epoch": trained.best_epoch,
        "epochs_run": trained.epochs_run,
        "stopped_early": trained.stopped_early,
        "seconds_per_epoch": result.seconds_per_epoch,
        "test_eval_seconds": eval_seconds,
        **(extra or {}),
    })
    if trained.history and getattr(model, "trainable", True):
        plot_history(trained.history, folder / "curve.png", config.train.monitor)
    return result


def load_run(run_dir: str | Path, device: str = "cpu", history: str = "all"
             ) -> tuple[RunConfig, Prepared, torch.nn.Module]:
    """Rebuild a finished run's config, data split and best model from its folder.

    For a ``path_lm`` run the model is a :class:`graphrec.explain.PathRecommender`; for a
    ``sasrec`` run a :class:`graphrec.sequential.SequenceScorer` reading each user's ``history``
    (``train``, ``train+valid`` or ``all`` of their interactions).
    """
    folder = Path(run_dir)
    config, data = load_run_data(folder)
    if config.model.name == "path_lm":
        from graphrec.explain.runner import load_path_run

        return config, data, load_path_run(folder, config, data, device)
    if config.model.name == "sasrec":
        from graphrec.sequential import load_sasrec

        return config, data, load_sasrec(folder, config, data, device, history)
    model = build_model(config, data.bundle)
    if getattr(model, "trainable", True):
        load_weights(folder / "best.safetensors", model)
    model.to(resolve_device(device))
    model.set_graph(data.train.to(resolve_device(device)))
    return config, data, model


def load_run_data(run_dir: str | Path) -> tuple[RunConfig, Prepared]:
    """A finished run's config and its data split, checked against the data as it is now."""
    folder = Path(run_dir)
    if not (folder / "config.yaml").is_file():
        raise ConfigError(f"{folder}: not a run folder (no config.yaml); pass the folder a `graphrec run` made")
    config = load_config(folder / "config.yaml")
    return config, _prepare_from_folder(config, folder)


def _prepare_from_folder(config: RunConfig, folder: Path) -> Prepared:
    """:func:`prepare` with the split saved in ``folder/split.safetensors``, checked against the data now."""
    rows = {name: tensor.numpy() for name, tensor in load_tensors(folder / "split.safetensors").items()}
    data = prepare(config, split_rows=rows)
    expected = int(rows["num_interactions"][0]) if "num_interactions" in rows else None
    if expected is not None and expected != len(data.bundle.interactions):
        raise CheckpointError(
            f"{folder / 'split.safetensors'}: the run was split over {expected} interactions but the graph of "
            f"'{config.graph.recipe}' now has {len(data.bundle.interactions)}; the data changed since the run"
        )
    return data


def recommend(run_dir: str | Path, user_ids: list[str], k: int = 10) -> list[dict[str, Any]]:
    """Top-``k`` unseen items for users given by their raw ids, with item names."""
    config, data, model = load_run(run_dir)
    if config.model.name == "path_lm":  # ranked by their best path; `graphrec explain` shows the paths
        from graphrec.explain.api import recommend_with_paths
        from graphrec.explain.render import PathRenderer

        lists = recommend_with_paths(model, user_ids, k, renderer=PathRenderer(model.graph, data.bundle.idmap),
                                     exclude=[data.valid, data.test])
        return [{"user": e["user"], "items": [{key: row[key] for key in ("rank", "item", "name", "score")}
                                              for row in e["items"]]} for e in lists]
    idmap = data.bundle.idmap
    if k < 1:
        raise ConfigError(f"-k must be at least 1, found {k}")
    k = min(k, data.bundle.num_items)
    users = torch.tensor([idmap.index_of("user", raw) for raw in user_ids], dtype=torch.long)
    # Every known interaction is masked, held-out ones included: a recommendation is something new.
    scores, items = topk_items(score_function(model), users, k, [data.train, data.valid, data.test],
                               data.bundle.num_users, data.bundle.num_items)
    return [
        {
            "user": raw,
            "items": [
                {"rank": rank + 1, "item": idmap.raw("item", int(item)), "name": idmap.name("item", int(item)),
                 "score": float(score)}
                for rank, (item, score) in enumerate(zip(items[row].tolist(), scores[row].tolist()))
                if score > float("-inf")
            ],
        }
        for row, raw in enumerate(user_ids)
    ]


# ---------------------------------------------------------------------- helpers
def _as_config(config: RunConfig | dict | str | Path) -> RunConfig:
    if isinstance(config, RunConfig):
        return config
    if isinstance(config, dict):
        return from_mapping(RunConfig, config, "config")
    return load_config(config)


def _resolved_paths(config: RunConfig) -> RunConfig:
    """A copy whose data root, cache and recipe file are absolute, so the run folder works from anywhere."""
    config = copy.deepcopy(config)
    config.graph.data_root = str(Path(config.graph.data_root).resolve())
    if config.graph.cache_dir is not None:
        config.graph.cache_dir = str(Path(config.graph.cache_dir).resolve())
    if Path(config.graph.recipe).is_file():
        config.graph.recipe = str(Path(config.graph.recipe).resolve())
    return config


def _run_folder(config: RunConfig, run_dir: str | Path | None, resume: bool, overwrite: bool,
                stem: str | None = None) -> Path:
    """The run folder: a new one, an existing one to resume, or (``overwrite``) an earlier run's, emptied.

    Unnamed (no ``run_dir``, no ``output.name``), every run gets a folder of its own,
    ``<stem>-<time>`` (``stem`` defaults to ``<recipe>-<model>``), with ``-2``, ``-3``, ... when two
    runs start in the same second; a named folder that holds anything is only reused with
    ``resume`` or ``overwrite``.
    """
    if run_dir is None and config.output.name is None:
        if resume:
            raise ConfigError("resume: name the run folder to continue (--run-dir or output.name); "
                              "without a name every run starts a new folder")
        stem = stem or f"{Path(config.graph.recipe).stem}-{config.model.name}"
        return _new_folder(Path(config.output.dir), f"{stem}-{datetime.now():%Y%m%d-%H%M%S}")
    folder = Path(run_dir) if run_dir is not None else Path(config.output.dir) / config.output.name
    if resume:
        if find_checkpoint(folder / "checkpoint") is None:
            raise ConfigError(f"{folder}: nothing to resume (no checkpoint/ folder)")
        return folder
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"{folder}: run folder path is a file; pick another output.name or --run-dir")
    if folder.is_dir() and any(folder.iterdir()):
        if not overwrite:
            raise ConfigError(f"{folder}: run folder exists; pass --overwrite to replace it or --resume to continue it")
        if not _is_run_folder(folder):
            raise ConfigError(f"{folder}: --overwrite only replaces run folders, and this one holds no config.yaml "
                              "or checkpoint/ of a graphrec run; pick another output.name or --run-dir")
        # Renamed away first, so the name never holds half of the old run.
        retired = folder.with_name(f".{folder.name}.{os.getpid()}.overwritten")
        os.replace(folder, retired)
        shutil.rmtree(retired)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _new_folder(parent: Path, stem: str) -> Path:
    """Create and return ``parent/stem`` or the first free ``parent/stem-N``; ``mkdir`` claims it atomically."""
    parent.mkdir(parents=True, exist_ok=True)
    for attempt in itertools.count(1):
        folder = parent / (stem if attempt == 1 else f"{stem}-{attempt}")
        try:
            folder.mkdir()
        except FileExistsError:
            continue
        return folder
    raise AssertionError("unreachable")


_RUN_FILES = ("config.yaml", "environment.json", "split.safetensors", "checkpoint", "checkpoint.old",
              "checkpoint.tmp")


def _is_run_folder(folder: Path) -> bool:
    """Whether ``folder`` was made by a run: it holds a run file, or only the temporary files of a killed one."""
    names = [entry.name for entry in folder.iterdir()]
    return any(name in _RUN_FILES for name in names) or all(
        name.startswith(".") and name.endswith(".tmp") for name in names)


def _write_run_files(folder: Path, config: RunConfig, data: Prepared, resume: bool = False) -> None:
    """``config.yaml``, ``split.safetensors`` and ``environment.json``; a resumed run keeps the split and
    the first environment (its own is appended under ``resumed``), and must find the same data files."""
    split = data.split
    atomic_write_text(folder / "config.yaml", dump_config(config))
    current = environment(config)
    if resume and (folder / "environment.json").is_file():
        first = read_json(folder / "environment.json", "run environment")
        changed = sorted(path for path in {*first.get("data_files", {}), *current["data_files"]}
                         if first.get("data_files", {}).get(path) != current["data_files"].get(path))
        if changed:
            raise CheckpointError(
                f"{folder / 'environment.json'}: the data files changed since the run started ({', '.join(changed)}); "
                "a resumed run would train on other data; start a new run")
        first.setdefault("resumed", []).append({k: v for k, v in current.items() if k != "data_files"})
        current = first
    if not (resume and (folder / "split.safetensors").is_file()):
        atomic_save_tensors(folder / "split.safetensors", {
            "train": torch.from_numpy(np.asarray(split.train, dtype=np.int64)),
            "valid": torch.from_numpy(np.asarray(split.valid, dtype=np.int64)),
            "test": torch.from_numpy(np.asarray(split.test, dtype=np.int64)),
            "num_interactions": torch.tensor([len(data.bundle.interactions)], dtype=torch.int64),
        })
    atomic_write_json(folder / "environment.json", current)


def environment(config: RunConfig) -> dict[str, Any]:
    """What is needed to reproduce a run: the resolved config, versions, git commit, device, data checksums."""
    import importlib.metadata as metadata

    versions = {}
    for package in ("graphrec", "torch", "torch-geometric", "numpy", "pandas", "scipy", "safetensors", "dgl"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    commit, dirty = _git_state()
    return {
        "started": datetime.now().astimezone().isoformat(timespec="seconds"),
        "config": to_mapping(config),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": versions,
        "git_commit": commit,
        "git_dirty": dirty,
        "device": str(distributed.local_device(config.train.device)),
        "threads": torch.get_num_threads(),
        "world_size": distributed.world_size(),
        "data_files": _data_checksums(config),
    }


def _git_state() -> tuple[str | None, bool | None]:
    """HEAD of the git checkout graphrec runs from, and whether tracked files differ from it;
    ``(None, None)`` for an installed copy (even one inside another repository) or without git."""
    here = Path(__file__).resolve()

    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", *args], capture_output=True, text=True, timeout=5, cwd=here.parent)

    try:
        if git("ls-files", "--error-unmatch", here.name).returncode != 0:
            return None, None
        commit = git("rev-parse", "HEAD").stdout.strip() or None
        dirty = bool(git("status", "--porcelain", "--untracked-files=no").stdout.strip())
    except (OSError, subprocess.SubprocessError):
        return None, None
    return commit, dirty


def _data_checksums(config: RunConfig) -> dict[str, str]:
    from graphrec.graph.cache import recipe_sources
    from graphrec.graph.recipe import load_recipe, resolve_source

    recipe, _ = load_recipe(config.graph.recipe)
    sums = {}
    for key, source in recipe_sources(recipe):
        for path in resolve_source(source, Path(config.graph.data_root), key).path:
            if path.is_file():
                digest = hashlib.sha256()
                with path.open("rb") as handle:
                    for block in iter(lambda: handle.read(1 << 20), b""):
                        digest.update(block)
                sums[str(path)] = digest.hexdigest()
    return sums
