"""Tests of the recommendation models: hand-computed propagation and the shared model interface."""

from __future__ import annotations

import math

import pytest
import torch
from torch_geometric.data import HeteroData

from graphrec.nn import MF, LightGCN, LightGCNEncoder, NodeEmbedding, Popularity, normalized_bipartite_adjacency
from graphrec.nn.losses import bpr_loss

NUM_USERS, NUM_ITEMS = 3, 4


@pytest.fixture
def edge_index() -> torch.Tensor:
    # user 0: items 0, 1; user 1: items 1, 2, 3; user 2: item 3.
    return torch.tensor([[0, 0, 1, 1, 1, 2], [0, 1, 1, 2, 3, 3]])


def dense_normalized_adjacency(edge_index: torch.Tensor, num_users: int, num_items: int) -> torch.Tensor:
    interactions = torch.zeros(num_users, num_items)
    interactions[edge_index[0], edge_index[1]] = 1.0
    adjacency = torch.zeros(num_users + num_items, num_users + num_items)
    adjacency[:num_users, num_users:] = interactions
    adjacency[num_users:, :num_users] = interactions.t()
    degree = adjacency.sum(dim=1)
    inv_sqrt = torch.where(degree > 0, degree.pow(-0.5), torch.zeros_like(degree))
    return inv_sqrt[:, None] * adjacency * inv_sqrt[None, :]


