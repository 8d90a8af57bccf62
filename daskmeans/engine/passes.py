"""The passes over a source that the algorithms make, each a thin wrapper that names
a kernel of :mod:`daskmeans.kernels` and maps it with
:func:`~daskmeans.engine.mapreduce.map_reduce` (with per-block state kept where the
blocks are, for the passes that carry labels, bounds or tree nodes from one pass to
the next): one read of the data and one compute each. The lazy maps at the end
(:func:`predict_lazy`, :func:`transform_lazy`, ...) are per-block results returned as
dask arrays instead of reduced.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import dask
import dask.array as da
import numpy as np

from ..kernels import bisect, bounds, common, init, lloyd, medians, scores, silhouette
from ..kernels.metric import Metric, as_metric
from .mapreduce import SPLIT_EVERY, map_reduce, reduce_blocks
from .schedule import compute, local_blas, worker_blas
from .source import ArraySource, NonFiniteError, Source, ZarrSource, reads_raw_uint8

__all__ = [
    "batch_pass",
    "bisect_pass",
    "bounds_labels",
    "bounds_pass",
    "cluster_distance_pass",
    "contingency_pass",
    "count_pass",
    "gather_pass",
    "labels_array",
    "lloyd_pass",
    "lloyd_runs_pass",
    "median_assign_pass",
    "median_refine_pass",
    "oversample_pass",
    "pca_fit",
    "predict_lazy",
    "predict_tree_lazy",
    "range_pass",
    "root_pass",
    "score_pass",
    "take_rows",
    "transform_lazy",
]


def lloyd_runs_pass(
    src: Source, Cs: Sequence[np.ndarray], *, n_top: int = 0, moments: bool = False,
    split_every: int = SPLIT_EVERY,
) -> list[lloyd.LloydPartial]:
    """One Lloyd iteration's statistics for one or more independent fits with the same
    k (``n_init`` runs): one read of the data, one compute, one partial per entry of
    ``Cs`` (see :func:`daskmeans.kernels.lloyd.lloyd_runs`)."""
    kernel = functools.partial(_lloyd_kernel, runs=len(Cs), n_top=n_top, moments=moments)
    out = map_reduce(src, kernel, common.Centres(np.concatenate(Cs), src.dtype),
                     split_every=split_every, raw=True)
    return list(out.parts)


def lloyd_pass(src: Source, C: np.ndarray, **kwargs: Any) -> lloyd.LloydPartial:
    """:func:`lloyd_runs_pass` for one set of centres."""
    return lloyd_runs_pass(src, [C], **kwargs)[0]


def _lloyd_kernel(x: np.ndarray, w: np.ndarray | None, xsq: np.ndarray | None,
                  C: common.Centres, *, offset: int, runs: int, n_top: int, moments: bool,
                  scale: float | None = None) -> lloyd.LloydRuns:
    return lloyd.lloyd_runs(x, C, w, runs=runs, xsq=xsq, offset=offset, n_top=n_top,
                        moments=moments, scale=scale)


def batch_pass(
    src: Source, C: np.ndarray, *, rows: np.ndarray | None = None,
    blocks: Sequence[int] | None = None, n_top: int = 0, n_sample: int = 0, seed: int = 0,
    split_every: int = SPLIT_EVERY,
) -> lloyd.LloydPartial:
    """Lloyd statistics of a mini-batch, computed where the rows live: one compute.

    ``rows``: sorted global row indices (repeats allowed); each block holding some of
    them computes on just those rows, the reservoir keys use their position in the
    batch. ``blocks``: whole blocks form the batch (data streamed from storage, where
    any row read costs its block).
    """
    if rows is not None:
        cuts = np.searchsorted(rows, src.offsets)

        def per_block(i: int) -> dict[str, Any] | None:
            lo, hi = int(cuts[i]), int(cuts[i + 1])
            if hi == lo:
                return None
            return {"local": rows[lo:hi] - src.offsets[i],
                    "positions": np.arange(lo, hi, dtype=np.int64)}
    else:
        chosen = set(blocks or ())

        def per_block(i: int) -> dict[str, Any] | None:
            return {} if i in chosen else None

    kernel = functools.partial(_batch_kernel, n_top=n_top, n_sample=n_sample, seed=seed)
    return map_reduce(src, kernel, common.Centres(C, src.dtype), per_block=per_block,
                      split_every=split_every, raw=True)


def _batch_kernel(x: np.ndarray, w: np.ndarray | None, xsq: np.ndarray | None,
                  C: common.Centres, *, offset: int, n_top: int, n_sample: int, seed: int,
                  scale: float | None = None, local: np.ndarray | None = None,
                  positions: np.ndarray | None = None) -> lloyd.LloydPartial:
    if local is not None:
        x, w = x[local], (None if w is None else w[local])
    return lloyd.lloyd_partial(x, C, w, offset=offset if positions is None else positions,
                           n_top=n_top, n_sample=n_sample, sample_seed=seed, scale=scale)


def bounds_pass(
    src: Source, C: np.ndarray, states: Sequence[Any], steps: dict[int, bounds.Drift | None],
    *, version: int, groups: np.ndarray | None = None, n_top: int = 0,
    moments: bool = False, split_every: int = SPLIT_EVERY,
) -> tuple[bounds.BoundsPartial, dict[int, Any], dict[int, bounds.BoundsSummary]]:
    """One Lloyd iteration with per-row bounds (:func:`daskmeans.kernels.bounds.bounds_block`)
    over the blocks named in ``steps`` (block -> how the centres moved since its
    bounds; the other blocks are settled and not read): one compute.

    ``states[i]``: block ``i``'s bounds, a :class:`~daskmeans.kernels.BlockBounds` or,
    on a cluster, a future of one in the worker that made it (bounds stay where they
    were computed; only the partial sums and the per-cluster summaries come back).

    Returns (summed partial, new bounds of the blocks read, their summaries).
    """
    kernel = functools.partial(_bounds_kernel, groups=groups, version=version, n_top=n_top,
                               moments=moments)
    out = map_reduce(src, kernel, (common.Centres(C, src.dtype), np.asarray(C, np.float64)),
                     per_block=lambda i: {"step": steps[i]} if i in steps else None,
                     states=states, keep=True, summaries=True, xsq=False,
                     split_every=split_every, raw=True)
    return out.total, out.states, out.summaries


def bounds_labels(states: Sequence[Any]) -> np.ndarray | None:
    """(n,) int32: the rows' labels held in the blocks' bounds, in row order; None
    when the bounds are futures in a cluster's workers or a block has none yet."""
    if not all(isinstance(st, bounds.BlockBounds) for st in states):
        return None
    labels = np.concatenate([st.labels for st in states]).astype(np.int32, copy=False)
    return None if (labels < 0).any() else labels


