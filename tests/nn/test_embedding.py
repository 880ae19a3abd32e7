"""NodeEmbedding: ID, text and attribute sources, their fusion, and cold-start behaviour."""

import pytest
import torch

from graphrec.nn import LightGCN, NodeEmbedding

NUM = {"user": 4, "item": 6}


def text_inputs(seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    has_text = torch.tensor([True, True, True, False, True, True])
    return {"item": torch.randn(6, 12, generator=generator)}, {"item": has_text}


ATTRIBUTES = {"item": (torch.tensor([[0, 0, 1, 3, 5], [0, 2, 1, 2, 0]]), 3)}  # item 2 and 4 have none


@pytest.mark.parametrize("fusion", ["sum", "concat", "gate"])
def test_fusion_shapes_and_gradients_reach_every_parameter(fusion):
    text, has_text = text_inputs()
    emb = NodeEmbedding(NUM, 8, text_dict=text, has_text_dict=has_text, attribute_dict=ATTRIBUTES, fusion=fusion)
    assert emb.sources("item") == ["id", "text", "attr"] and emb.sources("user") == ["id"]
    x = emb()
    assert x["item"].shape == (6, 8) and x["user"].shape == (4, 8)
    (x["item"].pow(2).sum() + x["user"].sum()).backward()
    missing = [name for name, p in emb.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


def test_gate_starts_as_the_mean_of_its_sources():
    text, has_text = text_inputs()
    emb = NodeEmbedding(NUM, 8, text_dict=text, has_text_dict=has_text, fusion="gate")
    parts = [emb._source("item", source) for source in ("id", "text")]
    torch.testing.assert_close(emb("item"), (parts[0] + parts[1]) / 2)


def test_text_only_type_and_the_missing_text_vector():
    text, has_text = text_inputs()
    emb = NodeEmbedding(NUM, 8, id_types=["user"], text_dict=text, has_text_dict=has_text)
    items = emb("item")
    assert emb.sources("item") == ["text"]
    torch.testing.assert_close(items[3], emb.missing_text["item"].detach())  # item 3 has no text
    assert not torch.allclose(items[0], items[1])
    # Changing an item's text changes its vector and only its vector.
    changed = dict(text)
    changed["item"] = text["item"].clone()
    changed["item"][0] += 1.0
    other = NodeEmbedding(NUM, 8, id_types=["user"], text_dict=changed, has_text_dict=has_text)
    other.load_state_dict(emb.state_dict())
    assert not torch.allclose(other("item")[0], items[0])


def test_attribute_source_is_the_mean_of_value_embeddings():
    emb = NodeEmbedding(NUM, 8, id_types=["user"], attribute_dict=ATTRIBUTES)
    table = emb.attributes["item"].weight
    items = emb("item")
    torch.testing.assert_close(items[0], (table[0] + table[2]) / 2)
    torch.testing.assert_close(items[2], torch.zeros(8))


def test_untrained_ids_are_zeroed_only_where_another_source_speaks():
    text, has_text = text_inputs()
    fused = NodeEmbedding(NUM, 8, text_dict=text, has_text_dict=has_text)
    before = fused("item").detach().clone()
    fused.set_untrained("item", torch.tensor([False, True, False, False, False, False]))
    after = fused("item").detach()
    torch.testing.assert_close(after[1], fused._source("item", "text")[1].detach())
    torch.testing.assert_close(after[[0, 2, 3, 4, 5]], before[[0, 2, 3, 4, 5]])
    id_only = NodeEmbedding(NUM, 8)
    id_only.set_untrained("item", torch.ones(6, dtype=torch.bool))
    assert id_only("item").abs().sum() > 0


def test_id_dropout_only_in_training():
    text, has_text = text_inputs()
    emb = NodeEmbedding(NUM, 8, text_dict=text, has_text_dict=has_text, id_dropout=0.5)
    emb.eval()
    torch.testing.assert_close(emb("item"), emb("item"))
    emb.train()
    torch.manual_seed(0)
    draws = torch.stack([emb("item") for _ in range(20)])
    assert (draws.std(0) > 0).any()


def test_lightgcn_marks_cold_items_and_scores_them_by_text():
    text, has_text = text_inputs()
    emb = NodeEmbedding(NUM, 8, text_dict=text, has_text_dict=has_text)
    model = LightGCN(4, 6, embedding_dim=8, num_layers=2, embedding=emb)
    model.set_graph(torch.tensor([[0, 1, 2, 3], [0, 1, 2, 3]]))  # items 4 and 5 are cold
    assert emb.untrained_item.tolist() == [False] * 4 + [True] * 2
    users, items = model()
    scores = users @ items[4:].T
    assert scores.std() > 0  # cold items are told apart by their text, not tied


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"id_types": []}, r"node type 'user' has no input"),
        ({"fusion": "max"}, r"fusion = 'max'; expected one of"),
        ({"id_dropout": 1.0}, r"id_dropout = 1.0; expected a fraction"),
        ({"text_dict": {"movie": torch.zeros(2, 3)}}, r"text_dict has node type 'movie', which num_nodes_dict lacks"),
        ({"text_dict": {"item": torch.zeros(5, 3)}}, r"text_dict\['item'\] has shape \(5, 3\); expected \[6, P\]"),
        ({"attribute_dict": {"item": (torch.tensor([[0], [7]]), 3)}}, r"holds ids outside \[0, 6\) x \[0, 3\)"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        NodeEmbedding(NUM, 8, **kwargs)


def test_lightgcn_rejects_an_embedding_of_another_size():
    with pytest.raises(ValueError, match=r"expected \{'user': 4, 'item': 6\} of size 16"):
        LightGCN(4, 6, embedding_dim=16, embedding=NodeEmbedding(NUM, 8))
