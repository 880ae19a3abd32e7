import networkx as nx
import pytest
import scipy.sparse as sp
import torch
from torch_geometric.data import HeteroData

from graphrec.data.idmap import IdMap
from graphrec.errors import DataError
from graphrec.graph.convert import (
    from_dgl,
    from_networkx,
    from_scipy_csr,
    neighbourhood_graph,
    num_nodes_dict,
    path_to_networkx,
    to_dgl,
    to_networkx,
    to_scipy_csr,
)

INTERACTS = ("user", "interacts", "item")
REV_INTERACTS = ("item", "rev_interacts", "user")
HAS_GENRE = ("item", "has_genre", "genre")
STARS = ("item", "stars", "entity")  # a relation with no edges


@pytest.fixture
def data() -> HeteroData:
    """4 users (user 3 isolated), 5 items (item 4 isolated), 3 genres (genre 2 isolated),
    2 entities (all isolated), weighted interactions and a relation with no edges."""
    graph = HeteroData()
    graph["user"].num_nodes = 4
    graph["item"].num_nodes = 5
    graph["item"].x = torch.arange(10, dtype=torch.float32).view(5, 2)
    graph["genre"].num_nodes = 3
    graph["entity"].num_nodes = 2
    graph[INTERACTS].edge_index = torch.tensor([[0, 0, 1, 2, 2], [0, 1, 1, 2, 3]])
    graph[INTERACTS].edge_weight = torch.tensor([5.0, 4.0, 3.0, 1.0, 2.5])
    graph[REV_INTERACTS].edge_index = graph[INTERACTS].edge_index.flip(0)
    graph[HAS_GENRE].edge_index = torch.tensor([[0, 1, 3], [0, 0, 1]])
    graph[STARS].edge_index = torch.empty(2, 0, dtype=torch.long)
    return graph


def edge_set(data: HeteroData, edge_type, with_weight: bool = False) -> set:
    edge_index = data[edge_type].edge_index.tolist()
    weights = data[edge_type].edge_weight.tolist() if with_weight else [None] * len(edge_index[0])
    return set(zip(edge_index[0], edge_index[1], weights))


def assert_same_graph(before: HeteroData, after: HeteroData) -> None:
    assert num_nodes_dict(after) == num_nodes_dict(before) == {"user": 4, "item": 5, "genre": 3, "entity": 2}
    assert set(after.edge_types) == {INTERACTS, REV_INTERACTS, HAS_GENRE, STARS}
    for edge_type in before.edge_types:
        assert edge_set(after, edge_type) == edge_set(before, edge_type)
    assert after[STARS].edge_index.shape == (2, 0)
    assert edge_set(after, INTERACTS, with_weight=True) == edge_set(before, INTERACTS, with_weight=True)


def test_scipy_round_trip(data):
    matrix = to_scipy_csr(data, INTERACTS)
    assert isinstance(matrix, sp.csr_matrix) and matrix.shape == (4, 5)
    assert matrix[0, 1] == 4.0 and matrix[2, 3] == 2.5 and matrix[3].nnz == 0
    edge_index, edge_weight = from_scipy_csr(matrix)
    assert edge_index.dtype == torch.long
    after = set(zip(*edge_index.tolist(), edge_weight.tolist()))
    assert after == edge_set(data, INTERACTS, with_weight=True)

    genre = to_scipy_csr(data, "has_genre")  # a unique relation name is enough
    assert genre.shape == (5, 3) and genre.sum() == 3.0
    edge_index, _ = from_scipy_csr(genre)
    assert {(s, d) for s, d, _ in edge_set(data, HAS_GENRE)} == set(zip(*edge_index.tolist()))

    empty = to_scipy_csr(data, STARS)
    assert empty.shape == (5, 2) and empty.nnz == 0
    assert from_scipy_csr(empty)[0].shape == (2, 0)


def test_scipy_unknown_edge_type(data):
    with pytest.raises(DataError, match=r"edge type 'interact' is not \(uniquely\) in the graph"):
        to_scipy_csr(data, "interact")
    with pytest.raises(DataError, match=r"\('user', 'likes', 'item'\)"):
        to_scipy_csr(data, ("user", "likes", "item"))


def test_dgl_round_trip(data):
    graph = to_dgl(data)
    assert graph.num_nodes("user") == 4 and graph.num_nodes("entity") == 2
    assert graph.num_edges(INTERACTS) == 5 and graph.num_edges(STARS) == 0
    assert torch.equal(graph.nodes["item"].data["x"], data["item"].x)
    assert torch.equal(graph.edges[INTERACTS].data["edge_weight"], data[INTERACTS].edge_weight)
    after = from_dgl(graph)
    assert_same_graph(data, after)
    assert torch.equal(after["item"].x, data["item"].x)


