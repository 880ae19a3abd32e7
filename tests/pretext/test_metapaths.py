"""Tests of graphrec.graph.metapaths: type-correct walks whose every hop is an edge.

(The sampler lives in ``graphrec.graph``; its tests sit here beside the task that uses it.)
"""

from __future__ import annotations

import pytest
import torch

from graphrec.graph.metapaths import MetaPathSampler, metapath_name, missing_hops, parse_metapath, split_applicable
from tests.pretext.conftest import make_graph, num_nodes

METAPATHS = [["user", "item", "user"], ["user", "item", "genre", "item", "user"], ["item", "entity", "item"],
             ["user", "user", "item"], ["user", "item", "tag", "item"]]


def hop_edges(graph, src: str, dst: str) -> set[tuple[int, int]]:
    out = set()
    for (s, _, d), index in graph.edge_index_dict.items():
        if (s, d) == (src, dst):
            out |= set(map(tuple, index.t().tolist()))
    return out


def test_walks_are_type_correct_and_every_hop_is_an_edge(graph):
    sampler = MetaPathSampler(graph.edge_index_dict, num_nodes(graph), METAPATHS)
    walks = sampler.sample(200, torch.Generator().manual_seed(0))
    assert len(walks) == len(METAPATHS)
    counts = num_nodes(graph)
    for metapath, walk in zip(METAPATHS, walks):
        assert walk.dtype == torch.long and walk.shape[1] == len(metapath) and len(walk) > 0
        for position, node_type in enumerate(metapath):
            assert 0 <= walk[:, position].min() and walk[:, position].max() < counts[node_type]
        for hop, (src, dst) in enumerate(zip(metapath[:-1], metapath[1:])):
            edges = hop_edges(graph, src, dst)
            assert set(map(tuple, walk[:, hop:hop + 2].tolist())) <= edges, f"{metapath_name(metapath)} hop {hop}"


def test_a_hop_uses_the_union_of_its_edge_types(graph):
    sampler = MetaPathSampler(graph.edge_index_dict, num_nodes(graph), [["item", "entity"]])
    walk = sampler.sample(3000, torch.Generator().manual_seed(1))[0]
    directed = set(map(tuple, graph["item", "directed_by", "entity"].edge_index.t().tolist()))
    stars = set(map(tuple, graph["item", "stars", "entity"].edge_index.t().tolist()))
    seen = set(map(tuple, walk.tolist()))
    assert seen == directed | stars


def test_neighbours_are_drawn_uniformly():
    edges = {("user", "interacts", "item"): torch.tensor([[0, 0, 0, 0, 1], [0, 1, 2, 3, 0]])}
    sampler = MetaPathSampler(edges, {"user": 2, "item": 4}, [["user", "item"]])
    walk = sampler.walk(["user", "item"], torch.zeros(8000, dtype=torch.long), torch.Generator().manual_seed(0))
    share = torch.bincount(walk[:, 1], minlength=4) / 8000
    assert torch.allclose(share, torch.full((4,), 0.25), atol=0.02)


def test_walks_that_hit_a_dead_end_are_dropped(graph):
    # every fifth item has no tag: walks user -> item -> tag die there
    sampler = MetaPathSampler(graph.edge_index_dict, num_nodes(graph), [["user", "item", "tag", "item"]])
    walk = sampler.sample(1000, torch.Generator().manual_seed(0))[0]
    assert 500 < len(walk) < 1000
    assert (walk[:, 1] % 5 != 4).all()


def test_sampling_is_seeded(graph):
    sampler = MetaPathSampler(graph.edge_index_dict, num_nodes(graph), METAPATHS[:2])
    first = sampler.sample(50, torch.Generator().manual_seed(4))
    again = sampler.sample(50, torch.Generator().manual_seed(4))
    assert all(torch.equal(a, b) for a, b in zip(first, again))


def test_split_applicable_reports_the_missing_hop():
    graph = make_graph(social=False, tag=False)
    applicable, skipped = split_applicable(METAPATHS, graph.edge_index_dict, graph.node_types)
    assert applicable == METAPATHS[:3]
    assert skipped == {"user-user-item": [("user", "user")], "user-item-tag-item": [("item", "tag"), ("tag", "item")]}
    assert missing_hops(["user", "item", "user"], graph.edge_types) == []
    empty = dict(graph.edge_index_dict)
    empty["item", "has_genre", "genre"] = torch.zeros(2, 0, dtype=torch.long)
    assert missing_hops(["item", "genre", "item"], empty) == [("item", "genre")]


def test_errors_name_the_metapath():
    graph = make_graph(social=False)
    with pytest.raises(ValueError, match=r"meta-path user-user-item: no edges from 'user' to 'user'"):
        MetaPathSampler(graph.edge_index_dict, num_nodes(graph), [["user", "user", "item"]])
    with pytest.raises(ValueError, match=r"meta-path item-film: node type 'film' is not in the graph"):
        MetaPathSampler(graph.edge_index_dict, num_nodes(graph), ["item-film"])
    with pytest.raises(ValueError, match="at least two node types"):
        parse_metapath(["user"])
    assert parse_metapath("user-item-user") == ["user", "item", "user"]
