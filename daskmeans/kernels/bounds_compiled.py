"""Compiled (numba) bounded Lloyd pass: the loop of :func:`daskmeans.kernels.bounds.bounds_block`.

Rows whose Hamerly/Elkan/Yinyang bounds prove they keep their centre are not read; the
others are tightened against their own centre, and those still in doubt are gathered
and assigned in full, a GEMM (or, with Yinyang's group filter, one dot product per
candidate centre) per tile of gathered rows. :mod:`daskmeans.kernels.bounds` keeps the
numpy reference that the tests compare this against.
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
    near_tie,
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
            bj, s1 = near_tie(G[r], m2t, Db[r], csq, 0, k, gm1[gb] + win)
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

#: whether :func:`_flush_groups` skips centres by their own drift (Yinyang's local
#: filter) within the groups it compares. Off by default: a group with skipped centres
#: keeps their decayed bounds instead of fresh distances, so in later passes more rows
#: stay in doubt and more groups are compared, and a fit computes more distances in
#: all (counted on Fashion-MNIST at K=1024); the tests run both
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
def _flush_groups(G: np.ndarray, cnt: int, gidx: np.ndarray, gx2: np.ndarray,
                  gthr: np.ndarray, cand: np.ndarray, m2r: np.ndarray, gstart: np.ndarray,
                  gcols: np.ndarray, csq: np.ndarray, w: np.ndarray, lab_in: np.ndarray,
                  l_in: np.ndarray, drift: np.ndarray, margin: float, lab: np.ndarray,
                  u: np.ndarray, lo: np.ndarray, dS: np.ndarray, dN: np.ndarray,
                  dQ: np.ndarray, gm1: np.ndarray, gm2: np.ndarray, gj: np.ndarray,
                  gskip: np.ndarray, m2t: np.ndarray, tie: float, cmax: float,
                  local: bool) -> tuple[int, int]:
    """:func:`_flush` with Yinyang's group and local filters: each gathered row is
    compared only with the groups ``cand`` marks for it (its own centre's group, and
    every group whose lower bound does not prove all its centres farther than the
    row's own centre) and, within those, only with the centres that its group's bound
    from the last pass minus the centre's own drift (``l_in[i, g] - drift[j]``) does
    not prove farther than the nearest centre found so far (``gthr``: the squared
    distance to its own centre to start with); one dot product per centre with the
    row in cache (``m2r``: the rows of ``-2 C`` in group order, group ``g`` at
    ``gstart[g]:gstart[g + 1]``, its centres ``gcols[...]`` ascending; a GEMM per
    group needed a copy of the rows per group and was slower). A group's new lower
    bound is the smallest of its compared centres' distances (other than the row's
    centre) and its skipped centres' bounds (``gskip``); groups not compared keep the
    lower bounds already written into ``lo`` (valid: the new centre is in a compared
    group; ``local``: :data:`LOCAL_FILTER`). Returns (a row with a non-finite distance
    or -1, distances computed)."""
    if cnt == 0:
        return -1, 0
    t = lo.shape[1]
    weighted = w.shape[0] > 0
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
            gskip[r, g] = np.inf
            if not cand[r, g]:
                continue
            lold = np.float64(l_in[i, g]) if a >= 0 else 0.0
            m1 = np.inf
            m2 = np.inf
            j1 = -1
            for jj in range(gstart[g], gstart[g + 1]):  # ascending: the first minimum wins
                j = gcols[jj]
                if local and j != a:  # the local filter (a: the bound is of the other centres)
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
    for r in range(cnt):
        i = gidx[r]
        gb = -1
        for g in range(t):  # the nearest overall; ties to the smaller centre index
            if gj[r, g] >= 0 and (gb < 0 or gm1[r, g] < gm1[r, gb] or (
                    gm1[r, g] == gm1[r, gb] and gj[r, g] < gj[r, gb])):
                gb = g
        if gb < 0:  # NaN distances compare false everywhere
            return i, n_dist
        bj = gj[r, gb]
        s1 = gm1[r, gb] + gx2[r]
        if not np.isfinite(s1):
            return i, n_dist
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
    return -1, n_dist


@jit
def _flush_any(G: np.ndarray, cnt: int, gidx: np.ndarray, gx2: np.ndarray, gthr: np.ndarray,
               D: np.ndarray, m2t: np.ndarray, csq: np.ndarray, group: np.ndarray,
               w: np.ndarray, lab_in: np.ndarray, l_in: np.ndarray, drift: np.ndarray,
               margin: float, lab: np.ndarray, u: np.ndarray, lo: np.ndarray,
               dS: np.ndarray, dN: np.ndarray, dQ: np.ndarray, cand: np.ndarray,
               n_cand: int, m2r: np.ndarray, gstart: np.ndarray, gcols: np.ndarray,
               gm1: np.ndarray, gm2: np.ndarray, gj: np.ndarray, gskip: np.ndarray,
               share: float, tie: float, cmax: float, local: bool) -> tuple[int, int, int]:
    """The tile's gathered rows group by group when at most ``share`` of their (row,
    group) pairs are in doubt, else against every centre at once; always at once with
    one centre a group (Elkan's bounds, below 16 centres): a row read then meets every
    centre and all its bounds are fresh again (the filter left the skipped centres'
    bounds decaying: more rows read over a fit). Returns (a row with a non-finite
    distance or -1, the (row, group) pairs compared, the distances computed)."""
    t = lo.shape[1]
    k = csq.shape[0]
    if 1 < t < k and n_cand <= share * cnt * t:
        bad, n_dist = _flush_groups(G, cnt, gidx, gx2, gthr, cand, m2r, gstart, gcols, csq,
                                    w, lab_in, l_in, drift, margin, lab, u, lo, dS, dN, dQ,
                                    gm1, gm2, gj, gskip, m2t, tie, cmax, local)
        return bad, n_cand, n_dist
    return _flush(G, cnt, gidx, gx2, D, m2t, csq, group, w, lab_in, lab, u, lo, dS, dN, dQ,
                  tie, cmax), cnt * t, cnt * k


@jit
def bounds_pass(X: np.ndarray, scale: float, raw: bool, m2t: np.ndarray, csq: np.ndarray,
                C64: np.ndarray, group: np.ndarray, w: np.ndarray, lab_in: np.ndarray,
                u_in: np.ndarray, l_in: np.ndarray, drift: np.ndarray,
                group_drift: np.ndarray, half_sep: np.ndarray, margin: float, tile: int,
                lab: np.ndarray, u: np.ndarray, lo: np.ndarray, dS: np.ndarray,
                dN: np.ndarray, dQ: np.ndarray, m2r: np.ndarray, gstart: np.ndarray,
                gcols: np.ndarray, share: float, tie: float, local: bool = True
                ) -> tuple[int, int, int, float, int, int]:
    """One Lloyd iteration with Yinyang-style bounds over a block (see
    :func:`daskmeans.kernels.bounds.bounds_block`): per row an upper bound of the distance to
    its centre and, per group of centres, a lower bound of the distance to every other
    centre of the group. Rows whose bounds prove they keep their centre are not read;
    the others are tightened against their own centre, and those still in doubt are
    assigned in full, a GEMM per ``tile`` gathered rows. Rows with label -1 have no
    bounds yet and are assigned in full. Writes the new labels and bounds into ``lab``,
    ``u``, ``lo`` and the changes of the per-cluster sums, weights and
    ``sum w |x|^2`` of the rows that moved into ``dS``, ``dN``, ``dQ``. A row in doubt
    is compared only with the groups of centres its bounds do not rule out (Yinyang's
    group filter, and with ``local`` within a group only with the centres its local
    filter does not rule out, :func:`_flush_groups`; ``m2r``, ``gstart``, ``gcols``:
    the centres by group; ``share``: :data:`GROUP_FILTER_SHARE`; ``local``:
    :data:`LOCAL_FILTER`). Returns (first non-finite row or -1, rows read, rows
    assigned in full, largest |x|^2 of those, (row, group) pairs compared, (row,
    centre) distances computed)."""
    n, d = X.shape
    k = C64.shape[0]
    t = l_in.shape[1]
    G = np.empty((tile, d), dtype=m2t.dtype)
    D = np.empty((tile, m2t.shape[1]), dtype=m2t.dtype)
    gidx = np.empty(tile, dtype=np.int64)
    gx2 = np.empty(tile, dtype=np.float64)  # |x|^2 as summed: the inertia's sums
    gthr = np.empty(tile, dtype=np.float64)  # squared distance to the row's own centre
    gskip = np.empty((tile, t), dtype=np.float64)
    cand = np.empty((tile, t), dtype=np.bool_)
    gm1 = np.empty((tile, t), dtype=m2t.dtype)
    gm2 = np.empty((tile, t), dtype=m2t.dtype)
    gj = np.empty((tile, t), dtype=np.int64)
    cmax = finite_max(csq, k)
    Cd = C64.astype(m2t.dtype)  # the centres in the rows' dtype, for tightening
    cnt = 0
    n_cand = 0  # (row, group) pairs of the tile's gathered rows still in doubt
    n_pairs = 0
    n_dist = 0
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
            d2 = row_sqdist(X, i, scale, raw, Cd[a])
            if bnd > 0 and d2 <= bnd * bnd - margin:
                lab[i], u[i] = a, np.sqrt(d2)
                continue
            load_row(X, i, scale, raw, xr)
            gthr[cnt] = d2
            for g in range(t):  # the groups whose bound fails (and the row's own)
                v = lo[i, g]
                c = g == group[a] or not (v > 0 and d2 <= v * v - margin)
                cand[cnt, g] = c
                n_cand += c
        else:
            n_read += 1
            load_row(X, i, scale, raw, xr)
            gthr[cnt] = np.inf
            cand[cnt, :] = True
            n_cand += t
        row_sq(G[cnt:cnt + 1], gx2[cnt:cnt + 1])
        x2max = max(x2max, gx2[cnt])
        gidx[cnt] = i
        cnt += 1
        n_full += 1
        if cnt == tile:
            bad, pairs, dists = _flush_any(G, cnt, gidx, gx2, gthr, D, m2t, csq[:k], group,
                                           w, lab_in, l_in, drift, margin, lab, u, lo, dS,
                                           dN, dQ, cand, n_cand, m2r, gstart, gcols, gm1,
                                           gm2, gj, gskip, share, tie, cmax, local)
            n_pairs += pairs
            n_dist += dists
            if bad >= 0:
                return bad, n_read, n_full, x2max, n_pairs, n_dist
            cnt = 0
            n_cand = 0
    bad, pairs, dists = _flush_any(G, cnt, gidx, gx2, gthr, D, m2t, csq[:k], group, w,
                                   lab_in, l_in, drift, margin, lab, u, lo, dS, dN, dQ,
                                   cand, n_cand, m2r, gstart, gcols, gm1, gm2, gj, gskip,
                                   share, tie, cmax, local)
    return bad, n_read, n_full, x2max, n_pairs + pairs, n_dist + dists


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
                            GROUP_FILTER_SHARE, 1e-6, LOCAL_FILTER)
                cluster_extrema(lab, u, lo, 2, np.empty(2), np.empty(2))
