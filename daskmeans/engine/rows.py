"""Rows from labelled and gridded inputs, and back: an xarray DataArray or Dataset as
(n_samples, n_features) rows with the grid that maps per-row results back onto it,
per-row values reshaped to a grid, and nodata rows masked out of a source.
"""

from __future__ import annotations

from typing import Any, cast

import dask.array as da
import numpy as np

from ..io.rasters import grid_rows
from .source import ArraySource, DaskSource, Source, ZarrSource

__all__ = ["SampleGrid", "grid_rows", "is_xarray", "mask_nodata", "rows_to_grid",
           "where_rows", "xarray_rows"]


def is_xarray(X: Any) -> bool:
    """True for an ``xarray.DataArray`` or ``Dataset`` (xarray is not imported)."""
    return type(X).__module__.startswith("xarray.") and type(X).__name__ in (
        "DataArray", "Dataset")


class SampleGrid:
    """How the samples of a labelled (xarray) input map to rows, and rows back to it.

    Every dimension of the input but ``feature_dim`` is a sample dimension; row ``i``
    is sample ``i`` in C order over them (so results do not depend on the chunking).
    :meth:`wrap` turns per-row results into DataArrays over the sample dimensions, with
    the input's coordinates and attributes (a CRS attribute or ``spatial_ref``
    coordinate survives) and, for dask results, the input's chunks.
    """

    def __init__(self, template: Any, feature_dim: str, features: Any,
                 chunks: tuple[tuple[int, ...], ...] | None) -> None:
        self.template = template  # the input over its sample dims (lazy, never loaded)
        self.feature_dim = feature_dim
        self.features = features  # the feature coordinate (e.g. band names), or None
        self.dims: tuple[str, ...] = tuple(template.dims)
        self.shape: tuple[int, ...] = tuple(template.shape)
        self.chunks = chunks  # the input's chunks over the sample dims (dask input)

    def wrap(self, values: Any, name: str, extra_dim: str | None = None) -> Any:
        """(n,) or (n, m) per-row values -> DataArray over the sample dims (+ ``extra_dim``)."""
        import xarray as xr

        dims = self.dims + ((extra_dim,) if values.ndim == 2 and extra_dim else ())
        grid = rows_to_grid(values, self.shape)
        if isinstance(grid, da.Array) and self.chunks is not None:
            grid = grid.rechunk(self.chunks + tuple((m,) for m in values.shape[1:]))
        return xr.DataArray(grid, dims=dims, coords=self.template.coords,
                            attrs=dict(self.template.attrs), name=name)

    def centers(self, C: np.ndarray) -> Any:
        """(k, d) centres -> DataArray(cluster, feature) with the feature coordinate."""
        import xarray as xr

        coords = {} if self.features is None else {self.feature_dim: self.features}
        return xr.DataArray(C, dims=("cluster", self.feature_dim), coords=coords,
                            name="cluster_centers")


def xarray_rows(X: Any, feature_dim: str | None = None) -> tuple[Any, SampleGrid]:
    """The (n_samples, n_features) rows of a DataArray or Dataset, and its grid.

    A Dataset's data variables are the features (``feature_dim`` is then
    ``"variable"``); a DataArray's features lie along ``feature_dim`` (for a 2-D one,
    its last dimension by default). Dask-backed inputs stay lazy: the rows are a dask
    array whose blocks are strips of the first sample dimension (every other sample
    dimension, and the features, in one chunk each; at most ~32 MB per block unless
    the input's own chunks are larger), so a (y, x, band) or (band, y, x) scene is read
    chunk by chunk and never loaded whole.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> scene = xr.DataArray(np.arange(12.).reshape(3, 2, 2), dims=("band", "y", "x"),
    ...                      coords={"band": ["r", "g", "b"]})
    >>> rows, grid = xarray_rows(scene, "band")
    >>> rows.shape, grid.dims, grid.features.values.tolist()
    ((4, 3), ('y', 'x'), ['r', 'g', 'b'])
    """
    if type(X).__name__ == "Dataset":
        arr = X.to_dataarray(dim="variable")
        arr.attrs = dict(X.attrs)
        if feature_dim not in (None, "variable"):
            raise ValueError(f"feature_dim={feature_dim!r}: a Dataset's features are its "
                             "variables (feature_dim='variable' or None)")
        feature_dim = "variable"
    else:
        arr = X
        if feature_dim is None:
            if arr.ndim != 2:
                raise ValueError(f"feature_dim: name the feature dimension of this "
                                 f"{arr.ndim}-D DataArray, one of {tuple(arr.dims)}")
            feature_dim = str(arr.dims[-1])
    if feature_dim not in arr.dims:
        raise ValueError(f"feature_dim={feature_dim!r} is not a dimension of X "
                         f"{tuple(arr.dims)}")
    sample_dims = [d for d in arr.dims if d != feature_dim]
    if not sample_dims:
        raise ValueError(f"X has only the feature dimension {feature_dim!r}: no samples")
    arr = arr.transpose(*sample_dims, feature_dim)
    features = arr.coords[feature_dim] if feature_dim in arr.coords else None
    template = arr.isel({feature_dim: 0}, drop=True)
    template.attrs = dict(arr.attrs)
    n, d = int(np.prod(arr.shape[:-1])), int(arr.shape[-1])
    data = arr.data
    chunks = None
    rows: np.ndarray | da.Array
    if isinstance(data, da.Array):
        chunks = data.chunks[:-1]
        rows = grid_rows(data)
    else:
        rows = np.asarray(data).reshape(n, d)
    return rows, SampleGrid(template, feature_dim, features, chunks)



