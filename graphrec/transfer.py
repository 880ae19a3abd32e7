"""Graph models (``model.name: graph``): building them, pre-training them, and preparing fine-tuning.

``pretrain(config)`` trains the inputs and encoder of a :class:`graphrec.nn.GraphRecommender` on
the pretext recipe ``pretrain.pretext`` over the training graph of the config's split and writes a
run folder with ``encoder.safetensors``. ``graphrec.pipeline.run`` with ``finetune.checkpoint``
set starts from it; ``finetune.strategy`` says what trains (see :mod:`graphrec.finetune`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from graphrec.config import FinetuneConfig, RunConfig
from graphrec.errors import ConfigError
from graphrec.finetune import find_pretrained, freeze, insert_modules, load_pretrained, save_pretrained
from graphrec.finetune.pretrained import check_no_leak
from graphrec.graph import GraphBundle
from graphrec.nn import (HGT, RGCN, DiffNet, DotProductHead, GraphRecommender, HeteroSAGE, KGATEncoder,
                         LightGCNEncoder, LinearDotHead, MLPHead)
from graphrec.nn.encoder import EdgeType, HeteroEncoder
from graphrec.nn.recommender import INTERACTS, REV_INTERACTS
from graphrec.utils import atomic_write_json, load_tensors, suggest

ENCODERS = ("hgt", "rgcn", "sage", "lightgcn", "diffnet", "kgat")


@dataclass
class PretrainRun:
    """What :func:`pretrain` returns."""

    run_dir: Path
    history: list[dict[str, float]]
    seconds: float
    checkpoint: Path


# ---------------------------------------------------------------------------------------- building
def model_relations(config: RunConfig, bundle: GraphBundle) -> list[EdgeType]:
    """The side-graph edge types the encoder reads: ``model.relations``, or all of them."""
    side = [tuple(et) for et in bundle.graph.edge_types if tuple(et) not in (INTERACTS, REV_INTERACTS)]
    wanted = config.model.relations
    if wanted is None:
        return side
    known = sorted({relation for _, relation, _ in side})
    for relation in wanted:
        if relation not in known:
            raise ConfigError(f"key 'model.relations' names '{relation}'{suggest(relation, known)}, which graph "
                              f"'{bundle.name}' lacks; its relations: {known}")
    return [et for et in side if et[1] in wanted]


def build_encoder(config: RunConfig, metadata: tuple[list[str], list[EdgeType]]) -> HeteroEncoder:
    """The encoder ``model.encoder`` names, ``model.embedding_dim`` wide with ``model.num_layers`` layers."""
    model = config.model
    dim, layers = model.embedding_dim, model.num_layers
    name = model.encoder
    if name == "hgt":
        return HGT(metadata, channels=dim, num_layers=layers, heads=model.num_heads)
    if name == "rgcn":
        return RGCN(metadata, channels=dim, num_layers=layers)
    if name == "sage":
        return HeteroSAGE(metadata, channels=dim, num_layers=layers)
    if name == "lightgcn":
        return LightGCNEncoder(num_layers=layers, channels=dim)
    if name == "diffnet":
        social = next((et for et in metadata[1] if et[0] == et[2] == "user"), ("user", "follows", "user"))
        return DiffNet(channels=dim, num_layers=layers, social=social, interactions=INTERACTS)
    if name == "kgat":
        return KGATEncoder(metadata, channels=dim, num_layers=layers, relation_dim=model.relation_dim,
                           dropout=model.dropout)
    raise ConfigError(f"key 'model.encoder': unknown encoder '{name}'{suggest(name, ENCODERS)}; "
                      f"expected one of {', '.join(ENCODERS)}")


def build_graph_model(config: RunConfig, bundle: GraphBundle) -> GraphRecommender:
    """Inputs, encoder and head as the config says, with the modules ``finetune.strategy`` trains inserted."""
    from graphrec.pipeline import input_embedding

    relations = model_relations(config, bundle)
    used = {t for et in relations for t in (et[0], et[2])} - {"user", "item"}
    other_types = {t: bundle.idmap.num_nodes(t) for t in sorted(used)}
    embedding = input_embedding(config, bundle, other_types)
    metadata = (embedding.node_types, [*relations, INTERACTS, REV_INTERACTS])
    encoder = build_encoder(config, metadata)
    dim = config.model.embedding_dim
    head = {"dot": DotProductHead, "linear": lambda: LinearDotHead(dim), "mlp": lambda: MLPHead(dim)}[
        config.model.head]()
    model = GraphRecommender(embedding, encoder, {et: bundle.graph[et].edge_index for et in relations}, head)
    insert_modules(model, config.finetune.strategy, config.finetune.adapter_dim, config.finetune.num_prompts)
    return model


# ---------------------------------------------------------------------------------------- pre-training
def pretrain(config: RunConfig | dict | str | Path, *, resume: bool = False, overwrite: bool = False,
             run_dir: str | Path | None = None) -> PretrainRun:
    """Pre-train a graph model's inputs and encoder on ``pretrain.pretext``; write a run folder.

    The folder holds ``encoder.safetensors`` (what fine-tuning loads), ``pretrain.json``,
    ``pretrain_history.json``, ``pretrain_curve.png``, the resolved ``config.yaml`` and the split.
    Only training interactions of the split enter the graph, so fine-tuning with the same seed and
    split never evaluates on an interaction pre-training saw (checked when fine-tuning starts).
    """
    from graphrec.pipeline import (
        _as_config, _prepare_from_folder, _resolved_paths, _run_folder, _write_run_files, prepare,
    )
    from graphrec.pretext.recipe import build_multitask, load_pretext_recipe
    from graphrec.train.curves import plot_pretext_losses
    from graphrec.train.pretrain import PretrainTrainer
    from graphrec.utils import seed_everything

    from graphrec import distributed

    env = distributed.launch_env()
    if env is not None and env.world_size > 1:
        raise ConfigError("graphrec pretrain trains in one process; run it without torchrun")
    config = _resolved_paths(_as_config(config))
    if config.model.name != "graph":
        raise ConfigError(f"key 'model.name' is '{config.model.name}'; pre-training needs model.name: graph "
                          f"with model.encoder one of {', '.join(ENCODERS)}")
    config.finetune = FinetuneConfig()  # the pre-trained model has no fine-tuning modules (a copy: not the caller's)
    seed_everything(config.seed)
    folder = _run_folder(config, run_dir, resume, overwrite,
                         stem=f"{Path(config.graph.recipe).stem}-pretrain-{config.model.encoder}")
    # a resumed pre-training reads back the split it started with
    data = _prepare_from_folder(config, folder) if resume and (folder / "split.safetensors").is_file() \
        else prepare(config)
    recipe = load_pretext_recipe(config.pretrain.pretext)
    model = build_graph_model(config, data.bundle)
    model.set_graph(data.train)
    graph = data.bundle.message_passing_graph(data.split.train)
    keep = set(model.metadata[1])
    for edge_type in list(graph.edge_types):
        if tuple(edge_type) not in keep:
            del graph[edge_type]
    task = build_multitask(recipe, graph, config.model.embedding_dim)
    _write_run_files(folder, config, data, resume)
    trainer = PretrainTrainer(
        model, task, model.edge_index_dict, model.embedding.num_nodes_dict,
        steps=config.pretrain.steps or recipe.steps, lr=config.pretrain.lr or recipe.lr,
        weight_decay=recipe.weight_decay, device=config.train.device, seed=config.seed, run_dir=folder,
        resume=resume, checkpoint_every=config.pretrain.checkpoint_every, log_every=recipe.log_every,
        progress=config.train.progress, **pretrain_batching(config))
    result = trainer.fit()
    checkpoint = folder / "encoder.safetensors"
    save_pretrained(checkpoint, model)
    atomic_write_json(folder / "pretrain.json", {
        "recipe": recipe.name, "tasks": sorted(task.tasks) if hasattr(task, "tasks") else [recipe.name],
        "steps": result.steps_run, "seconds": result.seconds,
        "final": result.history[-1] if result.history else {},
        "parameters": sum(p.numel() for p in model.parameters()),
        "batching": {"batching": "full", **pretrain_batching(config)},
        "train_interactions": int(len(data.split.train)),
    })
    if result.history:
        plot_pretext_losses(result.history, folder / "pretrain_curve.png")
    return PretrainRun(folder, result.history, result.seconds, checkpoint)


def pretrain_batching(config: RunConfig) -> dict[str, Any]:
    """The :class:`graphrec.train.pretrain.PretrainTrainer` batching arguments of ``pretrain.batching``.

    ``pretrain.fanouts: null`` samples 10 neighbours per hop for each of ``model.num_layers`` layers;
    LightGCN and DiffNet read interactions as undirected, so they get each sampled edge both ways.
    """
    pretrain = config.pretrain
    if pretrain.batching == "full":
        return {}
    layers = config.model.num_layers
    fanouts = [10] * layers if pretrain.fanouts is None else list(pretrain.fanouts)
    if len(fanouts) != layers:
        raise ConfigError(f"key 'pretrain.fanouts' lists {len(fanouts)} hop(s), {fanouts}, but the encoder has "
                          f"model.num_layers = {layers}; give one fan-out per layer, so every seed gets its "
                          "whole receptive field")
    return {"batching": "neighbor", "fanouts": fanouts, "batch_nodes": pretrain.batch_nodes,
            "merge_reverse": config.model.encoder in ("lightgcn", "diffnet")}


# ---------------------------------------------------------------------------------------- fine-tuning
def prepare_finetune(model: GraphRecommender, config: RunConfig, data: Any, resume: bool) -> dict[str, Any]:
    """Load the pre-trained weights (unless resuming, when the checkpoint has them) and freeze what the
    strategy keeps fixed; what trains, for ``metrics.json``."""
    finetune = config.finetune
    loaded: list[str] = []
    if finetune.checkpoint is not None and not resume:
        file = find_pretrained(finetune.checkpoint)
        split_file = file.parent / "split.safetensors"
        if split_file.is_file():
            seen = load_tensors(split_file)["train"].numpy()
            check_no_leak(seen, np.concatenate([data.split.valid, data.split.test]), file)
        loaded = load_pretrained(model, file)
    report = freeze(model, finetune.strategy, finetune.frozen)
    return {**report.as_dict(), "checkpoint": finetune.checkpoint, "loaded_tensors": len(loaded) or None}
