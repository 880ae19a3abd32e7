"""Explainable recommendation with a path language model over the knowledge graph.

The path LM (:class:`graphrec.nn.PathTransformer`) learns typed paths sampled from the training
graph (:mod:`graphrec.graph.paths`); :class:`PathDecoder` generates paths whose every hop is a
real edge; :class:`PathRecommender` ranks items by their best path and measures the lists;
:class:`PathRenderer` writes the paths as sentences; :func:`recommend_with_paths` does all of it
for a finished run folder.
"""

from graphrec.explain.api import ExplainedRun, recommend_with_paths
from graphrec.explain.plot import Plot, plot_neighbourhood, plot_paths
from graphrec.explain.decode import PathDecoder, PathRecommendations
from graphrec.explain.recommender import PathRecommender, build_path_model, explanation_metrics
from graphrec.explain.render import PathRenderer
from graphrec.explain.spec import PathLMTask, load_task

__all__ = ["ExplainedRun", "recommend_with_paths", "PathDecoder", "PathLMTask", "PathRecommendations", "PathRecommender", "PathRenderer",
           "build_path_model", "explanation_metrics", "load_task", "Plot", "plot_paths", "plot_neighbourhood"]
