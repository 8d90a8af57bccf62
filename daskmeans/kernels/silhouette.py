"""The silhouette's per-cluster sums of Euclidean distances from query rows to every
row of a block."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from . import common
from .common import NonFiniteRow, is_sparse, onehot
from .scores import LabelError, as_label_codes


@dataclass
class Queries:
    """Rows whose Euclidean distances to every row of the data are summed per cluster
    (the silhouette's a(i) and b(i)), with their global row indices (sorted, distinct)."""

    rows: Any  # (m, d) float, dense or CSR
    index: np.ndarray  # (m,) int64

    @property
    def nbytes(self) -> int:
        rows = self.rows
        held = (rows.data.nbytes + rows.indices.nbytes + rows.indptr.nbytes
                if is_sparse(rows) else rows.nbytes)
        return int(held + self.index.nbytes)


@dataclass
class ClusterDistances:
    """Per-cluster sums of distances to the queries over one or more blocks; added with
    ``+`` (tables of different cluster counts are zero-padded)."""

    sums: np.ndarray  # (k, m) float64: sums[c, j] = sum over rows x of cluster c of |x - q_j|
    counts: np.ndarray  # (k,) int64 rows per cluster
    own: np.ndarray  # (m,) int64 cluster of each query (-1 while its row is not among these)

    def __add__(self, other: ClusterDistances) -> ClusterDistances:
        own = np.maximum(self.own, other.own)
        if self.sums.shape == other.sums.shape:
            return ClusterDistances(self.sums + other.sums, self.counts + other.counts, own)
        k = max(self.sums.shape[0], other.sums.shape[0])
        sums = np.zeros((k, self.sums.shape[1]))
        counts = np.zeros(k, dtype=np.int64)
        for part in (self, other):
            sums[: part.sums.shape[0]] += part.sums
            counts[: part.counts.shape[0]] += part.counts
        return ClusterDistances(sums, counts, own)


def _float64_rows(X: Any) -> Any:
    """Rows (dense or CSR) in float64."""
    return X.astype(np.float64) if is_sparse(X) else np.asarray(X, dtype=np.float64)


def _sq(X: Any) -> np.ndarray:
    """float64 ``|x|^2`` of float64 rows, dense or CSR."""
    return common.sparse_row_norms_sq(X, np.float64) if is_sparse(X) else np.einsum(
        "ij,ij->i", X, X)


def cluster_distance_sums(X: np.ndarray, labels: np.ndarray, queries: Queries, *,
                          offset: int = 0) -> ClusterDistances:
    """Distances from every query to the rows of one block, summed per cluster.

    Parameters
    ----------
    X : (n, d) float rows of the block (dense or CSR; the queries' rows too)
    labels : (n,) their clusters, non-negative integers (validated here: the error
        names ``labels``)
    queries : (m, d) rows and their global indices; a query that is row ``offset + i``
        of the data is at distance exactly 0 from ``X[i]`` (as scikit-learn zeroes the
        diagonal)
    offset : global index of ``X[0]``

    Returns
    -------
    ClusterDistances with ``sums`` (max label + 1, m) float64, ``counts`` and ``own``
    (the label of each query that is a row of this block, else -1)

    Distances are computed in float64 (``|x|^2 + |q|^2 - 2 x.q``, clipped at 0, square
    root), in tiles of rows whose (tile, m) distance block stays under
    :data:`~daskmeans.kernels.common.DIST_BLOCK_BYTES`, and summed per cluster by a sparse
    one-hot product.

    Examples
    --------
    >>> q = Queries(np.array([[0.0, 0.0]]), np.array([0]))
    >>> r = cluster_distance_sums(np.array([[0.0, 0.0], [3.0, 4.0], [6.0, 8.0]]),
    ...                           np.array([0, 1, 1]), q)
    >>> r.sums.tolist(), r.counts.tolist(), r.own.tolist()
    ([[0.0], [15.0]], [1, 2], [0])
    """
    codes = as_label_codes(labels, "labels")
    n, m = X.shape[0], queries.rows.shape[0]
    if codes.shape[0] != n:
        raise LabelError(f"labels must have one entry per row of X, got {codes.shape[0]} "
                         f"for {n} rows")
    k = int(codes.max()) + 1 if n else 0
    sums = np.zeros((k, m))
    counts = np.bincount(codes, minlength=k).astype(np.int64)
    # the queries that are rows of this block: their label, and their own distance is 0
    lo, hi = np.searchsorted(queries.index, [offset, offset + n])
    own_rows, own_q = queries.index[lo:hi] - offset, np.arange(lo, hi)
    own = np.full(m, -1, dtype=np.int64)
    own[own_q] = codes[own_rows]
    if n == 0 or m == 0:
        return ClusterDistances(sums, counts, own)
    Q = _float64_rows(queries.rows)
    qsq = _sq(Q)
    step = max(1, common.DIST_BLOCK_BYTES // (8 * m))
    for s in range(0, n, step):
        x = _float64_rows(X[s:s + step])
        xsq = _sq(x)
        if not np.isfinite(xsq).all():
            raise NonFiniteRow(s + int(np.flatnonzero(~np.isfinite(xsq))[0]))
        D = common.dense(x @ Q.T)  # CSR rows or queries: a sparse product, then dense
        D *= -2
        D += xsq[:, None]
        D += qsq
        np.maximum(D, 0, out=D)
        np.sqrt(D, out=D)
        mine = (own_rows >= s) & (own_rows < s + x.shape[0])
        D[own_rows[mine] - s, own_q[mine]] = 0
        t = codes[s:s + x.shape[0]]
        sums += onehot(t, k, np.ones(t.shape[0])) @ D
    return ClusterDistances(sums, counts, own)
