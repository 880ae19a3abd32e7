"""Conversions between a PyG ``HeteroData`` and SciPy, DGL and networkx graphs.

Every conversion keeps the node count of every node type (isolated nodes
included) and the edges of every canonical edge type ``(src, relation, dst)``,
also relations with no edges, so a graph built by graphrec can be handed to DGL
samplers, SciPy sparse algebra or networkx analysis and back.

Two smaller views are for looking at: :func:`neighbourhood_graph`, the k-hop
neighbourhood of one node with display names, and :func:`path_to_networkx`, the
knowledge-graph paths that explain recommendations (``graphrec plot-path`` draws both).
"""

from __future__ import annotations

import numbers
import warnings
from typing import Any, Mapping, Sequence

import networkx as nx
import numpy as np
import scipy.sparse as sp
import torch
from torch_geometric.data import HeteroData

from graphrec.errors import DataError
from graphrec.optional import require
from graphrec.utils import suggest

EdgeType = tuple[str, str, str]


def num_nodes_dict(data: HeteroData) -> dict[str, int]:
    """Node count of every node type, including types that only appear in edge types.

    Uses ``num_nodes`` (or ``x``) of a node store when set, else the largest index
    that an edge type uses plus one.

    Raises:
        DataError: When an edge refers to a node index at or past its type's count.
    """
    largest: dict[str, int] = {}
    for src, rel, dst in data.edge_types:
        edge_index = data[src, rel, dst].edge_index
        for node_type, indices in ((src, edge_index[0]), (dst, edge_index[1])):
            top = int(indices.max()) + 1 if indices.numel() else 0
            largest[node_type] = max(largest.get(node_type, 0), top)
    counts: dict[str, int] = {}
    for node_type in list(data.node_types) + [t for t in largest if t not in data.node_types]:
        count = None
        if node_type in data.node_types:
            with warnings.catch_warnings():  # PyG warns when it has to guess; we guess below
                warnings.simplefilter("ignore")
                count = data[node_type].num_nodes
        if count is None:
            count = largest.get(node_type, 0)
        if largest.get(node_type, 0) > count:
            raise DataError(f"node type '{node_type}' has {count} nodes but an edge uses index "
                            f"{largest[node_type] - 1}")
        counts[node_type] = int(count)
    return counts


def to_scipy_csr(data: HeteroData, edge_type: EdgeType | str) -> sp.csr_matrix:
    """The ``[num_src_nodes, num_dst_nodes]`` adjacency of one edge type as CSR.

    Entries are ``edge_weight`` when the edge type has one, else ones; duplicate
    edges are summed.
    """
    edge_type = _canonical(data, edge_type)
    src, _, dst = edge_type
    counts = num_nodes_dict(data)
    store = data[edge_type]
    edge_index = store.edge_index.cpu().numpy()
    weight = store.get("edge_weight")
    values = (np.ones(edge_index.shape[1], dtype=np.float32) if weight is None
              else weight.detach().cpu().numpy().reshape(-1))
    return sp.csr_matrix((values, (edge_index[0], edge_index[1])), shape=(counts[src], counts[dst]))


def from_scipy_csr(matrix: sp.spmatrix) -> tuple[torch.Tensor, torch.Tensor]:
    """``(edge_index [2, E], edge_weight [E])`` of the stored entries of a sparse matrix, row-major."""
    coo = sp.csr_matrix(matrix).tocoo()
    edge_index = torch.from_numpy(np.stack([coo.row, coo.col]).astype(np.int64))  # [2, E]
    return edge_index, torch.from_numpy(np.asarray(coo.data))


def to_dgl(data: HeteroData):
    """A DGL heterograph with the same node types, counts and canonical edge types.

    Node-level tensors (``x`` and any other) go to ``graph.nodes[t].data`` and
    edge-level tensors (``edge_weight``, ``edge_attr``, ...) to ``graph.edges[e].data``.
    """
    dgl = require("dgl", "dgl")
    if not data.edge_types:
        raise DataError("cannot build a DGL graph from a HeteroData with no edge types")
    counts = num_nodes_dict(data)
    graph_data = {edge_type: (data[edge_type].edge_index[0].long(), data[edge_type].edge_index[1].long())
                  for edge_type in data.edge_types}
    graph = dgl.heterograph(graph_data, num_nodes_dict=counts, idtype=torch.int64)
    for node_type in data.node_types:
        store = data[node_type]
        for key, value in store.items():
            if key != "num_nodes" and isinstance(value, torch.Tensor) and store.is_node_attr(key):
                graph.nodes[node_type].data[key] = value
    for edge_type in data.edge_types:
        for key, value in _edge_attrs(data, edge_type).items():
            graph.edges[edge_type].data[key] = value
    return graph


