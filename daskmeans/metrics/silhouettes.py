"""Silhouette coefficients, exact or of a sample of rows measured against all rows,
as tree-reduced passes over any source."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np

from ..engine import evaluation
from ..engine.source import ArraySource, Source, as_source
from ..io.stores import is_zarr
from ..kernels.scores import LabelError, as_label_codes
from ..kernels.silhouette import Queries
from .scores import as_label_vector

__all__ = [
    "SILHOUETTE_PASS_BYTES",
    "Silhouette",
    "SilhouetteSample",
    "as_data_source",
    "sample_index",
    "silhouette",
    "silhouette_samples",
    "silhouette_score",
]

#: bytes of the per-cluster distance sums (k x queries, float64) and of the float64
#: query rows one exact-silhouette pass carries; more queries go in further reductions.
SILHOUETTE_PASS_BYTES = 32 << 20


@dataclass(frozen=True)
class Silhouette:
    """Silhouette coefficients of a sample of rows (of every row when exact).

    ``values[j]`` is the silhouette of row ``index[j]`` measured against ALL rows:
    ``(b - a) / max(a, b)`` with ``a`` the mean distance to the other rows of its
    cluster and ``b`` the smallest mean distance to the rows of another cluster (0 for
    a row alone in its cluster), as scikit-learn defines it.
    """

    score: float  #: mean of ``values``: the mean silhouette (estimated from the sample)
    standard_error: float  #: of ``score`` as an estimate of the all-rows mean; 0 if exact
    n_samples: int  #: rows in the data
    index: np.ndarray  #: (m,) sorted rows the values belong to
    values: np.ndarray  #: (m,) their silhouette coefficients
    labels: np.ndarray  #: (m,) their clusters
    a: np.ndarray  #: (m,) mean distance to the other rows of the own cluster
    b: np.ndarray  #: (m,) smallest mean distance to the rows of another cluster

    @property
    def exact(self) -> bool:
        """True when every row is in the sample (``score`` is the exact mean)."""
        return int(self.index.size) == self.n_samples


def as_data_source(X: Any) -> Source:
    """X as a :class:`~daskmeans.engine.source.Source`: lazy inputs (dask, Zarr, a store
    path, a source) as they are, array-likes checked as float64/float32 rows (dense, or
    ``scipy.sparse`` CSR rows)."""
    from sklearn.utils import check_array

    if isinstance(X, Source | da.Array | str | Path) or is_zarr(X):
        return as_source(X)
    return as_source(check_array(X, accept_sparse="csr", dtype=[np.float64, np.float32]))


def silhouette(X: Any, labels: Any, *, sample_size: int | None = None,
               random_state: int | np.random.Generator | None = None) -> Silhouette:
    """Silhouette coefficients of every row (exact) or of a random sample of rows,
    each measured against ALL rows; the sample's mean estimates the mean silhouette.

    Exact (``sample_size=None``, or at least the number of rows): the values equal
    ``sklearn.metrics.silhouette_samples`` (up to rounding). This is O(n^2 d) arithmetic
    and needs the rows in memory: lazy X (dask, Zarr) is read into memory once, then
    every row's distances to all rows are summed per cluster, ``SILHOUETTE_PASS_BYTES``
    worth of query rows per pass. Use it on data small enough for O(n^2) distances.

    Sampled (``sample_size=m``): ``m`` rows are drawn uniformly without replacement,
    ``np.sort(np.random.default_rng(random_state).choice(n, m, replace=False))``, so
    the sample depends only on ``n``, ``m`` and ``random_state``, never on the
    chunking. One pass gathers them (none for numpy input), one distributed pass
    (:func:`daskmeans.engine.evaluation.cluster_distance_pass`) sums, in float64, their distances
    to every row per cluster: each sampled row's a(i), b(i) and s(i) are exact, only
    the mean is estimated. O(m n d); ``standard_error`` is ``std(values, ddof=1) /
    sqrt(m) * sqrt(1 - m / n)`` (simple random sampling without replacement).
    scikit-learn's ``silhouette_score(sample_size=m)`` instead measures the sample
    against itself, which biases a(i) and b(i) for small samples.

    Why not ``sklearn.metrics.silhouette_samples``: it needs X in one process's memory;
    this runs as tree-reduced passes over any source (numpy, dask, Zarr) and a cluster.

    Parameters
    ----------
    X : (n_samples, n_features) numpy array, ``scipy.sparse`` matrix, dask array, Zarr
        array, store path or :func:`daskmeans.open_source` source
    labels : (n_samples,) cluster of each row: numpy (any values), or dask
        (non-negative integers, checked inside the passes)
    sample_size : rows to sample (>= 2), or None for all rows (exact)
    random_state : seed of the sample (unused when exact)

    Returns
    -------
    :class:`Silhouette` (values, labels, a, b of shape (m,), score, standard_error)

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[0.0], [1.0], [9.0], [10.0], [11.0]])
    >>> s = silhouette(X, [0, 0, 1, 1, 1])
    >>> np.round(s.values, 4).tolist(), round(s.score, 4), s.exact
    ([0.9, 0.8889, 0.8235, 0.8947, 0.8571], 0.8729, True)
    >>> r = silhouette(X, [0, 0, 1, 1, 1], sample_size=3, random_state=0)
    >>> r.index.tolist(), np.round(r.values, 4).tolist()
    ([2, 3, 4], [0.8235, 0.8947, 0.8571])
    """
    src = as_data_source(X)
    lab, classes = _silhouette_labels(labels, src.n)
    n = src.n
    if sample_size is not None and (isinstance(sample_size, bool)
                                    or not isinstance(sample_size, int | np.integer)
                                    or sample_size < 2):
        raise ValueError(f"sample_size must be an integer >= 2 or None, got {sample_size!r}")
    if sample_size is not None and sample_size < n:
        index = sample_index(n, int(sample_size), random_state)
        queries = Queries(evaluation.gather_pass(src, index).rows, index)
        return _sampled_silhouette(src, lab, classes, queries)
    index = np.arange(n, dtype=np.int64)  # exact: every row, in memory
    if not isinstance(src, ArraySource) or isinstance(lab, da.Array):
        got = evaluation.gather_pass(src, index, {"labels": lab})  # lazy input read once
        src, lab = ArraySource(got.rows), got.values["labels"]
        if classes is None:
            classes, lab = np.unique(as_label_codes(lab, "labels"), return_inverse=True)
            _check_n_labels(classes.size, n)
    assert classes is not None
    per_pass = max(1, SILHOUETTE_PASS_BYTES // (8 * max(classes.size, src.d)))
    parts = [evaluation.cluster_distance_pass(
        src, lab, Queries(src.X[a:a + per_pass], index[a:a + per_pass]))
        for a in range(0, n, per_pass)]
    values, a, b = _silhouette_values(np.concatenate([p.sums for p in parts], axis=1),
                                      parts[0].counts, np.asarray(lab))
    return Silhouette(float(values.mean()), 0.0, n, index, values, classes[lab], a, b)


def _silhouette_labels(labels: Any, n: int) -> tuple[Any, np.ndarray | None]:
    """(codes, classes): numpy labels encoded 0..k-1 (any values, checked now); dask
    labels as they are (non-negative integers, checked in the passes), classes None."""
    lab = as_label_vector(labels, "labels")
    if lab.shape[0] != n:
        raise LabelError(f"labels must have one entry per row of X, got {lab.shape[0]} "
                         f"labels for {n} rows")
    if isinstance(lab, da.Array):
        return lab, None
    classes, codes = np.unique(lab, return_inverse=True)
    _check_n_labels(classes.size, n)
    return codes.astype(np.int64), classes


def sample_index(n: int, m: int, random_state: Any) -> np.ndarray:
    """The documented sample: ``m`` of ``n`` rows, uniform without replacement, sorted."""
    rng = np.random.default_rng(random_state)
    return np.sort(rng.choice(n, size=m, replace=False)).astype(np.int64)


class SilhouetteSample:
    """The rows of a sampled silhouette drawn and gathered once, for scoring several
    labelings of the same X (e.g. one per K of a sweep).

    The sample is :func:`silhouette`'s (:func:`sample_index`); a ``sample_size`` of at
    least the number of rows scores every row, exactly. A ``np.random.RandomState``
    seed is drawn from once, only when rows are sampled.
    """

    def __init__(self, X: Any, sample_size: int, random_state: Any = None) -> None:
        self.src = as_data_source(X)
        self.queries: Queries | None = None
        if sample_size < self.src.n:
            if isinstance(random_state, np.random.RandomState):
                random_state = int(random_state.randint(np.iinfo(np.int32).max))
            index = sample_index(self.src.n, sample_size, random_state)
            self.queries = Queries(evaluation.gather_pass(self.src, index).rows, index)

    @property
    def n_samples(self) -> int:
        """Rows in X."""
        return int(self.src.n)

    def score(self, labels: Any) -> Silhouette:
        """The :class:`Silhouette` of the sample under ``labels`` (one pass over X)."""
        if self.queries is None:  # the sample would be every row: exact
            return silhouette(self.src, labels)
        return _sampled_silhouette(self.src, *_silhouette_labels(labels, self.src.n),
                                   self.queries)


def _sampled_silhouette(src: Any, lab: Any, classes: np.ndarray | None,
                        queries: Queries) -> Silhouette:
    """One distributed pass: the queries' distances to every row, per cluster."""
    dist = evaluation.cluster_distance_pass(src, lab, queries)
    if classes is None:
        _check_n_labels(int((dist.counts > 0).sum()), src.n)
    values, a, b = _silhouette_values(dist.sums, dist.counts, dist.own)
    m, n = values.size, src.n
    se = float(np.std(values, ddof=1) / math.sqrt(m) * math.sqrt(1 - m / n))
    return Silhouette(float(values.mean()), se, n, queries.index, values,
                      dist.own if classes is None else classes[dist.own], a, b)


