"""Full-ranking evaluation: graphrec's chunked ``full_ranking`` against a naive dense implementation.

Both rank every item for every test user of the same data, with the same user and item embeddings
and the same masked items, and must give the same metric values (asserted):

* ``graphrec``: :func:`graphrec.eval.ranking.full_ranking`, users in chunks; the masked items and
  the relevant items of a chunk come from CSR arrays, the metrics from cumulative sums over the
  top-K hit matrix;
* ``naive``: the way evaluation loops are often written: the whole ``[U, I]`` score matrix at once,
  a dense ``[U, I]`` boolean mask of training (and validation) items, one ``topk``, then a Python
  loop over users computing each metric from sets.

The data is the MovieLens-1M random 8:1:1 split of ``configs/lightgcn.yaml`` (``--recipe ml-1m``)
with random embeddings (``--run``: the best weights of a trained run instead); ``--scale U I`` ranks
a synthetic split of ``U`` users and ``I`` items instead (20 held-out items per user). Time is the
median wall-clock of ``--rounds`` rounds; peak memory is the resident-set high-water mark above the
resident set before the call (``VmHWM``, reset through ``/proc/self/clear_refs`` before each call).

Usage:
    python benchmarks/full_ranking.py --data-root ../shared/data
    python benchmarks/full_ranking.py --scale 100000 20000 --skip-naive-above 4e9
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import re
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor

from graphrec.eval.ranking import full_ranking

REPO_ROOT = Path(__file__).resolve().parents[1]
KS = (10, 20)
NAMES = ("recall", "precision", "hr", "ndcg", "mrr", "map")


def memory_kib() -> tuple[int, int]:
    """(peak, current) resident set of this process in KiB."""
    status = Path("/proc/self/status").read_text()
    return (int(re.search(r"VmHWM:\s+(\d+)", status).group(1)), int(re.search(r"VmRSS:\s+(\d+)", status).group(1)))


def measure(fn: Callable[[], dict[str, float]]) -> tuple[dict[str, float], float, float]:
    """Runs ``fn`` once; returns (its result, seconds, peak MiB above the resident set before)."""
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current resident set
    _, before = memory_kib()
    start = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - start
    peak, _ = memory_kib()
    return result, seconds, (peak - before) / 1024


def naive_full_ranking(user_emb: Tensor, item_emb: Tensor, eval_edges: Tensor, exclude: list[Tensor],
                       ks=KS) -> dict[str, float]:
    """Dense scores and mask for all users at once, one topk, metrics per user in Python."""
    num_users, num_items = user_emb.size(0), item_emb.size(0)
    scores = user_emb @ item_emb.t()  # [U, I]
    mask = torch.zeros(num_users, num_items, dtype=torch.bool)  # [U, I]
    for edges in exclude:
        mask[edges[0], edges[1]] = True
    scores = scores.masked_fill(mask, float("-inf"))
    top = scores.topk(max(ks), dim=1)  # [U, maxK]
    top_items, top_scores = top.indices.tolist(), top.values.tolist()
    relevant: dict[int, set[int]] = {}
    for user, item in eval_edges.t().tolist():
        relevant.setdefault(user, set()).add(item)
    totals = {f"{name}@{k}": 0.0 for k in ks for name in NAMES}
    for user, items in relevant.items():
        ranked = [i for i, s in zip(top_items[user], top_scores[user]) if s > float("-inf")]
        for k in ks:
            hits = [i in items for i in ranked[:k]]
            count = sum(hits)
            totals[f"recall@{k}"] += count / len(items)
            totals[f"precision@{k}"] += count / k
            totals[f"hr@{k}"] += float(count > 0)
            dcg = sum(1 / math.log2(j + 2) for j, hit in enumerate(hits) if hit)
            idcg = sum(1 / math.log2(j + 2) for j in range(min(len(items), k)))
            totals[f"ndcg@{k}"] += dcg / idcg
            totals[f"mrr@{k}"] += next((1 / (j + 1) for j, hit in enumerate(hits) if hit), 0.0)
            precision_sum, seen = 0.0, 0
            for j, hit in enumerate(hits):
                if hit:
                    seen += 1
                    precision_sum += seen / (j + 1)
            totals[f"map@{k}"] += precision_sum / min(len(items), k)
    return {key: value / len(relevant) for key, value in totals.items()}


def movielens(data_root: str, cache_dir: str, run: Path | None) -> tuple[str, Tensor, Tensor, Tensor, list[Tensor]]:
    """(name, user embeddings, item embeddings, test edges, [train, valid]) of ML-1M, random 8:1:1."""
    from graphrec.config import load_config
    from graphrec.pipeline import load_run, prepare

    if run is not None:
        _, data, model = load_run(run)
        with torch.no_grad():
            model.eval()
            user_emb, item_emb = model()
        source = f"trained embeddings of {run}"
    else:
        config = load_config(REPO_ROOT / "configs" / "lightgcn.yaml", [
            "graph.recipe=ml-1m", f"graph.data_root={data_root}", f"graph.cache_dir={cache_dir}"])
        data = prepare(config)
        generator = torch.Generator().manual_seed(0)
        user_emb = torch.randn(data.bundle.num_users, 64, generator=generator)
        item_emb = torch.randn(data.bundle.num_items, 64, generator=generator)
        source = "random 64-d embeddings"
    name = f"MovieLens-1M random 8:1:1 ({data.bundle.num_users} users, {data.bundle.num_items} items), {source}"
    return name, user_emb, item_emb, data.test, [data.train, data.valid]


def synthetic(num_users: int, num_items: int, per_user: int = 20) -> tuple[str, Tensor, Tensor, Tensor, list[Tensor]]:
    """Random embeddings; every user has ``4 * per_user`` training and ``per_user`` test items (may overlap)."""
    generator = torch.Generator().manual_seed(0)
    users = torch.arange(num_users).repeat_interleave(per_user)
    train = torch.stack([users.repeat(4), torch.randint(num_items, (4 * users.numel(),), generator=generator)])
    test = torch.stack([users, torch.randint(num_items, (users.numel(),), generator=generator)])
    user_emb = torch.randn(num_users, 64, generator=generator)
    item_emb = torch.randn(num_items, 64, generator=generator)
    return f"synthetic ({num_users} users, {num_items} items, {per_user} test items per user)", \
        user_emb, item_emb, test, [train]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", default=str(REPO_ROOT.parent / "shared" / "data"))
    parser.add_argument("--cache-dir", default="/tmp/grcache")
    parser.add_argument("--run", type=Path, help="a LightGCN run folder: rank with its trained embeddings")
    parser.add_argument("--scale", nargs=2, type=int, metavar=("USERS", "ITEMS"),
                        help="a synthetic split of this size instead of MovieLens-1M")
    parser.add_argument("--chunk-size", type=int, default=None, help="graphrec's users per chunk (default: auto)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--skip-naive-above", type=float, default=8e9,
                        help="skip the naive run when its [U, I] float scores would take more bytes than this")
    args = parser.parse_args()

    name, user_emb, item_emb, test, exclude = (synthetic(*args.scale) if args.scale
                                               else movielens(args.data_root, args.cache_dir, args.run))
    num_users, num_items = user_emb.size(0), item_emb.size(0)
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; load average {os.getloadavg()[0]:.2f}")
    print(f"data: {name}; {test.size(1)} test edges")

    def ours() -> dict[str, float]:
        return full_ranking(lambda batch: user_emb[batch] @ item_emb.t(), num_users, num_items, test, exclude,
                            ks=KS, names=NAMES, chunk_size=args.chunk_size)

    def naive() -> dict[str, float]:
        return naive_full_ranking(user_emb, item_emb, test, exclude)

    runs = {"graphrec": ours}
    dense_bytes = num_users * num_items * 4
    if dense_bytes <= args.skip_naive_above:
        runs["naive"] = naive
    else:
        print(f"naive skipped: its [U, I] float scores alone would take {dense_bytes / 2**30:.1f} GiB")
    measured: dict[str, dict] = {key: {"seconds": [], "peak": []} for key in runs}
    for _ in range(args.rounds):
        for key, fn in runs.items():  # alternating, so load from elsewhere hits both alike
            result, seconds, peak = measure(fn)
            measured[key]["seconds"].append(seconds)
            measured[key]["peak"].append(peak)
            measured[key]["result"] = result

    if "naive" in measured:
        ours_result, naive_result = measured["graphrec"]["result"], measured["naive"]["result"]
        for key, value in naive_result.items():
            assert abs(ours_result[key] - value) < 1e-5, f"{key}: graphrec {ours_result[key]} != naive {value}"
        print(f"metrics agree (|difference| < 1e-5 for all {len(naive_result)} values), "
              f"e.g. recall@10 {ours_result['recall@10']:.5f}, ndcg@20 {ours_result['ndcg@20']:.5f}")
    print(f"\n{'implementation':<15} {'median s':>9} {'runs (s)':>24} {'peak MiB above baseline':>24}")
    for key, values in measured.items():
        runs_text = " ".join(f"{s:.3f}" for s in values["seconds"])
        print(f"{key:<15} {statistics.median(values['seconds']):>9.3f} {runs_text:>24} "
              f"{max(values['peak']):>24.0f}")
    if "naive" in measured:
        ours_values, naive_values = measured["graphrec"], measured["naive"]
        speed_up = statistics.median(naive_values["seconds"]) / statistics.median(ours_values["seconds"])
        memory_ratio = max(naive_values["peak"]) / max(max(ours_values["peak"]), 1)
        print(f"\nspeed-up (naive / graphrec, medians): {speed_up:.1f}x; "
              f"peak memory ratio (naive / graphrec): {memory_ratio:.1f}x")


if __name__ == "__main__":
    main()
