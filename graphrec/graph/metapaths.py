"""Random walks that follow a meta-path: a sequence of node types such as user-item-genre-item-user.

A meta-path (Sun et al., "PathSim: Meta Path-Based Top-K Similarity Search in Heterogeneous
Information Networks", VLDB 2011) names the node type of every stop of a walk; metapath2vec
(Dong et al., KDD 2017) walks them to learn embeddings, and CHEST (Wang et al., TOIS 2023)
asks a model which meta-path joins two nodes. Each hop from type ``a`` to type ``b`` may use any
edge type ``(a, *, b)``: their union is one CSR matrix, built once per hop.

Walks are vectorised as in :mod:`graphrec.graph.paths`: each hop picks one uniform neighbour for
all walks at once; a walk at a node with no neighbour of the next type is dropped.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import torch
from torch import Tensor

EdgeType = tuple[str, str, str]
MetaPath = Sequence[str]


def parse_metapath(metapath: MetaPath | str) -> list[str]:
    """A meta-path as a list of node types; a string ``"user-item-user"`` is split at ``-``."""
    types = metapath.split("-") if isinstance(metapath, str) else list(metapath)
    if len(types) < 2 or not all(isinstance(t, str) and t for t in types):
        raise ValueError(f"meta-path {metapath!r}: expected at least two node types, e.g. ['user', 'item', 'user']")
    return types


def metapath_name(metapath: MetaPath) -> str:
    """``"user-item-user"``."""
    return "-".join(metapath)


def missing_hops(metapath: MetaPath, edge_index_dict: Mapping[EdgeType, Tensor] | Iterable[EdgeType],
                 node_types: Iterable[str] | None = None) -> list[tuple[str, str]]:
    """The hops ``(a, b)`` of ``metapath`` with no edge from type ``a`` to type ``b``.

    Args:
        metapath: node types.
        edge_index_dict: ``[2, E]`` per edge type (an empty tensor counts as no edges), or just edge types.
        node_types: if given, a hop touching a type outside it is missing too.
    """
    if isinstance(edge_index_dict, Mapping):
        present = {tuple(e) for e, index in edge_index_dict.items() if index.numel() > 0}
    else:
        present = {tuple(e) for e in edge_index_dict}
    known = None if node_types is None else set(node_types)
    hops = list(zip(metapath[:-1], metapath[1:]))
    joined = {(src, dst) for src, _, dst in present}
    return [hop for hop in hops
            if hop not in joined or (known is not None and not set(hop) <= known)]


def split_applicable(
    metapaths: Iterable[MetaPath],
    edge_index_dict: Mapping[EdgeType, Tensor] | Iterable[EdgeType],
    node_types: Iterable[str] | None = None,
) -> tuple[list[list[str]], dict[str, list[tuple[str, str]]]]:
    """``(applicable meta-paths, {name of each other one: its missing hops})``.

    A recipe can list ``user-user-item`` and run on a graph without social edges: the caller
    skips what this reports (and says so).
    """
    edge_index_dict = edge_index_dict if isinstance(edge_index_dict, Mapping) else list(edge_index_dict)
    node_types = None if node_types is None else list(node_types)
    applicable, skipped = [], {}
    for metapath in map(parse_metapath, metapaths):
        missing = missing_hops(metapath, edge_index_dict, node_types)
        if missing:
            skipped[metapath_name(metapath)] = missing
        else:
            applicable.append(metapath)
    return applicable, skipped


class MetaPathSampler:
    """Uniform random walks along meta-paths over the union of the edge types of every hop.

    Args:
        edge_index_dict: ``[2, E]`` (source, target) ids per edge type.
        num_nodes_dict: number of nodes of each node type.
        metapaths: meta-paths, each a list of node types (or a ``"user-item-user"`` string).

    Every hop of every meta-path must have an edge (check with :func:`split_applicable` first);
    otherwise ``ValueError`` names the meta-path and the hop.

    Example:
        >>> edges = {("user", "interacts", "item"): torch.tensor([[0, 1], [0, 0]]),
        ...          ("item", "rev_interacts", "user"): torch.tensor([[0, 0], [0, 1]])}
        >>> sampler = MetaPathSampler(edges, {"user": 2, "item": 1}, [["user", "item", "user"]])
        >>> sampler.sample(4, torch.Generator().manual_seed(0))[0].shape
        torch.Size([4, 3])
    """

    def __init__(self, edge_index_dict: Mapping[EdgeType, Tensor], num_nodes_dict: Mapping[str, int],
                 metapaths: Iterable[MetaPath | str]) -> None:
        self.metapaths = [parse_metapath(m) for m in metapaths]
        if not self.metapaths:
            raise ValueError("metapaths is empty; expected at least one meta-path, e.g. ['user', 'item', 'user']")
        self.num_nodes_dict = dict(num_nodes_dict)
        for metapath in self.metapaths:
            unknown = [t for t in metapath if t not in self.num_nodes_dict]
            if unknown:
                raise ValueError(f"meta-path {metapath_name(metapath)}: node type {unknown[0]!r} is not in the graph; "
                                 f"node types: {list(self.num_nodes_dict)}")
            missing = missing_hops(metapath, edge_index_dict)
            if missing:
                raise ValueError(f"meta-path {metapath_name(metapath)}: no edges from {missing[0][0]!r} to "
                                 f"{missing[0][1]!r} in the graph; edge types: {list(edge_index_dict)}")
        # One CSR (indptr [N_a + 1], targets [E_ab]) per distinct hop (a, b), built on CPU.
        self.hops: dict[tuple[str, str], tuple[Tensor, Tensor]] = {}
        for metapath in self.metapaths:
            for hop in zip(metapath[:-1], metapath[1:]):
                if hop not in self.hops:
                    self.hops[hop] = self._csr(edge_index_dict, *hop)

    def _csr(self, edge_index_dict: Mapping[EdgeType, Tensor], src: str, dst: str) -> tuple[Tensor, Tensor]:
        num_src, num_dst = self.num_nodes_dict[src], self.num_nodes_dict[dst]
        parts = [index.detach().cpu().long() for (s, _, d), index in edge_index_dict.items() if (s, d) == (src, dst)]
        edge_index = torch.cat(parts, dim=1)  # [2, E]
        # unique keys: duplicates across edge types count once, and the sort groups targets by source
        keys = torch.unique(edge_index[0] * num_dst + edge_index[1])
        sources, targets = keys // num_dst, keys % num_dst
        indptr = torch.zeros(num_src + 1, dtype=torch.long)
        indptr[1:] = torch.cumsum(torch.bincount(sources, minlength=num_src), 0)
        return indptr, targets

    def degree(self, src: str, dst: str) -> Tensor:
        """``[N_src]`` number of distinct ``dst`` neighbours of each ``src`` node."""
        indptr, _ = self.hops[src, dst]
        return indptr[1:] - indptr[:-1]

    def walk(self, metapath: Sequence[str], starts: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Walks ``[P, L+1]`` from ``starts`` ``[W]`` along ``metapath``; those hitting a dead end are dropped."""
        nodes = starts.long().cpu()  # current node of every live walk
        walks = [nodes]
        for hop in zip(metapath[:-1], metapath[1:]):
            indptr, targets = self.hops[hop]
            degree = indptr[nodes + 1] - indptr[nodes]  # [W]
            alive = degree > 0
            walks = [w[alive] for w in walks]
            nodes, degree = nodes[alive], degree[alive]
            offset = (torch.rand(len(nodes), generator=generator) * degree).long().clamp_max_(degree - 1)
            nodes = targets[indptr[nodes] + offset]
            walks.append(nodes)
        return torch.stack(walks, dim=1)

    def sample(self, num_walks_per_metapath: int, generator: torch.Generator | None = None) -> list[Tensor]:
        """Per meta-path, up to ``num_walks_per_metapath`` walks ``[P, L+1]`` of local node ids.

        Starts are uniform over the nodes of the first type that have a neighbour for the first
        hop; walks that reach a node with no neighbour of the next type are dropped, so ``P`` may
        be smaller than asked.
        """
        walks = []
        for metapath in self.metapaths:
            can_start = torch.nonzero(self.degree(metapath[0], metapath[1]) > 0).flatten()
            pick = torch.randint(len(can_start), (num_walks_per_metapath,), generator=generator)
            walks.append(self.walk(metapath, can_start[pick], generator))
        return walks

    def __repr__(self) -> str:
        return f"{type(self).__name__}(metapaths={[metapath_name(m) for m in self.metapaths]})"
