"""K-means estimators with scikit-learn conventions, on data of any size.

An estimator validates its parameters (declared in ``_parameter_constraints``, checked
before any data is touched), builds the data source (:func:`daskmeans.as_source`),
initialises, calls an algorithm from :mod:`daskmeans.algorithms`, and sets the
learned attributes. Checkpoints and ``n_init`` batching wrap the algorithms.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict
from numbers import Integral, Real
from pathlib import Path
from typing import Any, ClassVar

import dask.array as da
import numpy as np
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    ClusterMixin,
    TransformerMixin,
)
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from . import algorithms as A
from . import io
from ._progress import progress as make_progress
from ._validation import (
    Interval,
    InvalidParameterError,
    Options,
    check_scalar_param,
    validate_params,
)
from .algorithms import IterationRecord, LloydResume, LloydRun
from .engine import mapreduce, passes, schedule
from .engine.rows import SampleGrid, is_xarray, mask_nodata, where_rows, xarray_rows
from .engine.source import ArraySource, DaskSource, Source, ZarrSource, as_source
from .kernels.bisect import TreeCentres, tree_labels
from .kernels.common import (
    assign,
    distances,
    nearest_labels,
    normalize_rows,
    weighted_sse,
)
from .kernels.medians import l1_assign, l1_distances
from .kernels.scores import LabelError, Scored, score_block

__all__ = ["BisectingKMeans", "KMeans", "MiniBatchKMeans", "ModelFormatError", "load_model",
           "save_model"]

log = logging.getLogger(__name__)

#: ``n_init`` runs share each Lloyd pass while their stacked float64 per-cluster sums
#: (every chunk's partial result holds them) stay under this many bytes: one GEMM and
#: one read of the data for all of them (much faster than one pass per run at small K;
#: at large K in memory the GEMM is the cost either way, but a store is still read
#: once instead of once per run).
RUNS_MAX_BYTES = 32 << 20
#: a run replaces the best so far only if its inertia is lower by more than this share:
#: runs that reach the same clusters (up to the order of their labels) have inertias
#: equal up to the float64 rounding of sums added in an order that depends on the
#: chunks, and the first of them must win whatever the chunking
SAME_INERTIA_RTOL = 1e-10


class ModelFormatError(ValueError):
    """A model or checkpoint file is not daskmeans', or of an unsupported version."""


def _check_weights(sample_weight: Any, n: int) -> np.ndarray | da.Array | None:
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


_POSITIVE = Interval(Integral, 1, None)
_COMMON_CONSTRAINTS: dict[str, list[Any]] = {
    "n_clusters": [_POSITIVE],
    "init": [Options("k-means++", "k-means||", "random"), callable, "array-like"],
    "n_init": [Options("auto"), _POSITIVE],
    "max_iter": [_POSITIVE],
    "tol": [Interval(Real, 0, None)],
    "metric": [Options("euclidean", "cosine")],
    "random_state": ["random_state"],
    "init_size": [None, _POSITIVE],
    "oversampling_factor": [Interval(Real, 0, None, closed="neither")],
    "init_rounds": [Interval(Integral, 0, None)],
    "split_every": [Interval(Integral, 2, None)],
    "verbose": [Interval(Integral, 0, None), "boolean"],
    "callback": [None, callable],
    "feature_dim": [None, "string"],
    "nodata": [None, "real"],
}


class _Rows:
    """What an input went through on its way to a source, undone on the way out: an
    xarray object's samples flattened to rows (``grid``), rows holding ``nodata``
    masked (``valid``: numpy or dask bool per row)."""

    def __init__(self, grid: SampleGrid | None = None, valid: Any = None) -> None:
        self.grid, self.valid = grid, valid

    def weights(self, sample_weight: Any, n: int) -> Any:
        """The checked sample weights of ``n`` rows, masked rows at zero (so they take
        no part)."""
        w = _check_weights(sample_weight, n)
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


