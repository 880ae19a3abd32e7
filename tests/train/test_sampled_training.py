"""Neighbour-sampled training: exact at full fan-out, learning at small ones, resumable, and configured with care."""

from __future__ import annotations

import pytest
import torch

from graphrec.config import RunConfig, load_config
from graphrec.errors import CheckpointError, ConfigError
from graphrec.nn import (HGT, RGCN, DiffNet, GraphRecommender, HeteroSAGE, KGATEncoder, LightGCNEncoder, LinearDotHead,
                         NodeEmbedding, bpr_loss)
from graphrec.nn.losses import l2_regularization
from graphrec.nn.mf import MF
from graphrec.schema import from_mapping
from graphrec.train import Trainer
from tests.conftest import write_synthetic_root

DIM = 8
INTERACTS, REV_INTERACTS = ("user", "interacts", "item"), ("item", "rev_interacts", "user")
NUM_NODES = {"user": 24, "item": 30, "genre": 4}
COLD_ITEM = 29  # no training interaction: its ID vector counts as zero where it has text


def interactions(seed: int = 0) -> torch.Tensor:
    """Two communities of users (0-11, 12-23), each liking its half of the items 0-13 / 14-27, 6 rows per user."""
    generator = torch.Generator().manual_seed(seed)
    rows = []
    for user in range(NUM_NODES["user"]):
        offset = 0 if user < 12 else 14
        rows += [(user, int(item) + offset) for item in torch.randperm(14, generator=generator)[:6]]
    return torch.tensor(rows).T.contiguous()  # [2, 144]


def side_edges() -> dict:
    items = torch.arange(NUM_NODES["item"])
    has_genre = torch.stack([items, items % NUM_NODES["genre"]])
    follows = torch.tensor([[0, 1, 2, 13, 14, 20], [1, 2, 0, 14, 15, 3]])
    return {("item", "has_genre", "genre"): has_genre, ("genre", "rev_has_genre", "item"): has_genre.flip(0),
            ("user", "follows", "user"): follows}


def make_embedding() -> NodeEmbedding:
    """IDs everywhere, plus text on items (one without) and genre attributes on items: every gathered source."""
    generator = torch.Generator().manual_seed(3)
    text = torch.randn(NUM_NODES["item"], 5, generator=generator)
    has_text = torch.ones(NUM_NODES["item"], dtype=torch.bool)
    has_text[4] = False
    items = torch.arange(NUM_NODES["item"])
    attributes = torch.stack([torch.cat([items, items[:10]]), torch.cat([items % 3, items[:10] % 2 + 3])])
    return NodeEmbedding(NUM_NODES, DIM, text_dict={"item": text}, has_text_dict={"item": has_text},
                         attribute_dict={"item": (attributes, 5)}, fusion="gate")


def make_encoder(name: str, metadata, num_layers: int):
    return {
        "lightgcn": lambda: LightGCNEncoder(DIM, num_layers),
        "rgcn": lambda: RGCN(metadata, DIM, num_layers),
        "hgt": lambda: HGT(metadata, DIM, num_layers, heads=2),
        "sage": lambda: HeteroSAGE(metadata, DIM, num_layers),
        "kgat": lambda: KGATEncoder(metadata, DIM, num_layers, dropout=0.0),
        "diffnet": lambda: DiffNet(DIM, num_layers),
    }[name]()


def make_model(encoder: str = "rgcn", num_layers: int = 2, seed: int = 0, head=None) -> GraphRecommender:
    torch.manual_seed(seed)
    side = side_edges()
    metadata = (list(NUM_NODES), [*side, INTERACTS, REV_INTERACTS])
    return GraphRecommender(make_embedding(), make_encoder(encoder, metadata, num_layers), side, head)


