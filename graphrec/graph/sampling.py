r"""Neighbour sampling on a heterogeneous graph, vectorised with torch ops: mini-batches for message passing.

Samples what PyG's ``NeighborLoader`` samples (the GraphSAGE sampler of `Hamilton et al., NeurIPS 2017
<https://arxiv.org/abs/1706.02216>`_, made heterogeneous): from the seed nodes, hop :math:`l` draws up
to ``fanouts[l]`` incoming edges of every edge type for every node first reached at hop :math:`l - 1`
(the seeds at hop 1), uniformly without replacement by default. The subgraph is the union of all
sampled edges, relabelled to local ids, with the seeds first among their type's nodes; an
:math:`L`-layer encoder run on it gives each seed the representation it has on the full graph when
every fan-out is ``-1`` (all neighbours), for encoders that aggregate over incoming edges.

PyG's own sampler needs pyg-lib or torch-sparse, neither installed here; this one is plain torch.
All edge types share one CSR whose rows are (edge type, destination) pairs and all node types one id
space, so a hop is a fixed number of tensor operations whatever the number of types. A node's
``k`` neighbours are drawn with Floyd's algorithm (Bentley & Floyd, "Programming pearls: a sample of
brilliance", CACM 1987), run for all nodes at once in ``k`` vectorised steps: the cost is
:math:`O(k^2)` per node, not its degree.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch_geometric.data import HeteroData

from graphrec.graph.csr import EdgeType, HeteroCSR

Fanouts = list[int] | dict[EdgeType, list[int]]


@dataclass
class SampledSubgraph:
    """What :meth:`NeighborSampler.sample` returns.

    Attributes:
        n_id: Global ids ``[n_t]`` of the subgraph's nodes per node type (every type, maybe empty);
            the seeds come first, in the order given, so seed outputs are ``h[t][:num_seeds[t]]``.
        edge_index_dict: ``[2, E_r]`` sampled edges per edge type, in local ids (rows of ``n_id``).
        e_id: ``[E_r]`` positions of those edges in the full graph's ``edge_index_dict[r]``.
        num_seeds: Seeds per node type.
        num_sampled_nodes: Nodes first reached at each hop per node type; entry 0 counts the seeds.
        num_sampled_edges: Edges sampled at each hop per edge type.
    """

    n_id: dict[str, Tensor]
    edge_index_dict: dict[EdgeType, Tensor]
    e_id: dict[EdgeType, Tensor]
    num_seeds: dict[str, int]
    num_sampled_nodes: dict[str, list[int]]
    num_sampled_edges: dict[EdgeType, list[int]]

    def to(self, device: torch.device | str, non_blocking: bool = False) -> SampledSubgraph:
        """The same subgraph with every tensor on ``device`` (sample on the CPU, train on the GPU).

        With ``non_blocking`` CPU tensors are first copied to pinned memory, so the copies to a CUDA
        device overlap with the work already queued there.
        """
        move = functools.partial(to_device, device=device, non_blocking=non_blocking)
        return dataclasses.replace(
            self, n_id={t: move(n) for t, n in self.n_id.items()},
            edge_index_dict={et: move(e) for et, e in self.edge_index_dict.items()},
            e_id={et: move(e) for et, e in self.e_id.items()})

    def to_hetero_data(self, data: HeteroData | None = None) -> HeteroData:
        """The subgraph as a ``HeteroData`` with ``n_id``, ``num_nodes``, ``edge_index`` and ``e_id``, and, given the
        full graph ``data``, its node-level tensors gathered by ``n_id`` and edge-level ones by ``e_id``."""
        out = HeteroData()
        for node_type, n_id in self.n_id.items():
            out[node_type].n_id, out[node_type].num_nodes = n_id, n_id.numel()
            if data is not None and node_type in data.node_types:
                store = data[node_type]
                for key, value in store.items():
                    if key not in ("num_nodes", "n_id") and isinstance(value, Tensor) and store.is_node_attr(key):
                        out[node_type][key] = value[n_id.to(value.device)]
        for edge_type, edge_index in self.edge_index_dict.items():
            out[edge_type].edge_index, out[edge_type].e_id = edge_index, self.e_id[edge_type]
            if data is not None and edge_type in data.edge_types:
                store = data[edge_type]
                for key, value in store.items():
                    if key not in ("edge_index", "e_id") and isinstance(value, Tensor) and value.dim() > 0 \
                            and value.size(0) == store.edge_index.size(1):
                        out[edge_type][key] = value[self.e_id[edge_type].to(value.device)]
        return out


@dataclass
class LinkBatch:
    """What :meth:`NeighborSampler.sample_links` returns: the subgraph and where each pair's rows are.

    Attributes:
        subgraph: Sampled around the batch's distinct users and items (positives and negatives).
        users: ``[B]`` rows of the encoder's user output for each pair.
        pos_items: ``[B]`` rows of the item output.
        neg_items: ``[B, N]`` rows of the item output, or ``None`` without negatives.
    """

    subgraph: SampledSubgraph
    users: Tensor
    pos_items: Tensor
    neg_items: Tensor | None

    def to(self, device: torch.device | str, non_blocking: bool = False) -> LinkBatch:
        """The same batch with every tensor on ``device`` (see :meth:`SampledSubgraph.to`)."""
        move = functools.partial(to_device, device=device, non_blocking=non_blocking)
        return LinkBatch(self.subgraph.to(device, non_blocking), move(self.users), move(self.pos_items),
                         None if self.neg_items is None else move(self.neg_items))


def to_device(tensor: Tensor, device: torch.device | str, non_blocking: bool = False) -> Tensor:
    """``tensor`` on ``device``; with ``non_blocking``, a CPU tensor bound for CUDA goes through pinned memory."""
    device = torch.device(device)
    if non_blocking and device.type == "cuda" and tensor.device.type == "cpu":
        tensor = tensor.pin_memory()
    return tensor.to(device, non_blocking=non_blocking)


def gather_inputs(x_dict: dict[str, Tensor], subgraph: SampledSubgraph) -> dict[str, Tensor]:
    """The rows ``x[n_id]`` of every node type of ``x_dict``: the inputs of an encoder run on ``subgraph``.

    Indexing keeps the graph of ``x_dict``, so the gradient reaches the full embedding table (only the
    gathered rows get a nonzero one). A type the subgraph has no nodes of gets ``[0, D]``.
    """
    out = {}
    for node_type, x in x_dict.items():
        n_id = subgraph.n_id.get(node_type)
        out[node_type] = x[:0] if n_id is None else x.index_select(0, n_id.to(x.device))
    return out


class NeighborSampler:
    r"""Samples ``L``-hop neighbourhoods of seed nodes: the mini-batches of neighbour-sampled training.

    At hop :math:`l = 1..L` every node first reached at hop :math:`l - 1` (the seeds at hop 1) draws
    up to ``fanouts[l - 1]`` of its incoming edges of every edge type, uniformly; ``-1`` takes all
    of them, ``0`` none. Without replacement a node with fewer in-edges than the fan-out keeps all;
    with ``replace`` it draws exactly the fan-out (if it has any). Each node is sampled for at most
    once, so no edge is drawn twice without replacement. Draws come from the sampler's own seeded
    ``torch.Generator``: the same seed gives the same sequence of subgraphs.

    The sampler keeps one ``[N]`` scratch array of all nodes, reset after every call, so one instance
    must not sample from two threads at once (DataLoader worker processes each hold a copy).

    Args:
        edge_index_dict (dict): ``[2, E_r]`` (source, target) edges per edge type; messages flow
            source to target, so the sampler walks them backwards.
        num_nodes_dict (dict[str, int]): Node count of every node type.
        fanouts (list[int] or dict): ``L`` fan-outs for every edge type, or a list per edge type
            (every edge type listed, all lists of length ``L``).
        replace (bool, optional): Draw with replacement. (default: ``False``)
        seed (int, optional): Seed of the generator. (default: ``0``)
        reverse_edge_types (dict, optional): Pairs ``{edge type: its reverse}`` whose reverse is the
            edge type's ``edge_index`` flipped, edge for edge; :meth:`merge_reverse` uses them. (default: none)
    """

    def __init__(self, edge_index_dict: dict[EdgeType, Tensor], num_nodes_dict: dict[str, int], fanouts: Fanouts,
                 replace: bool = False, seed: int = 0,
                 reverse_edge_types: dict[EdgeType, EdgeType] | None = None) -> None:
        self.csr = HeteroCSR(edge_index_dict, num_nodes_dict)
        self.fanouts = self._check_fanouts(fanouts)
        self.num_hops = len(fanouts) if isinstance(fanouts, (list, tuple)) else \
            len(next(iter(self.fanouts.values()), []))
        self.replace, self.seed = bool(replace), seed
        self.reverse_edge_types = self._check_reverse(edge_index_dict, reverse_edge_types or {})
        csr, device = self.csr, self.csr.device
        self.generator = torch.Generator(device=device).manual_seed(seed)
        self._type_offset = torch.tensor([csr.node_offset[t] for t in csr.node_types] + [csr.num_nodes],
                                         device=device)  # [T + 1]
        self._plans = [[self._hop_plan(t, hop) for t in csr.node_types] for hop in range(self.num_hops)]
        self._local = torch.full((csr.num_nodes,), -1, dtype=torch.long, device=device)  # scratch: global -> local

    @classmethod
    def from_data(cls, data: HeteroData, fanouts: Fanouts, **kwargs: Any) -> NeighborSampler:
        """A sampler over every edge type of ``data`` (node counts as :func:`graphrec.graph.convert.num_nodes_dict`)."""
        from graphrec.graph.convert import num_nodes_dict

        return cls({et: data[et].edge_index for et in data.edge_types}, num_nodes_dict(data), fanouts, **kwargs)

    def _check_fanouts(self, fanouts: Fanouts) -> dict[EdgeType, list[int]]:
        edge_types = self.csr.edge_types
        if isinstance(fanouts, dict):
            fanouts = {tuple(et): list(f) for et, f in fanouts.items()}
            unknown = [et for et in fanouts if et not in edge_types]
            missing = [et for et in edge_types if et not in fanouts]
            if unknown or missing:
                raise ValueError(f"fanouts names edge types {unknown} that the graph lacks and lacks {missing}; "
                                 f"expected one list per edge type of the graph: {edge_types}")
        elif isinstance(fanouts, (list, tuple)):
            fanouts = {et: list(fanouts) for et in edge_types}
        else:
            raise ValueError(f"fanouts = {fanouts!r}; expected a list of ints or a dict edge type -> list of ints")
        lengths = {len(f) for f in fanouts.values()}
        if len(lengths) > 1:
            raise ValueError(f"fanouts has lists of lengths {sorted(lengths)}; expected one length, the number of hops")
        for edge_type, values in fanouts.items():
            if not all(isinstance(v, int) and not isinstance(v, bool) and v >= -1 for v in values):
                raise ValueError(f"fanouts of {edge_type} = {values}; expected ints >= -1 (-1: all neighbours)")
        return fanouts

    def _check_reverse(self, edge_index_dict: dict[EdgeType, Tensor],
                       pairs: dict[EdgeType, EdgeType]) -> dict[EdgeType, EdgeType]:
        checked = {}
        for forward, reverse in pairs.items():
            forward, reverse = tuple(forward), tuple(reverse)
            for edge_type in (forward, reverse):
                if edge_type not in edge_index_dict:
                    raise ValueError(f"reverse_edge_types names {edge_type}, which edge_index_dict lacks")
            if (forward[0], forward[2]) != (reverse[2], reverse[0]) or \
                    not torch.equal(edge_index_dict[forward].flip(0), edge_index_dict[reverse].to(self.csr.device)):
                raise ValueError(f"reverse_edge_types: {reverse} is not {forward} flipped edge for edge")
            checked[forward] = reverse
        return checked

    # ------------------------------------------------------------------ state, for resuming
    def state_dict(self) -> dict[str, Tensor]:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        self.generator.set_state(state["generator"])

    # ------------------------------------------------------------------ sampling
    def sample(self, seeds: dict[str, Tensor]) -> SampledSubgraph:
        """The subgraph of the ``L``-hop sampled neighbourhoods of ``seeds`` (``[S_t]`` distinct ids per node type)."""
        csr, local, device = self.csr, self._local, self.csr.device
        seeds = self._check_seeds(seeds)
        sizes = [seeds[t].numel() if t in seeds else 0 for t in csr.node_types]  # nodes per type, this hop
        frontier = torch.cat([seeds[t] + csr.node_offset[t] for t in csr.node_types if t in seeds] +
                             [torch.zeros(0, dtype=torch.long, device=device)])  # global ids, grouped by type
        frontier_local = torch.cat([torch.arange(size, device=device) for size in sizes])
        reached, hop_sizes = [frontier], [sizes]  # every node, by hop, grouped by type
        segments: list[list[Tensor]] = [[] for _ in csr.edge_types]  # per edge type, its [3, E] per hop
        hop_edges = [[0] * self.num_hops for _ in csr.edge_types]
        try:  # on success only the reached nodes are reset; the whole scratch array after an error
            local.index_copy_(0, frontier, frontier_local)
            self._check_distinct(frontier, frontier_local)
            node_count = list(sizes)  # local ids given so far per type
            for hop in range(self.num_hops):
                edges, bounds = self._hop(hop, frontier, frontier_local, sizes)  # [3, E]: global src, dst, e_id
                frontier, frontier_local, sizes = self._relabel(edges[0], node_count)
                edges[0] = local.index_select(0, edges[0])  # sources, now all with local ids
                for r, begin, stop in bounds:
                    segments[r].append(edges[:, begin:stop])
                    hop_edges[r][hop] = stop - begin
                reached.append(frontier)
                hop_sizes.append(sizes)
            subgraph = self._assemble(seeds, reached, hop_sizes, segments, hop_edges)
        except BaseException:
            local.fill_(-1)
            raise
        local.index_fill_(0, torch.cat(reached), -1)
        return subgraph

    def _check_seeds(self, seeds: dict[str, Tensor]) -> dict[str, Tensor]:
        checked = {}
        for node_type, ids in seeds.items():
            if node_type not in self.csr.num_nodes_dict:
                raise ValueError(f"seeds has node type {node_type!r}; node types: {self.csr.node_types}")
            ids = torch.as_tensor(ids, device=self.csr.device)
            if ids.dim() != 1 or ids.dtype != torch.long:
                raise ValueError(f"seeds[{node_type!r}] is {ids.dtype} {list(ids.shape)}; expected a [S] LongTensor")
            count = self.csr.num_nodes_dict[node_type]
            if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= count):
                raise ValueError(f"seeds[{node_type!r}] holds ids in [{int(ids.min())}, {int(ids.max())}]; "
                                 f"expected ids in [0, {count - 1}]")
            checked[node_type] = ids
        return checked

    def _check_distinct(self, frontier: Tensor, frontier_local: Tensor) -> None:
        """A repeated seed was given two local ids, of which the scratch array keeps one: raise naming it."""
        repeated = self._local.index_select(0, frontier) != frontier_local
        if bool(repeated.any()):
            node = int(frontier[repeated][0])
            node_type = next(t for t in reversed(self.csr.node_types) if self.csr.node_offset[t] <= node)
            raise ValueError(f"seeds[{node_type!r}] holds id {node - self.csr.node_offset[node_type]} more than "
                             "once; expected distinct ids (torch.unique them, as sample_links does)")

    def _hop_plan(self, node_type: str, hop: int) -> tuple[list[int], Tensor, Tensor] | None:
        """The edge types into ``node_type`` sampled at ``hop``: indices, row offsets ``[R]`` and fan-outs ``[R]``."""
        csr = self.csr
        into = [r for r, et in enumerate(csr.edge_types) if et[2] == node_type and self.fanouts[et][hop] != 0]
        if not into:
            return None
        offsets = torch.tensor([csr.row_offset[csr.edge_types[r]] for r in into], device=csr.device)
        fanouts = torch.tensor([self.fanouts[csr.edge_types[r]][hop] for r in into], device=csr.device)
        return into, offsets, fanouts

    def _hop(self, hop: int, frontier: Tensor, frontier_local: Tensor,
             sizes: list[int]) -> tuple[Tensor, list[tuple[int, int, int]]]:
        """Sampled in-edges of the frontier, ``[3, E]`` (global source, local target, e_id), grouped by edge
        type, and the ``(edge type index, start, stop)`` of each group."""
        csr, device = self.csr, self.csr.device
        rows, targets, fanouts, groups, start = [], [], [], [], 0
        for node_type, size, plan in zip(csr.node_types, sizes, self._plans[hop]):
            if size and plan is not None:
                into, offsets, fanout = plan
                ids = frontier[start : start + size] - csr.node_offset[node_type]
                rows.append((offsets[:, None] + ids[None, :]).view(-1))  # [R_t * size], edge type major
                targets.append(frontier_local[start : start + size].repeat(len(into)))
                fanouts.append(fanout.repeat_interleave(size))
                groups += [(r, size) for r in into]
            start += size
        if not rows:
            return torch.zeros(3, 0, dtype=torch.long, device=device), []
        rows, targets, fanout = torch.cat(rows), torch.cat(targets), torch.cat(fanouts)  # [M]
        first = csr.indptr.index_select(0, rows)
        degree = csr.indptr.index_select(0, rows + 1) - first
        draw = (fanout >= 0) & (degree > (0 if self.replace else fanout))  # rows that draw; others take all
        count = torch.where(draw, fanout, degree)  # [M] edges taken per row
        ends = torch.cumsum(count, 0)
        row = torch.repeat_interleave(count)  # [E] row of each edge
        rank = torch.arange(row.numel(), device=device) - (ends - count).index_select(0, row)  # [E] rank in its row
        drawn = draw.nonzero().squeeze(1)
        if drawn.numel():
            picks = self._choose(degree.index_select(0, drawn), fanout.index_select(0, drawn))  # [D, k]
            width = picks.size(1)
            slot = (torch.cumsum(draw, 0) - 1).index_select(0, row).clamp_(min=0)
            picked = picks.view(-1).index_select(0, slot * width + rank.clamp(max=width - 1))
            rank = torch.where(draw.index_select(0, row), picked, rank)
        position = first.index_select(0, row) + rank  # [E] into csr.sources
        edges = torch.stack([csr.sources.index_select(0, position), targets.index_select(0, row),
                             csr.edge_ids.index_select(0, position)])
        last_rows = torch.tensor([size for _, size in groups], device=device).cumsum(0) - 1
        stops = ends.index_select(0, last_rows).tolist()
        return edges, [(r, begin, stop) for (r, _), begin, stop in zip(groups, [0] + stops[:-1], stops)]

    def _choose(self, degree: Tensor, fanout: Tensor) -> Tensor:
        """``[M, max(fanout)]`` positions in ``[0, degree)``; the first ``fanout[m]`` of row ``m`` are its draws.

        Without replacement (``degree > fanout``), Floyd's algorithm: step ``i`` draws ``t`` in
        ``[0, j]`` with ``j = degree - fanout + i`` and takes ``j`` instead when ``t`` was taken before,
        which gives every ``fanout``-subset the same probability.
        """
        width = int(fanout.max())
        uniform = torch.rand(degree.numel(), width, dtype=torch.float64, generator=self.generator,
                             device=degree.device)  # [M, k]
        if self.replace:
            return torch.minimum((uniform * degree[:, None]).long(), degree[:, None] - 1)
        last = (degree - fanout)[:, None] + torch.arange(width, device=degree.device)  # [M, k] j of each step
        picks = torch.minimum((uniform * (last + 1)).long(), last)  # [M, k] t of each step, then the picks
        for i in range(1, width):  # past a row's fanout the values are unused
            taken = (picks[:, :i] == picks[:, i : i + 1]).any(1)
            picks[:, i] = torch.where(taken, last[:, i], picks[:, i])
        return picks

    def _relabel(self, sources: Tensor, node_count: list[int]) -> tuple[Tensor, Tensor, list[int]]:
        """Gives the sources not reached before the next local ids of their type, in global id order.

        Returns the new nodes (the next frontier, grouped by type), their local ids and their count per
        type; ``node_count`` is advanced.
        """
        local, device = self._local, self.csr.device
        known = local.index_select(0, sources)
        if self.csr.num_nodes <= 32 * sources.numel():  # a pass over all nodes beats sorting the sources
            local.index_copy_(0, sources, torch.where(known < 0, -2, known))  # -2 marks the new ones
            new = (local == -2).nonzero().squeeze(1)
        else:
            new = torch.unique(sources[known < 0])
        node_type = torch.searchsorted(self._type_offset, new, right=True) - 1  # sorted ids: grouped by type
        counts = torch.bincount(node_type, minlength=len(self.csr.node_types))
        base = torch.tensor(node_count, device=device) - (torch.cumsum(counts, 0) - counts)
        new_local = torch.arange(new.numel(), device=device) + base.index_select(0, node_type)
        local.index_copy_(0, new, new_local)
        sizes = counts.tolist()
        for t, size in enumerate(sizes):
            node_count[t] += size
        return new, new_local, sizes

    def _assemble(self, seeds: dict[str, Tensor], reached: list[Tensor], hop_sizes: list[list[int]],
                  segments: list[list[Tensor]], hop_edges: list[list[int]]) -> SampledSubgraph:
        csr, device = self.csr, self.csr.device
        pieces: list[list[Tensor]] = [[] for _ in csr.node_types]
        for nodes, sizes in zip(reached, hop_sizes):
            for t, part in enumerate(nodes.split(sizes)):
                pieces[t].append(part)
        n_id = {t: torch.cat(parts) - csr.node_offset[t] for t, parts in zip(csr.node_types, pieces)}
        edge_index_dict, e_id = {}, {}
        for edge_type, parts in zip(csr.edge_types, segments):
            edges = torch.cat(parts, dim=1) if parts else torch.zeros(3, 0, dtype=torch.long, device=device)
            edge_index_dict[edge_type], e_id[edge_type] = edges[:2], edges[2]
        return SampledSubgraph(
            n_id=n_id, edge_index_dict=edge_index_dict, e_id=e_id,
            num_seeds={t: s.numel() for t, s in seeds.items()},
            num_sampled_nodes={t: [sizes[i] for sizes in hop_sizes] for i, t in enumerate(csr.node_types)},
            num_sampled_edges=dict(zip(csr.edge_types, hop_edges)))

    # ------------------------------------------------------------------ recommendation batches
    def sample_links(self, users: Tensor, pos_items: Tensor, neg_items: Tensor | None = None, *,
                     user_type: str = "user", item_type: str = "item") -> LinkBatch:
        """Samples around a batch of ``[B]`` (user, positive item) pairs and ``[B, N]`` negative items.

        The seeds are the distinct users and the distinct items (positives and negatives); the
        returned rows pick each pair's outputs from the encoder run on the subgraph.
        """
        if users.shape != pos_items.shape or users.dim() != 1:
            raise ValueError(f"users {list(users.shape)} and pos_items {list(pos_items.shape)}; expected both [B]")
        if neg_items is not None and (neg_items.dim() != 2 or neg_items.size(0) != users.numel()):
            raise ValueError(f"neg_items has shape {list(neg_items.shape)}; expected [B, N] with B = {users.numel()}")
        items = pos_items if neg_items is None else torch.cat([pos_items, neg_items.flatten()])
        if user_type == item_type:  # one node type: one set of seeds
            nodes, rows = torch.unique(torch.cat([users, items]), return_inverse=True)
            subgraph = self.sample({user_type: nodes})
            user_rows, item_rows = rows[: users.numel()], rows[users.numel() :]
        else:
            user_seeds, user_rows = torch.unique(users, return_inverse=True)
            item_seeds, item_rows = torch.unique(items, return_inverse=True)
            subgraph = self.sample({user_type: user_seeds, item_type: item_seeds})
        negatives = None if neg_items is None else item_rows[users.numel() :].view(neg_items.shape)
        return LinkBatch(subgraph, user_rows, item_rows[: users.numel()], negatives)

    # ------------------------------------------------------------------ what some encoders need besides edges
    def in_degree_dict(self, subgraph: SampledSubgraph, unique: bool = False,
                       edge_types: list[EdgeType] | None = None) -> dict[EdgeType, Tensor]:
        """Full-graph in-degree ``[n_t]`` of the subgraph's nodes per edge type (``unique``: distinct sources),
        for every edge type or those of ``edge_types``.

        Normalisations by degree (LightGCN's :math:`1/\\sqrt{d_u d_i}`) need these, not the subgraph's.
        """
        for edge_type in edge_types or []:
            if tuple(edge_type) not in self.csr.row_offset:
                raise ValueError(f"edge_types names {edge_type}, which the sampler's graph lacks; "
                                 f"its edge types: {self.csr.edge_types}")
        chosen = self.csr.edge_types if edge_types is None else [tuple(et) for et in edge_types]
        return {et: self.csr.in_degree(et, unique)[subgraph.n_id[et[2]].to(self.csr.device)] for et in chosen}

    def merge_reverse(self, subgraph: SampledSubgraph) -> dict[EdgeType, Tensor]:
        """``subgraph.edge_index_dict`` with each pair of ``reverse_edge_types`` holding the union of both directions.

        An edge sampled as a message in either direction is in both types (once: the union is over
        edge ids). Encoders that read one edge type as undirected (LightGCN) or read it backwards
        (DiffNet's user-item mean) then see every node's sampled neighbours.
        """
        out = dict(subgraph.edge_index_dict)
        for forward, reverse in self.reverse_edge_types.items():
            e_id = torch.cat([subgraph.e_id[forward], subgraph.e_id[reverse]])
            edge_index = torch.cat([subgraph.edge_index_dict[forward], subgraph.edge_index_dict[reverse].flip(0)], 1)
            e_id, slot = torch.unique(e_id, return_inverse=True)
            # One column per edge id; an edge sampled both ways has the same local pair in either column.
            column = torch.empty_like(e_id).scatter_(0, slot, torch.arange(slot.numel(), device=slot.device))
            out[forward] = edge_index[:, column]
            out[reverse] = out[forward].flip(0)
        return out

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}(num_nodes={self.csr.num_nodes}, num_edges={self.csr.sources.numel()}, "
                f"num_edge_types={len(self.csr.edge_types)}, num_hops={self.num_hops}, replace={self.replace})")
