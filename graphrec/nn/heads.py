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


def _score_all_chunked(head: torch.nn.Module, user_emb: Tensor, item_emb: Tensor, max_pairs: int) -> Tensor:
    """``head(user, every item)`` for each user, ``max_pairs`` (user, item) pairs at a time: ``[B, I]``."""
    rows = max(1, max_pairs // max(item_emb.size(0), 1))
    chunks = []
    for start in range(0, user_emb.size(0), rows):
        users = user_emb[start:start + rows]  # [b, D]
        chunks.append(head(users, item_emb.unsqueeze(0).expand(users.size(0), -1, -1)))  # [b, I]
    return torch.cat(chunks) if chunks else user_emb.new_zeros(0, item_emb.size(0))


class LinearDotHead(torch.nn.Module):
    r"""A dot product after one learned linear map per side,
    :math:`\hat{y}_{ui} = (\mathbf{W}_u \mathbf{e}_u)^\top (\mathbf{W}_i \mathbf{e}_i)`.

    Both maps start as the identity, so on a pre-trained encoder the head starts from the encoder's
    own dot-product scores; it is the smallest head that can re-weight a frozen encoder's dimensions
    ("pre-train, fine-tune extra part").

    Args:
        channels (int): Width :math:`D` of the user and item representations.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.user = torch.nn.Linear(channels, channels, bias=False)
        self.item = torch.nn.Linear(channels, channels, bias=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for linear in (self.user, self.item):
            torch.nn.init.eye_(linear.weight)

    def forward(self, user_emb: Tensor, item_emb: Tensor) -> Tensor:
        """Scores of ``[B, D]`` users against ``[B, D]`` (or ``[B, N, D]``) items: ``[B]`` (or ``[B, N]``)."""
        return DotProductHead()(self.user(user_emb), self.item(item_emb))

    def score_all(self, user_emb: Tensor, item_emb: Tensor) -> Tensor:
        return self.user(user_emb) @ self.item(item_emb).T  # [B, I]


class MLPHead(torch.nn.Module):
    r"""An MLP over the pair, :math:`\hat{y}_{ui} = \mathbf{e}_u^\top\mathbf{e}_i +
    \mathrm{MLP}([\mathbf{e}_u \,\|\, \mathbf{e}_i \,\|\, \mathbf{e}_u \odot \mathbf{e}_i])`.

    The neural part follows NCF's MLP tower (`He et al., WWW 2017 <https://arxiv.org/abs/1708.05031>`_);
    its last layer starts at zero, so the head starts as the plain dot product and learns a correction.

    Args:
        channels (int): Width :math:`D` of the user and item representations.
        hidden (int, optional): Width of the hidden layer. (default: ``64``)
        max_pairs (int, optional): (user, item) pairs scored at once by :meth:`score_all`,
            which bounds its memory. (default: ``2**21``)
    """

    def __init__(self, channels: int, hidden: int = 64, max_pairs: int = 2**21) -> None:
        super().__init__()
        self.channels, self.hidden, self.max_pairs = channels, hidden, max_pairs
        self.mlp = torch.nn.Sequential(torch.nn.Linear(3 * channels, hidden), torch.nn.ReLU(),
                                       torch.nn.Linear(hidden, 1))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.mlp[0].reset_parameters()
        torch.nn.init.zeros_(self.mlp[2].weight)
        torch.nn.init.zeros_(self.mlp[2].bias)

    def forward(self, user_emb: Tensor, item_emb: Tensor) -> Tensor:
        """Scores of ``[B, D]`` users against ``[B, D]`` (or ``[B, N, D]``) items: ``[B]`` (or ``[B, N]``)."""
        if item_emb.dim() == 3:
            user_emb = user_emb.unsqueeze(1).expand_as(item_emb)  # [B, N, D]
        pair = torch.cat([user_emb, item_emb, user_emb * item_emb], dim=-1)  # [..., 3D]
        return (user_emb * item_emb).sum(-1) + self.mlp(pair).squeeze(-1)

    def score_all(self, user_emb: Tensor, item_emb: Tensor) -> Tensor:
        return _score_all_chunked(self, user_emb, item_emb, self.max_pairs)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(channels={self.channels}, hidden={self.hidden})"


class RatingHead(torch.nn.Module):
    r"""Rating regression, :math:`\hat{r}_{ui} = \mu + b_u + b_i + \mathrm{MLP}([\mathbf{e}_u \,\|\,
    \mathbf{e}_i \,\|\, \mathbf{e}_u \odot \mathbf{e}_i])`, trained with the squared error.

    The biases follow biased matrix factorisation (`Koren et al., IEEE Computer 2009
    <https://doi.org/10.1109/MC.2009.263>`_). Ranking by the predicted rating is what
    :meth:`score_all` gives.

    Args:
        channels (int): Width :math:`D` of the user and item representations.
        num_users (int): Number of users (one bias each).
        num_items (int): Number of items (one bias each).
        hidden (int, optional): Width of the hidden layer. (default: ``64``)
        global_mean (float, optional): :math:`\mu`, e.g. the mean training rating. (default: ``0.0``)
    """

    def __init__(self, channels: int, num_users: int, num_items: int, hidden: int = 64,
                 global_mean: float = 0.0, max_pairs: int = 2**21) -> None:
        super().__init__()
        self.channels, self.hidden, self.max_pairs = channels, hidden, max_pairs
        self.user_bias = torch.nn.Embedding(num_users, 1)
        self.item_bias = torch.nn.Embedding(num_items, 1)
        self.register_buffer("global_mean", torch.tensor(float(global_mean)))
        self.mlp = torch.nn.Sequential(torch.nn.Linear(3 * channels, hidden), torch.nn.ReLU(),
                                       torch.nn.Linear(hidden, 1))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        torch.nn.init.zeros_(self.user_bias.weight)
        torch.nn.init.zeros_(self.item_bias.weight)
        for layer in (self.mlp[0], self.mlp[2]):
            layer.reset_parameters()

    def forward(self, user_emb: Tensor, item_emb: Tensor, users: Tensor, items: Tensor) -> Tensor:
        """Predicted ratings of aligned pairs: embeddings ``[B, D]`` and their ids ``[B]``; returns ``[B]``."""
        pair = torch.cat([user_emb, item_emb, user_emb * item_emb], dim=-1)  # [B, 3D]
        bias = self.user_bias(users).squeeze(-1) + self.item_bias(items).squeeze(-1)  # [B]
        return self.global_mean + bias + self.mlp(pair).squeeze(-1)

    def score_all(self, user_emb: Tensor, item_emb: Tensor, users: Tensor) -> Tensor:
        """Predicted ratings of every item for users ``users`` ``[B]`` (embeddings ``[B, D]``): ``[B, I]``."""
        num_items = item_emb.size(0)
        items = torch.arange(num_items, device=item_emb.device)
        rows = max(1, self.max_pairs // max(num_items, 1))
        chunks = []
        for start in range(0, user_emb.size(0), rows):
            u, ids = user_emb[start:start + rows], users[start:start + rows]  # [b, D], [b]
            b = u.size(0)
            pred = self(u.repeat_interleave(num_items, 0), item_emb.repeat(b, 1),
                        ids.repeat_interleave(num_items), items.repeat(b))
            chunks.append(pred.view(b, num_items))
        return torch.cat(chunks) if chunks else user_emb.new_zeros(0, num_items)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(channels={self.channels}, hidden={self.hidden})"
