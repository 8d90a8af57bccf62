"""Lloyd's iterations of one run with distance bounds kept per row between iterations
(Elkan's per centre below K=16, Yinyang's per group of centres from K=16): the same
iterations, labels and centres as :mod:`~daskmeans.algorithms.lloyd` (up to float
rounding), reading only the rows, and scheduling only the blocks, whose bounds leave
them in doubt.

:class:`DistanceBounds` holds the bounds' state between passes (each block's per-row
bounds, a summary per block, the centres each summary was made against);
:class:`ClusterSums` the per-cluster sums the bounded passes change by the rows that
moved.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..engine import reductions, schedule
from ..engine.source import Source
from ..kernels.bounds import (
    BlockBounds,
    BoundsPartial,
    BoundsSummary,
    Drift,
    SeparationBound,
    bounds_margin,
)
from ..kernels.common import TopM, sse_of_sums
from ..kernels.lloyd import LloydPartial
from .common import (
    FitSettings,
    IterationRecord,
    OnIteration,
    Progress,
    ResumeState,
    RunResult,
    lloyd_update,
    no_progress,
    stop_or_go,
)

log = logging.getLogger(__name__)

#: Yinyang groups: one lower bound per group of centres (see :func:`centre_groups`).
GROUP_CENTRES = 8
MAX_GROUPS = 256
#: the rows' bounds (12 + 4 t bytes a row) take at most this share of the rows' bytes as
#: stored, whatever K (a uint8 store's rows allow fewer groups than float32 rows).
BOUNDS_SHARE = 1 / 4
#: a full pass returns at most this many farthest rows per block (the rows empty
#: clusters move to), whatever K: O(FAR_ROWS d) per block and per merge instead of
#: O(K d); a pass leaving more clusters empty is redone asking for as many
FAR_ROWS = 64
#: the centres' half separation (a (k, k) Gram matrix, as costly as a pass's distances
#: of k rows) is carried from the last exact one as a lower bound
#: (:class:`~daskmeans.kernels.bounds.SeparationBound`, O(k d) a pass), and computed
#: anew once the carried bound has lost this share of the exact one's sum...
SEPARATION_LOSS = 0.3
#: ... while the Gram matrix costs at most this share of a full pass (``k <= share *
#: n``): beyond, the first exact one is carried for the whole fit, as the Yinyang
#: groups' bounds do most of the settling at such K and a tighter separation would
#: not repay its Gram matrix
SEPARATION_COST = 0.05


def n_groups(k: int, row_bytes: int) -> int:
    """Groups of centres for the rows' lower bounds: below 16 centres one per centre
    (Elkan's bounds), else ``k // 8``, at most :data:`MAX_GROUPS`; at most what keeps
    the bounds within :data:`BOUNDS_SHARE` of a row's stored bytes (at least one: rows
    of under 64 bytes keep 16 bytes of bounds). Smaller groups move less (a group's
    bounds fall by its farthest-moving centre), so more of them leave fewer rows in
    doubt.

    Below 16 centres a row that is read is compared with every centre (the group
    filter is off in :mod:`daskmeans.kernels.bounds_compiled`), so all its bounds are
    fresh again: a fit reads fewer rows than with Hamerly's single bound (or with the
    group filter on, whose bounds it leaves decaying), and takes less time.

    Examples
    --------
    >>> n_groups(10, 3136), n_groups(64, 3136), n_groups(256, 3136), n_groups(1024, 784)
    (10, 8, 32, 46)
    >>> n_groups(16384, 512), n_groups(16384, 8)   # 128 float32 features; 2
    (29, 1)
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




