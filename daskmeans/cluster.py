"""K-means estimators with scikit-learn conventions, on dask arrays of any size."""

from __future__ import annotations

import logging
import numbers
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

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

from . import _kernels as K
from . import _reduce as R
from . import io

__all__ = ["KMeans", "MiniBatchKMeans"]

log = logging.getLogger(__name__)

_INIT_NAMES = ("k-means++", "k-means||", "random")
_METRICS = ("euclidean", "cosine")


@dataclass
class IterationRecord:
    """One entry of ``history_``."""

    iteration: int
    inertia: float  # SSE against the centres used for assignment in this iteration
    center_shift: float  # sum of squared centre moves
    n_relocated: int  # empty clusters moved to far points
    seconds: float
    init_run: int = 0


def _is_lazy(X: Any) -> bool:
    return isinstance(X, da.Array) or not hasattr(X, "__array__") or _is_zarr(X)


def _is_zarr(X: Any) -> bool:
    import zarr

    return isinstance(X, zarr.Array | zarr.Group)


def _check_weights(sample_weight: Any, n: int) -> np.ndarray | da.Array | None:
    if sample_weight is None:
        return None
    if isinstance(sample_weight, da.Array):
        if sample_weight.ndim != 1 or sample_weight.shape[0] != n:
            raise ValueError(
                f"sample_weight must have shape ({n},), got {sample_weight.shape}"
            )
        return sample_weight
    if isinstance(sample_weight, numbers.Number):
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


