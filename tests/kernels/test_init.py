"""Seeding kernels: k-means++ and the k-means|| reductions."""

from __future__ import annotations

import itertools

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


def _batched_kmeans_plusplus(X: np.ndarray, k: int, rng: np.random.Generator,
                             trials: int, batch: int) -> np.ndarray:
    """Batched greedy k-means++ by brute force: the candidates of ``batch`` centres
    drawn at once from the potential before the batch, then chosen one after another,
    each the draw's candidate leaving the lowest potential given the centres so far."""
    def pot(cands: np.ndarray) -> np.ndarray:
        return ((X[None, :, :] - cands[:, None, :]) ** 2).sum(-1)

    n = len(X)
    centres = [X[rng.choice(n, p=np.full(n, 1 / n))]]
    closest = pot(centres[0][None])[0]
    while len(centres) < k:
        b = min(batch, k - len(centres))
        cum = np.cumsum(closest)
        ids = np.minimum(np.searchsorted(cum, rng.uniform(size=(b, trials)) * cum[-1]), n - 1)
        for j in range(b):
            cand = np.minimum(closest, pot(X[ids[j]]))
            best = int(np.argmin(cand.sum(1)))
            closest = cand[best]
            centres.append(X[ids[j, best]])
    return np.array(centres)


@pytest.mark.usefixtures("both_kernels")
@pytest.mark.parametrize("batch", [3, 7, 40])
def test_batched_kmeans_plusplus_equals_a_brute_force_reference(batch: int) -> None:
    """Batches of candidates (one GEMM each, the last batch shorter) choose the same
    centres as the batched seeding written out with float64 potentials."""
    rng = np.random.default_rng(8)
    X = rng.normal(size=(300, 5)) * rng.uniform(0.5, 3, 5)
    got = init.kmeans_plusplus(X, 23, np.random.default_rng(5), n_local_trials=3,
                               batch=batch)
    want = _batched_kmeans_plusplus(X, 23, np.random.default_rng(5), 3, batch)
    np.testing.assert_array_equal(got, want)


def test_batch_of_one_is_the_classic_seeding_draw_for_draw() -> None:
    rng = np.random.default_rng(9)
    X = rng.normal(size=(200, 3))
    classic = init.kmeans_plusplus(X, 12, np.random.default_rng(1))
    assert (init.kmeans_plusplus(X, 12, np.random.default_rng(1), batch=1) == classic).all()
    assert not (init.kmeans_plusplus(X, 12, np.random.default_rng(1), batch=4)
                == classic).all()


def test_batched_kmeans_plusplus_seeds_nearly_as_well_as_the_classic() -> None:
    """Batches of a sixteenth of the centres (as a fit's batches of 64 from K=1024),
    4 candidates each: the seeding's potential stays near the classic greedy seeding's
    and far below random rows' (blobs of varied sizes and spreads, averaged over
    seeds). Batches of a quarter of the centres would lose much more: their candidates
    are drawn from a potential that is stale for longer."""
    rng = np.random.default_rng(4)
    centres = rng.uniform(-30, 30, size=(64, 8))
    X = np.concatenate([c + rng.normal(size=(rng.integers(5, 60), 8)) * rng.uniform(0.3, 3)
                        for c in centres])

    def potential(C: np.ndarray) -> float:
        return float(brute_sqdist(X, C).min(1).sum())

    def mean(seed_fn) -> float:  # type: ignore[no-untyped-def]
        return float(np.mean([potential(seed_fn(np.random.default_rng(s))) for s in range(8)]))

    classic = mean(lambda r: init.kmeans_plusplus(X, 64, r))
    batched = mean(lambda r: init.kmeans_plusplus(X, 64, r, n_local_trials=4, batch=4))
    random = mean(lambda r: X[r.choice(len(X), 64, replace=False)])
    assert batched < 1.1 * classic and batched < 0.6 * random, (classic, batched, random)


def test_kmeans_plusplus_reports_the_centres_chosen() -> None:
    """``report(done, k)`` about a hundred times, increasing, ending at k; batched: once
    per batch at most (the batch's centres are chosen at once)."""
    X = np.random.default_rng(0).normal(size=(500, 4))
    for batch, expected in [(1, [*range(2, 300, 3), 300]), (50, [*range(51, 300, 50), 300])]:
        seen: list[tuple[int, int]] = []
        init.kmeans_plusplus(X, 300, np.random.default_rng(0), batch=batch,
                             report=lambda done, k, seen=seen: seen.append((done, k)))
        assert [d for d, _ in seen] == expected and {k for _, k in seen} == {300}
    # duplicates once the points run out still end the report at k
    seen = []
    init.kmeans_plusplus(np.zeros((5, 2)), 20, np.random.default_rng(0),
                         report=lambda done, k: seen.append((done, k)))
    assert seen[-1] == (20, 20) and all(a < b for (a, _), (b, _) in itertools.pairwise(seen))
