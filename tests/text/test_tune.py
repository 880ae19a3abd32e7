"""Behaviour tuning on a tiny random BERT with a learnable toy catalogue, and item_init by hand."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from graphrec.errors import ConfigError, DataError
from graphrec.text import TextEncoder, behavior_tune, item_init
from graphrec.text.tune import info_nce, next_item_pairs, warmup_then_decay

# Two groups of items with distinct words; every user stays inside one group, so the history
# text says which group the next item comes from.
ITEM_TEXTS = [f"red shoe boot sock w{i}" for i in range(8)] + [f"apple pear plum w{i}" for i in range(8, 16)]


def toy_sequences(num_users: int = 24, length: int = 5, seed: int = 0) -> list[list[int]]:
    generator = torch.Generator().manual_seed(seed)
    return [(torch.randint(0, 8, (length,), generator=generator) + 8 * (user % 2)).tolist()
            for user in range(num_users)]


def encoder(model: Path, **kwargs) -> TextEncoder:
    return TextEncoder(model, device="cpu", progress=False, max_length=32, **kwargs)


def test_pairs_hold_the_last_items_most_recent_first() -> None:
    pairs = next_item_pairs([[3, 1, 4, 1, 5], [2]], num_items=6, history=2)
    assert pairs == [((3,), 1), ((1, 3), 4), ((4, 1), 1), ((1, 4), 5)]


def test_loss_falls_and_output_dir_holds_a_loadable_model(tiny_bert: Path, tmp_path: Path) -> None:
    enc = encoder(tiny_bert)
    original = enc.identity
    before = enc.encode(ITEM_TEXTS)
    out = tmp_path / "tuned"
    result = behavior_tune(enc, ITEM_TEXTS, toy_sequences(), history=3, epochs=4, batch_size=16, lr=1e-3,
                           temperature=0.1, output_dir=out, progress=False)
    assert result.num_pairs == 24 * 4 and result.model_dir == out and result.seconds > 0
    assert len(result.losses) == 4 and result.losses[-1] < result.losses[0] - 0.1
    assert not enc.model.training  # left in the mode it was in
    reloaded = TextEncoder(out, device="cpu", progress=False, max_length=32)
    assert reloaded.identity != original
    assert reloaded.identity == enc.identity  # the encoder now names the saved folder
    torch.testing.assert_close(reloaded.encode(ITEM_TEXTS), enc.encode(ITEM_TEXTS), atol=1e-5, rtol=1e-5)
    assert not torch.allclose(enc.encode(ITEM_TEXTS), before)
    record = json.loads((out / "tune.json").read_text())
    assert record["losses"] == pytest.approx(result.losses) and record["num_pairs"] == 96
    assert record["settings"]["temperature"] == 0.1 and record["epochs_done"] == 4


def test_tuning_in_memory_does_not_reuse_cached_features(tiny_bert: Path, tmp_path: Path) -> None:
    enc = encoder(tiny_bert, cache_dir=tmp_path / "cache")
    before = enc.encode(ITEM_TEXTS)
    behavior_tune(enc, ITEM_TEXTS, toy_sequences(8), epochs=1, batch_size=8, lr=1e-3, progress=False)
    after = enc.encode(ITEM_TEXTS)
    assert enc.last_from_cache is False and not torch.allclose(after, before)


def test_same_seed_same_losses(tiny_bert: Path) -> None:
    runs = [behavior_tune(encoder(tiny_bert), ITEM_TEXTS, toy_sequences(8), epochs=1, batch_size=8,
                          max_pairs=20, seed=3, progress=False) for _ in range(2)]
    assert runs[0].num_pairs == 20
    assert runs[0].losses == runs[1].losses


def test_bad_item_index_names_the_sequence(tiny_bert: Path) -> None:
    with pytest.raises(DataError) as info:
        behavior_tune(encoder(tiny_bert), ITEM_TEXTS, [[0, 1], [2, 16, 3]], progress=False)
    assert str(info.value) == ("sequences[1]: item 16 is out of range; item_texts has 16 items "
                               "(valid indices 0..15)")


@pytest.mark.parametrize("sequences, message", [
    ([], "sequences: no sequences given"),
    ([[1], [], [2]], "sequences: none of the 3 sequences has 2 or more items"),
])
def test_no_pairs_is_a_data_error(tiny_bert: Path, sequences: list, message: str) -> None:
    with pytest.raises(DataError, match=message):
        behavior_tune(encoder(tiny_bert), ITEM_TEXTS, sequences, progress=False)


def test_batch_size_one_is_rejected(tiny_bert: Path) -> None:
    with pytest.raises(ConfigError, match="batch_size: expected an integer >= 2, got 1"):
        behavior_tune(encoder(tiny_bert), ITEM_TEXTS, toy_sequences(2), batch_size=1, progress=False)


def test_info_nce_masks_duplicate_targets() -> None:
    history = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    target = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    # Distinct items: row 0 has cos 1 (positive) vs 0; row 1 has cos 0 (positive) vs 1.
    expected = (-math.log(math.e / (math.e + 1)) - math.log(1 / (1 + math.e))) / 2
    assert info_nce(history, target, torch.tensor([0, 1]), 1.0).item() == pytest.approx(expected)
    # The same item twice: the other row is not a negative, so each row's loss is -log 1 = 0.
    assert info_nce(history, target, torch.tensor([5, 5]), 1.0).item() == pytest.approx(0.0)


def test_schedule_warms_up_then_decays_to_zero() -> None:
    factor = warmup_then_decay(20)  # 2 warm-up steps
    assert [factor(step) for step in (0, 1, 2, 11, 19)] == pytest.approx([0.5, 1.0, 1.0, 0.5, 1 / 18])


def test_item_init_same_width_is_centred_and_rescaled() -> None:
    vectors = torch.randn(50, 8, generator=torch.Generator().manual_seed(0)) + 3.0
    table = item_init(vectors, dim=8, std=0.1)
    centred = vectors - vectors.mean(0)
    torch.testing.assert_close(table, centred * (0.1 / centred.std()))
    assert table.std().item() == pytest.approx(0.1, rel=1e-5)
    torch.testing.assert_close(item_init(vectors, dim=8), centred)  # std=None keeps the scale


def test_item_init_projects_onto_the_principal_components() -> None:
    generator = torch.Generator().manual_seed(0)
    raw = torch.randn(200, 2, generator=generator)
    unit, _ = torch.linalg.qr(raw - raw.mean(0))  # centred, uncorrelated columns of norm 1
    scores = unit * torch.tensor([50.0, 20.0])  # [I, 2], the two planted components
    basis, _ = torch.linalg.qr(torch.randn(16, 2, generator=generator))  # [P=16, 2] orthonormal
    vectors = scores @ basis.T + 0.01 * torch.randn(200, 16, generator=generator) + 1.0
    table = item_init(vectors, dim=2)
    assert table.shape == (200, 2) and table.dtype == torch.float32
    # The projection keeps the planted components up to sign, in order of variance.
    for column in range(2):
        correlation = torch.corrcoef(torch.stack([table[:, column], scores[:, column]]))[0, 1]
        assert abs(correlation.item()) > 0.999
    assert table[:, 0].var() > table[:, 1].var()
    # The same vectors with their columns permuted give the same table: the sign is fixed.
    torch.testing.assert_close(item_init(vectors[:, torch.randperm(16, generator=generator)], dim=2), table,
                               atol=1e-4, rtol=1e-4)
    assert item_init(vectors, dim=4, std=0.05).std().item() == pytest.approx(0.05, rel=1e-5)


def test_item_init_cannot_widen() -> None:
    with pytest.raises(ConfigError, match=r"dim: expected an integer in 1\.\.8 .* got 16"):
        item_init(torch.randn(10, 8), dim=16)


def test_item_init_rejects_tables_it_cannot_scale() -> None:
    with pytest.raises(DataError, match="all item vectors are identical"):
        item_init(torch.ones(5, 4), dim=4, std=0.1)
    with pytest.raises(DataError, match=r"expected a non-empty \[num_items, P\] table, got shape \(4,\)"):
        item_init(torch.ones(4), dim=2)
