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

    The bytes go to a temporary file in the same folder, are flushed and fsynced, then
    renamed over ``path`` (an atomic operation on POSIX file systems); the folder is fsynced
    too, so the rename itself survives a power cut. A kill leaves at most a hidden
    ``.<name>.*.tmp`` file next to ``path``, which no reader looks at.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            if hasattr(os, "fchmod"):  # mkstemp makes the file 0600; give it the mode open() would
                os.fchmod(handle.fileno(), _FILE_MODE)
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def fsync_dir(path: str | os.PathLike) -> None:
    """Flush a folder's entries (a rename into it) to disk; a no-op where folders cannot be opened."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # e.g. Windows; the rename is still atomic
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def fsync_tree(folder: str | os.PathLike) -> None:
    """fsync every file and folder under ``folder`` (written by a library, e.g. ``save_pretrained``),
    so that renaming the folder into place afterwards publishes complete files only."""
    folder = Path(folder)
    for path in sorted(folder.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if path.is_file() and not path.is_symlink():
            with path.open("rb") as handle:
                os.fsync(handle.fileno())
        elif path.is_dir():
            fsync_dir(path)
    fsync_dir(folder)


def _umask() -> int:
    mask = os.umask(0o022)  # the only way to read the umask is to set it; set it straight back
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()


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
    """Load a safetensors file; a missing, truncated, pickled or foreign file raises :class:`CheckpointError`.

    Nothing is ever unpickled: a ``torch.save`` file is recognised by its first bytes and refused,
    and the header length is checked against the file size before the file is read.
    """
    from safetensors.torch import load

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: file not found (expected a safetensors file)")
    with path.open("rb") as handle:
        head = handle.read(8)
        size = os.fstat(handle.fileno()).st_size
        if len(head) < 8:
            raise CheckpointError(f"{path}: not a readable safetensors file ({size} bytes, shorter than the 8-byte "
                                  "header length); the file may be truncated or corrupt")
        header_length = int.from_bytes(head, "little")
        if header_length > min(size - 8, _MAX_HEADER_BYTES):
            if head.startswith(_PICKLE_MAGIC):
                raise CheckpointError(
                    f"{path}: not a readable safetensors file but a pickle (torch.save) file, which graphrec "
                    "refuses to load because unpickling can run arbitrary code; save the tensors with "
                    "safetensors.torch.save_file")
            raise CheckpointError(
                f"{path}: not a readable safetensors file (its header claims {header_length:,} bytes, but the file "
                f"has {size:,} bytes and a header may have at most {_MAX_HEADER_BYTES:,}); the file may be "
                "truncated or corrupt, or not a safetensors file at all")
        payload = head + handle.read()
    try:
        return load(payload)
    except Exception as exc:  # safetensors raises its own SafetensorError or OSError
        raise CheckpointError(
            f"{path}: not a readable safetensors file ({exc}); the file may be truncated or corrupt"
        ) from None


# torch.save writes a zip archive (PK\x03\x04); older files and binary pickles start with the
# PROTO opcode 0x80 and a protocol number. Read as a header length, either is absurdly large,
# which is when they are looked for (0x80 alone can start a valid safetensors header length).
_PICKLE_MAGIC = (b"PK\x03\x04", b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05")
_MAX_HEADER_BYTES = 100_000_000  # the limit safetensors itself enforces


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
