r"""GraphSAGE over a heterogeneous graph: one SAGE convolution per edge type, summed.

From `"Inductive Representation Learning on Large Graphs" <https://arxiv.org/abs/1706.02216>`_
(Hamilton et al., NeurIPS 2017), made heterogeneous with PyG's :class:`torch_geometric.nn.HeteroConv`:
relation-specific messages are summed, as in R-GCN (Schlichtkrull et al., ESWC 2018).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.nn import HeteroConv, SAGEConv

from graphrec.nn.encoder import EdgeType, HeteroEncoder, Metadata

AGGREGATIONS = ("mean", "sum", "max", "min")


class HeteroSAGE(HeteroEncoder):
    r"""Heterogeneous GraphSAGE encoder (`Hamilton et al., NeurIPS 2017 <https://arxiv.org/abs/1706.02216>`_).

    Each layer sums one :class:`torch_geometric.nn.SAGEConv` per edge type :math:`r = (s, \cdot, t)`:

    .. math::
        \mathbf{h}_v^{(k+1)} = \sigma\Big(\sum_{r:\, t = \tau(v)} \big(
            \mathbf{W}_{r,1}^{(k)} \mathbf{h}_v^{(k)} +
            \mathbf{W}_{r,2}^{(k)} \operatorname{aggr}_{u \in \mathcal{N}_r(v)} \mathbf{h}_u^{(k)}
            + \mathbf{b}_r^{(k)}\big)\Big),

    with :math:`\sigma` the ReLU between layers and the identity after the last. Node types that
    are no edge type's target keep their input. An edge type missing at call time is given no
    edges, so its root term :math:`\mathbf{W}_{r,1}\mathbf{h}_v + \mathbf{b}_r` still counts and a
    target's output does not jump when a pretext task hides a relation.

    Args:
        metadata (tuple[list[str], list[tuple[str, str, str]]]): Node and edge types, as
            :meth:`torch_geometric.data.HeteroData.metadata` returns.
        channels (int, optional): Width :math:`D` of inputs and outputs. (default: ``64``)
        num_layers (int, optional): Number of layers. (default: ``2``)
        aggr (str, optional): Neighbour aggregation, one of ``"mean"``, ``"sum"``, ``"max"``,
            ``"min"``. (default: ``"mean"``)
    """

    def __init__(self, metadata: Metadata, channels: int = 64, num_layers: int = 2, aggr: str = "mean") -> None:
        super().__init__(channels, num_layers)
        if aggr not in AGGREGATIONS:
            raise ValueError(f"aggr = {aggr!r}; expected one of {AGGREGATIONS}")
        self.aggr = aggr
        self.edge_types: list[EdgeType] = sorted(map(tuple, metadata[1]))
        self.convs = torch.nn.ModuleList(
            HeteroConv({edge_type: SAGEConv((channels, channels), channels, aggr=aggr)
                        for edge_type in self.edge_types}, aggr="sum")
            for _ in range(num_layers)
        )

    def reset_parameters(self) -> None:
        """Redraws every convolution's weights."""
        for conv in self.convs:
            conv.reset_parameters()

    def forward(self, x_dict: dict[str, Tensor], edge_index_dict: dict[EdgeType, Tensor]) -> dict[str, Tensor]:
        """``x_dict`` ``{t: [N_t, D]}`` -> ``h_dict`` ``{t: [N_t, D]}`` with the same keys."""
        self.check_inputs(x_dict, edge_index_dict, self.edge_types)
        device = next(iter(x_dict.values())).device
        no_edges = torch.zeros(2, 0, dtype=torch.long, device=device)
        # Every known edge type whose node types are present: the missing ones with no edges.
        edge_index_dict = {
            edge_type: edge_index_dict.get(edge_type, no_edges)
            for edge_type in self.edge_types if edge_type[0] in x_dict and edge_type[2] in x_dict
        }
        h_dict = dict(x_dict)
        for k, conv in enumerate(self.convs):
            out = conv(h_dict, edge_index_dict)  # {target type: [N_t, D]}
            if k < self.num_layers - 1:
                out = {t: F.relu(h) for t, h in out.items()}
            h_dict = self.adapt(k, {**h_dict, **out})
        return h_dict

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}(channels={self.channels}, num_layers={self.num_layers}, "
                f"num_relations={len(self.edge_types)}, aggr={self.aggr!r})")
