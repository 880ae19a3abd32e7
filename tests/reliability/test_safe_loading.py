"""Safe loading: no file graphrec reads can run code. Pickles are refused wherever a tensor file is
read, crafted safetensors headers are refused before anything is allocated, YAML tags that build
Python objects are errors, and recipe paths stay inside the data root unless written absolute."""

from __future__ import annotations

import pickle
import re
import struct
import textwrap
from pathlib import Path

import pytest
import torch

from graphrec.cli import main
from graphrec.config import load_config
from graphrec.errors import CheckpointError, ConfigError, GraphrecError
from graphrec.finetune.pretrained import load_pretrained
from graphrec.graph import load_graph
from graphrec.graph.recipe import load_recipe
from graphrec.pipeline import run
from graphrec.text.cache import TextFeatureCache
from graphrec.train.checkpoint import load_checkpoint, load_weights, save_checkpoint
from graphrec.utils import load_tensors
from tests.reliability.conftest import run_config

PICKLE_REFUSED = "not a readable safetensors file but a pickle (torch.save) file"


class Payload:
    """Unpickling this opens ``marker`` for writing: proof that the pickle ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


def write_bait(path: Path, marker: Path) -> Path:
    """A ``torch.save`` file (a pickle) at ``path`` whose loading would create ``marker``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"weight": torch.zeros(2), "payload": Payload(marker)}, path)
    return path


def test_the_bait_is_live(tmp_path):
    """Loaded the unsafe way, the bait does run (so its absence below means it was never unpickled)."""
    bait = write_bait(tmp_path / "bait.pt", tmp_path / "ran")
    torch.load(bait, weights_only=False)
    assert (tmp_path / "ran").exists()


