r"""Masked node prediction: hide a node's own features and recover its attributes or text.

The masked-language-model objective of BERT carried to graphs, as in G-BERT (Shang et al.,
"Pre-training of Graph Augmented Transformers for Medication Recommendation", IJCAI 2019) and
PMGT (Liu et al., "Pre-training Graph Transformer with Multimodal Side Information for
Recommendation", ACM MM 2021): a random fraction of the nodes of one type lose their input
vector, which becomes a learned :math:`[\mathrm{MASK}]` vector, and the encoder must rebuild
what they were from their neighbourhood.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.data import HeteroData

from graphrec.pretext.base import (
    EdgeType, PretextBatch, PretextModel, PretextTask, check_fraction, reverse_edge_type, sample_fraction,
)

Target = Literal["attributes", "text"]
ATTRIBUTE_PREFIX = "has_"


def attribute_fields(graph: HeteroData, node_type: str) -> dict[str, EdgeType]:
    """``{field: (node_type, 'has_<field>', value_type)}`` of the attribute edges leaving ``node_type``."""
    return {rel[len(ATTRIBUTE_PREFIX):]: (src, rel, dst) for src, rel, dst in graph.edge_types
            if src == node_type and rel.startswith(ATTRIBUTE_PREFIX)}


def text_node_types(graph: HeteroData) -> list[str]:
    """Node types that carry a text vector ``x_text``."""
    return [t for t in graph.node_types if "x_text" in graph[t]]


class MaskedNodePrediction(PretextTask):
    r"""Mask a fraction of one node type's nodes and predict their attribute values or text.

    Each step a fraction ``mask_rate`` of the nodes :math:`\mathcal{M}` of ``node_type`` is drawn.
    Their input rows become a learned vector :math:`\mathbf{m}`, and (for ``target="attributes"``)
    their edges to the predicted attribute values, ``(t, 'has_<f>', f)`` and the reverse
    ``(f, 'rev_has_<f>', t)``, leave the message-passing graph, so that neither the input nor a
    neighbour can hand the answer back. From the encoder's output :math:`\mathbf{h}_v`:

    * ``"attributes"``: per field :math:`f` a linear decoder scores every value,
      :math:`\mathcal{L}_f = \mathrm{BCE}(\mathbf{W}_f \mathbf{h}_v + \mathbf{b}_f, \mathbf{y}_{v,f})`
      against the multi-hot :math:`\mathbf{y}_{v,f}` of :math:`v`'s values, averaged over
      :math:`v \in \mathcal{M}` and values; the loss is the mean over fields;
    * ``"text"``: :math:`\mathcal{L} = 1 - \cos(\mathbf{W}\mathbf{h}_v, \mathbf{x}_v - \bar{\mathbf{x}})`
      against the node's centred language-model vector ``graph[t].x_text``, for masked nodes
      with ``has_text`` (the shared mean direction of PLM vectors says nothing about a node).

    On a sampled subgraph (:mod:`graphrec.pretext.sampled`) :math:`\mathcal{M}` is drawn among its
    seeds, and the targets are read by graph id.

    Args:
        graph (HeteroData): The message-passing graph; attribute edges and ``x_text`` are read
            from it once, here.
        embedding_dim (int): Width :math:`D` of the encoder's output.
        node_type (str, optional): The node type to mask. (default: ``"item"``)
        target (str, optional): ``"attributes"`` or ``"text"``. (default: ``"attributes"``)
        fields (list of str, optional): Attribute fields to predict; ``None`` takes every field
            of ``node_type`` in the graph. (default: ``None``)
        mask_rate (float, optional): Fraction of the nodes masked per step. (default: ``0.15``)
    """

    name = "masked_node"

    def __init__(self, graph: HeteroData, embedding_dim: int, node_type: str = "item", target: Target = "attributes",
                 fields: list[str] | None = None, mask_rate: float = 0.15) -> None:
        super().__init__()
        owner = type(self).__name__
        if node_type not in graph.node_types:
            raise ValueError(f"{owner}: node_type = {node_type!r} is not in the graph; node types: {graph.node_types}")
        if target not in ("attributes", "text"):
            raise ValueError(f"{owner}: target = {target!r}; expected 'attributes' or 'text'")
        check_fraction("mask_rate", mask_rate, owner)
        self.node_type, self.target, self.mask_rate = node_type, target, mask_rate
        self.embedding_dim = embedding_dim
        self.num_nodes = int(graph[node_type].num_nodes)
        self.mask_token = torch.nn.Parameter(torch.empty(embedding_dim))
        self.decoders = torch.nn.ModuleDict()
        self.field_edge_types: dict[str, tuple[EdgeType, EdgeType | None]] = {}
        if target == "attributes":
            self._init_attributes(graph, fields, owner)
        else:
            self._init_text(graph, owner)
        self.reset_parameters()

    def _init_attributes(self, graph: HeteroData, fields: list[str] | None, owner: str) -> None:
        available = attribute_fields(graph, self.node_type)
        if fields is None:
            fields = sorted(available)
            if not fields:
                raise ValueError(f"{owner}: node type {self.node_type!r} has no attribute fields (no "
                                 f"'{ATTRIBUTE_PREFIX}<field>' edges) in the graph; node types with attributes: "
                                 f"{sorted({s for s, r, _ in graph.edge_types if r.startswith(ATTRIBUTE_PREFIX)})}")
        for field in fields:
            if field not in available:
                raise ValueError(f"{owner}: node type {self.node_type!r} has no attribute field {field!r}; "
                                 f"its fields: {sorted(available)}")
            edge_type = available[field]
            reverse = reverse_edge_type(edge_type, graph.edge_types)
            self.field_edge_types[field] = (edge_type, reverse)
            num_values = int(graph[edge_type[2]].num_nodes)
            # [2, E_f] (node, value): the targets; kept apart from whatever the batch's graph holds.
            self.register_buffer(f"values_{field}", graph[edge_type].edge_index.detach().clone().long(),
                                 persistent=False)
            self.decoders[field] = torch.nn.Linear(self.embedding_dim, max(num_values, 1))
        self.fields = list(fields)

    def _init_text(self, graph: HeteroData, owner: str) -> None:
        store = graph[self.node_type]
        if "x_text" not in store:
            raise ValueError(f"{owner}: node type {self.node_type!r} has no text vectors (x_text); node types "
                             f"with text: {text_node_types(graph)}")
        text = store.x_text.detach().float()  # [N, P]
        has_text = store.has_text.bool() if "has_text" in store else torch.ones(text.size(0), dtype=torch.bool)
        if not has_text.any():
            raise ValueError(f"{owner}: no {self.node_type!r} node has text (has_text is all false)")
        text = text - text[has_text].mean(0, keepdim=True)
        self.register_buffer("text", text, persistent=False)
        self.register_buffer("has_text", has_text, persistent=False)
        self.decoders["text"] = torch.nn.Linear(self.embedding_dim, text.size(1))
        self.fields = []

    def reset_parameters(self) -> None:
        torch.nn.init.normal_(self.mask_token, std=0.1)
        for decoder in self.decoders.values():
            decoder.reset_parameters()

    # ------------------------------------------------------------------ the corruption
    @property
    def seed_types(self) -> list[str]:
        """Node types a sampled batch must have seeds of: the masked type."""
        return [self.node_type]

    def sample_mask(self, batch: PretextBatch) -> Tensor:
        """A bool mask ``[N]`` over the batch's nodes of the type: those masked this step (text: drawn among
        nodes with text). In a sampled batch only seeds are masked (see :meth:`PretextBatch.num_targets`)."""
        device = self.mask_token.device
        count = batch.num_targets(self.node_type)
        if self.target == "text":
            has_text = self.has_text.cpu()
            if batch.sampled:
                has_text = has_text[batch.n_id[self.node_type][:count].cpu()]
            candidates = torch.nonzero(has_text).flatten()
            chosen = candidates[sample_fraction(len(candidates), self.mask_rate, batch.generator)]
        else:
            chosen = sample_fraction(count, self.mask_rate, batch.generator)
        masked = torch.zeros(batch.num_nodes_dict[self.node_type], dtype=torch.bool)
        masked[chosen] = True
        return masked.to(device)

    def corrupt(self, model: PretextModel, batch: PretextBatch, masked: Tensor
                ) -> tuple[dict[str, Tensor], dict[EdgeType, Tensor]]:
        """``(x_dict, edge_index_dict)`` with ``masked`` rows replaced by the mask vector and their
        attribute edges for the predicted fields (both directions) removed."""
        x_dict = dict(model.inputs())
        x = x_dict[self.node_type]  # [N, D]
        x_dict[self.node_type] = torch.where(masked.unsqueeze(-1), self.mask_token.to(x.dtype), x)
        edge_index_dict = dict(batch.edge_index_dict)
        for edge_type, reverse in self.field_edge_types.values():
            if edge_type in edge_index_dict:
                edge_index = edge_index_dict[edge_type]
                edge_index_dict[edge_type] = edge_index[:, ~masked[edge_index[0]]]
            if reverse is not None and reverse in edge_index_dict:
                edge_index = edge_index_dict[reverse]
                edge_index_dict[reverse] = edge_index[:, ~masked[edge_index[1]]]
        return x_dict, edge_index_dict

    # ------------------------------------------------------------------ the loss
    def loss(self, model: PretextModel, batch: PretextBatch) -> Tensor:
        masked = self.sample_mask(batch)
        x_dict, edge_index_dict = self.corrupt(model, batch, masked)
        h = model.encode(x_dict, edge_index_dict)[self.node_type][masked]  # [M, D]
        ids = batch.global_ids(self.node_type, torch.nonzero(masked).flatten())  # [M] graph ids, rows of h
        if self.target == "text":
            keep = self.has_text[ids]
            if not keep.any():  # a sampled batch without a seed that has text
                return h.sum() * 0.0
            prediction = self.decoders["text"](h[keep])
            return (1 - F.cosine_similarity(prediction, self.text[ids][keep], dim=-1)).mean()
        if h.size(0) == 0:
            return h.sum() * 0.0
        # Row of each masked node among the masked ones (-1: not masked), to scatter the multi-hot targets.
        row = torch.full((self.num_nodes,), -1, dtype=torch.long, device=ids.device)
        row[ids] = torch.arange(ids.numel(), device=ids.device)
        losses = []
        for field in self.fields:
            values = getattr(self, f"values_{field}")  # [2, E_f] (graph id, value)
            logits = self.decoders[field](h)  # [M, V_f]
            rows = row[values[0]]
            on_masked = rows >= 0
            target = torch.zeros_like(logits)
            target[rows[on_masked], values[1, on_masked]] = 1.0
            losses.append(F.binary_cross_entropy_with_logits(logits, target))
        return torch.stack(losses).mean()

    def __repr__(self) -> str:
        what = f"fields={self.fields}" if self.target == "attributes" else "target='text'"
        return f"{type(self).__name__}(node_type={self.node_type!r}, {what}, mask_rate={self.mask_rate})"
