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

from graphrec.graph.metapaths import MetaPathSampler, metapath_name, missing_hops, parse_metapath, split_applicable
from graphrec.pretext.base import PretextBatch, PretextModel, PretextTask, zero_loss


class MetaPathPrediction(PretextTask):
    r"""Classify the meta-path of a sampled walk from the embeddings of its two ends.

    Each step draws about ``pairs_per_step / K`` walks along each of the :math:`K` meta-paths
    (:class:`graphrec.graph.metapaths.MetaPathSampler`, on the batch's message-passing graph),
    keeps their ends :math:`(a, b)` with :math:`a \ne b`, and minimises the cross-entropy of

    .. math::
        p(k \mid a, b) = \mathrm{softmax}_k\,
        \mathrm{MLP}\big([\mathbf{h}_a \odot \mathbf{h}_b \,\|\, |\mathbf{h}_a - \mathbf{h}_b|]\big),

    a symmetric pair feature, so a path and its reverse read alike. On a sampled subgraph
    (:mod:`graphrec.pretext.sampled`) walks start at its seeds and follow its edges in either direction.

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

    def sampler(self, batch: PretextBatch) -> MetaPathSampler | None:
        """The walk sampler of the batch's graph, rebuilt only when its edge tensors change.

        A sampled subgraph is walked along its edges in both directions (a seed's items are in the
        subgraph as edges sampled into the seed, item to user), and only along the meta-paths it has
        edges for; ``None`` when it has none.
        """
        hops = self._hops | {(b, a) for a, b in self._hops} if batch.sampled else self._hops
        edges = {e: index for e, index in batch.edge_index_dict.items() if (e[0], e[2]) in hops}
        # The tensors themselves are held in the key, so their ids cannot be reused by others.
        key = tuple((e, index, index._version) for e, index in edges.items())
        cached = self._sampler_key
        if cached is None or len(cached) != len(key) or any(
                a[0] != b[0] or a[1] is not b[1] or a[2] != b[2] for a, b in zip(cached, key)):
            metapaths = self.metapaths
            if batch.sampled:
                edges = {**edges, **{(d, f"~{r}", s): index.flip(0) for (s, r, d), index in edges.items()
                                     if (d, s) in self._hops}}
                metapaths, _ = split_applicable(self.metapaths, edges)
            self._sampler = MetaPathSampler(edges, batch.num_nodes_dict, metapaths) if metapaths else None
            self._sampler_key = key
        return self._sampler

    def sample_pairs(self, batch: PretextBatch) -> tuple[list[Tensor], list[Tensor], Tensor]:
        """``(starts, ends, labels)``: per meta-path the ``[P_k]`` first and last nodes of its walks
        (start == end dropped where the end types agree), and ``[sum P_k]`` meta-path indices."""
        per_path = -(-self.pairs_per_step // len(self.metapaths))
        sampler = self.sampler(batch)
        walkable = [] if sampler is None else sampler.metapaths
        starts, ends, labels = [], [], []
        for index, metapath in enumerate(self.metapaths):
            # Starts: uniform over the nodes with a first hop (a sampled batch: over its seeds), as
            # MetaPathSampler.sample draws them; extra walks, as some die at dead ends or come back.
            can_start = torch.zeros(0, dtype=torch.long)
            if metapath in walkable:
                degree = sampler.degree(metapath[0], metapath[1])[: batch.num_targets(metapath[0])]
                can_start = torch.nonzero(degree > 0).flatten()
            if len(can_start) == 0:  # a sampled subgraph may have no walk of this meta-path
                walk = torch.zeros(0, len(metapath), dtype=torch.long)
            else:
                pick = torch.randint(len(can_start), (2 * per_path,), generator=batch.generator)
                walk = sampler.walk(metapath, can_start[pick], batch.generator)
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

    @property
    def seed_types(self) -> list[str]:
        """Node types a sampled batch must have seeds of: where walks start."""
        return list(dict.fromkeys(m[0] for m in self.metapaths))

    def loss(self, model: PretextModel, batch: PretextBatch) -> Tensor:
        starts, ends, labels = self.sample_pairs(batch)
        if len(labels) == 0 and batch.sampled:
            return zero_loss(model.inputs())
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