@dataclass
class ClusterSums:
    """A run's per-cluster sums ``S`` (k, d), weights ``N`` and squared norms ``Q``
    (float64): set by a full pass, changed by the rows a bounded pass moved."""

    S: np.ndarray
    N: np.ndarray
    Q: np.ndarray

    @classmethod
    def zeros(cls, k: int, d: int) -> ClusterSums:
        return cls(np.zeros((k, d)), np.zeros(k), np.zeros(k))

    def reset(self, part: BoundsPartial) -> None:
        self.S, self.N, self.Q = part.dsums, part.dcounts, part.dsumsq

    def add(self, part: BoundsPartial) -> None:
        self.S, self.N, self.Q = self.S + part.dsums, self.N + part.dcounts, self.Q + part.dsumsq

    def empties(self, part: BoundsPartial) -> bool:
        """Whether adding ``part`` would leave a cluster without weight."""
        return bool((self.N + part.dcounts <= 0).any())

    def sse(self, C: np.ndarray) -> float:
        """The inertia against ``C`` (``sum_j Q_j - 2 c_j . S_j + N_j |c_j|^2``)."""
        return sse_of_sums(self.S, self.N, self.Q, C)


#: what a pass over the bounds gives: the partial sums, then the new bounds and
#: summaries of the blocks it read
BoundsPassResult = tuple[BoundsPartial, dict[int, Any], dict[int, BoundsSummary]]


