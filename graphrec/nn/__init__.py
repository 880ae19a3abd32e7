"""The layer library: node inputs, heterogeneous encoders, heads, adapters, losses and whole models.

Importing it imports torch and nothing heavier: :class:`HeteroSAGE`, built on PyG's ``SAGEConv``
(and PyG's import pulls in ``pandas`` and, when installed, ``transformers``), is loaded on first
access, so ``from graphrec.nn import HeteroSAGE`` works as for any other name.
"""

from graphrec.nn.adapters import Adapter, NodePrompt, add_adapters
from graphrec.nn.diffnet import DiffNet
from graphrec.nn.embedding import NodeEmbedding
from graphrec.nn.encoder import HeteroEncoder
from graphrec.nn.functional import segment_softmax
from graphrec.nn.heads import DotProductHead, LinearDotHead, MLPHead, RatingHead
from graphrec.nn.hgt import HGT, HGTLayer
from graphrec.nn.kgat import KGAT, BiInteraction, SparsePattern, pattern_sddmm, pattern_spmm, sparse_pattern
from graphrec.nn.kgat_conv import KGATEncoder
from graphrec.nn.lightgcn import LightGCN, LightGCNEncoder, normalized_bipartite_adjacency
from graphrec.nn.losses import bce_loss, bpr_loss, l2_regularization
from graphrec.nn.mf import MF
from graphrec.nn.path_lm import PathTokenizer, PathTransformer
from graphrec.nn.popularity import Popularity
from graphrec.nn.recommender import GraphRecommender
from graphrec.nn.rgcn import RGCN
from graphrec.nn.sasrec import SASRec, pad_flat_sequences, pad_sequences, sequences_from_interactions

# Names imported on first access (PEP 562): name -> module.
_LAZY = {"HeteroSAGE": "graphrec.nn.sage"}

__all__ = [
    # node inputs
    "NodeEmbedding",
    # heterogeneous encoders: forward(x_dict, edge_index_dict) -> h_dict
    "HeteroEncoder",
    "LightGCNEncoder",
    "HGT",
    "RGCN",
    "HeteroSAGE",
    "DiffNet",
    "KGATEncoder",
    # layers
    "HGTLayer",
    "BiInteraction",
    # heads: score user-item pairs
    "DotProductHead",
    "LinearDotHead",
    "MLPHead",
    "RatingHead",
    # parameter-efficient fine-tuning
    "Adapter",
    "add_adapters",
    "NodePrompt",
    # models
    "GraphRecommender",
    "Popularity",
    "MF",
    "LightGCN",
    "KGAT",
    "SASRec",
    "PathTransformer",
    "PathTokenizer",
    # losses
    "bpr_loss",
    "bce_loss",
    "l2_regularization",
    # functional: sparse products, softmax over segments, adjacency
    "segment_softmax",
    "SparsePattern",
    "sparse_pattern",
    "pattern_spmm",
    "pattern_sddmm",
    "normalized_bipartite_adjacency",
    # sequences
    "pad_sequences",
    "pad_flat_sequences",
    "sequences_from_interactions",
]


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value  # later accesses skip this function
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
