import math

import pytest
import torch

from graphrec.eval import RankingAccumulator, activity_buckets, bucket_labels, bucket_metrics, full_ranking, \
    user_activity
from tests.eval.test_ranking import random_split

LABELS = ["<10", "10-19", "20-49", "50-99", ">=100"]


def test_labels_and_boundaries():
    assert bucket_labels() == LABELS
    assert bucket_labels((1, 2, 5)) == ["<1", "1", "2-4", ">=5"]
    counts = torch.tensor([0, 9, 10, 19, 20, 49, 50, 99, 100, 1000])
    bucket, labels = activity_buckets(counts)
    assert bucket.tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    assert labels == LABELS
    assert activity_buckets(counts.to(torch.int32), (10,))[0].tolist() == [0, 0] + [1] * 8


def test_user_activity_counts_training_rows():
    train = torch.tensor([[0, 0, 2, 2, 2], [1, 2, 0, 1, 2]])
    assert user_activity(train, 4).tolist() == [2, 0, 3, 0]
    with pytest.raises(ValueError, match=r"user ids in \[0, 2\]; expected 0..1"):
        user_activity(train, 2)


def test_bucket_metrics_by_hand():
    # user 4 (3 train rows):   hits [T, F, F], 1 relevant -> recall@1 1, recall@3 1,   ndcg@3 1
    # user 1 (25 train rows):  hits [F, T, F], 2 relevant -> recall@1 0, recall@3 1/2,
    #                                                      ndcg@3 (1/log2 3) / (1 + 1/log2 3)
    # user 0 (7 train rows):   hits [F, F, F], 1 relevant -> all 0
    # user 2 (150 train rows): no relevant item           -> left out
    accumulator = RankingAccumulator(ks=(1, 3), names=("recall", "ndcg"))
    hits = torch.tensor([[True, False, False], [False, True, False], [False, False, False], [False, False, False]])
    accumulator.update(hits, torch.tensor([1, 2, 1, 0]), torch.tensor([4, 1, 0, 2]))
    train_counts = torch.tensor([7, 25, 150, 0, 3])

    out = bucket_metrics(accumulator.per_user(), None, train_counts)

    assert list(out) == LABELS
    assert out["<10"] == pytest.approx({"recall@1": 0.5, "ndcg@1": 0.5, "recall@3": 0.5, "ndcg@3": 0.5,
                                        "num_users": 2})
    second = 1 / math.log2(3)
    assert out["20-49"] == pytest.approx({"recall@1": 0.0, "ndcg@1": 0.0, "recall@3": 0.5,
                                          "ndcg@3": second / (1 + second), "num_users": 1})
    assert out["10-19"] == out["50-99"] == out[">=100"] == {"num_users": 0}  # user 2 has no relevant item
    # explicit user ids give the same answer
    per_user = accumulator.per_user()
    assert bucket_metrics(per_user, per_user.pop("user"), train_counts) == out


def test_buckets_add_up_to_the_overall_means():
    scores, train, test = random_split(num_users=20, num_items=30)
    summary, per_user = full_ranking(lambda u: scores[u], 20, 30, test, [train], ks=(5,), return_per_user=True)
    out = bucket_metrics(per_user, None, user_activity(train, 20), edges=(4, 6))
    assert sum(row["num_users"] for row in out.values()) == summary["num_users"]
    for key in ("recall@5", "ndcg@5", "map@5"):
        weighted = sum(row[key] * row["num_users"] for row in out.values() if row["num_users"])
        assert weighted / summary["num_users"] == pytest.approx(summary[key])


def test_bucket_errors_name_the_problem():
    with pytest.raises(ValueError, match=r"must increase strictly \(got \[10, 10\]\)"):
        bucket_labels((10, 10))
    with pytest.raises(ValueError, match="at least one edge"):
        activity_buckets(torch.tensor([1]), ())
    with pytest.raises(ValueError, match=r"positive integers \(got \[0, 5\]\)"):
        bucket_labels((0, 5))
    per_user = {"recall@5": torch.tensor([1.0, 0.0]), "num_relevant": torch.tensor([1, 1])}
    with pytest.raises(ValueError, match="needs the evaluated user ids"):
        bucket_metrics(per_user, None, torch.tensor([1, 2]))
    with pytest.raises(ValueError, match=r"users must lie in 0..1 to index train_counts"):
        bucket_metrics(per_user, torch.tensor([0, 5]), torch.tensor([1, 2]))
    with pytest.raises(ValueError, match=r"per_user\['recall@5'\] has 2 values but there are 3 users"):
        bucket_metrics(per_user, torch.tensor([0, 1, 1]), torch.tensor([1, 2]))
