"""Train / validation / test splits of an interaction table.

Every split works on NumPy arrays with one entry per interaction row (``users
[N]``, ``items [N]``, ``timestamps [N]``) and returns row indices into that
table, so the caller can cut any column (ratings, timestamps, edge features)
the same way. All splits are vectorised: rows are sorted once by (user, key)
and each row's rank inside its user's group decides its part; there is no
Python loop over users.

Per-user splits keep small users in train first. With ``n`` rows a user gets
``round(n * ratio)`` rows for test and validation, but test gets at least one
row once ``n >= 2`` and validation at least one once ``n >= 3``, and train always
keeps at least one: 1 row -> train; 2 rows -> train + test; 3 rows -> train +
valid + test. This is the protocol of the leave-one-out evaluation of NCF
(He et al., "Neural Collaborative Filtering", WWW 2017) generalised to ratios.

:func:`sparsify_users` turns a split's users into simulated cold-start users by
cutting their training histories; :mod:`graphrec.data.domains` holds the
cross-domain (source / target) split.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np
import torch

from graphrec.errors import ConfigError, DataError
from graphrec.utils import suggest

SPLIT_METHODS = ("random", "temporal", "leave_one_out", "cold_user", "cold_item", "given")
PARTS = ("train", "valid", "test")


@dataclass
class Split:
    """Row indices of each part of an interaction table.

    Attributes:
        train: Sorted int64 row indices of the training interactions.
        valid: Sorted int64 row indices of the validation interactions.
        test: Sorted int64 row indices of the test interactions.
        method: Name of the split that made it (``"random"``, ``"temporal"``, ...).
        cold_valid_ids: For cold-start splits, the user (or item) ids whose rows are all in valid.
        cold_test_ids: For cold-start splits, the user (or item) ids whose rows are all in test.
    """

    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray
    method: str
    cold_valid_ids: np.ndarray | None = None
    cold_test_ids: np.ndarray | None = None

    @property
    def num_rows(self) -> int:
        """Number of rows over all three parts."""
        return len(self.train) + len(self.valid) + len(self.test)

    def edge_index(self, users: np.ndarray, items: np.ndarray, part: str) -> torch.Tensor:
        """The ``[2, n]`` user -> item edge index of one part (row 0 users, row 1 items)."""
        if part not in PARTS:
            raise ConfigError(f"split part '{part}' is not one of {list(PARTS)}{suggest(part, PARTS)}")
        rows = getattr(self, part)
        pairs = np.stack([np.asarray(users)[rows], np.asarray(items)[rows]]).astype(np.int64)  # [2, n]
        return torch.from_numpy(pairs)

    def __repr__(self) -> str:
        return (f"Split(method='{self.method}', train={len(self.train)}, "
                f"valid={len(self.valid)}, test={len(self.test)})")


def random_split(users: np.ndarray, ratios: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0,
                 group_by_user: bool = True) -> Split:
    """Shuffle rows and cut them by ``ratios`` (train, valid, test).

    Args:
        users: ``[N]`` user id of each row.
        ratios: Fractions for train, valid and test; non-negative, summing to 1.
        seed: Seed of the shuffle; the same seed gives the same split.
        group_by_user: Cut each user's rows separately (every user with two or
            more rows appears in test), or cut the whole table at once.
    """
    users = _as_ids(users, "users")
    ratios = _check_ratios(ratios)
    random_key = np.random.default_rng(seed).permutation(len(users))
    groups = users if group_by_user else np.zeros_like(users)
    return _cut_sorted_groups(groups, random_key, ratios, "random")


def temporal_split(users: np.ndarray, timestamps: np.ndarray | None,
                   ratios: Sequence[float] = (0.8, 0.1, 0.1)) -> Split:
    """Per user, the oldest rows go to train and the newest to test.

    Rows with equal timestamps keep their table order (the earlier row counts as older).

    Raises:
        DataError: When ``timestamps`` is ``None`` or holds NaN.
    """
    users = _as_ids(users, "users")
    ratios = _check_ratios(ratios)
    if timestamps is None:
        raise DataError("temporal split needs a timestamp per interaction, but the table has no "
                        "timestamp column; set interactions.timestamp in the recipe or use 'random'")
    timestamps = _as_timestamps(timestamps, len(users))
    return _cut_sorted_groups(users, timestamps, ratios, "temporal")


def leave_one_out(users: np.ndarray, timestamps: np.ndarray | None = None, seed: int = 0) -> Split:
    """Per user, the last row goes to test, the one before to valid, the rest to train.

    Users with fewer than three rows keep train first: 1 row -> train; 2 rows ->
    train + test. Without timestamps the order inside each user is random
    (seeded by ``seed``) instead of by time. Ties in time keep table order.
    """
    users = _as_ids(users, "users")
    if timestamps is None:
        order_key = np.random.default_rng(seed).permutation(len(users))
    else:
        order_key = _as_timestamps(timestamps, len(users))
    order = np.lexsort((order_key, users))  # stable: ties keep table order
    sizes = _group_sizes(users[order])
    num_test = (sizes >= 2).astype(np.int64)
    num_valid = (sizes >= 3).astype(np.int64)
    return _assign(order, sizes, sizes - num_valid - num_test, num_valid, "leave_one_out")


def cold_start_split(users: np.ndarray, items: np.ndarray, side: str = "user",
                     ratios: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0) -> Split:
    """Hold out whole users (``side="user"``) or items (``side="item"``).

    The distinct ids of that side are shuffled and cut by ``ratios``: every row of
    a validation id goes to valid, every row of a test id to test, so held-out ids
    never appear in train. At least one id stays in train.
    """
    if side not in ("user", "item"):
        raise ConfigError(f"cold-start side '{side}' is not one of ['user', 'item']")
    users = _as_ids(users, "users")
    items = _as_ids(items, "items", len(users))
    ratios = _check_ratios(ratios)
    ids_of_rows = users if side == "user" else items
    distinct_ids = np.unique(ids_of_rows)
    shuffled = np.random.default_rng(seed).permutation(distinct_ids)
    num_train, num_valid, _ = (int(c[0]) for c in _part_sizes(np.array([len(shuffled)]), ratios))
    cold_valid_ids = np.sort(shuffled[num_train:num_train + num_valid])
    cold_test_ids = np.sort(shuffled[num_train + num_valid:])
    in_valid = np.isin(ids_of_rows, cold_valid_ids)
    in_test = np.isin(ids_of_rows, cold_test_ids)
    rows = np.arange(len(users), dtype=np.int64)
    return Split(train=rows[~(in_valid | in_test)], valid=rows[in_valid], test=rows[in_test],
                 method=f"cold_{side}", cold_valid_ids=cold_valid_ids, cold_test_ids=cold_test_ids)


def given_split(codes: np.ndarray | None, length: int) -> Split:
    """The split the data came with: rows coded 0 train, 1 valid, 2 test."""
    if codes is None:
        raise DataError("split method 'given' needs the data's own split: list the train, valid and test files "
                        "under the recipe's interactions.path and label them with interactions.split_by_file")
    codes = np.asarray(codes)
    if codes.shape != (length,) or not np.isin(codes, (0, 1, 2)).all():
        raise DataError(f"given split codes must be {length} values in {{0, 1, 2}}, got shape {codes.shape}")
    return Split(train=np.flatnonzero(codes == 0), valid=np.flatnonzero(codes == 1),
                 test=np.flatnonzero(codes == 2), method="given")


def split_interactions(method: str, users: np.ndarray, items: np.ndarray | None = None,
                       timestamps: np.ndarray | None = None,
                       ratios: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0,
                       group_by_user: bool = True, given: np.ndarray | None = None) -> Split:
    """Split an interaction table by name: one of :data:`SPLIT_METHODS`.

    ``"given"`` keeps the data's own split: ``given`` holds a code per row (0 train, 1 valid, 2 test).

    ``group_by_user`` applies to ``"random"``: cut each user's rows by the ratios, or the whole table.

    ``"leave_one_out"`` ignores ``ratios`` and falls back to a random order inside
    each user when ``timestamps`` is ``None``; ``"temporal"`` needs timestamps.

    Raises:
        ConfigError: Unknown ``method`` or bad ``ratios``.
        DataError: ``"temporal"`` without timestamps, or arrays of different lengths.
    """
    if method not in SPLIT_METHODS:
        raise ConfigError(f"split method '{method}' is not one of {list(SPLIT_METHODS)}"
                          f"{suggest(method, SPLIT_METHODS)}")
    ratios = _check_ratios(ratios)
    users = _as_ids(users, "users")
    if items is not None:
        items = _as_ids(items, "items", len(users))
    if method == "random":
        return random_split(users, ratios, seed, group_by_user=group_by_user)
    if method == "temporal":
        return temporal_split(users, timestamps, ratios)
    if method == "leave_one_out":
        return leave_one_out(users, timestamps, seed)
    if method == "given":
        return given_split(given, len(users))
    if items is None:
        raise DataError(f"split method '{method}' needs the item id of each interaction")
    return cold_start_split(users, items, method.removeprefix("cold_"), ratios, seed)


def sparsify_users(split: Split, users: np.ndarray, fraction: float, max_history: int = 9,
                   seed: int = 0) -> Split:
    """Simulate cold-start users: cut the training history of a random share of the users.

    MovieLens and LastFM have no user with fewer than 10 interactions, so a cold-start
    report needs made-up cold users. ``round(fraction * U_train)`` of the ``U_train`` users
    with training rows are drawn uniformly without replacement; each keeps ``k`` of its
    ``n`` training rows, drawn uniformly (``k`` uniform in ``1..min(n, max_history)``), and
    its other training rows are dropped: they end up in no part, so a dropped row can neither
    leak into evaluation nor count as training. Valid and test rows are untouched, and so is
    every user not drawn. Every row choice depends only on ``seed``.

    Args:
        split: The split to sparsify (any method).
        users: ``[N]`` user id of each row of the table ``split`` indexes.
        fraction: Share of the users with training rows to sparsify, in ``[0, 1]``.
        max_history: The most training rows a sparsified user keeps (at least 1).
        seed: Seed of the user draw, of ``k`` and of the kept rows.

    Returns:
        A :class:`Split` with the same ``valid``, ``test`` and method and a smaller ``train``.

    Raises:
        ConfigError: ``fraction`` outside ``[0, 1]`` or ``max_history < 1``.
        DataError: ``split`` indexes rows beyond ``users``.
    """
    users = _as_ids(users, "users")
    if not 0.0 <= fraction <= 1.0:
        raise ConfigError(f"cold-user fraction must lie in [0, 1] (the share of users to sparsify), got {fraction}")
    if isinstance(max_history, bool) or not isinstance(max_history, (int, np.integer)) or max_history < 1:
        raise ConfigError(f"cold-user max_history must be an integer >= 1 (training rows kept), got {max_history!r}")
    train = np.asarray(split.train, dtype=np.int64)
    if train.size and (train.min() < 0 or train.max() >= len(users)):
        raise DataError(f"split.train holds row {int(train.max())} but the table has {len(users)} rows")
    rng = np.random.default_rng(seed)
    train_users = np.unique(users[train])  # sorted
    num_chosen = int(np.floor(fraction * len(train_users) + 0.5))
    chosen = np.sort(rng.choice(train_users, size=num_chosen, replace=False))
    rows = train[np.isin(users[train], chosen)]
    rows = rows[np.lexsort((rng.random(len(rows)), users[rows]))]  # by user, in random order inside
    sizes = _group_sizes(users[rows])  # [num_chosen], one per chosen user (each has >= 1 row)
    num_kept = rng.integers(1, np.minimum(sizes, max_history) + 1)  # [num_chosen], uniform in 1..min(n, max)
    dropped = rows[_rank_in_group(sizes) >= np.repeat(num_kept, sizes)]
    return replace(split, train=train[~np.isin(train, dropped)])


def _cut_sorted_groups(groups: np.ndarray, key: np.ndarray, ratios: tuple[float, float, float],
                       method: str) -> Split:
    """Sort rows by (group, key, row) and cut each group in order: first train, then valid, then test."""
    order = np.lexsort((key, groups))
    sizes = _group_sizes(groups[order])
    num_train, num_valid, _ = _part_sizes(sizes, ratios)
    return _assign(order, sizes, num_train, num_valid, method)


def _group_sizes(sorted_groups: np.ndarray) -> np.ndarray:
    """``[G]`` sizes of the runs of equal values in a sorted array."""
    if len(sorted_groups) == 0:
        return np.zeros(0, dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, sorted_groups[1:] != sorted_groups[:-1]])
    return np.diff(np.r_[starts, len(sorted_groups)]).astype(np.int64)


def _part_sizes(sizes: np.ndarray, ratios: tuple[float, float, float]) -> tuple[np.ndarray, ...]:
    """Rows per part for groups of ``sizes`` rows: rounded ratios, train kept first (see module doc)."""
    _, valid_ratio, test_ratio = ratios
    num_test = np.floor(sizes * test_ratio + 0.5).astype(np.int64)
    num_valid = np.floor(sizes * valid_ratio + 0.5).astype(np.int64)
    num_test = np.where((sizes >= 2) & (test_ratio > 0), np.maximum(num_test, 1), num_test)
    num_valid = np.where((sizes >= 3) & (valid_ratio > 0), np.maximum(num_valid, 1), num_valid)
    # train keeps at least one row: take the excess from valid first, then from test
    excess = np.maximum(num_test + num_valid - (sizes - 1), 0)
    from_valid = np.minimum(excess, num_valid)
    num_valid = num_valid - from_valid
    num_test = np.maximum(num_test - (excess - from_valid), 0)
    return sizes - num_valid - num_test, num_valid, num_test


def _assign(order: np.ndarray, sizes: np.ndarray, num_train: np.ndarray, num_valid: np.ndarray,
            method: str) -> Split:
    """Give each row of ``order`` its part from its rank inside its group."""
    rank = _rank_in_group(sizes)  # [N]
    train_end = np.repeat(num_train, sizes)
    valid_end = train_end + np.repeat(num_valid, sizes)
    order = order.astype(np.int64)
    return Split(train=np.sort(order[rank < train_end]),
                 valid=np.sort(order[(rank >= train_end) & (rank < valid_end)]),
                 test=np.sort(order[rank >= valid_end]), method=method)


def _rank_in_group(sizes: np.ndarray) -> np.ndarray:
    """``[sum(sizes)]`` position of each row inside its group, for groups of ``sizes`` consecutive rows."""
    starts = np.cumsum(sizes) - sizes
    return np.arange(int(sizes.sum()), dtype=np.int64) - np.repeat(starts, sizes)


def _check_ratios(ratios: Sequence[float]) -> tuple[float, float, float]:
    values = tuple(float(value) for value in ratios)
    if len(values) != 3:
        raise ConfigError(f"split ratios must be three numbers (train, valid, test), got {list(ratios)}")
    if any(not np.isfinite(value) or value < 0 for value in values):
        raise ConfigError(f"split ratios must be non-negative, got {list(values)}")
    if abs(sum(values) - 1.0) > 1e-6:
        raise ConfigError(f"split ratios must sum to 1, got {list(values)} (sum {sum(values):g})")
    return values  # type: ignore[return-value]


def _as_ids(values: np.ndarray, name: str, length: int | None = None) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1:
        raise DataError(f"{name} must be a 1-D array of ids, got shape {array.shape}")
    if array.size and not np.issubdtype(array.dtype, np.integer):
        raise DataError(f"{name} must hold integer ids, got dtype {array.dtype}")
    if length is not None and len(array) != length:
        raise DataError(f"{name} has {len(array)} rows but users has {length}; every row needs both")
    return array.astype(np.int64, copy=False)


def _as_timestamps(timestamps: np.ndarray, length: int) -> np.ndarray:
    array = np.asarray(timestamps)
    if array.shape != (length,):
        raise DataError(f"timestamps has shape {array.shape} but users has {length} rows")
    if np.issubdtype(array.dtype, np.floating) and np.isnan(array).any():
        raise DataError(f"timestamps hold {int(np.isnan(array).sum())} missing (NaN) values")
    return array
