r"""Masked edge prediction: hide a fraction of the edges and score them back against random pairs.

Link reconstruction as a pretext task, as the masked edge prediction of CHEST (Wang et al.,
"Curriculum Pre-training Heterogeneous Subgraph Transformer for Top-N Recommendation", TOIS 2023)
and the edge masking of MaskGAE (Li et al., "What's Behind the Mask: Understanding Masked Graph
Autoencoders", KDD 2023): the encoder sees the graph without the hidden edges (and without their
reverse copies, which would give them away), and a decoder must tell the hidden pairs from
uniformly drawn ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.data import HeteroData

from graphrec.pretext.base import (
    EdgeType, PretextBatch, PretextModel, PretextTask, canonical_edge_types, check_fraction, droppable_edges,
    edge_type_key, remove_edges, reverse_edge_type, sample_fraction, zero_loss,
)

Scoring = Literal["dot", "diagonal", "bilinear"]
DEFAULT_EDGE_TYPES: list[EdgeType] = [("user", "interacts", "item")]


class MaskedEdgePrediction(PretextTask):
    r"""Hide a fraction of the edges of chosen types and predict them against random targets.

    Each step, for every chosen type :math:`r`, a fraction ``mask_rate`` of its edges
    :math:`\mathcal{H}_r` is hidden, together with the reverse copies (type
    ``(dst, 'rev_<rel>', src)``, or the flipped pair in a symmetric type such as ``follows``).
    On the remaining graph the encoder gives :math:`\mathbf{h}`; each hidden pair :math:`(s, d)`
    is a positive and ``num_negatives`` pairs :math:`(s, d')` with :math:`d'` uniform over the
    target type are negatives:

    .. math::
        \mathcal{L}_r = \mathrm{BCE}\big(\sigma(\mathbf{h}_s^\top \mathbf{W}_r \mathbf{h}_d), 1\big)
        + \mathrm{BCE}\big(\sigma(\mathbf{h}_s^\top \mathbf{W}_r \mathbf{h}_{d'}), 0\big),

    averaged over pairs and then over types, with :math:`\mathbf{W}_r` the identity (``"dot"``),
    a learned diagonal (``"diagonal"``) or a learned matrix initialised to the identity
    (``"bilinear"``). On a sampled subgraph (:mod:`graphrec.pretext.sampled`) the hidden edges are
    drawn among the edges sampled into a seed (:meth:`candidates`) and removed from the subgraph,
    and :math:`d'` is uniform over the seeds of the target type.

    Args:
        graph (HeteroData): The message-passing graph (checked for the edge types).
        embedding_dim (int): Width :math:`D` of the encoder's output.
        edge_types (list of edge types, optional): Types to mask; a type and its reverse count once.
            (default: ``[('user', 'interacts', 'item')]``)
        mask_rate (float, optional): Fraction of each type's edges hidden per step. (default: ``0.15``)
        num_negatives (int, optional): Random targets per hidden edge. (default: ``1``)
        scoring (str, optional): ``"dot"``, ``"diagonal"`` or ``"bilinear"``. (default: ``"dot"``)
    """

    name = "masked_edge"

    def __init__(self, graph: HeteroData, embedding_dim: int, edge_types: Sequence[EdgeType] | None = None,
                 mask_rate: float = 0.15, num_negatives: int = 1, scoring: Scoring = "dot") -> None:
        super().__init__()
        owner = type(self).__name__
        edge_types = [tuple(e) for e in (DEFAULT_EDGE_TYPES if edge_types is None else edge_types)]
        if not edge_types:
            raise ValueError(f"{owner}: edge_types is empty; expected at least one edge type")
        for edge_type in edge_types:
            if edge_type not in graph.edge_types:
                raise ValueError(f"{owner}: edge type {edge_type} is not in the graph; edge types: {graph.edge_types}")
        check_fraction("mask_rate", mask_rate, owner)
        if num_negatives < 1:
            raise ValueError(f"{owner}: num_negatives = {num_negatives}; expected a positive int")
        if scoring not in ("dot", "diagonal", "bilinear"):
            raise ValueError(f"{owner}: scoring = {scoring!r}; expected 'dot', 'diagonal' or 'bilinear'")
        self.all_edge_types = [tuple(e) for e in graph.edge_types]
        self.edge_types = canonical_edge_types(edge_types, self.all_edge_types)
        self.mask_rate, self.num_negatives, self.scoring = mask_rate, num_negatives, scoring
        self.embedding_dim = embedding_dim
        self.weights = torch.nn.ParameterDict()
        if scoring != "dot":
            for edge_type in self.edge_types:
                shape = (embedding_dim,) if scoring == "diagonal" else (embedding_dim, embedding_dim)
                self.weights[edge_type_key(edge_type)] = torch.nn.Parameter(torch.empty(shape))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for weight in self.weights.values():
            with torch.no_grad():
                weight.copy_(torch.ones_like(weight) if weight.dim() == 1 else torch.eye(weight.size(0)))

    @property
    def seed_types(self) -> list[str]:
        """Node types a sampled batch must have seeds of: both ends of the masked types."""
        return list(dict.fromkeys(t for edge_type in self.edge_types for t in (edge_type[0], edge_type[2])))

    def candidates(self, batch: PretextBatch, edge_type: EdgeType) -> Tensor:
        """``[2, C]`` distinct (source, target) pairs of ``edge_type`` that may be hidden this step.

        The whole graph: every edge (a symmetric type: one direction per pair). A sampled subgraph:
        the edges sampled into a seed, in either direction: those of ``edge_type`` with a seed target,
        then those of its reverse type with a seed target, flipped, that are not already listed.
        """
        edge_index = batch.edge_index_dict.get(edge_type)
        if edge_index is None:
            return torch.zeros(2, 0, dtype=torch.long, device=batch.device)
        src, _, dst = edge_type
        reverse = reverse_edge_type(edge_type, self.all_edge_types)
        if not batch.sampled:
            return edge_index[:, droppable_edges(edge_index, edge_type, self.all_edge_types)]
        primary = edge_index[:, edge_index[1] < batch.num_targets(dst)]
        if reverse == tuple(edge_type):  # symmetric: (a, b) with a < b, then the flips of those with a > b
            secondary = primary[:, primary[0] > primary[1]].flip(0)
            primary = primary[:, primary[0] < primary[1]]
        elif reverse is not None and reverse in batch.edge_index_dict:
            other = batch.edge_index_dict[reverse]
            secondary = other[:, other[1] < batch.num_targets(src)].flip(0)
        else:
            return primary
        num_targets = batch.num_nodes_dict[dst]
        new = ~torch.isin(secondary[0] * num_targets + secondary[1], primary[0] * num_targets + primary[1])
        return torch.cat([primary, torch.unique(secondary[:, new], dim=1)], dim=1)

    def hide(self, batch: PretextBatch) -> dict[EdgeType, Tensor]:
        """``{edge type: [2, H] hidden (source, target) pairs}`` drawn for this step, in the batch's ids."""
        hidden = {}
        for edge_type in self.edge_types:
            candidates = self.candidates(batch, edge_type)  # [2, C]
            if candidates.size(1) == 0:
                continue
            picked = sample_fraction(candidates.size(1), self.mask_rate, batch.generator, candidates.device)
            hidden[edge_type] = candidates[:, picked]  # [2, H]
        return hidden

    def score(self, edge_type: EdgeType, h_src: Tensor, h_dst: Tensor) -> Tensor:
        """``[...]`` logits of (source, target) representation pairs ``[..., D]``."""
        if self.scoring == "dot":
            return (h_src * h_dst).sum(-1)
        weight = self.weights[edge_type_key(edge_type)]
        if self.scoring == "diagonal":
            return (h_src * weight * h_dst).sum(-1)
        return ((h_src @ weight) * h_dst).sum(-1)

    def loss(self, model: PretextModel, batch: PretextBatch) -> Tensor:
        hidden = self.hide(batch)
        if not hidden:
            if batch.sampled:  # this subgraph happens to have none: nothing to learn from this step
                return zero_loss(model.inputs())
            raise ValueError(f"{type(self).__name__}: the batch has no edges of the types {self.edge_types}")
        edge_index_dict = remove_edges(batch.edge_index_dict, hidden, batch.num_nodes_dict)
        h = model.encode(model.inputs(), edge_index_dict)
        losses = []
        for edge_type, pairs in hidden.items():
            src, _, dst = edge_type
            h_src = h[src][pairs[0]]  # [H, D]
            positive = self.score(edge_type, h_src, h[dst][pairs[1]])  # [H]
            # Negatives are uniform over the target type's nodes (a sampled batch: its seeds).
            num_candidates = batch.num_targets(dst) or batch.num_nodes_dict[dst]
            negatives = torch.randint(num_candidates, (pairs.size(1), self.num_negatives),
                                      generator=batch.generator).to(pairs.device)  # [H, K]
            negative = self.score(edge_type, h_src.unsqueeze(1), h[dst][negatives])  # [H, K]
            logits = torch.cat([positive, negative.flatten()])
            labels = torch.cat([torch.ones_like(positive), torch.zeros_like(negative.flatten())])
            losses.append(F.binary_cross_entropy_with_logits(logits, labels))
        return torch.stack(losses).mean()

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(edge_types={self.edge_types}, mask_rate={self.mask_rate}, "
                f"num_negatives={self.num_negatives}, scoring={self.scoring!r})")
