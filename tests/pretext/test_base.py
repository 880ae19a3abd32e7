"""Tests of the shared pretext bookkeeping: reverse edge types and edge removal."""

from __future__ import annotations

import torch

from graphrec.pretext.base import (
    PretextBatch, canonical_edge_types, droppable_edges, remove_edges, reverse_edge_type, sample_fraction,
)

UI, IU, UU = ("user", "interacts", "item"), ("item", "rev_interacts", "user"), ("user", "follows", "user")
IG = ("item", "has_genre", "genre")
TYPES = [UI, IU, UU, IG]


def test_reverse_edge_type_follows_the_rev_convention_both_ways():
    assert reverse_edge_type(UI, TYPES) == IU
    assert reverse_edge_type(IU, TYPES) == UI
    assert reverse_edge_type(UU, TYPES) == UU  # symmetric: both directions in one type
    assert reverse_edge_type(IG, TYPES) is None  # no reverse stored


def test_canonical_edge_types_keeps_one_of_a_type_and_its_reverse():
    assert canonical_edge_types([IU, UI, UU], TYPES) == [UI, UU]
    assert canonical_edge_types([IG], TYPES) == [IG]


def test_remove_edges_drops_every_copy_and_the_reverse():
    edges = {
        UI: torch.tensor([[0, 0, 1, 1, 2], [0, 1, 1, 1, 2]]),  # (1, 1) twice
        IU: torch.tensor([[0, 1, 1, 1, 2], [0, 0, 1, 1, 2]]),
        UU: torch.tensor([[0, 1, 1, 2], [1, 0, 2, 1]]),
        IG: torch.tensor([[0, 1], [0, 0]]),
    }
    counts = {"user": 3, "item": 3, "genre": 1}
    out = remove_edges(edges, {UI: torch.tensor([[1], [1]]), UU: torch.tensor([[0], [1]])}, counts)
    assert out[UI].t().tolist() == [[0, 0], [0, 1], [2, 2]]
    assert out[IU].t().tolist() == [[0, 0], [1, 0], [2, 2]]
    assert out[UU].t().tolist() == [[1, 2], [2, 1]]  # (0, 1) and its flip (1, 0) gone
    assert out[IG] is edges[IG]  # untouched types are the same tensors


def test_droppable_edges_of_a_symmetric_type_count_each_pair_once():
    edge_index = torch.tensor([[0, 1, 1, 2, 3], [1, 0, 2, 1, 3]])
    assert droppable_edges(edge_index, UU, TYPES).tolist() == [0, 2]  # src < dst; the self-loop is kept
    assert droppable_edges(edge_index[:, :2], UI, TYPES).tolist() == [0, 1]


def test_sample_fraction_is_exact_seeded_and_never_empty():
    first = sample_fraction(100, 0.15, torch.Generator().manual_seed(3))
    again = sample_fraction(100, 0.15, torch.Generator().manual_seed(3))
    assert len(first) == 15 and len(set(first.tolist())) == 15 and torch.equal(first, again)
    assert len(sample_fraction(3, 0.1, None)) == 1
    assert len(sample_fraction(0, 0.1, None)) == 0


def test_batch_device_is_the_edges_device():
    batch = PretextBatch({UI: torch.zeros(2, 0, dtype=torch.long)}, {"user": 1, "item": 1})
    assert batch.device == torch.device("cpu") and batch.step == 0 and batch.generator is None
