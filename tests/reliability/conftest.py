"""Fixtures of the reliability tests: a synthetic dataset with a one-table recipe, and run configs for it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from graphrec.data.synthetic import generate, write

RECIPE = """\
name: reliability
interactions:
  path: synthetic/interactions.csv
  user: user
  item: item
  timestamp: timestamp
"""


def write_dataset(root: Path, num_users: int, num_items: int, interactions_per_user: int) -> Path:
    """Write a seeded synthetic dataset and its recipe under ``root``; return ``root`` (the data root)."""
    write(generate(num_users=num_users, num_items=num_items, num_communities=5,
                   interactions_per_user=interactions_per_user, seed=1), root / "synthetic")
    (root / "recipe.yaml").write_text(RECIPE)
    return root


def run_config(root: Path, out: Path, **sections: dict[str, Any]) -> dict[str, Any]:
    """A LightGCN run config (a plain mapping, as YAML gives it) on the dataset at ``root``, runs under ``out``."""
    payload: dict[str, Any] = {
        "seed": 0,
        "graph": {"recipe": str(root / "recipe.yaml"), "data_root": str(root), "cache_dir": str(root / "cache")},
        "model": {"name": "lightgcn", "embedding_dim": 16, "num_layers": 2},
        "train": {"epochs": 3, "batch_size": 512, "lr": 0.01, "progress": False, "device": "cpu", "eval_every": 1},
        "output": {"dir": str(out)},
    }
    for key, value in sections.items():
        payload[key] = {**payload.get(key, {}), **value} if isinstance(value, dict) else value
    return payload


@pytest.fixture(scope="module")
def small_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """300 users, 150 items, ~20 interactions each: a whole run takes well under a second."""
    return write_dataset(tmp_path_factory.mktemp("small-data"), 300, 150, 20)
