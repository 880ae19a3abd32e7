"""Damaged or foreign checkpoints, weights, id maps and saved graphs.

A file that is truncated, corrupt, of another format, or made for another model shape is a
:class:`CheckpointError` naming the file and what was expected; the model is never half-loaded.
"""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import save_file

from graphrec.data.idmap import IdMap
from graphrec.errors import CheckpointError
from graphrec.graph import build, load_recipe
from graphrec.graph.bundle import GraphBundle
from graphrec.train.checkpoint import load_checkpoint, load_weights, resume_checkpoint, save_checkpoint, save_weights
from tests.bad_input.conftest import tiny_recipe, write
from tests.train.test_checkpoint import TinyMF


def _weights_bytes(model: torch.nn.Module, tmp_path) -> bytes:
    save_weights(tmp_path / "good.safetensors", model)
    return (tmp_path / "good.safetensors").read_bytes()


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        pytest.param(lambda good: b"", r"0 bytes, shorter than the 8-byte header length", id="zero-bytes"),
        pytest.param(lambda good: good[:5], r"5 bytes, shorter than the 8-byte header length", id="five-bytes"),
        pytest.param(lambda good: good[:30], r"its header claims [\d,]+ bytes, but the file has 30 bytes",
                     id="cut-inside-the-header"),
        pytest.param(lambda good: good[:len(good) - 16], r"not a readable safetensors file \(.*\); the file may be "
                                                         r"truncated", id="cut-inside-the-tensors"),
        pytest.param(lambda good: (2 ** 40).to_bytes(8, "little") + b"{}", r"header claims 1,099,511,627,776 bytes",
                     id="absurd-header-length"),
        pytest.param(lambda good: (7).to_bytes(8, "little") + b"{nope!}", r"not a readable safetensors file",
                     id="header-not-json"),
        pytest.param(lambda good: json.dumps({"weights": [1, 2]}).encode(), r"not a readable safetensors file",
                     id="json-file-named-safetensors"),
    ],
)
def test_damaged_weight_files(tmp_path, damage, message):
    model = TinyMF()
    path = write(tmp_path / "best.safetensors", damage(_weights_bytes(model, tmp_path)))
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    with pytest.raises(CheckpointError, match=r"best\.safetensors: .*" + message):
        load_weights(path, model)
    assert all(torch.equal(before[name], tensor) for name, tensor in model.state_dict().items())


def test_weights_of_another_model_shape(tmp_path):
    save_weights(tmp_path / "best.safetensors", TinyMF(num_items=5, dim=16))
    # safetensors returns the tensors in no fixed order: either embedding may be the one named
    with pytest.raises(CheckpointError, match=r"best\.safetensors: tensor '(user|item)_embedding\.weight' has shape "
                                              r"\((\d), 16\) but the model expects \(\2, 3\); was this checkpoint "
                                              r"made for another dataset or embedding_dim\?"):
        load_weights(tmp_path / "best.safetensors", TinyMF(num_items=5, dim=3))


def test_weights_of_another_model_class(tmp_path):
    save_file({"layer.weight": torch.zeros(2, 2), "layer.bias": torch.zeros(2)}, tmp_path / "best.safetensors")
    with pytest.raises(CheckpointError, match=r"best\.safetensors: missing tensors 'counts', 'user_embedding\.weight', "
                                              r"'item_embedding\.weight'; unexpected tensors 'layer\.(bias|weight)', "
                                              r"'layer\.(bias|weight)' for TinyMF .*was this checkpoint made for "
                                              r"another model\?"):
        load_weights(tmp_path / "best.safetensors", TinyMF())


# ------------------------------------------------------------------------------------------------ checkpoint folders
@pytest.fixture
def checkpoint(tmp_path):
    model = TinyMF()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
    model()[0].sum().backward()
    optimizer.step()
    save_checkpoint(tmp_path / "checkpoint", model, optimizer, {"epoch": 3, "config": {"seed": 0}})
    return tmp_path / "checkpoint"


def _edit_state(path, edit) -> None:
    state_file = path / "state.json"
    state_file.write_text(json.dumps(edit(json.loads(state_file.read_text()))))


def test_state_file_cut_short(checkpoint):
    (checkpoint / "state.json").write_text('{"format": "graphrec-checkpoint", "state": {"epo')
    with pytest.raises(CheckpointError, match=r"checkpoint/state\.json: checkpoint state file is corrupt \("):
        load_checkpoint(checkpoint, TinyMF())


def test_state_file_of_another_program(checkpoint):
    _edit_state(checkpoint, lambda header: {**header, "format": "lightning"})
    with pytest.raises(CheckpointError, match=r"checkpoint/state\.json: not a graphrec checkpoint state file"):
        load_checkpoint(checkpoint, TinyMF())


def test_state_file_naming_a_tensor_the_tensor_file_lacks(checkpoint):
    _edit_state(checkpoint, lambda header: {**header, "state": {"rng": {"__tensor__": "rng.torch"}}})
    with pytest.raises(CheckpointError, match=r"state\.json: refers to tensor 'rng\.torch', which the tensor file "
                                              r"lacks"):
        load_checkpoint(checkpoint, TinyMF())


def test_checkpoint_of_another_model_shape(checkpoint):
    with pytest.raises(CheckpointError, match=r"model\.safetensors: tensor 'user_embedding\.weight' has shape \(4, 3\) "
                                              r"but the model expects \(6, 3\)"):
        load_checkpoint(checkpoint, TinyMF(num_users=6))


