"""Lloyd iterations against independent references, a few iterations at a time, on
inits and data that a converged fit would hide: empty clusters relocated in the first
iteration, and rows at near-ties between centres after a step.

The references are scikit-learn's ``KMeans(algorithm="lloyd")`` and a brute-force
float64 Lloyd step in numpy (:func:`lloyd_step`), following the rule documented by
scikit-learn's ``_relocate_empty_clusters_dense``: each empty cluster takes the next row
farthest from its centre, and that row's value and weight leave the cluster it was in.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.cluster import KMeans as SkKMeans

from daskmeans import KMeans

ALGORITHMS = ["lloyd", "elkan", "auto"]  # plain passes, and the bounded ones


def lloyd_step(X: np.ndarray, C: np.ndarray, w: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
    """One Lloyd iteration in float64: (labels against C, new centres), empty clusters
    relocated to the farthest rows (ties: the smaller row index)."""
    X, C = X.astype(np.float64), C.astype(np.float64)
    w = np.ones(len(X)) if w is None else np.asarray(w, np.float64)
    d2 = ((X[:, None, :] - C[None]) ** 2).sum(-1)
    labels = d2.argmin(1)
    k = len(C)
    sums = np.zeros_like(C)
    counts = np.zeros(k)
    for i, j in enumerate(labels):
        sums[j] += w[i] * X[i]
        counts[j] += w[i]
    own = d2[np.arange(len(X)), labels]
    far = np.lexsort((np.arange(len(X)), -own))  # farthest first, ties by index
    for e, r in zip(np.flatnonzero(counts == 0), far, strict=False):
        old = labels[r]
        sums[old] -= w[r] * X[r]
        counts[old] -= w[r]
        sums[e] = w[r] * X[r]
        counts[e] = w[r]
    new = C.copy()
    nz = counts > 0
    new[nz] = sums[nz] / counts[nz, None]
    return labels, new


def lloyd_reference(X: np.ndarray, C: np.ndarray, n_iter: int, w: np.ndarray | None = None
                    ) -> tuple[np.ndarray, np.ndarray, float]:
    """(labels, centres, inertia) after ``n_iter`` brute-force iterations; the labels and
    inertia are against the final centres, as a fit reports them."""
    for _ in range(n_iter):
        _, C = lloyd_step(X, C, w)
    labels, _ = lloyd_step(X, C, w)
    w = np.ones(len(X)) if w is None else w
    inertia = float((w * ((X - C[labels]) ** 2).sum(1)).sum())
    return labels, C, inertia


def blobs(n: int = 90, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 0.0], [8.0, 0.0], [0.0, 8.0]])
    return centres[np.arange(n) % 3] + rng.normal(0.0, 1.0, (n, 2))


#: the last centre attracts no row: relocated in the first iteration
ONE_EMPTY = np.array([[0.5, 0.5], [7.0, 1.0], [1.0, 7.0], [60.0, 60.0]])
#: two centres attract no row: they take the farthest and the next farthest row
TWO_EMPTY = np.array([[1.0, 1.0], [7.0, 1.0], [60.0, 60.0], [-50.0, 70.0]])


def test_the_inits_leave_clusters_empty() -> None:
    X = blobs()
    for C, n_empty in ((ONE_EMPTY, 1), (TWO_EMPTY, 2)):
        labels = ((X[:, None] - C[None]) ** 2).sum(-1).argmin(1)
        assert np.bincount(labels, minlength=len(C)).tolist().count(0) == n_empty


def assert_step(km: KMeans, reference: tuple[np.ndarray, np.ndarray, float], what: str, *,
                relocated: int) -> None:
    """The fit's labels, centres and inertia are the brute-force reference's, and its
    first iteration relocated ``relocated`` empty clusters."""
    labels, C, inertia = reference
    np.testing.assert_allclose(km.cluster_centers_, C, rtol=1e-10, atol=1e-10,
                               err_msg=f"{what}: centres")
    np.testing.assert_array_equal(np.asarray(km.labels_), labels)
    assert km.inertia_ == pytest.approx(inertia, rel=1e-10)
    assert km.history_[0]["n_relocated"] == relocated


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("max_iter", [1, 2, 3])
def test_relocation_matches_sklearn_iteration_by_iteration(algorithm: str,
                                                           max_iter: int) -> None:
    X = blobs()
    km = KMeans(4, init=ONE_EMPTY, n_init=1, max_iter=max_iter, tol=0.0,
                algorithm=algorithm).fit(X)
    sk = SkKMeans(4, init=ONE_EMPTY, n_init=1, max_iter=max_iter, tol=0.0,
                  algorithm="lloyd").fit(X)
    labels, C, inertia = lloyd_reference(X, ONE_EMPTY, max_iter)
    np.testing.assert_allclose(sk.cluster_centers_, C, rtol=1e-12, atol=1e-12)
    assert_step(km, (labels, C, inertia), f"{algorithm}, max_iter={max_iter}", relocated=1)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("max_iter", [1, 2])
def test_two_empty_clusters_take_the_two_farthest_rows(algorithm: str, max_iter: int) -> None:
    """Several empty clusters: scikit-learn leaves the order of the far rows unspecified
    (``argpartition``), so the reference is the brute-force rule alone."""
    X = blobs()
    km = KMeans(4, init=TWO_EMPTY, n_init=1, max_iter=max_iter, tol=0.0,
                algorithm=algorithm).fit(X)
    labels, C, inertia = lloyd_reference(X, TWO_EMPTY, max_iter)
    assert_step(km, (labels, C, inertia), f"{algorithm}, max_iter={max_iter}", relocated=2)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_weighted_relocation_matches_sklearn(algorithm: str) -> None:
    X = blobs()
    w = np.random.default_rng(3).uniform(0.5, 2.0, len(X))
    km = KMeans(4, init=ONE_EMPTY, n_init=1, max_iter=1, tol=0.0,
                algorithm=algorithm).fit(X, sample_weight=w)
    sk = SkKMeans(4, init=ONE_EMPTY, n_init=1, max_iter=1, tol=0.0,
                  algorithm="lloyd").fit(X, sample_weight=w)
    _, C, inertia = lloyd_reference(X, ONE_EMPTY, 1, w)
    np.testing.assert_allclose(sk.cluster_centers_, C, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(km.cluster_centers_, C, rtol=1e-10, atol=1e-10)
    assert km.inertia_ == pytest.approx(inertia, rel=1e-10)


# ------------------------------------------------------------------ near-ties after a step
#
# Integer rows and centres whose first update moves them straight along the line
# through a row, so that the row's distance bounds are exact (no triangle-inequality
# slack) and the row sits exactly between two centres after the step. Plain Lloyd gives
# an exact tie to the smaller centre index (as scikit-learn and numpy's argmin do); a
# bound test without rounding slack (``ub <= bnd`` instead of ``ub^2 <= bnd^2 - margin``)
# would keep the row's old centre.


def padded(x: list[float], row_bytes: int, dtype: type) -> np.ndarray:
    """1-D values as the first feature of rows of ``row_bytes`` (the other features 0):
    8 bytes leave room for Hamerly's single lower bound only, 192 bytes for one lower
    bound per centre (Elkan's; see ``daskmeans.algorithms.n_groups``)."""
    X: np.ndarray = np.zeros((len(x), max(1, row_bytes // np.dtype(dtype).itemsize)), dtype)
    X[:, 0] = x
    return X


#: k=2, the separation test: row 0 is labelled 1 (|0 - 1| < |0 + 7|), then the centres
#: move to -5 and 5 (centre 1 straight away from it): upper bound 1 + 4 = 5 = half the
#: separation of the new centres, an exact tie that belongs to centre 0.
SEP_ROWS = [0.0, -4.0, -6.0, 6.0, 6.0, 6.0, 6.0, 6.0]
SEP_INIT = [-7.0, 1.0]
#: k=3, the lower-bound test: centres -9, 1, 12 move to -5, 5, 9 (drifts 4, 4, 3);
#: row 0 keeps upper bound 1 + 4 = 5 and its lower bound is 9 - 4 = 5 (centre 0, or
#: with a single bound the largest drift, moved straight towards it), while half the
#: separation of centre 1 is only 2.
LOWER_ROWS = [0.0, -4.5, -5.5, 6.0, 6.0, 6.0, 6.0, 6.0, 8.0, 10.0]
LOWER_INIT = [-9.0, 1.0, 12.0]
NEAR_TIES = {
    "separation": (SEP_ROWS, SEP_INIT, 8),
    "hamerly-lower": (LOWER_ROWS, LOWER_INIT, 8),
    "elkan-lower": (LOWER_ROWS, LOWER_INIT, 192),
}


@pytest.mark.parametrize("case", sorted(NEAR_TIES))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_bounded_iterations_settle_exact_ties_as_plain_lloyd(case: str, dtype: type) -> None:
    x, init, row_bytes = NEAR_TIES[case]
    X, C0 = padded(x, row_bytes, dtype), padded(init, row_bytes, dtype)
    # the tie: after one step row 0 is exactly as far from centres 0 and 1
    _, C1 = lloyd_step(X, C0)
    d2 = ((X[0].astype(np.float64) - C1) ** 2).sum(1)
    assert d2[0] == d2[1] and d2.argmin() == 0
    for max_iter in (1, 2, 3):
        labels, C, inertia = lloyd_reference(X, C0, max_iter)
        fits = {alg: KMeans(len(C0), init=C0, n_init=1, max_iter=max_iter, tol=0.0,
                            algorithm=alg).fit(X) for alg in ("auto", "elkan", "lloyd")}
        for alg, km in fits.items():
            where = f"{alg}, {np.dtype(dtype).name}, max_iter={max_iter}"
            np.testing.assert_array_equal(np.asarray(km.labels_), labels,
                                          err_msg=f"{where}: labels")
            np.testing.assert_allclose(km.cluster_centers_, C, rtol=1e-6, atol=1e-6,
                                       err_msg=f"{where}: centres")
            assert km.inertia_ == pytest.approx(inertia, rel=1e-6), where
        np.testing.assert_array_equal(fits["auto"].cluster_centers_,
                                      fits["lloyd"].cluster_centers_)


def test_the_near_tie_row_changes_centre() -> None:
    """The tie decides the second step: keeping row 0 in cluster 1 would give other
    centres (so the test above can tell the difference)."""
    for x, init, _ in NEAR_TIES.values():
        X, C0 = np.array(x)[:, None], np.array(init)[:, None]
        _, C1 = lloyd_step(X, C0)
        labels = ((X[:, None] - C1[None]) ** 2).sum(-1).argmin(1)
        assert labels[0] == 0
        kept = labels.copy()
        kept[0] = 1
        C_kept = np.array([X[kept == j].mean(0) for j in range(len(C0))])
        assert not np.allclose(lloyd_step(X, C1)[1], C_kept)
