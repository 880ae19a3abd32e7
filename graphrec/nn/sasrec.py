r"""SASRec: next-item prediction with causal self-attention over a user's item sequence.

From `"Self-Attentive Sequential Recommendation" <https://arxiv.org/abs/1808.09781>`_
(Kang & McAuley, ICDM 2018).

Sequences are left-padded to a fixed width with the id ``num_items`` (most recent item last), so
the hidden state at the last position represents the user. Positions are counted back from that
last column: the most recent item always gets the last positional embedding, whatever the width.
With pad keys masked out of the attention, a sequence's hidden states therefore do not depend on
how much padding precedes it, and a batch may drop its leading all-pad columns.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn


def check_sequences(seqs: Tensor, num_items: int, max_length: int, name: str = "seqs") -> None:
    """Raises ``ValueError`` unless ``seqs`` is a left-padded ``[B, L]`` LongTensor of item ids.

    Ids lie in ``0..num_items`` (``num_items`` is the pad id), ``1 <= L <= max_length``, and no pad
    follows a real item in a row (a right-padded row would represent the user by a pad).
    """
    if not isinstance(seqs, Tensor) or seqs.dim() != 2:
        shape = tuple(seqs.shape) if isinstance(seqs, Tensor) else type(seqs).__name__
        raise ValueError(f"{name} has shape {shape}; expected [B, L] (one left-padded sequence per row)")
    if seqs.dtype != torch.long:
        raise ValueError(f"{name} has dtype {seqs.dtype}; expected torch.long")
    if not 1 <= seqs.size(1) <= max_length:
        raise ValueError(f"{name} has length {seqs.size(1)}; expected 1..{max_length} (max_length)")
    if seqs.numel() == 0:
        return
    is_pad = seqs == num_items
    pad_after_item = is_pad[:, 1:] & ~is_pad[:, :-1]  # [B, L-1]
    # One host sync for both checks; the messages are worked out only when one fails.
    out_of_range, right_padded = torch.stack([((seqs < 0) | (seqs > num_items)).any(), pad_after_item.any()]).tolist()
    if out_of_range:
        low, high = int(seqs.min()), int(seqs.max())
        raise ValueError(f"{name} holds ids in [{low}, {high}]; expected item ids in [0, {num_items - 1}] "
                         f"or the pad id {num_items}")
    if right_padded:
        row = int(pad_after_item.any(1).nonzero()[0])
        raise ValueError(f"{name}[{row}] has a pad id ({num_items}) after an item; sequences must be left-padded "
                         f"(most recent item last), e.g. by pad_sequences")


class SASRec(nn.Module):
    r"""SASRec sequential recommender (`Kang & McAuley, ICDM 2018 <https://arxiv.org/abs/1808.09781>`_).

    The input at position :math:`t` is the item embedding plus a learned positional embedding,
    followed by :math:`N` pre-LayerNorm causal self-attention blocks and a final LayerNorm:

    .. math::
        \mathbf{h}^{(0)}_t = \mathbf{M}_{s_t} + \mathbf{P}_t, \qquad
        \mathbf{h}^{(n)} = \mathrm{Block}(\mathbf{h}^{(n-1)}), \qquad
        r_{t,i} = \mathrm{LN}(\mathbf{h}^{(N)}_t)^\top \mathbf{M}_i,

    where position :math:`t` attends to positions :math:`\le t` holding real items. Each block is
    multi-head attention and the paper's point-wise feed-forward network
    :math:`\mathrm{ReLU}(\mathbf{x}\mathbf{W}_1 + \mathbf{b}_1)\mathbf{W}_2 + \mathbf{b}_2` with
    :math:`D \times D` weights, each wrapped as :math:`\mathbf{x} + \mathrm{Dropout}(f(\mathrm{LN}(\mathbf{x})))`.
    The output layer is the item table :math:`\mathbf{M}` itself (shared item embedding), and the
    loss is the cross-entropy of the next item over all items rather than the paper's one sampled
    negative, which ranks markedly better (Klenitskiy & Vasilev, RecSys 2023,
    https://arxiv.org/abs/2309.07602).

    Args:
        num_items (int): Number of items :math:`I`; the id :math:`I` pads sequences.
        embedding_dim (int, optional): Hidden size :math:`D`. (default: ``64``)
        num_layers (int, optional): Self-attention blocks :math:`N`. (default: ``2``)
        num_heads (int, optional): Attention heads; must divide :math:`D`. (default: ``1``)
        max_length (int, optional): Longest input sequence (number of positional embeddings).
            (default: ``50``)
        dropout (float, optional): Dropout on the inputs, attention weights and sub-layer outputs.
            (default: ``0.2``)
        init_std (float, optional): Std of the normal initialisation of embeddings and linear
            weights. (default: ``0.02``)

    Example:
        >>> model = SASRec(num_items=5, embedding_dim=8, max_length=4)
        >>> seqs = pad_sequences([[0, 1, 2], [3]], max_length=4, pad=model.pad)
        >>> seqs
        tensor([[5, 0, 1, 2],
                [5, 5, 5, 3]])
        >>> model.score_all(seqs).shape
        torch.Size([2, 5])
    """

    trainable = True

    def __init__(self, num_items: int, embedding_dim: int = 64, num_layers: int = 2, num_heads: int = 1,
                 max_length: int = 50, dropout: float = 0.2, init_std: float = 0.02) -> None:
        super().__init__()
        for arg, value in (("num_items", num_items), ("embedding_dim", embedding_dim), ("num_layers", num_layers),
                           ("num_heads", num_heads), ("max_length", max_length)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{arg} = {value!r}; expected a positive int")
        if embedding_dim % num_heads:
            raise ValueError(f"embedding_dim = {embedding_dim} is not divisible by num_heads = {num_heads}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout = {dropout}; expected a probability in [0, 1)")
        self.num_items = num_items
        self.pad = num_items
        self.embedding_dim = embedding_dim
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.max_length = max_length
        self.init_std = init_std
        self.item_embedding = nn.Embedding(num_items + 1, embedding_dim, padding_idx=self.pad)
        self.position_embedding = nn.Embedding(max_length, embedding_dim)
        self.input_dropout = nn.Dropout(dropout)
        block = nn.TransformerEncoderLayer(embedding_dim, num_heads, dim_feedforward=embedding_dim, dropout=dropout,
                                           activation="relu", batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(block, num_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(embedding_dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Redraws embeddings and linear weights from :math:`\\mathcal{N}(0, \\mathrm{init\\_std}^2)`.

        Biases start at zero and LayerNorms at the identity; the pad row is zero.
        """
        with torch.no_grad():
            for module in self.modules():
                if isinstance(module, (nn.Embedding, nn.Linear)):
                    nn.init.normal_(module.weight, std=self.init_std)
                    if getattr(module, "bias", None) is not None:
                        nn.init.zeros_(module.bias)
                elif isinstance(module, nn.MultiheadAttention):  # the q, k, v projections are one parameter
                    nn.init.normal_(module.in_proj_weight, std=self.init_std)
                    nn.init.zeros_(module.in_proj_bias)
                elif isinstance(module, nn.LayerNorm):
                    module.reset_parameters()
            self.item_embedding.weight[self.pad].zero_()

    def set_item_embeddings(self, table: Tensor, freeze: bool = False) -> None:
        """Copies an initial item table ``[num_items, D]`` in (e.g. text embeddings of a PLM).

        Args:
            table (Tensor): One row per item; the pad row stays zero.
            freeze (bool, optional): Keep the table fixed in training (the output layer then
                scores against the given vectors). ``False`` makes it trainable again.
                (default: ``False``)
        """
        expected = (self.num_items, self.embedding_dim)
        if not isinstance(table, Tensor) or tuple(table.shape) != expected:
            found = tuple(table.shape) if isinstance(table, Tensor) else type(table).__name__
            raise ValueError(f"item embedding table has shape {found}; expected {expected} "
                             f"(num_items, embedding_dim)")
        weight = self.item_embedding.weight
        with torch.no_grad():
            weight[: self.num_items].copy_(table)
            weight[self.pad].zero_()
        weight.requires_grad_(not freeze)

    def forward(self, seqs: Tensor) -> Tensor:
        """``[B, L]`` left-padded item ids -> ``[B, L, D]`` hidden states; position ``t`` sees items ``<= t``.

        Hidden states at pad positions are defined (finite) but carry no information.
        """
        check_sequences(seqs, self.num_items, self.max_length)
        length = seqs.size(1)
        positions = torch.arange(self.max_length - length, self.max_length, device=seqs.device)  # [L], last = P-1
        hidden = self.input_dropout(self.item_embedding(seqs) + self.position_embedding(positions))  # [B, L, D]
        hidden = self.blocks(hidden, mask=self._attention_mask(seqs))
        return self.norm(hidden)

    def _attention_mask(self, seqs: Tensor) -> Tensor:
        """``[B * heads, L, L]`` bool, True where query ``t`` may not attend to key ``s``: future or pad keys."""
        length = seqs.size(1)
        future = torch.ones(length, length, dtype=torch.bool, device=seqs.device).triu(1)  # [L, L]
        blocked = future | (seqs == self.pad).unsqueeze(1)  # [B, L, L]
        # A pad query sees no real key before it; letting every position see itself keeps its
        # softmax defined (all-masked rows give NaN, which would leak into later layers' values).
        blocked &= ~torch.eye(length, dtype=torch.bool, device=seqs.device)
        return blocked.repeat_interleave(self.num_heads, dim=0)

    def item_vectors(self) -> Tensor:
        """The item table without the pad row, ``[num_items, D]``: the tied output layer."""
        return self.item_embedding.weight[: self.num_items]

    def loss(self, seqs: Tensor, targets: Tensor) -> Tensor:
        """Mean next-item cross-entropy over all items at every position with a real input and target.

        A sequence's first item follows a pad, that is nothing: no history predicts it, so it is
        not a target (as in the original SASRec code, whose targets start at the second item).

        Args:
            seqs (Tensor): ``[B, L]`` inputs, e.g. ``sequence[:, :-1]``.
            targets (Tensor): ``[B, L]`` the item following each input position, e.g. ``sequence[:, 1:]``.
        """
        if not isinstance(targets, Tensor) or targets.shape != seqs.shape or targets.dtype != torch.long:
            found = f"{targets.dtype} {tuple(targets.shape)}" if isinstance(targets, Tensor) else type(targets).__name__
            raise ValueError(f"targets is {found}; expected a LongTensor shaped like seqs {tuple(seqs.shape)}")
        hidden = self(seqs)  # [B, L, D]
        keep = (targets != self.pad) & (seqs != self.pad)  # [B, L]
        logits = hidden[keep] @ self.item_vectors().T  # [n, I]
        if logits.size(0) == 0:
            raise ValueError("targets holds only pad ids; there is no next item to predict")
        return F.cross_entropy(logits, targets[keep])

    def user_vectors(self, seqs: Tensor) -> Tensor:
        """``[B, L]`` left-padded histories -> ``[B, D]`` hidden states at the last position."""
        return self(seqs)[:, -1]

    def score_all(self, seqs: Tensor) -> Tensor:
        """``[B, L]`` left-padded histories -> ``[B, num_items]`` scores of every item as the next one."""
        return self.user_vectors(seqs) @ self.item_vectors().T

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}(num_items={self.num_items}, embedding_dim={self.embedding_dim}, "
                f"num_layers={self.num_layers}, num_heads={self.num_heads}, max_length={self.max_length})")


