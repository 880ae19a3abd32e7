"""The trainer's optimiser: Adam, with lazy updates of the embedding tables on sampled batches.

On a neighbour-sampled step only the rows of the batch's subgraph get a gradient, but a dense Adam
still reads and writes every row of every table (weights, both moments) and the backward pass fills a
table-sized gradient with zeros, a cost that grows with the tables, not the batch. With ``sparse_embeddings`` the ID tables of :class:`graphrec.nn.NodeEmbedding` produce sparse
gradients and :class:`torch.optim.SparseAdam` updates the gathered rows only (lazy Adam: a row's
moments decay only in steps that touch it); every other parameter keeps Adam. Two differences from
Adam: rows a step does not touch stay put, where Adam still moves them by their momentum; and
SparseAdam adds epsilon to the square root of the second moment before its bias correction, so
gradients near epsilon (about 1e-8 / sqrt(1 - beta2) = 3e-7 at the first step) move less. With
gradients well above that the first step equals Adam's (tested).

SparseAdam's step is not free: it coalesces and masks the gathered rows with sparse kernels. On the
1M-user synthetic graph (1.26M table rows, about 0.5M gathered a step, 2 CPU threads) it took 0.60 s
against dense Adam's 0.25 s, more than the 0.18 s it saved in the backward pass; it pays when the tables
are much larger than what a step gathers.
"""

from __future__ import annotations

from typing import Any

import torch


class SparseDenseAdam:
    """Adam for dense parameters and SparseAdam for sparse-gradient embedding tables, as one optimiser.

    Args:
        dense: Parameters with dense gradients.
        sparse: Embedding weights whose gradients are sparse (``torch.nn.Embedding(sparse=True)``).
        lr: Learning rate of both.
    """

    def __init__(self, dense: list[torch.nn.Parameter], sparse: list[torch.nn.Parameter], lr: float) -> None:
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        if dense:
            self.optimizers["dense"] = torch.optim.Adam(dense, lr=lr)
        if sparse:
            self.optimizers["sparse"] = torch.optim.SparseAdam(sparse, lr=lr)

    def zero_grad(self, set_to_none: bool = True) -> None:
        for optimizer in self.optimizers.values():
            optimizer.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        for optimizer in self.optimizers.values():
            optimizer.step()

    def state_dict(self) -> dict[str, Any]:
        return {name: optimizer.state_dict() for name, optimizer in self.optimizers.items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not isinstance(state, dict) or set(state) != set(self.optimizers):
            found = sorted(state) if isinstance(state, dict) else type(state).__name__
            raise ValueError(f"optimiser state holds {found}; expected {sorted(self.optimizers)} "
                             "(was the run started with another train.sparse_embeddings?)")
        for name, optimizer in self.optimizers.items():
            optimizer.load_state_dict(state[name])


def make_optimizer(model: torch.nn.Module, lr: float,
                   sparse_embeddings: bool = False) -> torch.optim.Optimizer | SparseDenseAdam:
    """Adam over the trainable parameters of ``model``; with ``sparse_embeddings``, the ID tables of its
    ``embedding`` (a :class:`graphrec.nn.NodeEmbedding`) switch to sparse gradients and SparseAdam."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    if not sparse_embeddings:
        return torch.optim.Adam(trainable, lr=lr)
    tables = [table for table in model.embedding.embeddings.values() if table.weight.requires_grad]
    for table in tables:
        table.sparse = True
    sparse_ids = {id(table.weight) for table in tables}
    return SparseDenseAdam([p for p in trainable if id(p) not in sparse_ids], [t.weight for t in tables], lr)
