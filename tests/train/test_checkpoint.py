"""Checkpoints: exact round trips, atomic folder swaps, and errors that say what is wrong."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from graphrec.errors import CheckpointError
from graphrec.train.checkpoint import (capture_rng_state, join_tensors, load_checkpoint, load_weights,
                                       restore_rng_state, save_checkpoint, save_weights, split_tensors)


class TinyMF(torch.nn.Module):
    """Smallest model that follows the graphrec model interface, plus one persistent and one scratch buffer."""

    trainable = True

    def __init__(self, num_users: int = 4, num_items: int = 5, dim: int = 3) -> None:
        super().__init__()
        self.num_users, self.num_items = num_users, num_items
        self.user_embedding = torch.nn.Embedding(num_users, dim)
        self.item_embedding = torch.nn.Embedding(num_items, dim)
        self.register_buffer("counts", torch.arange(num_items, dtype=torch.float32))
        self.register_buffer("scratch", torch.zeros(2), persistent=False)

    def reset_parameters(self) -> None:
        self.user_embedding.reset_parameters()
        self.item_embedding.reset_parameters()

    def set_graph(self, edge_index: torch.Tensor) -> None:
        pass

    def ego_embeddings(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.user_embedding.weight, self.item_embedding.weight

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.ego_embeddings()


def trained(seed: int = 0, **kwargs) -> tuple[TinyMF, torch.optim.Adam]:
    torch.manual_seed(seed)
    model = TinyMF(**kwargs)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
    for _ in range(2):
        optimizer.zero_grad()
        users, items = model()
        (users @ items.T).square().mean().backward()
        optimizer.step()
    return model, optimizer


def assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for name in sa:
        assert torch.equal(sa[name], sb[name]), name


def test_round_trip_restores_model_optimizer_and_state(tmp_path):
    model, optimizer = trained(seed=0)
    state = {"epoch": 3, "history": [{"epoch": 1, "loss": 0.25}], "betas": (0.9, 0.999),
             "generator": torch.Generator().manual_seed(7).get_state(), "by_id": {0: 1.5, 4: 2.5},
             "array": np.arange(3, dtype=np.uint32)}
    save_checkpoint(tmp_path / "ckpt", model, optimizer, state, tensors={"extra": torch.ones(2, 2)})

    files = sorted(p.name for p in (tmp_path / "ckpt").iterdir())
    assert files == ["model.safetensors", "optimizer.json", "optimizer.safetensors", "rng.safetensors", "state.json"]
    assert sorted(load_file(tmp_path / "ckpt" / "model.safetensors")) == ["counts", "item_embedding.weight",
                                                                            "user_embedding.weight"]
    opt_keys = set(load_file(tmp_path / "ckpt" / "optimizer.safetensors"))
    assert {"state.0.exp_avg", "state.0.exp_avg_sq", "state.1.step"} <= opt_keys
    assert json.loads((tmp_path / "ckpt" / "optimizer.json").read_text())["param_groups"][0]["lr"] == 0.1

    fresh, fresh_opt = trained(seed=1)
    loaded = load_checkpoint(tmp_path / "ckpt", fresh, fresh_opt)
    assert_same_weights(model, fresh)
    for key, value in optimizer.state_dict()["state"][0].items():
        assert torch.equal(fresh_opt.state_dict()["state"][0][key], value)
    assert fresh_opt.state_dict()["param_groups"] == optimizer.state_dict()["param_groups"]
    assert loaded["epoch"] == 3 and loaded["history"] == [{"epoch": 1, "loss": 0.25}]
    assert loaded["betas"] == (0.9, 0.999) and loaded["by_id"] == {0: 1.5, 4: 2.5}
    assert torch.equal(loaded["generator"], state["generator"])
    assert loaded["array"].dtype == np.uint32 and loaded["array"].tolist() == [0, 1, 2]
    assert torch.equal(loaded["tensors"]["extra"], torch.ones(2, 2))


def test_split_and_join_are_inverse():
    obj = {"a": [torch.zeros(2), (1, 2.5, None)], 3: {"b": torch.ones(1)}}
    encoded, tensors = split_tensors(obj)
    json.dumps(encoded)  # the JSON part really is JSON
    assert sorted(tensors) == ["3.b", "a.0"]
    back = join_tensors(encoded, tensors)
    assert back["a"][1] == (1, 2.5, None) and torch.equal(back[3]["b"], torch.ones(1))


def test_rng_state_round_trip_through_a_checkpoint(tmp_path):
    model, _ = trained()
    save_checkpoint(tmp_path / "ckpt", model, None, {"rng": capture_rng_state()})
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    restore_rng_state(load_checkpoint(tmp_path / "ckpt", TinyMF())["rng"])
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected


def test_save_replaces_the_previous_checkpoint_and_leaves_no_temporaries(tmp_path):
    first, _ = trained(seed=0)
    second, _ = trained(seed=1)
    save_checkpoint(tmp_path / "ckpt", first, None, {"epoch": 1})
    save_checkpoint(tmp_path / "ckpt", second, None, {"epoch": 2})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]
    model = TinyMF()
    assert load_checkpoint(tmp_path / "ckpt", model)["epoch"] == 2
    assert_same_weights(model, second)


def test_a_save_killed_midway_leaves_the_last_good_checkpoint(tmp_path):
    good, _ = trained(seed=0)
    save_checkpoint(tmp_path / "ckpt", good, None, {"epoch": 1})
    broken = tmp_path / "ckpt.tmp"  # what a kill during writing leaves behind
    broken.mkdir()
    (broken / "model.safetensors").write_bytes(b"\x00\x01half a file")
    model = TinyMF()
    assert load_checkpoint(tmp_path / "ckpt", model)["epoch"] == 1
    assert_same_weights(model, good)
    save_checkpoint(tmp_path / "ckpt", good, None, {"epoch": 2})  # the next save cleans up
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


def test_a_save_killed_between_the_renames_falls_back_to_the_old_folder(tmp_path):
    good, _ = trained(seed=0)
    save_checkpoint(tmp_path / "ckpt", good, None, {"epoch": 1})
    (tmp_path / "ckpt").rename(tmp_path / "ckpt.old")
    model = TinyMF()
    assert load_checkpoint(tmp_path / "ckpt", model)["epoch"] == 1
    assert_same_weights(model, good)
    save_checkpoint(tmp_path / "ckpt", good, None, {"epoch": 2})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


def test_missing_folder_and_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="checkpoint folder not found"):
        load_checkpoint(tmp_path / "nowhere", TinyMF())
    save_checkpoint(tmp_path / "ckpt", TinyMF(), None, {})
    (tmp_path / "ckpt" / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match=r"model\.safetensors: file not found"):
        load_checkpoint(tmp_path / "ckpt", TinyMF())
    save_checkpoint(tmp_path / "ckpt", TinyMF(), None, {})  # saved without an optimizer
    model = TinyMF()
    with pytest.raises(CheckpointError, match=r"optimizer\.json: optimizer state file not found"):
        load_checkpoint(tmp_path / "ckpt", model, torch.optim.SGD(model.parameters(), lr=1.0))


def test_truncated_model_file_is_refused_and_the_model_is_untouched(tmp_path):
    model, _ = trained(seed=0)
    save_checkpoint(tmp_path / "ckpt", model, None, {})
    path = tmp_path / "ckpt" / "model.safetensors"
    path.write_bytes(path.read_bytes()[:-20])
    target = TinyMF()
    before = {k: v.clone() for k, v in target.state_dict().items()}
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(tmp_path / "ckpt", target)
    assert all(torch.equal(before[k], v) for k, v in target.state_dict().items())


def test_pickle_file_in_place_of_safetensors_is_refused(tmp_path):
    model, _ = trained(seed=0)
    save_checkpoint(tmp_path / "ckpt", model, None, {})
    torch.save(model.state_dict(), tmp_path / "ckpt" / "model.safetensors")
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        load_checkpoint(tmp_path / "ckpt", TinyMF())
    torch.save(model.state_dict(), tmp_path / "best.safetensors")
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        load_weights(tmp_path / "best.safetensors", TinyMF())


def test_shape_mismatch_names_the_tensor_and_both_shapes(tmp_path):
    save_checkpoint(tmp_path / "ckpt", TinyMF(num_users=10, dim=8), None, {})
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(tmp_path / "ckpt", TinyMF(num_users=12, dim=8))
    message = str(info.value)
    assert "tensor 'user_embedding.weight' has shape (10, 8) but the model expects (12, 8)" in message
    assert "another dataset or embedding_dim" in message and message.startswith("model.safetensors:")


def test_missing_and_unexpected_keys_are_named(tmp_path):
    class Other(TinyMF):
        def __init__(self) -> None:
            super().__init__()
            self.bias = torch.nn.Parameter(torch.zeros(1))

    save_weights(tmp_path / "w.safetensors", Other())
    with pytest.raises(CheckpointError, match=r"unexpected tensor 'bias'"):
        load_weights(tmp_path / "w.safetensors", TinyMF())
    save_weights(tmp_path / "w.safetensors", TinyMF())
    with pytest.raises(CheckpointError, match=r"missing tensor 'bias' for Other"):
        load_weights(tmp_path / "w.safetensors", Other())


def test_weights_round_trip_keeps_persistent_buffers_only(tmp_path):
    model, _ = trained(seed=0)
    save_weights(tmp_path / "best.safetensors", model)
    assert "scratch" not in load_file(tmp_path / "best.safetensors")
    fresh = TinyMF()
    load_weights(tmp_path / "best.safetensors", fresh)
    assert_same_weights(model, fresh)


def test_tied_weights_are_saved(tmp_path):
    model = TinyMF(num_users=5, num_items=5)
    model.item_embedding.weight = model.user_embedding.weight  # shared storage
    save_weights(tmp_path / "w.safetensors", model)
    fresh = TinyMF(num_users=5, num_items=5)
    load_weights(tmp_path / "w.safetensors", fresh)
    assert torch.equal(fresh.item_embedding.weight, model.user_embedding.weight)
