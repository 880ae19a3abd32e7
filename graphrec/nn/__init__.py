"""The layer library: node embeddings, recommendation models, encoders and losses."""

from graphrec.nn.embedding import NodeEmbedding
from graphrec.nn.heads import DotProductHead
from graphrec.nn.kgat import KGAT
from graphrec.nn.lightgcn import LightGCN, LightGCNEncoder, normalized_bipartite_adjacency
from graphrec.nn.losses import bce_loss, bpr_loss, l2_regularization
from graphrec.nn.mf import MF
from graphrec.nn.popularity import Popularity

__all__ = [
    "NodeEmbedding",
    "DotProductHead",
    "KGAT",
    "LightGCN",
    "LightGCNEncoder",
    "normalized_bipartite_adjacency",
    "MF",
    "Popularity",
    "bpr_loss",
    "bce_loss",
    "l2_regularization",
]