def pad_flat_sequences(flat_items: np.ndarray | Tensor, offsets: np.ndarray | Tensor, max_length: int,
                       pad: int) -> Tensor:
    """Left-pads sequences stored flat (CSR style), keeping the ``max_length`` most recent items of each.

    Args:
        flat_items: ``[T]`` every sequence's items, oldest first, one sequence after another.
        offsets: ``[N+1]`` sequence ``r`` is ``flat_items[offsets[r]:offsets[r+1]]``.
        max_length: Width of the result.
        pad: The pad id (``SASRec.pad``, i.e. ``num_items``).

    Returns:
        ``[N, max_length]`` LongTensor; each row ends with its sequence's last item.
    """
    if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1:
        raise ValueError(f"max_length = {max_length!r}; expected a positive int")
    flat_items = torch.as_tensor(flat_items, dtype=torch.long).flatten()
    offsets = torch.as_tensor(offsets, dtype=torch.long).flatten()
    if offsets.numel() == 0 or int(offsets[0]) != 0 or int(offsets[-1]) != flat_items.numel():
        raise ValueError(f"offsets must start at 0 and end at len(flat_items) = {flat_items.numel()}; got "
                         f"{offsets[:1].tolist()} ... {offsets[-1:].tolist()}")
    lengths = offsets.diff()  # [N]
    if bool((lengths < 0).any()):
        raise ValueError("offsets must be non-decreasing")
    kept = lengths.clamp(max=max_length)  # [N]
    rows = torch.repeat_interleave(torch.arange(lengths.numel()), kept)  # [K] row of every kept item
    starts = torch.cumsum(kept, 0) - kept  # [N] first kept item of each row, in the kept order
    within = torch.arange(rows.numel()) - starts[rows]  # [K] 0 .. kept-1 inside its row
    out = torch.full((lengths.numel(), max_length), pad, dtype=torch.long)
    out[rows, max_length - kept[rows] + within] = flat_items[offsets[rows + 1] - kept[rows] + within]
    return out


