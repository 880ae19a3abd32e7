"""Data-parallel training: one process per CPU socket or GPU, started by ``torchrun`` (or ``graphrec run --nproc N``).

torchrun starts every process with ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and
``MASTER_PORT`` set; :func:`process_group` joins them (gloo on CPU, NCCL on CUDA, device
``cuda:LOCAL_RANK``). Every rank holds the whole graph and the whole model; each takes a disjoint
shard of every epoch's training edges (:func:`shard`), and after each backward pass
:func:`average_gradients` replaces every gradient by its mean over the ranks, so all ranks take the
same optimiser step and keep identical weights (Li et al., "PyTorch Distributed: Experiences on
Accelerating Data Parallel Training", VLDB 2020, the scheme DistributedDataParallel implements).

Why not wrap the model in ``DistributedDataParallel``? graphrec's models are called as ``model()``
for the whole graph and then used outside ``forward`` (``ego_embeddings()``, ``score()``,
``encode()`` on neighbour-sampled subgraphs), which DDP's forward hooks do not see; parameters
that a step leaves without gradient (frozen parts, node types a batch does not reach) would need
``find_unused_parameters=True`` and a graph traversal every step; and DDP's gain, overlapping
communication with the backward pass, is nil for embedding tables, whose gradients are ready
only when the backward pass ends. One bucketed all-reduce after ``backward()`` computes the same
averaged gradient for any model and any way of calling it.

Outside torchrun every helper is a no-op for a single process, so training code calls them
unconditionally.
"""

from __future__ import annotations

import hashlib
import logging
import os
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Callable, Iterable, Iterator, TypeVar

import torch
import torch.distributed as dist
from torch import Tensor

from graphrec.errors import ConfigError, GraphrecError
from graphrec.utils import resolve_device

T = TypeVar("T")
ENV_KEYS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
# Gradients are all-reduced in buckets of at most this many elements (64 MiB of fp32), which bounds
# the extra memory of the flat copy on graphs with millions of nodes.
_BUCKET_ELEMENTS = 16 * 2**20


class MainRankError(GraphrecError):
    """Raised on the other ranks when work that only rank 0 does (see :func:`from_main`) failed there.

    Rank 0 reports the error itself; the command line prints nothing more for this one.
    """


@dataclass(frozen=True)
class LaunchEnv:
    """What torchrun tells a process about its group (the environment variables :data:`ENV_KEYS`)."""

    rank: int
    world_size: int
    local_rank: int
    master_addr: str
    master_port: int


def launch_env() -> LaunchEnv | None:
    """The torchrun environment of this process, or None when it was not started by torchrun.

    Raises:
        ConfigError: ``WORLD_SIZE`` is set but another variable is missing or not a valid number.
    """
    if "WORLD_SIZE" not in os.environ:
        return None
    missing = [key for key in ENV_KEYS if key not in os.environ]
    if missing:
        raise ConfigError(f"WORLD_SIZE is set but {', '.join(missing)} is not: start data-parallel runs with "
                          "torchrun (or `graphrec run CONFIG --nproc N`), which sets all of "
                          f"{', '.join(ENV_KEYS)}")
    numbers = {}
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_PORT"):
        try:
            numbers[key] = int(os.environ[key])
        except ValueError:
            raise ConfigError(f"environment variable {key}={os.environ[key]!r}: expected an integer") from None
    if numbers["WORLD_SIZE"] < 1 or not 0 <= numbers["RANK"] < numbers["WORLD_SIZE"]:
        raise ConfigError(f"environment: RANK={numbers['RANK']} and WORLD_SIZE={numbers['WORLD_SIZE']}; expected "
                          "WORLD_SIZE >= 1 and 0 <= RANK < WORLD_SIZE")
    return LaunchEnv(numbers["RANK"], numbers["WORLD_SIZE"], numbers["LOCAL_RANK"], os.environ["MASTER_ADDR"],
                     numbers["MASTER_PORT"])


def is_distributed() -> bool:
    """Whether this process is one of several in an initialised process group."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's rank in the group (0 outside one)."""
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    """Processes in the group (1 outside one)."""
    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    """Whether this process is rank 0, the one that writes the run folder and prints."""
    return rank() == 0


def local_device(device: str) -> torch.device:
    """This process's device for the config's ``train.device``.

    Under torchrun, ``auto`` (with CUDA) and ``cuda`` mean ``cuda:LOCAL_RANK``: each process of a
    host takes its own GPU. Alone, the device is :func:`graphrec.utils.resolve_device`'s.
    """
    env = launch_env()
    resolved = resolve_device(device)
    if env is None or env.world_size == 1 or resolved.type != "cuda" or device not in ("auto", "cuda"):
        return resolved
    if env.local_rank >= torch.cuda.device_count():
        raise ConfigError(f"LOCAL_RANK={env.local_rank} but torch sees {torch.cuda.device_count()} CUDA device(s); "
                          "start at most one process per GPU (--nproc-per-node)")
    return torch.device("cuda", env.local_rank)


