"""The metrics of a fit as objects: what a pass or an estimator needs from the metric,
asked of the metric instead of branching on its name.

Three instances: :data:`EUCLIDEAN` (k-means), :data:`COSINE` (spherical k-means: the
Euclidean kernels on rows and centres scaled to unit L2 norm) and :data:`MANHATTAN`
(k-medians: L1 distances, centres at the coordinate-wise medians).
:func:`as_metric` turns a metric's name into its object.

Examples
--------
>>> X, C = np.array([[0., 0.], [3., 1.]]), np.array([[0., 1.], [4., 1.]])
>>> EUCLIDEAN.assign(X, C)[1].tolist(), MANHATTAN.assign(X, C)[1].tolist()
([1.0, 1.0], [1.0, 1.0])
>>> as_metric("manhattan") is MANHATTAN, COSINE.normalizes_rows
(True, True)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from . import sparse
from .common import (
    Centres,
    assign,
    distances,
    is_sparse,
    nearest_labels,
    normalize_rows,
    row_norms_sq,
)
from .lloyd import lloyd_runs
from .medians import L1Centres, l1_assign, l1_distances, median_assign


class Metric:
    """A distance between rows and centres, and what follows from it.

    Attributes
    ----------
    name : the metric's name as the estimators take it (``metric=...``)
    normalizes_rows : rows and centres are scaled to unit L2 norm (cosine)
    squared : the objective sums squared distances (Euclidean, cosine), not plain
        distances (Manhattan's L1)
    uses_row_norms : the distance kernels use the rows' ``|x|^2`` (held with the rows
        once per fit); also whether the Euclidean distance bounds apply
    """

    name: str = ""
    normalizes_rows: bool = False
    squared: bool = True
    uses_row_norms: bool = True

    def __repr__(self) -> str:
        return f"<metric {self.name}>"

    def prepare(self, C: np.ndarray, dtype: np.dtype) -> Any:
        """The centres prepared once per pass for this metric's distances (shared by
        every block's task)."""
        raise NotImplementedError

    def nearest_labels(self, X: np.ndarray, C: Any, *, scale: float | None = None
                       ) -> np.ndarray:
        """(n,) int32 nearest centre of every row (``scale``: X holds raw rows standing
        for ``float32(X) * scale``)."""
        raise NotImplementedError

    def assign(self, X: np.ndarray, C: Any) -> tuple[np.ndarray, np.ndarray]:
        """(labels (n,) int32, each row's term of the objective (n,) float64): the
        squared distance to its centre, or the L1 distance."""
        raise NotImplementedError

    def distances(self, X: np.ndarray, C: Any) -> np.ndarray:
        """(n, k) distances (not squared) to every centre, in X's dtype: ``transform``."""
        raise NotImplementedError

    def seeding_distances(self, X: np.ndarray, x_sq: np.ndarray, cands: np.ndarray
                          ) -> np.ndarray:
        """(m, n) float64 potential of every row against each of the ``m`` candidate
        centres ``cands`` (k-means++): squared distances, or L1 distances. ``x_sq``:
        the rows' ``|x|^2`` in float64."""
        raise NotImplementedError

    def finish_centres(self, C: np.ndarray) -> np.ndarray:
        """Centres after an update step: projected back to the unit sphere for cosine,
        else as they are."""
        return normalize_rows(C) if self.normalizes_rows else C

    @property
    def block_update(self) -> Callable[..., Any]:
        """The kernel of an iteration's first pass over a block: Lloyd's per-cluster sums
        (:func:`~daskmeans.kernels.lloyd.lloyd_runs`) or the k-medians assignment and
        first histograms (:func:`~daskmeans.kernels.medians.median_assign`)."""
        raise NotImplementedError


