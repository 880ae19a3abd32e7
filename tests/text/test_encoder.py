"""TextEncoder and TextFeatureCache on a tiny random BERT (no download); the packaged MiniLM in one slow-ish test."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from graphrec.errors import ConfigError
from graphrec.text import TextEncoder, TextFeatureCache, default_model_path
from tests.text import write_tiny_bert

TEXTS = ["red shoe", "a big blue boot with the soft sock", "hat", "green scarf and cap for the cold",
         "old pear", "the new warm red hat", "plum", "a small apple and a pear and a plum"]


def encoder(model: Path, **kwargs) -> TextEncoder:
    return TextEncoder(model, device="cpu", progress=False, **kwargs)


def test_shapes_dtype_and_dim(tiny_bert: Path) -> None:
    enc = encoder(tiny_bert)
    out = enc.encode(TEXTS)
    assert enc.dim == 32
    assert out.shape == (len(TEXTS), 32) and out.dtype == torch.float32 and out.device.type == "cpu"
    assert not out.requires_grad
    assert "dim=32" in repr(enc)


def test_order_restored_after_length_sorting(tiny_bert: Path) -> None:
    enc = encoder(tiny_bert, batch_size=3)
    forward, backward = enc.encode(TEXTS), enc.encode(TEXTS[::-1])
    torch.testing.assert_close(backward, forward.flip(0))
    one_by_one = torch.cat([enc.encode([text]) for text in TEXTS])
    torch.testing.assert_close(forward, one_by_one, atol=1e-5, rtol=1e-5)


def test_batch_size_does_not_change_results(tiny_bert: Path) -> None:
    reference = encoder(tiny_bert, batch_size=64).encode(TEXTS)
    for batch_size in (1, 2, 5):
        torch.testing.assert_close(encoder(tiny_bert, batch_size=batch_size).encode(TEXTS), reference,
                                   atol=1e-5, rtol=1e-5)


def test_mean_and_cls_pooling_differ(tiny_bert: Path) -> None:
    mean, cls = encoder(tiny_bert, pooling="mean").encode(TEXTS), encoder(tiny_bert, pooling="cls").encode(TEXTS)
    assert not torch.allclose(mean, cls)
    # Mean pooling of a text is the average of its real tokens' hidden states: check by hand.
    enc = encoder(tiny_bert)
    batch = enc.tokenizer(["red shoe"], return_tensors="pt")
    with torch.no_grad():
        hidden = enc.model(**batch).last_hidden_state[0]  # [L, 32]
    torch.testing.assert_close(mean[0], hidden.mean(0), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(cls[0], hidden[0], atol=1e-5, rtol=1e-5)


def test_normalize_gives_unit_norm(tiny_bert: Path) -> None:
    out = encoder(tiny_bert, normalize=True).encode(TEXTS)
    torch.testing.assert_close(out.norm(dim=1), torch.ones(len(TEXTS)))


def test_empty_list(tiny_bert: Path) -> None:
    assert encoder(tiny_bert).encode([]).shape == (0, 32)


def test_long_texts_are_truncated(tiny_bert: Path) -> None:
    enc = encoder(tiny_bert, max_length=8)
    long_text = " ".join(["red shoe"] * 100)
    assert torch.isfinite(enc.encode([long_text])).all()
    torch.testing.assert_close(enc.encode([long_text]), enc.encode([" ".join(["red shoe"] * 10)]))


def test_encode_with_grad_matches_encode(tiny_bert: Path) -> None:
    enc = encoder(tiny_bert)
    out = enc.encode_with_grad(TEXTS[:3])
    assert out.requires_grad
    out.sum().backward()
    assert enc.model.embeddings.word_embeddings.weight.grad is not None
    torch.testing.assert_close(out.detach(), enc.encode(TEXTS[:3]), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kwargs, message", [
    ({"pooling": "max"}, "pooling: unknown pooling 'max'; expected one of ['mean', 'cls']"),
    ({"max_length": 0}, "max_length: expected a positive integer, got 0"),
    ({"batch_size": 2.5}, "batch_size: expected a positive integer, got 2.5"),
    ({"max_length": 513}, "max_length: 513 is more than the 512 positions"),
])
def test_bad_arguments_name_the_argument(tiny_bert: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        encoder(tiny_bert, **kwargs)
    assert message in str(info.value)


def test_unknown_model_name_says_no_download() -> None:
    with pytest.raises(ConfigError) as info:
        TextEncoder("no-such-org/no-such-model-xyz", device="cpu")
    message = str(info.value)
    assert "'no-such-org/no-such-model-xyz'" in message
    assert "weights cannot be downloaded" in message and "local directory" in message


def test_folder_without_a_model_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot load a Hugging Face model and tokenizer from"):
        TextEncoder(tmp_path, device="cpu")


def test_save_round_trip_replaces_an_existing_folder(tiny_bert: Path, tmp_path: Path) -> None:
    enc = encoder(tiny_bert)
    target = tmp_path / "saved"
    target.mkdir()
    (target / "stale.txt").write_text("from an earlier save")
    enc.save(target)
    assert not (target / "stale.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["saved"]  # no temporary folder left behind
    torch.testing.assert_close(encoder(target).encode(TEXTS), enc.encode(TEXTS))
    assert enc.identity == encoder(target).identity


# --- identity and cache -------------------------------------------------------------------------


def test_identity_changes_when_the_weights_in_the_folder_change(tiny_bert: Path, tmp_path: Path) -> None:
    folder = tmp_path / "model"
    shutil.copytree(tiny_bert, folder)
    before = encoder(folder).identity
    assert encoder(folder).identity == before  # same files, same identity
    write_tiny_bert(folder, seed=1)  # same config and vocabulary, other weights
    assert encoder(folder).identity != before


def test_identity_follows_weights_changed_in_memory(tiny_bert: Path) -> None:
    enc = encoder(tiny_bert)
    before = enc.identity
    with torch.no_grad():
        enc.model.embeddings.word_embeddings.weight.add_(0.01)
    enc.weights_changed()
    assert enc.identity != before


def test_cache_key_covers_split_order_and_settings() -> None:
    key = TextFeatureCache.key
    base = key("id", "mean", 128, False, ["ab", "c"])
    assert base == key("id", "mean", 128, False, ["ab", "c"])
    others = [key("id", "mean", 128, False, ["a", "bc"]), key("id", "mean", 128, False, ["c", "ab"]),
              key("id2", "mean", 128, False, ["ab", "c"]), key("id", "cls", 128, False, ["ab", "c"]),
              key("id", "mean", 64, False, ["ab", "c"]), key("id", "mean", 128, True, ["ab", "c"])]
    assert len({base, *others}) == 1 + len(others)


def test_second_encode_hits_the_cache(tiny_bert: Path, tmp_path: Path) -> None:
    first = encoder(tiny_bert, cache_dir=tmp_path).encode(TEXTS)
    enc = encoder(tiny_bert, cache_dir=tmp_path)
    assert enc.last_from_cache is False
    second = enc.encode(TEXTS)
    assert enc.last_from_cache is True
    torch.testing.assert_close(second, first, atol=0, rtol=0)
    assert len(list(tmp_path.glob("*.safetensors"))) == 1


@pytest.mark.parametrize("change", ["text", "max_length", "pooling", "normalize"])
def test_changed_input_or_setting_misses_the_cache(tiny_bert: Path, tmp_path: Path, change: str) -> None:
    encoder(tiny_bert, cache_dir=tmp_path).encode(TEXTS)
    texts, kwargs = list(TEXTS), {}
    if change == "text":
        texts[3] = texts[3] + " hat"
    elif change == "max_length":
        kwargs["max_length"] = 16
    elif change == "pooling":
        kwargs["pooling"] = "cls"
    else:
        kwargs["normalize"] = True
    enc = encoder(tiny_bert, cache_dir=tmp_path, **kwargs)
    enc.encode(texts)
    assert enc.last_from_cache is False
    assert len(list(tmp_path.glob("*.safetensors"))) == 2


def test_truncated_cache_file_warns_and_is_rebuilt(tiny_bert: Path, tmp_path: Path) -> None:
    fresh = encoder(tiny_bert, cache_dir=tmp_path).encode(TEXTS)
    (path,) = tmp_path.glob("*.safetensors")
    path.write_bytes(path.read_bytes()[:100])
    enc = encoder(tiny_bert, cache_dir=tmp_path)
    with pytest.warns(UserWarning, match=f"{path.name} is unusable and will be rebuilt"):
        rebuilt = enc.encode(TEXTS)
    assert enc.last_from_cache is False
    torch.testing.assert_close(rebuilt, fresh, atol=1e-6, rtol=1e-6)
    enc.encode(TEXTS)
    assert enc.last_from_cache is True  # the rebuilt file is good


def test_cache_file_of_the_wrong_shape_counts_as_corrupt(tmp_path: Path) -> None:
    cache = TextFeatureCache(tmp_path)
    cache.store("k", torch.ones(3, 4))
    torch.testing.assert_close(cache.load("k", expected_shape=(3, 4)), torch.ones(3, 4))
    with pytest.warns(UserWarning, match=r"shape \(3, 4\), expected \(5, 4\)"):
        assert cache.load("k", expected_shape=(5, 4)) is None
    assert not cache.path("k").exists()
    assert cache.load("k") is None  # absent: no warning


# --- the packaged model -------------------------------------------------------------------------


def test_packaged_minilm_puts_similar_sentences_closer() -> None:
    enc = TextEncoder(device="cpu", progress=False, normalize=True)
    assert Path(default_model_path()).is_dir()
    assert enc.dim == 384
    shoe, boot, soup = enc.encode(["comfortable leather running shoes for men",
                                   "lightweight sneakers for jogging",
                                   "tomato soup recipe with basil"])
    assert shoe @ boot > shoe @ soup + 0.2
