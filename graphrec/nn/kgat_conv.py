r"""KGAT's knowledge-aware attentive propagation as a heterogeneous encoder.

From `"KGAT: Knowledge Graph Attention Network for Recommendation"
<https://arxiv.org/abs/1905.07854>`_ (Wang et al., KDD 2019). :class:`graphrec.nn.KGAT` is the
whole recommender (its own embeddings, its own graph); this module is the propagation alone, on
whatever ``x_dict`` and ``edge_index_dict`` it is given, with the CSR kernels of
:mod:`graphrec.nn.kgat`.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from graphrec.nn.encoder import EdgeIndexCache, EdgeType, HeteroEncoder, Metadata, present, target_types
from graphrec.nn.functional import segment_softmax
from graphrec.nn.kgat import BiInteraction, _crow, pattern_sddmm, pattern_spmm, sparse_pattern


def knowledge_graph(triples: Tensor, num_nodes: int, num_relations: int) -> dict[str, Any]:
    """Sparse patterns for the attention and propagation over the ``[3, E]`` (head, relation, tail) ``triples``.

    The head aggregates from the tail. Repeated triples count once; parallel relations between a
    head and a tail add their attention (as in :meth:`graphrec.nn.KGAT.set_graph`).
    """
    key = torch.unique((triples[0] * num_relations + triples[1]) * num_nodes + triples[2])  # sorted (h, r, t)
    head, relation, tail = key // (num_relations * num_nodes), key // num_nodes % num_relations, key % num_nodes
    # Attention logits: an SDDMM between rows (h, r) and columns (r, t).
    head_rel, query_index = torch.unique(head * num_relations + relation, return_inverse=True)
    rel_tail, key_index = torch.unique(relation * num_nodes + tail, return_inverse=True)
    query_relation = head_rel % num_relations
    query_order = torch.argsort(query_relation * num_nodes + head_rel // num_relations)  # relation-major
    pairs, slot = torch.unique(head * num_nodes + tail, return_inverse=True)  # propagation: one entry per (h, t)
    return {
        "attention": sparse_pattern(query_index, key_index, head_rel.numel(), rel_tail.numel()),
        "query_heads": (head_rel // num_relations)[query_order],  # [Q] head of each (h, r) row, relation-major
        "query_sizes": torch.bincount(query_relation, minlength=num_relations).tolist(),
        "query_inverse": torch.argsort(query_order),  # relation-major -> (h, r) order
        "key_tails": rel_tail % num_nodes,  # [K] tail of each (r, t) column, relation-major
        "key_sizes": torch.bincount(rel_tail // num_nodes, minlength=num_relations).tolist(),
        "head_ptr": _crow(head, num_nodes),  # [N + 1] edges of each head, for the softmax
        "propagation": sparse_pattern(pairs // num_nodes, pairs % num_nodes, num_nodes, num_nodes),
        "slot": slot,  # [E] edge -> its (h, t) entry
    }


class KGATEncoder(HeteroEncoder):
    r"""KGAT propagation (`Wang et al., KDD 2019 <https://arxiv.org/abs/1905.07854>`_, Eqs. 4-8).

    All node types form one collaborative knowledge graph and every edge type of ``metadata`` is a
    relation :math:`r`; an edge ``(source, target)`` is the triple :math:`(h, r, t)` with head
    :math:`h` the target, which aggregates from the tail :math:`t`, the source. With
    :math:`\mathbf{e}^{(0)} = \mathbf{x}`:

    .. math::
        \pi(h, r, t) = (\mathbf{W}_r \mathbf{e}^{(0)}_t)^\top \tanh(\mathbf{W}_r \mathbf{e}^{(0)}_h + \mathbf{e}_r),
        \qquad \tilde\pi = \operatorname{softmax}_{(h, r', t') \in \mathcal{N}_h} \pi,

        \mathbf{e}_h^{(k+1)} = \mathrm{LeakyReLU}\big(\mathbf{W}_1^{(k)}(\mathbf{e}_h^{(k)}
            + \mathbf{e}_{\mathcal{N}_h}^{(k)})\big) + \mathrm{LeakyReLU}\big(\mathbf{W}_2^{(k)}
            (\mathbf{e}_h^{(k)} \odot \mathbf{e}_{\mathcal{N}_h}^{(k)})\big), \qquad
        \mathbf{e}_{\mathcal{N}_h}^{(k)} = \textstyle\sum_{(h, r, t)} \tilde\pi(h, r, t)\, \mathbf{e}_t^{(k)}

    (the bi-interaction aggregator, then message dropout), and the output is the mean
    :math:`\frac{1}{L+1}(\mathbf{e}^{(0)} + \bar{\mathbf{e}}^{(1)} + \dots + \bar{\mathbf{e}}^{(L)})`
    of the layers, bars L2-normalised as in the paper, which concatenates them instead; the mean
    keeps the width :math:`D`. The attention is computed from the inputs in every forward pass,
    with gradients (the paper refreshes it once per epoch without). Node types that are no
    relation's target keep their input.

    Args:
        metadata (tuple[list[str], list[tuple[str, str, str]]]): Node and edge types, as
            :meth:`torch_geometric.data.HeteroData.metadata` returns.
        channels (int, optional): Width :math:`D` of inputs and outputs. (default: ``64``)
        num_layers (int, optional): Propagation depth :math:`L`. (default: ``2``)
        relation_dim (int, optional): Size :math:`k` of :math:`\mathbf{e}_r` and of the rows of
            :math:`\mathbf{W}_r \in \mathbb{R}^{k \times D}`; ``None`` takes :math:`D`. (default: ``None``)
        dropout (float, optional): Message dropout after each layer. (default: ``0.0``)
    """

    def __init__(self, metadata: Metadata, channels: int = 64, num_layers: int = 2,
                 relation_dim: int | None = None, dropout: float = 0.0) -> None:
        super().__init__(channels, num_layers)
        relation_dim = channels if relation_dim is None else relation_dim
        if not isinstance(relation_dim, int) or relation_dim < 1:
            raise ValueError(f"relation_dim = {relation_dim!r}; expected None or an int >= 1")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout = {dropout}; expected a float in [0, 1)")
        self.relation_dim, self.dropout = relation_dim, dropout
        self.edge_types: list[EdgeType] = sorted(map(tuple, metadata[1]))  # relation r: edge type r
        self.target_types = target_types(metadata)
        self.relation_weight = torch.nn.Parameter(torch.empty(len(self.edge_types), channels, relation_dim))
        self.relation_embedding = torch.nn.Parameter(torch.empty(len(self.edge_types), relation_dim))
        self.layers = torch.nn.ModuleList(BiInteraction(channels, channels) for _ in range(num_layers))
        self._cache = EdgeIndexCache()
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Redraws the relation weights and embeddings and the aggregators (Glorot uniform)."""
        torch.nn.init.xavier_uniform_(self.relation_weight)
        torch.nn.init.xavier_uniform_(self.relation_embedding)
        for layer in self.layers:
            layer.reset_parameters()
        self._cache.clear()

    def graph(self, x_dict: dict[str, Tensor], edge_index_dict: dict[EdgeType, Tensor],
              edge_types: list[EdgeType]) -> dict[str, Any]:
        """The cached :func:`knowledge_graph` of ``edge_types``; node ids are offset in ``x_dict`` order."""
        tensors = [edge_index_dict[edge_type] for edge_type in edge_types]
        sizes = tuple((t, x.size(0)) for t, x in x_dict.items())
        device = next(iter(x_dict.values())).device

        def build() -> dict[str, Any]:
            offset, total = {}, 0
            for node_type, x in x_dict.items():
                offset[node_type], total = total, total + x.size(0)
            index = {edge_type: r for r, edge_type in enumerate(self.edge_types)}
            triples = []
            for (source, relation, target), edge_index in zip(edge_types, tensors):
                edge_index = edge_index.to(device)
                head, tail = edge_index[1] + offset[target], edge_index[0] + offset[source]
                triples.append(torch.stack([head, torch.full_like(head, index[source, relation, target]), tail]))
            return knowledge_graph(torch.cat(triples, dim=1), total, len(self.edge_types))

        return self._cache.get("graph", tensors, (tuple(edge_types), sizes, device), build)

    def attention(self, x: Tensor, graph: dict[str, Any]) -> Tensor:
        r"""Normalised attention :math:`\tilde\pi` ``[E]`` of every edge, ordered by (head, relation, tail)."""
        x_heads = x[graph["query_heads"]].split(graph["query_sizes"])  # R x [Q_r, D]
        x_tails = x[graph["key_tails"]].split(graph["key_sizes"])  # R x [K_r, D]
        queries, keys = [], []
        for r, (heads, tails) in enumerate(zip(x_heads, x_tails)):
            queries.append(torch.tanh(heads @ self.relation_weight[r] + self.relation_embedding[r]))  # [Q_r, k]
            keys.append(tails @ self.relation_weight[r])  # [K_r, k]
        query = torch.cat(queries)[graph["query_inverse"]]  # [Q, k] in (h, r) order
        logits = pattern_sddmm(graph["attention"], query, torch.cat(keys))  # [E]
        return segment_softmax(logits, graph["head_ptr"])

    def forward(self, x_dict: dict[str, Tensor], edge_index_dict: dict[EdgeType, Tensor]) -> dict[str, Tensor]:
        """``x_dict`` ``{t: [N_t, D]}`` -> ``h_dict`` ``{t: [N_t, D]}`` with the same keys."""
        self.check_inputs(x_dict, edge_index_dict, self.edge_types)
        edge_types = present(self.edge_types, edge_index_dict)
        sizes = [x.size(0) for x in x_dict.values()]
        x = torch.cat(list(x_dict.values()))  # [N, D]
        if edge_types:
            graph = self.graph(x_dict, edge_index_dict, edge_types)
            attention = self.attention(x, graph)  # [E]
            attention = attention.new_zeros(graph["propagation"].col.numel()).index_add(0, graph["slot"], attention)
        h, total = x, x
        for k, layer in enumerate(self.layers):
            neighbours = pattern_spmm(graph["propagation"], attention, h) if edge_types else torch.zeros_like(h)
            h = F.dropout(layer(h, neighbours), self.dropout, self.training)  # [N, D]
            h_dict = self.adapt(k, dict(zip(x_dict, h.split(sizes))))
            h = torch.cat(list(h_dict.values()))
            total = total + F.normalize(h, dim=-1)
        out = (total / (self.num_layers + 1)).split(sizes)
        return {t: out_t if t in self.target_types else x_dict[t] for t, out_t in zip(x_dict, out)}

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}(channels={self.channels}, num_layers={self.num_layers}, "
                f"num_relations={len(self.edge_types)}, relation_dim={self.relation_dim})")