def _bounds_kernel(x: np.ndarray, w: np.ndarray | None, xsq: np.ndarray | None,
                   centres: tuple[common.Centres, np.ndarray], *, offset: int,
                   state: bounds.BlockBounds, step: bounds.Drift | None,
                   groups: np.ndarray | None, version: int, n_top: int, moments: bool,
                   scale: float | None = None
                   ) -> tuple[bounds.BoundsPartial, bounds.BlockBounds, bounds.BoundsSummary]:
    C, C64 = centres
    return bounds.bounds_block(x, C, state, step, w, version=version, n_top=n_top,
                               moments=moments, offset=offset, scale=scale, centres64=C64,
                               groups=groups)



def median_assign_pass(
    src: Source, C: np.ndarray, grid: medians.MedianGrid, *, n_top: int = 0, moments: bool = False,
    split_every: int = SPLIT_EVERY,
) -> tuple[medians.MedianPartial, list[Any] | None]:
    """The first pass of a k-medians iteration (:func:`daskmeans.kernels.medians.median_assign`):
    one compute. Returns the summed partial and each block's labels, kept where the
    block is (numpy, or futures on a cluster) for the iteration's later passes; None
    for a dask array (no public per-block state: later passes assign again)."""
    kernel = functools.partial(_median_assign_kernel, grid=grid, n_top=n_top, moments=moments)
    out = map_reduce(src, kernel, medians.L1Centres(C), keep=True, xsq=False,
                     split_every=split_every, raw=grid.raw)
    return out.total, out.state_list()


