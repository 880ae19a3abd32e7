"""Shared fixtures: a tiny hand-made dataset with every table a recipe can name."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

os.environ.setdefault("DGLBACKEND", "pytorch")

SHARED_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"

TINY_FILES = {
    "users.csv": """\
        user,occupation
        u1,artist
        u2,engineer
        u3,artist
        u4,doctor
        """,
    "items.csv": """\
        item,title,genres
        i1,Heat,Action|Crime
        i2,Scarface,Crime|Drama
        i3,Toy Story,Animation
        i4,Up,Animation|Drama
        i5,Alien,Horror
        """,
    "interactions.csv": """\
        user,item,rating,timestamp
        u1,i1,5,100
        u1,i2,4,101
        u1,i3,1,102
        u2,i3,5,100
        u2,i4,4,105
        u3,i1,4,110
        u3,i5,2,111
        u4,i2,3,120
        u4,i4,5,121
        u4,i5,4,122
        """,
    "tags.csv": """\
        item,tag
        i1,heist
        i2,gangster
        i1,gangster
        i3,pixar
        """,
    "social.csv": """\
        user,friend
        u1,u3
        u2,u4
        """,
    "kg.tsv": """\
        head\trelation\ttail
        e_heat\tfilm.starring\te_pacino
        e_scarface\tfilm.starring\te_pacino
        e_heat\tfilm.directed_by\te_mann
        e_toy\tfilm.directed_by\te_lasseter
        e_pacino\tperson.born_in\te_nyc
        """,
    "item_entity.tsv": """\
        item\tentity
        i1\te_heat
        i2\te_scarface
        i3\te_toy
        """,
    "entities.tsv": """\
        entity\tname
        e_heat\tHeat (film)
        e_scarface\tScarface (film)
        e_toy\tToy Story (film)
        e_pacino\tAl Pacino
        e_mann\tMichael Mann
        e_lasseter\tJohn Lasseter
        e_nyc\tNew York City
        """,
}

TINY_RECIPE = """\
    name: tiny
    description: a hand-made graph for unit tests
    interactions:
      path: interactions.csv
      user: user
      item: item
      rating: rating
      timestamp: timestamp
    users:
      path: users.csv
      id: user
      attributes:
        occupation: occupation
    items:
      path: items.csv
      id: item
      name: title
      attributes:
        genre: {column: genres, sep: "|"}
      text: "{title}"
    item_attributes:
      - path: tags.csv
        id: item
        value: tag
        field: tag
    social:
      path: social.csv
      user: user
      friend: friend
    kg:
      path: kg.tsv
      head: head
      relation: relation
      tail: tail
      entity_names: {path: entities.tsv, id: entity, name: name}
    item_entity:
      path: item_entity.tsv
      item: item
      entity: entity
    """


def write_tiny(root: Path, recipe_extra: str = "", **replace: str) -> Path:
    """Write the tiny dataset under ``root`` (files in ``replace`` swapped for new text); return the recipe path."""
    root.mkdir(parents=True, exist_ok=True)
    for name, text in {**TINY_FILES, **replace}.items():
        (root / name).write_text(textwrap.dedent(text))
    recipe = root / "tiny.yaml"
    recipe.write_text(textwrap.dedent(TINY_RECIPE) + textwrap.dedent(recipe_extra))
    return recipe


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    """Path of the tiny recipe; its files live beside it (use ``data_root=recipe.parent``)."""
    return write_tiny(tmp_path / "tiny")


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "cache"


def shared_data(*parts: str) -> Path:
    """A path under ../shared/data; the calling test is skipped when it is absent."""
    path = SHARED_DATA.joinpath(*parts).resolve()
    if not path.exists():
        pytest.skip(f"real data not present: {path}")
    return path


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer, 32-wide random BERT and its word-level tokenizer, saved locally (no download). Read-only."""
    from tests.text import write_tiny_bert

    return write_tiny_bert(tmp_path_factory.mktemp("tiny-bert") / "model")


def write_synthetic_root(root: Path, **generate_kwargs) -> Path:
    """``root`` holding the synthetic dataset under ``synthetic/`` (what ``graphs/synthetic.yaml`` reads)."""
    from graphrec.data.synthetic import generate, write

    write(generate(**generate_kwargs), root / "synthetic")
    return root


def run_config(root: Path, out: Path, defaults: dict, sections: dict, recipe: str = "synthetic"):
    """A :class:`RunConfig` on the graph ``recipe`` under ``root``, run folders in ``out``: seed 0, then
    ``defaults``, then ``sections``; a section given in ``sections`` updates that section's keys."""
    from graphrec.config import RunConfig
    from graphrec.schema import from_mapping

    payload = {"graph": {"recipe": recipe, "data_root": str(root), "cache_dir": str(root / "cache")},
               "output": {"dir": str(out)}}
    for key, value in {"seed": 0, **defaults}.items():
        payload[key] = {**payload[key], **value} if isinstance(value, dict) and key in payload else value
    for key, value in sections.items():
        payload.setdefault(key, {}).update(value)
    return from_mapping(RunConfig, payload, "test")
