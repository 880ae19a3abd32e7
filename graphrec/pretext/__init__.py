"""Self-supervised pretext tasks for pre-training a graph encoder, and recipes that combine them.

Every task is a :class:`PretextTask` with ``loss(model, batch) -> Tensor``:

* :class:`MaskedNodePrediction`: recover masked nodes' attributes or text (G-BERT, PMGT);
* :class:`MaskedEdgePrediction`: recover hidden edges against random ones (CHEST, MaskGAE);
* :class:`MetaPathPrediction`: tell which meta-path joins two nodes (CHEST);
* :class:`ContrastiveViews`: agree across two random views (SGL, SimGCL);
* :class:`MultiTask`: a weighted (fixed or uncertainty-learned) sum, with a :class:`Curriculum`.

A recipe under ``pretext/`` names the tasks; :func:`load_pretext_recipe` reads it and
:func:`build_multitask` resolves it against a graph. :class:`graphrec.pretext.sampled.SampledBatches`
runs them on neighbour-sampled subgraphs instead of the whole graph.
"""

from graphrec.pretext.base import (
    PretextBatch, PretextModel, PretextTask, canonical_edge_types, remove_edges, reverse_edge_type,
)
from graphrec.pretext.contrastive import ContrastiveViews, info_nce
from graphrec.pretext.masked_edge import MaskedEdgePrediction
from graphrec.pretext.masked_node import MaskedNodePrediction, attribute_fields
from graphrec.pretext.metapath import MetaPathPrediction
from graphrec.pretext.multitask import Curriculum, MultiTask
from graphrec.pretext.recipe import (
    PretextRecipe, build_multitask, default_pretext_dir, find_pretext_recipe, load_pretext_recipe,
)

__all__ = [
    # the interface every task implements
    "PretextTask",
    "PretextModel",
    "PretextBatch",
    # tasks
    "MaskedNodePrediction",
    "MaskedEdgePrediction",
    "MetaPathPrediction",
    "ContrastiveViews",
    "MultiTask",
    "Curriculum",
    # recipes
    "PretextRecipe",
    "load_pretext_recipe",
    "find_pretext_recipe",
    "default_pretext_dir",
    "build_multitask",
    # helpers
    "info_nce",
    "attribute_fields",
    "reverse_edge_type",
    "canonical_edge_types",
    "remove_edges",
]
