"""Compiled (numba) fused Lloyd kernel: the hot loop of :func:`daskmeans.kernels.lloyd.lloyd_runs`.

Per tile of rows (cache-sized, :func:`daskmeans.kernels.common_compiled.tile_rows`: the
tile, its distance block and, for uint8 rows, its scaled float32 copy stay in L2), in
one pass over the tile: the distance GEMM through BLAS (``np.dot`` into a reused block:
numba calls the same scipy BLAS scikit-learn uses), then per row the argmin over each
run's centres, the squared distance (clipped at 0), and the row added into its cluster's
float64 sum and weight. uint8 rows are scaled inside (``float32(raw) * scale``, bit for
bit what :func:`daskmeans.kernels.common.scale_rows` does), so no float32 copy of a
block is made. :mod:`daskmeans.kernels.lloyd` keeps the numpy reference that the tests
compare this against.
"""

from __future__ import annotations

import numpy as np

from .common_compiled import TILE, finite_max, jit, near_tie, row_sq, scaled_tile, tie_window


@jit
def assign_tile(xb: np.ndarray, D: np.ndarray, csq: np.ndarray, x2: np.ndarray, g0: int,
                 w: np.ndarray, runs: int, k: int, labels: np.ndarray, sqd: np.ndarray,
                 sums: np.ndarray, counts: np.ndarray, sumsq: np.ndarray, m2t: np.ndarray,
                 tie: float, cmax: float) -> int:
    """Assign the rows of one tile (distances ``D = xb @ -2C^T`` given; near ties
    settled in float64, :func:`tie_window`), add them (and their ``|x|^2``, float64
    ``x2``) to their clusters; returns the global index of the first row whose
    distance is not finite, else -1."""
    m, d = xb.shape
    weighted = w.shape[0] > 0
    for i in range(m):
        g = g0 + i
        wi = w[g] if weighted else 1.0
        for r in range(runs):
            j0 = r * k
            bj = j0
            best = D[i, j0] + csq[j0]
            second = np.inf
            for j in range(j0 + 1, j0 + k):
                v = D[i, j] + csq[j]
                if v < best:
                    second = best
                    best, bj = v, j
                elif v < second:
                    second = v
            s = best + x2[i]
            win = tie_window(tie, x2[i], cmax)
            if second - best <= win and np.isfinite(s):
                bj, s = near_tie(xb[i], m2t, D[i], csq, j0, j0 + k, best + win)
            if not np.isfinite(s):
                return g
            if s < 0:
                s = 0
            labels[g, r] = bj
            sqd[g, r] = s
            counts[bj] += wi
            sumsq[bj] += wi * x2[i]
            if weighted:
                for t in range(d):
                    sums[bj, t] += wi * xb[i, t]
            else:
                for t in range(d):
                    sums[bj, t] += xb[i, t]
    return -1


@jit
def _lloyd_tile(xb: np.ndarray, D: np.ndarray, x2: np.ndarray, m2t: np.ndarray,
                csq: np.ndarray, xsq: np.ndarray, s0: int, w: np.ndarray, runs: int, k: int,
                labels: np.ndarray, sqd: np.ndarray, sums: np.ndarray,
                counts: np.ndarray, sumsq: np.ndarray, tie: float, cmax: float) -> int:
    """One tile of float rows starting at row ``s0``: the GEMM into ``D``, ``|x|^2``
    (given or summed here into ``x2``), then :func:`assign_tile`."""
    m = xb.shape[0]
    Db = D[:m]
    np.dot(xb, m2t, Db)
    if xsq.shape[0] > 0:
        x2[:m] = xsq[s0:s0 + m]
    else:
        row_sq(xb, x2)
    return assign_tile(xb, Db, csq, x2, s0, w, runs, k, labels, sqd, sums, counts, sumsq,
                        m2t, tie, cmax)




@jit
def lloyd_float(X: np.ndarray, m2t: np.ndarray, csq: np.ndarray, xsq: np.ndarray,
                w: np.ndarray, runs: int, k: int, tile: int, labels: np.ndarray,
                sqd: np.ndarray, sums: np.ndarray, counts: np.ndarray, sumsq: np.ndarray,
                tie: float) -> int:
    """Fused Lloyd statistics of float rows ``X`` (n, d) against prepared centres
    (``m2t = -2 C^T`` (d, kp), ``csq = |C|^2`` (kp,)), written into ``labels`` (n, runs)
    int32, ``sqd`` (n, runs), ``sums`` (runs*k, d) float64, ``counts`` and ``sumsq``
    (runs*k,) float64, the weights and ``w |x|^2`` per cluster (added to). ``xsq`` (n,)
    or empty, ``w`` (n,) float64 or empty. Returns the first row with a non-finite
    distance, or -1."""
    n = X.shape[0]
    D = np.empty((tile, m2t.shape[1]), dtype=m2t.dtype)
    x2 = np.empty(tile)  # float64: the clusters' sums of |x|^2 (the inertia) add these
    cmax = finite_max(csq, runs * k)
    for s0 in range(0, n, tile):
        bad = _lloyd_tile(X[s0:min(n, s0 + tile)], D, x2, m2t, csq, xsq, s0, w, runs, k,
                          labels, sqd, sums, counts, sumsq, tie, cmax)
        if bad >= 0:
            return bad
    return -1


@jit
def lloyd_raw(X: np.ndarray, scale: float, m2t: np.ndarray, csq: np.ndarray,
              xsq: np.ndarray, w: np.ndarray, runs: int, k: int, tile: int,
              labels: np.ndarray, sqd: np.ndarray, sums: np.ndarray,
              counts: np.ndarray, sumsq: np.ndarray, tie: float) -> int:
    """:func:`lloyd_float` for raw stored rows (uint8 pixels) standing for
    ``float32(X) * scale``: each tile is scaled into a reused float32 block."""
    n, d = X.shape
    cmax = finite_max(csq, runs * k)
    buf = np.empty((tile, d), dtype=np.float32)
    D = np.empty((tile, m2t.shape[1]), dtype=np.float32)
    x2 = np.empty(tile)
    for s0 in range(0, n, tile):
        xb = scaled_tile(X, s0, scale, buf)
        bad = _lloyd_tile(xb, D, x2, m2t, csq, xsq, s0, w, runs, k, labels, sqd, sums,
                          counts, sumsq, tie, cmax)
        if bad >= 0:
            return bad
    return -1


def warm_up() -> None:
    """Compile (or load from the on-disk cache) this module's specialisations: float32,
    float64 and raw uint8 rows, weighted or not."""
    for dtype in (np.float32, np.float64):
        X = np.zeros((3, 2), dtype=dtype)
        m2t = np.zeros((2, 2), dtype=dtype)
        csq = np.zeros(2, dtype=dtype)
        for w in (np.empty(0), np.ones(3)):
            lloyd_float(X, m2t, csq, np.empty(0), w, 1, 2, TILE,
                        np.empty((3, 1), np.int32), np.empty((3, 1), dtype),
                        np.zeros((2, 2)), np.zeros(2), np.zeros(2), 1e-6)
            if dtype == np.float32:
                lloyd_raw(np.zeros((3, 2), np.uint8), 1.0, m2t, csq, np.empty(0), w,
                          1, 2, TILE, np.empty((3, 1), np.int32), np.empty((3, 1), dtype),
                          np.zeros((2, 2)), np.zeros(2), np.zeros(2), 1e-6)