class _BaseKMeans(ClassNamePrefixFeaturesOutMixin, TransformerMixin, ClusterMixin, BaseEstimator):
    """Shared validation, initialisation, predict/transform/score."""

    # ------------------------------------------------------------------ input handling

    def _validate_X(self, X: Any, reset: bool) -> tuple[Any, bool]:
        """Return (X, lazy): numpy validated by scikit-learn, or an (n, d) dask array."""
        if isinstance(X, str | Path) or _is_zarr(X):
            X = io.open_array(X)
        if isinstance(X, da.Array):
            if X.ndim != 2:
                raise ValueError(f"X must be 2-D (n_samples, n_features), got shape {X.shape}")
            if any(np.isnan(c) for c in X.shape):
                raise ValueError("X has unknown chunk sizes; call X.compute_chunk_sizes()")
            if X.dtype not in (np.float32, np.float64):
                X = X.astype(np.float64)
            if reset:
                self.n_features_in_ = X.shape[1]
            elif X.shape[1] != self.n_features_in_:
                raise ValueError(
                    f"X has {X.shape[1]} features, but {type(self).__name__} is expecting "
                    f"{self.n_features_in_} features as input"
                )
            return R.as_dask(X), True
        X = validate_data(
            self, X, accept_sparse=False, dtype=[np.float64, np.float32], order="C",
            reset=reset,
        )
        return X, False

    def _check_params(self, n_samples: int) -> None:
        k = self.n_clusters
        if not isinstance(k, numbers.Integral) or k < 1:
            raise ValueError(f"n_clusters must be a positive integer, got {k!r}")
        if k > n_samples:
            raise ValueError(f"n_clusters={k} must be <= n_samples={n_samples}")
        if not isinstance(self.max_iter, numbers.Integral) or self.max_iter < 1:
            raise ValueError(f"max_iter must be a positive integer, got {self.max_iter!r}")
        if not isinstance(self.tol, numbers.Real) or self.tol < 0:
            raise ValueError(f"tol must be a non-negative number, got {self.tol!r}")
        if self.metric not in _METRICS:
            raise ValueError(f"metric must be one of {_METRICS}, got {self.metric!r}")
        init = self.init
        if isinstance(init, str) and init not in _INIT_NAMES:
            raise ValueError(f"init must be one of {_INIT_NAMES}, an array or a callable, "
                             f"got {init!r}")
        n_init = self.n_init
        if n_init != "auto" and (not isinstance(n_init, numbers.Integral) or n_init < 1):
            raise ValueError(f"n_init must be 'auto' or a positive integer, got {n_init!r}")
        size = self.init_size
        if size is not None and (not isinstance(size, numbers.Integral) or size < 1):
            raise ValueError(f"init_size must be None or a positive integer, got {size!r}")

    def _n_init(self) -> int:
        if self.n_init == "auto":
            return 10 if isinstance(self.init, str) and self.init == "random" else 1
        if hasattr(self.init, "__array__") and self.n_init != 1:
            log.warning("explicit initial centres given: running n_init=1, not %s", self.n_init)
            return 1
        return int(self.n_init)

    def _prepare(self, X: Any, sample_weight: Any) -> tuple[da.Array, Any, bool, Any]:
        """Validate and return (dask X, dask weights, lazy, numpy X or None)."""
        X, lazy = self._validate_X(X, reset=True)
        n = X.shape[0]
        self._check_params(n)
        w = _check_weights(sample_weight, n)
        Xnp = None if lazy else X
        Xd = R.as_dask(X)
        if not lazy and R.using_distributed():
            Xd = Xd.persist()  # ship in-memory data to the workers once, not per iteration
        if self.metric == "cosine":
            Xd = R.normalize_lazy(Xd)
            if Xnp is not None:
                Xnp = K.normalize_rows(Xnp)
        wd = R.align_weights(w, Xd)
        return Xd, wd, lazy, Xnp

    # ------------------------------------------------------------------ init

    def _sample_size(self, n: int) -> int:
        k = self.n_clusters
        size = self.init_size if self.init_size is not None else 10_000 + 20 * k
        return int(min(n, max(size, k)))

    def _init_centers(
        self, X: da.Array, w: da.Array | None, rng: np.random.Generator, seed: int
    ) -> np.ndarray:
        k, n = self.n_clusters, X.shape[0]
        init = self.init
        if hasattr(init, "__array__") and not isinstance(init, str):
            C = np.array(init, dtype=X.dtype)
            if C.shape != (k, X.shape[1]):
                raise ValueError(
                    f"init array must have shape (n_clusters, n_features)=({k}, {X.shape[1]}),"
                    f" got {C.shape}"
                )
        elif isinstance(init, str) and init == "k-means||":
            C = self._init_scalable(X, w, rng, seed)
        else:
            idx = np.sort(rng.choice(n, size=self._sample_size(n), replace=False))
            sample, sw = R.take_rows(X, idx, w)
            if callable(init):
                C = np.asarray(init(sample, k, random_state=check_random_state(seed)),
                               dtype=X.dtype)
                if C.shape != (k, X.shape[1]):
                    raise ValueError(
                        f"init callable must return shape ({k}, {X.shape[1]}), got {C.shape}"
                    )
            elif init == "random":
                p = None if sw is None else sw / sw.sum()
                C = sample[np.sort(rng.choice(sample.shape[0], size=k, replace=False, p=p))]
            else:
                C = K.kmeans_plusplus(sample, k, rng, weights=sw)
        if self.metric == "cosine":
            C = K.normalize_rows(C)
        return C.astype(X.dtype, copy=False)

    def _init_scalable(
        self, X: da.Array, w: da.Array | None, rng: np.random.Generator, seed: int
    ) -> np.ndarray:
        """k-means|| (Bahmani et al. 2012): ``init_rounds`` passes of oversampling."""
        k, n = self.n_clusters, X.shape[0]
        ell = self.oversampling_factor * k
        first = int(rng.integers(n))
        C, _ = R.take_rows(X, np.array([first]))
        for r in range(self.init_rounds):
            ov = R.oversample_pass(X, C, w, seed=seed * 1000 + r, m=2 * ell + 16)
            if ov.cost <= 0:
                break
            keep = ov.key > ov.cost / ell
            C = np.vstack([C, ov.rows[keep]])
            log.debug("k-means|| round %d: cost %.6g, %d candidates", r, ov.cost, len(C))
        if C.shape[0] < k:  # tiny or degenerate data: top up with random rows
            extra = np.sort(rng.choice(n, size=k, replace=False))
            rows, _ = R.take_rows(X, extra)
            C = np.vstack([C, rows])
        weights = R.count_pass(X, C, w)
        weights = np.maximum(weights, 1e-12)  # unattracting candidates stay drawable last
        return K.kmeans_plusplus(C, k, rng, weights=weights)

    # ------------------------------------------------------------------ public methods

    def _centers_for(self, X: Any) -> tuple[Any, bool]:
        check_is_fitted(self)
        X, lazy = self._validate_X(X, reset=False)
        if self.metric == "cosine":
            X = R.normalize_lazy(X) if lazy else K.normalize_rows(X)
        return X, lazy

    def predict(self, X: Any) -> Any:
        """Index of the nearest centre of each row.

        Parameters
        ----------
        X : array of shape (n_samples, n_features), dask array, Zarr array or store path

        Returns
        -------
        labels : (n_samples,) int32, numpy for numpy input, a lazy dask array otherwise.
        """
        X, lazy = self._centers_for(X)
        C = self.cluster_centers_.astype(X.dtype, copy=False)
        if lazy:
            return R.predict_lazy(X, C)
        return K.assign(X, C)[0]

    def transform(self, X: Any) -> Any:
        """Euclidean distances to every centre, shape (n_samples, n_clusters)."""
        X, lazy = self._centers_for(X)
        C = self.cluster_centers_.astype(X.dtype, copy=False)
        if lazy:
            return R.transform_lazy(X, C)
        return K.distances(X, C)

    def fit_predict(self, X: Any, y: Any = None, sample_weight: Any = None) -> Any:
        """Fit, then return ``labels_``."""
        return self.fit(X, sample_weight=sample_weight).labels_

    def fit_transform(self, X: Any, y: Any = None, sample_weight: Any = None) -> Any:
        """Fit, then return distances of X to the centres."""
        return self.fit(X, sample_weight=sample_weight).transform(X)

    def score(self, X: Any, y: Any = None, sample_weight: Any = None) -> float:
        """Opposite of the (weighted) sum of squared distances of X to its nearest centre."""
        X, lazy = self._centers_for(X)
        C = self.cluster_centers_.astype(X.dtype, copy=False)
        w = _check_weights(sample_weight, X.shape[0])
        if lazy:
            part = R.lloyd_pass(X, C, R.align_weights(w, X))
            return -part.sse(C)
        _, sq = K.assign(X, C)
        sq = sq.astype(np.float64)
        return -float(sq.sum() if w is None else sq @ np.asarray(w))

    @property
    def _n_features_out(self) -> int:
        return self.cluster_centers_.shape[0]

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = False
        return tags


