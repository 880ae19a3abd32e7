"""The training loop for recommendation models: mini-batches of (user, positive item, negatives).

Each batch runs one full propagation ``user_emb, item_emb = model()``, scores the batch by dot
products and minimises BPR (Rendle et al., "BPR: Bayesian Personalized Ranking from Implicit
Feedback", UAI 2009) or binary cross-entropy, plus L2 on the layer-0 embeddings of the batch as in
LightGCN (He et al., SIGIR 2020):

    L = loss(s(u, i+), s(u, i-)) + weight_decay * l2(e_u^0, e_{i+}^0, e_{i-}^0)

Early stopping follows a validation metric; with ``run_dir`` every epoch ends in a checkpoint from
which ``resume=True`` continues bit for bit (same weights and metrics as a run never stopped).
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor
from tqdm.auto import tqdm

from graphrec.errors import ConfigError
from graphrec.nn.losses import bce_loss, bpr_loss, l2_regularization
from graphrec.train.checkpoint import (capture_rng_state, load_weights, restore_rng_state, resume_checkpoint,
                                       save_checkpoint, save_weights)
from graphrec.train.negatives import NegativeSampler
from graphrec.utils import atomic_write_json, resolve_device, seed_everything, suggest

LOSSES = {"bpr": bpr_loss, "bce": bce_loss}
# Settings that shape the trajectory: a resumed run must use the ones it was started with.
_RESUME_KEYS = ("batch_size", "lr", "weight_decay", "loss", "num_negatives", "seed", "monitor",
                "eval_every", "patience", "num_edges")


@dataclass
class TrainResult:
    """What :meth:`Trainer.fit` returns.

    Attributes:
        history: One dict per epoch: ``epoch``, ``loss``, ``seconds`` and the metrics when evaluated.
        best_epoch: Epoch (1-based) with the best ``monitor`` value; ``None`` without evaluation.
        best_metrics: The metrics of that epoch (for untrainable models: the one evaluation).
        stopped_early: Whether patience ran out before ``epochs``.
        epochs_run: Epochs trained in total, including those before a resume.
    """

    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int | None = None
    best_metrics: dict[str, float] = field(default_factory=dict)
    stopped_early: bool = False
    epochs_run: int = 0


class EarlyStopping:
    """The best value of a monitored metric (higher is better) and the evaluations since it improved."""

    def __init__(self, monitor: str, patience: int | None) -> None:
        self.monitor, self.patience = monitor, patience
        self.best_value, self.bad_evals = -math.inf, 0

    def update(self, epoch: int, metrics: dict[str, float], result: TrainResult) -> bool:
        """Record one evaluation in ``result``; True when it is the best so far (its weights are to be kept)."""
        value = metrics[self.monitor]
        if value > self.best_value:  # NaN never improves
            self.best_value, self.bad_evals = value, 0
            result.best_epoch, result.best_metrics = epoch, dict(metrics)
            return True
        self.bad_evals += 1
        result.stopped_early = self.patience is not None and self.bad_evals >= self.patience
        return False

    def state_dict(self) -> dict[str, Any]:
        return {"best_value": self.best_value if math.isfinite(self.best_value) else None,
                "bad_evals": self.bad_evals}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best_value = -math.inf if state["best_value"] is None else state["best_value"]
        self.bad_evals = state["bad_evals"]


class BestWeights:
    """What every trainer does around its epochs: evaluate in eval mode, record the epoch, keep and
    restore the best weights.

    Needs ``model``, ``eval_fn``, ``monitor``, ``eval_every`` and ``run_dir`` (``None``: the best
    weights are kept in memory instead of ``best.safetensors``).
    """

    model: torch.nn.Module
    eval_fn: Callable[[torch.nn.Module], dict[str, float]] | None
    monitor: str
    eval_every: int
    run_dir: Path | None

    def _record_epoch(self, epoch: int, loss: float, start: float, stopping: EarlyStopping, result: TrainResult,
                      best_weights: dict[str, Tensor] | None) -> dict[str, Tensor] | None:
        """Evaluate when due, keep the weights when best, append the epoch's history row; the best weights."""
        row: dict[str, float] = {"epoch": epoch, "loss": loss}
        # Only every eval_every-th epoch, never "the last one": a run resumed with more epochs
        # must evaluate the same epochs as one started with them.
        if self.eval_fn is not None and epoch % self.eval_every == 0:
            metrics = self._evaluate()
            row.update(metrics)
            if stopping.update(epoch, metrics, result):
                best_weights = self._keep_best()
        row["seconds"] = time.perf_counter() - start
        result.history.append(row)
        result.epochs_run = epoch
        return best_weights

    def _evaluate(self) -> dict[str, float]:
        self.model.eval()
        with torch.no_grad():
            metrics = {name: float(value) for name, value in self.eval_fn(self.model).items()}
        self.model.train()
        if self.monitor not in metrics:
            raise ConfigError(f"monitor: eval_fn returned no metric '{self.monitor}'; it returned "
                              f"{sorted(metrics)}{suggest(self.monitor, metrics)}")
        return metrics

    def _keep_best(self) -> dict[str, Tensor] | None:
        if self.run_dir is not None:
            save_weights(self.run_dir / "best.safetensors", self.model)
            return None
        return {name: t.detach().clone() for name, t in self.model.state_dict().items()}

    def _restore_best(self, best_weights: dict[str, Tensor] | None, result: TrainResult) -> None:
        if result.best_epoch is not None and best_weights is not None:
            self.model.load_state_dict(best_weights)
        elif result.best_epoch is not None and self.run_dir is not None:
            load_weights(self.run_dir / "best.safetensors", self.model)
        elif self.run_dir is not None:  # nothing evaluated: the last weights are the ones kept
            save_weights(self.run_dir / "best.safetensors", self.model)


