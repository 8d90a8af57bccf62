"""Seeding kernels: k-means++ and the k-means|| passes."""

from __future__ import annotations

import numpy as np
import pytest

from daskmeans.kernels import common, init

from .reference import brute_sqdist


@pytest.mark.usefixtures("both_kernels")
def test_kmeans_plusplus_picks_distinct_blobs() -> None:
    rng = np.random.default_rng(4)
    centres = np.array([[0, 0], [100, 0], [0, 100]], dtype=float)
    X = np.concatenate([c + rng.normal(size=(50, 2)) for c in centres])
    C = init.kmeans_plusplus(X, 3, np.random.default_rng(0))
    owners = np.argmin(brute_sqdist(C, centres), axis=1)
    assert sorted(owners.tolist()) == [0, 1, 2]


@pytest.mark.usefixtures("both_kernels")
def test_oversample_sums_keep_the_largest_keys_of_blocks_smaller_than_asked() -> None:
    """k-means|| keys ``w d^2 / u`` by hand for one row, then blocks of one row each with
    three keys asked for: the sum keeps the three largest keys of the union (the
    brute-force top 3 of the whole block), whatever the blocks."""
    X = np.array([[0.0], [2.0], [5.0], [3.0], [1.0]])
    C = np.array([[0.0]])
    one = init.oversample_partial(X[1:2], C, None, offset=1, seed=7, m=3)
    u = common.splitmix64_uniform(np.array([1]), 7)
    assert one.cost == 4.0 and one.key.tolist() == (4.0 / u).tolist() and one.cap == 3
    whole = init.oversample_partial(X, C, None, offset=0, seed=7, m=3)
    parts = [init.oversample_partial(X[i:i + 1], C, None, offset=i, seed=7, m=3)
             for i in range(5)]
    total = parts[0]
    for p in parts[1:]:
        total = total + p
    assert len(total.key) == 3 and total.cost == whole.cost == 39.0
    assert total.index.tolist() == whole.index.tolist()
    np.testing.assert_array_equal(total.rows, whole.rows)
