"""The M-step at large K (algorithms/common.py): empty clusters relocated without a
loop over the clusters, exactly as one at a time."""

from __future__ import annotations

import numpy as np

from daskmeans.algorithms.common import relocate_empty
from daskmeans.kernels.common import TopM


def _one_at_a_time(sums: np.ndarray, counts: np.ndarray, top: TopM) -> int:
    """scikit-learn's ``_relocate_empty_clusters_dense`` written out row by row."""
    empty = np.flatnonzero(counts == 0)
    n = min(len(empty), len(top.sqdist))
    moved = 0
    for j in range(n):
        new, old, wt = empty[j], top.labels[j], top.weights[j]
        if top.sqdist[j] <= 0:
            break  # a row on its centre is not taken (scikit-learn's issue 28055)
        if wt <= 0:
            continue
        moved += 1
        row = top.rows[j].astype(np.float64) * wt
        sums[old] -= row
        counts[old] -= wt
        sums[new] = row
        counts[new] = wt
    return moved


def test_relocation_equals_one_cluster_at_a_time() -> None:
    """3,000 clusters, 700 of them empty, 500 far rows known (so 200 stay empty), some
    far rows sharing a former cluster and some of zero weight: the same sums and counts
    bit for bit."""
    rng = np.random.default_rng(0)
    k, d, m = 3000, 7, 500
    counts = rng.integers(1, 20, k).astype(np.float64)
    empty = rng.choice(k, 700, replace=False)
    counts[empty] = 0
    full = np.flatnonzero(counts > 0)
    sums = rng.normal(size=(k, d)) * counts[:, None]
    top = TopM(np.sort(rng.uniform(size=m))[::-1], np.arange(m, dtype=np.int64),
               rng.normal(size=(m, d)).astype(np.float32),
               rng.choice(full[:50], m).astype(np.int32),  # many rows per former cluster
               np.where(rng.uniform(size=m) < 0.1, 0.0, rng.uniform(0.5, 2, m)))
    want_s, want_n = sums.copy(), counts.copy()
    moved = 500 - int((top.weights == 0).sum())
    assert _one_at_a_time(want_s, want_n, top) == moved
    got_s, got_n = sums.copy(), counts.copy()
    assert relocate_empty(got_s, got_n, top) == moved
    np.testing.assert_array_equal(got_s, want_s)
    np.testing.assert_array_equal(got_n, want_n)
    assert (got_n == 0).sum() == 200 + int((top.weights == 0).sum())


def test_relocation_stops_at_rows_on_their_centre() -> None:
    """Far rows at distance 0 (duplicates of their centre) are not taken: the rest of
    the empty clusters stay empty, as one at a time."""
    k, d = 6, 2
    counts = np.array([3.0, 0.0, 2.0, 0.0, 0.0, 1.0])
    sums = np.arange(k * d, dtype=np.float64).reshape(k, d) * counts[:, None]
    top = TopM(np.array([4.0, 0.0, 0.0]), np.array([7, 8, 9]),
               np.array([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]], np.float32),
               np.array([0, 2, 2], np.int32), np.array([1.0, 1.0, 1.0]))
    want_s, want_n = sums.copy(), counts.copy()
    assert _one_at_a_time(want_s, want_n, top) == 1
    assert relocate_empty(sums, counts, top) == 1
    np.testing.assert_array_equal(sums, want_s)
    np.testing.assert_array_equal(counts, want_n)
    assert counts.tolist() == [2.0, 1.0, 2.0, 0.0, 0.0, 1.0]


def test_relocation_by_hand() -> None:
    sums = np.array([[6.0, 0.0], [0.0, 0.0], [2.0, 2.0]])
    counts = np.array([3.0, 0.0, 1.0])
    top = TopM(np.array([9.0]), np.array([4]), np.array([[3.0, 0.0]]),
               np.array([0], np.int32), np.array([1.0]))
    assert relocate_empty(sums, counts, top) == 1
    assert sums.tolist() == [[3.0, 0.0], [3.0, 0.0], [2.0, 2.0]]
    assert counts.tolist() == [2.0, 1.0, 1.0]


def test_squared_shift_is_the_sum_of_the_squared_differences() -> None:
    from daskmeans.algorithms.common import squared_shift

    rng = np.random.default_rng(0)
    old = rng.normal(size=(7, 300))
    new = old + rng.normal(size=old.shape) * 1e-3
    expected = float(((new - old) ** 2).sum())
    assert squared_shift(new, old) == expected
    assert squared_shift(new, old) == expected  # the reused buffer, again
    assert squared_shift(np.asfortranarray(new), np.asfortranarray(old)) == float(
        ((np.asfortranarray(new) - np.asfortranarray(old)) ** 2).sum())
    new32 = new.astype(np.float32)  # float32 centres: the difference in float64
    assert squared_shift(new32, old) == float(((new32.astype(np.float64) - old) ** 2).sum())
    assert squared_shift(old, old) == 0.0
