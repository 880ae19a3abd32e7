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
    edge_type_key, remove_edges, sample_fraction,
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
    (``"bilinear"``).

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

    def hide(self, batch: PretextBatch) -> dict[EdgeType, Tensor]:
        """``{edge type: [2, H] hidden (source, target) pairs}`` drawn for this step."""
        hidden = {}
        for edge_type in self.edge_types:
            edge_index = batch.edge_index_dict.get(edge_type)
            if edge_index is None or edge_index.size(1) == 0:
                continue
            candidates = droppable_edges(edge_index, edge_type, self.all_edge_types)  # [C]
            picked = sample_fraction(len(candidates), self.mask_rate, batch.generator, edge_index.device)
            hidden[edge_type] = edge_index[:, candidates[picked]]  # [2, H]
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
            raise ValueError(f"{type(self).__name__}: the batch has no edges of the types {self.edge_types}")
        edge_index_dict = remove_edges(batch.edge_index_dict, hidden, batch.num_nodes_dict)
        h = model.encode(model.inputs(), edge_index_dict)
        losses = []
        for edge_type, pairs in hidden.items():
            src, _, dst = edge_type
            h_src = h[src][pairs[0]]  # [H, D]
            positive = self.score(edge_type, h_src, h[dst][pairs[1]])  # [H]
            negatives = torch.randint(batch.num_nodes_dict[dst], (pairs.size(1), self.num_negatives),
                                      generator=batch.generator).to(pairs.device)  # [H, K]
            negative = self.score(edge_type, h_src.unsqueeze(1), h[dst][negatives])  # [H, K]
            logits = torch.cat([positive, negative.flatten()])
            labels = torch.cat([torch.ones_like(positive), torch.zeros_like(negative.flatten())])
            losses.append(F.binary_cross_entropy_with_logits(logits, labels))
        return torch.stack(losses).mean()

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(edge_types={self.edge_types}, mask_rate={self.mask_rate}, "
                f"num_negatives={self.num_negatives}, scoring={self.scoring!r})")
