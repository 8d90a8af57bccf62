"""What the estimators share: parameter constraints, the input's way to a data source
and back (:class:`InputLayout`), and :class:`BaseKMeans` (validation, initialisation,
predict/transform/score).

An estimator validates its parameters (declared in ``_parameter_constraints``, checked
before any data is touched), builds the data source (:func:`daskmeans.as_source`),
initialises, calls an algorithm from :mod:`daskmeans.algorithms`, and sets the learned
attributes. Every distance is the metric object's
(:class:`daskmeans.kernels.metric.Metric`), asked through :mod:`daskmeans.algorithms`.
"""

from __future__ import annotations

import logging
import warnings
from numbers import Integral, Real
from pathlib import Path
from typing import Any, ClassVar

import dask.array as da
import numpy as np
import scipy.sparse as sp
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    ClusterMixin,
    TransformerMixin,
)
from sklearn.utils.validation import check_is_fitted, validate_data

from .. import io
from ..algorithms import InitSpec, Metric, as_metric, init_centers
from ..algorithms.predict import Scored, predict, score, source_for_metric, transform
from ..engine import schedule
from ..engine.hold import hold
from ..engine.rows import SampleGrid, is_xarray, mask_nodata, where_rows, xarray_rows
from ..engine.source import ArraySource, DaskSource, Source, SparseSource, as_source
from ..progress import ProgressCallback
from ..progress import progress as make_progress
from ..validation import Interval, Options, validate_params

log = logging.getLogger(__name__)


def check_weights(sample_weight: Any, n: int) -> np.ndarray | da.Array | None:
    """The sample weights of ``n`` rows, checked as scikit-learn checks them (dask
    weights are checked for their shape only, lazily)."""
    if sample_weight is None:
        return None
    if isinstance(sample_weight, da.Array):
        if sample_weight.ndim != 1 or sample_weight.shape[0] != n:
            raise ValueError(
                f"sample_weight must have shape ({n},), got {sample_weight.shape}"
            )
        return sample_weight.astype(np.float64)
    if isinstance(sample_weight, Real):
        return np.full(n, float(sample_weight))
    w = np.asarray(sample_weight, dtype=np.float64)
    if w.ndim != 1 or w.shape[0] != n:
        raise ValueError(f"sample_weight.shape == {w.shape}, expected ({n},)!")
    if not np.all(np.isfinite(w)):
        raise ValueError("sample_weight contains NaN or infinity")
    if np.any(w < 0):
        raise ValueError(f"sample_weight must be non-negative, got min {w.min()!r}")
    if n and not np.any(w > 0):
        raise ValueError("sample_weight must not be all zero: every sample has zero weight")
    return w


POSITIVE = Interval(Integral, 1, None)
COMMON_CONSTRAINTS: dict[str, list[Any]] = {
    "n_clusters": [POSITIVE],
    "init": [Options("k-means++", "k-means||", "random"), callable, "array-like"],
    "n_init": [Options("auto"), POSITIVE],
    "max_iter": [POSITIVE],
    "tol": [Interval(Real, 0, None)],
    "metric": [Options("euclidean", "cosine")],
    "random_state": ["random_state"],
    "init_size": [None, POSITIVE],
    "oversampling_factor": [Interval(Real, 0, None, closed="neither")],
    "init_rounds": [Interval(Integral, 0, None)],
    "split_every": [Interval(Integral, 2, None)],
    "verbose": [Interval(Integral, 0, None), "boolean"],
    "callback": [None, callable],
    "feature_dim": [None, "string"],
    "nodata": [None, "real"],
}


class InputLayout:
    """What an input went through on its way to a source, undone on the way out: an
    xarray object's samples flattened to rows (``grid``), rows holding ``nodata``
    masked (``valid``: numpy or dask bool per row)."""

    def __init__(self, grid: SampleGrid | None = None, valid: Any = None) -> None:
        self.grid, self.valid = grid, valid

    def weights(self, sample_weight: Any, n: int) -> Any:
        """The checked sample weights of ``n`` rows, masked rows at zero (so they take
        no part)."""
        w = check_weights(sample_weight, n)
        if self.valid is None:
            return w
        if isinstance(self.valid, np.ndarray):
            if not self.valid.any():
                raise ValueError("nodata: every sample of X holds the nodata value")
            if isinstance(w, da.Array):
                w = schedule.compute(w)
        v = self.valid.astype(np.float64)
        return v if w is None else v * w

    def labels(self, labels: Any) -> Any:
        """Cluster labels per row -> -1 where masked, on the input's grid."""
        if self.valid is not None:
            labels = where_rows(labels, self.valid, -1)
        return labels if self.grid is None else self.grid.wrap(labels, "labels")

    def distances(self, D: Any) -> Any:
        """(n, k) distances -> NaN where masked, on the input's grid (``cluster`` last)."""
        if self.valid is not None:
            D = where_rows(D, self.valid, np.nan)
        return D if self.grid is None else self.grid.wrap(D, "distances", "cluster")