def _median_assign_kernel(x: np.ndarray, w: np.ndarray | None, xsq: np.ndarray | None,
                          C: medians.L1Centres, *, offset: int, grid: medians.MedianGrid,
                          n_top: int, moments: bool, scale: float | None = None
                          ) -> tuple[medians.MedianPartial, np.ndarray]:
    return medians.median_assign(x, C, w, grid=grid, offset=offset, n_top=n_top,
                                 moments=moments, scale=scale)


def median_refine_pass(src: Source, grid: medians.MedianGrid, step: medians.MedianStep,
                       labels: Sequence[Any] | None, split_every: int = SPLIT_EVERY
                       ) -> medians.MedianHist:
    """A later pass of a k-medians iteration (:func:`daskmeans.kernels.medians.median_refine`)
    over the blocks with their kept ``labels`` (or, when None, assigning the rows
    again with ``step.centres``): one compute."""
    return map_reduce(src, functools.partial(_median_refine_kernel, grid=grid), step,
                      states=labels, xsq=False, split_every=split_every, raw=grid.raw)


def _median_refine_kernel(x: np.ndarray, w: np.ndarray | None, xsq: np.ndarray | None,
                          step: medians.MedianStep, *, offset: int, grid: medians.MedianGrid,
                          scale: float | None = None, state: Any = None) -> medians.MedianHist:
    return medians.median_refine(x, w, step, grid=grid, labels=state, offset=offset, scale=scale)


def range_pass(src: Source, split_every: int = SPLIT_EVERY) -> medians.ValueRange:
    """Per-feature min and max of the rows (as float): one compute; a row holding NaN
    or infinity raises :class:`~daskmeans.engine.source.NonFiniteError` naming it."""
    return map_reduce(src, _range_kernel, split_every=split_every)


def _range_kernel(x: np.ndarray, w: np.ndarray | None, xsq: np.ndarray | None, shared: Any,
                  *, offset: int) -> medians.ValueRange:
    return medians.value_range(x)


def _prepared(C: np.ndarray | bisect.TreeCentres, dtype: np.dtype, metric: str | Metric
              ) -> Any:
    """Centres prepared once per pass for the metric's distances."""
    if isinstance(C, bisect.TreeCentres):
        return C
    return as_metric(metric).prepare(C, dtype)


def score_pass(src: Source, C: np.ndarray | bisect.TreeCentres, labels_true: Any = None,
               split_every: int = SPLIT_EVERY, metric: str | Metric = "euclidean"
               ) -> scores.Scored:
    """The objective against ``C`` (SSE; the sum of L1 distances for
    ``metric="manhattan"``; to the leaves of a bisecting tree for
    :class:`~daskmeans.kernels.TreeCentres`) and, given true labels (n,), the
    contingency table of the rows' clusters against them, in one pass."""
    name = as_metric(metric).name  # a name travels in the graph
    kernel = functools.partial(_score_kernel, metric=name)
    return map_reduce(src, kernel, _prepared(C, src.dtype, name), split_every=split_every,
                      aligned=None if labels_true is None else {"labels": labels_true})


def _score_kernel(x: np.ndarray, w: np.ndarray | None, xsq: np.ndarray | None,
                  C: common.Centres, *, offset: int, metric: str,
                  labels: np.ndarray | None = None) -> scores.Scored:
    return scores.score_block(x, C, w, None if labels is None else np.asarray(labels), metric)


def oversample_pass(src: Source, C: np.ndarray, *, seed: int, m: int,
                    split_every: int = SPLIT_EVERY, metric: str | Metric = "euclidean"
                    ) -> init.Oversample:
    """One k-means|| round: total cost and the ``m`` rows with the largest keys."""
    kernel = functools.partial(_oversample_kernel, seed=seed, m=m,
                               metric=as_metric(metric).name)
    return map_reduce(src, kernel, C, split_every=split_every)


def _oversample_kernel(x: np.ndarray, w: np.ndarray | None, xsq: np.ndarray | None,
                       C: np.ndarray, *, offset: int, seed: int, m: int,
                       metric: str) -> init.Oversample:
    return init.oversample_partial(x, C, w, offset=offset, seed=seed, m=m, metric=metric)


