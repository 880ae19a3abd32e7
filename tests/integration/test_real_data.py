"""The shipped recipes on the real datasets in ../shared/data (skipped when it is absent)."""

import numpy as np
import pytest

from graphrec.data.splits import split_interactions
from graphrec.graph import load_graph
from tests.conftest import shared_data


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("real-cache")


def test_ml_100k(cache):
    root = shared_data("ml-100k").parent
    bundle = load_graph("ml-100k", root, cache)
    assert (bundle.num_users, bundle.num_items, len(bundle.interactions)) == (943, 1682, 100_000)
    assert bundle.idmap.num_nodes("genre") == 19 and bundle.idmap.num_nodes("occupation") == 21
    assert set(np.unique(bundle.interactions.rating)) == {1, 2, 3, 4, 5}
    # 1,598 items are linked to Freebase; every KG edge touching an item uses the merged item node.
    kg_items = {int(i) for (s, r, d) in bundle.graph.edge_types if s == "item" and not r.startswith(("has_", "rev_"))
                for i in bundle.graph[s, r, d].edge_index[0].unique()}
    assert 1400 < len(kg_items) <= 1598
    toy_story = bundle.idmap.index_of("item", "1")
    assert bundle.idmap.name("item", toy_story) == "Toy Story"


def test_ml_1m(cache):
    root = shared_data("ml1m-pearlm").parent
    bundle = load_graph("ml-1m", root, cache)
    assert (bundle.num_users, bundle.num_items, len(bundle.interactions)) == (6040, 2983, 932_293)
    assert len(bundle.idmap.relation_names) == 11
    starring = bundle.graph["item", "starred_by_actor", "entity"].edge_index
    heat = bundle.idmap.index_of("item", "6")  # ML-1M movie 6 is Heat (1995)
    actors = {bundle.idmap.name("entity", int(e)) for e in starring[1][starring[0] == heat]}
    assert bundle.idmap.name("item", heat) == "Heat (1995)"
    assert "Al_Pacino" in actors and "Robert_De_Niro" in actors


def test_lastfm_2k(cache):
    root = shared_data("lastfm-2k").parent
    bundle = load_graph("lastfm-2k", root, cache)
    assert (bundle.num_users, bundle.num_items, len(bundle.interactions)) == (1892, 17632, 92_834)
    assert bundle.graph["user", "follows", "user"].edge_index.shape[1] == 25_434
    assert bundle.dropped == {"item_attributes[0]": 1538}


def test_temporal_split_of_ml_100k_never_puts_the_future_in_train(cache):
    bundle = load_graph("ml-100k", shared_data("ml-100k").parent, cache)
    inter = bundle.interactions
    split = split_interactions("temporal", inter.user, inter.item, inter.timestamp, (0.8, 0.1, 0.1))
    last_train = np.full(bundle.num_users, -np.inf)
    np.maximum.at(last_train, inter.user[split.train], inter.timestamp[split.train])
    assert np.all(inter.timestamp[split.test] >= last_train[inter.user[split.test]])
