"""Tests of the heterogeneous encoders: one generic case every encoder runs, then hand-computed numbers each."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F
from torch_geometric.data import HeteroData
from torch_geometric.nn import HGTConv
from torch_geometric.utils import softmax

from graphrec.nn import HGT, RGCN, DiffNet, HeteroEncoder, HeteroSAGE, KGATEncoder, LightGCNEncoder

DIM, NUM_LAYERS = 8, 2
FOLLOWS, INTERACTS = ("user", "follows", "user"), ("user", "interacts", "item")


def tiny_graph() -> HeteroData:
    """Users, items, genres and KG entities with two relations; entity 3 and user 3's social side are isolated."""
    relations = {
        INTERACTS: [[0, 0, 1, 1, 1, 2, 3], [0, 1, 1, 2, 3, 4, 4]],
        ("item", "has_genre", "genre"): [[0, 1, 2, 3, 4], [0, 0, 1, 1, 2]],
        ("item", "directed_by", "entity"): [[0, 1, 2], [0, 0, 1]],
        ("item", "starring", "entity"): [[0, 2, 3, 4], [2, 2, 1, 2]],
    }
    data = HeteroData()
    for node_type, count in (("user", 4), ("item", 5), ("genre", 3), ("entity", 4)):
        data[node_type].num_nodes = count
    for (source, relation, target), index in relations.items():
        data[source, relation, target].edge_index = torch.tensor(index)
        data[target, f"rev_{relation}", source].edge_index = torch.tensor(index).flip(0)
    data[FOLLOWS].edge_index = torch.tensor([[0, 1, 1, 2], [1, 0, 2, 1]])  # both directions; user 3 has no friends
    return data


@dataclass
class Case:
    name: str
    build: Callable[[tuple], HeteroEncoder]
    has_metadata: bool = True  # built for the edge types of metadata (others are errors); else ignores others


CASES = [
    Case("HGT", lambda metadata: HGT(metadata, DIM, NUM_LAYERS, heads=2)),
    Case("RGCN", lambda metadata: RGCN(metadata, DIM, NUM_LAYERS)),
    Case("RGCN-bases", lambda metadata: RGCN(metadata, DIM, NUM_LAYERS, num_bases=2)),
    Case("HeteroSAGE", lambda metadata: HeteroSAGE(metadata, DIM, NUM_LAYERS)),
    Case("DiffNet", lambda metadata: DiffNet(DIM, NUM_LAYERS), has_metadata=False),
    Case("KGATEncoder", lambda metadata: KGATEncoder(metadata, DIM, NUM_LAYERS)),
    Case("LightGCNEncoder", lambda metadata: LightGCNEncoder(DIM, NUM_LAYERS), has_metadata=False),
]


@pytest.fixture(params=CASES, ids=[case.name for case in CASES])
def case(request) -> Case:
    return request.param


@pytest.fixture
def graph() -> HeteroData:
    return tiny_graph()


