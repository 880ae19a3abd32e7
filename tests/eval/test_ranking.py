import math

import pytest
import torch

from graphrec.eval.ranking import _sample_negatives, full_ranking, sampled_ranking, topk_items, user_item_csr

LOG2_3 = math.log2(3)

# 4 users x 6 items
SCORES = torch.tensor([
    [0.9, 0.8, 0.7, 0.6, 0.5, 0.4],
    [0.1, 0.2, 0.3, 0.4, 0.5, 0.6],
    [0.5, 0.9, 0.1, 0.8, 0.2, 0.7],
    [0.3, 0.1, 0.9, 0.2, 0.8, 0.4],
])
# train: u0 {0}, u1 {4, 5}, u2 {1}, u3 {2}
TRAIN = torch.tensor([[0, 1, 1, 2, 3], [0, 5, 4, 1, 2]])
# eval: u0 {2, 5}, u1 {3}, u2 {0}; u3 has none and is not evaluated
EVAL = torch.tensor([[0, 0, 1, 2], [2, 5, 3, 0]])


def score_fn(users):
    return SCORES[users]


def random_split(num_users=20, num_items=30, seed=0):
    generator = torch.Generator().manual_seed(seed)
    scores = torch.rand(num_users, num_items, generator=generator)  # distinct almost surely
    train, test = [], []
    for user in range(num_users):
        perm = torch.randperm(num_items, generator=generator)
        num_train, num_test = 3 + user % 5, user % 4  # some users have no test item
        train += [(user, int(i)) for i in perm[:num_train]]
        test += [(user, int(i)) for i in perm[num_train:num_train + num_test]]
    return scores, torch.tensor(train).t(), torch.tensor(test).t()


def test_user_item_csr_sorts_and_deduplicates():
    edges = torch.tensor([[1, 0, 1, 1, 2], [3, 2, 0, 3, 1]])
    indptr, indices = user_item_csr(edges, num_users=4)
    assert indptr.tolist() == [0, 1, 3, 4, 4]
    assert indices.tolist() == [2, 0, 3, 1]
    with pytest.raises(ValueError, match=r"user ids in \[0, 2\]; expected 0..1"):
        user_item_csr(edges, num_users=2)
    with pytest.raises(ValueError, match=r"item id 3; expected 0..2"):
        user_item_csr(edges, num_users=4, num_items=3)


def test_full_ranking_by_hand():
    # after masking train items:
    #   u0 ranks 1, 2, 3, ...  -> hits [F, T, F]  (eval {2, 5})
    #   u1 ranks 3, 2, 1, ...  -> hits [T, F, F]  (eval {3})
    #   u2 ranks 3, 5, 0, ...  -> hits [F, F, T]  (eval {0})
    summary, per_user = full_ranking(score_fn, 4, 6, EVAL, [TRAIN], ks=(1, 3), return_per_user=True)
    assert summary["num_users"] == 3
    assert summary["recall@1"] == pytest.approx(1 / 3)
    assert summary["recall@3"] == pytest.approx((1 / 2 + 1 + 1) / 3)
    assert summary["precision@3"] == pytest.approx(1 / 3)
    assert summary["hr@1"] == pytest.approx(1 / 3)
    assert summary["mrr@3"] == pytest.approx((1 / 2 + 1 + 1 / 3) / 3)
    # u0: (1/log2(3)) / (1 + 1/log2(3)); u1: 1; u2: (1/log2(4)) / 1
    ndcg = [(1 / LOG2_3) / (1 + 1 / LOG2_3), 1.0, 0.5]
    assert summary["ndcg@3"] == pytest.approx(sum(ndcg) / 3)
    # u0: P@2 / min(2, 3) = (1/2)/2; u1: 1; u2: P@3 / 1 = 1/3
    assert summary["map@3"] == pytest.approx((1 / 4 + 1 + 1 / 3) / 3)
    assert per_user["user"].tolist() == [0, 1, 2]
    assert per_user["ndcg@3"].tolist() == pytest.approx(ndcg)


def test_full_ranking_without_masking_counts_train_items():
    # without the train mask u0's top-1 is item 0 (train), u1's is item 5: no hit at 1 for anyone
    summary = full_ranking(score_fn, 4, 6, EVAL, (), ks=(1,), names=("hr",))
    assert summary == {"hr@1": 0.0, "num_users": 3}


