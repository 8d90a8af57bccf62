"""Compiled (numba) loops over CSR rows: the hot loops of :mod:`daskmeans.kernels.sparse`.

A block comes as its CSR arrays ``(data, indices, indptr)`` and the centres as
prepared for the dense GEMM, ``m2t = -2 C^T`` (d, kp) contiguous and ``csq = |C|^2``:
each stored value ``x_t`` adds ``x_t * m2t[t, :]`` to the row's kp distances, a
contiguous row of ``m2t``, so a row costs ``nnz * kp`` multiply-adds that vectorise
(scikit-learn's sparse Lloyd reads ``centers[j, indices[p]]`` centre by centre
instead). The distances are accumulated in the centres' dtype as the dense GEMM
does; the nearest centre, the near-tie rule (:func:`exact_sq_sparse`), the
per-cluster sums and ``sum w |x|^2`` follow the dense fused loop
(:mod:`daskmeans.kernels.lloyd_compiled`), in float64.
"""

from __future__ import annotations

import numpy as np

from .common_compiled import finite_max, jit, jit_reassoc, tie_window


@jit_reassoc
def row_sq(data: np.ndarray, indptr: np.ndarray, out: np.ndarray) -> None:
    """``out[i] = |x_i|^2`` of CSR rows, squared and summed in float64."""
    for i in range(indptr.shape[0] - 1):
        acc = 0.0
        for p in range(indptr[i], indptr[i + 1]):
            v = np.float64(data[p])
            acc += v * v
        out[i] = acc


@jit_reassoc
def exact_sq_sparse(data: np.ndarray, indices: np.ndarray, p0: int, p1: int,
                    m2t: np.ndarray, csq64: np.ndarray, j: int) -> float:
    """float64 ``|x - c_j|^2`` of the CSR row stored at ``p0:p1``: ``|c_j|^2`` plus,
    over its stored values, ``(x_t - c_t)^2 - c_t^2`` (``c = -m2t / 2``, exact)."""
    acc = csq64[j]
    for p in range(p0, p1):
        c = -0.5 * np.float64(m2t[indices[p], j])
        v = np.float64(data[p]) - c
        acc += v * v - c * c
    return acc


@jit
def _row_products(data: np.ndarray, indices: np.ndarray, p0: int, p1: int,
                  m2t: np.ndarray, D: np.ndarray) -> None:
    """``D = x . m2t`` for the CSR row stored at ``p0:p1`` (D in m2t's dtype)."""
    kp = m2t.shape[1]
    for j in range(kp):
        D[j] = 0
    for p in range(p0, p1):
        v = data[p]
        t = indices[p]
        for j in range(kp):
            D[j] += v * m2t[t, j]


@jit
def _nearest_row(data: np.ndarray, indices: np.ndarray, p0: int, p1: int,
                 m2t: np.ndarray, csq: np.ndarray, csq64: np.ndarray, D: np.ndarray,
                 x2: float, j0: int, k: int, tie: float, cmax: float) -> tuple[int, float]:
    """The nearest of centres ``j0 .. j0+k`` to a row whose products are in ``D`` and
    its squared distance (near ties settled in float64), not clipped."""
    bj = j0
    best = D[j0] + csq[j0]
    second = np.inf
    for j in range(j0 + 1, j0 + k):
        v = D[j] + csq[j]
        if v < best:
            second = best
            best, bj = v, j
        elif v < second:
            second = v
    s = best + x2
    win = tie_window(tie, x2, cmax)
    if second - best <= win and np.isfinite(s):
        limit = best + win
        be = np.inf
        for j in range(j0, j0 + k):
            if D[j] + csq[j] <= limit:
                e = exact_sq_sparse(data, indices, p0, p1, m2t, csq64, j)
                if e < be:
                    be, bj = e, j
        s = be
    return bj, s


