r"""A recommender made of parts: node inputs, a heterogeneous encoder and a prediction head.

.. math::
    \mathbf{X} = \mathrm{prompt}(\mathrm{NodeEmbedding}()), \qquad
    \mathbf{H} = \mathrm{encoder}(\mathbf{X}, \mathcal{E}_{\text{side}} \cup \mathcal{E}_{\text{train}}),
    \qquad \hat{y}_{ui} = \mathrm{head}(\mathbf{h}_u, \mathbf{h}_i)

:math:`\mathcal{E}_{\text{side}}` are the edges that are not interactions (attributes, social
links, knowledge graph), fixed at construction; :math:`\mathcal{E}_{\text{train}}` are the training
interactions and their reverse, given to :meth:`GraphRecommender.set_graph`, so held-out
interactions never reach message passing. The same object serves pre-training (pretext tasks call
:meth:`~GraphRecommender.inputs` and :meth:`~GraphRecommender.encode` with graphs of their own)
and fine-tuning (the trainers call ``forward() -> (user [U, D], item [I, D])``, or, with
neighbour-sampled mini-batches, :meth:`~GraphRecommender.encode_sampled` on each batch's subgraph).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from graphrec.nn.adapters import NodePrompt
from graphrec.nn.embedding import NodeEmbedding
from graphrec.nn.encoder import EdgeType, HeteroEncoder, HopCounts
from graphrec.nn.heads import DotProductHead

if TYPE_CHECKING:  # graphrec.nn loads torch only; the sampler comes with graphrec.graph
    from graphrec.graph.sampling import NeighborSampler, SampledSubgraph

INTERACTS: EdgeType = ("user", "interacts", "item")
REV_INTERACTS: EdgeType = ("item", "rev_interacts", "user")


class GraphRecommender(torch.nn.Module):
    """Node inputs, an encoder over the whole typed graph, and a head that scores (user, item) pairs.

    Args:
        embedding (NodeEmbedding): Inputs of every node type the encoder reads, ``"user"`` and
            ``"item"`` included.
        encoder (HeteroEncoder): Any encoder of :mod:`graphrec.nn`.
        side_edge_index_dict (dict, optional): ``[2, E]`` edges per edge type other than the
            interactions. (default: none)
        head (torch.nn.Module, optional): Has ``forward(user [B, D], item [B(, N), D])`` and
            ``score_all(user [B, D], item [I, D]) -> [B, I]``. (default: :class:`DotProductHead`)
        prompt (NodePrompt, optional): Prompt vectors added to the inputs. (default: ``None``)
    """

    trainable = True

    def __init__(self, embedding: NodeEmbedding, encoder: HeteroEncoder,
                 side_edge_index_dict: dict[EdgeType, Tensor] | None = None,
                 head: torch.nn.Module | None = None, prompt: NodePrompt | None = None) -> None:
        super().__init__()
        for node_type in ("user", "item"):
            if node_type not in embedding.num_nodes_dict:
                raise ValueError(f"embedding has no {node_type!r} nodes; node types: {embedding.node_types}")
        if embedding.embedding_dim != encoder.channels:
            raise ValueError(f"embedding_dim {embedding.embedding_dim} differs from the encoder's channels "
                             f"{encoder.channels}")
        self.embedding, self.encoder = embedding, encoder
        self.head = head if head is not None else DotProductHead()
        self.prompt = prompt
        self.num_users = embedding.num_nodes_dict["user"]
        self.num_items = embedding.num_nodes_dict["item"]
        self.embedding_dim = embedding.embedding_dim
        side = dict(side_edge_index_dict or {})
        for edge_type, edge_index in side.items():
            if edge_type in (INTERACTS, REV_INTERACTS):
                raise ValueError(f"side_edge_index_dict holds {edge_type}; interactions are given to set_graph")
            for position, node_type in ((0, edge_type[0]), (1, edge_type[2])):
                count = embedding.num_nodes_dict.get(node_type)
                if count is None:
                    raise ValueError(f"edge type {edge_type} names node type {node_type!r}, which the embedding "
                                     f"lacks; node types: {embedding.node_types}")
                if edge_index.numel() and int(edge_index[position].max()) >= count:
                    raise ValueError(f"edge type {edge_type} holds {node_type} ids up to "
                                     f"{int(edge_index[position].max())}; expected ids below {count}")
        self.side_edge_types = list(side)
        for index, edge_index in enumerate(side.values()):
            self.register_buffer(f"side_edges_{index}", edge_index.long(), persistent=False)
        self.register_buffer("train_edges", None, persistent=False)
        self._ego: tuple[Tensor, Tensor] | None = None
        self._frozen_output: tuple[Tensor, Tensor] | None = None

    # ------------------------------------------------------------------ graph
    def set_graph(self, edge_index: Tensor) -> None:
        """Stores the ``[2, E]`` training interactions; users and items none of them reach are marked
        untrained in the embedding (their ID vectors then count as zero where they have other inputs)."""
        device = self.side_edges_device()
        self.train_edges = edge_index.to(device).long()
        for node_type, ids, count in (("user", self.train_edges[0], self.num_users),
                                      ("item", self.train_edges[1], self.num_items)):
            self.embedding.set_untrained(node_type, torch.bincount(ids, minlength=count) == 0)
        self._frozen_output = None

    def side_edges_device(self) -> torch.device:
        return next((t.device for t in self.embedding.parameters()), torch.device("cpu"))

    @property
    def edge_index_dict(self) -> dict[EdgeType, Tensor]:
        """The message-passing graph: side edges plus the training interactions and their reverse."""
        if self.train_edges is None:
            raise RuntimeError("GraphRecommender needs its training interactions: call set_graph(edge_index) first")
        edges = {t: getattr(self, f"side_edges_{i}") for i, t in enumerate(self.side_edge_types)}
        edges[INTERACTS] = self.train_edges
        edges[REV_INTERACTS] = self.train_edges.flip(0)
        return edges

    @property
    def metadata(self) -> tuple[list[str], list[EdgeType]]:
        return self.embedding.node_types, [*self.side_edge_types, INTERACTS, REV_INTERACTS]

    # ------------------------------------------------------------------ the pretext-model protocol
    def inputs(self, index_dict: dict[str, Tensor] | None = None) -> dict[str, Tensor]:
        """Layer-0 features ``[N_t, D]`` of every node type, prompts added; with ``index_dict``
        (``[n_t]`` node ids per type) only those rows, ``[n_t, D]``, computed for them alone."""
        x_dict = self.embedding() if index_dict is None else self.embedding.gather(index_dict)
        return self.prompt(x_dict) if self.prompt is not None else x_dict

    def encode(self, x_dict: dict[str, Tensor], edge_index_dict: dict[EdgeType, Tensor],
               degree_dict: dict[str, Tensor] | None = None,
               hops: HopCounts | None = None) -> dict[str, Tensor]:
        """The encoder's ``h_dict``; ``degree_dict`` (full-graph degrees of a sampled subgraph's nodes)
        reaches only encoders that normalise by degrees (``needs_degrees``), ``hops`` (a sampled
        subgraph's node and edge counts per hop) only those that trim to them (``trims_to_hops``)."""
        kwargs: dict = {}
        if degree_dict is not None and self.encoder.needs_degrees:
            kwargs["degree_dict"] = degree_dict
        if hops is not None and self.encoder.trims_to_hops:
            kwargs["num_sampled_nodes"], kwargs["num_sampled_edges"] = hops
        return self.encoder(x_dict, edge_index_dict, **kwargs)

    # ------------------------------------------------------------------ neighbour-sampled mini-batches
    def neighbor_sampler(self, fanouts: list[int], seed: int = 0, replace: bool = False) -> NeighborSampler:
        """A :class:`~graphrec.graph.sampling.NeighborSampler` over :attr:`edge_index_dict`, on the CPU, with
        the interactions and their reverse paired: what :meth:`encode_sampled` takes.

        Args:
            fanouts (list[int]): Neighbours drawn per node and edge type at each hop, one per encoder
                layer; ``-1``: all of them.
            seed (int, optional): Seed of the sampler's generator. (default: ``0``)
            replace (bool, optional): Draw with replacement. (default: ``False``)
        """
        from graphrec.graph.sampling import NeighborSampler

        if len(fanouts) != self.encoder.num_layers:
            raise ValueError(f"fanouts {list(fanouts)} has {len(fanouts)} entries; expected one per layer of "
                             f"{self.encoder!r}")
        edge_index_dict = {edge_type: edges.cpu() for edge_type, edges in self.edge_index_dict.items()}
        read = set(self.encoder.reads_edge_types(list(edge_index_dict)))
        if self.encoder.reads_reverse_edges and INTERACTS in read:
            read.add(REV_INTERACTS)  # sampled into users, merged into the interactions
        # Edge types the encoder ignores get fan-out 0: LightGCN's subgraph holds no attribute or KG edges.
        per_type = {et: list(fanouts) if et in read else [0] * len(fanouts) for et in edge_index_dict}
        return NeighborSampler(edge_index_dict, self.embedding.num_nodes_dict, per_type, replace=replace,
                               seed=seed, reverse_edge_types={INTERACTS: REV_INTERACTS})

    def encode_sampled(self, subgraph: SampledSubgraph, sampler: NeighborSampler,
                       non_blocking: bool = False) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """Inputs and encoder outputs of a sampled subgraph's nodes only: ``(x_dict, h_dict)``, ``[n_t, D]``
        per node type in the order of ``subgraph.n_id`` (the seeds first; an encoder that ``trims_to_hops``
        returns the seeds' rows only).

        ``subgraph`` comes from ``sampler`` (see :meth:`neighbor_sampler`), both on the CPU. An encoder
        that reads the interactions both ways gets both directions of every sampled edge, one that
        normalises by degrees gets the full graph's. With every fan-out ``-1`` the seeds' outputs equal
        :meth:`forward`'s. ``non_blocking``: copy to a CUDA device through pinned memory, asynchronously.
        """
        from graphrec.graph.sampling import to_device

        edge_index_dict = subgraph.edge_index_dict
        if self.encoder.reads_reverse_edges:
            if sampler.reverse_edge_types.get(INTERACTS) != REV_INTERACTS:
                raise ValueError(f"{self.encoder!r} reads the interactions both ways; build the sampler with "
                                 f"reverse_edge_types={{{INTERACTS}: {REV_INTERACTS}}} (see neighbor_sampler)")
            edge_index_dict = sampler.merge_reverse(subgraph)
        degree_dict = None
        if self.encoder.needs_degrees:
            degree = sampler.in_degree_dict(subgraph, unique=True, edge_types=[REV_INTERACTS, INTERACTS])
            degree_dict = {"user": degree[REV_INTERACTS], "item": degree[INTERACTS]}  # distinct neighbours
        device = self.side_edges_device()

        def move(tensors: dict) -> dict:
            return {key: to_device(t, device, non_blocking) for key, t in tensors.items()}

        x_dict = self.inputs(move(subgraph.n_id))
        hops = None
        if self.encoder.trims_to_hops and edge_index_dict is subgraph.edge_index_dict:
            hops = (subgraph.num_sampled_nodes, subgraph.num_sampled_edges)
        h_dict = self.encode(x_dict, move(edge_index_dict), None if degree_dict is None else move(degree_dict), hops)
        return x_dict, h_dict

    # ------------------------------------------------------------------ the recommender interface
    def body_is_frozen(self) -> bool:
        """True when nothing before the head trains (the "head" strategy): the encoder output is constant."""
        body = [self.embedding, self.encoder] + ([self.prompt] if self.prompt is not None else [])
        return not any(p.requires_grad for module in body for p in module.parameters())

    def forward(self) -> tuple[Tensor, Tensor]:
        """Final ``(user [U, D], item [I, D])`` representations on the graph given to :meth:`set_graph`.

        With a frozen body they are computed once, in eval mode, and reused.
        """
        if self.body_is_frozen():
            if self._frozen_output is None or not self.training:
                self._frozen_output = self._encode_frozen()
            self._ego = None
            return self._frozen_output
        self._frozen_output = None
        x_dict = self.inputs()
        self._ego = (x_dict["user"], x_dict["item"])
        h_dict = self.encode(x_dict, self.edge_index_dict)
        return h_dict["user"], h_dict["item"]

    @torch.no_grad()
    def _encode_frozen(self) -> tuple[Tensor, Tensor]:
        was_training = self.training
        self.eval()
        h_dict = self.encode(self.inputs(), self.edge_index_dict)
        self.train(was_training)
        return h_dict["user"], h_dict["item"]

    def ego_embeddings(self) -> tuple[Tensor, Tensor]:
        """Layer-0 ``(user, item)`` inputs of the last forward pass (for the L2 term of the trainer)."""
        if self._ego is None:
            if self.body_is_frozen():  # nothing to regularise: constants
                zeros = torch.zeros(1, self.embedding_dim, device=self.side_edges_device())
                return zeros.expand(self.num_users, -1), zeros.expand(self.num_items, -1)
            x_dict = self.inputs()
            self._ego = (x_dict["user"], x_dict["item"])
        return self._ego

    def score(self, user_emb: Tensor, item_emb: Tensor) -> Tensor:
        """Head scores of ``[B, D]`` users against ``[B, D]`` or ``[B, N, D]`` items."""
        return self.head(user_emb, item_emb)

    def score_all(self, user_emb: Tensor, item_emb: Tensor) -> Tensor:
        """Head scores of ``[B, D]`` users against every item ``[I, D]``: ``[B, I]``."""
        return self.head.score_all(user_emb, item_emb)

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}(num_users={self.num_users}, num_items={self.num_items}, "
                f"encoder={self.encoder!r}, head={self.head.__class__.__name__})")
