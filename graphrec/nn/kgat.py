r"""KGAT: attentive propagation over the collaborative knowledge graph (users, items and the side graph).

From `"KGAT: Knowledge Graph Attention Network for Recommendation"
<https://arxiv.org/abs/1905.07854>`_ (Wang et al., KDD 2019).

Both sparse products of the model have learnable values on a fixed sparsity
pattern: the attention logits (a sampled dense-dense product, SDDMM) and the
attentive propagation (sparse-dense product, SpMM). Each is the other's
backward, so two small autograd Functions cover both with CSR kernels only:
``torch.sparse.sampled_addmm`` and ``torch.sparse.mm``. Measured on CPU
(2 threads, 20k nodes, 1.34M edges, D=64): SDDMM 9-13 ms and SpMM 11 ms, against
250-310 ms for the SDDMM by gathering ``[E, D]`` rows and 157 ms for the SpMM
backward by ``index_add_``. Both need CSR ``sampled_addmm`` and ``sparse.mm`` on
the model's device (tested on CPU with torch 2.13).
"""

from __future__ import annotations

import functools
import warnings
from typing import TYPE_CHECKING, Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from graphrec.nn.embedding import NodeEmbedding
from graphrec.nn.functional import segment_softmax
from graphrec.nn.lightgcn import check_interaction_index

if TYPE_CHECKING:
    from torch_geometric.data import HeteroData

INTERACTS = ("user", "interacts", "item")
REV_INTERACTS = ("item", "rev_interacts", "user")


# ---------------------------------------------------------------- sparse products on a fixed pattern
class SparsePattern(NamedTuple):
    """A ``[num_rows, num_cols]`` sparsity pattern in CSR, with its transpose (``perm_t``: transposed nnz -> nnz)."""

    crow: Tensor  # [num_rows + 1]
    col: Tensor  # [nnz]
    crow_t: Tensor  # [num_cols + 1]
    col_t: Tensor  # [nnz]
    perm_t: Tensor  # [nnz]
    num_rows: int
    num_cols: int


def sparse_pattern(row: Tensor, col: Tensor, num_rows: int, num_cols: int) -> SparsePattern:
    """The pattern of the entries ``(row[k], col[k])``, which must be sorted by row, then column, without repeats."""
    key = row * num_cols + col
    if key.numel() > 1 and not bool((key[1:] > key[:-1]).all()):
        raise ValueError("sparse_pattern: entries must be sorted by (row, col) with no repeats")
    perm_t = torch.argsort(col * num_rows + row)
    return SparsePattern(_crow(row, num_rows), col, _crow(col, num_cols), row[perm_t], perm_t, num_rows, num_cols)


def _crow(row: Tensor, num_rows: int) -> Tensor:
    crow = torch.zeros(num_rows + 1, dtype=torch.long, device=row.device)
    crow[1:] = torch.cumsum(torch.bincount(row, minlength=num_rows), dim=0)
    return crow


def _csr(crow: Tensor, col: Tensor, values: Tensor, num_rows: int, num_cols: int) -> Tensor:
    with warnings.catch_warnings():  # "CSR support is in beta" is noise here
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(crow, col, values, size=(num_rows, num_cols), check_invariants=False)


def _matrix(pattern: SparsePattern, values: Tensor, transpose: bool = False) -> Tensor:
    if transpose:
        return _csr(pattern.crow_t, pattern.col_t, values[pattern.perm_t], pattern.num_cols, pattern.num_rows)
    return _csr(pattern.crow, pattern.col, values, pattern.num_rows, pattern.num_cols)


def _fp32_on_cuda(forward):
    """cuSPARSE multiplies only equal dtypes, so under CUDA autocast the sparse products run in fp32:
    floating inputs are cast on the way in (autograd casts their gradients back to the inputs' dtypes).
    ``torch.amp.custom_fwd`` would do this but cannot rebuild the :class:`SparsePattern` tuple."""

    @functools.wraps(forward)
    def wrapped(ctx, pattern: SparsePattern, *tensors: Tensor) -> Tensor:
        if not torch.is_autocast_enabled("cuda"):
            return forward(ctx, pattern, *tensors)
        tensors = tuple(t.float() if t.is_floating_point() else t for t in tensors)
        with torch.autocast("cuda", enabled=False):
            return forward(ctx, pattern, *tensors)

    return wrapped


