"""Neighbour-sampled pre-training: every pretext task on a subgraph sampled around seed nodes.

At full fan-out with every node a seed a sampled step is the full-batch step; on sampled subgraphs
each task's loss still falls; a hidden edge never reaches the graph the encoder reads; and
``graphrec pretrain`` with ``pretrain.batching=neighbor`` runs, checkpoints the sampler and resumes exactly.
"""

from __future__ import annotations

import json

import pytest
import torch

from graphrec.cli import main
from graphrec.config import RunConfig
from graphrec.errors import CheckpointError, ConfigError
from graphrec.nn import LightGCNEncoder
from graphrec.pretext import MaskedEdgePrediction, MaskedNodePrediction, PretextBatch
from graphrec.pretext.sampled import SampledBatches, SubgraphModel
from graphrec.train.pretrain import PretrainTrainer
from graphrec.transfer import pretrain
from graphrec.utils import load_tensors
from tests.conftest import run_config, write_synthetic_root
from tests.pretext.conftest import CapturingEncoder, MeanEncoder, make_batch, make_graph, make_model, num_nodes
from tests.pretext.test_tasks import DIM, FALL, TASKS, case  # noqa: F401 (case: the fixture over TASKS)

# Required fall of the loss on a fixed sampled batch after 40 steps on other sampled batches; the multi-task
# loss is two thirds masked-edge loss, whose bound is 0.9.
SAMPLED_FALL = {**FALL, "multitask": 0.85}

UI, IU, UU = ("user", "interacts", "item"), ("item", "rev_interacts", "user"), ("user", "follows", "user")


def batches_for(graph, fanouts, batch_nodes=10_000, seed_types=None, seed=0) -> SampledBatches:
    return SampledBatches(dict(graph.edge_index_dict), num_nodes(graph), fanouts, batch_nodes,
                          graph.node_types if seed_types is None else seed_types, seed=seed)


def sampled_step(task, model, batches: SampledBatches, generator_seed: int, step: int = 0):
    generator = torch.Generator().manual_seed(generator_seed)
    view, batch = batches.next(model, step, generator)
    return task.loss(view, batch), view, batch


# ------------------------------------------------------------------------------------ equal to full batch
def test_full_fanout_with_every_node_a_seed_gives_the_full_batch_loss(case):
    """The subgraph is then the graph, edges in graph order, so the seeded corruption is drawn alike."""
    name, task, graph = case
    model = make_model(graph, DIM)
    whole = make_batch(graph, seed=5)
    whole.edge_index_dict = dict(sorted(whole.edge_index_dict.items()))  # sampled batches list types sorted
    full = task.loss(model, whole)
    sampled, _, batch = sampled_step(task, model, batches_for(graph, [-1, -1]), generator_seed=5)
    assert batch.sampled and all(torch.equal(batch.n_id[t], torch.arange(n)) for t, n in num_nodes(graph).items())
    assert all(torch.equal(batch.edge_index_dict[t], e) for t, e in graph.edge_index_dict.items())
    torch.testing.assert_close(sampled, full, rtol=1e-6, atol=1e-6, msg=name)


