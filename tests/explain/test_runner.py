"""The path LM through the shared pipeline: run, resume, evaluate, recommend and explain."""

from __future__ import annotations

import json

import pytest
import yaml

from graphrec.cli import main
from graphrec.config import RunConfig
from graphrec.data.synthetic import generate, write
from graphrec.errors import ConfigError
from graphrec.explain import load_task
from graphrec.explain.api import ExplainedRun, recommend_with_paths
from graphrec.pipeline import recommend, run
from graphrec.schema import from_mapping


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic-paths")
    write(generate(num_users=120, num_items=80, num_communities=4, interactions_per_user=12, num_kg_entities=60,
                   seed=2), root / "synthetic")
    return root


@pytest.fixture(scope="module")
def task_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("pretext") / "small-path-lm.yaml"
    path.write_text(yaml.safe_dump({
        "task": "path_lm",
        "paths": {"hops": [3], "paths_per_user": 20},
        "model": {"dim": 32, "num_layers": 1, "num_heads": 2, "dropout": 0.0},
        "decode": {"hops": 3, "beam_width": 4, "batch_size": 64, "valid_users": 50},
    }))
    return path


def config_for(root, out, task, **train) -> RunConfig:
    return from_mapping(RunConfig, {
        "seed": 0,
        "graph": {"recipe": "synthetic", "data_root": str(root), "cache_dir": str(root / "cache")},
        "model": {"name": "path_lm", "pretext": str(task)},
        "train": {"epochs": 3, "batch_size": 256, "lr": 0.005, "progress": False, "device": "cpu",
                  "monitor": "ndcg@10", "eval_every": 1, **train},
        "eval": {"ks": [10]},
        "output": {"dir": str(out)},
    }, "test")


@pytest.fixture(scope="module")
def finished(synthetic_root, task_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    config = config_for(synthetic_root, out, task_file)
    config.output.name = "paths"
    return run(config)


def test_run_writes_metrics_with_valid_paths_and_the_unconstrained_comparison(finished):
    report = json.loads((finished.run_dir / "metrics.json").read_text())
    assert report["test"]["validity"] == 1.0
    assert report["test"]["coverage"] > 0.5
    assert "test_unconstrained" in report and report["test_unconstrained"]["validity"] < 1.0
    assert report["epochs_run"] == 3 and report["paths_per_epoch"] > 0
    assert 0.0 < report["test"]["ndcg@10"] <= 1.0
    assert (finished.run_dir / "task.yaml").is_file() and (finished.run_dir / "curve.png").is_file()
    history = json.loads((finished.run_dir / "history.json").read_text())
    assert history[-1]["loss"] < history[0]["loss"]


def test_resume_gives_the_same_result(synthetic_root, task_file, finished, tmp_path):
    config = config_for(synthetic_root, tmp_path, task_file, epochs=2)
    config.output.name = "resumed"
    run(config)
    config.train.epochs = 3
    resumed = run(config, resume=True)
    assert resumed.test_metrics == pytest.approx(finished.test_metrics)


def test_recommend_with_paths_api_and_cli(finished, capsys):
    lists = recommend_with_paths(finished.run_dir, ["u1", "u2"], k=5)
    assert [entry["user"] for entry in lists] == ["u1", "u2"]
    loaded = ExplainedRun(finished.run_dir)
    seen = set(loaded.data.bundle.interactions.item[loaded.data.bundle.interactions.user == 1].tolist())
    for row in lists[0]["items"]:
        assert row["path"][0] == {"type": "user", "id": "u1", "name": "u1"}
        assert row["path"][-1]["id"] == row["item"]
        assert row["explanation"].startswith("You interacted with *")
        assert loaded.idmap.index_of("item", row["item"]) not in seen
    assert main(["explain", "--run", str(finished.run_dir), "--user", "u1", "-k", "3"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("user u1") and "You interacted with" in text
    assert main(["explain", "--run", str(finished.run_dir), "--user", "u1", "-k", "2", "--format", "json"]) == 0
    assert len(json.loads(capsys.readouterr().out)[0]["items"]) == 2
    plain = recommend(finished.run_dir, ["u1"], k=3)
    assert [row["item"] for row in plain[0]["items"]] == [row["item"] for row in lists[0]["items"][:3]]


def test_evaluate_cli_on_a_path_run(finished, capsys):
    assert main(["evaluate", str(finished.run_dir), "--format", "json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["ndcg@10"] == pytest.approx(finished.test_metrics["ndcg@10"])


def test_explain_errors(finished, synthetic_root, tmp_path, capsys):
    assert main(["explain", "--run", str(finished.run_dir), "--user", "nobody"]) == 2
    assert "unknown user id 'nobody'" in capsys.readouterr().err
    lightgcn = from_mapping(RunConfig, {
        "graph": {"recipe": "synthetic", "data_root": str(synthetic_root), "cache_dir": str(synthetic_root / "cache")},
        "train": {"epochs": 1, "progress": False}, "output": {"dir": str(tmp_path), "name": "lgcn"}}, "test")
    run(lightgcn)
    assert main(["explain", "--run", str(tmp_path / "lgcn"), "--user", "u1"]) == 2
    assert "not a path_lm" in capsys.readouterr().err


def test_task_file_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("task: path_lm\ndecode:\n  beam_widht: 3\n")
    with pytest.raises(ConfigError, match=r"bad.yaml.*'decode.beam_widht'.*beam_width"):
        load_task(bad)
    bad.write_text("task: path_lm\nmodel:\n  dim: 30\n  num_heads: 4\n")
    with pytest.raises(ConfigError, match="divisible"):
        load_task(bad)
    bad.write_text("task: masked_edge\n")
    with pytest.raises(ConfigError, match="needs a path_lm task"):
        load_task(bad)
    with pytest.raises(ConfigError, match="no pretext task or recipe 'path-lmm'.*path-lm"):
        load_task("path-lmm")
    assert load_task("path-lm").decode.constrained is True
