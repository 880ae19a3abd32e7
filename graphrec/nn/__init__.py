"""The layer library: node embeddings, recommendation models, encoders and losses."""

from graphrec.nn.embedding import NodeEmbedding
from graphrec.nn.heads import DotProductHead
from graphrec.nn.kgat import KGAT
from graphrec.nn.lightgcn import LightGCN, LightGCNEncoder, normalized_bipartite_adjacency
from graphrec.nn.losses import bce_loss, bpr_loss, l2_regularization
from graphrec.nn.mf import MF
from graphrec.nn.popularity import Popularity
from graphrec.nn.sasrec import SASRec, pad_flat_sequences, pad_sequences, sequences_from_interactions

__all__ = [
    "NodeEmbedding",
    "DotProductHead",
    "KGAT",
    "LightGCN",
    "LightGCNEncoder",
    "normalized_bipartite_adjacency",
    "MF",
    "Popularity",
    "SASRec",
    "pad_sequences",
    "pad_flat_sequences",
    "sequences_from_interactions",
    "bpr_loss",
    "bce_loss",
    "l2_regularization",
]

from graphrec.nn.adapters import Adapter, NodePrompt, add_adapters  # noqa: E402
from graphrec.nn.heads import LinearDotHead, MLPHead, RatingHead  # noqa: E402
from graphrec.nn.recommender import GraphRecommender  # noqa: E402

__all__ += ["Adapter", "NodePrompt", "add_adapters", "LinearDotHead", "MLPHead", "RatingHead", "GraphRecommender"]

from graphrec.nn.diffnet import DiffNet  # noqa: E402
from graphrec.nn.encoder import HeteroEncoder  # noqa: E402
from graphrec.nn.hgt import HGT  # noqa: E402
from graphrec.nn.kgat_conv import KGATEncoder  # noqa: E402
from graphrec.nn.rgcn import RGCN  # noqa: E402
from graphrec.nn.sage import HeteroSAGE  # noqa: E402

__all__ += ["HeteroEncoder", "HGT", "RGCN", "HeteroSAGE", "DiffNet", "KGATEncoder"]
