"""Mini-batch K-means (Sculley 2010) with scikit-learn's semantics: the state carried
from step to step (:class:`MiniBatchState`), one step (:func:`minibatch_step`: the
fused step of :func:`daskmeans.engine.reductions.batch_pass` over the batch's rows or
blocks, then the reassignment of :func:`minibatch_update`), early stopping
(:func:`minibatch_converged`) and the loop (:func:`minibatch`).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..engine import reductions, workers
from ..engine.reductions import SPLIT_EVERY
from ..engine.source import Source
from ..kernels.metric import EUCLIDEAN, Metric
from ..kernels.minibatch import BatchStep
from .common import Progress, no_progress

log = logging.getLogger(__name__)

#: mini-batch steps of rows held in a cluster's workers in flight at once
STEPS_AHEAD = 4

#: what picks the rows reassigned centres move to
Chooser = np.random.Generator | np.random.RandomState


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
    metric: Metric = EUCLIDEAN
    split_every: int = SPLIT_EVERY
    #: with sample weights, "rows" batches are drawn with probability ~ weight (this
    #: (n,) cumulative distribution of the weights) and count every row once, as
    #: scikit-learn's ``fit``: a row of zero weight never enters a batch
    row_cdf: np.ndarray | None = None


def batch_rows(rng: np.random.Generator, n: int, batch: int, cdf: np.ndarray | None
               ) -> np.ndarray:
    """``batch`` global row indices drawn i.i.d.: uniformly, or with probability ~ weight
    given the weights' cumulative distribution ``cdf`` (as ``Generator.choice`` with
    ``p``, its distribution computed once per fit instead of every step)."""
    if cdf is None:
        return rng.integers(0, n, size=batch)
    return np.minimum(cdf.searchsorted(rng.random(batch), side="right"), n - 1)


def weights_cdf(weights: np.ndarray) -> np.ndarray:
    """The cumulative distribution of (n,) non-negative weights, for :func:`batch_rows`."""
    cdf = np.cumsum(np.asarray(weights, dtype=np.float64))
    return cdf / cdf[-1]


def random_reassign(state: MiniBatchState, batch: int) -> bool:
    """As scikit-learn: every ``10 * n_clusters`` rows, or while a centre is unseen."""
    state.n_since_last_reassign += batch
    k = state.centers.shape[0]
    if (state.counts == 0).any() or state.n_since_last_reassign >= 10 * k:
        state.n_since_last_reassign = 0
        return True
    return False


def reassign_candidates(state: MiniBatchState, ratio: float, reassign: bool, batch: int,
                        weighted: bool) -> int:
    """How many candidate rows a step needs for reassignment (0 if none can be).

    After a step a centre is reassigned when its count is below ``ratio * max``;
    counts only grow and the max grows by at most the batch's total weight, so only
    centres with ``count < ratio * (max + batch)`` can qualify. The candidates are a
    prefix of a random permutation of the batch, so drawing that many rows instead of
    every one gives the same reassignments (rows held elsewhere travel only as needed).
    """
    if not reassign or ratio <= 0:
        return 0
    k = m = state.centers.shape[0]
    if not weighted:  # with weights the batch's total weight is not known beforehand
        m = int(np.count_nonzero(state.counts < ratio * (state.counts.max() + batch)))
    return min(m, k, batch)


def minibatch_update(state: MiniBatchState, step: BatchStep, reassign: bool, batch: int,
                     ratio: float, metric: Metric) -> tuple[float, int]:
    """Take a step's updated centres and counts (scikit-learn's count-based learning
    rate ``c <- (c N_c + S_c) / (N_c + n_c)``, applied by the kernel) and, as
    scikit-learn's ``_mini_batch_step``, reassign the centres whose count is below
    ``ratio`` times the largest (at most half a batch of them) to the batch's rows
    picked for it (``step.picked``: a prefix of a random permutation of the batch),
    their counts reset to the smallest count kept. Returns (squared centre shift,
    centres reassigned)."""
    C = state.centers
    new, counts = step.centers, step.counts
    n_re = 0
    if reassign and ratio > 0:
        to_re = _to_reassign(counts, batch, ratio)
        idx = np.flatnonzero(to_re)
        n_re = min(len(idx), len(step.picked))
        if n_re:
            new[idx[:n_re]] = step.picked[:n_re]
        # reset their counts, but not so low that they are reassigned at once
        keep = counts[~to_re]
        counts[idx[:n_re]] = keep.min() if keep.size else 0.0
    new = metric.finish_centres(new).astype(C.dtype)  # cosine: onto the unit sphere
    state.centers, state.counts = new, counts
    return float(((new.astype(np.float64) - C.astype(np.float64)) ** 2).sum()), n_re


def _to_reassign(counts: np.ndarray, batch: int, ratio: float) -> np.ndarray:
    """(k,) bool: the centres a step reassigns (scikit-learn's rule), given the counts
    after its update: below ``ratio`` times the largest, at most half a batch."""
    to_re = counts < ratio * counts.max()
    if to_re.sum() > 0.5 * batch:  # at most half a batch of centres at once
        to_re[np.argsort(counts)[int(0.5 * batch):]] = False
    return to_re


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
                   rows: np.ndarray | None, blocks: Sequence[int] | None, chooser: Chooser,
                   counted: int | None = None, stopping: bool = True) -> str | None:
    """One mini-batch step (:func:`daskmeans.engine.reductions.batch_pass`: no compute
    for rows held here, one for rows streamed; rows held in a cluster's workers:
    :func:`daskmeans.engine.workers.worker_batch_step`); appends to
    ``state.history``; returns why early stopping says stop, or None.

    ``chooser`` (a numpy ``Generator`` or ``RandomState``) picks the rows that
    reassigned centres move to: ``chooser.permutation(b)[:n]``, which for a
    ``RandomState`` is scikit-learn's ``choice(b, n, replace=False)``, drawn only when
    a centre is reassigned (as there). ``counted``: rows the reassignment schedule
    counts for this step (scikit-learn's ``partial_fit`` counts its first batch's size
    every step), the batch's rows by default.
    """
    t0 = time.perf_counter()
    b = len(rows) if rows is not None else int(sum(src.block_rows(i) for i in blocks or ()))
    reassign = random_reassign(state, b if counted is None else counted)
    m = reassign_candidates(state, spec.reassignment_ratio, reassign, b,
                            src.weights is not None)
    saved, picks = None, None
    if m:  # drawn before the step (rows held elsewhere come back with it), undone if unused
        saved = _chooser_state(chooser)
        picks = chooser.permutation(b)[:m]
    if workers.steps_in_workers(src):  # the fused step in a worker
        step = workers.worker_batch_step(src, state.centers, state.counts, rows=rows,
                                         blocks=blocks, picks=picks)
    else:
        step = reductions.batch_pass(src, state.centers, state.counts, rows=rows,
                                     blocks=blocks, picks=picks, split_every=spec.split_every)
    shift, n_re = minibatch_update(state, step, reassign, b, spec.reassignment_ratio,
                                   spec.metric)
    if saved is not None and not n_re:
        _restore_chooser(chooser, saved)
    return _stepped(state, spec, src.n, step.inertia, b, shift, n_re, t0, stopping)


def _stepped(state: MiniBatchState, spec: MiniBatchSpec, n: int, batch_inertia: float,
             b: int, shift: float, n_re: int, t0: float, stopping: bool = True) -> str | None:
    """A step's end: counted, early stopping checked, recorded in ``state.history``."""
    state.step += 1
    stop = minibatch_converged(state, spec, n, shift, batch_inertia, b) if stopping else None
    state.history.append({
        "step": state.step, "batch_inertia": batch_inertia,
        "ewa_inertia": state.ewa_inertia if stopping else None, "center_shift": shift,
        "n_reassigned": n_re, "batch_rows": b, "seconds": time.perf_counter() - t0,
        "phase": "mini-batch",
    })
    return stop


def _chooser_state(chooser: Chooser) -> Any:
    if isinstance(chooser, np.random.RandomState):
        return chooser.get_state()
    return chooser.bit_generator.state


def _restore_chooser(chooser: Chooser, saved: Any) -> None:
    if isinstance(chooser, np.random.RandomState):
        chooser.set_state(saved)
    else:
        chooser.bit_generator.state = saved


def minibatch(src: Source, state: MiniBatchState, spec: MiniBatchSpec, *,
              rng: np.random.Generator, mode: str, per_step: int,
              order: list[int],
              on_step: Callable[[MiniBatchState, list[int]], None] | None = None,
              progress: Progress = no_progress,
              on_record: Callable[[dict[str, Any], str | None], None] | None = None
              ) -> MiniBatchState:
    """Mini-batch steps from ``state.step`` to ``spec.n_steps`` or early stopping.

    ``mode="rows"``: each step draws ``spec.batch`` i.i.d. rows over the global row
    indices (so the batches are the same whatever the blocks); ``"chunks"``: each
    step takes ``per_step`` whole blocks in a fresh random order every epoch
    (``order``: the rest of the current epoch). ``rng`` draws the batches and the rows
    reassigned centres move to. ``on_step(state, order)`` runs after every step
    (checkpoints); ``on_record(entry, stop)`` after every step too, with its
    ``history`` entry and why the fit stops there, or None (``verbose``). Rows held
    in a cluster's workers take their steps several at a time
    (:func:`_worker_steps`), with the same results.
    """
    cdf = spec.row_cdf if mode == "rows" else None
    if mode == "rows" and src.weights is not None:
        # the weights chose the rows (equal weights: uniformly): each counts once
        src = src.with_options(weights=None, normalize=src.normalize)
    steps: Generator[str | None, None, None]
    if mode == "rows" and workers.steps_in_workers(src) and not spec.metric.normalizes_rows:
        steps = _worker_steps(src, state, spec, rng, cdf)
    else:
        steps = _steps(src, state, spec, rng, mode, per_step, order, cdf)
    with contextlib.closing(steps):
        for stop in steps:
            h = state.history[-1]
            if on_record is not None:
                on_record(h, stop)
            if stop:  # the bar ends here, full, saying why
                progress("mini-batch", state.step, state.step,
                         f"{stop} (step {state.step} of at most {spec.n_steps})")
                break
            progress("mini-batch", state.step, spec.n_steps,
                     f"batch inertia {h['batch_inertia'] / h['batch_rows']:.4g}/row")
            if on_step is not None:
                on_step(state, order)
    return state


def _steps(src: Source, state: MiniBatchState, spec: MiniBatchSpec, rng: np.random.Generator,
           mode: str, per_step: int, order: list[int], cdf: np.ndarray | None
           ) -> Generator[str | None, None, None]:
    """The steps one at a time (:func:`minibatch_step`); yields why to stop, or None."""
    for _ in range(state.step, spec.n_steps):
        rows = blocks = None
        if mode == "rows":
            rows = np.sort(batch_rows(rng, src.n, spec.batch, cdf))
        else:
            if len(order) < per_step:
                order += rng.permutation(src.n_blocks).tolist()
            blocks, order[:] = order[:per_step], order[per_step:]
        yield minibatch_step(src, state, spec, rows=rows, blocks=blocks, chooser=rng)


def _worker_steps(src: Source, state: MiniBatchState, spec: MiniBatchSpec,
                  rng: np.random.Generator, cdf: np.ndarray | None,
                  ahead: int = STEPS_AHEAD) -> Generator[str | None, None, None]:
    """The ``"rows"`` steps of rows held in a cluster's workers
    (:class:`daskmeans.engine.workers.WorkerSteps`), ``ahead`` of them in flight:
    each next step is submitted from the future of the one before, on the batch the
    generator draws next, so the client does not wait a round trip per step. Yields,
    in order, why to stop or None, with ``state`` and ``rng`` exactly as
    :func:`minibatch_step` leaves them.

    The steps in flight assume that the steps before them reassign no centre (most
    reassign none). A step that does reassign is finished as in process: its picks are
    drawn from the generator as it stood after the step's batch (as
    :func:`minibatch_step` draws them, before the next batch), the picked rows are
    fetched, and the steps in flight after it are dropped and drawn again.
    """
    steps = workers.WorkerSteps(src, state.centers.dtype)
    flight: deque[tuple[Any, np.ndarray, Any]] = deque()  # (step, batch, rng after it)
    drawn_ahead = None  # the generator's state after the last batch drawn
    ratio = spec.reassignment_ratio
    try:
        while state.step < spec.n_steps:
            if drawn_ahead is not None:
                _restore_chooser(rng, drawn_ahead)
            while len(flight) < ahead and state.step + len(flight) < spec.n_steps:
                rows = np.sort(batch_rows(rng, src.n, spec.batch, cdf))
                start = flight[-1][0] if flight else (state.centers, state.counts)
                flight.append((steps.submit(rows, start), rows, _chooser_state(rng)))
            t0 = time.perf_counter()
            handle, rows, drawn = flight.popleft()
            drawn_ahead = _chooser_state(rng)
            step = steps.result(handle)
            b = len(rows)
            reassign = random_reassign(state, b)
            m = reassign_candidates(state, ratio, reassign, b, False)
            _restore_chooser(rng, drawn)  # as minibatch_step leaves it
            if m and _to_reassign(step.counts, b, ratio).any():
                steps.cancel([f for f, _, _ in flight])
                flight.clear()
                step.picked = steps.rows(rows[rng.permutation(b)[:m]])
                drawn_ahead = None
            shift, n_re = minibatch_update(state, step, reassign, b, ratio, spec.metric)
            yield _stepped(state, spec, src.n, step.inertia, b, shift, n_re, t0)
    finally:
        steps.cancel([f for f, _, _ in flight])
