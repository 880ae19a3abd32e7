"""The training loop for recommendation models: mini-batches of (user, positive item, negatives).

Each batch runs one full propagation ``user_emb, item_emb = model()``, scores the batch by dot
products and minimises BPR (Rendle et al., "BPR: Bayesian Personalized Ranking from Implicit
Feedback", UAI 2009) or binary cross-entropy, plus L2 on the layer-0 embeddings of the batch as in
LightGCN (He et al., SIGIR 2020):

    L = loss(s(u, i+), s(u, i-)) + weight_decay * l2(e_u^0, e_{i+}^0, e_{i-}^0)

Early stopping follows a validation metric; with ``run_dir`` every epoch ends in a checkpoint from
which ``resume=True`` continues bit for bit (same weights and metrics as a run never stopped).

With ``batching="neighbor"`` (a model with ``encode_sampled``, :class:`graphrec.nn.GraphRecommender`)
a step encodes only the batch's sampled neighbourhood (:mod:`graphrec.graph.sampling`): ``fanouts[l]``
neighbours per node and edge type at hop ``l``, around the batch's users, positives and negatives;
the loss is the same. Validation still propagates over the whole graph, once per evaluation.

Under torchrun (see :mod:`graphrec.distributed`) every rank trains on its shard of each epoch's
edges with ``batch_size`` rows per step and its own negatives; gradients are averaged over the
ranks after each backward pass, so every rank keeps the same weights. Only rank 0 writes files.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import torch
from torch import Tensor
from tqdm.auto import tqdm

from graphrec import distributed
from graphrec.errors import CheckpointError, ConfigError
from graphrec.nn.losses import bce_loss, bpr_loss, l2_regularization
from graphrec.train.checkpoint import (capture_rng_state, load_weights, restore_rng_state, resume_checkpoint,
                                       save_checkpoint, save_weights)
from graphrec.train.negatives import NegativeSampler
from graphrec.train.optim import make_optimizer
from graphrec.utils import atomic_write_json, resolve_device, seed_everything, suggest

if TYPE_CHECKING:  # loaded with batching="neighbor" only
    from graphrec.graph.sampling import NeighborSampler

LOSSES = {"bpr": bpr_loss, "bce": bce_loss}
BATCHINGS = ("full", "neighbor")
# Rank r's negative sampler is seeded seed + 1 + r * stride: streams of its own, rank 0's as in one process.
_RANK_SEED_STRIDE = 1_000_003
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
    weights are kept in memory instead of ``best.safetensors``). In a data-parallel group only rank 0
    writes ``best.safetensors`` and, at the end, sends the best weights to the other ranks. Every rank
    takes rank 0's metrics, so all make the same early-stopping decisions.
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
        metrics = distributed.broadcast_object(metrics)  # the ranks must agree on stopping and on the best epoch
        self.model.train()
        if self.monitor not in metrics:
            raise ConfigError(f"monitor: eval_fn returned no metric '{self.monitor}'; it returned "
                              f"{sorted(metrics)}{suggest(self.monitor, metrics)}")
        return metrics

    def _keep_best(self) -> dict[str, Tensor] | None:
        if self.run_dir is not None:
            if distributed.is_main():
                save_weights(self.run_dir / "best.safetensors", self.model)
            return None
        return {name: t.detach().clone() for name, t in self.model.state_dict().items()}

    def _restore_best(self, best_weights: dict[str, Tensor] | None, result: TrainResult) -> None:
        if result.best_epoch is not None and best_weights is not None:
            self.model.load_state_dict(best_weights)
        elif result.best_epoch is not None and self.run_dir is not None:
            if distributed.is_main():
                load_weights(self.run_dir / "best.safetensors", self.model)
        elif self.run_dir is not None and distributed.is_main():  # nothing evaluated: the last weights are kept
            save_weights(self.run_dir / "best.safetensors", self.model)
        # Rank 0's best weights to every rank: the others need not see its run folder (another host).
        distributed.broadcast_module(self.model)


class Trainer(BestWeights):
    """Trains a model that follows the graphrec model interface (see ``graphrec.nn``).

    Args:
        model: Has ``set_graph``, ``forward() -> (user_emb, item_emb)``, ``ego_embeddings()``;
            ``trainable = False`` (e.g. popularity) skips training and evaluates once.
        train_edge_index: Training interactions ``[2, E]`` (row 0 users, row 1 items).
        epochs: Most epochs to train (a resumed run counts those already done).
        batch_size: Positive (user, item) pairs per step (per rank in a data-parallel group).
        lr: Adam learning rate.
        weight_decay: Weight of the L2 term on the batch's layer-0 embeddings.
        loss: ``"bpr"`` or ``"bce"``.
        num_negatives: Sampled negative items per positive pair.
        device: ``"auto"``, ``"cpu"`` or ``"cuda[:N]"`` (under torchrun: :func:`graphrec.distributed.local_device`).
        seed: Seeds Python, NumPy, torch, the shuffling generator and the negative sampler (rank ``r`` of a
            data-parallel group: ``seed + 1 + r * 1_000_003``).
        eval_fn: ``eval_fn(model) -> {metric: value}``, called under ``torch.no_grad``.
        monitor: Metric of ``eval_fn`` to early-stop on (higher is better).
        eval_every: Evaluate every this many epochs; the best weights come from an evaluated epoch.
        patience: Evaluations without improvement before stopping; ``None`` never stops early.
        run_dir: Folder for ``checkpoint/``, ``best.safetensors`` and ``history.json``.
        resume: Continue from ``run_dir/checkpoint``.
        progress: Show a tqdm bar per epoch.
        amp: Use bfloat16 autocast for the forward pass on CUDA (CPU always runs fp32).
        batching: ``"full"``: every step propagates over the whole graph; ``"neighbor"``: over the batch's
            sampled neighbourhood only (needs ``model.encode_sampled``).
        fanouts: With ``batching="neighbor"``, neighbours drawn per node and edge type at each hop, one
            per encoder layer; ``-1``: all (the step then equals the full one).
        sparse_embeddings: With ``batching="neighbor"``, the ID tables get sparse gradients and lazy
            Adam updates of the gathered rows only (:mod:`graphrec.train.optim`); one process only.
    """

    def __init__(self, model: torch.nn.Module, train_edge_index: Tensor, *, epochs: int = 100,
                 batch_size: int = 2048, lr: float = 1e-3, weight_decay: float = 1e-4, loss: str = "bpr",
                 num_negatives: int = 1, device: str = "auto", seed: int = 0,
                 eval_fn: Callable[[torch.nn.Module], dict[str, float]] | None = None,
                 monitor: str = "recall@20", eval_every: int = 1, patience: int | None = 10,
                 run_dir: str | Path | None = None, resume: bool = False, progress: bool = True,
                 amp: bool = True, batching: str = "full", fanouts: list[int] | None = None,
                 sparse_embeddings: bool = False) -> None:
        if loss not in LOSSES:
            raise ConfigError(f"loss: unknown loss '{loss}'; expected one of {sorted(LOSSES)}{suggest(loss, LOSSES)}")
        self._check_batching(model, batching, fanouts)
        if sparse_embeddings and batching != "neighbor":
            raise ConfigError("sparse_embeddings: needs batching 'neighbor' (a full step reads every row of the "
                              "tables, so their gradients are dense anyway)")
        if sparse_embeddings and distributed.world_size() > 1:
            raise ConfigError("sparse_embeddings: data-parallel runs average dense gradients; train with one "
                              "process, or without sparse_embeddings")
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
        self.batching, self.fanouts = batching, None if fanouts is None else list(fanouts)
        self.sparse_embeddings = sparse_embeddings
        self.neighbor_sampler = None  # built by fit() once the model holds its graph

    @staticmethod
    def _check_batching(model: torch.nn.Module, batching: str, fanouts: list[int] | None) -> None:
        if batching not in BATCHINGS:
            raise ConfigError(f"batching: unknown batching '{batching}'; expected one of "
                              f"{', '.join(BATCHINGS)}{suggest(batching, BATCHINGS)}")
        if batching != "neighbor":
            return
        if not hasattr(model, "encode_sampled"):
            raise ConfigError(f"batching: 'neighbor' needs a model that encodes sampled subgraphs "
                              f"(graphrec.nn.GraphRecommender, model.name: graph); {type(model).__name__} "
                              "propagates over the whole graph only: use batching 'full'")
        if not isinstance(fanouts, (list, tuple)) or \
                not all(isinstance(f, int) and not isinstance(f, bool) and f >= -1 for f in fanouts):
            raise ConfigError(f"fanouts: expected a list of ints >= -1 (-1: all neighbours), one per encoder "
                              f"layer, got {fanouts!r}")

    def fit(self) -> TrainResult:
        """Train (or resume) and return the history; the model ends holding the best weights."""
        self.model.to(self.device)
        self.model.set_graph(self.edges_cpu.to(self.device, non_blocking=True))
        if not self.trainable:
            return self._evaluate_only()
        optimizer = make_optimizer(self.model, self.lr, self.sparse_embeddings)
        generator = torch.Generator().manual_seed(self.seed)  # the same permutation on every rank
        # Its own stream: seeded like the shuffle, the two generators would draw the same numbers.
        sampler = NegativeSampler(self.edges_cpu, self.model.num_users, self.model.num_items,
                                  seed=self.seed + 1 + distributed.rank() * _RANK_SEED_STRIDE)
        self.neighbor_sampler = self._neighbor_sampler()
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
        distributed.broadcast_module(self.model)  # every rank starts from rank 0's weights
        loss_fn = LOSSES[self.loss]
        self.model.train()
        for epoch in range(result.epochs_run + 1, self.epochs + 1):
            if result.stopped_early:
                break
            start, total, num_batches = time.perf_counter(), 0.0, 0
            order = torch.randperm(self.edges_cpu.size(1), generator=generator)  # [E]
            batches = distributed.shard(order).split(self.batch_size)  # this rank's [E / world] positions
            bar = tqdm(batches, desc=f"epoch {epoch}/{self.epochs}", leave=False,
                       disable=None if self.progress and distributed.is_main() else True)
            for batch in bar:
                loss = self._step(batch, sampler, loss_fn, optimizer)
                total, num_batches, step = total + loss, num_batches + 1, step + 1
                bar.set_postfix(loss=f"{total / num_batches:.4f}")
            bar.close()
            epoch_loss = distributed.all_reduce_mean({"loss": total / max(num_batches, 1)})["loss"]  # over ranks
            best_weights = self._record_epoch(epoch, epoch_loss, start, stopping, result, best_weights)
            if self.run_dir is not None:
                self._save(optimizer, generator, sampler, result, step, stopping)
        self._restore_best(best_weights, result)
        return result

    def _neighbor_sampler(self) -> NeighborSampler | None:
        """The sampler of ``batching="neighbor"`` over the model's graph (``None``: full-graph steps).

        A frozen body (the "head" strategy) has constant outputs, computed once: it keeps full steps.
        """
        if self.batching != "neighbor" or self.model.body_is_frozen():
            return None
        seed = self.seed + 2 + distributed.rank() * _RANK_SEED_STRIDE  # apart from the shuffle and the negatives
        try:
            return self.model.neighbor_sampler(self.fanouts, seed=seed)
        except ValueError as exc:
            raise ConfigError(f"fanouts: {exc}") from None

    def _step(self, batch: Tensor, sampler: NegativeSampler, loss_fn: Callable,
              optimizer: torch.optim.Optimizer) -> float:
        """One optimisation step on the positive pairs ``batch`` (edge positions ``[B]``); returns the loss."""
        users_cpu, pos_cpu = self.edges_cpu[0, batch], self.edges_cpu[1, batch]  # [B], [B]
        neg_cpu = sampler.sample(users_cpu, self.num_negatives)  # [B, N]
        (u, i, j), ego = self._batch_rows(users_cpu, pos_cpu, neg_cpu)
        u = u.float()  # [B, D]
        score = getattr(self.model, "score", None)  # a model with a prediction head scores pairs itself
        if score is None:
            pos_scores = (u * i.float()).sum(-1)  # [B]
            neg_scores = (u.unsqueeze(1) * j.float()).sum(-1)  # [B, N]
        else:
            pos_scores, neg_scores = score(u, i.float()), score(u, j.float())
        loss = loss_fn(pos_scores, neg_scores) + self.weight_decay * l2_regularization(*ego)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        distributed.average_gradients(self.model.parameters())
        optimizer.step()
        return loss.item()

    def _batch_rows(self, users_cpu: Tensor, pos_cpu: Tensor, neg_cpu: Tensor
                    ) -> tuple[tuple[Tensor, Tensor, Tensor], tuple[Tensor, Tensor, Tensor]]:
        """Outputs and layer-0 inputs of the batch's users ``[B, D]``, positives ``[B, D]`` and negatives
        ``[B, N, D]``: from one full propagation, or from the batch's sampled subgraph."""
        autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if self.use_amp else contextlib.nullcontext())
        if self.neighbor_sampler is None:
            users, pos, neg = (t.to(self.device, non_blocking=True) for t in (users_cpu, pos_cpu, neg_cpu))
            with autocast:
                user_emb, item_emb = self.model()  # [U, D], [I, D]
            user_ego, item_ego = self.model.ego_embeddings()
        else:
            from graphrec.graph.sampling import to_device

            link = self.neighbor_sampler.sample_links(users_cpu, pos_cpu, neg_cpu)  # on the CPU
            non_blocking = self.device.type == "cuda"  # through pinned memory
            users, pos, neg = (to_device(t, self.device, non_blocking) for t in (link.users, link.pos_items,
                                                                                 link.neg_items))
            with autocast:
                x_dict, h_dict = self.model.encode_sampled(link.subgraph, self.neighbor_sampler, non_blocking)
            user_emb, item_emb = h_dict["user"], h_dict["item"]  # [n_user, D], [n_item, D]: the subgraph's
            user_ego, item_ego = x_dict["user"], x_dict["item"]
        return (user_emb[users], item_emb[pos], item_emb[neg]), (user_ego[users], item_ego[pos], item_ego[neg])

    def _evaluate_only(self) -> TrainResult:
        """Untrainable models (popularity): evaluate once, train nothing."""
        result = TrainResult()
        if self.eval_fn is not None:
            result.best_metrics = self._evaluate()
        if self.run_dir is not None and distributed.is_main():
            save_weights(self.run_dir / "best.safetensors", self.model)
            atomic_write_json(self.run_dir / "history.json", result.history)
        return result

    def _config(self) -> dict[str, Any]:
        config = {key: getattr(self, key) for key in _RESUME_KEYS if key != "num_edges"}
        config["num_edges"] = self.edges_cpu.size(1)
        if self.batching != "full":  # absent from checkpoints of full-batch runs, older ones included
            config["batching"], config["fanouts"] = self.batching, self.fanouts
        if self.sparse_embeddings:  # absent otherwise, as in older checkpoints
            config["sparse_embeddings"] = True
        return config

    def _save(self, optimizer, generator, sampler, result: TrainResult, step: int,
              stopping: EarlyStopping) -> None:
        """Rank 0 writes the checkpoint; every rank's negative sampler state goes into it."""
        sampler_states = distributed.gather_objects(sampler.state_dict())
        neighbor_states = None if self.neighbor_sampler is None else \
            distributed.gather_objects(self.neighbor_sampler.state_dict())
        if not distributed.is_main():
            return
        state = {
            "epoch": result.epochs_run, "global_step": step, "history": result.history,
            "best_epoch": result.best_epoch, "best_metrics": result.best_metrics,
            **stopping.state_dict(), "stopped_early": result.stopped_early, "config": self._config(),
            "rng": capture_rng_state(), "generator": generator.get_state(), "sampler": sampler.state_dict(),
            "world_size": len(sampler_states),
        }
        if len(sampler_states) > 1:
            state["rank_samplers"] = sampler_states
        if neighbor_states is not None:
            state["neighbor_samplers"] = neighbor_states  # one per rank
        save_checkpoint(self.run_dir / "checkpoint", self.model, optimizer, state)
        atomic_write_json(self.run_dir / "history.json", result.history)

    def _load(self, optimizer, generator, sampler) -> dict[str, Any]:
        state = resume_checkpoint(self.run_dir, self.model, optimizer, self._config())
        if state["config"].get("batching", "full") != self.batching:
            raise CheckpointError(f"{self.run_dir / 'checkpoint'}: was made with batching="
                                  f"{state['config'].get('batching', 'full')!r} (now {self.batching!r}); resume "
                                  "with the same settings or start a new run_dir")
        world = distributed.world_size()
        if state.get("world_size", 1) != world:
            raise CheckpointError(f"{self.run_dir / 'checkpoint'}: was made by {state.get('world_size', 1)} "
                                  f"data-parallel process(es), this run has {world}; resume with the same "
                                  "--nproc (torchrun --nproc-per-node x --nnodes)")
        generator.set_state(state["generator"])
        sampler.load_state_dict(state["rank_samplers"][distributed.rank()] if world > 1 else state["sampler"])
        if self.neighbor_sampler is not None:
            self.neighbor_sampler.load_state_dict(state["neighbor_samplers"][distributed.rank()])
        restore_rng_state(state["rng"])
        return state
