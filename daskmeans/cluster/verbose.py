"""``verbose``: scikit-learn's messages, in its words, on stdout, as the fit goes.

With ``verbose`` set, the estimators print what scikit-learn's print
(``sklearn/cluster/_kmeans.py``): ``Initialization complete``, ``Iteration i, inertia
...`` and ``Converged at iteration i: ...`` for KMeans; ``Minibatch step i/n: mean
batch inertia: ...`` and ``Converged (small centers change) ...`` or ``Converged
(lack of improvement in inertia) ...`` for MiniBatchKMeans; ``New centroids from
bisection: ...`` for BisectingKMeans. Users and tests match
these lines, so their wording is scikit-learn's. Each line is printed as its iteration
(step, split) ends, from the record that goes into ``history_`` (the same
numbers); the ``n_init`` runs that share their passes print their lines iteration by
iteration, run after run within each pass. Iterations are numbered from 0, as
scikit-learn numbers them. Progress bars are a separate choice:
``callback=daskmeans.progress.TqdmBars()``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..algorithms import IterationRecord

__all__ = ["RunLines", "StepLines", "say_split"]


class RunLines:
    """``on_record`` of a KMeans fit (:class:`~daskmeans.algorithms.FitSettings`): each
    iteration's line and, at the run's last, how it stopped (``tol``: the estimator's,
    relative to the mean feature variance, as ``center shift`` is compared with it)."""

    def __init__(self, tol: float) -> None:
        self.tol = tol

    def __call__(self, record: IterationRecord, stop: str | None) -> None:
        i = record.iteration - 1
        print(f"Iteration {i}, inertia {record.inertia}", flush=True)
        if stop == "strict":
            print(f"Converged at iteration {i}: strict convergence.", flush=True)
        elif stop == "tol":
            print(f"Converged at iteration {i}: center shift {record.center_shift} within "
                  f"tolerance {self.tol} (times the mean feature variance).", flush=True)


class StepLines:
    """A mini-batch fit's ``on_record``: each step's line as it ends and, at an early
    stop, why (scikit-learn's lines)."""

    def __init__(self, n_steps: int, tol_abs: float) -> None:
        self.n_steps, self.tol_abs = n_steps, tol_abs

    def __call__(self, h: dict[str, Any], stop: str | None) -> None:
        mean = h["batch_inertia"] / max(h["batch_rows"], 1)
        line = f"Minibatch step {h['step']}/{self.n_steps}: mean batch inertia: {mean}"
        if h.get("ewa_inertia") is not None:
            line += f", ewa inertia: {h['ewa_inertia']}"
        print(line, flush=True)
        if stop:
            if self.tol_abs > 0.0 and h["center_shift"] <= self.tol_abs:
                print(f"Converged (small centers change) at step {h['step']}/{self.n_steps}",
                      flush=True)
            else:
                print(f"Converged (lack of improvement in inertia) at step "
                      f"{h['step']}/{self.n_steps}", flush=True)


def say_split(centres: np.ndarray) -> None:
    """A bisecting fit's line as each split is applied (scikit-learn's)."""
    print(f"New centroids from bisection: {centres}", flush=True)
