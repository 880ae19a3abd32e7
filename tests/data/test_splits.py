import numpy as np
import pytest
import torch

from graphrec.data.splits import (
    Split,
    cold_start_split,
    leave_one_out,
    random_split,
    split_interactions,
    temporal_split,
)
from graphrec.errors import ConfigError, DataError


def assert_partition(split: Split, num_rows: int) -> None:
    rows = np.concatenate([split.train, split.valid, split.test])
    assert rows.dtype == np.int64
    assert len(rows) == num_rows == split.num_rows
    np.testing.assert_array_equal(np.sort(rows), np.arange(num_rows))
    for part in (split.train, split.valid, split.test):
        assert np.all(np.diff(part) > 0)  # sorted, no repeats


def per_user_counts(users, rows, num_users=50):
    return np.bincount(users[rows], minlength=num_users)


def test_random_split_per_user_counts(table):
    users, _, _ = table
    split = random_split(users, (0.8, 0.1, 0.1), seed=0)
    assert_partition(split, len(users))
    assert split.method == "random"
    assert (per_user_counts(users, split.train) == 16).all()
    assert (per_user_counts(users, split.valid) == 2).all()
    assert (per_user_counts(users, split.test) == 2).all()


def test_random_split_small_users_keep_train_first():
    users = np.array([0, 1, 1, 2, 2, 2, 3, 3, 3, 3])
    split = random_split(users, (0.8, 0.1, 0.1), seed=3)
    assert_partition(split, len(users))
    np.testing.assert_array_equal(per_user_counts(users, split.train, 4), [1, 1, 1, 2])
    np.testing.assert_array_equal(per_user_counts(users, split.valid, 4), [0, 0, 1, 1])
    np.testing.assert_array_equal(per_user_counts(users, split.test, 4), [0, 1, 1, 1])


def test_random_split_global():
    users = np.zeros(100, dtype=np.int64)
    users[50:] = 1
    split = random_split(users, (0.6, 0.2, 0.2), seed=1, group_by_user=False)
    assert_partition(split, 100)
    assert (len(split.train), len(split.valid), len(split.test)) == (60, 20, 20)


def test_random_split_seeds(table):
    users, _, _ = table
    first, again = random_split(users, seed=5), random_split(users, seed=5)
    other = random_split(users, seed=6)
    np.testing.assert_array_equal(first.test, again.test)
    np.testing.assert_array_equal(first.valid, again.valid)
    assert not np.array_equal(first.test, other.test)


def test_temporal_split_orders_by_time(table):
    users, _, timestamps = table
    split = temporal_split(users, timestamps)
    assert_partition(split, len(users))
    assert (per_user_counts(users, split.test) == 2).all()
    for user in range(50):
        train_ts = timestamps[split.train][users[split.train] == user]
        valid_ts = timestamps[split.valid][users[split.valid] == user]
        test_ts = timestamps[split.test][users[split.test] == user]
        assert train_ts.max() <= valid_ts.min() <= valid_ts.max() <= test_ts.min()


def test_temporal_split_ties_keep_row_order():
    users = np.array([0, 0, 0, 0])
    timestamps = np.array([5, 5, 5, 5])
    split = temporal_split(users, timestamps, (0.5, 0.25, 0.25))
    np.testing.assert_array_equal(split.train, [0, 1])
    np.testing.assert_array_equal(split.valid, [2])
    np.testing.assert_array_equal(split.test, [3])


def test_leave_one_out_takes_latest(table):
    users, _, timestamps = table
    split = leave_one_out(users, timestamps)
    assert_partition(split, len(users))
    assert (per_user_counts(users, split.test) == 1).all()
    assert (per_user_counts(users, split.valid) == 1).all()
    for user in range(50):
        mine = np.flatnonzero(users == user)
        latest, second = mine[np.argsort(timestamps[mine])[[-1, -2]]]
        assert latest in split.test and second in split.valid


