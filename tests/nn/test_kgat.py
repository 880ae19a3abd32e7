"""Tests of KGAT: sparse products against dense ones, attention by hand, gradients, and training end to end."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch_geometric.data import HeteroData

from graphrec.config import RunConfig, load_config
from graphrec.errors import ConfigError
from graphrec.data.synthetic import generate, write
from graphrec.nn import KGAT
from graphrec.nn.kgat import pattern_sddmm, pattern_spmm, sparse_pattern
from graphrec.pipeline import evaluate_model, load_run, run
from graphrec.schema import from_mapping

NUM_USERS, NUM_ITEMS, DIM = 3, 4, 8


@pytest.fixture
def edge_index() -> torch.Tensor:
    # user 0: items 0, 1; user 1: items 1, 2, 3; user 2: item 3.
    return torch.tensor([[0, 0, 1, 1, 1, 2], [0, 1, 1, 2, 3, 3]])


def side_graph(reverse_order: bool = False) -> HeteroData:
    """Items 0-2 have genres; items 0, 1 share a director entity; users 1, 2 have an age; entity 2 is isolated."""
    relations = {
        ("item", "has_genre", "genre"): [[0, 1, 2], [0, 0, 1]],
        ("genre", "rev_has_genre", "item"): [[0, 0, 1], [0, 1, 2]],
        ("item", "directed_by", "entity"): [[0, 1], [0, 0]],
        ("entity", "rev_directed_by", "item"): [[0, 0], [0, 1]],
        ("user", "has_age", "age"): [[1, 2], [0, 0]],
        ("age", "rev_has_age", "user"): [[0, 0], [1, 2]],
    }
    data = HeteroData()
    for node_type, count in (("user", NUM_USERS), ("item", NUM_ITEMS), ("genre", 2), ("entity", 3), ("age", 1)):
        data[node_type].num_nodes = count
    for edge_type in sorted(relations, reverse=reverse_order):
        data[edge_type].edge_index = torch.tensor(relations[edge_type])
    return data


def make_kgat(edge_index: torch.Tensor, **kwargs) -> KGAT:
    torch.manual_seed(0)
    model = KGAT(NUM_USERS, NUM_ITEMS, side_graph(), embedding_dim=DIM, num_layers=2, **kwargs)
    model.set_graph(edge_index)
    return model


def dense_attention(model: KGAT) -> torch.Tensor:
    """pi(h, r, t) = (W_r e_t)^T tanh(W_r e_h + e_r), softmax over each head's edges, as a dense [N, N] matrix."""
    x = model.node_embeddings()
    head, relation, tail = model.graph["triples"]
    weight = model.relation_weight[relation]  # [E, D, k]
    query = torch.tanh(torch.einsum("ed,edk->ek", x[head], weight) + model.relation_embedding[relation])
    logits = (torch.einsum("ed,edk->ek", x[tail], weight) * query).sum(-1)  # [E]
    dense = torch.full((model.num_nodes, model.num_nodes), float("-inf"))
    dense[head, tail] = logits
    return torch.nan_to_num(torch.softmax(dense, dim=1), nan=0.0)  # heads without edges: a zero row


def test_sparse_products_match_dense_and_pass_gradcheck():
    torch.manual_seed(0)
    dense_mask = torch.rand(5, 4) < 0.5
    dense_mask[3] = False  # an empty row
    row, col = dense_mask.nonzero().t()
    pattern = sparse_pattern(row, col, 5, 4)
    values = torch.randn(row.numel(), dtype=torch.double, requires_grad=True)
    x = torch.randn(4, 3, dtype=torch.double, requires_grad=True)
    a = torch.randn(5, 3, dtype=torch.double, requires_grad=True)
    dense = torch.zeros(5, 4, dtype=torch.double)
    dense[row, col] = values.detach()
    torch.testing.assert_close(pattern_spmm(pattern, values, x), dense @ x.detach())
    torch.testing.assert_close(pattern_sddmm(pattern, a, x), (a @ x.t())[row, col])
    assert torch.autograd.gradcheck(lambda v, y: pattern_spmm(pattern, v, y), (values, x))
    assert torch.autograd.gradcheck(lambda p, q: pattern_sddmm(pattern, p, q), (a, x))
    with pytest.raises(ValueError, match="sorted by \\(row, col\\) with no repeats"):
        sparse_pattern(row.flip(0), col.flip(0), 5, 4)