def _check_n_labels(n_labels: int, n: int) -> None:
    if not 2 <= n_labels <= n - 1:
        raise ValueError(f"labels must hold 2 to n_samples - 1 = {n - 1} distinct values "
                         f"for a silhouette, got {n_labels}")


def _silhouette_values(sums: np.ndarray, counts: np.ndarray, own: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """s, a, b of each query from its per-cluster distance sums (k, m), the cluster
    sizes (k,) and its own cluster (m,), as scikit-learn computes them."""
    cols = np.arange(own.size)
    with np.errstate(divide="ignore", invalid="ignore"):
        a = sums[own, cols] / (counts[own] - 1)
        means = np.where(counts[:, None] > 0, sums / np.maximum(counts, 1)[:, None], np.inf)
        means[own, cols] = np.inf
        b = means.min(axis=0)
        s = (b - a) / np.maximum(a, b)
    return np.nan_to_num(s), a, b


def silhouette_samples(X: Any, labels: Any) -> np.ndarray:
    """(n_samples,) silhouette coefficient of every row, exact: equal to
    ``sklearn.metrics.silhouette_samples`` (Euclidean). O(n^2 d); see :func:`silhouette`.

    Examples
    --------
    >>> silhouette_samples([[0.0], [1.0], [9.0], [10.0]], [0, 0, 1, 1]).round(4).tolist()
    [0.8947, 0.8824, 0.8824, 0.8947]
    """
    return silhouette(X, labels).values


def silhouette_score(X: Any, labels: Any, *, sample_size: int | None = None,
                     random_state: int | np.random.Generator | None = None) -> float:
    """Mean silhouette coefficient: exact (``sample_size=None``, equal to
    ``sklearn.metrics.silhouette_score``) or estimated from ``sample_size`` random rows
    measured against ALL rows (:func:`silhouette`, which also gives its standard error).

    Examples
    --------
    >>> round(silhouette_score([[0.0], [1.0], [9.0], [10.0]], [0, 0, 1, 1]), 4)
    0.8885
    """
    return silhouette(X, labels, sample_size=sample_size, random_state=random_state).score
