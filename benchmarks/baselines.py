"""Popularity, MF-BPR and LightGCN on one recipe, full ranking: the table in docs/results.md.

    python benchmarks/baselines.py --recipe ml-100k --data-root ../shared/data
    python benchmarks/baselines.py --recipe ml-1m --data-root ../shared/data train.batch_size=8192

Extra ``key=value`` arguments override the run config of every model (see configs/lightgcn.yaml).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from graphrec.config import load_config
from graphrec.pipeline import run

MODELS = ("popularity", "mf", "lightgcn")
COLUMNS = ("recall@10", "recall@20", "ndcg@10", "ndcg@20")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", default="ml-100k")
    parser.add_argument("--data-root", default="../shared/data")
    parser.add_argument("--out", default="runs/baselines")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("overrides", nargs="*", metavar="key=value")
    args = parser.parse_args()

    rows = {}
    for model in args.models:
        config = load_config(Path(__file__).resolve().parents[1] / "configs" / "lightgcn.yaml", [
            f"graph.recipe={args.recipe}", f"graph.data_root={args.data_root}", f"model.name={model}",
            f"output.dir={args.out}", f"output.name={args.recipe}-{model}", "train.progress=false", *args.overrides,
        ])
        started = time.perf_counter()
        result = run(config, overwrite=True)
        rows[model] = {
            **{k: result.test_metrics[k] for k in COLUMNS},
            "s/epoch": result.seconds_per_epoch,
            "epochs": len([r for r in result.history if r.get("loss") is not None]),
            "eval s": result.eval_seconds,
            "total s": time.perf_counter() - started,
        }
        print(json.dumps({model: rows[model]}), flush=True)

    print(f"\n| {args.recipe} | " + " | ".join(COLUMNS) + " | s/epoch | epochs | test eval s | total s |")
    print("|---" * (len(COLUMNS) + 5) + "|")
    for model, row in rows.items():
        print(f"| {model} | " + " | ".join(f"{row[k]:.4f}" for k in COLUMNS)
              + f" | {row['s/epoch']:.2f} | {row['epochs']} | {row['eval s']:.2f} | {row['total s']:.0f} |")


if __name__ == "__main__":
    main()
