"""K-means estimators with scikit-learn conventions, on dask arrays of any size."""

from __future__ import annotations

import functools
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

__all__ = ["KMeans", "MiniBatchKMeans", "ModelFormatError", "load_model", "save_model"]

log = logging.getLogger(__name__)

#: ``n_init`` runs share each Lloyd pass while their stacked float64 per-cluster sums
#: (every chunk's partial result holds them) stay under this many bytes: one GEMM and
#: one read of the data for all of them (K=10 x 10 runs, Fashion-MNIST: 2.3x faster
#: than ten passes; no gain at K=256 in memory, where the GEMM is the cost, but a
#: store is still read once instead of ten times).
RUNS_MAX_BYTES = 32 << 20
#: the init samples of several ``n_init`` runs are gathered in one pass while their rows
#: together stay under this many bytes.
SAMPLES_MAX_BYTES = 256 << 20

_INIT_NAMES = ("k-means++", "k-means||", "random")
_METRICS = ("euclidean", "cosine")


class ModelFormatError(ValueError):
    """A model or checkpoint file is not daskmeans', or of an unsupported version."""


@dataclass
class IterationRecord:
    """One entry of ``history_``."""

    iteration: int
    inertia: float  # SSE against the centres used for assignment in this iteration
    center_shift: float  # sum of squared centre moves
    n_relocated: int  # empty clusters moved to far points
    seconds: float  # of the iteration's pass (shared by the n_init runs fitted together)
    init_run: int = 0


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
    if isinstance(sample_weight, numbers.Real):
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

    labels_: np.ndarray | da.Array  # numpy for numpy input, lazy for dask input

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
        if not isinstance(k, numbers.Integral) or int(k) < 1:
            raise ValueError(f"n_clusters must be a positive integer, got {k!r}")
        if int(k) > n_samples:
            raise ValueError(f"n_clusters={k} must be <= n_samples={n_samples}")
        if not isinstance(self.max_iter, numbers.Integral) or int(self.max_iter) < 1:
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

    def _prepare(
        self, X: Any, sample_weight: Any
    ) -> tuple[da.Array, Any, bool, Any, da.Array | None]:
        """Validate and return (dask X, dask weights, lazy, numpy X or None, xsq).

        ``xsq``: in-memory rows' ``|x|^2``, computed once for the passes (or None).
        """
        X, lazy = self._validate_X(X, reset=True)
        n = X.shape[0]
        self._check_params(n)
        w = _check_weights(sample_weight, n)
        Xnp = None if lazy else X
        if not lazy and R.using_distributed():
            Xd = R.scatter_rows(X)  # ship in-memory data to the workers once, spread out
        else:
            Xd = R.as_dask(X)
        if self.metric == "cosine":
            Xd = R.normalize_lazy(Xd)
            if Xnp is not None:
                Xnp = K.normalize_rows(Xnp)
        wd = R.align_weights(w, Xd)
        xsq = None if Xnp is None else R.row_norms(Xnp, Xd)
        return Xd, wd, lazy, Xnp, xsq

    # ------------------------------------------------------------------ init

    def _sample_size(self, n: int) -> int:
        k = self.n_clusters
        size = self.init_size if self.init_size is not None else 10_000 + 20 * k
        return int(min(n, max(size, k)))

    def _init_centers(
        self, X: da.Array, w: da.Array | None, rng: np.random.Generator, seed: int
    ) -> np.ndarray:
        return self._init_runs(X, w, [rng], [seed])[0]

    def _init_runs(
        self, X: da.Array, w: da.Array | None, rngs: list[np.random.Generator],
        seeds: list[int],
    ) -> list[np.ndarray]:
        """Initial centres of independent runs (one generator and seed each).

        Inits that start from a uniform sample of rows (k-means++, random, a callable)
        gather every run's sample in one pass (see :data:`SAMPLES_MAX_BYTES`); each run
        gets the rows and random draws it would get alone.
        """
        k, n = self.n_clusters, X.shape[0]
        init = self.init
        if hasattr(init, "__array__") and not isinstance(init, str):
            C = np.array(init, dtype=X.dtype)
            if C.shape != (k, X.shape[1]):
                raise ValueError(
                    f"init array must have shape (n_clusters, n_features)=({k}, {X.shape[1]}),"
                    f" got {C.shape}"
                )
            Cs = [C.copy() for _ in rngs]
        elif isinstance(init, str) and init == "k-means||":
            Cs = [self._init_scalable(X, w, rng, seed)
                  for rng, seed in zip(rngs, seeds, strict=True)]
        else:
            idxs = [np.sort(rng.choice(n, size=self._sample_size(n), replace=False))
                    for rng in rngs]
            Cs = [self._from_sample(sample, sw, rng, seed, X.shape[1])
                  for (sample, sw), rng, seed in zip(_take_samples(X, idxs, w), rngs, seeds,
                                                     strict=True)]
        if self.metric == "cosine":
            Cs = [K.normalize_rows(C) for C in Cs]
        return [C.astype(X.dtype, copy=False) for C in Cs]

    def _from_sample(self, sample: np.ndarray, sw: np.ndarray | None,
                     rng: np.random.Generator, seed: int, d: int) -> np.ndarray:
        """Initial centres drawn from a sample of rows (k-means++, random, callable)."""
        k, init = self.n_clusters, self.init
        if callable(init):
            C = np.asarray(init(sample, k, random_state=check_random_state(seed)),
                           dtype=sample.dtype)
            if C.shape != (k, d):
                raise ValueError(f"init callable must return shape ({k}, {d}), got {C.shape}")
            return C
        if init == "random":
            p = None if sw is None else sw / sw.sum()
            return sample[np.sort(rng.choice(sample.shape[0], size=k, replace=False, p=p))]
        return K.kmeans_plusplus(sample, k, rng, weights=sw)

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
        return -self._scored(X, sample_weight).sse

    def _scored(self, X: Any, sample_weight: Any = None, labels_true: Any = None) -> K.Scored:
        """One assignment pass over X: SSE and, given true labels, contingency counts."""
        X, lazy = self._centers_for(X)
        C = self.cluster_centers_.astype(X.dtype, copy=False)
        w = _check_weights(sample_weight, X.shape[0])
        if labels_true is not None and labels_true.shape[0] != X.shape[0]:
            raise K.LabelError(f"labels_true must have one label per row of X "
                               f"({X.shape[0]}), got {labels_true.shape[0]}")
        if lazy:
            if labels_true is not None and not isinstance(labels_true, da.Array):
                labels_true = da.from_array(labels_true, chunks=(X.chunks[0],))
            return R.score_pass(X, C, R.align_weights(w, X), labels_true)
        if isinstance(labels_true, da.Array):
            labels_true = labels_true.compute()
        return K.score_block(X, C, None if w is None else np.asarray(w), labels_true)

    @property
    def _n_features_out(self) -> int:
        return self.cluster_centers_.shape[0]

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = False
        return tags

    def _lloyd(
        self, X: da.Array, w: da.Array | None, C0s: list[np.ndarray], runs: list[int],
        final: Callable[[list[np.ndarray], list[int]], list[float]],
        resume: dict[str, Any] | None = None, save: Callable[..., None] | None = None,
        always_final: bool = False, max_iter: int | None = None, tol: float | None = None,
        xsq: da.Array | None = None,
    ) -> list[tuple[float, np.ndarray, int, list[IterationRecord], bool]]:
        """Lloyd iterations of independent runs from centres ``C0s`` (one per run), all
        runs sharing every pass over the data; per run (inertia, centres, n_iter,
        history, strict).

        A run stops on its own (tolerance or fixed point) and leaves the passes; each
        run's iterations are those it would make alone. ``max_iter``/``tol`` default to
        the estimator's (mini-batch refinement passes its own: a fixed number of
        iterations); ``xsq`` as :func:`_reduce.lloyd_pass`. ``resume``/``save``
        (checkpoints) need a single run.

        ``final(Cs, runs)`` is the E-step against the final centres (as scikit-learn runs
        it unless the labels reached a fixed point); ``always_final`` runs it even then
        (in-memory data, where it also yields ``labels_``).
        """
        k = self.n_clusters
        n_runs = len(C0s)
        if (resume is not None or save is not None) and n_runs != 1:
            raise ValueError(f"checkpoints need one run at a time, got {n_runs}")
        max_iter = self.max_iter if max_iter is None else max_iter
        tol = self.tol if tol is None else tol
        tol_abs = 0.0 if resume is None else resume["tol_abs"]
        Cs = list(C0s)
        histories: list[list[IterationRecord]] = (
            [[] for _ in C0s] if resume is None else [resume["history"]])
        start = 0 if resume is None else resume["iteration"]
        strict = [False] * n_runs
        done = [False] * n_runs
        inertia = [np.inf] * n_runs
        for it in range(start, max_iter):
            active = [i for i in range(n_runs) if not done[i]]
            if not active:
                break
            t0 = time.perf_counter()
            first = it == 0 and tol > 0
            parts = R.lloyd_runs_pass(X, [Cs[i] for i in active], w, xsq=xsq, n_top=k,
                                      moments=first, split_every=self.split_every)
            if first:
                assert parts[0].moments is not None
                tol_abs = float(np.mean(parts[0].moments.var)) * tol
            for i, part in zip(active, parts, strict=True):
                C = Cs[i]
                inertia[i] = part.sse(C)
                sums, counts = part.sums.copy(), part.counts.copy()
                n_reloc = relocate_empty(sums, counts, part.top)
                C_new = centers_from_sums(sums, counts, C)
                if self.metric == "cosine":
                    C_new = K.normalize_rows(C_new)
                C_new = C_new.astype(C.dtype)
                shift = float(((C_new.astype(np.float64) - C) ** 2).sum())
                histories[i].append(IterationRecord(
                    it + 1, inertia[i], shift, n_reloc, time.perf_counter() - t0, runs[i]))
                log.info("iter %d: inertia %.6g shift %.3g relocated %d", it + 1, inertia[i],
                         shift, n_reloc, extra={"progress": (
                             "fit", it + 1, max_iter,
                             f"inertia {inertia[i]:.6g} shift {shift:.3g}")})
                Cs[i] = C_new
                if shift == 0 and n_reloc == 0:
                    strict[i] = done[i] = True  # labels are a fixed point: inertia is final
                elif shift <= tol_abs:
                    done[i] = True
            if save is not None and not done[0]:
                save(it + 1, Cs[0], tol_abs, histories[0])
        again = [i for i in range(n_runs) if not strict[i] or always_final]
        if again:  # E-step against the final centres
            values = final([Cs[i] for i in again], [runs[i] for i in again])
            for i, v in zip(again, values, strict=True):
                inertia[i] = v
        return [(inertia[i], Cs[i], len(histories[i]), histories[i], strict[i])
                for i in range(n_runs)]


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
        ``init="random"`` and 1 otherwise (as scikit-learn). The runs' Lloyd iterations
        share the passes over the data (one GEMM and one read for all runs while their
        stacked sums stay under :data:`RUNS_MAX_BYTES`; each run stops on its own and
        ends exactly as it would alone), and their init samples are gathered in one
        pass (:data:`SAMPLES_MAX_BYTES`). With a checkpoint, runs go one at a time.
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
        X : (n_samples, n_features) numpy array, dask array, Zarr array or store path
        y : ignored
        sample_weight : (n_samples,) array-like or dask array, optional
        checkpoint : path of an ``.npz`` checkpoint, written atomically every
            ``checkpoint_every`` iterations (centres, iteration, tolerance, history, the
            seeds of every init run and the best run so far; no pickle)
        resume : continue from ``checkpoint`` if it exists (it must come from the same
            parameters and data shape); the result equals an uninterrupted fit's

        Returns
        -------
        self
        """
        Xd, wd, lazy, Xnp, xsq = self._prepare(X, sample_weight)
        rs = check_random_state(self.random_state)
        seeds = [int(rs.randint(np.iinfo(np.int32).max)) for _ in range(self._n_init())]
        ckpt = _Checkpoint(checkpoint, checkpoint_every, self, Xd, seeds) if checkpoint else None
        state = ckpt.load() if (ckpt is not None and resume) else None
        best: tuple[float, np.ndarray, int, list[IterationRecord], bool] | None = None
        best_labels = None
        w_chk = None if lazy else _check_weights(sample_weight, Xd.shape[0])
        w_np = None if w_chk is None else np.asarray(w_chk)
        labels_of: dict[int, np.ndarray] = {}

        def final_e_steps(Cs: list[np.ndarray], runs: list[int]) -> list[float]:
            """Inertias against the final centres: for in-memory data a numpy pass per
            run that also gives ``labels_`` (no second pass after the fit), else one
            pass for all runs."""
            if lazy:
                parts = R.lloyd_runs_pass(Xd, Cs, wd, split_every=self.split_every)
                return [p.sse() for p in parts]
            out = []
            for C, run in zip(Cs, runs, strict=True):
                labels_of[run], sq = K.assign(Xnp, C)
                out.append(K.weighted_sse(sq, w_np))
            return out

        first_run = 0
        if state is not None:
            best, first_run = state["best"], state["run"]
        # runs share passes over the data, a batch at a time (one run at a time with
        # checkpoints, whose format holds one run's state)
        per_pass = 1 if ckpt is not None else self._runs_per_pass(Xd.shape[1])
        for batch_start in range(first_run, len(seeds), per_pass):
            batch = list(range(batch_start, min(batch_start + per_pass, len(seeds))))
            resume_at = state if (state is not None and batch_start == first_run) else None
            if resume_at is not None and resume_at["centers"] is not None:
                C0s = [resume_at["centers"]]  # one run per batch with checkpoints
                log.info("resuming run %d at iteration %d", batch[0], resume_at["iteration"])
            else:
                t0 = time.perf_counter()
                C0s = self._init_runs(Xd, wd, [np.random.default_rng(seeds[r]) for r in batch],
                                      [seeds[r] for r in batch])
                log.info("init runs %d-%d (%s): %.2fs", batch[0], batch[-1], self._init_name(),
                         time.perf_counter() - t0)
                resume_at = None
            save: Callable[..., None] | None = None
            if ckpt is not None:
                save = functools.partial(_save_run, ckpt, batch[0], best)
            results = self._lloyd(Xd, wd, C0s, batch, resume=resume_at, save=save, xsq=xsq,
                                  final=final_e_steps, always_final=not lazy)
            for run, result in zip(batch, results, strict=True):
                if best is None or result[0] < best[0]:
                    best, best_labels = result, labels_of.get(run)
            labels_of.clear()
            if ckpt is not None:
                ckpt.save(batch[-1] + 1, 0, None, 0.0, [], best)
        assert best is not None
        inertia, C, n_iter, history, _ = best
        self.cluster_centers_ = C
        self.n_iter_ = n_iter
        self.history_ = [asdict(h) for h in history]
        self.inertia_ = inertia
        if lazy:
            self.labels_ = R.predict_lazy(Xd, C)
        else:  # labels of the best run's final E-step (or, after a resume, computed now)
            self.labels_ = best_labels if best_labels is not None else K.assign(Xnp, C)[0]
        return self

    def _init_name(self) -> str:
        return self.init if isinstance(self.init, str) else type(self.init).__name__

    def _runs_per_pass(self, n_features: int) -> int:
        """How many ``n_init`` runs share each pass (see :data:`RUNS_MAX_BYTES`)."""
        per_run = self.n_clusters * n_features * 8
        return max(1, min(self._n_init(), RUNS_MAX_BYTES // per_run))

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
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def _save_run(ckpt: _Checkpoint, run: int, best: Any, iteration: int, C: np.ndarray | None,
              tol_abs: float, history: list[IterationRecord]) -> None:
    """``ckpt.save`` with a run's fixed arguments first (``functools.partial``)."""
    ckpt.save(run, iteration, C, tol_abs, history, best)


