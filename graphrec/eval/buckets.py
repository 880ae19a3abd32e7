"""Ranking metrics per user-activity bucket: how a model serves cold, light and heavy users.

A user's activity is their number of training interactions. Bucket edges
``(10, 20, 50, 100)`` give the buckets ``<10``, ``10-19``, ``20-49``, ``50-99`` and
``>=100``; the cold-start report is the ``<10`` bucket (users with at most 9 training
interactions, the "sequence length [...] less than 10" of Zeng et al., 2021, Section 4.1).

A bucket's value of a metric is the mean over its evaluated users with at least
one relevant item, as :class:`graphrec.eval.metrics.RankingAccumulator` averages;
so the overall mean is the ``num_users``-weighted mean of the buckets' means.
Every bucket is reported, in edge order, so tables of several runs line up; an
empty bucket holds only ``{"num_users": 0}`` (the mean of no user is undefined,
not 0).
"""

from __future__ import annotations

from numbers import Integral
from typing import Sequence

import torch
from torch import Tensor

DEFAULT_EDGES = (10, 20, 50, 100)


def user_activity(train_edge_index: Tensor, num_users: int) -> Tensor:
    """``[U]`` long: training interactions per user (row 0 of a ``[2, E]`` user -> item edge index)."""
    if train_edge_index.dim() != 2 or train_edge_index.size(0) != 2:
        raise ValueError(f"train_edge_index must have shape [2, E] (got {tuple(train_edge_index.shape)})")
    users = train_edge_index[0].detach().to("cpu", torch.long)
    if users.numel() and (int(users.min()) < 0 or int(users.max()) >= num_users):
        raise ValueError(f"train_edge_index has user ids in [{int(users.min())}, {int(users.max())}]; "
                         f"expected 0..{num_users - 1} (num_users={num_users})")
    return torch.bincount(users, minlength=num_users)


def bucket_labels(edges: Sequence[int] = DEFAULT_EDGES) -> list[str]:
    """Names of the ``len(edges) + 1`` buckets: ``["<10", "10-19", "20-49", "50-99", ">=100"]``."""
    edges = _check_edges(edges)
    inner = [str(low) if high - low == 1 else f"{low}-{high - 1}" for low, high in zip(edges[:-1], edges[1:])]
    return [f"<{edges[0]}", *inner, f">={edges[-1]}"]


def activity_buckets(train_counts: Tensor, edges: Sequence[int] = DEFAULT_EDGES) -> tuple[Tensor, list[str]]:
    """The activity bucket of every user.

    Args:
        train_counts: ``[U]`` training interactions per user (:func:`user_activity`).
        edges: Increasing positive bucket edges; bucket ``b`` holds counts in ``[edges[b-1], edges[b])``.

    Returns:
        ``(bucket [U] long in 0..len(edges), labels)``.
    """
    edges = _check_edges(edges)
    counts = torch.as_tensor(train_counts).view(-1)
    counts = counts if counts.is_floating_point() else counts.long()
    boundaries = torch.tensor(edges, dtype=counts.dtype, device=counts.device)
    return torch.bucketize(counts, boundaries, right=True), bucket_labels(edges)


def bucket_metrics(per_user: dict[str, Tensor], users: Tensor | None, train_counts: Tensor,
                   edges: Sequence[int] = DEFAULT_EDGES) -> dict[str, dict[str, float]]:
    """Mean ranking metrics per activity bucket.

    Args:
        per_user: Per-user values as ``full_ranking(..., return_per_user=True)`` returns them:
            ``"<name>@<k>"`` tensors ``[U_eval]``, and ``"num_relevant"`` (users with none are
            left out of the means) and ``"user"``.
        users: ``[U_eval]`` id of each evaluated user; ``None`` takes ``per_user["user"]``.
        train_counts: ``[U]`` training interactions of every user (:func:`user_activity`).
        edges: Bucket edges, see :func:`activity_buckets`.

    Returns:
        ``{label: {"recall@10": mean, ..., "num_users": n}}`` for every bucket in edge order;
        an empty bucket maps to ``{"num_users": 0}``.

    Raises:
        ValueError: No user ids, per-user tensors of unequal length, or user ids outside ``train_counts``.
    """
    if users is None:
        if "user" not in per_user:
            raise ValueError("bucket_metrics needs the evaluated user ids: pass users or a per_user dict with 'user'")
        users = per_user["user"]
    users = torch.as_tensor(users, dtype=torch.long).view(-1).cpu()
    counts = torch.as_tensor(train_counts).view(-1).cpu()
    if users.numel() and (int(users.min()) < 0 or int(users.max()) >= counts.numel()):
        raise ValueError(f"users must lie in 0..{counts.numel() - 1} to index train_counts "
                         f"(got ids in [{int(users.min())}, {int(users.max())}])")
    keys = [key for key in per_user if "@" in key]
    for key in [*keys, "num_relevant"]:
        if key in per_user and per_user[key].numel() != users.numel():
            raise ValueError(f"per_user['{key}'] has {per_user[key].numel()} values but there are "
                             f"{users.numel()} users; every per-user tensor needs one value per user")
    bucket, labels = activity_buckets(counts[users], edges)  # [U_eval]
    keep = torch.ones_like(users, dtype=torch.bool)  # [U_eval]: users with a relevant item
    if "num_relevant" in per_user:
        keep = per_user["num_relevant"].cpu() > 0
    bucket = bucket[keep]
    num_users = torch.bincount(bucket, minlength=len(labels))  # [num_buckets]
    sums = {key: torch.zeros(len(labels), dtype=torch.float64).index_add_(0, bucket, per_user[key].cpu()[keep].double())
            for key in keys}
    out: dict[str, dict[str, float]] = {}
    for index, label in enumerate(labels):
        size = int(num_users[index])
        row = {key: float(sums[key][index]) / size for key in keys} if size else {}
        row["num_users"] = size
        out[label] = row
    return out


def _check_edges(edges: Sequence[int]) -> tuple[int, ...]:
    values = tuple(edges)
    if not values:
        raise ValueError("activity bucket edges must hold at least one edge (got an empty sequence)")
    if any(isinstance(v, bool) or not isinstance(v, Integral) or v < 1 for v in values):
        raise ValueError(f"activity bucket edges must be positive integers (got {list(values)})")
    if any(high <= low for low, high in zip(values[:-1], values[1:])):
        raise ValueError(f"activity bucket edges must increase strictly (got {list(values)})")
    return tuple(int(v) for v in values)