def batch(seed: int = 1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Users (one repeated), their positives and two negatives each (a cold item among them)."""
    train = interactions()
    picked = torch.tensor([0, 5, 6, 70, 71, 140])
    neg = torch.tensor([[20, 21], [COLD_ITEM, 3], [9, 25], [1, 2], [27, COLD_ITEM], [0, 13]])
    return train[0, picked], train[1, picked], neg


def step(model: GraphRecommender, users, pos, neg, sampler=None):
    """The trainer's BPR + L2 loss on one batch, from a full propagation or from the batch's sampled subgraph:
    the loss, every parameter's gradient and the sampled batch (``None`` when full)."""
    model.zero_grad()
    link = None
    if sampler is None:
        user_emb, item_emb = model()
        user_ego, item_ego = model.ego_embeddings()
        rows = users, pos, neg
    else:
        link = sampler.sample_links(users, pos, neg)
        x_dict, h_dict = model.encode_sampled(link.subgraph, sampler)
        (user_emb, item_emb), (user_ego, item_ego) = (h_dict["user"], h_dict["item"]), (x_dict["user"], x_dict["item"])
        rows = link.users, link.pos_items, link.neg_items
    u, i, j = user_emb[rows[0]], item_emb[rows[1]], item_emb[rows[2]]
    loss = bpr_loss(model.score(u, i), model.score(u, j)) + 1e-2 * l2_regularization(
        user_ego[rows[0]], item_ego[rows[1]], item_ego[rows[2]])
    loss.backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    return loss.item(), grads, link


# ---------------------------------------------------------------------------------------- gathered inputs
def test_gathered_inputs_are_the_full_rows_and_only_they_get_gradients():
    embedding = make_embedding()
    embedding.set_untrained("item", torch.arange(NUM_NODES["item"]) == COLD_ITEM)
    index = {"item": torch.tensor([COLD_ITEM, 4, 0, 4, 17]), "user": torch.tensor([3]),
             "genre": torch.zeros(0, dtype=torch.long)}
    gathered = embedding.gather(index)
    full = embedding()
    for node_type, ids in index.items():
        torch.testing.assert_close(gathered[node_type], full[node_type][ids])
    assert gathered["genre"].shape == (0, DIM)
    sum(x.sum() for x in gathered.values()).backward()
    ids = embedding.embeddings["item"].weight.grad.abs().sum(1).nonzero().squeeze(1)
    assert ids.tolist() == [0, 4, 17]  # the cold item's ID vector is read as zero: no gradient
    with pytest.raises(KeyError, match="no node type 'movie'"):
        embedding.gather({"movie": torch.tensor([0])})
    with pytest.raises(ValueError, match=r"expected a \[n\] LongTensor"):
        embedding.gather({"item": torch.tensor([[0]])})


# ---------------------------------------------------------------------------------------- exact at fan-out -1
@pytest.mark.parametrize("encoder", ["lightgcn", "rgcn", "hgt", "sage", "kgat", "diffnet"])
def test_full_fanout_step_equals_the_full_batch_step(encoder, num_layers=2):
    model = make_model(encoder, num_layers)
    model.set_graph(interactions())
    users, pos, neg = batch()
    full_loss, full_grads, _ = step(model, users, pos, neg)
    sampler = model.neighbor_sampler([-1] * num_layers)
    sampled_loss, sampled_grads, _ = step(model, users, pos, neg, sampler)
    assert sampled_loss == pytest.approx(full_loss, rel=1e-5)
    assert set(sampled_grads) == set(full_grads)
    for name, grad in full_grads.items():
        torch.testing.assert_close(sampled_grads[name], grad, rtol=1e-4, atol=1e-6, msg=name)


def test_one_layer_diffnet_needs_both_directions():
    """DiffNet reads a user's items from ('user', 'interacts', 'item') backwards, which one hop samples
    only into items: its reads_reverse_edges pairs the interactions with their reverse."""
    test_full_fanout_step_equals_the_full_batch_step("diffnet", num_layers=1)


@pytest.mark.parametrize("num_layers", [1, 2, 3])
@pytest.mark.parametrize("encoder", ["hgt", "rgcn"])
def test_trimmed_to_hops_gives_the_seeds_the_untrimmed_outputs(encoder, num_layers):
    """HGT and R-GCN read only the hops each layer needs on a sampled subgraph (trims_to_hops): the seeds'
    outputs and every gradient are those of running every layer on the whole subgraph."""
    model = make_model(encoder, num_layers)
    assert model.encoder.trims_to_hops
    model.set_graph(interactions())
    users, pos, neg = batch()
    sampler = model.neighbor_sampler([2] * num_layers, seed=5)
    link = sampler.sample_links(users, pos, neg)
    subgraph = link.subgraph
    assert sum(n for counts in subgraph.num_sampled_nodes.values() for n in counts[1:]) > 0

    def run(trim: bool):
        model.zero_grad()
        x_dict = model.inputs(subgraph.n_id)
        hops = (subgraph.num_sampled_nodes, subgraph.num_sampled_edges) if trim else None
        h_dict = model.encode(x_dict, subgraph.edge_index_dict, None, hops)
        seeds = {t: h[: subgraph.num_seeds.get(t, 0)] for t, h in h_dict.items()}
        sum(h.pow(2).sum() * (k + 1) for k, h in enumerate(seeds.values())).backward()
        grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
        return h_dict, seeds, grads

    untrimmed, untrimmed_seeds, untrimmed_grads = run(trim=False)
    trimmed, trimmed_seeds, trimmed_grads = run(trim=True)
    assert {t: h.size(0) for t, h in trimmed.items()} == {t: subgraph.num_seeds.get(t, 0) for t in trimmed}
    assert any(untrimmed[t].size(0) > trimmed[t].size(0) for t in trimmed)  # something was trimmed
    for node_type, h in untrimmed_seeds.items():
        torch.testing.assert_close(trimmed_seeds[node_type], h, rtol=1e-5, atol=1e-6, msg=node_type)
    assert set(trimmed_grads) == set(untrimmed_grads)
    for name, grad in untrimmed_grads.items():
        torch.testing.assert_close(trimmed_grads[name], grad, rtol=1e-4, atol=1e-6, msg=name)


@pytest.mark.parametrize("encoder", ["hgt", "rgcn"])
def test_trimming_refuses_hop_counts_for_another_number_of_layers(encoder):
    model = make_model(encoder, 2)
    model.set_graph(interactions())
    sampler = model.neighbor_sampler([2, 2])
    subgraph = sampler.sample_links(*batch()).subgraph
    x_dict = model.inputs(subgraph.n_id)
    one_hop = {et: counts[:1] for et, counts in subgraph.num_sampled_edges.items()}
    with pytest.raises(ValueError, match="expected 2, one per layer"):
        model.encoder(x_dict, subgraph.edge_index_dict, subgraph.num_sampled_nodes, one_hop)
    with pytest.raises(ValueError, match="give both"):
        model.encoder(x_dict, subgraph.edge_index_dict, subgraph.num_sampled_nodes)


def test_small_fanout_step_touches_only_the_subgraph():
    model = make_model("lightgcn")
    model.set_graph(interactions())
    users, pos, neg = batch()
    _, grads, link = step(model, users, pos, neg, model.neighbor_sampler([1, 1]))
    touched = grads["embedding.embeddings.user.weight"].abs().sum(1) > 0
    outside = torch.ones(NUM_NODES["user"], dtype=torch.bool)
    outside[link.subgraph.n_id["user"]] = False
    assert touched[users].all() and outside.any() and not touched[outside].any()


# ---------------------------------------------------------------------------------------- the trainer
def trainer_for(model, **settings) -> Trainer:
    defaults = dict(epochs=2, batch_size=32, lr=0.05, num_negatives=2, device="cpu", seed=3, progress=False)
    return Trainer(model, interactions(), **{**defaults, **settings})


def assert_same_weights(a: torch.nn.Module, b: torch.nn.Module, exact: bool = True) -> None:
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        if exact:
            assert torch.equal(x, y), name
        else:
            torch.testing.assert_close(x, y, rtol=1e-4, atol=1e-5, msg=name)


# Not HGT: some of its gradients are zero but for rounding, which Adam scales up to full-size steps of either sign.
@pytest.mark.parametrize("encoder", ["lightgcn", "rgcn"])
def test_trainer_with_full_fanouts_follows_the_full_batch_trainer(encoder):
    full, sampled = make_model(encoder), make_model(encoder)
    full_run = trainer_for(full).fit()
    sampled_run = trainer_for(sampled, batching="neighbor", fanouts=[-1, -1]).fit()
    assert [row["loss"] for row in sampled_run.history] == pytest.approx([row["loss"] for row in full_run.history],
                                                                         rel=1e-4)
    assert_same_weights(full, sampled, exact=False)


@pytest.mark.parametrize("encoder", ["lightgcn", "rgcn"])
def test_loss_falls_with_small_fanouts(encoder):
    result = trainer_for(make_model(encoder), epochs=8, batching="neighbor", fanouts=[2, 2]).fit()
    losses = [row["loss"] for row in result.history]
    assert losses[-1] < 0.8 * losses[0], losses


def test_resume_matches_an_uninterrupted_sampled_run(tmp_path):
    settings = dict(batching="neighbor", fanouts=[2, 2], eval_fn=lambda model: {"recall@20": 0.0}, patience=None)
    straight = make_model()
    full = trainer_for(straight, epochs=4, run_dir=tmp_path / "straight", **settings).fit()
    trainer_for(make_model(), epochs=2, run_dir=tmp_path / "resumed", **settings).fit()
    resumed_model = make_model(seed=9)
    resumed = trainer_for(resumed_model, epochs=4, run_dir=tmp_path / "resumed", resume=True, **settings).fit()
    assert_same_weights(straight, resumed_model)
    assert [row["loss"] for row in resumed.history] == [row["loss"] for row in full.history]
    with pytest.raises(CheckpointError, match=r"batching='neighbor' \(now 'full'\)"):
        trainer_for(make_model(), epochs=6, run_dir=tmp_path / "resumed", resume=True,
                    **{**settings, "batching": "full"}).fit()
    with pytest.raises(CheckpointError, match=r"fanouts=\[2, 2\] \(now \[3, 3\]\)"):
        trainer_for(make_model(), epochs=6, run_dir=tmp_path / "resumed", resume=True,
                    **{**settings, "fanouts": [3, 3]}).fit()


# ---------------------------------------------------------------------------------------- sparse embeddings
def sampled_step(model, optimizer, users, pos, neg, sampler):
    """One BPR step; the loss is scaled up so that Adam's epsilon is negligible against every gradient (Adam
    and SparseAdam add it at different places: before and after the bias correction of the second moment)."""
    optimizer.zero_grad(set_to_none=True)
    link = sampler.sample_links(users, pos, neg)
    x_dict, h_dict = model.encode_sampled(link.subgraph, sampler)
    u = h_dict["user"][link.users]
    loss = bpr_loss(model.score(u, h_dict["item"][link.pos_items]), model.score(u, h_dict["item"][link.neg_items]))
    (loss * 1e6).backward()
    optimizer.step()
    return link


def test_sparse_embeddings_step_like_adam_then_leave_untouched_rows_alone():
    """Lazy Adam: the first step equals Adam's; afterwards a row the step does not gather stays put, where
    dense Adam still moves it by its momentum."""
    from graphrec.train.optim import SparseDenseAdam, make_optimizer

    dense_model, sparse_model = make_model("hgt"), make_model("hgt")
    for model in (dense_model, sparse_model):
        model.set_graph(interactions())
    dense_opt = make_optimizer(dense_model, 0.01)
    sparse_opt = make_optimizer(sparse_model, 0.01, sparse_embeddings=True)
    assert isinstance(dense_opt, torch.optim.Adam) and isinstance(sparse_opt, SparseDenseAdam)
    users, pos, neg = batch()
    samplers = [model.neighbor_sampler([1, 1], seed=4) for model in (dense_model, sparse_model)]
    sampled_step(dense_model, dense_opt, users, pos, neg, samplers[0])
    sampled_step(sparse_model, sparse_opt, users, pos, neg, samplers[1])
    assert sparse_model.embedding.embeddings["user"].weight.grad.is_sparse
    assert_same_weights(dense_model, sparse_model, exact=False)

    before = {name: p.detach().clone() for name, p in sparse_model.named_parameters()}
    dense_before = dense_model.embedding.embeddings["user"].weight.detach().clone()
    link = sampled_step(sparse_model, sparse_opt, users[:1], pos[:1], neg[:1], samplers[1])
    sampled_step(dense_model, dense_opt, users[:1], pos[:1], neg[:1], samplers[0])
    untouched = torch.ones(NUM_NODES["user"], dtype=torch.bool)
    untouched[link.subgraph.n_id["user"]] = False
    moved_first = torch.zeros(NUM_NODES["user"], dtype=torch.bool)
    moved_first[users] = True  # users of the first batch: Adam state that is not zero
    rows = untouched & moved_first
    assert rows.any()
    weight = sparse_model.embedding.embeddings["user"].weight
    assert torch.equal(weight[rows], before["embedding.embeddings.user.weight"][rows])
    assert not torch.equal(weight[~untouched], before["embedding.embeddings.user.weight"][~untouched])
    dense_weight = dense_model.embedding.embeddings["user"].weight
    assert not torch.allclose(dense_weight[rows], dense_before[rows])  # dense Adam's momentum moves them


def test_trainer_with_sparse_embeddings_learns_and_resumes(tmp_path):
    settings = dict(batching="neighbor", fanouts=[2, 2], sparse_embeddings=True,
                    eval_fn=lambda model: {"recall@20": 0.0}, patience=None)
    straight = make_model()
    full = trainer_for(straight, epochs=6, run_dir=tmp_path / "straight", **settings).fit()
    losses = [row["loss"] for row in full.history]
    assert losses[-1] < 0.8 * losses[0], losses
    trainer_for(make_model(), epochs=3, run_dir=tmp_path / "resumed", **settings).fit()
    resumed_model = make_model(seed=9)
    resumed = trainer_for(resumed_model, epochs=6, run_dir=tmp_path / "resumed", resume=True, **settings).fit()
    assert_same_weights(straight, resumed_model)
    assert [row["loss"] for row in resumed.history] == losses
    with pytest.raises(CheckpointError, match="does not fit this optimizer"):
        trainer_for(make_model(), epochs=8, run_dir=tmp_path / "resumed", resume=True,
                    **{**settings, "sparse_embeddings": False}).fit()


def test_sparse_embeddings_need_neighbour_batches():
    with pytest.raises(ConfigError, match="sparse_embeddings: needs batching 'neighbor'"):
        trainer_for(make_model(), sparse_embeddings=True)


def test_a_frozen_body_keeps_full_steps():
    model = make_model(head=LinearDotHead(DIM))
    for module in (model.embedding, model.encoder):
        module.requires_grad_(False)
    trainer = trainer_for(model, epochs=1, batching="neighbor", fanouts=[2, 2])
    trainer.fit()
    assert trainer.neighbor_sampler is None  # constant encoder outputs: computed once, not per batch


def test_trainer_refuses_what_it_cannot_sample():
    with pytest.raises(ConfigError, match=r"batching: 'neighbor' needs a model that encodes sampled subgraphs.*MF"):
        trainer_for(MF(NUM_NODES["user"], NUM_NODES["item"]), batching="neighbor", fanouts=[2])
    with pytest.raises(ConfigError, match=r"unknown batching 'nieghbor'.*did you mean 'neighbor'"):
        trainer_for(make_model(), batching="nieghbor")
    with pytest.raises(ConfigError, match=r"fanouts: expected a list of ints >= -1.*got \[2, -3\]"):
        trainer_for(make_model(), batching="neighbor", fanouts=[2, -3])
    with pytest.raises(ConfigError, match=r"fanouts: fanouts \[2\] has 1 entries; expected one per layer"):
        trainer_for(make_model(), batching="neighbor", fanouts=[2]).fit()


# ---------------------------------------------------------------------------------------- config and pipeline
def test_config_checks_batching_and_fanouts():
    def config(**train):
        return from_mapping(RunConfig, {"model": {"name": "graph", "num_layers": 2}, "train": train}, "test")

    assert config(batching="neighbor", fanouts=[4, -1]).train.fanouts == [4, -1]
    with pytest.raises(ConfigError, match=r"'train.fanouts' lists 3 fan-outs \[10, 5, 5\], but model.num_layers "
                                          r"is 2; give one per layer, e.g. \[10, 5\]"):
        config(batching="neighbor", fanouts=[10, 5, 5])
    with pytest.raises(ConfigError, match=r"'train.fanouts' must list ints >= -1"):
        config(fanouts=[3, -2])
    with pytest.raises(ConfigError, match=r"'train.batching' is 'neighbor', which only model.name: graph supports.*"
                                          r"found model.name: lightgcn"):
        load_config(None, ["train.batching=neighbor", "model.name=lightgcn"])
    with pytest.raises(ConfigError, match=r"model.num_layers is 3; give one per layer, e.g. \[10, 5, 5\]"):
        load_config(None, ["train.batching=neighbor", "model.name=graph"])
    with pytest.raises(ConfigError, match=r"train.batching"):
        load_config(None, ["train.batching=minibatch"])
    assert config(batching="neighbor", fanouts=[4, 4], sparse_embeddings=True).train.sparse_embeddings
    with pytest.raises(ConfigError, match=r"'train.sparse_embeddings' is true, which needs train.batching: neighbor"):
        config(sparse_embeddings=True)


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory):
    return write_synthetic_root(tmp_path_factory.mktemp("synthetic-data"), num_users=120, num_items=80,
                                num_communities=4, interactions_per_user=12, seed=1)