class _Checkpoint:
    """Atomic ``.npz`` checkpoints of a Lloyd fit (arrays + a JSON header, no pickle)."""

    def __init__(self, path: str | Path, every: int, est: KMeans, X: da.Array,
                 seeds: list[int]) -> None:
        if not isinstance(every, numbers.Integral) or every < 1:
            raise ValueError(f"checkpoint_every must be a positive integer, got {every!r}")
        self.path: Path = Path(path)
        self.every: int = int(every)
        params = {k: v for k, v in est.get_params().items()
                  if v is None or isinstance(v, str | int | float | bool)}
        self.fingerprint: dict[str, Any] = {
            "params": params, "shape": list(X.shape), "dtype": str(X.dtype), "seeds": seeds}

    def save(self, run: int, iteration: int, C: np.ndarray | None, tol_abs: float,
             history: list[IterationRecord], best: Any) -> None:
        if C is not None and iteration % self.every:
            return
        header = {
            "run": run, "iteration": iteration, "tol_abs": tol_abs,
            "history": [asdict(h) for h in history],
            "best": None if best is None else {
                "inertia": best[0], "n_iter": best[2], "strict": best[4],
                "history": [asdict(h) for h in best[3]]},
        }
        arrays = {}
        if C is not None:
            arrays["centers"] = C
        if best is not None:
            arrays["best_centers"] = best[1]
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
            best = (b["inertia"], best_c, b["n_iter"],
                    [IterationRecord(**h) for h in b["history"]], b["strict"])
        return {"run": header["run"], "iteration": header["iteration"], "centers": centers,
                "tol_abs": header["tol_abs"], "best": best,
                "history": [IterationRecord(**h) for h in header["history"]]}


