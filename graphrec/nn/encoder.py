"""What every heterogeneous encoder of :mod:`graphrec.nn` shares.

An encoder maps node features to node representations over a typed graph:

    h_dict = encoder(x_dict, edge_index_dict)

``x_dict`` holds ``[N_t, D]`` features per node type ``t`` (for instance from
:class:`graphrec.nn.NodeEmbedding`); ``edge_index_dict`` holds ``[2, E_r]`` (source, target)
indices per edge type ``r = (source type, relation, target type)``. The result has the same
keys and widths as ``x_dict``: a node type that receives no message keeps its input. An edge
type the encoder was built for may be missing or empty at call time (pretext tasks hide edges).
Encoders with parameters per edge type (HGT, R-GCN, SAGE, KGAT) reject an edge type they were not
built for; those that read only some edge types (LightGCN, DiffNet) ignore the others, so they
take a whole message-passing graph.

After layer ``k`` an encoder calls :meth:`HeteroEncoder.adapt`, which applies the bottleneck
adapters that :func:`graphrec.nn.adapters.add_adapters` inserts for fine-tuning (none by default).

On a neighbour-sampled subgraph (:mod:`graphrec.graph.sampling`) an encoder that aggregates over
incoming edges gives every seed its full-graph output when all neighbours are kept. Two class
attributes say what else an encoder needs there: ``reads_reverse_edges`` (it reads an edge type
backwards or as undirected, so it must get the union of each edge type and its reverse) and
``needs_degrees`` (it normalises by node degrees, so ``forward`` takes ``degree_dict``, the
full-graph degrees of the subgraph's nodes). ``trims_to_hops`` says it can skip what the seeds do not
need (PyG's ``trim_to_layer``): given the subgraph's node and edge counts per hop it returns the seeds'
rows only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

EdgeType = tuple[str, str, str]
Metadata = tuple[list[str], list[EdgeType]]


class EdgeIndexCache:
    """Keeps one value per name, built from ``edge_index`` tensors, until one of them changes.

    A tensor counts as changed when another tensor is passed or it was edited in place (its
    ``_version``). The tensors themselves are held, so their ids cannot be reused. Copies of a
    module (``copy.deepcopy``, pickling) start with an empty cache.
    """

    def __init__(self) -> None:
        self._entries: dict[Any, tuple[tuple[Tensor, ...], tuple, Any]] = {}

    def get(self, name: Any, tensors: Sequence[Tensor], extra: tuple, build: Callable[[], Any]) -> Any:
        """The value stored under ``name`` for ``tensors`` and ``extra`` (sizes, device), built on a miss."""
        stamp = tuple(t._version for t in tensors) + tuple(extra)
        entry = self._entries.get(name)
        if entry is None or len(entry[0]) != len(tensors) or entry[1] != stamp or \
                any(a is not b for a, b in zip(entry[0], tensors)):
            entry = (tuple(tensors), stamp, build())
            self._entries[name] = entry
        return entry[2]

    def clear(self) -> None:
        self._entries.clear()

    def __getstate__(self) -> dict:
        return {"_entries": {}}


def present(edge_types: Sequence[EdgeType], edge_index_dict: dict[EdgeType, Tensor]) -> list[EdgeType]:
    """The edge types of ``edge_types`` that ``edge_index_dict`` holds with at least one edge."""
    return [et for et in edge_types if et in edge_index_dict and edge_index_dict[et].numel() > 0]


def target_types(metadata: Metadata) -> list[str]:
    """Node types that are the target of some edge type; the others pass through encoders unchanged."""
    node_types, edge_types = metadata
    targets = {edge_type[2] for edge_type in edge_types}
    return [node_type for node_type in node_types if node_type in targets]


#: A sampled subgraph's ``(num_sampled_nodes, num_sampled_edges)``: node and edge counts per hop.
HopCounts = tuple[dict[str, list[int]], dict[EdgeType, list[int]]]


def check_hops(num_layers: int, edge_types: Sequence[EdgeType], num_sampled_nodes: dict | None,
               num_sampled_edges: dict | None) -> bool:
    """Whether a sampled subgraph's counts per hop were given (both or neither), with one hop per layer."""
    if (num_sampled_nodes is None) != (num_sampled_edges is None):
        raise ValueError("give both num_sampled_nodes and num_sampled_edges, or neither")
    if num_sampled_edges is None:
        return False
    hops = {len(num_sampled_edges[et]) for et in edge_types}
    if hops - {num_layers}:
        raise ValueError(f"num_sampled_edges has {sorted(hops)} hops per edge type; expected {num_layers}, one per layer")
    return True


