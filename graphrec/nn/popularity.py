"""Most-popular baseline: rank every user's items by training interaction count."""

from __future__ import annotations

import torch
from torch import Tensor

from graphrec.nn.lightgcn import check_interaction_index


class Popularity(torch.nn.Module):
    r"""Recommends the items with the most training interactions to everyone.

    The non-personalised baseline of ranking studies (e.g. `Cremonesi et al.,
    RecSys 2010 <https://doi.org/10.1145/1864708.1864721>`_). It follows the
    model interface with one-dimensional embeddings

    .. math::
        \mathbf{e}_u = 1, \qquad \mathbf{e}_i = \log(1 + n_i), \qquad
        \hat{y}_{ui} = \mathbf{e}_u \mathbf{e}_i = \log(1 + n_i),

    where :math:`n_i` is the number of training interactions of item :math:`i`,
    so dot-product scoring ranks by popularity. Nothing is trained
    (``trainable = False``); :meth:`set_graph` counts. The counts are a
    persistent buffer, so a saved state dict restores the model.

    Args:
        num_users (int): Number of users :math:`U`.
        num_items (int): Number of items :math:`I`.
    """

    trainable = False

    def __init__(self, num_users: int, num_items: int) -> None:
        super().__init__()
        self.num_users = num_users
        self.num_items = num_items
        self.register_buffer("item_counts", torch.zeros(num_items))  # [I]

    def reset_parameters(self) -> None:
        """Does nothing: there are no parameters; counts come from :meth:`set_graph`."""

    def set_graph(self, edge_index: Tensor) -> None:
        """Counts the interactions of every item in the ``[2, E]`` training edges."""
        check_interaction_index(edge_index, self.num_users, self.num_items)
        counts = torch.bincount(edge_index[1].to(self.item_counts.device), minlength=self.num_items)
        self.item_counts.copy_(counts.to(self.item_counts.dtype))

    def forward(self) -> tuple[Tensor, Tensor]:
        """``(ones [U, 1], log1p(count) [I, 1])``."""
        users = torch.ones(self.num_users, 1, device=self.item_counts.device, dtype=self.item_counts.dtype)
        return users, torch.log1p(self.item_counts).unsqueeze(-1)

    def ego_embeddings(self) -> tuple[Tensor, Tensor]:
        """Same as :meth:`forward`; there is nothing to regularise."""
        return self.forward()

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(num_users={self.num_users}, num_items={self.num_items})"