def dense_lightgcn(model: LightGCN, adjacency: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.cat(model.ego_embeddings())
    layers = [x]
    for _ in range(model.num_layers):
        layers.append(adjacency @ layers[-1])
    out = sum(w * layer for w, layer in zip(model.layer_weights, layers))
    return out[: model.num_users], out[model.num_users :]


def make_lightgcn() -> LightGCN:
    return LightGCN(NUM_USERS, NUM_ITEMS, embedding_dim=8, num_layers=3)


def make_mf() -> MF:
    return MF(NUM_USERS, NUM_ITEMS, embedding_dim=8)


TRAINABLE = [make_lightgcn, make_mf]
ALL_MODELS = TRAINABLE + [lambda: Popularity(NUM_USERS, NUM_ITEMS)]


def test_adjacency_matches_hand_computation(edge_index):
    adjacency = normalized_bipartite_adjacency(edge_index, NUM_USERS, NUM_ITEMS)
    assert adjacency.layout == torch.sparse_csr
    assert adjacency.shape == (7, 7)
    dense = adjacency.to_dense()
    torch.testing.assert_close(dense, dense_normalized_adjacency(edge_index, NUM_USERS, NUM_ITEMS))
    # deg(user 0) = 2, deg(item 0) = 1; deg(user 1) = 3, deg(item 3) = 2.
    assert dense[0, 3].item() == pytest.approx(1 / math.sqrt(2))
    assert dense[6, 1].item() == pytest.approx(1 / math.sqrt(6))
    torch.testing.assert_close(dense, dense.t())


def test_adjacency_ignores_repeated_interactions(edge_index):
    repeated = torch.cat([edge_index, edge_index[:, :2]], dim=1)
    torch.testing.assert_close(
        normalized_bipartite_adjacency(repeated, NUM_USERS, NUM_ITEMS).to_dense(),
        normalized_bipartite_adjacency(edge_index, NUM_USERS, NUM_ITEMS).to_dense(),
    )


def test_adjacency_rejects_out_of_range_ids(edge_index):
    bad = edge_index.clone()
    bad[1, 0] = NUM_ITEMS
    with pytest.raises(ValueError, match=r"item ids in \[1, 4\]; expected ids in \[0, 3\]"):
        normalized_bipartite_adjacency(bad, NUM_USERS, NUM_ITEMS)
    with pytest.raises(ValueError, match=r"expected \[2, E\]"):
        normalized_bipartite_adjacency(edge_index.t(), NUM_USERS, NUM_ITEMS)


def test_lightgcn_equals_dense_computation(edge_index):
    torch.manual_seed(0)
    model = make_lightgcn()
    model.set_graph(edge_index)
    users, items = model()
    expected_users, expected_items = dense_lightgcn(model, dense_normalized_adjacency(edge_index, NUM_USERS, NUM_ITEMS))
    torch.testing.assert_close(users, expected_users)
    torch.testing.assert_close(items, expected_items)


def test_lightgcn_gradient_equals_dense_gradient(edge_index):
    torch.manual_seed(0)
    model = make_lightgcn()
    model.set_graph(edge_index)
    weights = torch.randn(NUM_USERS + NUM_ITEMS, 8)
    users, items = model()
    (torch.cat([users, items]) * weights).sum().backward()
    sparse_grad = model.embedding("user").grad.clone()
    model.zero_grad()
    users, items = dense_lightgcn(model, dense_normalized_adjacency(edge_index, NUM_USERS, NUM_ITEMS))
    (torch.cat([users, items]) * weights).sum().backward()
    torch.testing.assert_close(sparse_grad, model.embedding("user").grad)


def test_lightgcn_alpha_weights(edge_index):
    ego_only = LightGCN(NUM_USERS, NUM_ITEMS, embedding_dim=4, num_layers=2, alpha=[1.0, 0.0, 0.0])
    ego_only.set_graph(edge_index)
    torch.testing.assert_close(ego_only()[0], ego_only.ego_embeddings()[0])
    with pytest.raises(ValueError, match="alpha has 2 entries; expected num_layers \\+ 1 = 4"):
        LightGCN(NUM_USERS, NUM_ITEMS, num_layers=3, alpha=[0.5, 0.5])


def test_lightgcn_isolated_nodes_are_finite():
    model = LightGCN(num_users=3, num_items=4, embedding_dim=4)
    model.set_graph(torch.tensor([[0, 1], [0, 0]]))  # user 2 and items 1..3 have no edges
    users, items = model()
    assert torch.isfinite(users).all() and torch.isfinite(items).all()
    # An isolated node keeps only its layer-0 term.
    torch.testing.assert_close(users[2], model.ego_embeddings()[0][2] / 4)


def test_lightgcn_needs_graph():
    with pytest.raises(RuntimeError, match="call set_graph"):
        make_lightgcn()()


def test_lightgcn_adjacency_is_buffer_outside_state_dict(edge_index):
    model = make_lightgcn()
    model.set_graph(edge_index)
    assert "adjacency" in dict(model.named_buffers())
    assert set(model.state_dict()) == {"embedding.embeddings.user.weight", "embedding.embeddings.item.weight"}
    model.double()
    assert model.adjacency.dtype == torch.float64 and model.adjacency.layout == torch.sparse_csr
    assert model()[0].dtype == torch.float64


@pytest.mark.parametrize("make_model", ALL_MODELS, ids=["lightgcn", "mf", "popularity"])
def test_model_interface_shapes(make_model, edge_index):
    model = make_model()
    model.set_graph(edge_index)
    dim = 1 if isinstance(model, Popularity) else 8
    for users, items in (model(), model.ego_embeddings()):
        assert users.shape == (NUM_USERS, dim) and items.shape == (NUM_ITEMS, dim)
    assert model.num_users == NUM_USERS and model.num_items == NUM_ITEMS


@pytest.mark.parametrize("make_model", TRAINABLE, ids=["lightgcn", "mf"])
def test_gradients_reach_embeddings(make_model, edge_index):
    model = make_model()
    assert model.trainable
    model.set_graph(edge_index)
    users, items = model()
    (users[edge_index[0]] * items[edge_index[1]]).sum().backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


@pytest.mark.parametrize("make_model", TRAINABLE, ids=["lightgcn", "mf"])
def test_reset_parameters_reproducible(make_model):
    model = make_model()
    torch.manual_seed(7)
    model.reset_parameters()
    first = [p.detach().clone() for p in model.parameters()]
    torch.manual_seed(7)
    model.reset_parameters()
    for before, after in zip(first, model.parameters()):
        torch.testing.assert_close(before, after)
    assert first[0].std().item() == pytest.approx(0.1, abs=0.05)


@pytest.mark.parametrize("make_model", TRAINABLE, ids=["lightgcn", "mf"])
def test_bpr_loss_falls_on_toy_task(make_model, edge_index):
    torch.manual_seed(0)
    model = make_model()
    model.set_graph(edge_index)
    users, positives = edge_index
    negatives = torch.tensor([2, 3, 0, 0, 0, 0])  # an item each user has not interacted with
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
    losses = []
    for _ in range(20):
        user_emb, item_emb = model()
        pos = (user_emb[users] * item_emb[positives]).sum(-1)
        neg = (user_emb[users] * item_emb[negatives]).sum(-1)
        loss = bpr_loss(pos, neg)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[0] == pytest.approx(math.log(2), abs=0.05)
    assert losses[-1] < 0.7 * losses[0]


def test_popularity_ranks_most_interacted_item_first(edge_index):
    model = Popularity(NUM_USERS, NUM_ITEMS)
    assert not model.trainable and not list(model.parameters())
    model.set_graph(edge_index)  # counts: item 0 -> 1, 1 -> 2, 2 -> 1, 3 -> 2
    model.set_graph(torch.cat([edge_index, torch.tensor([[2], [1]])], dim=1))  # item 1 -> 3
    users, items = model()
    torch.testing.assert_close(items.squeeze(1), torch.log1p(torch.tensor([1.0, 3.0, 1.0, 2.0])))
    scores = users @ items.t()  # [U, I]
    assert (scores.argmax(dim=1) == 1).all()
    assert scores[0].argsort(descending=True)[:2].tolist() == [1, 3]


def test_node_embedding():
    embedding = NodeEmbedding({"user": 3, "item": 4, "genre": 2}, embedding_dim=5)
    x_dict = embedding()
    assert {k: tuple(v.shape) for k, v in x_dict.items()} == {"user": (3, 5), "item": (4, 5), "genre": (2, 5)}
    assert embedding("genre") is x_dict["genre"]
    with pytest.raises(KeyError, match="no node type 'tag'; known types: \\['user', 'item', 'genre'\\]"):
        embedding("tag")
    with pytest.raises(ValueError, match="num_nodes_dict\\['user'\\] = -1"):
        NodeEmbedding({"user": -1}, 4)


def make_hetero(edge_index: torch.Tensor) -> HeteroData:
    data = HeteroData()
    data["user"].num_nodes, data["item"].num_nodes, data["genre"].num_nodes = NUM_USERS, NUM_ITEMS, 2
    data["item", "has_genre", "genre"].edge_index = torch.tensor([[0, 1], [0, 1]])
    data["user", "interacts", "item"].edge_index = edge_index
    data["item", "rev_interacts", "user"].edge_index = edge_index.flip(0)
    return data


def test_encoder_matches_lightgcn_on_hetero_data(edge_index):
    torch.manual_seed(0)
    model = make_lightgcn()
    model.set_graph(edge_index)
    data = make_hetero(edge_index)
    x_dict = {"user": model.embedding("user"), "item": model.embedding("item"), "genre": torch.randn(2, 8)}
    h_dict = LightGCNEncoder(num_layers=3)(x_dict, data.edge_index_dict)
    users, items = model()
    torch.testing.assert_close(h_dict["user"], users)
    torch.testing.assert_close(h_dict["item"], items)
    assert h_dict["genre"] is x_dict["genre"]


def test_encoder_caches_adjacency_per_edge_index(edge_index):
    encoder = LightGCNEncoder(num_layers=2)
    data = make_hetero(edge_index.clone())
    x = torch.randn(NUM_USERS, 4)
    first = encoder.get_adjacency(data["user", "interacts", "item"].edge_index, NUM_USERS, NUM_ITEMS, x)
    encoder({"user": x, "item": torch.randn(NUM_ITEMS, 4)}, data.edge_index_dict)
    assert encoder.get_adjacency(data["user", "interacts", "item"].edge_index, NUM_USERS, NUM_ITEMS, x) is first
    data["user", "interacts", "item"].edge_index[1, 0] = 2  # in-place edit bumps the version
    rebuilt = encoder.get_adjacency(data["user", "interacts", "item"].edge_index, NUM_USERS, NUM_ITEMS, x)
    assert rebuilt is not first
    assert rebuilt.to_dense()[0, NUM_USERS + 2] > 0 and rebuilt.to_dense()[0, NUM_USERS + 0] == 0


def test_encoder_needs_user_item_edges():
    with pytest.raises(ValueError, match="needs a \\('user', relation, 'item'\\) edge type"):
        LightGCNEncoder()({"user": torch.randn(2, 4), "item": torch.randn(2, 4)}, {("item", "to", "user"): None})


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_lightgcn_cpu_cuda_parity(edge_index):
    torch.manual_seed(0)
    model = make_lightgcn()
    model.set_graph(edge_index)
    cpu_users, _ = model()
    model.cuda()
    assert model.adjacency.is_cuda
    cuda_users, _ = model()
    cuda_users.sum().backward()
    torch.testing.assert_close(cuda_users.cpu(), cpu_users.detach())
