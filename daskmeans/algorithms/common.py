"""What every K-means solver shares: the records and result of a run, where a run
resumes, the settings of a fit, the stopping rule, the M-step and the E-step against
the final centres.

A solver (:func:`daskmeans.algorithms.lloyd.lloyd`,
:func:`daskmeans.algorithms.bounded.lloyd_bounded_runs`,
:func:`daskmeans.algorithms.kmedians.kmedians_runs`) has one signature, as
scikit-learn's ``_kmeans_single_lloyd`` / ``_kmeans_single_elkan`` do::

    solver(src, centres0, runs, settings, *, resume=None, on_iteration=None,
           progress=no_progress) -> list[RunResult]

so that the estimator picks one once and runs the same ``n_init`` loop whatever it is.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

import numpy as np

from ..engine.reductions import SPLIT_EVERY, HeldLabels
from ..engine.source import Source
from ..kernels.common import TopM, centres_temporary, dense, weighted_sse
from ..kernels.lloyd import LloydPartial
from ..kernels.medians import MedianGrid
from ..kernels.metric import EUCLIDEAN, Metric
from ..progress import ProgressCallback

log = logging.getLogger(__name__)

#: ``progress(phase, done, total, detail)``: the callback of :mod:`daskmeans.progress`
Progress = ProgressCallback


def no_progress(phase: str, done: int, total: int | None, detail: str = "") -> None:
    """A progress report that goes nowhere."""
    return None


def converged_detail(step: int, max_iter: int, why: str) -> str:
    """The last word of a loop's bar when it stops before ``max_iter``."""
    return f"converged at iteration {step} of at most {max_iter}: {why}"


def stop_or_go(progress: Progress, phase: str, step: int, max_iter: int, shift: float,
               n_reloc: int, tol_abs: float, fixed: str, detail: str,
               tell: Callable[[str | None], None] | None = None) -> str | None:
    """The stopping rule after iteration ``step`` of a single run: ``"strict"`` at a
    fixed point (no shift, nothing relocated), ``"tol"`` when the shift is within the
    tolerance, else None; ``tell`` hears of it first (verbose lines), then the progress
    bar (ending with why it stopped)."""
    if tell is not None:
        tell("strict" if shift == 0 and n_reloc == 0 else "tol" if shift <= tol_abs else None)
    if shift == 0 and n_reloc == 0:
        progress(phase, step, step, converged_detail(step, max_iter, fixed))
        return "strict"
    if shift <= tol_abs:
        progress(phase, step, step,
                 converged_detail(step, max_iter, f"centre shift {shift:.3g} <= tol"))
        return "tol"
    progress(phase, step, max_iter, detail)
    return None


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
class RunResult:
    """A run's result (``strict``: the labels reached a fixed point, so ``inertia`` is
    the final centres' without another E-step)."""

    inertia: float
    centers: np.ndarray
    n_iter: int
    history: list[IterationRecord] = field(default_factory=list)
    strict: bool = False
    #: (n,) int32 labels against ``centers``, when the run made them in this process;
    #: their futures, when it made them in a cluster's workers, beside the blocks
    labels: np.ndarray | HeldLabels | None = None


@dataclass
class ResumeState:
    """Where a checkpointed single run resumes."""

    iteration: int
    centers: np.ndarray
    tol_abs: float
    history: list[IterationRecord]


#: ``on_iteration(iteration, centres, tol_abs, history)`` after an iteration that did
#: not end the run (checkpoints).
OnIteration = Callable[[int, np.ndarray, float, list[IterationRecord]], None]


#: ``on_record(record, stop)`` as each run's iteration ends: its record and how the run
#: stopped there (``"strict"``, ``"tol"``) or None (``verbose`` prints from it, live).
OnRecord = Callable[[IterationRecord, "str | None"], None]


@dataclass(frozen=True)
class FitSettings:
    """What a solver needs besides the data and the initial centres.

    ``grid``: the levels a k-medians fit histograms, found once per fit by the
    solver's ``prepare`` step (None for the others). ``on_record``: told of every
    iteration of every run as it ends (:data:`OnRecord`), or None.
    """

    max_iter: int
    tol: float
    metric: Metric = EUCLIDEAN
    split_every: int = SPLIT_EVERY
    grid: MedianGrid | None = None
    on_record: OnRecord | None = None

    def record(self, record: IterationRecord, stop: str | None) -> None:
        """Tell :attr:`on_record` (if any) that a run's iteration ended."""
        if self.on_record is not None:
            self.on_record(record, stop)

    def with_grid(self, grid: MedianGrid) -> FitSettings:
        return replace(self, grid=grid)


class Solver(Protocol):
    """The signature every K-means solver has (see the module's docstring)."""

    def __call__(self, src: Source, centres0: Sequence[np.ndarray], runs: Sequence[int],
                 settings: FitSettings, *, resume: ResumeState | None = None,
                 on_iteration: OnIteration | None = None,
                 progress: Progress = no_progress) -> list[RunResult]: ...