def test_attention_matches_hand_computation_and_sums_to_one(edge_index):
    model = make_kgat(edge_index)
    attention = model.attention()
    head, _, tail = model.graph["triples"]
    # 6 interactions, both directions, and 14 side edges.
    assert attention.shape == (2 * 6 + 14,)
    expected = dense_attention(model)
    torch.testing.assert_close(attention, expected[head, tail])
    sums = torch.zeros(model.num_nodes).index_add_(0, head, attention)
    has_edges = torch.bincount(head, minlength=model.num_nodes) > 0
    torch.testing.assert_close(sums[has_edges], torch.ones(int(has_edges.sum())))
    assert model.node_types == ["user", "item", "age", "entity", "genre"]
    assert not has_edges[NUM_USERS + NUM_ITEMS + 1 + 2]  # entity 2 is isolated


def test_forward_matches_dense_propagation(edge_index):
    model = make_kgat(edge_index, dropout=0.0)
    users, items = model()
    assert users.shape == (NUM_USERS, DIM * 3) and items.shape == (NUM_ITEMS, DIM * 3)
    user_ego, item_ego = model.ego_embeddings()
    assert user_ego.shape == (NUM_USERS, DIM) and item_ego.shape == (NUM_ITEMS, DIM)
    adjacency = dense_attention(model)
    h = x = model.node_embeddings()
    layers = [x]
    for layer in model.layers:
        neighbours = adjacency @ h
        h = (F.leaky_relu(layer.linear_sum(h + neighbours), 0.2)
             + F.leaky_relu(layer.linear_product(h * neighbours), 0.2))
        layers.append(F.normalize(h, dim=-1))
    expected = torch.cat(layers, dim=-1)
    torch.testing.assert_close(users, expected[:NUM_USERS])
    torch.testing.assert_close(items, expected[NUM_USERS : NUM_USERS + NUM_ITEMS])
    assert torch.isfinite(expected).all()


def test_gradients_reach_embeddings_and_relation_weights(edge_index):
    model = make_kgat(edge_index)
    users, items = model()
    (users[edge_index[0]] * items[edge_index[1]]).sum().backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), name
    # Every relation has a head with two or more edges here (a softmax over one edge is constant), so each
    # one's W_r and e_r get a gradient, and so does every node with edges (the isolated entity 2 does not).
    assert (model.relation_weight.grad.abs().sum(dim=(1, 2)) > 0).all()
    assert (model.relation_embedding.grad.abs().sum(dim=1) > 0).all()
    for node_type in ("user", "item", "genre", "age"):
        grad = model.embedding.embeddings[node_type].weight.grad
        assert (grad.abs().sum(dim=1) > 0).all(), node_type
    entity_grad = model.embedding.embeddings["entity"].weight.grad.abs().sum(dim=1)
    assert entity_grad[0] > 0 and entity_grad[2] == 0


def test_relation_order_and_weights_do_not_depend_on_edge_type_order(edge_index):
    torch.manual_seed(0)
    first = KGAT(NUM_USERS, NUM_ITEMS, side_graph(), embedding_dim=DIM)
    torch.manual_seed(0)
    second = KGAT(NUM_USERS, NUM_ITEMS, side_graph(reverse_order=True), embedding_dim=DIM)
    assert first.relations == second.relations
    assert first.relations[-2:] == [("user", "interacts", "item"), ("item", "rev_interacts", "user")]
    second.load_state_dict(first.state_dict())
    for model in (first, second):
        model.set_graph(edge_index)
        model.eval()
    torch.testing.assert_close(first()[0], second()[0])


def test_reset_parameters_reproducible(edge_index):
    model = make_kgat(edge_index)
    torch.manual_seed(7)
    model.reset_parameters()
    before = [p.detach().clone() for p in model.parameters()]
    torch.manual_seed(7)
    model.reset_parameters()
    for old, new in zip(before, model.parameters()):
        torch.testing.assert_close(old, new)


