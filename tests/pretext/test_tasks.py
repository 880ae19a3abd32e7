"""The generic test case every pretext task runs: a scalar loss that reaches the model's parameters,
is reproducible under a seeded generator, and falls on a tiny clustered graph within 40 Adam steps."""

from __future__ import annotations

import pytest
import torch

from graphrec.pretext import (
    ContrastiveViews, MaskedEdgePrediction, MaskedNodePrediction, MetaPathPrediction, MultiTask, PretextTask,
)
from tests.pretext.conftest import make_batch, make_graph, make_model, train

DIM = 16
METAPATHS = [["user", "item", "user"], ["item", "genre", "item"], ["user", "user", "item"], ["item", "entity", "item"]]

TASKS = {
    "masked_node_attributes": lambda g: MaskedNodePrediction(g, DIM),
    "masked_node_text": lambda g: MaskedNodePrediction(g, DIM, target="text"),
    "masked_edge": lambda g: MaskedEdgePrediction(g, DIM, edge_types=[("user", "interacts", "item"),
                                                                      ("user", "follows", "user")]),
    "masked_edge_bilinear": lambda g: MaskedEdgePrediction(g, DIM, mask_rate=0.3, num_negatives=3, scoring="bilinear"),
    "metapath": lambda g: MetaPathPrediction(g, DIM, METAPATHS, pairs_per_step=256),
    "contrastive_edge_dropout": lambda g: ContrastiveViews(DIM, nodes_per_step=64),
    "contrastive_feature_mask": lambda g: ContrastiveViews(DIM, view="feature_mask", rate=0.2, nodes_per_step=64),
    "contrastive_noise": lambda g: ContrastiveViews(DIM, view="noise", nodes_per_step=64),
    "multitask": lambda g: MultiTask({"masked_node": MaskedNodePrediction(g, DIM),
                                      "masked_edge": MaskedEdgePrediction(g, DIM)}, weights={"masked_edge": 2.0}),
}
# Required fall of the loss on a fixed evaluation batch: after <= factor * before (measured margins are wider).
FALL = {"masked_edge": 0.9, "masked_edge_bilinear": 0.9}


@pytest.fixture(params=sorted(TASKS))
def case(request):
    graph = make_graph()
    torch.manual_seed(0)
    return request.param, TASKS[request.param](graph), graph


def test_loss_is_a_scalar_that_reaches_the_model(case):
    name, task, graph = case
    assert isinstance(task, PretextTask) and repr(task).startswith(type(task).__name__)
    model = make_model(graph, DIM)
    loss = task.loss(model, make_batch(graph))
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    grads = [p.grad for p in model.parameters()]
    assert any(g is not None and g.abs().sum() > 0 for g in grads), f"{name}: no gradient reached the model"
    for p in task.parameters():
        assert p.grad is None or torch.isfinite(p.grad).all()


def test_same_generator_seed_gives_the_same_loss(case):
    _, task, graph = case
    model = make_model(graph, DIM)
    first = task.loss(model, make_batch(graph, seed=7))
    again = task.loss(model, make_batch(graph, seed=7))
    other = task.loss(model, make_batch(graph, seed=8))
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


def test_loss_falls_within_a_few_dozen_adam_steps(case):
    name, task, graph = case
    model = make_model(graph, DIM)

    def evaluate() -> float:
        with torch.no_grad():
            return float(task.loss(model, make_batch(graph, seed=123)))

    before = evaluate()
    train(task, model, graph, steps=40, lr=0.05)
    after = evaluate()
    assert after < FALL.get(name, 0.7) * before, f"{name}: loss {before:.4f} -> {after:.4f}"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_runs_on_cuda(case):
    name, task, graph = case
    model = make_model(graph, DIM).cuda()
    task = task.cuda()
    batch = make_batch(graph)
    batch.edge_index_dict = {e: index.cuda() for e, index in batch.edge_index_dict.items()}
    loss = task.loss(model, batch)
    assert loss.device.type == "cuda" and torch.isfinite(loss)
    loss.backward()


def test_reset_parameters_is_reproducible(case):
    _, task, _ = case
    torch.manual_seed(3)
    task.reset_parameters()
    first = {k: v.clone() for k, v in task.state_dict().items()}
    torch.manual_seed(3)
    task.reset_parameters()
    assert all(torch.equal(first[k], v) for k, v in task.state_dict().items())