def test_leave_one_out_small_users_and_no_timestamps():
    users = np.array([0, 1, 1, 2, 2, 2])
    split = leave_one_out(users, None, seed=0)
    assert_partition(split, len(users))
    np.testing.assert_array_equal(per_user_counts(users, split.train, 3), [1, 1, 1])
    np.testing.assert_array_equal(per_user_counts(users, split.valid, 3), [0, 0, 1])
    np.testing.assert_array_equal(per_user_counts(users, split.test, 3), [0, 1, 1])
    assert split_interactions("leave_one_out", users, None, None).method == "leave_one_out"


@pytest.mark.parametrize("side", ["user", "item"])
def test_cold_start_holds_out_whole_ids(table, side):
    users, items, _ = table
    split = cold_start_split(users, items, side=side, seed=2)
    assert_partition(split, len(users))
    ids = users if side == "user" else items
    num_ids = len(np.unique(ids))
    expected = round(num_ids * 0.1)
    assert len(split.cold_valid_ids) == len(split.cold_test_ids) == expected
    assert split.method == f"cold_{side}"
    train_ids = set(ids[split.train].tolist())
    assert not train_ids & set(split.cold_valid_ids.tolist())
    assert not train_ids & set(split.cold_test_ids.tolist())
    np.testing.assert_array_equal(np.unique(ids[split.valid]), split.cold_valid_ids)
    np.testing.assert_array_equal(np.unique(ids[split.test]), split.cold_test_ids)
    again = cold_start_split(users, items, side=side, seed=2)
    other = cold_start_split(users, items, side=side, seed=3)
    np.testing.assert_array_equal(split.cold_test_ids, again.cold_test_ids)
    assert not np.array_equal(split.cold_test_ids, other.cold_test_ids)


def test_dispatcher_and_edge_index(table):
    users, items, timestamps = table
    split = split_interactions("temporal", users, items, timestamps, (0.8, 0.1, 0.1), seed=0)
    np.testing.assert_array_equal(split.test, temporal_split(users, timestamps).test)
    edge_index = split.edge_index(users, items, "test")
    assert edge_index.dtype == torch.long and edge_index.shape == (2, 100)
    np.testing.assert_array_equal(edge_index[0].numpy(), users[split.test])
    np.testing.assert_array_equal(edge_index[1].numpy(), items[split.test])
    cold = split_interactions("cold_item", users, items, None, (0.8, 0.1, 0.1), seed=0)
    assert cold.cold_test_ids is not None
    with pytest.raises(ConfigError, match="split part 'tset'.*did you mean 'test'"):
        split.edge_index(users, items, "tset")


def test_empty_table():
    empty = np.zeros(0, dtype=np.int64)
    split = random_split(empty)
    assert split.num_rows == 0


def test_errors(table):
    users, items, timestamps = table
    expected = r"split method 'temporl' is not one of .*'random'.*did you mean 'temporal'"
    with pytest.raises(ConfigError, match=expected):
        split_interactions("temporl", users, items, timestamps, (0.8, 0.1, 0.1), 0)
    with pytest.raises(ConfigError, match=r"must sum to 1, got \[0.8, 0.1, 0.2\]"):
        split_interactions("random", users, items, None, (0.8, 0.1, 0.2), 0)
    with pytest.raises(ConfigError, match="must be non-negative"):
        random_split(users, (1.2, -0.1, -0.1))
    with pytest.raises(ConfigError, match="three numbers"):
        random_split(users, (0.9, 0.1))
    with pytest.raises(DataError, match="temporal split needs a timestamp"):
        split_interactions("temporal", users, items, None, (0.8, 0.1, 0.1), 0)
    with pytest.raises(DataError, match="items has 3 rows but users has 1000"):
        split_interactions("random", users, items[:3], None, (0.8, 0.1, 0.1), 0)
    with pytest.raises(DataError, match="missing"):
        temporal_split(np.array([0, 0]), np.array([1.0, np.nan]))
    with pytest.raises(ConfigError, match="side 'both'"):
        cold_start_split(users, items, side="both")