def test_merged_reverse_edges_at_full_fanout_give_lightgcn_the_full_batch_loss():
    """LightGCN reads ('user', 'interacts', 'item') as undirected, so its batches hold each sampled edge both ways."""
    graph = make_graph()
    task = MaskedEdgePrediction(graph, DIM)
    model = make_model(graph, DIM, encoder=LightGCNEncoder(DIM, 2))
    whole = make_batch(graph, seed=5)
    whole.edge_index_dict = dict(sorted(whole.edge_index_dict.items()))
    batches = SampledBatches(dict(graph.edge_index_dict), num_nodes(graph), [-1, -1], 10_000, graph.node_types,
                             merge_reverse=True)
    assert batches.sampler.reverse_edge_types[UI] == IU and UU not in batches.sampler.reverse_edge_types
    view, batch = batches.next(model, 0, torch.Generator().manual_seed(5))
    assert torch.equal(batch.edge_index_dict[UI], graph[UI].edge_index)
    torch.testing.assert_close(task.loss(view, batch), task.loss(model, whole), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("target", ["attributes", "text"])
def test_masked_seeds_get_the_loss_of_the_same_masked_nodes_on_the_full_graph(target):
    """A sampled batch masks seeds and reads their attribute or text targets by graph id; at full fan-out the
    encoder's output at the seeds is the full graph's, so the loss is the full graph's with the same mask."""
    graph = make_graph()
    task = MaskedNodePrediction(graph, DIM, target=target, mask_rate=0.4)
    model = make_model(graph, DIM)
    batches = batches_for(graph, [-1, -1], batch_nodes=12, seed_types=["item"])
    chosen = {}
    draw = task.sample_mask

    def remember(batch):
        chosen["mask"] = draw(batch)
        return chosen["mask"]

    task.sample_mask = remember
    sampled, _, batch = sampled_step(task, model, batches, generator_seed=3)
    local = torch.nonzero(chosen["mask"]).flatten()
    assert local.numel() and int(local.max()) < batch.num_seeds["item"]  # only seeds are masked
    ids = batch.n_id["item"][local]
    assert not torch.equal(ids, local)  # graph ids differ from local ids: the mapping is exercised
    masked = torch.zeros(graph["item"].num_nodes, dtype=torch.bool)
    masked[ids] = True
    task.sample_mask = lambda _: masked
    torch.testing.assert_close(sampled, task.loss(model, make_batch(graph)), rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------------------ learning on subgraphs
def test_loss_falls_on_fanout_3_3_subgraphs(case):
    name, task, graph = case
    model = make_model(graph, DIM)
    seed_types = task.seed_types or graph.node_types
    train_batches = batches_for(graph, [3, 3], batch_nodes=12, seed_types=seed_types, seed=1)
    eval_batches = batches_for(graph, [3, 3], batch_nodes=12, seed_types=seed_types, seed=2)
    fixed = eval_batches.sample(eval_batches.seeds(torch.Generator().manual_seed(0)))
    assert fixed.edge_index_dict[UI].size(1) < graph[UI].num_edges / 2  # a real sample of the interactions

    def evaluate() -> float:
        batch = PretextBatch(fixed.edge_index_dict, fixed.num_nodes_dict, 0, torch.Generator().manual_seed(123),
                             n_id=fixed.n_id, num_seeds=fixed.num_seeds)
        with torch.no_grad():
            return float(task.loss(SubgraphModel(model, batch.n_id), batch))

    before = evaluate()
    optimizer = torch.optim.Adam(list(model.parameters()) + list(task.parameters()), lr=0.05)
    generator = torch.Generator().manual_seed(1)
    for step in range(40):
        view, batch = train_batches.next(model, step, generator)
        loss = task.loss(view, batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = evaluate()
    assert after < SAMPLED_FALL.get(name, 0.7) * before, f"{name}: loss {before:.4f} -> {after:.4f}"


def test_gradients_reach_only_the_subgraphs_rows():
    graph = make_graph()
    task = TASKS["masked_edge"](graph)
    model = make_model(graph, DIM)
    loss, _, batch = sampled_step(task, model, batches_for(graph, [2, 2], batch_nodes=5, seed_types=["user", "item"]),
                                  generator_seed=0)
    loss.backward()
    grad = model.embedding.embeddings["user"].weight.grad
    outside = torch.ones(graph["user"].num_nodes, dtype=torch.bool)
    outside[batch.n_id["user"]] = False
    assert outside.any() and grad[outside].abs().sum() == 0 and grad[~outside].abs().sum() > 0


# ------------------------------------------------------------------------------------ no leak
def global_pairs(batch: PretextBatch, edge_type, edge_index: torch.Tensor) -> set[tuple[int, int]]:
    src, _, dst = edge_type
    return set(zip(batch.n_id[src][edge_index[0]].tolist(), batch.n_id[dst][edge_index[1]].tolist()))


@pytest.mark.parametrize("fanouts", [[3, 3], [-1, -1]])
def test_hidden_edges_never_reach_the_encoders_subgraph(fanouts):
    graph = make_graph()
    task = MaskedEdgePrediction(graph, DIM, edge_types=[UI, UU], mask_rate=0.3)
    encoder = CapturingEncoder(MeanEncoder())
    model = make_model(graph, DIM, encoder=encoder)
    batches = batches_for(graph, fanouts, batch_nodes=8, seed_types=task.seed_types)
    drawn = []
    hide = task.hide
    task.hide = lambda batch: drawn.append(hide(batch)) or drawn[-1]
    generator = torch.Generator().manual_seed(0)
    total_hidden = 0
    for step in range(10):
        view, batch = batches.next(model, step, generator)
        task.loss(view, batch)
        hidden, (_, seen) = drawn[-1], encoder.calls[-1]
        for edge_type, reverse in ((UI, IU), (UU, UU)):
            pairs = global_pairs(batch, edge_type, hidden[edge_type])
            sampled = global_pairs(batch, edge_type, batch.edge_index_dict[edge_type]) | \
                {(b, a) for a, b in global_pairs(batch, reverse, batch.edge_index_dict[reverse])}
            assert pairs and pairs <= sampled  # hidden among the subgraph's edges, in either direction
            assert not pairs & global_pairs(batch, edge_type, seen[edge_type])
            assert not {(b, a) for a, b in pairs} & global_pairs(batch, reverse, seen[reverse])
            total_hidden += len(pairs)
        # only hidden pairs left: every other sampled interaction is still there
        kept = global_pairs(batch, UI, batch.edge_index_dict[UI]) - global_pairs(batch, UI, hidden[UI])
        assert kept == global_pairs(batch, UI, seen[UI])
    assert total_hidden > 20


def test_sampled_hidden_edges_touch_a_seed_and_negatives_are_seeds():
    graph = make_graph()
    task = MaskedEdgePrediction(graph, DIM, mask_rate=0.5)
    batches = batches_for(graph, [3, 3], batch_nodes=6, seed_types=task.seed_types)
    batch = batches.sample(batches.seeds(torch.Generator().manual_seed(0)), generator=torch.Generator())
    candidates = task.candidates(batch, UI)
    touches = (candidates[0] < batch.num_seeds["user"]) | (candidates[1] < batch.num_seeds["item"])
    assert candidates.size(1) > 0 and bool(touches.all())
    assert torch.unique(candidates, dim=1).size(1) == candidates.size(1)  # each pair once


# ------------------------------------------------------------------------------------ the trainer
def test_trainer_neighbor_batching_runs_and_checks_its_arguments():
    graph = make_graph()
    task = TASKS["multitask"](graph)
    model = make_model(graph, DIM)
    trainer = PretrainTrainer(model, task, dict(graph.edge_index_dict), num_nodes(graph), steps=20, lr=0.05,
                              device="cpu", progress=False, log_every=5, batching="neighbor", fanouts=[3, 3],
                              batch_nodes=8)
    result = trainer.fit()
    assert result.steps_run == 20 and result.history[-1]["loss"] < result.history[0]["loss"]
    with pytest.raises(ConfigError, match="batching: expected 'full' or 'neighbor', got 'nodes'"):
        PretrainTrainer(model, task, dict(graph.edge_index_dict), num_nodes(graph), batching="nodes")
    with pytest.raises(ConfigError, match="fanouts: batching='neighbor' needs one fan-out per hop"):
        PretrainTrainer(model, task, dict(graph.edge_index_dict), num_nodes(graph), batching="neighbor")
    with pytest.raises(ValueError, match="seed_types names 'movie'"):
        SampledBatches(dict(graph.edge_index_dict), num_nodes(graph), [2], 4, ["movie"])


# ------------------------------------------------------------------------------------ end to end
@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory):
    return write_synthetic_root(tmp_path_factory.mktemp("synthetic-sampled-pretraining"), num_users=200,
                                num_items=120, num_communities=4, interactions_per_user=15, seed=3)


def config_for(root, tmp_path, **sections) -> RunConfig:
    return run_config(root, tmp_path, {
        "model": {"name": "graph", "encoder": "hgt", "embedding_dim": 16, "num_layers": 2},
        "train": {"progress": False, "device": "cpu"},
        "pretrain": {"pretext": "chest", "steps": 12, "checkpoint_every": 6, "batching": "neighbor",
                     "fanouts": [3, 3], "batch_nodes": 32},
    }, sections)


def test_cli_pretrain_with_neighbor_batching(synthetic_root, tmp_path, capsys):
    config = tmp_path / "graph.yaml"
    config.write_text(json.dumps({
        "graph": {"recipe": "synthetic", "data_root": str(synthetic_root), "cache_dir": str(synthetic_root / "cache")},
        "model": {"name": "graph", "encoder": "hgt", "embedding_dim": 16, "num_layers": 2},
        "train": {"progress": False, "device": "cpu"},
        "pretrain": {"steps": 8},
    }))
    assert main(["pretrain", str(config), "pretrain.batching=neighbor", "pretrain.fanouts=[3,3]",
                 "pretrain.batch_nodes=32", "--pretext", "chest", "--run-dir", str(tmp_path / "pre")]) == 0
    assert "encoder checkpoint" in capsys.readouterr().out
    history = json.loads((tmp_path / "pre" / "pretrain_history.json").read_text())
    assert history[-1]["step"] == 8 and all(row["loss"] == row["loss"] for row in history)
    assert load_tensors(tmp_path / "pre" / "encoder.safetensors")


def test_neighbor_pretraining_resumes_exactly(synthetic_root, tmp_path):
    straight = pretrain(config_for(synthetic_root, tmp_path, output={"name": "straight"}))
    pretrain(config_for(synthetic_root, tmp_path, output={"name": "cut"}, pretrain={"steps": 6}))
    resumed = pretrain(config_for(synthetic_root, tmp_path, output={"name": "cut"}), resume=True)
    assert straight.history[-1]["step"] == resumed.history[-1]["step"] == 12
    assert straight.history[-1]["loss"] == resumed.history[-1]["loss"]  # the window of steps 11 and 12
    first, second = load_tensors(straight.checkpoint), load_tensors(resumed.checkpoint)
    assert all(torch.equal(first[name], second[name]) for name in first)
    # other sampling settings, or full batches, do not continue this run
    with pytest.raises(CheckpointError, match="batch_nodes=32 \\(now 16\\)"):
        pretrain(config_for(synthetic_root, tmp_path, output={"name": "cut"}, pretrain={"batch_nodes": 16}),
                 resume=True)
    with pytest.raises(CheckpointError, match="batching='neighbor' \\(now 'full'\\)"):
        pretrain(config_for(synthetic_root, tmp_path, output={"name": "cut"}, pretrain={"batching": "full"}),
                 resume=True)


def test_lightgcn_pretraining_samples_both_directions(synthetic_root, tmp_path):
    run = pretrain(config_for(synthetic_root, tmp_path, model={"encoder": "lightgcn"},
                              pretrain={"pretext": "masked-edge", "steps": 4, "fanouts": None}))
    info = json.loads((run.run_dir / "pretrain.json").read_text())
    assert info["batching"] == {"batching": "neighbor", "fanouts": [10, 10], "batch_nodes": 32, "merge_reverse": True}
    assert info["steps"] == 4 and all(row["loss"] == row["loss"] for row in run.history)


def test_fanouts_must_give_one_hop_per_layer(synthetic_root, tmp_path):
    with pytest.raises(ConfigError, match=r"'pretrain.fanouts' lists 1 hop\(s\), \[3\], but the encoder has "
                                          r"model.num_layers = 2"):
        pretrain(config_for(synthetic_root, tmp_path, pretrain={"fanouts": [3]}))
    with pytest.raises(ConfigError, match="'pretrain.batch_nodes' must be at least 1, found 0"):
        config_for(synthetic_root, tmp_path, pretrain={"batch_nodes": 0})


# ------------------------------------------------------------------------------------ CUDA
@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_sampled_step_on_cuda_matches_cpu(case):
    """Sampling runs on the CPU, the batch moves to the GPU; the seeded draws, hence the loss, are the CPU's."""
    name, task, graph = case
    model = make_model(graph, DIM)
    batches = batches_for(graph, [3, 3], batch_nodes=12, seed_types=task.seed_types or graph.node_types)
    state = batches.state_dict()
    cpu, _, _ = sampled_step(task, model, batches, generator_seed=4)
    batches.load_state_dict(state)
    model, task = model.cuda(), task.cuda()
    view, batch = batches.next(model, 0, torch.Generator().manual_seed(4), device="cuda")
    assert all(e.is_cuda for e in batch.edge_index_dict.values())
    loss = task.loss(view, batch)
    loss.backward()
    assert loss.is_cuda and model.embedding.embeddings["user"].weight.grad.is_cuda
    torch.testing.assert_close(loss.cpu(), cpu.detach(), rtol=1e-4, atol=1e-5, msg=name)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_trainer_neighbor_batching_on_cuda():
    graph = make_graph()
    model = make_model(graph, DIM)
    result = PretrainTrainer(model, TASKS["multitask"](graph), dict(graph.edge_index_dict), num_nodes(graph),
                             steps=5, device="cuda", progress=False, batching="neighbor", fanouts=[3, 3],
                             batch_nodes=8).fit()
    assert result.steps_run == 5 and next(model.parameters()).is_cuda
