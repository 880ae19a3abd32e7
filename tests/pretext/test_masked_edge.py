"""Tests of masked edge prediction: hidden edges and their reverses never reach the encoder."""

from __future__ import annotations

import pytest
import torch

from graphrec.pretext import MaskedEdgePrediction
from tests.pretext.conftest import CapturingEncoder, MeanEncoder, make_batch, make_model

DIM = 16
UI, IU, UU = ("user", "interacts", "item"), ("item", "rev_interacts", "user"), ("user", "follows", "user")


def pairs(edge_index: torch.Tensor) -> set[tuple[int, int]]:
    return set(map(tuple, edge_index.t().tolist()))


def test_hidden_edges_and_their_reverses_are_absent_from_the_encoders_graph(graph):
    task = MaskedEdgePrediction(graph, DIM, edge_types=[UI, UU], mask_rate=0.2)
    hidden = task.hide(make_batch(graph, seed=11))
    encoder = CapturingEncoder(MeanEncoder())
    task.loss(make_model(graph, DIM, encoder=encoder), make_batch(graph, seed=11))  # draws the same edges
    _, seen = encoder.calls[-1]
    num_ui = graph[UI].num_edges
    assert hidden[UI].size(1) == round(0.2 * num_ui)
    assert not pairs(hidden[UI]) & pairs(seen[UI])
    assert not pairs(hidden[UI].flip(0)) & pairs(seen[IU])
    assert seen[UI].size(1) == seen[IU].size(1) == num_ui - hidden[UI].size(1)  # nothing else removed
    # follows holds both directions: a hidden friendship is hidden both ways, and drawn once per pair
    friendships = pairs(hidden[UU]) | pairs(hidden[UU].flip(0))
    assert all(a < b for a, b in pairs(hidden[UU]))
    assert not friendships & pairs(seen[UU])
    assert seen[UU].size(1) == graph[UU].num_edges - 2 * hidden[UU].size(1)
    for edge_type in graph.edge_types:
        if edge_type not in (UI, IU, UU):
            assert seen[edge_type] is graph[edge_type].edge_index


def test_edge_types_default_to_interactions_and_a_reverse_counts_once(graph):
    assert MaskedEdgePrediction(graph, DIM).edge_types == [UI]
    assert MaskedEdgePrediction(graph, DIM, edge_types=[IU, UI]).edge_types == [UI]


def test_scorings_start_as_the_dot_product(graph):
    h_src, h_dst = torch.randn(5, DIM), torch.randn(5, DIM)
    dot = (h_src * h_dst).sum(-1)
    for scoring in ("dot", "diagonal", "bilinear"):
        task = MaskedEdgePrediction(graph, DIM, scoring=scoring)
        assert torch.allclose(task.score(UI, h_src, h_dst), dot, atol=1e-6)
    assert len(list(MaskedEdgePrediction(graph, DIM, scoring="bilinear").parameters())) == 1


def test_errors_name_the_argument(graph):
    with pytest.raises(ValueError, match=r"edge type \('user', 'likes', 'item'\) is not in the graph; edge types:"):
        MaskedEdgePrediction(graph, DIM, edge_types=[("user", "likes", "item")])
    with pytest.raises(ValueError, match="mask_rate = 0; expected a fraction"):
        MaskedEdgePrediction(graph, DIM, mask_rate=0)
    with pytest.raises(ValueError, match="num_negatives = 0"):
        MaskedEdgePrediction(graph, DIM, num_negatives=0)
    with pytest.raises(ValueError, match="scoring = 'cosine'"):
        MaskedEdgePrediction(graph, DIM, scoring="cosine")
    task = MaskedEdgePrediction(graph, DIM)
    batch = make_batch(graph)
    batch.edge_index_dict[UI] = torch.zeros(2, 0, dtype=torch.long)
    with pytest.raises(ValueError, match="the batch has no edges of the types"):
        task.loss(make_model(graph, DIM), batch)