def _take_samples(X: da.Array, idxs: list[np.ndarray], w: da.Array | None
                  ) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """The rows (and weights) at each sorted index array: the union of consecutive
    arrays gathered in one pass while it stays under :data:`SAMPLES_MAX_BYTES`."""
    row_bytes = X.shape[1] * X.dtype.itemsize
    out: list[tuple[np.ndarray, np.ndarray | None]] = []
    group: list[np.ndarray] = []
    for i, idx in enumerate(idxs):
        group.append(idx)
        rows_next = sum(g.size for g in group) + (idxs[i + 1].size if i + 1 < len(idxs) else 0)
        if i + 1 < len(idxs) and rows_next * row_bytes <= SAMPLES_MAX_BYTES:
            continue  # the next run's sample still fits in this gather
        if len(group) == 1:  # alone: its rows as gathered, no copy
            out.append(R.take_rows(X, group[0], w))
        else:
            union = np.unique(np.concatenate(group))
            rows, sw = R.take_rows(X, union, w)
            for g in group:
                pos = np.searchsorted(union, g)
                out.append((rows[pos], None if sw is None else sw[pos]))
        group = []
    return out


def _no_final(Cs: list[np.ndarray], runs: list[int]) -> list[float]:
    """No E-step after the iterations (NaN inertias)."""
    return [np.nan] * len(Cs)


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


