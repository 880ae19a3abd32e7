r"""Neighbour-sampled pretext batches: each step the tasks run on a sampled subgraph, not the whole graph.

A full-batch pre-training step runs every task's encoder passes over the whole graph. A sampled step
draws ``batch_nodes`` seed nodes of each type the tasks put their losses on
(:attr:`graphrec.pretext.PretextTask.seed_types`), samples their :math:`L`-hop neighbourhood with
GraphSAGE fan-outs (:class:`graphrec.graph.sampling.NeighborSampler`; Hamilton et al., NeurIPS 2017),
and hands the tasks that subgraph in local ids: a :class:`~graphrec.pretext.PretextBatch` with
``n_id`` and ``num_seeds``, and the model through :class:`SubgraphModel`, whose ``inputs()`` are the
rows of the subgraph's nodes (what :func:`graphrec.graph.sampling.gather_inputs` gathers). The tasks
then corrupt the subgraph itself (masked nodes, hidden edges, views, walks among its nodes) and put
their losses on the seeds, whose whole sampled neighbourhood the subgraph holds; a hidden edge is
removed from the graph the encoder reads, as on the whole graph.

With every fan-out ``-1`` and every node a seed the subgraph is the graph, edges in the same order,
and a sampled step computes exactly the full-batch loss (tested).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping

import torch
from torch import Tensor

from graphrec.graph.sampling import NeighborSampler
from graphrec.pretext.base import REVERSE_PREFIX, EdgeType, PretextBatch, PretextModel, reverse_edge_type


class SubgraphModel:
    """A pretext model seen through a sampled subgraph: ``inputs()`` are the rows ``x[n_id]`` of its nodes.

    The model's inputs are computed and gathered once, on the first call, and shared by every task of
    the step (each gets its own dict); the gradient reaches the gathered rows of the full tables.

    Args:
        model: Has ``inputs()``, ``encode(x_dict, edge_index_dict)`` and ``embedding_dim``.
        n_id (dict[str, Tensor]): Graph ids ``[n_t]`` of the subgraph's nodes per node type.
    """

    def __init__(self, model: PretextModel, n_id: Mapping[str, Tensor]) -> None:
        self.model, self.n_id = model, dict(n_id)
        self.embedding_dim = model.embedding_dim
        self._inputs: dict[str, Tensor] | None = None

    def inputs(self) -> dict[str, Tensor]:
        """Layer-0 features ``[n_t, D]`` of the subgraph's nodes."""
        if self._inputs is None:  # as graphrec.graph.sampling.gather_inputs
            self._inputs = {t: x.index_select(0, self.n_id[t].to(x.device)) if t in self.n_id else x[:0]
                            for t, x in self.model.inputs().items()}
        return dict(self._inputs)

    def encode(self, x_dict: dict[str, Tensor], edge_index_dict: dict[EdgeType, Tensor]) -> dict[str, Tensor]:
        return self.model.encode(x_dict, edge_index_dict)


