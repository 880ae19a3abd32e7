"""Tests of the uniform negative sampler."""

from __future__ import annotations

import pytest
import torch

from graphrec.errors import CheckpointError, DataError
from graphrec.train.negatives import NegativeSampler


def random_graph(num_users: int = 30, num_items: int = 12, num_edges: int = 200, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.stack(
        [torch.randint(0, num_users, (num_edges,), generator=generator),
         torch.randint(0, num_items, (num_edges,), generator=generator)]
    )


def test_negatives_are_never_positives():
    edge_index = random_graph()
    dense = torch.zeros(30, 12, dtype=torch.bool)
    dense[edge_index[0], edge_index[1]] = True
    sampler = NegativeSampler(edge_index, num_users=30, num_items=12, seed=0)
    users = torch.arange(30).repeat(20)
    negatives = sampler.sample(users, num_negatives=5)
    assert negatives.shape == (600, 5) and negatives.dtype == torch.long
    assert not dense[users.unsqueeze(1), negatives].any()
    assert negatives.min() >= 0 and negatives.max() < 12


def test_user_with_all_but_one_item_always_gets_that_item():
    # user 0 has items 0, 1, 2, 4 of 5; user 1 has only item 0.
    edge_index = torch.tensor([[0, 0, 0, 0, 1], [0, 1, 2, 4, 0]])
    sampler = NegativeSampler(edge_index, num_users=2, num_items=5, seed=3)
    negatives = sampler.sample(torch.zeros(200, dtype=torch.long), num_negatives=3)
    assert (negatives == 3).all()
    assert not (sampler.sample(torch.ones(200, dtype=torch.long)) == 0).any()


def test_negatives_are_uniform_over_non_interacted_items():
    edge_index = torch.tensor([[0, 0], [1, 3]])  # user 0 may get items 0, 2, 4
    sampler = NegativeSampler(edge_index, num_users=1, num_items=5, seed=0)
    counts = torch.bincount(sampler.sample(torch.zeros(30000, dtype=torch.long)).flatten(), minlength=5)
    assert counts[1] == 0 and counts[3] == 0
    assert (counts[[0, 2, 4]] / 30000.0 - 1 / 3).abs().max() < 0.02


def test_direct_draw_after_max_rounds():
    edge_index = torch.tensor([[0] * 8, list(range(8))])  # user 0 lacks items 8, 9 only
    sampler = NegativeSampler(edge_index, num_users=1, num_items=10, seed=0, max_rounds=0)
    negatives = sampler.sample(torch.zeros(4000, dtype=torch.long))
    counts = torch.bincount(negatives.flatten(), minlength=10)
    assert counts[:8].sum() == 0
    assert abs(counts[8].item() / 4000 - 0.5) < 0.05


def test_user_with_every_item_raises_clear_error():
    edge_index = torch.tensor([[0, 0, 0, 1], [0, 1, 2, 0]])
    sampler = NegativeSampler(edge_index, num_users=2, num_items=3)
    with pytest.raises(DataError, match=r"user\(s\) \[0\] interacted with all 3 items"):
        sampler.sample(torch.tensor([1, 0]))


def test_reproducible_under_seed_and_resumable():
    edge_index = random_graph()
    users = torch.arange(30)
    first = NegativeSampler(edge_index, 30, 12, seed=5)
    second = NegativeSampler(edge_index, 30, 12, seed=5)
    assert torch.equal(first.sample(users, 4), second.sample(users, 4))
    assert not torch.equal(first.sample(users, 4), NegativeSampler(edge_index, 30, 12, seed=6).sample(users, 4))

    state = first.state_dict()
    expected = first.sample(users, 4)
    resumed = NegativeSampler(edge_index, 30, 12, seed=0)
    resumed.load_state_dict(state)
    assert torch.equal(resumed.sample(users, 4), expected)
    with pytest.raises(CheckpointError, match="expected 'generator_state'"):
        resumed.load_state_dict({"seed": 1})


def test_rejects_bad_input():
    sampler = NegativeSampler(random_graph(), 30, 12)
    with pytest.raises(ValueError, match=r"users holds ids in \[0, 30\]; expected ids in \[0, 29\]"):
        sampler.sample(torch.tensor([0, 30]))
    with pytest.raises(ValueError, match="num_negatives = 0"):
        sampler.sample(torch.tensor([0]), num_negatives=0)
    with pytest.raises(ValueError, match=r"user ids in \[0, 29\]; expected ids in \[0, 9\]"):
        NegativeSampler(random_graph(), 10, 12)
