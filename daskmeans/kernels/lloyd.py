"""A block's part of a Lloyd iteration: every row to its nearest centre, the
per-cluster sums, weights and SSE, the farthest rows (empty clusters), a weighted
sample (mini-batch reassignment) and column moments (the tolerance), for one run or
several independent runs at once (``n_init``).

The fused loop runs compiled (:mod:`daskmeans.kernels.lloyd_compiled`) when numba is
installed; :func:`_lloyd_numpy` is the reference the tests compare it with.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from . import common, sparse
from .common import (
    Centres,
    Moments,
    NonFiniteRow,
    ScaledRows,
    TopM,
    cluster_sums,
    column_moments,
    compiled_kernels,
    compiled_module,
    is_sparse,
    merge_top,
    row_access,
    row_index,
    rows_and_centres,
    scaled_block,
    sse_of_sums,
    top_m,
    weighted_sample,
    winner_sqdist,
)


@dataclass
class LloydPartial:
    """What one chunk contributes to a Lloyd iteration; added with ``+``.

    ``sums``/``counts`` are weighted per-cluster sums and weights; ``sq`` is the
    weighted SSE against the assigning centres, from those sums and each cluster's
    ``sum w |x|^2`` (:func:`sse_of_sums`: exact, where the per-row float32 distances
    are not).
    """

    sums: np.ndarray  # (k, d) float64
    counts: np.ndarray  # (k,) float64
    sq: float
    top: TopM
    moments: Moments | None = None
    n_rows: int = 0
    sample: TopM | None = None  # weighted random rows (key in ``sqdist``), mini-batch

    def __add__(self, other: LloydPartial) -> LloydPartial:
        top = merge_top(self.top, other.top)
        moments = None
        if self.moments is not None and other.moments is not None:
            moments = self.moments + other.moments
        sample = None
        if self.sample is not None and other.sample is not None:
            sample = merge_top(self.sample, other.sample)
        return LloydPartial(
            self.sums + other.sums,
            self.counts + other.counts,
            self.sq + other.sq,
            top,
            moments,
            self.n_rows + other.n_rows,
            sample,
        )

    def sse(self, C: np.ndarray | None = None) -> float:
        """Weighted sum of squared distances to the centres the rows were assigned to."""
        return self.sq




def lloyd_partial(X: np.ndarray, C: np.ndarray | Centres, weights: np.ndarray | None = None,
                  **options: Any) -> LloydPartial:
    """Assign a chunk to ``C`` and return its per-cluster sums, counts and SSE parts:
    :func:`lloyd_runs` for one run, taking the same keyword ``options``.

    Parameters
    ----------
    X : (n, d) float array, one chunk; with ``scale``, raw (n, ...) values (uint8
        pixels) standing for ``float32(X) * scale``; or a CSR matrix of the chunk's
        rows (:mod:`daskmeans.kernels.sparse`)
    C : (k, d) current centres (cast to X's dtype for the GEMM)
    weights : (n,) sample weights or None
    xsq : (n,) the rows' ``|x|^2`` in X's dtype if known (in-memory data: computed once
        per fit instead of every pass)
    offset : global index of the chunk's first row, or of every row (tie-breaks, keys)
    n_top : how many farthest rows to keep for empty-cluster relocation
    moments : also return column moments (for the tolerance)
    n_sample : also return that many weighted random rows (mini-batch reassignment)
    sample_seed : seed of those draws
    scale : X holds raw values: each block of rows is scaled into a reused float32
        buffer just before use, so a chunk streamed from a store never exists as a
        whole float32 array (results equal those on the scaled chunk)

    Examples
    --------
    >>> p = lloyd_partial(np.array([[0., 0.], [0., 2.], [9., 9.]]),
    ...                   np.array([[0., 1.], [9., 9.]]))
    >>> p.sums.tolist(), p.counts.tolist(), p.sse(np.array([[0., 1.], [9., 9.]]))
    ([[0.0, 2.0], [9.0, 9.0]], [2.0, 1.0], 2.0)
    >>> q = lloyd_partial(np.array([[0, 0], [0, 2], [9, 9]], dtype=np.uint8),
    ...                   np.array([[0., 1.], [9., 9.]]), scale=1.0)
    >>> q.sums.tolist() == p.sums.tolist()
    True
    """
    return lloyd_runs(X, C, weights, runs=1, **options).parts[0]


@dataclass
class LloydRuns:
    """One :class:`LloydPartial` per independent fit of a pass; added run by run."""

    parts: tuple[LloydPartial, ...]

    def __add__(self, other: LloydRuns) -> LloydRuns:
        return LloydRuns(tuple(a + b for a, b in zip(self.parts, other.parts, strict=True)))




def lloyd_runs(
    X: np.ndarray,
    C: np.ndarray | Centres,
    weights: np.ndarray | None = None,
    *,
    runs: int = 1,
    xsq: np.ndarray | None = None,
    offset: int | np.ndarray = 0,
    n_top: int = 0,
    moments: bool = False,
    n_sample: int = 0,
    sample_seed: int = 0,
    scale: float | None = None,
) -> LloydRuns:
    """:func:`lloyd_partial` for ``runs`` independent fits at once (``n_init``).

    ``C`` stacks the runs' centres, (runs * k, d), run ``r`` owning rows ``r*k`` to
    ``(r+1)*k``. One GEMM computes every run's distances and one sparse product every
    run's sums, so the chunk is read once for all runs (far cheaper than a pass per
    run while the GEMM is not the cost, at small k). Each
    run's partial equals what :func:`lloyd_partial` gives for its centres alone (the
    same GEMM columns and the same float32 sums order), other arguments as there.

    Examples
    --------
    >>> X = np.array([[0., 0.], [0., 2.], [9., 9.]])
    >>> a, b = lloyd_runs(X, np.array([[0., 1.], [9., 9.], [0., 0.], [1., 1.]]), runs=2).parts
    >>> a.counts.tolist(), b.counts.tolist(), b.sse()
    ([2.0, 1.0], [1.0, 2.0], 130.0)
    """
    n = X.shape[0]
    X, cen = rows_and_centres(X, C, scale)
    dtype, d = cen.dtype, X.shape[1]
    kk = cen.k
    if runs < 1 or kk % runs:
        raise ValueError(f"runs must divide the {kk} stacked centres, got {runs!r}")
    k = kk // runs
    w = None if weights is None else np.asarray(weights, dtype=np.float64)
    labels = np.empty((n, runs), dtype=np.int32)  # index of the stacked centre
    sqdist = np.empty((n, runs), dtype=dtype)
    sums = np.zeros((kk, d), dtype=np.float64)
    if is_sparse(X):  # CSR rows: the sparse kernels (compiled or numpy)
        counts, sse = sparse.lloyd_stats(X, cen, xsq, w, runs, k, labels, sqdist, sums)
        mom = sparse.column_moments(X) if moments else None
    elif compiled_kernels():
        counts = np.zeros(kk, dtype=np.float64)
        sumsq = np.zeros(kk, dtype=np.float64)  # per cluster, sum w |x|^2
        _lloyd_compiled(X, scale, cen, xsq, w, runs, k, labels, sqdist, sums, counts, sumsq)
        mom = column_moments(X, scale) if moments else None
        each = [slice(r * k, (r + 1) * k) for r in range(runs)]
        C64, csq = cen.centres64(), cen.row_sq64()  # the centres the rows went to
        sse = [sse_of_sums(sums[j], counts[j], sumsq[j], C64[j], csq[j]) for j in each]
    else:
        mom, counts, sse = _lloyd_numpy(X, scale, cen, cen.centres64(), xsq, w, runs, k,
                                        moments, labels, sqdist, sums)
    w1 = np.ones(n) if w is None else w
    rows: Any = ScaledRows(X, scale) if scale is not None else row_access(X)
    # CSR rows keep their farthest rows as CSR (a few stored values, where dense rows of
    # a wide vocabulary weigh megabytes in every partial); relocation densifies the few
    # it takes
    far = X if is_sparse(X) else rows
    index = row_index(offset, np.arange(n)) if n_sample else None
    parts = []
    for r in range(runs):
        lab_r = labels[:, r] - np.int32(r * k) if r else labels[:, 0]
        sample = None
        if index is not None:
            sample = weighted_sample(rows, lab_r, w1, index, n_sample, sample_seed)
        parts.append(LloydPartial(
            sums[r * k : (r + 1) * k], counts[r * k : (r + 1) * k], sse[r],
            top_m(sqdist[:, r], n_top, far, lab_r, w1, offset), mom, n, sample))
    return LloydRuns(tuple(parts))

def _lloyd_numpy(X: np.ndarray, scale: float | None, cen: Centres, C64: np.ndarray,
                 xsq: np.ndarray | None, w: np.ndarray | None, runs: int, k: int,
                 moments: bool, labels: np.ndarray, sqdist: np.ndarray, sums: np.ndarray
                 ) -> tuple[Moments | None, np.ndarray, list[float]]:
    """The numpy reference of the fused loop (see :func:`lloyd_runs`): fills
    ``labels``, ``sqdist`` and ``sums`` (outputs); returns (moments, counts, each run's
    SSE against ``C64``, the float64 centres, summed from float64 differences: the
    sums here are float32 products, not exact enough for :func:`sse_of_sums`)."""
    n, d = X.shape
    raw = scale is not None
    dtype, kk = cen.dtype, cen.k
    step, buf = cen.buffer(n, dtype.itemsize)
    # small k: sum each block while it is cached;
    # large k: the (k, d) product per block is a large temporary, which dask workers
    # (MALLOC_TRIM_THRESHOLD_) mmap afresh every time: sum over SUM_BLOCK rows instead.
    # Decided by one run's k, so that every run sums its rows as it would alone.
    fused = k * d * dtype.itemsize <= common.FUSED_SUMS_MAX_BYTES
    # raw rows are scaled into a reused float32 block just before use: one block of
    # `step` rows while sums are fused (cache-resident: cheaper than scaling larger
    # blocks, and than reading float32 rows), else SUM_BLOCK
    sum_block = common.SUM_BLOCK
    outer = (step if fused else max(step, sum_block // step * step)) if raw else max(n, 1)
    mom = None
    sse = [0.0] * runs
    for s0 in range(0, n, outer):
        xo = scaled_block(X[s0 : s0 + outer], scale) if scale is not None else X
        wo = None if w is None else w[s0 : s0 + outer]
        for s in range(0, xo.shape[0], step):
            xb, g = xo[s : s + step], s0 + s
            lab, sq, _ = cen.nearest(xb, buf, None if xsq is None else xsq[g : g + step], runs)
            labels[g : g + step] = lab.reshape(-1, runs)
            sqdist[g : g + step] = sq.reshape(-1, runs)
            for r, lab_r in enumerate(lab.reshape(-1, runs).T):
                e = winner_sqdist(xb, C64, lab_r)
                sse[r] += float(e.sum() if wo is None else e @ wo[s : s + step])
            if fused:
                cluster_sums(xb, lab, kk, None if wo is None else wo[s : s + step], out=sums)
        if not fused:
            lab_o = labels[s0 : s0 + outer]
            cluster_sums(xo, lab_o[:, 0] if runs == 1 else lab_o, kk, wo, out=sums)
        if moments and raw:
            mom = Moments.of(xo) if mom is None else mom + Moments.of(xo)
    if moments and not raw:
        mom = Moments.of(X)
    if moments and mom is None:  # no rows
        mom = Moments.of(np.empty((0, d), dtype))
    counts = np.bincount(labels.ravel(), weights=None if w is None else np.repeat(w, runs),
                         minlength=kk).astype(np.float64)
    return mom, counts, sse




def _lloyd_compiled(X: np.ndarray, scale: float | None, cen: Centres, xsq: np.ndarray | None,
                    w: np.ndarray | None, runs: int, k: int, labels: np.ndarray,
                    sqdist: np.ndarray, sums: np.ndarray, counts: np.ndarray,
                    sumsq: np.ndarray) -> None:
    """The fused loop in compiled code (:mod:`daskmeans.kernels.lloyd_compiled`)."""
    compiled = compiled_module("lloyd")
    X = np.ascontiguousarray(X)
    xs = np.empty(0) if xsq is None else np.ascontiguousarray(xsq, np.float64)
    ww = np.empty(0) if w is None else np.ascontiguousarray(w)
    tile = compiled_module("common").tile_rows(cen.m2t.shape[1])
    if scale is not None:
        bad = compiled.lloyd_raw(X, float(scale), cen.m2t, cen.sq, xs, ww, runs, k, tile,
                                 labels, sqdist, sums, counts, sumsq, cen.tie)
    else:
        bad = compiled.lloyd_float(X, cen.m2t, cen.sq, xs, ww, runs, k, tile, labels,
                                   sqdist, sums, counts, sumsq, cen.tie)
    if bad >= 0:
        raise NonFiniteRow(int(bad))