class Trainer(BestWeights):
    """Trains a model that follows the graphrec model interface (see ``graphrec.nn``).

    Args:
        model: Has ``set_graph``, ``forward() -> (user_emb, item_emb)``, ``ego_embeddings()``;
            ``trainable = False`` (e.g. popularity) skips training and evaluates once.
        train_edge_index: Training interactions ``[2, E]`` (row 0 users, row 1 items).
        epochs: Most epochs to train (a resumed run counts those already done).
        batch_size: Positive (user, item) pairs per step.
        lr: Adam learning rate.
        weight_decay: Weight of the L2 term on the batch's layer-0 embeddings.
        loss: ``"bpr"`` or ``"bce"``.
        num_negatives: Sampled negative items per positive pair.
        device: ``"auto"``, ``"cpu"`` or ``"cuda[:N]"``.
        seed: Seeds Python, NumPy, torch, the shuffling generator and the negative sampler.
        eval_fn: ``eval_fn(model) -> {metric: value}``, called under ``torch.no_grad``.
        monitor: Metric of ``eval_fn`` to early-stop on (higher is better).
        eval_every: Evaluate every this many epochs; the best weights come from an evaluated epoch.
        patience: Evaluations without improvement before stopping; ``None`` never stops early.
        run_dir: Folder for ``checkpoint/``, ``best.safetensors`` and ``history.json``.
        resume: Continue from ``run_dir/checkpoint``.
        progress: Show a tqdm bar per epoch.
        amp: Use bfloat16 autocast for the forward pass on CUDA (CPU always runs fp32).
    """

    def __init__(self, model: torch.nn.Module, train_edge_index: Tensor, *, epochs: int = 100,
                 batch_size: int = 2048, lr: float = 1e-3, weight_decay: float = 1e-4, loss: str = "bpr",
                 num_negatives: int = 1, device: str = "auto", seed: int = 0,
                 eval_fn: Callable[[torch.nn.Module], dict[str, float]] | None = None,
                 monitor: str = "recall@20", eval_every: int = 1, patience: int | None = 10,
                 run_dir: str | Path | None = None, resume: bool = False, progress: bool = True,
                 amp: bool = True) -> None:
        if loss not in LOSSES:
            raise ConfigError(f"loss: unknown loss '{loss}'; expected one of {sorted(LOSSES)}{suggest(loss, LOSSES)}")
        for name, value in (("epochs", epochs), ("batch_size", batch_size), ("num_negatives", num_negatives),
                            ("eval_every", eval_every)):
            if not isinstance(value, int) or value < (0 if name == "epochs" else 1):
                raise ConfigError(f"{name}: expected a positive integer, got {value!r}")
        if patience is not None and (not isinstance(patience, int) or patience < 1):
            raise ConfigError(f"patience: expected a positive integer or None, got {patience!r}")
        if resume and run_dir is None:
            raise ConfigError("resume: resume=True needs run_dir (the folder holding checkpoint/)")
        if train_edge_index.dim() != 2 or train_edge_index.size(0) != 2 or train_edge_index.dtype != torch.long:
            raise ConfigError(f"train_edge_index: expected a LongTensor [2, E], got {train_edge_index.dtype} "
                              f"{list(train_edge_index.shape)}")
        self.model, self.epochs, self.batch_size, self.lr = model, epochs, batch_size, lr
        self.weight_decay, self.loss, self.num_negatives, self.seed = weight_decay, loss, num_negatives, seed
        self.eval_fn, self.monitor, self.eval_every, self.patience = eval_fn, monitor, eval_every, patience
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.resume, self.progress = resume, progress
        self.device = resolve_device(device)
        self.use_amp = amp and self.device.type == "cuda"
        self.edges_cpu = train_edge_index.detach().cpu()  # [2, E]; batches are cut here, then copied
        self.trainable = bool(getattr(model, "trainable", True))

    def fit(self) -> TrainResult:
        """Train (or resume) and return the history; the model ends holding the best weights."""
        self.model.to(self.device)
        self.model.set_graph(self.edges_cpu.to(self.device, non_blocking=True))
        if not self.trainable:
            return self._evaluate_only()
        optimizer = torch.optim.Adam([p for p in self.model.parameters() if p.requires_grad], lr=self.lr)
        generator = torch.Generator().manual_seed(self.seed)
        # Its own stream: seeded like the shuffle, the two generators would draw the same numbers.
        sampler = NegativeSampler(self.edges_cpu, self.model.num_users, self.model.num_items, seed=self.seed + 1)
        result, step, best_weights = TrainResult(), 0, None
        stopping = EarlyStopping(self.monitor, self.patience)
        if self.resume:
            state = self._load(optimizer, generator, sampler)
            result = TrainResult(state["history"], state["best_epoch"], state["best_metrics"],
                                 state["stopped_early"], state["epoch"])
            step = state["global_step"]
            stopping.load_state_dict(state)
        else:
            seed_everything(self.seed)
        loss_fn = LOSSES[self.loss]
        self.model.train()
        for epoch in range(result.epochs_run + 1, self.epochs + 1):
            if result.stopped_early:
                break
            start, total, num_batches = time.perf_counter(), 0.0, 0
            order = torch.randperm(self.edges_cpu.size(1), generator=generator)  # [E]
            batches = order.split(self.batch_size)
            bar = tqdm(batches, desc=f"epoch {epoch}/{self.epochs}", leave=False,
                       disable=None if self.progress else True)
            for batch in bar:
                loss = self._step(batch, sampler, loss_fn, optimizer)
                total, num_batches, step = total + loss, num_batches + 1, step + 1
                bar.set_postfix(loss=f"{total / num_batches:.4f}")
            bar.close()
            best_weights = self._record_epoch(epoch, total / max(num_batches, 1), start, stopping, result,
                                              best_weights)
            if self.run_dir is not None:
                self._save(optimizer, generator, sampler, result, step, stopping)
        self._restore_best(best_weights, result)
        return result

    def _step(self, batch: Tensor, sampler: NegativeSampler, loss_fn: Callable,
              optimizer: torch.optim.Optimizer) -> float:
        """One optimisation step on the positive pairs ``batch`` (edge positions ``[B]``); returns the loss."""
        users_cpu, pos_cpu = self.edges_cpu[0, batch], self.edges_cpu[1, batch]  # [B], [B]
        neg_cpu = sampler.sample(users_cpu, self.num_negatives)  # [B, N]
        users, pos, neg = (t.to(self.device, non_blocking=True) for t in (users_cpu, pos_cpu, neg_cpu))
        autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if self.use_amp else contextlib.nullcontext())
        with autocast:
            user_emb, item_emb = self.model()  # [U, D], [I, D]
        u = user_emb[users].float()  # [B, D]
        score = getattr(self.model, "score", None)  # a model with a prediction head scores pairs itself
        if score is None:
            pos_scores = (u * item_emb[pos].float()).sum(-1)  # [B]
            neg_scores = (u.unsqueeze(1) * item_emb[neg].float()).sum(-1)  # [B, N]
        else:
            pos_scores, neg_scores = score(u, item_emb[pos].float()), score(u, item_emb[neg].float())
        user_ego, item_ego = self.model.ego_embeddings()
        reg = l2_regularization(user_ego[users], item_ego[pos], item_ego[neg])
        loss = loss_fn(pos_scores, neg_scores) + self.weight_decay * reg
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.item()

    def _evaluate_only(self) -> TrainResult:
        """Untrainable models (popularity): evaluate once, train nothing."""
        result = TrainResult()
        if self.eval_fn is not None:
            result.best_metrics = self._evaluate()
        if self.run_dir is not None:
            save_weights(self.run_dir / "best.safetensors", self.model)
            atomic_write_json(self.run_dir / "history.json", result.history)
        return result

    def _config(self) -> dict[str, Any]:
        config = {key: getattr(self, key) for key in _RESUME_KEYS if key != "num_edges"}
        config["num_edges"] = self.edges_cpu.size(1)
        return config

    def _save(self, optimizer, generator, sampler, result: TrainResult, step: int,
              stopping: EarlyStopping) -> None:
        state = {
            "epoch": result.epochs_run, "global_step": step, "history": result.history,
            "best_epoch": result.best_epoch, "best_metrics": result.best_metrics,
            **stopping.state_dict(), "stopped_early": result.stopped_early, "config": self._config(),
            "rng": capture_rng_state(), "generator": generator.get_state(), "sampler": sampler.state_dict(),
        }
        save_checkpoint(self.run_dir / "checkpoint", self.model, optimizer, state)
        atomic_write_json(self.run_dir / "history.json", result.history)

    def _load(self, optimizer, generator, sampler) -> dict[str, Any]:
        state = resume_checkpoint(self.run_dir, self.model, optimizer, self._config())
        generator.set_state(state["generator"])
        sampler.load_state_dict(state["sampler"])
        restore_rng_state(state["rng"])
        return state
