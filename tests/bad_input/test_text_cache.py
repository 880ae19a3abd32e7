"""Damaged cache files: encoded text features and built graphs.

A cache only saves work, so a damaged entry is not the user's error: it is reported with a warning
that names the file and what is wrong with it, deleted, and rebuilt. A cache that cannot be written
warns and the run goes on. The text model folder the cache is keyed on is user input, though: a
damaged one is an error.
"""

from __future__ import annotations

import json
import logging
import re
import shutil

import pytest
import torch
from safetensors import SafetensorError
from safetensors.torch import save_file

from graphrec.errors import ConfigError
from graphrec.graph import load_graph
from graphrec.text.cache import TextFeatureCache
from tests.bad_input.conftest import tiny_recipe


def _with_a_nan(rows: int, dim: int) -> torch.Tensor:
    features = torch.ones(rows, dim)
    features[1, 2] = float("nan")
    return features


def _good_bytes(tmp_path) -> bytes:
    cache = TextFeatureCache(tmp_path / "good")
    cache.store("k", torch.ones(3, 4))
    return cache.path("k").read_bytes()


@pytest.mark.parametrize(
    ("write_entry", "reason"),
    [
        pytest.param(lambda path, good: path.write_bytes(b""), r"0 bytes, shorter than the 8-byte header length",
                     id="cache-zero-bytes"),
        pytest.param(lambda path, good: path.write_bytes(good[: len(good) // 2]), r"not a readable safetensors file",
                     id="cache-truncated"),
        pytest.param(lambda path, good: path.write_bytes(b"\x00" * 64), r"not a readable safetensors file",
                     id="cache-zero-filled"),
        pytest.param(lambda path, good: save_file({"vectors": torch.ones(3, 4)}, path),
                     r"holds no 2-D 'features' tensor", id="cache-wrong-tensor-name"),
        pytest.param(lambda path, good: save_file({"features": torch.ones(12)}, path),
                     r"holds no 2-D 'features' tensor", id="cache-1d-features"),
        pytest.param(lambda path, good: save_file({"features": torch.ones(5, 4)}, path),
                     r"holds features of shape \(5, 4\), expected \(3, 4\)", id="cache-other-shape"),
        pytest.param(lambda path, good: save_file({"features": _with_a_nan(3, 4)}, path),
                     r"holds NaN or infinite values, expected finite features", id="cache-nan-values"),
    ],
)
def test_damaged_text_cache_entries_warn_and_are_rebuilt(tmp_path, write_entry, reason):
    cache = TextFeatureCache(tmp_path / "cache")
    path = cache.path("k")
    path.parent.mkdir(parents=True)
    write_entry(path, _good_bytes(tmp_path))
    with pytest.warns(UserWarning, match=rf"text feature cache file .*k\.safetensors is unusable and will be "
                                         rf"rebuilt: .*{reason}"):
        assert cache.load("k", expected_shape=(3, 4)) is None
    assert not path.exists()
    cache.store("k", torch.ones(3, 4))  # the caller encodes again and stores a good entry
    torch.testing.assert_close(cache.load("k", expected_shape=(3, 4)), torch.ones(3, 4))


def test_a_cache_folder_that_is_a_file_only_warns(tmp_path):
    blocker = tmp_path / "cache"
    blocker.write_text("not a folder")
    cache = TextFeatureCache(blocker)
    assert cache.load("k") is None
    with pytest.warns(UserWarning, match=r"could not cache text features in .*cache/k\.safetensors"):
        cache.store("k", torch.ones(2, 2))


def test_a_cache_entry_that_is_a_folder_counts_as_missing(tmp_path):
    cache = TextFeatureCache(tmp_path)
    cache.path("k").mkdir()
    assert cache.load("k") is None
    with pytest.warns(UserWarning, match=r"could not cache text features in .*k\.safetensors"):
        cache.store("k", torch.ones(2, 2))


def test_text_model_folder_with_truncated_weights(tiny_bert, tmp_path):
    from graphrec.text import TextEncoder

    folder = shutil.copytree(tiny_bert, tmp_path / "plm")
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(ConfigError, match=r"model: cannot load a Hugging Face model and tokenizer from .*plm \(.*\); "
                                          r"expected a folder written by save_pretrained"):
        TextEncoder(folder, device="cpu", progress=False)


# ------------------------------------------------------------------------------------------------ graph cache
def _cached_entry(recipe, cache):
    load_graph(recipe, recipe.parent, cache)
    (entry,) = [p for p in cache.iterdir() if p.name.startswith("tiny-")]
    return entry


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        pytest.param(lambda entry: (entry / "graph.safetensors").write_bytes(b"\x00" * 16),
                     r"graph\.safetensors: not a readable safetensors file", id="graph-cache-tensors-zeroed"),
        pytest.param(lambda entry: (entry / "meta.json").write_text('{"format_version": 1, "na'),
                     r"meta\.json: graph metadata is corrupt", id="graph-cache-meta-cut-short"),
        pytest.param(lambda entry: (entry / "idmap.json").write_text(json.dumps({"format_version": 1, "ids": [1]})),
                     r"idmap\.json: 'ids', 'names' and 'relation_names' must be JSON objects",
                     id="graph-cache-idmap-damaged"),
    ],
)
def test_damaged_cached_graph_is_rebuilt_with_a_warning(tmp_path, caplog, damage, reason):
    recipe = tiny_recipe(tmp_path / "data")
    cache = tmp_path / "cache"
    entry = _cached_entry(recipe, cache)
    damage(entry)
    with caplog.at_level(logging.WARNING, logger="graphrec"):
        bundle = load_graph(recipe, recipe.parent, cache)
    assert len(bundle.interactions.user) == 10
    assert "cached graph" in caplog.text and "is unreadable" in caplog.text and "rebuilding" in caplog.text
    assert any(re.search(reason, record.getMessage()) for record in caplog.records)
