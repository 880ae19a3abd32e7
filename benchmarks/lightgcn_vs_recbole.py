"""Speed and quality of graphrec's LightGCN against RecBole's, on the same MovieLens-1M split and epochs.

The split is graphrec's: the MovieLens-1M copy of ``graphs/ml-1m.yaml``, loaded with
``graphrec.pipeline.prepare`` and split as ``configs/lightgcn.yaml`` does (``split.method: random``,
8:1:1 per user, seed 0), as ``benchmarks/time_to_quality.py`` loads it. Its training, validation and test
interactions (graphrec's integer user and item ids) are written as RecBole atomic files
``WORK_DIR/ml-1m-graphrec/ml-1m-graphrec.{train,valid,test}.inter`` and RecBole reads them with
``benchmark_filename: [train, valid, test]``, with no interaction-count filter and no duplicate removal:
the script checks that RecBole counts the same users, items and interactions as graphrec.

Both train LightGCN with 3 layers and 64 dimensions, BPR with one uniform negative per positive (an item
the user has no training interaction with), L2 on the batch's layer-0 embeddings with weight 1e-4, Adam,
batch 2048 and the same learning rate, for the same fixed number of epochs, with no validation and no
early stopping; the *final* weights are tested. The L2 terms are the same function: graphrec's
``weight_decay * (|e_u|^2 + |e_i|^2 + |e_j|^2) / (2B)`` is RecBole's ``reg_weight * EmbLoss(require_pow=True)``.
Test Recall@K and NDCG@K rank every item for every test user with the user's training and validation items
masked, which is what RecBole's full-ranking test loader masks (its test sampler's used items, minus the
user's test items); the script checks RecBole's mask sizes.

RecBole runs first, in its own venv (``--recbole-python``), through ``benchmarks/_recbole_driver.py``;
then graphrec trains with its :class:`graphrec.train.Trainer` in this process. Each epoch is timed in
wall-clock seconds and in the CPU seconds of its own process (``time.process_time``: on a machine shared
with other work they do not count the time spent waiting for a core; use one thread, ``OMP_NUM_THREADS=1``,
for them to mean that); the table shows medians over epochs. Set-up (reading the data, building the
normalised adjacency) and the test evaluation are reported apart, not in the epoch times.
What still differs between the two implementations (initialisation, random streams, padding ids, the sparse
product) is listed in ``docs/benchmarks.md``.

Usage:
    python benchmarks/lightgcn_vs_recbole.py --epochs 5 [--data-root ../shared/data] [--json out.json]
    python benchmarks/lightgcn_vs_recbole.py --epochs 1 --max-users 500   # a quick try on a subset

RecBole's venv (RecBole 1.2.1 needs numpy < 2, so an older pandas, and scipy < 1.13 for
``dok_matrix._update``):
    python3 -m venv /tmp/recbole-venv && /tmp/recbole-venv/bin/pip install torch==2.13.0 'numpy<2' \\
        'pandas<2.3' 'scipy<1.13' recbole==1.2.1
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from graphrec.config import RunConfig, load_config
from graphrec.pipeline import Prepared, build_model, evaluate_model, prepare
from graphrec.train import Trainer

REPO_ROOT = Path(__file__).resolve().parents[1]
DRIVER = Path(__file__).resolve().parent / "_recbole_driver.py"
DATASET = "ml-1m-graphrec"
RESULT_PREFIX = "RESULT "
METRICS = ("recall@10", "recall@20", "ndcg@10", "ndcg@20")
OVERRIDES = ["graph.recipe=ml-1m", "split.method=random", "split.ratios=[0.8,0.1,0.1]", "seed=0",
             "eval.ks=[10,20]", "eval.metrics=[recall,ndcg]", "eval.protocol=full", "train.progress=false",
             "train.device=cpu", "train.weight_decay=0.0001", "train.loss=bpr", "model.embedding_dim=64",
             "model.num_layers=3"]


@dataclass
class Split:
    """The interactions both libraries train and test on: ``[2, E]`` user and item ids each."""

    train: Tensor
    valid: Tensor
    test: Tensor

    def parts(self) -> dict[str, Tensor]:
        return {"train": self.train, "valid": self.valid, "test": self.test}

    def counts(self) -> dict[str, object]:
        edges = torch.cat(list(self.parts().values()), dim=1)
        return {"users": edges[0].unique().numel(), "items": edges[1].unique().numel(),
                "interactions": [part.size(1) for part in self.parts().values()],
                "valid_mask": {"masked": self.train.size(1), "relevant": self.valid.size(1)},
                "test_mask": {"masked": self.train.size(1) + self.valid.size(1), "relevant": self.test.size(1)}}


def graphrec_config(args: argparse.Namespace) -> RunConfig:
    return load_config(REPO_ROOT / "configs" / "lightgcn.yaml", [
        *OVERRIDES, f"graph.data_root={args.data_root}", f"graph.cache_dir={args.cache_dir}",
        f"train.epochs={args.epochs}", f"train.batch_size={args.batch_size}", f"train.lr={args.lr}"])


def keep_users(edges: Tensor, max_users: int | None) -> Tensor:
    """The interactions of users ``0..max_users-1`` (all of them when ``max_users`` is None)."""
    return edges if max_users is None else edges[:, edges[0] < max_users]


def load_split(data: Prepared, max_users: int | None) -> Split:
    return Split(*(keep_users(edges, max_users) for edges in (data.train, data.valid, data.test)))


def write_atomic_files(split: Split, work_dir: Path) -> Path:
    """Writes ``WORK_DIR/DATASET/DATASET.{train,valid,test}.inter``; returns the dataset folder."""
    folder = work_dir / DATASET
    folder.mkdir(parents=True, exist_ok=True)
    for name, edges in split.parts().items():
        rows = edges.t().numpy()  # [E, 2]
        np.savetxt(folder / f"{DATASET}.{name}.inter", rows, fmt="%d", delimiter="\t",
                   header="user_id:token\titem_id:token", comments="")
    return folder


def run_recbole(args: argparse.Namespace) -> dict:
    """Runs the driver in RecBole's venv; returns its result."""
    command = [str(args.recbole_python), str(DRIVER), "--work-dir", str(args.work_dir), "--dataset", DATASET,
               "--epochs", str(args.epochs), "--lr", str(args.lr), "--reg-weight", str(args.weight_decay),
               "--batch-size", str(args.batch_size), "--seed", "0"]
    done = subprocess.run(command, cwd=args.work_dir, stdout=subprocess.PIPE, text=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if done.returncode != 0 or not lines:
        sys.exit(f"the RecBole driver failed (exit status {done.returncode}); its output:\n{done.stdout}")
    return json.loads(lines[-1][len(RESULT_PREFIX):])


def check_same_data(split: Split, recbole: dict) -> None:
    """Exits unless RecBole saw graphrec's users, items, interactions and masks."""
    expected = split.counts()
    seen = {key: recbole[key] for key in expected}
    if seen != expected:
        sys.exit(f"RecBole's data differs from graphrec's split:\n  graphrec {expected}\n  RecBole  {seen}")
    print(f"same data: {expected['users']:,} users, {expected['items']:,} items, "
          f"{' / '.join(f'{n:,}' for n in expected['interactions'])} interactions; test masks "
          f"{expected['test_mask']['masked']:,} training and validation items", flush=True)


class TimedTrainer(Trainer):
    """graphrec's Trainer, also recording the clocks at its first step and at the end of every epoch."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.marks: list[tuple[float, float, float]] = []  # (wall, CPU, load average)

    def _mark(self) -> None:
        self.marks.append((time.perf_counter(), time.process_time(), os.getloadavg()[0]))

    def _step(self, *args, **kwargs) -> float:
        if not self.marks:
            self._mark()
        return super()._step(*args, **kwargs)

    def _record_epoch(self, *args, **kwargs):
        self._mark()
        return super()._record_epoch(*args, **kwargs)

    def epoch_rows(self, losses: list[float]) -> list[dict[str, float]]:
        return [{"epoch": n + 1, "seconds": end[0] - begin[0], "cpu_seconds": end[1] - begin[1], "loss": loss,
                 "load": end[2]} for n, (begin, end, loss) in enumerate(zip(self.marks, self.marks[1:], losses))]


def run_graphrec(config: RunConfig, data: Prepared, split: Split) -> dict:
    """Trains graphrec's LightGCN for ``train.epochs`` epochs (no validation) and tests the final weights."""
    load_start, start = os.getloadavg()[0], time.perf_counter()
    torch.manual_seed(config.seed)
    bundle, train = data.bundle, config.train
    model = build_model(config, bundle)
    trainer = TimedTrainer(model, split.train, epochs=train.epochs, batch_size=train.batch_size, lr=train.lr,
                           weight_decay=train.weight_decay, loss=train.loss, num_negatives=1, device=train.device,
                           seed=config.seed, eval_fn=None, patience=None, run_dir=None, progress=False)
    result = trainer.fit()
    epochs = trainer.epoch_rows([row["loss"] for row in result.history])
    for row in epochs:
        print(f"  graphrec epoch {row['epoch']}: {row['seconds']:.1f} s ({row['cpu_seconds']:.1f} CPU s), "
              f"loss {row['loss']:.4f}, load {row['load']:.2f}", flush=True)
    model.eval()
    wall, cpu = time.perf_counter(), time.process_time()
    with torch.no_grad():
        test = evaluate_model(model, config, bundle.num_users, bundle.num_items, split.test,
                              [split.train, split.valid])
    return {"threads": torch.get_num_threads(), "setup_seconds": trainer.marks[0][0] - start, "epochs": epochs,
            "test_seconds": time.perf_counter() - wall, "test_cpu_seconds": time.process_time() - cpu,
            "test": {name: float(test[name]) for name in METRICS}, "load_start": load_start,
            "load_end": os.getloadavg()[0]}


def median(rows: list[dict[str, float]], key: str) -> float:
    return statistics.median(row[key] for row in rows)


def report(graphrec: dict, recbole: dict) -> None:
    """Prints the table: medians of the epoch times, test metrics, and graphrec / RecBole ratios."""
    header = f"{'':<14} {'s/epoch':>8} {'CPU s/ep':>8} " + " ".join(f"{m:>9}" for m in METRICS) + \
        f" {'set-up s':>8} {'test s':>7} {'load':>11}"
    print("\n" + header)
    values = {}
    for name, result in (("graphrec", graphrec), ("RecBole", recbole)):
        values[name] = [median(result["epochs"], "seconds"), median(result["epochs"], "cpu_seconds"),
                        *(result["test"][m] for m in METRICS)]
        loads = [result["load_start"], *(row["load"] for row in result["epochs"])]
        print(f"{name:<14} {values[name][0]:>8.2f} {values[name][1]:>8.2f} "
              + " ".join(f"{v:>9.4f}" for v in values[name][2:])
              + f" {result['setup_seconds']:>8.1f} {result['test_seconds']:>7.2f} "
                f"{min(loads):>5.2f}-{max(loads):<5.2f}")
    ratios = [g / r for g, r in zip(values["graphrec"], values["RecBole"])]
    print(f"{'graphrec/RecBole':<14} {ratios[0]:>8.3f} {ratios[1]:>8.3f} " + " ".join(f"{v:>9.3f}" for v in ratios[2:]))
    print("\nper epoch (wall s / CPU s):")
    for name, result in (("graphrec", graphrec), ("RecBole", recbole)):
        print(f"  {name}: " + ", ".join(f"{row['seconds']:.1f}/{row['cpu_seconds']:.1f}" for row in result["epochs"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--data-root", default=str(REPO_ROOT.parent / "shared" / "data"))
    parser.add_argument("--cache-dir", default="/tmp/grcache")
    parser.add_argument("--recbole-python", type=Path, default=Path("/tmp/recbole-venv/bin/python"))
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/recbole-work"),
                        help="where the atomic files are written and RecBole runs")
    parser.add_argument("--lr", type=float, default=0.005)
    parser.add_argument("--batch-size", type=int, default=2048)
    parser.add_argument("--max-users", type=int, help="keep only users 0..N-1 (a quick try, not a measurement)")
    parser.add_argument("--json", type=Path, help="write both results as JSON here")
    args = parser.parse_args()
    if not args.recbole_python.is_file():
        sys.exit(f"RecBole's Python not found at {args.recbole_python}; make its venv (see --help) or pass "
                 "--recbole-python PATH")
    if not (Path(args.data_root) / "ml1m-pearlm" / "train.txt.gz").is_file():
        sys.exit(f"MovieLens-1M not found under {args.data_root}; pass --data-root DIR where DIR/ml1m-pearlm/ exists")
    args.work_dir = args.work_dir.resolve()
    config = graphrec_config(args)
    args.weight_decay = config.train.weight_decay

    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads (OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}); "
          f"load average {os.getloadavg()[0]:.2f} at start", flush=True)
    print(f"{args.epochs} epochs each, batch {args.batch_size}, lr {args.lr:g}, L2 {args.weight_decay:g}", flush=True)
    start = time.perf_counter()
    data = prepare(config)
    prepare_seconds = time.perf_counter() - start
    split = load_split(data, args.max_users)
    write_atomic_files(split, args.work_dir)
    print("RecBole:", flush=True)
    recbole = run_recbole(args)
    print(f"  RecBole {recbole['recbole']}, torch {recbole['torch']}, {recbole['threads']} threads", flush=True)
    check_same_data(split, recbole)
    print("graphrec:", flush=True)
    graphrec = run_graphrec(config, data, split)
    graphrec["prepare_seconds"] = prepare_seconds
    report(graphrec, recbole)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "graphrec": graphrec,
                                         "recbole": recbole}, indent=1))


if __name__ == "__main__":
    main()