class _Euclidean(Metric):
    """Euclidean distances by the GEMM, near ties settled in float64 (cosine: the same
    on unit rows and centres); CSR rows by the sparse kernels
    (:mod:`daskmeans.kernels.sparse`), the one place a block's kind is looked at."""

    def __init__(self, name: str, normalizes_rows: bool) -> None:
        self.name, self.normalizes_rows = name, normalizes_rows

    def prepare(self, C: np.ndarray, dtype: np.dtype) -> Centres:
        return Centres(C, dtype)

    def nearest_labels(self, X: np.ndarray, C: Any, *, scale: float | None = None
                       ) -> np.ndarray:
        if is_sparse(X):
            return sparse.nearest_labels(X, C)
        return nearest_labels(X, C, scale=scale)

    def assign(self, X: np.ndarray, C: Any) -> tuple[np.ndarray, np.ndarray]:
        return sparse.assign(X, C) if is_sparse(X) else assign(X, C)

    def distances(self, X: np.ndarray, C: Any) -> np.ndarray:
        return sparse.distances(X, C) if is_sparse(X) else distances(X, C)

    def seeding_distances(self, X: np.ndarray, x_sq: np.ndarray, cands: np.ndarray
                          ) -> np.ndarray:
        # GEMM in X's dtype (float32 stays float32), distances kept in float64. Dense
        # rows: the candidates times the rows' transpose, so that the GEMM writes the
        # (m, n) result row-major (the seeding reads it a candidate at a time; a
        # transposed (n, m) product would cost a strided copy as large as the product);
        # CSR rows: the sparse-dense product, padded to an efficient width (padded_k)
        if is_sparse(X):
            D = np.asarray(X @ Centres(cands, X.dtype).m2t)[:, : len(cands)].T.astype(
                np.float64, order="C")
        else:
            D = (np.asarray(cands, X.dtype) @ X.T).astype(np.float64)
            D *= -2
        D += row_norms_sq(cands.astype(np.float64))[:, None]
        D += x_sq
        return np.maximum(D, 0, out=D)

    @property
    def block_update(self) -> Callable[..., Any]:
        return lloyd_runs


class _Manhattan(Metric):
    """L1 distances in float64, the features added in order (compiled and numpy alike)."""

    name = "manhattan"
    squared = False
    uses_row_norms = False

    def prepare(self, C: np.ndarray, dtype: np.dtype) -> L1Centres:
        return L1Centres(C)

    def nearest_labels(self, X: np.ndarray, C: Any, *, scale: float | None = None
                       ) -> np.ndarray:
        return l1_assign(X, C, scale)[0]

    def assign(self, X: np.ndarray, C: Any) -> tuple[np.ndarray, np.ndarray]:
        return l1_assign(X, C)

    def distances(self, X: np.ndarray, C: Any) -> np.ndarray:
        return l1_distances(X, C).astype(X.dtype, copy=False)

    def seeding_distances(self, X: np.ndarray, x_sq: np.ndarray, cands: np.ndarray
                          ) -> np.ndarray:
        return l1_distances(X, cands).T

    @property
    def block_update(self) -> Callable[..., Any]:
        return median_assign


#: k-means: squared Euclidean distances.
EUCLIDEAN: Metric = _Euclidean("euclidean", normalizes_rows=False)
#: spherical k-means: Euclidean distances between rows and centres of unit L2 norm.
COSINE: Metric = _Euclidean("cosine", normalizes_rows=True)
#: k-medians: L1 distances.
MANHATTAN: Metric = _Manhattan()

METRICS: dict[str, Metric] = {m.name: m for m in (EUCLIDEAN, COSINE, MANHATTAN)}


def as_metric(metric: str | Metric) -> Metric:
    """The metric object of a name (``"euclidean"``, ``"cosine"``, ``"manhattan"``), or
    the object itself."""
    if isinstance(metric, Metric):
        return metric
    try:
        return METRICS[metric]
    except KeyError:
        raise ValueError(f"unknown metric {metric!r}: expected one of "
                         f"{sorted(METRICS)}") from None
