"""Compiled (numba) loops over CSR rows: the hot loops of :mod:`daskmeans.kernels.sparse`.

A block comes as its CSR arrays ``(data, indices, indptr)`` and the centres as
prepared for the dense GEMM, ``m2t = -2 C^T`` (d, kp) contiguous and ``csq = |C|^2``:
each stored value ``x_t`` adds ``x_t * m2t[t, :]`` to the row's kp distances, a
contiguous row of ``m2t``, so a row costs ``nnz * kp`` multiply-adds that vectorise
(scikit-learn's sparse Lloyd reads ``centers[j, indices[p]]`` centre by centre
instead). The distances are accumulated in the centres' dtype as the dense GEMM
does; the nearest centre, the near-tie rule (:func:`exact_sq_sparse`), the
per-cluster sums and ``sum w |x|^2`` follow the dense fused loop
(:mod:`daskmeans.kernels.lloyd_compiled`), in float64. :func:`two_means_sparse` is
bisecting k-means' 2-means on CSR rows.
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


@jit
def has_duplicates(indices: np.ndarray, indptr: np.ndarray, d: int) -> bool:
    """True when a CSR row stores a column twice (or a column index is outside
    ``0..d-1``), whatever the order of its columns: one read of the indices."""
    seen = np.full(d, -1, np.int64)  # the last row that stored each column
    for i in range(indptr.shape[0] - 1):
        for p in range(indptr[i], indptr[i + 1]):
            t = indices[p]
            if t < 0 or t >= d or seen[t] == i:
                return True
            seen[t] = i
    return False


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
            has_duplicates(indices, indptr, 2)
            assign_sparse(data, indices, indptr, m2t, csq, np.zeros(2), 1, 2,
                          np.empty((2, 1), np.int32), np.empty((2, 1)), 1e-6)
            lab = np.empty(2, np.int32)
            two_means_sparse(data, indices, indptr, np.arange(2, dtype=np.int64), np.ones(2),
                             np.zeros((2, 2)), 2, 0.0, lab, np.zeros(2), np.zeros(2),
                             np.zeros(2, np.int64))
            for w in (np.empty(0), np.ones(2)):
                lloyd_sparse(data, indices, indptr, m2t, csq, np.zeros(2), np.ones(2), w,
                             1, 2, np.empty((2, 1), np.int32), np.empty((2, 1), dtype),
                             np.zeros((2, 2)), np.zeros(2), np.zeros(2), 1e-6)


@jit
def _two_assign(data: np.ndarray, indices: np.ndarray, indptr: np.ndarray, pos: np.ndarray,
                C: np.ndarray, lab: np.ndarray, dist: np.ndarray) -> None:
    """Each CSR row ``pos[j]`` to the nearer of the two float64 centres ``C`` (the
    first on a tie) into ``lab``, its float64 squared distance into ``dist``."""
    c0, c1 = 0.0, 0.0
    for t in range(C.shape[1]):
        c0 += C[0, t] * C[0, t]
        c1 += C[1, t] * C[1, t]
    for j in range(pos.shape[0]):
        i = pos[j]
        d0, d1 = c0, c1
        for p in range(indptr[i], indptr[i + 1]):
            v = np.float64(data[p])
            a, b = C[0, indices[p]], C[1, indices[p]]
            d0 += (v - a) * (v - a) - a * a
            d1 += (v - b) * (v - b) - b * b
        if d1 < d0:
            lab[j], dist[j] = 1, d1
        else:
            lab[j], dist[j] = 0, d0


@jit
def two_means_sparse(data: np.ndarray, indices: np.ndarray, indptr: np.ndarray,
                     pos: np.ndarray, w: np.ndarray, C: np.ndarray, max_iter: int,
                     tol: float, lab: np.ndarray, sse: np.ndarray, weight: np.ndarray,
                     count: np.ndarray) -> int:
    """A whole 2-means on the CSR rows ``pos`` (``w``: every row's weight), from the
    float64 centres ``C`` (2, d), updated in place: the iterations of
    :func:`daskmeans.kernels.bisect.two_means` (the nearer centre, an empty child
    moved onto the farthest row of positive weight, the weighted means, stopping at a
    fixed point or a shift <= ``tol``), then the final assignment into ``lab``,
    ``sse``, ``weight`` and ``count``. Returns the iterations made."""
    m, d = pos.shape[0], C.shape[1]
    dist = np.empty(m)
    sums = np.empty((2, d))
    wts = np.empty(2)
    n_iter = 0
    for _ in range(max_iter):
        _two_assign(data, indices, indptr, pos, C, lab, dist)
        n_iter += 1
        sums[:] = 0.0
        wts[:] = 0.0
        any_w = False
        for j in range(m):
            wl = w[pos[j]]
            c = lab[j]
            wts[c] += wl
            any_w = any_w or wl > 0
            for p in range(indptr[pos[j]], indptr[pos[j] + 1]):
                sums[c, indices[p]] += wl * data[p]
        n_reloc = 0
        if (wts[0] == 0 or wts[1] == 0) and any_w:
            far, best = -1, -np.inf
            for j in range(m):
                if w[pos[j]] > 0 and dist[j] > best:
                    far, best = j, dist[j]
            empty = 0 if wts[0] == 0 else 1
            old = lab[far]
            wl = w[pos[far]]
            sums[empty, :] = 0.0
            for p in range(indptr[pos[far]], indptr[pos[far] + 1]):
                v = np.float64(data[p]) * wl
                sums[old, indices[p]] -= v
                sums[empty, indices[p]] = v
            wts[old] -= wl
            wts[empty] = wl
            n_reloc = 1
        shift = 0.0
        for c in range(2):
            for t in range(d):
                new = sums[c, t] / wts[c] if wts[c] > 0 else C[c, t]
                shift += (new - C[c, t]) * (new - C[c, t])
                C[c, t] = new
        if (shift == 0 and n_reloc == 0) or shift <= tol:
            break
    _two_assign(data, indices, indptr, pos, C, lab, dist)
    sse[:] = 0.0
    weight[:] = 0.0
    count[:] = 0
    for j in range(m):
        c = lab[j]
        wl = w[pos[j]]
        sse[c] += dist[j] * wl
        weight[c] += wl
        count[c] += 1
    return n_iter
