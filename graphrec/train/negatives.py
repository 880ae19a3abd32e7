"""Uniform negative sampling for implicit-feedback training.

Negatives are items a user has not interacted with, drawn uniformly, as in BPR
(`Rendle et al., UAI 2009 <https://arxiv.org/abs/1205.2618>`_) and LightGCN
(`He et al., SIGIR 2020 <https://arxiv.org/abs/2002.02126>`_).
"""

from __future__ import annotations

import torch
from torch import Tensor

from graphrec.errors import CheckpointError, DataError
from graphrec.nn.lightgcn import check_interaction_index


class NegativeSampler:
    r"""Draws, for each user of a batch, items the user has not interacted with.

    Rejection sampling, vectorised: every negative is drawn uniformly from
    :math:`\{0..I-1\}`; a draw :math:`(u, j)` is a collision when its key
    :math:`uI + j` is among the sorted keys of the positives (found with
    ``torch.searchsorted``), and only collisions are redrawn. Each accepted item
    is uniform over the items :math:`u` has not interacted with. After
    ``max_rounds`` rounds the few draws still colliding (users who have
    interacted with almost every item) are drawn directly from their complement.

    Sampling runs on the CPU with the sampler's own seeded ``torch.Generator``;
    :meth:`state_dict` / :meth:`load_state_dict` carry its state for resuming.

    Args:
        edge_index (Tensor): ``[2, E]`` positive interactions (row 0 users, row 1 items).
        num_users (int): Number of users :math:`U`.
        num_items (int): Number of items :math:`I`.
        seed (int, optional): Seed of the generator. (default: ``0``)
        max_rounds (int, optional): Rejection rounds before the direct draw. (default: ``100``)
    """

    def __init__(
        self,
        edge_index: Tensor,
        num_users: int,
        num_items: int,
        seed: int = 0,
        max_rounds: int = 100,
    ) -> None:
        check_interaction_index(edge_index, num_users, num_items)
        self.num_users = num_users
        self.num_items = num_items
        self.seed = seed
        self.max_rounds = max_rounds
        edge_index = edge_index.cpu()
        self.positive_keys = torch.unique(edge_index[0] * num_items + edge_index[1])  # sorted [P]
        self.user_degree = torch.bincount(self.positive_keys // num_items, minlength=num_users)  # [U]
        self.generator = torch.Generator().manual_seed(seed)

    def _is_positive(self, keys: Tensor) -> Tensor:
        """Whether each key ``u * I + i`` is a positive interaction."""
        if self.positive_keys.numel() == 0:
            return torch.zeros_like(keys, dtype=torch.bool)
        position = torch.searchsorted(self.positive_keys, keys).clamp_(max=self.positive_keys.numel() - 1)
        return self.positive_keys[position] == keys

    def sample(self, users: Tensor, num_negatives: int = 1) -> Tensor:
        """Draws ``num_negatives`` non-interacted items for every user in ``users``.

        Args:
            users (Tensor): User ids ``[B]`` (LongTensor; repeats allowed).
            num_negatives (int, optional): Negatives per user ``N``. (default: ``1``)

        Returns:
            Item ids ``[B, N]`` on ``users.device``.

        Raises:
            DataError: If a user has interacted with every item, so has no negative.
        """
        if users.dim() != 1 or users.dtype != torch.long:
            raise ValueError(f"users has shape {tuple(users.shape)} and dtype {users.dtype}; expected a [B] LongTensor")
        if num_negatives < 1:
            raise ValueError(f"num_negatives = {num_negatives}; expected a positive int")
        device, users = users.device, users.cpu()
        if users.numel() and (int(users.min()) < 0 or int(users.max()) >= self.num_users):
            raise ValueError(
                f"users holds ids in [{int(users.min())}, {int(users.max())}]; "
                f"expected ids in [0, {self.num_users - 1}]"
            )
        saturated = users[self.user_degree[users] >= self.num_items].unique()
        if saturated.numel():
            raise DataError(
                f"cannot sample negatives: user(s) {saturated[:10].tolist()} interacted with all "
                f"{self.num_items} items; drop such users from training or add items"
            )

        items = torch.randint(0, self.num_items, (users.numel(), num_negatives), generator=self.generator)  # [B, N]
        base = users * self.num_items  # [B]
        rows, cols = self._is_positive(base.unsqueeze(1) + items).nonzero(as_tuple=True)
        for _ in range(self.max_rounds):
            if rows.numel() == 0:
                break
            redraw = torch.randint(0, self.num_items, (rows.numel(),), generator=self.generator)
            items[rows, cols] = redraw
            collide = self._is_positive(base[rows] + redraw)
            rows, cols = rows[collide], cols[collide]
        if rows.numel():
            self._draw_from_complement(users, items, rows, cols)
        return items.to(device)

    def _draw_from_complement(self, users: Tensor, items: Tensor, rows: Tensor, cols: Tensor) -> None:
        """Fills ``items[rows, cols]`` exactly from each user's non-interacted items."""
        for user in users[rows].unique().tolist():
            start = int(torch.searchsorted(self.positive_keys, torch.tensor(user * self.num_items)))
            end = int(torch.searchsorted(self.positive_keys, torch.tensor((user + 1) * self.num_items)))
            allowed = torch.ones(self.num_items, dtype=torch.bool)
            allowed[self.positive_keys[start:end] - user * self.num_items] = False
            candidates = allowed.nonzero().squeeze(1)  # [C]
            slots = users[rows] == user
            choice = torch.randint(0, candidates.numel(), (int(slots.sum()),), generator=self.generator)
            items[rows[slots], cols[slots]] = candidates[choice]

    def state_dict(self) -> dict[str, object]:
        """The seed and generator state, for resuming with the same draws."""
        return {"seed": self.seed, "generator_state": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, object]) -> None:
        """Restores the generator from :meth:`state_dict`'s output."""
        if "generator_state" not in state:
            raise CheckpointError(
                f"NegativeSampler state has keys {sorted(state)}; expected 'generator_state' (from state_dict())"
            )
        self.seed = int(state.get("seed", self.seed))
        self.generator.set_state(state["generator_state"])

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}(num_users={self.num_users}, num_items={self.num_items}, "
            f"num_positives={self.positive_keys.numel()}, seed={self.seed})"
        )
