"""Seeding: greedy k-means++ on rows in memory, and the per-block passes of
k-means|| (oversampling by key, then the weight of rows nearest each candidate)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .common import row_access, row_norms_sq, splitmix64_uniform
from .metric import Metric, as_metric

#: the distances of one batch of k-means++ candidates take at most this many bytes
BATCH_MAX_BYTES = 64 << 20


def kmeans_plusplus(
    X: np.ndarray,
    n_clusters: int,
    rng: np.random.Generator,
    weights: np.ndarray | None = None,
    n_local_trials: int | None = None,
    metric: str | Metric = "euclidean",
    *,
    batch: int = 1,
    report: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Greedy k-means++ (Arthur & Vassilvitskii; greedy variant as in scikit-learn).

    Each new centre is the best of ``2 + log(k)`` candidates drawn with probability
    proportional to weight x squared distance (x L1 distance for
    ``metric="manhattan"``, the k-medians seeding: the potential is then the L1
    objective). Returns (k, d) centres in X's dtype, dense (X may be CSR rows).

    ``batch > 1`` draws the candidates of ``batch`` centres at once, from the
    potential as it stood before the batch, and computes all their distances in one
    GEMM; the centres of the batch are then chosen one after another as above, each
    the candidate of its draw that lowers the potential most given the centres chosen
    so far (so a candidate whose region an earlier centre of the batch now covers
    loses). Each row is then read once per batch instead of once per centre: the
    distances are a matrix product instead of memory-bound matrix-vector products.
    ``batch=1`` is the classic sequential algorithm, draw for draw.

    ``report(done, k)`` is called as centres are chosen (about a hundred times).
    """
    metric = as_metric(metric)
    n, d = X.shape
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)
    if n_local_trials is None:
        n_local_trials = 2 + int(np.log(n_clusters))
    trials = n_local_trials
    centers = np.empty((n_clusters, d), dtype=X.dtype)
    x_sq = row_norms_sq(X).astype(np.float64) if metric.uses_row_norms else np.empty(0)
    rows = row_access(X)  # dense rows of X (CSR rows: a few densified at a time)
    first = rng.choice(n, p=w / w.sum())
    centers[0] = rows[first]

    def sqd(cands: np.ndarray) -> np.ndarray:
        return metric.seeding_distances(X, x_sq, cands)

    closest = sqd(centers[:1])[0]
    pot = float(closest @ w)
    # the candidates' distances of a batch, (batch * trials, n) float64, stay bounded
    batch = max(1, min(batch, BATCH_MAX_BYTES // (8 * trials * n)))
    every, next_report = max(1, n_clusters // 100), 1
    c = 1
    while c < n_clusters:
        if pot <= 0:  # fewer distinct points than clusters: duplicate one
            centers[c] = rows[rng.integers(n)]
            c += 1
        else:
            b = min(batch, n_clusters - c)
            cum = np.cumsum(closest * w)
            ids = np.searchsorted(cum, rng.uniform(size=(b, trials)) * cum[-1])
            np.clip(ids, None, n - 1, out=ids)
            dist = sqd(rows[ids.ravel()]).reshape(b, trials, n)
            for j in range(b):  # one buffer for every draw: no fresh pages per centre
                dcand = np.minimum(closest, dist[j], out=dist[j])
                pots = dcand @ w
                best = int(np.argmin(pots))
                pot = float(pots[best])
                closest[:] = dcand[best]
                centers[c] = rows[ids[j, best]]
                c += 1
                if pot <= 0:  # the rest of the batch's draws are void
                    break
        if report is not None and (c >= next_report or c == n_clusters):
            report(c, n_clusters)
            next_report = c + every
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
    return Oversample(float(cost_i.sum()), key[idx], idx.astype(np.int64) + offset,
                      row_access(X)[idx], m)


def count_nearest(
    X: np.ndarray, C: np.ndarray, weights: np.ndarray | None = None,
    metric: str | Metric = "euclidean",
) -> np.ndarray:
    """Weight of rows nearest to each centre of C (in L1 distance for
    ``metric="manhattan"``), (k,) float64."""
    labels, _ = as_metric(metric).assign(X, C)
    return np.bincount(labels, weights=weights, minlength=C.shape[0]).astype(np.float64)