class _BaseKMeans(ClassNamePrefixFeaturesOutMixin, TransformerMixin, ClusterMixin, BaseEstimator):
    """Shared validation, initialisation, predict/transform/score."""

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {}
    labels_: Any  # numpy for numpy input, lazy dask for lazy input, xarray for xarray
    cluster_centers_: Any  # (k, d) numpy; a DataArray(cluster, feature) for xarray input
    _auto_n_init = 10

    # ------------------------------------------------------------------ input handling

    def _source(self, X: Any, reset: bool) -> tuple[Source, _Rows]:
        """The data source of X and how to map results back (:class:`_Rows`): an
        xarray object flattened to rows, rows holding ``nodata`` masked."""
        grid = None
        if is_xarray(X):
            X, grid = xarray_rows(X, self.feature_dim)
        src = self._rows_source(X, reset)
        valid = None
        if self.nodata is not None:
            src, valid = mask_nodata(src, float(self.nodata))
        return src, _Rows(grid, valid)

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
        Xv = validate_data(self, X, accept_sparse=False, dtype=[np.float64, np.float32],
                           order="C", reset=reset,
                           ensure_all_finite="allow-nan" if nan_nodata else True)
        return ArraySource(Xv)

    def _n_init(self) -> int:
        if self.n_init == "auto":
            named = isinstance(self.init, str)
            plus = named and self.init in ("k-means++", "k-means||")
            return 1 if plus or hasattr(self.init, "__array__") else self._auto_n_init
        if hasattr(self.init, "__array__") and not isinstance(self.init, str) and (
                self.n_init != 1):
            log.warning("explicit initial centres given: running n_init=1, not %s", self.n_init)
            return 1
        return int(self.n_init)

    def _check_params(self, src: Source) -> None:
        if self.n_clusters > src.n:
            raise ValueError(f"n_clusters={self.n_clusters} must be <= n_samples={src.n}")

    def _check_combination(self) -> None:
        """Parameters that are valid alone but not together (none here)."""

    def _prepare(self, X: Any, sample_weight: Any) -> tuple[Source, _Rows]:
        """Validate parameters (before any data is touched), then the input; the
        source with its weights (zero for nodata rows), normalised for cosine, scattered
        to a cluster; and how to map results back to the input."""
        validate_params(self)
        self._check_combination()
        src, rows = self._source(X, reset=True)
        self._check_params(src)
        w = rows.weights(sample_weight, src.n)
        if isinstance(w, da.Array) and not isinstance(src, DaskSource):
            w = schedule.compute(w)  # n float64 values: small next to the rows
            w = _check_weights(w, src.n)
        src = self._as_kernels_see_it(src, w)
        if isinstance(src, ArraySource):
            # in memory: |x|^2 once for every pass (k-medians never uses it), and the
            # blocks in a cluster's workers; a store is held by the fits that iterate
            # over it (a mini-batch fit streams it)
            src = mapreduce.hold(src, with_xsq=self.metric != "manhattan")
        return src, rows

    def _fitted_on(self, rows: _Rows) -> None:
        """Learned attributes as the input was given: labels -1 where masked, xarray
        labels and centres for xarray input."""
        self.labels_ = rows.labels(self.labels_)
        if rows.grid is not None:
            self.cluster_centers_ = rows.grid.centers(np.asarray(self.cluster_centers_))

    def _as_kernels_see_it(self, src: Source, weights: Any = None) -> Source:
        """The source with its weights and, for cosine, normalised rows (numpy rows at
        once, lazy rows as each block is read)."""
        if isinstance(src, ArraySource):
            if self.metric == "cosine":
                src = ArraySource(normalize_rows(src.X))
            return src.with_options(weights=weights)
        return src.with_options(weights=weights, normalize=self.metric == "cosine")

    def _sample_size(self, n: int) -> int:
        k = self.n_clusters
        size = self.init_size if self.init_size is not None else 10_000 + 20 * k
        return int(min(n, max(size, k)))

    def _init(self, src: Source, rngs: list[np.random.Generator], seeds: list[int]
              ) -> list[np.ndarray]:
        spec = A.InitSpec(self.init, int(self.n_clusters), self._sample_size(src.n),
                          self.metric, float(self.oversampling_factor),
                          int(self.init_rounds), int(self.split_every))
        return A.init_centers(src, spec, rngs, seeds)

    def _progress(self) -> Any:
        return make_progress(self.verbose, self.callback)

    # ------------------------------------------------------------------ public methods

    def _centers_for(self, X: Any) -> tuple[Source, np.ndarray, _Rows]:
        check_is_fitted(self)
        src, rows = self._source(X, reset=False)
        src = self._as_kernels_see_it(src)
        return src, np.asarray(self.cluster_centers_).astype(src.dtype, copy=False), rows

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
        src, C, rows = self._centers_for(X)
        if not src.lazy:
            if self.metric == "manhattan":
                return rows.labels(l1_assign(src.X, C)[0])
            return rows.labels(nearest_labels(src.X, C))
        return rows.labels(passes.predict_lazy(src, C, self.metric))

    def transform(self, X: Any) -> Any:
        """Distances to every centre, shape (n_samples, n_clusters): Euclidean, or L1
        for ``metric="manhattan"``."""
        src, C, rows = self._centers_for(X)
        if not src.lazy:
            if self.metric == "manhattan":
                return rows.distances(l1_distances(src.X, C).astype(src.X.dtype, copy=False))
            return rows.distances(distances(src.X, C))
        return rows.distances(passes.transform_lazy(src, C, self.metric))

    def fit_predict(self, X: Any, y: Any = None, sample_weight: Any = None) -> Any:
        """Fit, then return ``labels_``."""
        return self.fit(X, sample_weight=sample_weight).labels_

    def fit_transform(self, X: Any, y: Any = None, sample_weight: Any = None) -> Any:
        """Fit, then return distances of X to the centres."""
        return self.fit(X, sample_weight=sample_weight).transform(X)

    def score(self, X: Any, y: Any = None, sample_weight: Any = None) -> float:
        """Opposite of the (weighted) sum of squared distances of X to its nearest centre
        (of L1 distances for ``metric="manhattan"``)."""
        return -self._scored(X, sample_weight, nearest=True).sse

    def _assigner(self, C: np.ndarray, nearest: bool) -> Any:
        """What scoring assigns rows with: the centres (the nearest one wins)."""
        return C

    def _scored(self, X: Any, sample_weight: Any = None, labels_true: Any = None,
                nearest: bool = False) -> Scored:
        """One assignment pass over X: SSE and, given true labels, contingency counts
        (rows to their cluster as ``predict`` gives it, or with ``nearest`` to the
        nearest centre)."""
        src, C, rows = self._centers_for(X)
        C = self._assigner(C, nearest)
        w = rows.weights(sample_weight, src.n)
        if labels_true is not None and labels_true.shape[0] != src.n:
            raise LabelError(f"labels_true must have one label per row of X "
                               f"({src.n}), got {labels_true.shape[0]}")
        if src.lazy:
            if isinstance(w, da.Array) and not isinstance(src, DaskSource):
                w = schedule.compute(w)
            return passes.score_pass(src.with_options(weights=w, normalize=src.normalize), C,
                                labels_true, metric=self.metric)
        if isinstance(labels_true, da.Array):
            labels_true = labels_true.compute()
        if isinstance(w, da.Array):
            w = w.compute()
        return score_block(src.X, C, w, labels_true, self.metric)

    @property
    def _n_features_out(self) -> int:
        return int(np.shape(self.cluster_centers_)[0])

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = False
        return tags


