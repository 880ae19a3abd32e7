"""Nothing lost: a run killed with SIGKILL resumes to the metrics of a run never stopped, and no
crash (mid-epoch, mid-checkpoint, between the checkpoint's renames) leaves a folder that resume
cannot use or misreads."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from graphrec.errors import CheckpointError
from graphrec.pipeline import run
from graphrec.train.checkpoint import find_checkpoint
from graphrec.utils import atomic_write_bytes, atomic_write_json, load_tensors
from tests.reliability.conftest import run_config, write_dataset

EPOCHS = 6


@pytest.fixture(scope="module")
def kill_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3,000 users, 800 items, ~30 interactions each: LightGCN epochs of about 0.5 s on one CPU thread."""
    return write_dataset(tmp_path_factory.mktemp("kill-data"), 3000, 800, 30)


def graphrec_run(config: Path, *args: str, log: Path) -> subprocess.Popen:
    """``graphrec run CONFIG ARGS`` in a child process on one thread, its output in ``log``."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "DGLBACKEND": "pytorch"}
    with log.open("w") as handle:
        return subprocess.Popen([sys.executable, "-m", "graphrec", "run", str(config), *args],
                                stdout=handle, stderr=subprocess.STDOUT, env=env, cwd=config.parent)


def finish(process: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    assert process.wait(timeout=timeout) == 0, log.read_text()


def checkpoint_epoch(run_dir: Path) -> int:
    """The epoch of the run's last complete checkpoint, 0 when there is none (or it is being swapped in)."""
    folder = find_checkpoint(run_dir / "checkpoint")
    try:
        return json.loads((folder / "state.json").read_text())["state"]["epoch"] if folder else 0
    except (OSError, ValueError):  # the folder was renamed away between the two reads
        return 0


def wait_for_checkpoint(process: subprocess.Popen, run_dir: Path, epoch: int, log: Path) -> float:
    """Poll until the checkpoint of ``epoch`` (or a later one) exists; the seconds an epoch took."""
    deadline, seen = time.monotonic() + 90, {}  # epoch -> when its checkpoint was first seen
    while max(seen, default=0) < epoch:
        assert process.poll() is None, f"the run ended before its checkpoint of epoch {epoch}:\n{log.read_text()}"
        assert time.monotonic() < deadline, f"no checkpoint of epoch {epoch} within 90 s"
        seen.setdefault(checkpoint_epoch(run_dir), time.monotonic())
        time.sleep(0.01)
    latest = max(seen)
    return seen[latest] - seen[latest - 1] if latest - 1 in seen and latest > 1 else 0.3


def test_sigkill_mid_epoch_then_resume_matches_an_uninterrupted_run(kill_root, tmp_path):
    config = tmp_path / "config.yaml"
    payload = run_config(kill_root, tmp_path / "runs", output={"name": "killed"},
                         train={"epochs": EPOCHS, "batch_size": 384}, model={"embedding_dim": 32})
    config.write_text(yaml.safe_dump(payload))

    # The uninterrupted run, in this process (one interpreter start less) on one thread like the children.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        reference_dir = run(config, run_dir=tmp_path / "runs" / "reference").run_dir
    finally:
        torch.set_num_threads(threads)

    run_dir = tmp_path / "runs" / "killed"
    process = graphrec_run(config, log=tmp_path / "killed.log")
    epoch_seconds = wait_for_checkpoint(process, run_dir, 2, tmp_path / "killed.log")
    time.sleep(min(epoch_seconds / 3, 0.3))  # into the next epoch's batches, however fast they run
    assert process.poll() is None and not (run_dir / "metrics.json").exists()
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    killed_at = checkpoint_epoch(run_dir)
    assert 2 <= killed_at < EPOCHS and not (run_dir / "metrics.json").exists()
    saved_history = json.loads((find_checkpoint(run_dir / "checkpoint") / "state.json").read_text())["state"]["history"]

    finish(graphrec_run(config, "--resume", log=tmp_path / "resumed.log"), tmp_path / "resumed.log")

    resumed = json.loads((run_dir / "metrics.json").read_text())
    reference = json.loads((reference_dir / "metrics.json").read_text())
    assert resumed["test"] == pytest.approx(reference["test"], abs=1e-6)
    assert resumed["valid"] == pytest.approx(reference["valid"], abs=1e-6)
    assert resumed["best_epoch"] == reference["best_epoch"] and resumed["epochs_run"] == EPOCHS
    history = json.loads((run_dir / "history.json").read_text())
    assert [row["epoch"] for row in history] == list(range(1, EPOCHS + 1))
    # The epochs before the kill were kept, not trained again (their timings are the first process's).
    assert history[:killed_at] == saved_history
    reference_history = json.loads((reference_dir / "history.json").read_text())
    for row, expected in zip(history, reference_history):
        assert row["loss"] == pytest.approx(expected["loss"], abs=1e-6), row["epoch"]
    best, expected_best = load_tensors(run_dir / "best.safetensors"), load_tensors(reference_dir / "best.safetensors")
    assert best.keys() == expected_best.keys()
    for name in best:
        torch.testing.assert_close(best[name], expected_best[name], atol=1e-6, rtol=0)
    assert not list(run_dir.glob("checkpoint.*")) and not list(run_dir.glob(".*.tmp"))


# ------------------------------------------------------------------ crashes inside a write, in process
@pytest.fixture
def partial_run(small_root, tmp_path) -> tuple[dict, Path, dict]:
    """A run stopped after 2 of 4 epochs (its config, folder) and the metrics of the 4 epochs run straight."""
    straight = run(run_config(small_root, tmp_path, output={"name": "straight"}, train={"epochs": 4}))
    config = run_config(small_root, tmp_path, output={"name": "partial"}, train={"epochs": 2})
    folder = run(config).run_dir
    (folder / "metrics.json").unlink()  # as if it had been killed after its last checkpoint
    config["train"]["epochs"] = 4
    return config, folder, straight.test_metrics