def inputs(graph: HeteroData, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {t: torch.randn(graph[t].num_nodes, DIM, generator=generator) for t in graph.node_types}


def build(case: Case, graph: HeteroData, seed: int = 0) -> HeteroEncoder:
    torch.manual_seed(seed)
    return case.build(graph.metadata())


class AddConstant(torch.nn.Module):
    """An adapter that adds ``value`` and records that it ran."""

    def __init__(self, value: float, calls: list) -> None:
        super().__init__()
        self.value, self.calls = value, calls

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        self.calls.append(self.value)
        return h + self.value


# ---------------------------------------------------------------------------------------- generic case
def test_output_keys_and_shapes(case, graph):
    x_dict = inputs(graph)
    h_dict = build(case, graph)(x_dict, graph.edge_index_dict)
    assert list(h_dict) == list(x_dict)
    for node_type, x in x_dict.items():
        assert h_dict[node_type].shape == x.shape
        assert torch.isfinite(h_dict[node_type]).all()
    assert not torch.allclose(h_dict["user"], x_dict["user"])  # users are encoded by every encoder


def test_gradients_reach_parameters_and_inputs(case, graph):
    encoder = build(case, graph)
    x_dict = {t: x.requires_grad_() for t, x in inputs(graph).items()}
    h_dict = encoder(x_dict, graph.edge_index_dict)
    weights = inputs(graph, seed=1)  # a random readout, so that no gradient cancels by symmetry
    sum((h_dict[t] * weights[t]).sum() for t in h_dict).backward()
    for name, parameter in encoder.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name
    for node_type in ("user", "item"):
        assert x_dict[node_type].grad.abs().sum() > 0, node_type
    if case.name == "LightGCNEncoder":
        assert not list(encoder.parameters())


def test_reset_parameters_is_reproducible(case, graph):
    encoder, x_dict = build(case, graph), inputs(graph)
    torch.manual_seed(5)
    encoder.reset_parameters()
    first = encoder(x_dict, graph.edge_index_dict)
    torch.manual_seed(6)
    encoder.reset_parameters()
    other = encoder(x_dict, graph.edge_index_dict)
    torch.manual_seed(5)
    encoder.reset_parameters()
    again = encoder(x_dict, graph.edge_index_dict)
    for node_type in x_dict:
        torch.testing.assert_close(again[node_type], first[node_type], rtol=0, atol=0)
    if list(encoder.parameters()):
        assert not torch.allclose(other["user"], first["user"])


def test_isolated_node_gets_a_finite_output(case, graph):
    h_dict = build(case, graph)(inputs(graph), graph.edge_index_dict)
    assert torch.isfinite(h_dict["entity"][3]).all()  # entity 3 has no edge
    assert torch.isfinite(h_dict["user"][3]).all()  # user 3 has no friend


def test_missing_and_empty_edge_types(case, graph):
    encoder, x_dict = build(case, graph), inputs(graph)
    full = encoder(x_dict, graph.edge_index_dict)
    hidden = {et: ei for et, ei in graph.edge_index_dict.items() if et != FOLLOWS}
    hidden[INTERACTS] = torch.zeros(2, 0, dtype=torch.long)
    out = encoder(x_dict, hidden)
    assert list(out) == list(x_dict)
    for node_type, x in x_dict.items():
        assert out[node_type].shape == x.shape and torch.isfinite(out[node_type]).all()
    assert not torch.allclose(out["user"], full["user"])
    again = encoder(x_dict, graph.edge_index_dict)  # cached sparse matrices follow the graph back
    for node_type in x_dict:
        torch.testing.assert_close(again[node_type], full[node_type])


def test_unknown_edge_type_is_an_error(case, graph):
    encoder, x_dict = build(case, graph), inputs(graph)
    edge_index = torch.tensor([[0], [0]])
    planet, rates = ("user", "visits", "planet"), ("user", "rates", "genre")
    if not case.has_metadata:  # DiffNet and LightGCN read their own edge types and ignore the others
        expected = encoder(x_dict, graph.edge_index_dict)
        out = encoder(x_dict, {**graph.edge_index_dict, planet: edge_index, rates: edge_index})
        for node_type in x_dict:
            torch.testing.assert_close(out[node_type], expected[node_type])
        return
    with pytest.raises(ValueError, match=r"edge type \('user', 'visits', 'planet'\) joins node types missing"):
        encoder(x_dict, {**graph.edge_index_dict, planet: edge_index})
    with pytest.raises(ValueError, match=r"\('user', 'rates', 'genre'\) is not one this encoder was built for"):
        encoder(x_dict, {**graph.edge_index_dict, rates: edge_index})


def test_adapt_is_called_after_every_layer(case, graph):
    encoder, x_dict = build(case, graph), inputs(graph)
    plain = encoder(x_dict, graph.edge_index_dict)
    calls: list = []
    encoder.adapters = torch.nn.ModuleList(
        torch.nn.ModuleDict({t: AddConstant(float(k + 1), calls) for t in ("user", "item")})
        for k in range(NUM_LAYERS)
    )
    adapted = encoder(x_dict, graph.edge_index_dict)
    assert sorted(calls) == [1.0, 1.0, 2.0, 2.0]  # layer k's adapters of users and items, once each
    assert not torch.allclose(adapted["user"], plain["user"])
    encoder.adapters = None
    torch.testing.assert_close(encoder(x_dict, graph.edge_index_dict)["user"], plain["user"])


def test_copies_compute_the_same(case, graph):
    encoder, x_dict = build(case, graph), inputs(graph)
    out = encoder(x_dict, graph.edge_index_dict)  # fills the sparse-matrix cache, which copies leave behind
    copied = copy.deepcopy(encoder)(x_dict, graph.edge_index_dict)
    for node_type in x_dict:
        torch.testing.assert_close(copied[node_type], out[node_type])


def test_repr_names_the_encoder(case, graph):
    text = repr(build(case, graph))
    assert text.startswith(case.name.split("-")[0] + "(") and f"channels={DIM}" in text


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cpu_cuda_parity(case, graph):
    encoder, x_dict = build(case, graph), inputs(graph)
    cpu = encoder(x_dict, graph.edge_index_dict)
    cuda = encoder.cuda()({t: x.cuda() for t, x in x_dict.items()},
                          {et: ei.cuda() for et, ei in graph.edge_index_dict.items()})
    for node_type in x_dict:
        torch.testing.assert_close(cuda[node_type].cpu(), cpu[node_type], rtol=1e-4, atol=1e-5)


# --------------------------------------------------------------------------------- hand-computed numbers
def three_nodes() -> tuple[dict, dict]:
    """Nodes 0, 1 -> 2 by relation r1 and 2 -> 0 by r2, one node type."""
    edge_index_dict = {("a", "r1", "a"): torch.tensor([[0, 1], [2, 2]]), ("a", "r2", "a"): torch.tensor([[2], [0]])}
    return {"a": torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 2.0]])}, edge_index_dict


