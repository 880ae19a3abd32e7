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
and fine-tuning (the trainers call ``forward() -> (user [U, D], item [I, D])``).
"""

from __future__ import annotations

import torch
from torch import Tensor

from graphrec.nn.adapters import NodePrompt
from graphrec.nn.embedding import NodeEmbedding
from graphrec.nn.encoder import EdgeType, HeteroEncoder
from graphrec.nn.heads import DotProductHead

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
    def inputs(self) -> dict[str, Tensor]:
        """Layer-0 features ``[N_t, D]`` of every node type, prompts added."""
        x_dict = self.embedding()
        return self.prompt(x_dict) if self.prompt is not None else x_dict

    def encode(self, x_dict: dict[str, Tensor], edge_index_dict: dict[EdgeType, Tensor]) -> dict[str, Tensor]:
        return self.encoder(x_dict, edge_index_dict)

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
