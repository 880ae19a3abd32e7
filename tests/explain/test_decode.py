"""The path LM and its constrained decoder on a small hand-made graph."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from graphrec.errors import ConfigError
from graphrec.explain import PathDecoder, PathLMTask, build_path_model, explanation_metrics
from graphrec.graph.paths import PathGraph, check_paths, sample_paths
from graphrec.nn.path_lm import PathTokenizer, PathTransformer

# 3 users, 6 items, 4 entities; actors link items in pairs, one director links items 4 and 5.
TRAIN = np.array([[0, 0, 0, 1, 1, 1, 2, 2], [0, 1, 2, 1, 4, 5, 5, 3]])
STARS = np.array([[0, 1, 2, 3, 4, 5], [0, 0, 1, 1, 2, 2]])


def graph() -> PathGraph:
    edges = {
        ("user", "interacts", "item"): TRAIN,
        ("item", "stars", "entity"): STARS,
        ("entity", "rev_stars", "item"): STARS[::-1],
        ("item", "directed", "entity"): np.array([[4, 5], [3, 3]]),
        ("entity", "rev_directed", "item"): np.array([[3, 3], [4, 5]]),
    }
    return PathGraph.from_edges({"user": 3, "item": 6, "entity": 4}, edges, TRAIN)


def model_for(g: PathGraph, seed: int = 0) -> PathTransformer:
    torch.manual_seed(seed)
    task = PathLMTask()
    task.model.dim, task.model.num_layers, task.model.num_heads, task.model.dropout = 16, 1, 2, 0.0
    return build_path_model(g, task)


def test_tokenizer_round_trip():
    tok = PathTokenizer(num_relations=5, offsets=[0, 3, 9, 13])
    nodes, rels = torch.tensor([[0, 4, 10, 5]]), torch.tensor([[0, 1, 2]])
    tokens = tok.encode(nodes, rels)
    assert tokens.tolist() == [[6, 1, 10, 2, 16, 3, 11]]
    back_nodes, back_rels = tok.decode(tokens)
    assert torch.equal(back_nodes, nodes) and torch.equal(back_rels, rels)
    assert tok.vocab_size == 1 + 5 + 13


def test_model_is_causal_and_learns_paths():
    g = graph()
    model = model_for(g)
    paths = sample_paths(g, hops=3, paths_per_user=30, end="seen", seed=0)
    tokens = model.tokenizer.encode(torch.from_numpy(paths.nodes), torch.from_numpy(paths.relations))
    model.eval()
    changed = tokens.clone()
    changed[:, -1] = model.tokenizer.node_start + 3  # a different last node
    assert torch.allclose(model(tokens)[:, :-1], model(changed)[:, :-1], atol=1e-6)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = model.loss(tokens).item()
    for _ in range(60):
        loss = model.loss(tokens)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.6 * first


def test_loss_ignores_padding():
    g = graph()
    model = model_for(g)
    model.eval()
    paths = sample_paths(g, hops=2, paths_per_user=3, end="any", seed=0)
    tokens = model.tokenizer.encode(torch.from_numpy(paths.nodes), torch.from_numpy(paths.relations))
    padded = torch.nn.functional.pad(tokens, (0, 2), value=0)
    assert model.loss(tokens).item() == pytest.approx(model.loss(padded).item(), abs=1e-5)


def test_constrained_paths_are_edges_and_end_at_unseen_items():
    g = graph()
    model = model_for(g)
    recs = PathDecoder(model, g, hops=3, beam_width=8).recommend([0, 1, 2], k=6)
    found = recs.items >= 0
    assert found.any()
    assert check_paths(g, recs.paths()).all()
    for row, user in enumerate([0, 1, 2]):
        items = recs.items[row][found[row]].tolist()
        assert not set(items) & set(TRAIN[1][TRAIN[0] == user].tolist())
        assert len(items) == len(set(items))
        scores = recs.scores[row][found[row]]
        assert torch.all(scores[:-1] >= scores[1:])
        assert (recs.scores[row][~found[row]] == float("-inf")).all()
    # path ends are the listed items
    assert torch.equal(recs.nodes[..., -1][found] - g.offsets[1], recs.items[found])


def test_without_the_constraint_the_model_invents_hops():
    g = graph()
    model = model_for(g)
    with torch.no_grad():  # make the model love entity 3, a director: no item *stars* it
        lo = model.tokenizer.node_start + int(g.offsets[2])
        model.output_bias[lo + 3] = 20.0
    free = PathDecoder(model, g, hops=3, beam_width=4, constrained=False).recommend([0, 1, 2], k=3)
    assert not check_paths(g, free.paths()).all()
    bound = PathDecoder(model, g, hops=3, beam_width=4, constrained=True).recommend([0, 1, 2], k=3)
    assert check_paths(g, bound.paths()).all()


def test_wider_beams_never_find_worse_best_paths():
    g = graph()
    model = model_for(g, seed=3)
    narrow = PathDecoder(model, g, hops=3, beam_width=1).recommend([0, 1, 2], k=1)
    wide = PathDecoder(model, g, hops=3, beam_width=50).recommend([0, 1, 2], k=1)
    assert torch.all(wide.scores[:, 0] >= narrow.scores[:, 0] - 1e-5)


def test_exclude_removes_items_and_sampling_stays_valid():
    g = graph()
    model = model_for(g)
    plain = PathDecoder(model, g, hops=3, beam_width=8).recommend([2], k=6)
    assert 4 in plain.items[0].tolist()
    recs = PathDecoder(model, g, hops=3, beam_width=8, exclude=[torch.tensor([[2], [4]])]).recommend([2], k=6)
    assert 4 not in recs.items[0].tolist() and 2 in recs.items[0].tolist()
    sampled = PathDecoder(model, g, hops=3, beam_width=8, strategy="sample", seed=1).recommend([0, 1, 2], k=4)
    assert check_paths(g, sampled.paths()).all()


def test_explanation_metrics():
    g = graph()
    recs = PathDecoder(model_for(g), g, hops=3, beam_width=8).recommend([0, 1, 2], k=6)
    metrics = explanation_metrics(g, recs)
    assert metrics["validity"] == 1.0
    assert metrics["coverage"] == pytest.approx(float((recs.items >= 0).float().mean()))
    assert 1 <= metrics["patterns"] <= 4 and metrics["path_length"] == 3.0


def test_decoder_rejects_bad_settings():
    g = graph()
    model = model_for(g)
    with pytest.raises(ConfigError, match="at least 2"):
        PathDecoder(model, g, hops=1)
    with pytest.raises(ConfigError, match="exceed"):
        PathDecoder(model, g, hops=5)
    with pytest.raises(ConfigError, match="strategy"):
        PathDecoder(model, g, strategy="greedy")


def test_sum_aggregation_scores_items_at_least_their_best_path():
    g = graph()
    model = model_for(g, seed=1)
    best = PathDecoder(model, g, hops=3, beam_width=6).recommend([0, 1, 2], k=6)
    summed = PathDecoder(model, g, hops=3, beam_width=6, aggregate="sum").recommend([0, 1, 2], k=6)
    for row in range(3):
        by_item = dict(zip(best.items[row].tolist(), best.scores[row].tolist()))
        for item, score in zip(summed.items[row].tolist(), summed.scores[row].tolist()):
            if item >= 0:
                assert score >= by_item[item] - 1e-5
    assert check_paths(g, summed.paths()).all()
