"""Mini-batch steps against independent references: scikit-learn's estimator and the
count-weighted running mean written out in numpy.

A step from zero counts is the batch mean whatever the learning rate, so every check
here takes at least two steps: only the second one shows the rate.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.cluster import MiniBatchKMeans as SkMiniBatchKMeans

from daskmeans import MiniBatchKMeans


def batches(n_batches: int = 3, n: int = 40, d: int = 3) -> list[np.ndarray]:
    rng = np.random.default_rng(11)
    centres = np.array([[0.0, 0.0, 0.0], [6.0, 0.0, 1.0], [0.0, 7.0, -2.0]])
    return [centres[rng.integers(0, 3, n)] + rng.normal(0, 1.5, (n, d))
            for _ in range(n_batches)]


INIT = np.array([[1.0, 1.0, 0.0], [5.0, 1.0, 0.0], [1.0, 5.0, 0.0]])


def running_mean_steps(steps: list[np.ndarray], C: np.ndarray,
                       weights: list[np.ndarray] | None = None) -> list[np.ndarray]:
    """scikit-learn's rule (``_k_means_minibatch.update_center_dense``), brute force:
    label the batch against the current centres, then for every centre with batch
    weight ``w_b > 0``: ``c <- (c * N + sum_b(w x)) / (N + w_b)``, ``N <- N + w_b``."""
    C = C.astype(np.float64).copy()
    N = np.zeros(len(C))
    out = []
    for i, X in enumerate(steps):
        w = np.ones(len(X)) if weights is None else weights[i]
        labels = ((X[:, None, :] - C[None]) ** 2).sum(-1).argmin(1)
        new = C.copy()
        for j in range(len(C)):
            mine = labels == j
            wb = w[mine].sum()
            if wb > 0:
                new[j] = (C[j] * N[j] + (w[mine, None] * X[mine]).sum(0)) / (N[j] + wb)
                N[j] += wb
        C = new
        out.append(C.copy())
    return out


def test_partial_fit_steps_match_sklearn_and_the_running_mean() -> None:
    data = batches()
    ours = MiniBatchKMeans(3, init=INIT, n_init=1, reassignment_ratio=0.0)
    theirs = SkMiniBatchKMeans(3, init=INIT, n_init=1, reassignment_ratio=0.0)
    expected = running_mean_steps(data, INIT)
    for step, X in enumerate(data):
        ours.partial_fit(X)
        theirs.partial_fit(X)
        np.testing.assert_allclose(ours.cluster_centers_, expected[step], rtol=1e-12,
                                   atol=1e-12, err_msg=f"step {step}: numpy running mean")
        np.testing.assert_allclose(ours.cluster_centers_, theirs.cluster_centers_,
                                   rtol=1e-10, atol=1e-10, err_msg=f"step {step}: sklearn")
    # the second step is not the batch mean: the rate is 1/N, not 1
    last = ours.cluster_centers_
    labels = ((data[-1][:, None] - expected[-2][None]) ** 2).sum(-1).argmin(1)
    batch_mean = np.array([data[-1][labels == j].mean(0) for j in range(3)])
    assert np.abs(last - batch_mean).max() > 0.05


def test_weighted_partial_fit_steps_match_sklearn() -> None:
    data = batches()
    rng = np.random.default_rng(5)
    weights = [rng.uniform(0.2, 3.0, len(X)) for X in data]
    ours = MiniBatchKMeans(3, init=INIT, n_init=1, reassignment_ratio=0.0)
    theirs = SkMiniBatchKMeans(3, init=INIT, n_init=1, reassignment_ratio=0.0)
    expected = running_mean_steps(data, INIT, weights)
    for step, (X, w) in enumerate(zip(data, weights, strict=True)):
        ours.partial_fit(X, sample_weight=w)
        theirs.partial_fit(X, sample_weight=w)
        np.testing.assert_allclose(ours.cluster_centers_, expected[step], rtol=1e-12,
                                   atol=1e-12, err_msg=f"step {step}: numpy running mean")
        np.testing.assert_allclose(ours.cluster_centers_, theirs.cluster_centers_,
                                   rtol=1e-10, atol=1e-10, err_msg=f"step {step}: sklearn")


@pytest.mark.parametrize("weighted", [False, True])
def test_steps_with_reassignment_match_sklearn_partial_fit(weighted: bool) -> None:
    """Given the same batches and the same seed, every step as scikit-learn's
    ``partial_fit``: the count-weighted update, and the reassignment of low-count
    centres (which ones, to which rows of the batch, their counts reset)."""
    rng = np.random.default_rng(2)
    true = np.array([[0.0, 0.0, 0.0], [8.0, 0.0, 1.0], [0.0, 9.0, -2.0], [6.0, 6.0, 6.0]])
    data = [true[rng.integers(0, 4, 150)] + rng.normal(0, 1.0, (150, 3)) for _ in range(8)]
    weights = [rng.uniform(0.2, 3.0, 150) for _ in data] if weighted else [None] * len(data)
    # two centres far away: nobody's nearest, so they get reassigned
    init = np.vstack([true[:3] + 0.5, [[40.0, 40.0, 40.0]], [[-40.0, 0.0, 0.0]], true[3:]])
    params = {"init": init, "n_init": 1, "batch_size": 150, "reassignment_ratio": 0.05,
              "random_state": 7}
    ours, theirs = MiniBatchKMeans(6, **params), SkMiniBatchKMeans(6, **params)
    for step, (X, w) in enumerate(zip(data, weights, strict=True)):
        ours.partial_fit(X, sample_weight=w)
        theirs.partial_fit(X, sample_weight=w)
        np.testing.assert_allclose(ours.cluster_centers_, theirs.cluster_centers_,
                                   rtol=1e-10, atol=1e-10, err_msg=f"step {step}")
    assert sum(h["n_reassigned"] for h in ours.history_) >= 2
    assert np.abs(ours.cluster_centers_).max() < 20  # the far centres came back
