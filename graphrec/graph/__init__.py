"""Recipes -> heterogeneous graphs, id maps, and conversions to DGL, networkx and SciPy."""

from graphrec.graph.builder import build
from graphrec.graph.bundle import INTERACTS, REV_INTERACTS, GraphBundle, Interactions, describe
from graphrec.graph.cache import default_cache_dir, load_graph
from graphrec.graph.recipe import Recipe, load_recipe

__all__ = [
    "build", "load_graph", "default_cache_dir", "GraphBundle", "Interactions", "describe",
    "Recipe", "load_recipe", "INTERACTS", "REV_INTERACTS",
]