class SampledBatches:
    """Draws one neighbour-sampled :class:`~graphrec.pretext.PretextBatch` per pre-training step.

    Each step, ``batch_nodes`` distinct seeds of every type in ``seed_types`` are drawn uniformly
    with the step's generator (all nodes of a type that has no more), and the sampler's own seeded
    generator draws their neighbourhood. Sampling runs on the CPU; the batch is moved to ``device``.
    Batches list the edge types in sorted order, so that the draws do not depend on the order in
    which the graph happens to list them.

    Args:
        edge_index_dict (dict): The message-passing graph, ``[2, E_r]`` graph ids per edge type.
        num_nodes_dict (dict[str, int]): Node count of every node type.
        fanouts (list[int]): Neighbours drawn per node and edge type at each hop (``-1``: all); one
            entry per encoder layer gives every seed its whole receptive field.
        batch_nodes (int): Seeds per seed type and step.
        seed_types (iterable of str): Node types seeds are drawn from; empty: every node type.
        merge_reverse (bool, optional): Give each (type, reverse) pair the union of the edges sampled
            in either direction (:meth:`NeighborSampler.merge_reverse`), for encoders that read one
            direction as undirected (LightGCN, DiffNet). (default: ``False``)
        seed (int, optional): Seed of the sampler's generator. (default: ``0``)
    """

    def __init__(self, edge_index_dict: Mapping[EdgeType, Tensor], num_nodes_dict: Mapping[str, int],
                 fanouts: list[int], batch_nodes: int, seed_types: Iterable[str] = (), *,
                 merge_reverse: bool = False, seed: int = 0) -> None:
        if not isinstance(batch_nodes, int) or batch_nodes < 1:
            raise ValueError(f"batch_nodes = {batch_nodes!r}; expected a positive int (seeds per node type and step)")
        # Edge types in sorted order: the draws, and the batches' key order, whatever order the graph lists them in.
        edges = {tuple(t): edge_index_dict[t].detach().cpu() for t in sorted(edge_index_dict, key=tuple)}
        self.num_nodes_dict = {t: int(n) for t, n in num_nodes_dict.items()}
        seed_types = list(dict.fromkeys(seed_types))
        unknown = [t for t in seed_types if t not in self.num_nodes_dict]
        if unknown:
            raise ValueError(f"seed_types names {unknown[0]!r}, which is not a node type; node types: "
                             f"{list(self.num_nodes_dict)}")
        self.seed_types = seed_types or list(self.num_nodes_dict)
        self.fanouts, self.batch_nodes, self.merge = list(fanouts), batch_nodes, merge_reverse
        self.sampler = NeighborSampler(edges, self.num_nodes_dict, list(fanouts), seed=seed,
                                       reverse_edge_types=reverse_pairs(edges) if merge_reverse else None)

    def seeds(self, generator: torch.Generator | None) -> dict[str, Tensor]:
        """``batch_nodes`` distinct, sorted ids ``[S_t]`` per seed type (every id of a smaller type)."""
        seeds = {}
        for node_type in self.seed_types:
            count = self.num_nodes_dict[node_type]
            if count <= self.batch_nodes:
                seeds[node_type] = torch.arange(count)
            else:
                seeds[node_type] = torch.randperm(count, generator=generator)[: self.batch_nodes].sort().values
        return seeds

    def sample(self, seeds: Mapping[str, Tensor], step: int = 0, generator: torch.Generator | None = None,
               device: torch.device | str = "cpu") -> PretextBatch:
        """The batch of the sampled neighbourhood of ``seeds`` (distinct ids per type; they come first)."""
        subgraph = self.sampler.sample(dict(seeds))
        # Edges in graph order: the batch is the same whatever order the hops reached them in.
        order = {t: torch.argsort(e_id) for t, e_id in subgraph.e_id.items()}
        subgraph = dataclasses.replace(
            subgraph, edge_index_dict={t: e[:, order[t]] for t, e in subgraph.edge_index_dict.items()},
            e_id={t: e_id[order[t]] for t, e_id in subgraph.e_id.items()})
        edge_index_dict = self.sampler.merge_reverse(subgraph) if self.merge else subgraph.edge_index_dict
        return PretextBatch(
            {t: e.to(device) for t, e in edge_index_dict.items()},
            {t: n.numel() for t, n in subgraph.n_id.items()}, step, generator,
            n_id={t: n.to(device) for t, n in subgraph.n_id.items()}, num_seeds=dict(subgraph.num_seeds))

    def next(self, model: PretextModel, step: int, generator: torch.Generator | None,
             device: torch.device | str = "cpu") -> tuple[SubgraphModel, PretextBatch]:
        """One step's ``(model view, batch)``: seeds drawn with ``generator``, then their neighbourhood."""
        batch = self.sample(self.seeds(generator), step, generator, device)
        return SubgraphModel(model, batch.n_id), batch

    def state_dict(self) -> dict[str, Tensor]:
        """The sampler's generator state (the seeds come from the step's generator, saved by its owner)."""
        return self.sampler.state_dict()

    def load_state_dict(self, state: Mapping[str, Tensor]) -> None:
        self.sampler.load_state_dict(dict(state))

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(fanouts={self.fanouts}, "
                f"batch_nodes={self.batch_nodes}, seed_types={self.seed_types}, merge_reverse={self.merge})")


def reverse_pairs(edge_index_dict: Mapping[EdgeType, Tensor]) -> dict[EdgeType, EdgeType]:
    """``{forward type: its rev_ type}`` for the pairs whose reverse holds the forward edges flipped, edge for edge."""
    pairs = {}
    for edge_type, edge_index in edge_index_dict.items():
        reverse = reverse_edge_type(edge_type, edge_index_dict)
        if edge_type[1].startswith(REVERSE_PREFIX) or reverse is None or reverse == tuple(edge_type):
            continue
        if torch.equal(edge_index.flip(0), edge_index_dict[reverse]):
            pairs[tuple(edge_type)] = reverse
    return pairs
