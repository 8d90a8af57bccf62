"""Compiled (numba) helpers shared by every compiled kernel: tiles, row norms, the
scaling of raw rows, distances to a row's own centre, and the float64 near-tie rule.

The compiled kernels of each algorithm sit next to their numpy reference
(:mod:`.lloyd_compiled` beside :mod:`.lloyd`, and so on) and call these helpers.
Nothing here touches dask or allocates per row; inputs are never mutated (outputs are
arrays the caller passes in for this purpose). Functions are compiled on first use and
cached on disk (``cache=True``); :func:`daskmeans.kernels.warm_up` compiles them ahead.

numba's on-disk cache is invalidated only by changes to the file that defines a
function, not to the files of the functions it calls: after editing this module, delete
the ``__pycache__`` of ``daskmeans/kernels`` (or set ``NUMBA_CACHE_DIR`` to a fresh
directory), or the sibling modules may keep running their cached compiled code.
"""

from __future__ import annotations

import numba
import numpy as np

#: rows per tile: 256 float32 rows of a few hundred features and their distance block
#: stay in L2 while they are assigned and summed (scikit-learn's Lloyd uses 256-row
#: chunks for the same reason).
TILE = 256
#: rows per tile of a plain pass whose GEMM has at most :data:`NARROW` columns
NARROW_TILE = 64
NARROW = 16


def tile_rows(columns: int) -> int:
    """Rows per tile (plain passes; gathered rows of bounded passes) against ``columns``
    (padded) centres: 64 up to 16 columns, else :data:`TILE`. OpenBLAS's GEMM against
    a narrow output is faster on short tiles, while wider outputs do better with the
    longer ones (scripts/benchmark_kernel.py measures both).

    >>> tile_rows(16), tile_rows(17)
    (64, 256)
    """
    return min(NARROW_TILE, TILE) if columns <= NARROW else TILE


#: the compiler options of every compiled kernel: cached on disk, releasing the GIL
#: (dask runs blocks in threads), strict float order, numpy's error model.
jit = numba.njit(cache=True, nogil=True, fastmath=False, error_model="numpy")
#: the same, letting float sums reassociate so that they vectorise: for loops whose
#: order depends only on the row, never on how rows are blocked.
jit_reassoc = numba.njit(cache=True, nogil=True, fastmath={"reassoc"}, error_model="numpy")


@jit_reassoc
def row_sq(xb: np.ndarray, out: np.ndarray) -> None:
    """``out[i] = |xb[i]|^2``, squared and accumulated in float64, stored in out's dtype.

    Reassociation lets the sum vectorise (a strict left-to-right float64 sum of 784
    terms is a chain of dependent additions); the order depends only on
    the row, never on how rows are blocked. Squares in float64 cost the same as in
    float32 and keep a bounded fit's inertia (from ``sum |x|^2``, see
    :func:`daskmeans.algorithms.lloyd_bounded`) exact to float64 rounding, where float32
    squares of scaled pixels all round one way."""
    m, d = xb.shape
    for i in range(m):
        acc = 0.0
        for t in range(d):
            v = np.float64(xb[i, t])
            acc += v * v
        out[i] = acc


@jit
def row_sq_raw(X: np.ndarray, scale: float, tile: int, out: np.ndarray) -> None:
    """:func:`row_sq` of raw stored rows (uint8 pixels) standing for
    ``float32(X) * scale``, a tile at a time through a reused float32 block exactly as
    :func:`daskmeans.kernels.lloyd_compiled.lloyd_raw` scales them (so the norms are
    those its loop would compute),
    with no float32 copy of X."""
    n, d = X.shape
    buf = np.empty((tile, d), dtype=np.float32)
    x2 = np.empty(tile)
    for s0 in range(0, n, tile):
        xb = scaled_tile(X, s0, scale, buf)
        row_sq(xb, x2)
        out[s0:s0 + xb.shape[0]] = x2[: xb.shape[0]]


@jit
def scaled_tile(X: np.ndarray, s0: int, scale: float, buf: np.ndarray) -> np.ndarray:
    """Rows ``s0 ..`` of raw X (as many as ``buf`` holds) as ``float32(X) * scale`` in
    ``buf``; returns the filled part."""
    m = min(X.shape[0] - s0, buf.shape[0])
    sc = np.float32(scale)
    xb = buf[:m]
    for i in range(m):
        for t in range(X.shape[1]):
            xb[i, t] = np.float32(X[s0 + i, t]) * sc
    return xb


@jit_reassoc
def winner_sq(X: np.ndarray, C: np.ndarray, labels: np.ndarray, out: np.ndarray) -> None:
    """``out[i] = |X[i] - C[labels[i]]|^2``, differences squared and summed in float64
    (C float64), stored in out's dtype: each row's distance to the centre it went to,
    exact where the GEMM's ``|x|^2 - 2 x.c + |c|^2`` is not."""
    for i in range(X.shape[0]):
        acc = 0.0
        for t in range(X.shape[1]):
            v = np.float64(X[i, t]) - C[labels[i], t]
            acc += v * v
        out[i] = acc


