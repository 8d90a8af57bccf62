"""Multi-band rasters in Zarr (one array of any layout, or a group as xarray writes a
Dataset) opened lazily without xarray, their pixels viewed as rows, and per-pixel
labels written back aligned with them (readable by ``xarray.open_zarr``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import dask.array as da
import numpy as np
import zarr

from .errors import StoreError
from .stores import (
    TASK_MAX_BYTES,
    is_zarr,
    metadata_errors,
    open_node,
    store_blocks,
    write_group,
    zarr_to_dask,
)

__all__ = ["Raster", "grid_rows", "open_raster", "write_labels"]


class Raster:
    """A multi-band raster read from Zarr, lazily: ``data`` is a dask array of shape
    ``(*sample dims, band)`` (the band axis moved last), with the names, coordinates
    and attributes needed to write results aligned with it.

    Attributes
    ----------
    data : dask.array.Array
        Shape ``(*sample_shape, n_bands)``.
    dims : tuple of str
        The sample dimensions' names (e.g. ``("y", "x")``).
    feature_dim : str
        The band dimension's name.
    bands : list of str
        Band names (coordinate values, variable names, or indices).
    coords : dict
        Name -> 1-D numpy coordinate of a sample dimension (when stored).
    attrs : dict
        The array's (and group's) attributes, e.g. a CRS.
    chunks : tuple
        The input's chunks over the sample dimensions.
    """

    def __init__(self, data: da.Array, dims: tuple[str, ...], feature_dim: str,
                 bands: list[str], coords: dict[str, np.ndarray], attrs: dict[str, Any],
                 chunks: tuple[tuple[int, ...], ...]) -> None:
        self.data, self.dims, self.feature_dim, self.bands = data, dims, feature_dim, bands
        self.coords, self.attrs, self.chunks = coords, attrs, chunks

    @property
    def shape(self) -> tuple[int, ...]:
        """The sample dimensions' sizes."""
        return tuple(self.data.shape[:-1])

    def rows(self) -> da.Array:
        """(n_pixels, n_bands) rows in C order (:func:`grid_rows`)."""
        return grid_rows(self.data)


def _dim_names(array: zarr.Array) -> tuple[str, ...]:
    names: Any = getattr(array.metadata, "dimension_names", None)  # zarr v3
    if not names:
        names = array.attrs.get("_ARRAY_DIMENSIONS")  # xarray's convention for zarr v2
    if not names or len(names) != array.ndim:
        return tuple(f"dim_{i}" for i in range(array.ndim))
    return tuple(str(n) for n in names)


def open_raster(store: Any, feature_dim: str | int | None = None, *,
                variable: str | None = None,
                storage_options: dict[str, Any] | None = None) -> Raster:
    """Open a multi-band raster stored in Zarr (xarray is not needed).

    ``store`` holds either one array of any layout, e.g. ``(band, y, x)`` or
    ``(y, x, band)``, whose band dimension is ``feature_dim`` (a dimension name from
    the array's ``dimension_names`` or xarray's ``_ARRAY_DIMENSIONS``, or an axis
    number; default: the first axis of a 3-D array), or a group as xarray writes a
    Dataset: its data variables of the largest rank are the bands (``variable`` picks
    one multi-band array instead) and its 1-D arrays named like dimensions are
    coordinates.

    Examples
    --------
    >>> import pathlib, shutil, tempfile
    >>> from daskmeans.io import synthetic_scene
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> p = synthetic_scene(d / "scene.zarr", 64, 48, bands=4, tile=32)
    >>> r = open_raster(p, "band", variable="reflectance")
    >>> r.data.shape, r.dims, r.bands
    ((64, 48, 4), ('y', 'x'), ['B1', 'B2', 'B3', 'B4'])
    >>> shutil.rmtree(d)
    """
    node = store if is_zarr(store) else open_node(store, storage_options)
    with metadata_errors(str(store)):
        return _open_raster(node, store, feature_dim, variable)


