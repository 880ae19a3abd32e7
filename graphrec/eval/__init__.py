"""Evaluation: top-K ranking metrics, rating errors, full and sampled ranking protocols, activity buckets."""

from graphrec.eval.buckets import activity_buckets, bucket_labels, bucket_metrics, user_activity
from graphrec.eval.metrics import VALID_METRICS, RankingAccumulator, ranking_metrics, rating_metrics
from graphrec.eval.ranking import full_ranking, sampled_ranking, topk_items, user_item_csr

__all__ = [
    # metrics
    "VALID_METRICS",
    "ranking_metrics",
    "rating_metrics",
    "RankingAccumulator",
    # protocols
    "full_ranking",
    "sampled_ranking",
    "topk_items",
    "user_item_csr",
    # activity buckets
    "user_activity",
    "activity_buckets",
    "bucket_labels",
    "bucket_metrics",
]