def test_full_ranking_given_users_includes_users_without_eval_items():
    summary = full_ranking(score_fn, 4, 6, EVAL, [TRAIN], ks=(1,), names=("recall",), users=[1, 3])
    assert summary == {"recall@1": pytest.approx(1.0), "num_users": 1}


@pytest.mark.parametrize("chunk_size", [1, 3, 7])
def test_chunking_gives_same_metrics(chunk_size):
    scores, train, test = random_split()
    fn = lambda users: scores[users]  # noqa: E731
    one = full_ranking(fn, 20, 30, test, [train], ks=(5, 10), chunk_size=None)
    many = full_ranking(fn, 20, 30, test, [train], ks=(5, 10), chunk_size=chunk_size)
    assert one["num_users"] == 15
    assert many == pytest.approx(one)
    assert sampled_ranking(fn, 20, 30, test, [train], num_negatives=30, ks=(5,), chunk_size=chunk_size) \
        == pytest.approx(sampled_ranking(fn, 20, 30, test, [train], num_negatives=30, ks=(5,)))


def test_memory_budget_sets_the_chunk_and_cached_scores_stay_untouched():
    scores, train, test = random_split()
    cached = scores.clone()
    seen = []

    def view_of_cache(users):  # users come sorted and contiguous here: a view, not a copy
        seen.append(users.numel())
        return cached[int(users[0]):int(users[-1]) + 1]

    # 8 bytes per score (the scores and their masked copy): 30 items x 8 B x 3 users = 720 B
    summary = full_ranking(view_of_cache, 20, 30, test, [train], ks=(5, 10), users=torch.arange(20),
                           max_chunk_bytes=720)
    assert seen == [3] * 6 + [2]
    assert torch.equal(cached, scores)  # masking wrote into a copy, never into score_fn's tensor
    assert summary == pytest.approx(full_ranking(lambda u: scores[u], 20, 30, test, [train], ks=(5, 10),
                                                 users=torch.arange(20)))
    with pytest.raises(ValueError, match=r"max_chunk_bytes must be a positive integer \(got 0\)"):
        full_ranking(score_fn, 4, 6, EVAL, [TRAIN], ks=(1,), max_chunk_bytes=0)


def test_topk_items_never_returns_a_masked_item():
    scores, items = topk_items(score_fn, torch.tensor([0, 1, 2]), 3, [TRAIN], 4, 6)
    assert items.tolist() == [[1, 2, 3], [3, 2, 1], [3, 5, 0]]
    assert scores[1].tolist() == pytest.approx([0.4, 0.3, 0.2])

    random_scores, train, _ = random_split()
    users = torch.arange(20)
    _, items = topk_items(lambda u: random_scores[u], users, 10, [train], 20, 30)
    seen = {(int(u), int(i)) for u, i in train.t()}
    assert not any((int(u), int(i)) in seen for u in users for i in items[u])

    # u1 has 4 unseen items; a list of 6 ends with its 2 train items at -inf
    scores, items = topk_items(score_fn, torch.tensor([1]), 6, [TRAIN], 4, 6)
    assert scores[0, 4:].tolist() == [float("-inf")] * 2
    assert set(items[0, :4].tolist()) == {0, 1, 2, 3}


def test_sampled_ranking_with_every_free_item_equals_full_ranking():
    scores, train, test = random_split()
    fn = lambda users: scores[users]  # noqa: E731
    full = full_ranking(fn, 20, 30, test, [train], ks=(1, 5, 10))
    for num_negatives in (30, 1000):  # at least the number of items no user has touched
        sampled = sampled_ranking(fn, 20, 30, test, [train], num_negatives=num_negatives, ks=(1, 5, 10))
        assert sampled == pytest.approx(full)


def test_sampled_ranking_never_samples_seen_items():
    # seen (train) items score 10, eval items 5, the rest below 1: if a train item were ever a
    # candidate it would rank first and push the eval item out of the top 1
    scores, train, test = random_split(num_users=40, num_items=50)
    scores[train[0], train[1]] = 10.0
    scores[test[0], test[1]] = 5.0
    summary = sampled_ranking(lambda u: scores[u], 40, 50, test, [train], num_negatives=20, ks=(1,), seed=3)
    assert summary["hr@1"] == 1.0
    assert summary["mrr@1"] == 1.0


