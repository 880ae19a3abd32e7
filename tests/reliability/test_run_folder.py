"""A run folder is never overwritten silently: unnamed runs always get a new folder, a named one is
reused only with resume or overwrite, and overwrite only ever replaces a run folder."""

from __future__ import annotations

import datetime as dt
from concurrent.futures import ThreadPoolExecutor

import pytest

from graphrec import pipeline
from graphrec.errors import ConfigError
from graphrec.pipeline import run
from tests.reliability.conftest import run_config


class FrozenClock(dt.datetime):
    """Every run starts in the same second."""

    @classmethod
    def now(cls, tz=None):
        return cls(2024, 5, 1, 12, 0, 0, tzinfo=tz)


def test_unnamed_runs_in_the_same_second_get_new_folders(small_root, tmp_path, monkeypatch):
    monkeypatch.setattr(pipeline, "datetime", FrozenClock)
    config = run_config(small_root, tmp_path, train={"epochs": 1})
    (tmp_path / "recipe-lightgcn-20240501-120000").mkdir()  # even an empty folder is never reused
    folders = [run(config).run_dir for _ in range(2)]
    assert [folder.name for folder in folders] == ["recipe-lightgcn-20240501-120000-2",
                                                   "recipe-lightgcn-20240501-120000-3"]
    assert all((folder / "metrics.json").is_file() for folder in folders)


def test_concurrent_claims_never_share_a_folder(tmp_path):
    with ThreadPoolExecutor(8) as pool:
        folders = list(pool.map(lambda _: pipeline._new_folder(tmp_path, "same"), range(16)))
    assert len(set(folders)) == 16 and all(folder.is_dir() for folder in folders)


def test_a_named_folder_is_refused_and_left_untouched(small_root, tmp_path):
    config = run_config(small_root, tmp_path, output={"name": "named"}, train={"epochs": 1})
    folder = run(config).run_dir
    before = {path.name: path.read_bytes() for path in folder.iterdir() if path.is_file()}
    with pytest.raises(ConfigError, match=f"{folder}: run folder exists; pass --overwrite to replace it or "
                                          "--resume to continue it"):
        run(config)
    assert {path.name: path.read_bytes() for path in folder.iterdir() if path.is_file()} == before


def test_overwrite_replaces_the_whole_run(small_root, tmp_path):
    config = run_config(small_root, tmp_path, output={"name": "named"}, train={"epochs": 2})
    folder = run(config).run_dir
    (folder / "notes.txt").write_text("from the first run")
    config["train"]["epochs"] = 1
    assert run(config, overwrite=True).run_dir == folder
    assert not (folder / "notes.txt").exists()  # nothing of the first run is mixed into the second
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_overwrite_refuses_a_folder_that_is_not_a_run(small_root, tmp_path):
    precious = tmp_path / "thesis"
    precious.mkdir()
    (precious / "chapter1.tex").write_text("...")
    with pytest.raises(ConfigError, match="--overwrite only replaces run folders"):
        run(run_config(small_root, tmp_path, train={"epochs": 1}), run_dir=precious, overwrite=True)
    assert (precious / "chapter1.tex").read_text() == "..."


def test_a_run_folder_path_that_is_a_file_is_refused(small_root, tmp_path):
    (tmp_path / "taken").write_text("x")
    with pytest.raises(ConfigError, match="run folder path is a file"):
        run(run_config(small_root, tmp_path, output={"name": "taken"}, train={"epochs": 1}))


def test_resume_needs_a_name(small_root, tmp_path):
    with pytest.raises(ConfigError, match=r"resume: name the run folder to continue \(--run-dir or output.name\)"):
        run(run_config(small_root, tmp_path, train={"epochs": 1}), resume=True)


def test_a_run_that_fails_early_leaves_no_empty_folder(small_root, tmp_path):
    config = run_config(small_root, tmp_path, model={"name": "mf", "features": {"text": True}})
    with pytest.raises(ConfigError, match="model.features"):
        run(config)
    assert list(tmp_path.iterdir()) == []
