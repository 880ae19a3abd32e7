"""Malformed run configs and command-line overrides through :func:`graphrec.config.load_config`.

Every mistake is a :class:`ConfigError` naming the file (or ``config`` for overrides alone) and the
dotted key, with the closest valid key or the accepted values where there are some.
"""

from __future__ import annotations

import pytest

from graphrec.config import load_config
from graphrec.errors import ConfigError
from tests.bad_input.conftest import write


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("train:\n  batchsize: 64\n", r"run\.yaml: unknown key 'train\.batchsize' \(did you mean "
                                                  r"'batch_size'\?\)", id="misspelled-key"),
        pytest.param("modle:\n  name: mf\n", r"run\.yaml: unknown key 'modle' \(did you mean 'model'\?\)",
                     id="misspelled-section"),
        pytest.param("eval:\n  ks: 10\n", r"run\.yaml: key 'eval\.ks' must be a list, found int 10",
                     id="scalar-for-list"),
        pytest.param("train:\n  progress: 'no'\n", r"run\.yaml: key 'train\.progress' must be true or false, "
                                                   r"found str 'no'", id="quoted-bool"),
        pytest.param("train:\n  lr: fast\n", r"run\.yaml: key 'train\.lr' must be a number, found str 'fast'",
                     id="word-for-number"),
        pytest.param("train:\n  lr: .inf\n", r"run\.yaml: key 'train\.lr' must be a finite number, found inf",
                     id="infinite-number"),
        pytest.param("split:\n  ratios: [0.8, .nan, 0.1]\n", r"run\.yaml: key 'split\.ratios\[1\]' must be a finite "
                                                            r"number, found nan", id="nan-in-list"),
        pytest.param("split:\n  method: time\n", r"run\.yaml: key 'split\.method' is 'time'; choose one of 'random', "
                                                 r"'temporal'", id="unknown-choice"),
        pytest.param("train:\n  epochs: 5\n  lr: 0.01\n  epochs: 50\n",
                     r"run\.yaml:4:3: malformed YAML \(key 'epochs' is given twice \(first on line 2\); keep one\)",
                     id="duplicate-key"),
        pytest.param("seed: 1\n---\nseed: 2\n", r"run\.yaml:2:1: malformed YAML", id="two-documents"),
        pytest.param("42\n", r"run\.yaml: run config must be a mapping of keys to values, found int",
                     id="top-level-scalar"),
        pytest.param("train:\n  epochs: 5\n eval:\n  ks: [5]\n", r"run\.yaml:3:\d+: malformed YAML",
                     id="bad-indentation"),
        pytest.param("split:\n  ratios: [0.7, 0.2, 0.2]\n", r"key 'split\.ratios' must be three non-negative numbers "
                                                            r"summing to 1, found \[0\.7, 0\.2, 0\.2\]",
                     id="ratios-not-summing-to-one"),
        pytest.param("train:\n  monitor: ndcg@5\n", r"key 'train\.monitor' is 'ndcg@5'; it must be <metric>@<k> with "
                                                    r"the metric in eval\.metrics .* and k in eval\.ks \[10, 20\]",
                     id="monitor-cut-off-not-evaluated"),
    ],
)
def test_bad_config_files(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path / "run.yaml", text))


def test_config_not_utf8(tmp_path):
    with pytest.raises(ConfigError, match=r"run\.yaml: run config is not UTF-8 text"):
        load_config(write(tmp_path / "run.yaml", b"output:\n  name: caf\xe9\n"))


@pytest.mark.parametrize(
    ("override", "message"),
    [
        pytest.param("model.embeding_dim=8", r"override 'model\.embeding_dim=8': unknown key 'model\.embeding_dim' "
                                             r"\(did you mean 'embedding_dim'\?\)", id="override-misspelled"),
        pytest.param("train.epochs=1.5", r"config: key 'train\.epochs' must be an integer, found float 1\.5",
                     id="override-float-for-int"),
        pytest.param("train.epochs=5 train.lr=0.1", r"config: key 'train\.epochs' must be an integer, found str "
                                                    r"'5 train\.lr=0\.1'", id="override-two-in-one-argument"),
        pytest.param("train.epochs:5", r"override 'train\.epochs:5' must look like key=value", id="override-colon"),
        pytest.param("seed.value=1", r"override 'seed\.value=1': unknown key 'seed\.value'", id="override-into-scalar"),
        pytest.param("model.features.fusion=avg", r"config: key 'model\.features\.fusion' is 'avg'; choose one of "
                                                  r"'sum', 'concat', 'gate'", id="override-nested-choice"),
        pytest.param("train.lr=nan", r"config: key 'train\.lr' must be a number, found str 'nan'", id="override-nan"),
    ],
)
def test_bad_overrides(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, [override])


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b"\xef\xbb\xbftrain:\r\n  epochs: 3\r\n  lr: 1e-3\r\n", id="bom-crlf-and-yaml12-float"),
        pytest.param(b"train:\n  epochs: 3\n  lr: 1.0e-3\n", id="yaml11-float"),
    ],
)
def test_bom_crlf_and_exponent_floats_are_read(tmp_path, content):
    config = load_config(write(tmp_path / "run.yaml", content))
    assert (config.train.epochs, config.train.lr) == (3, 0.001)