def test_sampled_ranking_by_hand_when_all_free_items_are_candidates():
    # u0's free items (not train, not eval) are 1, 3, 4: candidates {2, 5} + {1, 3, 4}
    # ranked by score: 1 (0.8), 2 (0.7), 3, 4, 5 -> hits [F, T, F, F, T]
    summary = sampled_ranking(score_fn, 4, 6, EVAL, [TRAIN], num_negatives=3, ks=(5,), names=("map",), users=[0])
    # MAP@5 = (P@2 + P@5) / min(2, 5) = (1/2 + 2/5) / 2
    assert summary["map@5"] == pytest.approx((1 / 2 + 2 / 5) / 2)


def test_sampler_draws_distinct_unseen_items():
    _, train, test = random_split(num_users=50, num_items=40, seed=1)
    indptr, indices = user_item_csr(torch.cat([train, test], dim=1), 50, 40)
    users = torch.arange(50)
    generator = torch.Generator().manual_seed(0)
    items, valid = _sample_negatives(users, 30, indptr, indices, 40, generator)
    assert items.shape == (50, 30)
    for user in range(50):
        seen = set(indices[indptr[user]:indptr[user + 1]].tolist())
        drawn = items[user][valid[user]].tolist()
        assert len(drawn) == len(set(drawn)) == min(30, 40 - len(seen))
        assert not seen & set(drawn)
    again, _ = _sample_negatives(users, 30, indptr, indices, 40, torch.Generator().manual_seed(0))
    assert torch.equal(items, again)


def test_sampler_is_uniform_over_free_items():
    # one user who has seen items 0..9 of 20; 4000 draws of 2 negatives spread over items 10..19
    indptr, indices = torch.tensor([0, 10]), torch.arange(10)
    users = torch.zeros(4000, dtype=torch.long)
    items, valid = _sample_negatives(users, 2, indptr, indices, 20, torch.Generator().manual_seed(0))
    assert bool(valid.all())
    counts = torch.bincount(items.view(-1), minlength=20)
    assert counts[:10].sum() == 0
    assert counts[10:].min() > 700 and counts[10:].max() < 900  # expected 800 each


def test_protocol_errors_are_explicit():
    with pytest.raises(ValueError, match="cut-off k=7 exceeds num_items=6"):
        full_ranking(score_fn, 4, 6, EVAL, [TRAIN], ks=(7,))
    with pytest.raises(ValueError, match="unknown ranking metric 'recal'"):
        full_ranking(score_fn, 4, 6, EVAL, [TRAIN], names=("recal",), ks=(1,))
    with pytest.raises(ValueError, match=r"score_fn returned shape \(3, 5\) for 3 users; expected \[3, 6\]"):
        full_ranking(lambda u: SCORES[u, :5], 4, 6, EVAL, [TRAIN], ks=(1,))
    with pytest.raises(ValueError, match="k must lie in 1..num_items=6"):
        topk_items(score_fn, torch.tensor([0]), 7, [TRAIN], 4, 6)


def test_excluded_eval_item_is_never_a_hit():
    # one user, 3 items, all of them excluded: top-3 is all -inf, so eval item 0 cannot count
    edges = torch.tensor([[0, 0, 0], [0, 1, 2]])
    summary = full_ranking(lambda u: torch.ones(len(u), 3), 1, 3, edges[:, :1], [edges], ks=(3,), names=("hr",))
    assert summary == {"hr@3": 0.0, "num_users": 1}


def test_sampled_ranking_breaks_ties_at_random():
    # a constant score must not put the eval item first: expected HR@1 = 1 / (1 + 9)
    num_users, num_items = 300, 50
    test = torch.stack([torch.arange(num_users), torch.arange(num_users) % num_items])
    summary = sampled_ranking(lambda u: torch.zeros(len(u), num_items), num_users, num_items, test, (),
                              num_negatives=9, ks=(1,), names=("hr",))
    assert 0.03 < summary["hr@1"] < 0.2


