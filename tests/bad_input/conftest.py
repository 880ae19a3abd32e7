"""Helpers for the bad-input suite: every malformed input a user can hand graphrec, and the error it gets.

Each test feeds one kind of bad input through a public entry point (a reader, a graph recipe, a run
config, the CLI, a checkpoint or a cache) and checks both the error class (a
:class:`graphrec.errors.GraphrecError`) and that the message names where the problem is and what
was expected. Inputs that are odd but valid (a byte-order mark, CRLF line ends) are read correctly.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from graphrec.data.readers import TableSource
from tests.conftest import write_tiny


def write(path: Path, data: bytes | str) -> Path:
    """Write ``data`` byte for byte (a str is encoded as UTF-8, its line ends kept)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
    return path


def source(*paths: Path, **options) -> TableSource:
    return TableSource(path=tuple(paths), **options)


def tiny_recipe(root: Path, recipe_extra: str = "", edits: tuple[tuple[str, str], ...] = (), **files: str) -> Path:
    """The tiny dataset of ``tests/conftest.py`` under ``root`` with some files swapped and the recipe edited.

    ``edits`` are ``(old, new)`` text replacements in the recipe; each ``old`` must occur in it.
    """
    path = write_tiny(root, recipe_extra, **files)
    text = path.read_text()
    for old, new in edits:
        assert old in text, f"edit target not in the tiny recipe: {old!r}"
        text = text.replace(old, new)
    path.write_text(text)
    return path


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished one-epoch MF run on the tiny graph (about 3 s, made once). Copy it before changing it."""
    from graphrec.cli import main

    root = tmp_path_factory.mktemp("trained")
    recipe = write_tiny(root / "tiny")
    config = root / "run.yaml"
    config.write_text(
        f"graph:\n  recipe: {recipe}\n  data_root: {recipe.parent}\n  cache_dir: {root / 'cache'}\n"
        "model:\n  name: mf\n  embedding_dim: 4\n"
        "split:\n  ratios: [0.6, 0.2, 0.2]\n"
        "train:\n  epochs: 1\n  batch_size: 4\n  progress: false\n  device: cpu\n  monitor: recall@2\n"
        "eval:\n  ks: [2]\n"
    )
    run_dir = root / "run"
    assert main(["run", str(config), "--run-dir", str(run_dir)]) == 0
    return run_dir


@pytest.fixture
def run_copy(trained_run: Path, tmp_path: Path) -> Path:
    """A private copy of :func:`trained_run` that a test may damage."""
    return Path(shutil.copytree(trained_run, tmp_path / "run"))
