"""The in-memory sparse source: CSR row blocks sharing the caller's arrays, their
|x|^2 held once, the caller's matrix never changed."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from daskmeans import as_source
from daskmeans.engine import reductions
from daskmeans.engine.hold import hold
from daskmeans.engine.source import SparseSource, csr_rows
from daskmeans.kernels import sparse


def _rows(n: int = 2000, d: int = 30, seed: int = 0) -> sp.csr_matrix:
    return sp.random(n, d, density=0.2, format="csr", random_state=seed, dtype=np.float64)


@pytest.mark.parametrize("kind", [sp.csr_matrix, sp.csr_array, sp.csc_matrix, sp.coo_array])
def test_as_source_of_scipy_sparse_rows_is_a_sparse_source(kind: type) -> None:
    """Any scipy.sparse container becomes CSR blocks of rows offsets[i]..offsets[i+1]
    that together are the rows."""
    X = kind(_rows())
    src = as_source(X)
    assert isinstance(src, SparseSource) and src.sparse and not src.lazy
    assert src.shape == X.shape and src.dtype == np.float64
    blocks = [src.block(i) for i in range(src.n_blocks)]
    assert all(sp.issparse(b) and b.format == "csr" for b in blocks)
    assert [b.shape[0] for b in blocks] == np.diff(src.offsets).tolist()
    np.testing.assert_array_equal(sp.vstack(blocks).toarray(), X.toarray())


def test_blocks_share_the_rows_and_balance_stored_values() -> None:
    """Blocks are views of X's data (no copy per pass), of about equal stored values."""
    X = _rows(20000, 40)
    src = SparseSource(X)
    if src.n_blocks > 1:
        nnz = [src.block(i).nnz for i in range(src.n_blocks)]
        assert max(nnz) - min(nnz) <= 2 * X.shape[1]
    b = src.block(src.n_blocks - 1)
    assert np.shares_memory(b.data, X.data) and np.shares_memory(b.indices, X.indices)
    assert src.nbytes == X.data.nbytes + X.indices.nbytes + X.indptr.nbytes


def test_non_canonical_rows_are_summed_in_a_copy() -> None:
    """Duplicate or unsorted entries are summed in a copy: the caller's matrix keeps its
    arrays, and the rows' values are the same."""
    data, indices, indptr = np.array([1.0, 2.0, 3.0]), np.array([2, 0, 2]), np.array([0, 3])
    X = sp.csr_matrix((data, indices, indptr), shape=(1, 3))
    assert not X.has_canonical_format
    out = csr_rows(X)
    assert out.toarray().tolist() == [[2.0, 0.0, 4.0]]
    assert X.data.tolist() == [1.0, 2.0, 3.0] and X.indices.tolist() == [2, 0, 2]
    assert csr_rows(out) is not None and csr_rows(X.astype(np.int64)).dtype == np.float64
    assert csr_rows(X.astype(np.float32)).dtype == np.float32


def test_unsorted_rows_without_duplicates_are_taken_as_they_are() -> None:
    """Rows whose columns are not sorted (a vectoriser's TF-IDF) but stored once each
    are not copied nor sorted; a fit on them equals the fit on the sorted rows."""
    from daskmeans import KMeans

    X = sp.random(300, 40, density=0.2, format="csr", random_state=5)
    X.data += 0.5
    rng = np.random.default_rng(0)
    indices, data = X.indices.copy(), X.data.copy()
    for i in range(X.shape[0]):  # each row's entries shuffled
        p0, p1 = X.indptr[i], X.indptr[i + 1]
        perm = p0 + rng.permutation(p1 - p0)
        indices[p0:p1], data[p0:p1] = X.indices[perm], X.data[perm]
    U = sp.csr_matrix((data, indices, X.indptr.copy()), shape=X.shape)
    assert not U.has_canonical_format and (U != X).nnz == 0
    out = csr_rows(U)
    assert np.shares_memory(out.indices, U.indices) and np.shares_memory(out.data, U.data)
    assert not out.has_canonical_format  # not copied, not sorted
    assert sparse.duplicate_free(U)
    twice = sp.csr_matrix((np.ones(2), np.array([3, 3]), np.array([0, 2])), shape=(1, 5))
    assert not sparse.duplicate_free(twice)
    init = X[:4].toarray()
    a = KMeans(4, init=init, n_init=1, algorithm="lloyd").fit(X)
    b = KMeans(4, init=init, n_init=1, algorithm="lloyd").fit(U)
    np.testing.assert_array_equal(a.labels_, b.labels_)
    np.testing.assert_allclose(a.cluster_centers_, b.cluster_centers_, rtol=1e-12, atol=1e-15)


def test_hold_computes_row_norms_once() -> None:
    """Holding a sparse source computes every row's |x|^2 (float64) for every pass."""
    X = _rows(500, 12)
    src = hold(SparseSource(X))
    np.testing.assert_allclose(src.xsq, (X.toarray() ** 2).sum(1), rtol=1e-12)
    np.testing.assert_allclose(src.block_xsq(0), src.xsq[:src.offsets[1]])


def test_passes_over_a_sparse_source_equal_those_over_its_dense_rows() -> None:
    """A Lloyd pass, a gather and take_rows over CSR blocks give what they give over the
    same rows dense."""
    X = _rows(3000, 20, seed=1)
    sparse_src, dense_src = hold(SparseSource(X, block_rows=700)), as_source(X.toarray())
    C = X[:4].toarray()
    a = reductions.lloyd_pass(sparse_src, C, n_top=3)
    b = reductions.lloyd_pass(dense_src, C, n_top=3)
    np.testing.assert_array_equal(a.counts, b.counts)
    np.testing.assert_allclose(a.sums, b.sums, rtol=1e-12)
    assert a.sse() == pytest.approx(b.sse(), rel=1e-12)
    np.testing.assert_array_equal(a.top.index, b.top.index)
    index = np.array([3, 700, 2999])
    rows, _ = reductions.take_rows(sparse_src, index)
    np.testing.assert_array_equal(rows.toarray(), X.toarray()[index])
