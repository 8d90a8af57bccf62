"""k-medians (``metric="manhattan"``): rows to the centre nearest in L1 distance,
centres to the coordinate-wise lower weighted median of their rows, found by
distributed histograms digit by digit (:class:`MedianSearch`), never by gathering rows.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..engine import reductions
from ..engine.reductions import SPLIT_EVERY
from ..engine.source import Source, reads_raw_uint8
from ..kernels.common import TopM
from ..kernels.medians import BINS, L1Centres, MedianGrid, MedianHist, MedianPartial, MedianStep
from .common import (
    FitSettings,
    IterationRecord,
    OnIteration,
    Progress,
    ResumeState,
    RunResult,
    final_e_step,
    no_progress,
    stop_or_go,
)

log = logging.getLogger(__name__)

#: count the second digit's histograms ahead in an iteration's first pass once the
#: medians' first digits settle (False: always a separate pass; the same centres).
COUNT_AHEAD = True


def median_grid(src: Source, split_every: int = SPLIT_EVERY) -> MedianGrid:
    """The levels a k-medians fit histograms (:class:`daskmeans.kernels.medians.MedianGrid`):
    a uint8 store's raw pixels are their own levels (exact medians, no pass); other
    data get a grid over each feature's range, found in one pass."""
    if reads_raw_uint8(src):
        return MedianGrid(256, scale=src.scale)
    rng = reductions.range_pass(src, split_every)
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
    """:func:`~daskmeans.algorithms.common.relocate_empty` for k-medians: each empty
    cluster takes the next row farthest (in L1 distance) from its centre, which leaves
    its cluster. ``counts`` and the first digit's histograms ``hist`` (k, d, 16) are
    updated in place; returns (clusters relocated, the moved rows' global indices, their
    new clusters), which the iteration's later passes apply to the rows' labels."""
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
                  labels: Sequence[Any] | None, split_every: int = SPLIT_EVERY,
                  guess: np.ndarray | None = None) -> tuple[np.ndarray, int]:
    """The M-step of k-medians: every centre to its rows' coordinate-wise lower weighted
    median (:class:`MedianSearch`), after moving empty clusters to far rows.

    ``part``: the iteration's first pass (labels and first digit); each further digit
    of the levels costs one pass (:func:`daskmeans.engine.reductions.median_refine_pass`, over
    the kept ``labels``, or assigning again when None). Raw uint8 levels: the median is
    exact. Float grid: the median lies in one cell whose smallest and largest values
    ``[lo, hi]`` the last pass found; the coordinate becomes ``clip(old, lo, hi)``:
    the median itself when the cell holds one distinct value, else within the cell's
    width of it, and never further from it than the old coordinate (so the L1
    objective of the cluster cannot grow). A cluster without weight keeps its centre.

    ``guess``: the first digits around which the first pass counted the second
    digit's histograms ahead (:func:`median_guess`); when every chosen first digit is
    within one of its guess and no row moved to an empty cluster, those histograms
    are the second pass's, exactly, and that pass is not made.

    Returns (new centres in C's dtype, clusters relocated).
    """
    d = C.shape[1]
    counts, hist = part.counts.copy(), part.hist.copy()
    n_reloc, moved_index, moved_label = relocate_empty_medians(counts, hist, part.top, grid)
    search = MedianSearch.start(counts, d)
    digit = search.choose(hist)
    last: MedianHist | None = None
    first = 1
    ahead = _counted_ahead(part, search.prefix, guess, grid, moved_index)
    if ahead is not None:  # the second digit's histograms came with the first pass
        last = ahead
        digit = search.choose(ahead.hist)
        first = 2
    for p in range(first, grid.digits):
        track = not grid.raw and p == grid.digits - 1
        step = MedianStep(grid.shift(p), search.prefix, track, moved_index, moved_label,
                            None if labels is not None else L1Centres(C))
        last = reductions.median_refine_pass(src, grid, step, labels, split_every)
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


def median_guess(grid: MedianGrid, C: np.ndarray) -> np.ndarray:
    """(k, d) int64: the first digit of each centre coordinate's level, around which a
    first pass counts the second digit ahead (a median seldom moves further)."""
    return grid.centre_level(C) >> grid.shift(0)


def _counted_ahead(part: MedianPartial, prefix: np.ndarray, guess: np.ndarray | None,
                   grid: MedianGrid, moved_index: np.ndarray) -> MedianHist | None:
    """The second digit's histograms counted ahead in the first pass, picked for the
    chosen first digits (``prefix``), when every one is within one of its guess, no
    row moved to an empty cluster, and the pass is not a float grid's last (whose value
    range the first pass does not track); else None."""
    if (guess is None or part.ahead is None or len(moved_index)
            or (not grid.raw and grid.digits == 2) or grid.digits < 2):
        return None
    c = prefix - guess + 1
    if not ((c >= 0) & (c <= 2)).all():
        return None
    return MedianHist(np.take_along_axis(part.ahead, c[:, :, None, None], axis=2)[:, :, 0])


