"""Seeding kernels: k-means++ and the k-means|| reductions."""

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


def _greedy_kmeans_plusplus(X: np.ndarray, k: int, rng: np.random.Generator,
                            w: np.ndarray, squared: bool) -> np.ndarray:
    """Greedy k-means++ by brute force: potentials from float64 differences (squared
    Euclidean, or L1), candidates drawn by the same random calls as the kernel."""
    def pot(cands: np.ndarray) -> np.ndarray:
        diff = X[None, :, :] - cands[:, None, :]
        return (diff ** 2).sum(-1) if squared else np.abs(diff).sum(-1)

    n = len(X)
    trials = 2 + int(np.log(k))
    centres = [X[rng.choice(n, p=w / w.sum())]]
    closest = pot(centres[0][None])[0]
    for _ in range(1, k):
        cum = np.cumsum(closest * w)
        ids = np.minimum(np.searchsorted(cum, rng.uniform(size=trials) * cum[-1]), n - 1)
        cand = np.minimum(closest, pot(X[ids]))
        best = int(np.argmin(cand @ w))
        closest = cand[best]
        centres.append(X[ids[best]])
    return np.array(centres)


@pytest.mark.usefixtures("both_kernels")
@pytest.mark.parametrize("name", ["euclidean", "manhattan"])
def test_kmeans_plusplus_equals_a_brute_force_reference(name: str) -> None:
    """The same centres as greedy k-means++ written out with float64 potentials: rows
    drawn in proportion to weight x squared distance (x L1 distance for k-medians)."""
    rng = np.random.default_rng(8)
    X = rng.normal(size=(400, 4)) * rng.uniform(0.5, 3, 4)
    w = rng.uniform(0.2, 2, 400)
    got = init.kmeans_plusplus(X, 9, np.random.default_rng(3), weights=w, metric=name)
    want = _greedy_kmeans_plusplus(X, 9, np.random.default_rng(3), w, name == "euclidean")
    np.testing.assert_array_equal(got, want)


@pytest.mark.usefixtures("both_kernels")
def test_count_nearest_by_hand_and_brute_force() -> None:
    X = np.array([[0.0, 0.0], [3.0, 1.0], [2.0, 2.0], [5.0, 5.0]])
    C = np.array([[0.0, 1.0], [4.0, 1.0]])
    assert init.count_nearest(X, C).tolist() == [2.0, 2.0]  # [2, 2]: 5 and 5, the first
    assert init.count_nearest(X, C, metric="manhattan").tolist() == [2.0, 2.0]  # 3 and 3
    assert init.count_nearest(X, C, np.array([1, 2, 3, 4.0])).tolist() == [4.0, 6.0]
    rng = np.random.default_rng(2)
    Y, D = rng.normal(size=(500, 3)), rng.normal(size=(6, 3))
    w = rng.uniform(0, 2, 500)
    want = np.bincount(brute_sqdist(Y, D).argmin(1), weights=w, minlength=6)
    np.testing.assert_allclose(init.count_nearest(Y, D, w), want, rtol=1e-12)
