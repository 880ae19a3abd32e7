"""Evaluation protocols: full ranking over all items, sampled ranking, and top-K lists.

Every protocol takes a score function ``score_fn(user_ids [B]) -> scores [B, num_items]``
and works in chunks of users so that at most ``chunk * num_items`` scores live at
once: memory is bounded by the chunk (``max_chunk_bytes``), not by ``users x items``.
Per-user item sets are CSR arrays (``indptr [U+1]``, ``indices``); masks are built
for a whole chunk with ``repeat_interleave`` over the CSR rows, never with a loop
over users, and hits are looked up among the sorted (user, item) keys of the
held-out edges, so no dense ``[B, num_items]`` ground truth is made.

``candidate_items`` restricts a protocol to an item pool (e.g. the target domain's
items in a cross-domain split): full ranking ranks only those items, sampled
ranking draws its negatives only among them. ``return_per_user`` adds each
evaluated user's values, which :mod:`graphrec.eval.buckets` groups by activity.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import Tensor

from graphrec.eval.metrics import VALID_METRICS, RankingAccumulator, _check_ks

ScoreFn = Callable[[Tensor], Tensor]
Report = dict[str, float] | tuple[dict[str, float], dict[str, Tensor]]  # summary, or (summary, per-user values)
CHUNK_BYTES = 512 * 2**20  # default max_chunk_bytes: one chunk's scores and their masked copy
BYTES_PER_SCORE = 8  # a float32 score from score_fn + its masked copy


def user_item_csr(edge_index: Tensor, num_users: int, num_items: int | None = None) -> tuple[Tensor, Tensor]:
    """Group user->item edges by user.

    Args:
        edge_index: Long tensor ``[2, E]``; row 0 users, row 1 items.
        num_users: Number of users ``U``.
        num_items: When given, item ids are checked to lie in ``0..num_items-1``.

    Returns:
        ``(indptr [U+1], indices [E'])``: user ``u``'s items are
        ``indices[indptr[u]:indptr[u+1]]``, sorted, duplicates removed.
    """
    if edge_index.dim() != 2 or edge_index.size(0) != 2:
        raise ValueError(f"edge_index must have shape [2, E] (got {tuple(edge_index.shape)})")
    edge_index = edge_index.detach().to("cpu", torch.long)
    users, items = edge_index
    if users.numel() and (int(users.min()) < 0 or int(users.max()) >= num_users):
        raise ValueError(f"edge_index has user ids in [{int(users.min())}, {int(users.max())}]; "
                         f"expected 0..{num_users - 1} (num_users={num_users})")
    if items.numel() and int(items.min()) < 0:
        raise ValueError(f"edge_index has a negative item id ({int(items.min())})")
    if num_items is not None and items.numel() and int(items.max()) >= num_items:
        raise ValueError(f"edge_index has item id {int(items.max())}; expected 0..{num_items - 1} "
                         f"(num_items={num_items})")
    stride = int(items.max()) + 1 if items.numel() else 1
    keys = torch.unique(users * stride + items)  # sorted by (user, item), duplicates gone
    counts = torch.bincount(keys // stride, minlength=num_users)
    indptr = torch.cat([counts.new_zeros(1), counts.cumsum(0)])
    return indptr, keys % stride


def _union_csr(edge_indices: Sequence[Tensor], num_users: int, num_items: int) -> tuple[Tensor, Tensor]:
    edges = [e.detach().to("cpu", torch.long) for e in edge_indices]
    merged = torch.cat(edges, dim=1) if edges else torch.zeros(2, 0, dtype=torch.long)
    return user_item_csr(merged, num_users, num_items)


def csr_rows(indptr: Tensor, indices: Tensor, rows: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Entries of the given CSR rows as ``(row position, slot within row, column)``."""
    counts = indptr[rows + 1] - indptr[rows]  # [B]
    total = int(counts.sum())
    row_pos = torch.repeat_interleave(torch.arange(rows.numel(), device=rows.device), counts, output_size=total)
    first = torch.repeat_interleave(counts.cumsum(0) - counts, counts, output_size=total)
    slot = torch.arange(total, device=rows.device) - first  # [T]
    cols = indices[torch.repeat_interleave(indptr[rows], counts, output_size=total) + slot]
    return row_pos, slot, cols


def _item_pool(candidate_items: Tensor | Sequence[int] | None, num_items: int) -> Tensor | None:
    """Sorted distinct ids of the candidate items, checked against ``num_items``; None for every item."""
    if candidate_items is None:
        return None
    pool = torch.as_tensor(candidate_items, dtype=torch.long).view(-1).cpu().unique()  # sorted
    if pool.numel() == 0:
        raise ValueError("candidate_items is empty; give at least one item to rank (or None for every item)")
    if int(pool.min()) < 0 or int(pool.max()) >= num_items:
        raise ValueError(f"candidate_items must lie in 0..{num_items - 1} "
                         f"(got ids in [{int(pool.min())}, {int(pool.max())}])")
    return pool


def _resolve_chunk(chunk_size: int | None, num_items: int, max_chunk_bytes: int = CHUNK_BYTES) -> int:
    """Users per chunk: ``chunk_size``, or as many as keep a chunk's scores under ``max_chunk_bytes``."""
    if chunk_size is None:
        if max_chunk_bytes < 1:
            raise ValueError(f"max_chunk_bytes must be a positive integer (got {max_chunk_bytes})")
        return max(1, max_chunk_bytes // (BYTES_PER_SCORE * max(num_items, 1)))
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer or None (got {chunk_size})")
    return int(chunk_size)


def _select_users(users: Tensor | Sequence[int] | None, eval_indptr: Tensor, num_users: int) -> Tensor:
    if users is None:
        return torch.nonzero(eval_indptr[1:] > eval_indptr[:-1]).view(-1)
    return _check_users(torch.as_tensor(users, dtype=torch.long).view(-1).cpu(), num_users, "users")


def _check_users(users: Tensor, num_users: int, what: str) -> Tensor:
    if users.numel() and (int(users.min()) < 0 or int(users.max()) >= num_users):
        raise ValueError(f"{what} must lie in 0..{num_users - 1} (got ids in [{int(users.min())}, {int(users.max())}])")
    return users


def _score(score_fn: ScoreFn, batch: Tensor, num_items: int) -> Tensor:
    scores = score_fn(batch)
    if scores.shape != (batch.numel(), num_items):
        raise ValueError(f"score_fn returned shape {tuple(scores.shape)} for {batch.numel()} users; "
                         f"expected [{batch.numel()}, {num_items}] (one score per item)")
    scores = scores.detach().to(batch.device)
    return scores if scores.is_floating_point() else scores.float()


def _masked_scores(score_fn: ScoreFn, batch: Tensor, num_items: int, ex_indptr: Tensor, ex_indices: Tensor,
                   buffer: Tensor | None = None) -> Tensor:
    """The scores of ``batch`` with the excluded items at ``-inf``, in a copy: score_fn may hand back a
    view of a cached tensor. The copy goes to the first rows of ``buffer`` when it fits: one buffer
    reused over the chunks spares the page faults of a fresh ``[B, I]`` tensor per chunk."""
    scores = _score(score_fn, batch, num_items)  # [B, I]
    row_pos, _, cols = csr_rows(ex_indptr, ex_indices, batch)
    if buffer is None or buffer.dtype != scores.dtype or buffer.size(0) < scores.size(0) \
            or buffer.shape[1:] != scores.shape[1:]:
        return scores.index_put((row_pos, cols), scores.new_tensor(float("-inf")))
    out = buffer[: scores.size(0)].copy_(scores)
    return out.index_put_((row_pos, cols), scores.new_tensor(float("-inf")))


def _sorted_keys(indptr: Tensor, indices: Tensor, num_items: int) -> Tensor:
    """``user * num_items + item`` of every CSR entry, sorted (CSR rows are sorted)."""
    users = torch.repeat_interleave(torch.arange(indptr.numel() - 1, device=indptr.device), indptr[1:] - indptr[:-1],
                                    output_size=indices.numel())
    return users * num_items + indices  # [T]


def _is_member(keys: Tensor, users: Tensor, items: Tensor, num_items: int) -> Tensor:
    """Whether each ``(users[b], items[b, k])`` is among the sorted ``keys``: ``[B, K]`` bool."""
    if keys.numel() == 0:
        return torch.zeros_like(items, dtype=torch.bool)
    query = users.view(-1, 1) * num_items + items  # [B, K]
    position = torch.searchsorted(keys, query).clamp_(max=keys.numel() - 1)
    return keys[position] == query


@torch.no_grad()
def full_ranking(score_fn: ScoreFn, num_users: int, num_items: int, eval_edge_index: Tensor,
                 exclude_edge_indices: Sequence[Tensor] = (), ks: Sequence[int] = (10, 20),
                 names: Sequence[str] = VALID_METRICS, users: Tensor | Sequence[int] | None = None,
                 chunk_size: int | None = None, device: str | torch.device = "cpu",
                 return_per_user: bool = False, candidate_items: Tensor | Sequence[int] | None = None,
                 max_chunk_bytes: int = CHUNK_BYTES) -> Report:
    """Rank every item for every evaluated user (all-ranking protocol, as in NGCF and LightGCN).

    Items in ``exclude_edge_indices`` (typically the training and validation
    edges) get score ``-inf`` before ``torch.topk``; the items of
    ``eval_edge_index`` are the relevant ones. An eval item that is also
    excluded can never be a hit but still counts in ``num_relevant``.

    Args:
        score_fn: ``score_fn(user_ids [B]) -> scores [B, num_items]``.
        num_users: Number of users.
        num_items: Number of items.
        eval_edge_index: Held-out user->item edges ``[2, E]``.
        exclude_edge_indices: Edge indices whose items are removed from every ranking.
        ks: Cut-offs K (each at most ``num_items``).
        names: Metrics among ``recall, precision, hr, ndcg, mrr, map``.
        users: Users to evaluate; default every user with at least one eval item.
        chunk_size: Users per chunk; default: as many as ``max_chunk_bytes`` allows.
        device: Where scores, masks and top-K run.
        return_per_user: Also return :meth:`RankingAccumulator.per_user`.
        candidate_items: Rank only these items (every other item scores ``-inf``);
            ``None`` ranks every item. Eval items outside the pool count in
            ``num_relevant`` but can never be hits.
        max_chunk_bytes: Memory budget of one chunk when ``chunk_size`` is None:
            ``8 * chunk * num_items`` bytes (float32 scores and their masked copy)
            stay under it, whatever the number of users.

    Returns:
        ``{"recall@10": ..., ..., "num_users": n}`` averaged over evaluated users
        with at least one eval item; with ``return_per_user`` a tuple
        ``(summary, per_user)`` where ``per_user`` maps every ``"<name>@<k>"``,
        ``"num_relevant"`` and ``"user"`` to a ``[U_eval]`` tensor.
    """
    ks = _check_ks(ks)
    max_k = max(ks)
    if max_k > num_items:
        raise ValueError(f"cut-off k={max_k} exceeds num_items={num_items}")
    pool = _item_pool(candidate_items, num_items)
    if pool is not None and max_k > pool.numel():
        raise ValueError(f"cut-off k={max_k} exceeds the {pool.numel()} items of candidate_items")
    device = torch.device(device)
    outside = None
    if pool is not None:
        outside = torch.ones(num_items, dtype=torch.bool, device=device)  # [I]: true where never ranked
        outside[pool.to(device)] = False
    eval_indptr, eval_indices = user_item_csr(eval_edge_index, num_users, num_items)
    ex_indptr, ex_indices = _union_csr(exclude_edge_indices, num_users, num_items)
    users = _select_users(users, eval_indptr, num_users)
    eval_keys = _sorted_keys(eval_indptr, eval_indices, num_items).to(device)  # [E_eval]
    eval_indptr = eval_indptr.to(device)
    ex_indptr, ex_indices = ex_indptr.to(device), ex_indices.to(device)
    accumulator = RankingAccumulator(ks, names)
    chunk = _resolve_chunk(chunk_size, num_items, max_chunk_bytes)
    buffer = None  # [chunk, I] masked scores, allocated once

    for start in range(0, users.numel(), chunk):
        batch = users[start:start + chunk].to(device)  # [B]
        scores = _masked_scores(score_fn, batch, num_items, ex_indptr, ex_indices, buffer)  # [B, I]
        if buffer is None and scores.size(0) == chunk:
            buffer = scores
        if outside is not None:
            scores.masked_fill_(outside, float("-inf"))  # our own copy: in place
        top_scores, top_items = scores.topk(max_k, dim=1)  # [B, maxK]
        hits = _is_member(eval_keys, batch, top_items, num_items) & (top_scores > float("-inf"))  # [B, maxK]
        accumulator.update(hits, eval_indptr[batch + 1] - eval_indptr[batch], batch)

    summary: dict = accumulator.compute()
    summary["num_users"] = accumulator.num_users
    return (summary, accumulator.per_user()) if return_per_user else summary


def _sample_negatives(users: Tensor, num_negatives: int, indptr: Tensor, indices: Tensor, num_items: int,
                      generator: torch.Generator, max_rounds: int = 100) -> tuple[Tensor, Tensor]:
    """Draw distinct items per user, uniformly among the items outside the user's CSR row.

    Slots are drawn with ``randint`` and every slot holding an interacted or a
    repeated item is redrawn (rejection sampling) until none is left. Users
    with no more than ``num_negatives`` free items, and rows still rejected
    after ``max_rounds``, take a random order of all their free items instead.

    Returns:
        ``(items [B, W], valid [B, W])`` with ``W = min(num_negatives, num_items)``;
        ``valid`` is false on slots left empty for users with fewer free items.
    """
    device, width = users.device, min(num_negatives, num_items)
    keys = (torch.repeat_interleave(torch.arange(indptr.numel() - 1, device=device), indptr[1:] - indptr[:-1])
            * num_items + indices)  # [T], sorted: (user, item) pairs interacted
    free = num_items - (indptr[users + 1] - indptr[users])  # [B]
    items = torch.randint(num_items, (users.numel(), width), device=device, generator=generator)
    pending = free > width  # rows left to rejection sampling
    for _ in range(max_rounds):
        query = users.view(-1, 1) * num_items + items  # [B, W]
        pos = torch.searchsorted(keys, query).clamp(max=max(keys.numel() - 1, 0))
        seen = keys[pos] == query if keys.numel() else torch.zeros_like(query, dtype=torch.bool)
        ordered, order = items.sort(dim=1, stable=True)
        repeat_sorted = torch.zeros_like(seen)
        repeat_sorted[:, 1:] = ordered[:, 1:] == ordered[:, :-1]  # later copies of a repeated item
        bad = (seen | torch.zeros_like(seen).scatter(1, order, repeat_sorted)) & pending.view(-1, 1)
        num_bad = int(bad.sum())
        if num_bad == 0:
            break
        items[bad] = torch.randint(num_items, (num_bad,), device=device, generator=generator)
    else:
        pending = pending & ~bad.any(dim=1)
    valid = torch.ones_like(items, dtype=torch.bool)
    dense_rows = torch.nonzero(~pending).view(-1)
    if dense_rows.numel():  # exact fallback: random keys, interacted items pushed below zero
        keys_dense = torch.rand(dense_rows.numel(), num_items, device=device, generator=generator)
        row_pos, _, cols = csr_rows(indptr, indices, users[dense_rows])
        keys_dense[row_pos, cols] = -1.0
        top_keys, top_items = keys_dense.topk(width, dim=1)
        items[dense_rows], valid[dense_rows] = top_items, top_keys >= 0
    return items, valid


@torch.no_grad()
def sampled_ranking(score_fn: ScoreFn, num_users: int, num_items: int, eval_edge_index: Tensor,
                    exclude_edge_indices: Sequence[Tensor] = (), num_negatives: int = 100,
                    ks: Sequence[int] = (10,), names: Sequence[str] = VALID_METRICS, seed: int = 0,
                    chunk_size: int | None = None, users: Tensor | Sequence[int] | None = None,
                    device: str | torch.device = "cpu", return_per_user: bool = False,
                    candidate_items: Tensor | Sequence[int] | None = None,
                    max_chunk_bytes: int = CHUNK_BYTES) -> Report:
    """Rank each user's eval items against sampled negatives (sampled protocol of He et al., NCF, 2017).

    Protocol: for every evaluated user ``u`` the candidate list is all of
    ``u``'s eval items plus ``num_negatives`` distinct items drawn uniformly
    from the items ``u`` has no edge to in ``eval_edge_index`` or any of
    ``exclude_edge_indices`` (fewer when fewer such items exist). Candidates
    are shuffled so that tied scores break at random, ranked by score, and
    the metrics use ``num_relevant`` = the number of ``u``'s eval items. With
    ``num_negatives`` at least the number of free items the protocol equals
    :func:`full_ranking`. Sampled metrics are not consistent with full-ranking
    ones for comparing models (Krichene and Rendle, KDD 2020); report the
    protocol alongside the numbers. Negatives depend on ``seed`` and ``chunk_size``.

    Args:
        score_fn: ``score_fn(user_ids [B]) -> scores [B, num_items]``.
        num_users: Number of users.
        num_items: Number of items.
        eval_edge_index: Held-out user->item edges ``[2, E]``.
        exclude_edge_indices: Edges whose items may not be sampled as negatives.
        num_negatives: Negatives per user.
        ks: Cut-offs K; lists shorter than K count missing ranks as misses.
        names: Metrics among ``recall, precision, hr, ndcg, mrr, map``.
        seed: Seed of the negative sampler and the tie-breaking shuffle.
        chunk_size: Users per chunk; default: as many as ``max_chunk_bytes`` allows.
        users: Users to evaluate; default every user with at least one eval item.
        device: Where sampling and ranking run.
        return_per_user: Also return per-user values.
        candidate_items: Rank only these items: negatives are drawn among them
            (e.g. one domain's items), and eval items outside them count in
            ``num_relevant`` but are never ranked, as in :func:`full_ranking`;
            ``None`` ranks every item.
        max_chunk_bytes: Memory budget of one chunk when ``chunk_size`` is None, counted
            as in :func:`full_ranking` (8 bytes per score), so both protocols cut the same chunks.

    Returns:
        Same layout as :func:`full_ranking`.
    """
    ks = _check_ks(ks)
    max_k = max(ks)
    if num_negatives < 0:
        raise ValueError(f"num_negatives must be >= 0 (got {num_negatives})")
    device = torch.device(device)
    eval_indptr, eval_indices = user_item_csr(eval_edge_index, num_users, num_items)
    pool = _item_pool(candidate_items, num_items)
    seen = [eval_edge_index, *exclude_edge_indices]
    num_pool = num_items
    if pool is not None:  # sample in pool coordinates 0..P-1, mapped back to item ids after drawing
        position = torch.full((num_items,), -1, dtype=torch.long)
        position[pool] = torch.arange(pool.numel())
        seen = [_to_pool(edges, position) for edges in seen]
        num_pool = pool.numel()
    seen_indptr, seen_indices = _union_csr(seen, num_users, num_pool)
    users = _select_users(users, eval_indptr, num_users)
    eval_indptr, eval_indices = eval_indptr.to(device), eval_indices.to(device)
    seen_indptr, seen_indices = seen_indptr.to(device), seen_indices.to(device)
    pool = pool.to(device) if pool is not None else None
    in_pool = None
    if pool is not None:
        in_pool = torch.zeros(num_items, dtype=torch.bool, device=device)  # [I]
        in_pool[pool] = True
    generator = torch.Generator(device=device).manual_seed(seed)
    accumulator = RankingAccumulator(ks, names)
    chunk = _resolve_chunk(chunk_size, num_items, max_chunk_bytes)

    for start in range(0, users.numel(), chunk):
        batch = users[start:start + chunk].to(device)  # [B]
        negatives, neg_valid = _sample_negatives(batch, num_negatives, seen_indptr, seen_indices, num_pool, generator)
        if pool is not None:
            negatives = pool[negatives]  # [B, W] pool positions -> item ids
        num_relevant = eval_indptr[batch + 1] - eval_indptr[batch]  # [B]
        max_pos = int(num_relevant.max()) if batch.numel() else 0
        row_pos, slot, cols = csr_rows(eval_indptr, eval_indices, batch)
        candidates = torch.cat([negatives.new_zeros(batch.numel(), max_pos), negatives], dim=1)  # [B, P+W]
        is_pos = torch.zeros_like(candidates, dtype=torch.bool)
        valid = torch.cat([is_pos[:, :max_pos], neg_valid], dim=1)
        candidates[row_pos, slot], is_pos[row_pos, slot] = cols, True
        valid[row_pos, slot] = True if in_pool is None else in_pool[cols]  # outside the pool: never ranked
        shuffle = torch.rand(candidates.shape, device=device, generator=generator).argsort(dim=1)
        candidates, is_pos, valid = candidates.gather(1, shuffle), is_pos.gather(1, shuffle), valid.gather(1, shuffle)

        scores = _score(score_fn, batch, num_items).gather(1, candidates).masked_fill(~valid, float("-inf"))
        _, top = scores.topk(min(max_k, candidates.size(1)), dim=1)  # [B, <=maxK]
        hits = (is_pos & valid).gather(1, top)
        if hits.size(1) < max_k:  # fewer candidates than K: the missing ranks are misses
            hits = torch.cat([hits, hits.new_zeros(hits.size(0), max_k - hits.size(1))], dim=1)
        accumulator.update(hits, num_relevant, batch)

    summary: dict = accumulator.compute()
    summary["num_users"] = accumulator.num_users
    return (summary, accumulator.per_user()) if return_per_user else summary


def _to_pool(edge_index: Tensor, position: Tensor) -> Tensor:
    """``[2, E']`` the edges whose item lies in the pool, items replaced by their pool position."""
    edge_index = edge_index.detach().to("cpu", torch.long)
    if edge_index.dim() != 2 or edge_index.size(0) != 2:
        raise ValueError(f"edge_index must have shape [2, E] (got {tuple(edge_index.shape)})")
    if edge_index.numel() and (int(edge_index[1].min()) < 0 or int(edge_index[1].max()) >= position.numel()):
        raise ValueError(f"an exclude edge index has item ids in [{int(edge_index[1].min())}, "
                         f"{int(edge_index[1].max())}]; expected 0..{position.numel() - 1}")
    mapped = position[edge_index[1]]  # [E]
    keep = mapped >= 0
    return torch.stack([edge_index[0, keep], mapped[keep]])


@torch.no_grad()
def topk_items(score_fn: ScoreFn, user_ids: Tensor, k: int, exclude_edge_indices: Sequence[Tensor],
               num_users: int, num_items: int) -> tuple[Tensor, Tensor]:
    """Top-``k`` recommendations per user with already-seen items removed.

    Args:
        score_fn: ``score_fn(user_ids [B]) -> scores [B, num_items]``.
        user_ids: Users ``[B]``; the result lives on their device.
        k: List length, at most ``num_items``.
        exclude_edge_indices: Edges whose items must not be recommended (e.g. training edges).
        num_users: Number of users.
        num_items: Number of items.

    Returns:
        ``(scores [B, k], items [B, k])`` best first. When a user has fewer than
        ``k`` unseen items the tail holds seen items with score ``-inf``.
    """
    if not 1 <= k <= num_items:
        raise ValueError(f"k must lie in 1..num_items={num_items} (got {k})")
    user_ids = _check_users(torch.as_tensor(user_ids, dtype=torch.long).view(-1), num_users, "user_ids")
    ex_indptr, ex_indices = _union_csr(exclude_edge_indices, num_users, num_items)
    ex_indptr, ex_indices = ex_indptr.to(user_ids.device), ex_indices.to(user_ids.device)
    return _masked_scores(score_fn, user_ids, num_items, ex_indptr, ex_indices).topk(k, dim=1)
