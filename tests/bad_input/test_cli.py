"""Bad command lines and bad inputs through ``graphrec.cli.main``: exit code 2 and one line on stderr.

The line starts with ``graphrec: error:`` and carries the message of the :class:`GraphrecError`;
``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file, save_file

from graphrec.cli import main
from graphrec.errors import CheckpointError, DataError
from tests.bad_input.conftest import tiny_recipe, write


def one_error_line(capsys: pytest.CaptureFixture) -> str:
    err = capsys.readouterr().err
    assert err.startswith("graphrec: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    return err


def test_build_with_a_misspelled_recipe_key(tmp_path, capsys):
    recipe = tiny_recipe(tmp_path, edits=(("  user: user\n", "  usr: user\n"),))
    assert main(["build", str(recipe), "--data-root", str(tmp_path), "--cache-dir", str(tmp_path / "c")]) == 2
    assert "tiny.yaml: unknown key 'interactions.usr' (did you mean 'user'?)" in one_error_line(capsys)


def test_build_with_a_data_root_that_does_not_exist(tmp_path, capsys):
    recipe = tiny_recipe(tmp_path / "tiny")
    code = main(["build", str(recipe), "--data-root", str(tmp_path / "nowhere"), "--cache-dir", str(tmp_path / "c")])
    assert code == 2
    assert "nowhere/users.csv: file not found (folder" in one_error_line(capsys)


def test_build_with_a_bad_file(tmp_path, capsys):
    recipe = tiny_recipe(tmp_path, **{"items.csv": "item,title,genres\ni1,Heat,Action\ni2,Up"})
    assert main(["build", str(recipe), "--data-root", str(tmp_path), "--cache-dir", str(tmp_path / "c")]) == 2
    assert "items.csv: line 3: expected 3 fields, found 2" in one_error_line(capsys)


def test_run_with_a_config_that_does_not_exist(tmp_path, capsys):
    assert main(["run", str(tmp_path / "lightgnc.yaml")]) == 2
    assert "lightgnc.yaml: run config not found" in one_error_line(capsys)


def test_run_with_an_override_of_the_wrong_type(tmp_path, capsys):
    config = write(tmp_path / "run.yaml", "seed: 1\n")
    assert main(["run", str(config), "eval.ks=[10, twenty]"]) == 2
    assert "key 'eval.ks[1]' must be an integer, found str 'twenty'" in one_error_line(capsys)


def test_evaluate_a_folder_that_is_no_run(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path)]) == 2
    assert "not a run folder (no config.yaml)" in one_error_line(capsys)


def test_evaluate_weights_of_another_model_shape(run_copy, capsys):
    weights = load_file(run_copy / "best.safetensors")
    save_file({name: torch.zeros(tensor.shape[0], 8) for name, tensor in weights.items()},
              run_copy / "best.safetensors")
    assert main(["evaluate", str(run_copy)]) == 2
    err = one_error_line(capsys)
    assert "best.safetensors: tensor '" in err and "has shape (" in err and ", 8) but the model expects (" in err


def test_evaluate_truncated_weights(run_copy, capsys):
    path = run_copy / "best.safetensors"
    path.write_bytes(path.read_bytes()[:40])
    assert main(["evaluate", str(run_copy)]) == 2
    assert "best.safetensors: not a readable safetensors file" in one_error_line(capsys)


def test_evaluate_a_run_whose_saved_config_was_edited_wrongly(run_copy, capsys):
    path = run_copy / "config.yaml"
    path.write_text(path.read_text().replace("epochs:", "epoch:"))
    assert main(["evaluate", str(run_copy)]) == 2
    assert "config.yaml: unknown key 'train.epoch' (did you mean 'epochs'?)" in one_error_line(capsys)


def test_recommend_for_an_unknown_user(trained_run, capsys):
    assert main(["recommend", "--run", str(trained_run), "--user", "u11"]) == 2
    assert "unknown user id 'u11' (did you mean 'u1'?)" in one_error_line(capsys)


def test_evaluate_with_a_negative_number_of_negatives(trained_run, capsys):
    assert main(["evaluate", str(trained_run), "--protocol", "sampled", "--num-negatives", "-3"]) == 2
    assert "--num-negatives must be at least 1, found -3" in one_error_line(capsys)


# ------------------------------------------------------------------------------------------------ argparse
ARGPARSE_MISTAKES = [
    pytest.param(["bild", "ml-100k"], "invalid choice: 'bild'", id="unknown-command"),
    pytest.param(["run"], "the following arguments are required: config", id="missing-argument"),
    pytest.param(["recommend", "--run", "r", "--user", "u1", "-k", "ten"], "argument -k: invalid int value: 'ten'",
                 id="not-an-int"),
    pytest.param(["build", "ml-100k", "--data-rot", "data"], "unrecognized arguments: --data-rot data",
                 id="misspelled-option"),
]


@pytest.mark.parametrize(("argv", "message"), ARGPARSE_MISTAKES)
def test_command_line_mistakes_exit_2_with_the_reason(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and message in err.splitlines()[-1]


@pytest.mark.parametrize(("argv", "message"), ARGPARSE_MISTAKES[:1])
def test_command_line_mistakes_print_one_line(argv, message, capsys):
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    assert code == 2
    assert message in one_error_line(capsys)


# ------------------------------------------------------------------------------------------------ --debug
def test_debug_reraises_the_graphrec_error(tmp_path):
    recipe = tiny_recipe(tmp_path, **{"interactions.csv": "user,item,rating,timestamp\nu1,i1,5,-1\n"})
    with pytest.raises(DataError, match=r"interactions\.csv:2: column 'timestamp' has '-1'; it must not be negative"):
        main(["--debug", "build", str(recipe), "--data-root", str(tmp_path), "--cache-dir", str(tmp_path / "c")])


def test_debug_reraises_a_checkpoint_error(run_copy):
    (run_copy / "best.safetensors").write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"best\.safetensors: not a readable safetensors file"):
        main(["--debug", "evaluate", str(run_copy)])


def test_python_dash_m_graphrec_exits_2(tmp_path):
    recipe = write(tmp_path / "r.yaml", "name: x\ninteractions:\n  path: a.csv\n  format: xls\n")
    process = subprocess.run([sys.executable, "-m", "graphrec", "build", str(recipe), "--data-root", str(tmp_path)],
                             capture_output=True, text=True, timeout=120)
    assert process.returncode == 2
    assert process.stderr.startswith("graphrec: error: ") and process.stderr.count("\n") == 1
    assert "r.yaml: key 'interactions.format' is 'xls'" in process.stderr
