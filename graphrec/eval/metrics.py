"""Top-K ranking metrics and rating errors.

A ranking is summarised by a boolean hit matrix: ``hits[u, j]`` is true when
the item that user ``u``'s list places at rank ``j`` (0-based) is relevant.
With ``num_relevant[u]`` relevant items, the metrics at cut-off ``K`` are

.. math::
    \\mathrm{Recall@K} = \\frac{\\sum_{j<K} h_{uj}}{|R_u|}, \\quad
    \\mathrm{Precision@K} = \\frac{\\sum_{j<K} h_{uj}}{K}, \\quad
    \\mathrm{HR@K} = [\\exists j<K: h_{uj}]

.. math::
    \\mathrm{NDCG@K} = \\frac{\\sum_{j<K} h_{uj} / \\log_2(j+2)}
                            {\\sum_{j<\\min(|R_u|, K)} 1 / \\log_2(j+2)}
    \\quad \\text{(Järvelin and Kekäläinen, 2002)}

.. math::
    \\mathrm{MRR@K} = 1 / (j^* + 1) \\text{ for the first hit } j^* < K, \\text{ else } 0, \\quad
    \\mathrm{MAP@K} = \\frac{\\sum_{j<K} \\mathrm{P@}(j+1) \\, h_{uj}}{\\min(|R_u|, K)}

Every metric is computed for all users at once from cumulative sums over the
rank axis; users with no relevant item get 0 and are left out of the means.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor

from graphrec.utils import suggest

#: The ranking metrics ``eval.metrics`` may name.
VALID_METRICS = ("recall", "precision", "hr", "ndcg", "mrr", "map")


def _check_names(names: Sequence[str]) -> tuple[str, ...]:
    if isinstance(names, str):
        names = (names,)
    for name in names:
        if name not in VALID_METRICS:
            raise ValueError(
                f"unknown ranking metric '{name}'{suggest(str(name), VALID_METRICS)}; "
                f"valid names are {', '.join(VALID_METRICS)}"
            )
    return tuple(names)


def _check_ks(ks: Sequence[int]) -> tuple[int, ...]:
    if isinstance(ks, int):
        ks = (ks,)
    ks = tuple(ks)
    if not ks:
        raise ValueError("ks must hold at least one cut-off K (got an empty sequence)")
    for k in ks:
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"every cut-off K in ks must be a positive integer (got {k!r} in {ks})")
    return ks


def ranking_metrics(hits: Tensor, num_relevant: Tensor, ks: Sequence[int],
                    names: Sequence[str] = VALID_METRICS) -> dict[str, Tensor]:
    """Per-user top-K metrics from a hit matrix.

    Args:
        hits: Bool tensor ``[U, maxK]``; ``hits[u, j]`` is true when user ``u``'s
            item at rank ``j`` (0-based) is relevant.
        num_relevant: Long tensor ``[U]``, the number of relevant items per user.
        ks: Cut-offs, each in ``1..maxK``.
        names: Metrics among ``recall, precision, hr, ndcg, mrr, map``.

    Returns:
        ``{"<name>@<k>": FloatTensor [U]}`` for every name and k.

    Raises:
        ValueError: On an unknown metric name, a cut-off above ``maxK``, or
            inputs of mismatched shapes.
    """
    names, ks = _check_names(names), _check_ks(ks)
    if hits.dim() != 2:
        raise ValueError(f"hits must be a 2-d [num_users, maxK] tensor (got shape {tuple(hits.shape)})")
    num_users, max_k = hits.shape
    if num_relevant.shape != (num_users,):
        raise ValueError(f"num_relevant must have shape [{num_users}] to match hits "
                         f"(got {tuple(num_relevant.shape)})")
    if max(ks) > max_k:
        raise ValueError(f"cut-off k={max(ks)} exceeds the {max_k} ranked items per user in hits; "
                         f"rank at least max(ks) items")

    device = hits.device
    hit = hits.to(torch.float32)  # [U, maxK]
    relevant = num_relevant.to(device=device, dtype=torch.float32)  # [U]
    rank = torch.arange(1, max_k + 1, device=device, dtype=torch.float32)  # [maxK], 1-based
    hit_count = hit.cumsum(dim=1)  # [U, maxK]: hits within the first j+1 ranks
    out: dict[str, Tensor] = {}

    if "ndcg" in names:
        discount = 1.0 / torch.log2(rank + 1.0)  # [maxK]: 1 / log2(j + 2) for 0-based j
        dcg = (hit * discount).cumsum(dim=1)  # [U, maxK]
        ideal = torch.cat([discount.new_zeros(1), discount.cumsum(0)])  # [maxK+1]: IDCG of n items
    if "mrr" in names:
        reciprocal = (hit / rank).cummax(dim=1).values  # [U, maxK]: 1/rank of first hit so far
    if "map" in names:
        average_precision = (hit_count / rank * hit).cumsum(dim=1)  # [U, maxK]

    for k in ks:
        count = hit_count[:, k - 1]  # [U]
        capped = relevant.clamp(max=k)  # min(|R_u|, K)
        for name in names:
            if name == "recall":
                value = count / relevant.clamp(min=1.0)
            elif name == "precision":
                value = count / k
            elif name == "hr":
                value = (count > 0).to(torch.float32)
            elif name == "ndcg":
                value = dcg[:, k - 1] / ideal[capped.long()].clamp(min=1e-12)
            elif name == "mrr":
                value = reciprocal[:, k - 1]
            else:  # map
                value = average_precision[:, k - 1] / capped.clamp(min=1.0)
            out[f"{name}@{k}"] = value
    return out


class RankingAccumulator:
    """Collects per-user ranking metrics over chunks and averages them.

    The mean runs over users with at least one relevant item; users with none
    carry no signal and are ignored (as in PyG's link-prediction metrics and
    RecBole's evaluator).

    Args:
        ks: Cut-offs K.
        names: Metrics among ``recall, precision, hr, ndcg, mrr, map``.
    """

    def __init__(self, ks: Sequence[int] = (10, 20), names: Sequence[str] = VALID_METRICS) -> None:
        self.ks = _check_ks(ks)
        self.names = _check_names(names)
        self.reset()

    def reset(self) -> None:
        """Forget every user seen so far."""
        self._values: dict[str, list[Tensor]] = {}
        self._num_relevant: list[Tensor] = []
        self._users: list[Tensor] = []

    def update(self, hits: Tensor, num_relevant: Tensor, users: Tensor | None = None) -> None:
        """Add a chunk of users.

        Args:
            hits: Bool tensor ``[B, maxK]`` (see :func:`ranking_metrics`).
            num_relevant: Long tensor ``[B]``.
            users: Optional user ids ``[B]``, kept for :meth:`per_user`.
        """
        values = ranking_metrics(hits, num_relevant, self.ks, self.names)
        for key, value in values.items():
            self._values.setdefault(key, []).append(value.detach().cpu())
        self._num_relevant.append(num_relevant.detach().cpu().long())
        if users is not None:
            self._users.append(users.detach().cpu().long())

    @property
    def num_users(self) -> int:
        """Number of users with at least one relevant item seen so far."""
        if not self._num_relevant:
            return 0
        return int((torch.cat(self._num_relevant) > 0).sum())

    def per_user(self) -> dict[str, Tensor]:
        """Per-user values: every ``"<name>@<k>"`` plus ``"num_relevant"`` (and ``"user"`` when given)."""
        out = {key: torch.cat(chunks) for key, chunks in self._values.items()}
        out["num_relevant"] = torch.cat(self._num_relevant) if self._num_relevant else torch.zeros(0, dtype=torch.long)
        if self._users:
            out["user"] = torch.cat(self._users)
        return out

    def compute(self) -> dict[str, float]:
        """Mean of every metric over users with ``num_relevant > 0`` (0.0 when there are none)."""
        keys = [f"{name}@{k}" for k in self.ks for name in self.names]
        if not self._num_relevant:
            return {key: 0.0 for key in keys}
        keep = torch.cat(self._num_relevant) > 0  # [U_seen]
        count = int(keep.sum())
        return {key: float(torch.cat(self._values[key])[keep].sum()) / count if count else 0.0 for key in keys}

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(ks={list(self.ks)}, names={list(self.names)})"


def rating_metrics(pred: Tensor, target: Tensor) -> dict[str, float]:
    """Root mean squared error and mean absolute error of rating predictions.

    Args:
        pred: Predicted ratings, any shape.
        target: True ratings, the same shape as ``pred``.

    Returns:
        ``{"rmse": float, "mae": float}``.
    """
    if pred.shape != target.shape:
        raise ValueError(f"pred and target must have the same shape (got {tuple(pred.shape)} "
                         f"and {tuple(target.shape)})")
    if pred.numel() == 0:
        raise ValueError("rating_metrics needs at least one prediction (got empty tensors)")
    error = pred.detach().to(torch.float64) - target.detach().to(device=pred.device, dtype=torch.float64)
    return {"rmse": math.sqrt(float((error ** 2).mean())), "mae": float(error.abs().mean())}
