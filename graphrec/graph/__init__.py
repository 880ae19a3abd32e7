"""Recipes -> heterogeneous graphs, id maps, neighbour sampling, and conversions to DGL, networkx and SciPy."""

from graphrec.graph.builder import build
from graphrec.graph.bundle import INTERACTS, REV_INTERACTS, GraphBundle, Interactions, describe
from graphrec.graph.csr import HeteroCSR
from graphrec.graph.convert import from_dgl, from_networkx, from_scipy_csr, to_dgl, to_networkx, to_scipy_csr
from graphrec.graph.cache import default_cache_dir, load_graph
from graphrec.graph.recipe import Recipe, load_recipe
from graphrec.graph.sampling import LinkBatch, NeighborSampler, SampledSubgraph, gather_inputs

__all__ = [
    "build", "load_graph", "default_cache_dir", "GraphBundle", "Interactions", "describe",
    "Recipe", "load_recipe", "INTERACTS", "REV_INTERACTS",
    "to_dgl", "from_dgl", "to_networkx", "from_networkx", "to_scipy_csr", "from_scipy_csr",
    "NeighborSampler", "SampledSubgraph", "LinkBatch", "gather_inputs", "HeteroCSR",
]
