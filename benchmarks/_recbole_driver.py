"""Trains RecBole's LightGCN for a fixed number of epochs on a pre-split dataset; prints one JSON line.

Run by ``benchmarks/lightgcn_vs_recbole.py`` with the Python of a RecBole venv (it imports RecBole,
not graphrec). The dataset is ``WORK_DIR/NAME/NAME.{train,valid,test}.inter`` (RecBole atomic files,
``benchmark_filename: [train, valid, test]``), so RecBole neither splits nor filters. Every epoch is timed
(wall-clock and this process's CPU seconds, around ``Trainer._train_epoch``, what ``Trainer.fit`` runs per
epoch); there is no validation and no checkpoint: the final weights are tested (``load_best_model=False``).

Progress goes to stderr; the result is the stdout line starting with ``RESULT ``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings

import torch
from recbole.config import Config
from recbole.data import create_dataset, data_preparation
from recbole.model.general_recommender import LightGCN
from recbole.trainer import Trainer
from recbole.utils import init_seed

RESULT_PREFIX = "RESULT "
# RecBole 1.2.1's own deprecated calls (pandas chained fillna, torch.sparse.FloatTensor, amp.GradScaler)
warnings.filterwarnings("ignore", category=FutureWarning)
warnings.filterwarnings("ignore", message=r".*(SparseTensor|GradScaler).*deprecated")


def recbole_config(args: argparse.Namespace) -> Config:
    """LightGCN as graphrec's benchmark trains it: 3 layers, 64 dims, BPR, 1 uniform negative, Adam."""
    params = {
        "data_path": args.work_dir, "benchmark_filename": ["train", "valid", "test"],
        "load_col": {"inter": ["user_id", "item_id"]},
        "user_inter_num_interval": "[0,inf)", "item_inter_num_interval": "[0,inf)", "rm_dup_inter": None,
        "embedding_size": 64, "n_layers": 3, "reg_weight": args.reg_weight, "require_pow": True,
        "learner": "adam", "learning_rate": args.lr, "weight_decay": 0.0, "train_batch_size": args.batch_size,
        "epochs": args.epochs, "eval_step": args.epochs + 1, "stopping_step": args.epochs + 1,
        "train_neg_sample_args": {"distribution": "uniform", "sample_num": 1, "alpha": 1.0, "dynamic": False,
                                  "candidate_num": 0},
        "eval_args": {"group_by": "user", "order": "RO", "split": {"RS": [0.8, 0.1, 0.1]}, "mode": "full"},
        "metrics": ["Recall", "NDCG"], "topk": [10, 20], "valid_metric": "Recall@20", "metric_decimal_place": 6,
        "eval_batch_size": 50_000_000,  # full ranking: users per batch = this // items, i.e. all users at once
        "seed": args.seed, "reproducibility": True, "use_gpu": False, "show_progress": False,
        "checkpoint_dir": os.path.join(args.work_dir, "saved"), "save_dataset": False, "save_dataloaders": False,
        "log_wandb": False, "state": "WARNING",
    }
    return Config(model="LightGCN", dataset=args.dataset, config_dict=params)


def masked_counts(loader) -> dict[str, int]:
    """Items the full-ranking loader masks (history) and ranks as relevant (positives), summed over users."""
    history = sum(len(items) for items in loader.uid2history_item if items is not None)
    positive = sum(len(items) for items in loader.uid2positive_item if items is not None)
    return {"masked": int(history), "relevant": int(positive)}


def train_epochs(trainer: Trainer, train_data, epochs: int) -> list[dict[str, float]]:
    """Runs ``epochs`` training epochs as ``Trainer.fit`` does, without validation; times each."""
    trainer.eval_collector.data_collect(train_data)
    rows = []
    for epoch in range(epochs):
        wall, cpu = time.perf_counter(), time.process_time()
        loss_sum = trainer._train_epoch(train_data, epoch, show_progress=False)
        row = {"epoch": epoch + 1, "seconds": time.perf_counter() - wall, "cpu_seconds": time.process_time() - cpu,
               "loss": float(loss_sum) / len(train_data), "load": os.getloadavg()[0]}
        rows.append(row)
        print(f"  recbole epoch {row['epoch']}: {row['seconds']:.1f} s ({row['cpu_seconds']:.1f} CPU s), "
              f"loss {row['loss']:.4f}, load {row['load']:.2f}", file=sys.stderr, flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--work-dir", required=True)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--epochs", type=int, required=True)
    parser.add_argument("--lr", type=float, required=True)
    parser.add_argument("--reg-weight", type=float, required=True)
    parser.add_argument("--batch-size", type=int, required=True)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    sys.argv = sys.argv[:1]  # RecBole's Config reads --key=value options from the command line too

    start, load_start = time.perf_counter(), os.getloadavg()[0]
    config = recbole_config(args)
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    init_seed(config["seed"], config["reproducibility"])  # as recbole.quick_start.run_recbole
    model = LightGCN(config, train_data.dataset).to(config["device"])
    trainer = Trainer(config, model)
    setup_seconds = time.perf_counter() - start
    print(f"  recbole set-up {setup_seconds:.1f} s: {dataset.user_num - 1} users, {dataset.item_num - 1} items "
          f"(+1 padding id each), {train_data.dataset.inter_num} / {valid_data.dataset.inter_num} / "
          f"{test_data.dataset.inter_num} interactions", file=sys.stderr, flush=True)

    epochs = train_epochs(trainer, train_data, args.epochs)
    wall, cpu = time.perf_counter(), time.process_time()
    test = trainer.evaluate(test_data, load_best_model=False, show_progress=False)
    result = {
        "recbole": __import__("recbole").__version__, "torch": torch.__version__, "threads": torch.get_num_threads(),
        "users": dataset.user_num - 1, "items": dataset.item_num - 1,
        "interactions": [d.dataset.inter_num for d in (train_data, valid_data, test_data)],
        "valid_mask": masked_counts(valid_data), "test_mask": masked_counts(test_data),
        "setup_seconds": setup_seconds, "epochs": epochs,
        "test_seconds": time.perf_counter() - wall, "test_cpu_seconds": time.process_time() - cpu,
        "test": {name: float(value) for name, value in test.items()},
        "load_start": load_start, "load_end": os.getloadavg()[0],
    }
    print(RESULT_PREFIX + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
