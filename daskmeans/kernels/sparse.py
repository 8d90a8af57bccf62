"""Kernels on sparse rows: a block is a CSR matrix (``scipy.sparse`` ``csr_matrix`` or
``csr_array``) of m rows, the centres dense.

Sparse–dense squared distances are ``|x|^2 - 2 x.c + |c|^2``: the rows' ``|x|^2`` come
with the block (computed once per fit, :func:`daskmeans.kernels.common.row_norms_sq`),
the centres are prepared once per pass as for dense rows
(:class:`~daskmeans.kernels.common.Centres`: ``-2 C^T``, (d, k) contiguous, and
``|C|^2``), and ``x.(-2 C^T)`` costs one pass over the row's stored values, each
updating the k distances of its feature's row of ``-2 C^T``, contiguous. As for dense
rows, centres whose distance lies within the near-tie window of the smallest are
compared in float64 (:data:`~daskmeans.kernels.common.TIE_EPS`), here as
``|c|^2 + sum over the stored values of (x_t - c_t)^2 - c_t^2``, exact to float64
rounding without densifying the row.

The compiled loops (:mod:`daskmeans.kernels.sparse_compiled`) take the CSR arrays
``(data, indices, indptr)``; the functions here are their numpy/scipy reference and
the entry points the metric objects and :func:`daskmeans.kernels.lloyd.lloyd_runs`
call for a CSR block. Nothing here mutates its inputs.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from .common import (
    NEAR_EPS,
    Centres,
    Moments,
    NonFiniteRow,
    compiled_kernels,
    compiled_module,
    near_tie_rows,
    row_norms_sq,
    sse_of_sums,
)

__all__ = ["assign", "cluster_sums", "column_moments", "csr_parts", "distances",
           "duplicate_free",
           "exact_csq", "exact_sq", "lloyd_stats", "nearest", "nearest_labels", "products",
           "row_norms_sq", "settle_near_ties", "winner_sqdist"]


def duplicate_free(X: Any) -> bool:
    """True when no row of a CSR matrix stores a column twice, its columns in any
    order: what the kernels need (a row's ``|x|^2`` sums its stored values' squares).
    scipy's canonical format (sorted columns) implies it; rows in any order are checked
    in one compiled read of the indices (without numba: canonical rows only)."""
    if X.has_canonical_format:
        return True
    if not compiled_kernels():
        return False
    return not compiled_module("sparse").has_duplicates(
        np.ascontiguousarray(X.indices), np.ascontiguousarray(X.indptr), X.shape[1])


def csr_parts(X: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(data, indices, indptr)`` of a CSR block, contiguous (what the compiled
    kernels take)."""
    return (np.ascontiguousarray(X.data), np.ascontiguousarray(X.indices),
            np.ascontiguousarray(X.indptr))


def exact_csq(cen: Centres) -> np.ndarray:
    """(kp,) float64 ``|c|^2`` of the prepared centres (``-m2t / 2`` is exact), inf
    for the padding centres (read-only: :meth:`Centres.csq64`, made once a pass)."""
    return cen.csq64()


def exact_sq(X: Any, i: int, cen: Centres, csq64: np.ndarray, js: np.ndarray
             ) -> np.ndarray:
    """float64 ``|x_i - c_j|^2`` of row ``i`` of a CSR block against the centres
    ``js``: ``|c|^2`` plus, over the row's stored values, ``(x_t - c_t)^2 - c_t^2``."""
    p0, p1 = X.indptr[i], X.indptr[i + 1]
    v = X.data[p0:p1].astype(np.float64)[:, None]
    c = cen.m2t[X.indices[p0:p1]][:, js].astype(np.float64) * -0.5
    return csq64[js] + ((v - c) ** 2 - c * c).sum(0)


def products(X: Any, cen: Centres) -> np.ndarray:
    """(m, kp) ``-2 x.c + |c|^2`` of every row against every (padded) centre, in the
    prepared dtype: the sparse–dense product ``X @ (-2 C^T)``."""
    D = np.asarray(X @ cen.m2t, dtype=cen.dtype)
    D += cen.sq
    return D


