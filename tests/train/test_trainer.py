"""Trainer: learns a planted structure, stops early, is reproducible, and resumes bit for bit."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch

from graphrec.errors import CheckpointError, ConfigError
from graphrec.eval.ranking import full_ranking
from graphrec.nn.lightgcn import LightGCN
from graphrec.nn.mf import MF
from graphrec.nn.popularity import Popularity
from graphrec.train import Trainer, TrainResult, plot_history

NUM_USERS, NUM_ITEMS = 30, 20


def two_clusters(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Users 0-14 like items 0-9, users 15-29 like items 10-19; 5 train + 1 validation item each."""
    generator = torch.Generator().manual_seed(seed)
    train, valid = [], []
    for user in range(NUM_USERS):
        offset = 0 if user < NUM_USERS // 2 else NUM_ITEMS // 2
        items = (torch.randperm(NUM_ITEMS // 2, generator=generator)[:6] + offset).tolist()
        train += [(user, item) for item in items[:5]]
        valid.append((user, items[5]))
    return torch.tensor(train).T.contiguous(), torch.tensor(valid).T.contiguous()


@pytest.fixture(scope="module")
def graph() -> tuple[torch.Tensor, torch.Tensor]:
    return two_clusters()


def make_mf(seed: int = 0) -> MF:
    torch.manual_seed(seed)
    return MF(NUM_USERS, NUM_ITEMS, embedding_dim=8)


def recall_eval(train: torch.Tensor, valid: torch.Tensor):
    """A real validation eval_fn: one propagation, then full ranking with training items masked."""
    def eval_fn(model: torch.nn.Module) -> dict[str, float]:
        user_emb, item_emb = model()
        metrics = full_ranking(lambda users: user_emb[users] @ item_emb.T, NUM_USERS, NUM_ITEMS, valid,
                               exclude_edge_indices=[train], ks=(5,), names=("recall", "ndcg"))
        return {"recall@5": metrics["recall@5"], "ndcg@5": metrics["ndcg@5"]}
    return eval_fn


def scripted_eval(values: list[float], snapshots: list[dict[str, torch.Tensor]]):
    """An eval_fn that returns the given monitor values in turn and records the weights it saw."""
    calls = iter(values)

    def eval_fn(model: torch.nn.Module) -> dict[str, float]:
        snapshots.append({k: v.clone() for k, v in model.state_dict().items()})
        return {"recall@20": next(calls)}
    return eval_fn


def without_seconds(history: list[dict[str, float]]) -> list[dict[str, float]]:
    return [{k: v for k, v in row.items() if k != "seconds"} for row in history]


def assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(x, y), name


@pytest.mark.parametrize("loss", ["bpr", "bce"])
def test_loss_falls_on_a_learnable_graph(graph, loss):
    train, valid = graph
    result = Trainer(make_mf(), train, epochs=15, batch_size=50, lr=0.05, weight_decay=1e-4, loss=loss,
                     num_negatives=2, device="cpu", progress=False).fit()
    losses = [row["loss"] for row in result.history]
    assert result.epochs_run == 15 and len(losses) == 15
    assert losses[-1] < 0.7 * losses[0]
    assert result.best_epoch is None and not result.stopped_early  # no eval_fn


def test_lightgcn_learns_the_clusters(graph):
    train, valid = graph
    torch.manual_seed(0)
    model = LightGCN(NUM_USERS, NUM_ITEMS, embedding_dim=8, num_layers=2)
    eval_fn = recall_eval(train, valid)
    model.set_graph(train)
    with torch.no_grad():
        before = eval_fn(model)["recall@5"]
    result = Trainer(model, train, epochs=10, batch_size=75, lr=0.1, device="cpu", eval_fn=eval_fn,
                     monitor="recall@5", eval_every=5, patience=None, progress=False).fit()
    # Five in-cluster candidates remain per user after masking; chance is 5/15 = 0.33.
    assert result.best_metrics["recall@5"] >= 0.8 > before
    assert [row["epoch"] for row in result.history if "recall@5" in row] == [5, 10]


def test_early_stopping_stops_and_restores_the_best_weights(graph, tmp_path):
    train, _ = graph
    for run_dir in (None, tmp_path / "run"):
        snapshots: list[dict[str, torch.Tensor]] = []
        model = make_mf()
        eval_fn = scripted_eval([0.1, 0.3, 0.2, 0.25, 0.9], snapshots)
        result = Trainer(model, train, epochs=20, batch_size=32, lr=0.05, device="cpu", eval_fn=eval_fn,
                         patience=2, run_dir=run_dir, progress=False).fit()
        assert result.stopped_early and result.epochs_run == 4 and len(result.history) == 4
        assert result.best_epoch == 2 and result.best_metrics == {"recall@20": 0.3}
        assert [row["recall@20"] for row in result.history] == [0.1, 0.3, 0.2, 0.25]
        for name, value in model.state_dict().items():
            assert torch.equal(value, snapshots[1][name]), name  # epoch 2's weights, not epoch 4's
            assert not torch.equal(value, snapshots[3][name])


def test_same_seed_gives_identical_weights(graph):
    train, _ = graph
    models = []
    for seed in (5, 5, 6):
        model = make_mf(seed=0)
        Trainer(model, train, epochs=3, batch_size=16, lr=0.05, num_negatives=3, device="cpu", seed=seed,
                progress=False).fit()
        models.append(model)
    assert_same_weights(models[0], models[1])
    assert not torch.equal(models[0].embedding("user"), models[2].embedding("user"))


def noisy_recall_eval(train: torch.Tensor, valid: torch.Tensor):
    """Recall plus draws from every global RNG, so a resume that forgot one shows in the history."""
    recall = recall_eval(train, valid)

    def eval_fn(model: torch.nn.Module) -> dict[str, float]:
        draws = {"torch": torch.rand(1).item(), "numpy": float(np.random.rand()), "python": random.random()}
        return recall(model) | draws
    return eval_fn


def test_resume_matches_an_uninterrupted_run(graph, tmp_path):
    train, valid = graph
    settings = dict(batch_size=16, lr=0.05, num_negatives=2, device="cpu", seed=3, monitor="recall@5",
                    patience=10, progress=False)

    straight = make_mf()
    full = Trainer(straight, train, epochs=6, eval_fn=noisy_recall_eval(train, valid),
                   run_dir=tmp_path / "straight", **settings).fit()

    Trainer(make_mf(), train, epochs=3, eval_fn=noisy_recall_eval(train, valid), run_dir=tmp_path / "resumed",
            **settings).fit()
    crashed = tmp_path / "resumed" / "checkpoint.tmp"  # a save killed midway during epoch 4
    crashed.mkdir()
    (crashed / "model.safetensors").write_bytes(b"partial")
    random.seed(123)  # the resumed process starts with other global RNG states...
    resumed_model = make_mf(seed=99)  # ...and other initial weights
    resumed = Trainer(resumed_model, train, epochs=6, eval_fn=noisy_recall_eval(train, valid),
                      run_dir=tmp_path / "resumed", resume=True, **settings).fit()

    assert_same_weights(straight, resumed_model)
    assert without_seconds(resumed.history) == without_seconds(full.history)
    assert (resumed.best_epoch, resumed.best_metrics, resumed.epochs_run) == (full.best_epoch, full.best_metrics, 6)
    saved = json.loads((tmp_path / "resumed" / "history.json").read_text())
    assert without_seconds(saved) == without_seconds(full.history)
    assert sorted(p.name for p in (tmp_path / "resumed").iterdir()) == ["best.safetensors", "checkpoint",
                                                                        "history.json"]


def test_resume_without_a_checkpoint_or_with_other_settings_is_refused(graph, tmp_path):
    train, _ = graph
    with pytest.raises(CheckpointError, match="no checkpoint to resume from"):
        Trainer(make_mf(), train, epochs=2, device="cpu", run_dir=tmp_path, resume=True, progress=False).fit()
    Trainer(make_mf(), train, epochs=1, batch_size=16, device="cpu", run_dir=tmp_path, progress=False).fit()
    with pytest.raises(CheckpointError, match=r"batch_size=16 \(now 32\)"):
        Trainer(make_mf(), train, epochs=2, batch_size=32, device="cpu", run_dir=tmp_path, resume=True,
                progress=False).fit()


def test_popularity_is_evaluated_once_without_training(graph, tmp_path):
    train, valid = graph
    model = Popularity(NUM_USERS, NUM_ITEMS)
    result = Trainer(model, train, epochs=5, device="cpu", eval_fn=recall_eval(train, valid), monitor="recall@5",
                     run_dir=tmp_path, progress=False).fit()
    assert result.epochs_run == 0 and result.history == []
    assert torch.equal(model.item_counts, torch.bincount(train[1], minlength=NUM_ITEMS).float())
    assert 0.0 <= result.best_metrics["recall@5"] <= 1.0
    assert (tmp_path / "best.safetensors").is_file()


def test_bad_arguments_say_what_is_wrong(graph):
    train, _ = graph
    with pytest.raises(ConfigError, match="unknown loss 'bpx'.*did you mean 'bpr'"):
        Trainer(make_mf(), train, loss="bpx")
    with pytest.raises(ConfigError, match="batch_size: expected a positive integer, got 0"):
        Trainer(make_mf(), train, batch_size=0)
    with pytest.raises(ConfigError, match=r"LongTensor \[2, E\]"):
        Trainer(make_mf(), train.T)
    with pytest.raises(ConfigError, match="no metric 'recall@20'.*did you mean 'recall@5'"):
        Trainer(make_mf(), train, epochs=1, device="cpu", eval_fn=lambda m: {"recall@5": 0.5},
                progress=False).fit()


def test_plot_history_writes_a_png(graph, tmp_path):
    history = [{"epoch": 1, "loss": 0.7, "recall@20": 0.1, "seconds": 0.1},
               {"epoch": 2, "loss": 0.5, "seconds": 0.1},
               {"epoch": 3, "loss": 0.4, "recall@20": 0.3, "seconds": 0.1}]
    plot_history(history, tmp_path / "curves.png", "recall@20")
    data = (tmp_path / "curves.png").read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 1000
    plot_history([], tmp_path / "empty.png", "recall@20")  # an untrained model still gets a figure
    assert (tmp_path / "empty.png").read_bytes().startswith(b"\x89PNG")


def test_train_result_defaults():
    assert TrainResult() == TrainResult(history=[], best_epoch=None, best_metrics={}, stopped_early=False,
                                        epochs_run=0)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("model_name", ["mf", "lightgcn"])
def test_cuda_with_bf16_autocast_learns(graph, model_name):
    train, valid = graph
    torch.manual_seed(0)
    model = make_mf() if model_name == "mf" else LightGCN(NUM_USERS, NUM_ITEMS, embedding_dim=8, num_layers=2)
    result = Trainer(model, train, epochs=15, batch_size=50, lr=0.05, device="cuda", amp=True,
                     eval_fn=recall_eval(train, valid), monitor="recall@5", progress=False).fit()
    assert next(model.parameters()).device.type == "cuda"
    assert next(model.parameters()).dtype == torch.float32
    assert result.history[-1]["loss"] < 0.7 * result.history[0]["loss"]
