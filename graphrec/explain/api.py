"""Recommendations with explanations from a trained path-LM run: the API behind ``graphrec explain``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch

from graphrec.errors import ConfigError
from graphrec.explain.recommender import PathRecommender
from graphrec.explain.render import PathRenderer
from graphrec.graph.recipe import load_recipe


class ExplainedRun:
    """A finished path-LM run, loaded: the recommender, its renderer, the id map and the split."""

    def __init__(self, run_dir: str | Path, device: str = "cpu") -> None:
        from graphrec.explain.runner import load_path_run
        from graphrec.pipeline import load_run_data

        self.config, self.data = load_run_data(run_dir)
        if self.config.model.name != "path_lm":
            raise ConfigError(f"{run_dir}: the run trained '{self.config.model.name}', not a path_lm; explanations "
                              f"need a run with model.name: path_lm")
        self.recommender = load_path_run(Path(run_dir), self.config, self.data, device)
        recipe, _ = load_recipe(self.config.graph.recipe)
        self.idmap = self.data.bundle.idmap
        self.renderer = PathRenderer(self.recommender.graph, self.idmap, recipe.phrases)


def recommend_with_paths(model: PathRecommender | ExplainedRun | str | Path, user_ids: Sequence[str], k: int = 10,
                         *, renderer: PathRenderer | None = None, constrained: bool | None = None,
                         exclude: Sequence[torch.Tensor] | None = None) -> list[dict[str, Any]]:
    """Top-``k`` items for users given by raw id, each with its path and the path as sentences.

    Args:
        model: a run folder, an :class:`ExplainedRun`, or a :class:`PathRecommender` (then
            ``renderer`` is needed to print names).
        user_ids: raw user ids as in the data.
        k: list length.
        constrained: override the run's decoding constraint (``False`` may give invalid hops).
        exclude: ``[2, E]`` (user, item) edges that may not be recommended besides the training
            ones; with a run the default is its validation and test edges, so that every
            recommendation is new to the user.

    Returns:
        ``[{"user", "items": [{"rank", "item", "name", "score", "path", "explanation"}]}]``;
        ``path`` alternates node entries (``type``, ``id``, ``name``) and relation entries.
    """
    if k < 1:
        raise ConfigError(f"-k must be at least 1, found {k}")
    if isinstance(model, (str, Path)):
        model = ExplainedRun(model)
    if isinstance(model, ExplainedRun):
        renderer = renderer or model.renderer
        if exclude is None:
            exclude = [model.data.valid, model.data.test]
        recommender = model.recommender
    else:
        recommender = model
    if renderer is None:
        raise ConfigError("recommend_with_paths: pass a renderer (PathRenderer) with a bare PathRecommender")
    users = [renderer.idmap.index_of("user", raw) for raw in user_ids]
    recs = recommender.recommend(torch.tensor(users, dtype=torch.long), k, constrained=constrained,
                                 exclude=exclude or ())
    out = []
    for row, raw in enumerate(user_ids):
        items = []
        for rank in range(recs.items.shape[1]):
            item = int(recs.items[row, rank])
            if item < 0:
                break
            nodes, relations = recs.nodes[row, rank].tolist(), recs.relations[row, rank].tolist()
            items.append({
                "rank": rank + 1,
                "item": renderer.idmap.raw("item", item),
                "name": renderer.idmap.name("item", item),
                "score": float(recs.scores[row, rank]),
                "path": renderer.as_json(nodes, relations),
                "explanation": renderer.sentence(nodes, relations),
            })
        out.append({"user": raw, "items": items})
    return out
