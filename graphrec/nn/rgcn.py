r"""R-GCN: relational graph convolution, with the mean-aggregation helpers other encoders share.

From `"Modeling Relational Data with Graph Convolutional Networks"
<https://arxiv.org/abs/1703.06103>`_ (Schlichtkrull et al., ESWC 2018).

The mean over a relation's neighbours is a product with a constant CSR matrix
(:func:`mean_adjacency`) through :func:`graphrec.nn.kgat.pattern_spmm`, whose
backward is a product with the stored transpose; the matrices are cached per
``edge_index`` tensor (:class:`EdgeIndexCache`), so repeated calls on one graph
do not rebuild them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from graphrec.nn.encoder import (EdgeIndexCache, EdgeType, HeteroEncoder, Metadata, check_hops, present,
                                 seed_rows, target_types, trim_to_hop)
from graphrec.nn.kgat import SparsePattern, pattern_spmm, sparse_pattern


def mean_adjacency(edge_index: Tensor, num_sources: int, num_targets: int) -> tuple[SparsePattern, Tensor]:
    """The ``[num_targets, num_sources]`` pattern and values ``[nnz]`` of the mean over incoming neighbours.

    Row ``v`` holds ``count(u -> v) / in_degree(v)`` at column ``u``, so repeated edges weigh as often as
    they occur; a node without incoming edges has an empty row (its mean is zero, not NaN).
    """
    keys, counts = torch.unique(edge_index[1] * num_sources + edge_index[0], return_counts=True)  # sorted
    targets, sources = keys // num_sources, keys % num_sources
    in_degree = torch.bincount(edge_index[1], minlength=num_targets)  # [num_targets]
    values = counts.float() / in_degree[targets].float()
    return sparse_pattern(targets, sources, num_targets, num_sources), values


class RGCN(HeteroEncoder):
    r"""Relational GCN encoder (`Schlichtkrull et al., ESWC 2018 <https://arxiv.org/abs/1703.06103>`_).

    Every edge type :math:`r` of ``metadata`` is a relation with its own weight:

    .. math::
        \mathbf{h}_v^{(k+1)} = \sigma\Big(\mathbf{W}_0^{(k)} \mathbf{h}_v^{(k)} + \mathbf{b}^{(k)} +
        \sum_{r} \frac{1}{|\mathcal{N}_r(v)|} \sum_{u \in \mathcal{N}_r(v)} \mathbf{W}_r^{(k)} \mathbf{h}_u^{(k)}\Big),

    with :math:`\sigma` the ReLU between layers and the identity after the last. With
    ``num_bases`` :math:`B`, :math:`\mathbf{W}_r^{(k)} = \sum_{b=1}^{B} a_{rb}^{(k)} \mathbf{V}_b^{(k)}`
    (basis decomposition, Eq. 3 of the paper). A relation missing or empty at call time adds
    nothing; node types that are no relation's target pass through unchanged.

    Args:
        metadata (tuple[list[str], list[tuple[str, str, str]]]): Node and edge types, as
            :meth:`torch_geometric.data.HeteroData.metadata` returns.
        channels (int, optional): Width :math:`D` of inputs and outputs. (default: ``64``)
        num_layers (int, optional): Number of layers. (default: ``2``)
        num_bases (int, optional): Number of bases :math:`B`; ``None`` gives every relation a
            full :math:`D \times D` weight. (default: ``None``)
    """

    trims_to_hops = True

    def __init__(self, metadata: Metadata, channels: int = 64, num_layers: int = 2,
                 num_bases: int | None = None) -> None:
        super().__init__(channels, num_layers)
        self.edge_types: list[EdgeType] = sorted(map(tuple, metadata[1]))  # row r of the weights: edge type r
        self.target_types = target_types(metadata)
        num_relations = len(self.edge_types)
        if num_bases is not None and not (isinstance(num_bases, int) and num_bases >= 1):
            raise ValueError(f"num_bases = {num_bases!r}; expected None or an int >= 1")
        self.num_bases = num_bases
        if num_bases is None:
            self.weight = torch.nn.Parameter(torch.empty(num_layers, num_relations, channels, channels))
        else:
            self.basis = torch.nn.Parameter(torch.empty(num_layers, num_bases, channels, channels))
            self.comp = torch.nn.Parameter(torch.empty(num_layers, num_relations, num_bases))
        self.root = torch.nn.Parameter(torch.empty(num_layers, channels, channels))  # W_0, as x @ root
        self.bias = torch.nn.Parameter(torch.empty(num_layers, channels))
        self._cache = EdgeIndexCache()
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Redraws all weights (Glorot uniform) and zeroes the biases."""
        for weight in (self.weight,) if self.num_bases is None else (self.basis,):
            for matrix in weight.view(-1, self.channels, self.channels):
                torch.nn.init.xavier_uniform_(matrix)
        if self.num_bases is not None:
            torch.nn.init.xavier_uniform_(self.comp)
        for matrix in self.root:
            torch.nn.init.xavier_uniform_(matrix)
        torch.nn.init.zeros_(self.bias)
        self._cache.clear()

    def relation_weights(self, layer: int) -> Tensor:
        """:math:`\\mathbf{W}_r` of layer ``layer`` for every relation ``[R, D, D]`` (applied as ``x @ W_r``)."""
        if self.num_bases is None:
            return self.weight[layer]
        return torch.einsum("rb,bio->rio", self.comp[layer], self.basis[layer])

    def forward(self, x_dict: dict[str, Tensor], edge_index_dict: dict[EdgeType, Tensor],
                num_sampled_nodes: dict[str, list[int]] | None = None,
                num_sampled_edges: dict[EdgeType, list[int]] | None = None) -> dict[str, Tensor]:
        """``x_dict`` ``{t: [N_t, D]}`` -> ``h_dict`` ``{t: [N_t, D]}`` with the same keys.

        Given a sampled subgraph's counts per hop, each layer reads only the hops it needs and the seeds'
        rows alone are returned (:func:`~graphrec.nn.encoder.trim_to_hop`, as :meth:`HGT.forward`).
        """
        self.check_inputs(x_dict, edge_index_dict, self.edge_types)
        edge_types = present(self.edge_types, edge_index_dict)
        trim = check_hops(self.num_layers, edge_types, num_sampled_nodes, num_sampled_edges)
        index = {edge_type: r for r, edge_type in enumerate(self.edge_types)}
        h_dict, edges = dict(x_dict), edge_index_dict
        for layer in range(self.num_layers):
            rows = {t: h.size(0) for t, h in h_dict.items()}
            if trim:
                h_dict, edges, rows = trim_to_hop(layer, self.num_layers, h_dict, {et: edge_index_dict[et]
                                                  for et in edge_types}, num_sampled_nodes, num_sampled_edges)
            weights = self.relation_weights(layer)  # [R, D, D]
            out = {t: h_dict[t][: rows[t]] @ self.root[layer] + self.bias[layer]
                   for t in self.target_types if t in h_dict}
            for edge_type in present(edge_types, edges):
                source, _, target = edge_type
                pattern, values = self.adjacency(edge_type, edges[edge_type], h_dict[source].size(0), rows[target],
                                                 h_dict[target].device, name=(edge_type, layer) if trim else edge_type)
                neighbours = pattern_spmm(pattern, values.to(h_dict[source].dtype), h_dict[source])  # [N_t, D]
                out[target] = out[target] + neighbours @ weights[index[edge_type]]
            if layer < self.num_layers - 1:
                out = {t: F.relu(h) for t, h in out.items()}
            if trim:
                h_dict = {t: h[: rows[t]] for t, h in h_dict.items()}
            h_dict = self.adapt(layer, {**h_dict, **out})
        if trim:  # the seeds (already so after the last layer, unless there is none)
            h_dict = seed_rows(h_dict, num_sampled_nodes)
        return h_dict

    def adjacency(self, edge_type: EdgeType, edge_index: Tensor, num_sources: int, num_targets: int,
                  device: torch.device, name: object = None) -> tuple[SparsePattern, Tensor]:
        """The cached :func:`mean_adjacency` of ``edge_index`` on ``device`` (cached under ``name``, by
        default the edge type)."""
        return self._cache.get(edge_type if name is None else name, (edge_index,), (num_sources, num_targets, device),
                               lambda: mean_adjacency(edge_index.to(device), num_sources, num_targets))

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}(channels={self.channels}, num_layers={self.num_layers}, "
                f"num_relations={len(self.edge_types)}, num_bases={self.num_bases})")
