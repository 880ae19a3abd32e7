r"""Meta-path prediction: which meta-path joins these two nodes?

The meta-path type prediction task of CHEST (Wang et al., "Curriculum Pre-training Heterogeneous
Subgraph Transformer for Top-N Recommendation", TOIS 2023), in the form of the pairwise
meta-path classification of Hwang et al. ("Self-supervised Auxiliary Learning with
Meta-paths for Heterogeneous Graphs", NeurIPS 2020): the representations of the two ends of a
walk must tell which composite relation the walk followed, which teaches the encoder the
semantics of multi-hop relations (co-watched, same-genre, same-director, a friend's item).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.data import HeteroData

from graphrec.graph.metapaths import MetaPathSampler, metapath_name, missing_hops, parse_metapath
from graphrec.pretext.base import PretextBatch, PretextModel, PretextTask


class MetaPathPrediction(PretextTask):
    r"""Classify the meta-path of a sampled walk from the embeddings of its two ends.

    Each step draws about ``pairs_per_step / K`` walks along each of the :math:`K` meta-paths
    (:class:`graphrec.graph.metapaths.MetaPathSampler`, on the batch's message-passing graph),
    keeps their ends :math:`(a, b)` with :math:`a \ne b`, and minimises the cross-entropy of

    .. math::
        p(k \mid a, b) = \mathrm{softmax}_k\,
        \mathrm{MLP}\big([\mathbf{h}_a \odot \mathbf{h}_b \,\|\, |\mathbf{h}_a - \mathbf{h}_b|]\big),

    a symmetric pair feature, so a path and its reverse read alike.

    Args:
        graph (HeteroData): The message-passing graph; every hop of every meta-path must have edges.
        embedding_dim (int): Width :math:`D` of the encoder's output.
        metapaths (list of list of str): At least two meta-paths, each a list of node types
            (or a ``"user-item-user"`` string).
        pairs_per_step (int, optional): Walks drawn per step over all meta-paths. (default: ``1024``)
        hidden (int, optional): Width of the classifier's hidden layer. (default: ``64``)
    """

    name = "metapath"

    def __init__(self, graph: HeteroData, embedding_dim: int, metapaths: Sequence[Sequence[str] | str],
                 pairs_per_step: int = 1024, hidden: int = 64) -> None:
        super().__init__()
        owner = type(self).__name__
        self.metapaths = [parse_metapath(m) for m in metapaths]
        if len(self.metapaths) < 2:
            raise ValueError(f"{owner}: metapaths has {len(self.metapaths)} meta-path(s); expected at least two "
                             "to tell apart")
        names = [metapath_name(m) for m in self.metapaths]
        if len(set(names)) < len(names):
            raise ValueError(f"{owner}: metapaths lists a meta-path twice: {names}")
        edge_types = [e for e in graph.edge_types if graph[e].num_edges > 0]
        for metapath in self.metapaths:
            missing = missing_hops(metapath, edge_types, graph.node_types)
            if missing:
                raise ValueError(f"{owner}: meta-path {metapath_name(metapath)} has no edges from {missing[0][0]!r} to "
                                 f"{missing[0][1]!r} in the graph")
        if pairs_per_step < len(self.metapaths):
            raise ValueError(f"{owner}: pairs_per_step = {pairs_per_step}; expected at least one per meta-path "
                             f"({len(self.metapaths)})")
        if hidden < 1:
            raise ValueError(f"{owner}: hidden = {hidden}; expected a positive int")
        self.embedding_dim, self.pairs_per_step, self.hidden = embedding_dim, pairs_per_step, hidden
        self.classifier = torch.nn.Sequential(
            torch.nn.Linear(2 * embedding_dim, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, len(self.metapaths)),
        )
        self._hops = {hop for m in self.metapaths for hop in zip(m[:-1], m[1:])}
        self._sampler_key: tuple | None = None
        self._sampler: MetaPathSampler | None = None

    def reset_parameters(self) -> None:
        for layer in self.classifier:
            if isinstance(layer, torch.nn.Linear):
                layer.reset_parameters()

    def sampler(self, batch: PretextBatch) -> MetaPathSampler:
        """The walk sampler of the batch's graph, rebuilt only when its edge tensors change."""
        edges = {e: index for e, index in batch.edge_index_dict.items() if (e[0], e[2]) in self._hops}
        # The tensors themselves are held in the key, so their ids cannot be reused by others.
        key = tuple((e, index, index._version) for e, index in edges.items())
        cached = self._sampler_key
        if cached is None or len(cached) != len(key) or any(
                a[0] != b[0] or a[1] is not b[1] or a[2] != b[2] for a, b in zip(cached, key)):
            self._sampler = MetaPathSampler(edges, batch.num_nodes_dict, self.metapaths)
            self._sampler_key = key
        return self._sampler

    def sample_pairs(self, batch: PretextBatch) -> tuple[list[Tensor], list[Tensor], Tensor]:
        """``(starts, ends, labels)``: per meta-path the ``[P_k]`` first and last nodes of its walks
        (start == end dropped where the end types agree), and ``[sum P_k]`` meta-path indices."""
        per_path = -(-self.pairs_per_step // len(self.metapaths))
        # Draw extra walks: some die at dead ends or come back to where they started.
        walks = self.sampler(batch).sample(2 * per_path, batch.generator)
        starts, ends, labels = [], [], []
        for index, (metapath, walk) in enumerate(zip(self.metapaths, walks)):
            if metapath[0] == metapath[-1]:
                walk = walk[walk[:, 0] != walk[:, -1]]
            walk = walk[:per_path]
            starts.append(walk[:, 0])
            ends.append(walk[:, -1])
            labels.append(torch.full((len(walk),), index, dtype=torch.long))
        return starts, ends, torch.cat(labels)

    def logits(self, h_a: Tensor, h_b: Tensor) -> Tensor:
        """``[P, K]`` meta-path logits of end pairs ``[P, D]``."""
        return self.classifier(torch.cat([h_a * h_b, (h_a - h_b).abs()], dim=-1))

    def loss(self, model: PretextModel, batch: PretextBatch) -> Tensor:
        starts, ends, labels = self.sample_pairs(batch)
        if len(labels) == 0:
            raise ValueError(f"{type(self).__name__}: no walk completed any meta-path this step")
        h = model.encode(model.inputs(), batch.edge_index_dict)
        device = next(iter(h.values())).device
        h_a = torch.cat([h[m[0]][s.to(device)] for m, s in zip(self.metapaths, starts)])  # [P, D]
        h_b = torch.cat([h[m[-1]][e.to(device)] for m, e in zip(self.metapaths, ends)])  # [P, D]
        return F.cross_entropy(self.logits(h_a, h_b), labels.to(device))

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(metapaths={[metapath_name(m) for m in self.metapaths]}, "
                f"pairs_per_step={self.pairs_per_step}, hidden={self.hidden})")