def from_dgl(graph) -> HeteroData:
    """A ``HeteroData`` from a DGL graph: node counts, edges in edge-id order and their data."""
    data = HeteroData()
    for node_type in graph.ntypes:
        data[node_type].num_nodes = graph.num_nodes(node_type)
        for key, value in graph.nodes[node_type].data.items():
            data[node_type][key] = value
    for edge_type in graph.canonical_etypes:
        src, dst = graph.edges(etype=edge_type, order="eid")
        data[edge_type].edge_index = torch.stack([src.long(), dst.long()])  # [2, E]
        for key, value in graph.edges[edge_type].data.items():
            data[edge_type][key] = value
    return data


def to_networkx(data: HeteroData, node_attrs: Sequence[str] | None = None,
                edge_attrs: Sequence[str] = ("edge_weight",)) -> nx.MultiDiGraph:
    """A networkx multigraph with nodes ``(node_type, index)`` and typed edges.

    Every node has attribute ``type``; every edge has ``relation`` (the edge type
    tuple) plus the ``edge_attrs`` its type has. ``node_attrs`` names node-level
    tensors to copy (each node gets its row as a list or a number). The edge
    types are kept in ``graph.graph["edge_types"]`` so that relations without
    edges survive :func:`from_networkx`.
    """
    graph = nx.MultiDiGraph()
    graph.graph["edge_types"] = list(data.edge_types)
    for node_type, count in num_nodes_dict(data).items():
        store = data[node_type] if node_type in data.node_types else {}
        copied = {key: store[key].tolist() for key in node_attrs or () if key in store}
        graph.add_nodes_from(((node_type, index), {"type": node_type, **{key: rows[index]
                              for key, rows in copied.items()}}) for index in range(count))
    for edge_type in data.edge_types:
        src, _, dst = edge_type
        sources, targets = data[edge_type].edge_index.tolist()
        copied = {key: value.tolist() for key, value in _edge_attrs(data, edge_type).items()
                  if key in edge_attrs}
        graph.add_edges_from(((src, s), (dst, t), {"relation": edge_type, **{key: rows[e]
                              for key, rows in copied.items()}})
                             for e, (s, t) in enumerate(zip(sources, targets)))
    return graph


def from_networkx(graph: nx.Graph) -> HeteroData:
    """A ``HeteroData`` from a graph made by :func:`to_networkx` (or built the same way).

    Nodes must be ``(node_type, index)`` tuples; each type gets ``max(index) + 1``
    nodes. Edges need a ``relation`` attribute; other edge and node attributes
    present on every edge (node) of a type become tensors.
    """
    counts: dict[str, int] = {}
    node_values: dict[str, dict[str, dict[int, object]]] = {}
    for node, attrs in graph.nodes(data=True):
        if not (isinstance(node, tuple) and len(node) == 2 and isinstance(node[1], numbers.Integral)):
            raise DataError(f"networkx node {node!r} is not a (node_type, index) tuple")
        node_type, index = node[0], int(node[1])
        counts[node_type] = max(counts.get(node_type, 0), index + 1)
        for key, value in attrs.items():
            if key != "type":
                node_values.setdefault(node_type, {}).setdefault(key, {})[index] = value
    edges: dict[EdgeType, list[tuple[int, int, dict]]] = {
        tuple(edge_type): [] for edge_type in graph.graph.get("edge_types", [])}
    for (src_type, src), (dst_type, dst), attrs in graph.edges(data=True):
        if "relation" not in attrs:
            raise DataError(f"networkx edge {(src_type, src)} -> {(dst_type, dst)} "
                            "has no 'relation' attribute")
        relation = attrs["relation"]
        edge_type = tuple(relation) if isinstance(relation, (tuple, list)) else (src_type, relation, dst_type)
        edges.setdefault(edge_type, []).append((int(src), int(dst), attrs))
    data = HeteroData()
    for node_type, count in counts.items():
        data[node_type].num_nodes = count
        for key, values in node_values.get(node_type, {}).items():
            if len(values) == count:
                data[node_type][key] = torch.tensor([values[index] for index in range(count)])
    for edge_type, rows in edges.items():
        data[edge_type].edge_index = torch.tensor([[s for s, _, _ in rows], [t for _, t, _ in rows]],
                                                  dtype=torch.long).reshape(2, -1)  # [2, E]
        shared = set.intersection(*(set(attrs) for _, _, attrs in rows)) - {"relation"} if rows else set()
        for key in sorted(shared):
            data[edge_type][key] = torch.tensor([attrs[key] for _, _, attrs in rows])
    return data


