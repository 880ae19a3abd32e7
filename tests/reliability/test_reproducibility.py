"""Reproducibility: the same seed and data give the same metrics and weights on CPU, and the run
folder records what is needed to reproduce a run (config, versions, commit, device, data checksums)."""

from __future__ import annotations

import hashlib
import importlib.metadata as metadata
import json
import subprocess
from pathlib import Path

import pytest
import torch
import yaml

from graphrec import pipeline
from graphrec.cli import main
from graphrec.utils import load_tensors
from tests.reliability.conftest import run_config


@pytest.fixture(scope="module")
def two_runs(small_root, tmp_path_factory) -> tuple[Path, Path, Path]:
    """``graphrec run CONFIG`` twice, in this process, into two folders; and the config file."""
    out = tmp_path_factory.mktemp("repro")
    config = out / "config.yaml"
    config.write_text(yaml.safe_dump(run_config(small_root, out / "runs", train={"epochs": 3})))
    folders = out / "first", out / "second"
    for folder in folders:
        assert main(["run", str(config), "--run-dir", str(folder)]) == 0
    return *folders, config


def test_same_seed_same_metrics_and_weights(two_runs):
    first, second, _ = two_runs
    metrics = [json.loads((folder / "metrics.json").read_text()) for folder in (first, second)]
    assert metrics[0]["test"] == metrics[1]["test"]  # exactly
    assert metrics[0]["valid"] == metrics[1]["valid"] and metrics[0]["best_epoch"] == metrics[1]["best_epoch"]
    histories = [json.loads((folder / "history.json").read_text()) for folder in (first, second)]
    assert [row["loss"] for row in histories[0]] == [row["loss"] for row in histories[1]]
    weights = [load_tensors(folder / "best.safetensors") for folder in (first, second)]
    assert weights[0].keys() == weights[1].keys()
    for name in weights[0]:
        assert torch.equal(weights[0][name], weights[1][name]), name
    splits = [load_tensors(folder / "split.safetensors") for folder in (first, second)]
    assert all(torch.equal(splits[0][part], splits[1][part]) for part in ("train", "valid", "test"))


def test_another_seed_other_metrics(two_runs, small_root, tmp_path):
    first, _, _ = two_runs
    other = pipeline.run(run_config(small_root, tmp_path, seed=1, train={"epochs": 3}, output={"name": "seed1"}))
    assert other.test_metrics != json.loads((first / "metrics.json").read_text())["test"]


def test_environment_records_what_reproduces_the_run(two_runs, small_root):
    first, _, config = two_runs
    environment = json.loads((first / "environment.json").read_text())
    assert {"config", "packages", "git_commit", "git_dirty", "device", "data_files", "python", "platform",
            "threads", "started"} <= environment.keys()
    # the resolved config, the same as config.yaml
    assert environment["config"] == yaml.safe_load((first / "config.yaml").read_text())
    assert environment["config"]["seed"] == 0 and environment["config"]["train"]["epochs"] == 3
    assert environment["config"]["graph"]["data_root"] == str(small_root.resolve())
    for package in ("torch", "torch-geometric", "numpy", "safetensors"):
        assert environment["packages"][package] == metadata.version(package)
    assert environment["device"] == "cpu"
    interactions = small_root.resolve() / "synthetic" / "interactions.csv"
    assert environment["data_files"] == {str(interactions): hashlib.sha256(interactions.read_bytes()).hexdigest()}
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                          cwd=Path(pipeline.__file__).parent)
    tracked = subprocess.run(["git", "ls-files", "--error-unmatch", "pipeline.py"], capture_output=True,
                             cwd=Path(pipeline.__file__).parent).returncode == 0
    if head.returncode == 0 and tracked:
        assert environment["git_commit"] == head.stdout.strip()
        assert isinstance(environment["git_dirty"], bool)
    else:
        assert environment["git_commit"] is None and environment["git_dirty"] is None


def test_no_git_means_no_commit(monkeypatch):
    def no_git(*args, **kwargs):
        raise FileNotFoundError("git")

    monkeypatch.setattr(pipeline.subprocess, "run", no_git)
    assert pipeline._git_state() == (None, None)