class DistanceBounds:
    """The distance bounds of one run's rows between iterations, where the blocks are.

    Each block has its rows' bounds (``states``) and a summary (``summaries``) made
    against the centres of the iteration that last read it (``centres_at[version]``);
    ``margin`` is the rounding slack the bounds allow for float32 distances.
    """

    def __init__(self, src: Source, C: np.ndarray, split_every: int) -> None:
        self.src, self.split_every = src, split_every
        self.groups = centre_groups(C, int(src.nbytes // max(src.n, 1)))
        t = int(self.groups.max()) + 1
        self.fresh = [BlockBounds.fresh(src.block_rows(i), t) for i in range(src.n_blocks)]
        self.states: list[Any] = list(self.fresh)
        self.summaries: list[BoundsSummary | None] = [None] * src.n_blocks
        self.centres_at: dict[int, np.ndarray] = {}
        self.margin = 0.0
        self.separation: SeparationBound | None = None

    @property
    def complete(self) -> bool:
        """Whether every block has bounds (a fit resumed after its last iteration has
        none)."""
        return all(sm is not None for sm in self.summaries)

    def full_pass(self, C: np.ndarray, it: int, moments: bool) -> BoundsPassResult:
        """Every row assigned from fresh bounds, with the farthest rows for relocation:
        :data:`FAR_ROWS` of them (scikit-learn's relocation takes one per empty
        cluster), the pass redone for as many as the clusters it left empty if more
        (rare: most passes leave none)."""
        k = C.shape[0]
        fresh_steps = dict.fromkeys(range(len(self.fresh)))
        n_top = min(k, FAR_ROWS)
        while True:
            result = reductions.bounds_pass(self.src, C, self.fresh, fresh_steps,
                                            version=it, n_top=n_top, groups=self.groups,
                                            moments=moments, split_every=self.split_every)
            n_empty = int((result[0].dcounts == 0).sum())
            if n_empty <= n_top:
                return result
            n_top = n_empty

    def bounded_pass(self, C: np.ndarray, it: int) -> BoundsPassResult:
        """The pass of iteration ``it`` against ``C`` from the bounds: only the blocks
        whose rows may change centre are read."""
        steps = self._unsettled(C)
        if steps:
            return reductions.bounds_pass(self.src, C, self.states, steps, version=it,
                                          groups=self.groups, split_every=self.split_every)
        # every block settled: no row can move, nothing to read
        k, d = C.shape
        return BoundsPartial(np.zeros((k, d)), np.zeros(k), np.zeros(k), 0, 0, 0, 0.0), {}, {}

    def _unsettled(self, C: np.ndarray) -> dict[int, Drift | None]:
        """The centres' drift since each block was read, for the blocks whose rows may
        change centre."""
        steps: dict[int, Drift | None] = {}
        # blocks read last iteration share one; None: their labels were made against
        # these very centres (a final E-step after the labels stopped changing)
        by_version: dict[int, Drift | None] = {}
        with schedule.client_blas():
            half_sep = self.half_separation(C)
            for i, sm in enumerate(self.summaries):
                assert sm is not None
                if sm.version not in by_version:
                    then = self.centres_at[sm.version]
                    by_version[sm.version] = None if np.array_equal(then, C) else Drift.of(
                        C, then, self.margin, half_sep, self.groups)
                step = by_version[sm.version]
                if step is not None and not sm.settled(step):
                    steps[i] = step
        return steps

    def half_separation(self, C: np.ndarray) -> np.ndarray:
        """(k,) a lower bound of half the distance from each centre of ``C`` to the
        nearest other one: carried from the last exact one while it keeps
        ``1 - SEPARATION_LOSS`` of its sum (always, from ``k > SEPARATION_COST n``),
        else computed exactly (and kept). Any lower bound keeps the passes exact; a
        looser one only settles fewer rows."""
        if self.separation is not None:
            low = self.separation.bound(C)
            if (len(C) > SEPARATION_COST * self.src.n
                    or low.sum() >= (1 - SEPARATION_LOSS) * self.separation.exact.sum()):
                return low
        self.separation = SeparationBound.of(C, self.groups, schedule.thread_map)
        return self.separation.exact

    def keep(self, it: int, C: np.ndarray, result: BoundsPassResult) -> None:
        """The blocks read by the pass of iteration ``it`` hold bounds for ``C`` now."""
        _, new, sums = result
        for i, st in new.items():
            self.states[i] = st
        for i, sm in sums.items():
            self.summaries[i] = sm
        self.centres_at[it] = C
        live = {sm.version for sm in self.summaries if sm is not None}
        for v in [v for v in self.centres_at if v not in live]:
            del self.centres_at[v]

    def iteration_pass(self, C: np.ndarray, it: int, sums: ClusterSums, *, full: bool,
                       moments: bool) -> tuple[BoundsPartial, TopM | None]:
        """The pass of iteration ``it``, bounded unless ``full`` or unless it would leave
        a cluster empty (then redone in full, so that it can be relocated as plain
        Lloyd does); ``sums`` take its rows. Returns the pass and, after a full pass,
        the farthest rows."""
        if not full:
            result = self.bounded_pass(C, it)
            if not sums.empties(result[0]):
                sums.add(result[0])
                self.keep(it, C, result)
                return result[0], None
        result = self.full_pass(C, it, moments)
        part = result[0]
        sums.reset(part)
        self.margin = bounds_margin(part.xsq_max, C, self.src.dtype)
        self.keep(it, C, result)
        return part, part.top

    def final_pass(self, C: np.ndarray, it: int, sums: ClusterSums) -> None:
        """The E-step against the final centres: bounded (only rows in doubt are read),
        or a full pass if there are no bounds yet; ``sums`` take its rows."""
        if self.complete:
            result = self.bounded_pass(C, it)
            sums.add(result[0])
        else:
            result = self.full_pass(C, it, moments=False)
            sums.reset(result[0])
        self.keep(it, C, result)

    def labels(self) -> np.ndarray | reductions.HeldLabels | None:
        """Every row's label from its bounds: here, or beside the blocks in a cluster's
        workers."""
        return reductions.bounds_labels(self.states)


def lloyd_bounded(src: Source, C0: np.ndarray, run: int, settings: FitSettings, *,
                  resume: ResumeState | None = None, on_iteration: OnIteration | None = None,
                  progress: Progress = no_progress) -> RunResult:
    """The bounded Lloyd solver for one run (:func:`daskmeans.algorithms.lloyd.lloyd`
    for one run), with bounds (Elkan's per centre below K=16, Yinyang's
    per group of centres from K=16) kept per row between iterations: the same
    iterations, labels and centres (up to float rounding), but rows whose bounds prove
    they keep their centre are not read, rows in doubt are compared only with the
    groups their bounds do not rule out, blocks whose rows are all settled are not even
    scheduled, and the per-cluster sums change by the rows that moved
    (:func:`daskmeans.engine.reductions.bounds_pass`).

    The first pass assigns every row (and gives the farthest rows and, with ``tol``,
    the feature variances); a pass that leaves a cluster empty is redone in full so
    that it can be relocated as plain Lloyd does. The inertia of each iteration comes
    from the per-cluster sums (``sum_j Q_j - 2 c_j . S_j + N_j |c_j|^2``, float64).

    Each iteration logs (DEBUG) the rows it read and the (row, centre) distances it
    computed, also as the record's ``pruning`` dict (``rows_read``, ``rows``,
    ``distances``, ``all_distances``: a plain Lloyd iteration's ``n K``).

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
    >>> r = lloyd_bounded(ArraySource(X), X[[0, 2]], 0, FitSettings(max_iter=10, tol=0.0))
    >>> r.centers.tolist(), r.n_iter, r.inertia, r.labels.tolist()
    ([[0.0, 1.0], [9.0, 10.0]], 2, 4.0, [0, 0, 1, 1])
    """
    k, d = C0.shape
    C = np.asarray(C0) if resume is None else resume.centers
    tol_abs = 0.0 if resume is None else resume.tol_abs
    history: list[IterationRecord] = [] if resume is None else resume.history
    start = 0 if resume is None else resume.iteration
    bounds = DistanceBounds(src, C, settings.split_every)
    sums = ClusterSums.zeros(k, d)
    strict = False
    for it in range(start, settings.max_iter):
        t0 = time.perf_counter()
        part, top = bounds.iteration_pass(C, it, sums, full=it == start,
                                          moments=it == 0 and settings.tol > 0)
        if part.moments is not None:
            tol_abs = float(np.mean(part.moments.var)) * settings.tol
        lp = LloydPartial(sums.S, sums.N, sums.sse(C),
                          top if top is not None else TopM.empty(d, src.dtype))
        C_new, shift, n_reloc = lloyd_update(lp, C, settings.metric)
        history.append(IterationRecord(it + 1, lp.sq, shift, n_reloc,
                                       time.perf_counter() - t0, run))
        log.debug("run %d iter %d: inertia %.6g shift %.3g relocated %d, read %d of %d rows, "
                  "%d in full against %d groups of centres of %d, %d distances of %d",
                  run, it + 1, lp.sq, shift, n_reloc, part.n_read, src.n, part.n_full,
                  part.n_pairs, part.n_full * (int(bounds.groups.max()) + 1), part.n_dist,
                  src.n * k, extra={"pruning": {"rows_read": part.n_read, "rows": src.n,
                                                "distances": part.n_dist,
                                                "all_distances": src.n * k}})
        C = C_new
        stop = stop_or_go(progress, "lloyd", it + 1, settings.max_iter, shift, n_reloc,
                          tol_abs, "labels unchanged", f"inertia {lp.sq:.6g}",
                          lambda why: settings.record(history[-1], why))
        if stop:
            strict = stop == "strict"
            break
        if on_iteration is not None:
            on_iteration(it + 1, C, tol_abs, history)
    bounds.final_pass(C, len(history), sums)
    return RunResult(sums.sse(C), C, len(history), history, strict, bounds.labels())


def lloyd_bounded_runs(src: Source, centres0: Sequence[np.ndarray], runs: Sequence[int],
                       settings: FitSettings, *, resume: ResumeState | None = None,
                       on_iteration: OnIteration | None = None,
                       progress: Progress = no_progress) -> list[RunResult]:
    """The bounded Lloyd solver: :func:`lloyd_bounded` for each run, one after another
    (each keeps its own bounds); ``resume`` / ``on_iteration`` need a single run."""
    if (resume is not None or on_iteration is not None) and len(centres0) != 1:
        raise ValueError(f"checkpoints need one run at a time, got {len(centres0)}")
    return [lloyd_bounded(src, C0, run, settings, resume=resume, on_iteration=on_iteration,
                          progress=progress)
            for C0, run in zip(centres0, runs, strict=True)]
