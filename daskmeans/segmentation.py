"""Segment a multi-band raster (satellite scene, microscopy stack) stored in Zarr.

Fit K-means on a reproducible sample of pixels drawn across all chunks (or on every
pixel, ``full=True``), then label every pixel lazily chunk by chunk and write the
label map to Zarr aligned with the input's chunks, with its coordinates and
attributes (a CRS survives), readable by ``xarray.open_zarr``. Pixels holding the
``nodata`` value in any band take no part and are labelled -1. The scene is never
loaded whole: each task holds one strip of rows (see :func:`daskmeans.io.grid_rows`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import zarr
from sklearn.utils import check_random_state

from . import io
from .cluster import KMeans
from .engine import reductions, schedule
from .engine.rows import rows_to_grid
from .engine.source import as_source
from .progress import Progress, ProgressCallback
from .progress import progress as make_progress

__all__ = ["Segmentation", "segment"]

log = logging.getLogger(__name__)

#: pixels the model is fitted on unless ``full=True`` (drawn uniformly over the scene).
DEFAULT_SAMPLE = 200_000


@dataclass
class Segmentation:
    """What :func:`segment` made.

    Attributes
    ----------
    labels : zarr.Array
        int32 labels over the sample dimensions, -1 where nodata.
    centers : ndarray of shape (n_clusters, n_bands)
        The clusters' mean spectra.
    bands : list of str
        Band names.
    nodata : float or None
        The nodata value used.
    estimator : KMeans
        The fitted :class:`daskmeans.KMeans`.
    n_fit : int
        Pixels the model was fitted on.
    store : str or zarr store
        Where the labels were written.
    """

    labels: zarr.Array
    centers: np.ndarray
    bands: list[str]
    nodata: float | None
    estimator: KMeans
    n_fit: int
    store: Any

    def preview(self, max_pixels: int = 2_000_000) -> np.ndarray:
        """The label map read at a stride so that it has at most ``max_pixels``."""
        shape = self.labels.shape
        stride = max(1, int(np.ceil(np.sqrt(np.prod(shape) / max_pixels))))
        return np.asarray(self.labels[tuple(slice(None, None, stride) for _ in shape)])


def segment(
    scene: Any,
    n_clusters: int,
    out: Any,
    *,
    feature_dim: str | int | None = None,
    variable: str | None = None,
    nodata: float | None = None,
    full: bool = False,
    sample_size: int = DEFAULT_SAMPLE,
    random_state: Any = 0,
    storage_options: dict[str, Any] | None = None,
    progress: ProgressCallback | None = None,
    overwrite: bool = False,
) -> Segmentation:
    """Cluster the pixels of a multi-band raster by their spectra; write the label map.

    Parameters
    ----------
    scene : path, URL or Zarr array/group of the raster (see :func:`daskmeans.io.open_raster`)
    n_clusters : int
    out : path or URL of the Zarr group to write (array ``labels``, the coordinates)
    feature_dim : the band dimension (name or axis; default: the first axis of a 3-D
        array, or the variables of a Dataset-like group)
    variable : the array of a group to segment (default: the group's largest-rank
        arrays, stacked when there are several)
    nodata : value marking missing pixels (NaN allowed); default: the store's
        ``nodata`` attribute if it has one
    full : fit on every pixel (Lloyd over the whole scene, one pass per iteration)
        instead of ``sample_size`` pixels drawn uniformly over it (one pass to gather)
    sample_size : int
    random_state : seed of the sample and of k-means++
    storage_options : passed to fsspec for whichever of ``scene`` and ``out`` is a URL
    progress : ``callback(phase, done, total, detail)``
    overwrite : replace a store already at ``out`` (else it is refused with
        :class:`~daskmeans.io.errors.OutputExistsError`, before any work); the labels
        are written atomically either way (see :func:`daskmeans.io.write_labels`)

    Returns
    -------
    Segmentation

    Examples
    --------
    >>> from daskmeans import io
    >>> from daskmeans.segmentation import segment
    >>> import tempfile
    >>> tmp = tempfile.TemporaryDirectory()
    >>> scene = io.synthetic_scene(f"{tmp.name}/s.zarr", 64, 64)
    >>> seg = segment(scene, 5, f"{tmp.name}/labels.zarr")
    >>> seg.labels.shape, seg.centers.shape
    ((64, 64), (5, 6))
    >>> tmp.cleanup()
    """
    def options_for(where: Any) -> dict[str, Any] | None:
        return storage_options if io.is_url(where) else None

    io.check_output(out, overwrite=overwrite, storage_options=options_for(out))
    raster = io.open_raster(scene, feature_dim, variable=variable,
                            storage_options=options_for(scene))
    if nodata is None and isinstance(raster.attrs.get("nodata"), int | float):
        nodata = float(raster.attrs["nodata"])
        log.info("nodata %s, from the store's attributes", nodata)
    rows = raster.rows()
    n = rows.shape[0]
    km = KMeans(n_clusters, random_state=random_state, nodata=nodata, callback=progress)
    with make_progress(0, progress) as p:
        n_fit = n if full or sample_size >= n else sample_size
        _fit(km, rows, n_fit, random_state, p)
        centers = np.asarray(km.cluster_centers_)
        p.report("segment", 2, 3, f"labelling {n} pixels -> {out}")
        labels = rows_to_grid(km.predict(rows), raster.shape)
        meta = {"n_clusters": int(n_clusters), "bands": raster.bands,
                "cluster_centers": centers.tolist(), "nodata": nodata,
                "fitted_on_pixels": int(n_fit)}
        with io.write_labels(labels, raster, out, attrs={"daskmeans": meta},
                             storage_options=options_for(out), overwrite=overwrite
                             ) as (_, write):
            schedule.compute(write, n_tasks=int(np.prod(write.numblocks)))
        p.report("segment", 3, 3, f"{n} pixels labelled")
    written = zarr.open_group(out, mode="r", storage_options=options_for(out))["labels"]
    assert isinstance(written, zarr.Array)
    return Segmentation(written, centers, raster.bands, nodata, km, n_fit, out)


def _fit(km: KMeans, rows: Any, n_fit: int, random_state: Any, p: Progress) -> None:
    """Fit ``km`` on every row, or on ``n_fit`` rows drawn uniformly (one pass to
    gather them), reporting steps 0-1 of 3 to ``p``."""
    n = rows.shape[0]
    if n_fit >= n:
        p.report("segment", 0, 3, f"fitting on all {n} pixels")
        km.fit(rows)
        return
    rs = check_random_state(random_state)
    idx = np.sort(rs.choice(n, size=n_fit, replace=False))
    p.report("segment", 0, 3, f"sampling {n_fit} of {n} pixels")
    sample, _ = reductions.take_rows(as_source(rows), idx)
    p.report("segment", 1, 3, f"fitting on {n_fit} pixels")
    km.fit(sample)
