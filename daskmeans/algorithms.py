"""K-means algorithms as plain functions over a data source.

Each function takes an explicit :class:`daskmeans.engine.source.Source` and parameters, runs its
loop here, and does every pass over the data through :mod:`daskmeans.engine.passes` (one
kernel and one reduction per pass). Nothing here touches dask or an estimator:

- :func:`lloyd`: Lloyd iterations of one or more independent runs sharing each pass;
  one iteration is :func:`daskmeans.engine.passes.lloyd_runs_pass` (kernel
  :func:`daskmeans.kernels.lloyd.lloyd_runs`) followed by :func:`lloyd_update`;
- :func:`lloyd_bounded`: the same iterations for one run, with per-row bounds that
  skip the rows (and blocks) that cannot change centre;
- :func:`init_centers`: k-means++, random, a callable, or k-means|| (:func:`kmeans_parallel`);
- :func:`minibatch`: mini-batch steps (:func:`minibatch_update`) with scikit-learn's
  early stopping.

Checkpointing and progress are callbacks around the loops, not threaded through them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from .engine import passes, schedule
from .engine.mapreduce import SPLIT_EVERY
from .engine.source import NonFiniteError, Source, reads_raw_uint8
from .kernels.bisect import BisectStep, TreeSnapshot
from .kernels.bounds import (
    BlockBounds,
    BoundsPartial,
    BoundsSummary,
    Drift,
    bounds_margin,
    half_separation,
)
from .kernels.common import TopM, normalize_rows, splitmix64_uniform, sse_of_sums
from .kernels.init import kmeans_plusplus
from .kernels.lloyd import LloydPartial
from .kernels.medians import BINS, L1Centres, MedianGrid, MedianHist, MedianPartial, MedianStep

log = logging.getLogger(__name__)

#: the init samples of several ``n_init`` runs are gathered in one pass while their rows
#: together stay under this many bytes.
SAMPLES_MAX_BYTES = 256 << 20

#: ``progress(phase, done, total, detail)``: see :mod:`daskmeans._progress`.
Progress = Callable[[str, int, "int | None", str], None]


def _converged(step: int, max_iter: int, why: str) -> str:
    """The last word of a loop's bar when it stops before ``max_iter``."""
    return f"converged at iteration {step} of at most {max_iter}: {why}"


def _stop_or_go(progress: Progress, phase: str, step: int, max_iter: int, shift: float,
                n_reloc: int, tol_abs: float, fixed: str, detail: str) -> str | None:
    """After iteration ``step`` of a single run: ``"strict"`` at a fixed point (no shift,
    nothing relocated), ``"tol"`` when the shift is within the tolerance, else None;
    the progress bar is told either way (ending with why it stopped)."""
    if shift == 0 and n_reloc == 0:
        progress(phase, step, step, _converged(step, max_iter, fixed))
        return "strict"
    if shift <= tol_abs:
        progress(phase, step, step, _converged(step, max_iter, f"centre shift {shift:.3g} <= tol"))
        return "tol"
    progress(phase, step, max_iter, detail)
    return None


def _no_progress(phase: str, done: int, total: int | None, detail: str = "") -> None:
    return None


# --------------------------------------------------------------------------- Lloyd


@dataclass
class IterationRecord:
    """One entry of ``history_``."""

    iteration: int
    inertia: float  # SSE against the centres used for assignment in this iteration
    center_shift: float  # sum of squared centre moves
    n_relocated: int  # empty clusters moved to far points
    seconds: float  # of the iteration's pass (shared by the n_init runs fitted together)
    init_run: int = 0


@dataclass
class LloydRun:
    """A Lloyd run's result (``strict``: the labels reached a fixed point, so
    ``inertia`` is the final centres' without another E-step)."""

    inertia: float
    centers: np.ndarray
    n_iter: int
    history: list[IterationRecord] = field(default_factory=list)
    strict: bool = False
    #: (n,) int32 labels against ``centers``, when the run made them in this process
    labels: np.ndarray | None = None


@dataclass
class LloydResume:
    """Where a checkpointed single run resumes."""

    iteration: int
    centers: np.ndarray
    tol_abs: float
    history: list[IterationRecord]


def centers_from_sums(sums: np.ndarray, counts: np.ndarray, previous: np.ndarray) -> np.ndarray:
    """Means from per-cluster sums; a cluster with no weight keeps its previous centre."""
    out = previous.astype(np.float64).copy()
    nz = counts > 0
    out[nz] = sums[nz] / counts[nz, None]
    return out


def relocate_empty(sums: np.ndarray, counts: np.ndarray, top: TopM) -> int:
    """Move empty clusters onto the rows farthest from their centres (in place).

    As scikit-learn: each empty cluster takes the next farthest row (largest squared
    distance, ties to the smaller row index); that row's weighted value leaves the sums
    of the cluster it was assigned to. Returns how many clusters were relocated.
    """
    empty = np.flatnonzero(counts == 0)
    n = min(len(empty), len(top.sqdist))
    if len(empty) > n:
        log.warning("%d empty clusters but only %d far rows known", len(empty), n)
    for j in range(n):
        new, old, wt = empty[j], top.labels[j], top.weights[j]
        if wt <= 0:
            continue
        row = top.rows[j].astype(np.float64) * wt
        sums[old] -= row
        counts[old] -= wt
        sums[new] = row
        counts[new] = wt
    return n


def lloyd_update(part: LloydPartial, C: np.ndarray, metric: str) -> tuple[np.ndarray, float,
                                                                              int]:
    """The M-step: (new centres in C's dtype, squared shift, clusters relocated)."""
    sums, counts = part.sums.copy(), part.counts.copy()
    n_reloc = relocate_empty(sums, counts, part.top)
    C_new = centers_from_sums(sums, counts, C)
    if metric == "cosine":
        C_new = normalize_rows(C_new)
    C_new = C_new.astype(C.dtype)
    return C_new, float(((C_new.astype(np.float64) - C) ** 2).sum()), n_reloc