@jit
def column_moments(X: np.ndarray, scale: float, raw: bool, mean: np.ndarray,
                   m2: np.ndarray) -> None:
    """Column means and sums of squared deviations of X's rows into ``mean`` and ``m2``
    (d,) float64 (raw rows: ``float32(x) * scale``, as the passes see them).

    Per tile of :data:`TILE` rows (in cache): the tile's float64 means, then its squared
    deviations from them (two passes over the cached tile: no cancellation), merged
    into the running result as Chan et al.'s parallel update, which is what
    :class:`daskmeans.kernels.common.Moments` does across blocks. No copy of the rows."""
    n, d = X.shape
    sc = np.float32(scale)
    tm = np.empty(d)
    tq = np.empty(d)
    mean[:] = 0.0
    m2[:] = 0.0
    seen = 0
    for s in range(0, n, TILE):
        e = min(n, s + TILE)
        m = e - s
        tm[:] = 0.0
        tq[:] = 0.0
        for i in range(s, e):
            for t in range(d):
                v = np.float64(np.float32(X[i, t]) * sc) if raw else np.float64(X[i, t])
                tm[t] += v
        for t in range(d):
            tm[t] /= m
        for i in range(s, e):
            for t in range(d):
                v = np.float64(np.float32(X[i, t]) * sc) if raw else np.float64(X[i, t])
                v -= tm[t]
                tq[t] += v * v
        tot = seen + m
        for t in range(d):
            delta = tm[t] - mean[t]
            mean[t] += delta * (m / tot)
            m2[t] += tq[t] + delta * delta * (seen * m / tot)
        seen = tot


@jit_reassoc
def exact_sq(x: np.ndarray, m2t: np.ndarray, j: int) -> float:
    """``|x - c_j|^2`` in float64 from the row and the prepared ``m2t = -2 C^T`` (the
    centre in the pass's dtype: ``-m2t / 2`` is exact)."""
    acc = 0.0
    for t in range(x.shape[0]):
        v = np.float64(x[t]) + 0.5 * np.float64(m2t[t, j])
        acc += v * v
    return acc


@jit
def near_tie(x: np.ndarray, m2t: np.ndarray, Drow: np.ndarray, csq: np.ndarray, j0: int,
              j1: int, limit: float) -> tuple[int, float]:
    """Among the centres ``j0 <= j < j1`` whose GEMM distance ``Drow[j] + csq[j]`` is
    at most ``limit``, the nearest in float64 (the first on a tie) and its squared
    distance: how every assignment settles a near tie (see :func:`tie_window`)."""
    bj = -1
    be = np.inf
    for j in range(j0, j1):
        if Drow[j] + csq[j] <= limit:
            e = exact_sq(x, m2t, j)
            if e < be:
                be, bj = e, j
    return bj, be


@jit
def tie_window(tie: float, x2: float, cmax: float) -> float:
    """How far above the smallest GEMM distance another centre's may lie and still be
    the nearest: ``tie * (|x|^2 + max |c|^2)`` (``tie``: see
    :data:`daskmeans.kernels.common.TIE_EPS`), wider than the rounding differences between
    GEMMs of different shapes. Within it, the float64 distances decide, so that every
    path (GEMM tiles of any shape, the bounded passes' group by group products) gives
    each row the same centre."""
    return tie * (max(x2, 0.0) + cmax)




@jit
def finite_max(csq: np.ndarray, k: int) -> float:
    """The largest finite ``|c|^2`` of the first ``k`` centres (0 if none)."""
    out = 0.0
    for j in range(k):
        if np.isfinite(csq[j]) and csq[j] > out:
            out = csq[j]
    return out




@jit
def load_row(X: np.ndarray, i: int, scale: float, raw: bool, out: np.ndarray) -> None:
    """Row ``i`` of X as floats into ``out`` (raw rows: ``float32(X) * scale``)."""
    d = X.shape[1]
    if raw:
        sc = np.float32(scale)
        for t in range(d):
            out[t] = np.float32(X[i, t]) * sc
    else:
        for t in range(d):
            out[t] = X[i, t]


def warm_up() -> None:
    """Compile (or load from the on-disk cache) this module's specialisations: float32,
    float64 and raw uint8 rows."""
    row_sq_raw(np.zeros((3, 2), np.uint8), 1.0 / 255.0, TILE, np.empty(3))
    for dtype in (np.float32, np.float64):
        X = np.zeros((3, 2), dtype=dtype)
        row_sq(X, np.empty(3, dtype))
        row_sq(X, np.empty(3))
        winner_sq(X, np.zeros((2, 2)), np.zeros(3, np.int32), np.empty(3))
    for rows in (np.zeros((3, 2), np.float32), np.zeros((3, 2)), np.zeros((3, 2), np.uint8)):
        column_moments(rows, 1.0, rows.dtype == np.uint8, np.empty(2), np.empty(2))
