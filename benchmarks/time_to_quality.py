"""Time to quality of graphrec's LightGCN on MovieLens-1M: validation Recall@10 against seconds of training.

Two settings of the same model (3 layers, 64 dimensions, BPR with one uniform negative, L2 1e-4 on the
batch's layer-0 embeddings, Adam) train on the same random 8:1:1 split (``split.method: random``,
seed 0), each with graphrec's :class:`graphrec.train.Trainer` for a budget of seconds:

* ``reference``: batch 2048, lr 0.005, the way ``configs/lightgcn.yaml`` trains (every mini-batch
  runs a full propagation, so an epoch is 364 propagations);
* ``fast``: fewer, larger batches with a larger learning rate; an epoch is a handful of
  propagations. Only config keys change (``train.batch_size``, ``train.lr``, ``train.eval_every``).

Every ``train.eval_every`` epochs the validation set is ranked in full (one propagation, then user
chunks); the curve's seconds are counted from the start of ``Trainer.fit``, *including* those
evaluations and the set-up of the normalised adjacency (loading the cached graph and splitting it come
before and are not counted), so they are what a user waits. The budget is checked after each
evaluation, so a run may pass it by one evaluation interval; no evaluation after the budget counts.
At the end the weights of the best validation ``train.monitor`` (Recall@20, as the config) are tested
(training and validation items masked) and the test Recall@10 is compared with R*, the test Recall@10
of a batch-2048 run trained to convergence (``--reference-run``: its run folder, from ``graphrec run``).

Usage:
    python benchmarks/time_to_quality.py --data-root ../shared/data --budget 600 \\
        --reference-run runs/ml-1m-lightgcn-b2048 --plot docs/img/time_to_quality.png
    python benchmarks/time_to_quality.py --settings fast --fast train.lr=0.02   # try another setting

Settings are run one after another in this process, on the threads torch is given
(``OMP_NUM_THREADS``). ``--json PATH`` writes every curve and result; ``--report PATH`` prints and
plots such a file again (e.g. with ``--reference-run`` once the converged run has finished).

``--clock cpu`` budgets and plots this process's CPU seconds instead of wall-clock seconds: on a
machine shared with other work, CPU time does not count the time the process waited for a core.
With ``OMP_NUM_THREADS=1`` it is about the wall time the same run takes on one idle core, so a
result within a 600 CPU-second budget bounds what two idle cores take (with two threads, CPU time
also counts threads spinning while they wait for each other, so use one thread with this clock).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

from graphrec.config import RunConfig, load_config
from graphrec.pipeline import Prepared, build_model, evaluate_model, prepare
from graphrec.train import Trainer

REPO_ROOT = Path(__file__).resolve().parents[1]
COMMON = ["graph.recipe=ml-1m", "split.method=random", "split.ratios=[0.8,0.1,0.1]", "seed=0",
          "eval.ks=[10,20]", "eval.metrics=[recall,ndcg]", "train.epochs=100000", "train.progress=false",
          "train.device=cpu"]
SETTINGS = {
    "reference": ["train.batch_size=2048", "train.lr=0.005", "train.eval_every=1", "train.patience=15"],
    "fast": ["train.batch_size=16384", "train.lr=0.01", "train.eval_every=2", "train.patience=10"],
}


class BudgetReached(Exception):
    """Raised from the validation callback once the wall-clock budget is spent."""


class Curve:
    """The validation callback: ranks the validation set, records (seconds, metrics) and the best weights."""

    def __init__(self, config: RunConfig, data: Prepared, budget: float, clock: str) -> None:
        self.config, self.data, self.budget, self.clock = config, data, budget, clock
        self.start, self.cpu_start = time.perf_counter(), time.process_time()
        self.points: list[dict[str, float]] = []
        self.best_value, self.best_state, self.best_point = -1.0, None, None

    def __call__(self, model: torch.nn.Module) -> dict[str, float]:
        bundle = self.data.bundle
        metrics = evaluate_model(model, self.config, bundle.num_users, bundle.num_items, self.data.valid,
                                 [self.data.train])
        seconds = time.perf_counter() - self.start
        point = {"seconds": seconds, "cpu_seconds": time.process_time() - self.cpu_start,
                 "evaluation": len(self.points) + 1, "load": os.getloadavg()[0], **metrics}
        self.points.append(point)
        if metrics[self.config.train.monitor] > self.best_value:
            self.best_value, self.best_point = metrics[self.config.train.monitor], point
            self.best_state = {name: t.detach().clone() for name, t in model.state_dict().items()}
        print(f"    {seconds:7.1f} s ({point['cpu_seconds']:7.1f} CPU s)  valid recall@10 {metrics['recall@10']:.4f}  "
              f"recall@20 {metrics['recall@20']:.4f}", flush=True)
        if point[self.clock] >= self.budget:
            raise BudgetReached
        return metrics


def train_for(name: str, overrides: list[str], data_root: str, cache_dir: str, budget: float, clock: str,
              data: Prepared | None) -> tuple[dict, Prepared]:
    """Trains one setting for ``budget`` seconds; returns its curve and test metrics (and the data, reused)."""
    config = load_config(REPO_ROOT / "configs" / "lightgcn.yaml",
                         [*COMMON, f"graph.data_root={data_root}", f"graph.cache_dir={cache_dir}", *overrides])
    data = data or prepare(config)
    torch.manual_seed(config.seed)
    model = build_model(config, data.bundle)
    curve = Curve(config, data, budget, clock)
    train = config.train
    trainer = Trainer(model, data.train, epochs=train.epochs, batch_size=train.batch_size, lr=train.lr,
                      weight_decay=train.weight_decay, loss=train.loss, num_negatives=train.num_negatives,
                      device=train.device, seed=config.seed, eval_fn=curve, monitor=train.monitor,
                      eval_every=train.eval_every, patience=train.patience, run_dir=None, progress=False)
    print(f"{name}: batch {train.batch_size}, lr {train.lr}, eval every {train.eval_every} epochs, "
          f"patience {train.patience}, budget {budget:.0f} {clock.replace('_', ' ')}", flush=True)
    curve.start, curve.cpu_start = time.perf_counter(), time.process_time()
    stopped = "budget"
    try:
        result = trainer.fit()
        stopped = "early stopping" if result.stopped_early else "epochs"
    except BudgetReached:
        pass
    elapsed, cpu_elapsed = time.perf_counter() - curve.start, time.process_time() - curve.cpu_start
    model.load_state_dict(curve.best_state)
    model.eval()
    bundle = data.bundle
    test = evaluate_model(model, config, bundle.num_users, bundle.num_items, data.test, [data.train, data.valid])
    epochs = curve.points[-1]["evaluation"] * train.eval_every if curve.points else 0
    return {
        "setting": name, "overrides": overrides, "batch_size": train.batch_size, "lr": train.lr,
        "eval_every": train.eval_every, "budget": budget, "clock": clock, "elapsed": elapsed,
        "cpu_elapsed": cpu_elapsed, "threads": torch.get_num_threads(), "stopped": stopped,
        "epochs": epochs, "curve": curve.points, "best": curve.best_point, "test": test,
    }, data


def reference_numbers(run_dir: Path | None, value: float | None) -> dict | None:
    """R* (test Recall@10) and its validation Recall@10 from a converged run folder, or from ``--r-star``."""
    if run_dir is not None:
        metrics = json.loads((run_dir / "metrics.json").read_text())
        history = json.loads((run_dir / "history.json").read_text())
        seconds = sum(row["seconds"] for row in history)
        curve = [{"epoch": row["epoch"], "recall@10": row["recall@10"]} for row in history if "recall@10" in row]
        return {"run": str(run_dir), "test_recall@10": metrics["test"]["recall@10"],
                "valid_recall@10": metrics["valid"]["recall@10"], "best_epoch": metrics["best_epoch"],
                "epochs_run": metrics["epochs_run"], "seconds": seconds, "curve": curve}
    if value is not None:
        return {"run": None, "test_recall@10": value, "valid_recall@10": None}
    return None


def plot(results: list[dict], reference: dict | None, path: Path, clock: str,
         reference_epoch_seconds: float | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for result in results:
        xs = [p[clock] for p in result["curve"]]
        ys = [p["recall@10"] for p in result["curve"]]
        ax.plot(xs, ys, marker=".", label=f"{result['setting']}: batch {result['batch_size']}, lr {result['lr']:g}")
    if reference is not None and reference_epoch_seconds and reference.get("curve"):
        ax.plot([p["epoch"] * reference_epoch_seconds for p in reference["curve"]],
                [p["recall@10"] for p in reference["curve"]], marker="o", linestyle="--",
                label=f"batch 2048, lr 0.005 (the R* run): epoch x {reference_epoch_seconds:g} s, estimated")
    if reference is not None and reference.get("valid_recall@10") is not None:
        level = reference["valid_recall@10"]
        ax.axhline(level, color="grey", linestyle="--", linewidth=1,
                   label=f"batch 2048 converged (epoch {reference['best_epoch']}): {level:.4f}")
        ax.axhline(0.98 * level, color="grey", linestyle=":", linewidth=1, label="98% of it")
    ax.axvline(600, color="black", linewidth=0.8, alpha=0.4)
    threads = results[0]["threads"] if results else torch.get_num_threads()
    ax.set_xlabel(f"{'wall-clock' if clock == 'seconds' else 'CPU (process)'} seconds since training started "
                  f"({threads} thread{'s' if threads > 1 else ''})")
    ax.set_ylabel("validation Recall@10")
    ax.set_title("graphrec LightGCN on MovieLens-1M (random 8:1:1)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", default=str(REPO_ROOT.parent / "shared" / "data"))
    parser.add_argument("--cache-dir", default="/tmp/grcache")
    parser.add_argument("--budget", type=float, default=600.0, help="seconds per setting, on --clock")
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                        help="wall: wall-clock seconds; cpu: CPU seconds of this process (load from other "
                             "processes does not count; with one thread, about the wall time of an idle core)")
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--reference", nargs="*", default=[], metavar="key=value",
                        help="overrides of the reference setting")
    parser.add_argument("--fast", nargs="*", default=[], metavar="key=value", help="overrides of the fast setting")
    parser.add_argument("--reference-run", type=Path, help="run folder of the converged batch-2048 run (R*)")
    parser.add_argument("--r-star", type=float, help="R* given as a number instead of --reference-run")
    parser.add_argument("--plot", type=Path, help="write the curves as a PNG here")
    parser.add_argument("--json", type=Path, help="write the curves and results as JSON here")
    parser.add_argument("--report", type=Path, help="train nothing: print and plot the results a --json run wrote")
    parser.add_argument("--reference-epoch-seconds", type=float,
                        help="also plot the --reference-run's validation curve, its epochs at this many seconds each "
                             "(an estimate: e.g. the CPU seconds of a batch-2048 epoch from lightgcn_vs_pyg.py)")
    args = parser.parse_args()
    clock = "seconds" if args.clock == "wall" else "cpu_seconds"
    reference = reference_numbers(args.reference_run, args.r_star)
    if args.report:
        results = json.loads(args.report.read_text())["results"]
        report(results, reference, clock)
        if args.plot:
            plot(results, reference, args.plot, clock, args.reference_epoch_seconds)
        return

    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; load average {os.getloadavg()[0]:.2f} at start", flush=True)
    extra = {"reference": args.reference, "fast": args.fast}
    results, data = [], None
    for name in args.settings:
        result, data = train_for(name, [*SETTINGS[name], *extra[name]], args.data_root, args.cache_dir,
                                 args.budget, clock, data)
        result["load_average_end"] = os.getloadavg()[0]
        results.append(result)
    report(results, reference, clock)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"results": results, "reference": reference}, indent=1))
    if args.plot:
        plot(results, reference, args.plot, clock, args.reference_epoch_seconds)


def report(results: list[dict], reference: dict | None, clock: str) -> None:
    """Prints the curves, the table of settings and, given R*, the verdict."""
    print("\ncurves (wall-clock seconds / CPU seconds: validation Recall@10):")
    for result in results:
        points = ", ".join(f"{p['seconds']:.0f}/{p['cpu_seconds']:.0f}:{p['recall@10']:.4f}" for p in result["curve"])
        print(f"  {result['setting']}: {points}")
    print(f"\n{'setting':<10} {'batch':>6} {'lr':>7} {'epochs':>6} {'seconds':>8} {'CPU s':>7} {'stopped':>15} "
          f"{'best at s':>9} {'valid R@10':>10} {'test R@10':>9} {'test N@10':>9}")
    for result in results:
        best = result["best"]
        print(f"{result['setting']:<10} {result['batch_size']:>6} {result['lr']:>7g} {result['epochs']:>6} "
              f"{result['elapsed']:>8.0f} {result['cpu_elapsed']:>7.0f} {result['stopped']:>15} {best[clock]:>9.0f} "
              f"{best['recall@10']:>10.4f} {result['test']['recall@10']:>9.4f} {result['test']['ndcg@10']:>9.4f}")
    if reference is not None:
        r_star = reference["test_recall@10"]
        where = f" ({reference['run']}: best epoch {reference['best_epoch']} of {reference['epochs_run']}, " \
                f"{reference['seconds']:.0f} s)" if reference["run"] else ""
        print(f"\nR* = {r_star:.4f}: test Recall@10 of batch 2048 at convergence{where}")
        for result in results:
            ratio = result["test"]["recall@10"] / r_star
            verdict = "within 2%" if ratio >= 0.98 else "NOT within 2%"
            print(f"  {result['setting']}: {result['test']['recall@10']:.4f} after {result['elapsed']:.0f} s "
                  f"({result['cpu_elapsed']:.0f} CPU s) "
                  f"= {ratio:.3f} x R* ({verdict})")


if __name__ == "__main__":
    main()