class BaseKMeans(ClassNamePrefixFeaturesOutMixin, TransformerMixin, ClusterMixin, BaseEstimator):
    """Shared validation, initialisation, predict/transform/score."""

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {}
    #: hold in-memory rows for the fit's passes (their norms, and their blocks in a
    #: cluster's workers); False for an estimator that works on them where they are
    _holds_in_memory: ClassVar[bool] = True
    labels_: Any  # numpy for numpy input, lazy dask for lazy input, xarray for xarray
    cluster_centers_: Any  # (k, d) numpy; a DataArray(cluster, feature) for xarray input
    _auto_n_init = 10

    # ------------------------------------------------------------------ input handling

    def _source(self, X: Any, reset: bool) -> tuple[Source, InputLayout]:
        """The data source of X and how to map results back (:class:`InputLayout`): an
        xarray object flattened to rows, rows holding ``nodata`` masked."""
        grid = None
        if is_xarray(X):
            X, grid = xarray_rows(X, self.feature_dim)
        src = self._rows_source(X, reset)
        valid = None
        if self.nodata is not None:
            src, valid = mask_nodata(src, float(self.nodata))
        return src, InputLayout(grid, valid)

    def _rows_source(self, X: Any, reset: bool) -> Source:
        """The data source of (n, d) rows: numpy validated by scikit-learn (copied only
        if not float C-contiguous), anything else opened lazily, its shape checked."""
        if isinstance(X, str | Path | Source) or io.is_zarr(X) or isinstance(X, da.Array):
            src = as_source(X)
            if isinstance(X, da.Array) and any(np.isnan(c) for c in X.shape):
                raise ValueError("X has unknown chunk sizes; call X.compute_chunk_sizes()")
            if isinstance(src, DaskSource) and src.X.ndim != 2:
                raise ValueError(f"X must be 2-D (n_samples, n_features), got shape "
                                 f"{src.X.shape}")
            if reset:
                self.n_features_in_ = src.d
            elif src.d != self.n_features_in_:
                raise ValueError(
                    f"X has {src.d} features, but {type(self).__name__} is expecting "
                    f"{self.n_features_in_} features as input"
                )
            return src
        nan_nodata = self.nodata is not None and np.isnan(self.nodata)
        Xv = validate_data(self, X, accept_sparse="csr", dtype=[np.float64, np.float32],
                           order="C", reset=reset,
                           ensure_all_finite="allow-nan" if nan_nodata else True)
        if sp.issparse(Xv):
            if self.nodata is not None:
                raise ValueError("nodata is not supported for sparse X")
            return SparseSource(Xv)
        return ArraySource(Xv)

    def _n_init(self) -> int:
        if self.n_init == "auto":
            named = isinstance(self.init, str)
            plus = named and self.init in ("k-means++", "k-means||")
            return 1 if plus or hasattr(self.init, "__array__") else self._auto_n_init
        if hasattr(self.init, "__array__") and not isinstance(self.init, str) and (
                self.n_init != 1):
            # scikit-learn's warning, word for word (users and tests match it)
            warnings.warn(
                "Explicit initial center position passed: performing only one init in "
                f"{type(self).__name__} instead of n_init={self.n_init}.",
                RuntimeWarning, stacklevel=3)
            return 1
        return int(self.n_init)

    def _check_params(self, src: Source) -> None:
        if self.n_clusters > src.n:  # scikit-learn's wording
            raise ValueError(f"n_samples={src.n} should be >= n_clusters={self.n_clusters}.")

    def _check_combination(self) -> None:
        """Parameters that are valid alone but not together (none here)."""

    def _prepare(self, X: Any, sample_weight: Any) -> tuple[Source, InputLayout]:
        """Validate parameters (before any data is touched), then the input; the
        source with its weights (zero for nodata rows), normalised for cosine, scattered
        to a cluster; and how to map results back to the input."""
        validate_params(self)
        self._check_combination()
        src, rows = self._source(X, reset=True)
        if src.sparse and not self._metric().squared:
            raise ValueError(f"metric={self.metric!r} does not take sparse X: use "
                             "'euclidean' or 'cosine', or X.toarray()")
        self._check_params(src)
        w = rows.weights(sample_weight, src.n)
        if isinstance(w, da.Array) and not isinstance(src, DaskSource):
            w = schedule.compute(w)  # n float64 values: small next to the rows
            w = check_weights(w, src.n)
        src = source_for_metric(src, self._metric(), w)
        if isinstance(src, ArraySource) and self._holds_in_memory:
            # in memory: |x|^2 once for every pass (when the metric uses it), and the
            # blocks in a cluster's workers; a store is held by the fits that iterate
            # over it (a mini-batch fit streams it)
            src = hold(src, with_xsq=self._metric().uses_row_norms)
        return src, rows

    def _fitted_on(self, layout: InputLayout) -> None:
        """Learned attributes as the input was given: labels -1 where masked, xarray
        labels and centres for xarray input."""
        self.labels_ = layout.labels(self.labels_)
        if layout.grid is not None:
            self.cluster_centers_ = layout.grid.centers(np.asarray(self.cluster_centers_))

    def _metric(self) -> Metric:
        """The metric object of ``self.metric``: every distance the estimator needs is
        asked of it."""
        return as_metric(self.metric)

    def _sample_size(self, n: int) -> int:
        k = self.n_clusters
        size = self.init_size if self.init_size is not None else 10_000 + 20 * k
        return int(min(n, max(size, k)))

    def _init(self, src: Source, rngs: list[np.random.Generator], seeds: list[int],
              progress: ProgressCallback | None = None) -> list[np.ndarray]:
        spec = InitSpec(self.init, int(self.n_clusters), self._sample_size(src.n),
                        self._metric(), float(self.oversampling_factor),
                        int(self.init_rounds), int(self.split_every))
        return init_centers(src, spec, rngs, seeds, progress)

    def _progress(self) -> Any:
        """Progress reports go to ``callback`` (e.g. :class:`daskmeans.progress.TqdmBars`
        for bars); ``verbose`` prints scikit-learn's lines instead (``cluster/verbose.py``)."""
        return make_progress(0, self.callback)

    # ------------------------------------------------------------------ public methods

    def _source_and_centres(self, X: Any) -> tuple[Source, np.ndarray, InputLayout]:
        """A fitted model's view of new rows: their source as the metric reads it, the
        centres in the rows' dtype, and how to map results back to the input."""
        check_is_fitted(self)
        src, layout = self._source(X, reset=False)
        src = source_for_metric(src, self._metric())
        return src, np.asarray(self.cluster_centers_).astype(src.dtype, copy=False), layout

    def predict(self, X: Any) -> Any:
        """Index of the nearest centre of each row.

        Parameters
        ----------
        X : (n_samples, n_features) numpy array, dask array, Zarr array, store path or
            :class:`daskmeans.engine.source.Source`

        Returns
        -------
        labels : (n_samples,) int32, numpy for numpy input, a lazy dask array otherwise
            (computing it raises ``ValueError`` naming a row that holds NaN or inf).
        """
        src, C, layout = self._source_and_centres(X)
        return layout.labels(predict(src, C, self._metric()))

    def transform(self, X: Any) -> Any:
        """Distances to every centre, shape (n_samples, n_clusters): Euclidean, or L1
        for ``metric="manhattan"``."""
        src, C, layout = self._source_and_centres(X)
        return layout.distances(transform(src, C, self._metric()))

    def fit_predict(self, X: Any, y: Any = None, sample_weight: Any = None) -> Any:
        """Fit, then return ``labels_``."""
        return self.fit(X, sample_weight=sample_weight).labels_

    def fit_transform(self, X: Any, y: Any = None, sample_weight: Any = None) -> Any:
        """Fit, then return distances of X to the centres."""
        return self.fit(X, sample_weight=sample_weight).transform(X)

    def score(self, X: Any, y: Any = None, sample_weight: Any = None) -> float:
        """Opposite of the (weighted) sum of squared distances of X to its nearest centre
        (of L1 distances for ``metric="manhattan"``)."""
        return -self.scored(X, sample_weight, nearest=True).sse

    def _scoring_centres(self, C: np.ndarray, nearest: bool) -> Any:
        """What scoring assigns rows with: the centres (the nearest one wins)."""
        return C

    def scored(self, X: Any, sample_weight: Any = None, labels_true: Any = None,
               nearest: bool = False) -> Scored:
        """One assignment pass over X: its SSE and, given true labels, the contingency
        counts (rows to their cluster as ``predict`` gives it, or with ``nearest`` to
        the nearest centre). What :func:`daskmeans.metrics.evaluate_model` reads: the
        scores and the inertia of a model from one read of X."""
        src, C, layout = self._source_and_centres(X)
        C = self._scoring_centres(C, nearest)
        w = layout.weights(sample_weight, src.n)
        return score(src, C, w, labels_true, self._metric())

    @property
    def _n_features_out(self) -> int:
        return int(np.shape(self.cluster_centers_)[0])

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags

