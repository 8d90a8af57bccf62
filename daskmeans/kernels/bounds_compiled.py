"""Compiled (numba) bounded Lloyd pass: the loop of :func:`daskmeans.kernels.bounds.bounds_block`.

Rows whose Hamerly/Elkan/Yinyang bounds prove they keep their centre are not read; the
others are tightened against their own centre, and those still in doubt are gathered
and assigned: rows in doubt in most groups of centres against every centre, a GEMM per
tile of them; the others against only their groups in doubt, a GEMM per group over
the tile's rows that need it (Yinyang's group filter in BLAS). The products are then
scanned group by group for each row's nearest centre and new group bounds.
:mod:`daskmeans.kernels.bounds` keeps the numpy reference that the tests compare this
against.
"""

from __future__ import annotations

import numpy as np

from .common_compiled import (
    TILE,
    exact_sq,
    finite_max,
    jit,
    jit_reassoc,
    load_row,
    row_sq,
    tie_window,
)


@jit_reassoc
def row_sqdist(X: np.ndarray, i: int, scale: float, raw: bool, c: np.ndarray) -> float:
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


@jit
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


@jit
def _group_min2(Drow: np.ndarray, csqg: np.ndarray, s: int, e: int) -> tuple[float, float, int]:
    """The smallest and second smallest ``Drow[jj] + csqg[jj]`` for ``s <= jj < e``
    and where the smallest is (the first on a tie, as np.argmin; -1 if none is
    finite-comparable): one group's scan of a row of distances in group order."""
    m1 = np.inf
    m2 = np.inf
    j1 = -1
    for jj in range(s, e):
        v = Drow[jj] + csqg[jj]
        if v < m1:
            m2 = m1
            m1, j1 = v, jj
        elif v < m2:
            m2 = v
    return m1, m2, j1


@jit
def _flush(G: np.ndarray, cnt: int, gidx: np.ndarray, gx2: np.ndarray, D: np.ndarray,
           m2r: np.ndarray, csqg: np.ndarray, gstart: np.ndarray, gcols: np.ndarray,
           m2t: np.ndarray, w: np.ndarray, lab_in: np.ndarray, lab: np.ndarray,
           u: np.ndarray, lo: np.ndarray, dS: np.ndarray, dN: np.ndarray, dQ: np.ndarray,
           tie: float, cmax: float) -> int:
    """Full assignment of the ``cnt`` gathered rows (one GEMM against every centre, in
    group order: ``m2r`` and ``csqg`` hold ``-2 C`` and ``|c|^2`` group by group, group
    ``g`` at ``gstart[g]:gstart[g + 1]``, its centres ``gcols[...]`` ascending, so that
    each group's scan is contiguous): the nearest centre, the distance to it and, per
    group of centres, the distance to the nearest other one; moved rows leave their old
    cluster's sums for the new one's. Returns a row with a non-finite distance or -1."""
    if cnt == 0:
        return -1
    Db = D[:cnt]
    np.dot(G[:cnt], m2r.T, Db)
    k = csqg.shape[0]
    t = lo.shape[1]
    weighted = w.shape[0] > 0
    gm1 = np.empty(t, dtype=D.dtype)  # per group: nearest, second nearest, its index
    gm2 = np.empty(t, dtype=D.dtype)
    gj = np.empty(t, dtype=np.int64)
    for r in range(cnt):
        i = gidx[r]
        gb = -1
        for g in range(t):  # the nearest overall; ties to the smaller centre index
            m1, m2, jj = _group_min2(Db[r], csqg, gstart[g], gstart[g + 1])
            gm1[g], gm2[g], gj[g] = m1, m2, gcols[jj] if jj >= 0 else -1
            if gj[g] >= 0 and (gb < 0 or m1 < gm1[gb] or (m1 == gm1[gb] and gj[g] < gj[gb])):
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
            limit = gm1[gb] + win
            s1 = np.inf
            for jj in range(k):  # the first centre on an exact tie, as np.argmin
                if Db[r, jj] + csqg[jj] <= limit:
                    j = gcols[jj]
                    e = exact_sq(G[r], m2t, j)
                    if e < s1 or (e == s1 and j < bj):
                        s1, bj = e, j
        u[i] = np.sqrt(max(s1, 0.0))
        for g in range(t):  # per group, the nearest centre other than the row's own
            v = gm2[g] if gj[g] == bj else gm1[g]
            lo[i, g] = np.sqrt(max(v + gx2[r], 0.0))
        lab[i] = bj
        if bj != lab_in[i]:
            _move_row(G[r], w[i] if weighted else 1.0, gx2[r], lab_in[i], bj, dS, dN, dQ)
    return -1


#: rows gathered for the group by group comparison before their GEMMs run: a group's
#: GEMM takes the tile's rows that must meet it, so longer tiles make longer GEMMs
GROUP_TILE = 1024
#: at most this many bytes in each of the group path's two row buffers (the gathered
#: rows, and those of one group copied together), so that very wide rows take fewer
#: rows a tile rather than more memory (:func:`group_tile`)
GROUP_TILE_BYTES = 4 << 20


def group_tile(d: int, itemsize: int) -> int:
    """Rows gathered per tile of the group path for rows of ``d`` features of
    ``itemsize`` bytes (as floats): :data:`GROUP_TILE`, fewer when that many rows
    would take more than :data:`GROUP_TILE_BYTES`, at least one.

    >>> group_tile(784, 4), group_tile(100_000, 4), group_tile(10 ** 7, 8)
    (1024, 10, 1)
    """
    return max(1, min(GROUP_TILE, GROUP_TILE_BYTES // max(1, d * itemsize)))

#: whether :func:`_flush_grouped` skips centres by their own drift (Yinyang's local
#: filter) within the groups it compares, one dot product per centre left
#: (:func:`_flush_local`). Off by default: a group with skipped centres keeps their
#: decayed bounds instead of fresh distances, so in later passes more rows stay in
#: doubt and more groups are compared, and a fit computes more distances in all
#: (counted on Fashion-MNIST at K=1024); the dot products also cost more a distance
#: than the GEMMs of the default path. The tests run both
LOCAL_FILTER = False


@jit_reassoc
def _dot(x: np.ndarray, y: np.ndarray) -> float:
    """``x . y`` accumulated in the rows' dtype, vectorised (a GEMM's rounding, not its
    order: near ties are settled in float64 whatever computed the distances)."""
    acc = x.dtype.type(0)
    for t in range(x.shape[0]):
        acc += x[t] * y[t]
    return acc


@jit
def _group_gemms(X: np.ndarray, scale: float, raw: bool, H: np.ndarray, hidx: np.ndarray,
                 cnt: int, cand: np.ndarray, Hb: np.ndarray, rows: np.ndarray,
                 Dflat: np.ndarray, m2r: np.ndarray, gstart: np.ndarray, gcols: np.ndarray,
                 csqg: np.ndarray, gm1: np.ndarray, gm2: np.ndarray, gj: np.ndarray) -> int:
    """Per group of centres, the gathered rows that ``cand`` marks for it (copied
    together into ``Hb`` unless they are all the tile's rows) against the group's
    centres in one GEMM (``m2r``: the rows of ``-2 C`` in group order, group ``g`` at
    ``gstart[g]:gstart[g + 1]``, its centres ``gcols[...]`` ascending, their ``|c|^2``
    in ``csqg``; ``Dflat``: room for the product); per (row, group) the nearest and
    second nearest distance (less ``|x|^2``) and the nearest centre, in ``gm1``,
    ``gm2``, ``gj`` (inf, inf, -1 for groups not compared). The rows are copied from
    ``X`` (row ``hidx[r]`` of tile row ``r``), where raw rows are fewer bytes to read
    than their floats in ``H``. Returns the distances computed."""
    t = cand.shape[1]
    for r in range(cnt):
        for g in range(t):
            gm1[r, g] = np.inf
            gm2[r, g] = np.inf
            gj[r, g] = -1
    n_dist = 0
    for g in range(t):
        s, e = gstart[g], gstart[g + 1]
        kg = e - s
        ng = 0
        for r in range(cnt):
            if cand[r, g]:
                rows[ng] = r
                ng += 1
        if ng == 0 or kg == 0:
            continue
        if ng == cnt:
            A = H[:cnt]
        else:
            for q in range(ng):  # from X: raw rows are a quarter of the bytes to read
                load_row(X, hidx[rows[q]], scale, raw, Hb[q])
            A = Hb[:ng]
        Dg = Dflat[:ng * kg].reshape((ng, kg))
        np.dot(A, m2r[s:e].T, Dg)
        n_dist += ng * kg
        for q in range(ng):  # ascending centres: the first minimum wins, as np.argmin
            m1, m2, jj = _group_min2(Dg[q], csqg[s:e], 0, kg)
            r = rows[q]
            gm1[r, g], gm2[r, g], gj[r, g] = m1, m2, gcols[s + jj] if jj >= 0 else -1
    return n_dist


@jit
def _local_dots(G: np.ndarray, cnt: int, gidx: np.ndarray, gx2: np.ndarray,
                gthr: np.ndarray, cand: np.ndarray, m2r: np.ndarray, gstart: np.ndarray,
                gcols: np.ndarray, csq: np.ndarray, lab_in: np.ndarray, l_in: np.ndarray,
                drift: np.ndarray, margin: float, gm1: np.ndarray, gm2: np.ndarray,
                gj: np.ndarray, gskip: np.ndarray) -> int:
    """:func:`_group_gemms` with Yinyang's local filter: within a compared group, only
    the centres that its group's bound from the last pass minus the centre's own drift
    (``l_in[i, g] - drift[j]``) does not prove farther than the nearest centre found so
    far (``gthr``: the squared distance to the row's own centre to start with), one
    dot product each with the row in cache; the skipped centres' smallest bound per
    (row, group) in ``gskip``. Returns the distances computed."""
    t = cand.shape[1]
    n_dist = 0
    for r in range(cnt):
        x = G[r]
        i = gidx[r]
        a = lab_in[i]
        x2 = gx2[r]
        thr = gthr[r]  # squared distance of the nearest centre found so far
        for g in range(t):
            gm1[r, g] = np.inf
            gm2[r, g] = np.inf
            gj[r, g] = -1
            if not cand[r, g]:
                continue
            lold = np.float64(l_in[i, g]) if a >= 0 else 0.0
            m1 = np.inf
            m2 = np.inf
            j1 = -1
            for jj in range(gstart[g], gstart[g + 1]):  # ascending: the first minimum wins
                j = gcols[jj]
                if j != a:  # the local filter (a: the bound is of the other centres)
                    lb = lold - drift[j]
                    if lb > 0 and thr <= lb * lb - margin:
                        if lb < gskip[r, g]:
                            gskip[r, g] = lb
                        continue
                v = _dot(x, m2r[jj]) + csq[j]
                n_dist += 1
                if v + x2 < thr:
                    thr = v + x2
                if v < m1:
                    m2 = m1
                    m1, j1 = v, j
                elif v < m2:
                    m2 = v
            gm1[r, g], gm2[r, g], gj[r, g] = m1, m2, j1
    return n_dist


@jit
def _settle_grouped(G: np.ndarray, cnt: int, gidx: np.ndarray, gx2: np.ndarray,
                    cand: np.ndarray, gstart: np.ndarray, gcols: np.ndarray,
                    m2t: np.ndarray, w: np.ndarray, lab_in: np.ndarray, lab: np.ndarray,
                    u: np.ndarray, lo: np.ndarray, dS: np.ndarray, dN: np.ndarray,
                    dQ: np.ndarray, gm1: np.ndarray, gm2: np.ndarray, gj: np.ndarray,
                    gskip: np.ndarray, tie: float, cmax: float) -> int:
    """The gathered rows' new centres and bounds from their compared groups' nearest
    and second nearest distances: the nearest overall (near ties in float64, over the
    groups within reach), the upper bound, and per compared group the distance to its
    nearest centre other than the row's own (or, below it, its skipped centres'
    bound ``gskip``); groups not compared keep the lower bounds already written into
    ``lo`` (valid: the new centre is in a compared group). Moved rows leave their old
    cluster's sums for the new one's. Returns a row with a non-finite distance or -1."""
    t = lo.shape[1]
    weighted = w.shape[0] > 0
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
                    e = exact_sq(G[r], m2t, j)
                    if e < be or (e == be and j < bj):
                        be, bj = e, j
            s1 = be
        u[i] = np.sqrt(max(s1, 0.0))
        for g in range(t):  # compared groups: the nearest centre other than the row's own
            if cand[r, g]:
                v = gm2[r, g] if gj[r, g] == bj else gm1[r, g]
                lo[i, g] = min(np.sqrt(max(v + gx2[r], 0.0)), gskip[r, g])
        lab[i] = bj
        if bj != lab_in[i]:
            _move_row(G[r], w[i] if weighted else 1.0, gx2[r], lab_in[i], bj, dS, dN, dQ)
    return -1


@jit
def _flush_grouped(X: np.ndarray, scale: float, raw: bool, H: np.ndarray, cnt: int,
                   hidx: np.ndarray, hx2: np.ndarray,
                   hthr: np.ndarray, cand: np.ndarray, Hb: np.ndarray, rows: np.ndarray,
                   Dflat: np.ndarray, m2r: np.ndarray, gstart: np.ndarray,
                   gcols: np.ndarray, csq: np.ndarray, m2t: np.ndarray, w: np.ndarray,
                   lab_in: np.ndarray, l_in: np.ndarray, drift: np.ndarray, margin: float,
                   lab: np.ndarray, u: np.ndarray, lo: np.ndarray, dS: np.ndarray,
                   dN: np.ndarray, dQ: np.ndarray, gm1: np.ndarray, gm2: np.ndarray,
                   gj: np.ndarray, gskip: np.ndarray, tie: float, cmax: float,
                   local: bool) -> tuple[int, int]:
    """Yinyang's group filter on the ``cnt`` rows gathered in ``H``: each is compared
    only with the groups ``cand`` marks for it (its own centre's group, and every
    group whose lower bound does not prove all its centres farther than the row's own
    centre), by a GEMM per group over the rows that need it (:func:`_group_gemms`), or
    with ``local`` one dot product per centre its local filter leaves
    (:func:`_local_dots`); then :func:`_settle_grouped`. Returns (a row with a
    non-finite distance or -1, distances computed)."""
    if cnt == 0:
        return -1, 0
    gskip[:cnt] = np.inf
    if local:
        n_dist = _local_dots(H, cnt, hidx, hx2, hthr, cand, m2r, gstart, gcols, csq,
                             lab_in, l_in, drift, margin, gm1, gm2, gj, gskip)
    else:
        n_dist = _group_gemms(X, scale, raw, H, hidx, cnt, cand, Hb, rows, Dflat, m2r,
                              gstart, gcols,
                              csq[gcols], gm1, gm2, gj)
    bad = _settle_grouped(H, cnt, hidx, hx2, cand, gstart, gcols, m2t, w, lab_in, lab, u,
                          lo, dS, dN, dQ, gm1, gm2, gj, gskip, tie, cmax)
    return bad, n_dist


@jit
def _candidates(lo_i: np.ndarray, d2: float, own: int, margin: float,
                crow: np.ndarray) -> int:
    """Which groups a row in doubt must meet (``crow``): its own centre's group
    (``own``) and every group whose lower bound ``lo_i[g]`` does not prove all its
    centres farther than the row's own centre (``d2``: the squared distance to it).
    Returns how many."""
    nc = 0
    for g in range(crow.shape[0]):
        v = lo_i[g]
        c = g == own or not (v > 0 and d2 <= v * v - margin)
        crow[g] = c
        nc += c
    return nc


@jit
def _first(a: int, b: int) -> int:
    """The smaller of two row indices where -1 means none."""
    if a < 0:
        return b
    if b < 0:
        return a
    return min(a, b)


@jit
def bounds_pass(X: np.ndarray, scale: float, raw: bool, m2t: np.ndarray, csq: np.ndarray,
                C64: np.ndarray, group: np.ndarray, w: np.ndarray, lab_in: np.ndarray,
                u_in: np.ndarray, l_in: np.ndarray, drift: np.ndarray,
                group_drift: np.ndarray, half_sep: np.ndarray, margin: float, tile: int,
                lab: np.ndarray, u: np.ndarray, lo: np.ndarray, dS: np.ndarray,
                dN: np.ndarray, dQ: np.ndarray, m2r: np.ndarray, gstart: np.ndarray,
                gcols: np.ndarray, share: float, tie: float, local: bool,
                group_tile: int) -> tuple[int, int, int, float, int, int]:
    """One Lloyd iteration with Yinyang-style bounds over a block (see
    :func:`daskmeans.kernels.bounds.bounds_block`): per row an upper bound of the distance to
    its centre and, per group of centres, a lower bound of the distance to every other
    centre of the group. Rows whose bounds prove they keep their centre are not read;
    the others are tightened against their own centre, and those still in doubt are
    gathered and assigned. A row in doubt in at most ``share`` of the groups
    (:data:`daskmeans.kernels.bounds.GROUP_FILTER_SHARE`) meets only those groups
    (Yinyang's group filter), ``group_tile`` gathered rows at a time by a GEMM per
    group (:func:`_flush_grouped`; ``m2r``, ``gstart``, ``gcols``: the centres by
    group; ``local``: :data:`LOCAL_FILTER`); the others (rows with label -1, without
    bounds yet, among them) meet every centre, a GEMM per ``tile`` gathered rows
    (:func:`_flush`). With one group, or one centre a group (Elkan's bounds, below 16
    centres), every row read meets every centre: all its bounds are fresh again (the
    filter would leave the skipped centres' bounds decaying: more rows read over a
    fit). Writes the new labels and bounds into ``lab``, ``u``, ``lo`` and the changes
    of the per-cluster sums, weights and ``sum w |x|^2`` of the rows that moved into
    ``dS``, ``dN``, ``dQ``. Returns (first non-finite row or -1, rows read, rows
    assigned in full, largest |x|^2 of those, (row, group) pairs compared, (row,
    centre) distances computed)."""
    n, d = X.shape
    k = C64.shape[0]
    t = l_in.shape[1]
    grouped = 1 < t < k
    G = np.empty((tile, d), dtype=m2t.dtype)  # rows meeting every centre
    D = np.empty((tile, k), dtype=m2t.dtype)  # distances in group order
    csqg = csq[gcols]
    gidx = np.empty(tile, dtype=np.int64)
    gx2 = np.empty(tile, dtype=np.float64)  # |x|^2 as summed: the inertia's sums
    ht = group_tile if grouped else 1  # rows meeting some groups
    H = np.empty((ht, d), dtype=m2t.dtype)
    Hb = np.empty((ht, d), dtype=m2t.dtype)
    hidx = np.empty(ht, dtype=np.int64)
    hx2 = np.empty(ht, dtype=np.float64)
    hthr = np.empty(ht, dtype=np.float64)  # squared distance to the row's own centre
    rows = np.empty(ht, dtype=np.int64)
    Dflat = np.empty(ht * max(1, np.max(gstart[1:] - gstart[:-1])), dtype=m2t.dtype)
    cand = np.empty((ht, t), dtype=np.bool_)
    gm1 = np.empty((ht, t), dtype=m2t.dtype)
    gm2 = np.empty((ht, t), dtype=m2t.dtype)
    gj = np.empty((ht, t), dtype=np.int64)
    gskip = np.empty((ht, t), dtype=np.float64)
    crow = np.ones(t, dtype=np.bool_)
    cmax = finite_max(csq, k)
    Cd = C64.astype(m2t.dtype)  # the centres in the rows' dtype, for tightening
    cnt, hcnt, n_pairs, n_dist, n_read, n_full, x2max, bad = 0, 0, 0, 0, 0, 0, 0.0, -1
    for i in range(n):
        a = lab_in[i]
        d2 = np.inf
        nc = t
        if a >= 0:
            ub = u_in[i] + drift[a]
            lmin = np.inf
            for g in range(t):
                v = l_in[i, g] - group_drift[g]
                lo[i, g] = v
                lmin = min(lmin, v)
            bnd = max(half_sep[a], lmin)
            if bnd > 0 and ub * ub <= bnd * bnd - margin:
                lab[i], u[i] = a, ub
                continue
            d2 = row_sqdist(X, i, scale, raw, Cd[a])
            if bnd > 0 and d2 <= bnd * bnd - margin:
                lab[i], u[i], n_read = a, np.sqrt(d2), n_read + 1
                continue
            nc = _candidates(lo[i], d2, group[a], margin, crow)
        n_read += 1
        n_full += 1
        if grouped and a >= 0 and nc <= share * t:
            load_row(X, i, scale, raw, H[hcnt])
            row_sq(H[hcnt:hcnt + 1], hx2[hcnt:hcnt + 1])
            x2max = max(x2max, hx2[hcnt])
            cand[hcnt] = crow
            hthr[hcnt], hidx[hcnt] = d2, i
            hcnt += 1
            n_pairs += nc
        else:
            load_row(X, i, scale, raw, G[cnt])
            row_sq(G[cnt:cnt + 1], gx2[cnt:cnt + 1])
            x2max = max(x2max, gx2[cnt])
            gidx[cnt] = i
            cnt += 1
            n_pairs += t
            n_dist += k
        if cnt == tile:
            bad = _flush(G, cnt, gidx, gx2, D, m2r, csqg, gstart, gcols, m2t, w, lab_in,
                         lab, u, lo, dS, dN, dQ, tie, cmax)
            cnt = 0
        if hcnt == ht:
            bad, dists = _flush_grouped(X, scale, raw, H, hcnt, hidx, hx2, hthr, cand, Hb,
                                        rows, Dflat, m2r, gstart, gcols, csq, m2t, w, lab_in, l_in,
                                        drift, margin, lab, u, lo, dS, dN, dQ, gm1, gm2,
                                        gj, gskip, tie, cmax, local)
            n_dist += dists
            hcnt = 0
        if bad >= 0:  # the other tile's rows too: the first bad row may be among them
            break
    bad = _first(bad, _flush(G, cnt, gidx, gx2, D, m2r, csqg, gstart, gcols, m2t, w, lab_in,
                             lab, u, lo, dS, dN, dQ, tie, cmax))
    hbad, dists = _flush_grouped(X, scale, raw, H, hcnt, hidx, hx2, hthr, cand, Hb, rows,
                                 Dflat, m2r,
                                 gstart, gcols, csq, m2t, w, lab_in, l_in, drift, margin,
                                 lab, u, lo, dS, dN, dQ, gm1, gm2, gj, gskip, tie, cmax,
                                 local)
    return _first(bad, hbad), n_read, n_full, x2max, n_pairs, n_dist + dists


@jit
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


def warm_up() -> None:
    """Compile (or load from the on-disk cache) this module's specialisations: float32,
    float64 and raw uint8 rows, weighted or not."""
    for dtype in (np.float32, np.float64):
        m2t = np.zeros((2, 2), dtype=dtype)
        csq = np.zeros(2, dtype=dtype)
        for w in (np.empty(0), np.ones(3)):
            for rows, raw in ((np.zeros((3, 2), dtype=dtype), False),
                              (np.zeros((3, 2), np.uint8), True)):
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
                            0.5, 1e-6, LOCAL_FILTER, GROUP_TILE)
                cluster_extrema(lab, u, lo, 2, np.empty(2), np.empty(2))
