r"""Prediction heads: turn user and item representations into scores.

A head takes final user and item embeddings (from any encoder) and scores either
given (user, item) pairs or every item for a batch of users. The dot product
is the head of MF and LightGCN: :math:`\hat{y}_{ui} = \mathbf{e}_u^\top \mathbf{e}_i`.
"""

from __future__ import annotations

import torch
from torch import Tensor


class DotProductHead(torch.nn.Module):
    r"""Scores by inner product, :math:`\hat{y}_{ui} = \mathbf{e}_u^\top \mathbf{e}_i` (no parameters)."""

    def forward(self, user_emb: Tensor, item_emb: Tensor) -> Tensor:
        """Scores of aligned pairs: ``user_emb`` ``[B, D]`` and ``item_emb`` ``[B, D]`` (or ``[B, N, D]``)."""
        if item_emb.dim() == 3:
            return torch.einsum("bd,bnd->bn", user_emb, item_emb)  # [B, N]
        return (user_emb * item_emb).sum(dim=-1)  # [B]

    def score_all(self, user_emb: Tensor, item_emb: Tensor) -> Tensor:
        """Scores of every item for each user: ``[B, D] x [I, D] -> [B, I]``."""
        return user_emb @ item_emb.T

    def reset_parameters(self) -> None:
        """Nothing to reset; present so every head has the same interface."""