def test_rgcn_on_three_nodes():
    x_dict, edge_index_dict = three_nodes()
    encoder = RGCN((["a"], list(edge_index_dict)), channels=2, num_layers=1)
    with torch.no_grad():  # W_0 = I, W_r1 = 2 I, W_r2 = 3 I, b = (0, 1)
        encoder.root[0] = torch.eye(2)
        encoder.weight[0, encoder.edge_types.index(("a", "r1", "a"))] = 2 * torch.eye(2)
        encoder.weight[0, encoder.edge_types.index(("a", "r2", "a"))] = 3 * torch.eye(2)
        encoder.bias[0] = torch.tensor([0.0, 1.0])
    out = encoder(x_dict, edge_index_dict)["a"]
    expected = torch.tensor([[1 + 3 * 2.0, 0 + 3 * 2 + 1], [0.0, 1 + 1], [2 + 2 * 0.5, 2 + 2 * 0.5 + 1]])
    torch.testing.assert_close(out, expected)


def test_sage_on_three_nodes():
    x_dict, edge_index_dict = three_nodes()
    edge_index_dict = {("a", "r1", "a"): edge_index_dict[("a", "r1", "a")]}
    encoder = HeteroSAGE((["a"], list(edge_index_dict)), channels=2, num_layers=1)
    conv = encoder.convs[0].convs[("a", "r1", "a")]
    with torch.no_grad():  # h_v = x_v + 2 mean(neighbours)
        conv.lin_r.weight.copy_(torch.eye(2))
        conv.lin_l.weight.copy_(2 * torch.eye(2))
        conv.lin_l.bias.zero_()
    out = encoder(x_dict, edge_index_dict)["a"]
    torch.testing.assert_close(out, torch.tensor([[1.0, 0.0], [0.0, 1.0], [3.0, 3.0]]))


def test_diffnet_user_is_diffused_plus_item_mean(graph):
    x_dict = inputs(graph)
    encoder = DiffNet(DIM, num_layers=1)
    out = encoder(x_dict, graph.edge_index_dict)
    x_user, linear = x_dict["user"], encoder.layers[0]
    friends = torch.stack([x_user[1], (x_user[0] + x_user[2]) / 2, x_user[1], torch.zeros(DIM)])
    diffused = torch.sigmoid(linear(torch.cat([x_user, friends], dim=-1)))
    x_item = x_dict["item"]
    items = torch.stack([(x_item[0] + x_item[1]) / 2, (x_item[1] + x_item[2] + x_item[3]) / 3, x_item[4], x_item[4]])
    torch.testing.assert_close(out["user"], diffused + items)
    assert out["item"] is x_dict["item"] and out["genre"] is x_dict["genre"]


