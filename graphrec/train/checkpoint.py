"""Resumable training checkpoints: safetensors and JSON, written atomically, never pickle.

A checkpoint is a folder::

    <name>/model.safetensors      model.state_dict() (parameters and persistent buffers)
    <name>/optimizer.safetensors  optimizer state tensors, keys like ``state.0.exp_avg``
    <name>/optimizer.json         param_groups and non-tensor optimizer state
    <name>/rng.safetensors        tensors of the training state (torch RNG, generator states, extras)
    <name>/state.json             epoch, step, history, best metric, ... (tensors referenced by key)

Each file is written atomically into ``<name>.tmp/``; the finished folder then replaces
``<name>/`` by two renames (old -> ``<name>.old``, tmp -> ``<name>``), so a kill at any point
leaves a complete checkpoint behind (``load_checkpoint`` falls back to ``<name>.old`` when the
kill fell between the renames).
"""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from graphrec.errors import CheckpointError
from graphrec.utils import atomic_save_tensors, atomic_write_json, fsync_dir, load_tensors, read_json

FORMAT = "graphrec-checkpoint"
VERSION = 1


def split_tensors(obj: Any, prefix: str = "") -> tuple[Any, dict[str, torch.Tensor]]:
    """Split a nested state into a JSON-safe part and a flat ``key -> tensor`` mapping.

    Tensors become ``{"__tensor__": key}`` with ``key`` the dotted path (``state.0.exp_avg``);
    NumPy arrays, tuples and dicts with non-string keys are tagged so that
    :func:`join_tensors` rebuilds the exact same object.
    """
    tensors: dict[str, torch.Tensor] = {}

    def encode(value: Any, path: str) -> Any:
        if isinstance(value, torch.Tensor):
            tensors[path] = value.detach().cpu().clone()
            return {"__tensor__": path}
        if isinstance(value, np.ndarray):
            return {"__ndarray__": value.tolist(), "dtype": str(value.dtype)}
        if isinstance(value, (np.integer, np.floating)):
            return value.item()
        if isinstance(value, tuple):
            return {"__tuple__": [encode(v, f"{path}.{i}".lstrip(".")) for i, v in enumerate(value)]}
        if isinstance(value, list):
            return [encode(v, f"{path}.{i}".lstrip(".")) for i, v in enumerate(value)]
        if isinstance(value, Mapping):
            if all(isinstance(k, str) for k in value):
                return {k: encode(v, f"{path}.{k}".lstrip(".")) for k, v in value.items()}
            return {"__items__": [[k, encode(v, f"{path}.{k}".lstrip("."))] for k, v in value.items()]}
        return value

    return encode(obj, prefix), tensors


