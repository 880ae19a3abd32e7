import networkx as nx
import pytest
import scipy.sparse as sp
import torch
from torch_geometric.data import HeteroData

from graphrec.errors import DataError
from graphrec.graph.convert import (
    from_dgl,
    from_networkx,
    from_scipy_csr,
    num_nodes_dict,
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
