r"""Matrix factorisation trained with BPR.

From `"BPR: Bayesian Personalized Ranking from Implicit Feedback"
<https://arxiv.org/abs/1205.2618>`_ (Rendle et al., UAI 2009).
"""

from __future__ import annotations

import torch
from torch import Tensor

from graphrec.nn.embedding import NodeEmbedding


class MF(torch.nn.Module):
    r"""BPR-MF: a free embedding per user and item, scored by dot product.

    .. math::
        \hat{y}_{ui} = \mathbf{p}_u^\top \mathbf{q}_i, \qquad
        \mathcal{L} = -\sum_{(u,i,j)} \ln \sigma(\hat{y}_{ui} - \hat{y}_{uj})
        + \lambda \lVert \Theta \rVert^2,

    where :math:`j` is an item :math:`u` has not interacted with. The graph is
    not used, so :meth:`set_graph` does nothing; this is LightGCN with zero
    layers.

    Args:
        num_users (int): Number of users :math:`U`.
        num_items (int): Number of items :math:`I`.
        embedding_dim (int, optional): Embedding size :math:`D`. (default: ``64``)
        init_std (float, optional): Std of the normal initialisation. (default: ``0.1``)
    """

    trainable = True

    def __init__(self, num_users: int, num_items: int, embedding_dim: int = 64, init_std: float = 0.1) -> None:
        super().__init__()
        self.num_users = num_users
        self.num_items = num_items
        self.embedding_dim = embedding_dim
        self.embedding = NodeEmbedding({"user": num_users, "item": num_items}, embedding_dim, init_std)

    def reset_parameters(self) -> None:
        """Redraws the embeddings."""
        self.embedding.reset_parameters()

    def set_graph(self, edge_index: Tensor) -> None:
        """Does nothing: MF scores do not depend on the graph."""

    def ego_embeddings(self) -> tuple[Tensor, Tensor]:
        """The embeddings ``(user [U, D], item [I, D])``."""
        return self.embedding("user"), self.embedding("item")

    def forward(self) -> tuple[Tensor, Tensor]:
        """The embeddings ``(user [U, D], item [I, D])``; same as :meth:`ego_embeddings`."""
        return self.ego_embeddings()

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}(num_users={self.num_users}, num_items={self.num_items}, "
            f"embedding_dim={self.embedding_dim})"
        )
