import pytest

from graphrec.config import RunConfig, apply_overrides, dump_config, load_config, parse_value
from graphrec.errors import ConfigError


def write(tmp_path, text):
    path = tmp_path / "run.yaml"
    path.write_text(text)
    return path


def test_defaults_and_overrides():
    config = load_config(None, ["train.epochs=5", "eval.ks=[5, 10]", "train.monitor=ndcg@5", "model.name=mf"])
    assert config.train.epochs == 5 and config.eval.ks == [5, 10] and config.model.name == "mf"
    assert config.train.lr == RunConfig().train.lr


def test_file_then_overrides(tmp_path):
    path = write(tmp_path, "seed: 3\ntrain:\n  epochs: 7\n  lr: 0.01\n")
    config = load_config(path, ["train.epochs=2"])
    assert (config.seed, config.train.epochs, config.train.lr) == (3, 2, 0.01)


def test_int_is_accepted_where_a_float_is_expected(tmp_path):
    assert load_config(write(tmp_path, "train:\n  lr: 1\n")).train.lr == 1.0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("train:\n  epoch: 5\n", r"run.yaml: unknown key 'train.epoch' \(did you mean 'epochs'\?\)"),
        ("trian:\n  epochs: 5\n", r"unknown key 'trian' \(did you mean 'train'\?\)"),
        ("train:\n  epochs: five\n", r"key 'train.epochs' must be an integer, found str 'five'"),
        ("train:\n  epochs: 2.5\n", r"key 'train.epochs' must be an integer, found float"),
        ("train:\n  progress: 1\n", r"key 'train.progress' must be true or false"),
        ("model:\n  name: lightgnc\n", r"key 'model.name' is 'lightgnc' \(did you mean 'lightgcn'\?\)"),
        ("split:\n  ratios: [0.5, 0.5]\n", r"key 'split.ratios' must be three non-negative numbers summing to 1"),
        ("train: 5\n", r"key 'train' must be a mapping, found int 5"),
        ("eval:\n  ks: [10]\n", r"key 'train.monitor' is 'recall@20'"),
        ("train:\n  epochs: 0\n", r"key 'train.epochs' must be at least 1"),
        ("- a\n- b\n", r"run config must be a mapping"),
        ("train:\n  epochs: [1\n", r"run.yaml:\d+:\d+: malformed YAML"),
        ("", r"run config is empty"),
        ("eval:\n  metrics: [recall, ndgc]\n", r"key 'eval.metrics' names 'ndgc' \(did you mean 'ndcg'\?\)"),
        ("train:\n  lr: -0.1\n", r"'train.lr' \(> 0\)"),
        ("train:\n  device: gpu\n", r"key 'train.device' is 'gpu'; use auto, cpu, cuda or cuda:N"),
        ("eval:\n  chunk_size: 0\n", r"key 'eval.chunk_size' must be at least 1"),
    ],
)
def test_bad_config_files(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, text))


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match=r"nope.yaml: run config not found"):
        load_config(tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.epoch=5", r"unknown key 'train.epoch' \(did you mean 'epochs'\?\)"),
        ("epochs=5", r"unknown key 'epochs'"),
        ("train.epochs", r"must look like key=value"),
        ("train.epochs.x=1", r"unknown key 'train.epochs.x'"),
    ],
)
def test_bad_overrides(override, message):
    with pytest.raises(ConfigError, match=message):
        apply_overrides({}, [override])


def test_override_values_are_literals_never_code(tmp_path):
    marker = tmp_path / "pwned"
    value = parse_value(f"__import__('os').system('touch {marker}')")
    assert isinstance(value, str) and not marker.exists()
    with pytest.raises(ConfigError, match="must be an integer"):
        load_config(None, [f"train.epochs=__import__('os').system('touch {marker}')"])
    assert not marker.exists()
    assert parse_value("true") is True and parse_value("null") is None and parse_value("1e-3") == 0.001


def test_override_lists_of_bare_words_parse_as_yaml_flow_lists():
    assert parse_value("[embedding, encoder.layers.0]") == ["embedding", "encoder.layers.0"]
    assert parse_value("[10, 20]") == [10, 20]
    assert parse_value("[unclosed") == "[unclosed"
    assert parse_value("!!python/object/apply:os.system ['true']") == "!!python/object/apply:os.system ['true']"
    config = load_config(None, ["model.name=graph", "finetune.strategy=partial", "finetune.frozen=[embedding]"])
    assert config.finetune.frozen == ["embedding"]


def test_yaml_tags_that_build_objects_are_refused(tmp_path):
    path = write(tmp_path, "seed: !!python/object/apply:os.system ['echo hi']\n")
    with pytest.raises(ConfigError, match="malformed YAML"):
        load_config(path)


def test_dump_then_load_round_trips(tmp_path):
    config = load_config(None, ["train.epochs=3", "graph.recipe=ml-100k"])
    path = write(tmp_path, dump_config(config))
    assert load_config(path) == config