class KMeans(_BaseKMeans):
    """Lloyd's K-means on numpy, dask or Zarr data, one pass over the data per iteration.

    Each iteration maps one kernel over the row blocks (one GEMM for the distances,
    argmin, per-cluster sums/counts in float64) and tree-reduces the partial sums into
    the new centres with exactly one ``dask.compute`` (see
    :func:`daskmeans.algorithms.lloyd`). Works under whatever scheduler is active:
    dask's threaded scheduler, or a ``distributed.Client``.

    Parameters
    ----------
    n_clusters : int, default 8
    init : {"k-means++", "k-means||", "random"}, array (n_clusters, n_features) or callable
        ``"k-means++"``: greedy k-means++ on ``init_size`` rows drawn uniformly across
        all chunks (reproducible for a seed, whatever the chunking). ``"k-means||"``:
        the scalable variant, ``init_rounds`` passes over all the data, oversampling
        ``oversampling_factor * n_clusters`` candidates per round, then weighted
        k-means++ on the candidates weighted by the rows they attract. ``"random"``:
        ``n_clusters`` rows of that sample. A callable is called as
        ``init(sample, n_clusters, random_state=RandomState)``.
    n_init : "auto" or int, default "auto"
        Runs with different initialisations; the lowest inertia wins. "auto" is 1 for
        k-means++, k-means|| and arrays, 10 for "random" and callables (as
        scikit-learn). The runs share every pass over the data (one GEMM and one read
        for all runs while their stacked sums stay under :data:`RUNS_MAX_BYTES`; each
        run stops on its own and ends exactly as it would alone), and their init
        samples are gathered in one pass. With a checkpoint, runs go one at a time.
    max_iter : int, default 300
    tol : float, default 1e-4
        Convergence when the summed squared centre shift is <= ``tol`` times the mean
        per-feature variance of X (computed in the first iteration's pass).
    metric : {"euclidean", "cosine", "manhattan"}
        ``"cosine"`` is spherical k-means: rows and centres are L2-normalised; inertia
        is then the SSE of the normalised rows (``2 * sum(1 - cos)``).
        ``"manhattan"`` is k-medians: rows go to the centre nearest in L1 distance and
        each centre moves to the coordinate-wise (weighted) median of its rows, the
        centre that minimises the sum of L1 distances, so no iteration raises it;
        ``inertia_``, ``score`` and ``transform`` are then in L1 distance (not
        squared), k-means++ and k-means|| seed with L1 distances and empty clusters
        go to the rows farthest in L1. The median is the lower weighted median (the
        smallest value whose cumulative weight reaches half the cluster's weight),
        found by distributed histograms, never by gathering rows: exact for uint8
        stores (256 levels: 2 passes per iteration); for float data 3 passes per
        iteration (plus one per fit for the features' ranges) place it within
        ``(max - min) / 4096`` of the feature's range, exactly when that cell of the
        range holds one distinct value (e.g. pixels scaled to [0, 1]). Memory per
        task: a (K, d, 16) float64 histogram, 25.7 MB at K=256, d=784 (twice that in
        a float fit's last pass). Some tutorials assign by L1 distance but keep the
        mean as the update; the mean does not minimise L1 distances, so that loop can
        raise its own objective and need not converge; this one cannot raise it.
        ``n_init`` runs then go one after another.
    algorithm : {"auto", "lloyd", "elkan"}, default "auto"
        All three give Lloyd's iterations and answer. ``"lloyd"``: every iteration
        assigns every row. ``"elkan"``: each row keeps bounds of its distances between
        iterations (an upper bound to its centre and, per group of nearby centres, a
        lower bound to the others: one per centre below 16 centres, Yinyang's groups above,
        ``k // 8`` of them up to 32 while the bounds stay within an eighth of a row's
        bytes: 12 + 4 per group bytes a row, kept where the rows are) and rows, or whole
        blocks, that cannot change centre are skipped; ``n_init`` runs then run one
        after another. ``"auto"``: bounds for a single run, shared passes when several
        ``n_init`` runs are fitted together.
        Bounds need a numpy array or Zarr source (a dask array runs ``"lloyd"``).
        With ``metric="manhattan"`` every row is assigned in every iteration
        (``"elkan"`` is refused: the bounds are Euclidean).
    random_state : int, RandomState or None
    init_size : int or None
        Rows sampled for k-means++/random init (default ``min(n, 10_000 + 20 k)``).
    oversampling_factor : float > 0, default 2
    init_rounds : int >= 0, default 5
    split_every : int >= 2, default 8
        Fan-in of the tree reduction.
    copy_x : bool, default True
        Accepted for scikit-learn compatibility: X is never modified.
    verbose : int, default 0
        Show a progress bar (tqdm, on stderr) when > 0.
    callback : callable or None
        ``callback(phase, done, total, detail)`` after every iteration (instead of a bar).
    feature_dim : str or None
        For an ``xarray.DataArray`` X: the dimension that holds the features (e.g.
        ``"band"``); every other dimension is a sample dimension, so a ``(band, y, x)``
        scene is clustered per pixel. None: the last dimension of a 2-D DataArray. An
        ``xarray.Dataset``'s variables are its features. With xarray input,
        ``labels_``, ``predict`` and ``transform`` return DataArrays over the sample
        dimensions with the input's coordinates, attributes and chunks (lazy for lazy
        input), and ``cluster_centers_`` is a ``DataArray(cluster, feature_dim)``.
    nodata : float or None
        A sample where any feature equals ``nodata`` (NaN: any NaN) is masked: it takes
        no part in init, fit, inertia or ``score`` (it gets zero weight) and its label
        is -1 (as scikit-learn's DBSCAN marks noise) in ``labels_`` and ``predict``
        (``transform`` gives NaN distances). Values are compared as stored (a uint8
        store's raw values). Without ``nodata``, NaN and infinity are errors. A Zarr
        store with ``nodata`` is read through dask (no held rows or bounds).

    Attributes
    ----------
    cluster_centers_ : (n_clusters, n_features) ndarray, X's dtype
    labels_ : (n_samples,) int32, numpy for numpy input, lazy dask array otherwise
    inertia_ : float, weighted sum of squared distances to the final centres (of L1
        distances for ``metric="manhattan"``)
    n_iter_ : int
    history_ : list of dict (iteration, inertia, center_shift, n_relocated, seconds)

    Examples
    --------
    >>> import numpy as np
    >>> from daskmeans import KMeans
    >>> X = np.array([[1, 2], [1, 4], [1, 0], [10, 2], [10, 4], [10, 0]], dtype=float)
    >>> km = KMeans(n_clusters=2, random_state=0).fit(X)
    >>> sorted(km.cluster_centers_.tolist())
    [[1.0, 2.0], [10.0, 2.0]]
    >>> float(km.inertia_)
    16.0
    >>> km1 = KMeans(n_clusters=2, metric="manhattan", random_state=0).fit(X)   # k-medians
    >>> sorted(km1.cluster_centers_.tolist()), float(km1.inertia_)
    ([[1.0, 2.0], [10.0, 2.0]], 8.0)
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        **_COMMON_CONSTRAINTS, "algorithm": [Options("auto", "lloyd", "elkan")],
        "metric": [Options("euclidean", "cosine", "manhattan")],
        "copy_x": ["boolean"],
    }

    def __init__(
        self,
        n_clusters: int = 8,
        *,
        init: str | np.ndarray | Callable[..., np.ndarray] = "k-means++",
        n_init: str | int = "auto",
        max_iter: int = 300,
        tol: float = 1e-4,
        metric: str = "euclidean",
        algorithm: str = "auto",
        random_state: Any = None,
        init_size: int | None = None,
        oversampling_factor: float = 2,
        init_rounds: int = 5,
        split_every: int = 8,
        copy_x: bool = True,
        verbose: int = 0,
        callback: Callable[..., None] | None = None,
        feature_dim: str | None = None,
        nodata: float | None = None,
    ) -> None:
        self.n_clusters = n_clusters
        self.init = init
        self.n_init = n_init
        self.max_iter = max_iter
        self.tol = tol
        self.metric = metric
        self.algorithm = algorithm
        self.random_state = random_state
        self.init_size = init_size
        self.oversampling_factor = oversampling_factor
        self.init_rounds = init_rounds
        self.split_every = split_every
        self.copy_x = copy_x
        self.verbose = verbose
        self.callback = callback
        self.feature_dim = feature_dim
        self.nodata = nodata

    def fit(
        self,
        X: Any,
        y: Any = None,
        sample_weight: Any = None,
        *,
        checkpoint: str | Path | None = None,
        checkpoint_every: int = 1,
        resume: bool = False,
    ) -> KMeans:
        """Compute the clustering.

        Parameters
        ----------
        X : (n_samples, n_features) numpy array, dask array, Zarr array, store path or
            URL, or :class:`daskmeans.engine.source.Source`. A store's decoded rows are read once
            and held in memory for the fit while they take at most a quarter of it
            (``daskmeans.open_source(store, cache=False)`` streams them every iteration)
        y : ignored
        sample_weight : (n_samples,) array-like or dask array, optional
        checkpoint : path of an ``.npz`` checkpoint, written atomically every
            ``checkpoint_every`` iterations (centres, iteration, tolerance, history, the
            seeds of every init run and the best run so far; no pickle)
        resume : continue from ``checkpoint`` if it exists (it must come from the same
            parameters and data shape); the result equals an uninterrupted fit's
            (the inertia of a bounded fit to float64 rounding: its per-cluster sums
            were added up from the resume on)

        Returns
        -------
        self
        """
        check_scalar_param("checkpoint_every", checkpoint_every, [_POSITIVE], "KMeans.fit")
        # a store's decoded rows are read once and held while they fit in memory
        src, rows = self._prepare(X, sample_weight)
        manhattan = self.metric == "manhattan"
        src = mapreduce.hold(src, with_xsq=not manhattan)
        grid = A.median_grid(src, int(self.split_every)) if manhattan else None
        rs = check_random_state(self.random_state)
        seeds = [int(rs.randint(np.iinfo(np.int32).max)) for _ in range(self._n_init())]
        ckpt = _Checkpoint(checkpoint, checkpoint_every, self, src, seeds) if checkpoint else None
        state = ckpt.load() if (ckpt is not None and resume) else None
        labels_of: dict[int, np.ndarray] = {}
        w_np = None if src.lazy else src.weights

        def final_e_steps(Cs: list[np.ndarray], runs: list[int]) -> list[float]:
            """Inertias against the final centres: for in-memory data a numpy pass per
            run that also gives ``labels_`` (no second pass after the fit), else one
            pass for all runs."""
            if src.lazy:
                if manhattan:
                    return A.kmedians_e_step(src, Cs, self.split_every)
                return A.lloyd_e_step(src, Cs, self.split_every)
            out = []
            for C, run in zip(Cs, runs, strict=True):
                assigned = l1_assign if manhattan else assign
                labels_of[run], dist = assigned(src.X, C)
                out.append(weighted_sse(dist, w_np))
            return out

        best: LloydRun | None = None if state is None else state["best"]
        best_labels = None
        first_run = 0 if state is None else state["run"]
        # runs share passes over the data, a batch at a time (one run at a time with
        # checkpoints, whose format holds one run's state)
        per_pass = 1 if ckpt is not None else self._runs_per_pass(src.d)
        with self._progress() as progress:
            for batch_start in range(first_run, len(seeds), per_pass):
                batch = list(range(batch_start, min(batch_start + per_pass, len(seeds))))
                resume_at: LloydResume | None = None
                if state is not None and batch_start == first_run and state["centers"] is not None:
                    resume_at = LloydResume(state["iteration"], state["centers"],
                                            state["tol_abs"], state["history"])
                    C0s = [resume_at.centers]
                    log.info("resuming run %d at iteration %d", batch[0], resume_at.iteration)
                else:
                    t0 = time.perf_counter()
                    C0s = self._init(src, [np.random.default_rng(seeds[r]) for r in batch],
                                     [seeds[r] for r in batch])
                    log.info("init runs %d-%d: %.2fs", batch[0], batch[-1],
                             time.perf_counter() - t0)
                on_iteration = None
                if ckpt is not None:
                    on_iteration = _SaveRun(ckpt, batch[0], best)
                if grid is not None:
                    results = [A.kmedians(
                        src, C0s[0], grid=grid, run=batch[0], max_iter=int(self.max_iter),
                        tol=float(self.tol), final=final_e_steps,
                        split_every=int(self.split_every), always_final=not src.lazy,
                        resume=resume_at, on_iteration=on_iteration,
                        progress=progress.report)]
                elif len(batch) == 1 and self._bounded(src):
                    results = [A.lloyd_bounded(
                        src, C0s[0], run=batch[0], max_iter=int(self.max_iter),
                        tol=float(self.tol), metric=self.metric,
                        split_every=int(self.split_every), resume=resume_at,
                        on_iteration=on_iteration, progress=progress.report)]
                else:
                    results = A.lloyd(
                        src, C0s, runs=batch, max_iter=int(self.max_iter),
                        tol=float(self.tol), final=final_e_steps, metric=self.metric,
                        split_every=int(self.split_every), always_final=not src.lazy,
                        resume=resume_at, on_iteration=on_iteration,
                        progress=progress.report)
                for run, result in zip(batch, results, strict=True):
                    if best is None or result.inertia < best.inertia * (1 - SAME_INERTIA_RTOL):
                        best = result
                        best_labels = (result.labels if result.labels is not None
                                       else labels_of.get(run))
                labels_of.clear()
                if ckpt is not None:
                    ckpt.save(batch[-1] + 1, 0, None, 0.0, [], best)
        assert best is not None
        self.cluster_centers_ = best.centers
        self.n_iter_ = best.n_iter
        self.history_ = [asdict(h) for h in best.history]
        self.inertia_ = best.inertia
        if src.lazy:  # a bounded fit's labels are in its bounds; else a lazy E-step
            self.labels_ = (passes.predict_lazy(src, best.centers, self.metric)
                            if best_labels is None else passes.labels_array(src, best_labels))
        else:  # labels of the best run's final E-step (or, after a resume, computed now)
            assigned = l1_assign if manhattan else assign
            self.labels_ = (best_labels if best_labels is not None
                            else assigned(src.X, best.centers)[0])
        self._fitted_on(rows)
        return self

    def _check_combination(self) -> None:
        if self.metric == "manhattan" and self.algorithm == "elkan":
            raise InvalidParameterError(
                "The 'algorithm' parameter of KMeans must be 'auto' or 'lloyd' with "
                "metric='manhattan' (the bounds of 'elkan' are Euclidean), got 'elkan'.")

    def _bounded(self, src: Source) -> bool:
        """Iterate with per-row bounds (see ``algorithm``)."""
        return self.algorithm != "lloyd" and not isinstance(src, DaskSource)

    def _runs_per_pass(self, n_features: int) -> int:
        """How many ``n_init`` runs share each pass (see :data:`RUNS_MAX_BYTES`)."""
        if self.algorithm == "elkan" or self.metric == "manhattan":
            return 1  # each run keeps its own bounds; k-medians runs go one at a time
        per_run = self.n_clusters * n_features * 8
        return max(1, min(self._n_init(), RUNS_MAX_BYTES // per_run))


#: default rows per mini-batch step (see MiniBatchKMeans docs for the measurement).
DEFAULT_BATCH_SIZE = 4096
#: above this many bytes, "auto" sampling streams whole chunks instead of random rows.
ROWS_SAMPLING_MAX_BYTES = 2 << 30


class MiniBatchKMeans(_BaseKMeans):
    """Mini-batch K-means (Sculley 2010) with scikit-learn's semantics, distributed.

    Each step draws a batch, computes per-chunk partial sums against the current
    centres where the rows live, tree-reduces them (one ``dask.compute`` per step) and
    moves every centre by scikit-learn's count-based learning rate
    ``c <- (c * N_c + S_c) / (N_c + n_c)`` (see :func:`daskmeans.algorithms.minibatch`).
    Low-count centres are reassigned to rows of the batch (``reassignment_ratio``);
    early stopping uses the smoothed batch inertia (``max_no_improvement``) or the
    centre shift (``tol``) as scikit-learn defines them.

    Parameters
    ----------
    n_clusters : int, default 8
    init, metric, random_state, oversampling_factor, init_rounds, split_every, verbose,
    callback
        As :class:`KMeans`.
    n_init : "auto" or int
        ``"auto"`` is 3 for ``init="random"`` or a callable, else 1 (as scikit-learn).
        With several inits the best one on an ``init_size`` validation sample wins.
    batch_size : int or "auto"
        Rows per step (``"auto"``: 4096). Larger than scikit-learn's 1024 because a
        distributed step costs a few milliseconds of scheduling whatever its size: at
        4096 rows x 784 features the compute dominates that overhead from K=10 up.
    max_iter : int, default 100
        Passes over the data (epochs); ``n_steps = max_iter * n // batch_size``.
    max_no_improvement : int or None, default 10
    tol : float, default 0.0
        Relative to the mean feature variance, estimated on the init sample.
    reassignment_ratio : float, default 0.01
    init_size : int or None
        Rows for initialisation (default ``max(3 * 1024, 3 * n_clusters)``, scikit-learn's
        default size, at least ``n_clusters``).
    refine : int, default 0
        Full Lloyd iterations over all the data after the mini-batch steps (each one
        pass, empty clusters relocated as in :class:`KMeans`). Mini-batch centres are
        running means that still carry the early, poor assignments; a few passes
        remove that bias and bring the inertia close to a converged Lloyd fit's (the
        README's benchmarks compare ``max_iter=1, refine=6`` with scikit-learn's
        mini-batch). 0 keeps scikit-learn's semantics.
    sampling : {"auto", "rows", "chunks"}
        ``"rows"``: i.i.d. rows (with replacement) from all chunks, scikit-learn's
        scheme, best when the data are in memory. ``"chunks"``: each step takes whole
        blocks (one per dask thread, in a fresh random order every epoch), best when
        the data stream from disk, where a row costs its whole chunk. ``"auto"``:
        rows for numpy input or lazy data up to 2 GiB, chunks otherwise.
    compute_labels : bool, default True
        Compute ``labels_`` and the exact ``inertia_`` over all of X after the steps
        (one more pass); as scikit-learn.
    feature_dim : str or None; nodata : float or None
        As for :class:`KMeans`: the feature dimension of xarray input, and the value
        that masks a sample (label -1, no part in the fit).

    Attributes
    ----------
    cluster_centers_, labels_, inertia_ (exact, over all the data, squared), n_iter_,
    n_steps_ (mini-batch steps), history_ (per step: batch inertia, ewa inertia, center
    shift, reassigned, rows, seconds, ``phase``: ``"mini-batch"``, or ``"lloyd"`` for
    ``refine`` iterations, whose ``batch_inertia`` is over all the data)

    Examples
    --------
    >>> import numpy as np
    >>> from daskmeans import MiniBatchKMeans
    >>> X = np.array([[1, 2], [1, 4], [1, 0], [4, 2], [4, 0], [4, 4],
    ...               [4, 5], [0, 1], [2, 2], [3, 2], [5, 5], [1, -1]], dtype=float)
    >>> km = MiniBatchKMeans(n_clusters=2, batch_size=6, random_state=0).fit(X)
    >>> km.cluster_centers_.shape
    (2, 2)
    """

    _auto_n_init = 3
    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        **_COMMON_CONSTRAINTS,
        "tol": [Interval(Real, 0, None)],
        "batch_size": [Options("auto"), _POSITIVE],
        "max_no_improvement": [None, Interval(Integral, 0, None)],
        "reassignment_ratio": [Interval(Real, 0, None)],
        "refine": [Interval(Integral, 0, None)],
        "sampling": [Options("auto", "rows", "chunks")],
        "compute_labels": ["boolean"],
    }

    def __init__(
        self,
        n_clusters: int = 8,
        *,
        init: str | np.ndarray | Callable[..., np.ndarray] = "k-means++",
        n_init: str | int = "auto",
        batch_size: int | str = "auto",
        max_iter: int = 100,
        max_no_improvement: int | None = 10,
        tol: float = 0.0,
        reassignment_ratio: float = 0.01,
        init_size: int | None = None,
        refine: int = 0,
        sampling: str = "auto",
        compute_labels: bool = True,
        metric: str = "euclidean",
        random_state: Any = None,
        oversampling_factor: float = 2,
        init_rounds: int = 5,
        split_every: int = 8,
        verbose: int = 0,
        callback: Callable[..., None] | None = None,
        feature_dim: str | None = None,
        nodata: float | None = None,
    ) -> None:
        self.n_clusters = n_clusters
        self.init = init
        self.n_init = n_init
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.max_no_improvement = max_no_improvement
        self.tol = tol
        self.reassignment_ratio = reassignment_ratio
        self.init_size = init_size
        self.refine = refine
        self.sampling = sampling
        self.compute_labels = compute_labels
        self.metric = metric
        self.random_state = random_state
        self.oversampling_factor = oversampling_factor
        self.init_rounds = init_rounds
        self.split_every = split_every
        self.verbose = verbose
        self.callback = callback
        self.feature_dim = feature_dim
        self.nodata = nodata

    def _batch(self, n: int) -> int:
        return int(min(n, DEFAULT_BATCH_SIZE if self.batch_size == "auto" else self.batch_size))

    def _sample_size(self, n: int) -> int:
        # scikit-learn's default is 3 * its batch (1024); k-means++ cost grows with it
        size = self.init_size if self.init_size is not None else 3 * 1024
        return int(min(n, max(size, 3 * self.n_clusters if self.init_size is None else 0,
                              self.n_clusters)))

    def _sampling_mode(self, src: Source) -> str:
        if self.sampling != "auto":
            return self.sampling
        nbytes = src.n * src.d * src.dtype.itemsize
        return "rows" if (not src.lazy or nbytes <= ROWS_SAMPLING_MAX_BYTES) else "chunks"

    def _set_state(self, state: A.MiniBatchState) -> None:
        self.cluster_centers_ = state.centers
        self.n_steps_ = state.step
        self.history_ = state.history
        self._state = state

    def fit(
        self, X: Any, y: Any = None, sample_weight: Any = None, *,
        checkpoint: str | Path | None = None, checkpoint_every: int = 10,
        resume: bool = False,
    ) -> MiniBatchKMeans:
        """Fit on all of X with mini-batches; ``inertia_`` is then exact over X.

        Parameters
        ----------
        X : (n_samples, n_features) numpy array, dask array, Zarr array, store path or
            URL, or :class:`daskmeans.engine.source.Source`
        y : ignored
        sample_weight : (n_samples,) array-like or dask array, optional
        checkpoint, checkpoint_every, resume : as :meth:`KMeans.fit`; the checkpoint
            holds the centres, per-centre counts, step, early-stopping state and the
            random generator's state, so a resumed fit equals an uninterrupted one

        Returns
        -------
        self
        """
        check_scalar_param("checkpoint_every", checkpoint_every, [_POSITIVE],
                           "MiniBatchKMeans.fit")
        src, rows = self._prepare(X, sample_weight)
        n = src.n
        rs = check_random_state(self.random_state)
        batch = self._batch(n)
        mode = self._sampling_mode(src)
        if mode == "chunks" and isinstance(src, ZarrSource):
            src = src.regroup(1)  # a step reads whole storage chunks, not grouped blocks
        seed0 = int(rs.randint(np.iinfo(np.int32).max))
        rng = np.random.default_rng(seed0)
        per_step = max(1, min(src.n_blocks, schedule.total_threads()))
        if mode == "rows":
            n_steps = max(1, (self.max_iter * n) // batch)
        else:
            n_steps = self.max_iter * -(-src.n_blocks // per_step)
        ckpt = None
        if checkpoint is not None:
            ckpt = _Checkpoint(checkpoint, checkpoint_every, self, src, [seed0])
            ckpt.fingerprint["mode"], ckpt.fingerprint["per_step"] = mode, per_step
        saved = ckpt.load_raw() if (ckpt is not None and resume) else None
        order: list[int] = []
        if saved is None:
            C = self._best_init(src, rng, rs)
            tol_abs = 0.0
            if self.tol > 0:  # estimated on the init-sized sample: no extra pass
                idx = np.sort(rng.choice(n, size=self._sample_size(n), replace=False))
                sample, _ = passes.take_rows(src, idx)
                tol_abs = float(np.mean(np.var(sample, axis=0))) * self.tol
            state = A.MiniBatchState.start(C)
        else:
            header, arrays = saved
            st = header["state"]
            state = A.MiniBatchState(
                arrays["centers"], arrays["counts"], st["step"], st["n_since_last_reassign"],
                st["ewa"], st["ewa_min"], st["no_improvement"], st["history"])
            tol_abs, order = st["tol_abs"], st["order"]
            rng.bit_generator.state = st["rng"]
            log.info("resuming mini-batch at step %d", state.step)
        spec = A.MiniBatchSpec(batch, n_steps, float(self.reassignment_ratio),
                               self.max_no_improvement, tol_abs, self.metric,
                               int(self.split_every))

        def on_step(state: A.MiniBatchState, order: list[int]) -> None:
            if ckpt is not None and state.step % ckpt.every == 0:
                ckpt.write_raw({"state": {
                    "step": state.step, "tol_abs": tol_abs, "order": order,
                    "n_since_last_reassign": state.n_since_last_reassign,
                    "ewa": state.ewa_inertia, "ewa_min": state.ewa_inertia_min,
                    "no_improvement": state.no_improvement, "history": state.history,
                    "rng": rng.bit_generator.state}},
                    centers=state.centers, counts=state.counts)

        with self._progress() as progress:
            A.minibatch(src, state, spec, rng=rng, seed0=seed0, mode=mode, per_step=per_step,
                        order=order, on_step=on_step, progress=progress.report)
            self._set_state(state)
            if self.refine:
                self._refine(src, progress)
        rows_seen = sum(h["batch_rows"] for h in self.history_)
        self.n_iter_ = int(np.ceil(rows_seen / n))
        if self.compute_labels:
            self._final_labels(src)
            self._fitted_on(rows)
        elif rows.grid is not None:
            self.cluster_centers_ = rows.grid.centers(np.asarray(self.cluster_centers_))
        return self

    def _refine(self, src: Source, progress: Any) -> None:
        """``refine`` Lloyd iterations from the mini-batch centres (history marks them)."""
        (run,) = A.lloyd(src, [self._state.centers], max_iter=int(self.refine), tol=0.0,
                         final=_no_final, metric=self.metric,
                         split_every=int(self.split_every), progress=progress.report)
        for r in run.history:  # the exact inertia comes from _final_labels
            self.history_.append({
                "step": self.n_steps_ + r.iteration, "batch_inertia": r.inertia,
                "ewa_inertia": None, "center_shift": r.center_shift,
                "n_reassigned": r.n_relocated, "batch_rows": src.n, "seconds": r.seconds,
                "phase": "lloyd",
            })
        self.cluster_centers_ = self._state.centers = run.centers

    def _best_init(self, src: Source, rng: np.random.Generator,
                   rs: np.random.RandomState) -> np.ndarray:
        n_init = self._n_init()
        if n_init == 1:
            seed = int(rs.randint(np.iinfo(np.int32).max))
            return self._init(src, [rng], [seed])[0]
        idx = np.sort(rng.integers(0, src.n, size=self._sample_size(src.n)))
        valid, vw = passes.take_rows(src, idx)
        best, best_inertia = None, np.inf
        for _ in range(n_init):
            C = self._init(src, [rng], [int(rs.randint(np.iinfo(np.int32).max))])[0]
            inertia = weighted_sse(assign(valid, C)[1], vw)
            if inertia < best_inertia:
                best, best_inertia = C, inertia
        assert best is not None
        return best

    def _final_labels(self, src: Source) -> None:
        C = self._state.centers
        if src.lazy:
            self.labels_ = passes.predict_lazy(src, C)
            self.inertia_ = passes.lloyd_pass(src, C, split_every=int(self.split_every)).sse()
        else:
            labels, sq = assign(src.X, C)
            self.labels_ = labels
            self.inertia_ = weighted_sse(sq, src.weights)

    def partial_fit(self, X: Any, y: Any = None, sample_weight: Any = None) -> MiniBatchKMeans:
        """One mini-batch step with all of X (a chunk of a stream) as the batch.

        The first call initialises the centres on this chunk. Memory is bounded by the
        chunk: ``for block in blocks: km.partial_fit(block)`` streams a Zarr store.
        ``labels_``/``inertia_`` then describe this chunk against the updated centres.
        """
        first = not hasattr(self, "cluster_centers_")
        if first:
            validate_params(self)
        src, rows = self._source(X, reset=first)
        src = self._as_kernels_see_it(
            src, rows.weights(sample_weight, src.n))
        if first or not hasattr(self, "_stream_rs"):
            self._stream_rs = check_random_state(self.random_state)
        if first:
            self._check_params(src)
            seed = int(self._stream_rs.randint(np.iinfo(np.int32).max))
            self._set_state(A.MiniBatchState.start(
                self._init(src, [np.random.default_rng(seed)], [seed])[0]))
        spec = A.MiniBatchSpec(src.n, 0, float(self.reassignment_ratio), None, 0.0, self.metric,
                               int(self.split_every))
        seed = int(self._stream_rs.randint(np.iinfo(np.int32).max))
        A.minibatch_step(src, self._state, spec, rows=None, blocks=range(src.n_blocks),
                         seed=seed, stopping=False)
        self.history_[-1]["seconds"] = 0.0
        self._set_state(self._state)
        self.n_iter_ = 0
        self._final_labels(src)
        self._fitted_on(rows)
        return self


class BisectingKMeans(_BaseKMeans):
    """Bisecting K-means with scikit-learn's semantics, on numpy, dask or Zarr data.

    Starting from one cluster holding every row, ``n_clusters - 1`` times the cluster
    with the largest score (``bisecting_strategy``) is split in two by a 2-means (the
    best of ``n_init``, each from its own initialisation), as
    ``sklearn.cluster.BisectingKMeans`` does. Each 2-means runs as masked passes over
    the blocks: in every pass each row follows the tree from the root to its cluster
    (at each split, to the nearer child centre) and counts only for the 2-means of that
    cluster; nothing is copied or gathered. The clusters that may still be split are
    bisected together, their 2-means (and ``n_init`` runs) sharing every pass, one per
    Lloyd iteration; their splits are then applied in scikit-learn's order (see
    :func:`daskmeans.algorithms.bisecting`). The result does not depend on the
    chunking or on which bisections shared a round: each one's initialisation is
    seeded from ``random_state`` and its place in the tree.

    Parameters
    ----------
    n_clusters : int, default 8
    init : {"random", "k-means++"} or callable, default "random"
        Initialisation of each 2-means: ``"random"`` draws two of the cluster's rows
        with probability ~ sample weight, without replacement (as scikit-learn);
        ``"k-means++"`` runs k-means++ for two centres on a uniform sample of at most
        2048 of the cluster's rows (fewer when many clusters are bisected at once:
        all samples of a pass stay under 32 MB); a callable gets such a sample as
        ``init(sample, 2, random_state=RandomState)``.
    n_init : int, default 1
        2-means runs per bisection; the lowest inertia wins (ties within 1e-6, the
        first, as scikit-learn).
    random_state : int, RandomState or None
    max_iter : int, default 300
        Lloyd iterations of each 2-means.
    verbose : int, default 0
    tol : float, default 1e-4
        A 2-means stops when the summed squared shift of its two centres is <= ``tol``
        (an absolute tolerance: scikit-learn's BisectingKMeans passes ``tol`` to its
        inner K-means unscaled), or when its labels no longer change.
    copy_x : bool, default True
        Accepted for scikit-learn compatibility: X is never modified.
    algorithm : {"lloyd", "elkan"}, default "lloyd"
        Accepted for scikit-learn compatibility: both run Lloyd's iterations (the
        same centres as Elkan's).
    bisecting_strategy : {"biggest_inertia", "largest_cluster"}, default "biggest_inertia"
        Which cluster to split next: the largest sum of squared distances to its centre,
        or the most rows (unweighted, as scikit-learn).
    split_every : int >= 2, default 8
        Fan-in of the tree reduction.
    callback : callable or None
        ``callback(phase, done, total, detail)`` after every split.

    Attributes
    ----------
    cluster_centers_ : (n_clusters, n_features) ndarray, X's dtype: the leaves' centres,
        left to right
    labels_ : (n_samples,) int32, the leaf each row belongs to (numpy for numpy
        input, lazy dask array otherwise)
    inertia_ : float, weighted sum of squared distances of the rows to their leaf's
        centre
    tree_ : :class:`daskmeans.algorithms.BisectingTree`: parent and children of every
        node, its centre, rows, weight, SSE and score, and the leaves' labels
    n_iter_ : int, Lloyd passes over the data (shared by the bisections of a round)
    history_ : list of dict, per round: bisections run together, passes, the largest
        number of iterations, seconds

    Examples
    --------
    >>> import numpy as np
    >>> from daskmeans import BisectingKMeans
    >>> X = np.array([[1, 1], [10, 1], [3, 1], [10, 0], [2, 1], [10, 2],
    ...               [10, 8], [10, 9], [10, 10]], dtype=float)
    >>> bk = BisectingKMeans(n_clusters=3, random_state=0).fit(X)
    >>> sorted(bk.cluster_centers_.tolist())
    [[2.0, 1.0], [10.0, 1.0], [10.0, 9.0]]
    >>> bk.predict(np.array([[0., 0.], [12., 3.]])).tolist() == [
    ...     bk.labels_[0], bk.labels_[1]]
    True
    """

    # not parameters: what the shared methods of _BaseKMeans read (xarray input with
    # feature_dim and nodata masking are KMeans' and MiniBatchKMeans')
    metric = "euclidean"
    feature_dim = None
    nodata = None
    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "n_clusters": [_POSITIVE],
        "init": [Options("k-means++", "random"), callable],
        "n_init": [_POSITIVE],
        "random_state": ["random_state"],
        "max_iter": [_POSITIVE],
        "verbose": [Interval(Integral, 0, None), "boolean"],
        "tol": [Interval(Real, 0, None)],
        "copy_x": ["boolean"],
        "algorithm": [Options("lloyd", "elkan")],
        "bisecting_strategy": [Options("biggest_inertia", "largest_cluster")],
        "split_every": [Interval(Integral, 2, None)],
        "callback": [None, callable],
    }

    def __init__(
        self,
        n_clusters: int = 8,
        *,
        init: str | Callable[..., np.ndarray] = "random",
        n_init: int = 1,
        random_state: Any = None,
        max_iter: int = 300,
        verbose: int = 0,
        tol: float = 1e-4,
        copy_x: bool = True,
        algorithm: str = "lloyd",
        bisecting_strategy: str = "biggest_inertia",
        split_every: int = 8,
        callback: Callable[..., None] | None = None,
    ) -> None:
        self.n_clusters = n_clusters
        self.init = init
        self.n_init = n_init
        self.random_state = random_state
        self.max_iter = max_iter
        self.verbose = verbose
        self.tol = tol
        self.copy_x = copy_x
        self.algorithm = algorithm
        self.bisecting_strategy = bisecting_strategy
        self.split_every = split_every
        self.callback = callback

    def fit(self, X: Any, y: Any = None, sample_weight: Any = None) -> BisectingKMeans:
        """Build the tree of ``n_clusters`` leaves.

        Parameters
        ----------
        X : (n_samples, n_features) numpy array, dask array, Zarr array, store path or
            URL, or :class:`daskmeans.engine.source.Source` (a store's decoded rows are held in
            memory for the fit while they fit in a quarter of it, as for KMeans)
        y : ignored
        sample_weight : (n_samples,) array-like or dask array, optional

        Returns
        -------
        self
        """
        src = mapreduce.hold(self._prepare(X, sample_weight)[0])
        rs = check_random_state(self.random_state)
        seed = int(rs.randint(np.iinfo(np.int32).max))
        spec = A.BisectSpec(self.init, int(self.n_init), int(self.max_iter), float(self.tol),
                            str(self.bisecting_strategy), int(self.split_every))
        with self._progress() as progress:
            tree, history = A.bisecting(src, int(self.n_clusters), spec, seed,
                                        progress.report)
        leaves = tree.leaves()
        self.tree_ = tree
        self.cluster_centers_ = tree.centers[leaves].astype(src.dtype)
        self.inertia_ = float(tree.sse[leaves].sum())
        self.history_ = history
        self.n_iter_ = int(sum(h["n_iter"] for h in history))
        self.labels_ = self._tree_labels(src)
        return self

    def _assigner(self, C: np.ndarray, nearest: bool) -> Any:
        """Rows go to the leaf they reach (as ``predict``; ``evaluate_model`` scores
        those clusters and their SSE, as ``inertia_``); ``score`` keeps scikit-learn's
        nearest centre."""
        if nearest:
            return C
        return TreeCentres(self.tree_.snapshot(), self.tree_.labels,
                             self.tree_.centers[self.tree_.leaves()])

    def _tree_labels(self, src: Source) -> Any:
        snap = self.tree_.snapshot()
        if not src.lazy:
            return tree_labels(src.X, snap, self.tree_.labels)
        return passes.predict_tree_lazy(src, snap, self.tree_.labels)

    def predict(self, X: Any) -> Any:
        """The leaf each row reaches following the tree from the root (at each split,
        the nearer child centre), as scikit-learn's BisectingKMeans predicts.

        Parameters
        ----------
        X : (n_samples, n_features) numpy array, dask array, Zarr array, store path or
            :class:`daskmeans.engine.source.Source`

        Returns
        -------
        labels : (n_samples,) int32, numpy for numpy input, a lazy dask array otherwise
        """
        src, _, _ = self._centers_for(X)
        return self._tree_labels(src)


def _no_final(Cs: list[np.ndarray], runs: list[int]) -> list[float]:
    """No E-step after the iterations (NaN inertias)."""
    return [np.nan] * len(Cs)


class _SaveRun:
    """``on_iteration`` of a checkpointed run: saves it with the best run so far."""

    def __init__(self, ckpt: _Checkpoint, run: int, best: LloydRun | None) -> None:
        self.ckpt, self.run, self.best = ckpt, run, best

    def __call__(self, iteration: int, C: np.ndarray, tol_abs: float,
                 history: list[IterationRecord]) -> None:
        self.ckpt.save(self.run, iteration, C, tol_abs, history, self.best)


def _write_npz(path: Path, header: dict[str, Any], **arrays: np.ndarray) -> None:
    """Arrays plus a JSON header in one ``.npz``, written atomically (temp + rename)."""
    import json
    import os
    import tempfile

    arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)  # type: ignore[arg-type]  # (stub: a key could be allow_pickle)
        os.chmod(tmp, io.new_file_mode())  # mkstemp's 0o600 -> as any other output
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)



class _Checkpoint:
    """Atomic ``.npz`` checkpoints of a Lloyd fit (arrays + a JSON header, no pickle)."""

    def __init__(self, path: str | Path, every: int, est: _BaseKMeans, X: Source,
                 seeds: list[int]) -> None:
        self.path: Path = Path(path)
        self.every: int = int(every)
        params = {k: v for k, v in est.get_params().items()
                  if v is None or isinstance(v, str | int | float | bool)}
        self.fingerprint: dict[str, Any] = {
            "params": params, "shape": list(X.shape), "dtype": str(X.dtype), "seeds": seeds}

    def save(self, run: int, iteration: int, C: np.ndarray | None, tol_abs: float,
             history: list[IterationRecord], best: LloydRun | None) -> None:
        if C is not None and iteration % self.every:
            return
        header = {
            "run": run, "iteration": iteration, "tol_abs": tol_abs,
            "history": [asdict(h) for h in history],
            "best": None if best is None else {
                "inertia": best.inertia, "n_iter": best.n_iter, "strict": best.strict,
                "history": [asdict(h) for h in best.history]},
        }
        arrays = {}
        if C is not None:
            arrays["centers"] = C
        if best is not None:
            arrays["best_centers"] = best.centers
        self.write_raw(header, **arrays)

    def write_raw(self, header: dict[str, Any], **arrays: np.ndarray) -> None:
        """Atomically write ``header`` (JSON, with the fingerprint) and arrays."""
        _write_npz(self.path, {"format": "daskmeans-checkpoint/1",
                               "fingerprint": self.fingerprint, **header}, **arrays)

    def load_raw(self) -> tuple[dict[str, Any], dict[str, np.ndarray]] | None:
        """(header, arrays) of a checkpoint from the same problem, or None."""
        import json

        if not self.path.exists():
            log.info("no checkpoint at %s: starting afresh", self.path)
            return None
        with np.load(self.path, allow_pickle=False) as data:
            header = json.loads(bytes(data["header"]).decode())
            arrays = {key: np.array(data[key]) for key in data.files if key != "header"}
        if header.get("format") != "daskmeans-checkpoint/1":
            raise ModelFormatError(f"{self.path}: not a daskmeans checkpoint")
        if header["fingerprint"] != self.fingerprint:
            raise ValueError(
                f"checkpoint {self.path} comes from other parameters or data "
                f"({header['fingerprint']} != {self.fingerprint})")
        return header, arrays

    def load(self) -> dict[str, Any] | None:
        raw = self.load_raw()
        if raw is None:
            return None
        header, arrays = raw
        centers, best_c = arrays.get("centers"), arrays.get("best_centers")
        best = None
        if header["best"] is not None:
            b = header["best"]
            assert best_c is not None
            best = LloydRun(b["inertia"], best_c, b["n_iter"],
                            [IterationRecord(**h) for h in b["history"]], b["strict"])
        return {"run": header["run"], "iteration": header["iteration"], "centers": centers,
                "tol_abs": header["tol_abs"], "best": best,
                "history": [IterationRecord(**h) for h in header["history"]]}




# ---------------------------------------------------------------------- persistence

MODEL_FORMAT = "daskmeans-model"
MODEL_VERSION = 1


def save_model(
    estimator: _BaseKMeans, path: str | Path, *, mapping: dict[int, int] | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Save a fitted estimator without pickle: one ``.npz`` (arrays + a JSON header).

    Stores the centres, the constructor parameters that are plain values, the
    cluster -> label mapping (optional), and the versions of daskmeans, numpy and
    scikit-learn. Written atomically (temporary file, then rename).

    Examples
    --------
    >>> save_model(KMeans(2).fit([[0.0], [1.0]]), "/tmp/m.npz")  # doctest: +SKIP
    """

    import sklearn

    from . import __version__

    check_is_fitted(estimator)
    params = {k: v for k, v in estimator.get_params().items()
              if v is None or isinstance(v, str | int | float | bool)}
    header = {
        "format": MODEL_FORMAT,
        "version": MODEL_VERSION,
        "class": type(estimator).__name__,
        "params": params,
        "n_features_in": int(estimator.n_features_in_),
        "inertia": float(getattr(estimator, "inertia_", float("nan"))),
        "n_iter": int(getattr(estimator, "n_iter_", 0)),
        "mapping": {str(k): int(v) for k, v in (mapping or {}).items()},
        "versions": {"daskmeans": __version__, "numpy": np.__version__,
                     "scikit-learn": sklearn.__version__},
        "extra": extra or {},
    }
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_suffix(".npz")
    arrays = {"cluster_centers": np.asarray(estimator.cluster_centers_)}
    tree = getattr(estimator, "tree_", None)
    if tree is not None:  # BisectingKMeans predicts by following its tree
        arrays |= {f"tree_{name}": getattr(tree, name) for name in tree.ARRAYS}
    _write_npz(path, header, **arrays)
    return path


