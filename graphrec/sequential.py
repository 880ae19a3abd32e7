"""``graphrec run`` for ``model.name: sasrec``: next-item training on each user's item sequence.

A user's sequence is their interactions of a split ordered by time (or by table order without
timestamps). SASRec learns from the training sequences; validation scores each user from their
training items, the test from their training and validation items, and recommendations from all
of them, so every prediction sees exactly the history before what it predicts under
``split.method: leave_one_out``.

``model.item_init: text`` starts the item embeddings from the PLM vectors of the item texts
(projected to the embedding size): the graph's ``x_text`` from the recipe's ``text_features``,
or those of ``model.text_model``, e.g. a PLM that ``graphrec text tune`` fine-tuned on the
training sequences (Qu et al., "The Elephant in the Room", RecSys 2024).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from graphrec.config import RunConfig
from graphrec.errors import ConfigError
from graphrec.graph import GraphBundle
from graphrec.nn.sasrec import SASRec, pad_flat_sequences, sequences_from_interactions
from graphrec.train.sequence import SequenceTrainer
from graphrec.utils import resolve_device


class SequenceScorer(torch.nn.Module):
    """A SASRec with one input sequence per user, scoring users as the graph models' ``score_fn`` does."""

    trainable = True

    def __init__(self, model: SASRec, inputs: Tensor, batch_size: int = 1024) -> None:
        super().__init__()
        self.model, self.batch_size = model, batch_size
        self.register_buffer("inputs", inputs, persistent=False)  # [U, L]

    def score_users(self, users: Tensor) -> Tensor:
        """``[B, num_items]`` next-item scores of ``users``."""
        device = self.inputs.device
        was_training = self.model.training
        self.model.eval()
        with torch.no_grad():
            scores = torch.cat([self.model.score_all(self.inputs[batch.to(device)])
                                for batch in users.split(self.batch_size)])
        self.model.train(was_training)
        return scores


def user_sequences(bundle: GraphBundle, rows: np.ndarray, max_length: int) -> Tensor:
    """``[U, max_length]`` left-padded sequences of the interaction ``rows``, oldest first, per user."""
    flat, offsets = _grouped(bundle, rows)
    return pad_flat_sequences(flat, offsets, max_length, pad=bundle.num_items)


def user_item_lists(bundle: GraphBundle, rows: np.ndarray) -> list[list[int]]:
    """Every user's items among the interaction ``rows``, oldest first, whole (no padding, no cut)."""
    flat, offsets = _grouped(bundle, rows)
    return [items.tolist() for items in np.split(flat, offsets[1:-1])]


def _grouped(bundle: GraphBundle, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(flat items, offsets [U+1])`` of the ``rows`` per user, by time (by table order without timestamps)."""
    inter = bundle.interactions
    rows = np.sort(np.asarray(rows, dtype=np.int64))
    order = inter.timestamp[rows] if inter.timestamp is not None else rows
    return sequences_from_interactions(inter.user[rows], inter.item[rows], order, bundle.num_users)


def build_sasrec(config: RunConfig, bundle: GraphBundle, initialise: bool = True) -> SASRec:
    """The SASRec the config describes, its item table initialised as ``model.item_init`` says.

    ``initialise=False`` skips the text initialisation (no PLM encoding) for a model whose trained
    weights are loaded next.
    """
    spec = config.model
    model = SASRec(bundle.num_items, embedding_dim=spec.embedding_dim, num_layers=spec.num_layers,
                   num_heads=spec.num_heads, max_length=spec.max_length, dropout=spec.dropout)
    if initialise and spec.item_init == "text":
        from graphrec.text.tune import item_init

        vectors, has_text = item_text_vectors(config, bundle)
        table = model.item_embedding.weight.detach()[: bundle.num_items].clone()
        table[has_text] = item_init(vectors[has_text], spec.embedding_dim, std=model.init_std)
        model.set_item_embeddings(table)
    return model


def item_text_vectors(config: RunConfig, bundle: GraphBundle) -> tuple[Tensor, Tensor]:
    """``(vectors [I, P], has_text [I])``: the graph's item text features, or ``model.text_model``'s."""
    graph = bundle.graph
    if "x_text" not in graph["item"]:
        raise ConfigError(f"key 'model.item_init' is 'text', but the graph '{bundle.name}' has no item text "
                          "features; give its recipe text_features: {node_types: [item]} and an items.text")
    has_text = graph["item"].has_text.bool()
    if config.model.text_model is None:
        return graph["item"].x_text, has_text
    from graphrec.graph.builder import encode_texts, text_encoder
    from graphrec.graph.cache import default_cache_dir
    from graphrec.graph.recipe import find_recipe, load_recipe

    recipe, _ = load_recipe(find_recipe(config.graph.recipe))
    encoder = text_encoder(recipe.text_features, model=config.model.text_model, progress=config.train.progress,
                           cache_dir=Path(config.graph.cache_dir or default_cache_dir()) / "text")
    vectors, _ = encode_texts(encoder, bundle.texts["item"])
    return vectors, has_text


def run_sasrec(config: RunConfig, folder: Path, data, resume: bool):
    """Train and test SASRec; returns a :class:`graphrec.pipeline.Result`."""
    from graphrec.pipeline import evaluate_model, finish_run

    bundle, split = data.bundle, data.split
    model = build_sasrec(config, bundle)
    device = resolve_device(config.train.device)
    length = config.model.max_length
    valid_scorer = SequenceScorer(model, user_sequences(bundle, split.train, length)).to(device)

    def validate(current: SASRec) -> dict[str, float]:
        return evaluate_model(valid_scorer, config, bundle.num_users, bundle.num_items, data.valid, [data.train],
                              data.candidate_items)

    trainer = SequenceTrainer(
        model, user_sequences(bundle, split.train, length + 1), epochs=config.train.epochs,
        batch_size=config.train.batch_size, lr=config.train.lr, weight_decay=config.train.weight_decay,
        device=config.train.device, seed=config.seed, eval_fn=validate if len(split.valid) else None,
        monitor=config.train.monitor, eval_every=config.train.eval_every, patience=config.train.patience,
        run_dir=folder, resume=resume, progress=config.train.progress,
    )
    trained = trainer.fit()
    test_scorer = SequenceScorer(model, user_sequences(bundle, np.concatenate([split.train, split.valid]), length))
    return finish_run(config, folder, test_scorer.to(device), data, trained)


HISTORIES = ("train", "train+valid", "all")


def load_sasrec(folder: Path, config: RunConfig, data, device: str, history: str = "all") -> SequenceScorer:
    """A finished run's SASRec reading each user's ``history``: ``train`` to score the validation items,
    ``train+valid`` for the test items, ``all`` for recommendations."""
    from graphrec.train import load_weights

    if history not in HISTORIES:
        raise ConfigError(f"history '{history}' is not one of {HISTORIES}")
    model = build_sasrec(config, data.bundle, initialise=False)
    load_weights(folder / "best.safetensors", model)
    split = data.split
    rows = {"train": split.train, "train+valid": np.concatenate([split.train, split.valid]),
            "all": np.arange(len(data.bundle.interactions))}[history]
    return SequenceScorer(model, user_sequences(data.bundle, rows, config.model.max_length)).to(resolve_device(device))
