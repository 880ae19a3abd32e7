"""``graphrec run`` for ``model.name: path_lm``: sample paths, train the path LM, decode, evaluate.

Besides the usual run-folder files (see :mod:`graphrec.pipeline`) a path-LM run writes
``task.yaml`` (the resolved pretext task, read back by ``graphrec explain``) and its
``metrics.json`` holds, next to the ranking metrics of the constrained decoder, the same test
metrics without the constraint (``test_unconstrained``) and the explanation metrics.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
import yaml

from graphrec.config import RunConfig
from graphrec.errors import ConfigError
from graphrec.explain.recommender import PathRecommender, build_path_model
from graphrec.explain.spec import PathLMTask, load_task
from graphrec.explain.train import PathLMTrainer, per_epoch_seconds
from graphrec.graph.paths import PathGraph
from graphrec.schema import from_mapping, load_yaml, to_mapping
from graphrec.train import load_weights, plot_history
from graphrec.utils import atomic_write_json, atomic_write_text, resolve_device


def path_recommender(data, task: PathLMTask, device: torch.device) -> PathRecommender:
    """The path graph of the training split and an untrained model on ``device``."""
    graph = PathGraph.from_bundle(data.bundle, data.split.train, via_users=task.paths.via_users)
    return PathRecommender(build_path_model(graph, task).to(device), graph, task)


def run_path_lm(config: RunConfig, folder: Path, data, resume: bool):
    """Train and test a path LM; returns a :class:`graphrec.pipeline.Result`."""
    from graphrec.pipeline import Result

    task = _task_for(config, folder, resume)
    device = resolve_device(config.train.device)
    recommender = path_recommender(data, task, device)
    ks, names = config.eval.ks, config.eval.metrics
    valid_users = _valid_users(data, task, config.seed)

    def validate(model) -> dict[str, float]:
        return recommender.evaluate(data.valid, ks=ks, names=names, users=valid_users)

    trainer = PathLMTrainer(
        recommender.model, recommender.graph, task, epochs=config.train.epochs, batch_size=config.train.batch_size,
        lr=config.train.lr, weight_decay=config.train.weight_decay, device=device, seed=config.seed,
        eval_fn=validate if len(data.split.valid) else None, monitor=config.train.monitor,
        eval_every=config.train.eval_every, patience=config.train.patience, run_dir=folder, resume=resume,
        progress=config.train.progress,
    )
    if config.train.monitor not in {f"{n}@{k}" for n in names for k in ks}:
        raise ConfigError(f"key 'train.monitor': '{config.train.monitor}' is not among the evaluated metrics "
                          f"(eval.metrics x eval.ks)")
    trained = trainer.fit()
    started = time.perf_counter()
    test = recommender.evaluate(data.test, exclude=[data.valid], ks=ks, names=names, progress=config.train.progress)
    eval_seconds = time.perf_counter() - started
    report = {
        "test": test,
        "valid": trained.best_metrics,
        "best_epoch": trained.best_epoch,
        "epochs_run": trained.epochs_run,
        "stopped_early": trained.stopped_early,
        "seconds_per_epoch": per_epoch_seconds(trained.history),
        "test_eval_seconds": eval_seconds,
        "paths_per_epoch": trained.history[-1]["paths"] if trained.history else 0,
    }
    if task.decode.compare_unconstrained and task.decode.constrained:
        report["test_unconstrained"] = recommender.evaluate(data.test, exclude=[data.valid], ks=ks, names=names,
                                                            constrained=False, progress=config.train.progress)
    atomic_write_json(folder / "metrics.json", report)
    if trained.history:
        plot_history(trained.history, folder / "curve.png", config.train.monitor)
    return Result(run_dir=folder, test_metrics=test, valid_metrics=trained.best_metrics, history=trained.history,
                  seconds_per_epoch=report["seconds_per_epoch"], eval_seconds=eval_seconds)


def load_path_run(folder: Path, config: RunConfig, data, device: str = "cpu") -> PathRecommender:
    """The trained recommender of a finished path-LM run folder."""
    task = _read_task(folder / "task.yaml")
    recommender = path_recommender(data, task, resolve_device(device))
    load_weights(folder / "best.safetensors", recommender.model)
    return recommender


def _task_for(config: RunConfig, folder: Path, resume: bool) -> PathLMTask:
    """The run's task: the saved one when resuming (so edits to pretext/ cannot change a run), else the file's."""
    if resume and (folder / "task.yaml").is_file():
        return _read_task(folder / "task.yaml")
    task = load_task(config.model.pretext)
    atomic_write_text(folder / "task.yaml", yaml.safe_dump(to_mapping(task), sort_keys=False))
    return task


def _read_task(path: Path) -> PathLMTask:
    return from_mapping(PathLMTask, load_yaml(path, "path-LM task"), str(path))


def _valid_users(data, task: PathLMTask, seed: int) -> torch.Tensor | None:
    """A fixed sample of validation users (all of them when ``decode.valid_users`` is None or larger)."""
    users = np.unique(data.valid[0].numpy())
    if task.decode.valid_users is None or len(users) <= task.decode.valid_users:
        return torch.from_numpy(users)
    rng = np.random.default_rng(seed)
    return torch.from_numpy(np.sort(rng.choice(users, task.decode.valid_users, replace=False)))
