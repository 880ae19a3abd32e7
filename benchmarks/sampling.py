"""Neighbour-sampling throughput: graphrec's vectorised NeighborSampler against DGL 1.1.3's sampler.

The graph is the training message-passing graph of MovieLens-1M (``graphs/ml-1m.yaml``, the PEARLM
copy with its own split: users, items, genres, user attributes and DBpedia entities, every relation
with its reverse; item text is not encoded) when it is found under ``--data-root``, else the
synthetic dataset of :mod:`graphrec.data.synthetic`. Every sampler gets the same batches of seed
users and the same fan-outs (hop 1 first), uniform without replacement, on the CPU:

* ``graphrec``: :meth:`graphrec.graph.sampling.NeighborSampler.sample`, one subgraph in local ids,
  each node expanded once (PyG ``NeighborLoader`` semantics);
* ``dgl-frontier``: the same semantics in DGL: per hop ``dgl.sampling.sample_neighbors`` on the
  nodes first reached at the previous hop, then ``dgl.to_block`` to relabel;
* ``dgl-blocks``: DGL's own mini-batch path, ``MultiLayerNeighborSampler.sample_blocks``, which
  also re-samples every earlier node at each hop (more edges per batch).

Throughput is seeds and sampled edges per second of CPU time (this process's, so load from other
processes does not count) and wall time, the median of ``--rounds`` rounds over the batches, the
samplers taking turns batch by batch, after a warm-up. Before timing, fan-outs of -1 check that
graphrec and dgl-frontier take the same edges.

Usage:
    python benchmarks/sampling.py [--data-root ../shared/data] [--batch-size 1024] [--fanouts 10 5]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch_geometric.data import HeteroData

from graphrec.graph import load_graph, load_recipe, to_dgl
from graphrec.graph.bundle import SPLIT_CODES
from graphrec.graph.sampling import NeighborSampler

REPO_ROOT = Path(__file__).resolve().parents[1]


def load(data_root: Path, cache_dir: Path) -> tuple[str, HeteroData]:
    """(name, message-passing graph of the training interactions) of ML-1M, or of the synthetic data."""
    if (data_root / "ml1m-pearlm" / "kg_final.txt").is_file():
        name, recipe_name = "MovieLens-1M (PEARLM copy, given train split)", "ml-1m"
    else:
        from graphrec.data.synthetic import write_synthetic

        data_root = cache_dir / "data"
        write_synthetic(data_root, num_users=20000, num_items=5000, seed=0)
        name, recipe_name = "synthetic (20,000 users, 5,000 items; ML-1M not found)", "synthetic"
    recipe, _ = load_recipe(recipe_name)
    recipe = dataclasses.replace(recipe, text_features=None)  # sampling needs no text vectors
    bundle = load_graph(recipe, data_root, cache_dir)
    split = bundle.interactions.split
    rows = np.flatnonzero(split == SPLIT_CODES["train"]) if split is not None else np.arange(len(bundle.interactions))
    return name, bundle.message_passing_graph(rows)


def graphrec_sampler(data: HeteroData, fanouts: list[int]) -> Callable[[torch.Tensor], int]:
    sampler = NeighborSampler.from_data(data, fanouts, seed=0)

    def run(users: torch.Tensor) -> int:
        subgraph = sampler.sample({"user": users})
        return sum(edge_index.size(1) for edge_index in subgraph.edge_index_dict.values())

    return run


def dgl_frontier_sampler(graph, fanouts: list[int]) -> Callable[[torch.Tensor], int]:
    import dgl

    def run(users: torch.Tensor, edge_ids: dict | None = None) -> int:
        frontier, seen, num_edges = {"user": users}, {"user": users}, 0
        for fanout in fanouts:
            sampled = dgl.sampling.sample_neighbors(graph, frontier, fanout)
            block = dgl.to_block(sampled, frontier)
            num_edges += block.num_edges()
            if edge_ids is not None:
                for edge_type in sampled.canonical_etypes:  # the block's EID are ids into `sampled`
                    edge_ids.setdefault(edge_type, []).append(sampled.edges[edge_type].data[dgl.EID])
            frontier = {}
            for node_type in block.srctypes:
                ids = block.srcnodes[node_type].data[dgl.NID]
                new = ids[~torch.isin(ids, seen[node_type])] if node_type in seen else ids
                if new.numel():
                    frontier[node_type] = new
                    seen[node_type] = torch.cat([seen[node_type], new]) if node_type in seen else new
            if not frontier:
                break
        return num_edges

    return run


def dgl_blocks_sampler(graph, fanouts: list[int]) -> Callable[[torch.Tensor], int]:
    from dgl.dataloading import MultiLayerNeighborSampler

    sampler = MultiLayerNeighborSampler(list(reversed(fanouts)))  # DGL lists fan-outs from the input layer

    def run(users: torch.Tensor) -> int:
        _, _, blocks = sampler.sample_blocks(graph, {"user": users})
        return sum(block.num_edges() for block in blocks)

    return run


def check_full_fanout(data: HeteroData, graph, users: torch.Tensor, num_hops: int) -> None:
    """With fan-outs of -1 both samplers must take exactly the in-edges of nodes within num_hops - 1 hops."""
    subgraph = NeighborSampler.from_data(data, [-1] * num_hops).sample({"user": users})
    edge_ids: dict = {}
    dgl_frontier_sampler(graph, [-1] * num_hops)(users, edge_ids)
    for edge_type in data.edge_types:
        ours = torch.sort(subgraph.e_id[edge_type]).values
        theirs = torch.sort(torch.cat(edge_ids.get(edge_type, [torch.zeros(0, dtype=torch.long)]))).values
        if not torch.equal(ours, theirs):
            raise SystemExit(f"check failed: {edge_type}: graphrec took {ours.numel()} edges, DGL {theirs.numel()}")
    total = sum(e.numel() for e in subgraph.e_id.values())
    print(f"check: fan-outs {[-1] * num_hops} on {users.numel()} users: the same {total:,} edges in both")


def time_rounds(samplers: dict[str, Callable[[torch.Tensor], int]], batches: list[torch.Tensor],
                rounds: int) -> dict[str, tuple[float, float, int]]:
    """Per sampler: (median wall seconds per round, median CPU seconds per round, edges per round).

    The samplers take turns batch by batch, so that load from other processes falls on all of them alike;
    CPU time (of this process) does not count the time it waits for a core.
    """
    for run in samplers.values():  # warm-up
        for users in batches[:3]:
            run(users)
    wall = {label: [0.0] * rounds for label in samplers}
    cpu = {label: [0.0] * rounds for label in samplers}
    edges = dict.fromkeys(samplers, 0)
    for round_ in range(rounds):
        edges = dict.fromkeys(samplers, 0)
        for users in batches:
            for label, run in samplers.items():
                start_wall, start_cpu = time.perf_counter(), time.process_time()
                edges[label] += run(users)
                wall[label][round_] += time.perf_counter() - start_wall
                cpu[label][round_] += time.process_time() - start_cpu
    return {label: (statistics.median(wall[label]), statistics.median(cpu[label]), edges[label]) for label in samplers}


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import dgl

    return (f"{cpu}, {os.cpu_count()} logical CPUs visible, torch {torch.__version__} with {torch.get_num_threads()} "
            f"thread(s), OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, DGL {dgl.__version__}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-root", default=str(REPO_ROOT.parent / "shared" / "data"))
    parser.add_argument("--cache-dir", default=None, help="graph cache (default: a temporary folder)")
    parser.add_argument("--batch-size", type=int, default=1024, help="seed users per batch")
    parser.add_argument("--fanouts", type=int, nargs="+", default=[10, 5], help="fan-out of hop 1, hop 2, ...")
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    os.environ.setdefault("DGLBACKEND", "pytorch")
    with tempfile.TemporaryDirectory() as scratch:
        name, data = load(Path(args.data_root), Path(args.cache_dir or scratch))
    graph = to_dgl(data)
    num_users = data["user"].num_nodes
    print(f"graph: {name}: {sum(data[t].num_nodes for t in data.node_types):,} nodes of {len(data.node_types)} types, "
          f"{sum(data[e].edge_index.size(1) for e in data.edge_types):,} edges of {len(data.edge_types)} types")
    print(f"machine: {machine()}")
    generator = torch.Generator().manual_seed(0)
    check_full_fanout(data, graph, torch.randperm(num_users, generator=generator)[:64], len(args.fanouts))
    batches = [torch.randperm(num_users, generator=generator)[: args.batch_size] for _ in range(args.batches)]
    print(f"batches: {args.batches} x {args.batch_size} seed users, fan-outs {args.fanouts} (hop 1 first), "
          f"without replacement; median of {args.rounds} rounds")
    samplers = {"graphrec": graphrec_sampler(data, args.fanouts),
                "dgl-frontier": dgl_frontier_sampler(graph, args.fanouts),
                "dgl-blocks": dgl_blocks_sampler(graph, args.fanouts)}
    results = time_rounds(samplers, batches, args.rounds)
    seeds = args.batches * args.batch_size
    print(f"{'sampler':<13} {'edges/batch':>12} {'wall ms/batch':>14} {'CPU ms/batch':>13} {'seeds/s (CPU)':>14} "
          f"{'edges/s (CPU)':>14}")
    for label, (wall, cpu, edges) in results.items():
        print(f"{label:<13} {edges / args.batches:>12,.0f} {1000 * wall / args.batches:>14.2f} "
              f"{1000 * cpu / args.batches:>13.2f} {seeds / cpu:>14,.0f} {edges / cpu:>14,.0f}")
    ours_wall, ours_cpu, ours_edges = results["graphrec"]
    for label in ("dgl-frontier", "dgl-blocks"):
        wall, cpu, edges = results[label]
        print(f"graphrec / {label}: seeds/s {cpu / ours_cpu:.2f}x (CPU time), {wall / ours_wall:.2f}x (wall); "
              f"edges/s {(ours_edges / ours_cpu) / (edges / cpu):.2f}x (CPU time)")

if __name__ == "__main__":
    main()