def _sddmm(pattern: SparsePattern, a: Tensor, b: Tensor) -> Tensor:
    """``<a[row_k], b[col_k]>`` for every entry ``k`` of the pattern, without gradients."""
    zeros = a.new_zeros(pattern.col.numel())
    return torch.sparse.sampled_addmm(_matrix(pattern, zeros), a.contiguous(), b.t(), beta=0.0).values()


class _PatternSpMM(torch.autograd.Function):
    """``A(values) @ x``; backward: ``A^T @ grad`` for ``x`` and an SDDMM for ``values``."""

    @staticmethod
    @_fp32_on_cuda
    def forward(ctx, pattern: SparsePattern, values: Tensor, x: Tensor) -> Tensor:
        ctx.pattern = pattern
        ctx.save_for_backward(values, x)
        return torch.sparse.mm(_matrix(pattern, values), x)

    @staticmethod
    def backward(ctx, grad_out: Tensor) -> tuple[None, Tensor | None, Tensor | None]:
        values, x = ctx.saved_tensors
        grad_out = grad_out.contiguous()
        grad_values = _sddmm(ctx.pattern, grad_out, x) if ctx.needs_input_grad[1] else None
        grad_x = torch.sparse.mm(_matrix(ctx.pattern, values, transpose=True), grad_out) \
            if ctx.needs_input_grad[2] else None
        return None, grad_values, grad_x


class _PatternSDDMM(torch.autograd.Function):
    """``<a[row_k], b[col_k]>`` per entry; backward: ``G @ b`` and ``G^T @ a`` with ``G`` the pattern of grads."""

    @staticmethod
    @_fp32_on_cuda
    def forward(ctx, pattern: SparsePattern, a: Tensor, b: Tensor) -> Tensor:
        ctx.pattern = pattern
        ctx.save_for_backward(a, b)
        return _sddmm(pattern, a, b)

    @staticmethod
    def backward(ctx, grad_out: Tensor) -> tuple[None, Tensor | None, Tensor | None]:
        a, b = ctx.saved_tensors
        grad_a = torch.sparse.mm(_matrix(ctx.pattern, grad_out), b) if ctx.needs_input_grad[1] else None
        grad_b = torch.sparse.mm(_matrix(ctx.pattern, grad_out, transpose=True), a) \
            if ctx.needs_input_grad[2] else None
        return None, grad_a, grad_b


def pattern_spmm(pattern: SparsePattern, values: Tensor, x: Tensor) -> Tensor:
    """``A @ x`` ``[num_rows, D]`` for ``A`` the pattern holding ``values`` ``[nnz]``; ``x`` is ``[num_cols, D]``."""
    return _PatternSpMM.apply(pattern, values, x)


def pattern_sddmm(pattern: SparsePattern, a: Tensor, b: Tensor) -> Tensor:
    """``<a[row_k], b[col_k]>`` ``[nnz]`` for ``a`` ``[num_rows, d]`` and ``b`` ``[num_cols, d]``."""
    return _PatternSDDMM.apply(pattern, a, b)


