"""What every self-supervised pretext task shares: the batch it reads and the edge bookkeeping.

A pretext task turns an unlabelled graph into a loss (Liu et al., "Graph Self-Supervised
Learning: A Survey", TKDE 2022): it corrupts the inputs or the edges that a model's encoder sees
and asks a small decoder of its own to recover what was hidden, or to agree across two views.

    loss = task.loss(model, PretextBatch(edge_index_dict, num_nodes_dict, step, generator))

``model`` follows :class:`PretextModel`: ``inputs()`` gives the layer-0 features per node type and
``encode(x_dict, edge_index_dict)`` runs the encoder. Tasks hide edges by handing the encoder a
smaller ``edge_index_dict``; hiding an edge always hides its reverse copy too, or the encoder would
read the answer off the other direction (see :func:`remove_edges`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor

EdgeType = tuple[str, str, str]

REVERSE_PREFIX = "rev_"


@dataclass
class PretextBatch:
    """One optimisation step's input to :meth:`PretextTask.loss`.

    A batch is the whole graph, or a sampled subgraph (:mod:`graphrec.pretext.sampled`) in local
    ids: ``n_id[t][v]`` is the graph id of local node ``v``, and the first ``num_seeds[t]`` nodes of
    each type are the seeds, whose whole sampled neighbourhood is in the subgraph. Tasks corrupt
    the batch's graph, whichever it is, and put their losses on :meth:`num_targets` nodes.

    Attributes:
        edge_index_dict: the message-passing graph (training interactions only), ``[2, E_r]``
            (source, target) ids per edge type, on the model's device.
        num_nodes_dict: number of nodes of every node type (of the subgraph, when sampled).
        step: the global optimisation step (a curriculum reads it).
        generator: CPU generator for masks, negatives and walks; ``None`` uses the global RNG.
        n_id: for a sampled subgraph, the graph ids ``[n_t]`` of its nodes per type; ``None``: the
            whole graph, local ids are graph ids.
        num_seeds: for a sampled subgraph, the seeds per node type (the first rows of ``n_id``).
    """

    edge_index_dict: dict[EdgeType, Tensor]
    num_nodes_dict: dict[str, int]
    step: int = 0
    generator: torch.Generator | None = None
    n_id: dict[str, Tensor] | None = None
    num_seeds: dict[str, int] | None = None

    @property
    def device(self) -> torch.device:
        """The device of the edge indices (CPU when there are none)."""
        return next((e.device for e in self.edge_index_dict.values()), torch.device("cpu"))

    @property
    def sampled(self) -> bool:
        """Whether the batch is a sampled subgraph (local ids) rather than the whole graph."""
        return self.n_id is not None

    def num_targets(self, node_type: str) -> int:
        """How many nodes of ``node_type`` a task may put a loss on: local ids ``[0, num_targets)``.

        All nodes of a whole-graph batch; the seeds of a sampled one, as only they have their whole
        sampled neighbourhood (a node reached at the last hop has no in-edges in the subgraph).
        """
        if self.num_seeds is None:
            return int(self.num_nodes_dict[node_type])
        return int(self.num_seeds.get(node_type, 0))

    def global_ids(self, node_type: str, local: Tensor) -> Tensor:
        """Graph ids of the local ids ``local`` (themselves for a whole-graph batch)."""
        if self.n_id is None:
            return local
        return self.n_id[node_type].to(local.device)[local]


class PretextModel(Protocol):
    """What a pretext task needs of a model (:class:`graphrec.nn.GraphRecommender` has it)."""

    embedding_dim: int

    def inputs(self) -> dict[str, Tensor]:
        """Layer-0 features ``[N_t, D]`` per node type, differentiable."""

    def encode(self, x_dict: dict[str, Tensor], edge_index_dict: dict[EdgeType, Tensor]) -> dict[str, Tensor]:
        """The encoder: ``h_dict`` with the keys and widths of ``x_dict``."""


class PretextTask(torch.nn.Module):
    """Base class of a self-supervised task: ``loss(model, batch) -> scalar Tensor``.

    A task owns its decoders as submodules: they are trained during pre-training along with the
    model and discarded afterwards. ``forward`` is ``loss``.
    """

    name: str = "pretext"

    @property
    def seed_types(self) -> list[str]:
        """Node types the loss is put on: a sampled batch draws its seeds from them (``[]``: no preference)."""
        return []

    def loss(self, model: PretextModel, batch: PretextBatch) -> Tensor:
        raise NotImplementedError

    def forward(self, model: PretextModel, batch: PretextBatch) -> Tensor:
        return self.loss(model, batch)


# ---------------------------------------------------------------------------------------------- edges
def edge_type_key(edge_type: EdgeType) -> str:
    """``"user__interacts__item"``: an edge type as a ``ModuleDict`` / ``ParameterDict`` key."""
    return "__".join(edge_type)


def reverse_edge_type(edge_type: EdgeType, edge_types: Iterable[EdgeType]) -> EdgeType | None:
    """The type holding the reverse copies of ``edge_type``'s edges, or ``None``.

    graphrec graphs store the reverse of ``(src, rel, dst)`` as ``(dst, 'rev_<rel>', src)``; a
    relation between nodes of one type with no ``rev_`` partner (``('user', 'follows', 'user')``)
    is symmetric and holds both directions itself, so its reverse is itself.

    Example:
        >>> types = [("user", "interacts", "item"), ("item", "rev_interacts", "user")]
        >>> reverse_edge_type(("item", "rev_interacts", "user"), types)
        ('user', 'interacts', 'item')
    """
    src, rel, dst = edge_type
    known = set(map(tuple, edge_types))
    candidate = (dst, rel[len(REVERSE_PREFIX):], src) if rel.startswith(REVERSE_PREFIX) else \
        (dst, REVERSE_PREFIX + rel, src)
    if candidate in known:
        return candidate
    return tuple(edge_type) if src == dst else None


def canonical_edge_types(edge_types: Iterable[EdgeType], all_edge_types: Iterable[EdgeType]) -> list[EdgeType]:
    """``edge_types`` with each (type, reverse) pair kept once, as the forward (non-``rev_``) type.

    Hiding an edge hides its reverse, so choosing both directions of a relation would hide about
    twice the asked-for fraction; this keeps one of them, in first-seen order.
    """
    all_edge_types = list(map(tuple, all_edge_types))
    chosen: list[EdgeType] = []
    for edge_type in map(tuple, edge_types):
        reverse = reverse_edge_type(edge_type, all_edge_types)
        forward = reverse if reverse is not None and edge_type[1].startswith(REVERSE_PREFIX) else edge_type
        if forward not in chosen:
            chosen.append(forward)
    return chosen


def _pair_keys(edge_index: Tensor, num_targets: int) -> Tensor:
    return edge_index[0] * max(num_targets, 1) + edge_index[1]  # [E]


def remove_edges(
    edge_index_dict: Mapping[EdgeType, Tensor],
    hidden: Mapping[EdgeType, Tensor],
    num_nodes_dict: Mapping[str, int],
) -> dict[EdgeType, Tensor]:
    """A copy of ``edge_index_dict`` without the ``hidden`` pairs and their reverse copies.

    Every copy of a hidden ``(s, d)`` pair is removed from its type, and ``(d, s)`` from the
    reverse type (:func:`reverse_edge_type`; for a symmetric type, the same one). Types left
    untouched are passed through as the same tensors (an encoder's per-graph cache stays valid).

    Args:
        edge_index_dict: ``[2, E_r]`` per edge type.
        hidden: ``[2, H_r]`` (source, target) pairs to hide, per edge type.
        num_nodes_dict: node counts, to encode pairs as single integer keys.
    """
    edge_types = list(edge_index_dict)
    removed: dict[EdgeType, list[Tensor]] = {}
    for edge_type, pairs in hidden.items():
        edge_type = tuple(edge_type)
        if pairs.numel() == 0:
            continue
        removed.setdefault(edge_type, []).append(pairs)
        reverse = reverse_edge_type(edge_type, edge_types)
        if reverse is not None and reverse in edge_index_dict:
            removed.setdefault(reverse, []).append(pairs.flip(0))
    out = dict(edge_index_dict)
    for edge_type, parts in removed.items():
        if edge_type not in out:
            continue
        edge_index = out[edge_type]
        num_targets = num_nodes_dict[edge_type[2]]
        drop = _pair_keys(torch.cat(parts, dim=1).to(edge_index.device), num_targets)
        keep = ~torch.isin(_pair_keys(edge_index, num_targets), drop)  # [E]
        out[edge_type] = edge_index[:, keep]
    return out


def droppable_edges(edge_index: Tensor, edge_type: EdgeType, edge_types: Iterable[EdgeType]) -> Tensor:
    """Positions of the edges a task may pick to hide: all of them, or for a symmetric type
    (both directions stored in one type) those with ``source < target``, so that a pair and its
    flip are one candidate and a rate hides that fraction of the relation, not twice it."""
    if reverse_edge_type(edge_type, edge_types) == tuple(edge_type):
        return torch.nonzero(edge_index[0] < edge_index[1]).flatten()
    return torch.arange(edge_index.size(1), device=edge_index.device)


def sample_fraction(count: int, rate: float, generator: torch.Generator | None, device: torch.device | str = "cpu",
                    at_least_one: bool = True) -> Tensor:
    """``round(rate * count)`` distinct positions in ``[0, count)`` (at least one when ``count > 0``)."""
    size = int(round(rate * count))
    if at_least_one and count > 0 and rate > 0:
        size = max(size, 1)
    return torch.randperm(count, generator=generator)[:size].to(device)


def bernoulli_mask(shape: tuple[int, ...] | torch.Size, rate: float, generator: torch.Generator | None,
                   device: torch.device | str = "cpu") -> Tensor:
    """A bool tensor whose entries are ``True`` with probability ``rate``, drawn with ``generator``."""
    return (torch.rand(shape, generator=generator) < rate).to(device)


def zero_loss(x_dict: Mapping[str, Tensor]) -> Tensor:
    """A zero loss that is still part of the autograd graph of ``x_dict`` (a sampled batch with nothing
    for a task to predict: the step's other tasks and ``backward`` go on)."""
    total = torch.zeros(())
    for x in x_dict.values():
        total = total.to(x.device) + x.sum()
    return total * 0.0


def check_fraction(name: str, value: float, owner: str, allow_zero: bool = False) -> None:
    """``ValueError`` unless ``value`` is in ``(0, 1)`` (``[0, 1)`` with ``allow_zero``)."""
    low_ok = value >= 0 if allow_zero else value > 0
    if not (low_ok and value < 1):
        bound = "[0, 1)" if allow_zero else "(0, 1)"
        raise ValueError(f"{owner}: {name} = {value}; expected a fraction in {bound}")