def count_pass(src: Source, C: np.ndarray, split_every: int = SPLIT_EVERY,
               metric: str | Metric = "euclidean") -> np.ndarray:
    """Weight of rows nearest to each row of C."""
    return map_reduce(src, functools.partial(_count_kernel, metric=as_metric(metric).name), C,
                      split_every=split_every)


def _count_kernel(x: np.ndarray, w: np.ndarray | None, xsq: np.ndarray | None,
                  C: np.ndarray, *, offset: int, metric: str) -> np.ndarray:
    return init.count_nearest(x, C, w, metric)


def bisect_pass(src: Source, step: bisect.BisectStep, split_every: int = SPLIT_EVERY, *,
                nodes: Sequence[Any] | None = None, keep: bool = False
                ) -> tuple[bisect.BisectPartial, list[Any] | None]:
    """One pass of a round of bisections (:func:`daskmeans.kernels.bisect.bisect_block`): every
    2-means of the round (or their init samples) in one read of the data, one compute.

    The tree does not change during a round: with ``keep`` each block's nodes (where
    its rows end in the tree) stay where the block is (numpy, or futures on a cluster)
    and are returned for the round's later passes (``nodes``), which then do not
    descend the tree again (the descent is a large part of a pass). A dask array
    has no public per-block state: its passes descend every time (None returned). A
    store's uint8 rows reach the kernels raw (:func:`reads_raw_uint8`): each row is
    scaled as it is used, not the whole block in every pass (the same results).
    """
    out = map_reduce(src, functools.partial(_bisect_kernel, keep=keep), step, states=nodes,
                     keep=keep, xsq=False, split_every=split_every, raw=reads_raw_uint8(src))
    return (out.total, out.state_list()) if keep else (out, None)


def _bisect_kernel(x: np.ndarray, w: np.ndarray | None, xsq: np.ndarray | None,
                   step: bisect.BisectStep, *, offset: int, keep: bool, state: Any = None,
                   scale: float | None = None) -> Any:
    nodes = state if state is not None else bisect.tree_nodes(x, step.tree, scale)
    part = bisect.bisect_block(x, w, step, offset=offset, nodes=nodes, scale=scale)
    return (part, nodes) if keep else part


def root_pass(src: Source, split_every: int = SPLIT_EVERY) -> bisect.RootPartial:
    """Column sums, weights and ``sum w |x|^2`` of all rows (a bisecting tree's root)."""
    return map_reduce(src, _root_kernel, split_every=split_every)


def _root_kernel(x: np.ndarray, w: np.ndarray | None, xsq: np.ndarray | None, shared: Any,
                 *, offset: int) -> bisect.RootPartial:
    return bisect.root_block(x, w)


