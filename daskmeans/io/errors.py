"""The errors of daskmeans' storage formats: the contract every reader and writer
shares (each names the file, store or URL and the problem)."""

from __future__ import annotations

__all__ = ["DataFormatError", "IDXFormatError", "ImageFormatError", "StoreConnectionError",
           "StoreError"]


class DataFormatError(ValueError):
    """Input data is malformed (names the file and the problem)."""


class IDXFormatError(DataFormatError):
    """An IDX file is truncated, corrupt or not an IDX file."""


class ImageFormatError(DataFormatError):
    """An image cannot be decoded or is not RGB."""


class StoreError(ValueError):
    """A Zarr store is missing, or lacks an array or split it should have."""


class StoreConnectionError(ConnectionError):
    """A store at a URL cannot be reached or stopped answering (the message names the
    URL; the transport's own error is chained). Raised once the retries the filesystem
    was configured with are spent (see :data:`RETRY_HINT`)."""
