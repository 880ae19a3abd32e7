"""Path-sampling throughput on the MovieLens-1M knowledge graph: paths per minute, vectorised vs a Python loop.

Samples 3-hop paths ``user -interacts-> item -r-> entity -r'-> item`` from the training split of
``graphs/ml-1m.yaml`` (the PEARLM copy, its own split) with :func:`graphrec.graph.paths.sample_paths`,
for both end rules (``seen``: training paths, ``unseen``: candidate paths). The reference is
the same walk written as a plain Python loop over paths and steps (same rules, same CSR
arrays), run in the same process on a subset of users; the ratio is vectorised / loop speed.
Every sampled path is checked to be made of real edges.

Usage:
    python benchmarks/path_sampling.py [--data-root ../shared/data] [--paths-per-user 200]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import numpy as np

from graphrec.config import load_config
from graphrec.graph.paths import PathGraph, check_paths, sample_paths
from graphrec.pipeline import prepare

REPO_ROOT = Path(__file__).resolve().parents[1]


def loop_sampler(graph: PathGraph, users: list[int], paths_per_user: int, hops: int, end: str, seed: int) -> int:
    """The reference: one path at a time, one step at a time, rejection on the same rules."""
    rng = random.Random(seed)
    indptr, target, relation = graph.indptr.tolist(), graph.target.tolist(), graph.relation.tolist()
    item_lo, item_hi = int(graph.offsets[1]), int(graph.offsets[2])
    seen = set(graph.seen_keys.tolist())
    out = []
    for user in users:
        found, tries = 0, 0
        while found < paths_per_user and tries < 50 * paths_per_user:
            tries += 1
            node, path = user, [user]
            for hop in range(hops):
                edges = [e for e in range(indptr[node], indptr[node + 1])
                         if (relation[e] == 0) == (hop == 0)
                         and (hop < hops - 1 or item_lo <= target[e] < item_hi)
                         and target[e] >= graph.num_users]
                if not edges:
                    break
                node = target[rng.choice(edges)]
                path.append(node)
            if len(path) != hops + 1 or len(set(path)) != len(path):
                continue
            is_seen = user * graph.num_items + (path[-1] - item_lo) in seen
            if (end == "seen") == is_seen:
                out.append(path)
                found += 1
    return len(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-root", default=str(REPO_ROOT.parent / "shared" / "data"))
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--paths-per-user", type=int, default=200)
    parser.add_argument("--hops", type=int, default=3)
    parser.add_argument("--loop-users", type=int, default=100, help="users for the Python-loop reference")
    args = parser.parse_args()
    if not (Path(args.data_root) / "ml1m-pearlm" / "kg_final.txt").is_file():
        sys.exit(f"MovieLens-1M (PEARLM copy) not found under {args.data_root}/ml1m-pearlm; pass --data-root")
    overrides = ["graph.recipe=ml-1m", f"graph.data_root={args.data_root}", "split.method=given"]
    if args.cache_dir:
        overrides.append(f"graph.cache_dir={args.cache_dir}")
    data = prepare(load_config(REPO_ROOT / "configs" / "lightgcn.yaml", overrides))
    started = time.perf_counter()
    graph = PathGraph.from_bundle(data.bundle, data.split.train)
    print(f"path graph: {graph.num_nodes:,} nodes, {graph.num_edges:,} edges, {len(graph.relations)} relations "
          f"({time.perf_counter() - started:.2f} s to build)")
    users = np.flatnonzero(np.diff(graph.indptr[: graph.num_users + 1]) > 0)
    print(f"{'end':<8} {'sampler':<11} {'paths':>10} {'seconds':>8} {'paths/min':>12} {'valid':>6}")
    for end in ("seen", "unseen"):
        started = time.perf_counter()
        paths = sample_paths(graph, hops=args.hops, paths_per_user=args.paths_per_user, end=end, seed=0)
        fast = time.perf_counter() - started
        valid = check_paths(graph, paths).mean()
        fast_rate = len(paths) / fast * 60
        print(f"{end:<8} {'vectorised':<11} {len(paths):>10,} {fast:>8.2f} {fast_rate:>12,.0f} {valid:>6.3f}")
        subset = users[: args.loop_users].tolist()
        started = time.perf_counter()
        count = loop_sampler(graph, subset, args.paths_per_user, args.hops, end, seed=0)
        slow = time.perf_counter() - started
        slow_rate = count / slow * 60
        print(f"{end:<8} {'loop':<11} {count:>10,} {slow:>8.2f} {slow_rate:>12,.0f}")
        print(f"{end:<8} speed ratio vectorised / loop: {fast_rate / slow_rate:.1f}x")


if __name__ == "__main__":
    main()
