"""k-medians (``metric="manhattan"``): L1 distances and assignment, and the
per-digit histograms of the values' levels from which the medians are read.

The L1 distances and the histograms run compiled
(:mod:`daskmeans.kernels.medians_compiled`) when numba is installed; the numpy code here
is the reference (the same bits).

Rows go to the centre nearest in L1 distance, and each centre moves to the
coordinate-wise weighted median of its rows. Medians come from histograms of the
values' *levels* (integers), one 16-bin digit per pass: raw uint8 rows are their own
level (256 levels, 2 passes, exact); float values fall on a grid of 4096 cells per
feature (3 passes, then the centre is placed inside the cell that holds the median, see
:class:`MedianGrid`). A pass's partial result is a (k, d, 16) float64 histogram,
whatever the block size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import common
from .common import (
    Moments,
    NonFiniteRow,
    TopM,
    column_moments,
    compiled_kernels,
    compiled_module,
    merge_top,
    scale_rows,
    top_m,
)

#: bits of a level's digit: each median pass counts 16 bins per cluster and feature.
DIGIT_BITS = 4
BINS = 1 << DIGIT_BITS
#: cells of the float grid per feature (three 16-bin passes).
FLOAT_LEVELS = BINS ** 3
#: target size in elements of one (rows, k) step of the numpy L1 reference.
_L1_STEP = 1 << 16


class L1Centres:
    """Centres prepared for L1 distances: (d, k) float64, transposed (a pass prepares
    them once and shares them with every task, as :class:`Centres`)."""

    def __init__(self, C: np.ndarray) -> None:
        C = np.asarray(C)
        self.k, self.d = C.shape
        self.ct = np.ascontiguousarray(C.T, dtype=np.float64)

    @property
    def nbytes(self) -> int:
        return int(self.ct.nbytes)

    @classmethod
    def of(cls, C: np.ndarray | L1Centres) -> L1Centres:
        return C if isinstance(C, L1Centres) else cls(C)


def _l1_dist_numpy(X: np.ndarray, scale: float | None, ct: np.ndarray, D: np.ndarray) -> None:
    """The numpy reference of the compiled L1 distances: features added in order, in
    float64, so that both give the same bits."""
    m, k = D.shape
    step = max(1, _L1_STEP // max(k, 1))
    for s in range(0, m, step):
        xb = X[s:s + step]
        xb = (scale_rows(xb, scale) if scale is not None else xb).astype(np.float64)
        Db = D[s:s + step]
        Db[:] = 0.0
        tmp = np.empty_like(Db)
        for t in range(xb.shape[1]):
            np.subtract(xb[:, t, None], ct[t], out=tmp)
            np.abs(tmp, out=tmp)
            Db += tmp


def l1_distances(X: np.ndarray, C: np.ndarray | L1Centres, scale: float | None = None
                 ) -> np.ndarray:
    """(n, k) L1 (Manhattan) distances in float64, the features added in order.

    Parameters
    ----------
    X : (n, d) float rows, or raw integer rows standing for ``float32(X) * scale``
    C : (k, d) centres

    Examples
    --------
    >>> l1_distances(np.array([[0., 0.], [3., 1.]]), np.array([[0., 1.], [4., 1.]]))
    array([[1., 5.],
           [3., 1.]])
    """
    X = X.reshape(X.shape[0], -1)
    cen = L1Centres.of(C)
    D = np.empty((X.shape[0], cen.k))
    if compiled_kernels():
        compiled_module("medians").l1_dist(np.ascontiguousarray(X), float(scale or 1.0),
                                           scale is not None, cen.ct, D)
    else:
        _l1_dist_numpy(X, scale, cen.ct, D)
    return D


def l1_assign(X: np.ndarray, C: np.ndarray | L1Centres, scale: float | None = None
              ) -> tuple[np.ndarray, np.ndarray]:
    """Nearest centre in L1 distance (ties: the lower index) of every row.

    Rows are taken :data:`~daskmeans.kernels.common.DIST_BLOCK_BYTES` of distances at a
    time.

    Returns
    -------
    labels : (n,) int32
    dist : (n,) float64 L1 distance to that centre

    Raises :class:`NonFiniteRow` for a row whose distance is NaN or infinite.

    Examples
    --------
    >>> l1_assign(np.array([[0., 0.], [3., 1.]]), np.array([[0., 1.], [4., 1.]]))
    (array([0, 1], dtype=int32), array([1., 1.]))
    """
    X = X.reshape(X.shape[0], -1)
    cen = L1Centres.of(C)
    n = X.shape[0]
    labels = np.empty(n, np.int32)
    dist = np.empty(n)
    step = max(1, common.DIST_BLOCK_BYTES // max(1, 8 * cen.k))
    for s in range(0, n, step):
        D = l1_distances(X[s:s + step], cen, scale)
        lab = np.argmin(D, axis=1)
        best = D[np.arange(D.shape[0]), lab]
        if not np.isfinite(best).all():
            raise NonFiniteRow(s + int(np.flatnonzero(~np.isfinite(best))[0]))
        labels[s:s + step], dist[s:s + step] = lab, best
    return labels, dist


@dataclass
class MedianGrid:
    """How values map to integer *levels* whose histograms give the medians.

    Raw uint8 rows (a store's pixels, ``scale`` set) are their own level: 256 levels,
    two 16-bin digits, and the median level is exact (its value is ``float32(level) *
    scale``, as the rows are scaled). Float values fall on a grid of
    :data:`FLOAT_LEVELS` cells per feature between the feature's smallest and largest
    value: ``level = clip(floor((x - lo) * inv), 0, levels - 1)`` (monotone in x), three
    digits; the median is then known to lie in one cell, whose smallest and largest
    values are tracked in the last pass.
    """

    levels: int
    lo: np.ndarray | None = None  # (d,) float64; None: raw levels
    inv: np.ndarray | None = None  # (d,) float64 cells per unit (0 for a constant feature)
    scale: float | None = None  # raw rows: the value of level l is float32(l) * scale

    @property
    def raw(self) -> bool:
        return self.lo is None

    @property
    def digits(self) -> int:
        return max(1, (int(self.levels) - 1).bit_length() + DIGIT_BITS - 1) // DIGIT_BITS

    def shift(self, p: int) -> int:
        """Bit position of digit ``p`` (0: the most significant)."""
        return DIGIT_BITS * (self.digits - 1 - p)

    @classmethod
    def of_range(cls, lo: np.ndarray, hi: np.ndarray, levels: int = FLOAT_LEVELS
                 ) -> MedianGrid:
        """The float grid over ``[lo, hi]`` per feature."""
        lo, hi = np.asarray(lo, np.float64), np.asarray(hi, np.float64)
        width = hi - lo
        inv = np.zeros_like(lo)
        np.divide(levels, width, out=inv, where=width > 0)
        return cls(levels, lo, inv)

    def level(self, rows: np.ndarray) -> np.ndarray:
        """(m, d) int64 levels of rows (raw rows for the raw grid, float otherwise)."""
        rows = rows.reshape(rows.shape[0], -1)
        if self.lo is None:
            return rows.astype(np.int64)
        assert self.inv is not None
        u = np.floor((rows.astype(np.float64) - self.lo) * self.inv)
        return np.clip(u, 0, self.levels - 1).astype(np.int64)

    def value(self, level: np.ndarray) -> np.ndarray:
        """The float32 value of raw levels (the raw grid only)."""
        return scale_rows(np.asarray(level, np.float32), float(self.scale or 1.0))

    def centre_level(self, C: np.ndarray) -> np.ndarray:
        """(k, d) int64 levels of centres (float values; raw grid: the nearest level,
        whose :meth:`value` a raw grid's medians are)."""
        if self.lo is None:
            lev = np.rint(np.asarray(C, np.float64) / float(self.scale or 1.0))
            return np.clip(lev, 0, self.levels - 1).astype(np.int64)
        return self.level(np.asarray(C, np.float64))


@dataclass
class ValueRange:
    """Per-feature smallest and largest value of one or more blocks; added with ``+``."""

    lo: np.ndarray  # (d,) float64
    hi: np.ndarray  # (d,) float64

    def __add__(self, other: ValueRange) -> ValueRange:
        return ValueRange(np.minimum(self.lo, other.lo), np.maximum(self.hi, other.hi))


def value_range(X: np.ndarray) -> ValueRange:
    """Per-feature min and max of a block; :class:`NonFiniteRow` for a row holding NaN
    or infinity."""
    ok = np.isfinite(X).all(axis=1)
    if not ok.all():
        raise NonFiniteRow(int(np.flatnonzero(~ok)[0]))
    if X.shape[0] == 0:
        return ValueRange(np.full(X.shape[1], np.inf), np.full(X.shape[1], -np.inf))
    return ValueRange(X.min(axis=0).astype(np.float64), X.max(axis=0).astype(np.float64))


@dataclass
class MedianHist:
    """One median pass's histograms, added with ``+``: the weight per (cluster,
    feature, digit) of the values still in the running and, in a float grid's last
    pass, the smallest and largest of those values per bin."""

    hist: np.ndarray  # (k, d, BINS) float64
    vmin: np.ndarray | None = None  # (k, d, BINS) X's dtype, +inf where no value
    vmax: np.ndarray | None = None  # (k, d, BINS) X's dtype, -inf where no value

    @property
    def nbytes(self) -> int:
        return int(sum(a.nbytes for a in (self.hist, self.vmin, self.vmax) if a is not None))

    def __add__(self, other: MedianHist) -> MedianHist:
        if self.vmin is None or other.vmin is None:
            return MedianHist(self.hist + other.hist)
        assert self.vmax is not None and other.vmax is not None
        return MedianHist(self.hist + other.hist, np.minimum(self.vmin, other.vmin),
                          np.maximum(self.vmax, other.vmax))


def median_hist(X: np.ndarray, labels: np.ndarray, weights: np.ndarray | None, k: int,
                grid: MedianGrid, shift: int, prefix: np.ndarray | None = None,
                track: bool = False) -> MedianHist:
    """Histogram of one block's levels per (cluster, feature): each row's weight goes
    to ``hist[label, feature, (level >> shift) & 15]``, for the values whose level has
    ``level >> (shift + 4) == prefix[label, feature]`` (all values if ``prefix`` is
    None). Rows of weight 0 are left out (they never hold a median). ``track``: also
    the smallest and largest such value per bin.

    Parameters
    ----------
    X : (m, d) rows as the grid takes them (raw uint8 for the raw grid)
    labels : (m,) int cluster of each row
    weights : (m,) or None
    prefix : (k, d) int64 or None

    Examples
    --------
    >>> g = MedianGrid(256, scale=1.0)                    # raw levels 0..255
    >>> X = np.array([[1], [17], [18], [200]], np.uint8)
    >>> h = median_hist(X, np.array([0, 0, 0, 1]), None, 2, g, shift=4)
    >>> h.hist[0, 0, :2].tolist(), float(h.hist[1, 0, 12])   # high digits 0, 1, 1; 12
    ([1.0, 2.0], 1.0)
    >>> median_hist(X, np.array([0, 0, 0, 1]), None, 2, g, shift=0,
    ...             prefix=np.array([[1], [12]])).hist[0, 0, :3].tolist()
    [0.0, 1.0, 1.0]
    """
    X = X.reshape(X.shape[0], -1)
    m, d = X.shape
    hist = np.zeros((k, d, BINS))
    vmin = vmax = None
    if track:
        vmin = np.full((k, d, BINS), np.inf, X.dtype)
        vmax = np.full((k, d, BINS), -np.inf, X.dtype)
    labels = np.asarray(labels)
    w = None if weights is None else np.asarray(weights, np.float64)
    if compiled_kernels():
        empty_f = np.empty(0)
        compiled_module("medians").median_hist(
            np.ascontiguousarray(X), grid.raw,
            empty_f if grid.lo is None else grid.lo, empty_f if grid.inv is None else grid.inv,
            int(grid.levels), np.ascontiguousarray(labels),
            empty_f if w is None else w, int(shift),
            np.empty((0, 0), np.int64) if prefix is None else np.ascontiguousarray(prefix,
                                                                                     np.int64),
            hist, np.empty((0, 0, 0), X.dtype) if vmin is None else vmin,
            np.empty((0, 0, 0), X.dtype) if vmax is None else vmax)
        return MedianHist(hist, vmin, vmax)
    keep = np.ones(m, bool) if w is None else w > 0
    order = np.argsort(labels, kind="stable")
    order = order[keep[order]]
    cuts = np.searchsorted(labels[order], np.arange(k + 1))
    base = np.arange(d) * BINS
    step = max(1, common.SUM_BLOCK // max(1, d // 64))
    for j in np.flatnonzero(np.diff(cuts)):
        rows = order[cuts[j]:cuts[j + 1]]
        flat = hist[j].reshape(-1)
        for s in range(0, rows.shape[0], step):
            r = rows[s:s + step]
            xb = X[r]
            lev = grid.level(xb)
            idx = base + ((lev >> shift) & (BINS - 1))
            wt = np.broadcast_to((np.ones(len(r)) if w is None else w[r])[:, None], idx.shape)
            if prefix is None:
                sel = np.ones(idx.shape, bool)
            else:
                sel = (lev >> (shift + DIGIT_BITS)) == prefix[j]
            flat += np.bincount(idx[sel], wt[sel], minlength=d * BINS)
            if vmin is not None and vmax is not None:
                np.minimum.at(vmin[j].reshape(-1), idx[sel], xb[sel])
                np.maximum.at(vmax[j].reshape(-1), idx[sel], xb[sel])
    return MedianHist(hist, vmin, vmax)


def median_hist_ahead(X: np.ndarray, labels: np.ndarray, weights: np.ndarray | None, k: int,
                      grid: MedianGrid, shift: int, guess: np.ndarray) -> np.ndarray:
    """(k, d, 3, 16) float64: :func:`median_hist`'s histogram at ``shift`` for the
    prefixes ``guess - 1``, ``guess`` and ``guess + 1`` of each (cluster, feature), in
    one scan (compiled when it can): the next digit's histogram counted ahead, before
    the prefix is known, for each of the three prefixes it will most likely be.

    >>> g = MedianGrid(256, scale=1.0)
    >>> X = np.array([[1], [17], [18], [40]], np.uint8)            # high digits 0, 1, 1, 2
    >>> h = median_hist_ahead(X, np.zeros(4, int), None, 1, g, 0, np.array([[1]]))
    >>> h[0, 0, 0, 1], h[0, 0, 1, 1:3].tolist(), h[0, 0, 2, 8]    # prefixes 0, 1, 2
    (np.float64(1.0), [1.0, 1.0], np.float64(1.0))
    """
    X = X.reshape(X.shape[0], -1)
    guess = np.ascontiguousarray(guess, np.int64)
    hist = np.zeros((k, X.shape[1], 3, BINS))
    if compiled_kernels():
        w = None if weights is None else np.asarray(weights, np.float64)
        empty_f = np.empty(0)
        compiled_module("medians").median_hist_ahead(
            np.ascontiguousarray(X), grid.raw,
            empty_f if grid.lo is None else grid.lo, empty_f if grid.inv is None else grid.inv,
            int(grid.levels), np.ascontiguousarray(labels), empty_f if w is None else w,
            int(shift), guess, hist)
        return hist
    for c in range(3):
        hist[:, :, c] = median_hist(X, labels, weights, k, grid, shift, guess - 1 + c).hist
    return hist


@dataclass
class MedianPartial:
    """What one block contributes to a k-medians iteration's first pass; added with
    ``+``: per-cluster weights, the weighted L1 objective against the assigning
    centres, the first digit's histograms, the rows farthest from their centres (for
    empty clusters) and, optionally, column moments (for the tolerance)."""

    counts: np.ndarray  # (k,) float64
    dist: float
    hist: np.ndarray  # (k, d, BINS) float64
    top: TopM
    moments: Moments | None = None
    n_rows: int = 0
    #: (k, d, 3, 16): the second digit's histograms counted ahead
    #: (:func:`median_hist_ahead`), or None
    ahead: np.ndarray | None = None

    def __add__(self, other: MedianPartial) -> MedianPartial:
        mom = (None if self.moments is None or other.moments is None
               else self.moments + other.moments)
        ahead = (None if self.ahead is None or other.ahead is None
                 else self.ahead + other.ahead)
        return MedianPartial(self.counts + other.counts, self.dist + other.dist,
                             self.hist + other.hist, merge_top(self.top, other.top), mom,
                             self.n_rows + other.n_rows, ahead)


def median_assign(
    X: np.ndarray, C: np.ndarray | L1Centres, weights: np.ndarray | None = None, *,
    grid: MedianGrid, offset: int = 0, n_top: int = 0, moments: bool = False,
    scale: float | None = None, guess: np.ndarray | None = None,
) -> tuple[MedianPartial, np.ndarray]:
    """The first pass of a k-medians iteration over one block: assign every row to
    its nearest centre in L1 distance and histogram the first digit of its levels.

    Parameters
    ----------
    X : (m, d) float rows, or raw uint8 rows with ``scale`` (then ``grid`` is raw)
    C : (k, d) centres
    weights : (m,) or None
    grid : the levels (:class:`MedianGrid`)
    offset : global index of row 0 (farthest rows)
    n_top : how many farthest rows (by L1 distance) to keep
    moments : also the column moments
    guess : (k, d) int64 or None: also the second digit's histograms for the first
        digits ``guess - 1``, ``guess``, ``guess + 1`` (:func:`median_hist_ahead`)

    Returns
    -------
    (partial, labels): the block's :class:`MedianPartial` and its (m,) int32 labels

    Examples
    --------
    >>> X = np.array([[0, 0], [0, 2], [9, 9], [9, 7]], np.uint8)
    >>> p, lab = median_assign(X, np.array([[0., 1.], [9., 8.]]), grid=MedianGrid(256,
    ...                        scale=1.0), scale=1.0)
    >>> lab.tolist(), p.counts.tolist(), p.dist, float(p.hist[1, 0, 0])
    ([0, 0, 1, 1], [2.0, 2.0], 4.0, 2.0)
    """
    X = X.reshape(X.shape[0], -1)
    cen = L1Centres.of(C)
    labels, dist = l1_assign(X, cen, scale)
    w = None if weights is None else np.asarray(weights, np.float64)
    counts = np.bincount(labels, weights=w, minlength=cen.k).astype(np.float64)
    total = float(dist.sum() if w is None else dist @ w)
    hist = median_hist(X, labels, w, cen.k, grid, grid.shift(0)).hist
    w1 = np.ones(X.shape[0]) if w is None else w
    top = top_m(dist, n_top, X, labels, w1, offset)  # raw rows stay raw (their levels)
    mom = column_moments(X, scale) if moments else None
    ahead = (None if guess is None or grid.digits < 2 else
             median_hist_ahead(X, labels, w, cen.k, grid, grid.shift(1), guess))
    return MedianPartial(counts, total, hist, top, mom, X.shape[0], ahead), labels


@dataclass
class MedianStep:
    """What a later median pass needs: the digit to count (``shift``), the level
    prefix chosen so far per (cluster, feature), whether to track the values' range
    (a float grid's last pass), the rows moved to empty clusters (global index -> new
    cluster) and, when the block's labels were not kept, the centres to recompute
    them."""

    shift: int
    prefix: np.ndarray  # (k, d) int64
    track: bool
    moved_index: np.ndarray  # (r,) int64
    moved_label: np.ndarray  # (r,) int32
    centres: L1Centres | None = None

    @property
    def nbytes(self) -> int:
        return int(self.prefix.nbytes + (0 if self.centres is None else self.centres.nbytes))


def median_refine(
    X: np.ndarray, weights: np.ndarray | None, step: MedianStep, *, grid: MedianGrid,
    labels: np.ndarray | None = None, offset: int = 0, scale: float | None = None,
) -> MedianHist:
    """A later pass of a k-medians iteration over one block: the histogram of the next
    digit of the levels that match the prefix chosen so far.

    ``labels``: the block's labels from the iteration's first pass (kept where the
    block is), or None to assign the rows again with ``step.centres`` (same labels);
    rows in ``step.moved_index`` count for their new cluster. Inputs are not modified.
    """
    X = X.reshape(X.shape[0], -1)
    if labels is None:
        assert step.centres is not None
        labels = l1_assign(X, step.centres, scale)[0]
    m = X.shape[0]
    sel = (step.moved_index >= offset) & (step.moved_index < offset + m)
    if sel.any():
        labels = np.array(labels)
        labels[step.moved_index[sel] - offset] = step.moved_label[sel]
    k = step.prefix.shape[0]
    return median_hist(X, labels, weights, k, grid, step.shift, step.prefix, step.track)
