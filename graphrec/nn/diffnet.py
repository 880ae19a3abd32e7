r"""DiffNet: influence diffusion over the social graph, for social recommendation.

From `"A Neural Influence Diffusion Model for Social Recommendation"
<https://arxiv.org/abs/1904.10322>`_ (Wu et al., SIGIR 2019).
"""

from __future__ import annotations

import torch
from torch import Tensor

from graphrec.nn.encoder import EdgeIndexCache, EdgeType, HeteroEncoder
from graphrec.nn.kgat import SparsePattern, pattern_spmm
from graphrec.nn.rgcn import mean_adjacency


class DiffNet(HeteroEncoder):
    r"""DiffNet encoder (`Wu et al., SIGIR 2019 <https://arxiv.org/abs/1904.10322>`_, Eqs. 4-6).

    User vectors diffuse over the social graph for ``num_layers`` layers, then take the mean of
    their consumed items:

    .. math::
        \mathbf{h}_u^{(k+1)} = \sigma\Big(\mathbf{W}^{(k)} \big[\mathbf{h}_u^{(k)} \,\Vert\,
            \tfrac{1}{|F(u)|} \textstyle\sum_{f \in F(u)} \mathbf{h}_f^{(k)}\big] + \mathbf{b}^{(k)}\Big),
        \qquad
        \mathbf{u} = \mathbf{h}_u^{(K)} + \tfrac{1}{|R(u)|} \textstyle\sum_{i \in R(u)} \mathbf{x}_i,

    with :math:`\mathbf{h}^{(0)} = \mathbf{x}_u`, :math:`\sigma` the sigmoid (the paper's
    non-linear :math:`s`), :math:`F(u)` the users that ``u`` receives social edges from and
    :math:`R(u)` its items. Items and every other node type keep their input. Without the social
    edge type at call time every user is friendless (the friend mean is zero) and diffuses
    through itself only; without interaction edges the item term is zero. Other edge types are
    ignored, so the whole message-passing graph can be passed.

    Args:
        channels (int, optional): Width :math:`D` of inputs and outputs. (default: ``64``)
        num_layers (int, optional): Diffusion depth :math:`K`. (default: ``2``)
        social (tuple[str, str, str], optional): The social edge type, from and to the user type;
            store both directions for an undirected graph. (default: ``("user", "follows", "user")``)
        interactions (tuple[str, str, str], optional): The (user, relation, item) interaction edge
            type. (default: ``("user", "interacts", "item")``)
    """

    reads_reverse_edges = True  # a user's items are read from the interactions backwards

    def __init__(self, channels: int = 64, num_layers: int = 2,
                 social: EdgeType = ("user", "follows", "user"),
                 interactions: EdgeType = ("user", "interacts", "item")) -> None:
        super().__init__(channels, num_layers)
        social, interactions = tuple(social), tuple(interactions)
        if len(social) != 3 or social[0] != social[2]:
            raise ValueError(f"social = {social}; expected (user type, relation, the same user type)")
        if len(interactions) != 3 or interactions[0] != social[0]:
            raise ValueError(f"interactions = {interactions}; expected ({social[0]!r}, relation, item type), "
                             "starting at the user type of social")
        self.social, self.interactions = social, interactions
        self.user_type, self.item_type = social[0], interactions[2]
        self.layers = torch.nn.ModuleList(torch.nn.Linear(2 * channels, channels) for _ in range(num_layers))
        self._cache = EdgeIndexCache()
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Redraws the diffusion weights (Glorot uniform) and zeroes the biases."""
        for linear in self.layers:
            torch.nn.init.xavier_uniform_(linear.weight)
            torch.nn.init.zeros_(linear.bias)
        self._cache.clear()

    def mean(self, edge_type: EdgeType, edge_index: Tensor, x: Tensor, num_targets: int,
             reverse: bool = False) -> Tensor:
        """Mean of ``x`` ``[N_s, D]`` over each target's neighbours: ``[num_targets, D]``.

        Messages go from row 0 of ``edge_index`` to row 1, or from row 1 to row 0 with ``reverse``.
        """
        num_sources, device = x.size(0), x.device

        def build() -> tuple[SparsePattern, Tensor]:
            index = edge_index.to(device)
            return mean_adjacency(index.flip(0) if reverse else index, num_sources, num_targets)

        pattern, values = self._cache.get(edge_type, (edge_index,), (num_sources, num_targets, device), build)
        return pattern_spmm(pattern, values.to(x.dtype), x)

    def forward(self, x_dict: dict[str, Tensor], edge_index_dict: dict[EdgeType, Tensor]) -> dict[str, Tensor]:
        """``x_dict`` ``{t: [N_t, D]}`` -> ``h_dict`` ``{t: [N_t, D]}`` with the same keys; users are diffused."""
        self.check_inputs(x_dict, {})  # widths only: edge types other than its two are ignored
        interactions = edge_index_dict.get(self.interactions)
        for node_type in (self.user_type, self.item_type) if interactions is not None else (self.user_type,):
            if node_type not in x_dict:
                raise ValueError(f"x_dict has no {node_type!r} features; got node types {list(x_dict)}")
        social = edge_index_dict.get(self.social)
        h_dict = dict(x_dict)
        h = x_dict[self.user_type]  # [U, D]
        num_users = h.size(0)
        for k, linear in enumerate(self.layers):
            if social is not None and social.numel() > 0:
                friends = self.mean(self.social, social, h, num_users)  # [U, D]
            else:
                friends = torch.zeros_like(h)
            h = torch.sigmoid(linear(torch.cat([h, friends], dim=-1)))  # [U, D]
            h_dict = self.adapt(k, {**h_dict, self.user_type: h})
            h = h_dict[self.user_type]
        if interactions is not None and interactions.numel() > 0:
            items = h_dict[self.item_type]  # [I, D], the item output (the input unless an adapter changed it)
            h = h + self.mean(self.interactions, interactions, items, num_users, reverse=True)
        h_dict[self.user_type] = h
        return h_dict

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}(channels={self.channels}, num_layers={self.num_layers}, "
                f"social={self.social}, interactions={self.interactions})")