def join_tensors(obj: Any, tensors: Mapping[str, torch.Tensor], where: str = "state") -> Any:
    """Inverse of :func:`split_tensors`; ``where`` names the file in error messages."""
    if isinstance(obj, list):
        return [join_tensors(v, tensors, where) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if set(obj) == {"__tensor__"}:
        key = obj["__tensor__"]
        if key not in tensors:
            raise CheckpointError(f"{where}: refers to tensor '{key}', which the tensor file lacks")
        return tensors[key]
    if set(obj) == {"__ndarray__", "dtype"}:
        return np.asarray(obj["__ndarray__"], dtype=obj["dtype"])
    if set(obj) == {"__tuple__"}:
        return tuple(join_tensors(v, tensors, where) for v in obj["__tuple__"])
    if set(obj) == {"__items__"}:
        return {k: join_tensors(v, tensors, where) for k, v in obj["__items__"]}
    return {k: join_tensors(v, tensors, where) for k, v in obj.items()}


def capture_rng_state() -> dict[str, Any]:
    """The Python, NumPy and torch (CPU and CUDA) global RNG states."""
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(legacy=True),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: Mapping[str, Any]) -> None:
    """Set the global RNGs back to a state from :func:`capture_rng_state`."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: str | os.PathLike, model: torch.nn.Module,
                    optimizer: torch.optim.Optimizer | None, state: Mapping[str, Any],
                    tensors: Mapping[str, torch.Tensor] | None = None) -> None:
    """Write a checkpoint folder at ``path``, replacing any previous one only once complete.

    Args:
        path: The checkpoint folder (e.g. ``run/checkpoint``).
        model: Its ``state_dict()`` goes to ``model.safetensors``.
        optimizer: Its ``state_dict()`` goes to ``optimizer.safetensors`` + ``optimizer.json``.
        state: Training state; JSON values plus tensors, arrays and tuples at any depth.
        tensors: Extra named tensors, returned by :func:`load_checkpoint` as ``state["tensors"]``.
    """
    path = Path(path)
    tmp, old = _sibling(path, ".tmp"), _sibling(path, ".old")
    _recover(path)
    if tmp.exists():  # left behind by a save that was killed
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    atomic_save_tensors(tmp / "model.safetensors", _model_tensors(model), {"format": FORMAT})
    if optimizer is not None:
        groups, opt_tensors = split_tensors(optimizer.state_dict())
        atomic_save_tensors(tmp / "optimizer.safetensors", opt_tensors, {"format": FORMAT})
        atomic_write_json(tmp / "optimizer.json", groups)
    full_state = dict(state)
    if tensors:
        full_state["tensors"] = dict(tensors)
    encoded, state_tensors = split_tensors(full_state)
    atomic_save_tensors(tmp / "rng.safetensors", state_tensors, {"format": FORMAT})
    atomic_write_json(tmp / "state.json", {"format": FORMAT, "version": VERSION, "state": encoded})
    fsync_dir(tmp)
    if old.exists():
        shutil.rmtree(old)
    if path.exists():
        os.replace(path, old)
    os.replace(tmp, path)
    fsync_dir(path.parent)
    shutil.rmtree(old, ignore_errors=True)


def load_checkpoint(path: str | os.PathLike, model: torch.nn.Module,
                    optimizer: torch.optim.Optimizer | None = None) -> dict[str, Any]:
    """Load a checkpoint folder into ``model`` (and ``optimizer``) and return the training state.

    Every file is read and checked before the model or optimizer is touched.

    Raises:
        CheckpointError: The folder or a file is missing, a file is corrupt, or a tensor's
            name or shape does not fit ``model``.
    """
    path = find_checkpoint(path) or Path(path)
    if not path.is_dir():
        raise CheckpointError(f"{path}: checkpoint folder not found")
    header = read_json(path / "state.json", "checkpoint state file")
    if not isinstance(header, dict) or header.get("format") != FORMAT or "state" not in header:
        raise CheckpointError(f"{path / 'state.json'}: not a graphrec checkpoint state file")
    try:
        state = join_tensors(header["state"], load_tensors(path / "rng.safetensors"), str(path / "state.json"))
    except (TypeError, ValueError, AttributeError) as exc:
        raise CheckpointError(f"{path / 'state.json'}: malformed training state ({exc}); "
                              "the file was edited or damaged") from None
    weights = load_tensors(path / "model.safetensors")
    check_fits(weights, model, path / "model.safetensors")
    if optimizer is not None:
        groups = read_json(path / "optimizer.json", "optimizer state file")
        opt_state = join_tensors(groups, load_tensors(path / "optimizer.safetensors"),
                                 str(path / "optimizer.json"))
    model.load_state_dict(weights, strict=True)
    if optimizer is not None:
        try:
            optimizer.load_state_dict(opt_state)
        except (ValueError, KeyError, TypeError) as exc:
            raise CheckpointError(f"{path / 'optimizer.json'}: does not fit this optimizer ({exc})") from None
    return state


def find_checkpoint(path: str | os.PathLike) -> Path | None:
    """The last complete checkpoint folder at ``path``: itself, or ``<name>.old`` when a save was
    killed between its two renames; None when there is none. ``<name>.tmp`` (a save killed while
    writing) is never used."""
    path = Path(path)
    if path.is_dir():
        return path
    old = _sibling(path, ".old")
    return old if old.is_dir() else None


def resume_checkpoint(run_dir: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None,
                      settings: Mapping[str, Any]) -> dict[str, Any]:
    """Load ``run_dir/checkpoint`` to resume a run whose trajectory-shaping ``settings`` must not change.

    Raises:
        CheckpointError: no checkpoint, a corrupt one, or one made with other ``settings``.
    """
    path = Path(run_dir) / "checkpoint"
    if find_checkpoint(path) is None:
        raise CheckpointError(f"{path}: resume=True but there is no checkpoint to resume from; "
                              f"run once without resume (or point run_dir at an earlier run)")
    state = load_checkpoint(path, model, optimizer)
    if not isinstance(state, dict) or not isinstance(state.get("config"), dict):
        raise CheckpointError(f"{path / 'state.json'}: holds no 'config' settings to check the resume against; "
                              "start a new run_dir")
    differing = [f"{k}={state['config'].get(k)!r} (now {v!r})" for k, v in settings.items()
                 if state["config"].get(k) != v]
    if differing:
        raise CheckpointError(f"{path}: was made with {', '.join(differing)}; resume with the same "
                              f"settings or start a new run_dir")
    return state


def save_weights(path: str | os.PathLike, model: torch.nn.Module) -> None:
    """Write ``model.state_dict()`` to one safetensors file (e.g. ``best.safetensors``), atomically."""
    atomic_save_tensors(path, _model_tensors(model), {"format": "graphrec-weights"})


def load_weights(path: str | os.PathLike, model: torch.nn.Module) -> None:
    """Load a file from :func:`save_weights` into ``model``, checking every name and shape first."""
    weights = load_tensors(path)
    check_fits(weights, model, Path(path))
    model.load_state_dict(weights, strict=True)


def check_fits(tensors: Mapping[str, torch.Tensor], model: torch.nn.Module, where: Path) -> None:
    """Raise :class:`CheckpointError` unless ``tensors`` has exactly the model's names and shapes."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in tensors]
    unexpected = [k for k in tensors if k not in expected]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {_names(missing)}")
        if unexpected:
            parts.append(f"unexpected {_names(unexpected)}")
        raise CheckpointError(f"{where.name}: {'; '.join(parts)} for {type(model).__name__} "
                              f"({where}); was this checkpoint made for another model?")
    for name, tensor in tensors.items():
        want = tuple(expected[name].shape)
        if tuple(tensor.shape) != want:
            raise CheckpointError(
                f"{where.name}: tensor '{name}' has shape {tuple(tensor.shape)} but the model expects {want}; "
                f"was this checkpoint made for another dataset or embedding_dim? ({where})")


def _model_tensors(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The state dict with shared storages cloned apart (safetensors refuses aliased tensors)."""
    seen: set[int] = set()
    out = {}
    for name, tensor in model.state_dict().items():
        storage = tensor.untyped_storage().data_ptr()
        out[name] = tensor.detach().clone() if storage in seen else tensor.detach()
        seen.add(storage)
    return out


def _names(names: list[str], limit: int = 5) -> str:
    shown = ", ".join(f"'{n}'" for n in names[:limit])
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return f"tensor{'s' if len(names) > 1 else ''} {shown}{more}"


def _sibling(path: Path, suffix: str) -> Path:
    return path.with_name(path.name + suffix)


def _recover(path: Path) -> None:
    """Put ``<name>.old`` back when a previous save was killed between its two renames."""
    old = _sibling(path, ".old")
    if not path.exists() and old.is_dir():
        os.replace(old, path)

