import json
import subprocess
import sys

import pytest

from graphrec.cli import main
from tests.conftest import write_tiny


def test_help_lists_the_commands(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for command in ("build", "run", "evaluate", "recommend", "datasets", "demo"):
        assert command in out


def test_build_prints_the_type_table(tiny, cache_dir, capsys):
    assert main(["build", str(tiny), "--data-root", str(tiny.parent), "--cache-dir", str(cache_dir)]) == 0
    out = capsys.readouterr().out
    assert "user -interacts-> item" in out and "10" in out
    assert "item -has_genre-> genre" in out
    assert "entity -person_born_in-> entity" in out


def test_user_error_is_one_line_and_exit_code_2(tmp_path, cache_dir, capsys):
    recipe = write_tiny(tmp_path, **{"interactions.csv": "user,item,rating,timestamp\nu1,i1,x,1\n"})
    code = main(["build", str(recipe), "--data-root", str(tmp_path), "--cache-dir", str(cache_dir)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("graphrec: error: ")
    assert "interactions.csv:2: column 'rating' has 'x'" in err
    assert "Traceback" not in err


def test_debug_shows_the_traceback(tmp_path, cache_dir):
    recipe = write_tiny(tmp_path, **{"interactions.csv": "user,item,rating,timestamp\nu1,i1,x,1\n"})
    process = subprocess.run(
        [sys.executable, "-m", "graphrec", "--debug", "build", str(recipe), "--data-root", str(tmp_path),
         "--cache-dir", str(cache_dir)], capture_output=True, text=True)
    assert process.returncode != 0 and "Traceback" in process.stderr and "DataError" in process.stderr


def test_run_with_bad_override_exits_2(tiny, capsys):
    config = tiny.parent / "run.yaml"
    config.write_text(f"graph:\n  recipe: {tiny}\n  data_root: {tiny.parent}\n")
    assert main(["run", str(config), "train.epoch=3"]) == 2
    assert "unknown key 'train.epoch' (did you mean 'epochs'?)" in capsys.readouterr().err


def test_overrides_may_follow_the_options_and_other_extras_are_refused(tiny, capsys):
    config = tiny.parent / "run.yaml"
    config.write_text(f"graph:\n  recipe: {tiny}\n  data_root: {tiny.parent}\n")
    # the override after --run-dir is read as an override: its unknown key is what fails
    assert main(["run", str(config), "--run-dir", str(tiny.parent / "r"), "train.epoch=3"]) == 2
    assert "unknown key 'train.epoch'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["run", str(config), "--run-dir", str(tiny.parent / "r"), "--epochs", "3"])
    assert exit_info.value.code == 2
    assert "unrecognized arguments: --epochs 3" in capsys.readouterr().err


def test_datasets_lists_shipped_recipes(tmp_path, capsys):
    assert main(["datasets", "--data-root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for name in ("ml-100k", "ml-1m", "lastfm-2k", "synthetic"):
        assert name in out
    assert "missing:" in out


def test_run_recommend_evaluate_on_the_tiny_graph(tiny, tmp_path, capsys):
    config = tmp_path / "run.yaml"
    config.write_text(
        f"graph:\n  recipe: {tiny}\n  data_root: {tiny.parent}\n  cache_dir: {tmp_path / 'cache'}\n"
        "split:\n  ratios: [0.6, 0.2, 0.2]\n"
        "train:\n  epochs: 2\n  batch_size: 4\n  progress: false\n  device: cpu\n  monitor: recall@2\n"
        "eval:\n  ks: [2]\n"
    )
    run_dir = tmp_path / "run"
    assert main(["run", str(config), "--run-dir", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert "recall@2" in out and f"run folder: {run_dir}" in out
    for name in ("config.yaml", "metrics.json", "split.safetensors", "best.safetensors", "environment.json",
                 "history.json", "curve.png", "report.html"):
        assert (run_dir / name).is_file(), name
    assert main(["run", str(config), "--run-dir", str(run_dir)]) == 2  # never overwritten silently
    assert "run folder exists" in capsys.readouterr().err

    assert main(["recommend", "--run", str(run_dir), "--user", "u1", "-k", "3", "--format", "json"]) == 0
    lists = json.loads(capsys.readouterr().out)
    names = [row["name"] for row in lists[0]["items"]]
    # u1 has seen Heat, Scarface and Toy Story (in train, valid or test): only the two others are new to them.
    assert sorted(names) == ["Alien", "Up"]
    assert main(["recommend", "--run", str(run_dir), "--user", "u9"]) == 2
    assert "unknown user id 'u9'" in capsys.readouterr().err
    assert main(["recommend", "--run", str(run_dir), "--user", "u1", "-k", "0"]) == 2
    assert "-k must be at least 1" in capsys.readouterr().err

    assert main(["evaluate", str(run_dir), "--format", "json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    stored = json.loads((run_dir / "metrics.json").read_text())["test"]
    assert metrics["recall@2"] == pytest.approx(stored["recall@2"])


def test_demo_runs_end_to_end_at_a_small_size(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path / "demo"), "--epochs", "2", "--users", "120", "--items", "60",
                 "--pretrain-steps", "4"]) == 0
    out = capsys.readouterr().out
    for model in ("popularity", "mf", "lightgcn", "sage+chest"):
        assert model in out
    assert (tmp_path / "demo" / "pretrain-sage" / "encoder.safetensors").is_file()
    metrics = (tmp_path / "demo" / "sage+chest" / "metrics.json").read_text()
    assert '"loaded_tensors"' in metrics
