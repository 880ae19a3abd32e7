"""Scale on one CPU host: a 1M-user synthetic graph, one epoch of LightGCN and of neighbour-sampled HGT,
and full-ranking evaluation, each with its seconds, its throughput and its peak resident memory.

Phases, in one process, each timed and with its own peak RSS (``VmHWM``, reset at the start of the
phase through ``/proc/self/clear_refs``; ``ru_maxrss`` where that is missing), the whole run's peak
last:

1. **generate**: :func:`graphrec.data.synthetic.generate` (1M users, 200K items, 10M interactions,
   20 communities, 5,000 tags, a KG of 50,000 entities plus the items' own, social links) and
   :func:`~graphrec.data.synthetic.write` as Parquet under ``--data-dir/synthetic``. Kept there:
   a later run with the same sizes reuses the files (``--regenerate`` makes them again).
2. **graph**: the recipe ``graphs/synthetic.yaml``, pointed at the Parquet files, through
   :func:`graphrec.graph.load_graph` (the builder on the first run, its cache under
   ``--data-dir/graphs`` afterwards; ``--rebuild`` times the builder again), then the random 8:1:1
   split of :func:`graphrec.data.splits.split_interactions` (per user, seed 0).
3. **lightgcn**: one epoch of :class:`graphrec.nn.LightGCN` (64 dims, 3 layers) with BPR, one uniform
   negative per positive and Adam, ``--lightgcn-batch`` positives per step, the whole graph propagated
   at every step (the step of :class:`graphrec.train.Trainer`). Throughput is training edges per second.
4. **eval**: full ranking (:func:`graphrec.eval.ranking.full_ranking`) of the LightGCN embeddings:
   each test user against all 200K items, training and validation items masked, in user chunks sized
   from ``--eval-budget-mb``. ``--eval-users N`` ranks a seeded sample of N test users and extrapolates
   the time to all of them (memory does not grow with the number of users: chunks are freed).
5. **hgt**: neighbour-sampled training of :class:`graphrec.nn.GraphRecommender` with an
   :class:`graphrec.nn.HGT` encoder (64 dims, 2 layers, 2 heads) over every node and edge type of the
   graph (users, items, age groups, genres, tags, KG entities; interactions, social links, attributes,
   KG relations, each with its reverse): per step ``--hgt-batch`` training edges, one negative each,
   :meth:`~graphrec.graph.sampling.NeighborSampler.sample_links` with ``--fanouts`` per edge type and
   hop, :meth:`~graphrec.nn.GraphRecommender.encode_sampled`, BPR, Adam. ``--max-batches`` stops early;
   the epoch time is then extrapolated from the mean step and said to be.

Seconds are wall time; ``cpu_s`` is this process's CPU time (at most threads x wall): on a machine shared
with other work it shows how much of the cores the run got. The machine, the torch threads and the
load average at the start and the end are printed with the results.

The HGT step's memory grows with the sampled subgraph: at ``--hgt-batch 4096`` (1.5M sampled edges
a step) the whole process peaked at 5.44 GiB, hence the default. The process sets glibc's malloc to 2
arenas and trim threshold 0 (:func:`lean_malloc`): with glibc's defaults the HGT loop's resident memory
crept up step after step (fragmentation).

Measured (AMD EPYC, 2 cores, 24 GiB, torch 2.13 CPU, 2 threads; the machine otherwise nearly idle,
load average 0.2-2; seeds 0): generate 10.3 s + Parquet 1.7 s (peak 1.80 GiB); builder and split
54.6 s (4.05 GiB); LightGCN epoch 171 s, 43,600 training edges/s at 262,144 a step (4.86 GiB);
full ranking of all 1,000,000 test users x 200,000 items 546 s, 1,830 users/s (2.52 GiB, 0.65 above
the phase's start); HGT, one whole epoch of 4096 edges a step at [10, 5] (1,822 steps): 5,598 s,
1,333 training edges/s, 3.07 s a step (5.44 GiB).

Usage:
    python benchmarks/scale.py [--data-dir /tmp/graphrec-scale] [--threads 2] [--max-batches 50]
        [--eval-users 20000] [--phases generate graph lightgcn eval hgt]
    python benchmarks/scale.py --data-dir /tmp/scale-smoke --users 20000 --items 4000 --interactions 200000 \
        --tags 200 --entities 1000 --lightgcn-batch 16384 --max-batches 5   # a quick smoke run
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import time
from pathlib import Path

import numpy as np
import torch

from graphrec.data.splits import split_interactions
from graphrec.data.synthetic import TABLES, generate, write
from graphrec.eval.ranking import BYTES_PER_SCORE, full_ranking
from graphrec.graph import load_graph
from graphrec.graph.cache import cache_key
from graphrec.graph.recipe import Recipe, find_recipe
from graphrec.nn import HGT, DotProductHead, GraphRecommender, LightGCN, NodeEmbedding
from graphrec.nn.losses import bpr_loss, l2_regularization
from graphrec.nn.recommender import INTERACTS, REV_INTERACTS
from graphrec.schema import from_mapping, load_yaml
from graphrec.train.negatives import NegativeSampler
from graphrec.train.optim import make_optimizer

GIB = 2**30


# ---------------------------------------------------------------------------------------- memory
def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


class PeakMemory:
    """Peak resident memory per phase and over the whole run, in bytes."""

    def __init__(self) -> None:
        self.overall = 0
        self.can_reset = True

    def reset(self) -> int:
        """Start a phase: the peak so far goes into ``overall``; returns the resident memory now."""
        self.overall = max(self.overall, self.peak())
        try:
            with open("/proc/self/clear_refs", "w", encoding="ascii") as handle:
                handle.write("5")  # resets VmHWM (Linux >= 4.0)
        except OSError:
            self.can_reset = False
        now = _status_kib("VmRSS")
        return now * 1024 if now is not None else 0

    def peak(self) -> int:
        high = _status_kib("VmHWM")
        return high * 1024 if high is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    def end(self) -> int:
        """The phase's peak (the run's peak so far when VmHWM cannot be reset)."""
        high = self.peak()
        self.overall = max(self.overall, high)
        return high


class Phase:
    """``with Phase(name, memory) as phase:`` times a phase and measures its peak RSS, then prints them."""

    def __init__(self, name: str, memory: PeakMemory, results: dict) -> None:
        self.name, self.memory, self.results = name, memory, results
        self.info: dict = {}

    def __enter__(self) -> Phase:
        gc.collect()
        self.rss_start = self.memory.reset()
        self.start, self.cpu_start = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc) -> None:
        seconds, cpu = time.perf_counter() - self.start, time.process_time() - self.cpu_start
        peak = self.memory.end()
        self.info.update(seconds=round(seconds, 2), cpu_s=round(cpu, 2), rss_start_gib=round(self.rss_start / GIB, 2),
                         peak_rss_gib=round(peak / GIB, 2))
        self.results[self.name] = self.info
        if exc[0] is None:
            details = ", ".join(f"{k}={v}" for k, v in self.info.items()
                                if k not in ("seconds", "cpu_s", "rss_start_gib", "peak_rss_gib"))
            print(f"[{self.name}] {seconds:.1f} s ({cpu:.1f} s CPU), peak RSS {peak / GIB:.2f} GiB (at start "
                  f"{self.rss_start / GIB:.2f})" + (f"; {details}" if details else ""), flush=True)


# ---------------------------------------------------------------------------------------- data
def generate_kwargs(args: argparse.Namespace) -> dict:
    return {"num_users": args.users, "num_items": args.items, "num_interactions": args.interactions,
            "num_communities": args.communities, "num_tags": args.tags, "num_kg_entities": args.entities,
            "seed": args.seed}


def ensure_data(args: argparse.Namespace, memory: PeakMemory, results: dict) -> Path:
    folder = args.data_dir / "synthetic"
    stamp = folder / "generate.json"
    kwargs = generate_kwargs(args)
    fresh = stamp.is_file() and json.loads(stamp.read_text()) == kwargs and \
        all((folder / f"{name}.parquet").is_file() for name in TABLES)
    if fresh and not args.regenerate:
        print(f"[generate] reusing {folder} (made earlier with the same sizes; --regenerate to time it)")
        results["generate"] = {"reused": str(folder)}
        return folder
    with Phase("generate", memory, results) as phase:
        data = generate(**kwargs)
        phase.info["generate_s"] = round(time.perf_counter() - phase.start, 2)
        written = time.perf_counter()
        write(data, folder, format="parquet")
        phase.info["write_parquet_s"] = round(time.perf_counter() - written, 2)
        phase.info["rows"] = {name: len(table) for name, table in data.tables().items()}
        del data
    stamp.write_text(json.dumps(kwargs))
    return folder


def parquet_recipe() -> Recipe:
    """``graphs/synthetic.yaml`` with every ``.csv`` path pointing at the ``.parquet`` file instead."""

    def swap(node):
        if isinstance(node, dict):
            return {key: value.replace(".csv", ".parquet") if key == "path" and isinstance(value, str) else swap(value)
                    for key, value in node.items()}
        return [swap(value) for value in node] if isinstance(node, list) else node

    path = find_recipe("synthetic")
    return from_mapping(Recipe, swap(load_yaml(path, "graph recipe")), f"{path} (Parquet)")


def load_data(args: argparse.Namespace, memory: PeakMemory, results: dict):
    recipe, cache_dir = parquet_recipe(), args.data_dir / "graphs"
    cached = (cache_dir / f"{recipe.name}-{cache_key(recipe, args.data_dir)}" / "meta.json").is_file()
    with Phase("graph", memory, results) as phase:
        bundle = load_graph(recipe, args.data_dir, cache_dir, rebuild=args.rebuild)
        phase.info["how"] = "loaded from cache" if cached and not args.rebuild else "built by the builder (and cached)"
        inter = bundle.interactions
        split = split_interactions("random", inter.user, inter.item, inter.timestamp, (0.8, 0.1, 0.1), args.seed)
        train, valid, test = (inter.edge_index(rows) for rows in (split.train, split.valid, split.test))
        phase.info["nodes"] = {t: bundle.idmap.num_nodes(t) for t in bundle.graph.node_types}
        phase.info["edges"] = {"interactions": len(inter), "train": train.size(1), "valid": valid.size(1),
                               "test": test.size(1),
                               "side (with reverse)": sum(bundle.graph[et].edge_index.size(1)
                                                          for et in bundle.graph.edge_types)}
    return bundle, train, valid, test


# ---------------------------------------------------------------------------------------- training
def bpr_step(optimizer, pos_scores, neg_scores, ego, weight_decay: float) -> float:
    loss = bpr_loss(pos_scores, neg_scores) + weight_decay * l2_regularization(*ego)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach().item()


def train_lightgcn(args, num_users: int, num_items: int, train: torch.Tensor, memory: PeakMemory,
                   results: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """One epoch of LightGCN; returns the final (user, item) embeddings for evaluation."""
    with Phase("lightgcn", memory, results) as phase:
        torch.manual_seed(args.seed)
        model = LightGCN(num_users, num_items, embedding_dim=64, num_layers=3)
        model.set_graph(train)
        negatives = NegativeSampler(train, num_users, num_items, seed=args.seed + 1)
        optimizer = torch.optim.Adam(model.parameters(), lr=args.lightgcn_lr)
        setup = time.perf_counter() - phase.start
        order = torch.randperm(train.size(1), generator=torch.Generator().manual_seed(args.seed))
        batches = order.split(args.lightgcn_batch)
        losses, start = [], time.perf_counter()
        for index, batch in enumerate(batches):
            users, pos = train[0, batch], train[1, batch]  # [B], [B]
            neg = negatives.sample(users, 1)  # [B, 1]
            user_emb, item_emb = model()  # the whole graph, every step
            u = user_emb[users]
            pos_scores = (u * item_emb[pos]).sum(-1)
            neg_scores = (u.unsqueeze(1) * item_emb[neg]).sum(-1)
            user_ego, item_ego = model.ego_embeddings()
            losses.append(bpr_step(optimizer, pos_scores, neg_scores, (user_ego[users], item_ego[pos], item_ego[neg]),
                                   args.weight_decay))
            if index == 0 or (index + 1) % max(1, len(batches) // 8) == 0:
                print(f"  lightgcn step {index + 1}/{len(batches)}: loss {losses[-1]:.4f}, "
                      f"{(time.perf_counter() - start) / (index + 1):.2f} s/step", flush=True)
        seconds = time.perf_counter() - start
        model.eval()
        with torch.no_grad():
            user_emb, item_emb = model()  # propagated once for evaluation
        phase.info.update(batch=args.lightgcn_batch, steps=len(batches), setup_s=round(setup, 2),
                          epoch_s=round(seconds, 2), edges_per_s=round(train.size(1) / seconds),
                          s_per_step=round(seconds / len(batches), 2), first_loss=round(losses[0], 4),
                          last_loss=round(losses[-1], 4))
        del model, optimizer, negatives
    return user_emb, item_emb


def evaluate(args, user_emb: torch.Tensor, item_emb: torch.Tensor, train, valid, test, memory: PeakMemory,
             results: dict) -> None:
    num_users, num_items = user_emb.size(0), item_emb.size(0)
    test_users = torch.unique(test[0])
    users = test_users
    if args.eval_users and args.eval_users < test_users.numel():
        pick = torch.randperm(test_users.numel(), generator=torch.Generator().manual_seed(args.seed))
        users = test_users[pick[: args.eval_users]].sort().values
    budget = args.eval_budget_mb * 2**20
    with Phase("eval", memory, results) as phase:
        metrics = full_ranking(lambda batch: user_emb[batch] @ item_emb.T, num_users, num_items, test, [train, valid],
                               ks=(10, 20), names=("recall", "ndcg"), users=users, max_chunk_bytes=budget)
        seconds = time.perf_counter() - phase.start
        phase.info.update(users=users.numel(), test_users=test_users.numel(), items=num_items,
                          chunk_users=max(1, budget // (BYTES_PER_SCORE * num_items)),
                          users_per_s=round(users.numel() / seconds),
                          **{key: round(value, 4) for key, value in metrics.items() if key != "num_users"})
        if users.numel() < test_users.numel():
            phase.info["extrapolated_all_test_users_s"] = round(seconds * test_users.numel() / users.numel())


def train_hgt(args, num_nodes: dict[str, int], side: dict, train: torch.Tensor, memory: PeakMemory,
              results: dict) -> None:
    """``num_nodes``: node count per type; ``side``: ``[2, E]`` per side edge type (reverse types included)."""
    with Phase("hgt", memory, results) as phase:
        torch.manual_seed(args.seed)
        embedding = NodeEmbedding(num_nodes, 64)
        encoder = HGT((list(num_nodes), [*side, INTERACTS, REV_INTERACTS]), channels=64, num_layers=len(args.fanouts),
                      heads=2)
        model = GraphRecommender(embedding, encoder, side, DotProductHead())
        model.set_graph(train)
        sampler = model.neighbor_sampler(list(args.fanouts), seed=args.seed)
        negatives = NegativeSampler(train, model.num_users, model.num_items, seed=args.seed + 1)
        optimizer = make_optimizer(model, args.hgt_lr, sparse_embeddings=args.sparse_embeddings)
        setup = time.perf_counter() - phase.start
        order = torch.randperm(train.size(1), generator=torch.Generator().manual_seed(args.seed))
        batches = order.split(args.hgt_batch)
        num_batches = len(batches) if args.max_batches is None else min(args.max_batches, len(batches))
        sample_s = compute_s = 0.0
        losses, sampled_edges, start = [], 0, time.perf_counter()
        for index in range(num_batches):
            batch = batches[index]
            tick = time.perf_counter()
            users, pos = train[0, batch], train[1, batch]
            neg = negatives.sample(users, 1)  # [B, 1]
            link = sampler.sample_links(users, pos, neg)
            tock = time.perf_counter()
            x_dict, h_dict = model.encode_sampled(link.subgraph, sampler)
            u = h_dict["user"][link.users]  # [B, D]
            pos_scores = model.score(u, h_dict["item"][link.pos_items])
            neg_scores = model.score(u, h_dict["item"][link.neg_items])
            ego = (x_dict["user"][link.users], x_dict["item"][link.pos_items], x_dict["item"][link.neg_items])
            losses.append(bpr_step(optimizer, pos_scores, neg_scores, ego, args.weight_decay))
            sample_s, compute_s = sample_s + tock - tick, compute_s + time.perf_counter() - tock
            sampled_edges += sum(e.size(1) for e in link.subgraph.edge_index_dict.values())
            if index == 0 or (index + 1) % max(1, num_batches // 8) == 0:
                print(f"  hgt step {index + 1}/{num_batches} (epoch: {len(batches)}): loss {losses[-1]:.4f}, "
                      f"{(time.perf_counter() - start) / (index + 1):.2f} s/step", flush=True)
        seconds = time.perf_counter() - start
        edges = sum(b.numel() for b in batches[:num_batches])
        phase.info.update(batch=args.hgt_batch, fanouts=list(args.fanouts), sparse_embeddings=args.sparse_embeddings,
                          steps_run=num_batches,
                          steps_per_epoch=len(batches), setup_s=round(setup, 2), train_s=round(seconds, 2),
                          sample_s=round(sample_s, 2), compute_s=round(compute_s, 2),
                          edges_per_s=round(edges / seconds), sampled_edges_per_step=round(sampled_edges / num_batches),
                          first_loss=round(losses[0], 4),
                          mean_loss_last_tenth=round(float(np.mean(losses[-max(1, num_batches // 10):])), 4))
        if num_batches < len(batches):
            phase.info["extrapolated_epoch_s"] = round(seconds / num_batches * len(batches))
        else:
            phase.info["epoch_s"] = round(seconds, 2)
        del model, optimizer, sampler, negatives


# ---------------------------------------------------------------------------------------- main
def lean_malloc() -> str:
    """Two malloc arenas and freed memory handed back to the system at once (glibc ``mallopt``).

    With glibc's defaults the resident memory of the HGT loop creeps up by about 0.3 GiB a step for the
    first steps (fragmentation across per-thread arenas: each step frees and allocates gigabytes of
    differently sized tensors); with these settings it stays flat. The same as starting Python with
    ``MALLOC_ARENA_MAX=2 MALLOC_TRIM_THRESHOLD_=0``.
    """
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        m_trim_threshold, m_arena_max = -1, -8  # from glibc's malloc.h
        if libc.mallopt(m_arena_max, 2) and libc.mallopt(m_trim_threshold, 0):
            return "glibc malloc: 2 arenas, trim threshold 0"
    except (OSError, AttributeError):
        pass
    return "malloc settings unchanged (no glibc mallopt)"


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo", encoding="utf-8")
                if line.startswith("model name")), platform.processor()) if os.path.exists("/proc/cpuinfo") else \
        platform.processor()
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GIB
    return (f"{cpu}; {os.cpu_count()} cores visible, torch threads {torch.get_num_threads()}; {memory:.0f} GiB RAM; "
            f"Python {platform.python_version()}, torch {torch.__version__}, numpy {np.__version__}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/graphrec-scale"),
                        help="where the generated tables and the graph cache are kept")
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--items", type=int, default=200_000)
    parser.add_argument("--interactions", type=int, default=10_000_000)
    parser.add_argument("--communities", type=int, default=20)
    parser.add_argument("--tags", type=int, default=5_000)
    parser.add_argument("--entities", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default: 2)")
    parser.add_argument("--regenerate", action="store_true", help="generate and write the tables even if present")
    parser.add_argument("--rebuild", action="store_true", help="run the graph builder even if its cache is present")
    parser.add_argument("--phases", nargs="+", default=["generate", "graph", "lightgcn", "eval", "hgt"],
                        choices=["generate", "graph", "lightgcn", "eval", "hgt"])
    parser.add_argument("--lightgcn-batch", type=int, default=262_144, help="positives per LightGCN step")
    parser.add_argument("--lightgcn-lr", type=float, default=0.01)
    parser.add_argument("--weight-decay", type=float, default=1e-4)
    parser.add_argument("--eval-users", type=int, default=None,
                        help="rank a seeded sample of this many test users (default: all) and extrapolate")
    parser.add_argument("--eval-budget-mb", type=int, default=512, help="memory budget of one ranking chunk")
    parser.add_argument("--hgt-batch", type=int, default=4096, help="training edges per HGT step")
    parser.add_argument("--hgt-lr", type=float, default=0.001)
    parser.add_argument("--fanouts", type=int, nargs="+", default=[10, 5], help="per edge type and hop")
    parser.add_argument("--sparse-embeddings", action="store_true",
                        help="HGT: sparse gradients and lazy Adam for the ID tables (train.sparse_embeddings)")
    parser.add_argument("--max-batches", type=int, default=None,
                        help="HGT steps to run (default: a whole epoch); the epoch time is then extrapolated")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--glibc-malloc-defaults", action="store_true",
                        help="keep glibc's malloc settings (by default: 2 arenas, trim threshold 0; see lean_malloc)")
    args = parser.parse_args()
    allocator = "glibc malloc defaults" if args.glibc_malloc_defaults else lean_malloc()
    torch.set_num_threads(args.threads)
    args.data_dir.mkdir(parents=True, exist_ok=True)
    print(f"machine: {machine()}; {allocator}")
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    memory, results = PeakMemory(), {}
    run_start = time.perf_counter()

    if "generate" in args.phases or not (args.data_dir / "synthetic" / "generate.json").is_file():
        ensure_data(args, memory, results)
    if {"graph", "lightgcn", "eval", "hgt"} & set(args.phases):
        bundle, train, valid, test = load_data(args, memory, results)
        if {"lightgcn", "eval"} & set(args.phases):
            user_emb, item_emb = train_lightgcn(args, bundle.num_users, bundle.num_items, train, memory, results)
            if "eval" in args.phases:
                evaluate(args, user_emb, item_emb, train, valid, test, memory, results)
            del user_emb, item_emb
        if "hgt" in args.phases:
            # Keep only what the model needs: the id maps, texts and the interaction table go.
            num_nodes = {t: bundle.idmap.num_nodes(t) for t in bundle.graph.node_types}
            side = {tuple(et): bundle.graph[et].edge_index for et in bundle.graph.edge_types}
            del bundle, valid, test
            train_hgt(args, num_nodes, side, train, memory, results)

    memory.end()
    results["run"] = {"seconds": round(time.perf_counter() - run_start, 1),
                      "peak_rss_gib": round(memory.overall / GIB, 2),
                      "load_average_end": [round(x, 2) for x in os.getloadavg()],
                      "per_phase_peaks": memory.can_reset, "machine": machine(), "allocator": allocator, "args": {
                          key: str(value) if isinstance(value, Path) else value for key, value in vars(args).items()}}
    print(f"whole run: {results['run']['seconds']} s, peak RSS {memory.overall / GIB:.2f} GiB "
          f"(target: 8 GiB); load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(json.dumps(results, indent=1))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
