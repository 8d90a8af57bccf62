"""Compiled (numba) mini-batch step: the hot loop of
:func:`daskmeans.kernels.minibatch.minibatch_step`.

The batch's rows are gathered a tile at a time from the rows where they are held (a
numpy block and the local indices of the batch's rows in it) into a reused buffer
that stays in L2 (uint8 pixels scaled on the way, as :func:`~.common_compiled.scaled_tile`
does), so no copy of the batch is made. Each tile then goes through the same loop as a
Lloyd pass (:func:`~.lloyd_compiled.assign_tile`: the distance GEMM, the nearest
centre with the float64 near-tie rule, the row added to its cluster's float64 sum in
batch order). :func:`update_centres` then applies scikit-learn's count-weighted
update. :mod:`daskmeans.kernels.minibatch` keeps the numpy reference the tests compare
this against.
"""

from __future__ import annotations

import numpy as np

from .common_compiled import TILE, finite_max, jit, near_tie, row_sq, tie_window
from .lloyd_compiled import assign_tile


@jit
def _gather(X: np.ndarray, index: np.ndarray, s0: int, buf: np.ndarray) -> np.ndarray:
    """Rows ``X[index[s0 ..]]`` (as many as ``buf`` holds) into ``buf``."""
    m = min(index.shape[0] - s0, buf.shape[0])
    xb = buf[:m]
    for i in range(m):
        r = index[s0 + i]
        for t in range(X.shape[1]):
            xb[i, t] = X[r, t]
    return xb


@jit
def _gather_raw(X: np.ndarray, scale: float, index: np.ndarray, s0: int,
                buf: np.ndarray) -> np.ndarray:
    """Raw rows ``X[index[s0 ..]]`` as ``float32(x) * scale`` into ``buf``."""
    m = min(index.shape[0] - s0, buf.shape[0])
    sc = np.float32(scale)
    xb = buf[:m]
    for i in range(m):
        r = index[s0 + i]
        for t in range(X.shape[1]):
            xb[i, t] = np.float32(X[r, t]) * sc
    return xb


@jit
def batch_float(X: np.ndarray, index: np.ndarray, m2t: np.ndarray, csq: np.ndarray,
                w: np.ndarray, k: int, tile: int, pos0: int, labels: np.ndarray,
                sqd: np.ndarray, sums: np.ndarray, counts: np.ndarray, sumsq: np.ndarray,
                tie: float) -> int:
    """Assign the batch rows ``X[index]`` of one block (batch positions ``pos0 ..``)
    to the prepared centres (``m2t = -2 C^T``, ``csq = |C|^2``), adding each row, its
    weight and ``w |x|^2`` into its cluster's ``sums``, ``counts`` and ``sumsq``
    (float64, added to) in batch order; ``labels``/``sqd`` (b, 1) and ``w`` (b,) or
    empty are indexed by batch position. Returns the batch position of the first row
    whose distance is not finite, else -1."""
    b = index.shape[0]
    buf = np.empty((tile, X.shape[1]), dtype=X.dtype)
    D = np.empty((tile, m2t.shape[1]), dtype=m2t.dtype)
    x2 = np.empty(tile)
    cmax = finite_max(csq, k)
    for s0 in range(0, b, tile):
        xb = _gather(X, index, s0, buf)
        m = xb.shape[0]
        Db = D[:m]
        np.dot(xb, m2t, Db)
        row_sq(xb, x2)
        bad = assign_tile(xb, Db, csq, x2, pos0 + s0, w, 1, k, labels, sqd, sums, counts,
                          sumsq, m2t, tie, cmax)
        if bad >= 0:
            return bad
    return -1


@jit
def batch_raw(X: np.ndarray, scale: float, index: np.ndarray, m2t: np.ndarray,
              csq: np.ndarray, w: np.ndarray, k: int, tile: int, pos0: int,
              labels: np.ndarray, sqd: np.ndarray, sums: np.ndarray, counts: np.ndarray,
              sumsq: np.ndarray, tie: float) -> int:
    """:func:`batch_float` for raw stored rows (uint8 pixels) standing for
    ``float32(X) * scale``."""
    b = index.shape[0]
    buf = np.empty((tile, X.shape[1]), dtype=np.float32)
    D = np.empty((tile, m2t.shape[1]), dtype=np.float32)
    x2 = np.empty(tile)
    cmax = finite_max(csq, k)
    for s0 in range(0, b, tile):
        xb = _gather_raw(X, scale, index, s0, buf)
        m = xb.shape[0]
        Db = D[:m]
        np.dot(xb, m2t, Db)
        row_sq(xb, x2)
        bad = assign_tile(xb, Db, csq, x2, pos0 + s0, w, 1, k, labels, sqd, sums, counts,
                          sumsq, m2t, tie, cmax)
        if bad >= 0:
            return bad
    return -1