@contextmanager
def process_group(device: str = "auto", timeout_minutes: float = 30.0) -> Iterator[torch.device]:
    """Join torchrun's process group for the duration of the block; yields this process's device.

    gloo on CPU, NCCL on CUDA. Outside torchrun, with ``WORLD_SIZE=1`` or inside a group that is
    already initialised, nothing is started (and nothing destroyed at the end).
    """
    env = launch_env()
    target = local_device(device)
    if env is None or env.world_size == 1 or (dist.is_available() and dist.is_initialized()):
        yield target
        return
    if not dist.is_available():
        raise ConfigError("this torch build has no torch.distributed; data-parallel training needs it")
    backend = "nccl" if target.type == "cuda" else "gloo"
    if target.type == "cuda":
        torch.cuda.set_device(target)
    dist.init_process_group(backend, init_method="env://", timeout=timedelta(minutes=timeout_minutes),
                            **({"device_id": target} if target.type == "cuda" else {}))
    try:
        yield target
    finally:
        dist.destroy_process_group()


def _comm_device() -> torch.device:
    """Where collective tensors live: the current GPU under NCCL, else the CPU."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def barrier() -> None:
    """Wait until every rank gets here."""
    if is_distributed():
        dist.barrier()


def shard(positions: Tensor) -> Tensor:
    """This rank's share of ``positions`` ``[N]`` (rows ``rank::world``), padded so every rank gets the same count.

    Like ``DistributedSampler``, the first positions are repeated to make ``N`` a multiple of the
    world size, so every rank runs the same number of steps (a rank with fewer would leave the
    others waiting in a collective). Alone, ``positions`` itself.
    """
    world = world_size()
    if world == 1:
        return positions
    padding = (-positions.numel()) % world
    if padding:
        repeats = positions.repeat((padding + positions.numel() - 1) // max(positions.numel(), 1))
        positions = torch.cat([positions, repeats[:padding]])
    return positions[rank()::world]


def broadcast_module(module: torch.nn.Module, src: int = 0) -> None:
    """Copy rank ``src``'s parameters and persistent buffers into every rank's ``module`` (the start of training).

    Non-persistent buffers (a graph's sparse adjacency, cached text features) are built from the
    data, the same on every rank, and stay as they are.
    """
    if not is_distributed():
        return
    with torch.no_grad():
        for tensor in module.state_dict().values():  # views of the module's own tensors
            if tensor.layout == torch.strided:
                dist.broadcast(tensor, src)


def average_gradients(parameters: Iterable[Tensor]) -> None:
    """Replace every gradient by its mean over the ranks: the gradient of the loss over all ranks' batches.

    Called after ``backward()`` and before ``optimizer.step()``. A parameter with a gradient on
    some ranks and none on others counts as zero where it has none; one with no gradient on any
    rank keeps none, so the optimiser skips it as it would in one process. Gradients travel in
    buckets of at most 16M elements per dtype, one all-reduce each.
    """
    if not is_distributed():
        return
    params = [p for p in parameters if p.requires_grad]
    if not params:
        return
    device = _comm_device()
    present = torch.tensor([p.grad is not None for p in params], dtype=torch.int32, device=device)
    dist.all_reduce(present, op=dist.ReduceOp.MAX)
    used = [p for p, flag in zip(params, present.tolist()) if flag]
    for p in used:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        elif p.grad.is_sparse:
            p.grad = p.grad.to_dense()
    world = dist.get_world_size()
    for bucket in _buckets(used):
        flat = torch.cat([p.grad.reshape(-1) for p in bucket])  # [sum of numels]
        dist.all_reduce(flat)
        flat.div_(world)
        offset = 0
        for p in bucket:
            p.grad.copy_(flat[offset:offset + p.numel()].view_as(p.grad))
            offset += p.numel()


def _buckets(params: list[Tensor]) -> Iterator[list[Tensor]]:
    """Consecutive groups of parameters of one dtype and device, at most :data:`_BUCKET_ELEMENTS` each."""
    bucket: list[Tensor] = []
    size = 0
    for p in params:
        if bucket and (size + p.numel() > _BUCKET_ELEMENTS or p.grad.dtype != bucket[0].grad.dtype
                       or p.grad.device != bucket[0].grad.device):
            yield bucket
            bucket, size = [], 0
        bucket.append(p)
        size += p.numel()
    if bucket:
        yield bucket


def all_reduce_mean(values: dict[str, float], weight: float = 1.0, summed: Iterable[str] = ()) -> dict[str, float]:
    """The ``weight``-weighted mean of each value over the ranks (e.g. a metric averaged over
    ``weight`` users on each rank); the keys in ``summed`` (e.g. a user count) are added up instead.
    Alone, ``values`` unchanged.

    A rank with ``weight`` 0 adds nothing to the means (its values may be NaN). Every rank gets
    rank 0's result bit for bit, so decisions taken on it (early stopping) agree.
    """
    if not is_distributed():
        return dict(values)
    summed = set(summed)
    keys = sorted(values)
    parts = [values[k] if k in summed else (values[k] * weight if weight else 0.0) for k in keys]
    sums = torch.tensor([*parts, float(weight)], dtype=torch.float64, device=_comm_device())
    dist.all_reduce(sums)
    dist.broadcast(sums, 0)  # one result on every rank, whatever the reduction algorithm
    total = float(sums[-1])
    return {k: s if k in summed else (s / total if total else float("nan"))
            for k, s in zip(keys, sums[:-1].tolist())}


def broadcast_object(obj: T, src: int = 0) -> T:
    """Rank ``src``'s ``obj`` on every rank (any picklable object)."""
    if not is_distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src)
    return box[0]


