"""Path graph and vectorised path sampling on a hand-made graph and on the tiny recipe."""

from __future__ import annotations

import numpy as np
import pytest

from graphrec.errors import ConfigError, DataError
from graphrec.graph import build
from graphrec.graph.paths import PathGraph, Paths, check_paths, sample_paths
from graphrec.graph.recipe import load_recipe

# users 0-1, items 0-3, entities 0-2
#   user 0 watched items 0, 1; user 1 watched item 2
#   item 0 -stars-> e0 <-stars- item 1, item 2 -stars-> e1 <-stars- item 3, item 3 -directed-> e2
TRAIN = np.array([[0, 0, 1], [0, 1, 2]])
STARS = np.array([[0, 1, 2, 3], [0, 0, 1, 1]])


def small_graph() -> PathGraph:
    edges = {
        ("user", "interacts", "item"): TRAIN,
        ("item", "stars", "entity"): STARS,
        ("entity", "rev_stars", "item"): STARS[::-1],
        ("item", "directed", "entity"): np.array([[3], [2]]),
        ("entity", "rev_directed", "item"): np.array([[2], [3]]),
    }
    return PathGraph.from_edges({"user": 2, "item": 4, "entity": 3}, edges, TRAIN)


def test_layout_and_lookups():
    graph = small_graph()
    assert graph.node_types == ["user", "item", "entity"]
    assert graph.offsets.tolist() == [0, 2, 6, 9]
    assert graph.relations[0] == ("user", "interacts", "item")
    item = lambda i: 2 + i  # noqa: E731
    entity = lambda e: 6 + e  # noqa: E731
    stars = graph.relations.index(("item", "stars", "entity"))
    rev_stars = graph.relations.index(("entity", "rev_stars", "item"))
    start, end = graph.segments(np.array([entity(0)]), np.array([rev_stars]))
    assert sorted(graph.target[start[0]:end[0]].tolist()) == [item(0), item(1)]
    assert graph.has_edges(np.array([item(0), item(0), 0]), np.array([stars, stars, 0]),
                           np.array([entity(0), entity(1), item(1)])).tolist() == [True, False, True]
    assert graph.is_seen(np.array([0, 0, 1]), np.array([1, 2, 2])).tolist() == [True, False, True]
    masks = graph.relation_masks()
    assert masks[0, 0] and not masks[0, stars] and masks[item(0), stars] and not masks[entity(2), rev_stars]
    assert graph.relation_target_type()[stars] == 2


def test_from_edges_needs_users_and_items():
    with pytest.raises(DataError, match="needs 'item' nodes"):
        PathGraph.from_edges({"user": 1}, {}, np.zeros((2, 0), dtype=np.int64))


@pytest.mark.parametrize("end", ["seen", "unseen", "any"])
def test_sampled_paths_are_real_typed_and_follow_the_end_rule(end):
    graph = small_graph()
    paths = sample_paths(graph, hops=3, paths_per_user=20, end=end, seed=1)
    assert len(paths) > 0 and paths.nodes.shape[1] == 4 and paths.relations.shape[1] == 3
    assert check_paths(graph, paths).all()
    types = graph.type_of(paths.nodes)
    assert (types[:, 0] == 0).all() and (types[:, 1] == 1).all() and (types[:, -1] == 1).all()
    assert (paths.relations[:, 0] == 0).all()
    seen = graph.is_seen(paths.nodes[:, 0], paths.nodes[:, -1] - graph.offsets[1])
    if end == "seen":
        assert seen.all()
    elif end == "unseen":
        assert not seen.any()
    # no node twice in a path
    assert all(len(set(row)) == len(row) for row in paths.nodes.tolist())


def test_seen_paths_of_user_0_go_through_the_shared_actor():
    graph = small_graph()
    paths = sample_paths(graph, hops=3, paths_per_user=5, users=[0], end="seen", seed=0)
    assert len(paths) == 5  # item 0 -> e0 -> item 1 and back: always possible
    assert set(map(tuple, paths.nodes[:, [1, 3]].tolist())) <= {(2, 3), (3, 2)}


def test_user_with_no_possible_path_gets_none_and_sampling_stops():
    graph = small_graph()
    # user 1 watched item 2 only; item 2 -> e1 -> item 3 is unseen, so no "seen" path exists
    paths = sample_paths(graph, hops=3, paths_per_user=5, users=[1], end="seen", seed=0, max_rounds=3)
    assert len(paths) == 0
    unseen = sample_paths(graph, hops=3, paths_per_user=5, users=[1], end="unseen", seed=0)
    assert len(unseen) == 5 and (unseen.nodes[:, -1] == 2 + 3).all()


def test_sampling_is_seeded():
    graph = small_graph()
    first = sample_paths(graph, hops=3, paths_per_user=10, end="any", seed=3)
    again = sample_paths(graph, hops=3, paths_per_user=10, end="any", seed=3)
    assert np.array_equal(first.nodes, again.nodes) and np.array_equal(first.relations, again.relations)


def test_bad_arguments():
    with pytest.raises(ConfigError, match="hops must be at least 1"):
        sample_paths(small_graph(), hops=0)
    with pytest.raises(ConfigError, match="end must be"):
        sample_paths(small_graph(), end="new")


def test_check_paths_flags_an_invented_hop():
    graph = small_graph()
    # user 0 -> item 0 -stars-> e1 (not an edge) -rev_stars-> item 3
    stars = graph.relations.index(("item", "stars", "entity"))
    rev = graph.relations.index(("entity", "rev_stars", "item"))
    bad = Paths(np.array([[0, 2, 7, 5], [0, 2, 6, 3]]), np.array([[0, stars, rev], [0, stars, rev]]))
    assert check_paths(graph, bad).tolist() == [False, True]


def test_path_graph_of_a_built_recipe_keeps_users_out_of_the_middle(tiny):
    recipe, _ = load_recipe(tiny)
    bundle = build(recipe, tiny.parent)
    train = np.arange(len(bundle.interactions))[:7]
    graph = PathGraph.from_bundle(bundle, train)
    into_user = [r for r in graph.relations if r[2] == "user"]
    out_of_user = [r for r in graph.relations if r[0] == "user"]
    assert into_user == [] and out_of_user == [("user", "interacts", "item")]
    assert len(graph.seen_keys) == 7
    via = PathGraph.from_bundle(bundle, train, via_users=True)
    assert ("item", "rev_interacts", "user") in via.relations
    paths = sample_paths(graph, hops=3, paths_per_user=4, end="any", seed=0)
    assert len(paths) and check_paths(graph, paths).all()