# ---------------------------------------------------------------------------------------- the model
class BiInteraction(torch.nn.Module):
    r"""The bi-interaction aggregator of KGAT (Wang et al., KDD 2019, Eq. 8).

    .. math::
        f(\mathbf{e}_h, \mathbf{e}_{\mathcal{N}_h}) =
        \mathrm{LeakyReLU}\big(\mathbf{W}_1(\mathbf{e}_h + \mathbf{e}_{\mathcal{N}_h})\big) +
        \mathrm{LeakyReLU}\big(\mathbf{W}_2(\mathbf{e}_h \odot \mathbf{e}_{\mathcal{N}_h})\big)
    """

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.linear_sum = torch.nn.Linear(in_dim, out_dim)
        self.linear_product = torch.nn.Linear(in_dim, out_dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for linear in (self.linear_sum, self.linear_product):
            torch.nn.init.xavier_uniform_(linear.weight)
            torch.nn.init.zeros_(linear.bias)

    def forward(self, x: Tensor, neighbours: Tensor) -> Tensor:
        """``x`` and ``neighbours`` ``[N, D_in]`` -> ``[N, D_out]``."""
        return (F.leaky_relu(self.linear_sum(x + neighbours), 0.2)
                + F.leaky_relu(self.linear_product(x * neighbours), 0.2))


class KGAT(torch.nn.Module):
    r"""KGAT recommender (`Wang et al., KDD 2019 <https://arxiv.org/abs/1905.07854>`_).

    The collaborative knowledge graph has one node space (users, items and every
    other node type of ``side_graph``: entities, genres, ages, ...) and one
    relation per edge type of ``side_graph`` plus ``interacts`` and
    ``rev_interacts`` (the training interactions, added by :meth:`set_graph`).
    Each edge :math:`(h, r, t)` gets the attention

    .. math::
        \pi(h, r, t) = (\mathbf{W}_r \mathbf{e}_t)^\top
        \tanh(\mathbf{W}_r \mathbf{e}_h + \mathbf{e}_r), \qquad
        \tilde\pi(h, r, t) = \operatorname{softmax}_{(h, r', t') \in \mathcal{N}_h} \pi(h, r', t'),

    from the layer-0 embeddings, shared by all layers as in the paper. Each layer
    aggregates :math:`\mathbf{e}_{\mathcal{N}_h} = \sum_{(h,r,t) \in \mathcal{N}_h}
    \tilde\pi(h, r, t)\,\mathbf{e}_t` and applies :class:`BiInteraction`, then
    message dropout; the representation is
    :math:`\mathbf{e}^{(0)} \Vert \bar{\mathbf{e}}^{(1)} \Vert \dots \Vert \bar{\mathbf{e}}^{(L)}`
    (bars: L2-normalised), so :meth:`forward` returns ``D * (L + 1)`` columns,
    and the score is :math:`\hat{y}_{ui} = \mathbf{e}_u^\top \mathbf{e}_i`.

    Differences from the paper, for a trainer with one loss and for CPU speed:
    the attention is computed inside every forward pass with gradients, so
    :math:`\mathbf{W}_r, \mathbf{e}_r` learn from the recommendation loss (the
    paper refreshes the attention without gradients once per epoch and trains
    :math:`\mathbf{W}_r, \mathbf{e}_r` with an alternating TransR loss, which is
    not used here); all layers have width :math:`D` (the paper uses 64, 32, 16).
    Both sparse products are CSR kernels (see the module docstring): one forward
    and backward on MovieLens-1M (20k nodes, 30 relations, 1.53M edges) takes
    0.45 s on two CPU threads, 0.65 s on one.

    :meth:`set_graph` must be called after the model is moved to its device;
    ``graph["triples"]`` then lists the edges ``(h, r, t)`` in the order of
    :meth:`attention` (node ids: users, items, then the other node types in
    :attr:`node_types` order; relation ids index :attr:`relations`).

    Args:
        num_users (int): Number of users :math:`U`.
        num_items (int): Number of items :math:`I`.
        side_graph (HeteroData): Node types with ``num_nodes`` and side relations
            (e.g. ``GraphBundle.graph``); no interaction edges.
        embedding_dim (int, optional): Embedding and layer size :math:`D`. (default: ``64``)
        num_layers (int, optional): Propagation depth :math:`L`. (default: ``3``)
        relation_dim (int, optional): Size :math:`k` of :math:`\mathbf{e}_r` and of
            the rows of :math:`\mathbf{W}_r \in \mathbb{R}^{k \times D}`; ``None`` takes :math:`D`.
            (default: ``None``)
        dropout (float, optional): Message dropout after each layer. (default: ``0.1``)
        init_std (float, optional): Std of the normal initialisation of the node
            embeddings. (default: ``0.1``)
    """

    trainable = True

    def __init__(
        self,
        num_users: int,
        num_items: int,
        side_graph: HeteroData,
        embedding_dim: int = 64,
        num_layers: int = 3,
        relation_dim: int | None = None,
        dropout: float = 0.1,
        init_std: float = 0.1,
    ) -> None:
        super().__init__()
        relation_dim = embedding_dim if relation_dim is None else relation_dim
        for name, value, low in (("embedding_dim", embedding_dim, 1), ("relation_dim", relation_dim, 1),
                                 ("num_layers", num_layers, 0)):
            if not isinstance(value, int) or value < low:
                raise ValueError(f"{name} = {value!r}; expected an int >= {low}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout = {dropout}; expected a float in [0, 1)")
        self.num_users, self.num_items = num_users, num_items
        self.embedding_dim, self.num_layers, self.relation_dim, self.dropout = \
            embedding_dim, num_layers, relation_dim, dropout

        num_nodes = _num_nodes(side_graph, num_users, num_items)  # user, item first: users 0..U-1, items U..
        self.node_types = list(num_nodes)
        offsets, total = {}, 0
        for node_type, count in num_nodes.items():
            offsets[node_type], total = total, total + count
        self.num_nodes = total
        # Sorted: a graph built from a recipe and the same graph loaded from the cache list edge types in
        # different orders, and row r of the relation weights must mean the same relation in both.
        side_types = sorted(side_graph.edge_types)
        for edge_type in (INTERACTS, REV_INTERACTS):
            if edge_type in side_types:
                raise ValueError(f"side_graph holds interaction edges {edge_type}; pass the side graph "
                                 "(GraphBundle.graph), and the training interactions to set_graph")
        self.relations: list[tuple[str, str, str]] = [*side_types, INTERACTS, REV_INTERACTS]
        triples = []
        for index, (src, rel, dst) in enumerate(side_types):
            edge_index = side_graph[src, rel, dst].edge_index
            head, tail = edge_index[0] + offsets[src], edge_index[1] + offsets[dst]
            triples.append(torch.stack([head, torch.full_like(head, index), tail]))
        self.register_buffer("side_triples", torch.cat(triples, dim=1) if triples
                             else torch.zeros(3, 0, dtype=torch.long), persistent=False)  # [3, E_side] (h, r, t)

        self.embedding = NodeEmbedding(num_nodes, embedding_dim, init_std)
        num_relations = len(self.relations)
        self.relation_weight = torch.nn.Parameter(torch.empty(num_relations, embedding_dim, relation_dim))
        self.relation_embedding = torch.nn.Parameter(torch.empty(num_relations, relation_dim))
        self.layers = torch.nn.ModuleList(BiInteraction(embedding_dim, embedding_dim) for _ in range(num_layers))
        self.graph: dict[str, Any] | None = None  # set by set_graph
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Redraws the embeddings, the relation weights and the aggregators."""
        self.embedding.reset_parameters()
        torch.nn.init.xavier_uniform_(self.relation_weight)
        torch.nn.init.xavier_uniform_(self.relation_embedding)
        for layer in self.layers:
            layer.reset_parameters()

    def set_graph(self, edge_index: Tensor) -> None:
        """Adds the ``[2, E]`` training interactions (both directions) and precomputes the sparse patterns."""
        check_interaction_index(edge_index, self.num_users, self.num_items)
        device = self.relation_weight.device
        users, items = edge_index[0].to(device), edge_index[1].to(device) + self.num_users
        interact, rev_interact = len(self.relations) - 2, len(self.relations) - 1
        triples = torch.cat([self.side_triples.to(device),
                             torch.stack([users, torch.full_like(users, interact), items]),
                             torch.stack([items, torch.full_like(items, rev_interact), users])], dim=1)
        num_nodes, num_relations = self.num_nodes, len(self.relations)
        key = torch.unique((triples[0] * num_relations + triples[1]) * num_nodes + triples[2])  # sorted (h, r, t)
        head, relation, tail = key // (num_relations * num_nodes), key // num_nodes % num_relations, key % num_nodes

        # Attention logits: an SDDMM between rows (h, r) and columns (r, t); both orders follow the edges'.
        head_rel, query_index = torch.unique(head * num_relations + relation, return_inverse=True)  # (h, r) sorted
        rel_tail, key_index = torch.unique(relation * num_nodes + tail, return_inverse=True)  # (r, t) sorted
        query_relation, query_head = head_rel % num_relations, head_rel // num_relations
        query_order = torch.argsort(query_relation * num_nodes + query_head)  # relation-major, as computed
        key_relation = rel_tail // num_nodes
        # Propagation: one entry per (h, t) in (h, t) order, summing the attention of parallel relations.
        pairs, slot = torch.unique(head * num_nodes + tail, return_inverse=True)
        self.graph = {
            "triples": torch.stack([head, relation, tail]),  # [3, E] (h, r, t), the order of attention()
            "attention": sparse_pattern(query_index, key_index, head_rel.numel(), rel_tail.numel()),
            "query_heads": query_head[query_order],  # [Q] head of each (h, r) row, relation-major
            "query_sizes": torch.bincount(query_relation, minlength=num_relations).tolist(),
            "query_inverse": torch.argsort(query_order),  # relation-major -> (h, r) order
            "key_tails": rel_tail % num_nodes,  # [K] tail of each (r, t) column, relation-major
            "key_sizes": torch.bincount(key_relation, minlength=num_relations).tolist(),
            "head_ptr": _crow(head, num_nodes),  # [N + 1] edges of each head, for the softmax
            "propagation": sparse_pattern(pairs // num_nodes, pairs % num_nodes, num_nodes, num_nodes),
            "slot": slot,  # [E] edge -> its (h, t) entry
        }

    def _require_graph(self) -> dict[str, Any]:
        if self.graph is None:
            raise RuntimeError("KGAT.forward() needs a graph: call set_graph(edge_index) first")
        device = self.relation_weight.device
        if self.graph["head_ptr"].device != device:
            raise RuntimeError(f"KGAT's graph is on {self.graph['head_ptr'].device} but its weights on {device}; "
                               "call set_graph(edge_index) again after moving the model")
        return self.graph

    def node_embeddings(self) -> Tensor:
        """Layer-0 embeddings of every node ``[N, D]``: users, items, then the other node types."""
        return torch.cat([self.embedding(node_type) for node_type in self.node_types], dim=0)

    def attention(self, x: Tensor | None = None) -> Tensor:
        r"""Normalised attention :math:`\tilde\pi` ``[E]`` of every edge, ordered by (head, relation, tail)."""
        graph = self._require_graph()
        x = self.node_embeddings() if x is None else x  # [N, D]
        # One gather each, split per relation (split's backward is one concatenation).
        x_heads = x[graph["query_heads"]].split(graph["query_sizes"])  # R x [Q_r, D]
        x_tails = x[graph["key_tails"]].split(graph["key_sizes"])  # R x [K_r, D]
        queries, keys = [], []
        for r, (heads, tails) in enumerate(zip(x_heads, x_tails)):
            weight = self.relation_weight[r]  # [D, k]
            queries.append(torch.tanh(heads @ weight + self.relation_embedding[r]))  # [Q_r, k]
            keys.append(tails @ weight)  # [K_r, k]
        query = torch.cat(queries)[graph["query_inverse"]]  # [Q, k] in (h, r) order
        logits = pattern_sddmm(graph["attention"], query, torch.cat(keys))  # [E]
        return segment_softmax(logits, graph["head_ptr"])

    def ego_embeddings(self) -> tuple[Tensor, Tensor]:
        """Layer-0 embeddings ``(user [U, D], item [I, D])``."""
        return self.embedding("user"), self.embedding("item")

    def forward(self) -> tuple[Tensor, Tensor]:
        """Final embeddings ``(user [U, D(L+1)], item [I, D(L+1)])`` on the graph given to :meth:`set_graph`."""
        graph = self._require_graph()
        x = self.node_embeddings()  # [N, D]
        attention = self.attention(x)  # [E]
        attention = attention.new_zeros(graph["propagation"].col.numel()).index_add(0, graph["slot"], attention)
        layers, h = [x], x
        for layer in self.layers:
            neighbours = pattern_spmm(graph["propagation"], attention, h)  # [N, D]
            h = F.dropout(layer(h, neighbours), self.dropout, self.training)
            layers.append(F.normalize(h, dim=-1))
        out = torch.cat(layers, dim=-1)  # [N, D(L+1)]
        return out[: self.num_users], out[self.num_users : self.num_users + self.num_items]

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}(num_users={self.num_users}, num_items={self.num_items}, "
            f"num_nodes={self.num_nodes}, num_relations={len(self.relations)}, "
            f"embedding_dim={self.embedding_dim}, num_layers={self.num_layers})"
        )


def _num_nodes(side_graph: HeteroData, num_users: int, num_items: int) -> dict[str, int]:
    """Node counts, users and items first, then the side graph's other node types in sorted order."""
    counts = {"user": num_users, "item": num_items}
    for node_type, expected in counts.items():
        found = side_graph[node_type].num_nodes if node_type in side_graph.node_types else None
        if found is not None and found != expected:
            raise ValueError(f"side_graph['{node_type}'].num_nodes = {found}; expected num_{node_type}s = {expected}")
    for node_type in sorted(set(side_graph.node_types) - set(counts)):
        count = side_graph[node_type].num_nodes
        if count is None:
            raise ValueError(f"side_graph['{node_type}'] has no num_nodes; set it for every node type")
        counts[node_type] = int(count)
    return counts
