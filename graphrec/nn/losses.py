r"""Recommendation losses on dot-product scores of positive and sampled negative items."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def _broadcast_pair(pos_scores: Tensor, neg_scores: Tensor, name: str) -> tuple[Tensor, Tensor]:
    """Returns ``pos_scores`` shaped to broadcast against ``neg_scores`` ``[B]`` or ``[B, N]``."""
    if pos_scores.dim() != 1:
        raise ValueError(f"{name}: pos_scores has shape {tuple(pos_scores.shape)}; expected [B]")
    if neg_scores.dim() not in (1, 2) or neg_scores.size(0) != pos_scores.size(0):
        raise ValueError(
            f"{name}: neg_scores has shape {tuple(neg_scores.shape)}; expected [B] or [B, N] with "
            f"B = {pos_scores.size(0)} as in pos_scores"
        )
    if neg_scores.dim() == 2:
        pos_scores = pos_scores.unsqueeze(-1)  # [B, 1]
    return pos_scores, neg_scores


def bpr_loss(pos_scores: Tensor, neg_scores: Tensor) -> Tensor:
    r"""Bayesian Personalized Ranking loss (`Rendle et al., UAI 2009 <https://arxiv.org/abs/1205.2618>`_).

    .. math::
        \mathcal{L}_{\text{BPR}} = \frac{1}{BN} \sum_{b=1}^{B} \sum_{n=1}^{N}
        -\ln \sigma\big(\hat{y}_{b}^{+} - \hat{y}_{bn}^{-}\big)

    Args:
        pos_scores (Tensor): Scores of the positive items ``[B]``.
        neg_scores (Tensor): Scores of the negatives ``[B]`` or ``[B, N]``
            (``N`` negatives per positive).

    Returns:
        The mean loss, a scalar.
    """
    pos_scores, neg_scores = _broadcast_pair(pos_scores, neg_scores, "bpr_loss")
    return -F.logsigmoid(pos_scores - neg_scores).mean()


def bce_loss(pos_scores: Tensor, neg_scores: Tensor) -> Tensor:
    r"""Binary cross-entropy on logits: positives labelled 1, sampled negatives 0.

    .. math::
        \mathcal{L}_{\text{BCE}} = \frac{1}{B} \sum_{b} -\ln \sigma(\hat{y}_{b}^{+})
        + \frac{1}{BN} \sum_{b,n} -\ln\big(1 - \sigma(\hat{y}_{bn}^{-})\big)

    Positives and negatives are averaged separately, so the number of negatives
    does not change the weight of the positive term. Computed with
    ``softplus``, which is stable for logits of any size.

    Args:
        pos_scores (Tensor): Logits of the positive items ``[B]``.
        neg_scores (Tensor): Logits of the negatives ``[B]`` or ``[B, N]``.

    Returns:
        The loss, a scalar.
    """
    _broadcast_pair(pos_scores, neg_scores, "bce_loss")
    return F.softplus(-pos_scores).mean() + F.softplus(neg_scores).mean()


def l2_regularization(*tensors: Tensor, batch_size: int | None = None) -> Tensor:
    r"""Squared L2 norm of the embeddings a mini-batch used, as LightGCN regularises.

    .. math::
        \mathcal{R} = \frac{1}{2B} \sum_{t} \lVert \mathbf{T}_t \rVert_F^2

    (`He et al., SIGIR 2020 <https://arxiv.org/abs/2002.02126>`_, Eq. 15, averaged
    over the batch); multiply by the weight decay :math:`\lambda`. Pass the
    layer-0 embeddings of the batch's users, positive items and negatives.

    Args:
        *tensors (Tensor): Embeddings, e.g. ``[B, D]`` each.
        batch_size (int, optional): :math:`B`. (default: ``tensors[0].size(0)``)

    Returns:
        The scalar :math:`\mathcal{R}`.
    """
    if not tensors:
        raise ValueError("l2_regularization needs at least one tensor")
    if batch_size is None:
        batch_size = tensors[0].size(0) if tensors[0].dim() > 0 else 1
    if batch_size <= 0:
        raise ValueError(f"batch_size = {batch_size}; expected a positive int")
    total = sum(tensor.pow(2).sum() for tensor in tensors)
    return total / (2 * batch_size)
