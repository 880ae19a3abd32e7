"""Speed and quality of graphrec's LightGCN against PyG's, trained side by side on MovieLens-100K.

Both models see the same split, the same mini-batches, the same negatives (one
uniform negative per positive from :class:`graphrec.train.negatives.NegativeSampler`),
the same BPR loss with L2 on the layer-0 embeddings of the batch, Adam, and by
default the same initial embeddings, so Recall@20 should agree and the time
ratio measures propagation cost. Every mini-batch runs a full propagation, as
both models train. The models alternate batch by batch; times are wall-clock
seconds per epoch, sampling included, and the time ratio uses the medians.

Usage:
    python benchmarks/lightgcn_vs_pyg.py --epochs 3 [--data-root ../shared/data]
"""

from __future__ import annotations

import argparse
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
from torch_geometric.nn.models import LightGCN as PyGLightGCN

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


def recall_at_k(user_emb: Tensor, item_emb: Tensor, train: Tensor, test: Tensor, k: int, chunk: int = 1024) -> float:
    """Mean over test users of |top-k ∩ test items| / |test items|, ranking all items with train items masked."""
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

    def end_epoch(self, seconds: float) -> None:
        """Records an epoch's wall-clock seconds and mean loss."""
        self.seconds.append(seconds)
        self.epoch_losses.append(statistics.mean(self.batch_losses))
        self.batch_losses.clear()

    def step(self, users: Tensor, positives: Tensor, weight_decay: float) -> float:
        """One BPR step with a full propagation; returns the wall-clock seconds it took, sampling included."""
        start = time.perf_counter()
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
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", type=Path, default=REPO_ROOT.parent / "shared" / "data")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=2048)
    parser.add_argument("--embedding-dim", type=int, default=64)
    parser.add_argument("--num-layers", type=int, default=3)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--weight-decay", type=float, default=1e-4)
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pyg-init", choices=["shared", "xavier"], default="shared",
                        help="shared: PyG starts from our initial embeddings; xavier: PyG's own initialisation")
    args = parser.parse_args()

    train, test, num_users, num_items = load_movielens(args.data_root, args.seed)
    torch.manual_seed(args.seed)
    ours = LightGCN(num_users, num_items, args.embedding_dim, args.num_layers)
    ours.set_graph(train)
    pyg = PyGLightGCN(num_users + num_items, args.embedding_dim, args.num_layers)
    if args.pyg_init == "shared":
        with torch.no_grad():
            pyg.embedding.weight.copy_(torch.cat(ours.ego_embeddings()))
    # PyG propagates over an undirected homogeneous graph: items are nodes U..U+I-1.
    item_nodes = train[1] + num_users
    pyg_edges = torch.cat([torch.stack([train[0], item_nodes]), torch.stack([item_nodes, train[0]])], dim=1)

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
    print(f"MovieLens-100K: {num_users} users, {num_items} items, {train.size(1)} train / {test.size(1)} test; "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads; dim {args.embedding_dim}, "
          f"{args.num_layers} layers, batch {args.batch_size}, {args.epochs} epochs, pyg init: {args.pyg_init}")
    generator = torch.Generator().manual_seed(args.seed)
    for epoch in range(1, args.epochs + 1):
        order = torch.randperm(train.size(1), generator=generator)
        epoch_seconds = dict.fromkeys(runs, 0.0)
        for start in range(0, train.size(1), args.batch_size):
            users, positives = train[:, order[start : start + args.batch_size]]  # [B], [B]
            # Models alternate batch by batch, so load from elsewhere on the machine hits both alike.
            for name, run in runs.items():
                epoch_seconds[name] += run.step(users, positives, args.weight_decay)
        for name, run in runs.items():
            run.end_epoch(epoch_seconds[name])
            print(f"  epoch {epoch} {name:<8} {run.seconds[-1]:6.2f} s  loss {run.epoch_losses[-1]:.4f}")

    results = {}
    for name, run in runs.items():
        models[name].eval()
        with torch.no_grad():
            user_emb, item_emb = run.embed()
        results[name] = {
            "recall": recall_at_k(user_emb, item_emb, train, test, args.k),
            "loss": run.epoch_losses[-1],
            # The median is robust to a slow first epoch (lazy kernel set-up) and to load spikes.
            "median_seconds": statistics.median(run.seconds),
            "mean_seconds": statistics.mean(run.seconds),
        }

    print()
    header = f"{'model':<10} {'median s/epoch':>15} {'mean s/epoch':>13} {'final loss':>11} {f'recall@{args.k}':>10}"
    print(header)
    print("-" * len(header))
    for name, result in results.items():
        print(f"{name:<10} {result['median_seconds']:>15.3f} {result['mean_seconds']:>13.3f} "
              f"{result['loss']:>11.4f} {result['recall']:>10.4f}")
    print("-" * len(header))
    print(f"time ratio (ours/pyg): {results['graphrec']['median_seconds'] / results['pyg']['median_seconds']:.3f}")
    print(f"recall@{args.k} ratio (ours/pyg): {results['graphrec']['recall'] / results['pyg']['recall']:.3f}")

if __name__ == "__main__":
    main()
