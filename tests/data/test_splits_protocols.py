"""Evaluation protocols built on splits: simulated cold-start users and the cross-domain split."""

import numpy as np
import pytest
import torch

from graphrec.data.domains import NO_DOMAIN, SOURCE, TARGET, domain_split, item_domains
from graphrec.data.splits import Split, random_split, sparsify_users, temporal_split
from graphrec.errors import ConfigError, DataError


def counts(users, rows, num_users=50):
    return np.bincount(users[rows], minlength=num_users)


# ------------------------------------------------------------------ sparsify_users
def test_sparsify_keeps_one_to_max_history_train_rows_of_the_chosen_users(table):
    users, _, _ = table
    split = random_split(users, (0.8, 0.1, 0.1), seed=0)  # 16 / 2 / 2 rows per user
    sparse = sparsify_users(split, users, fraction=0.3, max_history=9, seed=1)

    before, after = counts(users, split.train), counts(users, sparse.train)
    chosen = np.flatnonzero(after != before)
    assert len(chosen) == 15  # round(0.3 * 50)
    assert ((after[chosen] >= 1) & (after[chosen] <= 9)).all()
    assert set(np.unique(after[chosen]).tolist()) != {9}  # k is drawn, not fixed
    # the other users and every valid / test row are untouched
    others = np.setdiff1d(np.arange(50), chosen)
    np.testing.assert_array_equal(sparse.train[np.isin(users[sparse.train], others)],
                                  split.train[np.isin(users[split.train], others)])
    np.testing.assert_array_equal(sparse.valid, split.valid)
    np.testing.assert_array_equal(sparse.test, split.test)
    # dropped rows go nowhere: the new train is a subset of the old one, disjoint from valid and test
    assert np.isin(sparse.train, split.train).all()
    assert not np.isin(sparse.train, np.concatenate([split.valid, split.test])).any()
    assert sparse.num_rows == split.num_rows - int((before - after).sum())
    assert sparse.method == split.method


def test_sparsify_is_deterministic_in_the_seed(table):
    users, _, timestamps = table
    split = temporal_split(users, timestamps)
    first, again = sparsify_users(split, users, 0.5, seed=3), sparsify_users(split, users, 0.5, seed=3)
    np.testing.assert_array_equal(first.train, again.train)
    assert not np.array_equal(first.train, sparsify_users(split, users, 0.5, seed=4).train)


def test_sparsify_draws_k_uniformly_and_caps_it_by_the_history():
    users = np.repeat(np.arange(4000), 12)
    split = Split(train=np.arange(len(users)), valid=np.zeros(0, np.int64), test=np.zeros(0, np.int64),
                  method="given")
    kept = counts(users, sparsify_users(split, users, 1.0, max_history=9, seed=0).train, 4000)
    frequency = np.bincount(kept, minlength=10)
    assert frequency[0] == 0 and kept.max() == 9
    assert frequency[1:].min() > 380 and frequency[1:].max() < 520  # 4000 / 9 = 444 expected each
    # a user with fewer training rows than max_history keeps 1..n of them
    small = np.array([0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1])
    split = Split(train=np.arange(15), valid=np.zeros(0, np.int64), test=np.zeros(0, np.int64), method="given")
    for seed in range(20):
        kept = counts(small, sparsify_users(split, small, 1.0, max_history=5, seed=seed).train, 2)
        assert 1 <= kept[0] <= 3 and 1 <= kept[1] <= 5


def test_sparsify_edge_cases_and_errors(table):
    users, _, _ = table
    split = random_split(users, seed=0)
    np.testing.assert_array_equal(sparsify_users(split, users, 0.0).train, split.train)
    assert counts(users, sparsify_users(split, users, 1.0, max_history=2).train).max() <= 2
    with pytest.raises(ConfigError, match=r"fraction must lie in \[0, 1\].*got 1.5"):
        sparsify_users(split, users, 1.5)
    with pytest.raises(ConfigError, match="max_history must be an integer >= 1.*got 0"):
        sparsify_users(split, users, 0.5, max_history=0)
    with pytest.raises(DataError, match="split.train holds row 999 but the table has 10 rows"):
        sparsify_users(split, users[:10], 0.5)


# ------------------------------------------------------------------ item_domains
VALUES = ["Action", "Crime", "Drama", "Animation", "Horror"]
# item 0 {Action, Crime}, 1 {Crime, Drama}, 2 {Animation}, 3 {Animation, Drama}, 4 {Horror}, 5 none
GENRE_EDGES = torch.tensor([[0, 0, 1, 1, 2, 3, 3, 4], [0, 1, 1, 2, 3, 3, 2, 4]])


