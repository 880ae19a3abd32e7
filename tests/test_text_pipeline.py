"""Text features through the pipeline: fused LightGCN on cold items, SASRec with random or PLM item init,
and `graphrec text tune`, on the synthetic graph with a tiny random BERT whose vocabulary holds its words."""

import json
import re

import pytest
import yaml

from graphrec.cli import main
from graphrec.config import RunConfig
from graphrec.data.synthetic import generate, write
from graphrec.errors import ConfigError
from graphrec.graph.recipe import default_recipes_dir
from graphrec.pipeline import load_run, run
from graphrec.schema import from_mapping
from tests.text import write_tiny_bert


@pytest.fixture(scope="module")
def text_root(tmp_path_factory):
    """Synthetic data, a tiny BERT that knows its words, and the synthetic recipe with text_features."""
    root = tmp_path_factory.mktemp("text-data")
    folder = write(generate(num_users=300, num_items=150, num_communities=5, interactions_per_user=20, seed=1),
                   root / "synthetic")
    text = (folder / "items.csv").read_text().lower()
    words = sorted(set(re.findall(r"[a-z]+", text)))
    model = write_tiny_bert(root / "bert", words=words)
    recipe = yaml.safe_load((default_recipes_dir() / "synthetic.yaml").read_text())
    recipe["text_features"] = {"node_types": ["item"], "model": str(model), "max_length": 32}
    (root / "synthetic-text.yaml").write_text(yaml.safe_dump(recipe))
    return root


def config_for(root, tmp_path, **sections) -> RunConfig:
    payload = {
        "graph": {"recipe": str(root / "synthetic-text.yaml"), "data_root": str(root), "cache_dir": str(root / "cache")},
        "train": {"epochs": 15, "batch_size": 512, "lr": 0.01, "progress": False, "device": "cpu", "eval_every": 5,
                  "monitor": "recall@10"},
        "eval": {"ks": [5, 10]},
        "output": {"dir": str(tmp_path)},
    }
    for key, value in sections.items():
        payload.setdefault(key, {}).update(value)
    return from_mapping(RunConfig, payload, "test")


def test_cold_items_scored_by_text_beat_id_only(text_root, tmp_path):
    cold = {"split": {"method": "cold_item"}, "eval": {"candidates": "heldout", "ks": [5, 10]}}
    recall = {}
    for name, features in (("id", {}), ("text", {"id": False, "text": True}),
                           ("gate", {"text": True, "fusion": "gate", "id_dropout": 0.3})):
        result = run(config_for(text_root, tmp_path, model={"features": features}, output={"name": name}, **cold))
        recall[name] = result.test_metrics["recall@10"]
    assert abs(recall["id"] - 10 / 15) < 0.15  # 15 cold test items: a random order's recall@10 is 10/15
    assert recall["text"] > recall["id"] + 0.1
    assert recall["gate"] > recall["id"] + 0.1


def sasrec(**model):
    return {"model": {"name": "sasrec", "embedding_dim": 32, "num_layers": 1, "max_length": 20, **model},
            "split": {"method": "leave_one_out"},
            "train": {"epochs": 8, "batch_size": 64, "lr": 0.005, "eval_every": 2, "monitor": "ndcg@10"},
            "eval": {"ks": [5, 10], "metrics": ["hr", "ndcg"]}}


def test_sasrec_beats_popularity_and_evaluate_sees_the_same_histories(text_root, tmp_path):
    popularity = run(config_for(text_root, tmp_path, model={"name": "popularity"}, split={"method": "leave_one_out"},
                                eval={"ks": [5, 10], "metrics": ["hr", "ndcg"]}, train={"monitor": "hr@10"},
                                output={"name": "pop"}))
    result = run(config_for(text_root, tmp_path, output={"name": "sas"}, **sasrec()))
    assert result.test_metrics["hr@10"] > 1.3 * popularity.test_metrics["hr@10"]
    # Re-evaluating reads each user's train + valid items for the test, as the run did.
    assert main(["evaluate", str(result.run_dir), "--format", "json"]) == 0
    config, data, model = load_run(result.run_dir, history="train+valid")
    assert model.inputs.shape == (data.bundle.num_users, 20)


def test_sasrec_item_init_from_text_and_from_a_tuned_model(text_root, tmp_path, capsys):
    result = run(config_for(text_root, tmp_path, output={"name": "text"}, **sasrec(item_init="text")))
    assert result.test_metrics["hr@10"] > 0
    tuned = tmp_path / "tuned-plm"
    code = main(["text", "tune", str(tmp_path / "text" / "config.yaml"), "--out", str(tuned), "--epochs", "1",
                 "--max-pairs", "256", "--batch-size", "16"])
    assert code == 0 and (tuned / "config.json").is_file()
    assert "tuned on 256 (history, next item) pairs" in capsys.readouterr().out
    tuned_run = run(config_for(text_root, tmp_path, output={"name": "tuned"},
                               **sasrec(item_init="text", text_model=str(tuned))))
    first = json.loads((tmp_path / "text" / "metrics.json").read_text())["valid"]
    assert tuned_run.valid_metrics != first  # another PLM, other initial item vectors


def test_item_init_text_needs_text_features(text_root, tmp_path):
    config = config_for(text_root, tmp_path, output={"name": "x"}, **sasrec(item_init="text"))
    config.graph.recipe = "synthetic"
    with pytest.raises(ConfigError, match=r"'model.item_init' is 'text', but the graph 'synthetic' has no item text"):
        run(config)
