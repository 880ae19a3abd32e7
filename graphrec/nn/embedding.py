"""Node input features: learnable ID embeddings fused with projected text and attribute features."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Literal

import torch
from torch import Tensor

Fusion = Literal["sum", "concat", "gate"]
FUSIONS = ("sum", "concat", "gate")


class NodeEmbedding(torch.nn.Module):
    r"""The input vectors of every node type: ID embeddings, text and attributes, fused.

    Each node :math:`v` of type :math:`t` has up to three sources, each a vector in
    :math:`\mathbb{R}^{D}`:

    * **id**: a free vector :math:`\mathbf{W}_t[v]`, as in matrix factorisation
      (`Rendle et al., UAI 2009 <https://arxiv.org/abs/1205.2618>`_) and LightGCN
      (`He et al., SIGIR 2020 <https://arxiv.org/abs/2002.02126>`_);
    * **text**: the node's pre-trained language model vector, centred, scaled to unit
      norm and projected, :math:`\mathbf{P}_t \hat{\mathbf{x}}_v`; a node without text gets a
      learned "missing text" vector :math:`\mathbf{m}_t` instead of a silent zero;
    * **attr**: the mean of learned embeddings of the node's attribute values (genres, tags).

    They are fused by ``sum``; ``concat`` followed by a linear map back to :math:`D`; or
    ``gate``, a learned per-dimension softmax over the sources,
    :math:`\mathbf{h}_v = \sum_s \mathbf{g}_{v,s} \odot \mathbf{x}_{v,s}` with
    :math:`\mathbf{g}_{v} = \mathrm{softmax}_s(\mathbf{W}[\mathbf{x}_{v,1} \| \dots \| \mathbf{x}_{v,S}])`,
    which starts as the plain mean. A type with one source returns it unchanged.

    Leaving a type out of ``id_types`` gives text-only (or attribute-only) inputs: such nodes
    need no training interactions, which is what scores cold-start items. ``id_dropout`` zeroes
    the ID vector of a random fraction of nodes in training, so that the other sources learn to
    carry a node alone (as in DropoutNet, `Volkovs et al., NeurIPS 2017
    <https://papers.nips.cc/paper/7081-dropoutnet-addressing-cold-start-in-recommender-systems>`_);
    :meth:`set_untrained` zeroes the ID vectors of nodes the training data never reached.

    The module is the input stage of the encoders in :mod:`graphrec.nn`: it returns an
    ``x_dict`` that an encoder's ``forward(x_dict, edge_index_dict)`` takes.

    Args:
        num_nodes_dict (dict[str, int]): Number of nodes of each node type,
            e.g. ``{"user": 943, "item": 1682}``.
        embedding_dim (int): Size :math:`D` of every output vector.
        init_std (float, optional): Standard deviation :math:`\sigma` of the normal
            initialisation of ID and attribute embeddings, and the scale of the text
            projection's output. (default: ``0.1``)
        id_types (iterable of str, optional): Node types with ID embeddings; ``None``
            gives every type one. A type with no source at all is an error. (default: ``None``)
        text_dict (dict[str, Tensor], optional): Per node type, text vectors ``[N, P]``.
        has_text_dict (dict[str, Tensor], optional): Per node type, a bool ``[N]`` mask of
            the nodes that have text; by default every node of ``text_dict`` has.
        attribute_dict (dict[str, tuple[Tensor, int]], optional): Per node type,
            ``(index [2, E], num_values)``: row 0 node ids, row 1 attribute-value ids.
        fusion (str, optional): ``"sum"``, ``"concat"`` or ``"gate"``. (default: ``"sum"``)
        id_dropout (float, optional): Fraction of nodes whose ID vector is zeroed in each
            training forward pass, for types with another source. (default: ``0.0``)

    Example:
        >>> emb = NodeEmbedding({"user": 3, "item": 4}, embedding_dim=8)
        >>> emb("item").shape
        torch.Size([4, 8])
        >>> text = NodeEmbedding({"user": 3, "item": 4}, 8, id_types=["user"],
        ...                      text_dict={"item": torch.randn(4, 16)})
        >>> text.sources("item")
        ['text']
    """

    def __init__(
        self,
        num_nodes_dict: dict[str, int],
        embedding_dim: int,
        init_std: float = 0.1,
        *,
        id_types: Iterable[str] | None = None,
        text_dict: Mapping[str, Tensor] | None = None,
        has_text_dict: Mapping[str, Tensor] | None = None,
        attribute_dict: Mapping[str, tuple[Tensor, int]] | None = None,
        fusion: Fusion = "sum",
        id_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if not num_nodes_dict:
            raise ValueError("num_nodes_dict is empty; expected at least one node type, e.g. {'user': 10}")
        for node_type, num_nodes in num_nodes_dict.items():
            if not isinstance(num_nodes, int) or num_nodes < 0:
                raise ValueError(
                    f"num_nodes_dict[{node_type!r}] = {num_nodes!r}; expected a non-negative int"
                )
        if embedding_dim <= 0:
            raise ValueError(f"embedding_dim = {embedding_dim}; expected a positive int")
        if init_std <= 0:
            raise ValueError(f"init_std = {init_std}; expected a positive float")
        if fusion not in FUSIONS:
            raise ValueError(f"fusion = {fusion!r}; expected one of {FUSIONS}")
        if not 0 <= id_dropout < 1:
            raise ValueError(f"id_dropout = {id_dropout}; expected a fraction in [0, 1)")
        text_dict, attribute_dict = dict(text_dict or {}), dict(attribute_dict or {})
        has_text_dict = dict(has_text_dict or {})
        for name, given in (("text_dict", text_dict), ("has_text_dict", has_text_dict),
                            ("attribute_dict", attribute_dict)):
            unknown = sorted(set(given) - set(num_nodes_dict))
            if unknown:
                raise ValueError(f"{name} has node type {unknown[0]!r}, which num_nodes_dict lacks; "
                                 f"node types: {list(num_nodes_dict)}")
        id_types = set(num_nodes_dict) if id_types is None else set(id_types)

        self.num_nodes_dict = dict(num_nodes_dict)
        self.embedding_dim = embedding_dim
        self.init_std = init_std
        self.fusion = fusion
        self.id_dropout = id_dropout
        self.embeddings = torch.nn.ModuleDict()
        self.text_proj = torch.nn.ModuleDict()
        self.missing_text = torch.nn.ParameterDict()
        self.attributes = torch.nn.ModuleDict()
        self.fuse = torch.nn.ModuleDict()
        self._sources: dict[str, list[str]] = {}
        for node_type, num_nodes in self.num_nodes_dict.items():
            sources = []
            if node_type in id_types:
                self.embeddings[node_type] = torch.nn.Embedding(num_nodes, embedding_dim)
                sources.append("id")
            if node_type in text_dict:
                self._add_text(node_type, text_dict[node_type], has_text_dict.get(node_type))
                sources.append("text")
            if node_type in attribute_dict:
                self._add_attributes(node_type, *attribute_dict[node_type])
                sources.append("attr")
            if not sources:
                raise ValueError(f"node type {node_type!r} has no input: it is not in id_types and has neither "
                                 "text nor attributes")
            if len(sources) > 1 and fusion == "concat":
                self.fuse[node_type] = torch.nn.Linear(len(sources) * embedding_dim, embedding_dim)
            elif len(sources) > 1 and fusion == "gate":
                self.fuse[node_type] = torch.nn.Linear(len(sources) * embedding_dim, len(sources) * embedding_dim)
            self._sources[node_type] = sources
            self.register_buffer(f"untrained_{node_type}", torch.zeros(num_nodes, dtype=torch.bool),
                                 persistent=False)
        self.reset_parameters()

    def _add_text(self, node_type: str, text: Tensor, has_text: Tensor | None) -> None:
        num_nodes = self.num_nodes_dict[node_type]
        if text.dim() != 2 or text.size(0) != num_nodes:
            raise ValueError(f"text_dict[{node_type!r}] has shape {tuple(text.shape)}; expected [{num_nodes}, P]")
        has_text = torch.ones(num_nodes, dtype=torch.bool) if has_text is None else has_text.bool()
        if has_text.shape != (num_nodes,):
            raise ValueError(f"has_text_dict[{node_type!r}] has shape {tuple(has_text.shape)}; "
                             f"expected [{num_nodes}]")
        text = text.detach().float()
        # PLM vectors share a large common direction; centring and unit norm leave what tells nodes apart,
        # at a scale the projection's initialisation can match to the ID embeddings.
        if has_text.any():
            text = text - text[has_text].mean(0, keepdim=True)
        text = torch.nn.functional.normalize(text, dim=-1) * has_text.unsqueeze(-1)
        self.register_buffer(f"text_{node_type}", text, persistent=False)
        self.register_buffer(f"has_text_{node_type}", has_text, persistent=False)
        self.text_proj[node_type] = torch.nn.Linear(text.size(1), self.embedding_dim, bias=False)
        self.missing_text[node_type] = torch.nn.Parameter(torch.empty(self.embedding_dim))

    def _add_attributes(self, node_type: str, index: Tensor, num_values: int) -> None:
        num_nodes = self.num_nodes_dict[node_type]
        if index.dim() != 2 or index.size(0) != 2 or index.dtype != torch.long:
            raise ValueError(f"attribute_dict[{node_type!r}] index is {index.dtype} {tuple(index.shape)}; "
                             "expected a LongTensor [2, E] (node ids, value ids)")
        if index.numel() and (int(index[0].max()) >= num_nodes or int(index[1].max()) >= num_values
                              or int(index.min()) < 0):
            raise ValueError(f"attribute_dict[{node_type!r}] holds ids outside [0, {num_nodes}) x [0, {num_values})")
        order = torch.argsort(index[0] * max(num_values, 1) + index[1])
        nodes, values = index[0, order], index[1, order]
        offsets = torch.zeros(num_nodes, dtype=torch.long)
        offsets[1:] = torch.cumsum(torch.bincount(nodes, minlength=num_nodes), 0)[:-1]
        self.register_buffer(f"attr_values_{node_type}", values, persistent=False)
        self.register_buffer(f"attr_offsets_{node_type}", offsets, persistent=False)
        self.attributes[node_type] = torch.nn.EmbeddingBag(max(num_values, 1), self.embedding_dim, mode="mean")

    @property
    def node_types(self) -> list[str]:
        """The node types, in the order they were given."""
        return list(self.num_nodes_dict)

    def sources(self, node_type: str) -> list[str]:
        """The sources fused for ``node_type``, among ``"id"``, ``"text"`` and ``"attr"``."""
        return list(self._sources[node_type])

    def reset_parameters(self) -> None:
        r"""Redraws ID and attribute tables and the missing-text vectors from :math:`\mathcal{N}(0, \sigma^2)`.

        The text projection is drawn so that a unit-norm text vector maps to entries of std
        :math:`\sigma` too, like the ID embeddings; a gate starts as the mean of its sources.
        """
        for table in [*self.embeddings.values(), *self.attributes.values()]:
            torch.nn.init.normal_(table.weight, mean=0.0, std=self.init_std)
        for projection in self.text_proj.values():
            torch.nn.init.normal_(projection.weight, mean=0.0, std=self.init_std)
        for vector in self.missing_text.values():
            torch.nn.init.normal_(vector, mean=0.0, std=self.init_std)
        for node_type, layer in self.fuse.items():
            if self.fusion == "gate":
                torch.nn.init.zeros_(layer.weight)
                torch.nn.init.zeros_(layer.bias)
            else:
                layer.reset_parameters()

    def set_untrained(self, node_type: str, mask: Tensor) -> None:
        """Marks nodes (bool ``[N]``) whose ID vectors no training signal reached; they are read as zero.

        Only types with a source besides their ID are affected: for them a never-trained random ID
        vector is noise on top of what text or attributes say (a cold-start item). An ID-only type
        keeps its vectors, as there is nothing else to score such a node by.
        """
        buffer = getattr(self, f"untrained_{node_type}")
        buffer.copy_(mask.to(buffer.device).bool() & (len(self._sources[node_type]) > 1))

    def forward(self, node_type: str | None = None) -> Tensor | dict[str, Tensor]:
        """Returns the fused input vectors of one node type, or of all of them.

        Args:
            node_type (str, optional): The node type to return. If ``None``,
                all types are returned as a dict.

        Returns:
            ``[num_nodes, D]`` for ``node_type``, or ``x_dict`` mapping every node type to its vectors.
        """
        if node_type is None:
            return {name: self._fused(name) for name in self.node_types}
        if node_type not in self.num_nodes_dict:
            raise KeyError(
                f"NodeEmbedding has no node type {node_type!r}; known types: {self.node_types}"
            )
        return self._fused(node_type)

    def gather(self, index_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """The fused input vectors of the given nodes only: ``{t: [len(index_dict[t]), D]}``.

        Equal to ``self()[t][index]`` row for row, but costs what the rows cost, not the whole
        table: the inputs of a neighbour-sampled subgraph (``index_dict``: its ``n_id``). Only the
        gathered rows get a gradient.

        Args:
            index_dict (dict[str, Tensor]): ``[n_t]`` node ids per node type (repeats allowed).
        """
        out = {}
        for node_type, index in index_dict.items():
            if node_type not in self.num_nodes_dict:
                raise KeyError(f"NodeEmbedding has no node type {node_type!r}; known types: {self.node_types}")
            index = torch.as_tensor(index, device=self._device_of(node_type))
            if index.dim() != 1 or index.dtype != torch.long:
                raise ValueError(f"index_dict[{node_type!r}] is {index.dtype} {list(index.shape)}; "
                                 "expected a [n] LongTensor of node ids")
            out[node_type] = self._fused(node_type, index)
        return out

    def _device_of(self, node_type: str) -> torch.device:
        """Where ``node_type``'s inputs live."""
        return getattr(self, f"untrained_{node_type}").device

    def _fused(self, node_type: str, index: Tensor | None = None) -> Tensor:
        parts = [self._source(node_type, source, index) for source in self._sources[node_type]]
        if len(parts) == 1:
            return parts[0]
        if self.fusion == "sum":
            return torch.stack(parts).sum(0)
        joined = torch.cat(parts, dim=-1)  # [N, S*D]
        if self.fusion == "concat":
            return self.fuse[node_type](joined)
        gates = self.fuse[node_type](joined).view(-1, len(parts), self.embedding_dim).softmax(dim=1)  # [N, S, D]
        return (gates * torch.stack(parts, dim=1)).sum(1)

    def _source(self, node_type: str, source: str, index: Tensor | None = None) -> Tensor:
        """One source's ``[N, D]`` vectors, or ``[n, D]`` of the nodes ``index``."""
        if source == "id":
            table = self.embeddings[node_type]
            weight = table.weight if index is None else table(index)  # [N or n, D]
            if len(self._sources[node_type]) == 1:
                return weight
            keep = ~getattr(self, f"untrained_{node_type}")
            keep = keep if index is None else keep[index]
            if self.training and self.id_dropout > 0:
                keep = keep & (torch.rand(keep.shape, device=keep.device) >= self.id_dropout)
            return weight * keep.unsqueeze(-1).to(weight.dtype)
        if source == "text":
            text, has_text = getattr(self, f"text_{node_type}"), getattr(self, f"has_text_{node_type}")
            if index is not None:
                text, has_text = text[index], has_text[index]
            projected = self.text_proj[node_type](text)  # [N or n, D]
            return torch.where(has_text.unsqueeze(-1), projected, self.missing_text[node_type])
        values, offsets = getattr(self, f"attr_values_{node_type}"), getattr(self, f"attr_offsets_{node_type}")
        if index is not None:
            values, offsets = _bags_of(values, offsets, index)
        return self.attributes[node_type](values, offsets)

    def __repr__(self) -> str:
        sizes = ", ".join(f"{name}={num}" for name, num in self.num_nodes_dict.items())
        mixed = {name: "+".join(sources) for name, sources in self._sources.items() if sources != ["id"]}
        extra = f", sources={mixed}, fusion={self.fusion}" if mixed else ""
        return f"{self.__class__.__name__}({sizes}, embedding_dim={self.embedding_dim}{extra})"


def _bags_of(values: Tensor, offsets: Tensor, index: Tensor) -> tuple[Tensor, Tensor]:
    """The ``(values, offsets)`` of an ``EmbeddingBag`` input holding only the bags ``index`` ``[n]``, in that order."""
    ends = torch.cat([offsets[1:], offsets.new_tensor([values.numel()])])
    starts, lengths = offsets[index], (ends - offsets)[index]  # [n]
    new_offsets = torch.cumsum(lengths, 0) - lengths  # [n]
    within = torch.arange(int(lengths.sum()), device=values.device) - new_offsets.repeat_interleave(lengths)
    return values[starts.repeat_interleave(lengths) + within], new_offsets