def trim_to_hop(layer: int, num_layers: int, h_dict: dict[str, Tensor], edge_index_dict: dict[EdgeType, Tensor],
                num_sampled_nodes: dict[str, list[int]], num_sampled_edges: dict[EdgeType, list[int]],
                ) -> tuple[dict[str, Tensor], dict[EdgeType, Tensor], dict[str, int]]:
    """What layer ``layer`` (0-based) of ``num_layers`` reads on a neighbour-sampled subgraph whose rows and
    edges are in hop order: the nodes up to hop ``num_layers - layer``, the edges of hops 1 to that hop,
    and, third, how many first rows of each type need an output (those up to one hop less).

    The seeds' outputs are unchanged: a node of hop ``j`` has all its sampled incoming edges at hop
    ``j + 1``. A node type without counts keeps every row.
    """
    hop = num_layers - layer
    counts = {t: num_sampled_nodes.get(t, [h.size(0)]) for t, h in h_dict.items()}
    h_dict = {t: h[: sum(counts[t][: hop + 1])] for t, h in h_dict.items()}
    num_targets = {t: sum(counts[t][:hop]) for t in h_dict}
    edge_index_dict = {et: e[:, : sum(num_sampled_edges[et][:hop])] for et, e in edge_index_dict.items()}
    return h_dict, edge_index_dict, num_targets


def seed_rows(h_dict: dict[str, Tensor], num_sampled_nodes: dict[str, list[int]]) -> dict[str, Tensor]:
    """The seeds' rows of each type (the first ``num_sampled_nodes[t][0]``; every row of a type without
    counts): what a trimmed encoder returns."""
    return {t: h[: num_sampled_nodes.get(t, [h.size(0)])[0]] for t, h in h_dict.items()}


class HeteroEncoder(torch.nn.Module):
    """Base class: ``forward(x_dict, edge_index_dict) -> h_dict`` with ``num_layers`` layers of width ``channels``.

    Args:
        channels (int): Width :math:`D` of the inputs and outputs of every node type.
        num_layers (int): Number of message-passing layers.
    """

    #: Reads some edge type against its direction or as undirected (LightGCN, DiffNet): a sampled
    #: subgraph must hold both directions of every sampled edge (``NeighborSampler.merge_reverse``).
    reads_reverse_edges: bool = False
    #: Normalises by node degrees: ``forward(x_dict, edge_index_dict, degree_dict=None)`` takes the
    #: full-graph degrees ``{node type: [N_t]}`` to use on a sampled subgraph.
    needs_degrees: bool = False
    #: On a sampled subgraph, reads only the hops each layer needs: ``forward(x_dict, edge_index_dict,
    #: num_sampled_nodes=None, num_sampled_edges=None)`` takes the subgraph's counts per hop and then
    #: returns the seeds' rows only (HGT, where every source node of a relation costs a transform).
    trims_to_hops: bool = False

    def __init__(self, channels: int, num_layers: int) -> None:
        super().__init__()
        if channels < 1:
            raise ValueError(f"channels = {channels}; expected a positive int")
        if num_layers < 0:
            raise ValueError(f"num_layers = {num_layers}; expected a non-negative int")
        self.channels = channels
        self.num_layers = num_layers
        # One ModuleDict (node type -> adapter) per layer, inserted by graphrec.nn.adapters.add_adapters.
        self.adapters: torch.nn.ModuleList | None = None

    def reads_edge_types(self, edge_types: Sequence[EdgeType]) -> list[EdgeType]:
        """The edge types of ``edge_types`` whose edges ``forward`` reads (all by default): a neighbour sampler
        need not draw the others."""
        return list(edge_types)

    def adapt(self, layer: int, h_dict: dict[str, Tensor]) -> dict[str, Tensor]:
        """``h_dict`` after layer ``layer`` (0-based) passed through that layer's adapters, if any."""
        if self.adapters is None:
            return h_dict
        adapters = self.adapters[layer]
        return {t: adapters[t](h) if t in adapters else h for t, h in h_dict.items()}

    def check_inputs(self, x_dict: dict[str, Tensor], edge_index_dict: dict[EdgeType, Tensor],
                     known_edge_types: list[EdgeType] | None = None) -> None:
        """Raises ``ValueError`` for a width other than ``channels``, an edge type between unknown node
        types, or (given ``known_edge_types``) an edge type the encoder was not built for."""
        for node_type, x in x_dict.items():
            if x.dim() != 2 or x.size(-1) != self.channels:
                raise ValueError(f"x_dict[{node_type!r}] has shape {list(x.shape)}; expected [N, {self.channels}]")
        known = None if known_edge_types is None else set(map(tuple, known_edge_types))
        for edge_type in edge_index_dict:
            source, _, target = edge_type
            if source not in x_dict or target not in x_dict:
                raise ValueError(f"edge type {edge_type} joins node types missing from x_dict {sorted(x_dict)}")
            if known is not None and tuple(edge_type) not in known:
                raise ValueError(f"edge type {edge_type} is not one this encoder was built for: {sorted(known)}")

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(channels={self.channels}, num_layers={self.num_layers})"
