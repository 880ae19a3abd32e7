"""A causal transformer over knowledge-graph paths, with type-aware tokens and outputs.

A path ``user -r1-> n1 -r2-> n2 ... -rH-> nH`` is the token sequence
``[user, r1, n1, r2, n2, ..., rH, nH]``: relation tokens at odd positions, node tokens at even
ones (PLM-Rec, Geng et al., WWW 2022; PEARLM, Balloccu et al., 2023). Every node of a
:class:`~graphrec.graph.paths.PathGraph` is its own token (global ids), so a user token is a
learned user embedding, as in PEARLM.

The output is type-aware: a relation position is scored against the relation tokens only, and a
node position against the nodes of the type its relation leads to (an ``-starred_by_actor->``
hop is scored over entities, an ``-interacts->`` hop over items). The softmax is thus over
thousands of nodes instead of the whole vocabulary, and training never spends capacity on
predicting a relation where a node must come. Which *edge* a hop takes is not restricted here:
that is the job of constrained decoding (:mod:`graphrec.explain.decode`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

PAD = 0


class PathTokenizer:
    """Token ids of relations and global node ids: ``0`` pad, ``1..R`` relations, then nodes.

    Args:
        num_relations: relations of the path graph.
        offsets: ``[T+1]`` start of each node type in the global node space.
    """

    def __init__(self, num_relations: int, offsets: list[int] | Tensor) -> None:
        self.num_relations = int(num_relations)
        self.offsets = [int(o) for o in offsets]
        self.node_start = 1 + self.num_relations

    @property
    def num_nodes(self) -> int:
        return self.offsets[-1]

    @property
    def vocab_size(self) -> int:
        return self.node_start + self.num_nodes

    def encode(self, nodes: Tensor, relations: Tensor) -> Tensor:
        """``[P, H+1]`` global node ids and ``[P, H]`` relation ids -> ``[P, 2H+1]`` tokens."""
        tokens = torch.empty(nodes.size(0), 2 * nodes.size(1) - 1, dtype=torch.long, device=nodes.device)
        tokens[:, 0::2] = nodes + self.node_start
        tokens[:, 1::2] = relations + 1
        return tokens

    def decode(self, tokens: Tensor) -> tuple[Tensor, Tensor]:
        """Inverse of :meth:`encode`."""
        return tokens[:, 0::2] - self.node_start, tokens[:, 1::2] - 1


class PathTransformer(nn.Module):
    """A small GPT-style model over path tokens (pre-norm, learned positions, tied outputs).

    Args:
        tokenizer: defines the vocabulary and the node-type ranges.
        relation_target_type: ``[R]`` node-type position each relation leads to.
        max_hops: longest path the positions cover.
        dim: hidden size.
        num_layers: transformer blocks.
        num_heads: attention heads.
        dropout: dropout in attention and feed-forward layers.

    Example:
        >>> tok = PathTokenizer(num_relations=2, offsets=[0, 3, 5])
        >>> model = PathTransformer(tok, torch.tensor([1, 0]), max_hops=2, dim=16, num_layers=1, num_heads=2)
        >>> tokens = tok.encode(torch.tensor([[0, 3, 1]]), torch.tensor([[0, 1]]))
        >>> model(tokens).shape
        torch.Size([1, 5, 16])
    """

    def __init__(self, tokenizer: PathTokenizer, relation_target_type: Tensor, max_hops: int = 3, dim: int = 128,
                 num_layers: int = 2, num_heads: int = 4, dropout: float = 0.1) -> None:
        super().__init__()
        self.tokenizer = tokenizer
        self.max_hops = max_hops
        self.register_buffer("relation_target_type", torch.as_tensor(relation_target_type, dtype=torch.long),
                             persistent=False)
        self.register_buffer("offsets", torch.tensor(tokenizer.offsets, dtype=torch.long), persistent=False)
        self.token = nn.Embedding(tokenizer.vocab_size, dim, padding_idx=PAD)
        self.position = nn.Embedding(2 * max_hops + 1, dim)
        layer = nn.TransformerEncoderLayer(dim, num_heads, 4 * dim, dropout, activation="gelu", batch_first=True,
                                           norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.output_bias = nn.Parameter(torch.zeros(tokenizer.vocab_size))
        nn.init.normal_(self.token.weight, std=0.02)
        nn.init.normal_(self.position.weight, std=0.02)

    def forward(self, tokens: Tensor) -> Tensor:
        """``[B, L]`` tokens -> ``[B, L, D]`` hidden states; position ``j`` sees tokens ``0..j``."""
        length = tokens.size(1)
        positions = torch.arange(length, device=tokens.device)
        hidden = self.token(tokens) + self.position(positions)  # [B, L, D]
        causal = nn.Transformer.generate_square_subsequent_mask(length, device=tokens.device, dtype=hidden.dtype)
        hidden = self.blocks(hidden, mask=causal, is_causal=True, src_key_padding_mask=None)
        return self.norm(hidden)

    # ------------------------------------------------------------------ typed outputs
    def relation_logits(self, hidden: Tensor) -> Tensor:
        """``[..., D]`` -> ``[..., R]`` scores of the next relation."""
        lo, hi = 1, self.tokenizer.node_start
        return hidden @ self.token.weight[lo:hi].T + self.output_bias[lo:hi]

    def node_logits(self, hidden: Tensor, node_type: int) -> Tensor:
        """``[..., D]`` -> ``[..., N_t]`` scores of the next node among the nodes of type ``node_type``."""
        lo = self.tokenizer.node_start + self.tokenizer.offsets[node_type]
        hi = self.tokenizer.node_start + self.tokenizer.offsets[node_type + 1]
        return hidden @ self.token.weight[lo:hi].T + self.output_bias[lo:hi]

    def loss(self, tokens: Tensor) -> Tensor:
        """Mean next-token cross-entropy over the non-pad tokens after the user (``[B, L]`` tokens)."""
        hidden = self(tokens[:, :-1])  # [B, L-1, D]
        target = tokens[:, 1:]  # [B, L-1]
        total = hidden.new_zeros(())
        count = 0
        rel_pos = torch.arange(0, target.size(1), 2, device=tokens.device)  # targets that are relations
        node_pos = torch.arange(1, target.size(1), 2, device=tokens.device)  # targets that are nodes
        rel_target = target[:, rel_pos]  # [B, H]
        keep = rel_target != PAD
        if keep.any():
            logits = self.relation_logits(hidden[:, rel_pos][keep])  # [n, R]
            total = total + F.cross_entropy(logits, rel_target[keep] - 1, reduction="sum")
            count += int(keep.sum())
        node_target = target[:, node_pos] - self.tokenizer.node_start  # [B, H] global ids
        node_type = self.relation_target_type[(rel_target - 1).clamp(min=0)]  # [B, H]
        node_hidden = hidden[:, node_pos]  # [B, H, D]
        for type_pos in torch.unique(node_type[keep]).tolist():
            sel = keep & (node_type == type_pos)
            logits = self.node_logits(node_hidden[sel], type_pos)  # [n, N_t]
            total = total + F.cross_entropy(logits, node_target[sel] - self.offsets[type_pos], reduction="sum")
            count += int(sel.sum())
        return total / max(count, 1)