def test_optimizer_state_of_another_optimizer(checkpoint):
    model = TinyMF()
    extra = torch.nn.Parameter(torch.zeros(2))
    with pytest.raises(CheckpointError, match=r"optimizer\.json: does not fit this optimizer"):
        load_checkpoint(checkpoint, model, torch.optim.Adam([*model.parameters(), extra]))


def test_resume_with_other_settings(checkpoint):
    with pytest.raises(CheckpointError, match=r"checkpoint: was made with seed=0 \(now 1\); resume with the same "
                                              r"settings"):
        resume_checkpoint(checkpoint.parent, TinyMF(), None, {"seed": 1})


def test_resume_without_a_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match=r"checkpoint: resume=True but there is no checkpoint to resume from"):
        resume_checkpoint(tmp_path, TinyMF(), None, {"seed": 0})


def test_state_file_with_a_malformed_tag(checkpoint):
    _edit_state(checkpoint, lambda header: {**header, "state": {"history": {"__tuple__": 5}}})
    with pytest.raises(CheckpointError, match=r"state\.json"):
        load_checkpoint(checkpoint, TinyMF())


def test_resume_from_a_state_without_its_settings(checkpoint):
    _edit_state(checkpoint, lambda header: {**header, "state": {"epoch": 3}})
    with pytest.raises(CheckpointError, match=r"state\.json"):
        resume_checkpoint(checkpoint.parent, TinyMF(), None, {"seed": 0})


# ------------------------------------------------------------------------------------------------ id maps
@pytest.mark.parametrize(
    ("payload", "message"),
    [
        pytest.param({"format_version": 7, "ids": {}}, r"not a graphrec id map \(format_version 1 expected\)",
                     id="idmap-other-version"),
        pytest.param({"format_version": 1, "ids": ["u1", "u2"]}, r"'ids', 'names' and 'relation_names' must be JSON "
                                                                  r"objects", id="idmap-ids-a-list"),
        pytest.param({"format_version": 1, "ids": {"user": "u1"}}, r"ids of node type 'user' must be a list, found str",
                     id="idmap-ids-a-string"),
        pytest.param({"format_version": 1, "ids": {"user": ["u1", "u2", "u1"]}}, r"user id 'u1' is listed twice",
                     id="idmap-duplicate-id"),
        pytest.param({"format_version": 1, "ids": {"item": ["i1"]}, "names": {"item": {"first": "Heat"}}},
                     r"names of node type 'item' must map node numbers to names", id="idmap-names-bad-index"),
    ],
)
def test_damaged_id_maps(tmp_path, payload, message):
    path = write(tmp_path / "idmap.json", json.dumps(payload))
    with pytest.raises(CheckpointError, match=r"idmap\.json: " + message):
        IdMap.load(path)


def test_id_map_cut_short(tmp_path):
    with pytest.raises(CheckpointError, match=r"idmap\.json: id map is corrupt \("):
        IdMap.load(write(tmp_path / "idmap.json", '{"format_version": 1, "ids": {"user": ["u1", "u'))


# ------------------------------------------------------------------------------------------------ saved graphs
@pytest.fixture
def saved_graph(tmp_path):
    recipe = tiny_recipe(tmp_path / "data")
    build(load_recipe(recipe)[0], tmp_path / "data").save(tmp_path / "graph")
    return tmp_path / "graph"


def test_saved_graph_with_a_truncated_tensor_file(saved_graph):
    path = saved_graph / "graph.safetensors"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(CheckpointError, match=r"graph/graph\.safetensors: not a readable safetensors file"):
        GraphBundle.load(saved_graph)


def test_saved_graph_of_another_format_version(saved_graph):
    meta = json.loads((saved_graph / "meta.json").read_text())
    (saved_graph / "meta.json").write_text(json.dumps({**meta, "format_version": 0}))
    with pytest.raises(CheckpointError, match=r"graph/meta\.json: not a graphrec graph of format"):
        GraphBundle.load(saved_graph)


def test_saved_graph_without_its_texts(saved_graph):
    (saved_graph / "texts.json").unlink()
    with pytest.raises(CheckpointError, match=r"graph/texts\.json: node texts not found"):
        GraphBundle.load(saved_graph)


def test_saved_graph_whose_meta_lacks_a_key(saved_graph):
    meta = json.loads((saved_graph / "meta.json").read_text())
    del meta["num_nodes"]
    (saved_graph / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match=r"meta\.json"):
        GraphBundle.load(saved_graph)


# ------------------------------------------------------------------------------------------------ pre-trained encoders
class TinyEncoder(torch.nn.Module):
    def __init__(self, num_nodes: int) -> None:
        super().__init__()
        self.embedding = torch.nn.Embedding(num_nodes, 2)
        self.encoder = torch.nn.Linear(2, 2)


def test_pretrained_encoder_of_another_graph(tmp_path):
    from graphrec.finetune.pretrained import load_pretrained, save_pretrained

    save_pretrained(tmp_path / "encoder.safetensors", TinyEncoder(num_nodes=4))
    with pytest.raises(CheckpointError, match=r"encoder\.safetensors: tensor 'embedding\.weight' has shape \(4, 2\) "
                                              r"but the model expects \(6, 2\); was it pre-trained with another "
                                              r"embedding_dim or dataset\?"):
        load_pretrained(TinyEncoder(num_nodes=6), tmp_path)


def test_pretrained_folder_without_an_encoder(tmp_path):
    from graphrec.finetune.pretrained import load_pretrained

    shutil.rmtree(tmp_path / "run", ignore_errors=True)
    (tmp_path / "run").mkdir()
    with pytest.raises(CheckpointError, match=r"pre-trained checkpoint: .*run holds no encoder\.safetensors"):
        load_pretrained(TinyEncoder(num_nodes=4), tmp_path / "run")