def test_errors_name_the_problem(edge_index):
    model = KGAT(NUM_USERS, NUM_ITEMS, side_graph(), embedding_dim=DIM)
    with pytest.raises(RuntimeError, match="call set_graph"):
        model()
    with pytest.raises(ValueError, match=r"side_graph\['item'\].num_nodes = 4; expected num_items = 5"):
        KGAT(NUM_USERS, 5, side_graph())
    with_interactions = side_graph()
    with_interactions["user", "interacts", "item"].edge_index = edge_index
    with pytest.raises(ValueError, match="side_graph holds interaction edges"):
        KGAT(NUM_USERS, NUM_ITEMS, with_interactions)
    with pytest.raises(ValueError, match="dropout = 1.0; expected a float in \\[0, 1\\)"):
        KGAT(NUM_USERS, NUM_ITEMS, side_graph(), dropout=1.0)
    with pytest.raises(ValueError, match=r"edge_index\[1\] holds item ids in \[4, 4\]; expected ids in \[0, 3\]"):
        model.set_graph(torch.tensor([[0], [4]]))


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_kgat_cpu_cuda_parity(edge_index):
    model = make_kgat(edge_index).eval()
    cpu_users, cpu_items = model()
    model.cuda()
    with pytest.raises(RuntimeError, match="call set_graph\\(edge_index\\) again after moving the model"):
        model()
    model.set_graph(edge_index.cuda())
    cuda_users, cuda_items = model()
    cuda_users.sum().backward()
    assert model.relation_weight.grad.is_cuda
    torch.testing.assert_close(cuda_users.cpu(), cpu_users.detach(), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(cuda_items.cpu(), cpu_items.detach(), rtol=1e-4, atol=1e-5)


# ----------------------------------------------------------------------- config and pipeline
def test_config_keys():
    config = load_config(None, ["model.name=kgat", "model.relation_dim=16", "model.dropout=0.2"])
    assert (config.model.name, config.model.relation_dim, config.model.dropout) == ("kgat", 16, 0.2)
    assert load_config(None, ["model.name=kgat"]).model.relation_dim is None
    with pytest.raises(ConfigError, match=r"key 'model.dropout' must be in \[0, 1\), found 1.5"):
        load_config(None, ["model.dropout=1.5"])
    with pytest.raises(ConfigError, match=r"key 'model.relation_dim' must be at least 1 or null, found 0"):
        load_config(None, ["model.relation_dim=0"])
    with pytest.raises(ConfigError, match=r"unknown key 'model.relation_dims' \(did you mean 'relation_dim'\?\)"):
        load_config(None, ["model.relation_dims=8"])


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("kgat-synthetic")
    write(generate(num_users=200, num_items=120, num_communities=4, interactions_per_user=15,
                   num_kg_entities=60, seed=3), root / "synthetic")
    return root


def config_for(root, tmp_path, model: str) -> RunConfig:
    return from_mapping(RunConfig, {
        "seed": 0,
        "graph": {"recipe": "synthetic", "data_root": str(root), "cache_dir": str(root / "cache")},
        "model": {"name": model, "embedding_dim": 32, "num_layers": 2},
        "train": {"epochs": 10, "batch_size": 256, "lr": 0.01, "progress": False, "device": "cpu",
                  "eval_every": 5},
        "output": {"dir": str(tmp_path), "name": model},
    }, "test")


def test_kgat_trains_through_the_pipeline(synthetic_root, tmp_path):
    trained = run(config_for(synthetic_root, tmp_path, "kgat"))
    popularity = run(config_for(synthetic_root, tmp_path, "popularity"))
    config, data, model = load_run(trained.run_dir)
    assert isinstance(model, KGAT) and {"genre", "tag", "entity", "age_group"} <= set(model.node_types)
    exclude = [data.train, data.valid]
    n_users, n_items = data.bundle.num_users, data.bundle.num_items
    reloaded = evaluate_model(model, config, n_users, n_items, data.test, exclude)
    assert reloaded == pytest.approx(trained.test_metrics, abs=1e-6)  # the graph rebuilt from the cache fits
    torch.manual_seed(0)
    model.reset_parameters()
    untrained = evaluate_model(model, config, n_users, n_items, data.test, exclude)
    recall = trained.test_metrics["recall@20"]
    assert recall > 1.5 * popularity.test_metrics["recall@20"]
    assert recall > 2.0 * untrained["recall@20"]