def lloyd(
    src: Source,
    C0s: Sequence[np.ndarray],
    *,
    max_iter: int,
    tol: float,
    final: Callable[[list[np.ndarray], list[int]], list[float]],
    runs: Sequence[int] | None = None,
    metric: str = "euclidean",
    split_every: int = SPLIT_EVERY,
    always_final: bool = False,
    resume: LloydResume | None = None,
    on_iteration: Callable[[int, np.ndarray, float, list[IterationRecord]], None] | None = None,
    progress: Progress = _no_progress,
) -> list[LloydRun]:
    """Lloyd iterations of independent runs from centres ``C0s``, all runs sharing
    every pass over the data (one GEMM and one read for all of them).

    A run stops on its own (``tol``, relative to the mean feature variance computed in
    the first pass, or a fixed point) and leaves the passes; each run's iterations are
    those it would make alone. ``final(Cs, runs)`` is the E-step against the final
    centres (as scikit-learn runs it unless the labels reached a fixed point;
    ``always_final`` runs it even then). ``resume``/``on_iteration(iteration, C,
    tol_abs, history)`` (checkpoints) need a single run.

    Returns
    -------
    list of :class:`LloydRun`, one per entry of ``C0s``

    Examples
    --------
    >>> from daskmeans.engine.source import ArraySource
    >>> X = np.array([[0., 0.], [0., 2.], [9., 9.], [9., 11.]])
    >>> run, = lloyd(ArraySource(X), [X[[0, 2]]], max_iter=10, tol=0.0,
    ...              final=lambda Cs, runs: [np.nan] * len(Cs))
    >>> run.centers.tolist(), run.inertia, run.strict
    ([[0.0, 1.0], [9.0, 10.0]], 4.0, True)
    """
    n_runs = len(C0s)
    runs = list(range(n_runs)) if runs is None else list(runs)
    if (resume is not None or on_iteration is not None) and n_runs != 1:
        raise ValueError(f"checkpoints need one run at a time, got {n_runs}")
    k = C0s[0].shape[0]
    tol_abs = 0.0 if resume is None else resume.tol_abs
    Cs = [np.asarray(C) for C in C0s] if resume is None else [resume.centers]
    histories: list[list[IterationRecord]] = (
        [[] for _ in C0s] if resume is None else [resume.history])
    start = 0 if resume is None else resume.iteration
    strict, done, inertia = [False] * n_runs, [False] * n_runs, [np.inf] * n_runs
    for it in range(start, max_iter):
        active = [i for i in range(n_runs) if not done[i]]
        if not active:
            break
        t0 = time.perf_counter()
        first = it == 0 and tol > 0
        parts = passes.lloyd_runs_pass(src, [Cs[i] for i in active], n_top=k, moments=first,
                                  split_every=split_every)
        if first:
            assert parts[0].moments is not None
            tol_abs = float(np.mean(parts[0].moments.var)) * tol
        for i, part in zip(active, parts, strict=True):
            inertia[i] = part.sse()
            C_new, shift, n_reloc = lloyd_update(part, Cs[i], metric)
            histories[i].append(IterationRecord(
                it + 1, inertia[i], shift, n_reloc, time.perf_counter() - t0, runs[i]))
            log.debug("run %d iter %d: inertia %.6g shift %.3g relocated %d", runs[i], it + 1,
                      inertia[i], shift, n_reloc)
            Cs[i] = C_new
            if shift == 0 and n_reloc == 0:
                strict[i] = done[i] = True  # labels are a fixed point: inertia is final
            elif shift <= tol_abs:
                done[i] = True
        best = min(active, key=lambda i: inertia[i])
        if all(done):
            why = "labels unchanged" if all(strict) else "centre shift <= tol"
            if n_runs > 1:
                why = f"all {n_runs} runs ({why} in the last)"
            progress("lloyd", it + 1, it + 1, _converged(it + 1, max_iter, why))
        else:
            progress("lloyd", it + 1, max_iter, f"inertia {inertia[best]:.6g}")
        if on_iteration is not None and not done[0]:
            on_iteration(it + 1, Cs[0], tol_abs, histories[0])
    again = [i for i in range(n_runs) if not strict[i] or always_final]
    if again:  # E-step against the final centres
        for i, v in zip(again, final([Cs[i] for i in again], [runs[i] for i in again]),
                        strict=True):
            inertia[i] = v
    return [LloydRun(inertia[i], Cs[i], len(histories[i]), histories[i], strict[i])
            for i in range(n_runs)]


#: Yinyang groups: one lower bound per group of centres (see :func:`centre_groups`).
GROUP_CENTRES = 8
MAX_GROUPS = 32
#: the rows' bounds (12 + 4 t bytes a row) take at most this share of the rows' bytes as
#: stored (a uint8 store's rows allow fewer groups than float32 rows).
BOUNDS_SHARE = 1 / 8


