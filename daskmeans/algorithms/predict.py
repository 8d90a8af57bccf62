"""What a fitted model does with rows, for in-memory and lazy sources alike: the
nearest centre (:func:`predict`), the distances to every centre (:func:`transform`),
the objective and contingency counts (:func:`score`), and a fit's ``labels_``
(:func:`fit_labels`). In-memory rows are assigned here with numpy; lazy rows get a dask
map or one pass of :mod:`daskmeans.engine.reductions`. Every distance is the metric's
(:class:`daskmeans.kernels.metric.Metric`), so the estimators never branch on it.
"""

from __future__ import annotations

from typing import Any

import dask.array as da
import numpy as np

from ..engine import maps, reductions, schedule
from ..engine.source import ArraySource, DaskSource, Source
from ..kernels.bisect import TreeCentres
from ..kernels.common import normalize_rows, weighted_sse
from ..kernels.metric import Metric
from ..kernels.scores import LabelError, Scored, score_block
from .common import RunResult, in_memory_e_step

__all__ = ["LabelError", "Scored", "fit_labels", "labels_and_inertia", "predict",
           "sample_inertia", "score", "source_for_metric", "transform"]


def source_for_metric(src: Source, metric: Metric, weights: Any = None) -> Source:
    """The source as the metric's kernels read it, with its weights: for cosine the
    rows normalised (numpy rows at once, lazy rows as each block is read)."""
    if isinstance(src, ArraySource):
        if metric.normalizes_rows:
            src = type(src)(normalize_rows(src.X))  # dense or CSR rows, normalised
        return src.with_options(weights=weights)
    return src.with_options(weights=weights, normalize=metric.normalizes_rows)


def predict(src: Source, C: np.ndarray, metric: Metric) -> Any:
    """(n,) int32 index of each row's nearest centre: numpy for in-memory rows, a lazy
    dask array otherwise."""
    if not src.lazy:
        return metric.nearest_labels(src.X, C)
    return maps.predict_lazy(src, C, metric)


def transform(src: Source, C: np.ndarray, metric: Metric) -> Any:
    """(n, k) distances (not squared) of every row to every centre, in the rows'
    dtype: numpy for in-memory rows, a lazy dask array otherwise."""
    if not src.lazy:
        return metric.distances(src.X, C)
    return maps.transform_lazy(src, C, metric)


def score(src: Source, C: np.ndarray | TreeCentres, weights: Any, labels_true: Any,
          metric: Metric) -> Scored:
    """One assignment of every row (to its nearest centre, or to the leaf of a
    bisecting tree it reaches for :class:`~daskmeans.kernels.bisect.TreeCentres`):
    the objective and, given true labels, the contingency counts."""
    if labels_true is not None and labels_true.shape[0] != src.n:
        raise LabelError(f"labels_true must have one label per row of X "
                         f"({src.n}), got {labels_true.shape[0]}")
    if src.lazy:
        if isinstance(weights, da.Array) and not isinstance(src, DaskSource):
            weights = schedule.compute(weights)
        return reductions.score_pass(src.with_options(weights=weights, normalize=src.normalize), C,
                                     labels_true, metric=metric.name)
    if isinstance(labels_true, da.Array):
        labels_true = labels_true.compute()
    if isinstance(weights, da.Array):
        weights = weights.compute()
    return score_block(src.X, C, weights, labels_true, metric)


def fit_labels(src: Source, best: RunResult, metric: Metric) -> Any:
    """``labels_`` of a fit whose best run is ``best``: the labels the run made when it
    made them in this process (as a dask array in the source's blocks for lazy data),
    or where it left them beside the blocks in a cluster's workers (a dask array over
    them there: no second read of the rows, nothing per row in a graph); else an
    E-step against its centres (in memory now, or lazily)."""
    if isinstance(best.labels, reductions.HeldLabels):  # in-memory rows: numpy
        return maps.held_labels_array(src, best.labels.futures) if src.lazy else \
            best.labels.gather()
    if best.labels is not None:
        return best.labels if not src.lazy else maps.labels_array(src, best.labels)
    if not src.lazy:  # a run restored from a checkpoint, or bounds kept on the workers
        return in_memory_e_step(src, best.centers, metric)[0]
    return maps.predict_lazy(src, best.centers, metric)


def labels_and_inertia(src: Source, C: np.ndarray, metric: Metric,
                       split_every: int) -> tuple[Any, float]:
    """(labels, inertia) of every row against ``C``: in memory at once, or lazy labels
    and one pass for the inertia."""
    if not src.lazy:
        return in_memory_e_step(src, C, metric)
    return (maps.predict_lazy(src, C, metric),
            reductions.lloyd_pass(src, C, split_every=split_every).sse())


def sample_inertia(rows: np.ndarray, weights: np.ndarray | None, C: np.ndarray,
                   metric: Metric) -> float:
    """The objective of in-memory ``rows`` against ``C`` (comparing initialisations on
    a validation sample)."""
    return weighted_sse(metric.assign(rows, C)[1], weights)
