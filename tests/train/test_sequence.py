"""SequenceTrainer: learns a deterministic next-item rule, skips short rows, and resumes bit for bit."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch

from graphrec.errors import CheckpointError, ConfigError
from graphrec.nn.sasrec import SASRec, pad_sequences
from graphrec.train.sequence import SequenceTrainer

NUM_ITEMS, MAX_LENGTH, NUM_USERS = 20, 8, 160


def cyclic_histories(seed: int = 0) -> list[list[int]]:
    """Each user walks the cycle 0 -> 1 -> ... -> 19 -> 0 from a random start, for 3 to 12 steps."""
    generator = np.random.default_rng(seed)
    starts, lengths = generator.integers(0, NUM_ITEMS, NUM_USERS), generator.integers(3, 13, NUM_USERS)
    return [[(start + k) % NUM_ITEMS for k in range(length)] for start, length in zip(starts, lengths)]


def make_model(seed: int = 0) -> SASRec:
    torch.manual_seed(seed)
    return SASRec(NUM_ITEMS, embedding_dim=32, num_layers=1, num_heads=2, max_length=MAX_LENGTH, dropout=0.1)


def next_item_eval(histories: list[list[int]], draw_rngs: bool = False):
    """HR@1 of the item after each whole history; with ``draw_rngs`` also draws from every global RNG,
    so that a resume which forgot to restore one shows in the history."""
    inputs = pad_sequences(histories, MAX_LENGTH, NUM_ITEMS)  # [U, L]
    targets = torch.tensor([(history[-1] + 1) % NUM_ITEMS for history in histories])  # [U]

    def eval_fn(model: SASRec) -> dict[str, float]:
        device = next(model.parameters()).device  # inputs go where the model is, as for any torch module
        metrics = {"hr@1": (model.score_all(inputs.to(device)).argmax(1).cpu() == targets).float().mean().item()}
        if draw_rngs:
            metrics |= {"torch": torch.rand(1).item(), "numpy": float(np.random.rand()), "python": random.random()}
        return metrics
    return eval_fn


@pytest.fixture(scope="module")
def train_sequences() -> torch.Tensor:
    return pad_sequences(cyclic_histories(), MAX_LENGTH + 1, NUM_ITEMS)  # [U, L+1]


def without_seconds(history: list[dict[str, float]]) -> list[dict[str, float]]:
    return [{k: v for k, v in row.items() if k != "seconds"} for row in history]


def test_learns_a_deterministic_next_item_rule(train_sequences):
    model = make_model()
    eval_fn = next_item_eval(cyclic_histories(seed=1))  # other users, other starts and lengths
    with torch.no_grad():
        before = eval_fn(model.eval())["hr@1"]
    result = SequenceTrainer(model, train_sequences, epochs=12, batch_size=32, lr=0.01, device="cpu",
                             eval_fn=eval_fn, monitor="hr@1", eval_every=4, patience=None, progress=False).fit()
    assert [row["epoch"] for row in result.history if "hr@1" in row] == [4, 8, 12]
    assert result.history[-1]["loss"] < 0.3 * result.history[0]["loss"]
    assert result.best_metrics["hr@1"] > 0.9 > 0.2 > before  # chance is 1/20


def test_resume_matches_an_uninterrupted_run(train_sequences, tmp_path):
    settings = dict(batch_size=32, lr=0.01, device="cpu", seed=3, monitor="hr@1", progress=False)
    histories = cyclic_histories(seed=1)

    straight = make_model()
    full = SequenceTrainer(straight, train_sequences, epochs=4, eval_fn=next_item_eval(histories, draw_rngs=True),
                           run_dir=tmp_path / "straight", **settings).fit()

    SequenceTrainer(make_model(), train_sequences, epochs=2, eval_fn=next_item_eval(histories, draw_rngs=True),
                    run_dir=tmp_path / "resumed", **settings).fit()
    random.seed(123)  # the resumed process starts with other global RNG states...
    torch.manual_seed(123)
    resumed_model = make_model(seed=99)  # ...and other initial weights
    resumed = SequenceTrainer(resumed_model, train_sequences, epochs=4,
                              eval_fn=next_item_eval(histories, draw_rngs=True), run_dir=tmp_path / "resumed",
                              resume=True, **settings).fit()

    for (name, a), (_, b) in zip(straight.state_dict().items(), resumed_model.state_dict().items()):
        assert torch.equal(a, b), name
    assert without_seconds(resumed.history) == without_seconds(full.history)
    assert (resumed.best_epoch, resumed.best_metrics, resumed.epochs_run) == (full.best_epoch, full.best_metrics, 4)
    saved = json.loads((tmp_path / "resumed" / "history.json").read_text())
    assert without_seconds(saved) == without_seconds(full.history)
    assert sorted(p.name for p in (tmp_path / "resumed").iterdir()) == ["best.safetensors", "checkpoint",
                                                                        "history.json"]
    with pytest.raises(CheckpointError, match=r"batch_size=32 \(now 16\)"):
        SequenceTrainer(make_model(), train_sequences, epochs=5, **(settings | {"batch_size": 16}),
                        run_dir=tmp_path / "resumed", resume=True).fit()


def test_early_stopping_keeps_the_best_weights(train_sequences):
    snapshots: list[dict[str, torch.Tensor]] = []
    values = iter([0.1, 0.3, 0.2, 0.25])

    def eval_fn(model: SASRec) -> dict[str, float]:
        snapshots.append({k: v.clone() for k, v in model.state_dict().items()})
        return {"ndcg@10": next(values)}

    model = make_model()
    result = SequenceTrainer(model, train_sequences, epochs=10, batch_size=64, device="cpu", eval_fn=eval_fn,
                             patience=2, progress=False).fit()
    assert result.stopped_early and result.epochs_run == 4 and result.best_epoch == 2
    for name, value in model.state_dict().items():
        assert torch.equal(value, snapshots[1][name]), name


def test_rows_with_fewer_than_two_items_are_skipped():
    sequences = pad_sequences([[1, 2, 3], [4], [], [5, 6]], 4, NUM_ITEMS)
    trainer = SequenceTrainer(make_model(), sequences, epochs=1, device="cpu", progress=False)
    assert trainer.sequences.tolist() == [[NUM_ITEMS, 1, 2, 3], [NUM_ITEMS, NUM_ITEMS, 5, 6]]
    assert trainer.fit().epochs_run == 1
    with pytest.raises(ValueError, match="no row holds two or more items"):
        SequenceTrainer(make_model(), sequences[1:3], epochs=1, device="cpu")


def test_bad_arguments_say_what_is_wrong(train_sequences):
    with pytest.raises(ConfigError, match="batch_size: expected a positive integer, got 0"):
        SequenceTrainer(make_model(), train_sequences, epochs=1, batch_size=0)
    with pytest.raises(ConfigError, match="resume=True needs run_dir"):
        SequenceTrainer(make_model(), train_sequences, epochs=1, resume=True)
    with pytest.raises(ValueError, match=r"sequences has length 10; expected 2\.\.9 \(model.max_length \+ 1"):
        SequenceTrainer(make_model(), pad_sequences([[1, 2]], MAX_LENGTH + 2, NUM_ITEMS), epochs=1)
    with pytest.raises(ValueError, match=r"sequences holds ids in \[0, 21\]"):
        SequenceTrainer(make_model(), torch.tensor([[0, 21]]), epochs=1)
    with pytest.raises(CheckpointError, match="no checkpoint to resume from"):
        SequenceTrainer(make_model(), train_sequences, epochs=1, device="cpu", run_dir="/nonexistent/run",
                        resume=True, progress=False).fit()
    with pytest.raises(ConfigError, match="no metric 'ndcg@10'.*did you mean 'ndcg@5'"):
        SequenceTrainer(make_model(), train_sequences, epochs=1, device="cpu", eval_fn=lambda m: {"ndcg@5": 0.5},
                        progress=False).fit()


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_with_bf16_autocast_learns(train_sequences):
    model = make_model()
    result = SequenceTrainer(model, train_sequences, epochs=12, batch_size=32, lr=0.01, device="cuda", amp=True,
                             eval_fn=next_item_eval(cyclic_histories(seed=1)), monitor="hr@1", progress=False).fit()
    assert next(model.parameters()).dtype == torch.float32
    assert result.best_metrics["hr@1"] > 0.9