def load_model(path: str | Path) -> tuple[_BaseKMeans, dict[str, Any]]:
    """Load a model saved by :func:`save_model` (never unpickles).

    Returns ``(estimator, header)``; ``header["mapping"]`` holds the cluster -> label
    mapping with integer keys. Raises :class:`ModelFormatError` for anything else.
    """
    import json
    import zipfile

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such model file")
    try:
        with np.load(path, allow_pickle=False) as data:
            header = json.loads(bytes(data["header"]).decode())
            centers = np.array(data["cluster_centers"])
            tree = {k[5:]: np.array(data[k]) for k in data.files if k.startswith("tree_")}
    except (ValueError, KeyError, OSError, zipfile.BadZipFile, json.JSONDecodeError) as e:
        raise ModelFormatError(f"{path}: not a daskmeans model file ({e})") from e
    if header.get("format") != MODEL_FORMAT:
        raise ModelFormatError(f"{path}: not a daskmeans model (format {header.get('format')!r})")
    if header.get("version") != MODEL_VERSION:
        raise ModelFormatError(
            f"{path}: model format version {header.get('version')!r} is not supported "
            f"(this daskmeans reads version {MODEL_VERSION})"
        )
    classes: dict[str, type[_BaseKMeans]] = {
        "KMeans": KMeans, "MiniBatchKMeans": MiniBatchKMeans,
        "BisectingKMeans": BisectingKMeans}
    cls = classes.get(header.get("class", ""))
    if cls is None:
        raise ModelFormatError(f"{path}: unknown estimator class {header.get('class')!r}")
    est = cls()
    valid = est.get_params()
    est.set_params(**{k: v for k, v in header["params"].items() if k in valid})
    est.cluster_centers_ = centers
    est.n_features_in_ = int(header["n_features_in"])
    est.inertia_ = header["inertia"]
    est.n_iter_ = header["n_iter"]
    if isinstance(est, BisectingKMeans):
        missing = set(A.BisectingTree.ARRAYS) - set(tree)
        if missing:
            raise ModelFormatError(f"{path}: a BisectingKMeans model without its tree "
                                   f"({sorted(missing)} missing)")
        est.tree_ = A.BisectingTree(**{name: tree[name] for name in A.BisectingTree.ARRAYS})
    header["mapping"] = {int(k): int(v) for k, v in header.get("mapping", {}).items()}
    return est, header
