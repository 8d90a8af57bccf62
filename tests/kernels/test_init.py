"""Seeding kernels: k-means++ and the k-means|| passes."""

from __future__ import annotations

import numpy as np
import pytest

from daskmeans.kernels import init

from .reference import brute_sqdist


@pytest.mark.usefixtures("both_kernels")
def test_kmeans_plusplus_picks_distinct_blobs() -> None:
    rng = np.random.default_rng(4)
    centres = np.array([[0, 0], [100, 0], [0, 100]], dtype=float)
    X = np.concatenate([c + rng.normal(size=(50, 2)) for c in centres])
    C = init.kmeans_plusplus(X, 3, np.random.default_rng(0))
    owners = np.argmin(brute_sqdist(C, centres), axis=1)
    assert sorted(owners.tolist()) == [0, 1, 2]
