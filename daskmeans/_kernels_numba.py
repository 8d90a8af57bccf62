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
#: rows per tile of a plain pass whose GEMM has at most :data:`NARROW` columns
NARROW_TILE = 64
NARROW = 16


def tile_rows(columns: int) -> int:
    """Rows per tile (plain passes; gathered rows of bounded passes) against ``columns``
    (padded) centres: 64 up to 16 columns, else :data:`TILE`. One thread, 30,000 x 784
    Fashion-MNIST rows, OpenBLAS on AVX-512, a plain pass with 64 / 256 rows: K=5 15.0 /
    20.4 ms, K=10 15.4 / 25.0, K=16 16.1 / 23.3 (uint8 rows: 15.9 / 18.4 at K=10); K=24
    33.0 / 30.1 and 256 rows stay best above (K=256: 169 / 145 ms with 64). A full
    bounded pass at K=10: 24.5 / 26.8 ms.

    >>> tile_rows(16), tile_rows(17)
    (64, 256)
    """
    return min(NARROW_TILE, TILE) if columns <= NARROW else TILE

_jit = numba.njit(cache=True, nogil=True, fastmath=False, error_model="numpy")


@numba.njit(cache=True, nogil=True, fastmath={"reassoc"}, error_model="numpy")
def row_sq(xb: np.ndarray, out: np.ndarray) -> None:
    """``out[i] = |xb[i]|^2``, squared and accumulated in float64, stored in out's dtype.

    Reassociation lets the sum vectorise (a strict left-to-right float64 sum of 784
    terms is a chain of dependent additions, ~10x slower); the order depends only on
    the row, never on how rows are blocked. Squares in float64 cost the same as in
    float32 and keep a bounded fit's inertia (from ``sum |x|^2``, see
    :func:`daskmeans.algorithms.lloyd_bounded`) exact to 1e-14: float32 squares of
    scaled pixels round one way, 1e-9 of the sum off."""
    m, d = xb.shape
    for i in range(m):
        acc = 0.0
        for t in range(d):
            v = np.float64(xb[i, t])
            acc += v * v
        out[i] = acc


@_jit
def row_sq_raw(X: np.ndarray, scale: float, tile: int, out: np.ndarray) -> None:
    """:func:`row_sq` of raw stored rows (uint8 pixels) standing for
    ``float32(X) * scale``, a tile at a time through a reused float32 block exactly as
    :func:`lloyd_raw` scales them (so the norms are those its loop would compute),
    with no float32 copy of X."""
    n, d = X.shape
    buf = np.empty((tile, d), dtype=np.float32)
    x2 = np.empty(tile)
    for s0 in range(0, n, tile):
        xb = _scaled_tile(X, s0, scale, buf)
        row_sq(xb, x2)
        out[s0:s0 + xb.shape[0]] = x2[: xb.shape[0]]


@_jit
def _scaled_tile(X: np.ndarray, s0: int, scale: float, buf: np.ndarray) -> np.ndarray:
    """Rows ``s0 ..`` of raw X (as many as ``buf`` holds) as ``float32(X) * scale`` in
    ``buf``; returns the filled part."""
    m = min(X.shape[0] - s0, buf.shape[0])
    sc = np.float32(scale)
    xb = buf[:m]
    for i in range(m):
        for t in range(X.shape[1]):
            xb[i, t] = np.float32(X[s0 + i, t]) * sc
    return xb


@numba.njit(cache=True, nogil=True, fastmath={"reassoc"}, error_model="numpy")
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


@_jit
def column_moments(X: np.ndarray, scale: float, raw: bool, mean: np.ndarray,
                   m2: np.ndarray) -> None:
    """Column means and sums of squared deviations of X's rows into ``mean`` and ``m2``
    (d,) float64 (raw rows: ``float32(x) * scale``, as the passes see them).

    Per tile of :data:`TILE` rows (in cache): the tile's float64 means, then its squared
    deviations from them (two passes over the cached tile: no cancellation), merged
    into the running result as Chan et al.'s parallel update, which is what
    :class:`daskmeans._kernels.Moments` does across blocks. No copy of the rows."""
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


@numba.njit(cache=True, nogil=True, fastmath={"reassoc"}, error_model="numpy")
def _exact_sq(x: np.ndarray, m2t: np.ndarray, j: int) -> float:
    """``|x - c_j|^2`` in float64 from the row and the prepared ``m2t = -2 C^T`` (the
    centre in the pass's dtype: ``-m2t / 2`` is exact)."""
    acc = 0.0
    for t in range(x.shape[0]):
        v = np.float64(x[t]) + 0.5 * np.float64(m2t[t, j])
        acc += v * v
    return acc