def test_hgt_matches_pyg_hgtconv(graph):
    metadata = graph.metadata()
    torch.manual_seed(0)
    conv = HGTConv(DIM, DIM, metadata, heads=2)
    for parameter in conv.parameters():
        torch.nn.init.normal_(parameter)
    encoder = HGT(metadata, DIM, num_layers=1, heads=2)
    layer, num_edge_types = encoder.layers[0], len(metadata[1])
    with torch.no_grad():
        for node_type in metadata[0]:
            layer.kqv[node_type].load_state_dict(conv.kqv_lin.lins[node_type].state_dict())
            layer.out[node_type].load_state_dict(conv.out_lin.lins[node_type].state_dict())
            layer.skip[layer.target_types.index(node_type)] = conv.skip[node_type]
        for e, edge_type in enumerate(metadata[1]):  # PyG: one weight per (head, edge type in metadata order)
            r = layer.edge_types.index(edge_type)
            layer.k_rel[r] = conv.k_rel.weight[e::num_edge_types]
            layer.v_rel[r] = conv.v_rel.weight[e::num_edge_types]
            layer.p_rel[r] = conv.p_rel["__".join(edge_type)][0]
    x_dict = inputs(graph)
    expected = conv(x_dict, graph.edge_index_dict)  # PyG needs the dict in metadata order
    shuffled = dict(reversed(list(graph.edge_index_dict.items())))  # ours does not
    out = encoder(x_dict, shuffled)
    for node_type in metadata[0]:
        torch.testing.assert_close(out[node_type], expected[node_type], rtol=1e-4, atol=1e-4)


def test_kgat_encoder_matches_dense_attention(graph):
    x_dict = inputs(graph)
    encoder = KGATEncoder(graph.metadata(), DIM, num_layers=2, relation_dim=4)
    out = encoder(x_dict, graph.edge_index_dict)
    offset = {t: sum(x_dict[s].size(0) for s in list(x_dict)[: list(x_dict).index(t)]) for t in x_dict}
    x = torch.cat(list(x_dict.values()))
    heads, tails, logits = [], [], []
    for (source, relation, target), edge_index in graph.edge_index_dict.items():
        r = encoder.edge_types.index((source, relation, target))
        head, tail = edge_index[1] + offset[target], edge_index[0] + offset[source]
        weight, embedding = encoder.relation_weight[r], encoder.relation_embedding[r]
        logits.append(((x[tail] @ weight) * torch.tanh(x[head] @ weight + embedding)).sum(-1))
        heads.append(head), tails.append(tail)
    head, tail = torch.cat(heads), torch.cat(tails)
    attention = softmax(torch.cat(logits), head, num_nodes=x.size(0))
    dense = torch.zeros(x.size(0), x.size(0)).index_put_((head, tail), attention, accumulate=True)
    h, total = x, x
    for layer in encoder.layers:
        h = layer(h, dense @ h)
        total = total + F.normalize(h, dim=-1)
    expected = (total / 3).split([x.size(0) for x in x_dict.values()])
    for node_type, expected_t in zip(x_dict, expected):
        torch.testing.assert_close(out[node_type], expected_t, rtol=1e-5, atol=1e-5)


def test_lightgcn_encoder_adapter_path_matches_plain_propagation(graph):
    x_dict = inputs(graph)
    encoder = LightGCNEncoder(DIM, num_layers=3)
    plain = encoder(x_dict, graph.edge_index_dict)
    encoder.adapters = torch.nn.ModuleList(torch.nn.ModuleDict({"user": torch.nn.Identity()}) for _ in range(3))
    adapted = encoder(x_dict, graph.edge_index_dict)
    for node_type in ("user", "item"):
        torch.testing.assert_close(adapted[node_type], plain[node_type])


@pytest.mark.parametrize("make, message", [
    (lambda: HGT((["a"], []), channels=8, heads=3), "heads = 3; expected a positive int that divides channels = 8"),
    (lambda: RGCN((["a"], []), num_bases=0), "num_bases = 0; expected None or an int >= 1"),
    (lambda: HeteroSAGE((["a"], []), aggr="median"), "aggr = 'median'; expected one of"),
    (lambda: DiffNet(social=("user", "follows", "item")), "social = .*expected \\(user type, relation"),
    (lambda: KGATEncoder((["a"], []), dropout=1.0), "dropout = 1.0; expected a float in \\[0, 1\\)"),
    (lambda: LightGCNEncoder(channels=0), "channels = 0; expected a positive int"),
])
def test_bad_arguments_are_errors(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_diffnet_needs_user_features(graph):
    x_dict = {t: x for t, x in inputs(graph).items() if t != "user"}
    with pytest.raises(ValueError, match="x_dict has no 'user' features; got node types"):
        DiffNet(DIM)(x_dict, {FOLLOWS: graph[FOLLOWS].edge_index})