def test_pipeline_trains_a_graph_model_on_sampled_batches(synthetic_root, tmp_path):
    from graphrec.pipeline import run

    config = from_mapping(RunConfig, {
        "graph": {"recipe": "synthetic", "data_root": str(synthetic_root), "cache_dir": str(synthetic_root / "cache")},
        "model": {"name": "graph", "encoder": "hgt", "num_layers": 2, "embedding_dim": 16, "num_heads": 2},
        "train": {"epochs": 2, "batch_size": 256, "lr": 0.01, "progress": False, "device": "cpu",
                  "batching": "neighbor", "fanouts": [4, 2]},
        "output": {"dir": str(tmp_path), "name": "sampled"},
    }, "test")
    result = run(config)
    assert len(result.history) == 2 and all(row["loss"] > 0 for row in result.history)
    assert 0 <= result.test_metrics["recall@20"] <= 1 and "ndcg@10" in result.valid_metrics


# ---------------------------------------------------------------------------------------- CUDA
@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_sampled_training_on_cuda_with_bf16_learns():
    model = make_model("lightgcn")
    result = trainer_for(model, epochs=8, device="cuda", amp=True, batching="neighbor", fanouts=[2, 2]).fit()
    assert next(model.parameters()).device.type == "cuda"
    assert result.history[-1]["loss"] < 0.8 * result.history[0]["loss"]
