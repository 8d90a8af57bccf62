"""Storage formats: IDX (MNIST-format) files, images, rasters and synthetic data to and
from chunked Zarr v3 stores, on a local disk or in object storage.

One module per format, sharing the error classes of :mod:`daskmeans.io.errors` and the
store helpers of :mod:`daskmeans.io.stores` (atomic writes, URLs, opening groups and
arrays, the compressor daskmeans writes with):

- :mod:`~daskmeans.io.idx`: IDX files read block by block;
- :mod:`~daskmeans.io.mnist`: MNIST-format datasets ingested into one store;
- :mod:`~daskmeans.io.images`: RGB images as tiled stores;
- :mod:`~daskmeans.io.rasters`: multi-band rasters and labels written beside them;
- :mod:`~daskmeans.io.chunkfiles`: a local array's chunk files read directly;
- :mod:`~daskmeans.io.synthetic`: blobs, embeddings, images and scenes of any size;
- :mod:`~daskmeans.io.sparse`: sparse CSR matrices (TF-IDF, one-hot) in a Zarr group
  whose row blocks read independently.

Nothing here knows about clustering. Opening a store as the rows an estimator reads
(:func:`daskmeans.open_source`, :func:`daskmeans.open_dataset`, ...) is the engine's
work (:mod:`daskmeans.engine.source`).
"""

from .errors import (
    BlockReadError,
    CheckpointFormatError,
    ChunkDecodeError,
    DaskmeansError,
    DataFormatError,
    IDXFormatError,
    ImageFormatError,
    ModelFormatError,
    OutputExistsError,
    StoreConnectionError,
    StoreError,
)
from .idx import (
    DEFAULT_CHUNK_ROWS,
    IDX_DTYPES,
    MNIST_FILES,
    file_checksums,
    find_idx_files,
    iter_idx,
    read_idx,
    read_idx_header,
)
from .images import (
    DEFAULT_TILE,
    MAX_IMAGE_PIXELS,
    image_pixels,
    image_to_zarr,
    load_rgb,
    open_image,
)
from .mnist import CLASS_NAMES, SPLITS, arrays_to_dataset, class_names, ingest, scale_images
from .rasters import Raster, grid_rows, open_raster, write_labels
from .sparse import CSRStore, open_csr, write_csr
from .stores import (
    PIXEL_SCALE,
    CheckedArray,
    GroupWriter,
    PathLike,
    atomic_dir,
    atomic_file,
    check_output,
    default_compressor,
    ensure_writable_dir,
    is_url,
    is_zarr,
    new_file_mode,
    store_blocks,
    upload_store,
    write_group,
    zarr_to_dask,
)
from .synthetic import (
    blob_centers,
    make_blobs_zarr,
    make_embeddings_zarr,
    synthetic_image,
    synthetic_scene,
)

__all__ = [
    "CLASS_NAMES",
    "DEFAULT_CHUNK_ROWS",
    "DEFAULT_TILE",
    "IDX_DTYPES",
    "MAX_IMAGE_PIXELS",
    "MNIST_FILES",
    "PIXEL_SCALE",
    "SPLITS",
    "BlockReadError",
    "CSRStore",
    "CheckedArray",
    "CheckpointFormatError",
    "ChunkDecodeError",
    "DaskmeansError",
    "DataFormatError",
    "GroupWriter",
    "IDXFormatError",
    "ImageFormatError",
    "ModelFormatError",
    "OutputExistsError",
    "PathLike",
    "Raster",
    "StoreConnectionError",
    "StoreError",
    "arrays_to_dataset",
    "atomic_dir",
    "atomic_file",
    "blob_centers",
    "check_output",
    "class_names",
    "default_compressor",
    "ensure_writable_dir",
    "file_checksums",
    "find_idx_files",
    "grid_rows",
    "image_pixels",
    "image_to_zarr",
    "ingest",
    "is_url",
    "is_zarr",
    "iter_idx",
    "load_rgb",
    "make_blobs_zarr",
    "make_embeddings_zarr",
    "new_file_mode",
    "open_csr",
    "open_image",
    "open_raster",
    "read_idx",
    "read_idx_header",
    "scale_images",
    "store_blocks",
    "synthetic_image",
    "synthetic_scene",
    "upload_store",
    "write_csr",
    "write_group",
    "write_labels",
    "zarr_to_dask",
]


#: names ``daskmeans.io`` held before data sources moved to the engine, and where they are
MOVED = {name: "daskmeans" for name in ("open_source", "open_dataset", "as_source", "open_array")}
MOVED |= {name: "daskmeans.engine.source" for name in (
    "Source", "ArraySource", "ZarrSource", "DaskSource", "ZarrBlock", "NonFiniteError")}
MOVED |= {name: "daskmeans.engine.rows" for name in (
    "SampleGrid", "is_xarray", "mask_nodata", "xarray_rows", "where_rows", "rows_to_grid")}


def __getattr__(name: str) -> None:
    """A clear error for a name that moved out of ``daskmeans.io`` (storage formats
    only: reading a source's rows is the engine's), without importing the engine."""
    if name in MOVED:
        raise AttributeError(f"daskmeans.io.{name} is now {MOVED[name]}.{name}: "
                             "daskmeans.io holds storage formats only")
    raise AttributeError(f"module 'daskmeans.io' has no attribute {name!r}")