class KMeans(_BaseKMeans):
    """Lloyd's K-means on numpy or dask arrays, one pass over the data per iteration.

    Each iteration maps a kernel over the row chunks (one GEMM for the distances,
    argmin, per-cluster sums/counts in float64) and tree-reduces the partial sums into
    the new centres with exactly one ``dask.compute``. Works under whatever scheduler
    is active: dask's threaded scheduler, or a ``distributed.Client``.

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
        Runs with different initialisations; the lowest inertia wins. "auto" is 10 for
        ``init="random"`` and 1 otherwise (as scikit-learn).
    max_iter : int, default 300
    tol : float, default 1e-4
        Convergence when the summed squared centre shift is <= ``tol`` times the mean
        per-feature variance of X (computed in the first iteration's pass).
    metric : {"euclidean", "cosine"}
        ``"cosine"`` is spherical k-means: rows and centres are L2-normalised; inertia
        is then the SSE of the normalised rows (``2 * sum(1 - cos)``).
    random_state : int, RandomState or None
    init_size : int or None
        Rows sampled for k-means++/random init (default ``min(n, 10_000 + 20 k)``).
    oversampling_factor : float, default 2
    init_rounds : int, default 5
    split_every : int, default 8
        Fan-in of the tree reduction.

    Attributes
    ----------
    cluster_centers_ : (n_clusters, n_features) ndarray, X's dtype
    labels_ : (n_samples,) int32, numpy for numpy input, lazy dask array otherwise
    inertia_ : float, weighted sum of squared distances to the final centres
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
    """

    def __init__(
        self,
        n_clusters: int = 8,
        *,
        init: str | np.ndarray | Callable[..., np.ndarray] = "k-means++",
        n_init: str | int = "auto",
        max_iter: int = 300,
        tol: float = 1e-4,
        metric: str = "euclidean",
        random_state: Any = None,
        init_size: int | None = None,
        oversampling_factor: float = 2,
        init_rounds: int = 5,
        split_every: int = 8,
    ) -> None:
        self.n_clusters = n_clusters
        self.init = init
        self.n_init = n_init
        self.max_iter = max_iter
        self.tol = tol
        self.metric = metric
        self.random_state = random_state
        self.init_size = init_size
        self.oversampling_factor = oversampling_factor
        self.init_rounds = init_rounds
        self.split_every = split_every

    def fit(self, X: Any, y: Any = None, sample_weight: Any = None) -> KMeans:
        """Compute the clustering.

        Parameters
        ----------
        X : (n_samples, n_features) numpy array, dask array, Zarr array or store path
        y : ignored
        sample_weight : (n_samples,) array-like or dask array, optional

        Returns
        -------
        self
        """
        Xd, wd, lazy, Xnp = self._prepare(X, sample_weight)
        rs = check_random_state(self.random_state)
        best: tuple[float, np.ndarray, int, list[IterationRecord], bool] | None = None
        for run in range(self._n_init()):
            seed = int(rs.randint(np.iinfo(np.int32).max))
            rng = np.random.default_rng(seed)
            t0 = time.perf_counter()
            C0 = self._init_centers(Xd, wd, rng, seed)
            log.info("init run %d (%s): %.2fs", run, self._init_name(), time.perf_counter() - t0)
            result = self._lloyd(Xd, wd, C0, run)
            if best is None or result[0] < best[0]:
                best = result
        assert best is not None
        inertia, C, n_iter, history, _ = best
        self.cluster_centers_ = C
        self.n_iter_ = n_iter
        self.history_ = [asdict(h) for h in history]
        self.inertia_ = inertia
        self.labels_ = R.predict_lazy(Xd, C) if lazy else K.assign(Xnp, C)[0]
        return self

    def _init_name(self) -> str:
        return self.init if isinstance(self.init, str) else type(self.init).__name__

    def _lloyd(
        self, X: da.Array, w: da.Array | None, C: np.ndarray, run: int
    ) -> tuple[float, np.ndarray, int, list[IterationRecord], bool]:
        """Lloyd iterations from centres C; returns (inertia, centres, n_iter, history)."""
        k = self.n_clusters
        tol_abs = 0.0
        history: list[IterationRecord] = []
        strict = False
        inertia = np.inf
        for it in range(self.max_iter):
            t0 = time.perf_counter()
            first = it == 0 and self.tol > 0
            part = R.lloyd_pass(X, C, w, n_top=k, moments=first, split_every=self.split_every)
            if first:
                assert part.moments is not None
                tol_abs = float(np.mean(part.moments.var)) * self.tol
            inertia = part.sse(C)
            sums, counts = part.sums.copy(), part.counts.copy()
            n_reloc = relocate_empty(sums, counts, part.top)
            C_new = centers_from_sums(sums, counts, C)
            if self.metric == "cosine":
                C_new = K.normalize_rows(C_new)
            C_new = C_new.astype(C.dtype)
            shift = float(((C_new.astype(np.float64) - C) ** 2).sum())
            history.append(
                IterationRecord(it + 1, inertia, shift, n_reloc, time.perf_counter() - t0, run)
            )
            log.info("iter %d: inertia %.6g shift %.3g relocated %d", it + 1, inertia, shift,
                     n_reloc)
            C = C_new
            if shift == 0 and n_reloc == 0:
                strict = True  # labels are a fixed point: this pass's inertia is final
                break
            if shift <= tol_abs:
                break
        n_iter = len(history)
        if not strict:  # E-step against the final centres, as scikit-learn does
            inertia = R.lloyd_pass(X, C, w, split_every=self.split_every).sse(C)
        return inertia, C, n_iter, history, strict


def centers_from_sums(sums: np.ndarray, counts: np.ndarray, previous: np.ndarray) -> np.ndarray:
    """Means from per-cluster sums; a cluster with no weight keeps its previous centre."""
    out = previous.astype(np.float64).copy()
    nz = counts > 0
    out[nz] = sums[nz] / counts[nz, None]
    return out


def relocate_empty(sums: np.ndarray, counts: np.ndarray, top: K.TopM) -> int:
    """Move empty clusters onto the rows farthest from their centres (in place).

    As scikit-learn: each empty cluster takes the next farthest row (largest squared
    distance, ties to the smaller row index); that row's weighted value leaves the sums
    of the cluster it was assigned to. Returns how many clusters were relocated.
    """
    empty = np.flatnonzero(counts == 0)
    n = min(len(empty), len(top.sqdist))
    if len(empty) > n:
        log.warning("%d empty clusters but only %d far rows known", len(empty), n)
    for j in range(n):
        new, old, wt = empty[j], top.labels[j], top.weights[j]
        if wt <= 0:
            continue
        row = top.rows[j].astype(np.float64) * wt
        sums[old] -= row
        counts[old] -= wt
        sums[new] = row
        counts[new] = wt
    return n
