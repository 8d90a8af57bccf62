"""A Lloyd iteration with per-row distance bounds (Hamerly's, Elkan's or Yinyang's):
rows whose bounds prove they keep their centre are not read, rows that move update
the per-cluster sums by their difference.

The pass runs compiled (:mod:`daskmeans.kernels.bounds_compiled`) when numba is
installed; :func:`_bounds_numpy` is the reference the tests compare it with (the same
rows read, the same groups of centres compared, the same labels, bounds and sums), and
the pass of CSR rows (the rows in doubt recomputed from their stored values by the
sparse kernels of :mod:`daskmeans.kernels.sparse` against every centre, near ties in
float64 as for plain Lloyd).

Which bounds, and why
---------------------
Each row keeps its centre, an upper bound of the distance to it and, per group of
centres, one float32 lower bound of its distance to the group's other centres
(Yinyang K-means, Ding et al. 2015; one group is Hamerly's bounds, one centre a group
Elkan's). ``12 + 4 t`` bytes a row for ``t`` groups, ``t`` chosen by
:func:`daskmeans.algorithms.n_groups` so that the bounds take at most a quarter of a
row's stored bytes (a uint8 row of 784 pixels: 196 bytes, 46 groups) whatever K;
rows of under 64 bytes keep one group, 16 bytes. Centres are grouped by k-means on
the initial centres, as Yinyang K-means does. The groups are as many as that budget
allows (up to ``K // 8``): a group's bounds fall by its farthest-moving centre, so
smaller groups keep tighter bounds, and counting the distances a fit computes showed
more groups to be the largest gain. A pass applies these filters:

- the global filter: a row whose upper bound (loosened by its centre's drift) is
  below every group's lower bound (loosened by the group's largest drift) or half
  its centre's distance to the nearest other one is not read;
- the group filter: a row read is tightened against its own centre, and then
  compared only with the groups whose bound does not pass. The rows in doubt are
  gathered a tile at a time and each group's centres meet the tile's rows that need
  them in one GEMM (BLAS's speed a distance, where one dot product per (row, centre)
  pair cost several times more); a compiled loop then finds each row's nearest centre
  and new group bounds from those products;
- the local filter (available, off by default:
  :data:`~daskmeans.kernels.bounds_compiled.LOCAL_FILTER`): within such a group, a
  centre whose own bound (the group's bound from the last pass minus that centre's
  drift) proves it farther than the nearest centre found so far is skipped; the
  group's new bound is the smallest of its compared centres' distances and its
  skipped centres' bounds. It saves distances in the pass, but the bounds it leaves
  are looser than the fresh distances, and over a fit the rows it keeps in doubt
  cost more distances than it saved; and it needs a dot product per centre, not a
  GEMM.

A row in doubt in more than :data:`GROUP_FILTER_SHARE` of the groups (every row in
early iterations, when the centres move far) is instead compared with every centre in
one GEMM with the other such rows, which also renews all its bounds: bounds left to
decay cost more rows read later. Each pass counts the distances it computed
(:attr:`BoundsPartial.n_dist`), the machine-independent measure of the pruning.

Not chosen: Exponion (Newling & Fleuret 2016) keeps O(1) bounds a row and compares a
row in doubt with the centres inside an annulus around its own centre, found from
sorted centre-to-centre distances; the papers' own comparisons give it the lead in
low dimensions, where such annuli hold few centres, and the Elkan/Yinyang family the
lead in high dimensions (pixels, embeddings), where distances concentrate and the
annuli hold most centres; it also needs a sorted (K, K) table, gigabytes at K in
the tens of thousands. Its candidate centres are a set of its own for every row,
while Yinyang's groups are shared: the rows that need a group are batched into one
GEMM against its centres, so that BLAS computes the distances of the rows in doubt.
Ball k-means (Xia et al. 2020) keeps no per-row
bounds but works cluster by cluster on each cluster's rows and its neighbour
clusters: here a cluster's rows are spread over blocks read independently (out of
core, on workers), so it would need the rows regrouped by cluster every iteration.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import sparse
from .common import (
    Centres,
    Moments,
    NonFiniteRow,
    ScaledRows,
    TopM,
    column_moments,
    compiled_kernels,
    compiled_module,
    is_sparse,
    merge_top,
    row_access,
    rows_and_centres,
    scale_rows,
    settle_near_ties,
    top_m,
)

#: a row in doubt is compared only with the groups of centres its bounds do not rule
#: out when they are at most this share of the groups, else with every centre (which
#: also renews all its bounds: bounds left to decay cost more rows read later)
GROUP_FILTER_SHARE = 0.5


@dataclass
class BlockBounds:
    """A block's rows between Lloyd iterations: each row's centre, an upper bound of
    its distance to that centre and, per group of centres (Yinyang's global filter;
    one group is Hamerly's), a lower bound of its distance to every other centre of
    the group, valid for the centres of iteration ``version``. ``12 + 4 t`` bytes a row
    (t groups: see :func:`daskmeans.algorithms.n_groups`). The lower bounds are float32:
    half the bytes to read and write in every pass, and their rounding (a relative
    6e-8) is far inside the slack every bound test keeps (``4 d eps (|x|^2 + |c|^2)``
    in float32)."""

    labels: np.ndarray  # (m,) int32; -1: not assigned yet
    upper: np.ndarray  # (m,) float64
    lower: np.ndarray  # (m, t) float32: per group of centres
    version: int = -1

    @classmethod
    def fresh(cls, m: int, n_groups: int = 1) -> BlockBounds:
        return cls(np.full(m, -1, np.int32), np.full(m, np.inf),
                   np.zeros((m, n_groups), np.float32))

    @property
    def nbytes(self) -> int:
        return int(self.labels.nbytes + self.upper.nbytes + self.lower.nbytes)


@dataclass
class BoundsSummary:
    """Per cluster, the largest upper bound and the largest ``upper - lower`` among a
    block's rows (-inf where the block has no row of that cluster): from it the client
    can tell, without reading the block, that none of its rows can change centre."""

    umax: np.ndarray  # (k,) float64
    gapmax: np.ndarray  # (k,) float64
    version: int

    def settled(self, step: Drift) -> bool:
        """True when the bounds prove every row of the block keeps its centre after
        the centres moved by ``step`` (from this block's version): in each cluster,
        every row passes the lower-bound test, or every row the separation test (each
        with ``sqrt(margin)`` of slack, more than the rows' own tests keep)."""
        has = self.umax > -np.inf
        slack = np.sqrt(step.margin)
        # every group bound of a row fell by at most the largest group drift
        by_lower = self.gapmax[has] + step.drift[has] + step.group_drift.max() + slack <= 0
        by_sep = self.umax[has] + step.drift[has] + slack <= step.half_sep[has]
        return bool(np.all(by_lower | by_sep))


@dataclass
class Drift:
    """How far the centres moved since the centres some bounds refer to, and how far
    apart they are now: what :func:`bounds_block` needs to update and test bounds."""

    drift: np.ndarray  # (k,) |C_now - C_then| per centre
    half_sep: np.ndarray  # (k,) half the distance to the nearest other current centre
    margin: float  # squared-distance slack covering the float rounding of distances
    group_drift: np.ndarray  # (t,) largest drift of a centre in each group

    @classmethod
    def of(cls, C_now: np.ndarray, C_then: np.ndarray, margin: float,
           half_sep: np.ndarray | None = None, groups: np.ndarray | None = None) -> Drift:
        """The step from ``C_then`` to ``C_now`` (``half_sep``: of ``C_now``, if known;
        the same for every block in an iteration, and costs a (k, k) Gram matrix;
        ``groups``: (k,) group of each centre, one group if None)."""
        C_now = np.asarray(C_now, np.float64)
        drift = np.sqrt(((C_now - np.asarray(C_then, np.float64)) ** 2).sum(1))
        k = len(drift)
        if half_sep is None:
            half_sep = half_separation(C_now)
        if groups is None or k == 0:
            group_drift = np.array([drift.max() if k else 0.0])
        else:
            group_drift = np.zeros(int(groups.max()) + 1)
            np.maximum.at(group_drift, groups, drift)
        return cls(drift, half_sep, float(margin), group_drift)


#: :func:`half_separation` takes the centres' Gram matrix this many rows at a time, so
#: that its memory stays near ``SEPARATION_ROWS * k`` float64 at any K (a whole (k, k)
#: matrix would be gigabytes at K in the tens of thousands)
SEPARATION_ROWS = 512


def half_separation(C: np.ndarray,
                    map_blocks: Callable[[Callable[[int], np.ndarray], Iterable[int]],
                                         Iterable[np.ndarray]] = map) -> np.ndarray:
    """(k,) half the distance from each centre to the nearest other one (inf for k=1).

    The Gram matrix is taken :data:`SEPARATION_ROWS` centres at a time; ``map_blocks``
    maps over those blocks (e.g. a thread pool's: each block's GEMM releases the GIL,
    and at large K this runs on the client between every two passes). The result does
    not depend on it. The exact value :class:`SeparationBound` carries, with one group."""
    return SeparationBound.of(C, None, map_blocks).exact


@dataclass
class SeparationBound:
    """A lower bound of :func:`half_separation` of later centres, carried from centres
    where it was computed exactly (``centres``), in O(k d + k t) per pass instead of a
    (k, k) Gram matrix.

    ``by_group[c, g]`` is half the distance from centre ``c`` to the nearest other
    centre of group ``g`` (inf if none), at ``centres``. After every centre moved by
    ``r_c`` (from ``centres``), and each group's centres by at most ``r_g``, the
    triangle inequality gives ``|c - c'| >= 2 by_group[c, g] - r_c - r_g`` for every
    ``c'`` of group ``g``, so half the nearest distance is at least
    ``min_g (by_group[c, g] - r_g / 2) - r_c / 2``. Any lower bound keeps the bounded
    pass exact (a smaller half separation only settles fewer rows). Each group's
    distances fall by that group's own largest drift: groups whose centres barely
    moved keep their neighbours' bounds, where one largest drift over all centres
    would loosen every centre's.

    Examples
    --------
    >>> C = np.array([[0., 0.], [4., 0.], [10., 0.]])
    >>> sb = SeparationBound.of(C, np.array([0, 0, 1]))
    >>> sb.exact.tolist()
    [2.0, 2.0, 3.0]
    >>> sb.bound(C + np.array([[0., 0.], [1., 0.], [0., 0.]])).tolist()   # centre 1 moved by 1
    [1.5, 1.0, 2.5]
    """

    centres: np.ndarray  # (k, d) float64: where it was computed exactly
    by_group: np.ndarray  # (k, t) float64
    groups: np.ndarray  # (k,) int64

    @classmethod
    def of(cls, C: np.ndarray, groups: np.ndarray | None = None,
           map_blocks: Callable[[Callable[[int], np.ndarray], Iterable[int]],
                                Iterable[np.ndarray]] = map) -> SeparationBound:
        """Computed exactly at ``C`` (``groups``: (k,) group of each centre, one group
        if None; ``map_blocks`` as for :func:`half_separation`)."""
        C = np.asarray(C, np.float64)
        k = len(C)
        grp = np.zeros(k, np.int64) if groups is None else np.asarray(groups, np.int64)
        t = int(grp.max()) + 1 if k else 1
        cols = np.argsort(grp, kind="stable")
        start = np.searchsorted(grp[cols], np.arange(t))
        has = np.bincount(grp, minlength=t) > 0
        by_group = np.full((k, t), np.inf)
        if k >= 2:
            sq, Cg = (C ** 2).sum(1), np.ascontiguousarray(C[cols])
            where = np.empty(k, np.int64)
            where[cols] = np.arange(k)
            parts = list(map_blocks(
                lambda lo: _nearest_by_group(C, sq, Cg, sq[cols], where, start[has], lo),
                range(0, k, SEPARATION_ROWS)))
            by_group[:, has] = np.sqrt(np.concatenate(parts)) / 2
        return cls(C, by_group, grp)

    @property
    def exact(self) -> np.ndarray:
        """(k,) half the distance to the nearest other centre, at :attr:`centres`."""
        return np.asarray(self.by_group.min(1))

    def bound(self, C_now: np.ndarray) -> np.ndarray:
        """(k,) a lower bound of ``half_separation(C_now)`` (never negative)."""
        drift = np.sqrt(((np.asarray(C_now, np.float64) - self.centres) ** 2).sum(1))
        group_drift = np.zeros(self.by_group.shape[1])
        np.maximum.at(group_drift, self.groups, drift)
        low = (self.by_group - group_drift[None, :] / 2).min(1) - drift / 2
        return np.asarray(np.maximum(low, 0.0))


def _nearest_by_group(C: np.ndarray, sq: np.ndarray, Cg: np.ndarray, sqg: np.ndarray,
                      where: np.ndarray, start: np.ndarray, lo: int) -> np.ndarray:
    """Rows ``lo:lo + SEPARATION_ROWS`` of the centres' squared distances (each centre
    to itself excluded), reduced to the smallest within each group: ``Cg``, ``sqg``
    are the centres and their squared norms in group order, ``where`` each centre's
    place in that order, ``start`` where each non-empty group begins."""
    hi = min(len(C), lo + SEPARATION_ROWS)
    G = np.maximum(sq[lo:hi, None] + sqg[None, :] - 2 * C[lo:hi] @ Cg.T, 0)
    G[np.arange(hi - lo), where[lo:hi]] = np.inf
    return np.asarray(np.minimum.reduceat(G, start, axis=1))


def bounds_margin(xsq_max: float, C: np.ndarray, dtype: np.dtype) -> float:
    """Slack (in squared distance) a bound test keeps: the rounding error of a
    ``|x|^2 - 2 x.c + |c|^2`` distance in ``dtype`` over d features is below
    ``d * eps * (|x|^2 + |c|^2)``; four times that, so that a row the bounds settle is
    one plain Lloyd would assign to the same centre."""
    d = C.shape[1]
    csq = float((np.asarray(C, np.float64) ** 2).sum(1).max()) if len(C) else 0.0
    return 4.0 * d * float(np.finfo(dtype).eps) * (xsq_max + csq)


@dataclass
class BoundsPartial:
    """What a block's bounded Lloyd iteration contributes; added with ``+``: the
    changes of the per-cluster sums, weights and ``sum w |x|^2`` (the rows that moved;
    everything, from blocks without bounds yet) and how many rows were read and
    assigned in full. ``top``/``moments``: as :class:`LloydPartial`, for a pass that
    assigns every row (from fresh bounds). ``n_pairs``: (row, group of centres) pairs
    the rows assigned in full were compared with (``n_full`` times the groups without
    the group filter); ``n_dist``: (row, centre) distances they computed (``n_full``
    times k without the group and local filters)."""

    dsums: np.ndarray  # (k, d) float64
    dcounts: np.ndarray  # (k,) float64
    dsumsq: np.ndarray  # (k,) float64
    n_rows: int
    n_read: int
    n_full: int
    xsq_max: float
    top: TopM | None = None
    moments: Moments | None = None
    n_pairs: int = 0
    n_dist: int = 0

    def __add__(self, other: BoundsPartial) -> BoundsPartial:
        top = (None if self.top is None or other.top is None
               else merge_top(self.top, other.top))
        mom = (None if self.moments is None or other.moments is None
               else self.moments + other.moments)
        return BoundsPartial(self.dsums + other.dsums, self.dcounts + other.dcounts,
                             self.dsumsq + other.dsumsq, self.n_rows + other.n_rows,
                             self.n_read + other.n_read, self.n_full + other.n_full,
                             max(self.xsq_max, other.xsq_max), top, mom,
                             self.n_pairs + other.n_pairs, self.n_dist + other.n_dist)


def bounds_block(
    X: np.ndarray,
    C: np.ndarray | Centres,
    state: BlockBounds,
    step: Drift | None,
    weights: np.ndarray | None = None,
    *,
    version: int,
    n_top: int = 0,
    moments: bool = False,
    offset: int = 0,
    scale: float | None = None,
    centres64: np.ndarray | None = None,
    groups: np.ndarray | None = None,
) -> tuple[BoundsPartial, BlockBounds, BoundsSummary]:
    """One Lloyd iteration over a block with per-row bounds (Hamerly's, Elkan's or
    Yinyang's, by ``groups``), exact: the labels are
    those of :func:`lloyd_runs` (up to float ties), but rows whose bounds prove they
    keep their centre are not read and rows that move update the per-cluster sums by
    their difference.

    Parameters
    ----------
    X : (m, d) float rows, or raw rows with ``scale`` (as :func:`lloyd_runs`)
    C : (k, d) current centres
    state : the block's bounds (:meth:`BlockBounds.fresh` for a first pass: every row
        is then assigned in full and the partial holds the whole sums)
    step : how the centres moved since ``state.version`` (None for fresh bounds)
    weights : (m,) sample weights or None
    version : the iteration of ``C`` (stored in the new bounds)
    n_top, moments : as :func:`lloyd_runs`, only for fresh bounds (exact distances)
    centres64 : C as float64, if the caller has it (C prepared as :class:`Centres`)
    groups : (k,) group of each centre (``state.lower`` holds one bound per group);
        one group if None

    Returns
    -------
    (partial, new bounds, their per-cluster summary); inputs are not modified.

    Examples
    --------
    >>> X = np.array([[0., 0.], [0., 2.], [9., 9.]])
    >>> C = np.array([[0., 1.], [9., 9.]])
    >>> p, b, _ = bounds_block(X, C, BlockBounds.fresh(3), None, version=0)
    >>> p.dsums.tolist(), p.dcounts.tolist(), b.labels.tolist()
    ([[0.0, 2.0], [9.0, 9.0]], [2.0, 1.0], [0, 0, 1])
    >>> C2 = np.array([[0., 1.], [9., 9.5]])          # centre 1 moves by 0.5
    >>> q, b2, _ = bounds_block(X, C2, b, Drift.of(C2, C, 1e-9), version=1)
    >>> q.dcounts.tolist(), q.n_full, b2.labels.tolist()   # nobody moves, nothing recomputed
    ([0.0, 0.0], 0, [0, 0, 1])
    """
    n = X.shape[0]
    X, cen = rows_and_centres(X, C, scale)
    d = X.shape[1]
    k = cen.k
    if centres64 is None:
        centres64 = cen.centres() if isinstance(C, Centres) else np.asarray(C)
    C64 = np.ascontiguousarray(centres64, dtype=np.float64)
    grp = np.zeros(k, np.int64) if groups is None else np.asarray(groups, np.int64)
    t = state.lower.shape[1]
    if step is None:
        if not (state.labels < 0).all():
            raise ValueError("bounds that refer to earlier centres need their drift")
        step = Drift(np.zeros(k), np.zeros(k), 0.0, np.zeros(t))
    w = None if weights is None else np.asarray(weights, dtype=np.float64)
    out = BlockBounds(np.empty(n, np.int32), np.empty(n), np.empty((n, t), np.float32),
                      version)
    dS, dN, dQ = np.zeros((k, d)), np.zeros(k), np.zeros(k)
    bad, n_read, n_full, x2max, n_pairs, n_dist = _assign_with_bounds(
        X, scale, cen, C64, grp, w, state, step, out, dS, dN, dQ)
    if bad >= 0:
        raise NonFiniteRow(int(bad))
    top = mom = None
    if n_top or moments:
        if (state.labels >= 0).any():
            raise ValueError("n_top and moments need fresh bounds (every row assigned)")
        rows: Any = ScaledRows(X, scale) if scale is not None else row_access(X)
        if n_top:
            w1 = np.ones(n) if w is None else w
            top = top_m(out.upper ** 2, n_top, rows, out.labels, w1, offset)
        if moments:
            mom = sparse.column_moments(X) if is_sparse(X) else column_moments(X, scale)
    umax, gapmax = _cluster_extrema(out, k)
    part = BoundsPartial(dS, dN, dQ, n, int(n_read), int(n_full), float(x2max), top, mom,
                         int(n_pairs), int(n_dist))
    return part, out, BoundsSummary(umax, gapmax, version)


def _assign_with_bounds(X: np.ndarray, scale: float | None, cen: Centres, C64: np.ndarray,
                        grp: np.ndarray, w: np.ndarray | None, state: BlockBounds,
                        step: Drift, out: BlockBounds, dS: np.ndarray, dN: np.ndarray,
                        dQ: np.ndarray) -> tuple[int, int, int, float, int, int]:
    """The rows' pass against the bounds, compiled or in numpy (the same answer): fills
    ``out`` and the sums' changes; returns (first non-finite row or -1, rows read,
    rows assigned in full, largest |x|^2 read, (row, group) pairs compared, (row,
    centre) distances computed)."""
    t = state.lower.shape[1]
    if not compiled_kernels() or is_sparse(X):
        return _bounds_numpy(X, scale, cen, C64, grp, w, state, step, out, dS, dN, dQ)
    compiled = compiled_module("bounds")
    m2r, gstart, gcols = _centres_by_group(cen, grp, t)
    return compiled.bounds_pass(
        np.ascontiguousarray(X), float(scale or 1.0), scale is not None, cen.m2t, cen.sq,
        C64, grp, np.empty(0) if w is None else w, state.labels, state.upper, state.lower,
        step.drift, step.group_drift, step.half_sep, step.margin,
        compiled_module("common").tile_rows(cen.m2t.shape[1]),
        out.labels, out.upper, out.lower, dS, dN, dQ, m2r, gstart, gcols,
        GROUP_FILTER_SHARE, cen.tie, compiled.LOCAL_FILTER,
        compiled.group_tile(cen.m2t.shape[0], cen.m2t.dtype.itemsize))


def _cluster_extrema(out: BlockBounds, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per cluster, the largest upper bound and the largest gap between a row's upper
    and lowest lower bound (what :class:`BoundsSummary` needs to settle a block)."""
    umax, gapmax = np.empty(k), np.empty(k)
    if compiled_kernels():
        compiled_module("bounds").cluster_extrema(out.labels, out.upper, out.lower, k, umax,
                                                  gapmax)
    else:
        umax[:], gapmax[:] = -np.inf, -np.inf
        np.maximum.at(umax, out.labels, out.upper)
        np.maximum.at(gapmax, out.labels, out.upper - out.lower.min(1))
    return umax, gapmax


def _centres_by_group(cen: Centres, grp: np.ndarray, t: int
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The centres' ``-2 C`` group by group for the compiled group filter: (k, d) rows
    in group order, ``start`` (t + 1,) where each group begins, and the centres'
    indices in that order (ascending within each group)."""
    cols = np.argsort(grp, kind="stable").astype(np.int64)
    start = np.searchsorted(grp[cols], np.arange(t + 1)).astype(np.int64)
    return np.ascontiguousarray(cen.m2t[:, cols].T), start, cols


def _groups_to_meet(lower: np.ndarray, d2: np.ndarray, own: np.ndarray, fresh: np.ndarray,
                    margin: float, k: int, share: float) -> np.ndarray:
    """(m, t) the groups of centres each row in doubt is compared with, as the compiled
    pass chooses them: its own centre's group (``own``) and every group whose (float32,
    decayed) lower bound does not prove all its centres farther than the row's own
    centre (``d2``: the squared distance to it), when that is at most ``share`` of the
    groups; every group for the others, for rows without bounds (``fresh``) and with
    one group or one centre a group."""
    t = lower.shape[1]
    meet = ((own[:, None] == np.arange(t)[None, :])
            | ~((lower > 0) & (d2[:, None] <= (lower * lower).astype(np.float64) - margin)))
    meet[fresh | (meet.sum(1) > share * t) | (not 1 < t < k)] = True
    return meet


def _bounds_numpy(X: np.ndarray, scale: float | None, cen: Centres, C64: np.ndarray,
                  grp: np.ndarray, w: np.ndarray | None, state: BlockBounds, step: Drift,
                  out: BlockBounds, dS: np.ndarray, dN: np.ndarray, dQ: np.ndarray
                  ) -> tuple[int, int, int, float, int, int]:
    """The numpy reference of the compiled bounded pass (same outputs, the same groups
    compared: their distances taken from a GEMM against every centre); the pass of CSR
    rows (every row in doubt compared with every centre)."""
    k, t = cen.k, state.lower.shape[1]
    a = state.labels
    fresh = a < 0
    ai = np.where(fresh, 0, a)
    ub = state.upper + step.drift[ai]
    lg = state.lower - step.group_drift[None, :]
    bnd = np.maximum(step.half_sep[ai], lg.min(1))
    ok = (bnd > 0) & (ub * ub <= bnd * bnd - step.margin) & ~fresh
    out.labels[:], out.upper[:], out.lower[:] = a, ub, lg
    read = np.flatnonzero(~ok)
    rows = X[read]
    rows = scale_rows(rows, scale) if scale is not None else rows
    csr = is_sparse(rows)
    if csr:
        d2 = sparse.winner_sqdist(rows, C64, ai[read])
    else:
        d2 = ((rows.astype(np.float64) - C64[ai[read]]) ** 2).sum(1)
    ok2 = ~fresh[read] & (bnd[read] > 0) & (d2 <= bnd[read] ** 2 - step.margin)
    out.upper[read[ok2]] = np.sqrt(d2[ok2])
    full, xf = read[~ok2], rows[np.flatnonzero(~ok2)]
    if len(full) == 0:
        return -1, len(read), 0, 0.0, 0, 0
    meet = _groups_to_meet(out.lower[full], d2[~ok2], grp[ai[full]], fresh[full],
                           step.margin, k, 0.0 if csr else GROUP_FILTER_SHARE)
    counts = (len(read), len(full), int(meet.sum()), int(meet[:, grp].sum()))
    xf64 = xf.astype(np.float64)
    if csr:
        x2 = sparse.row_norms_sq(xf, np.float64)
        D = sparse.products(xf, cen)[:, :k]
    else:
        x2 = np.einsum("ij,ij->i", xf64, xf64)  # float64, as the compiled pass keeps it
        D = np.where(meet[:, grp], (xf @ cen.m2t)[:, :k] + cen.sq[:k], np.inf)
    lab = np.argmin(D, axis=1)
    best = D[np.arange(len(full)), lab].astype(np.float64)
    if csr:
        sparse.settle_near_ties(xf, cen, sparse.exact_csq(cen), D, lab, best, x2, 0)
    else:
        settle_near_ties(xf, cen, D, lab, best, x2, 0)
    lab = lab.astype(np.int32)
    s1 = best + x2
    if not np.isfinite(s1).all():
        return int(full[np.flatnonzero(~np.isfinite(s1))[0]]), *counts[:2], 0.0, *counts[2:]
    D[np.arange(len(full)), lab] = np.inf
    out.labels[full] = lab
    out.upper[full] = np.sqrt(np.maximum(s1.astype(np.float64), 0))
    for g in range(t):  # the groups compared; the others keep their decayed bounds
        in_g = grp == g
        gmin = D[:, in_g].min(1) if in_g.any() else np.full(len(full), np.inf)
        new_g = np.sqrt(np.maximum((gmin + x2).astype(np.float64), 0))
        out.lower[full[meet[:, g]], g] = new_g[meet[:, g]]
    old = a[full]
    moved = lab != old
    wf = np.ones(len(full)) if w is None else w[full]
    wm, xm, x2m = wf[moved], xf64[np.flatnonzero(moved)], x2[moved]
    np.add.at(dN, lab[moved], wm)
    np.add.at(dQ, lab[moved], wm * x2m)
    was = old[moved] >= 0
    np.subtract.at(dN, old[moved][was], wm[was])
    np.subtract.at(dQ, old[moved][was], (wm * x2m)[was])
    if csr:  # the moved rows' stored values, summed by a sparse product
        sparse.cluster_sums(xm, lab[moved], k, wm, out=dS)
        dS -= sparse.cluster_sums(xm[np.flatnonzero(was)], old[moved][was], k, wm[was])
        return -1, *counts[:2], float(x2.max()), *counts[2:]
    np.add.at(dS, lab[moved], xm * wm[:, None])
    np.subtract.at(dS, old[moved][was], (xm * wm[:, None])[was])
    return -1, *counts[:2], float(x2.max()), *counts[2:]