def test_item_domains_with_given_source_values():
    domains = item_domains(GENRE_EDGES, 6, VALUES, source=["Action", "Crime"])
    assert domains.item_domain.tolist() == [SOURCE, SOURCE, TARGET, TARGET, TARGET, NO_DOMAIN]
    assert domains.source_values == ["Action", "Crime"]
    assert domains.target_values == ["Drama", "Animation", "Horror"]
    assert domains.items("target").tolist() == [2, 3, 4]
    # item 1 holds values of both domains: the overlap rule decides
    assert item_domains(GENRE_EDGES, 6, VALUES, ["Action", "Crime"], overlap="exclude").item_domain[1] == NO_DOMAIN
    assert item_domains(GENRE_EDGES, 6, VALUES, ["Action", "Crime"], overlap="target").item_domain[1] == TARGET
    # edges may come as numpy, in any order, with repeats
    again = item_domains(np.concatenate([GENRE_EDGES.numpy()[:, ::-1], GENRE_EDGES.numpy()], axis=1), 6, VALUES,
                         ["Action", "Crime"])
    np.testing.assert_array_equal(again.item_domain, domains.item_domain)


def test_item_domains_automatic_split_takes_the_common_values():
    # items per value: A 4, B 3, C 2, D 2 (C before D by name), E 0; 11 pairs, 0.7 * 11 = 7.7:
    # prefixes A 4, A+B 7, A+B+C 9 -> A+B is closest
    edges = np.array([[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
                      [0, 0, 0, 0, 1, 1, 1, 2, 2, 3, 3]])
    domains = item_domains(edges, 12, ["A", "B", "D", "C", "E"])
    assert domains.source_values == ["A", "B"]
    assert domains.target_values == ["D", "C"]
    assert domains.item_domain.tolist() == [SOURCE] * 7 + [TARGET] * 4 + [NO_DOMAIN]
    assert item_domains(edges, 12, ["A", "B", "D", "C", "E"], source_share=0.3).source_values == ["A"]
    assert item_domains(edges, 12, ["A", "B", "D", "C", "E"], source_share=0.9).source_values == ["A", "B", "C"]


def test_item_domains_automatic_split_counts_items_under_the_overlap_rule():
    # order by items per value: Animation 2, Crime 2, Drama 2, Action 1, Horror 1 (ties by name)
    # overlap source:  {Animation} 2 of 5 items, {Animation, Crime} 4 of 5 -> closest to 0.7
    # overlap exclude: {Animation, Crime} 2 of 3 domain items, {Animation, Crime, Drama} 3 of 4 -> closest
    assert item_domains(GENRE_EDGES, 6, VALUES).source_values == ["Crime", "Animation"]
    excluded = item_domains(GENRE_EDGES, 6, VALUES, overlap="exclude")
    assert excluded.source_values == ["Crime", "Drama", "Animation"]
    assert excluded.item_domain.tolist() == [NO_DOMAIN, SOURCE, SOURCE, SOURCE, TARGET, NO_DOMAIN]


def test_item_domain_errors_name_the_problem():
    with pytest.raises(ConfigError, match="source domain value 'Crim' is not a value.*did you mean 'Crime'"):
        item_domains(GENRE_EDGES, 6, VALUES, source=["Crim"])
    with pytest.raises(ConfigError, match="the target domain holds no item"):
        item_domains(GENRE_EDGES, 6, VALUES, source=VALUES)
    # Action's only item (0) also holds Crime: under overlap target the source is empty
    with pytest.raises(ConfigError, match=r"the source domain holds no item with source values \['Action'\] "
                                          r"and overlap rule 'target'"):
        item_domains(GENRE_EDGES, 6, VALUES, source=["Action"], overlap="target")
    with pytest.raises(ConfigError, match="overlap rule 'first' is not one of"):
        item_domains(GENRE_EDGES, 6, VALUES, overlap="first")
    with pytest.raises(ConfigError, match="at least two attribute values held by items, found 1"):
        item_domains(torch.tensor([[0, 1], [2, 2]]), 6, VALUES)
    with pytest.raises(DataError, match=r"item ids in \[0, 4\]; expected 0..3"):
        item_domains(GENRE_EDGES, 4, VALUES)
    with pytest.raises(ConfigError, match=r"source_share must lie strictly between 0 and 1, got 1.0"):
        item_domains(GENRE_EDGES, 6, VALUES, source_share=1.0)


# ------------------------------------------------------------------ domain_split
@pytest.fixture
def long_table():
    """40 users x 80 rows over 30 items with distinct timestamps; items 0-17 source, 18-27 target, 28-29 none."""
    rng = np.random.default_rng(11)
    users = np.repeat(np.arange(40), 80)
    items = rng.integers(0, 30, size=len(users))
    timestamps = rng.permutation(len(users)).astype(np.int64)
    order = rng.permutation(len(users))
    item_domain = np.array([SOURCE] * 18 + [TARGET] * 10 + [NO_DOMAIN] * 2, dtype=np.int8)
    return users[order], items[order], timestamps[order], item_domain


def rows_of(split):
    return np.concatenate([split.train, split.valid, split.test])


def test_domain_split_keeps_each_domain_apart(long_table):
    users, items, timestamps, item_domain = long_table
    source = domain_split(users, items, item_domain, "source", timestamps)
    target = domain_split(users, items, item_domain, "target", timestamps)
    assert (source.method, target.method) == ("domain_source", "domain_target")
    assert (item_domain[items[rows_of(source)]] == SOURCE).all()
    assert (item_domain[items[rows_of(target)]] == TARGET).all()
    every = np.concatenate([rows_of(source), rows_of(target)])
    assert len(np.unique(every)) == len(every)  # no row in two parts, in either split or across them
    for split in (source, target):
        for part in (split.train, split.valid, split.test):
            assert np.all(np.diff(part) > 0)
    # rows of items in no domain are in no part; the source part holds every source row
    assert not np.isin(np.flatnonzero(item_domain[items] == NO_DOMAIN), every).any()
    assert source.num_rows == int((item_domain[items] == SOURCE).sum())


def test_domain_split_holds_out_the_newest_and_truncates_target_histories(long_table):
    users, items, timestamps, item_domain = long_table
    target = domain_split(users, items, item_domain, "target", timestamps, max_history=9)
    source = domain_split(users, items, item_domain, "source", timestamps)
    target_rows = counts(users, np.flatnonzero(item_domain[items] == TARGET), 40)
    source_rows = counts(users, np.flatnonzero(item_domain[items] == SOURCE), 40)
    assert target_rows.min() >= 14  # every user has enough target rows for the full protocol
    assert (counts(users, target.train, 40) == 9).all()  # "sequence length [...] less than 10"
    assert (counts(users, target.valid, 40) == 2).all() and (counts(users, target.test, 40) == 3).all()
    assert (counts(users, source.train, 40) == source_rows - 5).all()  # the source is never truncated
    assert (counts(users, source.valid, 40) == 2).all() and (counts(users, source.test, 40) == 3).all()
    for user in range(40):
        mine = lambda rows: timestamps[rows][users[rows] == user]  # noqa: E731
        assert mine(target.train).max() < mine(target.valid).min() <= mine(target.valid).max() < mine(target.test).min()
        # the kept training rows are the newest before the held-out ones
        domain_rows = np.flatnonzero((item_domain[items] == TARGET) & (users == user))
        dropped = np.setdiff1d(domain_rows, rows_of(target))
        assert len(dropped) == target_rows[user] - 14 and timestamps[dropped].max() < mine(target.train).min()
    whole = domain_split(users, items, item_domain, "target", timestamps, max_history=None)
    assert whole.num_rows == int(target_rows.sum())


def test_domain_split_small_users_keep_train_first():
    # user u has u + 1 target rows (u = 0..7), all on item 0
    users = np.repeat(np.arange(8), np.arange(1, 9))
    items = np.zeros(len(users), dtype=np.int64)
    split = domain_split(users, items, np.array([TARGET], dtype=np.int8), "target", np.arange(len(users)))
    assert counts(users, split.train, 8).tolist() == [1, 1, 1, 1, 1, 1, 2, 3]
    assert counts(users, split.valid, 8).tolist() == [0, 0, 1, 1, 1, 2, 2, 2]
    assert counts(users, split.test, 8).tolist() == [0, 1, 1, 2, 3, 3, 3, 3]


def test_domain_split_without_timestamps_is_seeded(long_table):
    users, items, _, item_domain = long_table
    first = domain_split(users, items, item_domain, "target", None, seed=2)
    again = domain_split(users, items, item_domain, "target", None, seed=2)
    other = domain_split(users, items, item_domain, "target", None, seed=3)
    np.testing.assert_array_equal(first.test, again.test)
    assert not np.array_equal(first.test, other.test)
    assert (counts(users, first.train, 40) == 9).all()


def test_domain_split_errors(long_table):
    users, items, timestamps, item_domain = long_table
    with pytest.raises(ConfigError, match="domain part 'targt' is not one of.*did you mean 'target'"):
        domain_split(users, items, item_domain, "targt", timestamps)
    with pytest.raises(ConfigError, match="max_history must be >= 1 or None, got 0"):
        domain_split(users, items, item_domain, "target", timestamps, max_history=0)
    with pytest.raises(DataError, match=r"items holds ids in \[0, 29\] but item_domain covers 20 items"):
        domain_split(users, items, item_domain[:20], "target", timestamps)