def test_dgl_round_trip_edge_attrs_edgeless_node_type_and_int32(data):
    data["tag"].num_nodes = 3  # a node type in no edge type at all
    data["tag"].x = torch.randn(3, 4)
    data[HAS_GENRE].edge_attr = torch.arange(6, dtype=torch.float32).view(3, 2)
    data[HAS_GENRE].edge_index = data[HAS_GENRE].edge_index.int()  # int32 indices are widened
    graph = to_dgl(data)
    assert graph.idtype == torch.int64 and "tag" in graph.ntypes and graph.num_nodes("tag") == 3
    assert torch.equal(graph.edges[HAS_GENRE].data["edge_attr"], data[HAS_GENRE].edge_attr)
    after = from_dgl(graph)
    assert num_nodes_dict(after)["tag"] == 3 and torch.equal(after["tag"].x, data["tag"].x)
    assert after[HAS_GENRE].edge_index.dtype == torch.long
    assert torch.equal(after[HAS_GENRE].edge_index, data[HAS_GENRE].edge_index.long())
    assert torch.equal(after[HAS_GENRE].edge_attr, data[HAS_GENRE].edge_attr)
    assert torch.equal(after[INTERACTS].edge_weight, data[INTERACTS].edge_weight)


def test_from_dgl_int32_graph():
    dgl = pytest.importorskip("dgl")

    sources, targets = torch.tensor([0, 2], dtype=torch.int32), torch.tensor([1, 1], dtype=torch.int32)
    graph = dgl.heterograph({INTERACTS: (sources, targets)}, num_nodes_dict={"user": 4, "item": 3}, idtype=torch.int32)
    graph.edges[INTERACTS].data["edge_weight"] = torch.tensor([1.0, 2.0])
    data = from_dgl(graph)
    assert data[INTERACTS].edge_index.dtype == torch.long
    assert data[INTERACTS].edge_index.tolist() == [[0, 2], [1, 1]]
    assert num_nodes_dict(data) == {"user": 4, "item": 3}
    back = to_dgl(data)
    assert back.num_nodes("user") == 4 and back.edges(etype=INTERACTS)[0].tolist() == [0, 2]


def test_networkx_round_trip(data):
    graph = to_networkx(data, node_attrs=["x"])
    assert isinstance(graph, nx.MultiDiGraph)
    assert graph.number_of_nodes() == 4 + 5 + 3 + 2
    assert graph.nodes[("user", 3)]["type"] == "user"
    assert graph.degree[("user", 3)] == 0  # isolated nodes are kept
    assert graph.nodes[("item", 2)]["x"] == [4.0, 5.0]
    assert graph.number_of_edges() == 5 + 5 + 3
    relations = {attrs["relation"] for _, _, attrs in graph.edges(data=True)}
    assert relations == {INTERACTS, REV_INTERACTS, HAS_GENRE}
    weights = {attrs["edge_weight"] for _, v, attrs in graph.edges(("user", 2), data=True)}
    assert weights == {1.0, 2.5}
    after = from_networkx(graph)
    assert_same_graph(data, after)
    assert torch.equal(after["item"].x, data["item"].x)


def test_networkx_rejects_untyped_nodes():
    graph = nx.MultiDiGraph()
    graph.add_edge(0, 1, relation="r")
    with pytest.raises(DataError, match=r"node 0 is not a \(node_type, index\) tuple"):
        from_networkx(graph)


def test_num_nodes_inferred_and_checked():
    data = HeteroData()
    data["user", "follows", "user"].edge_index = torch.tensor([[0, 1], [1, 6]])
    assert num_nodes_dict(data) == {"user": 7}
    data["user"].num_nodes = 3
    with pytest.raises(DataError, match="node type 'user' has 3 nodes but an edge uses index 6"):
        num_nodes_dict(data)


@pytest.fixture
def idmap() -> IdMap:
    ids = IdMap()
    ids.add("user", ["u0", "u1", "u2", "u3"])
    ids.set_names("item", ids.add("item", [f"m{i}" for i in range(5)]), ["Heat", "Scarface", "Alien", "Aliens", "Up"])
    ids.add("genre", ["Crime", "SciFi", "Kids"])
    return ids


