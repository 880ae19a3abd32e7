"""Learnable ID embeddings for every node type of a heterogeneous graph."""

from __future__ import annotations

import torch
from torch import Tensor


class NodeEmbedding(torch.nn.Module):
    r"""One learnable ID embedding table per node type.

    Every node :math:`v` of type :math:`t` gets a free vector
    :math:`\mathbf{e}_v = \mathbf{W}_t[v] \in \mathbb{R}^{D}`, drawn from
    :math:`\mathcal{N}(0, \sigma^2)` at initialisation, as in the ID embeddings of
    matrix factorisation (`Rendle et al., UAI 2009 <https://arxiv.org/abs/1205.2618>`_)
    and LightGCN (`He et al., SIGIR 2020 <https://arxiv.org/abs/2002.02126>`_).

    The module is the input stage of the encoders in :mod:`graphrec.nn`: it
    returns an ``x_dict`` that an encoder's ``forward(x_dict, edge_index_dict)``
    takes. Feature sources other than IDs (text, attributes) are meant to be
    fused on top of :meth:`forward`'s output by a subclass or wrapper.

    Args:
        num_nodes_dict (dict[str, int]): Number of nodes of each node type,
            e.g. ``{"user": 943, "item": 1682}``.
        embedding_dim (int): Size :math:`D` of every embedding.
        init_std (float, optional): Standard deviation :math:`\sigma` of the
            normal initialisation. (default: ``0.1``)

    Example:
        >>> emb = NodeEmbedding({"user": 3, "item": 4}, embedding_dim=8)
        >>> emb("item").shape
        torch.Size([4, 8])
        >>> sorted(emb())
        ['item', 'user']
    """

    def __init__(
        self,
        num_nodes_dict: dict[str, int],
        embedding_dim: int,
        init_std: float = 0.1,
    ) -> None:
        super().__init__()
        if not num_nodes_dict:
            raise ValueError("num_nodes_dict is empty; expected at least one node type, e.g. {'user': 10}")
        for node_type, num_nodes in num_nodes_dict.items():
            if not isinstance(num_nodes, int) or num_nodes < 0:
                raise ValueError(
                    f"num_nodes_dict[{node_type!r}] = {num_nodes!r}; expected a non-negative int"
                )
        if embedding_dim <= 0:
            raise ValueError(f"embedding_dim = {embedding_dim}; expected a positive int")
        if init_std <= 0:
            raise ValueError(f"init_std = {init_std}; expected a positive float")

        self.num_nodes_dict = dict(num_nodes_dict)
        self.embedding_dim = embedding_dim
        self.init_std = init_std
        self.embeddings = torch.nn.ModuleDict(
            {
                node_type: torch.nn.Embedding(num_nodes, embedding_dim)
                for node_type, num_nodes in self.num_nodes_dict.items()
            }
        )
        self.reset_parameters()

    @property
    def node_types(self) -> list[str]:
        """The node types, in the order they were given."""
        return list(self.num_nodes_dict)

    def reset_parameters(self) -> None:
        """Redraws every table from :math:`\\mathcal{N}(0, \\sigma^2)`."""
        for embedding in self.embeddings.values():
            torch.nn.init.normal_(embedding.weight, mean=0.0, std=self.init_std)

    def forward(self, node_type: str | None = None) -> Tensor | dict[str, Tensor]:
        """Returns the embedding table of one node type, or of all of them.

        Args:
            node_type (str, optional): The node type to return. If ``None``,
                all types are returned as a dict.

        Returns:
            The weight ``[num_nodes, D]`` of ``node_type``, or ``x_dict``
            mapping every node type to its weight.
        """
        if node_type is None:
            return {name: embedding.weight for name, embedding in self.embeddings.items()}
        if node_type not in self.embeddings:
            raise KeyError(
                f"NodeEmbedding has no node type {node_type!r}; known types: {self.node_types}"
            )
        return self.embeddings[node_type].weight

    def __repr__(self) -> str:
        sizes = ", ".join(f"{name}={num}" for name, num in self.num_nodes_dict.items())
        return f"{self.__class__.__name__}({sizes}, embedding_dim={self.embedding_dim})"
