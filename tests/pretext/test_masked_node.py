"""Tests of masked node prediction: what the encoder sees of a masked node, the targets, the errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from graphrec.pretext import MaskedNodePrediction
from tests.pretext.conftest import CapturingEncoder, MeanEncoder, make_batch, make_graph, make_model, num_nodes

DIM = 16
HAS_GENRE, REV_HAS_GENRE = ("item", "has_genre", "genre"), ("genre", "rev_has_genre", "item")
HAS_TAG, REV_HAS_TAG = ("item", "has_tag", "tag"), ("tag", "rev_has_tag", "item")


def test_fields_default_to_every_attribute_field_of_the_node_type(graph):
    task = MaskedNodePrediction(graph, DIM)
    assert task.fields == ["genre", "tag"]
    assert task.field_edge_types["genre"] == (HAS_GENRE, REV_HAS_GENRE)
    assert task.decoders["genre"].out_features == 6 and task.decoders["tag"].out_features == 9


def test_masked_rows_get_the_mask_vector_and_lose_their_predicted_attribute_edges(graph):
    task = MaskedNodePrediction(graph, DIM, fields=["genre"], mask_rate=0.3)
    encoder = CapturingEncoder(MeanEncoder())
    model = make_model(graph, DIM, encoder=encoder)
    masked = task.sample_mask(make_batch(graph, seed=5))
    assert int(masked.sum()) == round(0.3 * 30)
    task.loss(model, make_batch(graph, seed=5))  # draws the same mask
    x_dict, edges = encoder.calls[-1]
    assert torch.equal(x_dict["item"][masked], task.mask_token.expand(int(masked.sum()), -1))
    assert torch.equal(x_dict["item"][~masked], model.inputs()["item"][~masked])
    assert not masked[edges[HAS_GENRE][0]].any() and not masked[edges[REV_HAS_GENRE][1]].any()
    kept = int((~masked[graph[HAS_GENRE].edge_index[0]]).sum())
    assert edges[HAS_GENRE].size(1) == edges[REV_HAS_GENRE].size(1) == kept  # only masked nodes' edges left
    assert edges[HAS_TAG] is graph[HAS_TAG].edge_index  # a field not predicted stays in message passing


def test_masked_outputs_do_not_change_when_their_attributes_change(graph):
    task = MaskedNodePrediction(graph, DIM, mask_rate=0.3)
    model = make_model(graph, DIM)
    batch = make_batch(graph)
    masked = task.sample_mask(batch)
    # Give every masked item every genre and every tag instead of its own.
    altered = graph.clone()
    for edge_type, reverse, count in ((HAS_GENRE, REV_HAS_GENRE, 6), (HAS_TAG, REV_HAS_TAG, 9)):
        index = graph[edge_type].edge_index
        index = index[:, ~masked[index[0]]]
        items = torch.nonzero(masked).flatten()
        extra = torch.stack([items.repeat_interleave(count), torch.arange(count).repeat(len(items))])
        altered[edge_type].edge_index = torch.cat([index, extra], dim=1)
        altered[reverse].edge_index = altered[edge_type].edge_index.flip(0)
    altered_batch = make_batch(altered)
    with torch.no_grad():
        h = model.encode(*task.corrupt(model, batch, masked))
        h_altered = model.encode(*task.corrupt(model, altered_batch, masked))
        assert torch.equal(h["item"][masked], h_altered["item"][masked])
        # Without the masking the change is visible: the test can see a leak.
        plain = model.encode(model.inputs(), batch.edge_index_dict)["item"][masked]
        plain_altered = model.encode(model.inputs(), altered_batch.edge_index_dict)["item"][masked]
        assert not torch.allclose(plain, plain_altered)


def test_masked_outputs_have_no_gradient_from_their_own_text(graph):
    task = MaskedNodePrediction(graph, DIM, target="text", mask_rate=0.3)
    text = graph["item"].x_text.clone().requires_grad_(True)

    class TextModel(torch.nn.Module):  # item inputs = ID embedding + projected text
        def __init__(self):
            super().__init__()
            self.inner = make_model(graph, DIM)
            self.project = torch.nn.Linear(text.size(1), DIM)
            self.embedding_dim = DIM

        def inputs(self):
            x_dict = self.inner.inputs()
            return {**x_dict, "item": x_dict["item"] + self.project(text)}

        def encode(self, x_dict, edge_index_dict):
            return self.inner.encode(x_dict, edge_index_dict)

    model = TextModel()
    batch = make_batch(graph)
    masked = task.sample_mask(batch)
    assert graph["item"].has_text[masked].all()  # text targets are drawn among nodes with text
    h = model.encode(*task.corrupt(model, batch, masked))
    h["item"][masked].sum().backward()
    assert text.grad[masked].abs().sum() == 0
    assert text.grad[~masked].abs().sum() > 0  # other items' text does reach them


def test_attribute_loss_is_bce_against_the_multi_hot_values(graph):
    task = MaskedNodePrediction(graph, DIM)
    model = make_model(graph, DIM)
    masked = task.sample_mask(make_batch(graph, seed=2))
    loss = task.loss(model, make_batch(graph, seed=2))
    h = model.encode(*task.corrupt(model, make_batch(graph, seed=2), masked))["item"][masked]
    rows = torch.nonzero(masked).flatten().tolist()
    expected = []
    for field, edge_type, size in (("genre", HAS_GENRE, 6), ("tag", HAS_TAG, 9)):
        target = torch.zeros(len(rows), size)
        for item, value in graph[edge_type].edge_index.t().tolist():
            if item in rows:
                target[rows.index(item), value] = 1.0
        expected.append(F.binary_cross_entropy_with_logits(task.decoders[field](h), target))
    assert torch.allclose(loss, torch.stack(expected).mean())


def test_text_loss_is_one_minus_cosine_to_the_centred_text(graph):
    task = MaskedNodePrediction(graph, DIM, target="text")
    has_text = graph["item"].has_text
    centred = graph["item"].x_text - graph["item"].x_text[has_text].mean(0)
    assert torch.allclose(task.text, centred)
    model = make_model(graph, DIM)
    masked = task.sample_mask(make_batch(graph, seed=4))
    loss = task.loss(model, make_batch(graph, seed=4))
    h = model.encode(*task.corrupt(model, make_batch(graph, seed=4), masked))["item"][masked]
    expected = 1 - F.cosine_similarity(task.decoders["text"](h), centred[masked], dim=-1).mean()
    assert torch.allclose(loss, expected)


def test_errors_name_the_argument_and_what_exists(graph):
    with pytest.raises(ValueError, match=r"no attribute field 'colour'; its fields: \['genre', 'tag'\]"):
        MaskedNodePrediction(graph, DIM, fields=["colour"])
    with pytest.raises(ValueError, match=r"'user' has no attribute fields .* node types with attributes: \['item'\]"):
        MaskedNodePrediction(graph, DIM, node_type="user")
    with pytest.raises(ValueError, match=r"'user' has no text vectors \(x_text\); node types with text: \['item'\]"):
        MaskedNodePrediction(graph, DIM, node_type="user", target="text")
    with pytest.raises(ValueError, match="node_type = 'film' is not in the graph"):
        MaskedNodePrediction(graph, DIM, node_type="film")
    with pytest.raises(ValueError, match="mask_rate = 1.5; expected a fraction in"):
        MaskedNodePrediction(graph, DIM, mask_rate=1.5)
    with pytest.raises(ValueError, match="target = 'image'"):
        MaskedNodePrediction(graph, DIM, target="image")
    no_text = make_graph(text=False)
    with pytest.raises(ValueError, match=r"node types with text: \[\]"):
        MaskedNodePrediction(no_text, DIM, target="text")
    assert num_nodes(no_text)["item"] == 30
