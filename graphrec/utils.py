"""Small helpers shared by every stage: atomic writes, seeding, name suggestions."""

from __future__ import annotations

import difflib
import json
import os
import random
import tempfile
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import torch

from graphrec.errors import CheckpointError


def atomic_write_bytes(path: str | os.PathLike, payload: bytes) -> None:
    """Write ``payload`` to ``path`` so that a reader sees the old file or the new one, never half.

    The bytes go to a temporary file in the same folder, are flushed and fsynced,
    then renamed over ``path`` (an atomic operation on POSIX file systems).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def atomic_save_tensors(path: str | os.PathLike, tensors: Mapping[str, torch.Tensor],
                        metadata: Mapping[str, str] | None = None) -> None:
    """Save a flat ``name -> tensor`` mapping as a safetensors file, atomically."""
    from safetensors.torch import save

    contiguous = {name: tensor.detach().cpu().contiguous() for name, tensor in tensors.items()}
    atomic_write_bytes(path, save(contiguous, metadata=dict(metadata) if metadata else None))


def load_tensors(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Load a safetensors file; a missing, truncated or foreign file raises :class:`CheckpointError`."""
    from safetensors.torch import load

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: file not found (expected a safetensors file)")
    try:
        return load(path.read_bytes())
    except Exception as exc:  # safetensors raises its own SafetensorError or OSError
        raise CheckpointError(
            f"{path}: not a readable safetensors file ({exc}); the file may be truncated or corrupt"
        ) from None


def read_json(path: str | os.PathLike, what: str = "JSON file") -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{path}: {what} not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path}: {what} is corrupt ({exc})") from None


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch so that the same seed gives the same run on CPU."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def suggest(name: str, candidates: Iterable[str]) -> str:
    """Return ``" (did you mean 'x'?)"`` for the closest candidate, or ``""`` when none is close."""
    matches = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean '{matches[0]}'?)" if matches else ""


def resolve_device(device: str) -> torch.device:
    """``auto`` picks CUDA when there is one, else CPU; ``cpu`` and ``cuda[:N]`` are taken as given."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        from graphrec.errors import ConfigError

        raise ConfigError(f"device '{device}' was asked for but torch sees no CUDA device; use 'cpu' or 'auto'")
    return torch.device(device)
