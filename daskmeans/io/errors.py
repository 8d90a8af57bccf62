"""The errors of daskmeans about the user's files: one family, one base.

Every error daskmeans raises about a file, store or URL it reads or writes derives from
:class:`DaskmeansError` and from the built-in exception a caller already expects
(``ValueError`` for damaged data, ``OSError`` for storage), so ``except ValueError``
keeps working and ``except daskmeans.io.DaskmeansError`` catches the family::

    DaskmeansError
    ├── DataFormatError (ValueError)         damaged or malformed input
    │   ├── ChunkDecodeError                 a Zarr chunk that does not decode
    │   ├── IDXFormatError                   an IDX (MNIST-format) file
    │   ├── ImageFormatError                 an image file or array
    │   ├── StoreError                       a Zarr store (or raster) that is not what it
    │   │                                    should be: no such array, bad metadata
    │   └── ModelFormatError                 a saved model file
    │       └── CheckpointFormatError        a fit's checkpoint file
    ├── StoreConnectionError (ConnectionError, an OSError)
    └── OutputExistsError (FileExistsError, an OSError)

Each message names the file or URL first, then the array and the chunk where there is
one, then the problem.
"""

from __future__ import annotations

__all__ = [
    "BlockReadError",
    "CheckpointFormatError",
    "ChunkDecodeError",
    "DaskmeansError",
    "DataFormatError",
    "IDXFormatError",
    "ImageFormatError",
    "ModelFormatError",
    "OutputExistsError",
    "StoreConnectionError",
    "StoreError",
    "output_exists",
]


class DaskmeansError(Exception):
    """The base of every error daskmeans raises about a file, store or URL."""


class DataFormatError(DaskmeansError, ValueError):
    """Input data is damaged or malformed (names the file and the problem)."""


class ChunkDecodeError(DataFormatError):
    """A chunk of a Zarr array that does not decode (truncated, corrupt or empty): the
    message names the store (path or URL), the array and the chunk's key."""


class BlockReadError(DataFormatError):
    """A block of a dask array the user built (``da.from_zarr``, xarray over Zarr, any
    graph) that cannot be computed on its own: the message names the array, the block and
    its rows, and the error its graph raised."""


class IDXFormatError(DataFormatError):
    """An IDX file is truncated, corrupt or not an IDX file."""


class ImageFormatError(DataFormatError):
    """An image cannot be decoded or is not RGB."""


class StoreError(DataFormatError):
    """A Zarr store is not a store, or lacks an array or split it should have."""


class ModelFormatError(DataFormatError):
    """A model file is damaged, not daskmeans', or of an unsupported version."""


class CheckpointFormatError(ModelFormatError):
    """A fit's checkpoint file is damaged (truncated, corrupt, empty) or not a
    daskmeans checkpoint."""


class StoreConnectionError(DaskmeansError, ConnectionError):
    """A store at a URL cannot be reached or stopped answering (the message names the
    URL; the transport's own error is chained). Raised once the retries the filesystem
    was configured with are spent (see :data:`daskmeans.io.stores.RETRY_HINT`)."""


class OutputExistsError(DaskmeansError, FileExistsError):
    """A writer refused to replace what is already at its destination (it was not
    asked to: ``overwrite=False``, or no ``--overwrite`` on the command line)."""


def output_exists(path: object, why: str | None = None) -> OutputExistsError:
    """The refusal to replace ``path``: by default that it exists, saying how to ask for
    it to be replaced; else ``why`` (what even ``overwrite=True`` does not replace)."""
    if why is not None:
        return OutputExistsError(f"{path}: {why}")
    return OutputExistsError(f"{path}: exists; daskmeans does not replace existing data "
                             "unless asked (overwrite=True; on the command line "
                             "--overwrite)")
