"""Fixtures shared by the split tests."""

import numpy as np
import pytest


@pytest.fixture
def table():
    """50 users x 20 rows each, shuffled, with distinct timestamps and 30 items."""
    rng = np.random.default_rng(7)
    users = np.repeat(np.arange(50), 20)
    items = rng.integers(0, 30, size=len(users))
    timestamps = rng.permutation(len(users)).astype(np.int64) * 10
    order = rng.permutation(len(users))
    return users[order], items[order], timestamps[order]
