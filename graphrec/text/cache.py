"""Encoded text tables on disk, keyed by everything that decides them.

The key covers the weights (the encoder's identity), the pooling, ``max_length``, normalisation
and the texts in order, so encoding a catalogue twice costs one read, and any change encodes again.
"""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path
from typing import Sequence

import torch
from torch import Tensor

from graphrec.errors import CheckpointError
from graphrec.utils import atomic_save_tensors, load_tensors

CACHE_FORMAT = "graphrec-text-features"


class TextFeatureCache:
    """Encoded text tables on disk, one ``<directory>/<key>.safetensors`` file per table.

    A file that cannot be read back (truncated by a kill, of the wrong shape, or holding NaN) is
    reported with a warning, deleted and treated as missing, so the caller simply encodes again.
    """

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    @staticmethod
    def key(identity: str, pooling: str, max_length: int, normalize: bool, texts: Sequence[str]) -> str:
        """A sha256 over everything that decides the encoded table.

        Each text is hashed with its byte length in front, so ``["ab", "c"]`` and ``["a", "bc"]``
        (same characters, other split) get different keys; order matters too.
        """
        digest = hashlib.sha256()
        digest.update(f"{CACHE_FORMAT}|{identity}|{pooling}|{max_length}|{bool(normalize)}|{len(texts)}".encode())
        for text in texts:
            payload = text.encode("utf-8")
            digest.update(f"|{len(payload)}:".encode())
            digest.update(payload)
        return digest.hexdigest()

    def path(self, key: str) -> Path:
        return self.directory / f"{key}.safetensors"

    def load(self, key: str, expected_shape: tuple[int, int] | None = None) -> Tensor | None:
        """The table stored under ``key``, or ``None`` when there is none or it is corrupt.

        Args:
            key: From :meth:`key`.
            expected_shape: ``(num_texts, dim)``; a stored table of another shape counts as corrupt.
        """
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            tensors = load_tensors(path)
        except CheckpointError as exc:
            return self._discard(path, str(exc))
        features = tensors.get("features")
        if features is None or features.dim() != 2:
            return self._discard(path, f"{path}: holds no 2-D 'features' tensor")
        if expected_shape is not None and tuple(features.shape) != tuple(expected_shape):
            return self._discard(path, f"{path}: holds features of shape {tuple(features.shape)}, "
                                       f"expected {tuple(expected_shape)}")
        features = features.float()
        if not torch.isfinite(features).all():  # an encoder never writes NaN or inf: the file was damaged
            return self._discard(path, f"{path}: holds NaN or infinite values, expected finite features")
        return features

    def store(self, key: str, features: Tensor) -> None:
        """Write ``features`` ``[N, dim]`` under ``key`` atomically; a failed write only warns."""
        metadata = {"format": CACHE_FORMAT, "num_texts": str(features.size(0))}
        try:
            atomic_save_tensors(self.path(key), {"features": features}, metadata)
        except OSError as exc:  # a read-only or full cache must not stop the run
            warnings.warn(f"could not cache text features in {self.path(key)} ({exc})", stacklevel=3)

    @staticmethod
    def _discard(path: Path, reason: str) -> None:
        warnings.warn(f"text feature cache file {path} is unusable and will be rebuilt: {reason}", stacklevel=4)
        path.unlink(missing_ok=True)
        return None
