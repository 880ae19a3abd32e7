"""Decoding paths from a path language model, constrained to the edges of the graph.

From a user token, a path is generated hop by hop: a relation, then a node. With
``constrained=True`` (the default) a step may only pick

* a relation that leaves the current node (the first hop: an interaction), and
* a node that the current node reaches through that relation,

so every generated hop is an edge of the training graph and no explanation is invented
(PEARLM, Balloccu et al. 2023; KGGLM). The allowed set is read from the CSR arrays of the
:class:`~graphrec.graph.paths.PathGraph` for all beams at once: one binary search finds each
beam's ``(node, relation)`` edge range, whose targets are scattered into a boolean mask.
Without the constraint only the path schema holds (first hop an interaction, last node an
item, no user in the middle), and the model may name hops that do not exist.

The last hop ends at an item the user has not interacted with. Rather than keeping only the
best ``beam_width`` complete paths, every beam is expanded over every allowed end item, and each
item is scored by its best path: an item's score is the log-probability of the most likely path
that reaches it (or, with ``aggregate="sum"``, of all the found paths that reach it). The
top-K items come with their best path as the explanation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np
import torch
from torch import Tensor

from graphrec.errors import ConfigError
from graphrec.graph.paths import PathGraph, Paths
from graphrec.nn.path_lm import PathTransformer

Strategy = Literal["beam", "sample"]
Aggregate = Literal["max", "sum"]
NEG_INF = float("-inf")


@dataclass
class PathRecommendations:
    """Top-K items per user, each with the path that explains it.

    ``items[b, j] == -1`` (score ``-inf``) where fewer than ``j + 1`` items were reached.
    """

    users: Tensor  # [B] local user ids
    items: Tensor  # [B, K] local item ids
    scores: Tensor  # [B, K] log-probability of the best path to the item
    nodes: Tensor  # [B, K, H+1] global node ids of that path
    relations: Tensor  # [B, K, H] relation ids of that path

    def paths(self) -> Paths:
        """The paths of every found item, flattened."""
        found = self.items >= 0
        return Paths(self.nodes[found].cpu().numpy(), self.relations[found].cpu().numpy())


class PathDecoder:
    """Batched constrained beam search (or sampling) over a :class:`PathGraph`.

    Args:
        model: a trained :class:`PathTransformer` over the graph's tokens.
        graph: the path graph the model was trained on.
        hops: edges per generated path.
        beam_width: beams kept per user after every step (``"sample"``: paths drawn per user).
        constrained: restrict every hop to a real edge (see module docs).
        strategy: ``"beam"`` (deterministic) or ``"sample"`` (ancestral sampling, ``temperature``).
        exclude: extra ``[2, E]`` (user, item) edges that may not end a path, besides the
            training interactions (e.g. validation items when testing).
        aggregate: an item's score: its best path's log-probability (``"max"``) or the log of
            the summed probability of every path the beams found to it (``"sum"``). The
            explanation is the best path either way.
    """

    def __init__(self, model: PathTransformer, graph: PathGraph, hops: int = 3, beam_width: int = 10,
                 constrained: bool = True, strategy: Strategy = "beam", temperature: float = 1.0,
                 exclude: Sequence[Tensor] = (), seed: int = 0, aggregate: Aggregate = "max") -> None:
        if hops < 2:
            raise ConfigError(f"decode hops must be at least 2 (an interaction, then a path to a new item), got {hops}")
        if hops > model.max_hops:
            raise ConfigError(f"decode hops {hops} exceed the {model.max_hops} hops the model was built for")
        if beam_width < 1:
            raise ConfigError(f"beam_width must be at least 1, got {beam_width}")
        if aggregate not in ("max", "sum"):
            raise ConfigError(f"aggregate must be 'max' or 'sum', got {aggregate!r}")
        if strategy not in ("beam", "sample"):
            raise ConfigError(f"strategy must be 'beam' or 'sample', got {strategy!r}")
        self.model, self.graph, self.hops, self.beam_width = model, graph, hops, beam_width
        self.constrained, self.strategy, self.temperature = constrained, strategy, temperature
        self.aggregate = aggregate
        device = next(model.parameters()).device
        self.device = device
        self.generator = torch.Generator(device=device).manual_seed(seed)
        num_relations = len(graph.relations)
        self.num_relations = num_relations
        as_tensor = lambda a: torch.as_tensor(np.asarray(a), device=device)  # noqa: E731
        self.offsets = as_tensor(graph.offsets)
        self.indptr, self.target = as_tensor(graph.indptr), as_tensor(graph.target)
        self.keys = as_tensor(graph.keys)  # [E] source * R + relation, sorted
        self.relation_mask = as_tensor(graph.relation_masks())  # [N, R]
        target_type = graph.relation_target_type()
        self.relation_target_type = as_tensor(target_type)  # [R]
        self.has_item_edge = as_tensor(graph.has_item_edge)  # [N]
        # Path schema, kept in both modes: which relations each hop may take.
        interacts = np.arange(num_relations) == 0
        self.schema = {
            "first": as_tensor(interacts),
            "middle": as_tensor(target_type != 0),
            "last": as_tensor(target_type == 1),
        }
        seen_users, seen_items = graph.seen_keys // graph.num_items, graph.seen_keys % graph.num_items
        pairs = [np.stack([seen_users, seen_items])] + [e.cpu().numpy() for e in exclude]
        self.exclude_indptr, self.exclude_items = _user_csr(np.concatenate(pairs, axis=1), graph.num_users, device)

    # ------------------------------------------------------------------ public
    @torch.no_grad()
    def recommend(self, users: Tensor | Sequence[int], k: int = 10) -> PathRecommendations:
        """Top-``k`` unseen items for local ``users``, each with its best path."""
        was_training = self.model.training
        self.model.eval()
        try:
            return self._decode(torch.as_tensor(users, dtype=torch.long, device=self.device), k)
        finally:
            self.model.train(was_training)

    # ------------------------------------------------------------------ steps
    def _decode(self, users: Tensor, k: int) -> PathRecommendations:
        batch = users.numel()
        tokenizer = self.model.tokenizer
        user_nodes = users + self.offsets[0]
        width = self.beam_width if self.strategy == "sample" else 1
        tokens = (user_nodes + tokenizer.node_start).repeat_interleave(width).unsqueeze(1)  # [B*W, 1]
        scores = torch.zeros(batch, width, device=self.device)  # [B, W]
        for hop in range(self.hops):
            stage = "first" if hop == 0 else "last" if hop == self.hops - 1 else "middle"
            tokens, scores = self._relation_step(tokens, scores, stage)
            if stage == "last":
                return self._finish(users, tokens, scores, k)
            tokens, scores = self._node_step(tokens, scores, before_last=hop == self.hops - 2)
        raise AssertionError("unreachable: the last hop returns")

    def _hidden(self, tokens: Tensor) -> Tensor:
        return self.model(tokens)[:, -1]  # [BW, D]

    def _relation_step(self, tokens: Tensor, scores: Tensor, stage: str) -> tuple[Tensor, Tensor]:
        batch, width = scores.shape
        logits = self.model.relation_logits(self._hidden(tokens)) / self.temperature  # [BW, R]
        allowed = self.schema[stage].expand_as(logits)
        if self.constrained:
            current = tokens[:, -1] - self.model.tokenizer.node_start  # [BW]
            allowed = allowed & self.relation_mask[current]
        logp = torch.log_softmax(logits.masked_fill(~allowed, NEG_INF), dim=-1)  # [BW, R]
        logp = torch.nan_to_num(logp, nan=NEG_INF, neginf=NEG_INF)  # beams with no way on
        chosen, new_scores, parent = self._select(logp.view(batch, width, -1), scores)
        tokens = torch.cat([tokens[parent], (chosen + 1).unsqueeze(1)], dim=1)
        return tokens, new_scores

    def _node_step(self, tokens: Tensor, scores: Tensor, before_last: bool) -> tuple[Tensor, Tensor]:
        """Pick the next node of every beam; the node's type is the one its relation leads to."""
        batch, width = scores.shape
        start_token = self.model.tokenizer.node_start
        hidden = self._hidden(tokens)  # [BW, D]
        relation = tokens[:, -1] - 1  # [BW]
        node_type = self.relation_target_type[relation]  # [BW]
        top = min(self.beam_width, max(self._type_size(t) for t in node_type.unique().tolist()))
        cand_nodes = torch.full((batch * width, top), -1, dtype=torch.long, device=self.device)
        cand_logp = torch.full((batch * width, top), NEG_INF, device=self.device)
        for type_pos in node_type.unique().tolist():
            rows = (node_type == type_pos).nonzero().squeeze(1)  # [n]
            logits = self.model.node_logits(hidden[rows], type_pos) / self.temperature  # [n, N_t]
            allowed = torch.ones_like(logits, dtype=torch.bool)
            if self.constrained:
                allowed = self._neighbour_mask(tokens[rows, -2] - start_token, relation[rows], type_pos,
                                               logits.shape[1])
                if before_last:  # the next node must lead on to an item
                    lo = int(self.offsets[type_pos])
                    allowed &= self.has_item_edge[lo:lo + logits.shape[1]].unsqueeze(0)
            logp = torch.log_softmax(logits.masked_fill(~allowed, NEG_INF), dim=-1)
            logp = torch.nan_to_num(logp, nan=NEG_INF, neginf=NEG_INF)  # rows with nothing allowed
            count = min(top, logp.shape[1])
            if self.strategy == "sample":
                picked = _sample(logp, self.generator).unsqueeze(1)
                best = logp.gather(1, picked)
                count = 1
            else:
                best, picked = logp.topk(count, dim=1)
            cand_logp[rows, :count] = best
            cand_nodes[rows, :count] = picked + self.offsets[type_pos]
        chosen, new_scores, parent = self._select(cand_logp.view(batch, width, top), scores, values=cand_nodes)
        tokens = torch.cat([tokens[parent], (chosen + start_token).unsqueeze(1)], dim=1)
        return tokens, new_scores

    def _finish(self, users: Tensor, tokens: Tensor, scores: Tensor, k: int) -> PathRecommendations:
        """Expand every beam over every allowed end item; score each item by its best path."""
        batch, width = scores.shape
        num_items = self.graph.num_items
        start_token = self.model.tokenizer.node_start
        logits = self.model.node_logits(self._hidden(tokens), 1) / self.temperature  # [BW, I]
        relation = tokens[:, -1] - 1
        allowed = self.relation_target_type[relation].eq(1).unsqueeze(1).expand_as(logits).clone()
        if self.constrained:
            allowed &= self._neighbour_mask(tokens[:, -2] - start_token, relation, 1, num_items)
        allowed &= ~self._seen_mask(users.repeat_interleave(width), num_items)
        logp = torch.log_softmax(logits.masked_fill(~allowed, NEG_INF), dim=-1)
        logp = torch.nan_to_num(logp, nan=NEG_INF, neginf=NEG_INF)
        total = (scores.view(-1, 1) + logp).view(batch, width, num_items)  # [B, W, I]
        best, beam = total.max(dim=1)  # [B, I]: the best path to each item explains it
        if self.aggregate == "sum":  # rank by the probability of all found paths to the item
            best = torch.where(best > NEG_INF, total.logsumexp(dim=1), best)
        k = min(k, num_items)
        top_scores, items = best.topk(k, dim=1)  # [B, K]
        found = top_scores > NEG_INF
        rows = torch.arange(batch, device=self.device).unsqueeze(1) * width + beam.gather(1, items)  # [B, K]
        prefix = tokens[rows]  # [B, K, 2H]
        item_tokens = items + start_token + self.offsets[1]
        full = torch.cat([prefix, item_tokens.unsqueeze(2)], dim=2)  # [B, K, 2H+1]
        nodes, relations = full[..., 0::2] - start_token, full[..., 1::2] - 1
        items = torch.where(found, items, torch.full_like(items, -1))
        return PathRecommendations(users, items, top_scores, nodes, relations)

    # ------------------------------------------------------------------ helpers
    def _select(self, logp: Tensor, scores: Tensor, values: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """Extend beams: ``logp [B, W, C]`` candidate log-probs -> (choice [B*W'], scores [B, W'], parent [B*W'])."""
        batch, width, count = logp.shape
        total = scores.unsqueeze(2) + logp  # [B, W, C]
        if self.strategy == "sample":  # each beam keeps its own continuation
            if count > 1:
                pick = _sample(logp.reshape(batch * width, count), self.generator).view(batch, width)
            else:
                pick = torch.zeros(batch, width, dtype=torch.long, device=self.device)
            flat = torch.arange(width, device=self.device).unsqueeze(0) * count + pick  # [B, W]
            new_scores = total.view(batch, -1).gather(1, flat)
        else:
            keep = min(self.beam_width, width * count)
            new_scores, flat = total.view(batch, -1).topk(keep, dim=1)  # [B, W']
        parent = torch.arange(batch, device=self.device).unsqueeze(1) * width + flat // count  # [B, W']
        choice = flat % count
        if values is not None:
            choice = values.view(batch * width, count)[parent.reshape(-1), choice.reshape(-1)]
        return choice.reshape(-1), new_scores, parent.reshape(-1)

    def _type_size(self, type_pos: int) -> int:
        return int(self.offsets[type_pos + 1] - self.offsets[type_pos])

    def _neighbour_mask(self, nodes: Tensor, relations: Tensor, type_pos: int, size: int) -> Tensor:
        """``[n, size]`` bool: which nodes of type ``type_pos`` each ``(node, relation)`` reaches."""
        wanted = nodes * self.num_relations + relations
        start = torch.searchsorted(self.keys, wanted, right=False)
        end = torch.searchsorted(self.keys, wanted, right=True)
        # Dead beams hold node -1 or a relation of another type: they reach nothing.
        live = (nodes >= 0) & (self.relation_target_type[relations] == type_pos)
        counts = torch.where(live, end - start, 0)  # [n]
        return _ranges_mask(start, counts, self.target - self.offsets[type_pos], size)

    def _seen_mask(self, users: Tensor, size: int) -> Tensor:
        start = self.exclude_indptr[users]
        return _ranges_mask(start, self.exclude_indptr[users + 1] - start, self.exclude_items, size)


def _ranges_mask(start: Tensor, counts: Tensor, values: Tensor, size: int) -> Tensor:
    """``[n, size]`` bool: row ``i`` is true at ``values[start[i] : start[i] + counts[i]]``."""
    mask = torch.zeros(len(start), size, dtype=torch.bool, device=start.device)
    total = int(counts.sum())
    if total:
        row = torch.repeat_interleave(torch.arange(len(start), device=start.device), counts, output_size=total)
        first = torch.repeat_interleave(start - torch.cumsum(counts, 0) + counts, counts, output_size=total)
        mask[row, values[first + torch.arange(total, device=start.device)]] = True
    return mask


def _sample(logp: Tensor, generator: torch.Generator) -> Tensor:
    """One draw per row from ``exp(logp)``; rows with nothing allowed pick 0 (its -inf keeps the beam dead)."""
    probs = logp.exp()
    empty = probs.sum(dim=1) <= 0
    probs[empty, 0] = 1.0
    return torch.multinomial(probs, 1, generator=generator).squeeze(1)


def _user_csr(pairs: np.ndarray, num_users: int, device) -> tuple[Tensor, Tensor]:
    """CSR (indptr, items) of ``[2, E]`` (user, item) pairs."""
    order = np.lexsort((pairs[1], pairs[0]))
    users, items = pairs[0][order], pairs[1][order]
    indptr = np.zeros(num_users + 1, dtype=np.int64)
    np.cumsum(np.bincount(users, minlength=num_users), out=indptr[1:])
    return torch.as_tensor(indptr, device=device), torch.as_tensor(items.astype(np.int64), device=device)
