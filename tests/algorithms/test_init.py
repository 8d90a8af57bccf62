"""Initial centres of a fit (algorithms/init.py): the seeding chosen by K, the same
centres whatever the chunking, progress reports."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
from sklearn.datasets import make_blobs

from daskmeans.algorithms import init
from daskmeans.algorithms.init import InitSpec, init_centers
from daskmeans.engine.source import ArraySource, DaskSource
from daskmeans.kernels.init import kmeans_plusplus


@pytest.fixture(scope="module")
def rows() -> np.ndarray:
    X, _ = make_blobs(3000, n_features=16, centers=300, cluster_std=0.7, random_state=0)
    return X.astype(np.float32)


@pytest.mark.parametrize("k", [init.LARGE_K - 1, init.LARGE_K])
def test_kmeans_plusplus_switches_to_batches_at_large_k(rows: np.ndarray, k: int) -> None:
    """Below :data:`LARGE_K` the fit's k-means++ is the classic greedy seeding (2 + log k
    candidates, one centre at a time); from it on, 4 candidates per centre in batches
    of 64: the very centres of the kernel called so, on the same sample."""
    spec = InitSpec("k-means++", k, sample_size=2500)
    (got,) = init_centers(ArraySource(rows), spec, [np.random.default_rng(7)], [7])
    rng = np.random.default_rng(7)
    sample = rows[np.sort(rng.choice(len(rows), size=2500, replace=False))]
    large = k >= init.LARGE_K
    want = kmeans_plusplus(sample, k, rng, n_local_trials=init.LARGE_K_TRIALS if large else None,
                           batch=init.LARGE_K_BATCH if large else 1)
    np.testing.assert_array_equal(got, want)


def test_large_k_init_is_the_same_for_any_chunking(rows: np.ndarray) -> None:
    spec = InitSpec("k-means++", init.LARGE_K, sample_size=2500)
    sources = [ArraySource(rows), ArraySource(rows, block_rows=97),
               DaskSource(da.from_array(rows, chunks=(211, 16)))]
    got = [init_centers(src, spec, [np.random.default_rng(3)], [3])[0] for src in sources]
    for C in got[1:]:
        np.testing.assert_array_equal(C, got[0])
    assert len(np.unique(got[0], axis=0)) == init.LARGE_K  # distinct rows


def test_init_centers_reports_the_init_phase(rows: np.ndarray) -> None:
    calls: list[tuple[str, int, int | None, str]] = []
    spec = InitSpec("k-means||", 40, sample_size=1000, init_rounds=3)
    init_centers(ArraySource(rows), spec, [np.random.default_rng(1)], [1],
                 progress=lambda *a: calls.append(a))
    rounds = [c[1:3] for c in calls if "round" in c[3]]
    assert rounds == [(1, 3), (2, 3), (3, 3)]
    seeding = [c for c in calls if "round" not in c[3]]
    assert seeding[0][1:3] == (1, 40) and seeding[-1][1:3] == (40, 40)
    assert all(c[0] == "init" for c in calls)
