r"""Contrastive views: a node's representations under two random corruptions should agree.

Two stochastic views of the graph or of the inputs go through the encoder, and InfoNCE pulls a
node's two representations together against the other sampled nodes of its type:

* ``"edge_dropout"``: each view drops every edge of the chosen types (and its reverse copy) with
  probability ``rate``, as SGL-ED (Wu et al., "Self-supervised Graph Learning for
  Recommendation", SIGIR 2021);
* ``"feature_mask"``: each view zeroes every input entry with probability ``rate`` (attribute
  masking, as in GraphCL, You et al., NeurIPS 2020);
* ``"noise"``: each view adds a random vector of norm ``noise_eps`` pointing into the input's
  orthant, :math:`\mathbf{x} + \epsilon\, \bar{\Delta} \odot \mathrm{sign}(\mathbf{x})`, as SimGCL
  (Yu et al., "Are Graph Augmentations Necessary? Simple Graph Contrastive Learning for
  Recommendation", SIGIR 2022), here on the layer-0 inputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from graphrec.pretext.base import (
    EdgeType, PretextBatch, PretextModel, PretextTask, bernoulli_mask, canonical_edge_types, check_fraction,
    droppable_edges, remove_edges,
)

View = Literal["edge_dropout", "feature_mask", "noise"]
VIEWS = ("edge_dropout", "feature_mask", "noise")


def info_nce(z_a: Tensor, z_b: Tensor, temperature: float) -> Tensor:
    r"""Symmetric InfoNCE of two ``[B, D]`` views: row :math:`i` of each is the positive of the other.

    .. math::
        \mathcal{L} = -\frac{1}{2B} \sum_i \Big( \log \frac{e^{s_{ii}/\tau}}{\sum_j e^{s_{ij}/\tau}}
        + \log \frac{e^{s_{ii}/\tau}}{\sum_j e^{s_{ji}/\tau}} \Big),
        \qquad s_{ij} = \cos(\mathbf{z}^a_i, \mathbf{z}^b_j).
    """
    z_a, z_b = F.normalize(z_a, dim=-1), F.normalize(z_b, dim=-1)
    logits = z_a @ z_b.t() / temperature  # [B, B]
    labels = torch.arange(len(z_a), device=z_a.device)
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels)) / 2


class ContrastiveViews(PretextTask):
    r"""InfoNCE between two random views of every sampled node (SGL / SimGCL).

    Each step both views are drawn independently, the encoder runs on each, and for every node
    type in ``node_types`` up to ``nodes_per_step`` nodes are sampled; the loss is the mean over
    types of :func:`info_nce` with temperature :math:`\tau`. The task has no parameters of its own.
    On a sampled subgraph (:mod:`graphrec.pretext.sampled`) the views corrupt the subgraph and the
    nodes are drawn among its seeds.

    Args:
        embedding_dim (int): Width :math:`D` of the inputs and outputs.
        view (str, optional): ``"edge_dropout"``, ``"feature_mask"`` or ``"noise"``. (default: ``"edge_dropout"``)
        rate (float, optional): Drop probability of an edge or an input entry. (default: ``0.1``)
        noise_eps (float, optional): Norm :math:`\epsilon` of the ``"noise"`` view's perturbation. (default: ``0.1``)
        temperature (float, optional): :math:`\tau`. (default: ``0.2``)
        node_types (sequence of str, optional): Types whose nodes are contrasted. (default: ``("user", "item")``)
        nodes_per_step (int, optional): Nodes sampled per type and step. (default: ``2048``)
        edge_types (list of edge types, optional): Types dropped by ``"edge_dropout"``; ``None`` drops
            from every type of the batch. A type and its reverse count once. (default: ``None``)
    """

    name = "contrastive"

    def __init__(self, embedding_dim: int, view: View = "edge_dropout", rate: float = 0.1, noise_eps: float = 0.1,
                 temperature: float = 0.2, node_types: Sequence[str] = ("user", "item"), nodes_per_step: int = 2048,
                 edge_types: Sequence[EdgeType] | None = None) -> None:
        super().__init__()
        owner = type(self).__name__
        if view not in VIEWS:
            raise ValueError(f"{owner}: view = {view!r}; expected one of {VIEWS}")
        check_fraction("rate", rate, owner, allow_zero=view == "noise")
        if noise_eps <= 0 and view == "noise":
            raise ValueError(f"{owner}: noise_eps = {noise_eps}; expected a positive float")
        if temperature <= 0:
            raise ValueError(f"{owner}: temperature = {temperature}; expected a positive float")
        if not node_types:
            raise ValueError(f"{owner}: node_types is empty; expected at least one node type")
        if nodes_per_step < 2:
            raise ValueError(f"{owner}: nodes_per_step = {nodes_per_step}; expected at least 2 (one positive, "
                             "one negative)")
        self.embedding_dim, self.view, self.rate, self.noise_eps = embedding_dim, view, rate, noise_eps
        self.temperature, self.node_types, self.nodes_per_step = temperature, list(node_types), nodes_per_step
        self.edge_types = None if edge_types is None else [tuple(e) for e in edge_types]

    def reset_parameters(self) -> None:
        """No parameters."""

    @property
    def seed_types(self) -> list[str]:
        """Node types a sampled batch must have seeds of: the contrasted ones."""
        return list(self.node_types)

    # ------------------------------------------------------------------ views
    def drop_edges(self, batch: PretextBatch) -> dict[EdgeType, Tensor]:
        """One edge-dropout view of the batch's graph: each candidate edge (and reverse) dropped with ``rate``."""
        all_types = list(batch.edge_index_dict)
        chosen = canonical_edge_types(all_types if self.edge_types is None else self.edge_types, all_types)
        dropped = {}
        for edge_type in chosen:
            edge_index = batch.edge_index_dict.get(edge_type)
            if edge_index is None or edge_index.size(1) == 0:
                continue
            candidates = droppable_edges(edge_index, edge_type, all_types)  # [C]
            drop = bernoulli_mask((len(candidates),), self.rate, batch.generator, edge_index.device)
            dropped[edge_type] = edge_index[:, candidates[drop]]
        return remove_edges(batch.edge_index_dict, dropped, batch.num_nodes_dict)

    def perturb(self, x_dict: dict[str, Tensor], batch: PretextBatch) -> dict[str, Tensor]:
        """One feature view of the inputs: masked entries or SimGCL noise."""
        out = {}
        for node_type, x in x_dict.items():
            if self.view == "feature_mask":
                keep = ~bernoulli_mask(x.shape, self.rate, batch.generator, x.device)
                out[node_type] = x * keep
            else:
                noise = torch.rand(x.shape, generator=batch.generator).to(x.device, x.dtype)
                out[node_type] = x + self.noise_eps * F.normalize(noise, dim=-1) * torch.sign(x)
        return out

    def encode_view(self, model: PretextModel, batch: PretextBatch) -> dict[str, Tensor]:
        """The encoder's output on one freshly drawn view."""
        if self.view == "edge_dropout":
            return model.encode(model.inputs(), self.drop_edges(batch))
        return model.encode(self.perturb(model.inputs(), batch), batch.edge_index_dict)

    # ------------------------------------------------------------------ loss
    def loss(self, model: PretextModel, batch: PretextBatch) -> Tensor:
        h_a, h_b = self.encode_view(model, batch), self.encode_view(model, batch)
        losses = []
        for node_type in self.node_types:
            if node_type not in h_a:
                raise ValueError(f"{type(self).__name__}: node type {node_type!r} is not in the encoder's output; "
                                 f"node types: {list(h_a)}")
            num_nodes = min(batch.num_targets(node_type), h_a[node_type].size(0))  # a sampled batch: its seeds
            if num_nodes < 2:
                continue
            nodes = torch.randperm(num_nodes, generator=batch.generator)[: self.nodes_per_step]  # [B]
            nodes = nodes.to(h_a[node_type].device)
            losses.append(info_nce(h_a[node_type][nodes], h_b[node_type][nodes], self.temperature))
        if not losses:
            raise ValueError(f"{type(self).__name__}: no node type of {self.node_types} has two nodes to contrast")
        return torch.stack(losses).mean()

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(view={self.view!r}, rate={self.rate}, temperature={self.temperature}, "
                f"node_types={self.node_types}, nodes_per_step={self.nodes_per_step})")