def pad_sequences(sequences: Sequence[Sequence[int]] | Sequence[Tensor], max_length: int, pad: int) -> Tensor:
    """Left-pads item sequences (oldest first) to ``[N, max_length]``, keeping the most recent items.

    Example:
        >>> pad_sequences([[1, 2, 3, 4], [7]], max_length=3, pad=9)
        tensor([[2, 3, 4],
                [9, 9, 7]])
    """
    if all(isinstance(seq, Tensor) for seq in sequences):
        lengths = torch.tensor([seq.numel() for seq in sequences], dtype=torch.long)
        flat = torch.cat([seq.flatten() for seq in sequences]) if sequences else torch.zeros(0, dtype=torch.long)
    else:
        lengths = torch.tensor([len(seq) for seq in sequences], dtype=torch.long)
        flat = torch.as_tensor(np.fromiter((item for seq in sequences for item in seq), dtype=np.int64,
                                           count=int(lengths.sum())))
    offsets = torch.cat([lengths.new_zeros(1), lengths.cumsum(0)])
    return pad_flat_sequences(flat, offsets, max_length, pad)


def sequences_from_interactions(users: np.ndarray, items: np.ndarray, order: np.ndarray,
                                num_users: int) -> tuple[np.ndarray, np.ndarray]:
    """Groups interaction rows into one item sequence per user, sorted by ``order`` (e.g. timestamps).

    The sort is stable, so interactions with equal ``order`` keep their row order.

    Args:
        users: ``[E]`` user ids in ``0..num_users-1``.
        items: ``[E]`` item ids.
        order: ``[E]`` sort key within a user.
        num_users: Number of users; users without rows get empty sequences.

    Returns:
        ``(flat_items [E], offsets [num_users+1])`` int64: user ``u``'s items, oldest first, are
        ``flat_items[offsets[u]:offsets[u+1]]`` (input of :func:`pad_flat_sequences`).
    """
    users, items, order = (np.asarray(a) for a in (users, items, order))
    if not (users.ndim == items.ndim == order.ndim == 1 and users.shape == items.shape == order.shape):
        raise ValueError(f"users, items and order must be 1-D arrays of one length; got shapes {users.shape}, "
                         f"{items.shape}, {order.shape}")
    if users.size and (users.min() < 0 or users.max() >= num_users):
        raise ValueError(f"users holds ids in [{users.min()}, {users.max()}]; expected 0..{num_users - 1} "
                         f"(num_users={num_users})")
    by_order = np.argsort(order, kind="stable")
    rows = by_order[np.argsort(users[by_order], kind="stable")]  # by user, then order, then row
    offsets = np.zeros(num_users + 1, dtype=np.int64)
    np.cumsum(np.bincount(users, minlength=num_users), out=offsets[1:])
    return items[rows].astype(np.int64), offsets
