"""Seeding: greedy k-means++ on rows in memory, and the per-block passes of
k-means|| (oversampling by key, then the weight of rows nearest each candidate)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .common import row_norms_sq, splitmix64_uniform
from .metric import Metric, as_metric


def kmeans_plusplus(
    X: np.ndarray,
    n_clusters: int,
    rng: np.random.Generator,
    weights: np.ndarray | None = None,
    n_local_trials: int | None = None,
    metric: str | Metric = "euclidean",
) -> np.ndarray:
    """Greedy k-means++ (Arthur & Vassilvitskii; greedy variant as in scikit-learn).

    Each new centre is the best of ``2 + log(k)`` candidates drawn with probability
    proportional to weight x squared distance (x L1 distance for
    ``metric="manhattan"``, the k-medians seeding: the potential is then the L1
    objective). Returns (k, d) centres in X's dtype.
    """
    metric = as_metric(metric)
    n, d = X.shape
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)
    if n_local_trials is None:
        n_local_trials = 2 + int(np.log(n_clusters))
    centers = np.empty((n_clusters, d), dtype=X.dtype)
    x_sq = row_norms_sq(X).astype(np.float64) if metric.uses_row_norms else np.empty(0)
    first = rng.choice(n, p=w / w.sum())
    centers[0] = X[first]

    def sqd(cands: np.ndarray) -> np.ndarray:
        return metric.seeding_distances(X, x_sq, cands)

    closest = sqd(centers[:1])[0]
    pot = float(closest @ w)
    for c in range(1, n_clusters):
        if pot <= 0:  # fewer distinct points than clusters: duplicate one
            centers[c] = X[rng.integers(n)]
            continue
        cum = np.cumsum(closest * w)
        ids = np.searchsorted(cum, rng.uniform(size=n_local_trials) * cum[-1])
        np.clip(ids, None, n - 1, out=ids)
        dcand = np.minimum(closest, sqd(X[ids]))
        pots = dcand @ w
        best = int(np.argmin(pots))
        pot, closest = float(pots[best]), dcand[best]
        centers[c] = X[ids[best]]
    return centers



@dataclass
class Oversample:
    """One k-means|| round's contribution: total cost and the top rows by sampling key.

    ``cap``: the rows asked for; a block smaller than that holds all its rows, and a sum
    keeps the ``cap`` largest keys of both (all of them when neither records a cap), as
    :func:`~daskmeans.kernels.common.merge_top` does.
    """

    cost: float
    key: np.ndarray  # (m,) float64, descending
    index: np.ndarray  # (m,) int64
    rows: np.ndarray  # (m, d)
    cap: int = 0

    def __add__(self, other: Oversample) -> Oversample:
        m = max(self.cap, other.cap) or len(self.key) + len(other.key)
        key = np.concatenate([self.key, other.key])
        index = np.concatenate([self.index, other.index])
        order = np.lexsort((index, -key))[:m]
        return Oversample(
            self.cost + other.cost, key[order], index[order],
            np.concatenate([self.rows, other.rows])[order], m,
        )


def oversample_partial(
    X: np.ndarray,
    C: np.ndarray,
    weights: np.ndarray | None,
    *,
    offset: int,
    seed: int,
    m: int,
    metric: str | Metric = "euclidean",
) -> Oversample:
    """k-means|| sampling in one pass: row i is kept when ``w d^2 / u_i > cost / l``.

    The key ``w d^2 / u`` (u from :func:`splitmix64_uniform`) does not depend on the
    chunking; each chunk returns its ``m`` largest keys and the caller, once the total
    cost is known, keeps those above the threshold. ``metric="manhattan"``: ``d`` is
    the L1 distance (not squared).
    """
    _, sqdist = as_metric(metric).assign(X, C)
    w = np.ones(X.shape[0]) if weights is None else np.asarray(weights, np.float64)
    cost_i = sqdist.astype(np.float64) * w
    u = splitmix64_uniform(np.arange(X.shape[0]) + offset, seed)
    key = cost_i / np.maximum(u, 1e-300)
    mm = min(m, key.shape[0])
    idx = np.argpartition(-key, mm - 1)[:mm] if 0 < mm < key.shape[0] else np.arange(mm)
    order = np.lexsort((idx, -key[idx]))
    idx = idx[order]
    return Oversample(float(cost_i.sum()), key[idx], idx.astype(np.int64) + offset, X[idx],
                      m)


def count_nearest(
    X: np.ndarray, C: np.ndarray, weights: np.ndarray | None = None,
    metric: str | Metric = "euclidean",
) -> np.ndarray:
    """Weight of rows nearest to each centre of C (in L1 distance for
    ``metric="manhattan"``), (k,) float64."""
    labels, _ = as_metric(metric).assign(X, C)
    return np.bincount(labels, weights=weights, minlength=C.shape[0]).astype(np.float64)