def test_neighbourhood_graph(data, idmap):
    graph = neighbourhood_graph(data, "user", 0, hops=2, idmap=idmap)
    assert graph.graph["center"] == ("user", 0)
    hops = {node: attrs["hop"] for node, attrs in graph.nodes(data=True)}
    assert hops == {("user", 0): 0, ("item", 0): 1, ("item", 1): 1, ("user", 1): 2, ("genre", 0): 2}
    assert graph.nodes[("item", 1)]["name"] == "Scarface" and graph.nodes[("item", 1)]["id"] == "m1"
    assert graph.nodes[("genre", 0)]["name"] == "Crime" and graph.nodes[("user", 1)]["name"] == "u1"
    edges = {(u, v, attrs["relation"]) for u, v, attrs in graph.edges(data=True)}
    assert edges == {(("user", 0), ("item", 0), INTERACTS), (("user", 0), ("item", 1), INTERACTS),
                     (("user", 1), ("item", 1), INTERACTS), (("item", 0), ("genre", 0), HAS_GENRE),
                     (("item", 1), ("genre", 0), HAS_GENRE)}  # rev_interacts repeats interacts: left out
    with_reverse = neighbourhood_graph(data, "user", 0, hops=2, collapse_reverse=False)
    assert with_reverse.number_of_edges() == 5 + 3 and with_reverse.nodes[("item", 1)]["name"] == "item 1"
    assert set(neighbourhood_graph(data, "user", 0, hops=1)) == {("user", 0), ("item", 0), ("item", 1)}
    assert set(neighbourhood_graph(data, "user", 3, hops=2)) == {("user", 3)}  # isolated


def test_neighbourhood_graph_cap_keeps_the_strongest_ties(data):
    # user 1 and genre 0 are both joined to the two hop-1 items by 2 edges; the tie goes to the type name
    capped = neighbourhood_graph(data, "user", 0, hops=2, max_nodes=4)
    assert set(capped) == {("user", 0), ("item", 0), ("item", 1), ("genre", 0)}
    # from genre 0, item 0 and item 1 are one edge away each, item 3 is not reached
    assert set(neighbourhood_graph(data, "genre", 0, hops=1, max_nodes=2)) == {("genre", 0), ("item", 0)}


def test_neighbourhood_graph_errors(data):
    with pytest.raises(DataError, match="no node type 'usr' in the graph.*'user'"):
        neighbourhood_graph(data, "usr", 0)
    with pytest.raises(DataError, match="user index 9 is out of range; the graph has 4 user nodes"):
        neighbourhood_graph(data, "user", 9)
    with pytest.raises(ValueError, match="max_nodes must be at least 1, found 0"):
        neighbourhood_graph(data, "user", 0, max_nodes=0)


def explanation(end_id: str, end_name: str) -> list[dict]:
    return [{"type": "user", "id": "u1", "name": "u1"}, {"relation": "interacts"},
            {"type": "item", "id": "m1", "name": "Heat"}, {"relation": "stars"},
            {"type": "entity", "id": "e1", "name": "Al Pacino"}, {"relation": "rev_stars"},
            {"type": "item", "id": end_id, "name": end_name}]


def test_path_to_networkx():
    graph = path_to_networkx(explanation("m2", "Scarface"))
    assert list(graph) == [("user", "u1"), ("item", "m1"), ("entity", "e1"), ("item", "m2")]
    assert [graph.nodes[node]["position"] for node in graph] == [0, 1, 2, 3]
    assert graph.nodes[("item", "m2")] == {"type": "item", "id": "m2", "name": "Scarface", "position": 3, "end": True}
    assert [(u[1], v[1], key) for u, v, key in graph.edges(keys=True)] == [
        ("u1", "m1", "interacts"), ("m1", "e1", "stars"), ("e1", "m2", "rev_stars")]
    # a second path sharing its first two hops adds one node and one edge; shared hops list both ranks
    graph = path_to_networkx(explanation("m2", "Scarface"), rank=1)
    path_to_networkx(explanation("m3", "Serpico"), graph, rank=2)
    assert graph.number_of_nodes() == 5 and graph.number_of_edges() == 4
    assert graph.edges[("user", "u1"), ("item", "m1"), "interacts"]["ranks"] == [1, 2]
    assert graph.edges[("entity", "e1"), ("item", "m3"), "rev_stars"]["ranks"] == [2]
    assert graph.nodes[("item", "m3")]["rank"] == 2 and graph.nodes[("item", "m3")]["end"]
    assert "end" not in graph.nodes[("item", "m1")]


def test_path_to_networkx_rejects_malformed_paths():
    with pytest.raises(DataError, match="must alternate node entries"):
        path_to_networkx(explanation("m2", "Scarface")[:-1])
    with pytest.raises(DataError, match="must alternate node entries"):
        path_to_networkx([{"type": "user", "id": "u1"}, {"type": "item", "id": "m1"}, {"type": "item", "id": "m2"}])