#: default rows per mini-batch step (see MiniBatchKMeans docs for the measurement).
DEFAULT_BATCH_SIZE = 4096
#: above this many bytes, "auto" sampling streams whole chunks instead of random rows.
ROWS_SAMPLING_MAX_BYTES = 2 << 30


class MiniBatchKMeans(_BaseKMeans):
    """Mini-batch K-means (Sculley 2010) with scikit-learn's semantics, distributed.

    Each step draws a batch, computes per-chunk partial sums against the current
    centres where the rows live, tree-reduces them (one ``dask.compute`` per step) and
    moves every centre by scikit-learn's count-based learning rate
    ``c <- (c * N_c + S_c) / (N_c + n_c)``. Low-count centres are reassigned to rows
    of the batch (``reassignment_ratio``); early stopping uses the smoothed batch
    inertia (``max_no_improvement``) or the centre shift (``tol``) as scikit-learn
    defines them.

    Parameters
    ----------
    n_clusters : int, default 8
    init, n_init, metric, random_state, oversampling_factor, init_rounds, split_every
        As :class:`KMeans`; ``n_init="auto"`` is 3 for ``init="random"``, else 1. With
        several inits the best one on an ``init_size`` validation sample wins.
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
        remove that bias: on Fashion-MNIST at K=256 three passes took the inertia from
        +1.6% to +0.9% of a converged Lloyd fit, and ``max_iter=1, refine=6`` ends
        within 1% of it in 0.8x scikit-learn's mini-batch time (README). 0 keeps
        scikit-learn's semantics.
    sampling : {"auto", "rows", "chunks"}
        ``"rows"``: i.i.d. rows (with replacement) from all chunks, scikit-learn's
        scheme, best when the data are in memory. ``"chunks"``: each step takes whole
        chunks (one per dask thread, in a fresh random order every epoch), best when
        the data stream from disk, where a row costs its whole chunk. ``"auto"``:
        rows for numpy input or dask arrays up to 2 GiB, chunks otherwise.

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
        metric: str = "euclidean",
        random_state: Any = None,
        oversampling_factor: float = 2,
        init_rounds: int = 5,
        split_every: int = 8,
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
        self.metric = metric
        self.random_state = random_state
        self.oversampling_factor = oversampling_factor
        self.init_rounds = init_rounds
        self.split_every = split_every

    # ------------------------------------------------------------------ parameters

    def _check_params(self, n_samples: int) -> None:
        super()._check_params(n_samples)
        bs = self.batch_size
        if bs != "auto" and (not isinstance(bs, numbers.Integral) or bs < 1):
            raise ValueError(f"batch_size must be 'auto' or a positive integer, got {bs!r}")
        if self.sampling not in ("auto", "rows", "chunks"):
            raise ValueError(
                f"sampling must be 'auto', 'rows' or 'chunks', got {self.sampling!r}")
        r = self.reassignment_ratio
        if not isinstance(r, numbers.Real) or r < 0:
            raise ValueError(f"reassignment_ratio must be >= 0, got {r!r}")
        m = self.max_no_improvement
        if m is not None and (not isinstance(m, numbers.Integral) or m < 0):
            raise ValueError(f"max_no_improvement must be None or >= 0, got {m!r}")
        if not isinstance(self.refine, numbers.Integral) or self.refine < 0:
            raise ValueError(f"refine must be a non-negative integer, got {self.refine!r}")

    def _n_init(self) -> int:
        if self.n_init == "auto":
            return 3 if isinstance(self.init, str) and self.init == "random" else 1
        return super()._n_init()

    def _batch(self, n: int) -> int:
        return int(min(n, DEFAULT_BATCH_SIZE if self.batch_size == "auto" else self.batch_size))

    def _sample_size(self, n: int) -> int:
        # scikit-learn's default is 3 * its batch (1024); k-means++ cost grows with it
        size = self.init_size if self.init_size is not None else 3 * 1024
        return int(min(n, max(size, 3 * self.n_clusters if self.init_size is None else 0,
                              self.n_clusters)))

    def _sampling_mode(self, X: da.Array, lazy: bool) -> str:
        if self.sampling != "auto":
            return self.sampling
        return "rows" if (not lazy or X.nbytes <= ROWS_SAMPLING_MAX_BYTES) else "chunks"

    # ------------------------------------------------------------------ state

    def _start(self, C: np.ndarray) -> None:
        self.cluster_centers_ = C
        self._counts = np.zeros(C.shape[0], dtype=np.float64)
        self._n_since_last_reassign = 0
        self._ewa_inertia: float | None = None
        self._ewa_inertia_min: float | None = None
        self._no_improvement = 0
        self.n_steps_ = 0
        self.history_: list[dict[str, Any]] = []

    def _random_reassign(self, batch: int) -> bool:
        """As scikit-learn: every ``10 * n_clusters`` rows, or while a centre is unseen."""
        self._n_since_last_reassign += batch
        if (self._counts == 0).any() or self._n_since_last_reassign >= 10 * self.n_clusters:
            self._n_since_last_reassign = 0
            return True
        return False

    def _n_sample(self, reassign: bool, batch: int, weighted: bool) -> int:
        """How many reservoir rows a step needs for reassignment (0 if none can be).

        After a step a centre is reassigned when its count is below ``ratio * max``;
        counts only grow and the max grows by at most the batch's total weight, so
        only centres with ``count < ratio * (max + batch)`` can qualify. The sample
        is ordered by key, so drawing that many rows instead of ``k`` gives the same
        reassignments; after the first steps it is usually a handful, not ``k`` (a
        sample of 256 rows cost ~2.5 ms of a 13 ms step at K=256).
        """
        if not reassign or self.reassignment_ratio <= 0:
            return 0
        m = self.n_clusters
        if not weighted:  # with weights the batch's total weight is not known beforehand
            bound = self.reassignment_ratio * (self._counts.max() + batch)
            m = int(np.count_nonzero(self._counts < bound))
        return min(m, self.n_clusters, batch)

    def _step(self, part: K.LloydPartial, reassign: bool, batch: int) -> tuple[float, int]:
        """Apply one batch's partial sums; returns (squared centre shift, reassigned)."""
        C = self.cluster_centers_
        C64 = C.astype(np.float64)
        new = C64.copy()
        wsum, counts = part.counts, self._counts
        nz = wsum > 0
        new[nz] = (C64[nz] * counts[nz, None] + part.sums[nz]) / (counts[nz] + wsum[nz])[:, None]
        counts[nz] += wsum[nz]
        n_re = 0
        if reassign and self.reassignment_ratio > 0 and part.sample is not None:
            to_re = counts < self.reassignment_ratio * counts.max()
            if to_re.sum() > 0.5 * batch:  # at most half a batch of centres at once
                to_re[np.argsort(counts)[int(0.5 * batch):]] = False
            n_re = min(int(to_re.sum()), len(part.sample.rows))
            if n_re:
                idx = np.flatnonzero(to_re)[:n_re]
                new[idx] = part.sample.rows[:n_re]
                # reset their counts, but not so low that they are reassigned at once
                keep = counts[~to_re]
                counts[idx] = keep.min() if keep.size else 0.0
        if self.metric == "cosine":
            new = K.normalize_rows(new)
        new = new.astype(C.dtype)
        shift = float(((new.astype(np.float64) - C64) ** 2).sum())
        self.cluster_centers_ = new
        return shift, n_re

    def _converged(self, step: int, n: int, shift: float, batch_inertia: float,
                   batch: int, tol_abs: float) -> bool:
        """scikit-learn's early stopping on the EWA batch inertia or the centre shift."""
        batch_inertia /= batch
        if step == 0:
            return False
        if self._ewa_inertia is None:
            self._ewa_inertia = batch_inertia
        else:
            alpha = min(batch * 2.0 / (n + 1), 1.0)
            self._ewa_inertia = self._ewa_inertia * (1 - alpha) + batch_inertia * alpha
        if tol_abs > 0.0 and shift <= tol_abs:
            log.info("converged: centre shift %.3g <= tol %.3g", shift, tol_abs)
            return True
        if self._ewa_inertia_min is None or self._ewa_inertia < self._ewa_inertia_min:
            self._no_improvement = 0
            self._ewa_inertia_min = self._ewa_inertia
        else:
            self._no_improvement += 1
        m = self.max_no_improvement
        if m is not None and self._no_improvement >= m:
            log.info("converged: no improvement of the smoothed batch inertia in %d steps", m)
            return True
        return False

    # ------------------------------------------------------------------ fit

    def fit(
        self, X: Any, y: Any = None, sample_weight: Any = None, *,
        checkpoint: str | Path | None = None, checkpoint_every: int = 10,
        resume: bool = False,
    ) -> MiniBatchKMeans:
        """Fit on all of X with mini-batches; ``inertia_`` is then exact over X.

        Parameters
        ----------
        X : (n_samples, n_features) numpy array, dask array, Zarr array or store path
        y : ignored
        sample_weight : (n_samples,) array-like or dask array, optional
        checkpoint, checkpoint_every, resume : as :meth:`KMeans.fit`; the checkpoint
            holds the centres, per-centre counts, step, early-stopping state and the
            random generator's state, so a resumed fit equals an uninterrupted one

        Returns
        -------
        self
        """
        Xd, wd, lazy, Xnp, xsq = self._prepare(X, sample_weight)
        n = Xd.shape[0]
        rs = check_random_state(self.random_state)
        batch = self._batch(n)
        mode = self._sampling_mode(Xd, lazy)
        seed0 = int(rs.randint(np.iinfo(np.int32).max))
        rng = np.random.default_rng(seed0)

        n_chunks = Xd.numblocks[0]
        per_step = max(1, min(n_chunks, R.total_threads()))
        if mode == "rows":
            n_steps = max(1, (self.max_iter * n) // batch)
        else:
            n_steps = self.max_iter * -(-n_chunks // per_step)
        order: list[int] = []
        ckpt = None
        if checkpoint is not None:
            ckpt = _Checkpoint(checkpoint, checkpoint_every, self, Xd, [seed0])
            ckpt.fingerprint["mode"], ckpt.fingerprint["per_step"] = mode, per_step
        state = ckpt.load_raw() if (ckpt is not None and resume) else None
        first_step = 0
        if state is None:
            C = self._best_init(Xd, wd, rng, rs)
            tol_abs = 0.0
            if self.tol > 0:  # estimated on the init-sized sample: no extra pass
                idx = np.sort(rng.choice(n, size=self._sample_size(n), replace=False))
                sample, _ = R.take_rows(Xd, idx)
                tol_abs = float(np.mean(np.var(sample, axis=0))) * self.tol
            self._start(C)
        else:
            header, arrays = state
            self._start(arrays["centers"])
            self._counts = arrays["counts"]
            st = header["state"]
            tol_abs, order, first_step = st["tol_abs"], st["order"], st["step"]
            self._n_since_last_reassign = st["n_since_last_reassign"]
            self._ewa_inertia, self._ewa_inertia_min = st["ewa"], st["ewa_min"]
            self._no_improvement, self.history_ = st["no_improvement"], st["history"]
            self.n_steps_ = first_step
            rng.bit_generator.state = st["rng"]
            log.info("resuming mini-batch at step %d", first_step)
        for step in range(first_step, n_steps):
            t0 = time.perf_counter()
            if mode == "rows":
                rows = np.sort(rng.integers(0, n, size=batch))
                chunk_ids = None
                b = batch
            else:
                if len(order) < per_step:
                    order += rng.permutation(n_chunks).tolist()
                chunk_ids, order = order[:per_step], order[per_step:]
                rows = None
                b = int(sum(Xd.chunks[0][i] for i in chunk_ids))
            reassign = self._random_reassign(b)
            part = R.batch_pass(
                Xd, self.cluster_centers_, wd, rows=rows, chunk_ids=chunk_ids,
                n_sample=self._n_sample(reassign, b, wd is not None), seed=seed0 + step + 1,
                split_every=self.split_every,
            )
            batch_inertia = part.sse(self.cluster_centers_)
            shift, n_re = self._step(part, reassign, b)
            self.n_steps_ = step + 1
            stop = self._converged(step, n, shift, batch_inertia, b, tol_abs)
            self.history_.append({
                "step": step + 1, "batch_inertia": batch_inertia, "ewa_inertia": self._ewa_inertia,
                "center_shift": shift, "n_reassigned": n_re, "batch_rows": b,
                "seconds": time.perf_counter() - t0, "phase": "mini-batch",
            })
            log.debug("step %d: batch inertia %.6g", step + 1, batch_inertia,
                      extra={"progress": ("mini-batch", step + 1, n_steps,
                                          f"batch inertia {batch_inertia / b:.4g}/row "
                                          f"shift {shift:.3g}")})
            if stop:
                break
            if ckpt is not None and (step + 1) % ckpt.every == 0:
                ckpt.write_raw({"state": {
                    "step": step + 1, "tol_abs": tol_abs, "order": order,
                    "n_since_last_reassign": self._n_since_last_reassign,
                    "ewa": self._ewa_inertia, "ewa_min": self._ewa_inertia_min,
                    "no_improvement": self._no_improvement, "history": self.history_,
                    "rng": rng.bit_generator.state}},
                    centers=self.cluster_centers_, counts=self._counts)
        if self.refine:
            self._refine(Xd, wd, n, xsq)
        rows_seen = sum(h["batch_rows"] for h in self.history_)
        self.n_iter_ = int(np.ceil(rows_seen / n))
        self._final_labels(Xd, wd, lazy, Xnp, sample_weight)
        return self

    def _refine(self, Xd: da.Array, wd: da.Array | None, n: int,
                xsq: da.Array | None) -> None:
        """``refine`` Lloyd iterations from the mini-batch centres (history marks them)."""
        _, C, _, records, _ = self._lloyd(
            Xd, wd, [self.cluster_centers_], [0], max_iter=self.refine, tol=0.0, xsq=xsq,
            final=_no_final)[0]  # the exact inertia comes from _final_labels
        for r in records:
            self.history_.append({
                "step": self.n_steps_ + r.iteration, "batch_inertia": r.inertia,
                "ewa_inertia": None, "center_shift": r.center_shift,
                "n_reassigned": r.n_relocated, "batch_rows": n, "seconds": r.seconds,
                "phase": "lloyd",
            })
        self.cluster_centers_ = C

    def _best_init(self, X: da.Array, w: da.Array | None, rng: np.random.Generator,
                   rs: np.random.RandomState) -> np.ndarray:
        n_init = self._n_init()
        if n_init == 1:
            return self._init_centers(X, w, rng, int(rs.randint(np.iinfo(np.int32).max)))
        n = X.shape[0]
        idx = np.sort(rng.integers(0, n, size=self._sample_size(n)))
        valid, vw = R.take_rows(X, idx, w)
        best, best_inertia = None, np.inf
        for _ in range(n_init):
            C = self._init_centers(X, w, rng, int(rs.randint(np.iinfo(np.int32).max)))
            sq = K.assign(valid, C)[1].astype(np.float64)
            inertia = float(sq.sum() if vw is None else sq @ vw)
            if inertia < best_inertia:
                best, best_inertia = C, inertia
        assert best is not None
        return best

    def _final_labels(self, Xd: da.Array, wd: da.Array | None, lazy: bool,
                      Xnp: np.ndarray | None, sample_weight: Any) -> None:
        C = self.cluster_centers_
        if lazy:
            self.labels_ = R.predict_lazy(Xd, C)
            self.inertia_ = R.lloyd_pass(Xd, C, wd, split_every=self.split_every).sse(C)
        else:
            assert Xnp is not None
            labels, sq = K.assign(Xnp, C)
            sq = sq.astype(np.float64)
            w = _check_weights(sample_weight, Xnp.shape[0])
            self.labels_ = labels
            self.inertia_ = float(sq.sum() if w is None else sq @ np.asarray(w))

    def partial_fit(self, X: Any, y: Any = None, sample_weight: Any = None) -> MiniBatchKMeans:
        """One mini-batch step with all of X (a chunk of a stream) as the batch.

        The first call initialises the centres on this chunk. Memory is bounded by the
        chunk: ``for block in Xd.blocks: km.partial_fit(block)`` streams a Zarr store.
        ``labels_``/``inertia_`` then describe this chunk against the updated centres.
        """
        first = not hasattr(self, "cluster_centers_")
        Xv, lazy = self._validate_X(X, reset=first)
        n = Xv.shape[0]
        w = _check_weights(sample_weight, n)
        Xd = R.as_dask(Xv)
        if self.metric == "cosine":
            Xd = R.normalize_lazy(Xd)
        wd = R.align_weights(w, Xd)
        if first or not hasattr(self, "_stream_rs"):
            self._stream_rs = check_random_state(self.random_state)
        if first:
            self._check_params(n)
            seed = int(self._stream_rs.randint(np.iinfo(np.int32).max))
            self._start(self._init_centers(Xd, wd, np.random.default_rng(seed), seed))
        reassign = self._random_reassign(n)
        seed = int(self._stream_rs.randint(np.iinfo(np.int32).max))
        part = R.batch_pass(Xd, self.cluster_centers_, wd, chunk_ids=range(Xd.numblocks[0]),
                            n_sample=self._n_sample(reassign, n, wd is not None), seed=seed,
                            split_every=self.split_every)
        batch_inertia = part.sse(self.cluster_centers_)
        shift, n_re = self._step(part, reassign, n)
        self.n_steps_ += 1
        self.history_.append({
            "step": self.n_steps_, "batch_inertia": batch_inertia, "ewa_inertia": None,
            "center_shift": shift, "n_reassigned": n_re, "batch_rows": n, "seconds": 0.0,
            "phase": "mini-batch",
        })
        self.n_iter_ = 0
        Xnp = None if lazy else (K.normalize_rows(Xv) if self.metric == "cosine" else Xv)
        self._final_labels(Xd, wd, lazy, Xnp, sample_weight)
        return self


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
    _write_npz(path, header, cluster_centers=estimator.cluster_centers_)
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
    except (ValueError, KeyError, OSError, zipfile.BadZipFile, json.JSONDecodeError) as e:
        raise ModelFormatError(f"{path}: not a daskmeans model file ({e})") from e
    if header.get("format") != MODEL_FORMAT:
        raise ModelFormatError(f"{path}: not a daskmeans model (format {header.get('format')!r})")
    if header.get("version") != MODEL_VERSION:
        raise ModelFormatError(
            f"{path}: model format version {header.get('version')!r} is not supported "
            f"(this daskmeans reads version {MODEL_VERSION})"
        )
    cls = {"KMeans": KMeans, "MiniBatchKMeans": MiniBatchKMeans}.get(header.get("class", ""))
    if cls is None:
        raise ModelFormatError(f"{path}: unknown estimator class {header.get('class')!r}")
    est = cls()
    valid = est.get_params()
    est.set_params(**{k: v for k, v in header["params"].items() if k in valid})
    est.cluster_centers_ = centers
    est.n_features_in_ = int(header["n_features_in"])
    est.inertia_ = header["inertia"]
    est.n_iter_ = header["n_iter"]
    header["mapping"] = {int(k): int(v) for k, v in header.get("mapping", {}).items()}
    return est, header
