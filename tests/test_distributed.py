"""Data-parallel training: the helpers alone and in a 2-process gloo group, and `graphrec run --nproc 2` end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from graphrec import distributed
from graphrec.cli import main
from graphrec.errors import CheckpointError, ConfigError
from tests.conftest import write_synthetic_root

ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------------------ one process
def test_helpers_are_identities_in_one_process():
    positions = torch.arange(7)
    assert distributed.shard(positions) is positions
    assert (distributed.rank(), distributed.world_size(), distributed.is_main()) == (0, 1, True)
    assert distributed.all_reduce_mean({"recall@10": 0.5, "num_users": 3}, weight=3) == {"recall@10": 0.5,
                                                                                        "num_users": 3}
    assert distributed.from_main(lambda: 4) == 4 and distributed.main_first(lambda: 5) == 5
    assert distributed.gather_objects({"a": 1}) == [{"a": 1}]
    weight = torch.nn.Parameter(torch.ones(3))
    weight.grad = torch.full((3,), 2.0)
    distributed.average_gradients([weight])
    assert torch.equal(weight.grad, torch.full((3,), 2.0))


def test_launch_env_reads_torchrun_variables(monkeypatch):
    for key in distributed.ENV_KEYS:
        monkeypatch.delenv(key, raising=False)
    assert distributed.launch_env() is None
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ConfigError, match="WORLD_SIZE is set but RANK, LOCAL_RANK, MASTER_ADDR, MASTER_PORT is not"):
        distributed.launch_env()
    monkeypatch.setenv("RANK", "one")
    for key, value in (("LOCAL_RANK", "1"), ("MASTER_ADDR", "10.0.0.1"), ("MASTER_PORT", "29500")):
        monkeypatch.setenv(key, value)
    with pytest.raises(ConfigError, match="environment variable RANK='one': expected an integer"):
        distributed.launch_env()
    monkeypatch.setenv("RANK", "2")
    with pytest.raises(ConfigError, match="RANK=2 and WORLD_SIZE=2"):
        distributed.launch_env()
    monkeypatch.setenv("RANK", "1")
    assert distributed.launch_env() == distributed.LaunchEnv(1, 2, 1, "10.0.0.1", 29500)


def torchrun_env(monkeypatch, rank: int = 0, world: int = 2, local_rank: int = 0) -> None:
    for key, value in (("RANK", rank), ("WORLD_SIZE", world), ("LOCAL_RANK", local_rank),
                       ("MASTER_ADDR", "localhost"), ("MASTER_PORT", 29500)):
        monkeypatch.setenv(key, str(value))


def test_local_device_on_cpu(monkeypatch):
    torchrun_env(monkeypatch, rank=1, local_rank=1)
    assert distributed.local_device("cpu") == torch.device("cpu")


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_local_device_takes_the_gpu_of_the_local_rank(monkeypatch):
    torchrun_env(monkeypatch, rank=0, local_rank=0)
    assert distributed.local_device("auto") == distributed.local_device("cuda") == torch.device("cuda", 0)
    assert distributed.local_device("cuda:0") == torch.device("cuda", 0)  # an explicit device is kept
    torchrun_env(monkeypatch, rank=1, local_rank=torch.cuda.device_count())
    with pytest.raises(ConfigError, match=f"LOCAL_RANK={torch.cuda.device_count()} but torch sees"):
        distributed.local_device("cuda")


def test_tensor_digest_sees_every_value_and_ignores_order():
    tensors = {"a": torch.arange(6.0).view(2, 3), "b": torch.tensor(True), "c": torch.ones(2, dtype=torch.bfloat16)}
    digest = distributed.tensor_digest(tensors)
    assert distributed.tensor_digest(dict(reversed(tensors.items()))) == digest
    changed = dict(tensors, a=tensors["a"].clone().index_put_((torch.tensor(1), torch.tensor(2)), torch.tensor(9.0)))
    assert distributed.tensor_digest(changed) != digest
    assert distributed.tensor_digest(dict(tensors, a=tensors["a"].view(3, 2))) != digest  # same bytes, other shape


def test_nproc_must_be_positive_and_is_refused_under_torchrun(capsys, monkeypatch):
    config = str(ROOT / "configs" / "lightgcn.yaml")
    assert main(["run", config, "--nproc", "0"]) == 2
    assert "graphrec: error: --nproc must be at least 1, found 0" in capsys.readouterr().err
    torchrun_env(monkeypatch)
    assert main(["run", config, "--nproc", "2"]) == 2
    assert "already runs in one (RANK=0, WORLD_SIZE=2); leave --nproc out under torchrun" in capsys.readouterr().err


def test_one_process_models_are_refused_before_any_process_starts(capsys):
    assert main(["run", str(ROOT / "configs" / "sasrec.yaml"), "--nproc", "2"]) == 2
    assert "'sasrec' trains in one process, but this run has 2 data-parallel processes" in capsys.readouterr().err


def test_resume_with_another_world_size_is_refused(tmp_path):
    from graphrec.nn.mf import MF
    from graphrec.train import Trainer

    edges = torch.tensor([[0, 0, 1, 2, 3], [0, 1, 2, 3, 1]])
    settings = dict(epochs=1, batch_size=2, device="cpu", progress=False, run_dir=tmp_path)
    Trainer(MF(4, 4, embedding_dim=4), edges, **settings).fit()
    state_file = tmp_path / "checkpoint" / "state.json"
    state = json.loads(state_file.read_text())
    assert state["state"]["world_size"] == 1
    state["state"]["world_size"] = 2  # as a 2-process run writes it
    state_file.write_text(json.dumps(state))
    with pytest.raises(CheckpointError, match="was made by 2 data-parallel process\\(es\\), this run has 1"):
        Trainer(MF(4, 4, embedding_dim=4), edges, **dict(settings, epochs=2), resume=True).fit()


# ------------------------------------------------------------------------------------------ two processes
def _helpers_worker(rank: int, world: int, init_file: str, scratch: str) -> None:
    """Every helper in a real 2-process gloo group; an AssertionError here fails the test."""
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        assert (distributed.rank(), distributed.world_size(), distributed.is_main()) == (rank, 2, rank == 0)
        # 5 positions: padded to 6, rank 0 takes 0 2 4, rank 1 takes 1 3 0; equal step counts
        assert distributed.shard(torch.arange(5)).tolist() == [[0, 2, 4], [1, 3, 0]][rank]

        # gradients: averaged; present on one rank only -> zero elsewhere; present nowhere -> stay None
        distributed._BUCKET_ELEMENTS = 4  # several buckets
        both, one, none = (torch.nn.Parameter(torch.zeros(2, 3)) for _ in range(3))
        frozen = torch.nn.Parameter(torch.zeros(2), requires_grad=False)
        both.grad = torch.full((2, 3), float(rank + 1))
        if rank == 1:
            one.grad = torch.full((2, 3), 4.0)
        distributed.average_gradients([both, one, none, frozen])
        assert torch.equal(both.grad, torch.full((2, 3), 1.5)) and torch.equal(one.grad, torch.full((2, 3), 2.0))
        assert none.grad is None and frozen.grad is None

        # metrics: user-weighted means, counts summed; a rank without users adds nothing
        merged = distributed.all_reduce_mean({"recall@10": [0.2, 0.5][rank], "num_users": [1, 3][rank]},
                                             weight=[1, 3][rank], summed=("num_users",))
        assert merged == pytest.approx({"recall@10": (0.2 + 3 * 0.5) / 4, "num_users": 4})
        empty = distributed.all_reduce_mean({"recall@10": [float("nan"), 0.5][rank]}, weight=[0, 2][rank])
        assert empty == {"recall@10": 0.5}

        # rank 0's result everywhere; rank 0's failure raised everywhere
        calls = []

        def claim() -> str:
            calls.append(rank)
            return f"from {rank}"

        def fail() -> None:
            raise ConfigError("no such folder")

        assert distributed.from_main(claim) == "from 0" and calls == ([0] if rank == 0 else [])
        with pytest.raises(ConfigError if rank == 0 else distributed.MainRankError, match="no such folder"):
            distributed.from_main(fail)
        marker = Path(scratch) / "cache"

        def build_or_read() -> bool:  # True when the cache was there already
            found = marker.exists()
            marker.write_text("built")
            return found

        assert distributed.main_first(build_or_read) is (rank == 1)  # rank 1 runs once rank 0 is done
        assert distributed.gather_objects(rank * 10) == [0, 10]

        # start from rank 0's weights; sparse non-persistent buffers (a graph) are left alone
        torch.manual_seed(rank)
        module = torch.nn.Linear(3, 2)
        module.register_buffer("adjacency", torch.eye(3).to_sparse_csr(), persistent=False)
        distributed.broadcast_module(module)
        sync = distributed.weights_in_sync(module)
        assert sync["in_sync"] and sync["world_size"] == 2
        torch.manual_seed(0)
        assert torch.equal(module.weight, torch.nn.Linear(3, 2).weight)
        if rank == 1:
            module.bias.data += 1
        assert not distributed.weights_in_sync(module)["in_sync"]
    finally:
        dist.destroy_process_group()


def test_helpers_in_a_two_process_gloo_group(tmp_path):
    torch.multiprocessing.spawn(_helpers_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2,
                                join=True)


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory):
    return write_synthetic_root(tmp_path_factory.mktemp("ddp-data"), num_users=200, num_items=100,
                                num_communities=4, interactions_per_user=15, seed=3)


def graphrec_run(root: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """`python -m graphrec run configs/lightgcn.yaml` on the synthetic graph, with ``args`` appended."""
    overrides = ["graph.recipe=synthetic", f"graph.data_root={root}", f"graph.cache_dir={root / 'cache'}",
                 "train.device=cpu", "train.progress=false", "train.batch_size=128", "train.lr=0.01",
                 "train.eval_every=1", f"output.dir={root / 'runs'}"]
    env = dict(os.environ, OMP_NUM_THREADS="1", DGLBACKEND="pytorch")
    return subprocess.run([sys.executable, "-m", "graphrec", "run", str(ROOT / "configs" / "lightgcn.yaml"),
                           *overrides, *args], capture_output=True, text=True, timeout=timeout, cwd=root, env=env)


def test_two_processes_train_one_model_and_rank_0_writes_it(synthetic_root):
    done = graphrec_run(synthetic_root, "train.epochs=4", "--nproc", "2")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("run folder:") == 1 and "error" not in done.stderr  # rank 0 alone printed
    folders = list((synthetic_root / "runs").iterdir())
    assert len(folders) == 1, folders  # rank 1 claimed no folder of its own
    folder = folders[0]
    metrics = json.loads((folder / "metrics.json").read_text())
    sync = metrics["distributed"]
    assert sync["world_size"] == 2 and sync["in_sync"]
    # each rank hashed its own final weights: equal, and equal to the best weights rank 0 saved
    from graphrec.utils import load_tensors

    assert sync["weights_sha256"] == [distributed.tensor_digest(load_tensors(folder / "best.safetensors"))] * 2
    losses = [row["loss"] for row in json.loads((folder / "history.json").read_text())]
    assert len(losses) == 4 and losses[-1] < 0.8 * losses[0], losses
    assert json.loads((folder / "environment.json").read_text())["world_size"] == 2
    assert metrics["test"]["recall@20"] > 0.3  # learned something (popularity is far lower on this graph)


@pytest.mark.slow
def test_a_two_process_run_resumes_bit_for_bit(synthetic_root):
    straight = graphrec_run(synthetic_root, "train.epochs=4", "--run-dir", "runs-resume/straight", "--nproc", "2")
    first = graphrec_run(synthetic_root, "train.epochs=2", "--run-dir", "runs-resume/resumed", "--nproc", "2")
    resumed = graphrec_run(synthetic_root, "train.epochs=4", "--run-dir", "runs-resume/resumed", "--resume",
                           "--nproc", "2")
    for done in (straight, first, resumed):
        assert done.returncode == 0, done.stdout + done.stderr
    runs = synthetic_root / "runs-resume"
    expected, got = (json.loads((runs / name / "metrics.json").read_text()) for name in ("straight", "resumed"))
    assert got["test"] == expected["test"] and got["distributed"] == expected["distributed"]

    def history(name: str) -> list[dict]:
        return [{k: v for k, v in row.items() if k != "seconds"}
                for row in json.loads((runs / name / "history.json").read_text())]

    assert history("resumed") == history("straight")
    one_process = graphrec_run(synthetic_root, "train.epochs=6", "--run-dir", "runs-resume/resumed", "--resume")
    assert one_process.returncode == 2
    assert "was made by 2 data-parallel process(es), this run has 1" in one_process.stderr


@pytest.mark.slow
def test_validation_sharded_over_two_processes_matches_one_process(synthetic_root):
    """Popularity trains nothing: the 2-process validation (users split, means all-reduced) is the 1-process one."""
    for name, extra in (("one", []), ("two", ["--nproc", "2"])):
        done = graphrec_run(synthetic_root, "model.name=popularity", "--run-dir", f"runs-popularity/{name}", *extra)
        assert done.returncode == 0, done.stdout + done.stderr
    one, two = (json.loads((synthetic_root / "runs-popularity" / name / "metrics.json").read_text())["valid"]
                for name in ("one", "two"))
    assert two == pytest.approx(one, rel=1e-6) and two["num_users"] == one["num_users"] > 0
