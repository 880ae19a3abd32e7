import math

import pytest
import torch

from graphrec.eval.metrics import VALID_METRICS, RankingAccumulator, ranking_metrics, rating_metrics

LOG2_3 = math.log2(3)


@pytest.fixture
def ranking():
    # user 0: relevant at ranks 0 and 2, 3 relevant items in total
    # user 1: relevant at rank 1, 1 relevant item
    # user 2: no hit, 2 relevant items
    # user 3: no relevant item at all (left out of every mean)
    hits = torch.tensor([
        [True, False, True, False],
        [False, True, False, False],
        [False, False, False, False],
        [False, False, False, False],
    ])
    num_relevant = torch.tensor([3, 1, 2, 0])
    return hits, num_relevant


def test_ranking_metrics_by_hand(ranking):
    hits, num_relevant = ranking
    out = ranking_metrics(hits, num_relevant, ks=(2, 4))
    expected = {
        # K = 2
        "recall@2": [1 / 3, 1.0, 0.0, 0.0],
        "precision@2": [1 / 2, 1 / 2, 0.0, 0.0],
        "hr@2": [1.0, 1.0, 0.0, 0.0],
        # user 0: DCG = 1/log2(2); IDCG over min(3, 2) = 2 items = 1 + 1/log2(3)
        # user 1: DCG = 1/log2(3); IDCG over min(1, 2) = 1 item = 1
        "ndcg@2": [1 / (1 + 1 / LOG2_3), 1 / LOG2_3, 0.0, 0.0],
        "mrr@2": [1.0, 1 / 2, 0.0, 0.0],
        # user 0: P@1 * 1 / min(3, 2); user 1: P@2 * 1 / min(1, 2) = (1/2) / 1
        "map@2": [1 / 2, 1 / 2, 0.0, 0.0],
        # K = 4
        "recall@4": [2 / 3, 1.0, 0.0, 0.0],
        "precision@4": [2 / 4, 1 / 4, 0.0, 0.0],
        "hr@4": [1.0, 1.0, 0.0, 0.0],
        # user 0: NDCG = (1/log2(2) + 1/log2(4)) / (1 + 1/log2(3) + 1/log2(4)) = 1.5 / 2.1309 = 0.7039
        "ndcg@4": [1.5 / (1 + 1 / LOG2_3 + 0.5), 1 / LOG2_3, 0.0, 0.0],
        "mrr@4": [1.0, 1 / 2, 0.0, 0.0],
        # user 0: (P@1 * 1 + P@3 * 1) / min(3, 4) = (1 + 2/3) / 3 = 5/9
        "map@4": [5 / 9, 1 / 2, 0.0, 0.0],
    }
    assert set(out) == set(expected)
    for key, values in expected.items():
        torch.testing.assert_close(out[key], torch.tensor(values), msg=key)
    assert out["ndcg@4"][0].item() == pytest.approx(0.70392, abs=1e-5)


def test_ranking_metrics_subset_of_names(ranking):
    hits, num_relevant = ranking
    out = ranking_metrics(hits, num_relevant, ks=[1], names=["hr", "mrr"])
    assert list(out) == ["hr@1", "mrr@1"]
    torch.testing.assert_close(out["hr@1"], torch.tensor([1.0, 0.0, 0.0, 0.0]))


def test_accumulator_means_over_users_with_relevant_items(ranking):
    hits, num_relevant = ranking
    accumulator = RankingAccumulator(ks=(2, 4))
    accumulator.update(hits[:2], num_relevant[:2], users=torch.tensor([0, 1]))
    accumulator.update(hits[2:], num_relevant[2:], users=torch.tensor([2, 3]))
    result = accumulator.compute()
    assert accumulator.num_users == 3
    # user 3 (no relevant item) is ignored: mean over users 0, 1, 2
    assert result["recall@4"] == pytest.approx((2 / 3 + 1 + 0) / 3)
    assert result["map@4"] == pytest.approx((5 / 9 + 1 / 2 + 0) / 3)
    assert result["hr@2"] == pytest.approx(2 / 3)
    assert result["mrr@2"] == pytest.approx((1 + 1 / 2) / 3)

    per_user = accumulator.per_user()
    assert per_user["user"].tolist() == [0, 1, 2, 3]
    assert per_user["num_relevant"].tolist() == [3, 1, 2, 0]
    assert per_user["precision@4"].tolist() == pytest.approx([0.5, 0.25, 0.0, 0.0])

    accumulator.reset()
    assert accumulator.num_users == 0
    assert accumulator.compute()["ndcg@2"] == 0.0


def test_one_chunk_equals_many(ranking):
    hits, num_relevant = ranking
    whole, split = RankingAccumulator((1, 3)), RankingAccumulator((1, 3))
    whole.update(hits, num_relevant)
    for row in range(hits.size(0)):
        split.update(hits[row:row + 1], num_relevant[row:row + 1])
    assert whole.compute() == pytest.approx(split.compute())


def test_unknown_metric_names_it_and_lists_valid_names(ranking):
    hits, num_relevant = ranking
    with pytest.raises(ValueError, match=r"unknown ranking metric 'ndgc' \(did you mean 'ndcg'\?\)") as info:
        ranking_metrics(hits, num_relevant, ks=(2,), names=("ndgc",))
    assert ", ".join(VALID_METRICS) in str(info.value)
    with pytest.raises(ValueError, match="unknown ranking metric 'auc'"):
        RankingAccumulator(ks=(5,), names=("recall", "auc"))


def test_bad_cutoffs(ranking):
    hits, num_relevant = ranking
    with pytest.raises(ValueError, match=r"cut-off k=5 exceeds the 4 ranked items"):
        ranking_metrics(hits, num_relevant, ks=(2, 5))
    with pytest.raises(ValueError, match=r"positive integer \(got 0"):
        ranking_metrics(hits, num_relevant, ks=(0,))
    with pytest.raises(ValueError, match="num_relevant must have shape \\[4\\]"):
        ranking_metrics(hits, num_relevant[:3], ks=(1,))


def test_rating_metrics():
    # errors: -1, 0, -2 -> RMSE = sqrt((1 + 0 + 4) / 3), MAE = (1 + 0 + 2) / 3
    out = rating_metrics(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([2.0, 2.0, 5.0]))
    assert out["rmse"] == pytest.approx(math.sqrt(5 / 3))
    assert out["mae"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="same shape"):
        rating_metrics(torch.zeros(3), torch.zeros(2))
