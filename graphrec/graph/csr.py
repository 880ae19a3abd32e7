r"""The in-edges of a heterogeneous graph as one CSR: what neighbour sampling walks.

All edge types share one CSR whose rows are (edge type, destination) pairs, and all node types one id
space, so that :class:`graphrec.graph.sampling.NeighborSampler` takes a hop in a fixed number of tensor
operations whatever the number of types. Degrees read off it are the full graph's, which degree-normalised
encoders (LightGCN) need on a sampled subgraph.
"""

from __future__ import annotations

import torch
from torch import Tensor

EdgeType = tuple[str, str, str]


class HeteroCSR:
    """The incoming edges of every edge type, as one CSR whose rows are (edge type, destination node) pairs.

    Row ``row_offset[r] + v`` holds the in-edges of node ``v`` (of type ``r[2]``) under edge type ``r``:
    ``sources``, their source nodes as global ids (``node_offset[t] + id``: all node types in one id
    space), and ``edge_ids``, their positions in ``edge_index_dict[r]``. Within a row sources are sorted.

    Args:
        edge_index_dict (dict): ``[2, E_r]`` (source, target) ids per edge type ``(source, relation, target)``.
        num_nodes_dict (dict[str, int]): Node count of every node type, isolated types included.
    """

    def __init__(self, edge_index_dict: dict[EdgeType, Tensor], num_nodes_dict: dict[str, int]) -> None:
        self.num_nodes_dict = {t: int(n) for t, n in num_nodes_dict.items()}
        self.node_types = list(self.num_nodes_dict)
        self.node_offset, self.num_nodes = {}, 0
        for node_type, count in self.num_nodes_dict.items():
            self.node_offset[node_type], self.num_nodes = self.num_nodes, self.num_nodes + count
        self.edge_types: list[EdgeType] = [tuple(edge_type) for edge_type in edge_index_dict]
        self.device = next((e.device for e in edge_index_dict.values()), torch.device("cpu"))
        self.row_offset, num_rows = {}, 0
        degrees, sources, edge_ids = [], [], []
        for edge_type, edge_index in zip(self.edge_types, edge_index_dict.values()):
            self._check(edge_type, edge_index)
            num_sources, num_targets = (self.num_nodes_dict[edge_type[0]], self.num_nodes_dict[edge_type[2]])
            edge_index = edge_index.to(self.device)
            order = torch.argsort(edge_index[1] * num_sources + edge_index[0], stable=True)  # by target, then source
            degrees.append(torch.bincount(edge_index[1], minlength=num_targets))
            sources.append(edge_index[0, order] + self.node_offset[edge_type[0]])
            edge_ids.append(order)
            self.row_offset[edge_type], num_rows = num_rows, num_rows + num_targets
        long = {"dtype": torch.long, "device": self.device}
        self.indptr = torch.zeros(num_rows + 1, **long)  # [R + 1]
        if degrees:
            torch.cumsum(torch.cat(degrees), 0, out=self.indptr[1:])
        self.sources = torch.cat(sources) if sources else torch.zeros(0, **long)  # [E]
        self.edge_ids = torch.cat(edge_ids) if edge_ids else torch.zeros(0, **long)  # [E]
        self._unique_degree: dict[EdgeType, Tensor] = {}

    def _check(self, edge_type: EdgeType, edge_index: Tensor) -> None:
        if len(edge_type) != 3:
            raise ValueError(f"edge type {edge_type!r}; expected a (source, relation, target) tuple")
        for node_type in (edge_type[0], edge_type[2]):
            if node_type not in self.num_nodes_dict:
                raise ValueError(f"edge type {edge_type} names node type {node_type!r}, which num_nodes_dict "
                                 f"lacks; node types: {self.node_types}")
        if edge_index.dim() != 2 or edge_index.size(0) != 2 or edge_index.dtype != torch.long:
            raise ValueError(f"edge_index_dict[{edge_type}] is {edge_index.dtype} {list(edge_index.shape)}; "
                             "expected a [2, E] LongTensor")
        for row, node_type in ((0, edge_type[0]), (1, edge_type[2])):
            count = self.num_nodes_dict[node_type]
            if edge_index.numel() and (int(edge_index[row].min()) < 0 or int(edge_index[row].max()) >= count):
                raise ValueError(f"edge_index_dict[{edge_type}][{row}] holds {node_type} ids in "
                                 f"[{int(edge_index[row].min())}, {int(edge_index[row].max())}]; expected ids "
                                 f"in [0, {count - 1}]")

    def rows(self, edge_type: EdgeType) -> slice:
        """The rows of ``edge_type``, one per node of its target type."""
        start = self.row_offset[edge_type]
        return slice(start, start + self.num_nodes_dict[edge_type[2]])

    def in_degree(self, edge_type: EdgeType, unique: bool = False) -> Tensor:
        """Incoming edges of every target node ``[N_target]``; with ``unique``, distinct sources only."""
        rows = self.rows(edge_type)
        degree = self.indptr[rows.start + 1 : rows.stop + 1] - self.indptr[rows]
        if not unique:
            return degree
        if edge_type not in self._unique_degree:
            start, stop = int(self.indptr[rows.start]), int(self.indptr[rows.stop])
            targets = torch.repeat_interleave(torch.arange(degree.numel(), device=self.device), degree)
            key = targets * self.num_nodes + self.sources[start:stop]  # sorted within each row
            first = torch.ones_like(key, dtype=torch.bool)
            first[1:] = key[1:] != key[:-1]
            self._unique_degree[edge_type] = torch.bincount(targets[first], minlength=degree.numel())
        return self._unique_degree[edge_type]