@_jit
def _near_tie(x: np.ndarray, m2t: np.ndarray, Drow: np.ndarray, csq: np.ndarray, j0: int,
              j1: int, limit: float) -> tuple[int, float]:
    """Among the centres ``j0 <= j < j1`` whose GEMM distance ``Drow[j] + csq[j]`` is
    at most ``limit``, the nearest in float64 (the first on a tie) and its squared
    distance: how every assignment settles a near tie (see :func:`tie_window`)."""
    bj = -1
    be = np.inf
    for j in range(j0, j1):
        if Drow[j] + csq[j] <= limit:
            e = _exact_sq(x, m2t, j)
            if e < be:
                be, bj = e, j
    return bj, be


@_jit
def tie_window(tie: float, x2: float, cmax: float) -> float:
    """How far above the smallest GEMM distance another centre's may lie and still be
    the nearest: ``tie * (|x|^2 + max |c|^2)`` (``tie``: see
    :data:`daskmeans._kernels.TIE_EPS`), wider than the rounding differences between
    GEMMs of different shapes. Within it, the float64 distances decide, so that every
    path (GEMM tiles of any shape, the bounded passes' group by group products) gives
    each row the same centre."""
    return tie * (max(x2, 0.0) + cmax)


@_jit
def _assign_tile(xb: np.ndarray, D: np.ndarray, csq: np.ndarray, x2: np.ndarray, g0: int,
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
                bj, s = _near_tie(xb[i], m2t, D[i], csq, j0, j0 + k, best + win)
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


@_jit
def _lloyd_tile(xb: np.ndarray, D: np.ndarray, x2: np.ndarray, m2t: np.ndarray,
                csq: np.ndarray, xsq: np.ndarray, s0: int, w: np.ndarray, runs: int, k: int,
                labels: np.ndarray, sqd: np.ndarray, sums: np.ndarray,
                counts: np.ndarray, sumsq: np.ndarray, tie: float, cmax: float) -> int:
    """One tile of float rows starting at row ``s0``: the GEMM into ``D``, ``|x|^2``
    (given or summed here into ``x2``), then :func:`_assign_tile`."""
    m = xb.shape[0]
    Db = D[:m]
    np.dot(xb, m2t, Db)
    if xsq.shape[0] > 0:
        x2[:m] = xsq[s0:s0 + m]
    else:
        row_sq(xb, x2)
    return _assign_tile(xb, Db, csq, x2, s0, w, runs, k, labels, sqd, sums, counts, sumsq,
                        m2t, tie, cmax)


@_jit
def _finite_max(csq: np.ndarray, k: int) -> float:
    """The largest finite ``|c|^2`` of the first ``k`` centres (0 if none)."""
    out = 0.0
    for j in range(k):
        if np.isfinite(csq[j]) and csq[j] > out:
            out = csq[j]
    return out


@_jit
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
    cmax = _finite_max(csq, runs * k)
    for s0 in range(0, n, tile):
        bad = _lloyd_tile(X[s0:min(n, s0 + tile)], D, x2, m2t, csq, xsq, s0, w, runs, k,
                          labels, sqd, sums, counts, sumsq, tie, cmax)
        if bad >= 0:
            return bad
    return -1


@_jit
def lloyd_raw(X: np.ndarray, scale: float, m2t: np.ndarray, csq: np.ndarray,
              xsq: np.ndarray, w: np.ndarray, runs: int, k: int, tile: int,
              labels: np.ndarray, sqd: np.ndarray, sums: np.ndarray,
              counts: np.ndarray, sumsq: np.ndarray, tie: float) -> int:
    """:func:`lloyd_float` for raw stored rows (uint8 pixels) standing for
    ``float32(X) * scale``: each tile is scaled into a reused float32 block."""
    n, d = X.shape
    cmax = _finite_max(csq, runs * k)
    buf = np.empty((tile, d), dtype=np.float32)
    D = np.empty((tile, m2t.shape[1]), dtype=np.float32)
    x2 = np.empty(tile)
    for s0 in range(0, n, tile):
        xb = _scaled_tile(X, s0, scale, buf)
        bad = _lloyd_tile(xb, D, x2, m2t, csq, xsq, s0, w, runs, k, labels, sqd, sums,
                          counts, sumsq, tie, cmax)
        if bad >= 0:
            return bad
    return -1


def warm_up() -> float:
    """Compile (or load from numba's on-disk cache) every specialisation a fit uses
    (float32, float64 and uint8 rows, weighted or not; plain and bounded passes; the
    k-medians L1 distances and histograms; the bisecting tree descent and 2-means
    step, on float and raw uint8 rows); returns the seconds it took."""
    t0 = time.perf_counter()
    row_sq_raw(np.zeros((3, 2), np.uint8), 1.0 / 255.0, TILE, np.empty(3))
    for dtype in (np.float32, np.float64):
        X = np.zeros((3, 2), dtype=dtype)
        row_sq(X, np.empty(3, dtype))
        row_sq(X, np.empty(3))
        winner_sq(X, np.zeros((2, 2)), np.zeros(3, np.int32), np.empty(3))
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
            for rows, raw in ((X, False), (np.zeros((3, 2), np.uint8), True)):
                if raw and dtype != np.float32:
                    continue
                lab, u = np.empty(3, np.int32), np.empty(3)
                lo = np.empty((3, 1), np.float32)  # the lower bounds are float32
                bounds_pass(rows, 1.0, raw, m2t, csq, np.zeros((2, 2)), np.zeros(2, np.int64),
                            w, np.full(3, -1, np.int32), np.full(3, np.inf),
                            np.zeros((3, 1), np.float32), np.zeros(2), np.zeros(1),
                            np.zeros(2), 0.0,
                            TILE, lab, u, lo, np.zeros((2, 2)), np.zeros(2), np.zeros(2),
                            np.zeros((2, 2), dtype), np.array([0, 2]), np.array([0, 1]),
                            GROUP_FILTER_SHARE, 1e-6)
                cluster_extrema(lab, u, lo, 2, np.empty(2), np.empty(2))
    for rows in (np.zeros((3, 2), np.float32), np.zeros((3, 2)), np.zeros((3, 2), np.uint8)):
        raw = rows.dtype == np.uint8
        column_moments(rows, 1.0, raw, np.empty(2), np.empty(2))
        l1_dist(rows, 1.0, raw, np.zeros((2, 2)), np.empty((3, 2)))
        for w in (np.empty(0), np.ones(3)):
            for prefix, track in ((np.empty((0, 0), np.int64), False),
                                  (np.zeros((2, 2), np.int64), not raw)):
                vm = np.full((2, 2, 16) if track else (0, 0, 0), 0, rows.dtype)
                median_hist(rows, raw, np.zeros(2), np.ones(2), 256, np.zeros(3, np.int32),
                            w, 0, prefix, np.zeros((2, 2, 16)), vm, vm.copy())
    for rows in (np.zeros((3, 2), np.float32), np.zeros((3, 2)), np.zeros((3, 2), np.uint8)):
        sc = 1.0 if rows.dtype == np.uint8 else None
        kids = np.array([-1]), np.zeros((1, 2))
        tree_descend(rows, sc, kids[0], kids[0], kids[1], np.empty(3, np.int64))
        two_means_rows(rows, sc, np.arange(3), np.ones(3), np.zeros(2), np.zeros(2),
                       np.zeros((2, 2)), np.zeros(2), np.zeros(2), np.zeros(2, np.int64),
                       np.empty(3, np.int32), np.empty(3))
    return time.perf_counter() - t0


# --------------------------------------------------------------------------- bounds


@_jit
def _load_row(X: np.ndarray, i: int, scale: float, raw: bool, out: np.ndarray) -> None:
    """Row ``i`` of X as floats into ``out`` (raw rows: ``float32(X) * scale``)."""
    d = X.shape[1]
    if raw:
        sc = np.float32(scale)
        for t in range(d):
            out[t] = np.float32(X[i, t]) * sc
    else:
        for t in range(d):
            out[t] = X[i, t]


@numba.njit(cache=True, nogil=True, fastmath={"reassoc"}, error_model="numpy")
def _row_sqdist(X: np.ndarray, i: int, scale: float, raw: bool, c: np.ndarray) -> float:
    """``|x_i - c|^2`` straight from row ``i`` of X (raw rows scaled on the fly), in
    c's dtype (the rows' float dtype), vectorised: how a bounded pass tightens a row's
    upper bound. Its rounding (a few eps of ``|x - c|^2``) is far inside the margin
    every bound test keeps (``4 d eps (|x|^2 + |c|^2)``)."""
    acc = c.dtype.type(0)
    if raw:
        sc = c.dtype.type(scale)
        for t in range(c.shape[0]):
            v = c.dtype.type(X[i, t]) * sc - c[t]
            acc += v * v
    else:
        for t in range(c.shape[0]):
            v = X[i, t] - c[t]
            acc += v * v
    return acc


@_jit
def _move_row(x: np.ndarray, wi: float, x2: float, a: int, b: int, dS: np.ndarray,
              dN: np.ndarray, dQ: np.ndarray) -> None:
    """A row of weight ``wi`` and ``|x|^2 = x2`` moves from cluster ``a`` (-1: none
    before its first assignment) to ``b``: the changes of the per-cluster sums, weights
    and ``sum w |x|^2``."""
    dN[b] += wi
    dQ[b] += wi * x2
    for t in range(x.shape[0]):
        dS[b, t] += wi * x[t]
    if a >= 0:
        dN[a] -= wi
        dQ[a] -= wi * x2
        for t in range(x.shape[0]):
            dS[a, t] -= wi * x[t]


@_jit
def _flush(G: np.ndarray, cnt: int, gidx: np.ndarray, gx2: np.ndarray, D: np.ndarray,
           m2t: np.ndarray, csq: np.ndarray, group: np.ndarray, w: np.ndarray,
           lab_in: np.ndarray, lab: np.ndarray, u: np.ndarray, lo: np.ndarray,
           dS: np.ndarray, dN: np.ndarray, dQ: np.ndarray, tie: float, cmax: float) -> int:
    """Full assignment of the ``cnt`` gathered rows (one GEMM): the nearest centre,
    the distance to it and, per group of centres, the distance to the nearest other
    one; moved rows leave their old cluster's sums for the new one's. Returns a row
    with a non-finite distance or -1."""
    if cnt == 0:
        return -1
    Db = D[:cnt]
    np.dot(G[:cnt], m2t, Db)
    k = csq.shape[0]
    t = lo.shape[1]
    weighted = w.shape[0] > 0
    gm1 = np.empty(t, dtype=D.dtype)  # per group: nearest, second nearest, its index
    gm2 = np.empty(t, dtype=D.dtype)
    gj = np.empty(t, dtype=np.int64)
    for r in range(cnt):
        i = gidx[r]
        gm1[:] = np.inf
        gm2[:] = np.inf
        gj[:] = -1
        for j in range(k):  # one sweep: first minimum wins ties, as np.argmin
            v = Db[r, j] + csq[j]
            g = group[j]
            if v < gm1[g]:
                gm2[g] = gm1[g]
                gm1[g], gj[g] = v, j
            elif v < gm2[g]:
                gm2[g] = v
        gb = -1
        for g in range(t):  # the nearest overall; ties to the smaller centre index
            if gj[g] >= 0 and (gb < 0 or gm1[g] < gm1[gb] or (gm1[g] == gm1[gb]
                                                               and gj[g] < gj[gb])):
                gb = g
        if gb < 0:  # NaN distances compare false everywhere
            return i
        bj = gj[gb]
        s1 = gm1[gb] + gx2[r]
        if not np.isfinite(s1):
            return i
        second = np.inf
        for g in range(t):
            v = gm2[g] if g == gb else gm1[g]
            if v < second:
                second = v
        win = tie_window(tie, gx2[r], cmax)
        if second - gm1[gb] <= win:  # a near tie: float64 decides, as every path does
            bj, s1 = _near_tie(G[r], m2t, Db[r], csq, 0, k, gm1[gb] + win)
        u[i] = np.sqrt(max(s1, 0.0))
        for g in range(t):  # per group, the nearest centre other than the row's own
            v = gm2[g] if gj[g] == bj else gm1[g]
            lo[i, g] = np.sqrt(max(v + gx2[r], 0.0))
        lab[i] = bj
        if bj != lab_in[i]:
            _move_row(G[r], w[i] if weighted else 1.0, gx2[r], lab_in[i], bj, dS, dN, dQ)
    return -1


#: a tile's gathered rows go group by group (:func:`_flush_groups`) when at most this
#: share of their (row, group of centres) pairs is still in doubt, else one GEMM against
#: every centre (:func:`_flush`)
GROUP_FILTER_SHARE = 0.5


@numba.njit(cache=True, nogil=True, fastmath={"reassoc"}, error_model="numpy")
def _dot(x: np.ndarray, y: np.ndarray) -> float:
    """``x . y`` accumulated in the rows' dtype, vectorised (a GEMM's rounding, not its
    order: near ties are settled in float64 whatever computed the distances)."""
    acc = x.dtype.type(0)
    for t in range(x.shape[0]):
        acc += x[t] * y[t]
    return acc


@_jit
def _flush_groups(G: np.ndarray, cnt: int, gidx: np.ndarray, gx2: np.ndarray,
                  cand: np.ndarray, m2r: np.ndarray, gstart: np.ndarray, gcols: np.ndarray,
                  csq: np.ndarray, w: np.ndarray, lab_in: np.ndarray, lab: np.ndarray,
                  u: np.ndarray, lo: np.ndarray, dS: np.ndarray, dN: np.ndarray,
                  dQ: np.ndarray, gm1: np.ndarray, gm2: np.ndarray, gj: np.ndarray,
                  m2t: np.ndarray, tie: float, cmax: float) -> int:
    """:func:`_flush` with Yinyang's group filter: each gathered row is compared only
    with the centres of the groups ``cand`` marks for it (its own centre's group, and
    every group whose lower bound does not prove all its centres farther than the
    row's own centre), by one dot product per centre with the row in cache (``m2r``:
    the rows of ``-2 C`` in group order, group ``g`` at ``gstart[g]:gstart[g + 1]``,
    its centres ``gcols[...]`` ascending; a GEMM per group needed a copy of the rows
    per group and was slower). Groups not compared keep the lower bounds already
    written into ``lo`` (valid: the new centre is in a compared group). Returns a row
    with a non-finite distance or -1."""
    if cnt == 0:
        return -1
    t = lo.shape[1]
    weighted = w.shape[0] > 0
    for r in range(cnt):
        x = G[r]
        for g in range(t):
            gm1[r, g] = np.inf
            gm2[r, g] = np.inf
            gj[r, g] = -1
            if not cand[r, g]:
                continue
            m1 = np.inf
            m2 = np.inf
            j1 = -1
            for jj in range(gstart[g], gstart[g + 1]):  # ascending: the first minimum wins
                j = gcols[jj]
                v = _dot(x, m2r[jj]) + csq[j]
                if v < m1:
                    m2 = m1
                    m1, j1 = v, j
                elif v < m2:
                    m2 = v
            gm1[r, g], gm2[r, g], gj[r, g] = m1, m2, j1
    for r in range(cnt):
        i = gidx[r]
        gb = -1
        for g in range(t):  # the nearest overall; ties to the smaller centre index
            if gj[r, g] >= 0 and (gb < 0 or gm1[r, g] < gm1[r, gb] or (
                    gm1[r, g] == gm1[r, gb] and gj[r, g] < gj[r, gb])):
                gb = g
        if gb < 0:  # NaN distances compare false everywhere
            return i
        bj = gj[r, gb]
        s1 = gm1[r, gb] + gx2[r]
        if not np.isfinite(s1):
            return i
        second = np.inf
        for g in range(t):
            if gj[r, g] >= 0:
                v = gm2[r, g] if g == gb else gm1[r, g]
                if v < second:
                    second = v
        win = tie_window(tie, gx2[r], cmax)
        if second - gm1[r, gb] <= win:  # a near tie: float64 over the groups within reach
            be = np.inf
            for g in range(t):
                if gj[r, g] < 0 or gm1[r, g] > gm1[r, gb] + win:
                    continue
                for jj in range(gstart[g], gstart[g + 1]):
                    j = gcols[jj]
                    e = _exact_sq(G[r], m2t, j)
                    if e < be or (e == be and j < bj):
                        be, bj = e, j
            s1 = be
        u[i] = np.sqrt(max(s1, 0.0))
        for g in range(t):  # compared groups: the nearest centre other than the row's own
            if cand[r, g]:
                v = gm2[r, g] if gj[r, g] == bj else gm1[r, g]
                lo[i, g] = np.sqrt(max(v + gx2[r], 0.0))
        lab[i] = bj
        if bj != lab_in[i]:
            _move_row(G[r], w[i] if weighted else 1.0, gx2[r], lab_in[i], bj, dS, dN, dQ)
    return -1


@_jit
def _flush_any(G: np.ndarray, cnt: int, gidx: np.ndarray, gx2: np.ndarray, D: np.ndarray,
               m2t: np.ndarray, csq: np.ndarray, group: np.ndarray, w: np.ndarray,
               lab_in: np.ndarray, lab: np.ndarray, u: np.ndarray, lo: np.ndarray,
               dS: np.ndarray, dN: np.ndarray, dQ: np.ndarray, cand: np.ndarray,
               n_cand: int, m2r: np.ndarray, gstart: np.ndarray, gcols: np.ndarray,
               gm1: np.ndarray, gm2: np.ndarray, gj: np.ndarray, share: float, tie: float,
               cmax: float) -> tuple[int, int]:
    """The tile's gathered rows group by group when at most ``share`` of their (row,
    group) pairs are in doubt, else against every centre at once; always at once with
    one centre a group (Elkan's bounds, below 16 centres): a row read then meets every
    centre and all its bounds are fresh again (the filter left the skipped centres'
    bounds decaying: more rows read over a fit). Returns (a row with a non-finite
    distance or -1, the (row, group) pairs compared)."""
    t = lo.shape[1]
    if 1 < t < csq.shape[0] and n_cand <= share * cnt * t:
        return _flush_groups(G, cnt, gidx, gx2, cand, m2r, gstart, gcols, csq, w, lab_in,
                             lab, u, lo, dS, dN, dQ, gm1, gm2, gj, m2t, tie, cmax), n_cand
    return _flush(G, cnt, gidx, gx2, D, m2t, csq, group, w, lab_in, lab, u, lo, dS, dN, dQ,
                  tie, cmax), cnt * t


@_jit
def bounds_pass(X: np.ndarray, scale: float, raw: bool, m2t: np.ndarray, csq: np.ndarray,
                C64: np.ndarray, group: np.ndarray, w: np.ndarray, lab_in: np.ndarray,
                u_in: np.ndarray, l_in: np.ndarray, drift: np.ndarray,
                group_drift: np.ndarray, half_sep: np.ndarray, margin: float, tile: int,
                lab: np.ndarray, u: np.ndarray, lo: np.ndarray, dS: np.ndarray,
                dN: np.ndarray, dQ: np.ndarray, m2r: np.ndarray, gstart: np.ndarray,
                gcols: np.ndarray, share: float, tie: float
                ) -> tuple[int, int, int, float, int]:
    """One Lloyd iteration with Yinyang-style bounds over a block (see
    :func:`daskmeans._kernels.bounds_block`): per row an upper bound of the distance to
    its centre and, per group of centres, a lower bound of the distance to every other
    centre of the group. Rows whose bounds prove they keep their centre are not read;
    the others are tightened against their own centre, and those still in doubt are
    assigned in full, a GEMM per ``tile`` gathered rows. Rows with label -1 have no
    bounds yet and are assigned in full. Writes the new labels and bounds into ``lab``,
    ``u``, ``lo`` and the changes of the per-cluster sums, weights and
    ``sum w |x|^2`` of the rows that moved into ``dS``, ``dN``, ``dQ``. A row in doubt
    is compared only with the groups of centres its bounds do not rule out (Yinyang's
    group filter, :func:`_flush_groups`; ``m2r``, ``gstart``, ``gcols``: the centres
    by group; ``share``: :data:`GROUP_FILTER_SHARE`). Returns (first non-finite row or
    -1, rows read, rows assigned in full, largest |x|^2 of those, (row, group) pairs
    compared)."""
    n, d = X.shape
    k = C64.shape[0]
    t = l_in.shape[1]
    G = np.empty((tile, d), dtype=m2t.dtype)
    D = np.empty((tile, m2t.shape[1]), dtype=m2t.dtype)
    gidx = np.empty(tile, dtype=np.int64)
    gx2 = np.empty(tile, dtype=np.float64)  # |x|^2 as summed: the inertia's sums
    cand = np.empty((tile, t), dtype=np.bool_)
    gm1 = np.empty((tile, t), dtype=m2t.dtype)
    gm2 = np.empty((tile, t), dtype=m2t.dtype)
    gj = np.empty((tile, t), dtype=np.int64)
    cmax = _finite_max(csq, k)
    Cd = C64.astype(m2t.dtype)  # the centres in the rows' dtype, for tightening
    cnt = 0
    n_cand = 0  # (row, group) pairs of the tile's gathered rows still in doubt
    n_pairs = 0
    n_read = 0
    n_full = 0
    x2max = 0.0
    for i in range(n):
        a = lab_in[i]
        xr = G[cnt]
        if a >= 0:
            ub = u_in[i] + drift[a]
            lmin = np.inf
            for g in range(t):
                v = l_in[i, g] - group_drift[g]
                lo[i, g] = v
                if v < lmin:
                    lmin = v
            bnd = max(half_sep[a], lmin)
            if bnd > 0 and ub * ub <= bnd * bnd - margin:
                lab[i], u[i] = a, ub
                continue
            n_read += 1
            d2 = _row_sqdist(X, i, scale, raw, Cd[a])
            if bnd > 0 and d2 <= bnd * bnd - margin:
                lab[i], u[i] = a, np.sqrt(d2)
                continue
            _load_row(X, i, scale, raw, xr)
            for g in range(t):  # the groups whose bound fails (and the row's own)
                v = lo[i, g]
                c = g == group[a] or not (v > 0 and d2 <= v * v - margin)
                cand[cnt, g] = c
                n_cand += c
        else:
            n_read += 1
            _load_row(X, i, scale, raw, xr)
            cand[cnt, :] = True
            n_cand += t
        row_sq(G[cnt:cnt + 1], gx2[cnt:cnt + 1])
        x2max = max(x2max, gx2[cnt])
        gidx[cnt] = i
        cnt += 1
        n_full += 1
        if cnt == tile:
            bad, pairs = _flush_any(G, cnt, gidx, gx2, D, m2t, csq[:k], group, w, lab_in,
                                    lab, u, lo, dS, dN, dQ, cand, n_cand, m2r, gstart,
                                    gcols, gm1, gm2, gj, share, tie, cmax)
            n_pairs += pairs
            if bad >= 0:
                return bad, n_read, n_full, x2max, n_pairs
            cnt = 0
            n_cand = 0
    bad, pairs = _flush_any(G, cnt, gidx, gx2, D, m2t, csq[:k], group, w, lab_in, lab, u,
                            lo, dS, dN, dQ, cand, n_cand, m2r, gstart, gcols, gm1, gm2, gj,
                            share, tie, cmax)
    return bad, n_read, n_full, x2max, n_pairs + pairs


@_jit
def cluster_extrema(lab: np.ndarray, u: np.ndarray, lo: np.ndarray, k: int,
                    umax: np.ndarray, gapmax: np.ndarray) -> None:
    """Per cluster, the largest upper bound and the largest ``upper - lower`` (the
    smallest of a row's group bounds) of its rows (-inf for clusters without rows),
    written into ``umax`` and ``gapmax``."""
    umax[:] = -np.inf
    gapmax[:] = -np.inf
    for i in range(lab.shape[0]):
        a = lab[i]
        if u[i] > umax[a]:
            umax[a] = u[i]
        lmin = np.inf
        for g in range(lo.shape[1]):
            if lo[i, g] < lmin:
                lmin = lo[i, g]
        gap = u[i] - lmin
        if gap > gapmax[a]:
            gapmax[a] = gap


# --------------------------------------------------------------------------- k-medians

#: rows whose distances to every centre are accumulated together: each centre column
#: of the transposed centres is then read once per this many rows (4 rows: 2x faster
#: than one at K=256, 784 features; more gained nothing).
L1_ROWS = 4


@_jit
def l1_dist(X: np.ndarray, scale: float, raw: bool, ct: np.ndarray, D: np.ndarray) -> None:
    """``D[i, j] = sum_t |x_it - c_jt|`` in float64, the features added in order (the
    numpy reference :func:`daskmeans._kernels._l1_dist_numpy` adds them in the same
    order, so both give the same bits); raw rows are ``float32(X) * scale``.

    ``ct``: (d, k) float64 transposed centres; ``D``: (m, k) output."""
    m, d = X.shape
    k = ct.shape[1]
    sc = np.float32(scale)
    for s in range(0, m, L1_ROWS):
        e = min(m, s + L1_ROWS)
        for i in range(s, e):
            for j in range(k):
                D[i, j] = 0.0
        for t in range(d):
            for i in range(s, e):
                if raw:
                    x = np.float64(np.float32(X[i, t]) * sc)
                else:
                    x = np.float64(X[i, t])
                for j in range(k):
                    D[i, j] += abs(x - ct[t, j])


@_jit
def median_hist(X: np.ndarray, raw: bool, lo: np.ndarray, inv: np.ndarray, n_levels: int,
                labels: np.ndarray, w: np.ndarray, shift: int, prefix: np.ndarray,
                hist: np.ndarray, vmin: np.ndarray, vmax: np.ndarray) -> None:
    """Add each row's weight into ``hist[label, feature, digit]`` (the digit of the
    value's level at ``shift``), for the values whose level's higher digits equal
    ``prefix[label, feature]`` (every value when ``prefix`` is empty); rows of weight 0
    are skipped. With ``vmin``/``vmax`` non-empty, also the smallest and largest value
    per bin. Levels: raw rows are their own level; float values
    ``clip(floor((x - lo) * inv), 0, n_levels - 1)`` (as
    :meth:`daskmeans._kernels.MedianGrid.level`)."""
    m, d = X.shape
    weighted = w.shape[0] > 0
    filtered = prefix.shape[0] > 0
    track = vmin.shape[0] > 0
    for i in range(m):
        wi = w[i] if weighted else 1.0
        if wi <= 0:
            continue
        j = labels[i]
        for t in range(d):
            if raw:
                lev = np.int64(X[i, t])
            else:
                u = (np.float64(X[i, t]) - lo[t]) * inv[t]
                if u >= n_levels - 1:
                    lev = np.int64(n_levels - 1)
                elif u > 0:
                    lev = np.int64(np.floor(u))
                else:
                    lev = np.int64(0)
            if filtered and (lev >> (shift + 4)) != prefix[j, t]:
                continue
            b = (lev >> shift) & 15
            hist[j, t, b] += wi
            if track:
                v = X[i, t]
                if v < vmin[j, t, b]:
                    vmin[j, t, b] = v
                if v > vmax[j, t, b]:
                    vmax[j, t, b] = v


# --------------------------------------------------------------------------- bisecting


#: the bisecting loops let float64 sums reassociate (they vectorise; a strict
#: left-to-right sum of 784 terms is a chain of dependent additions): a row's
#: distances depend only on the row and the centres, never on its block.
_jit_reassoc = numba.njit(cache=True, nogil=True, fastmath={"reassoc"}, error_model="numpy")
#: the per-row steps, inlined into their callers by numba (as calls they made the float
#: 2-means step 10% slower); float32 rows and raw rows scaled into a float32 row then run
#: the same loop over the same types: the same sums, in the same order.
_jit_inline = numba.njit(cache=True, nogil=True, fastmath={"reassoc"}, error_model="numpy",
                         inline="always")


@_jit_inline
def _sq_two(X: np.ndarray, i: int, c0: np.ndarray, c1: np.ndarray) -> tuple[float, float]:
    """Squared float64 distances of row ``i`` of X to ``c0`` and ``c1``. Float rows and
    raw rows (scaled into a float32 row first) run this same loop, so they add the same
    terms in the same order: the same bits."""
    d0 = 0.0
    d1 = 0.0
    for t in range(X.shape[1]):
        v = np.float64(X[i, t])
        e0 = v - c0[t]
        e1 = v - c1[t]
        d0 += e0 * e0
        d1 += e1 * e1
    return d0, d1


@_jit_inline
def _descend_row(X: np.ndarray, i: int, left: np.ndarray, right: np.ndarray,
                 centre: np.ndarray) -> int:
    """The node row ``i`` of X ends in (see :func:`tree_descend`)."""
    node = 0
    while left[node] >= 0:
        a, b = left[node], right[node]
        d0, d1 = _sq_two(X, i, centre[a], centre[b])
        node = b if d1 < d0 else a
    return node


@_jit_reassoc
def tree_descend(X: np.ndarray, scale: float | None, left: np.ndarray, right: np.ndarray,
                 centre: np.ndarray, nodes: np.ndarray) -> None:
    """``nodes[i]``: the node row ``i`` ends in, from the root, at every split the child
    whose centre is nearer in float64 squared distance (the left one on a tie): what
    :meth:`daskmeans._kernels.TreeSnapshot.descend` computes, row by row. With a
    ``scale`` (None: float rows), X holds raw rows (uint8 pixels) standing for
    ``float32(X) * scale``: each is scaled once into a float32 row (:func:`_load_row`:
    the values the float path reads) that then takes the same steps. (numba compiles
    only the branch of ``scale is None`` that the argument's type takes.)"""
    m = X.shape[0]
    if scale is None:
        for i in range(m):
            nodes[i] = _descend_row(X, i, left, right, centre)
    else:
        buf = np.empty((1, X.shape[1]), dtype=np.float32)
        for i in range(m):
            _load_row(X, i, scale, True, buf[0])
            nodes[i] = _descend_row(buf, 0, left, right, centre)


@_jit_inline
def _two_means_row(X: np.ndarray, i: int, wi: float, c0: np.ndarray, c1: np.ndarray,
                   sums: np.ndarray, weight: np.ndarray, sse: np.ndarray,
                   count: np.ndarray) -> tuple[int, float]:
    """Row ``i`` of X, of weight ``wi``, into the 2-means of :func:`two_means_rows`;
    returns (its child, its squared distance)."""
    d0, d1 = _sq_two(X, i, c0, c1)
    c = 1 if d1 < d0 else 0
    dd = d1 if c == 1 else d0
    for t in range(X.shape[1]):
        sums[c, t] += wi * np.float64(X[i, t])
    weight[c] += wi
    sse[c] += dd * wi
    count[c] += 1
    return c, dd


@_jit_reassoc
def two_means_rows(X: np.ndarray, scale: float | None, idx: np.ndarray, w: np.ndarray,
                   c0: np.ndarray, c1: np.ndarray, sums: np.ndarray, weight: np.ndarray,
                   sse: np.ndarray, count: np.ndarray, lab: np.ndarray,
                   dist: np.ndarray) -> None:
    """One 2-means pass over the rows ``idx`` of X (a leaf's rows in a block): each to
    the nearer of ``c0``/``c1`` (float64 squared distances; ``c0`` on a tie), its label
    and distance into ``lab``/``dist``, its weighted row, weight, weighted squared
    distance and count added into ``sums`` (2, d), ``weight``, ``sse`` and ``count``.
    Raw rows with a ``scale`` as in :func:`tree_descend` (the same values, so the same
    results)."""
    if scale is None:
        for r in range(idx.shape[0]):
            i = idx[r]
            lab[r], dist[r] = _two_means_row(X, i, w[i], c0, c1, sums, weight, sse, count)
    else:
        buf = np.empty((1, X.shape[1]), dtype=np.float32)
        for r in range(idx.shape[0]):
            i = idx[r]
            _load_row(X, i, scale, True, buf[0])
            lab[r], dist[r] = _two_means_row(buf, 0, w[i], c0, c1, sums, weight, sse, count)
