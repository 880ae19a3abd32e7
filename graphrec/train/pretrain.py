"""The pre-training loop: minimise a pretext loss over the message-passing graph.

Each step builds a :class:`graphrec.pretext.PretextBatch` (the training graph, the step number and
a seeded generator for masks, negatives and walks) and takes one Adam step on the model and the
pretext task's own decoders. With ``batching="neighbor"`` the batch is a subgraph sampled around
``batch_nodes`` seeds per node type instead of the whole graph (:mod:`graphrec.pretext.sampled`).
With ``run_dir`` the state, the sampler's included, is checkpointed every ``checkpoint_every``
steps; ``resume=True`` continues bit for bit.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from tqdm.auto import tqdm

from graphrec.errors import CheckpointError, ConfigError
from graphrec.pretext.base import PretextBatch, PretextTask
from graphrec.pretext.sampled import SampledBatches
from graphrec.train.checkpoint import capture_rng_state, restore_rng_state, resume_checkpoint, save_checkpoint
from graphrec.utils import atomic_write_json, resolve_device, seed_everything

_RESUME_KEYS = ("steps_per_epoch", "lr", "weight_decay", "seed")
_NEIGHBOR_KEYS = ("batching", "fanouts", "batch_nodes", "merge_reverse")


@dataclass
class PretrainResult:
    """What :meth:`PretrainTrainer.fit` returns: one history row per logged step."""

    history: list[dict[str, float]] = field(default_factory=list)
    steps_run: int = 0
    seconds: float = 0.0


class PretrainTrainer:
    """Pre-trains ``model`` (inputs + encoder) on ``task``.

    Args:
        model: Has ``inputs()`` and ``encode(x_dict, edge_index_dict)`` (e.g. a GraphRecommender).
        task: A pretext task, often a :class:`graphrec.pretext.MultiTask`.
        edge_index_dict: The message-passing graph: training interactions only.
        num_nodes_dict: Nodes per type.
        steps: Optimisation steps in total (a resumed run counts those done).
        lr: Adam learning rate.
        weight_decay: Adam weight decay.
        device: ``"auto"``, ``"cpu"`` or ``"cuda[:N]"``.
        seed: Seeds everything and the batch generator.
        run_dir: Folder for ``checkpoint/`` and ``pretrain_history.json``.
        resume: Continue from ``run_dir/checkpoint``.
        checkpoint_every: Steps between checkpoints (and the last step).
        log_every: Steps between history rows.
        progress: Show a tqdm bar.
        batching: ``"full"`` (every step on the whole graph) or ``"neighbor"`` (every step on a
            subgraph sampled around seed nodes).
        fanouts: With ``"neighbor"``, neighbours drawn per node and edge type at each hop (``-1``: all).
        batch_nodes: With ``"neighbor"``, seeds per node type and step, of the types the task puts
            its losses on (``task.seed_types``; every type when it names none).
        merge_reverse: With ``"neighbor"``, give each edge type the edges sampled in either
            direction (for encoders that read one direction as undirected: LightGCN, DiffNet).
    """

    def __init__(self, model: torch.nn.Module, task: PretextTask, edge_index_dict: dict[tuple, Tensor],
                 num_nodes_dict: dict[str, int], *, steps: int = 200, lr: float = 1e-3, weight_decay: float = 0.0,
                 device: str = "auto", seed: int = 0, run_dir: str | Path | None = None, resume: bool = False,
                 checkpoint_every: int = 50, log_every: int = 10, progress: bool = True, batching: str = "full",
                 fanouts: list[int] | None = None, batch_nodes: int = 1024, merge_reverse: bool = False) -> None:
        if batching not in ("full", "neighbor"):
            raise ConfigError(f"batching: expected 'full' or 'neighbor', got {batching!r}")
        if batching == "neighbor" and fanouts is None:
            raise ConfigError(f"fanouts: batching='neighbor' needs one fan-out per hop, got {fanouts!r}")
        for name, value in (("steps", steps), ("checkpoint_every", checkpoint_every), ("log_every", log_every),
                            ("batch_nodes", batch_nodes)):
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name}: expected a positive integer, got {value!r}")
        if resume and run_dir is None:
            raise ConfigError("resume: resume=True needs run_dir (the folder holding checkpoint/)")
        self.model, self.task = model, task
        self.edge_index_dict, self.num_nodes_dict = edge_index_dict, dict(num_nodes_dict)
        self.steps, self.lr, self.weight_decay, self.seed = steps, lr, weight_decay, seed
        self.device = resolve_device(device)
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.resume, self.checkpoint_every, self.log_every, self.progress = resume, checkpoint_every, log_every, progress
        self.steps_per_epoch = 1  # one batch per step; kept as a setting a resume must match
        self.batching, self.batch_nodes, self.merge_reverse = batching, batch_nodes, merge_reverse
        self.fanouts = None if fanouts is None else list(fanouts)

    def fit(self) -> PretrainResult:
        both = torch.nn.ModuleDict({"model": self.model, "task": self.task}).to(self.device)
        edges = {t: e.to(self.device) for t, e in self.edge_index_dict.items()}
        optimizer = torch.optim.Adam([p for p in both.parameters() if p.requires_grad], lr=self.lr,
                                     weight_decay=self.weight_decay)
        generator = torch.Generator().manual_seed(self.seed)
        batches = self._batches()
        result, start_step = PretrainResult(), 0
        if self.resume:
            state = resume_checkpoint(self.run_dir, both, optimizer, self._config())
            made_with = state["config"].get("batching", "full")
            if made_with != self.batching:
                raise CheckpointError(f"{self.run_dir / 'checkpoint'}: was made with batching={made_with!r} (now "
                                      f"{self.batching!r}); resume with the same settings or start a new run_dir")
            generator.set_state(state["generator"])
            if batches is not None:
                batches.load_state_dict(state["sampler"])
            restore_rng_state(state["rng"])
            result = PretrainResult(state["history"], state["step"], state["seconds"])
            start_step = state["step"]
        else:
            seed_everything(self.seed)
        both.train()
        started = time.perf_counter() - result.seconds
        bar = tqdm(range(start_step, self.steps), desc="pre-training", initial=start_step, total=self.steps,
                   disable=None if self.progress else True)
        window: list[float] = []
        for step in bar:
            if batches is None:
                loss = self.task.loss(self.model, PretextBatch(edges, self.num_nodes_dict, step, generator))
            else:
                view, batch = batches.next(self.model, step, generator, self.device)
                loss = self.task.loss(view, batch)
            if not torch.isfinite(loss.detach()):
                raise FloatingPointError(f"pre-training loss is {float(loss.detach())} at step {step}; lower the "
                                         "learning rate or check the inputs for NaN")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            window.append(float(loss.detach()))
            done = step + 1
            if done % self.log_every == 0 or done == self.steps:
                row: dict[str, Any] = {"step": done, "loss": sum(window) / len(window),
                                       "seconds": time.perf_counter() - started}
                row.update({f"loss/{name}": value for name, value in getattr(self.task, "last_losses", {}).items()})
                result.history.append(row)
                bar.set_postfix(loss=f"{row['loss']:.4f}")
                window = []
            result.steps_run, result.seconds = done, time.perf_counter() - started
            if self.run_dir is not None and (done % self.checkpoint_every == 0 or done == self.steps):
                self._save(both, optimizer, generator, result, batches)
        bar.close()
        return result

    def _batches(self) -> SampledBatches | None:
        """The neighbour sampler of ``batching="neighbor"``, over the graph on the CPU; ``None`` for full batches."""
        if self.batching == "full":
            return None
        return SampledBatches(self.edge_index_dict, self.num_nodes_dict, self.fanouts, self.batch_nodes,
                              getattr(self.task, "seed_types", ()), merge_reverse=self.merge_reverse, seed=self.seed)

    def _config(self) -> dict[str, Any]:
        # A full-batch run keeps the settings of checkpoints made before neighbour batching existed.
        keys = _RESUME_KEYS + (_NEIGHBOR_KEYS if self.batching == "neighbor" else ())
        return {key: getattr(self, key) for key in keys}

    def _save(self, both: torch.nn.Module, optimizer, generator, result: PretrainResult,
              batches: SampledBatches | None) -> None:
        state = {"step": result.steps_run, "seconds": result.seconds, "history": result.history,
                 "config": self._config(), "rng": capture_rng_state(), "generator": generator.get_state()}
        if batches is not None:
            state["sampler"] = batches.state_dict()
        save_checkpoint(self.run_dir / "checkpoint", both, optimizer, state)
        atomic_write_json(self.run_dir / "pretrain_history.json", result.history)
