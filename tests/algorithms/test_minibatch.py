"""The mini-batch loop's rules against scikit-learn's, transcribed: early stopping on
the smoothed batch inertia or the centre shift, the reassignment schedule, and the
batches drawn by weight."""

from __future__ import annotations

import numpy as np
import pytest

from daskmeans.algorithms.minibatch import (
    MiniBatchSpec,
    MiniBatchState,
    batch_rows,
    minibatch_converged,
    random_reassign,
    weights_cdf,
)


def sklearn_stop(inertias: np.ndarray, shifts: np.ndarray, n: int, batch: int, tol: float,
                 max_no_improvement: int | None) -> tuple[int | None, list[float | None]]:
    """scikit-learn's ``MiniBatchKMeans._mini_batch_convergence`` over a run of steps,
    written out: the 1-based step it stops at (or None) and the smoothed inertia after
    each step."""
    ewa = ewa_min = None
    no_improvement, seen = 0, []
    for i, (inertia, shift) in enumerate(zip(inertias, shifts, strict=True)):
        inertia /= batch
        if i == 0:  # the first step's inertia is the initialisation's
            seen.append(None)
            continue
        if ewa is None:
            ewa = inertia
        else:
            alpha = min(batch * 2.0 / (n + 1), 1)
            ewa = ewa * (1 - alpha) + inertia * alpha
        seen.append(ewa)
        if tol > 0.0 and shift <= tol:
            return i + 1, seen
        if ewa_min is None or ewa < ewa_min:
            no_improvement, ewa_min = 0, ewa
        else:
            no_improvement += 1
        if max_no_improvement is not None and no_improvement >= max_no_improvement:
            return i + 1, seen
    return None, seen


@pytest.mark.parametrize(("n", "batch", "tol", "patience"),
                         [(10_000, 100, 0.0, 10), (10_000, 100, 0.0, 3), (500, 400, 0.0, 2),
                          (10_000, 100, 0.02, None), (10_000, 100, 0.0, None)])
def test_early_stopping_is_scikit_learns(n: int, batch: int, tol: float,
                                         patience: int | None) -> None:
    rng = np.random.default_rng(batch + (patience or 0))
    steps = 600
    inertias = batch * (5.0 + 20.0 * np.exp(-np.arange(steps) / 15) + rng.normal(0, 0.3, steps))
    shifts = 1.0 * np.exp(-np.arange(steps) / 20)
    expected, ewas = sklearn_stop(inertias, shifts, n, batch, tol, patience)
    state = MiniBatchState.start(np.zeros((3, 2)))
    spec = MiniBatchSpec(batch, steps, max_no_improvement=patience, tol_abs=tol)
    stopped = None
    for i in range(steps):
        state.step += 1
        why = minibatch_converged(state, spec, n, float(shifts[i]), float(inertias[i]), batch)
        assert state.ewa_inertia == ewas[i]
        if why:
            stopped = state.step
            break
    assert stopped == expected
    if patience is not None or tol > 0:
        assert stopped is not None  # the case stops, and at scikit-learn's step


def test_reassignment_schedule_is_scikit_learns() -> None:
    """Every ``10 * n_clusters`` rows counted, or whenever a centre has seen nothing."""
    state = MiniBatchState.start(np.zeros((5, 2)))
    state.counts[:] = 1.0
    got = [random_reassign(state, 20) for _ in range(6)]
    assert got == [False, False, True, False, False, True]  # 60 rows >= 50: reset
    state.counts[3] = 0.0
    assert random_reassign(state, 1) and random_reassign(state, 1)


def test_weighted_batches_follow_the_weights() -> None:
    w = np.array([0.0, 1.0, 3.0, 0.0, 4.0])
    rows = batch_rows(np.random.default_rng(0), 5, 80_000, weights_cdf(w))
    share = np.bincount(rows, minlength=5) / len(rows)
    np.testing.assert_allclose(share, w / w.sum(), atol=0.01)
    assert share[0] == share[3] == 0.0  # a row of zero weight never enters a batch
    # the same draws as numpy's Generator.choice with p
    a = batch_rows(np.random.default_rng(4), 5, 50, weights_cdf(w))
    b = np.random.default_rng(4).choice(5, 50, p=w / w.sum())
    np.testing.assert_array_equal(a, b)