def kmedians(src: Source, C0: np.ndarray, run: int, settings: FitSettings, *,
             resume: ResumeState | None = None, on_iteration: OnIteration | None = None,
             progress: Progress = no_progress) -> RunResult:
    """k-medians iterations of one run from centres ``C0``: rows to the centre nearest
    in L1 distance, centres to the coordinate-wise weighted median of their rows.

    One iteration is :func:`daskmeans.engine.reductions.median_assign_pass` (assignment, the
    objective, the first digit of the medians, the farthest rows) then
    :func:`median_update` (``grid.digits - 1`` more passes: 1 for raw uint8 rows, 2 for
    float rows), each one compute. Once the centres' first digits move by at most one
    in an iteration, the next first pass also counts the second digit's histograms
    around them: when the medians' first digits stay within one, the second pass is
    not needed (raw uint8 rows: one pass per iteration; float rows: two), and the
    result is the same. Neither step can raise the L1 objective, so the
    recorded ``inertia`` (the objective against the assigning centres) never grows.
    Stopping, ``tol`` (on the summed squared centre shift, relative to the mean
    feature variance), ``resume`` and ``on_iteration`` are as in
    :func:`daskmeans.algorithms.lloyd.lloyd_iterations`; ``settings.grid`` comes from
    :func:`prepare_kmedians`. No E-step after the last iteration (see
    :func:`kmedians_runs`).

    Examples
    --------
    >>> from daskmeans.engine.source import ArraySource
    >>> X = np.array([[0., 0.], [0., 2.], [1., 5.], [9., 9.], [9., 11.], [30., 9.]])
    >>> src = ArraySource(X)
    >>> from daskmeans.kernels.metric import MANHATTAN
    >>> settings = prepare_kmedians(src, FitSettings(max_iter=10, tol=0.0, metric=MANHATTAN))
    >>> run = kmedians(src, X[[0, 3]], 0, settings)
    >>> run.centers.tolist(), run.inertia, run.n_iter
    ([[0.0, 2.0], [9.0, 9.0]], 29.0, 2)
    """
    k, grid, split_every = C0.shape[0], settings.grid, settings.split_every
    max_iter, tol = settings.max_iter, settings.tol
    assert grid is not None, "k-medians needs its grid: see prepare_kmedians"
    C = np.asarray(C0) if resume is None else resume.centers
    tol_abs = 0.0 if resume is None else resume.tol_abs
    history: list[IterationRecord] = [] if resume is None else resume.history
    start = 0 if resume is None else resume.iteration
    strict, inertia = False, np.inf
    near = False  # the last update moved every first digit by at most one
    for it in range(start, max_iter):
        t0 = time.perf_counter()
        first = it == 0 and tol > 0
        guess = median_guess(grid, C) if near and COUNT_AHEAD else None
        part, labels = reductions.median_assign_pass(src, C, grid, n_top=k, moments=first,
                                                     guess=guess, split_every=split_every)
        if first:
            assert part.moments is not None
            tol_abs = float(np.mean(part.moments.var)) * tol
        inertia = part.dist
        C_new, n_reloc = median_update(src, C, grid, part, labels, split_every, guess)
        moved = median_guess(grid, C_new) - median_guess(grid, C)
        near = bool(np.abs(moved).max(initial=0) <= 1)
        shift = float(((C_new.astype(np.float64) - C) ** 2).sum())
        history.append(IterationRecord(it + 1, inertia, shift, n_reloc,
                                       time.perf_counter() - t0, run))
        log.debug("run %d iter %d: L1 objective %.6g shift %.3g relocated %d", run, it + 1,
                  inertia, shift, n_reloc)
        C = C_new
        stop = stop_or_go(progress, "k-medians", it + 1, max_iter, shift, n_reloc, tol_abs,
                           "centres unchanged", f"L1 objective {inertia:.6g}",
                           lambda why: settings.record(history[-1], why))
        if stop:  # "strict": the labels are a fixed point, the objective is final
            strict = stop == "strict"
            break
        if on_iteration is not None:
            on_iteration(it + 1, C, tol_abs, history)
    return RunResult(inertia, C, len(history), history, strict)


def prepare_kmedians(src: Source, settings: FitSettings) -> FitSettings:
    """The settings with the grid of levels the k-medians fit of ``src`` histograms
    (:func:`median_grid`: one pass for float data), found once per fit."""
    return settings.with_grid(median_grid(src, settings.split_every))


def kmedians_runs(src: Source, centres0: Sequence[np.ndarray], runs: Sequence[int],
                  settings: FitSettings, *, resume: ResumeState | None = None,
                  on_iteration: OnIteration | None = None,
                  progress: Progress = no_progress) -> list[RunResult]:
    """The k-medians solver: :func:`kmedians` for each run, one after another, each
    followed by the E-step against its final centres
    (:func:`~daskmeans.algorithms.common.final_e_step`); ``resume`` / ``on_iteration``
    need a single run."""
    if (resume is not None or on_iteration is not None) and len(centres0) != 1:
        raise ValueError(f"checkpoints need one run at a time, got {len(centres0)}")
    results = []
    for C0, run in zip(centres0, runs, strict=True):
        result = kmedians(src, C0, run, settings, resume=resume, on_iteration=on_iteration,
                          progress=progress)
        final_e_step(src, [result], settings, kmedians_e_step)
        results.append(result)
    return results


def kmedians_e_step(src: Source, Cs: list[np.ndarray], settings: FitSettings) -> list[float]:
    """The L1 objective of each set of centres over all rows, one pass each."""
    return [reductions.score_pass(src, C, split_every=settings.split_every,
                                  metric=settings.metric.name).sse
            for C in Cs]

