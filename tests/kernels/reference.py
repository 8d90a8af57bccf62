"""Brute-force references the kernel tests compare with."""

from __future__ import annotations

import numpy as np


def brute_sqdist(X: np.ndarray, C: np.ndarray) -> np.ndarray:
    """(n, k) squared Euclidean distances from float64 differences."""
    return ((X[:, None, :].astype(np.float64) - C[None, :, :]) ** 2).sum(-1)
