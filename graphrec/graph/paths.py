"""Typed paths through the knowledge graph: ``user -> item -> relation -> entity -> ... -> item``.

A :class:`PathGraph` puts every node of a built graph into one id space (node types laid out
one after another) and stores the edges in CSR order sorted by (source, relation, target), so
that "the neighbours of node ``v`` through relation ``r``" is one contiguous slice found by
binary search. Path sampling (:func:`sample_paths`) and constrained decoding
(:mod:`graphrec.explain`) both read it.

Paths follow the path language models of PLM-Rec (Geng et al., "Path Language Modeling over
Knowledge Graphs for Explainable Recommendation", WWW 2022) and PEARLM (Balloccu et al.,
"Faithful Path Language Modeling for Explainable Recommendation over Knowledge Graph", 2023):
the first hop is an interaction of the user, the last node is an item, and every hop in between
is an edge of the training graph. Users are not crossed in the middle of a path unless asked
(``via_users``): "a user who also watched ..." explains little and multiplies the branching.

Sampling is vectorised: every step picks one random out-edge for a whole batch of walks at once
from the CSR arrays, and walks that break a rule (no edge, wrong end) are dropped afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Literal, Sequence

import numpy as np
import torch

from graphrec.errors import ConfigError, DataError
from graphrec.graph.bundle import INTERACTS, REV_INTERACTS, GraphBundle

EndRule = Literal["seen", "unseen", "any"]


@dataclass
class PathGraph:
    """Every node of a graph in one id space, edges in CSR order by (source, relation, target).

    Attributes:
        node_types: node types in id order; type ``t`` holds ids ``offsets[t]:offsets[t+1]``.
        offsets: ``[T+1]`` start of each node type in the global id space.
        relations: the edge types; a relation id is a position in this list.
        indptr: ``[N+1]`` CSR row pointers over global source ids.
        target: ``[E]`` global target id of each edge.
        relation: ``[E]`` relation id of each edge.
        seen_keys: sorted ``user * num_items + item`` keys of the training interactions.
    """

    node_types: list[str]
    offsets: np.ndarray
    relations: list[tuple[str, str, str]]
    indptr: np.ndarray
    target: np.ndarray
    relation: np.ndarray
    seen_keys: np.ndarray

    # ------------------------------------------------------------------ building
    @classmethod
    def from_bundle(cls, bundle: GraphBundle, train_rows: np.ndarray, via_users: bool = False) -> "PathGraph":
        """The path graph of ``bundle`` with the interactions of ``train_rows``.

        Kept: ``user -interacts-> item`` and every side edge between non-user nodes; with
        ``via_users`` also ``item -rev_interacts-> user``. Edges out of users other than
        interactions (``user -has_age-> age``) and into users are left out: a path starts at its
        user with an interaction and never comes back to a user.
        """
        graph = bundle.message_passing_graph(np.asarray(train_rows))
        edges = {}
        for edge_type in graph.edge_types:
            src, _, dst = edge_type
            if edge_type == INTERACTS or (src != "user" and dst != "user") or (via_users and edge_type == REV_INTERACTS):
                edges[edge_type] = graph[edge_type].edge_index.numpy()
        num_nodes = {t: bundle.idmap.num_nodes(t) for t in graph.node_types}
        train = bundle.interactions.edge_index(np.asarray(train_rows)).numpy()
        return cls.from_edges(num_nodes, edges, train)

    @classmethod
    def from_edges(cls, num_nodes: dict[str, int], edges: dict[tuple[str, str, str], np.ndarray],
                   train_edge_index: np.ndarray) -> "PathGraph":
        """Build from per-type node counts and ``{(src, rel, dst): [2, E] local ids}``.

        ``num_nodes`` must hold ``user`` and ``item``; ``train_edge_index`` (``[2, E]`` user,
        item) gives the seen items that path ends are checked against.
        """
        for needed in ("user", "item"):
            if needed not in num_nodes:
                raise DataError(f"a path graph needs '{needed}' nodes; the graph has {sorted(num_nodes)}")
        node_types = ["user", "item"] + [t for t in num_nodes if t not in ("user", "item")]
        offsets = np.cumsum([0] + [num_nodes[t] for t in node_types]).astype(np.int64)
        start = dict(zip(node_types, offsets[:-1]))
        relations = sorted(edges, key=lambda e: (e != INTERACTS, e))  # interacts is relation 0
        sources, targets, rel_ids = [], [], []
        for rel_id, (src, rel, dst) in enumerate(relations):
            edge_index = np.asarray(edges[src, rel, dst], dtype=np.int64)
            sources.append(edge_index[0] + start[src])
            targets.append(edge_index[1] + start[dst])
            rel_ids.append(np.full(edge_index.shape[1], rel_id, dtype=np.int64))
        source = np.concatenate(sources) if sources else np.zeros(0, np.int64)
        target = np.concatenate(targets) if targets else np.zeros(0, np.int64)
        relation = np.concatenate(rel_ids) if rel_ids else np.zeros(0, np.int64)
        order = np.lexsort((target, relation, source))
        source, target, relation = source[order], target[order], relation[order]
        indptr = np.zeros(offsets[-1] + 1, dtype=np.int64)
        np.cumsum(np.bincount(source, minlength=offsets[-1]), out=indptr[1:])
        train = np.asarray(train_edge_index, dtype=np.int64)
        seen_keys = np.unique(train[0] * num_nodes["item"] + train[1])
        return cls(node_types, offsets, relations, indptr, target, relation, seen_keys)

    # ------------------------------------------------------------------ reading
    @property
    def num_nodes(self) -> int:
        return int(self.offsets[-1])

    @property
    def num_edges(self) -> int:
        return len(self.target)

    @property
    def num_users(self) -> int:
        return int(self.offsets[1] - self.offsets[0])

    @property
    def num_items(self) -> int:
        return int(self.offsets[2] - self.offsets[1])

    def type_of(self, nodes: np.ndarray | torch.Tensor) -> np.ndarray:
        """Node-type position of each global id."""
        return np.searchsorted(self.offsets, np.asarray(nodes), side="right") - 1

    def local(self, nodes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(type position, id within the type) of global ids."""
        types = self.type_of(nodes)
        return types, np.asarray(nodes) - self.offsets[types]

    def relation_target_type(self) -> np.ndarray:
        """``[R]`` type position of each relation's target nodes."""
        return np.asarray([self.node_types.index(dst) for _, _, dst in self.relations], dtype=np.int64)

    def relation_masks(self) -> np.ndarray:
        """``[N, R]`` bool: which relations leave each node."""
        mask = np.zeros((self.num_nodes, len(self.relations)), dtype=bool)
        mask[self.source, self.relation] = True
        return mask

    @cached_property
    def source(self) -> np.ndarray:
        """``[E]`` global source id of each edge (the CSR rows, expanded)."""
        return np.repeat(np.arange(self.num_nodes, dtype=np.int64), np.diff(self.indptr))

    @cached_property
    def keys(self) -> np.ndarray:
        """``[E]`` sorted ``source * R + relation`` of each edge: ``(node, relation)`` ranges by binary search."""
        return self.source * len(self.relations) + self.relation

    @cached_property
    def into_item(self) -> np.ndarray:
        """``[E]`` bool: the edge enters an item."""
        return self.type_of(self.target) == 1

    @cached_property
    def has_item_edge(self) -> np.ndarray:
        """``[N]`` bool: the node has an edge into an item (a path can end one hop later)."""
        return np.bincount(self.source[self.into_item], minlength=self.num_nodes) > 0

    def segments(self, nodes: np.ndarray, relations: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Edge ranges ``[start, end)`` of ``(node, relation)`` pairs (empty where no such edge)."""
        nodes, relations = np.asarray(nodes, dtype=np.int64), np.asarray(relations, dtype=np.int64)
        keys = self.keys
        wanted = nodes * len(self.relations) + relations
        return np.searchsorted(keys, wanted, side="left"), np.searchsorted(keys, wanted, side="right")

    def has_edges(self, source: np.ndarray, relation: np.ndarray, target: np.ndarray) -> np.ndarray:
        """Whether each ``(source, relation, target)`` triple is an edge."""
        start, end = self.segments(source, relation)
        # Inside a (source, relation) segment targets are sorted: one more binary search per triple.
        pos = _segment_searchsorted(self.target, start, end, np.asarray(target, dtype=np.int64))
        found = pos < end
        found[found] = self.target[pos[found]] == np.asarray(target)[found]
        return found

    def is_seen(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Whether each (user, item) pair, as local ids, is a training interaction."""
        keys = np.asarray(users, dtype=np.int64) * self.num_items + np.asarray(items, dtype=np.int64)
        pos = np.searchsorted(self.seen_keys, keys)
        pos = np.minimum(pos, max(len(self.seen_keys) - 1, 0))
        return (self.seen_keys[pos] == keys) if len(self.seen_keys) else np.zeros(len(keys), dtype=bool)


@dataclass
class Paths:
    """Sampled paths: ``nodes[p, h]`` is the global id of hop ``h`` (``0`` is the user)."""

    nodes: np.ndarray  # [P, H+1] global ids
    relations: np.ndarray  # [P, H] relation ids

    def __len__(self) -> int:
        return len(self.nodes)

    @property
    def hops(self) -> int:
        return self.relations.shape[1]


def sample_paths(graph: PathGraph, hops: int = 3, paths_per_user: int = 10, users: Sequence[int] | None = None,
                 end: EndRule = "seen", seed: int = 0, max_rounds: int = 20, oversample: float = 4.0) -> Paths:
    """Random typed walks ``user -interacts-> item -> ... -> item`` of ``hops`` edges.

    Args:
        graph: the path graph.
        hops: edges per path (the first is an interaction, the last ends at an item).
        paths_per_user: paths wanted per user; users whose walks rarely succeed may get fewer.
        users: local user ids to start from (default: every user with a training interaction).
        end: ``"seen"``: the end item is another training item of the user (paths to learn from);
            ``"unseen"``: the end item is not a training item (candidate recommendations);
            ``"any"``: no rule.
        seed: random seed.
        max_rounds: sampling rounds before giving up on users still short of paths.
        oversample: walks drawn per missing path in a round (most walks of a rare kind fail).

    Every step draws one out-edge uniformly; the last step draws only among edges into items,
    and middle steps never enter a user. No node repeats within a path.
    """
    if hops < 1:
        raise ConfigError(f"hops must be at least 1, got {hops}")
    if end not in ("seen", "unseen", "any"):
        raise ConfigError(f"end must be 'seen', 'unseen' or 'any', got {end!r}")
    rng = np.random.default_rng(seed)
    user_degree = np.diff(graph.indptr[: graph.num_users + 1])
    if users is None:
        users = np.flatnonzero(user_degree > 0)
    users = np.asarray(users, dtype=np.int64)
    steps = _StepTables(graph)
    missing = np.full(len(users), paths_per_user, dtype=np.int64)
    kept_nodes, kept_rels = [], []
    for _ in range(max_rounds):
        if not missing.any():
            break
        draws = np.repeat(np.arange(len(users)), np.ceil(missing * oversample).astype(np.int64))
        nodes, rels, ok = _walk(graph, steps, users[draws], hops, rng)
        ok &= _end_rule(graph, nodes, end)
        ok &= _no_repeats(nodes)
        # keep at most `missing` successful walks per user, in draw order
        owner = draws[ok]
        rank = np.arange(len(owner)) - np.searchsorted(owner, owner, side="left")
        take = rank < missing[owner]
        kept_nodes.append(nodes[ok][take])
        kept_rels.append(rels[ok][take])
        missing -= np.bincount(owner[take], minlength=len(users))
    nodes = np.concatenate(kept_nodes) if kept_nodes else np.zeros((0, hops + 1), np.int64)
    rels = np.concatenate(kept_rels) if kept_rels else np.zeros((0, hops), np.int64)
    order = rng.permutation(len(nodes))
    return Paths(nodes[order], rels[order])


class _StepTables:
    """Per node, the out-edges usable in the middle of a path and those into items, as CSR."""

    def __init__(self, graph: PathGraph) -> None:
        source = graph.source
        self.last = _sub_csr(graph.num_nodes, source, graph.into_item)
        # middle hops: not into users, and (for the hop before the last) only into nodes with an item edge
        middle = graph.type_of(graph.target) != 0
        self.middle = _sub_csr(graph.num_nodes, source, middle)
        self.before_last = _sub_csr(graph.num_nodes, source, middle & graph.has_item_edge[graph.target])
        # users: interactions only (relation 0)
        self.first = _sub_csr(graph.num_nodes, source, graph.relation == 0)


def _sub_csr(num_nodes: int, source: np.ndarray, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(indptr, edge positions) of the edges flagged in ``keep``, grouped by source."""
    positions = np.flatnonzero(keep)
    indptr = np.zeros(num_nodes + 1, dtype=np.int64)
    np.cumsum(np.bincount(source[positions], minlength=num_nodes), out=indptr[1:])
    return indptr, positions


def _walk(graph: PathGraph, steps: _StepTables, starts: np.ndarray, hops: int, rng: np.random.Generator
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One random out-edge per walk and step; walks stuck at a node without a usable edge fail."""
    count = len(starts)
    nodes = np.zeros((count, hops + 1), dtype=np.int64)
    rels = np.zeros((count, hops), dtype=np.int64)
    nodes[:, 0] = starts
    ok = np.ones(count, dtype=bool)
    for hop in range(hops):
        if hop == 0:
            indptr, positions = steps.first
        elif hop == hops - 1:
            indptr, positions = steps.last
        elif hop == hops - 2:
            indptr, positions = steps.before_last
        else:
            indptr, positions = steps.middle
        current = nodes[:, hop]
        degree = indptr[current + 1] - indptr[current]  # [W]
        ok &= degree > 0
        pick = indptr[current] + (rng.random(count) * degree).astype(np.int64)  # [W]
        edge = positions[np.minimum(pick, len(positions) - 1)] if len(positions) else np.zeros(count, np.int64)
        nodes[:, hop + 1] = np.where(ok, graph.target[edge] if len(graph.target) else 0, 0)
        rels[:, hop] = np.where(ok, graph.relation[edge] if len(graph.relation) else 0, 0)
    if hops == 1:
        ok &= graph.type_of(nodes[:, -1]) == 1
    return nodes, rels, ok


def _end_rule(graph: PathGraph, nodes: np.ndarray, end: EndRule) -> np.ndarray:
    if end == "any":
        return np.ones(len(nodes), dtype=bool)
    users = nodes[:, 0] - graph.offsets[0]
    items = nodes[:, -1] - graph.offsets[1]
    seen = graph.is_seen(users, items)
    return seen if end == "seen" else ~seen


def _no_repeats(nodes: np.ndarray) -> np.ndarray:
    ordered = np.sort(nodes, axis=1)
    return (ordered[:, 1:] != ordered[:, :-1]).all(axis=1)


def _segment_searchsorted(values: np.ndarray, start: np.ndarray, end: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Vectorised ``searchsorted`` of ``wanted[i]`` inside the sorted slice ``values[start[i]:end[i]]``."""
    lo, hi = start.copy(), end.copy()
    while True:
        active = lo < hi
        if not active.any():
            return lo
        mid = (lo + hi) // 2
        go_right = active & (values[np.minimum(mid, len(values) - 1)] < wanted)
        lo = np.where(go_right, mid + 1, lo)
        hi = np.where(active & ~go_right, mid, hi)


def check_paths(graph: PathGraph, paths: Paths) -> np.ndarray:
    """Whether every hop of each path is an edge of ``graph`` (``[P]`` bool)."""
    valid = np.ones(len(paths), dtype=bool)
    for hop in range(paths.hops):
        valid &= graph.has_edges(paths.nodes[:, hop], paths.relations[:, hop], paths.nodes[:, hop + 1])
    return valid