def gather_objects(obj: Any) -> list[Any]:
    """Every rank's ``obj``, in rank order, on every rank; alone, ``[obj]``."""
    if not is_distributed():
        return [obj]
    gathered: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, obj)
    return gathered


def from_main(fn: Callable[[], T]) -> T:
    """Run ``fn`` on rank 0 only and return its result on every rank (e.g. claiming the run folder).

    An exception on rank 0 is raised there; the other ranks raise :class:`MainRankError` with
    its message instead of waiting for a result that never comes.
    """
    if not is_distributed():
        return fn()
    return _after_main(fn, share=True)


def main_first(fn: Callable[[], T]) -> T:
    """Run ``fn`` on rank 0, then on the other ranks (e.g. building a graph cache the others then read).

    When it fails on rank 0 the other ranks raise :class:`MainRankError` without running it.
    """
    if not is_distributed():
        return fn()
    return _after_main(fn, share=False)


def _after_main(fn: Callable[[], T], share: bool) -> T:
    if is_main():
        try:
            result = fn()
        except Exception as exc:  # the other ranks learn of it, then it is raised here
            broadcast_object((False, f"{type(exc).__name__}: {exc}"))
            raise
        broadcast_object((True, result if share else None))
        return result
    ok, value = broadcast_object(None)
    if not ok:
        raise MainRankError(f"rank 0 failed: {value}")
    return value if share else fn()


def tensor_digest(tensors: dict[str, Tensor]) -> str:
    """SHA-256 over the names, dtypes, shapes and bytes of ``tensors`` (in name order): equal digests, equal weights."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        tensor = tensors[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def weights_in_sync(module: torch.nn.Module) -> dict[str, Any]:
    """Every rank's digest of ``module.state_dict()``: ``{"world_size", "weights_sha256": [...], "in_sync"}``.

    Data-parallel training keeps the ranks' weights identical; this records the proof in the run
    folder (``metrics.json``) and costs one hash of the weights.
    """
    digests = gather_objects(tensor_digest(module.state_dict()))
    return {"world_size": len(digests), "weights_sha256": digests, "in_sync": len(set(digests)) == 1}


def launch_local(nproc: int, argv: list[str], quiet: bool = True) -> int:
    """Run ``python -m graphrec ARGV`` in ``nproc`` processes of one data-parallel group on this host.

    What ``graphrec run CONFIG --nproc N`` does: torchrun's own launcher (``torch.distributed.run``)
    with a standalone rendezvous on a free local port, no restarts. Without ``OMP_NUM_THREADS`` each
    process gets an equal share of this host's cores. ``quiet`` keeps the launcher's own log lines
    (which process failed, with what code) off stderr: the failed process has said why. Returns the
    group's exit code: 0, or the first failed process's (a signal ``s`` as ``128 + s``).
    """
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    if nproc < 1:
        raise ConfigError(f"--nproc must be at least 1, found {nproc}")
    env = launch_env()
    if env is not None:
        raise ConfigError(f"--nproc starts a process group of its own, but this process already runs in one "
                          f"(RANK={env.rank}, WORLD_SIZE={env.world_size}); leave --nproc out under torchrun")
    args = parse_args(["--standalone", f"--nproc-per-node={nproc}", "--max-restarts=0", "-m", "graphrec", *argv])
    threads_set = "OMP_NUM_THREADS" in os.environ
    if not threads_set:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        os.environ["OMP_NUM_THREADS"] = str(max(1, cores // nproc))
    loggers = [logging.getLogger(name) for name in list(logging.root.manager.loggerDict)
               if name.startswith("torch.distributed")] if quiet else []
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        run(args)
    except ChildFailedError as exc:
        _, failure = exc.get_first_failure()
        return failure.exitcode if failure.exitcode > 0 else 128 - failure.exitcode if failure.exitcode else 1
    finally:
        if not threads_set:
            del os.environ["OMP_NUM_THREADS"]
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)
    return 0
