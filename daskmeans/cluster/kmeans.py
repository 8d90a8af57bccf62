"""KMeans: Lloyd's K-means (shared passes or distance bounds) and k-medians.

``fit`` validates, prepares the source, picks the solver once
(:func:`daskmeans.algorithms.solvers.choose_solver`) and runs one uniform ``n_init``
loop over batches of runs, checkpointed between iterations.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state

from ..algorithms import (
    FitSettings,
    Progress,
    RunResult,
    SolverChoice,
    choose_solver,
    training_sample,
)
from ..algorithms.common import in_memory_e_step
from ..algorithms.predict import fit_labels, predict, score
from ..engine.hold import held_summary, hold
from ..engine.source import Source
from ..validation import InvalidParameterError, Options, check_scalar_param
from .base import COMMON_CONSTRAINTS, POSITIVE, BaseKMeans
from .checkpoints import Checkpoint, SavedFit, SaveRun
from .verbose import RunLines

log = logging.getLogger(__name__)

#: a run replaces the best so far only if its inertia is lower by more than this share:
#: runs that reach the same clusters (up to the order of their labels) have inertias
#: equal up to the float64 rounding of sums added in an order that depends on the
#: chunks, and the first of them must win whatever the chunking
SAME_INERTIA_RTOL = 1e-10


class KMeans(BaseKMeans):
    """Lloyd's K-means on numpy, dask or Zarr data, one pass over the data per iteration.

    Each iteration maps one kernel over the row blocks (one GEMM for the distances,
    argmin, per-cluster sums/counts in float64) and tree-reduces the partial sums into
    the new centres with exactly one ``dask.compute`` (see
    :func:`daskmeans.algorithms.lloyd.lloyd`). Works under whatever scheduler is active:
    dask's threaded scheduler, or a ``distributed.Client``.

    Parameters
    ----------
    n_clusters : int, default 8
        The number of clusters K.
    init : {"k-means++", "k-means||", "random"}, array (n_clusters, n_features) or callable
        ``"k-means++"``: greedy k-means++ on ``init_size`` rows drawn uniformly across
        all chunks (reproducible for a seed, whatever the chunking). ``"k-means||"``:
        the scalable variant, ``init_rounds`` passes over all the data, oversampling
        ``oversampling_factor * n_clusters`` candidates per round, then weighted
        k-means++ on the candidates weighted by the rows they attract. ``"random"``:
        ``n_clusters`` rows of that sample. A callable is called as
        ``init(sample, n_clusters, random_state=RandomState)``. From 1024 clusters
        on, k-means++ (also on the k-means|| candidates) draws 4 candidates per centre
        instead of ``2 + log(n_clusters)``, and those of 64 centres at once, whose
        distances to the sample are then one matrix product (see
        :func:`daskmeans.kernels.init.kmeans_plusplus`): the sequential seeding is
        bound by memory traffic at such K. Below 1024 it is scikit-learn's greedy
        k-means++, draw for draw.
    n_init : "auto" or int, default "auto"
        Runs with different initialisations; the lowest inertia wins. "auto" is 1 for
        k-means++, k-means|| and arrays, 10 for "random" and callables (as
        scikit-learn). The runs share every pass over the data (one GEMM and one read
        for all runs while their stacked sums stay under
        :data:`daskmeans.algorithms.solvers.RUNS_MAX_BYTES`; each
        run stops on its own and ends exactly as it would alone), and their init
        samples are gathered in one pass. With a checkpoint, runs go one at a time.
    max_iter : int, default 300
        Iterations of each run at most.
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
        task: a (K, d, 16) float64 histogram, ``128 K d`` bytes (twice that in a float
        fit's last pass). Some tutorials assign by L1 distance but keep the
        mean as the update; the mean does not minimise L1 distances, so that loop can
        raise its own objective and need not converge; this one cannot raise it.
        ``n_init`` runs then go one after another.
    algorithm : {"auto", "lloyd", "elkan"}, default "auto"
        All three give Lloyd's iterations and answer. ``"lloyd"``: every iteration
        assigns every row. ``"elkan"``: each row keeps bounds of its distances between
        iterations (an upper bound to its centre and, per group of nearby centres, a
        lower bound to the others: one per centre below 16 centres, Yinyang's groups above,
        ``k // 8`` of them while the bounds stay within a quarter of a row's stored
        bytes: 12 + 4 per group bytes a row, kept where the rows are) and rows, or whole
        blocks, that cannot change centre are skipped; ``n_init`` runs then run one
        after another. ``"auto"``: bounds for a single run, shared passes when several
        ``n_init`` runs are fitted together; plain Lloyd on sparse rows.
        Every input keeps its bounds beside its blocks: a numpy array, a Zarr source, a
        dask array held for the fit or, larger than the memory budget, streamed (its
        settled blocks not computed).
        With ``metric="manhattan"`` every row is assigned in every iteration
        (``"elkan"`` is refused: the bounds are Euclidean).
    random_state : int, RandomState or None
        Seeds the initialisation (and the relocation of empty clusters). The same
        seed gives the same centres whatever the chunking and the scheduler.
    init_size : int or None
        Rows sampled for k-means++/random init (default ``min(n, 10_000 + 20 k)``).
    oversampling_factor : float > 0, default 2
        For ``init="k-means||"``: each round draws about
        ``oversampling_factor * n_clusters`` candidate centres, each row with a
        probability proportional to its distance to the candidates so far.
    init_rounds : int >= 0, default 5
        For ``init="k-means||"``: the number of oversampling rounds, one pass over the
        data each; the rounds stop early once every row coincides with a candidate.
        After the rounds, one more pass weights each candidate by the rows nearest
        to it, and weighted k-means++ on the candidates picks the ``n_clusters``
        initial centres. More rounds give more candidates, at one pass each; with 0,
        the candidates are one random row plus ``n_clusters`` random rows. Ignored by
        the other ``init`` choices.
    max_points_per_centroid : int >= 1 or None, default None
        None: the fit iterates over every row. Else, as faiss's option of that name
        for training an index's coarse quantiser, the init and the iterations use at
        most ``n_clusters * max_points_per_centroid`` rows drawn uniformly without
        replacement across all chunks (the same rows for a seed, whatever the
        chunking), held in memory; ``labels_`` and ``inertia_`` are then those of
        every row against the centres found (one more assignment of all rows), while
        ``history_`` and ``n_iter_`` describe the fit on the sample. faiss uses 256.
    split_every : int >= 2, default 8
        Fan-in of the tree reduction.
    copy_x : bool, default True
        Accepted for scikit-learn compatibility: X is never modified.
    verbose : int, default 0
        When > 0, print scikit-learn's messages on stdout: ``Initialization complete``,
        ``Iteration i, inertia ...``, ``Converged at iteration i: ...`` (each line as
        its iteration ends).
    callback : callable or None
        ``callback(phase, done, total, detail)`` as the init advances (phase ``"init"``: the
        k-means++ centres chosen, the k-means|| rounds) and after every iteration;
        ``callback=daskmeans.progress.TqdmBars()`` draws progress bars (tqdm, on
        stderr).
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
    cluster_centers_ : ndarray of shape (n_clusters, n_features)
        The final centres, in X's dtype.
    labels_ : ndarray or dask.array.Array of shape (n_samples,)
        int32 label of each row: numpy for numpy input, a lazy dask array otherwise
        (a DataArray over the sample dimensions for xarray input, -1 for nodata).
        On a cluster, the labels of held rows stay in the workers where the last
        E-step made them, and the lazy array names them there.
    inertia_ : float
        Weighted sum of squared distances of the rows to their final centres (of L1
        distances for ``metric="manhattan"``), summed in float64.
    n_iter_ : int
        Iterations run by the best of the ``n_init`` runs.
    history_ : list of dict
        One dict per iteration of the best run: ``iteration``, ``inertia``,
        ``center_shift``, ``n_relocated`` (empty clusters moved) and ``seconds``.
    n_features_in_ : int
        Number of features seen in ``fit``.

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
        **COMMON_CONSTRAINTS, "algorithm": [Options("auto", "lloyd", "elkan")],
        "metric": [Options("euclidean", "cosine", "manhattan")],
        "copy_x": ["boolean"],
        "max_points_per_centroid": [None, POSITIVE],
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
        max_points_per_centroid: int | None = None,
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
        self.max_points_per_centroid = max_points_per_centroid
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
        X : array-like, dask array, Zarr array, str or Source of shape (n_samples, n_features)
            A numpy array, dask array, Zarr array, store path or URL, or a source from
            :func:`daskmeans.open_source`. A store's decoded rows, or a dask array's
            computed blocks, are read once and held in memory for the fit while they
            take at most a quarter of it (of the workers' memory on a cluster: the
            memory budget, ``daskmeans.engine.schedule.memory_budget()``); larger
            ones are read in every pass (``daskmeans.open_source(store, cache=False)``
            streams a store by choice). With ``verbose`` or a ``callback``, a
            ``"hold"`` report says what the fit holds and the budget.
        y : None
            Ignored.
        sample_weight : array-like or dask array of shape (n_samples,), optional
            Weight of each row in every sum.
        checkpoint : str or Path, optional
            Path of an ``.npz`` checkpoint, written atomically every
            ``checkpoint_every`` iterations (centres, iteration, tolerance, history,
            the seeds of every init run and the best run so far; no pickle).
        checkpoint_every : int, default 1
            Iterations between two checkpoints.
        resume : bool, default False
            Continue from ``checkpoint`` if it exists (it must come from the same
            parameters and data shape); the result equals an uninterrupted fit's
            (the inertia of a bounded fit to float64 rounding: its per-cluster sums
            were added up from the resume on).

        Returns
        -------
        KMeans
            The fitted estimator.
        """
        check_scalar_param("checkpoint_every", checkpoint_every, [POSITIVE], "KMeans.fit")
        src, layout = self._prepare(X, sample_weight)
        metric = self._metric()
        # a store's decoded rows (a dask array's computed blocks) are read once and held
        # while they fit in the memory budget
        src = hold(src, with_xsq=metric.uses_row_norms)
        rs = check_random_state(self.random_state)
        seeds = [int(rs.randint(np.iinfo(np.int32).max)) for _ in range(self._n_init())]
        train = self._training_rows(src, rs)
        ckpt = Checkpoint(checkpoint, checkpoint_every, self, train, seeds) if checkpoint else None
        saved = ckpt.load() if (ckpt is not None and resume) else None
        # checkpoints go one run at a time: their format holds one run's state
        solver = choose_solver(metric, self._algorithm(), train, n_runs=len(seeds),
                               n_clusters=int(self.n_clusters),
                               one_run_at_a_time=ckpt is not None)
        lines = RunLines(float(self.tol)) if self.verbose else None  # printed live
        settings = solver.prepare(train, FitSettings(int(self.max_iter), float(self.tol),
                                                     metric, int(self.split_every),
                                                     on_record=lines))
        with self._progress() as progress:
            if src.lazy and progress.enabled:  # what the fit holds, against which budget
                progress.report("hold", 1, 1, held_summary(src))
            best = self._best_run(train, solver, settings, seeds, ckpt, saved, progress.report)
        self.cluster_centers_ = best.centers
        self.n_iter_ = best.n_iter
        self.history_ = [asdict(h) for h in best.history]
        if train is src:
            self.inertia_ = best.inertia
            self.labels_ = fit_labels(src, best, metric)
        elif not src.lazy:  # every row against the centres found on the sample
            self.labels_, self.inertia_ = in_memory_e_step(src, best.centers, metric)
        else:
            self.labels_ = predict(src, best.centers, metric)
            self.inertia_ = score(src, best.centers, src.weights, None, metric).sse
        self._fitted_on(layout)
        self._warn_distinct_clusters()
        return self

    def _algorithm(self) -> str:
        """The algorithm to run: ``"elkan"`` with one cluster runs ``"lloyd"``, with
        scikit-learn's warning."""
        if self.algorithm == "elkan" and self.n_clusters == 1:
            warnings.warn("algorithm='elkan' doesn't make sense for a single cluster. "
                          "Using 'lloyd' instead.", RuntimeWarning, stacklevel=3)
            return "lloyd"
        return str(self.algorithm)

    def _warn_distinct_clusters(self) -> None:
        """scikit-learn's ConvergenceWarning when fewer clusters than ``n_clusters``
        got rows (duplicate points): for labels in memory (lazy labels are not
        computed for it)."""
        labels = self.labels_
        if not isinstance(labels, np.ndarray):
            return
        distinct = int(np.unique(labels[labels >= 0]).size)
        if distinct < self.n_clusters:
            warnings.warn(f"Number of distinct clusters ({distinct}) found smaller than "
                          f"n_clusters ({self.n_clusters}). Possibly due to duplicate "
                          "points in X.", ConvergenceWarning, stacklevel=3)

    def _training_rows(self, src: Source, rs: np.random.RandomState) -> Source:
        """The rows the fit iterates over: all of them, or a sample of at most
        ``n_clusters * max_points_per_centroid`` (drawn after the runs' seeds, so
        the seeds are those of a fit of every row)."""
        if self.max_points_per_centroid is None:
            return src
        cap = int(self.n_clusters) * int(self.max_points_per_centroid)
        if src.n <= cap:
            return src
        rng = np.random.default_rng(int(rs.randint(np.iinfo(np.int32).max)))
        train = hold(training_sample(src, cap, rng), with_xsq=self._metric().uses_row_norms)
        log.info("fitting on %d of %d rows (max_points_per_centroid=%d)", train.n, src.n,
                 self.max_points_per_centroid)
        return train

    def _best_run(self, src: Source, solver: SolverChoice, settings: FitSettings,
                  seeds: list[int], ckpt: Checkpoint | None, saved: SavedFit | None,
                  progress: Progress) -> RunResult:
        """The ``n_init`` runs, ``solver.runs_per_pass`` at a time sharing the passes
        over the data (from where a checkpoint left off); the lowest inertia wins."""
        best = None if saved is None else saved.best
        first_run = 0 if saved is None else saved.run
        for batch_start in range(first_run, len(seeds), solver.runs_per_pass):
            batch = list(range(batch_start, min(batch_start + solver.runs_per_pass,
                                                len(seeds))))
            resume_at = saved.resume if saved is not None and batch_start == first_run else None
            if resume_at is not None:
                centres0 = [resume_at.centers]
                log.info("resuming run %d at iteration %d", batch[0], resume_at.iteration)
            else:
                centres0 = self._init_runs(src, seeds, batch, progress)
                if self.verbose:
                    print("Initialization complete\n" * len(batch), end="", flush=True)
            on_iteration = None if ckpt is None else SaveRun(ckpt, batch[0], best)
            results = solver.solve(src, centres0, batch, settings, resume=resume_at,
                                   on_iteration=on_iteration, progress=progress)
            for result in results:
                if best is None or result.inertia < best.inertia * (1 - SAME_INERTIA_RTOL):
                    best = result
            if ckpt is not None:
                ckpt.save(batch[-1] + 1, 0, None, 0.0, [], best)
        assert best is not None
        return best

    def _init_runs(self, src: Source, seeds: list[int], batch: list[int],
                   progress: Progress | None = None) -> list[np.ndarray]:
        """Initial centres of the runs ``batch`` (their samples gathered together);
        ``progress`` hears of the phase ``"init"``."""
        t0 = time.perf_counter()
        centres0 = self._init(src, [np.random.default_rng(seeds[r]) for r in batch],
                              [seeds[r] for r in batch], progress)
        log.info("init runs %d-%d: %.2fs", batch[0], batch[-1], time.perf_counter() - t0)
        return centres0

    def _check_combination(self) -> None:
        if not self._metric().uses_row_norms and self.algorithm == "elkan":
            raise InvalidParameterError(
                "The 'algorithm' parameter of KMeans must be 'auto' or 'lloyd' with "
                "metric='manhattan' (the bounds of 'elkan' are Euclidean), got 'elkan'.")
