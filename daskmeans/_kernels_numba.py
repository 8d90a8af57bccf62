"""Compiled (numba) fused Lloyd kernel: the hot loop of :func:`daskmeans._kernels.lloyd_runs`.

Per tile of :data:`TILE` rows (cache-sized: the tile, its distance block and, for
uint8 rows, its scaled float32 copy stay in L2), in one pass over the tile: the
distance GEMM through BLAS (``np.dot`` into a reused block: numba calls the same
scipy BLAS scikit-learn uses), then per row the argmin over each run's centres, the
squared distance (clipped at 0), and the row added into its cluster's float64 sum and
weight. uint8 rows are scaled inside (``float32(raw) * scale``, bit for bit what
:func:`daskmeans._kernels.scale_rows` does), so no float32 copy of a block is made.

Nothing here touches dask or allocates per row; inputs are never mutated (the
outputs are arrays the caller passes in for this purpose). Functions are compiled on
first use and cached on disk (``cache=True``); :func:`warm_up` compiles them ahead
and says what that cost. :mod:`daskmeans._kernels` keeps the numpy reference that the
tests compare this against.
"""

from __future__ import annotations

import time

import numba
import numpy as np

#: rows per tile. 256 float32 rows of 784 features are 0.8 MB: with the distance
#: block they stay in L2 while they are assigned and summed (scikit-learn's Lloyd
#: uses 256-row chunks for the same reason).
TILE = 256

_jit = numba.njit(cache=True, nogil=True, fastmath=False, error_model="numpy")


@numba.njit(cache=True, nogil=True, fastmath={"reassoc"}, error_model="numpy")
def row_sq(xb: np.ndarray, out: np.ndarray) -> None:
    """``out[i] = |xb[i]|^2``, accumulated in float64, stored in out's dtype.

    Reassociation lets the sum vectorise (a strict left-to-right float64 sum of 784
    terms is a chain of dependent additions, ~10x slower); the order depends only on
    the row, never on how rows are blocked."""
    m, d = xb.shape
    for i in range(m):
        acc = 0.0
        for t in range(d):
            v = xb[i, t]
            acc += v * v
        out[i] = acc


@_jit
def _assign_tile(xb: np.ndarray, D: np.ndarray, csq: np.ndarray, x2: np.ndarray, g0: int,
                 w: np.ndarray, runs: int, k: int, labels: np.ndarray, sqd: np.ndarray,
                 sums: np.ndarray, counts: np.ndarray) -> int:
    """Assign the rows of one tile (distances ``D = xb @ -2C^T`` given), add them to
    their clusters; returns the global index of the first row whose distance is not
    finite, else -1."""
    m, d = xb.shape
    weighted = w.shape[0] > 0
    for i in range(m):
        g = g0 + i
        wi = w[g] if weighted else 1.0
        for r in range(runs):
            j0 = r * k
            bj = j0
            best = D[i, j0] + csq[j0]
            for j in range(j0 + 1, j0 + k):
                v = D[i, j] + csq[j]
                if v < best:
                    best, bj = v, j
            s = best + x2[i]
            if not np.isfinite(s):
                return g
            if s < 0:
                s = 0
            labels[g, r] = bj
            sqd[g, r] = s
            counts[bj] += wi
            if weighted:
                for t in range(d):
                    sums[bj, t] += wi * xb[i, t]
            else:
                for t in range(d):
                    sums[bj, t] += xb[i, t]
    return -1


@_jit
def lloyd_float(X: np.ndarray, m2t: np.ndarray, csq: np.ndarray, xsq: np.ndarray,
                w: np.ndarray, runs: int, k: int, tile: int, labels: np.ndarray,
                sqd: np.ndarray, sums: np.ndarray, counts: np.ndarray) -> int:
    """Fused Lloyd statistics of float rows ``X`` (n, d) against prepared centres
    (``m2t = -2 C^T`` (d, kp), ``csq = |C|^2`` (kp,)), written into ``labels`` (n, runs)
    int32, ``sqd`` (n, runs), ``sums`` (runs*k, d) float64 and ``counts`` (runs*k,)
    float64 (added to). ``xsq`` (n,) or empty, ``w`` (n,) float64 or empty. Returns
    the first row with a non-finite distance, or -1."""
    n = X.shape[0]
    D = np.empty((tile, m2t.shape[1]), dtype=m2t.dtype)
    x2 = np.empty(tile, dtype=m2t.dtype)
    for s0 in range(0, n, tile):
        s1 = min(n, s0 + tile)
        xb = X[s0:s1]
        Db = D[: s1 - s0]
        np.dot(xb, m2t, Db)
        if xsq.shape[0] > 0:
            x2[: s1 - s0] = xsq[s0:s1]
        else:
            row_sq(xb, x2)
        bad = _assign_tile(xb, Db, csq, x2, s0, w, runs, k, labels, sqd, sums, counts)
        if bad >= 0:
            return bad
    return -1


@_jit
def lloyd_raw(X: np.ndarray, scale: float, m2t: np.ndarray, csq: np.ndarray,
              xsq: np.ndarray, w: np.ndarray, runs: int, k: int, tile: int,
              labels: np.ndarray, sqd: np.ndarray, sums: np.ndarray,
              counts: np.ndarray) -> int:
    """:func:`lloyd_float` for raw stored rows (uint8 pixels) standing for
    ``float32(X) * scale``: each tile is scaled into a reused float32 block."""
    n, d = X.shape
    sc = np.float32(scale)
    buf = np.empty((tile, d), dtype=np.float32)
    D = np.empty((tile, m2t.shape[1]), dtype=np.float32)
    x2 = np.empty(tile, dtype=np.float32)
    for s0 in range(0, n, tile):
        s1 = min(n, s0 + tile)
        xb = buf[: s1 - s0]
        for i in range(s1 - s0):
            for t in range(d):
                xb[i, t] = np.float32(X[s0 + i, t]) * sc
        Db = D[: s1 - s0]
        np.dot(xb, m2t, Db)
        if xsq.shape[0] > 0:
            x2[: s1 - s0] = xsq[s0:s1]
        else:
            row_sq(xb, x2)
        bad = _assign_tile(xb, Db, csq, x2, s0, w, runs, k, labels, sqd, sums, counts)
        if bad >= 0:
            return bad
    return -1


def warm_up() -> float:
    """Compile (or load from numba's on-disk cache) every specialisation a fit uses
    (float32, float64 and uint8 rows, weighted or not); returns the seconds it took."""
    t0 = time.perf_counter()
    for dtype in (np.float32, np.float64):
        X = np.zeros((3, 2), dtype=dtype)
        row_sq(X, np.empty(3, dtype))
        m2t = np.zeros((2, 2), dtype=dtype)
        csq = np.zeros(2, dtype=dtype)
        for w in (np.empty(0), np.ones(3)):
            lloyd_float(X, m2t, csq, np.empty(0, dtype), w, 1, 2, TILE,
                        np.empty((3, 1), np.int32), np.empty((3, 1), dtype),
                        np.zeros((2, 2)), np.zeros(2))
            if dtype == np.float32:
                lloyd_raw(np.zeros((3, 2), np.uint8), 1.0, m2t, csq, np.empty(0, dtype), w,
                          1, 2, TILE, np.empty((3, 1), np.int32), np.empty((3, 1), dtype),
                          np.zeros((2, 2)), np.zeros(2))
    return time.perf_counter() - t0