@jit
def assign_range(X: np.ndarray, scale: float, raw: bool, index: np.ndarray, lo: int,
                 hi: int, m2t: np.ndarray, csq: np.ndarray, k: int, tile: int, pos0: int,
                 labels: np.ndarray, x2: np.ndarray, tie: float) -> int:
    """The nearest centre (``labels``, by batch position) and ``|x|^2`` (``x2``) of the
    batch rows ``X[index[lo:hi]]`` of one block (batch positions ``pos0 + lo ..``),
    ``lo`` a multiple of ``tile``: the first half of a step whose tiles are spread
    over threads (each tile is assigned as :func:`batch_float` assigns it, whichever
    thread takes it). Returns the first batch position whose distance is not
    finite, else -1."""
    d = X.shape[1]
    buf = np.empty((tile, d), dtype=m2t.dtype)
    D = np.empty((tile, m2t.shape[1]), dtype=m2t.dtype)
    xt = np.empty(tile)
    cmax = finite_max(csq, k)
    for s0 in range(lo, hi, tile):
        m = min(tile, hi - s0)
        xb = buf[:m]
        sc = np.float32(scale)
        for i in range(m):
            r = index[s0 + i]
            for t in range(d):
                xb[i, t] = np.float32(X[r, t]) * sc if raw else X[r, t]
        Db = D[:m]
        np.dot(xb, m2t, Db)
        row_sq(xb, xt)
        for i in range(m):
            best = Db[i, 0] + csq[0]
            second = np.inf
            bj = 0
            for j in range(1, k):
                v = Db[i, j] + csq[j]
                if v < best:
                    second = best
                    best, bj = v, j
                elif v < second:
                    second = v
            s = best + xt[i]
            win = tie_window(tie, xt[i], cmax)
            if second - best <= win and np.isfinite(s):
                bj, s = near_tie(xb[i], m2t, Db[i], csq, 0, k, best + win)
            if not np.isfinite(s):
                return pos0 + s0 + i
            labels[pos0 + s0 + i] = bj
            x2[pos0 + s0 + i] = xt[i]
    return -1


@jit
def accumulate(X: np.ndarray, scale: float, raw: bool, index: np.ndarray, pos0: int,
               labels: np.ndarray, x2: np.ndarray, w: np.ndarray, sums: np.ndarray,
               counts: np.ndarray, sumsq: np.ndarray) -> None:
    """The second half: the batch rows ``X[index]`` (batch positions ``pos0 ..``)
    added to their clusters' float64 sums, weights and ``w |x|^2``, in batch order
    (as :func:`batch_float` adds them)."""
    weighted = w.shape[0] > 0
    sc = np.float32(scale)
    for i in range(index.shape[0]):
        g = pos0 + i
        r = index[i]
        j = labels[g]
        wi = w[g] if weighted else 1.0
        counts[j] += wi
        sumsq[j] += wi * x2[g]
        for t in range(X.shape[1]):
            v = np.float64(np.float32(X[r, t]) * sc) if raw else np.float64(X[r, t])
            if weighted:
                sums[j, t] += wi * v
            else:
                sums[j, t] += v


@jit
def update_centres(C: np.ndarray, counts: np.ndarray, sums: np.ndarray,
                   wsum: np.ndarray, out: np.ndarray, out_counts: np.ndarray) -> None:
    """scikit-learn's count-weighted update (``_minibatch_update_dense``) of float64
    centres ``C`` (k, d) with counts ``counts`` by a batch's per-cluster sums and
    weights: where ``wsum[j] > 0``, ``out[j] = (C[j] N_j + S_j) / (N_j + wsum_j)``
    (multiplied by the reciprocal, as there) and ``out_counts[j] = N_j + wsum_j``;
    elsewhere both unchanged."""
    for j in range(C.shape[0]):
        if wsum[j] > 0:
            n = counts[j] + wsum[j]
            alpha = 1.0 / n
            for t in range(C.shape[1]):
                out[j, t] = (C[j, t] * counts[j] + sums[j, t]) * alpha
            out_counts[j] = n
        else:
            for t in range(C.shape[1]):
                out[j, t] = C[j, t]
            out_counts[j] = counts[j]


def warm_up() -> None:
    """Compile (or load from the on-disk cache) this module's specialisations: float32,
    float64 and raw uint8 rows, weighted or not."""
    index = np.arange(3, dtype=np.int64)
    for dtype in (np.float32, np.float64):
        m2t = np.zeros((2, 2), dtype=dtype)
        csq = np.zeros(2, dtype=dtype)
        for w in (np.empty(0), np.ones(3)):
            batch_float(np.zeros((3, 2), dtype=dtype), index, m2t, csq, w, 2, TILE, 0,
                        np.empty((3, 1), np.int32), np.empty((3, 1), dtype),
                        np.zeros((2, 2)), np.zeros(2), np.zeros(2), 1e-6)
            if dtype == np.float32:
                batch_raw(np.zeros((3, 2), np.uint8), 1.0, index, m2t, csq, w, 2, TILE, 0,
                          np.empty((3, 1), np.int32), np.empty((3, 1), dtype),
                          np.zeros((2, 2)), np.zeros(2), np.zeros(2), 1e-6)
        for X in (np.zeros((3, 2), dtype=dtype), np.zeros((3, 2), np.uint8)):
            if X.dtype == np.uint8 and dtype != np.float32:
                continue
            raw = X.dtype == np.uint8
            labels, x2 = np.zeros(3, np.int32), np.zeros(3)
            assign_range(X, 1.0, raw, index, 0, 3, m2t, csq, 2, TILE, 0, labels, x2, 1e-6)
            for w in (np.empty(0), np.ones(3)):
                accumulate(X, 1.0, raw, index, 0, labels, x2, w, np.zeros((2, 2)),
                           np.zeros(2), np.zeros(2))
    update_centres(np.zeros((2, 2)), np.zeros(2), np.zeros((2, 2)), np.zeros(2),
                   np.empty((2, 2)), np.empty(2))