def test_sampler_falls_back_when_rejection_does_not_finish():
    _, train, _ = random_split(num_users=10, num_items=12, seed=2)
    indptr, indices = user_item_csr(train, 10, 12)
    items, valid = _sample_negatives(torch.arange(10), 5, indptr, indices, 12, torch.Generator().manual_seed(0),
                                     max_rounds=1)
    for user in range(10):
        seen = set(indices[indptr[user]:indptr[user + 1]].tolist())
        drawn = items[user][valid[user]].tolist()
        assert len(set(drawn)) == min(5, 12 - len(seen)) and not seen & set(drawn)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():
    scores, train, test = random_split()
    fn = lambda users: scores.to(users.device)[users]  # noqa: E731
    on_cpu = full_ranking(fn, 20, 30, test, [train])
    assert full_ranking(fn, 20, 30, test, [train], device="cuda") == pytest.approx(on_cpu)
    sampled = sampled_ranking(fn, 20, 30, test, [train], num_negatives=30, ks=(5,), device="cuda")
    assert sampled == pytest.approx(full_ranking(fn, 20, 30, test, [train], ks=(5,)))
    pool = torch.arange(5, 30)
    on_cpu = full_ranking(fn, 20, 30, test, [train], ks=(5,), candidate_items=pool)
    assert full_ranking(fn, 20, 30, test, [train], ks=(5,), candidate_items=pool, device="cuda") == \
        pytest.approx(on_cpu)
    sampled = sampled_ranking(fn, 20, 30, test, [train], num_negatives=30, ks=(5,), candidate_items=pool,
                              device="cuda")
    assert sampled == pytest.approx(on_cpu)


def test_full_ranking_with_candidate_items_ranks_only_the_pool():
    # pool {2, 3, 4, 5}; after masking train items:
    #   u0 ranks 2, 3, 4 -> hits [T, F, F] (eval {2, 5});  u1 ranks 3, 2 -> [T, F] (eval {3})
    #   u2 ranks 3, 5, 4 -> no hit (eval {0} lies outside the pool, still counted as relevant)
    summary = full_ranking(score_fn, 4, 6, EVAL, [TRAIN], ks=(1, 3), names=("hr", "recall"),
                           candidate_items=torch.tensor([5, 2, 3, 4, 2]))
    assert summary == pytest.approx({"hr@1": 2 / 3, "recall@1": (1 / 2 + 1) / 3, "hr@3": 2 / 3,
                                     "recall@3": (1 / 2 + 1) / 3, "num_users": 3})
    assert full_ranking(score_fn, 4, 6, EVAL, [TRAIN], ks=(1, 3), candidate_items=range(6)) == \
        pytest.approx(full_ranking(score_fn, 4, 6, EVAL, [TRAIN], ks=(1, 3)))
    with pytest.raises(ValueError, match="cut-off k=3 exceeds the 2 items of candidate_items"):
        full_ranking(score_fn, 4, 6, EVAL, [TRAIN], ks=(3,), candidate_items=[0, 1])
    with pytest.raises(ValueError, match=r"candidate_items must lie in 0..5 \(got ids in \[0, 6\]\)"):
        full_ranking(score_fn, 4, 6, EVAL, [TRAIN], ks=(1,), candidate_items=[0, 6])


def test_sampled_ranking_draws_negatives_only_from_candidate_items():
    # items 0..19 lie outside the pool and score 10: one drawn as a negative would beat the eval item (5)
    scores, train, test = random_split(num_users=40, num_items=50)
    pool = torch.arange(20, 50)
    keep = test[1] >= 20
    test = test[:, keep]
    scores[:, :20] = 10.0
    scores[test[0], test[1]] = 5.0
    summary = sampled_ranking(lambda u: scores[u], 40, 50, test, [train], num_negatives=10, ks=(1,),
                              names=("hr",), seed=1, candidate_items=pool)
    assert summary["hr@1"] == 1.0
    # with every free pool item drawn, the sampled protocol equals full ranking over the pool,
    # eval items outside the pool (here items 0..19) being misses in both
    _, train, test = random_split(num_users=40, num_items=50)
    assert (test[1] < 20).any()
    scores = torch.rand(40, 50, generator=torch.Generator().manual_seed(4))
    fn = lambda users: scores[users]  # noqa: E731
    full = full_ranking(fn, 40, 50, test, [train], ks=(1, 5), candidate_items=pool)
    sampled = sampled_ranking(fn, 40, 50, test, [train], num_negatives=30, ks=(1, 5), candidate_items=pool)
    assert sampled == pytest.approx(full)
