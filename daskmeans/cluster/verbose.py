"""``verbose``: scikit-learn's messages, in its words, on stdout.

With ``verbose`` set, the estimators print what scikit-learn's print
(``sklearn/cluster/_kmeans.py``): ``Initialization complete``, ``Iteration i, inertia
...`` and ``Converged at iteration i: ...`` for KMeans; ``Minibatch step i/n: mean
batch inertia: ...`` and ``Converged (small centers change) ...`` or ``Converged
(lack of improvement in inertia) ...`` for MiniBatchKMeans. Users and tests match
these lines, so their wording is scikit-learn's. A run's lines are printed when the
run ends (its iterations share passes with the other runs of its batch, and its record
is complete then): they come from the run's history, the same numbers as
``history_``. Iterations are numbered from 0, as scikit-learn numbers them. Progress
bars are a separate choice: ``callback=daskmeans.progress.TqdmBars()``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..algorithms import RunResult

__all__ = ["say_bisecting", "say_minibatch", "say_run"]


def say_run(result: RunResult, max_iter: int, tol: float) -> None:
    """A KMeans run's iterations and how it stopped (``tol``: the estimator's, relative
    to the mean feature variance, as ``center shift`` is compared with it)."""
    for record in result.history:
        print(f"Iteration {record.iteration - 1}, inertia {record.inertia}")
    if not result.history:
        return
    last = result.history[-1].iteration - 1
    if result.strict:
        print(f"Converged at iteration {last}: strict convergence.")
    elif result.n_iter < max_iter:
        print(f"Converged at iteration {last}: center shift "
              f"{result.history[-1].center_shift} within tolerance {tol} (times the mean "
              "feature variance).")


def say_minibatch(history: Sequence[dict[str, Any]], n_steps: int, tol_abs: float) -> None:
    """A mini-batch fit's steps and, if it stopped early, why (scikit-learn's lines)."""
    steps = [h for h in history if h.get("phase", "mini-batch") == "mini-batch"]
    for h in steps:
        mean = h["batch_inertia"] / max(h["batch_rows"], 1)
        line = f"Minibatch step {h['step']}/{n_steps}: mean batch inertia: {mean}"
        if h.get("ewa_inertia") is not None:
            line += f", ewa inertia: {h['ewa_inertia']}"
        print(line)
    if steps and steps[-1]["step"] < n_steps:
        last = steps[-1]
        if tol_abs > 0.0 and last["center_shift"] <= tol_abs:
            print(f"Converged (small centers change) at step {last['step']}/{n_steps}")
        else:
            print(f"Converged (lack of improvement in inertia) at step "
                  f"{last['step']}/{n_steps}")


def say_bisecting(history: Sequence[dict[str, Any]]) -> None:
    """A bisecting fit's rounds: the bisections run together and their passes."""
    for i, h in enumerate(history):
        print(f"Round {i}: " + ", ".join(f"{k} {v}" for k, v in h.items()))
