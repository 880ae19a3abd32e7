"""SASRec: shapes, causality, padding invariance, the tied output and the sequence helpers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from graphrec.nn.sasrec import SASRec, pad_flat_sequences, pad_sequences, sequences_from_interactions

NUM_ITEMS, DIM = 12, 16
HISTORIES = [[0, 1, 2, 3, 4], [5, 6], [7, 8, 9, 10, 11, 0, 1], [3]]


def make_model(seed: int = 0, **kwargs) -> SASRec:
    torch.manual_seed(seed)
    settings = dict(embedding_dim=DIM, num_layers=2, num_heads=2, max_length=20, dropout=0.2) | kwargs
    return SASRec(NUM_ITEMS, **settings)


@pytest.fixture
def seqs() -> torch.Tensor:
    return pad_sequences(HISTORIES, max_length=8, pad=NUM_ITEMS)  # [4, 8]


def test_shapes(seqs):
    model = make_model()
    assert model(seqs).shape == (4, 8, DIM)
    assert model.user_vectors(seqs).shape == (4, DIM)
    assert model.score_all(seqs).shape == (4, NUM_ITEMS)
    assert model.loss(seqs[:, :-1], seqs[:, 1:]).shape == ()
    assert model.item_embedding.weight.shape == (NUM_ITEMS + 1, DIM)
    assert model.pad == NUM_ITEMS and model.trainable
    assert repr(model) == "SASRec(num_items=12, embedding_dim=16, num_layers=2, num_heads=2, max_length=20)"


def test_a_position_sees_only_earlier_items(seqs):
    model = make_model().eval()
    changed = seqs.clone()
    changed[:, 6] = (changed[:, 6] + 1) % NUM_ITEMS  # row 3's pad there becomes an item: still left-padded
    before, after = model(seqs), model(changed)
    torch.testing.assert_close(before[:, :6], after[:, :6], rtol=0, atol=1e-6)
    assert not torch.allclose(before[:, 6:], after[:, 6:])


def test_hidden_states_do_not_depend_on_the_amount_of_padding():
    model = make_model().eval()
    short, long = pad_sequences(HISTORIES, 10, NUM_ITEMS), pad_sequences(HISTORIES, 20, NUM_ITEMS)
    torch.testing.assert_close(model.user_vectors(short), model.user_vectors(long), rtol=0, atol=1e-6)
    torch.testing.assert_close(model(short), model(long)[:, 10:], rtol=0, atol=1e-6)
    torch.testing.assert_close(model.loss(short[:, :-1], short[:, 1:]), model.loss(long[:, :-1], long[:, 1:]))
    assert torch.isfinite(model(long)).all()  # pad-only rows of attention stay defined


def test_loss_is_full_softmax_cross_entropy_over_next_items_with_a_history(seqs):
    model = make_model().eval()
    inputs, targets = seqs[:, :-1], seqs[:, 1:]
    hidden = model(inputs)
    expected = [F.cross_entropy(hidden[b, t] @ model.item_embedding.weight[:NUM_ITEMS].T, targets[b, t])
                for b in range(4) for t in range(7) if targets[b, t] != NUM_ITEMS and inputs[b, t] != NUM_ITEMS]
    assert len(expected) == 4 + 1 + 6 + 0  # every item but a row's first, which follows nothing
    torch.testing.assert_close(model.loss(inputs, targets), torch.stack(expected).mean())


def test_output_layer_is_the_item_table():
    model, reference = make_model().eval(), make_model().eval()  # same seed, same weights
    history = pad_sequences([[0, 1, 2]], 4, NUM_ITEMS)
    torch.testing.assert_close(model.score_all(history),
                               model.user_vectors(history) @ model.item_embedding.weight[:NUM_ITEMS].T)
    with torch.no_grad():
        model.item_embedding.weight[11] *= 2  # item 11 is not in the history: it acts only as an output
    before, after = reference.score_all(history), model.score_all(history)
    assert torch.equal(after[:, :11], before[:, :11])
    torch.testing.assert_close(after[:, 11], 2 * before[:, 11])


def test_pad_row_is_zero_and_never_trained(seqs):
    model = make_model()
    assert torch.equal(model.item_embedding.weight[NUM_ITEMS], torch.zeros(DIM))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1, weight_decay=0.1)
    for _ in range(3):
        loss = model.loss(seqs[:, :-1], seqs[:, 1:])
        optimizer.zero_grad()
        loss.backward()
        assert torch.equal(model.item_embedding.weight.grad[NUM_ITEMS], torch.zeros(DIM))
        assert model.item_embedding.weight.grad[11].abs().sum() > 0  # not an input, still trained as an output
        optimizer.step()
    assert torch.equal(model.item_embedding.weight[NUM_ITEMS], torch.zeros(DIM))


def test_reset_parameters_is_reproducible():
    model = make_model()
    torch.manual_seed(7)
    model.reset_parameters()
    first = {name: value.clone() for name, value in model.state_dict().items()}
    torch.manual_seed(7)
    model.reset_parameters()
    for name, value in model.state_dict().items():
        assert torch.equal(value, first[name]), name
    assert torch.equal(model.item_embedding.weight[NUM_ITEMS], torch.zeros(DIM))
    assert model.item_embedding.weight.std().item() == pytest.approx(0.02, rel=0.25)


def test_set_item_embeddings_copies_and_freezes(seqs):
    model = make_model()
    table = torch.randn(NUM_ITEMS, DIM)
    model.set_item_embeddings(table, freeze=True)
    assert torch.equal(model.item_embedding.weight[:NUM_ITEMS], table)
    assert torch.equal(model.item_embedding.weight[NUM_ITEMS], torch.zeros(DIM))
    assert not model.item_embedding.weight.requires_grad
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
    position_before = model.position_embedding.weight.clone()
    model.loss(seqs[:, :-1], seqs[:, 1:]).backward()
    optimizer.step()
    assert torch.equal(model.item_embedding.weight[:NUM_ITEMS], table)
    assert not torch.equal(model.position_embedding.weight, position_before)
    model.set_item_embeddings(table, freeze=False)
    assert model.item_embedding.weight.requires_grad


def test_bad_inputs_say_what_is_wrong(seqs):
    model = make_model()
    with pytest.raises(ValueError, match=r"shape \(8,\); expected \[B, L\]"):
        model(seqs[0])
    with pytest.raises(ValueError, match="dtype torch.float32; expected torch.long"):
        model(seqs.float())
    with pytest.raises(ValueError, match=r"length 21; expected 1\.\.20"):
        model(torch.zeros(1, 21, dtype=torch.long))
    with pytest.raises(ValueError, match=r"ids in \[-1, 3\]; expected item ids in \[0, 11\] or the pad id 12"):
        model(torch.tensor([[-1, 3]]))
    with pytest.raises(ValueError, match=r"seqs\[1\] has a pad id \(12\) after an item; sequences must be left-padded"):
        model(torch.tensor([[1, 2, 3], [4, 12, 12]]))
    with pytest.raises(ValueError, match=r"targets is torch.int64 \(4, 6\); expected a LongTensor shaped like seqs"):
        model.loss(seqs[:, :-1], seqs[:, 2:])
    with pytest.raises(ValueError, match="targets holds only pad ids"):
        model.loss(seqs[:, :-1], torch.full((4, 7), NUM_ITEMS))
    with pytest.raises(ValueError, match=r"shape \(12, 8\); expected \(12, 16\) \(num_items, embedding_dim\)"):
        model.set_item_embeddings(torch.zeros(NUM_ITEMS, 8))
    with pytest.raises(ValueError, match="embedding_dim = 16 is not divisible by num_heads = 3"):
        SASRec(NUM_ITEMS, embedding_dim=16, num_heads=3)
    with pytest.raises(ValueError, match="max_length = 0; expected a positive int"):
        SASRec(NUM_ITEMS, max_length=0)


def test_pad_sequences_keeps_the_most_recent_items_left_padded():
    padded = pad_sequences([[1, 2, 3, 4, 5], [6, 7], [], [8, 9, 10]], max_length=3, pad=-1)
    assert padded.tolist() == [[3, 4, 5], [-1, 6, 7], [-1, -1, -1], [8, 9, 10]]
    assert padded.dtype == torch.long
    as_tensors = pad_sequences([torch.tensor([1, 2, 3, 4, 5]), torch.tensor([6, 7]), torch.tensor([], dtype=torch.long),
                                torch.tensor([8, 9, 10])], max_length=3, pad=-1)
    assert torch.equal(as_tensors, padded)
    assert pad_sequences([], 4, 0).shape == (0, 4)
    flat = pad_flat_sequences(np.array([1, 2, 3, 4, 5, 6, 7]), np.array([0, 5, 7]), max_length=6, pad=0)
    assert flat.tolist() == [[0, 1, 2, 3, 4, 5], [0, 0, 0, 0, 6, 7]]
    with pytest.raises(ValueError, match=r"offsets must start at 0 and end at len\(flat_items\) = 7"):
        pad_flat_sequences(np.arange(7), np.array([0, 5]), 3, 0)
    with pytest.raises(ValueError, match="offsets must be non-decreasing"):
        pad_flat_sequences(np.arange(7), np.array([0, 5, 3, 7]), 3, 0)
    with pytest.raises(ValueError, match="max_length = 0; expected a positive int"):
        pad_sequences([[1]], 0, 0)


def test_sequences_from_interactions_orders_each_user_by_order():
    users = np.array([1, 0, 1, 1, 0, 3])
    items = np.array([10, 20, 11, 12, 21, 30])
    order = np.array([5, 9, 1, 5, 2, 0])  # user 1's items 10 and 12 tie: row order decides
    flat, offsets = sequences_from_interactions(users, items, order, num_users=4)
    assert offsets.tolist() == [0, 2, 5, 5, 6]
    sequences = [flat[offsets[u]:offsets[u + 1]].tolist() for u in range(4)]
    assert sequences == [[21, 20], [11, 10, 12], [], [30]]
    assert pad_flat_sequences(flat, offsets, 2, 99).tolist() == [[21, 20], [10, 12], [99, 99], [99, 30]]
    with pytest.raises(ValueError, match=r"users holds ids in \[0, 3\]; expected 0\.\.2 \(num_users=3\)"):
        sequences_from_interactions(users, items, order, num_users=3)
    with pytest.raises(ValueError, match="1-D arrays of one length"):
        sequences_from_interactions(users, items[:-1], order, num_users=4)
