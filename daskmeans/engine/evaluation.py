"""The passes of evaluation (metrics, silhouettes, the PCA view): each one call of
:func:`~daskmeans.engine.reductions.map_reduce` (or of a dask reduction) naming a kernel
of :mod:`daskmeans.kernels`, kept apart from the fit's passes, which sit beside the
primitive in :mod:`~daskmeans.engine.reductions` so that a fit's path stays four modules.
"""

from __future__ import annotations

from typing import Any

import dask
import dask.array as da
import numpy as np

from ..kernels import scores, silhouette
from .reductions import SPLIT_EVERY, map_reduce, reduce_blocks
from .schedule import compute, local_blas
from .source import ArraySource, Source

__all__ = ["cluster_distance_pass", "contingency_pass", "gather_pass", "pca_fit"]


def gather_pass(src: Source, index: np.ndarray, vectors: dict[str, Any] | None = None, *,
                split_every: int = SPLIT_EVERY) -> scores.Gathered:
    """Rows ``index`` (sorted, distinct) of the source as float rows, and the same
    entries of each (n,) vector in ``vectors`` (numpy or dask, e.g. labels): one
    compute (none for numpy rows and vectors), each block sending only its rows."""
    index = np.asarray(index, dtype=np.int64)
    vectors = vectors or {}
    if isinstance(src, ArraySource) and not any(isinstance(v, da.Array)
                                                for v in vectors.values()):
        rows = src.X[index]  # CSR rows stay CSR
        return scores.Gathered(index, rows if src.sparse else np.asarray(rows),
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
