"""Pre-trained encoder checkpoints: what ``graphrec pretrain`` writes and fine-tuning reads.

A pre-training run folder holds ``encoder.safetensors`` (the ``embedding.*`` and ``encoder.*``
weights of a :class:`graphrec.nn.GraphRecommender`; pretext decoders are dropped) and
``pretrain.json`` (the recipe, steps, losses and the training rows it saw).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from graphrec.errors import CheckpointError
from graphrec.utils import atomic_save_tensors, load_tensors

ENCODER_FILE = "encoder.safetensors"
PRETRAINED_PARTS = ("embedding.", "encoder.")


def pretrained_tensors(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The weights of ``model`` that pre-training transfers: inputs and encoder (adapters excluded)."""
    # cloned: safetensors refuses tensors that share storage
    return {name: tensor.detach().clone() for name, tensor in model.state_dict().items()
            if name.startswith(PRETRAINED_PARTS) and not name.startswith("encoder.adapters.")}


def save_pretrained(path: str | Path, model: torch.nn.Module) -> None:
    atomic_save_tensors(path, pretrained_tensors(model), {"format": "graphrec-pretrained"})


def find_pretrained(path: str | Path) -> Path:
    """``encoder.safetensors`` given itself or the pre-training run folder that holds it."""
    path = Path(path)
    candidate = path / ENCODER_FILE if path.is_dir() else path
    if not candidate.is_file():
        where = f"{path} holds no {ENCODER_FILE}" if path.is_dir() else f"{path} does not exist"
        raise CheckpointError(f"pre-trained checkpoint: {where}; pass a folder `graphrec pretrain` wrote "
                              f"or its {ENCODER_FILE}")
    return candidate


def load_pretrained(model: torch.nn.Module, path: str | Path) -> list[str]:
    """Copies pre-trained weights into ``model``; every name and shape is checked before any is copied.

    Returns the names loaded. The model may have parts the checkpoint lacks (a head, adapters,
    prompts): those keep their initial values.

    Raises:
        CheckpointError: the file is missing or corrupt, or a tensor has no place in ``model`` or
            the wrong shape (another encoder, dataset or embedding size).
    """
    file = find_pretrained(path)
    tensors = load_tensors(file)
    expected = pretrained_tensors(model)
    unexpected = sorted(set(tensors) - set(expected))
    missing = sorted(set(expected) - set(tensors))
    if unexpected or missing:
        detail = "; ".join(part for part in (
            f"unexpected {', '.join(unexpected[:4])}{' ...' if len(unexpected) > 4 else ''}" if unexpected else "",
            f"missing {', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''}" if missing else "") if part)
        raise CheckpointError(f"{file}: does not fit this model ({detail}); was it pre-trained with another "
                              f"model.encoder, graph or model.features?")
    for name, tensor in tensors.items():
        if tuple(tensor.shape) != tuple(expected[name].shape):
            raise CheckpointError(f"{file}: tensor '{name}' has shape {tuple(tensor.shape)} but the model expects "
                                  f"{tuple(expected[name].shape)}; was it pre-trained with another embedding_dim "
                                  "or dataset?")
    state = model.state_dict()
    with torch.no_grad():
        for name, tensor in tensors.items():
            state[name].copy_(tensor)
    return sorted(tensors)


def check_no_leak(pretrain_rows: np.ndarray, heldout_rows: np.ndarray, where: Path) -> None:
    """Raises :class:`CheckpointError` when pre-training saw interactions that fine-tuning holds out."""
    overlap = np.intersect1d(np.asarray(pretrain_rows), np.asarray(heldout_rows))
    if overlap.size:
        raise CheckpointError(
            f"{where}: pre-training trained on {overlap.size} interactions that this run holds out for "
            "validation or test; pre-train with the same seed and split (or the source part of a domain split)")
