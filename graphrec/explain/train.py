"""Training a path language model on sampled paths: next-token cross-entropy, checkpoints, early stopping.

Every epoch draws fresh training paths from the :class:`~graphrec.graph.paths.PathGraph` (paths
that end at another training item of the user, as PEARLM learns from), seeded by ``(seed,
epoch)``, so a resumed run draws exactly the paths an uninterrupted one would have.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from graphrec.explain.spec import PathLMTask
from graphrec.graph.paths import PathGraph, sample_paths
from graphrec.nn.path_lm import PAD, PathTransformer
from graphrec.train.checkpoint import (capture_rng_state, load_weights, restore_rng_state, resume_checkpoint,
                                       save_checkpoint, save_weights)
from graphrec.train.trainer import EarlyStopping, TrainResult
from graphrec.utils import atomic_write_json, seed_everything

_RESUME_KEYS = ("batch_size", "lr", "weight_decay", "seed", "monitor", "eval_every", "patience")


def training_tokens(model: PathTransformer, graph: PathGraph, task: PathLMTask, seed: int) -> torch.Tensor:
    """``[P, L]`` token rows of freshly sampled paths of every configured length, right-padded."""
    max_len = 2 * task.max_hops + 1
    rows = []
    for position, hops in enumerate(task.paths.hops):
        paths = sample_paths(graph, hops=hops, paths_per_user=task.paths.paths_per_user, end="seen",
                             seed=seed * 1009 + position)
        tokens = model.tokenizer.encode(torch.from_numpy(paths.nodes), torch.from_numpy(paths.relations))
        rows.append(torch.nn.functional.pad(tokens, (0, max_len - tokens.size(1)), value=PAD))
    return torch.cat(rows)


class PathLMTrainer:
    """Fits a :class:`PathTransformer` to paths of a :class:`PathGraph`.

    Args mirror :class:`graphrec.train.Trainer`: ``eval_fn(model) -> metrics`` runs every
    ``eval_every`` epochs, the best ``monitor`` value keeps its weights, ``patience`` evaluations
    without improvement stop the run, and ``run_dir`` gets a checkpoint every epoch.
    """

    def __init__(self, model: PathTransformer, graph: PathGraph, task: PathLMTask, *, epochs: int = 20,
                 batch_size: int = 512, lr: float = 1e-3, weight_decay: float = 0.0, device: torch.device,
                 seed: int = 0, eval_fn: Callable[[PathTransformer], dict[str, float]] | None = None,
                 monitor: str = "ndcg@10", eval_every: int = 1, patience: int | None = 5,
                 run_dir: str | Path | None = None, resume: bool = False, progress: bool = True) -> None:
        self.model, self.graph, self.task = model, graph, task
        self.epochs, self.batch_size, self.lr, self.weight_decay = epochs, batch_size, lr, weight_decay
        self.device, self.seed, self.eval_fn, self.monitor = device, seed, eval_fn, monitor
        self.eval_every, self.patience, self.progress = eval_every, patience, progress
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.resume = resume

    def fit(self) -> TrainResult:
        model = self.model.to(self.device)
        optimizer = torch.optim.AdamW(model.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        result, stopping = TrainResult(), EarlyStopping(self.monitor, self.patience)
        if self.resume:
            state = self._load(optimizer)
            result = TrainResult(state["history"], state["best_epoch"], state["best_metrics"],
                                 state["stopped_early"], state["epoch"])
            stopping.load_state_dict(state)
        else:
            seed_everything(self.seed)
        tokens = None
        for epoch in range(result.epochs_run + 1, self.epochs + 1):
            if result.stopped_early:
                break
            start = time.perf_counter()
            if tokens is None or self.task.paths.resample:
                tokens = training_tokens(model, self.graph, self.task, self.seed + (epoch if self.task.paths.resample else 0))
            loss = self._epoch(tokens, optimizer, epoch)
            row: dict[str, float] = {"epoch": epoch, "loss": loss, "paths": int(tokens.size(0))}
            if self.eval_fn is not None and epoch % self.eval_every == 0:
                model.eval()
                with torch.no_grad():
                    metrics = {k: float(v) for k, v in self.eval_fn(model).items()}
                model.train()
                row.update(metrics)
                if stopping.update(epoch, metrics, result) and self.run_dir is not None:
                    save_weights(self.run_dir / "best.safetensors", model)
            row["seconds"] = time.perf_counter() - start
            result.history.append(row)
            result.epochs_run = epoch
            if self.run_dir is not None:
                self._save(optimizer, result, stopping)
        if self.run_dir is not None:
            if result.best_epoch is not None:
                load_weights(self.run_dir / "best.safetensors", model)
            else:
                save_weights(self.run_dir / "best.safetensors", model)
        return result

    def _epoch(self, tokens: torch.Tensor, optimizer: torch.optim.Optimizer, epoch: int) -> float:
        self.model.train()
        generator = torch.Generator().manual_seed(self.seed * 100003 + epoch)
        order = torch.randperm(tokens.size(0), generator=generator)
        total, count = 0.0, 0
        bar = tqdm(order.split(self.batch_size), desc=f"epoch {epoch}/{self.epochs}", leave=False,
                   disable=None if self.progress else True)
        for batch in bar:
            loss = self.model.loss(tokens[batch].to(self.device, non_blocking=True))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
            optimizer.step()
            total, count = total + loss.item(), count + 1
            bar.set_postfix(loss=f"{total / count:.4f}")
        bar.close()
        return total / max(count, 1)

    def _config(self) -> dict:
        return {key: getattr(self, key) for key in _RESUME_KEYS}

    def _save(self, optimizer, result: TrainResult, stopping: EarlyStopping) -> None:
        state = {
            "epoch": result.epochs_run, "history": result.history, "best_epoch": result.best_epoch,
            "best_metrics": result.best_metrics, **stopping.state_dict(),
            "stopped_early": result.stopped_early, "config": self._config(),
            "rng": capture_rng_state(),
        }
        save_checkpoint(self.run_dir / "checkpoint", self.model, optimizer, state)
        atomic_write_json(self.run_dir / "history.json", result.history)

    def _load(self, optimizer) -> dict:
        state = resume_checkpoint(self.run_dir, self.model, optimizer, self._config())
        restore_rng_state(state["rng"])
        return state


def per_epoch_seconds(history: list[dict]) -> float:
    values = [row["seconds"] for row in history if "seconds" in row]
    return float(np.mean(values)) if values else float("nan")