@jit
def assign_sparse(data: np.ndarray, indices: np.ndarray, indptr: np.ndarray,
                  m2t: np.ndarray, csq: np.ndarray, csq64: np.ndarray, runs: int, k: int,
                  labels: np.ndarray, sqd: np.ndarray, tie: float) -> int:
    """Nearest centre of every CSR row for each of ``runs`` stacked sets of ``k``
    centres into ``labels`` (n, runs) int32, and the float64 squared distance to it,
    exact (:func:`exact_sq_sparse`), into ``sqd`` (n, runs). Returns the first row
    whose distance is not finite, or -1."""
    n = indptr.shape[0] - 1
    D = np.empty(m2t.shape[1], dtype=m2t.dtype)
    cmax = finite_max(csq, runs * k)
    for i in range(n):
        p0, p1 = indptr[i], indptr[i + 1]
        _row_products(data, indices, p0, p1, m2t, D)
        x2 = 0.0
        for p in range(p0, p1):
            v = np.float64(data[p])
            x2 += v * v
        for r in range(runs):
            bj, s = _nearest_row(data, indices, p0, p1, m2t, csq, csq64, D, x2, r * k, k,
                                 tie, cmax)
            if not np.isfinite(s):
                return i
            labels[i, r] = bj
            e = exact_sq_sparse(data, indices, p0, p1, m2t, csq64, bj)
            sqd[i, r] = e if e > 0 else 0.0
    return -1


@jit
def lloyd_sparse(data: np.ndarray, indices: np.ndarray, indptr: np.ndarray,
                 m2t: np.ndarray, csq: np.ndarray, csq64: np.ndarray, xsq: np.ndarray,
                 w: np.ndarray, runs: int, k: int, labels: np.ndarray, sqd: np.ndarray,
                 sums: np.ndarray, counts: np.ndarray, sumsq: np.ndarray,
                 tie: float) -> int:
    """Fused Lloyd statistics of CSR rows (the sparse
    :func:`daskmeans.kernels.lloyd_compiled.lloyd_float`): ``labels`` (n, runs) int32,
    ``sqd`` (n, runs) squared distances (clipped at 0), and added to: ``sums``
    (runs*k, d), ``counts`` and ``sumsq`` (runs*k,) float64. ``xsq`` (n,) float64
    ``|x|^2``, ``w`` (n,) float64 or empty. Returns the first row with a non-finite
    distance, or -1."""
    n = indptr.shape[0] - 1
    weighted = w.shape[0] > 0
    D = np.empty(m2t.shape[1], dtype=m2t.dtype)
    cmax = finite_max(csq, runs * k)
    for i in range(n):
        p0, p1 = indptr[i], indptr[i + 1]
        _row_products(data, indices, p0, p1, m2t, D)
        x2 = xsq[i]
        wi = w[i] if weighted else 1.0
        for r in range(runs):
            bj, s = _nearest_row(data, indices, p0, p1, m2t, csq, csq64, D, x2, r * k, k,
                                 tie, cmax)
            if not np.isfinite(s):
                return i
            labels[i, r] = bj
            sqd[i, r] = s if s > 0 else 0.0
            counts[bj] += wi
            sumsq[bj] += wi * x2
            for p in range(p0, p1):
                sums[bj, indices[p]] += wi * data[p]
    return -1


def warm_up() -> None:
    """Compile (or load from the on-disk cache) this module's specialisations: float32
    and float64 values, int32 and int64 indices, weighted or not."""
    for dtype in (np.float32, np.float64):
        for itype in (np.int32, np.int64):
            data = np.ones(2, dtype)
            indices = np.array([0, 1], itype)
            indptr = np.array([0, 1, 2], itype)
            m2t = np.zeros((2, 2), dtype)
            csq = np.zeros(2, dtype)
            row_sq(data, indptr, np.empty(2))
            assign_sparse(data, indices, indptr, m2t, csq, np.zeros(2), 1, 2,
                          np.empty((2, 1), np.int32), np.empty((2, 1)), 1e-6)
            for w in (np.empty(0), np.ones(2)):
                lloyd_sparse(data, indices, indptr, m2t, csq, np.zeros(2), np.ones(2), w,
                             1, 2, np.empty((2, 1), np.int32), np.empty((2, 1), dtype),
                             np.zeros((2, 2)), np.zeros(2), np.zeros(2), 1e-6)