def centers_from_sums(sums: np.ndarray, counts: np.ndarray, previous: np.ndarray) -> np.ndarray:
    """Means from per-cluster sums; a cluster with no weight keeps its previous centre."""
    nz = counts > 0
    if nz.all():  # the common case: one division, no copies of the sums
        return (sums / counts[:, None]).astype(np.float64, copy=False)
    out = previous.astype(np.float64)  # a copy
    out[nz] = sums[nz] / counts[nz, None]
    return out


def relocate_empty(sums: np.ndarray, counts: np.ndarray, top: TopM) -> int:
    """Move empty clusters onto the rows farthest from their centres (in place).

    As scikit-learn: each empty cluster takes the next farthest row (largest squared
    distance, ties to the smaller row index); that row's weighted value leaves the sums
    of the cluster it was assigned to. A row on its centre (distance 0) is not taken, as
    scikit-learn does since its issue 28055: with fewer distinct rows than clusters,
    moving a centre onto a duplicate only makes another empty cluster. Returns how many
    clusters were relocated.

    No loop over the clusters: a row's former cluster had rows, so it is never one of
    the empty ones, and the rows leave their clusters' sums in order
    (``np.subtract.at``), as one at a time would.
    """
    empty = np.flatnonzero(counts == 0)
    n = min(len(empty), len(top.sqdist))
    if len(empty) > n:
        log.warning("%d empty clusters but only %d far rows known", len(empty), n)
    near = np.flatnonzero(np.asarray(top.sqdist[:n]) <= 0)
    n = int(near[0]) if len(near) else n  # the rest are as near (descending order)
    wt = np.asarray(top.weights[:n], np.float64)
    take = wt > 0
    new, old, wt = empty[:n][take], np.asarray(top.labels[:n])[take], wt[take]
    rows = dense(top.rows[:n])[take].astype(np.float64) * wt[:, None]
    np.subtract.at(sums, old, rows)
    np.subtract.at(counts, old, wt)
    sums[new] = rows
    counts[new] = wt
    return len(new)


def lloyd_update(part: LloydPartial, C: np.ndarray, metric: Metric
                 ) -> tuple[np.ndarray, float, int]:
    """The M-step: (new centres in C's dtype, squared shift, clusters relocated); the
    metric finishes the means (cosine: back onto the unit sphere)."""
    sums, counts = part.sums, part.counts
    n_reloc = 0
    if not (counts > 0).all():  # relocation changes them: copies, the partial kept
        sums, counts = sums.copy(), counts.copy()
        n_reloc = relocate_empty(sums, counts, part.top)
    C_new = metric.finish_centres(centers_from_sums(sums, counts, C))
    C_new = C_new.astype(C.dtype, copy=False)
    return C_new, squared_shift(C_new, C), n_reloc


def squared_shift(C_new: np.ndarray, C: np.ndarray) -> float:
    """``sum((C_new - C) ** 2)`` in float64: the difference in a reused buffer when
    both are C-contiguous (a fresh one the centres' size every iteration costs page
    faults), summed as the same expression on new arrays would be."""
    new64 = C_new.astype(np.float64, copy=False)
    if new64.flags.c_contiguous and C.flags.c_contiguous and new64.shape == C.shape:
        diff = np.subtract(new64, C, out=centres_temporary(
            "shift", C.shape, np.result_type(new64, C)))
    else:
        diff = new64 - C
    np.multiply(diff, diff, out=diff)
    return float(diff.sum())


def in_memory_e_step(src: Source, C: np.ndarray, metric: Metric) -> tuple[np.ndarray, float]:
    """(labels, objective) of in-memory rows against ``C``: the final E-step of a fit
    on in-memory data, which gives ``labels_`` with the inertia (no second pass)."""
    labels, dist = metric.assign(src.X, C)
    return labels, weighted_sse(dist, src.weights)


def final_e_step(src: Source, results: Sequence[RunResult], settings: FitSettings,
                 lazy_e_step: Callable[[Source, list[np.ndarray], FitSettings], list[float]]
                 ) -> None:
    """The E-step against each run's final centres, as scikit-learn runs it, in place.

    In-memory rows: every run gets its labels and inertia (a numpy pass each, also
    after a fixed point, since ``labels_`` come from it). Lazy rows: only the runs
    whose labels did not reach a fixed point, by ``lazy_e_step`` (the solver's pass).
    """
    if not src.lazy:
        for r in results:
            r.labels, r.inertia = in_memory_e_step(src, r.centers, settings.metric)
        return
    again = [r for r in results if not r.strict]
    if again:
        for r, v in zip(again, lazy_e_step(src, [r.centers for r in again], settings),
                        strict=True):
            r.inertia = v
