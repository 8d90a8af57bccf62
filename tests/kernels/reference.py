"""Brute-force references the kernel tests compare with."""

from __future__ import annotations

import numpy as np


def brute_sqdist(X: np.ndarray, C: np.ndarray) -> np.ndarray:
    """(n, k) squared Euclidean distances from float64 differences."""
    return ((X[:, None, :].astype(np.float64) - C[None, :, :]) ** 2).sum(-1)


def brute_two_means(X: np.ndarray, w: np.ndarray, C: np.ndarray, max_iter: int,
                    tol: float) -> tuple[np.ndarray, np.ndarray, int]:
    """A 2-means, row by row in float64 (Lloyd's iterations; an empty child takes the
    row farthest from its centre, of positive weight, the first on a tie, which leaves
    its child; stop at a fixed point, when the squared shift is <= tol, or after
    max_iter): (final centres, labels against them, iterations)."""
    X = X.astype(np.float64)
    C = np.array(C, np.float64)
    n_iter = 0
    for _ in range(max_iter):
        d = brute_sqdist(X, C)
        lab = (d[:, 1] < d[:, 0]).astype(int)
        n_iter += 1
        sums = np.zeros_like(C)
        wts = np.zeros(2)
        for i in range(len(X)):
            sums[lab[i]] += w[i] * X[i]
            wts[lab[i]] += w[i]
        moved = 0
        if (wts == 0).any():
            own = d[np.arange(len(X)), lab]
            far = max((i for i in range(len(X)) if w[i] > 0), key=lambda i: (own[i], -i))
            empty = int(np.flatnonzero(wts == 0)[0])
            sums[lab[far]] -= w[far] * X[far]
            wts[lab[far]] -= w[far]
            sums[empty], wts[empty] = w[far] * X[far], w[far]
            moved = 1
        new = np.array([sums[c] / wts[c] if wts[c] > 0 else C[c] for c in (0, 1)])
        shift = float(((new - C) ** 2).sum())
        C = new
        if (shift == 0 and moved == 0) or shift <= tol:
            break
    d = brute_sqdist(X, C)
    return C, (d[:, 1] < d[:, 0]).astype(int), n_iter