def n_groups(k: int, row_bytes: int) -> int:
    """Groups of centres for the rows' lower bounds: below 16 centres one per centre
    (Elkan's bounds), else ``k // 8``, at most 32; at most what keeps the bounds within
    :data:`BOUNDS_SHARE` of a row (at least one).

    Below 16 centres a row that is read is compared with every centre (the group
    filter is off in :mod:`daskmeans.kernels.bounds_compiled`), so all its bounds are
    fresh again: a fit reads fewer rows than with Hamerly's single bound (or with the
    group filter on, whose bounds it leaves decaying), and takes less time.

    Examples
    --------
    >>> n_groups(10, 3136), n_groups(64, 3136), n_groups(256, 3136), n_groups(256, 784)
    (10, 8, 32, 21)
    """
    budget = int((row_bytes * BOUNDS_SHARE - 12) // 4)
    want = k if k < 2 * GROUP_CENTRES else min(MAX_GROUPS, k // GROUP_CENTRES)
    return max(1, min(want, budget))


def centre_groups(C: np.ndarray, row_bytes: int = 1 << 30) -> np.ndarray:
    """(k,) group of each centre for the rows' lower bounds: :func:`n_groups` groups of
    nearby centres (k-means on the initial centres, as Yinyang K-means does); one
    centre a group (Elkan's bounds) below 16 centres. More groups leave fewer rows to
    be assigned in full over a fit, with diminishing returns beyond ``k // 8`` while
    the bounds cost more memory per row."""
    k = len(C)
    t = n_groups(k, row_bytes)
    if t <= 1:
        return np.zeros(k, np.int64)
    if t == k:
        return np.arange(k, dtype=np.int64)
    from sklearn.cluster import KMeans as _SKKMeans

    with schedule.client_blas():
        labels = _SKKMeans(t, n_init=1, random_state=0).fit(np.asarray(C, np.float64)).labels_
    return np.asarray(labels, np.int64)


def lloyd_bounded(
    src: Source,
    C0: np.ndarray,
    *,
    max_iter: int,
    tol: float,
    run: int = 0,
    metric: str = "euclidean",
    split_every: int = SPLIT_EVERY,
    resume: LloydResume | None = None,
    on_iteration: Callable[[int, np.ndarray, float, list[IterationRecord]], None] | None = None,
    progress: Progress = _no_progress,
) -> LloydRun:
    """:func:`lloyd` for one run, with bounds (Elkan's per centre below K=16, Yinyang's
    per group of centres from K=16) kept per row between iterations: the same
    iterations, labels and centres (up to float rounding), but rows whose bounds prove
    they keep their centre are not read, rows in doubt are compared only with the
    groups their bounds do not rule out, blocks whose rows are all settled are not even
    scheduled, and the per-cluster sums change by the rows that moved
    (:func:`daskmeans.engine.passes.bounds_pass`).

    The first pass assigns every row (and gives the farthest rows and, with ``tol``,
    the feature variances); a pass that leaves a cluster empty is redone in full so
    that it can be relocated as plain Lloyd does. The inertia of each iteration comes
    from the per-cluster sums (``sum_j Q_j - 2 c_j . S_j + N_j |c_j|^2``, float64).

    The E-step against the final centres is one more bounded pass: it reads only the
    rows whose bounds leave them in doubt (none after a fit whose labels stopped
    changing), where a plain E-step reads every row; the labels are then those in the
    bounds (``labels`` of the result, when the bounds are in this process) and the
    inertia comes from the sums (a plain E-step and a labels' pass are a sizeable part
    of a streamed fit).

    Examples
    --------
    >>> from daskmeans.engine.source import ArraySource
    >>> X = np.array([[0., 0.], [0., 2.], [9., 9.], [9., 11.]])
    >>> r = lloyd_bounded(ArraySource(X), X[[0, 2]], max_iter=10, tol=0.0)
    >>> r.centers.tolist(), r.n_iter, r.inertia, r.labels.tolist()
    ([[0.0, 1.0], [9.0, 10.0]], 2, 4.0, [0, 0, 1, 1])
    """
    k, d = C0.shape
    C = np.asarray(C0) if resume is None else resume.centers
    tol_abs = 0.0 if resume is None else resume.tol_abs
    history: list[IterationRecord] = [] if resume is None else resume.history
    start = 0 if resume is None else resume.iteration
    n_blocks = src.n_blocks
    groups = centre_groups(C, int(src.nbytes // max(src.n, 1)))
    t = int(groups.max()) + 1
    fresh_states = [BlockBounds.fresh(src.block_rows(i), t) for i in range(n_blocks)]
    states: list[Any] = list(fresh_states)
    summaries: list[BoundsSummary | None] = [None] * n_blocks
    centres_at: dict[int, np.ndarray] = {}
    S, N, Q = np.zeros((k, d)), np.zeros(k), np.zeros(k)
    margin = 0.0
    strict = False
    def full_pass(it: int, moments: bool) -> tuple[BoundsPartial, dict[int, Any],
                                                   dict[int, BoundsSummary]]:
        """Every row assigned from fresh bounds (with the farthest rows for relocation)."""
        return passes.bounds_pass(src, C, fresh_states, dict.fromkeys(range(n_blocks)),
                             version=it, n_top=k, groups=groups, moments=moments,
                             split_every=split_every)

    def bounded_pass(it: int) -> tuple[BoundsPartial, dict[int, Any],
                                       dict[int, BoundsSummary]]:
        """The pass of iteration ``it`` against ``C`` from the bounds: only the blocks
        whose rows may change centre are read."""
        steps: dict[int, Drift | None] = {}
        # blocks read last iteration share one; None: their labels were made against
        # these very centres (a final E-step after the labels stopped changing)
        by_version: dict[int, Drift | None] = {}
        with schedule.client_blas():
            half_sep = half_separation(C)
            for i, sm in enumerate(summaries):
                assert sm is not None
                if sm.version not in by_version:
                    then = centres_at[sm.version]
                    by_version[sm.version] = None if np.array_equal(then, C) else Drift.of(
                        C, then, margin, half_sep, groups)
                step = by_version[sm.version]
                if step is not None and not sm.settled(step):
                    steps[i] = step
        if steps:
            return passes.bounds_pass(src, C, states, steps, version=it, groups=groups,
                                 split_every=split_every)
        # every block settled: no row can move, nothing to read
        return BoundsPartial(np.zeros((k, d)), np.zeros(k), np.zeros(k), 0, 0, 0, 0.0), {}, {}

    def keep(it: int, new: dict[int, Any], sums: dict[int, BoundsSummary]) -> None:
        """The blocks read by the pass of iteration ``it`` hold bounds for ``C`` now."""
        for i, st in new.items():
            states[i] = st
        for i, sm in sums.items():
            summaries[i] = sm
        centres_at[it] = C
        live = {sm.version for sm in summaries if sm is not None}
        for v in [v for v in centres_at if v not in live]:
            del centres_at[v]

    for it in range(start, max_iter):
        t0 = time.perf_counter()
        first = it == start
        top = None
        if not first:
            part, new, sums = bounded_pass(it)
            first = bool((N + part.dcounts <= 0).any())  # an empty cluster: redo in full
        if first:
            part, new, sums = full_pass(it, moments=it == 0 and tol > 0)
            S, N, Q = part.dsums, part.dcounts, part.dsumsq
            top = part.top
            margin = bounds_margin(part.xsq_max, C, src.dtype)
            if part.moments is not None:
                tol_abs = float(np.mean(part.moments.var)) * tol
        else:
            S, N, Q = S + part.dsums, N + part.dcounts, Q + part.dsumsq
        keep(it, new, sums)
        lp = LloydPartial(S, N, sse_of_sums(S, N, Q, C),
                            top if top is not None else TopM.empty(d, src.dtype))
        C_new, shift, n_reloc = lloyd_update(lp, C, metric)
        history.append(IterationRecord(it + 1, lp.sq, shift, n_reloc,
                                       time.perf_counter() - t0, run))
        log.debug("run %d iter %d: inertia %.6g shift %.3g relocated %d, read %d of %d rows, "
                  "%d in full against %d groups of centres of %d", run, it + 1, lp.sq, shift,
                  n_reloc, part.n_read, src.n, part.n_full, part.n_pairs,
                  part.n_full * (int(groups.max()) + 1))
        C = C_new
        stop = _stop_or_go(progress, "lloyd", it + 1, max_iter, shift, n_reloc, tol_abs,
                           "labels unchanged", f"inertia {lp.sq:.6g}")
        if stop:
            strict = stop == "strict"
            break
        if on_iteration is not None:
            on_iteration(it + 1, C, tol_abs, history)
    # the E-step against the final centres (a full pass if none was made here: a fit
    # resumed after its last iteration)
    it = len(history)
    if any(sm is None for sm in summaries):
        part, new, sums = full_pass(it, moments=False)
        S, N, Q = part.dsums, part.dcounts, part.dsumsq
    else:
        part, new, sums = bounded_pass(it)
        S, N, Q = S + part.dsums, N + part.dcounts, Q + part.dsumsq
    keep(it, new, sums)
    return LloydRun(sse_of_sums(S, N, Q, C), C, len(history), history, strict,
                    passes.bounds_labels(states))


def lloyd_e_step(src: Source, Cs: list[np.ndarray], split_every: int = SPLIT_EVERY
                 ) -> list[float]:
    """Inertia of each set of centres over all rows, one pass for all (a ``final``)."""
    return [p.sse() for p in passes.lloyd_runs_pass(src, Cs, split_every=split_every)]


# --------------------------------------------------------------------------- k-medians


def median_grid(src: Source, split_every: int = SPLIT_EVERY) -> MedianGrid:
    """The levels a k-medians fit histograms (:class:`daskmeans.kernels.medians.MedianGrid`):
    a uint8 store's raw pixels are their own levels (exact medians, no pass); other
    data get a grid over each feature's range, found in one pass."""
    if reads_raw_uint8(src):
        return MedianGrid(256, scale=src.scale)
    rng = passes.range_pass(src, split_every)
    return MedianGrid.of_range(rng.lo, rng.hi)


@dataclass
class MedianSearch:
    """The digit-by-digit search for every (cluster, feature)'s lower weighted median:
    the level prefix chosen so far and the weight of the cluster's values below it.

    The lower weighted median of values ``x_i`` with weights ``w_i > 0`` (total ``W``)
    is the smallest ``x_i`` with ``sum(w_l for x_l <= x_i) >= W / 2``: with unit
    weights, the middle value (odd count) or the lower of the two middle values (even
    count). It minimises ``sum w_i |x_i - c|`` over c; when ``W / 2`` is reached
    exactly, every c up to the next value does too, and the lowest is taken. Levels
    are monotone in the values, so it lies in the first level whose cumulative weight
    reaches ``W / 2``, found here one digit at a time.
    """

    prefix: np.ndarray  # (k, d) int64
    below: np.ndarray  # (k, d) float64
    target: np.ndarray  # (k,) float64: half of each cluster's weight

    @classmethod
    def start(cls, counts: np.ndarray, d: int) -> MedianSearch:
        k = counts.shape[0]
        return cls(np.zeros((k, d), np.int64), np.zeros((k, d)), counts / 2.0)

    def choose(self, hist: np.ndarray) -> np.ndarray:
        """Take, per (cluster, feature), the first bin of ``hist`` (k, d, 16) whose
        cumulative weight (with what lies below the prefix) reaches half the
        cluster's weight; its digit joins the prefix. Returns the (k, d) digits."""
        csum = np.cumsum(hist, axis=2)
        reached = self.below[..., None] + csum >= self.target[:, None, None]
        # non-integer weights: rounding may leave every bin a hair short; the last bin
        # holding weight is then the one
        last = BINS - 1 - np.argmax((hist > 0)[..., ::-1], axis=2)
        digit = np.where(reached.any(axis=2), np.argmax(reached, axis=2), last)
        excl = np.concatenate([np.zeros((*hist.shape[:2], 1)), csum[..., :-1]], axis=2)
        self.below = self.below + np.take_along_axis(excl, digit[..., None], axis=2)[..., 0]
        self.prefix = self.prefix * BINS + digit
        return np.asarray(digit)


def relocate_empty_medians(counts: np.ndarray, hist: np.ndarray, top: TopM,
                           grid: MedianGrid) -> tuple[int, np.ndarray, np.ndarray]:
    """:func:`relocate_empty` for k-medians: each empty cluster takes the next row
    farthest (in L1 distance) from its centre, which leaves its cluster. ``counts`` and
    the first digit's histograms ``hist`` (k, d, 16) are updated in place; returns
    (clusters relocated, the moved rows' global indices, their new clusters), which the
    iteration's later passes apply to the rows' labels."""
    empty = np.flatnonzero(counts == 0)
    n = min(len(empty), len(top.sqdist))
    if len(empty) > n:
        log.warning("%d empty clusters but only %d far rows known", len(empty), n)
    cols = np.arange(hist.shape[1])
    index, label = [], []
    for j in range(n):
        new, old, wt = int(empty[j]), int(top.labels[j]), float(top.weights[j])
        if wt <= 0:
            continue
        b = (grid.level(top.rows[j:j + 1])[0] >> grid.shift(0)) & (BINS - 1)
        hist[old, cols, b] -= wt
        counts[old] -= wt
        hist[new, cols, b] += wt
        counts[new] = wt
        index.append(int(top.index[j]))
        label.append(new)
    return n, np.array(index, np.int64), np.array(label, np.int32)


def median_update(src: Source, C: np.ndarray, grid: MedianGrid, part: MedianPartial,
                  labels: Sequence[Any] | None, split_every: int = SPLIT_EVERY
                  ) -> tuple[np.ndarray, int]:
    """The M-step of k-medians: every centre to its rows' coordinate-wise lower weighted
    median (:class:`MedianSearch`), after moving empty clusters to far rows.

    ``part``: the iteration's first pass (labels and first digit); each further digit
    of the levels costs one pass (:func:`daskmeans.engine.passes.median_refine_pass`, over
    the kept ``labels``, or assigning again when None). Raw uint8 levels: the median is
    exact. Float grid: the median lies in one cell whose smallest and largest values
    ``[lo, hi]`` the last pass found; the coordinate becomes ``clip(old, lo, hi)``:
    the median itself when the cell holds one distinct value, else within the cell's
    width of it, and never further from it than the old coordinate (so the L1
    objective of the cluster cannot grow). A cluster without weight keeps its centre.

    Returns (new centres in C's dtype, clusters relocated).
    """
    d = C.shape[1]
    counts, hist = part.counts.copy(), part.hist.copy()
    n_reloc, moved_index, moved_label = relocate_empty_medians(counts, hist, part.top, grid)
    search = MedianSearch.start(counts, d)
    digit = search.choose(hist)
    last: MedianHist | None = None
    for p in range(1, grid.digits):
        track = not grid.raw and p == grid.digits - 1
        step = MedianStep(grid.shift(p), search.prefix, track, moved_index, moved_label,
                            None if labels is not None else L1Centres(C))
        last = passes.median_refine_pass(src, grid, step, labels, split_every)
        digit = search.choose(last.hist)
    has = counts > 0
    C_new = np.array(C)
    if grid.raw:
        C_new[has] = grid.value(search.prefix[has])
    else:
        assert last is not None and last.vmin is not None and last.vmax is not None
        lo = np.take_along_axis(last.vmin, digit[..., None], axis=2)[..., 0]
        hi = np.take_along_axis(last.vmax, digit[..., None], axis=2)[..., 0]
        C_new[has] = np.clip(C[has], lo[has], hi[has])
    return C_new.astype(C.dtype, copy=False), n_reloc


def kmedians(
    src: Source,
    C0: np.ndarray,
    *,
    grid: MedianGrid,
    max_iter: int,
    tol: float,
    final: Callable[[list[np.ndarray], list[int]], list[float]],
    run: int = 0,
    split_every: int = SPLIT_EVERY,
    always_final: bool = False,
    resume: LloydResume | None = None,
    on_iteration: Callable[[int, np.ndarray, float, list[IterationRecord]], None] | None = None,
    progress: Progress = _no_progress,
) -> LloydRun:
    """k-medians iterations of one run from centres ``C0``: rows to the centre nearest
    in L1 distance, centres to the coordinate-wise weighted median of their rows.

    One iteration is :func:`daskmeans.engine.passes.median_assign_pass` (assignment, the
    objective, the first digit of the medians, the farthest rows) then
    :func:`median_update` (``grid.digits - 1`` more passes: 1 for raw uint8 rows, 2 for
    float rows), each one compute. Neither step can raise the L1 objective, so the
    recorded ``inertia`` (the objective against the assigning centres) never grows.
    Stopping, ``tol`` (on the summed squared centre shift, relative to the mean
    feature variance), ``final``, ``resume`` and ``on_iteration`` are as in
    :func:`lloyd`.

    Examples
    --------
    >>> from daskmeans.engine.source import ArraySource
    >>> X = np.array([[0., 0.], [0., 2.], [1., 5.], [9., 9.], [9., 11.], [30., 9.]])
    >>> src = ArraySource(X)
    >>> run = kmedians(src, X[[0, 3]], grid=median_grid(src), max_iter=10, tol=0.0,
    ...                final=lambda Cs, runs: [np.nan])
    >>> run.centers.tolist(), run.inertia, run.n_iter
    ([[0.0, 2.0], [9.0, 9.0]], 29.0, 2)
    """
    k = C0.shape[0]
    C = np.asarray(C0) if resume is None else resume.centers
    tol_abs = 0.0 if resume is None else resume.tol_abs
    history: list[IterationRecord] = [] if resume is None else resume.history
    start = 0 if resume is None else resume.iteration
    strict, inertia = False, np.inf
    for it in range(start, max_iter):
        t0 = time.perf_counter()
        first = it == 0 and tol > 0
        part, labels = passes.median_assign_pass(src, C, grid, n_top=k, moments=first,
                                            split_every=split_every)
        if first:
            assert part.moments is not None
            tol_abs = float(np.mean(part.moments.var)) * tol
        inertia = part.dist
        C_new, n_reloc = median_update(src, C, grid, part, labels, split_every)
        shift = float(((C_new.astype(np.float64) - C) ** 2).sum())
        history.append(IterationRecord(it + 1, inertia, shift, n_reloc,
                                       time.perf_counter() - t0, run))
        log.debug("run %d iter %d: L1 objective %.6g shift %.3g relocated %d", run, it + 1,
                  inertia, shift, n_reloc)
        C = C_new
        stop = _stop_or_go(progress, "k-medians", it + 1, max_iter, shift, n_reloc, tol_abs,
                           "centres unchanged", f"L1 objective {inertia:.6g}")
        if stop:  # "strict": the labels are a fixed point, the objective is final
            strict = stop == "strict"
            break
        if on_iteration is not None:
            on_iteration(it + 1, C, tol_abs, history)
    if not strict or always_final:
        inertia = final([C], [run])[0]
    return LloydRun(inertia, C, len(history), history, strict)


def kmedians_e_step(src: Source, Cs: list[np.ndarray], split_every: int = SPLIT_EVERY
                    ) -> list[float]:
    """The L1 objective of each set of centres over all rows, one pass each."""
    return [passes.score_pass(src, C, split_every=split_every, metric="manhattan").sse
            for C in Cs]


# --------------------------------------------------------------------------- bisecting

#: rows a k-means++ or callable bisection init draws from its cluster: at most this
#: many per cluster, and all the clusters of a round (and their init runs) together
#: at most :data:`BISECT_SAMPLE_BYTES` of rows.
BISECT_SAMPLE_ROWS = 2048
BISECT_SAMPLE_BYTES = 32 << 20
#: bisect every leaf that may still be split in each round (False: only the next one,
#: scikit-learn's sequence, one bisection per round; the same tree, more passes).
BISECT_TOGETHER = True


@dataclass
class BisectingTree:
    """The tree of a bisecting K-means: node 0 is the root (all rows); a node that was
    bisected has two children (``children[i]``, left then right; ``-1`` for leaves).
    Nodes are numbered in the order they were made (children of the k-th split are
    nodes ``2k+1`` and ``2k+2``).

    Attributes
    ----------
    parent : (n_nodes,) int64, -1 for the root
    children : (n_nodes, 2) int64
    centers : (n_nodes, n_features) float64: the mean of the node's rows (weighted
        below the root; the root's is the plain mean, as scikit-learn's)
    sizes : (n_nodes,) int64 rows in the node
    weights : (n_nodes,) float64 their total sample weight
    sse : (n_nodes,) float64 weighted sum of squared distances of the rows to
        ``centers`` (the node's inertia)
    scores : (n_nodes,) float64 what ``bisecting_strategy`` ranks (the SSE, or the
        row count; 0 for the root)
    labels : (n_nodes,) int64 the cluster label of a leaf, -1 for inner nodes
    """

    parent: np.ndarray
    children: np.ndarray
    centers: np.ndarray
    sizes: np.ndarray
    weights: np.ndarray
    sse: np.ndarray
    scores: np.ndarray
    labels: np.ndarray

    ARRAYS: ClassVar[tuple[str, ...]] = ("parent", "children", "centers", "sizes", "weights",
                                        "sse", "scores", "labels")

    def leaves(self) -> list[int]:
        """Leaf nodes left to right (scikit-learn's ``iter_leaves`` order)."""
        out, stack = [], [0]
        while stack:
            i = stack.pop()
            if self.children[i, 0] < 0:
                out.append(i)
            else:
                stack += [int(self.children[i, 1]), int(self.children[i, 0])]
        return out

    def snapshot(self, slot: np.ndarray | None = None) -> TreeSnapshot:
        """What tasks need to send rows down the tree (``slot``: per node, the 2-means
        it takes part in, -1 for none)."""
        n = self.parent.shape[0]
        return TreeSnapshot(self.children[:, 0].copy(), self.children[:, 1].copy(),
                              np.asarray(self.centers, np.float64),
                              np.full(n, -1, np.int64) if slot is None else slot)

    @classmethod
    def empty(cls, d: int) -> BisectingTree:
        return cls(np.empty(0, np.int64), np.empty((0, 2), np.int64), np.empty((0, d)),
                   np.empty(0, np.int64), np.empty(0), np.empty(0), np.empty(0),
                   np.empty(0, np.int64))

    def add(self, parent: int, center: np.ndarray, size: int, weight: float, sse: float,
            score: float) -> int:
        """Append a node (a child of ``parent``, or the root); returns its number."""
        i = self.parent.shape[0]
        self.parent = np.append(self.parent, parent)
        self.children = np.vstack([self.children, [[-1, -1]]])
        self.centers = np.vstack([self.centers, np.asarray(center, np.float64)[None]])
        self.sizes = np.append(self.sizes, size)
        self.weights = np.append(self.weights, weight)
        self.sse = np.append(self.sse, sse)
        self.scores = np.append(self.scores, score)
        self.labels = np.append(self.labels, -1)
        if parent >= 0:
            self.children[parent, int(self.children[parent, 0] >= 0)] = i
        return i


@dataclass
class Bisection:
    """The best of a cluster's ``n_init`` 2-means: the children's centres, row counts,
    weights and SSE, and how it went."""

    centers: np.ndarray  # (2, d) float64
    sizes: np.ndarray  # (2,) int64
    weights: np.ndarray  # (2,) float64
    sse: np.ndarray  # (2,) float64
    n_iter: int
    run: int


@dataclass
class BisectSpec:
    """How to bisect (scikit-learn's BisectingKMeans parameters)."""

    init: Any  # "random", "k-means++" or a callable
    n_init: int
    max_iter: int
    tol: float  # absolute, on the summed squared shift of the two centres
    strategy: str  # "biggest_inertia" or "largest_cluster"
    split_every: int = SPLIT_EVERY


def _node_seed(key: int, branch: int) -> int:
    """A seed for a node's child or init run from the node's own: it depends on the
    path from the root only, not on the order bisections run in."""
    u = splitmix64_uniform(np.array([branch], np.int64), key)[0]
    return int(u * (1 << 62))


def _bisect_inits(src: Source, tree: BisectingTree, leaves: list[int], seeds: np.ndarray,
                  spec: BisectSpec, snap_slot: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, list[Any] | None]:
    """Initial centres (a, r, 2, d) of the round's 2-means: one pass drawing, per
    cluster and init run, 2 rows with probability ~ weight, without replacement
    ("random", as scikit-learn), or a uniform sample of the cluster's rows for
    k-means++ (weighted) or a callable. Also (a,) whether each cluster has 2 rows of
    positive weight (one that has not cannot be bisected), and the blocks' nodes in the
    tree, kept for the round's later passes (see :func:`daskmeans.engine.passes.bisect_pass`)."""
    a, r = seeds.shape
    d = src.d
    if isinstance(spec.init, str) and spec.init == "random":
        m, weighted = 2, True
    else:
        per = BISECT_SAMPLE_BYTES // max(1, a * r * d * src.dtype.itemsize)
        m, weighted = int(max(2, min(BISECT_SAMPLE_ROWS, per))), False
    step = BisectStep(tree.snapshot(snap_slot), np.zeros((a, r, 2, d)),
                        np.zeros((a, r), bool), seeds, sample=m, weighted=weighted)
    part, nodes = passes.bisect_pass(src, step, spec.split_every, keep=True)
    C = np.zeros((a, r, 2, d))
    ok = np.ones(a, bool)
    for s in range(a):
        for j in range(r):
            t = part.top[s][j]
            usable = np.isfinite(t.sqdist) & (t.weights > 0)
            if usable.sum() < 2:
                ok[s] = False
                continue
            rows, w = np.asarray(t.rows[usable], np.float64), t.weights[usable]
            if weighted:  # the two largest keys: two weighted draws without replacement
                C[s, j] = rows[:2]
            elif callable(spec.init):
                out = np.asarray(spec.init(t.rows[usable], 2,
                                           random_state=np.random.RandomState(
                                               int(seeds[s, j]) % (1 << 32))))
                if out.shape != (2, d):
                    raise ValueError(f"init callable must return shape (2, {d}) for a "
                                     f"bisection, got {out.shape}")
                C[s, j] = out
            else:
                C[s, j] = kmeans_plusplus(rows, 2, np.random.default_rng(int(seeds[s, j])),
                                            weights=w)
    return C, ok, nodes


def bisect_round(src: Source, tree: BisectingTree, leaves: list[int], keys: dict[int, int],
                 spec: BisectSpec) -> tuple[dict[int, Bisection], int]:
    """Bisect the clusters ``leaves`` of ``tree`` together: each pass of the round
    (the init draws, every Lloyd iteration, the final E-step) serves all their 2-means
    and ``n_init`` runs at once, the rows of each cluster picked out of every block by
    following the tree (a masked pass: no copy or gather of the rows). Each 2-means
    stops on its own (labels fixed, or its squared centre shift <= ``spec.tol``) and
    empty children take the farthest rows, as in :func:`lloyd`.

    Returns ({leaf: its best Bisection}, passes made); a leaf without two rows of
    positive weight gets none."""
    a, r = len(leaves), spec.n_init
    slot = np.full(tree.parent.shape[0], -1, np.int64)
    slot[leaves] = np.arange(a)
    seeds = np.array([[_node_seed(keys[node], 2 + j) for j in range(r)] for node in leaves],
                     np.int64)
    C, ok, nodes = _bisect_inits(src, tree, leaves, seeds, spec, slot)
    n_passes = 1
    active = np.repeat(ok[:, None], r, axis=1)
    strict = ~active
    n_iter = np.zeros((a, r), np.int64)
    stats: dict[tuple[int, int], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    snap = tree.snapshot(slot)
    for _ in range(spec.max_iter):
        if not active.any():
            break
        part, _ = passes.bisect_pass(src, BisectStep(snap, C.copy(), active.copy(), seeds),
                                spec.split_every, nodes=nodes)
        n_passes += 1
        for s, j in zip(*np.nonzero(active), strict=True):
            sums, weight = part.sums[s, j].copy(), part.weight[s, j].copy()
            n_reloc = relocate_empty(sums, weight, part.top[s][j])
            new = centers_from_sums(sums, weight, C[s, j])
            shift = float(((new - C[s, j]) ** 2).sum())
            n_iter[s, j] += 1
            stats[s, j] = (part.sse[s, j], part.count[s, j], part.weight[s, j])
            if shift == 0 and n_reloc == 0:
                strict[s, j], active[s, j] = True, False  # labels fixed: stats are final
            elif shift <= spec.tol:
                active[s, j] = False
            C[s, j] = new
    again = ~strict
    if again.any():  # E-step against the final centres (scikit-learn's last labels)
        part, _ = passes.bisect_pass(src, BisectStep(snap, C.copy(), again, seeds),
                                spec.split_every, nodes=nodes)
        n_passes += 1
        for s, j in zip(*np.nonzero(again), strict=True):
            stats[s, j] = (part.sse[s, j], part.count[s, j], part.weight[s, j])
    out = {}
    for s, node in enumerate(leaves):
        if not ok[s]:
            continue
        best = None
        for j in range(r):
            inertia = float(stats[s, j][0].sum())
            if best is None or inertia < best[0] * (1 - 1e-6):  # as scikit-learn
                best = (inertia, j)
        assert best is not None
        j = best[1]
        sse, count, weight = stats[s, j]
        out[node] = Bisection(C[s, j].copy(), count.copy(), weight.copy(), sse.copy(),
                              int(n_iter[s, j]), j)
    return out, n_passes


def bisecting(src: Source, n_clusters: int, spec: BisectSpec, seed: int,
              progress: Progress = _no_progress) -> tuple[BisectingTree, list[dict[str, Any]]]:
    """Bisecting K-means with scikit-learn's semantics, distributed.

    Starting from one cluster (all rows), ``n_clusters - 1`` times the leaf with the
    largest score (its SSE for ``"biggest_inertia"``, its row count for
    ``"largest_cluster"``; the first such leaf left to right) is split in two by the
    best of ``n_init`` 2-means. Since a leaf's bisection depends only on its rows and
    on a seed drawn from its path in the tree, the leaves that may still be split (the
    ``n_clusters - 1 - splits`` best-scored ones) are bisected together in rounds
    (:func:`bisect_round`: the rows of all of them in each pass); the splits are then
    applied in scikit-learn's order, and a round runs again when the next leaf to split
    has no bisection yet. A bisection computed for a leaf that is never chosen is
    dropped (its passes were shared with ones that were needed).

    Returns the tree (leaf labels set left to right) and one record per round.
    """
    root = passes.root_pass(src, spec.split_every)
    c = root.sum / max(root.n, 1)
    sse = max(root.wsq - 2 * float(c @ root.wsum) + root.weight * float(c @ c), 0.0)
    tree = BisectingTree.empty(src.d)
    tree.add(-1, c, root.n, root.weight, sse, 0.0)
    keys = {0: seed}
    done: dict[int, Bisection] = {}
    history: list[dict[str, Any]] = []
    splits = 0
    while splits < n_clusters - 1:
        leaves = tree.leaves()
        order = sorted(range(len(leaves)), key=lambda p: (-tree.scores[leaves[p]], p))
        ranked = [leaves[p] for p in order]  # by score, then left to right
        node = ranked[0]
        if node not in done:
            t0 = time.perf_counter()
            budget = n_clusters - 1 - splits
            todo = [node] + [i for i in ranked[1:budget] if BISECT_TOGETHER
                             and i not in done and tree.sizes[i] >= 2]
            got, n_passes = bisect_round(src, tree, todo, keys, spec)
            if node not in got:
                raise ValueError(
                    f"cannot bisect a cluster of {int(tree.sizes[node])} rows with fewer "
                    f"than 2 of positive weight: n_clusters={n_clusters} is too large for "
                    "these data")
            done.update(got)
            history.append({"round": len(history) + 1, "bisections": len(todo),
                            "passes": n_passes,
                            "n_iter": int(max(b.n_iter for b in got.values())),
                            "seconds": time.perf_counter() - t0})
            log.debug("bisecting round %d: %d clusters, %d passes", len(history), len(todo),
                      n_passes)
            continue
        b = done.pop(node)
        scores = b.sse if spec.strategy == "biggest_inertia" else b.sizes.astype(np.float64)
        for side in (0, 1):
            child = tree.add(node, b.centers[side], int(b.sizes[side]),
                             float(b.weights[side]), float(b.sse[side]), float(scores[side]))
            keys[child] = _node_seed(keys[node], side)
        splits += 1
        progress("bisecting", splits, n_clusters - 1, f"{len(tree.leaves())} clusters")
    for label, leaf in enumerate(tree.leaves()):
        tree.labels[leaf] = label
    return tree, history


# --------------------------------------------------------------------------- init


def check_finite_rows(rows: np.ndarray, index: np.ndarray) -> None:
    """Raise :class:`NonFiniteError` naming the first row of a gathered sample that
    holds NaN or infinity (``index``: the rows' global indices)."""
    ok = np.isfinite(rows).all(axis=1)
    if not ok.all():
        raise NonFiniteError(f"X contains NaN or infinity in row {int(index[~ok][0])}; "
                             "clean or impute the data first")


def take_samples(src: Source, idxs: Sequence[np.ndarray]
                 ) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """The rows (and weights) at each sorted index array: the union of consecutive
    arrays gathered in one pass while it stays under :data:`SAMPLES_MAX_BYTES`; each
    gets exactly the rows it would get alone."""
    row_bytes = src.d * src.dtype.itemsize
    out: list[tuple[np.ndarray, np.ndarray | None]] = []
    group: list[np.ndarray] = []
    for i, idx in enumerate(idxs):
        group.append(idx)
        rows_next = sum(g.size for g in group) + (idxs[i + 1].size if i + 1 < len(idxs) else 0)
        if i + 1 < len(idxs) and rows_next * row_bytes <= SAMPLES_MAX_BYTES:
            continue  # the next run's sample still fits in this gather
        union = group[0] if len(group) == 1 else np.unique(np.concatenate(group))
        rows, sw = passes.take_rows(src, union)
        check_finite_rows(rows, union)
        for g in group:
            if g is union:
                out.append((rows, sw))
            else:
                pos = np.searchsorted(union, g)
                out.append((rows[pos], None if sw is None else sw[pos]))
        group = []
    return out


@dataclass
class InitSpec:
    """How to initialise: ``init`` ("k-means++", "random", "k-means||", an array or a
    callable ``init(sample, k, random_state=RandomState)``) and its sizes."""

    init: Any
    n_clusters: int
    sample_size: int
    metric: str = "euclidean"
    oversampling_factor: float = 2.0
    init_rounds: int = 5
    split_every: int = SPLIT_EVERY


def init_centers(src: Source, spec: InitSpec, rngs: Sequence[np.random.Generator],
                 seeds: Sequence[int]) -> list[np.ndarray]:
    """Initial centres of independent runs (one generator and seed each).

    Inits that start from a uniform sample of rows (k-means++, random, a callable)
    gather every run's sample in one pass (see :data:`SAMPLES_MAX_BYTES`); each run
    gets the rows and random draws it would get alone.
    """
    k, n, init = spec.n_clusters, src.n, spec.init
    if hasattr(init, "__array__") and not isinstance(init, str):
        C = np.array(init, dtype=src.dtype)
        if C.shape != (k, src.d):
            raise ValueError(
                f"init array must have shape (n_clusters, n_features)=({k}, {src.d}), "
                f"got {C.shape}")
        if not np.isfinite(C).all():
            raise ValueError("init array contains NaN or infinity")
        Cs = [C.copy() for _ in rngs]
    elif isinstance(init, str) and init == "k-means||":
        Cs = [kmeans_parallel(src, k, rng, seed, oversampling_factor=spec.oversampling_factor,
                              rounds=spec.init_rounds, split_every=spec.split_every,
                              metric=spec.metric)
              for rng, seed in zip(rngs, seeds, strict=True)]
    else:
        idxs = [np.sort(rng.choice(n, size=spec.sample_size, replace=False)) for rng in rngs]
        Cs = [_from_sample(spec, sample, sw, rng, seed, src.d)
              for (sample, sw), rng, seed in zip(take_samples(src, idxs), rngs, seeds,
                                                 strict=True)]
    if spec.metric == "cosine":
        Cs = [normalize_rows(C) for C in Cs]
    return [C.astype(src.dtype, copy=False) for C in Cs]


def _from_sample(spec: InitSpec, sample: np.ndarray, sw: np.ndarray | None,
                 rng: np.random.Generator, seed: int, d: int) -> np.ndarray:
    """Initial centres drawn from a sample of rows (k-means++, random, callable)."""
    k, init = spec.n_clusters, spec.init
    if callable(init):
        C = np.asarray(init(sample, k, random_state=np.random.RandomState(seed)),
                       dtype=sample.dtype)
        if C.shape != (k, d):
            raise ValueError(f"init callable must return shape ({k}, {d}), got {C.shape}")
        return C
    if init == "random":
        p = None if sw is None else sw / sw.sum()
        return sample[np.sort(rng.choice(sample.shape[0], size=k, replace=False, p=p))]
    return kmeans_plusplus(sample, k, rng, weights=sw, metric=spec.metric)


def kmeans_parallel(src: Source, k: int, rng: np.random.Generator, seed: int, *,
                    oversampling_factor: float = 2.0, rounds: int = 5,
                    split_every: int = SPLIT_EVERY, metric: str = "euclidean") -> np.ndarray:
    """k-means|| (Bahmani et al. 2012): ``rounds`` passes of oversampling
    ``oversampling_factor * k`` candidates each, then weighted k-means++ on the
    candidates weighted by the rows they attract (one more pass). With
    ``metric="manhattan"`` every distance is L1 (not squared)."""
    n = src.n
    ell = oversampling_factor * k
    first = np.array([int(rng.integers(n))])
    C, _ = passes.take_rows(src, first)
    check_finite_rows(C, first)
    for r in range(rounds):
        ov = passes.oversample_pass(src, C, seed=seed * 1000 + r, m=int(2 * ell) + 16,
                               split_every=split_every, metric=metric)
        if ov.cost <= 0:
            break
        C = np.vstack([C, ov.rows[ov.key > ov.cost / ell]])
        log.debug("k-means|| round %d: cost %.6g, %d candidates", r, ov.cost, len(C))
    if C.shape[0] < k:  # tiny or degenerate data: top up with random rows
        rows, _ = passes.take_rows(src, np.sort(rng.choice(n, size=k, replace=False)))
        C = np.vstack([C, rows])
    weights = passes.count_pass(src, C, split_every=split_every, metric=metric)
    weights = np.maximum(weights, 1e-12)  # unattracting candidates stay drawable last
    return kmeans_plusplus(C, k, rng, weights=weights, metric=metric)


# --------------------------------------------------------------------------- mini-batch


@dataclass
class MiniBatchState:
    """Everything a mini-batch fit carries from step to step (checkpointed as is)."""

    centers: np.ndarray
    counts: np.ndarray
    step: int = 0
    n_since_last_reassign: int = 0
    ewa_inertia: float | None = None
    ewa_inertia_min: float | None = None
    no_improvement: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def start(cls, C: np.ndarray) -> MiniBatchState:
        return cls(C, np.zeros(C.shape[0], dtype=np.float64))


@dataclass
class MiniBatchSpec:
    """Mini-batch parameters (scikit-learn's semantics)."""

    batch: int
    n_steps: int
    reassignment_ratio: float = 0.01
    max_no_improvement: int | None = 10
    tol_abs: float = 0.0
    metric: str = "euclidean"
    split_every: int = SPLIT_EVERY


def random_reassign(state: MiniBatchState, batch: int) -> bool:
    """As scikit-learn: every ``10 * n_clusters`` rows, or while a centre is unseen."""
    state.n_since_last_reassign += batch
    k = state.centers.shape[0]
    if (state.counts == 0).any() or state.n_since_last_reassign >= 10 * k:
        state.n_since_last_reassign = 0
        return True
    return False


def reservoir_size(state: MiniBatchState, ratio: float, reassign: bool, batch: int,
                   weighted: bool) -> int:
    """How many reservoir rows a step needs for reassignment (0 if none can be).

    After a step a centre is reassigned when its count is below ``ratio * max``;
    counts only grow and the max grows by at most the batch's total weight, so only
    centres with ``count < ratio * (max + batch)`` can qualify. The sample is ordered
    by key, so drawing that many rows instead of ``k`` gives the same reassignments
    (a sample of ``k`` rows is a noticeable part of a step at large K).
    """
    if not reassign or ratio <= 0:
        return 0
    k = m = state.centers.shape[0]
    if not weighted:  # with weights the batch's total weight is not known beforehand
        m = int(np.count_nonzero(state.counts < ratio * (state.counts.max() + batch)))
    return min(m, k, batch)


def minibatch_update(state: MiniBatchState, part: LloydPartial, reassign: bool, batch: int,
                     ratio: float, metric: str) -> tuple[float, int]:
    """Apply one batch's partial sums with scikit-learn's count-based learning rate
    ``c <- (c N_c + S_c) / (N_c + n_c)`` and reassign low-count centres; returns
    (squared centre shift, centres reassigned)."""
    C = state.centers
    C64 = C.astype(np.float64)
    new = C64.copy()
    wsum, counts = part.counts, state.counts
    nz = wsum > 0
    new[nz] = (C64[nz] * counts[nz, None] + part.sums[nz]) / (counts[nz] + wsum[nz])[:, None]
    counts[nz] += wsum[nz]
    n_re = 0
    if reassign and ratio > 0 and part.sample is not None:
        to_re = counts < ratio * counts.max()
        if to_re.sum() > 0.5 * batch:  # at most half a batch of centres at once
            to_re[np.argsort(counts)[int(0.5 * batch):]] = False
        n_re = min(int(to_re.sum()), len(part.sample.rows))
        if n_re:
            idx = np.flatnonzero(to_re)[:n_re]
            new[idx] = part.sample.rows[:n_re]
            # reset their counts, but not so low that they are reassigned at once
            keep = counts[~to_re]
            counts[idx] = keep.min() if keep.size else 0.0
    if metric == "cosine":
        new = normalize_rows(new)
    new = new.astype(C.dtype)
    state.centers = new
    return float(((new.astype(np.float64) - C64) ** 2).sum()), n_re


def minibatch_converged(state: MiniBatchState, spec: MiniBatchSpec, n: int, shift: float,
                        batch_inertia: float, batch: int) -> str | None:
    """scikit-learn's early stopping on the EWA batch inertia or the centre shift: the
    reason to stop, or None."""
    batch_inertia /= batch
    if state.step <= 1:
        return None
    if state.ewa_inertia is None:
        state.ewa_inertia = batch_inertia
    else:
        alpha = min(batch * 2.0 / (n + 1), 1.0)
        state.ewa_inertia = state.ewa_inertia * (1 - alpha) + batch_inertia * alpha
    if spec.tol_abs > 0.0 and shift <= spec.tol_abs:
        why = f"converged: centre shift {shift:.3g} <= tol {spec.tol_abs:.3g}"
        log.info(why)
        return why
    if state.ewa_inertia_min is None or state.ewa_inertia < state.ewa_inertia_min:
        state.no_improvement = 0
        state.ewa_inertia_min = state.ewa_inertia
    else:
        state.no_improvement += 1
    m = spec.max_no_improvement
    if m is not None and state.no_improvement >= m:
        why = f"converged: smoothed batch inertia not improved in {m} steps"
        log.info(why)
        return why
    return None


def minibatch_step(src: Source, state: MiniBatchState, spec: MiniBatchSpec, *,
                   rows: np.ndarray | None, blocks: Sequence[int] | None, seed: int,
                   stopping: bool = True) -> str | None:
    """One mini-batch step (one pass over the batch's rows or blocks, one compute);
    appends to ``state.history``; returns why early stopping says stop, or None."""
    t0 = time.perf_counter()
    b = len(rows) if rows is not None else int(sum(src.block_rows(i) for i in blocks or ()))
    reassign = random_reassign(state, b)
    part = passes.batch_pass(
        src, state.centers, rows=rows, blocks=blocks, seed=seed,
        n_sample=reservoir_size(state, spec.reassignment_ratio, reassign, b,
                                src.weights is not None),
        split_every=spec.split_every)
    batch_inertia = part.sse()
    shift, n_re = minibatch_update(state, part, reassign, b, spec.reassignment_ratio,
                                   spec.metric)
    state.step += 1
    stop = minibatch_converged(state, spec, src.n, shift, batch_inertia, b) if stopping else None
    state.history.append({
        "step": state.step, "batch_inertia": batch_inertia,
        "ewa_inertia": state.ewa_inertia if stopping else None, "center_shift": shift,
        "n_reassigned": n_re, "batch_rows": b, "seconds": time.perf_counter() - t0,
        "phase": "mini-batch",
    })
    return stop


def minibatch(src: Source, state: MiniBatchState, spec: MiniBatchSpec, *,
              rng: np.random.Generator, seed0: int, mode: str, per_step: int,
              order: list[int],
              on_step: Callable[[MiniBatchState, list[int]], None] | None = None,
              progress: Progress = _no_progress) -> MiniBatchState:
    """Mini-batch steps from ``state.step`` to ``spec.n_steps`` or early stopping.

    ``mode="rows"``: each step draws ``spec.batch`` i.i.d. rows; ``"chunks"``: each
    step takes ``per_step`` whole blocks in a fresh random order every epoch
    (``order``: the rest of the current epoch). ``on_step(state, order)`` runs after
    every step (checkpoints).
    """
    n_blocks = src.n_blocks
    for step in range(state.step, spec.n_steps):
        rows = blocks = None
        if mode == "rows":
            rows = np.sort(rng.integers(0, src.n, size=spec.batch))
        else:
            if len(order) < per_step:
                order += rng.permutation(n_blocks).tolist()
            blocks, order[:] = order[:per_step], order[per_step:]
        stop = minibatch_step(src, state, spec, rows=rows, blocks=blocks, seed=seed0 + step + 1)
        h = state.history[-1]
        if stop:  # the bar ends here, full, saying why
            progress("mini-batch", state.step, state.step,
                     f"{stop} (step {state.step} of at most {spec.n_steps})")
            break
        progress("mini-batch", state.step, spec.n_steps,
                 f"batch inertia {h['batch_inertia'] / h['batch_rows']:.4g}/row")
        if on_step is not None:
            on_step(state, order)
    return state