def take_rows(src: Source, index: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Rows ``index`` (sorted) of the source as float rows (and their weights): one
    compute, each block sending only its rows."""
    index = np.asarray(index, dtype=np.int64)
    if isinstance(src, ArraySource):  # in memory (cosine rows are normalised up front)
        w = None if src.weights is None else np.asarray(src.weights)[index]
        return src.X[index], w
    cuts = np.searchsorted(index, src.offsets)

    def per_block(i: int) -> dict[str, Any] | None:
        lo, hi = int(cuts[i]), int(cuts[i + 1])
        return None if hi == lo else {"local": index[lo:hi] - src.offsets[i]}

    out = map_reduce(src, _take_kernel, per_block=per_block)
    return out.rows, out.weights


def _take_kernel(x: np.ndarray, w: np.ndarray | None, xsq: np.ndarray | None, shared: Any,
                 *, offset: int, local: np.ndarray) -> common.Rows:
    return common.Rows(np.array(x[local]), None if w is None else np.asarray(w, np.float64)[local])


def gather_pass(src: Source, index: np.ndarray, vectors: dict[str, Any] | None = None, *,
                split_every: int = SPLIT_EVERY) -> scores.Gathered:
    """Rows ``index`` (sorted, distinct) of the source as float rows, and the same
    entries of each (n,) vector in ``vectors`` (numpy or dask, e.g. labels): one
    compute (none for numpy rows and vectors), each block sending only its rows."""
    index = np.asarray(index, dtype=np.int64)
    vectors = vectors or {}
    if isinstance(src, ArraySource) and not any(isinstance(v, da.Array)
                                                for v in vectors.values()):
        return scores.Gathered(index, np.asarray(src.X[index]),
                          {k: np.asarray(v)[index] for k, v in vectors.items()})
    out = map_reduce(src, _gather_kernel, index, split_every=split_every, aligned=vectors)
    return out.sorted()


def _gather_kernel(x: np.ndarray, w: np.ndarray | None, xsq: np.ndarray | None,
                   index: np.ndarray, *, offset: int, **vectors: Any) -> scores.Gathered:
    return scores.gather(x, index, offset=offset, **vectors)


def cluster_distance_pass(src: Source, labels: Any, queries: silhouette.Queries, *,
                          split_every: int = SPLIT_EVERY) -> silhouette.ClusterDistances:
    """Distances from every query row to every row of the source, summed per cluster
    of the row (``labels``: (n,) numpy or dask, read in the same pass), in float64:
    one compute (:func:`daskmeans.kernels.silhouette.cluster_distance_sums` per block)."""
    return map_reduce(src, _cluster_distance_kernel, queries, split_every=split_every,
                      aligned={"labels": labels})


def _cluster_distance_kernel(x: np.ndarray, w: np.ndarray | None, xsq: np.ndarray | None,
                             queries: silhouette.Queries, *, offset: int,
                             labels: np.ndarray) -> silhouette.ClusterDistances:
    return silhouette.cluster_distance_sums(x, np.asarray(labels), queries, offset=offset)


def pca_fit(src: Source, n_components: int = 2, *, svd_solver: str = "randomized",
            iterated_power: int = 4, random_state: Any = None) -> Any:
    """``dask_ml.decomposition.PCA`` fitted on every row of the source (read as a dask
    array), its ``mean_`` computed too (dask-ml leaves it lazy, and every later
    ``transform`` would read the data again for it): two computes.

    The randomized solver with 4 power iterations by default: dask-ml's default
    ``iterated_power=0`` underestimates the explained variance of the first components
    noticeably; with 4 they match the exact ones to about 1e-6 at a fraction of the
    exact ``"tsqr"`` solver's time, reading the rows ``2 * iterated_power + 2`` times
    instead of once."""
    if dask.config.get("array.query-planning", None):
        raise NotImplementedError(
            "dask-ml's PCA needs dask.array.linalg, which dask's array query planning "
            "(config array.query-planning=True) does not implement; run without it")
    try:
        from dask_ml.decomposition import PCA
    except ImportError as e:  # pragma: no cover - dask-ml is a dependency
        raise ImportError("the PCA view needs dask-ml: pip install dask-ml") from e
    pca = PCA(n_components=n_components, svd_solver=svd_solver, iterated_power=iterated_power,
              random_state=random_state)
    with local_blas(src.n_blocks):
        pca.fit(src.to_dask())
    if isinstance(pca.mean_, da.Array):
        pca.mean_ = compute(pca.mean_, n_tasks=src.n_blocks)
    return pca


def contingency_pass(labels_true: da.Array, labels_pred: da.Array, *,
                     split_every: int = SPLIT_EVERY) -> tuple[np.ndarray, np.ndarray,
                                                                np.ndarray]:
    """(classes, clusters, table): per-chunk bincount tables, tree-reduced, one compute.

    The label sets are discovered in the same pass: each chunk's table spans
    ``0..max`` of the values it holds, tables are zero-padded when added, and rows or
    columns that stay empty are dropped at the end.
    """
    if labels_true.shape[0] != labels_pred.shape[0]:
        raise scores.LabelError(
            f"labels_true and labels_pred must have the same length, got "
            f"{labels_true.shape[0]} and {labels_pred.shape[0]}"
        )
    labels_pred = labels_pred.rechunk((labels_true.chunks[0],))
    parts = da.blockwise(_pair_block, "i", labels_true, "i", labels_pred, "i",
                         dtype=object, meta=np.empty((0,), dtype=object),
                         adjust_chunks={"i": 1})
    total = reduce_blocks(parts, split_every)
    return compute(total, n_tasks=labels_true.numblocks[0]).finish()


def _pair_block(t: np.ndarray, p: np.ndarray) -> np.ndarray:
    out = np.empty((1,), dtype=object)
    out[0] = scores.pair_table(t, p)
    return out


# --------------------------------------------------------------------------- lazy maps


def _labels_of(labels: Callable[[], np.ndarray], block_info: Any) -> np.ndarray:
    """A block's ``labels()``; a non-finite row is named by its global index."""
    try:
        return labels()
    except common.NonFiniteRow as e:
        start = block_info[0]["array-location"][0][0] if block_info else 0
        raise NonFiniteError(f"X contains NaN or infinity in row {start + e.row}: "
                             "no cluster can be predicted for it") from None


def _labels_block(x: np.ndarray, C: np.ndarray, metric: str, scale: float | None = None,
                  block_info: Any = None) -> np.ndarray:
    """(m,) labels of a block's rows (raw stored rows standing for ``float32(x) * scale``
    with ``scale``: scaled block by block inside the labelling)."""
    with worker_blas():
        return _labels_of(lambda: as_metric(metric).nearest_labels(x, C, scale=scale),
                          block_info)


def _transform_block(x: np.ndarray, C: np.ndarray, metric: str) -> np.ndarray:
    with worker_blas():
        return as_metric(metric).distances(x, C)


def _tree_labels_block(x: np.ndarray, tree: bisect.TreeSnapshot, leaf_label: np.ndarray,
                       scale: float | None = None, block_info: Any = None) -> np.ndarray:
    return _labels_of(lambda: bisect.tree_labels(x, tree, leaf_label, scale), block_info)


def predict_tree_lazy(src: Source, tree: bisect.TreeSnapshot, leaf_label: np.ndarray) -> da.Array:
    """(n,) int32 label of the leaf of a bisecting tree each row reaches, lazily (a
    store's uint8 rows raw, as in :func:`bisect_pass`)."""
    if isinstance(src, ZarrSource) and reads_raw_uint8(src):
        X, scale = src.raw_dask(), src.scale
    else:
        X, scale = src.to_dask(), None
    return da.map_blocks(_tree_labels_block, X, tree=tree, leaf_label=leaf_label, scale=scale,
                         drop_axis=1, dtype=np.int32, meta=np.empty((0,), np.int32))


def predict_lazy(src: Source, C: np.ndarray, metric: str | Metric = "euclidean") -> da.Array:
    """(n,) int32 labels of the nearest centre (in the metric's distance: L1 for
    ``metric="manhattan"``), lazily. A store's raw pixels are scaled block by block
    inside the labelling (no float32 copy of each chunk)."""
    name = as_metric(metric).name  # a name travels in the graph
    if isinstance(src, ZarrSource) and src.scale is not None and not src.normalize:
        raw = src.raw_dask()
        return da.map_blocks(_labels_block, raw, C=C.astype(np.float32), metric=name,
                             scale=src.scale, drop_axis=1, dtype=np.int32,
                             meta=np.empty((0,), np.int32))
    X = src.to_dask()
    return da.map_blocks(_labels_block, X, C=C.astype(X.dtype, copy=False), metric=name,
                         drop_axis=1, dtype=np.int32, meta=np.empty((0,), np.int32))


def labels_array(src: Source, labels: np.ndarray) -> da.Array:
    """Labels already in memory as a dask array in ``src``'s row blocks (what a fit on
    lazy data returns as ``labels_``)."""
    return da.from_array(labels, chunks=(tuple(np.diff(src.offsets).tolist()),))


def transform_lazy(src: Source, C: np.ndarray, metric: str | Metric = "euclidean"
                   ) -> da.Array:
    """(n, k) distances to the centres in the metric's distance (Euclidean; L1 for
    ``metric="manhattan"``), lazily."""
    X = src.to_dask()
    return da.map_blocks(_transform_block, X, C=C.astype(X.dtype, copy=False),
                         metric=as_metric(metric).name, dtype=X.dtype,
                         chunks=(X.chunks[0], (C.shape[0],)), meta=np.empty((0, 0), X.dtype))
