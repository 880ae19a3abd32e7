"""Speed, memory and quality of graphrec's LightGCN against PyG's, trained side by side on MovieLens.

Both models see the same split, the same mini-batches, the same negatives (one
uniform negative per positive from :class:`graphrec.train.negatives.NegativeSampler`),
the same BPR loss with L2 on the layer-0 embeddings of the batch, Adam, and by
default the same initial embeddings, so Recall@20 should agree and the time
ratio measures propagation cost. Every mini-batch runs a full propagation, as
both models train. The models alternate batch by batch; times are wall-clock
seconds per epoch, sampling included, and the time ratio uses the medians; CPU
seconds (this process's) are printed too: on a machine shared with other work they
do not count the time spent waiting for a core (use one thread for them to mean
that). ``--max-batches N`` stops every epoch after ``N`` batches and scales the
times to a whole epoch (the Recall@K is then of the shortened training).
Peak memory is, per model, the largest rise of this process's resident set
during one of its training steps above the resident set before the step
(``VmHWM``, reset through ``/proc/self/clear_refs`` before every step): what a
step allocates on top of the embeddings and Adam state, which both models hold
alike.

Data (``--recipe``):

* ``ml-100k``: ``ml-100k/raw/u.data``, a random 80/20 split of the rows;
* ``ml-1m``: the MovieLens-1M copy of ``graphs/ml-1m.yaml``, split as
  ``configs/lightgcn.yaml`` does (random 8:1:1 per user, seed 0): both train on the
  training rows, Recall@K is on the test rows with training and validation items masked.

Usage:
    python benchmarks/lightgcn_vs_pyg.py --epochs 3 [--data-root ../shared/data]
    python benchmarks/lightgcn_vs_pyg.py --recipe ml-1m --epochs 2 [--max-batches 100]
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import re
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import Tensor
from torch_geometric.nn.conv.gcn_conv import gcn_norm
from torch_geometric.nn.models import LightGCN as PyGLightGCN
from torch_geometric.utils import to_torch_csr_tensor

from graphrec.nn import LightGCN, bpr_loss, l2_regularization
from graphrec.train.negatives import NegativeSampler

REPO_ROOT = Path(__file__).resolve().parents[1]
EmbedFn = Callable[[], tuple[Tensor, Tensor]]


def load_movielens(data_root: Path, seed: int) -> tuple[Tensor, Tensor, int, int]:
    """Returns (train [2, E], test [2, E'], num_users, num_items): a random 80/20 split of the rows."""
    path = data_root / "ml-100k" / "raw" / "u.data"
    if not path.is_file():
        sys.exit(f"MovieLens-100K not found at {path}; pass --data-root DIR where DIR/ml-100k/raw/u.data exists")
    table = pd.read_csv(path, sep="\t", names=["user", "item", "rating", "timestamp"])
    users, user_ids = pd.factorize(table["user"])
    items, item_ids = pd.factorize(table["item"])
    edges = torch.from_numpy(np.stack([users, items])).long()  # [2, E]
    order = torch.from_numpy(np.random.default_rng(seed).permutation(edges.size(1)))
    num_train = int(0.8 * edges.size(1))
    return edges[:, order[:num_train]], edges[:, order[num_train:]], len(user_ids), len(item_ids)


def load_movielens_1m(data_root: Path, cache_dir: str, seed: int) -> tuple[Tensor, Tensor, Tensor, int, int]:
    """Returns (train [2, E], test [2, E'], train and validation [2, E''], num_users, num_items) of ML-1M, 8:1:1."""
    from graphrec.config import load_config
    from graphrec.pipeline import prepare

    if not (data_root / "ml1m-pearlm" / "train.txt.gz").is_file():
        sys.exit(f"MovieLens-1M not found under {data_root}; pass --data-root DIR where DIR/ml1m-pearlm/ exists")
    config = load_config(REPO_ROOT / "configs" / "lightgcn.yaml", [
        "graph.recipe=ml-1m", f"graph.data_root={data_root}", f"graph.cache_dir={cache_dir}", f"seed={seed}",
        "split.method=random", "split.ratios=[0.8,0.1,0.1]"])
    data = prepare(config)
    return data.train, data.test, torch.cat([data.train, data.valid], dim=1), data.bundle.num_users, \
        data.bundle.num_items


def memory_kib() -> tuple[int, int]:
    """(peak, current) resident set of this process in KiB."""
    status = Path("/proc/self/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+)", status).group(1)), int(re.search(r"VmRSS:\s+(\d+)", status).group(1))


def recall_at_k(user_emb: Tensor, item_emb: Tensor, train: Tensor, test: Tensor, k: int, chunk: int = 1024) -> float:
    """Mean over test users of |top-k ∩ test items| / |test items|, ranking all items with ``train`` items masked."""
    num_users, num_items = user_emb.size(0), item_emb.size(0)
    test_count = torch.bincount(test[0], minlength=num_users)
    eval_users = torch.nonzero(test_count > 0).squeeze(1)
    total = 0.0
    for start in range(0, eval_users.numel(), chunk):
        batch = eval_users[start : start + chunk]  # [C]
        position = torch.full((num_users,), -1, dtype=torch.long)
        position[batch] = torch.arange(batch.numel())
        scores = user_emb[batch] @ item_emb.t()  # [C, I]
        seen = position[train[0]] >= 0
        scores[position[train[0, seen]], train[1, seen]] = float("-inf")
        top = scores.topk(k, dim=1).indices  # [C, k]
        relevant = torch.zeros(batch.numel(), num_items, dtype=torch.bool)
        wanted = position[test[0]] >= 0
        relevant[position[test[0, wanted]], test[1, wanted]] = True
        total += (relevant.gather(1, top).sum(1) / test_count[batch]).sum().item()
    return total / eval_users.numel()


@dataclass
class Run:
    """One model under training: how to embed, what to regularise, its optimizer, sampler and timings."""

    embed: EmbedFn
    ego: EmbedFn
    optimizer: torch.optim.Optimizer
    sampler: NegativeSampler
    seconds: list[float] = field(default_factory=list)  # per epoch
    epoch_losses: list[float] = field(default_factory=list)  # mean BPR + L2 loss per epoch
    batch_losses: list[float] = field(default_factory=list)  # of the running epoch
    peak_kib: int = 0  # the largest rise of the resident set during one step
    cpu_seconds: list[float] = field(default_factory=list)  # per epoch, this process's CPU time

    def end_epoch(self, seconds: float, cpu_seconds: float) -> None:
        """Records an epoch's wall-clock and CPU seconds and its mean loss."""
        self.seconds.append(seconds)
        self.cpu_seconds.append(cpu_seconds)
        self.epoch_losses.append(statistics.mean(self.batch_losses))
        self.batch_losses.clear()

    def step(self, users: Tensor, positives: Tensor, weight_decay: float) -> tuple[float, float]:
        """One BPR step with a full propagation; returns the (wall-clock, CPU) seconds it took, sampling included."""
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current resident set
        _, before = memory_kib()
        start, cpu_start = time.perf_counter(), time.process_time()
        negatives = self.sampler.sample(users).squeeze(1)  # [B]
        user_emb, item_emb = self.embed()
        pos = (user_emb[users] * item_emb[positives]).sum(-1)
        neg = (user_emb[users] * item_emb[negatives]).sum(-1)
        user_ego, item_ego = self.ego()
        loss = bpr_loss(pos, neg) + weight_decay * l2_regularization(
            user_ego[users], item_ego[positives], item_ego[negatives]
        )
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        self.batch_losses.append(loss.item())
        seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
        self.peak_kib = max(self.peak_kib, memory_kib()[0] - before)
        return seconds, cpu_seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", type=Path, default=REPO_ROOT.parent / "shared" / "data")
    parser.add_argument("--recipe", choices=["ml-100k", "ml-1m"], default="ml-100k")
    parser.add_argument("--cache-dir", default="/tmp/grcache", help="graph cache (ml-1m)")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--max-batches", type=int, default=None,
                        help="stop each epoch after this many batches; times are then scaled to a whole epoch")
    parser.add_argument("--batch-size", type=int, default=2048)
    parser.add_argument("--embedding-dim", type=int, default=64)
    parser.add_argument("--num-layers", type=int, default=3)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--weight-decay", type=float, default=1e-4)
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pyg-adjacency", choices=["edge_index", "csr"], default="edge_index",
                        help="edge_index: PyG's LightGCN as documented, message passing over edge_index; "
                             "csr: a normalised torch.sparse CSR adjacency built once (PyG's spmm path)")
    parser.add_argument("--pyg-init", choices=["shared", "xavier"], default="shared",
                        help="shared: PyG starts from our initial embeddings; xavier: PyG's own initialisation")
    args = parser.parse_args()

    if args.recipe == "ml-1m":
        train, test, masked, num_users, num_items = load_movielens_1m(args.data_root, args.cache_dir, args.seed)
        name = "MovieLens-1M (random 8:1:1)"
    else:
        train, test, num_users, num_items = load_movielens(args.data_root, args.seed)
        masked, name = train, "MovieLens-100K (random 80/20)"
    torch.manual_seed(args.seed)
    ours = LightGCN(num_users, num_items, args.embedding_dim, args.num_layers)
    ours.set_graph(train)
    # csr: the normalised adjacency built once, as a torch.sparse CSR matrix PyG multiplies by (LGConv's spmm),
    # with normalize=False so that LGConv does not normalise it again at every layer of every batch.
    pyg = PyGLightGCN(num_users + num_items, args.embedding_dim, args.num_layers,
                      normalize=args.pyg_adjacency == "edge_index")
    if args.pyg_init == "shared":
        with torch.no_grad():
            pyg.embedding.weight.copy_(torch.cat(ours.ego_embeddings()))
    # PyG propagates over an undirected homogeneous graph: items are nodes U..U+I-1.
    item_nodes = train[1] + num_users
    pyg_edges = torch.cat([torch.stack([train[0], item_nodes]), torch.stack([item_nodes, train[0]])], dim=1)
    if args.pyg_adjacency == "csr":
        num_nodes = num_users + num_items
        edge_index, edge_weight = gcn_norm(pyg_edges, None, num_nodes, add_self_loops=False)
        pyg_edges = to_torch_csr_tensor(edge_index, edge_weight, size=(num_nodes, num_nodes))

    def pyg_embed() -> tuple[Tensor, Tensor]:
        out = pyg.get_embedding(pyg_edges)
        return out[:num_users], out[num_users:]

    def pyg_ego() -> tuple[Tensor, Tensor]:
        return pyg.embedding.weight[:num_users], pyg.embedding.weight[num_users:]

    models = {"graphrec": ours, "pyg": pyg}
    runs = {
        "graphrec": Run(ours.forward, ours.ego_embeddings, torch.optim.Adam(ours.parameters(), lr=args.lr),
                        NegativeSampler(train, num_users, num_items, seed=args.seed)),
        "pyg": Run(pyg_embed, pyg_ego, torch.optim.Adam(pyg.parameters(), lr=args.lr),
                   NegativeSampler(train, num_users, num_items, seed=args.seed)),
    }
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.2f} at start")
    print(f"{name}: {num_users} users, {num_items} items, {train.size(1)} train / {test.size(1)} test; "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads; dim {args.embedding_dim}, "
          f"{args.num_layers} layers, batch {args.batch_size}, {args.epochs} epochs, pyg init: {args.pyg_init}, "
          f"pyg adjacency: {args.pyg_adjacency}")
    generator = torch.Generator().manual_seed(args.seed)
    for epoch in range(1, args.epochs + 1):
        order = torch.randperm(train.size(1), generator=generator)
        epoch_seconds, epoch_cpu = dict.fromkeys(runs, 0.0), dict.fromkeys(runs, 0.0)
        starts = range(0, train.size(1), args.batch_size)
        if args.max_batches is not None:
            starts = starts[: args.max_batches]
        scale = math.ceil(train.size(1) / args.batch_size) / len(starts)  # 1 unless --max-batches cut the epoch
        for start in starts:
            users, positives = train[:, order[start : start + args.batch_size]]  # [B], [B]
            # Models alternate batch by batch, so load from elsewhere on the machine hits both alike.
            for name, run in runs.items():
                seconds, cpu_seconds = run.step(users, positives, args.weight_decay)
                epoch_seconds[name] += seconds * scale
                epoch_cpu[name] += cpu_seconds * scale
        for name, run in runs.items():
            run.end_epoch(epoch_seconds[name], epoch_cpu[name])
            print(f"  epoch {epoch} {name:<8} {run.seconds[-1]:6.2f} s ({run.cpu_seconds[-1]:6.2f} CPU s)  "
                  f"loss {run.epoch_losses[-1]:.4f}", flush=True)

    results = {}
    for name, run in runs.items():
        models[name].eval()
        with torch.no_grad():
            user_emb, item_emb = run.embed()
        results[name] = {
            "recall": recall_at_k(user_emb, item_emb, masked, test, args.k),
            "loss": run.epoch_losses[-1],
            # The median is robust to a slow first epoch (lazy kernel set-up) and to load spikes.
            "median_seconds": statistics.median(run.seconds),
            "mean_seconds": statistics.mean(run.seconds),
            "median_cpu_seconds": statistics.median(run.cpu_seconds),
            "peak_mib": run.peak_kib / 1024,
        }

    print()
    if args.max_batches is not None:
        print(f"(epochs cut at {args.max_batches} batches; seconds per epoch scaled to "
              f"{math.ceil(train.size(1) / args.batch_size)} batches)")
    header = (f"{'model':<10} {'median s/epoch':>15} {'mean s/epoch':>13} {'CPU s/epoch':>12} {'final loss':>11} "
              f"{f'recall@{args.k}':>10} {'step peak MiB':>14}")
    print(header)
    print("-" * len(header))
    for name, result in results.items():
        print(f"{name:<10} {result['median_seconds']:>15.3f} {result['mean_seconds']:>13.3f} "
              f"{result['median_cpu_seconds']:>12.3f} {result['loss']:>11.4f} {result['recall']:>10.4f} "
              f"{result['peak_mib']:>14.0f}")
    print("-" * len(header))
    print(f"time ratio (ours/pyg): {results['graphrec']['median_seconds'] / results['pyg']['median_seconds']:.3f}")
    print(f"CPU time ratio (ours/pyg): "
          f"{results['graphrec']['median_cpu_seconds'] / results['pyg']['median_cpu_seconds']:.3f}")
    print(f"recall@{args.k} ratio (ours/pyg): {results['graphrec']['recall'] / results['pyg']['recall']:.3f}")
    print(f"step peak memory ratio (ours/pyg): {results['graphrec']['peak_mib'] / results['pyg']['peak_mib']:.3f}")
    print(f"load average {os.getloadavg()[0]:.2f} at the end")

if __name__ == "__main__":
    main()