class Tiny(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embedding = torch.nn.Embedding(3, 2)
        self.encoder = torch.nn.Linear(2, 2)


@pytest.mark.parametrize("name", ["model.safetensors", "optimizer.safetensors", "rng.safetensors"])
def test_load_checkpoint_refuses_a_pickle(tmp_path, name):
    model = Tiny()
    optimizer = torch.optim.Adam(model.parameters())
    model.encoder(model.embedding.weight).sum().backward()
    optimizer.step()
    save_checkpoint(tmp_path / "checkpoint", model, optimizer, {"epoch": 1})
    bait = write_bait(tmp_path / "checkpoint" / name, tmp_path / "ran")
    with pytest.raises(CheckpointError, match=re.escape(PICKLE_REFUSED)) as info:
        load_checkpoint(tmp_path / "checkpoint", Tiny(), torch.optim.Adam(Tiny().parameters()))
    assert str(bait) in str(info.value)
    assert not (tmp_path / "ran").exists()


def test_load_weights_refuses_a_pickle(tmp_path):
    bait = write_bait(tmp_path / "best.safetensors", tmp_path / "ran")
    with pytest.raises(CheckpointError, match=re.escape(PICKLE_REFUSED)) as info:
        load_weights(bait, Tiny())
    assert str(bait) in str(info.value) and not (tmp_path / "ran").exists()


@pytest.mark.parametrize("given", ["file", "folder"])
def test_load_pretrained_refuses_a_pickle(tmp_path, given):
    bait = write_bait(tmp_path / "pretrain" / "encoder.safetensors", tmp_path / "ran")
    with pytest.raises(CheckpointError, match=re.escape(PICKLE_REFUSED)) as info:
        load_pretrained(Tiny(), bait if given == "file" else bait.parent)
    assert str(bait) in str(info.value) and not (tmp_path / "ran").exists()


def test_the_text_cache_discards_a_pickle_without_loading_it(tmp_path):
    cache = TextFeatureCache(tmp_path / "text")
    bait = write_bait(cache.path("k"), tmp_path / "ran")
    with pytest.warns(UserWarning, match=re.escape(PICKLE_REFUSED)) as warned:
        assert cache.load("k") is None
    assert str(bait) in str(warned[0].message)
    assert not bait.exists() and not (tmp_path / "ran").exists()


@pytest.fixture(scope="module")
def finished_run(small_root, tmp_path_factory) -> Path:
    return run(run_config(small_root, tmp_path_factory.mktemp("runs"), output={"name": "done"},
                          train={"epochs": 1})).run_dir


@pytest.mark.parametrize("command, replaced", [("recommend", "best.safetensors"), ("recommend", "split.safetensors"),
                                               ("explain", "split.safetensors")])
def test_cli_run_folders_refuse_a_pickle(finished_run, tmp_path, capsys, command, replaced):
    folder = tmp_path / "run"
    folder.mkdir()
    for path in finished_run.iterdir():
        if path.is_file():
            (folder / path.name).write_bytes(path.read_bytes())
    bait = write_bait(folder / replaced, tmp_path / "ran")
    assert main([command, "--run", str(folder), "--user", "u1"]) == 2
    error = capsys.readouterr().err
    assert f"graphrec: error: {bait}: {PICKLE_REFUSED}" in error
    assert not (tmp_path / "ran").exists()


# ------------------------------------------------------------------ crafted safetensors headers
def test_a_header_longer_than_the_file_is_refused_before_reading(tmp_path):
    path = tmp_path / "huge.safetensors"
    path.write_bytes(struct.pack("<Q", 1 << 40) + b'{"a": 1}')  # claims a terabyte of header
    with pytest.raises(CheckpointError) as info:
        load_tensors(path)
    message = str(info.value)
    assert message.startswith(f"{path}: not a readable safetensors file")
    assert "header claims 1,099,511,627,776 bytes, but the file has 16 bytes" in message


def test_a_header_over_the_safetensors_limit_is_refused(tmp_path):
    path = tmp_path / "big.safetensors"
    with path.open("wb") as handle:  # a sparse file: 150 MB on paper, nothing on disk
        handle.write(struct.pack("<Q", 150_000_000))
        handle.truncate(150_000_100)
    with pytest.raises(CheckpointError, match="a header may have at most 100,000,000"):
        load_tensors(path)


@pytest.mark.parametrize("payload", [b"", b"\x01\x02", struct.pack("<Q", 8) + b"not json",
                                     struct.pack("<Q", 2) + b"[]"])
def test_garbage_is_refused(tmp_path, payload):
    path = tmp_path / "x.safetensors"
    path.write_bytes(payload)
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        load_tensors(path)


def test_a_valid_file_whose_header_length_starts_with_0x80_loads(tmp_path):
    """0x80 is also pickle's first byte; it must only count as one when the header is absurd."""
    header = b'{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}'
    header += b" " * (0x80 - len(header))
    path = tmp_path / "ok.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header + struct.pack("<f", 1.5))
    assert path.read_bytes()[:1] == b"\x80"
    assert load_tensors(path)["a"].tolist() == [1.5]


# ------------------------------------------------------------------ YAML that would run code
EVIL = '!!python/object/apply:os.system ["touch {marker}"]'


def test_a_config_with_a_python_tag_is_refused(tmp_path):
    marker = tmp_path / "ran"
    config = tmp_path / "evil.yaml"
    config.write_text(f"seed: {EVIL.format(marker=marker)}\n")
    with pytest.raises(ConfigError) as info:
        load_config(config)
    assert str(info.value).startswith(f"{config}:1:")
    assert not marker.exists()


def test_graphrec_run_refuses_a_config_with_a_python_tag(tmp_path, capsys):
    marker = tmp_path / "ran"
    config = tmp_path / "evil.yaml"
    config.write_text(f"train:\n  epochs: {EVIL.format(marker=marker)}\n")
    assert main(["run", str(config)]) == 2
    assert f"graphrec: error: {config}:2:" in capsys.readouterr().err
    assert not marker.exists()


def test_a_recipe_with_a_python_tag_is_refused(tmp_path):
    marker = tmp_path / "ran"
    recipe = tmp_path / "evil-recipe.yaml"
    recipe.write_text(f"name: evil\ninteractions:\n  path: {EVIL.format(marker=marker)}\n  user: user\n  item: item\n")
    with pytest.raises(ConfigError) as info:
        load_recipe(recipe)
    assert str(info.value).startswith(f"{recipe}:3:")
    assert not marker.exists()


def test_an_override_with_a_python_tag_stays_text(tmp_path):
    marker = tmp_path / "ran"
    config = load_config(None, [f"output.name=[{EVIL.format(marker=marker)}]"])
    assert isinstance(config.output.name, str) and not marker.exists()


# ------------------------------------------------------------------ recipe paths and the data root
def recipe_reading(tmp_path: Path, path: str) -> Path:
    recipe = tmp_path / "root" / "recipe.yaml"
    recipe.parent.mkdir(exist_ok=True)
    recipe.write_text(textwrap.dedent(f"""\
        name: escape
        interactions:
          path: {path}
          user: user
          item: item
        """))
    return recipe


@pytest.mark.parametrize("path", ["../outside.csv", "data/../../outside.csv"])
def test_a_relative_recipe_path_may_not_leave_the_data_root(tmp_path, path):
    (tmp_path / "outside.csv").write_text("user,item\nu1,i1\n")
    with pytest.raises(ConfigError) as info:
        load_graph(recipe_reading(tmp_path, path), tmp_path / "root", tmp_path / "cache")
    message = str(info.value)
    assert f"recipe key 'interactions.path': '{path}' points outside the data root" in message
    assert "use an absolute path if that is really meant" in message


def test_an_absolute_recipe_path_outside_the_data_root_is_allowed(tmp_path):
    outside = tmp_path / "outside.csv"
    outside.write_text("user,item\nu1,i1\nu1,i2\nu2,i1\n")
    bundle = load_graph(recipe_reading(tmp_path, str(outside)), tmp_path / "root", tmp_path / "cache")
    assert (bundle.num_users, bundle.num_items, len(bundle.interactions)) == (2, 2, 3)


def test_a_text_model_with_a_pickled_weight_file_runs_no_code(tiny_bert, tmp_path):
    """A PLM folder (recipe text_features.model) holding pytorch_model.bin: transformers reads it with
    torch.load(weights_only=True), whose unpickler refuses the payload's callable."""
    from graphrec.text.encoder import TextEncoder

    folder = tmp_path / "plm"
    folder.mkdir()
    for path in tiny_bert.iterdir():
        if path.name != "model.safetensors":
            (folder / path.name).write_bytes(path.read_bytes())
    write_bait(folder / "pytorch_model.bin", tmp_path / "ran")
    with pytest.raises(ConfigError, match=r"(?s)cannot load a Hugging Face model.*plm.*(?i:weights.only|pickle)"):
        TextEncoder(folder, device="cpu")
    assert not (tmp_path / "ran").exists()
