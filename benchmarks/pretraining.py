"""Pre-training vs none, per pretext task and per fine-tuning strategy, over several seeds.

A variant is ``none`` (no pre-training) or ``RECIPE[:STRATEGY]``: pre-train on the pretext recipe
(``chest``, ``masked-edge``, ``contrastive``, or one task of chest alone: ``masked-node``,
``metapath``), then fine-tune with the strategy (default ``full``). Each seed pre-trains once per
recipe and shares it between strategies. Finished runs are skipped, so the grid can be cut and
continued, or split over processes by variant.

    python benchmarks/pretraining.py run --config configs/graph.yaml --out runs/pt-lastfm \\
        --variants none chest chest:head --seeds 0 1 2 graph.recipe=lastfm-2k graph.data_root=../shared/data
    python benchmarks/pretraining.py table runs/pt-lastfm

The table gives test Recall@20 and NDCG@20 (mean ± std over seeds), the same for the users with
fewer than 10 training interactions (the "<10" activity bucket), trained parameters and seconds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import yaml

from graphrec.config import load_config
from graphrec.pipeline import run
from graphrec.pretext.recipe import find_pretext_recipe
from graphrec.transfer import pretrain

SINGLE_TASKS = {"masked-node": "masked_node", "metapath": "metapath"}


def recipe_path(name: str, out: Path) -> str:
    """A shipped recipe, or chest.yaml cut down to one task (masked-node, metapath)."""
    if name not in SINGLE_TASKS:
        return name
    task = SINGLE_TASKS[name]
    payload = yaml.safe_load(find_pretext_recipe("chest").read_text())
    payload.update(name=name, description=f"{task} alone, as in chest.yaml", weighting="fixed", curriculum=None)
    payload["tasks"] = {task: payload["tasks"][task]}
    path = out / "recipes" / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(payload, sort_keys=False))
    return str(path)


def run_grid(args: argparse.Namespace) -> None:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for seed in args.seeds:
        for variant in args.variants:
            recipe, _, strategy = variant.partition(":")
            strategy = strategy or "full"
            finetune_dir = out / f"ft-{variant.replace(':', '-')}-s{seed}"
            if (finetune_dir / "metrics.json").is_file():
                continue
            overrides = [*args.overrides, f"seed={seed}", "train.progress=false"]
            pretrain_seconds = 0.0
            if recipe != "none":
                pretrain_dir = out / f"pre-{recipe}-s{seed}"
                if not (pretrain_dir / "encoder.safetensors").is_file():
                    config = load_config(args.config, [*overrides, f"pretrain.pretext={recipe_path(recipe, out)}"]
                                         + ([f"pretrain.steps={args.pretrain_steps}"] if args.pretrain_steps else [])
                                         + list(args.pretrain_overrides))
                    started = time.perf_counter()
                    pretrain(config, run_dir=pretrain_dir, overwrite=True)
                    print(f"[{variant} seed {seed}] pre-trained in {time.perf_counter() - started:.0f} s", flush=True)
                pretrain_seconds = json.loads((pretrain_dir / "pretrain.json").read_text())["seconds"]
                overrides += [f"finetune.checkpoint={pretrain_dir}", f"finetune.strategy={strategy}"]
                if strategy == "partial":
                    overrides.append(f"finetune.frozen={args.frozen}")
                if strategy in ("head", "prompt") and args.head:
                    overrides.append(f"model.head={args.head}")
            started = time.perf_counter()
            result = run(load_config(args.config, overrides), run_dir=finetune_dir, overwrite=True)
            metrics = json.loads((finetune_dir / "metrics.json").read_text())
            metrics["pretrain_seconds"] = pretrain_seconds
            metrics["finetune_seconds"] = time.perf_counter() - started
            (finetune_dir / "metrics.json").write_text(json.dumps(metrics, indent=1))
            print(f"[{variant} seed {seed}] recall@20 {result.test_metrics.get('recall@20', float('nan')):.4f} "
                  f"in {metrics['finetune_seconds']:.0f} s", flush=True)


def _mean_std(values: list[float]) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"


def table(args: argparse.Namespace) -> None:
    rows: dict[str, list[dict]] = {}
    for metrics_file in sorted(Path(args.out).glob("ft-*-s*/metrics.json")):
        variant = metrics_file.parent.name[3:].rsplit("-s", 1)[0]
        rows.setdefault(variant, []).append(json.loads(metrics_file.read_text()))
    bucket = args.bucket
    print(f"| variant | seeds | Recall@20 | NDCG@20 | {bucket} Recall@20 | {bucket} NDCG@20 | {bucket} users "
          "| trained params | pre-train s | fine-tune s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for variant, runs in rows.items():
        cold = [r.get("test_buckets", {}).get(bucket, {}) for r in runs]
        finetune = runs[0].get("finetune", {})
        print(f"| {variant} | {len(runs)} | {_mean_std([r['test']['recall@20'] for r in runs])} "
              f"| {_mean_std([r['test']['ndcg@20'] for r in runs])} "
              f"| {_mean_std([c['recall@20'] for c in cold if 'recall@20' in c])} "
              f"| {_mean_std([c['ndcg@20'] for c in cold if 'ndcg@20' in c])} "
              f"| {cold[0].get('num_users', '-')} "
              f"| {finetune.get('trainable_parameters', '-'):,} "
              f"| {statistics.mean(r.get('pretrain_seconds', 0.0) for r in runs):.0f} "
              f"| {statistics.mean(r.get('finetune_seconds', 0.0) for r in runs):.0f} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(required=True)
    grid = commands.add_parser("run", help="pre-train and fine-tune every variant and seed")
    grid.add_argument("--config", required=True, help="run config with model.name: graph")
    grid.add_argument("--out", required=True, help="folder for all runs of the grid")
    grid.add_argument("--variants", nargs="+", default=["none", "chest"], help="none or RECIPE[:STRATEGY]")
    grid.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    grid.add_argument("--pretrain-steps", type=int, default=None, help="override the recipes' steps")
    grid.add_argument("--frozen", default="[embedding]", help="partial strategy: prefixes kept frozen")
    grid.add_argument("--head", default="linear", help="head of the head and prompt strategies")
    grid.add_argument("--pretrain-overrides", nargs="*", default=[], metavar="key=value",
                      help="overrides for pre-training only, e.g. split.domain.part=source (cross-domain)")
    grid.add_argument("overrides", nargs="*", metavar="key=value")
    grid.set_defaults(handler=run_grid)
    summary = commands.add_parser("table", help="print the results of a grid as a markdown table")
    summary.add_argument("out")
    summary.add_argument("--bucket", default="<10", help="activity bucket reported separately")
    summary.set_defaults(handler=table)
    args = parser.parse_args(argv)
    args.handler(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
