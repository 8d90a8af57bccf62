"""Lazy per-row maps of a source: labels and distances as dask arrays, block by block
(what ``predict``/``transform`` return for lazy input), instead of reduced.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import dask
import dask.array as da
import numpy as np

from ..kernels import bisect, common
from ..kernels.metric import Metric, as_metric
from .schedule import worker_blas
from .source import NonFiniteError, Source, ZarrSource, reads_raw_uint8

__all__ = ["held_labels_array", "labels_array", "predict_lazy", "predict_tree_lazy",
           "transform_lazy"]

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


def _held_labels(placeholder: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``map_blocks`` body: a block's labels, kept in the worker that made them (the
    placeholder block only gives the array its chunks)."""
    return labels


def held_labels_array(src: Source, futures: list[Any]) -> da.Array:
    """Labels kept in a cluster's workers (a future of each block's labels, in block
    order) as a lazy dask array in ``src``'s row blocks: its graph names each block's
    labels by key (a ``map_blocks`` with the future as a delayed operand), so that
    computing it, or any graph built on it, carries nothing per row from the client
    (``da.from_array`` of gathered labels would send them in every graph)."""
    parts = [da.map_blocks(_held_labels, da.zeros((int(b - a),), dtype=np.int32,
                                                  chunks=int(b - a)),
                           labels=dask.delayed(f), dtype=np.int32,
                           meta=np.empty((0,), np.int32))
             for a, b, f in zip(src.offsets[:-1], src.offsets[1:], futures, strict=True)]
    return da.concatenate(parts) if len(parts) > 1 else parts[0]


def transform_lazy(src: Source, C: np.ndarray, metric: str | Metric = "euclidean"
                   ) -> da.Array:
    """(n, k) distances to the centres in the metric's distance (Euclidean; L1 for
    ``metric="manhattan"``), lazily."""
    X = src.to_dask()
    return da.map_blocks(_transform_block, X, C=C.astype(X.dtype, copy=False),
                         metric=as_metric(metric).name, dtype=X.dtype,
                         chunks=(X.chunks[0], (C.shape[0],)), meta=np.empty((0, 0), X.dtype))
