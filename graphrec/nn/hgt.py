r"""HGT: the heterogeneous graph transformer.

From `"Heterogeneous Graph Transformer" <https://arxiv.org/abs/2003.01332>`_ (Hu et al., WWW 2020).

The layer computes what :class:`torch_geometric.nn.HGTConv` computes (same parameters, same
output; the tests compare the two), with the sparse kernels of :mod:`graphrec.nn.kgat`: one CSR
pattern joins target nodes (rows) to (edge type, source node) pairs (columns), the attention
logits are an SDDMM per head and the aggregation an SpMM per head. Without pyg-lib,
``HGTConv`` gathers ``[E, H, d]`` keys, queries and values per edge, which on a graph of
millions of edges is an order of magnitude slower and gigabytes larger than these products.
``HGTConv`` (PyG 2.8.1) also applies the wrong relation weights when ``edge_index_dict`` lists
edge types in another order than ``metadata`` (its ``HeteroLinear`` is told the types are
sorted); here the order does not matter. Repeated edges (same type, source and target) count once.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from graphrec.nn.encoder import EdgeIndexCache, EdgeType, HeteroEncoder, Metadata, present, target_types
from graphrec.nn.functional import segment_softmax
from graphrec.nn.kgat import SparsePattern, pattern_sddmm, pattern_spmm, sparse_pattern


class HGTLayer(torch.nn.Module):
    r"""One HGT layer (Hu et al., WWW 2020, Eqs. 1-5), with ``heads`` heads of width :math:`d = D / H`.

    For an edge :math:`e = (s, t)` of type :math:`\phi(e)` and head :math:`i`:

    .. math::
        \alpha^i(s, e, t) = \operatorname{softmax}_{s \in \mathcal{N}(t)}\Big(
            \mathbf{K}^i(s)\, \mathbf{W}^{ATT}_{\phi(e), i}\, \mathbf{Q}^i(t)^\top
            \frac{\mu_{\phi(e), i}}{\sqrt{d}}\Big), \qquad
        \tilde{\mathbf{h}}_t = \big\Vert_{i} \sum_{s \in \mathcal{N}(t)}
            \alpha^i(s, e, t)\, \mathbf{V}^i(s)\, \mathbf{W}^{MSG}_{\phi(e), i},

    with :math:`\mathbf{K}, \mathbf{Q}, \mathbf{V}` linear maps of the source and target types,
    the softmax over all incoming edges of every type, and the gated residual
    :math:`\mathbf{h}_t' = \beta_{\tau(t)}\, \mathbf{A}_{\tau(t)}(\mathrm{GELU}(\tilde{\mathbf{h}}_t))
    + (1 - \beta_{\tau(t)})\, \mathbf{h}_t`, :math:`\beta = \mathrm{sigmoid}(\text{skip})`.

    Args:
        metadata (tuple[list[str], list[tuple[str, str, str]]]): Node and edge types.
        channels (int): Width :math:`D` of inputs and outputs.
        heads (int): Number of heads :math:`H`; must divide ``channels``.
    """

    def __init__(self, metadata: Metadata, channels: int, heads: int) -> None:
        super().__init__()
        if not isinstance(heads, int) or heads < 1 or channels % heads != 0:
            raise ValueError(f"heads = {heads!r}; expected a positive int that divides channels = {channels}")
        self.channels, self.heads = channels, heads
        self.edge_types: list[EdgeType] = sorted(map(tuple, metadata[1]))
        self.target_types = target_types(metadata)
        dim, num_relations = channels // heads, len(self.edge_types)
        self.kqv = torch.nn.ModuleDict({t: torch.nn.Linear(channels, 3 * channels) for t in metadata[0]})
        self.out = torch.nn.ModuleDict({t: torch.nn.Linear(channels, channels) for t in self.target_types})
        self.k_rel = torch.nn.Parameter(torch.empty(num_relations, heads, dim, dim))  # W^ATT, as k @ W
        self.v_rel = torch.nn.Parameter(torch.empty(num_relations, heads, dim, dim))  # W^MSG
        self.p_rel = torch.nn.Parameter(torch.empty(num_relations, heads))  # mu, the prior of each relation
        self.skip = torch.nn.Parameter(torch.empty(len(self.target_types)))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for linear in [*self.kqv.values(), *self.out.values()]:
            linear.reset_parameters()
        bound = 1.0 / math.sqrt(self.channels // self.heads)
        torch.nn.init.uniform_(self.k_rel, -bound, bound)
        torch.nn.init.uniform_(self.v_rel, -bound, bound)
        torch.nn.init.ones_(self.p_rel)
        torch.nn.init.ones_(self.skip)

    def forward(self, x_dict: dict[str, Tensor], pattern: SparsePattern | None,
                edge_types: list[EdgeType]) -> dict[str, Tensor]:
        """Updated features of the target types, over ``pattern`` (:meth:`HGT.pattern` of ``edge_types``)."""
        heads, dim = self.heads, self.channels // self.heads
        k_dict, q_dict, v_dict = {}, {}, {}
        for node_type, x in x_dict.items():
            if node_type not in self.kqv:  # a type outside metadata: no edges, it only fills rows
                q_dict[node_type] = x.new_zeros(x.size(0), heads, dim)
                continue
            k, q, v = self.kqv[node_type](x).view(-1, 3, heads, dim).unbind(1)  # 3 x [N_t, H, d]
            k_dict[node_type], q_dict[node_type], v_dict[node_type] = k, q, v
        index = {edge_type: r for r, edge_type in enumerate(self.edge_types)}
        keys, values = [], []
        for edge_type in edge_types:  # the columns: (edge type, source node) pairs
            r, source = index[edge_type], edge_type[0]
            scale = (self.p_rel[r] / math.sqrt(dim)).view(1, heads, 1)
            keys.append(torch.einsum("nhd,hde->nhe", k_dict[source], self.k_rel[r]) * scale)  # [N_s, H, d]
            values.append(torch.einsum("nhd,hde->nhe", v_dict[source], self.v_rel[r]))
        query = torch.cat(list(q_dict.values()))  # [N, H, d], node types in x_dict order
        if pattern is None:  # no edges: every target gets GELU(0) through its output map
            aggregated = query.new_zeros(query.size(0), self.channels)
        else:
            key, value = torch.cat(keys), torch.cat(values)  # [C, H, d]
            logits = torch.stack([pattern_sddmm(pattern, query[:, i].contiguous(), key[:, i].contiguous())
                                  for i in range(heads)], dim=-1)  # [nnz, H]
            attention = segment_softmax(logits, pattern.crow)  # over each target's incoming edges
            aggregated = torch.cat([pattern_spmm(pattern, attention[:, i].contiguous(), value[:, i].contiguous())
                                    for i in range(heads)], dim=-1)  # [N, D], heads side by side
        out, start = {}, 0
        for node_type, x in x_dict.items():
            rows, start = aggregated[start : start + x.size(0)], start + x.size(0)
            if node_type in self.out:
                beta = self.skip[self.target_types.index(node_type)].sigmoid()
                out[node_type] = beta * self.out[node_type](F.gelu(rows)) + (1 - beta) * x
        return out


class HGT(HeteroEncoder):
    r"""Heterogeneous graph transformer encoder (`Hu et al., WWW 2020 <https://arxiv.org/abs/2003.01332>`_).

    ``num_layers`` :class:`HGTLayer` s, each :math:`\mathbf{h}^{(k+1)} = \mathrm{HGT}^{(k)}(\mathbf{h}^{(k)})`
    (no activation between layers: each layer ends in a GELU, a linear map and a gated residual).
    Node types that are no edge type's target keep their input; an edge type missing or empty at
    call time adds no edges (a target type left with none gets the residual and the output bias).
    The sparse pattern is cached per set of ``edge_index`` tensors.

    Args:
        metadata (tuple[list[str], list[tuple[str, str, str]]]): Node and edge types, as
            :meth:`torch_geometric.data.HeteroData.metadata` returns.
        channels (int, optional): Width :math:`D` of inputs and outputs. (default: ``64``)
        num_layers (int, optional): Number of layers. (default: ``2``)
        heads (int, optional): Number of attention heads :math:`H`. (default: ``2``)
    """

    def __init__(self, metadata: Metadata, channels: int = 64, num_layers: int = 2, heads: int = 2) -> None:
        super().__init__(channels, num_layers)
        if not isinstance(heads, int) or heads < 1 or channels % heads != 0:
            raise ValueError(f"heads = {heads!r}; expected a positive int that divides channels = {channels}")
        self.heads = heads
        self.edge_types: list[EdgeType] = sorted(map(tuple, metadata[1]))
        self.layers = torch.nn.ModuleList(HGTLayer(metadata, channels, heads) for _ in range(num_layers))
        self._cache = EdgeIndexCache()

    def reset_parameters(self) -> None:
        """Redraws every layer's weights."""
        for layer in self.layers:
            layer.reset_parameters()
        self._cache.clear()

    def pattern(self, x_dict: dict[str, Tensor], edge_index_dict: dict[EdgeType, Tensor],
                edge_types: list[EdgeType]) -> SparsePattern:
        """The ``[N, C]`` pattern: target node (types in ``x_dict`` order) by (edge type, source node)."""
        tensors = [edge_index_dict[edge_type] for edge_type in edge_types]
        sizes = tuple((t, x.size(0)) for t, x in x_dict.items())
        device = next(iter(x_dict.values())).device

        def build() -> SparsePattern:
            row_offset, total = {}, 0
            for node_type, x in x_dict.items():
                row_offset[node_type], total = total, total + x.size(0)
            rows, cols, num_cols = [], [], 0
            for edge_type, edge_index in zip(edge_types, tensors):
                edge_index = edge_index.to(device)
                rows.append(edge_index[1] + row_offset[edge_type[2]])
                cols.append(edge_index[0] + num_cols)
                num_cols += x_dict[edge_type[0]].size(0)
            keys = torch.unique(torch.cat(rows) * num_cols + torch.cat(cols))  # sorted, repeats dropped
            return sparse_pattern(keys // num_cols, keys % num_cols, total, num_cols)

        return self._cache.get("pattern", tensors, (tuple(edge_types), sizes, device), build)

    def forward(self, x_dict: dict[str, Tensor], edge_index_dict: dict[EdgeType, Tensor]) -> dict[str, Tensor]:
        """``x_dict`` ``{t: [N_t, D]}`` -> ``h_dict`` ``{t: [N_t, D]}`` with the same keys."""
        self.check_inputs(x_dict, edge_index_dict, self.edge_types)
        edge_types = present(self.edge_types, edge_index_dict)
        pattern = self.pattern(x_dict, edge_index_dict, edge_types) if edge_types else None
        h_dict = dict(x_dict)
        for k, layer in enumerate(self.layers):
            h_dict = self.adapt(k, {**h_dict, **layer(h_dict, pattern, edge_types)})
        return h_dict

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}(channels={self.channels}, num_layers={self.num_layers}, "
                f"heads={self.heads}, num_relations={len(self.edge_types)})")
