"""Tests of the contrastive views: what each view changes, and InfoNCE on hand-made vectors."""

from __future__ import annotations

import math

import pytest
import torch

from graphrec.pretext import ContrastiveViews, info_nce
from tests.pretext.conftest import make_batch, make_model

DIM = 16
UI, IU, UU = ("user", "interacts", "item"), ("item", "rev_interacts", "user"), ("user", "follows", "user")


def pairs(edge_index: torch.Tensor) -> set[tuple[int, int]]:
    return set(map(tuple, edge_index.t().tolist()))


def test_edge_dropout_views_are_independent_and_drop_reverses_together(graph):
    task = ContrastiveViews(DIM, rate=0.3)
    batch = make_batch(graph)
    first, second = task.drop_edges(batch), task.drop_edges(batch)
    assert pairs(first[UI]) != pairs(second[UI])
    for view in (first, second):
        assert pairs(view[UI]) == pairs(view[IU].flip(0))
        assert pairs(view[UU]) == pairs(view[UU].flip(0))
        assert 0.55 < view[UI].size(1) / graph[UI].num_edges < 0.85
        assert pairs(view[UI]) <= pairs(graph[UI].edge_index)


def test_edge_dropout_touches_only_the_chosen_types(graph):
    task = ContrastiveViews(DIM, rate=0.3, edge_types=[IU])
    view = task.drop_edges(make_batch(graph))
    assert view[UI].size(1) < graph[UI].num_edges and pairs(view[UI]) == pairs(view[IU].flip(0))
    assert view[UU] is graph[UU].edge_index


def test_feature_views(graph):
    model = make_model(graph, DIM)
    x_dict = model.inputs()
    masked = ContrastiveViews(DIM, view="feature_mask", rate=0.25).perturb(x_dict, make_batch(graph))
    zeroed = (masked["user"] == 0).float().mean()
    assert 0.15 < zeroed < 0.35
    assert torch.equal(masked["user"][masked["user"] != 0], x_dict["user"][masked["user"] != 0])
    noisy = ContrastiveViews(DIM, view="noise", noise_eps=0.1).perturb(x_dict, make_batch(graph))
    delta = noisy["item"] - x_dict["item"]
    assert torch.allclose(delta.norm(dim=-1), torch.full((30,), 0.1), atol=1e-5)
    assert (delta * x_dict["item"] >= 0).all()  # SimGCL: the noise stays in the input's orthant


def test_info_nce_by_hand():
    z = torch.eye(2)
    expected = -math.log(math.e / (math.e + 1))
    assert math.isclose(float(info_nce(z, z, temperature=1.0)), expected, rel_tol=1e-6)
    assert float(info_nce(z, z, 0.05)) < 1e-6
    assert float(info_nce(z, z.flip(0), 0.05)) > 10


def test_errors_name_the_argument(graph):
    with pytest.raises(ValueError, match="view = 'crop'"):
        ContrastiveViews(DIM, view="crop")
    with pytest.raises(ValueError, match="rate = 1.0; expected a fraction"):
        ContrastiveViews(DIM, rate=1.0)
    with pytest.raises(ValueError, match="temperature = 0"):
        ContrastiveViews(DIM, temperature=0)
    with pytest.raises(ValueError, match="nodes_per_step = 1"):
        ContrastiveViews(DIM, nodes_per_step=1)
    with pytest.raises(ValueError, match="node type 'artist' is not in the encoder's output"):
        ContrastiveViews(DIM, node_types=["artist"]).loss(make_model(graph, DIM), make_batch(graph))
