"""The top-K lists of a few test users, for a run's report."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

SAMPLE_USERS = 3
SAMPLE_K = 10


def sample_recommendations(run_dir: str | Path, num_users: int = SAMPLE_USERS, k: int = SAMPLE_K
                           ) -> list[dict[str, Any]]:
    """Top-``k`` lists of a few test users, chosen across training activity (least to most active).

    Training and validation items are masked and test items are not, as in the test metrics, so an
    item the user interacted with in the test split is a hit. A path-LM run gives each item's path
    as sentences (``explanation``).
    """
    from graphrec.eval import topk_items, user_activity
    from graphrec.pipeline import load_run, score_function

    config, data, model = load_run(run_dir, history="train+valid")
    bundle, idmap = data.bundle, data.bundle.idmap
    activity = user_activity(data.train, bundle.num_users)  # [U]
    test_users = data.test[0].unique()
    if test_users.numel() == 0:
        return []
    by_activity = test_users[torch.argsort(activity[test_users], stable=True)]
    picks = by_activity[np.unique(np.linspace(0, len(by_activity) - 1, min(num_users, len(by_activity))).round()
                                  .astype(np.int64))]
    k = min(k, bundle.num_items)
    if config.model.name == "path_lm":
        from graphrec.explain.api import recommend_with_paths
        from graphrec.explain.render import PathRenderer
        from graphrec.graph.recipe import load_recipe

        renderer = PathRenderer(model.graph, idmap, load_recipe(config.graph.recipe)[0].phrases)
        lists = recommend_with_paths(model, [idmap.raw("user", int(user)) for user in picks], k, renderer=renderer,
                                     exclude=[data.valid])
        ranked = [[(idmap.index_of("item", row["item"]), row["score"], row["explanation"]) for row in entry["items"]]
                  for entry in lists]
    else:
        scores, items = topk_items(_candidates_only(score_function(model), data.candidate_items, bundle.num_items),
                                   picks, k, [data.train, data.valid], bundle.num_users, bundle.num_items)
        ranked = [[(item, score, None) for item, score in zip(items[row].tolist(), scores[row].tolist())
                   if score > float("-inf")] for row in range(len(picks))]
    samples = []
    for user, rows in zip(picks.tolist(), ranked):
        held_out = data.test[1][data.test[0] == user].tolist()
        seen = data.train[1][data.train[0] == user].tolist()
        samples.append({
            "user": idmap.raw("user", user),
            "activity": int(activity[user]),
            "history": [idmap.name("item", item) for item in seen[:5]],
            "held_out": [idmap.name("item", item) for item in held_out],
            "items": [{"rank": rank + 1, "item": idmap.raw("item", item), "name": idmap.name("item", item),
                       "score": score, "hit": item in held_out, "explanation": explanation}
                      for rank, (item, score, explanation) in enumerate(rows)],
        })
    return samples


def _candidates_only(score_fn: Callable[[torch.Tensor], torch.Tensor], candidates: torch.Tensor | None,
                     num_items: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """A domain split ranks only its part's items: the others score -inf."""
    if candidates is None:
        return score_fn
    outside = torch.full((num_items,), float("-inf"))
    outside[candidates.cpu()] = 0.0

    def masked(users: torch.Tensor) -> torch.Tensor:
        scores = score_fn(users)  # [B, I]
        return scores + outside.to(scores.device)

    return masked
