"""MiniBatchKMeans: mini-batch steps over rows or whole blocks, with scikit-learn's
learning rate, reassignment and early stopping (:mod:`daskmeans.algorithms.minibatch`);
``partial_fit`` for streams."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from numbers import Integral, Real
from pathlib import Path
from typing import Any, ClassVar

import dask.array as da
import numpy as np
from sklearn.utils import check_random_state

from ..algorithms import FitSettings, MiniBatchSpec, MiniBatchState, lloyd_iterations
from ..algorithms.minibatch import minibatch, minibatch_step, weights_cdf
from ..algorithms.predict import labels_and_inertia, sample_inertia, source_for_metric
from ..engine import reductions, schedule, workers
from ..engine.hold import hold
from ..engine.source import Source, ZarrSource
from ..validation import Interval, Options, check_scalar_param, validate_params
from .base import COMMON_CONSTRAINTS, POSITIVE, BaseKMeans
from .checkpoints import Checkpoint, SaveMiniBatch
from .verbose import StepLines

log = logging.getLogger(__name__)

#: default rows per mini-batch step (see ``batch_size`` in MiniBatchKMeans' docs for why).
DEFAULT_BATCH_SIZE = 4096
#: the default when the steps are fused (rows held here or in a cluster's workers).
IN_PROCESS_BATCH_SIZE = 2048
#: above this many bytes, "auto" sampling streams whole chunks instead of random rows.
ROWS_SAMPLING_MAX_BYTES = 2 << 30


class MiniBatchKMeans(BaseKMeans):
    """Mini-batch K-means (Sculley 2010) with scikit-learn's semantics, distributed.

    Each step draws a batch over the global row indices (the same batches however
    the data are chunked), assigns it to the current centres and moves every centre
    by scikit-learn's count-based learning rate ``c <- (c * N_c + S_c) / (N_c + n_c)``
    (see :func:`daskmeans.algorithms.minibatch.minibatch`). Rows held in this process
    (numpy input, a store held in memory) go through one compiled, fused step with no
    dask graph; rows held elsewhere (a cluster's workers, a dask array, a streamed
    store) compute per-block partial sums where they are, tree-reduced in one
    ``dask.compute`` per step. Low-count centres are reassigned to rows of the batch
    (``reassignment_ratio``) and early stopping uses the smoothed batch inertia
    (``max_no_improvement``) or the centre shift (``tol``), as scikit-learn's: given
    the same batches, ``partial_fit`` takes the same steps as scikit-learn's.

    Parameters
    ----------
    n_clusters : int, default 8
        The number of clusters K.
    init, metric, random_state, oversampling_factor, init_rounds, split_every, verbose,
    callback
        As :class:`KMeans`.
    n_init : "auto" or int
        ``"auto"`` is 3 for ``init="random"`` or a callable, else 1 (as scikit-learn).
        With several inits the best one on an ``init_size`` validation sample wins.
    batch_size : int or "auto"
        Rows per step. ``"auto"``: 2048 when the steps are fused (rows held in
        memory, here or in a cluster's workers: numpy rows, a store's blocks or a
        dask array held for the fit), 4096 otherwise (rows streamed). Larger than
        scikit-learn's 1024: every step has costs of its own (drawing the batch, the
        update, the reassignment check and, when the rows are elsewhere, a compute
        with its scheduling), so fewer, larger steps let the rows' arithmetic take
        most of the time; the smoothed inertia stops the fit after a similar number
        of rows, with an inertia as good (``scripts/benchmark_minibatch.py``).
    max_iter : int, default 100
        Passes over the data (epochs); ``n_steps = max_iter * n // batch_size``.
    max_no_improvement : int or None, default 10
        Stop after this many steps without improvement of the smoothed batch
        inertia; None never stops early on it.
    tol : float, default 0.0
        Relative to the mean feature variance, estimated on the init sample.
    reassignment_ratio : float, default 0.01
        A centre whose count falls below this share of the largest count is moved
        to a row of the batch (as scikit-learn); 0 never moves one.
    init_size : int or None
        Rows for initialisation (default ``max(3 * 1024, 3 * n_clusters)``, scikit-learn's
        default size, at least ``n_clusters``).
    refine : int, default 0
        Full Lloyd iterations over all the data after the mini-batch steps (each one
        pass, empty clusters relocated as in :class:`KMeans`). Mini-batch centres are
        running means that still carry the early, poor assignments; a few passes
        remove that bias and bring the inertia close to a converged Lloyd fit's (the
        performance page compares ``max_iter=1, refine=6`` with scikit-learn's
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
    feature_dim : str or None
        As for :class:`KMeans`: the feature dimension of xarray input.
    nodata : float or None
        As for :class:`KMeans`: the value that masks a sample (label -1, no part in
        the fit).

    Attributes
    ----------
    cluster_centers_ : ndarray of shape (n_clusters, n_features)
        The final centres.
    labels_ : ndarray or dask.array.Array of shape (n_samples,)
        Label of each row (with ``compute_labels=True``), as for :class:`KMeans`.
    inertia_ : float
        Exact weighted sum of squared distances over all the data (with
        ``compute_labels=True``).
    n_iter_ : int
        Epochs run (passes over the data), counting the ``refine`` iterations.
    n_steps_ : int
        Mini-batch steps run.
    history_ : list of dict
        One dict per step: batch inertia, smoothed (ewa) inertia, centre shift,
        reassigned centres, rows, seconds and ``phase``: ``"mini-batch"``, or
        ``"lloyd"`` for the ``refine`` iterations, whose ``batch_inertia`` is over all
        the data.
    n_features_in_ : int
        Number of features seen in ``fit``.

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
        **COMMON_CONSTRAINTS,
        "tol": [Interval(Real, 0, None)],
        "batch_size": [Options("auto"), POSITIVE],
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

    def _batch(self, src: Source) -> int:
        size = self.batch_size
        if size == "auto":
            fused = reductions.steps_in_process(src) or workers.steps_in_workers(src)
            size = IN_PROCESS_BATCH_SIZE if fused else DEFAULT_BATCH_SIZE
        return int(min(src.n, size))

    def _check_params(self, src: Source) -> None:
        super()._check_params(src)
        if self.init_size is not None and self.init_size < self.n_clusters:
            warnings.warn(  # scikit-learn's warning, word for word
                f"init_size={self.init_size} should be larger than "
                f"n_clusters={self.n_clusters}. Setting it to min(3*n_clusters, n_samples)",
                RuntimeWarning, stacklevel=4)

    def _sample_size(self, n: int) -> int:
        # scikit-learn's default is 3 * its batch (1024); k-means++ cost grows with it
        size = self.init_size if self.init_size is not None else 3 * 1024
        if size < self.n_clusters:  # scikit-learn's rule (it warns: _check_params)
            size = 3 * self.n_clusters
        return int(min(n, max(size, 3 * self.n_clusters if self.init_size is None else 0,
                              self.n_clusters)))

    def _sampling_mode(self, src: Source) -> str:
        if self.sampling != "auto":
            return self.sampling
        nbytes = src.n * src.d * src.dtype.itemsize
        return "rows" if (not src.lazy or nbytes <= ROWS_SAMPLING_MAX_BYTES) else "chunks"

    def _set_state(self, state: MiniBatchState) -> None:
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
        check_scalar_param("checkpoint_every", checkpoint_every, [POSITIVE],
                           "MiniBatchKMeans.fit")
        src, layout = self._prepare(X, sample_weight)
        rs = check_random_state(self.random_state)
        mode = self._sampling_mode(src)
        if mode == "chunks" and isinstance(src, ZarrSource):
            src = src.regroup(1)  # a step reads whole storage chunks, not grouped blocks
        elif mode == "rows":  # random rows: a store's blocks held (within the memory
            # budget) so that every step takes its rows from memory, not from every chunk
            src = hold(src, with_xsq=self._metric().uses_row_norms)
        batch = self._batch(src)
        seed0 = int(rs.randint(np.iinfo(np.int32).max))
        rng = np.random.default_rng(seed0)
        per_step, n_steps = self._steps(src, mode, batch)
        ckpt = None
        if checkpoint is not None:
            ckpt = Checkpoint(checkpoint, checkpoint_every, self, src, [seed0])
            ckpt.fingerprint["mode"], ckpt.fingerprint["per_step"] = mode, per_step
        saved = ckpt.load_raw() if (ckpt is not None and resume) else None
        order: list[int] = []
        if saved is None:
            state, tol_abs = self._start(src, rng, rs)
        else:
            state, tol_abs, order = SaveMiniBatch.restore(*saved, rng)
            log.info("resuming mini-batch at step %d", state.step)
        spec = MiniBatchSpec(batch, n_steps, float(self.reassignment_ratio),
                             self.max_no_improvement, tol_abs, self._metric(),
                             int(self.split_every), self._row_cdf(src, mode))
        on_step = None if ckpt is None else SaveMiniBatch(ckpt, tol_abs, rng)
        with self._progress() as progress:
            minibatch(src, state, spec, rng=rng, mode=mode, per_step=per_step,
                      order=order, on_step=on_step, progress=progress.report,
                      on_record=StepLines(n_steps, tol_abs) if self.verbose else None)
            self._set_state(state)
            if self.refine:
                self._refine(src, progress)
        rows_seen = sum(h["batch_rows"] for h in self.history_)
        self.n_iter_ = int(np.ceil(rows_seen / src.n))
        if self.compute_labels:
            self._final_labels(src)
            self._fitted_on(layout)
        elif layout.grid is not None:
            self.cluster_centers_ = layout.grid.centers(np.asarray(self.cluster_centers_))
        return self

    @staticmethod
    def _row_cdf(src: Source, mode: str) -> np.ndarray | None:
        """With sample weights and random rows: the weights' distribution the batches
        are drawn from (dask weights computed once: n values). Equal weights draw as no
        weights (uniformly, the same draws), so unit weights fit as none, as in
        scikit-learn."""
        if src.weights is None or mode != "rows":
            return None
        w = src.weights
        w = np.asarray(schedule.compute(w) if isinstance(w, da.Array) else w)
        if w.size and (w == w.flat[0]).all():
            return None
        return weights_cdf(w)

    def _steps(self, src: Source, mode: str, batch: int) -> tuple[int, int]:
        """(blocks a step takes in ``"chunks"`` mode: one per thread, steps in all)."""
        per_step = max(1, min(src.n_blocks, schedule.total_threads()))
        if mode == "rows":
            return per_step, max(1, (self.max_iter * src.n) // batch)
        return per_step, self.max_iter * -(-src.n_blocks // per_step)

    def _start(self, src: Source, rng: np.random.Generator, rs: np.random.RandomState
               ) -> tuple[MiniBatchState, float]:
        """The state of a fresh fit (its initial centres) and the absolute ``tol``."""
        C = self._best_init(src, rng, rs)
        tol_abs = 0.0
        if self.tol > 0:  # estimated on the init-sized sample: no extra pass
            idx = np.sort(rng.choice(src.n, size=self._sample_size(src.n), replace=False))
            sample, _ = reductions.take_rows(src, idx)
            tol_abs = float(np.mean(np.var(sample, axis=0))) * self.tol
        return MiniBatchState.start(C), tol_abs

    def _refine(self, src: Source, progress: Any) -> None:
        """``refine`` Lloyd iterations from the mini-batch centres (history marks them)."""
        settings = FitSettings(int(self.refine), 0.0, self._metric(), int(self.split_every))
        (run,) = lloyd_iterations(src, [self._state.centers], [0], settings,
                                  progress=progress.report)
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
        """The initial centres: with several inits, the best on a validation sample."""
        n_init = self._n_init()
        if n_init == 1:
            seed = int(rs.randint(np.iinfo(np.int32).max))
            return self._init(src, [rng], [seed])[0]
        idx = np.sort(rng.integers(0, src.n, size=self._sample_size(src.n)))
        valid, vw = reductions.take_rows(src, idx)
        best, best_inertia = None, np.inf
        for _ in range(n_init):
            C = self._init(src, [rng], [int(rs.randint(np.iinfo(np.int32).max))])[0]
            inertia = sample_inertia(valid, vw, C, self._metric())
            if inertia < best_inertia:
                best, best_inertia = C, inertia
        assert best is not None
        return best

    def _final_labels(self, src: Source) -> None:
        """``labels_`` and the exact ``inertia_`` over all of ``src``."""
        self.labels_, self.inertia_ = labels_and_inertia(
            src, self._state.centers, self._metric(), int(self.split_every))

    def partial_fit(self, X: Any, y: Any = None, sample_weight: Any = None) -> MiniBatchKMeans:
        """One mini-batch step with all of X (a chunk of a stream) as the batch.

        The first call initialises the centres on this chunk. Memory is bounded by the
        chunk: ``for block in blocks: km.partial_fit(block)`` streams a Zarr store.
        ``labels_``/``inertia_`` then describe this chunk against the updated centres.
        """
        first = not hasattr(self, "cluster_centers_")
        if first:
            validate_params(self)
        src, layout = self._source(X, reset=first)
        src = source_for_metric(src, self._metric(), layout.weights(sample_weight, src.n))
        if first or not hasattr(self, "_stream_rs"):
            self._stream_rs = check_random_state(self.random_state)
        if first:
            self._check_params(src)
            # an init array draws nothing (as scikit-learn, whose random state then
            # picks only the reassigned rows: given the same batches, the same steps)
            seed = 0
            if isinstance(self.init, str) or callable(self.init):
                seed = int(self._stream_rs.randint(np.iinfo(np.int32).max))
            self._set_state(MiniBatchState.start(
                self._init(src, [np.random.default_rng(seed)], [seed])[0]))
            # scikit-learn's reassignment schedule counts the first batch's size (at
            # most batch_size) for every partial_fit
            self._stream_batch = self._batch(src)
        spec = MiniBatchSpec(src.n, 0, float(self.reassignment_ratio), None, 0.0,
                             self._metric(), int(self.split_every))
        minibatch_step(src, self._state, spec, rows=None, blocks=range(src.n_blocks),
                       chooser=self._stream_rs,
                       counted=getattr(self, "_stream_batch", self._batch(src)),
                       stopping=False)
        self.history_[-1]["seconds"] = 0.0
        self._set_state(self._state)
        self.n_iter_ = 0
        self._final_labels(src)
        self._fitted_on(layout)
        return self

