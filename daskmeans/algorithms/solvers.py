"""Which solver fits a KMeans, and how many ``n_init`` runs share each of its passes:
decided once per fit, from the metric, ``algorithm`` and the source.

Every solver has the signature of :class:`~daskmeans.algorithms.common.Solver`; a
:class:`SolverChoice` adds the ``prepare`` step that makes what the solver needs once
per fit (the k-medians grid) and how many runs go into each call.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..engine.source import Source
from ..kernels.metric import Metric
from .bounded import lloyd_bounded_runs
from .common import FitSettings, RunResult, Solver
from .kmedians import kmedians_runs, prepare_kmedians
from .lloyd import lloyd

#: ``n_init`` runs share each Lloyd pass while their stacked float64 per-cluster sums
#: (every chunk's partial result holds them) stay under this many bytes: one GEMM and
#: one read of the data for all of them (much faster than one pass per run at small K;
#: at large K in memory the GEMM is the cost either way, but a store is still read
#: once instead of once per run).
RUNS_MAX_BYTES = 32 << 20


def _as_is(src: Source, settings: FitSettings) -> FitSettings:
    return settings


@dataclass(frozen=True)
class SolverChoice:
    """A solver, its ``prepare`` step (``prepare(src, settings) -> settings``, once per
    fit) and how many runs each call fits together."""

    name: str
    solve: Solver
    runs_per_pass: int
    prepare: Callable[[Source, FitSettings], FitSettings] = _as_is


def runs_per_pass(n_runs: int, n_clusters: int, n_features: int) -> int:
    """How many runs share each shared-pass Lloyd pass (see :data:`RUNS_MAX_BYTES`).

    Examples
    --------
    >>> runs_per_pass(10, 8, 784), runs_per_pass(10, 4096, 4096)
    (10, 1)
    """
    per_run = n_clusters * n_features * 8
    return max(1, min(n_runs, RUNS_MAX_BYTES // per_run))


def lloyd_sharing_passes(src: Source, centres0: Sequence[np.ndarray], runs: Sequence[int],
                         settings: FitSettings, **kwargs: Any) -> list[RunResult]:
    """Shared-pass Lloyd for a batch of runs; a batch of one run (the last of ``n_init``
    runs that do not divide into full batches) keeps distance bounds instead, since it
    shares its passes with nothing."""
    if len(centres0) == 1:
        return lloyd_bounded_runs(src, centres0, runs, settings, **kwargs)
    return lloyd(src, centres0, runs, settings, **kwargs)


def choose_solver(metric: Metric, algorithm: str, src: Source, *, n_runs: int,
                  n_clusters: int, one_run_at_a_time: bool = False) -> SolverChoice:
    """The solver of a KMeans fit.

    A metric whose objective is not squared (L1) has medians for centres: k-medians,
    one run at a time. Otherwise Lloyd: ``"elkan"`` and ``"auto"`` keep distance bounds
    (one run at a time, each with its own bounds) when the runs go one at a time anyway
    (``"elkan"``, one run, checkpoints, or runs too large to share a pass); else the
    runs share every pass (a lone run left over at the end keeps bounds:
    :func:`lloyd_sharing_passes`). ``"auto"`` on CSR rows runs plain Lloyd: the bounds
    recompute the rows in doubt in numpy there, slower than the compiled sparse Lloyd
    pass that assigns them all.
    """
    if not metric.squared:
        return SolverChoice("k-medians", kmedians_runs, 1, prepare_kmedians)
    if algorithm == "elkan" or one_run_at_a_time:
        per_pass = 1
    else:
        per_pass = runs_per_pass(n_runs, n_clusters, src.d)
    bounds = algorithm == "elkan" or (algorithm == "auto" and not src.sparse)
    if bounds and per_pass == 1:
        return SolverChoice("bounded lloyd", lloyd_bounded_runs, 1)
    if bounds:
        return SolverChoice("lloyd, bounded for a lone run", lloyd_sharing_passes, per_pass)
    return SolverChoice("lloyd", lloyd, per_pass)
