"""``graphrec demo``: the quick start on the built-in synthetic graph, no download needed."""

from __future__ import annotations

import time
from pathlib import Path

from graphrec.config import RunConfig
from graphrec.data.synthetic import generate, write
from graphrec.graph import describe, load_graph
from graphrec.pipeline import recommend, run
from graphrec.schema import from_mapping
from graphrec.transfer import pretrain

MODELS = ("popularity", "mf", "lightgcn")


def demo(out: Path = Path("runs/demo"), epochs: int = 40, num_users: int = 1000, num_items: int = 500,
         seed: int = 0, progress: bool = True, pretrain_steps: int = 60) -> dict[str, dict[str, float]]:
    """Generate the synthetic data, build its graph, train each baseline, pre-train and fine-tune a graph
    encoder, print and return test metrics."""
    out = Path(out)
    data_root = out / "data"
    print(f"1/4 generating the synthetic dataset ({num_users} users, {num_items} items) in {data_root}")
    write(generate(num_users=num_users, num_items=num_items, seed=seed), data_root / "synthetic")
    bundle = load_graph("synthetic", data_root, out / "cache", rebuild=True)
    print(describe(bundle))

    print(f"\n2/4 training {', '.join(MODELS)} ({epochs} epochs at most, early stopping on valid recall@20)")
    results = {}
    for model in MODELS:
        config = _config(out, data_root, seed, epochs, progress, {"name": model}, model)
        started = time.perf_counter()
        result = run(config, overwrite=True)
        metrics = dict(result.test_metrics)
        metrics["seconds"] = time.perf_counter() - started
        results[model] = metrics
        print(f"  {model:<10} test recall@20 {metrics['recall@20']:.4f}  ({metrics['seconds']:.1f} s)")

    print(f"\n3/4 pre-training a GraphSAGE encoder over the whole graph (users, items, genres, tags, friends, KG) "
          f"on the chest pretext recipe ({pretrain_steps} steps), then fine-tuning it; and the same encoder from scratch")
    graph_model = {"name": "graph", "encoder": "sage", "num_layers": 2}
    pretrained = pretrain(_config(out, data_root, seed, epochs, progress, graph_model, "pretrain-sage",
                                  pretrain={"pretext": "chest", "steps": pretrain_steps}), overwrite=True)
    for label, checkpoint in (("sage", None), ("sage+chest", str(pretrained.run_dir))):
        started = time.perf_counter()
        result = run(_config(out, data_root, seed, epochs, progress, graph_model, label,
                             finetune={"checkpoint": checkpoint}), overwrite=True)
        results[label] = {**result.test_metrics, "seconds": time.perf_counter() - started}
        print(f"  {label:<10} test recall@20 {results[label]['recall@20']:.4f}  ({results[label]['seconds']:.1f} s)")

    from graphrec.cli import format_metrics

    print("\n4/4 test metrics (full ranking over all items, training and validation items masked)")
    print(format_metrics(results, columns=["recall@10", "recall@20", "ndcg@10", "ndcg@20", "hr@10"]))
    best = max(results, key=lambda m: results[m]["recall@20"])
    gain = results["lightgcn"]["recall@20"] / max(results["popularity"]["recall@20"], 1e-12)
    print(f"\nLightGCN recall@20 is {gain:.2f}x popularity's; best model: {best}")
    user = bundle.idmap.raw("user", 0)
    print(f"\nLightGCN's top 5 for user {user}:")
    for row in recommend(out / "lightgcn", [user], k=5)[0]["items"]:
        print(f"  {row['rank']}. {row['name']}")
    print(f"\nrun folders (config, metrics, checkpoints, curve.png) are in {out}")
    return results


def _config(out: Path, data_root: Path, seed: int, epochs: int, progress: bool, model: dict, name: str,
            **sections: dict) -> RunConfig:
    return from_mapping(RunConfig, {
        "seed": seed,
        "graph": {"recipe": "synthetic", "data_root": str(data_root), "cache_dir": str(out / "cache")},
        "model": model,
        "train": {"epochs": epochs, "batch_size": 1024, "lr": 5e-3, "device": "cpu", "progress": progress,
                  "patience": 5},
        "output": {"dir": str(out), "name": name},
        **sections,
    }, "demo")