def _open_raster(node: Any, store: Any, feature_dim: str | int | None,
                 variable: str | None) -> Raster:
    coords: dict[str, np.ndarray] = {}
    attrs: dict[str, Any] = {}
    if isinstance(node, zarr.Group):
        attrs.update(node.attrs)
        arrays = dict(node.arrays())
        if variable is not None:
            if variable not in arrays:
                raise StoreError(f"{store}: no array {variable!r} (has {sorted(arrays)})")
            node = arrays[variable]
        else:
            rank = max((a.ndim for a in arrays.values()), default=0)
            if rank < 2:
                raise StoreError(f"{store}: no 2-D or larger array to segment")
            layers = {k: a for k, a in arrays.items() if a.ndim == rank}
            if len(layers) == 1:
                node = next(iter(layers.values()))
            else:  # a Dataset of single-band variables: stack them, the names are the bands
                names = sorted(layers)
                shapes = {layers[k].shape for k in names}
                if len(shapes) != 1:
                    raise StoreError(f"{store}: band variables differ in shape: {shapes}")
                dims = _dim_names(layers[names[0]])
                for k in names:
                    attrs.update(layers[k].attrs)
                attrs.pop("_ARRAY_DIMENSIONS", None)
                data = da.stack([zarr_to_dask(layers[k]) for k in names], axis=-1)
                coords = _coords_of(arrays, dims)
                return Raster(data, dims, "variable", names, coords, attrs,
                              tuple(data.chunks[:-1]))
        coords = _coords_of(arrays, _dim_names(node))
    if not isinstance(node, zarr.Array) or node.ndim < 2:
        raise StoreError(f"{store}: expected a raster of 2 or more dimensions")
    attrs.update(node.attrs)
    attrs.pop("_ARRAY_DIMENSIONS", None)
    dims = _dim_names(node)
    if feature_dim is None:
        if node.ndim != 3:
            raise ValueError(f"feature_dim: name the band dimension of {store}, one of {dims}")
        axis = 0
    elif isinstance(feature_dim, int) or str(feature_dim).lstrip("-").isdigit():
        axis = int(feature_dim) % node.ndim
    elif feature_dim in dims:
        axis = dims.index(str(feature_dim))
    else:
        raise ValueError(f"feature_dim={feature_dim!r} is not a dimension of {store} {dims}")
    band_dim = dims[axis]
    x = zarr_to_dask(node)
    order = [i for i in range(node.ndim) if i != axis] + [axis]
    data = x.transpose(order) if axis != node.ndim - 1 else x  # (no moveaxis in dask-expr)
    band_coord = coords.pop(band_dim, None)
    bands = ([str(b) for b in band_coord] if band_coord is not None
             else [str(i) for i in range(node.shape[axis])])
    sample_dims = tuple(d for i, d in enumerate(dims) if i != axis)
    return Raster(data, sample_dims, band_dim, bands, coords, attrs,
                  tuple(data.chunks[:-1]))


def _coords_of(arrays: dict[str, zarr.Array], dims: tuple[str, ...]) -> dict[str, np.ndarray]:
    return {d: np.asarray(arrays[d][:]) for d in dims if d in arrays and arrays[d].ndim == 1}


@contextlib.contextmanager
def write_labels(labels: da.Array, raster: Raster, out: Any, *,
                 attrs: dict[str, Any] | None = None,
                 storage_options: dict[str, Any] | None = None,
                 overwrite: bool = False) -> Iterator[tuple[zarr.Array, da.Array]]:
    """Write ``out`` (a Zarr v3 group, readable by ``xarray.open_zarr``) holding a
    ``labels`` array over the raster's sample dimensions, chunked like the input, its
    coordinates copied: yields the array and the lazy write, which the block computes
    (once); the group is complete at ``out`` once the block ends.

    Written as :func:`~daskmeans.io.stores.write_group` writes (atomically on a local
    disk, root metadata last in object storage): an existing ``out`` is refused
    (:class:`~daskmeans.io.errors.OutputExistsError`) unless ``overwrite``, and a
    failed write leaves what was there. Reopen the labels from ``out`` after the block:
    the array yielded lives in a temporary directory until then."""
    with write_group(out, storage_options=storage_options, overwrite=overwrite) as group:
        group.attrs.update({k: v for k, v in raster.attrs.items() if _jsonable(v)})
        arr = group.create_array("labels", shape=raster.shape, dtype=np.int32,
                                 chunks=tuple(c[0] for c in raster.chunks),
                                 dimension_names=raster.dims, fill_value=-1)
        arr.attrs.update({k: v for k, v in {**raster.attrs, **(attrs or {})}.items()
                          if _jsonable(v)})
        for d, values in raster.coords.items():
            c = group.create_array(d, shape=values.shape,
                                   dtype=str if values.dtype.kind in "UOT" else values.dtype,
                                   chunks=values.shape, dimension_names=(d,))
            c[:] = values
        yield arr, store_blocks(labels, arr)


def _jsonable(v: Any) -> bool:
    import json

    try:
        json.dumps(v)
    except (TypeError, ValueError):
        return False
    return True



def grid_rows(data: da.Array) -> da.Array:
    """``(*sample_shape, features)`` dask array -> ``(n, features)`` rows in C order, lazily:
    rechunked to strips of the first sample dimension (every other dimension in one
    chunk; ~32 MB a block unless the input's chunks are larger), each strip's block
    reshaped into whole rows (no data moves between blocks)."""
    inner = int(np.prod(data.shape[1:])) * data.dtype.itemsize
    first = max(data.chunks[0])
    strip = first if first * inner <= 4 * TASK_MAX_BYTES else max(1, TASK_MAX_BYTES // inner)
    return _flatten(data.rechunk((strip, *(-1 for _ in data.shape[1:]))), data.ndim - 1)


def _flat_block(block: np.ndarray, keep: int) -> np.ndarray:
    return block.reshape((-1, *block.shape[keep:]))


def _flatten(x: da.Array, n_lead: int) -> da.Array:
    """Merge the first ``n_lead`` axes of x (every axis but the first in one chunk) into
    one, block by block (``da.reshape`` is not in dask's array query planning)."""
    tail = x.shape[n_lead:]
    inner = int(np.prod(x.shape[1:n_lead]))
    chunks = (tuple(c * inner for c in x.chunks[0]), *((t,) for t in tail))
    return da.map_blocks(_flat_block, x, keep=n_lead, chunks=chunks, dtype=x.dtype,
                         drop_axis=list(range(1, n_lead)) or None,
                         meta=np.empty((0,) * (1 + len(tail)), x.dtype))