def _grid_block(block: np.ndarray, lead: tuple[int, ...]) -> np.ndarray:
    return block.reshape((-1, *lead, *block.shape[1:]))


def rows_to_grid(values: Any, shape: tuple[int, ...]) -> Any:
    """Per-row values (n, ...) -> (*shape, ...): numpy reshaped, dask block by block."""
    if isinstance(values, da.Array):
        return _unflatten(values, shape)
    return np.asarray(values).reshape((*shape, *np.shape(values)[1:]))


def _unflatten(values: da.Array, shape: tuple[int, ...]) -> da.Array:
    """Split the first axis of per-row values (n, ...) into the sample ``shape``."""
    inner = int(np.prod(shape[1:]))
    if any(c % inner for c in values.chunks[0]):
        values = values.rechunk({0: max(1, max(values.chunks[0]) // inner) * inner})
    chunks = (tuple(c // inner for c in values.chunks[0]), *((s,) for s in shape[1:]),
              *values.chunks[1:])
    return da.map_blocks(_grid_block, values, lead=tuple(shape[1:]), chunks=chunks,
                         dtype=values.dtype, new_axis=list(range(1, len(shape))) or None,
                         meta=np.empty((0,) * len(chunks), values.dtype))


def _nodata_rows(X: np.ndarray, nodata: float) -> np.ndarray:
    """True for each row with a value equal to ``nodata`` (NaN: any NaN)."""
    hit = np.isnan(X) if np.isnan(nodata) else X == nodata
    return hit.any(axis=1)


def _valid_block(x: np.ndarray, nodata: float) -> np.ndarray:
    return ~_nodata_rows(x, nodata)


def where_rows(values: Any, valid: Any, fill: Any) -> Any:
    """``values`` (n, ...) with the rows where ``valid`` is False set to ``fill``;
    numpy, or dask block by block (``da.where`` is not in dask's query planning)."""
    if not isinstance(values, da.Array) and not isinstance(valid, da.Array):
        out = np.array(values, copy=True)
        out[~np.asarray(valid)] = fill
        return out
    if not isinstance(values, da.Array):
        values = da.from_array(values, chunks=(valid.chunks[0], *values.shape[1:]))
    if not isinstance(valid, da.Array):
        valid = da.from_array(valid, chunks=(values.chunks[0],))
    idx = "ij"[: values.ndim]
    return da.blockwise(_where_block, idx, values, idx, valid, "i", fill=fill,
                        dtype=values.dtype, meta=np.empty((0,) * values.ndim, values.dtype))


def _where_block(values: np.ndarray, valid: np.ndarray, fill: Any) -> np.ndarray:
    out = np.array(values, copy=True)
    out[~valid] = fill
    return out


def mask_nodata(src: Source, nodata: float) -> tuple[Source, Any]:
    """``(source, valid)``: rows holding ``nodata`` (in any feature) filled with zeros,
    and the rows that are valid ((n,) bool, numpy for numpy input, else dask).

    Values are compared as stored (a uint8 store's raw values, before scaling). The
    caller gives the masked rows zero weight, so they take no part in the fit.
    """
    if isinstance(src, ArraySource):
        valid = ~_nodata_rows(src.X, nodata)
        return (ArraySource(src.X if valid.all() else where_rows(src.X, valid, 0)), valid)
    if isinstance(src, ZarrSource):  # the mask and the rows from one read of each block
        raw = src.raw_dask()
        X = src.to_dask(raw)
    else:
        raw = X = cast(DaskSource, src).X
    valid = da.map_blocks(_valid_block, raw, nodata=nodata, drop_axis=1, dtype=bool,
                          meta=np.empty((0,), bool))
    return DaskSource(where_rows(X, valid, 0)), valid

