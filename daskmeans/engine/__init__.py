"""The engine: what the algorithms talk to.

- :mod:`~daskmeans.engine.source`: the data source (its kinds, :func:`as_source`,
  :func:`open_source`) and stores opened as dask arrays (:func:`open_dataset`,
  :func:`open_array`);
- :mod:`~daskmeans.engine.rows`: xarray inputs as rows, grids, nodata masking;
- :mod:`~daskmeans.engine.schedule`: threads or a client, the BLAS policy, the memory
  budget, the one ``compute``;
- :mod:`~daskmeans.engine.mapreduce`: one map-reduce over a source's blocks, with
  per-block state kept where the blocks are, and holding a store's rows;
- :mod:`~daskmeans.engine.passes`: the passes built on it.

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