def test_a_kill_while_writing_the_checkpoint_resumes_from_the_last_complete_one(partial_run):
    config, folder, expected = partial_run
    # What SIGKILL leaves inside a checkpoint write: the next checkpoint's half-written staging
    # folder, with a truncated file and an atomic writer's temporary; and a metrics temporary.
    staging = folder / "checkpoint.tmp"
    staging.mkdir()
    (staging / "model.safetensors").write_bytes((folder / "checkpoint" / "model.safetensors").read_bytes()[:50])
    (staging / ".state.json.x1y2.tmp").write_text('{"format": "graphrec-checkpoint", "state": {"epo')
    (folder / ".metrics.json.a1b2.tmp").write_text('{"test": {"recall@20": 0.9')

    result = run(config, resume=True)

    assert result.test_metrics == pytest.approx(expected, abs=1e-6)
    history = json.loads((folder / "history.json").read_text())
    assert [row["epoch"] for row in history] == [1, 2, 3, 4]
    assert not staging.exists()  # the next save cleared it


def test_a_kill_between_the_checkpoint_renames_resumes_from_the_old_folder(partial_run):
    config, folder, expected = partial_run
    (folder / "checkpoint").rename(folder / "checkpoint.old")  # old moved aside, new not yet in place
    result = run(config, resume=True)
    assert result.test_metrics == pytest.approx(expected, abs=1e-6)
    assert (folder / "checkpoint").is_dir() and not (folder / "checkpoint.old").exists()


@pytest.mark.parametrize("damaged", ["model.safetensors", "optimizer.safetensors", "rng.safetensors"])
def test_a_truncated_checkpoint_file_is_a_clear_error(partial_run, damaged):
    config, folder, _ = partial_run
    path = folder / "checkpoint" / damaged
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError) as info:
        run(config, resume=True)
    assert str(path) in str(info.value) and "truncated or corrupt" in str(info.value)


def test_a_corrupt_checkpoint_state_file_is_a_clear_error(partial_run):
    config, folder, _ = partial_run
    path = folder / "checkpoint" / "state.json"
    path.write_text(path.read_text()[:40])
    with pytest.raises(CheckpointError, match=re.escape(f"{path}: checkpoint state file is corrupt")):
        run(config, resume=True)


def test_resume_refuses_when_the_data_changed(partial_run, small_root):
    config, folder, _ = partial_run
    interactions = small_root / "synthetic" / "interactions.csv"
    original = interactions.read_bytes()
    try:
        interactions.write_bytes(original + b"\n")  # same rows, other bytes
        message = f"environment.json: the data files changed since the run started ({interactions})"
        with pytest.raises(CheckpointError, match=re.escape(message)):
            run(config, resume=True)
    finally:
        interactions.write_bytes(original)


def test_resume_keeps_the_first_environment_and_records_each_resume(partial_run):
    config, folder, _ = partial_run
    first = json.loads((folder / "environment.json").read_text())
    run(config, resume=True)
    after = json.loads((folder / "environment.json").read_text())
    assert {k: v for k, v in after.items() if k != "resumed"} == first
    (resumed,) = after["resumed"]
    assert resumed["config"]["train"]["epochs"] == 4 and "data_files" not in resumed


@pytest.mark.parametrize("section, change, message", [
    ("train", {"lr": 0.02}, "was made with lr=0.01"),
    ("model", {"embedding_dim": 8}, r"has shape \(\d+, 16\) but the model expects \(\d+, 8\)"),
])
def test_a_refused_resume_leaves_the_run_folder_as_it_was(partial_run, section, change, message):
    config, folder, _ = partial_run
    before = {name: (folder / name).read_bytes() for name in ("config.yaml", "environment.json")}
    config[section] = {**config[section], **change}
    with pytest.raises(CheckpointError, match=message):
        run(config, resume=True)
    assert {name: (folder / name).read_bytes() for name in before} == before


# ------------------------------------------------------------------ the atomic writer itself
def test_a_failed_atomic_write_keeps_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "metrics.json"
    atomic_write_json(path, {"recall": 0.5})

    def power_cut(fd: int) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", power_cut)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_json(path, {"recall": 0.9})
    monkeypatch.undo()
    assert json.loads(path.read_text()) == {"recall": 0.5}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]


def test_atomic_files_get_the_mode_open_would_give(tmp_path):
    atomic_write_bytes(tmp_path / "a.bin", b"x")  # not mkstemp's 0600: run folders stay readable to others
    with open(tmp_path / "b.bin", "wb") as handle:
        handle.write(b"x")
    assert (tmp_path / "a.bin").stat().st_mode & 0o777 == (tmp_path / "b.bin").stat().st_mode & 0o777


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="names file descriptors through /proc")
def test_fsync_tree_flushes_every_file_and_folder(tmp_path, monkeypatch):
    """For folders a library writes (save_pretrained) before they are renamed into place."""
    from graphrec.utils import fsync_tree

    (tmp_path / "model" / "sub").mkdir(parents=True)
    for name in ("model/config.json", "model/weights.bin", "model/sub/vocab.txt"):
        (tmp_path / name).write_text(name)
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(os.readlink(f"/proc/self/fd/{fd}")) or real_fsync(fd))
    fsync_tree(tmp_path / "model")
    expected = {"model/config.json", "model/weights.bin", "model/sub/vocab.txt", "model/sub", "model"}
    assert {str(Path(p).relative_to(tmp_path)) for p in synced} == expected
