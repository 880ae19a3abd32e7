"""Cross-domain splits: items cut into a source and a target domain by an attribute (e.g. genre).

The protocol of Zeng et al., "Knowledge Transfer via Pre-training for Recommendation:
A Review and Prospect", Frontiers in Big Data 4, 2021, Section 4.1: "we divide all the
movies in ML-1m into two domains according to movie genres and obtain interaction
sequences of the same users on two domains. The scale of the target domain is smaller
than the source domain (ML-1m-src). [...] we further truncate the interaction sequences
in the target domain such that the sequence length of each user is less than 10, which
results in the ML-1m-tgt set." A model is pre-trained on the source part, then fine-tuned
and evaluated on the target part. Per user and domain, "the last 5 items of each sequence
form the validation set (2 items for each user) and the test set (3 items for each user)".

Two steps, both on plain arrays:

* :func:`item_domains` gives every item a domain (``SOURCE``, ``TARGET`` or ``NO_DOMAIN``)
  from its ``(item, value)`` attribute edges and the list of source values;
* :func:`domain_split` splits the rows of one domain; rows of the other domain, and of
  items in no domain, are in no part.

The paper names neither its source genres nor what happens to a movie of several genres;
the choices made here are stated in each function.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from graphrec.data.splits import Split, _as_ids, _as_timestamps, _group_sizes, _rank_in_group
from graphrec.errors import ConfigError, DataError
from graphrec.utils import suggest

SOURCE, TARGET, NO_DOMAIN = 0, 1, -1
DOMAIN_PARTS = ("source", "target")
OVERLAP_RULES = ("source", "target", "exclude")


@dataclass
class ItemDomains:
    """The domain of every item and the attribute values behind it.

    Attributes:
        item_domain: ``[I]`` int8: ``SOURCE`` (0), ``TARGET`` (1) or ``NO_DOMAIN`` (-1).
        source_values: Names of the values that make an item a source item.
        target_values: Names of the other values that some item holds.
    """

    item_domain: np.ndarray
    source_values: list[str]
    target_values: list[str]

    def items(self, part: str) -> np.ndarray:
        """Sorted ids of the items of one domain (``"source"`` or ``"target"``)."""
        return np.flatnonzero(self.item_domain == _domain_code(part))

    def __repr__(self) -> str:
        counts = {name: int((self.item_domain == code).sum())
                  for name, code in (("source", SOURCE), ("target", TARGET), ("none", NO_DOMAIN))}
        return f"ItemDomains(items={counts}, source_values={self.source_values})"


def item_domains(edge_index: torch.Tensor | np.ndarray, num_items: int, value_names: Sequence[str],
                 source: Sequence[str] | None = None, overlap: str = "source",
                 source_share: float = 0.7) -> ItemDomains:
    """Assign every item to the source or the target domain by its attribute values.

    An item whose values are all source values is a source item; one whose values are all
    other values is a target item. An item with values on both sides goes by ``overlap``:
    ``"source"`` (default: the target then holds only items unlike anything pre-trained on,
    and stays the smaller domain, as in the paper), ``"target"``, or ``"exclude"`` (in no
    domain). An item without any value is in no domain. A "first listed value" rule is not
    offered: built graphs store attribute edges sorted, so the listing order is gone (the
    repository's ML-1M copy keeps one genre per movie, so no rule is needed there).

    With ``source=None`` the split is automatic and deterministic: values sorted by the
    number of items holding them (most first, ties by name); the source values are the
    prefix of that order that, under ``overlap``, puts the share of the domain items closest
    to ``source_share`` in the source, with items on each side (ties: the shorter prefix).
    The common genres thus form the large source domain and the rarer ones the smaller
    target domain; the paper's ML-1m-src holds 2,656 of 3,668 movies (72%). On the
    repository's ML-1M this gives Comedy, Drama, Action (2,052 source, 931 target movies).

    Args:
        edge_index: ``[2, E]`` (item, value) pairs, e.g. ``graph["item", "has_genre", "genre"].edge_index``.
        num_items: Number of items ``I``.
        value_names: Name of each value id (``idmap.raw_ids("genre")``).
        source: Names of the source values; ``None`` for the automatic split.
        overlap: Domain of an item with values on both sides: ``source``, ``target`` or ``exclude``.
        source_share: Automatic split only: the share of the domain items aimed at for the source.

    Raises:
        ConfigError: Unknown value names, a source that leaves either domain empty, a bad
            ``overlap`` or ``source_share``.
        DataError: Edge ids outside ``0..num_items-1`` or ``0..len(value_names)-1``.
    """
    if overlap not in OVERLAP_RULES:
        raise ConfigError(f"domain overlap rule '{overlap}' is not one of {list(OVERLAP_RULES)}"
                          f"{suggest(str(overlap), OVERLAP_RULES)}")
    pairs = np.asarray(edge_index.cpu() if isinstance(edge_index, torch.Tensor) else edge_index)
    if pairs.ndim != 2 or pairs.shape[0] != 2:
        raise DataError(f"attribute edge_index must have shape [2, E] of (item, value) pairs, got {pairs.shape}")
    names = [str(name) for name in value_names]
    pairs = np.unique(pairs.astype(np.int64), axis=1)  # [2, E'] distinct (item, value)
    item_ids, value_ids = pairs
    if item_ids.size and (item_ids.min() < 0 or item_ids.max() >= num_items):
        raise DataError(f"attribute edges name item ids in [{item_ids.min()}, {item_ids.max()}]; "
                        f"expected 0..{num_items - 1} (num_items={num_items})")
    if value_ids.size and (value_ids.min() < 0 or value_ids.max() >= len(names)):
        raise DataError(f"attribute edges name value ids in [{value_ids.min()}, {value_ids.max()}] but "
                        f"{len(names)} value names were given")
    items_per_value = np.bincount(value_ids, minlength=len(names))  # [V]
    if source is None:
        is_source = _automatic_source(pairs, num_items, items_per_value, names, overlap, source_share)
    else:
        is_source = np.zeros(len(names), dtype=bool)
        for name in source:
            if name not in names:
                raise ConfigError(f"source domain value '{name}' is not a value of the attribute"
                                  f"{suggest(str(name), names)}; values: {sorted(names)}")
            is_source[names.index(name)] = True
    item_domain = _assign(pairs, num_items, is_source, overlap)
    source_values = [name for name, chosen in zip(names, is_source) if chosen]
    for side, code in (("source", SOURCE), ("target", TARGET)):
        if not (item_domain == code).any():
            raise ConfigError(f"the {side} domain holds no item with source values {source_values} and overlap "
                              f"rule '{overlap}'; values: {sorted(names)}")
    target_values = [name for name, chosen, count in zip(names, is_source, items_per_value) if count and not chosen]
    return ItemDomains(item_domain=item_domain, source_values=source_values, target_values=target_values)


def domain_split(users: np.ndarray, items: np.ndarray, item_domain: np.ndarray, part: str = "target",
                 timestamps: np.ndarray | None = None, num_valid: int = 2, num_test: int = 3,
                 max_history: int | None = 9, seed: int = 0) -> Split:
    """Split the interactions of one domain (Zeng et al., 2021, Section 4.1).

    Only rows whose item lies in the ``part`` domain are split; every other row is in no
    part. Per user, those rows are ordered by time (ties keep table order; a random order
    from ``seed`` without timestamps): the newest ``num_test`` go to test, the ``num_valid``
    before them to valid, the rest to train (the paper: 3 test and 2 valid items). A user
    with few rows keeps train first, as the other splits do: test gets a row once the
    user has 2, valid once 3, then test and valid fill up in that order; train keeps at
    least one.

    In the ``"target"`` part, training histories are then truncated to the newest
    ``max_history`` rows before the held-out ones ("the sequence length of each user is
    less than 10": ``max_history=9``). The older rows are dropped (in no part); the paper's
    ML-1m-tgt reports an average training length of 8.85. The source part is never
    truncated (its AvgLen 97.9 is that of full histories less the 5 held out).

    Args:
        users: ``[N]`` user id of each row.
        items: ``[N]`` item id of each row.
        item_domain: ``[I]`` domain of each item (:attr:`ItemDomains.item_domain`).
        part: ``"source"`` (pre-training) or ``"target"`` (fine-tuning and evaluation).
        timestamps: ``[N]`` time of each row, or ``None``.
        num_valid: Newest rows per user (before the test rows) held out for validation.
        num_test: Newest rows per user held out for test.
        max_history: Target part: the most training rows a user keeps; ``None`` keeps all.
        seed: Row order inside a user when there are no timestamps.

    Returns:
        A :class:`Split` with ``method`` ``"domain_source"`` or ``"domain_target"``.

    Raises:
        ConfigError: Unknown ``part``, negative hold-out sizes, ``max_history < 1``.
        DataError: Item ids outside ``item_domain``, arrays of different lengths.
    """
    code = _domain_code(part)
    if num_valid < 0 or num_test < 0:
        raise ConfigError(f"domain split hold-out sizes must be >= 0, got num_valid={num_valid}, num_test={num_test}")
    if max_history is not None and max_history < 1:
        raise ConfigError(f"domain split max_history must be >= 1 or None, got {max_history}")
    users = _as_ids(users, "users")
    items = _as_ids(items, "items", len(users))
    item_domain = np.asarray(item_domain)
    if items.size and (items.min() < 0 or items.max() >= len(item_domain)):
        raise DataError(f"items holds ids in [{items.min()}, {items.max()}] but item_domain covers "
                        f"{len(item_domain)} items")
    if timestamps is None:
        order_key = np.random.default_rng(seed).permutation(len(users))
    else:
        order_key = _as_timestamps(timestamps, len(users))
    rows = np.flatnonzero(item_domain[items] == code).astype(np.int64)  # rows of this domain
    rows = rows[np.lexsort((order_key[rows], users[rows]))]  # by user, oldest first; stable on ties
    sizes = _group_sizes(users[rows])  # [U_part]
    num_train, valid_count, _ = _holdout_sizes(sizes, num_valid, num_test)
    rank = _rank_in_group(sizes)  # [n] position in the user's time order
    train_end = np.repeat(num_train, sizes)
    valid_end = train_end + np.repeat(valid_count, sizes)
    train_start = np.zeros_like(train_end)
    if part == "target" and max_history is not None:
        train_start = np.maximum(train_end - max_history, 0)  # older training rows are dropped
    return Split(train=np.sort(rows[(rank >= train_start) & (rank < train_end)]),
                 valid=np.sort(rows[(rank >= train_end) & (rank < valid_end)]),
                 test=np.sort(rows[rank >= valid_end]), method=f"domain_{part}")


def _holdout_sizes(sizes: np.ndarray, num_valid: int, num_test: int) -> tuple[np.ndarray, ...]:
    """Train, valid and test rows per user: train keeps one, test gets one from 2 rows, valid from 3, then fill."""
    first_test = ((sizes >= 2) & (num_test > 0)).astype(np.int64)
    first_valid = ((sizes >= 3) & (num_valid > 0)).astype(np.int64)
    rest = np.maximum(sizes - 1 - first_test - first_valid, 0)
    more_test = np.minimum(num_test - first_test, rest)
    more_valid = np.minimum(num_valid - first_valid, rest - more_test)
    test_count, valid_count = first_test + more_test, first_valid + more_valid
    return sizes - valid_count - test_count, valid_count, test_count


def _assign(pairs: np.ndarray, num_items: int, is_source: np.ndarray, overlap: str) -> np.ndarray:
    """``[I]`` int8 domain of every item from its distinct (item, value) ``pairs`` and the source values."""
    item_ids, value_ids = pairs
    has_source = np.bincount(item_ids[is_source[value_ids]], minlength=num_items) > 0  # [I]
    has_target = np.bincount(item_ids[~is_source[value_ids]], minlength=num_items) > 0  # [I]
    item_domain = np.full(num_items, NO_DOMAIN, dtype=np.int8)
    item_domain[has_source & ~has_target] = SOURCE
    item_domain[has_target & ~has_source] = TARGET
    if overlap != "exclude":
        item_domain[has_source & has_target] = SOURCE if overlap == "source" else TARGET
    return item_domain


def _automatic_source(pairs: np.ndarray, num_items: int, items_per_value: np.ndarray, names: list[str],
                      overlap: str, source_share: float) -> np.ndarray:
    """``[V]`` bool: the prefix of the most common values giving the source closest to ``source_share`` of items."""
    if not 0.0 < source_share < 1.0:
        raise ConfigError(f"domain source_share must lie strictly between 0 and 1, got {source_share}")
    held = np.flatnonzero(items_per_value > 0)
    if len(held) < 2:
        raise ConfigError(f"a domain split needs at least two attribute values held by items, found {len(held)}")
    order = held[np.lexsort((np.array(names, dtype=object)[held].astype(str), -items_per_value[held]))]
    best, best_gap = np.zeros(len(names), dtype=bool), np.inf
    for prefix in range(1, len(order)):  # a few dozen values at most: one pass over the edges each
        is_source = np.zeros(len(names), dtype=bool)
        is_source[order[:prefix]] = True
        item_domain = _assign(pairs, num_items, is_source, overlap)
        num_source, num_target = int((item_domain == SOURCE).sum()), int((item_domain == TARGET).sum())
        gap = abs(num_source / max(num_source + num_target, 1) - source_share)
        if num_source and num_target and gap < best_gap:  # ties keep the shorter prefix
            best, best_gap = is_source, gap
    return best


def _domain_code(part: str) -> int:
    if part not in DOMAIN_PARTS:
        raise ConfigError(f"domain part '{part}' is not one of {list(DOMAIN_PARTS)}{suggest(str(part), DOMAIN_PARTS)}")
    return SOURCE if part == "source" else TARGET