def neighbourhood_graph(data: HeteroData, node_type: str, index: int, hops: int = 2, max_nodes: int = 50,
                        idmap=None, collapse_reverse: bool = True) -> nx.MultiDiGraph:
    """The ``hops``-hop neighbourhood of one node as a networkx multigraph, at most ``max_nodes`` nodes.

    Edges are followed in both directions. The room left under the cap is shared evenly by the
    hops still to take (what a hop leaves unused passes on), so a hub's first hop cannot crowd out
    the second. When a hop reaches more nodes than its share, the kept ones are taken from each
    node type in turn, each type's in order of the number of edges joining them to the previous
    hop (ties: index): the strongest ties of every kind rather than a random sample. Nodes are
    ``(node_type, index)`` as in :func:`to_networkx`, with attributes ``type``, ``index``, ``hop``
    (distance from the centre), ``id`` and ``name`` (from ``idmap``, an
    :class:`graphrec.data.idmap.IdMap`, when given); edges carry ``relation`` (the edge type)
    and exist wherever both ends were kept. With ``collapse_reverse`` an edge type
    ``(dst, rev_r, src)`` whose forward ``(src, r, dst)`` is in the graph is left out (it repeats
    the forward edges). The centre is ``graph.graph["center"]``.

    Raises:
        DataError: When ``node_type`` is not in the graph or ``index`` is out of range.
        ValueError: When ``hops`` is negative or ``max_nodes`` below 1.
    """
    if hops < 0:
        raise ValueError(f"hops must be at least 0, found {hops}")
    if max_nodes < 1:
        raise ValueError(f"max_nodes must be at least 1, found {max_nodes}")
    counts = num_nodes_dict(data)
    if node_type not in counts:
        raise DataError(f"no node type '{node_type}' in the graph{suggest(node_type, counts)}; it has {list(counts)}")
    if not 0 <= index < counts[node_type]:
        raise DataError(f"{node_type} index {index} is out of range; the graph has {counts[node_type]} "
                        f"{node_type} nodes")
    edges = {edge_type: data[edge_type].edge_index.cpu().numpy() for edge_type in data.edge_types}
    hop_of: dict[tuple[str, int], int] = {(node_type, int(index)): 0}
    frontier = {node_type: np.array([index], dtype=np.int64)}
    for hop in range(1, hops + 1):
        budget = -(-(max_nodes - len(hop_of)) // (hops - hop + 1))  # an even share of the room left, rounded up
        if budget <= 0 or not frontier:
            break
        reached: dict[tuple[str, int], int] = {}  # candidate -> edges from the frontier
        for (src, _, dst), edge_index in edges.items():
            for near, far, row in ((src, dst, 0), (dst, src, 1)):
                if near not in frontier:
                    continue
                hits = edge_index[1 - row, np.isin(edge_index[row], frontier[near])]
                for node, count in zip(*np.unique(hits, return_counts=True)):
                    if (far, int(node)) not in hop_of:
                        reached[far, int(node)] = reached.get((far, int(node)), 0) + int(count)
        strongest = sorted(reached, key=lambda node: (-reached[node], node))
        turn: dict[tuple[str, int], int] = {}  # the node's place among the candidates of its type
        taken: dict[str, int] = {}
        for node in strongest:
            turn[node] = taken.get(node[0], 0)
            taken[node[0]] = turn[node] + 1
        kept = sorted(strongest, key=lambda node: (turn[node], -reached[node], node))[:budget]
        hop_of.update((node, hop) for node in kept)
        frontier = {}
        for kind, local in kept:
            frontier.setdefault(kind, []).append(local)
        frontier = {kind: np.asarray(local, dtype=np.int64) for kind, local in frontier.items()}

    graph = nx.MultiDiGraph(center=(node_type, int(index)))
    for (kind, local), hop in sorted(hop_of.items(), key=lambda item: (item[1], item[0])):
        known = idmap is not None and kind in idmap.node_types
        graph.add_node((kind, local), type=kind, index=local, hop=hop,
                       id=idmap.raw(kind, local) if known else str(local),
                       name=idmap.name(kind, local) if known else f"{kind} {local}")
    kept_ids = {kind: np.asarray([local for t, local in hop_of if t == kind], dtype=np.int64) for kind in counts}
    for edge_type, edge_index in edges.items():
        src, rel, dst = edge_type
        if collapse_reverse and rel.startswith("rev_") and (dst, rel[4:], src) in edges:
            continue
        both = np.isin(edge_index[0], kept_ids[src]) & np.isin(edge_index[1], kept_ids[dst])
        graph.add_edges_from(((src, int(s)), (dst, int(t)), {"relation": edge_type})
                             for s, t in edge_index[:, both].T)
    return graph


def path_to_networkx(path: Sequence[Mapping[str, Any]], graph: nx.MultiDiGraph | None = None,
                     rank: int | None = None) -> nx.MultiDiGraph:
    """An explanation path as a networkx multigraph (or added to ``graph``).

    ``path`` alternates node entries (``type``, ``id``, ``name``) and relation entries
    (``relation``), as :func:`graphrec.explain.recommend_with_paths` returns them. Nodes are
    ``(type, raw id)`` with attributes ``type``, ``id``, ``name`` and ``position`` (the smallest
    hop position at which a path visits the node); the last node also gets ``end: True`` and,
    when given, ``rank``. Each hop is an edge keyed by its relation name, with attribute
    ``relation``; a hop shared by several paths is one edge whose ``ranks`` lists them.

    Raises:
        DataError: When the entries do not alternate node, relation, node, ..., node.
    """
    graph = nx.MultiDiGraph() if graph is None else graph
    nodes, relations = list(path[0::2]), list(path[1::2])
    if len(path) % 2 == 0 or any(not {"type", "id"} <= set(entry) for entry in nodes) \
            or any("relation" not in entry for entry in relations):
        raise DataError("a path must alternate node entries (type, id, name) and relation entries (relation), "
                        f"starting and ending with a node; found {list(path)[:5]}")
    keys = [(str(entry["type"]), str(entry["id"])) for entry in nodes]
    for position, (key, entry) in enumerate(zip(keys, nodes)):
        if key in graph:
            graph.nodes[key]["position"] = min(graph.nodes[key]["position"], position)
        else:
            graph.add_node(key, type=key[0], id=key[1], name=str(entry.get("name", key[1])), position=position)
    graph.nodes[keys[-1]]["end"] = True
    if rank is not None:
        graph.nodes[keys[-1]]["rank"] = rank
    for head, entry, tail in zip(keys, relations, keys[1:]):
        relation = str(entry["relation"])
        if not graph.has_edge(head, tail, key=relation):
            graph.add_edge(head, tail, key=relation, relation=relation, ranks=[])
        if rank is not None:
            graph.edges[head, tail, relation]["ranks"].append(rank)
    return graph


def _canonical(data: HeteroData, edge_type: EdgeType | str) -> EdgeType:
    """The ``(src, relation, dst)`` tuple of an edge type given as a tuple or a unique relation name."""
    if isinstance(edge_type, str):
        matches = [et for et in data.edge_types if et[1] == edge_type]
        if len(matches) == 1:
            return matches[0]
    elif tuple(edge_type) in data.edge_types:
        return tuple(edge_type)  # type: ignore[return-value]
    names = [str(et) for et in data.edge_types]
    raise DataError(f"edge type {edge_type!r} is not (uniquely) in the graph; it has {names}"
                    f"{suggest(str(edge_type), names)}")


def _edge_attrs(data: HeteroData, edge_type: EdgeType) -> dict[str, torch.Tensor]:
    """Edge-level tensors of an edge type other than ``edge_index``."""
    store = data[edge_type]
    num_edges = store.edge_index.shape[1]
    return {key: value for key, value in store.items()
            if key != "edge_index" and isinstance(value, torch.Tensor) and value.dim() > 0
            and value.shape[0] == num_edges}
