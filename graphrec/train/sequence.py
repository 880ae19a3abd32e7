"""Training a sequential recommender (:class:`~graphrec.nn.sasrec.SASRec`) on per-user item sequences.

Every user contributes one left-padded training sequence; each step feeds ``seq[:, :-1]`` and
minimises the model's next-item loss against ``seq[:, 1:]``, so every position of every sequence
is a training example (Kang & McAuley, ICDM 2018). Early stopping, checkpoints and the result
follow :class:`graphrec.train.Trainer`: with ``run_dir`` every epoch ends in a checkpoint from
which ``resume=True`` continues bit for bit.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor
from tqdm.auto import tqdm

from graphrec.errors import ConfigError
from graphrec.nn.sasrec import SASRec, check_sequences
from graphrec.train.checkpoint import capture_rng_state, restore_rng_state, resume_checkpoint, save_checkpoint
from graphrec.train.trainer import BestWeights, EarlyStopping, TrainResult
from graphrec.utils import atomic_write_json, resolve_device, seed_everything

# Settings that shape the trajectory: a resumed run must use the ones it was started with.
# The shape of the training sequences is checked as well (see ``_config``).
_RESUME_KEYS = ("batch_size", "lr", "weight_decay", "seed", "monitor", "eval_every", "patience")


class SequenceTrainer(BestWeights):
    """Trains a :class:`~graphrec.nn.sasrec.SASRec` on one training sequence per user.

    Args:
        model: Has ``pad``, ``max_length`` and ``loss(seqs [B, L], targets [B, L]) -> Tensor``.
        sequences: ``[U, L+1]`` left-padded training sequences (e.g. from
            :func:`~graphrec.nn.sasrec.pad_flat_sequences` with ``max_length + 1``); rows with
            fewer than two items have nothing to predict from and are left out.
        epochs: Most epochs to train (a resumed run counts those already done).
        batch_size: Sequences per step.
        lr: Adam learning rate.
        weight_decay: Adam's L2 penalty on all trained parameters.
        device: ``"auto"``, ``"cpu"`` or ``"cuda[:N]"``.
        seed: Seeds Python, NumPy, torch (dropout) and the shuffling generator.
        eval_fn: ``eval_fn(model) -> {metric: value}``, called in eval mode under ``torch.no_grad``.
        monitor: Metric of ``eval_fn`` to early-stop on (higher is better).
        eval_every: Evaluate every this many epochs; the best weights come from an evaluated epoch.
        patience: Evaluations without improvement before stopping; ``None`` never stops early.
        run_dir: Folder for ``checkpoint/``, ``best.safetensors`` and ``history.json``.
        resume: Continue from ``run_dir/checkpoint``.
        progress: Show a tqdm bar per epoch.
        amp: Use bfloat16 autocast for the forward pass on CUDA (CPU always runs fp32).
    """

    def __init__(self, model: SASRec, sequences: Tensor, *, epochs: int, batch_size: int = 128, lr: float = 1e-3,
                 weight_decay: float = 0.0, device: str = "auto", seed: int = 0,
                 eval_fn: Callable[[SASRec], dict[str, float]] | None = None, monitor: str = "ndcg@10",
                 eval_every: int = 1, patience: int | None = 10, run_dir: str | Path | None = None,
                 resume: bool = False, progress: bool = True, amp: bool = True) -> None:
        for name, value in (("epochs", epochs), ("batch_size", batch_size), ("eval_every", eval_every)):
            if isinstance(value, bool) or not isinstance(value, int) or value < (0 if name == "epochs" else 1):
                raise ConfigError(f"{name}: expected a positive integer, got {value!r}")
        if patience is not None and (not isinstance(patience, int) or patience < 1):
            raise ConfigError(f"patience: expected a positive integer or None, got {patience!r}")
        if resume and run_dir is None:
            raise ConfigError("resume: resume=True needs run_dir (the folder holding checkpoint/)")
        width = sequences.size(1) if isinstance(sequences, Tensor) and sequences.dim() == 2 else None
        if width is not None and not 2 <= width <= model.max_length + 1:
            raise ValueError(f"sequences has length {width}; expected 2..{model.max_length + 1} "
                             f"(model.max_length + 1: inputs are seq[:, :-1], targets seq[:, 1:])")
        check_sequences(sequences, model.num_items, model.max_length + 1, name="sequences")
        sequences = sequences.detach().cpu()  # batches are cut here, then copied
        usable = (sequences != model.pad).sum(1) >= 2  # [U]
        if not bool(usable.any()):
            raise ValueError("sequences: no row holds two or more items, so there is no next item to learn")
        self.model, self.sequences = model, sequences[usable]  # [U', L+1]
        self.epochs, self.batch_size, self.lr, self.weight_decay = epochs, batch_size, lr, weight_decay
        self.seed, self.eval_fn, self.monitor, self.eval_every = seed, eval_fn, monitor, eval_every
        self.patience, self.resume, self.progress = patience, resume, progress
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.device = resolve_device(device)
        self.use_amp = amp and self.device.type == "cuda"

    def fit(self) -> TrainResult:
        """Train (or resume) and return the history; the model ends holding the best weights."""
        self.model.to(self.device)
        optimizer = torch.optim.Adam(self.model.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        generator = torch.Generator().manual_seed(self.seed)
        result, best_weights = TrainResult(), None
        stopping = EarlyStopping(self.monitor, self.patience)
        if self.resume:
            state = self._load(optimizer, generator)
            result = TrainResult(state["history"], state["best_epoch"], state["best_metrics"],
                                 state["stopped_early"], state["epoch"])
            stopping.load_state_dict(state)
        else:
            seed_everything(self.seed)
        self.model.train()
        for epoch in range(result.epochs_run + 1, self.epochs + 1):
            if result.stopped_early:
                break
            start, total, num_batches = time.perf_counter(), 0.0, 0
            order = torch.randperm(self.sequences.size(0), generator=generator)  # [U']
            bar = tqdm(order.split(self.batch_size), desc=f"epoch {epoch}/{self.epochs}", leave=False,
                       disable=None if self.progress else True)
            for batch in bar:
                total, num_batches = total + self._step(self.sequences[batch], optimizer), num_batches + 1
                bar.set_postfix(loss=f"{total / num_batches:.4f}")
            bar.close()
            best_weights = self._record_epoch(epoch, total / max(num_batches, 1), start, stopping, result,
                                              best_weights)
            if self.run_dir is not None:
                self._save(optimizer, generator, result, stopping)
        self._restore_best(best_weights, result)
        return result

    def _step(self, batch: Tensor, optimizer: torch.optim.Optimizer) -> float:
        """One optimisation step on ``[B, L+1]`` sequences; returns the loss."""
        # Leading columns that are padding in every row change nothing (SASRec counts positions
        # from the last item and masks pad keys), so they are cut off: short sequences train faster.
        width = int((batch != self.model.pad).sum(1).max())
        batch = batch[:, batch.size(1) - width:].to(self.device, non_blocking=True)  # [B, width]
        autocast = torch.autocast("cuda", dtype=torch.bfloat16) if self.use_amp else contextlib.nullcontext()
        with autocast:
            loss = self.model.loss(batch[:, :-1], batch[:, 1:])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.item()

    def _config(self) -> dict[str, Any]:
        num_sequences, sequence_length = self.sequences.shape
        return {**{key: getattr(self, key) for key in _RESUME_KEYS}, "num_sequences": num_sequences,
                "sequence_length": sequence_length}

    def _save(self, optimizer: torch.optim.Optimizer, generator: torch.Generator, result: TrainResult,
              stopping: EarlyStopping) -> None:
        state = {
            "epoch": result.epochs_run, "history": result.history, "best_epoch": result.best_epoch,
            "best_metrics": result.best_metrics, **stopping.state_dict(), "stopped_early": result.stopped_early,
            "config": self._config(), "rng": capture_rng_state(), "generator": generator.get_state(),
        }
        save_checkpoint(self.run_dir / "checkpoint", self.model, optimizer, state)
        atomic_write_json(self.run_dir / "history.json", result.history)

    def _load(self, optimizer: torch.optim.Optimizer, generator: torch.Generator) -> dict[str, Any]:
        state = resume_checkpoint(self.run_dir, self.model, optimizer, self._config())
        generator.set_state(state["generator"])
        restore_rng_state(state["rng"])
        return state
