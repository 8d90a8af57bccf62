"""The silhouette's kernel: per-cluster sums of distances to query rows."""

from __future__ import annotations

import numpy as np
import pytest

from daskmeans.kernels import scores, silhouette

from .reference import brute_sqdist


def test_cluster_distance_sums_against_brute_force() -> None:
    """Two blocks added: every query's summed distances per cluster, the clusters'
    sizes and each query's own cluster, against numpy brute force."""
    rng = np.random.default_rng(3)
    X = rng.normal(size=(200, 5))
    labels = rng.integers(0, 4, 200)
    index = np.array([0, 7, 120, 199])
    q = silhouette.Queries(X[index], index)
    got = (silhouette.cluster_distance_sums(X[:90], labels[:90], q)
           + silhouette.cluster_distance_sums(X[90:], labels[90:], q, offset=90))
    D = np.sqrt(brute_sqdist(X, X[index]))
    D[index, np.arange(4)] = 0
    for c in range(4):
        np.testing.assert_allclose(got.sums[c], D[labels == c].sum(0), rtol=1e-9, atol=1e-9)
    assert got.counts.tolist() == np.bincount(labels, minlength=4).tolist()
    assert got.own.tolist() == labels[index].tolist()
    with pytest.raises(scores.LabelError, match="one entry per row"):
        silhouette.cluster_distance_sums(X[:5], labels[:4], q)
