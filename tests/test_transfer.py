"""Pre-train, then fine-tune, end to end on a small synthetic graph (model.name: graph)."""

import json

import numpy as np
import pytest
import torch

from graphrec.cli import main
from graphrec.config import RunConfig
from graphrec.errors import CheckpointError, ConfigError
from graphrec.pipeline import load_run, run
from graphrec.transfer import pretrain
from graphrec.utils import load_tensors
from tests.conftest import run_config, write_synthetic_root


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory):
    return write_synthetic_root(tmp_path_factory.mktemp("synthetic-transfer"), num_users=200, num_items=120,
                                num_communities=4, interactions_per_user=15, seed=3)


def config_for(root, tmp_path, **sections) -> RunConfig:
    return run_config(root, tmp_path, {
        "model": {"name": "graph", "encoder": "sage", "embedding_dim": 16, "num_layers": 2},
        "train": {"epochs": 4, "batch_size": 1024, "lr": 0.01, "progress": False, "device": "cpu",
                  "eval_every": 2},
        "pretrain": {"pretext": "chest", "steps": 12, "checkpoint_every": 6},
    }, sections)


@pytest.fixture(scope="module")
def pretrained(synthetic_root, tmp_path_factory):
    folder = tmp_path_factory.mktemp("pretrain-runs")
    return pretrain(config_for(synthetic_root, folder, output={"name": "pre"}))


def test_pretrain_writes_an_encoder_checkpoint_and_loss_history(pretrained):
    folder = pretrained.run_dir
    for name in ("encoder.safetensors", "pretrain.json", "pretrain_history.json", "pretrain_curve.png",
                 "config.yaml", "split.safetensors"):
        assert (folder / name).is_file(), name
    tensors = load_tensors(folder / "encoder.safetensors")
    assert tensors and all(name.startswith(("embedding.", "encoder.")) for name in tensors)
    info = json.loads((folder / "pretrain.json").read_text())
    assert info["steps"] == 12 and info["recipe"] == "chest"
    assert all(np.isfinite(row["loss"]) for row in pretrained.history)


def test_pretrain_resume_matches_an_uninterrupted_run(synthetic_root, tmp_path):
    straight = pretrain(config_for(synthetic_root, tmp_path, output={"name": "straight"}))
    cut = config_for(synthetic_root, tmp_path, output={"name": "cut"}, pretrain={"steps": 6})
    pretrain(cut)
    resumed = pretrain(config_for(synthetic_root, tmp_path, output={"name": "cut"}), resume=True)
    first = load_tensors(straight.checkpoint)
    second = load_tensors(resumed.checkpoint)
    assert first.keys() == second.keys()
    for name in first:
        assert torch.allclose(first[name], second[name], atol=1e-6), name


@pytest.mark.parametrize("strategy,head", [("full", "dot"), ("head", "mlp"), ("adapter", "dot"), ("prompt", "linear"),
                                           ("partial", "dot")])
def test_finetune_each_strategy_records_what_trained(synthetic_root, tmp_path, pretrained, strategy, head):
    frozen = ["embedding"] if strategy == "partial" else []
    config = config_for(synthetic_root, tmp_path, model={"head": head}, output={"name": strategy},
                        finetune={"checkpoint": str(pretrained.run_dir), "strategy": strategy, "frozen": frozen})
    result = run(config)
    info = json.loads((result.run_dir / "metrics.json").read_text())["finetune"]
    assert info["strategy"] == strategy and info["loaded_tensors"] > 0
    assert 0 < info["trainable_parameters"] <= info["total_parameters"]
    if strategy != "full":
        assert info["trainable_parameters"] < info["total_parameters"]
    assert result.test_metrics["recall@20"] > 0
    # the frozen encoder of head / adapter / prompt is the pre-trained one, unchanged
    if strategy in ("head", "adapter", "prompt"):
        pre = load_tensors(pretrained.checkpoint)
        best = load_tensors(result.run_dir / "best.safetensors")
        for name in pre:
            assert torch.equal(pre[name], best[name]), name
    _, _, model = load_run(result.run_dir)  # the strategy's modules are rebuilt and loaded
    assert type(model.head).__name__ == {"dot": "DotProductHead", "mlp": "MLPHead", "linear": "LinearDotHead"}[head]


def test_finetune_refuses_a_checkpoint_that_saw_held_out_interactions(synthetic_root, tmp_path, pretrained):
    config = config_for(synthetic_root, tmp_path, output={"name": "leak"},
                        finetune={"checkpoint": str(pretrained.run_dir)})
    config.seed = 1  # another split: pre-training trained on some of its test rows
    with pytest.raises(CheckpointError, match="held out|holds out"):
        run(config)


def test_finetune_refuses_a_checkpoint_of_another_encoder(synthetic_root, tmp_path, pretrained):
    config = config_for(synthetic_root, tmp_path, model={"encoder": "rgcn"}, output={"name": "other"},
                        finetune={"checkpoint": str(pretrained.run_dir)})
    with pytest.raises(CheckpointError, match="does not fit this model"):
        run(config)


def test_finetune_keys_need_a_graph_model(synthetic_root, tmp_path):
    with pytest.raises(ConfigError, match="finetune.*model.name: graph"):
        config_for(synthetic_root, tmp_path, model={"name": "lightgcn"}, finetune={"strategy": "head"})


def test_cli_pretrain_then_finetune(synthetic_root, tmp_path, capsys):
    config = tmp_path / "graph.yaml"
    config.write_text(json.dumps({
        "graph": {"recipe": "synthetic", "data_root": str(synthetic_root), "cache_dir": str(synthetic_root / "cache")},
        "model": {"name": "graph", "encoder": "lightgcn", "embedding_dim": 16, "num_layers": 2, "head": "linear"},
        "train": {"epochs": 2, "batch_size": 1024, "progress": False, "device": "cpu"},
        "pretrain": {"steps": 6},
    }))
    assert main(["pretrain", str(config), "--pretext", "masked-edge", "--run-dir", str(tmp_path / "pre")]) == 0
    out = capsys.readouterr().out
    assert "encoder checkpoint" in out and "graphrec finetune" in out
    assert main(["finetune", str(config), "--from", str(tmp_path / "pre"), "--strategy", "head",
                 "--run-dir", str(tmp_path / "fine")]) == 0
    out = capsys.readouterr().out
    assert "strategy head" in out and "trained 512 of" in out  # the linear head: two 16 x 16 maps
