"""Build a recipe once: later calls load the cached graph while the recipe and its files are unchanged."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

from graphrec.errors import GraphrecError
from graphrec.graph.builder import build
from graphrec.graph.bundle import FORMAT_VERSION, GraphBundle
from graphrec.graph.recipe import Recipe, load_recipe, resolve_source
from graphrec.schema import to_mapping

logger = logging.getLogger("graphrec")


def default_cache_dir() -> Path:
    return Path(os.environ.get("GRAPHREC_CACHE", Path.home() / ".cache" / "graphrec"))


def cache_key(recipe: Recipe, data_root: Path) -> str:
    """A hash of the recipe's content and of every file it names (path, size, modification time)."""
    digest = hashlib.sha256()
    digest.update(json.dumps(to_mapping(recipe), sort_keys=True).encode())
    digest.update(f"format={FORMAT_VERSION}".encode())
    for key, source in recipe_sources(recipe):
        for path in resolve_source(source, data_root, key).path:
            stat = path.stat() if path.exists() else None
            digest.update(f"{path}|{stat.st_size if stat else -1}|{stat.st_mtime_ns if stat else -1}".encode())
    return digest.hexdigest()[:16]


def recipe_sources(recipe: Recipe):
    yield "interactions", recipe.interactions
    for key in ("users", "items", "social", "kg", "item_entity"):
        table = getattr(recipe, key)
        if table is not None:
            yield key, table
    for key in ("users", "items"):
        table = getattr(recipe, key)
        for index, joined in enumerate(table.join if table is not None else ()):
            yield f"{key}.join[{index}]", joined
    if recipe.kg is not None:
        for key in ("entity_names", "relation_names"):
            if getattr(recipe.kg, key) is not None:
                yield f"kg.{key}", getattr(recipe.kg, key)
    for index, table in enumerate(recipe.item_attributes):
        yield f"item_attributes[{index}]", table
        if table.value_names is not None:
            yield f"item_attributes[{index}].value_names", table.value_names


def load_graph(recipe: str | Path | Recipe, data_root: str | Path = "data", cache_dir: str | Path | None = None,
               rebuild: bool = False) -> GraphBundle:
    """Load the cached graph of a recipe, building (and caching) it when needed.

    Args:
        recipe: a :class:`Recipe`, a recipe file, or the name of a recipe under ``graphs/``.
        data_root: the folder that the recipe's relative paths start from.
        cache_dir: where built graphs are kept (default ``$GRAPHREC_CACHE`` or ``~/.cache/graphrec``).
        rebuild: build even when a cached copy exists.
    """
    if not isinstance(recipe, Recipe):
        recipe, _ = load_recipe(recipe)
    data_root = Path(data_root)
    cache_root = Path(cache_dir or default_cache_dir())
    folder = cache_root / f"{recipe.name}-{cache_key(recipe, data_root)}"
    if not rebuild and (folder / "meta.json").is_file():
        try:
            return GraphBundle.load(folder)
        except GraphrecError as exc:
            logger.warning("cached graph %s is unreadable (%s); rebuilding", folder, exc)
    bundle = build(recipe, data_root, text_cache_dir=cache_root / "text")
    try:
        bundle.save(folder)
    except OSError as exc:  # a read-only cache must not stop the run
        logger.warning("could not cache the graph in %s (%s)", folder, exc)
    return bundle
