"""Tests of meta-path prediction: balanced labelled pairs from real walks, and its errors."""

from __future__ import annotations

import pytest
import torch

from graphrec.pretext import MetaPathPrediction
from tests.pretext.conftest import make_batch, make_graph

DIM = 16
METAPATHS = [["user", "item", "user"], ["item", "genre", "item"], ["user", "user", "item"]]


def test_pairs_are_walk_ends_labelled_by_their_metapath(graph):
    task = MetaPathPrediction(graph, DIM, METAPATHS, pairs_per_step=300)
    starts, ends, labels = task.sample_pairs(make_batch(graph))
    assert torch.equal(labels, torch.cat([torch.full((len(s),), k) for k, s in enumerate(starts)]))
    for k, (metapath, start, end) in enumerate(zip(METAPATHS, starts, ends)):
        assert 0 < len(start) <= 100
        if metapath[0] == metapath[-1]:
            assert (start != end).all()
    # user-user-item: the start follows a friend who interacted with the end item
    follows = set(map(tuple, graph["user", "follows", "user"].edge_index.t().tolist()))
    interacts = set(map(tuple, graph["user", "interacts", "item"].edge_index.t().tolist()))
    for user, item in zip(starts[2].tolist(), ends[2].tolist()):
        assert any((user, friend) in follows and (friend, item) in interacts for friend in range(36))


def test_logits_are_symmetric_in_the_pair(graph):
    task = MetaPathPrediction(graph, DIM, METAPATHS)
    h_a, h_b = torch.randn(4, DIM), torch.randn(4, DIM)
    assert task.logits(h_a, h_b).shape == (4, 3)
    assert torch.allclose(task.logits(h_a, h_b), task.logits(h_b, h_a))


def test_sampler_is_built_once_per_graph(graph):
    task = MetaPathPrediction(graph, DIM, METAPATHS)
    batch = make_batch(graph)
    assert task.sampler(batch) is task.sampler(batch)
    changed = make_batch(graph)
    changed.edge_index_dict["user", "interacts", "item"] = graph["user", "interacts", "item"].edge_index[:, :-5]
    assert task.sampler(changed) is not task.sampler(batch)


def test_errors_name_the_metapath():
    graph = make_graph(social=False)
    with pytest.raises(ValueError, match="meta-path user-user-item has no edges from 'user' to 'user'"):
        MetaPathPrediction(graph, DIM, METAPATHS)
    with pytest.raises(ValueError, match="expected at least two"):
        MetaPathPrediction(graph, DIM, METAPATHS[:1])
    with pytest.raises(ValueError, match="lists a meta-path twice"):
        MetaPathPrediction(graph, DIM, [METAPATHS[0], "user-item-user"])
