"""A trained path language model with its graph: recommend, explain, and measure both.

Ranking metrics come from the decoded top-K lists (an item no path reaches is never in a list,
so it counts as a miss: the rank-all protocol). Explanation metrics follow the path-reasoning
literature (PGPR, CAFE, PEARLM):

* ``validity``: share of returned paths whose every hop is an edge of the training graph;
* ``coverage``: share of the ``users x K`` list slots filled with an item that has a path;
* ``patterns``: distinct relation sequences among all returned paths, and
  ``pattern_diversity``: per user, distinct patterns over paths in the list, averaged;
* ``path_length``: mean number of hops.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from graphrec.eval.metrics import VALID_METRICS, RankingAccumulator
from graphrec.eval.ranking import csr_rows, user_item_csr
from graphrec.explain.decode import PathDecoder, PathRecommendations
from graphrec.explain.spec import PathLMTask
from graphrec.graph.paths import PathGraph, Paths, check_paths
from graphrec.nn.path_lm import PathTokenizer, PathTransformer


def build_path_model(graph: PathGraph, task: PathLMTask) -> PathTransformer:
    """A fresh :class:`PathTransformer` sized for ``graph`` as ``task`` says."""
    tokenizer = PathTokenizer(len(graph.relations), graph.offsets.tolist())
    return PathTransformer(tokenizer, torch.from_numpy(graph.relation_target_type()), max_hops=task.max_hops,
                           dim=task.model.dim, num_layers=task.model.num_layers, num_heads=task.model.num_heads,
                           dropout=task.model.dropout)


class PathRecommender:
    """Recommends items with the path LM by constrained decoding over ``graph``.

    Args:
        model: the trained path LM.
        graph: the path graph of the training interactions.
        task: its task (decoding settings).
    """

    def __init__(self, model: PathTransformer, graph: PathGraph, task: PathLMTask) -> None:
        self.model, self.graph, self.task = model, graph, task

    def decoder(self, constrained: bool | None = None, exclude: Sequence[Tensor] = (), seed: int = 0) -> PathDecoder:
        spec = self.task.decode
        return PathDecoder(self.model, self.graph, hops=spec.hops, beam_width=spec.beam_width,
                           constrained=spec.constrained if constrained is None else constrained,
                           strategy=spec.strategy, temperature=spec.temperature, exclude=exclude, seed=seed,
                           aggregate=spec.aggregate)

    def recommend(self, users: Tensor | Sequence[int], k: int = 10, constrained: bool | None = None,
                  exclude: Sequence[Tensor] = (), progress: bool = False) -> PathRecommendations:
        """Top-``k`` items with paths for local ``users``, decoded ``decode.batch_size`` users at a time."""
        users = torch.as_tensor(users, dtype=torch.long)
        decoder = self.decoder(constrained, exclude)
        parts = [decoder.recommend(chunk, k)
                 for chunk in tqdm(users.split(self.task.decode.batch_size), desc="decoding", leave=False,
                                   disable=None if progress else True)]
        if not parts:
            hops = self.task.decode.hops
            empty = torch.zeros(0, k, dtype=torch.long)
            return PathRecommendations(users, empty, empty.float(), torch.zeros(0, k, hops + 1, dtype=torch.long),
                                       torch.zeros(0, k, hops, dtype=torch.long))
        return PathRecommendations(*(torch.cat([getattr(p, name).cpu() for p in parts])
                                     for name in ("users", "items", "scores", "nodes", "relations")))

    def evaluate(self, eval_edges: Tensor, exclude: Sequence[Tensor] = (), ks: Sequence[int] = (10, 20),
                 names: Sequence[str] = VALID_METRICS, users: Tensor | None = None, constrained: bool | None = None,
                 progress: bool = False) -> dict[str, float]:
        """Ranking metrics of the decoded lists against ``eval_edges`` plus explanation metrics.

        ``users`` defaults to every user with an eval edge; ``exclude`` are (user, item) edges,
        besides the training ones, that may not be recommended (validation edges when testing).
        """
        num_users, num_items = self.graph.num_users, self.graph.num_items
        indptr, indices = user_item_csr(eval_edges, num_users, num_items)
        if users is None:
            users = torch.nonzero(indptr[1:] > indptr[:-1]).squeeze(1)
        recs = self.recommend(users, max(ks), constrained, exclude, progress)
        hits = list_hits(recs.items, recs.users, indptr, indices, num_items)
        accumulator = RankingAccumulator(ks, names)
        accumulator.update(hits, indptr[recs.users + 1] - indptr[recs.users], recs.users)
        metrics = accumulator.compute()
        metrics["num_users"] = accumulator.num_users
        metrics.update(explanation_metrics(self.graph, recs))
        return metrics


def list_hits(items: Tensor, users: Tensor, indptr: Tensor, indices: Tensor, num_items: int) -> Tensor:
    """``[B, K]`` bool: whether each listed item (``-1``: empty slot) is among the user's relevant items."""
    truth = torch.zeros(len(users), num_items + 1, dtype=torch.bool)
    rows, _, cols = csr_rows(indptr, indices, users)
    truth[rows, cols] = True
    return truth.gather(1, torch.where(items >= 0, items, torch.full_like(items, num_items)))


def explanation_metrics(graph: PathGraph, recs: PathRecommendations) -> dict[str, float]:
    """Validity, coverage, relation-pattern diversity and length of the paths behind ``recs``."""
    found = (recs.items >= 0).cpu()
    paths = recs.paths()
    slots = found.numel()
    if len(paths) == 0:
        return {"validity": 0.0, "coverage": 0.0, "patterns": 0, "pattern_diversity": 0.0, "path_length": 0.0}
    relations = recs.relations.cpu().numpy()
    per_user = []
    for row in range(relations.shape[0]):  # K paths per user: a short loop over users, not over steps
        kept = relations[row][found[row].numpy()]
        if len(kept):
            per_user.append(len(np.unique(kept, axis=0)) / len(kept))
    return {
        "validity": float(check_paths(graph, paths).mean()),
        "coverage": float(found.sum()) / slots if slots else 0.0,
        "patterns": int(len(np.unique(paths.relations, axis=0))),
        "pattern_diversity": float(np.mean(per_user)) if per_user else 0.0,
        "path_length": float(paths.hops),
    }


def pattern_counts(graph: PathGraph, paths: Paths, top: int = 10) -> list[tuple[str, int]]:
    """The most frequent relation patterns, as ``"interacts > starred_by_actor > rev_starred_by_actor"``."""
    patterns, counts = np.unique(paths.relations, axis=0, return_counts=True)
    order = np.argsort(-counts)[:top]
    return [(" > ".join(graph.relations[r][1] for r in patterns[i]), int(counts[i])) for i in order]
