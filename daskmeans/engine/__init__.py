"""The engine: what the algorithms talk to.

- :mod:`~daskmeans.engine.source`: the data source (its kinds, :func:`as_source`,
  :func:`open_source`) and stores opened as dask arrays (:func:`open_dataset`,
  :func:`open_array`);
- :mod:`~daskmeans.engine.rows`: xarray inputs as rows, grids, nodata masking;
- :mod:`~daskmeans.engine.schedule`: threads or a client, the BLAS policy, the memory
  budget, the one ``compute``;
- :mod:`~daskmeans.engine.reductions`: THE map-reduce over a source's blocks, with
  per-block state kept where the blocks are, and the passes built on it (one call
  each), as dask's ``array/reductions.py`` holds ``reduction()`` and its reductions;
- :mod:`~daskmeans.engine.hold`: rows (and their ``|x|^2``) held for a fit, in one
  place;
- :mod:`~daskmeans.engine.maps`: lazy per-row outputs (labels, distances) as dask
  arrays.

The engine imports the storage formats (:mod:`daskmeans.io`) and the kernels, never the
algorithms or the estimators.
"""

from .source import (
    ArraySource,
    DaskSource,
    NonFiniteError,
    Source,
    ZarrSource,
    as_source,
    open_array,
    open_dataset,
    open_source,
)

__all__ = ["ArraySource", "DaskSource", "NonFiniteError", "Source", "ZarrSource",
           "as_source", "open_array", "open_dataset", "open_source"]