def settle_near_ties(X: Any, cen: Centres, csq64: np.ndarray, D: np.ndarray,
                     lab: np.ndarray, sq: np.ndarray, xsq: np.ndarray, j0: int) -> None:
    """:func:`daskmeans.kernels.common.settle_near_ties` for a CSR block, in place:
    the centres within the window compared by :func:`exact_sq`."""
    rows, best, win = near_tie_rows(cen, D, lab, xsq, j0)
    for i in rows:
        js = j0 + np.flatnonzero(D[i] <= best[i] + win[i])
        e = exact_sq(X, int(i), cen, csq64, js)
        b = int(np.argmin(e))
        lab[i] = js[b]
        sq[i] = e[b] - float(xsq[i])


def nearest(X: Any, cen: Centres, xsq: np.ndarray | None = None, runs: int = 1
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(labels, squared distance clipped at 0, |x|^2) of a CSR block: the numpy
    reference of :meth:`daskmeans.kernels.common.Centres.nearest`, same arguments
    (labels and distances (m, runs) for ``runs`` stacked sets of centres)."""
    m = X.shape[0]
    xsq = row_norms_sq(X) if xsq is None else np.asarray(xsq)
    D = products(X, cen)
    csq64 = exact_csq(cen)
    k = cen.k // runs
    lab = np.argmin(D[:, :cen.k].reshape(m, runs, k), axis=2).astype(np.intp)
    lab += np.arange(0, cen.k, k)
    sq = np.take_along_axis(D, lab, axis=1).astype(np.float64)
    for r in range(runs):
        lr, sr = lab[:, r].copy(), sq[:, r].copy()
        settle_near_ties(X, cen, csq64, D[:, r * k:(r + 1) * k], lr, sr, xsq, r * k)
        lab[:, r], sq[:, r] = lr, sr
    sq += np.asarray(xsq, np.float64)[:, None]
    if not np.isfinite(sq).all():
        raise NonFiniteRow(int(np.flatnonzero(~np.isfinite(sq).all(1))[0]))
    np.maximum(sq, 0, out=sq)
    if runs == 1:
        return lab[:, 0], sq[:, 0].astype(cen.dtype), xsq
    return lab, sq.astype(cen.dtype), xsq


def nearest_labels(X: Any, C: np.ndarray | Centres) -> np.ndarray:
    """(n,) int32 nearest centre of every row of a CSR block."""
    cen = Centres.of(C, X.dtype)
    if compiled_kernels():
        return _assign_compiled(X, cen)[0]
    return nearest(X, cen)[0].astype(np.int32)


def winner_sqdist(X: Any, C: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(n,) float64 ``|X[i] - C[labels[i]]|^2`` of a CSR block (``C`` float64):
    ``|c|^2`` plus, over each row's stored values, ``(x_t - c_t)^2 - c_t^2``."""
    C = np.asarray(C, np.float64)
    csq = np.einsum("ij,ij->i", C, C)
    rows = np.repeat(np.arange(X.shape[0]), np.diff(X.indptr))
    c = C[labels[rows], X.indices]
    v = X.data.astype(np.float64)
    per = np.bincount(rows, weights=(v - c) ** 2 - c * c, minlength=X.shape[0])
    return np.maximum(csq[labels] + per, 0)


def assign(X: Any, C: np.ndarray | Centres) -> tuple[np.ndarray, np.ndarray]:
    """(labels (n,) int32, squared distances (n,) float64) of a CSR block: as
    :func:`daskmeans.kernels.common.assign`."""
    cen = Centres.of(C, X.dtype)
    if compiled_kernels():
        return _assign_compiled(X, cen)
    labels = nearest(X, cen)[0].astype(np.int32)
    return labels, winner_sqdist(X, cen.centres64(), labels)


def _assign_compiled(X: Any, cen: Centres) -> tuple[np.ndarray, np.ndarray]:
    """(labels, float64 squared distances) of a CSR block by the compiled loop."""
    n = X.shape[0]
    labels = np.empty((n, 1), np.int32)
    sqd = np.empty((n, 1), np.float64)
    data, indices, indptr = csr_parts(X)
    bad = compiled_module("sparse").assign_sparse(
        data, indices, indptr, cen.m2t, cen.sq, exact_csq(cen), 1, cen.k, labels, sqd,
        cen.tie)
    if bad >= 0:
        raise NonFiniteRow(int(bad))
    return labels[:, 0], sqd[:, 0]


def distances(X: Any, C: np.ndarray | Centres) -> np.ndarray:
    """(n, k) Euclidean distances of a CSR block's rows, X's dtype; those within the
    expansion's rounding (see :func:`daskmeans.kernels.common.distances`) recomputed
    in float64 by :func:`exact_sq`."""
    cen = Centres.of(C, X.dtype)
    xsq = row_norms_sq(X)
    D = products(X, cen)[:, :cen.k]
    D += xsq[:, None]
    near = np.nonzero(D <= NEAR_EPS * np.finfo(D.dtype).eps * (xsq[:, None] + cen.sq[:cen.k]))
    if near[0].size:
        csq64 = exact_csq(cen)
        for i, j in zip(*near, strict=True):
            D[i, j] = exact_sq(X, int(i), cen, csq64, np.array([j]))[0]
    np.maximum(D, 0, out=D)
    return np.sqrt(D, out=D)


def cluster_sums(X: Any, labels: np.ndarray, k: int, weights: np.ndarray | None = None,
                 out: np.ndarray | None = None) -> np.ndarray:
    """(k, d) float64 per-cluster (weighted) sums of a CSR block's rows (added into
    ``out`` if given); ``labels`` (m,) or (m, runs), as
    :func:`daskmeans.kernels.common.cluster_sums`."""
    m = X.shape[0]
    runs = 1 if labels.ndim == 1 else labels.shape[1]
    if out is None:
        out = np.zeros((k, X.shape[1]))
    vals = np.ones(m * runs) if weights is None else np.repeat(
        np.asarray(weights, np.float64), runs)
    onehot = sp.csr_matrix((vals, labels.ravel(), np.arange(0, m * runs + 1, runs)),
                           shape=(m, k)).T
    out += (onehot @ X.astype(np.float64)).toarray()
    return out


def column_moments(X: Any) -> Moments:
    """Column moments of a CSR block (zeros counted), in float64."""
    n = X.shape[0]
    if n == 0:
        return Moments(0.0, np.zeros(X.shape[1]), np.zeros(X.shape[1]))
    X64 = X.astype(np.float64)
    mean = np.asarray(X64.sum(0)).ravel() / n
    sq = np.asarray(X64.multiply(X64).sum(0)).ravel()
    return Moments(float(n), mean, np.maximum(sq - n * mean * mean, 0))


def lloyd_stats(X: Any, cen: Centres, xsq: np.ndarray | None, w: np.ndarray | None,
                runs: int, k: int, labels: np.ndarray, sqdist: np.ndarray,
                sums: np.ndarray) -> tuple[np.ndarray, list[float]]:
    """A CSR block's part of a Lloyd pass (:func:`daskmeans.kernels.lloyd.lloyd_runs`):
    fills ``labels`` and ``sqdist`` (m, runs) and ``sums`` (runs*k, d) float64;
    returns (counts, each run's SSE). Compiled when numba is installed, else numpy."""
    n = X.shape[0]
    if xsq is None:
        xsq = row_norms_sq(X, np.float64)
    xsq = np.asarray(xsq, np.float64)
    counts = np.zeros(cen.k)
    if compiled_kernels():
        sumsq = np.zeros(cen.k)
        data, indices, indptr = csr_parts(X)
        ww = np.empty(0) if w is None else np.ascontiguousarray(w, np.float64)
        bad = compiled_module("sparse").lloyd_sparse(
            data, indices, indptr, cen.m2t, cen.sq, exact_csq(cen), xsq, ww, runs, k,
            labels, sqdist, sums, counts, sumsq, cen.tie)
        if bad >= 0:
            raise NonFiniteRow(int(bad))
        C64, csq = cen.centres64(), cen.row_sq64()
        each = [slice(r * k, (r + 1) * k) for r in range(runs)]
        return counts, [sse_of_sums(sums[j], counts[j], sumsq[j], C64[j], csq[j])
                        for j in each]
    lab, sq, _ = nearest(X, cen, xsq.astype(cen.dtype), runs)
    labels[:] = lab.reshape(n, runs)
    sqdist[:] = sq.reshape(n, runs)
    cluster_sums(X, labels if runs > 1 else labels[:, 0], cen.k, w, out=sums)
    counts += np.bincount(labels.ravel(), weights=None if w is None else np.repeat(w, runs),
                          minlength=cen.k)
    C64 = cen.centres64()
    sse = []
    for r in range(runs):
        e = winner_sqdist(X, C64, labels[:, r])
        sse.append(float(e.sum() if w is None else e @ w))
    return counts, sse
