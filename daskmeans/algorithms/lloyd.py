"""Lloyd's iterations of one or more independent runs sharing every pass over the data.

One iteration is :func:`daskmeans.engine.reductions.lloyd_runs_pass` (kernel
:func:`daskmeans.kernels.lloyd.lloyd_runs`: one GEMM and one read for all the runs)
followed by the M-step :func:`~daskmeans.algorithms.common.lloyd_update` of each run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import numpy as np

from ..engine import reductions
from ..engine.source import Source
from .common import (
    FitSettings,
    IterationRecord,
    OnIteration,
    Progress,
    ResumeState,
    RunResult,
    converged_detail,
    final_e_step,
    lloyd_update,
    no_progress,
)

log = logging.getLogger(__name__)


def lloyd(src: Source, centres0: Sequence[np.ndarray], runs: Sequence[int],
          settings: FitSettings, *, resume: ResumeState | None = None,
          on_iteration: OnIteration | None = None,
          progress: Progress = no_progress) -> list[RunResult]:
    """The shared-pass Lloyd solver: :func:`lloyd_iterations`, then the E-step against
    the final centres (:func:`~daskmeans.algorithms.common.final_e_step`: in-memory
    runs get their labels from it).

    Examples
    --------
    >>> from daskmeans.engine.source import ArraySource
    >>> X = np.array([[0., 0.], [0., 2.], [9., 9.], [9., 11.]])
    >>> run, = lloyd(ArraySource(X), [X[[0, 2]]], [0], FitSettings(max_iter=10, tol=0.0))
    >>> run.centers.tolist(), run.inertia, run.strict, run.labels.tolist()
    ([[0.0, 1.0], [9.0, 10.0]], 4.0, True, [0, 0, 1, 1])
    """
    results = lloyd_iterations(src, centres0, runs, settings, resume=resume,
                               on_iteration=on_iteration, progress=progress)
    final_e_step(src, results, settings, lloyd_e_step)
    return results


def lloyd_iterations(src: Source, centres0: Sequence[np.ndarray], runs: Sequence[int],
                     settings: FitSettings, *, resume: ResumeState | None = None,
                     on_iteration: OnIteration | None = None,
                     progress: Progress = no_progress) -> list[RunResult]:
    """Lloyd iterations of independent runs (numbered ``runs``) from ``centres0``, all
    runs sharing every pass over the data, without an E-step after the last.

    A run stops on its own (``settings.tol``, relative to the mean feature variance
    computed in the first pass, or a fixed point) and leaves the passes; each run's
    iterations are those it would make alone. A run that stops at a fixed point is
    ``strict``: its inertia is final. ``resume`` / ``on_iteration`` (checkpoints) need a
    single run.

    Examples
    --------
    >>> from daskmeans.engine.source import ArraySource
    >>> X = np.array([[0., 0.], [0., 2.], [9., 9.], [9., 11.]])
    >>> run, = lloyd_iterations(ArraySource(X), [X[[0, 2]]], [0],
    ...                         FitSettings(max_iter=10, tol=0.0))
    >>> run.centers.tolist(), run.inertia, run.strict
    ([[0.0, 1.0], [9.0, 10.0]], 4.0, True)
    """
    n_runs = len(centres0)
    runs = list(runs)
    if (resume is not None or on_iteration is not None) and n_runs != 1:
        raise ValueError(f"checkpoints need one run at a time, got {n_runs}")
    k, max_iter, tol = centres0[0].shape[0], settings.max_iter, settings.tol
    tol_abs = 0.0 if resume is None else resume.tol_abs
    Cs = [np.asarray(C) for C in centres0] if resume is None else [resume.centers]
    histories: list[list[IterationRecord]] = (
        [[] for _ in centres0] if resume is None else [resume.history])
    start = 0 if resume is None else resume.iteration
    strict, done, inertia = [False] * n_runs, [False] * n_runs, [np.inf] * n_runs
    for it in range(start, max_iter):
        active = [i for i in range(n_runs) if not done[i]]
        if not active:
            break
        t0 = time.perf_counter()
        first = it == 0 and tol > 0
        parts = reductions.lloyd_runs_pass(src, [Cs[i] for i in active], n_top=k, moments=first,
                                           split_every=settings.split_every)
        if first:
            assert parts[0].moments is not None
            tol_abs = float(np.mean(parts[0].moments.var)) * tol
        for i, part in zip(active, parts, strict=True):
            inertia[i] = part.sse()
            C_new, shift, n_reloc = lloyd_update(part, Cs[i], settings.metric)
            record = IterationRecord(it + 1, inertia[i], shift, n_reloc,
                                     time.perf_counter() - t0, runs[i])
            histories[i].append(record)
            log.debug("run %d iter %d: inertia %.6g shift %.3g relocated %d", runs[i], it + 1,
                      inertia[i], shift, n_reloc)
            Cs[i] = C_new
            stop = None
            if shift == 0 and n_reloc == 0:
                strict[i] = done[i] = True  # labels are a fixed point: inertia is final
                stop = "strict"
            elif shift <= tol_abs:
                done[i] = True
                stop = "tol"
            settings.record(record, stop)
        _report(progress, it + 1, max_iter, done, strict, min(inertia[i] for i in active))
        if on_iteration is not None and not done[0]:
            on_iteration(it + 1, Cs[0], tol_abs, histories[0])
    return [RunResult(inertia[i], Cs[i], len(histories[i]), histories[i], strict[i])
            for i in range(n_runs)]


def _report(progress: Progress, step: int, max_iter: int, done: list[bool],
            strict: list[bool], best_inertia: float) -> None:
    """Tell the bar how the shared iterations went (ending with why they stopped)."""
    if all(done):
        why = "labels unchanged" if all(strict) else "centre shift <= tol"
        if len(done) > 1:
            why = f"all {len(done)} runs ({why} in the last)"
        progress("lloyd", step, step, converged_detail(step, max_iter, why))
    else:
        progress("lloyd", step, max_iter, f"inertia {best_inertia:.6g}")


def lloyd_e_step(src: Source, Cs: list[np.ndarray], settings: FitSettings) -> list[float]:
    """Inertia of each set of centres over all rows, one pass for all."""
    return [p.sse() for p in reductions.lloyd_runs_pass(src, Cs, split_every=settings.split_every)]
