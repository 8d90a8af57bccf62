"""Kernels on CSR rows (daskmeans.kernels.sparse and its compiled loops): a hand-computed
case, brute force on the dense rows, the compiled loops against the numpy reference."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from daskmeans.kernels import common, lloyd, metric, sparse
from daskmeans.kernels.common import Centres


def _csr(rng: np.random.Generator, n: int, d: int, dtype: type, kind: str = "matrix") -> object:
    """Clustered sparse rows: 4 groups with their own features, about 30% stored."""
    X = np.zeros((n, d))
    groups = rng.integers(0, 4, n)
    for g in range(4):
        cols = rng.choice(d, d // 3, replace=False)
        at = np.flatnonzero(groups == g)
        X[np.ix_(at, cols)] = rng.uniform(0.5, 2 + g, (len(at), len(cols)))
    X[rng.random((n, d)) < 0.5] = 0
    X = X.astype(dtype)
    return sp.csr_array(X) if kind == "array" else sp.csr_matrix(X)


@pytest.mark.usefixtures("both_kernels")
def test_hand_computed_assignment_and_lloyd_sums() -> None:
    """Two rows, two centres: distances, labels, sums and SSE worked out by hand."""
    X = sp.csr_matrix(np.array([[0.0, 3.0, 0.0], [4.0, 0.0, 0.0]]))
    C = np.array([[0.0, 2.0, 0.0], [4.0, 0.0, 1.0]])
    labels, sq = sparse.assign(X, C)
    assert labels.tolist() == [0, 1]
    assert sq.tolist() == [1.0, 1.0]  # |(0,3,0)-(0,2,0)|^2, |(4,0,0)-(4,0,1)|^2
    np.testing.assert_allclose(sparse.distances(X, C),
                               [[1.0, np.sqrt(16 + 9 + 1)], [np.sqrt(16 + 4), 1.0]])
    part = lloyd.lloyd_partial(X, C, np.array([2.0, 0.5]))
    assert part.counts.tolist() == [2.0, 0.5]
    assert part.sums.tolist() == [[0.0, 6.0, 0.0], [2.0, 0.0, 0.0]]
    assert part.sse() == pytest.approx(2 * 1 + 0.5 * 1)
    assert common.row_norms_sq(X).tolist() == [9.0, 16.0]


@pytest.mark.usefixtures("both_kernels")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", ["matrix", "array"])
def test_sparse_kernels_equal_brute_force_on_dense_rows(dtype: type, kind: str) -> None:
    """Labels, squared distances, distances, the Lloyd pass's sums, counts, SSE, moments
    and farthest rows of CSR rows equal brute force on the same rows densified."""
    rng = np.random.default_rng(0)
    X = _csr(rng, 300, 40, dtype, kind)
    Xd = X.toarray().astype(np.float64)
    C = Xd[rng.choice(300, 6, replace=False)] + rng.normal(0, 0.1, (6, 40))
    D2 = ((Xd[:, None, :] - C[None]) ** 2).sum(2)
    want = D2.argmin(1)
    labels, sq = sparse.assign(X, C.astype(dtype))
    np.testing.assert_array_equal(labels, want)
    tol = 1e-10 if dtype == np.float64 else 1e-4
    np.testing.assert_allclose(sq, D2[np.arange(300), want], rtol=tol, atol=tol)
    np.testing.assert_array_equal(sparse.nearest_labels(X, C.astype(dtype)), want)
    np.testing.assert_allclose(sparse.distances(X, C.astype(dtype)), np.sqrt(D2),
                               rtol=tol, atol=tol)
    w = rng.uniform(0, 2, 300)
    part = lloyd.lloyd_partial(X, C.astype(dtype), w, n_top=5, moments=True)
    np.testing.assert_allclose(part.counts, np.bincount(want, w, 6))
    sums = np.zeros((6, 40))
    np.add.at(sums, want, Xd * w[:, None])
    np.testing.assert_allclose(part.sums, sums, rtol=tol, atol=tol)
    assert part.sse() == pytest.approx(float(D2[np.arange(300), want] @ w), rel=tol)
    np.testing.assert_allclose(part.moments.var, Xd.var(0), rtol=1e-9, atol=1e-12)
    far = np.argsort(-D2[np.arange(300), want], kind="stable")[:5]
    np.testing.assert_array_equal(part.top.index, far)
    assert sp.issparse(part.top.rows)  # the farthest rows stay CSR (few stored values)
    np.testing.assert_allclose(part.top.rows.toarray(), Xd[far].astype(dtype))


@pytest.mark.usefixtures("both_kernels")
def test_sparse_near_tie_goes_to_the_nearer_centre_in_float64() -> None:
    """Two float32 centres whose GEMM distances to a row tie are told apart in float64,
    as for dense rows, and an exact tie goes to the first."""
    x = np.float32(1.0)
    c1 = np.nextafter(np.float32(2.0), np.float32(0))  # slightly nearer to x than 0 is
    X = sp.csr_matrix(np.array([[x], [x]], np.float32))
    C = np.array([[0.0], [c1]], np.float32)
    assert sparse.assign(X, C)[0].tolist() == common.assign(X.toarray(), C)[0].tolist()
    tie = np.array([[0.0], [2.0]], np.float32)
    assert sparse.assign(X, tie)[0].tolist() == [0, 0]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("runs", [1, 3])
def test_compiled_sparse_lloyd_equals_numpy_reference(
        dtype: type, weighted: bool, runs: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """The compiled sparse loop gives the reference's labels, counts and farthest rows,
    its sums and SSE to float rounding, and leaves its inputs untouched."""
    rng = np.random.default_rng(1)
    X = _csr(rng, 500, 30, dtype)
    C = np.concatenate([X[rng.choice(500, 7, replace=False)].toarray() for _ in range(runs)])
    w = rng.uniform(0, 2, 500) if weighted else None
    before = (X.data.copy(), X.indices.copy(), X.indptr.copy(), C.copy())
    kw = {"n_top": 4, "runs": runs, "moments": True}
    monkeypatch.setenv("DASKMEANS_KERNELS", "numba")
    got = lloyd.lloyd_runs(X, C, w, **kw).parts
    got_assign = sparse.assign(X, C[:7])
    monkeypatch.setenv("DASKMEANS_KERNELS", "numpy")
    want = lloyd.lloyd_runs(X, C, w, **kw).parts
    want_assign = sparse.assign(X, C[:7])
    tol = 1e-12 if dtype == np.float64 else 1e-5
    for a, b in zip(got, want, strict=True):
        np.testing.assert_array_equal(a.counts, b.counts)
        np.testing.assert_allclose(a.sums, b.sums, rtol=tol, atol=tol)
        assert a.sq == pytest.approx(b.sq, rel=tol)
        np.testing.assert_array_equal(a.top.index, b.top.index)
    np.testing.assert_array_equal(got_assign[0], want_assign[0])
    np.testing.assert_allclose(got_assign[1], want_assign[1], rtol=1e-9, atol=1e-9)
    np.testing.assert_array_equal(common.row_norms_sq(X, np.float64),
                                  common.sparse_row_norms_sq(X, np.float64))
    for arr, old in zip((X.data, X.indices, X.indptr, C), before, strict=True):
        np.testing.assert_array_equal(arr, old)


@pytest.mark.usefixtures("both_kernels")
def test_sparse_rows_equal_dense_rows_through_the_metric_objects() -> None:
    """The metric objects take CSR blocks as they take dense ones: the same labels,
    distances and seeding potential; cosine rows normalise to the same unit rows."""
    rng = np.random.default_rng(2)
    X = _csr(rng, 200, 25, np.float64)
    C = X[:5].toarray() + 0.01
    for m in (metric.EUCLIDEAN, metric.COSINE):
        np.testing.assert_array_equal(m.nearest_labels(X, C), m.nearest_labels(X.toarray(), C))
        np.testing.assert_allclose(m.distances(X, C), m.distances(X.toarray(), C),
                                   rtol=1e-9, atol=1e-10)
    xsq = common.row_norms_sq(X, np.float64)
    np.testing.assert_allclose(metric.EUCLIDEAN.seeding_distances(X, xsq, C),
                               metric.EUCLIDEAN.seeding_distances(X.toarray(), xsq, C),
                               rtol=1e-12, atol=1e-12)
    unit = common.normalize_rows(X)
    assert sp.issparse(unit)
    np.testing.assert_allclose(unit.toarray(), common.normalize_rows(X.toarray()))
    assert X.toarray().max() > 1  # the input is not normalised in place


def test_sparse_rows_accessor_gives_dense_rows() -> None:
    """SparseRows densifies only the rows asked for; RowsAt composes indices."""
    X = sp.csr_matrix(np.arange(12.0).reshape(4, 3))
    rows = common.SparseRows(X)
    assert rows[2].tolist() == [6.0, 7.0, 8.0]
    assert rows[np.array([3, 0])].tolist() == [[9.0, 10.0, 11.0], [0.0, 1.0, 2.0]]
    at = common.RowsAt(rows, np.array([1, 3]))
    assert at.shape == (2, 3) and at[np.array([1])].tolist() == [[9.0, 10.0, 11.0]]


def test_centres_prepared_once_serve_sparse_rows() -> None:
    """Prepared Centres (-2 C^T, |C|^2, padded) give the same answers as raw centres."""
    rng = np.random.default_rng(4)
    X = _csr(rng, 50, 10, np.float32)
    C = X[:3].toarray()
    cen = Centres(C, np.dtype(np.float32))
    assert cen.m2t.shape[1] == 4  # padded: the padding centre is never chosen
    np.testing.assert_array_equal(sparse.nearest_labels(X, cen), sparse.nearest_labels(X, C))


@pytest.mark.parametrize("weighted", [False, True])
def test_compiled_sparse_two_means_equals_numpy_and_dense(
        weighted: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """Bisecting's 2-means on CSR rows, compiled, gives the numpy reference's labels,
    iterations and SSE, and those of the same rows dense; an empty child is relocated."""
    from daskmeans.kernels import bisect

    rng = np.random.default_rng(5)
    X = _csr(rng, 400, 20, np.float64)
    pos = np.sort(rng.choice(400, 300, replace=False))
    w = rng.uniform(0, 2, 400) if weighted else np.ones(400)
    far = np.full((1, 20), 50.0)
    for C0 in (X[[pos[0], pos[1]]].toarray(), np.vstack([X[[pos[2]]].toarray(), far])):
        monkeypatch.setenv("DASKMEANS_KERNELS", "numba")
        got = bisect.two_means(X, pos, w, C0, max_iter=50, tol=0.0)
        dense = bisect.two_means(X.toarray(), pos, w, C0, max_iter=50, tol=0.0)
        monkeypatch.setenv("DASKMEANS_KERNELS", "numpy")
        want = bisect.two_means(X, pos, w, C0, max_iter=50, tol=0.0)
        for other in (want, dense):
            np.testing.assert_array_equal(got.labels, other.labels)
            assert got.n_iter == other.n_iter
            np.testing.assert_allclose(got.sse, other.sse, rtol=1e-9)
            np.testing.assert_allclose(got.centres, other.centres, rtol=1e-9, atol=1e-12)
            np.testing.assert_array_equal(got.count, other.count)


def test_gathered_rows_of_csr_blocks_stay_csr_and_add_up() -> None:
    """Rows picked from CSR blocks (take_rows' Rows, gather's Gathered, a bisecting
    round's LeafRows) stay CSR and add up to the rows in order, as dense ones do."""
    from daskmeans.kernels import bisect, scores

    X = sp.csr_matrix(np.arange(24.0).reshape(8, 3))
    a, b = X[:4], X[4:]
    rows = common.Rows(a[[1, 3]], None) + common.Rows(b[[0]], None)
    assert sp.issparse(rows.rows)
    np.testing.assert_array_equal(rows.rows.toarray(), X.toarray()[[1, 3, 4]])
    got = (scores.gather(a, np.array([2, 5]), offset=0)
           + scores.gather(b, np.array([2, 5]), offset=4)).sorted()
    assert sp.issparse(got.rows) and got.index.tolist() == [2, 5]
    np.testing.assert_array_equal(got.rows.toarray(), X.toarray()[[2, 5]])
    tree = bisect.TreeSnapshot(np.array([-1]), np.array([-1]), np.zeros((1, 3)),
                               np.array([0]))
    parts = bisect.leaf_rows_block(b, None, tree, offset=4) + bisect.leaf_rows_block(a, None,
                                                                                      tree)
    index, held, slots, _ = parts.joined(3, np.float64)
    assert index.tolist() == list(range(8)) and slots.tolist() == [0] * 8
    np.testing.assert_array_equal(held.toarray(), X.toarray())
