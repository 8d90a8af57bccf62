"""Storage: IDX (MNIST-format) files and images to chunked Zarr v3, opened as dask arrays.

Layout of a dataset store written by :func:`ingest`::

    STORE/                      zarr v3 group, attrs: dataset, splits, missing_splits, sources
      train/images  (n, 28, 28) uint8, chunked by rows, Blosc-LZ4-compressed
      train/labels  (n,)        uint8
      test/images   ...
      test/labels   ...

Pixels stay uint8 on disk; :func:`open_dataset` scales them to float32 in [0, 1]
lazily, chunk by chunk.

Every writer here is atomic on a local disk: it writes into a hidden temporary directory
beside the destination and renames it into place only once everything is written, so a
failed or interrupted write never leaves a half-written store at the destination path.

Stores may also live in object storage: any fsspec URL (``s3://bucket/data.zarr``, with
``storage_options`` handed to fsspec, e.g. s3fs's ``key``, ``secret``, ``endpoint_url``,
``config_kwargs``) is read block by block like a local store. Object stores have no
rename, so writers there give a weaker guarantee (see :func:`write_group`): the group's
root metadata is written last, so a store is readable as a group only once complete.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import gzip
import hashlib
import itertools
import logging
import os
import shutil
import struct
import threading
import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, cast, overload

import dask.array as da
import numpy as np
import zarr

from ._chunkfiles import ChunkFiles, FileRows

__all__ = [
    "IDX_DTYPES",
    "MNIST_FILES",
    "ArraySource",
    "DaskSource",
    "DataFormatError",
    "GroupWriter",
    "IDXFormatError",
    "ImageFormatError",
    "NonFiniteError",
    "Raster",
    "SampleGrid",
    "Source",
    "StoreConnectionError",
    "StoreError",
    "ZarrBlock",
    "ZarrSource",
    "arrays_to_dataset",
    "as_source",
    "grid_rows",
    "image_pixels",
    "image_to_zarr",
    "ingest",
    "is_url",
    "is_xarray",
    "iter_idx",
    "make_blobs_zarr",
    "mask_nodata",
    "open_array",
    "open_dataset",
    "open_image",
    "open_raster",
    "open_source",
    "read_idx",
    "read_idx_header",
    "rows_to_grid",
    "synthetic_image",
    "synthetic_scene",
    "upload_store",
    "where_rows",
    "write_group",
    "write_labels",
    "xarray_rows",
]

log = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]

#: IDX type code -> numpy dtype (big-endian as in the format).
IDX_DTYPES: dict[int, np.dtype[Any]] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

#: The four files of an MNIST-format dataset, by (split, kind).
MNIST_FILES: dict[tuple[str, str], str] = {
    ("train", "images"): "train-images-idx3-ubyte",
    ("train", "labels"): "train-labels-idx1-ubyte",
    ("test", "images"): "t10k-images-idx3-ubyte",
    ("test", "labels"): "t10k-labels-idx1-ubyte",
}

SPLITS = ("train", "test")


def _compressor(dtype: np.dtype[Any] | type) -> Any:
    """Blosc-LZ4: decompresses MNIST chunks 2.5x faster than zstd for 20% more bytes
    (measured: 4.4 vs 11 ms per 10k-image chunk, 32 vs 27 MB for 60k images); byte
    shuffle for multi-byte types."""
    from zarr.codecs import BloscCodec, BloscShuffle

    itemsize = np.dtype(dtype).itemsize
    shuffle = BloscShuffle.noshuffle if itemsize == 1 else BloscShuffle.shuffle
    return BloscCodec(cname="lz4", clevel=5, shuffle=shuffle, typesize=itemsize)
DEFAULT_CHUNK_ROWS = 10_000
DEFAULT_TILE = 1024


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


# --------------------------------------------------------------------------- IDX


def _open_maybe_gzip(path: Path) -> IO[bytes]:
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if not path.is_file():
        raise IDXFormatError(f"{path}: not a regular file")
    with open(path, "rb") as f:
        magic = f.read(2)
    if magic == b"\x1f\x8b":
        return cast(IO[bytes], gzip.open(path, "rb"))
    return open(path, "rb")


def _read_exact(f: IO[bytes], n: int, path: Path, what: str) -> bytes:
    parts = []
    got = 0
    try:
        while got < n:  # bounded reads: a corrupt header cannot ask for terabytes at once
            piece = f.read(min(n - got, 64 << 20))
            if not piece:
                break
            parts.append(piece)
            got += len(piece)
    except (OSError, EOFError, zlib.error) as e:  # gzip.BadGzipFile is an OSError
        raise IDXFormatError(f"{path}: corrupt compressed data while reading {what}: {e}") from e
    buf = b"".join(parts)
    if len(buf) != n:
        raise IDXFormatError(f"{path}: truncated: expected {n} bytes of {what}, got {len(buf)}")
    return buf


def _check_size(path: Path, expected: int) -> None:
    """Compare the header's byte count with the file size (gzip: its ISIZE trailer)."""
    size = path.stat().st_size
    with open(path, "rb") as raw:
        if raw.read(2) == b"\x1f\x8b":
            if size < 18:
                raise IDXFormatError(f"{path}: truncated gzip file ({size} bytes)")
            raw.seek(-4, os.SEEK_END)
            isize = struct.unpack("<I", raw.read(4))[0]
            # ISIZE is the uncompressed size mod 2**32 (only the last member's for a
            # multi-member file, so only a single-member mismatch is conclusive)
            if isize != expected % (1 << 32) and isize < expected:
                raise IDXFormatError(
                    f"{path}: header declares {expected} bytes but the gzip trailer says "
                    f"{isize}: truncated, corrupt, or a wrong header"
                )
            return
    if size != expected:
        what = "truncated" if size < expected else "trailing bytes after the data"
        raise IDXFormatError(
            f"{path}: {what}: header declares {expected} bytes, file has {size}"
        )


def read_idx_header(f: IO[bytes], path: Path) -> tuple[np.dtype[Any], tuple[int, ...]]:
    """Parse an IDX header from an open binary stream.

    Returns the item dtype and the shape. Raises :class:`IDXFormatError` on a bad magic
    number, an unknown type code or a zero dimension count.
    """
    magic = _read_exact(f, 4, path, "the magic number")
    if magic[0] != 0 or magic[1] != 0:
        raise IDXFormatError(
            f"{path}: wrong magic number 0x{magic.hex()}: not an IDX file "
            "(expected 0x0000TTNN: two zero bytes, type code, dimension count)"
        )
    code, ndim = magic[2], magic[3]
    if code not in IDX_DTYPES:
        raise IDXFormatError(f"{path}: unknown IDX type code 0x{code:02x}")
    if ndim == 0:
        raise IDXFormatError(f"{path}: IDX header declares 0 dimensions")
    dims = struct.unpack(f">{ndim}I", _read_exact(f, 4 * ndim, path, "the dimensions"))
    return IDX_DTYPES[code], tuple(int(d) for d in dims)


def iter_idx(
    path: PathLike, chunk_rows: int = DEFAULT_CHUNK_ROWS
) -> Iterator[tuple[np.dtype[Any], tuple[int, ...], np.ndarray]]:
    """Stream an IDX file (plain or gzip) in blocks of ``chunk_rows`` rows.

    Memory is bounded by one block, not by the file. Yields ``(dtype, shape, block)``
    where ``shape`` is the full shape from the header. After the last row the file must
    end: trailing bytes or a short file raise :class:`IDXFormatError`.

    Examples
    --------
    >>> import daskmeans.io as dio                                  # doctest: +SKIP
    >>> for dtype, shape, block in dio.iter_idx("t10k-labels-idx1-ubyte.gz"):
    ...     print(shape, block.shape)                               # doctest: +SKIP
    (10000,) (10000,)
    """
    path = Path(path)
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be >= 1, got {chunk_rows!r}")
    with _open_maybe_gzip(path) as f:
        dtype, shape = read_idx_header(f, path)
        _check_size(path, 4 + 4 * len(shape) + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize)
        row_items = int(np.prod(shape[1:], dtype=np.int64))
        row_bytes = row_items * dtype.itemsize
        n = shape[0]
        for start in range(0, n, chunk_rows):
            rows = min(chunk_rows, n - start)
            buf = _read_exact(f, rows * row_bytes, path, f"rows {start}..{start + rows - 1}")
            block = np.frombuffer(buf, dtype=dtype).reshape((rows, *shape[1:]))
            yield dtype, shape, block.astype(dtype.newbyteorder("="), copy=False)
        try:
            extra = f.read(1)
        except (OSError, EOFError, zlib.error) as e:
            raise IDXFormatError(f"{path}: corrupt compressed data at the end: {e}") from e
        if extra:
            raise IDXFormatError(
                f"{path}: {shape} of {dtype} is followed by trailing bytes: "
                "the byte count does not match the header"
            )
        if n == 0:
            yield dtype, shape, np.empty(shape, dtype=dtype.newbyteorder("="))


def read_idx(path: PathLike) -> np.ndarray:
    """Read a whole IDX file into memory (small files only; see :func:`iter_idx`).

    Examples
    --------
    >>> labels = read_idx("t10k-labels-idx1-ubyte.gz")           # doctest: +SKIP
    >>> labels.shape, labels.dtype                                  # doctest: +SKIP
    ((10000,), dtype('uint8'))
    """
    blocks = [b for _, _, b in iter_idx(path, chunk_rows=1 << 30)]
    return blocks[0] if len(blocks) == 1 else np.concatenate(blocks)


def file_checksums(path: PathLike) -> dict[str, Any]:
    """md5 and sha256 (hex strings) and size (int) of a file's bytes, streamed."""
    md5, sha = hashlib.md5(), hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            md5.update(block)
            sha.update(block)
    return {"md5": md5.hexdigest(), "sha256": sha.hexdigest(), "size": os.path.getsize(path)}


# --------------------------------------------------------------------------- atomic writes


def new_file_mode() -> int:
    """The permissions ``open()`` would give a new file: ``0o666`` minus the umask.

    ``tempfile.mkstemp`` creates ``0o600`` files; files we write through a temporary
    (models, checkpoints, downloads) get this mode instead, like every other output.
    The umask is read from ``/proc/self/status`` (setting it to read it back would
    change it, for a moment, for every thread of the caller's process); 0o022 where
    that file does not say.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return 0o666 & ~int(line.split()[1], 8)
    except OSError:
        pass
    return 0o644


def ensure_writable_dir(path: PathLike) -> Path:
    """Create ``path`` if needed; raise a clear OSError if it cannot be written."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OSError(f"{path}: cannot create output directory: {e.strerror}") from e
    if not os.access(path, os.W_OK):
        raise PermissionError(f"{path}: output directory is not writable")
    return path


@contextlib.contextmanager
def atomic_dir(dest: PathLike, *, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary directory that replaces ``dest`` only if the block succeeds."""
    dest = Path(dest)
    if dest.exists() and not overwrite:
        raise FileExistsError(f"{dest}: exists (pass overwrite=True to replace it)")
    parent = ensure_writable_dir(dest.parent)
    tmp = parent / f".{dest.name}.tmp-{uuid.uuid4().hex[:12]}"
    try:
        yield tmp
        if dest.exists():
            trash = parent / f".{dest.name}.old-{uuid.uuid4().hex[:12]}"
            os.replace(dest, trash)
            os.replace(tmp, dest)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(tmp, dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


# --------------------------------------------------------------------------- object storage

#: What a user sets for retries and timeouts (named in errors about unreachable stores).
RETRY_HINT = (
    "; retries and timeouts are set in storage_options, for s3:// e.g. "
    "config_kwargs={'retries': {'max_attempts': 10, 'mode': 'standard'}, "
    "'connect_timeout': 5, 'read_timeout': 30}"
)
#: Where credentials come from (named in errors about denied access).
CREDENTIALS_HINT = (
    "check the credentials: storage_options key and secret (and token), or the "
    "environment variables and profile the filesystem reads (for s3://, s3fs/botocore's)"
)
#: Packages whose exceptions are transport failures (botocore's are not OSErrors).
_TRANSPORT_PACKAGES = frozenset({"botocore", "aiobotocore", "aiohttp", "urllib3", "requests",
                                 "s3fs", "fsspec", "gcsfs", "adlfs", "google"})
#: Filesystems whose first path component is a bucket (or container).
_BUCKET_PROTOCOLS = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss"})


def _is_transport_error(e: BaseException) -> bool:
    """True for a failure of the network under an fsspec store, not of the data: OSErrors
    other than missing or denied (timeouts, refused or reset connections) and the HTTP
    clients' own exception types, recognised by their package so that none of them is
    imported here."""
    if isinstance(e, FileNotFoundError | PermissionError | FileExistsError):
        return False
    if isinstance(e, OSError):  # ConnectionError, TimeoutError, socket errors
        return True
    return any(c.__module__.split(".")[0] in _TRANSPORT_PACKAGES for c in type(e).__mro__)


@contextlib.contextmanager
def _remote_errors(url: str, doing: str) -> Iterator[None]:
    """Errors of a URL's filesystem, made to name ``url`` and what was being done: denied
    access as PermissionError, an unreachable server as :class:`StoreConnectionError`,
    a missing filesystem package as ImportError; anything else unchanged."""
    try:
        yield
    except (StoreError, StoreConnectionError):
        raise
    except ImportError as e:
        raise ImportError(f"{url}: {doing} needs the filesystem package of this URL: {e} "
                          "(for s3://: pip install 'daskmeans[s3]')") from e
    except PermissionError as e:
        raise PermissionError(f"{url}: {doing}: access denied ({e}); {CREDENTIALS_HINT}") from e
    except Exception as e:
        if _is_transport_error(e):
            raise StoreConnectionError(
                f"{url}: {doing}: cannot reach the store ({type(e).__name__}: {e}){RETRY_HINT}"
            ) from e
        raise


def _url_fs(url: str, storage_options: dict[str, Any] | None) -> tuple[Any, str]:
    """fsspec's (synchronous) filesystem and path of a URL."""
    from fsspec.core import url_to_fs

    with _remote_errors(url, "opening the filesystem"):
        fs, path = url_to_fs(url, **(storage_options or {}))
    return fs, str(path).rstrip("/")


def _missing_hint(url: str, storage_options: dict[str, Any] | None) -> str:
    """Why nothing was found at a URL: its bucket is missing, or only the path is."""
    try:
        fs, path = _url_fs(url, storage_options)
        protocols = {fs.protocol} if isinstance(fs.protocol, str) else set(fs.protocol)
        bucket = path.split("/", 1)[0]
        if not protocols & _BUCKET_PROTOCOLS or not bucket:
            return ""
        if not fs.exists(bucket):
            return (f": the bucket {bucket!r} does not exist (or these credentials "
                    "cannot see it)")
        return f": the bucket {bucket!r} exists, nothing is stored at this path in it"
    except Exception:  # the hint is a courtesy: the error stays "not found"
        return ""


def _array_url(array: zarr.Array) -> str | None:
    """The URL of a Zarr array in an fsspec store (object storage), else None."""
    store = array.store
    if not isinstance(store, zarr.storage.FsspecStore):
        return None
    root = str(store.fs.unstrip_protocol(store.path)).rstrip("/")
    return f"{root}/{array.path}" if array.path else root


def _open_url(url: str, storage_options: dict[str, Any] | None) -> Any:
    """The Zarr array or group at a URL, with errors naming the URL: FileNotFoundError
    (saying whether the bucket exists), PermissionError, :class:`StoreConnectionError`."""
    try:
        with _remote_errors(url, "opening the store"):
            return zarr.open(url, mode="r", storage_options=storage_options)
    except FileNotFoundError as e:  # zarr's NodeNotFoundError is one
        raise FileNotFoundError(f"{url}: no Zarr store at this URL"
                                f"{_missing_hint(url, storage_options)}") from e
    except (ImportError, OSError, StoreError):
        raise
    except Exception as e:  # zarr raises several types for "not a store"
        raise StoreError(f"{url}: not a Zarr store: {e}") from e


def _check_remote(fs: Any, path: str, url: str, overwrite: bool) -> list[str]:
    """Whether a new store may be written at ``url``: refused at a bucket's root, over
    anything that is not a Zarr store (never delete what daskmeans did not write), over
    an existing store unless ``overwrite``. Returns the root metadata files of the store
    already there (empty when there is none)."""
    protocols = {fs.protocol} if isinstance(fs.protocol, str) else set(fs.protocol)
    if protocols & _BUCKET_PROTOCOLS and "/" not in path.strip("/"):
        raise ValueError(f"{url}: a store needs a path inside the bucket, e.g. "
                         f"{url.rstrip('/')}/data.zarr")
    with _remote_errors(url, "checking what is stored there"):
        fs.invalidate_cache(path)
        if not fs.exists(path):
            return []
        if not overwrite:
            raise FileExistsError(f"{url}: exists (pass overwrite=True to replace it)")
        metas = [m for m in ("zarr.json", ".zgroup", ".zarray") if fs.exists(f"{path}/{m}")]
        if not metas:
            raise FileExistsError(f"{url}: exists and is not a Zarr store: refusing to "
                                  "delete it to write a store there")
    return metas


def _clear_remote(fs: Any, path: str, url: str, overwrite: bool) -> None:
    """Make way for a new store at ``url`` (see :func:`_check_remote`): delete the old
    store, its root metadata first (it stops being readable as a group at once)."""
    metas = _check_remote(fs, path, url, overwrite)
    if not metas:
        return
    with _remote_errors(url, "deleting the old store"):
        fs.rm([f"{path}/{m}" for m in metas])
        fs.rm(path, recursive=True)
        fs.invalidate_cache(path)


def _remove_partial(fs: Any, path: str, url: str) -> None:
    """Best effort after a failed write: delete what was written (the server may be the
    reason it failed, in which case a partial store without root metadata stays)."""
    try:
        fs.rm(path, recursive=True)
    except Exception as e:
        log.warning("%s: could not delete the partial store after a failed write (%s); it "
                    "has no root metadata, so it does not open as a store", url, e)


def upload_store(local: PathLike, url: str, *, storage_options: dict[str, Any] | None = None,
                 overwrite: bool = True) -> str:
    """Copy a local Zarr store to a URL (object storage), its root metadata last.

    Parameters
    ----------
    local : path
        A Zarr store on disk (v2 or v3).
    url : str
        Destination, e.g. ``s3://bucket/mnist.zarr``; a store already there is replaced
        when ``overwrite`` (anything else there is refused, never deleted).
    storage_options : dict, optional
        Passed to fsspec (s3fs: ``key``, ``secret``, ``endpoint_url``, ``config_kwargs``).

    Returns
    -------
    The URL. Object stores have no rename: see :func:`write_group` for what a reader
    can see while the copy runs or after it fails.
    """
    local = Path(local)
    if not local.is_dir():
        raise FileNotFoundError(f"{local}: no such Zarr store")
    fs, path = _url_fs(url, storage_options)
    _clear_remote(fs, path, url, overwrite)
    files = sorted(p for p in local.rglob("*") if p.is_file())
    root_meta = {"zarr.json", ".zgroup", ".zattrs", ".zarray", ".zmetadata"}
    last = [p for p in files if p.parent == local and p.name in root_meta]
    first = [p for p in files if p not in last]
    try:
        with _remote_errors(url, "uploading the store"):
            for batch in (first, last):
                if batch:
                    fs.put([str(p) for p in batch],
                           [f"{path}/{p.relative_to(local).as_posix()}" for p in batch])
    except BaseException:
        _remove_partial(fs, path, url)
        raise
    fs.invalidate_cache(path)
    return url


@contextlib.contextmanager
def _staged(store: PathLike, storage_options: dict[str, Any] | None,
            overwrite: bool) -> Iterator[Path]:
    """A local directory to write a whole store into: :func:`atomic_dir` for a path; for
    a URL a temporary directory uploaded by :func:`upload_store` once the block succeeds
    (for writers that run in this process and whose data fit on the local disk)."""
    if not _is_url(store):
        if storage_options:
            raise ValueError(f"storage_options apply to URLs, got the local path {store}")
        with atomic_dir(store, overwrite=overwrite) as tmp:
            yield tmp
        return
    import tempfile

    url = str(store)
    _check_remote(*_url_fs(url, storage_options), url, overwrite)  # refuse before working
    with tempfile.TemporaryDirectory(prefix="daskmeans-upload-") as d:
        tmp = Path(d) / "store.zarr"
        yield tmp
        upload_store(tmp, url, storage_options=storage_options, overwrite=overwrite)


class GroupWriter:
    """The arrays of a new Zarr v3 group being written by :func:`write_group`.

    Attributes
    ----------
    root : str
        Where the group is written (a temporary directory for a local destination).
    attrs : dict
        The group's attributes, written with its metadata when the block ends.
    """

    def __init__(self, root: str, storage_options: dict[str, Any] | None) -> None:
        self.root, self.storage_options = root, storage_options
        self.attrs: dict[str, Any] = {}

    def _errors(self, where: str, doing: str) -> contextlib.AbstractContextManager[None]:
        return _remote_errors(where, doing) if is_url(where) else contextlib.nullcontext()

    def create_array(self, name: str, **kwargs: Any) -> zarr.Array:
        """``zarr.create_array`` of the group's child ``name`` (keywords as zarr's)."""
        where = f"{self.root.rstrip('/')}/{name}"
        with self._errors(where, "creating an array"):
            return zarr.create_array(where, zarr_format=3,
                                     storage_options=self.storage_options, **kwargs)

    def finish(self) -> None:
        """Write the group's metadata (and attributes): the last write of a group."""
        with self._errors(self.root, "writing the group's metadata"):
            zarr.create_group(self.root, zarr_format=3, attributes=self.attrs,
                              storage_options=self.storage_options)


@contextlib.contextmanager
def write_group(dest: PathLike, *, storage_options: dict[str, Any] | None = None,
                overwrite: bool = True) -> Iterator[GroupWriter]:
    """Write a new Zarr v3 group at a local path or a URL, its arrays created with
    :meth:`GroupWriter.create_array` and filled by the block (in dask tasks, on any
    scheduler: the arrays pickle as their store and path).

    On a local disk the group is written into :func:`atomic_dir` and renamed into place:
    readers see the old store or the whole new one, never a part.

    In object storage (``s3://...``) there is no rename, and this is the guarantee:

    - a store already at ``dest`` is deleted first (its root metadata first), when
      ``overwrite``; anything there that is not a Zarr store is refused, never deleted;
    - each object (a chunk, a metadata file) is put whole: a reader never sees a torn
      chunk;
    - the group's root metadata (``zarr.json``) is written last, so ``dest`` opens as a
      Zarr group only once every array is complete; before that, ``zarr.open(dest)``
      fails with "not found";
    - a failed write deletes what it wrote, as far as it can (not when the server is the
      reason it failed, nor when the process is killed): what stays behind has no root
      metadata and does not open as a group.

    It cannot give: replacing an old store in one step (between the delete and the end
    of the write there is no store at ``dest``), isolation from a concurrent writer to
    the same URL, or protection for a reader that opens ``dest/array`` directly during
    the write.

    Examples
    --------
    >>> with write_group("s3://bucket/labels.zarr", storage_options=opts) as g:  # doctest: +SKIP
    ...     g.attrs["model"] = "m.npz"
    ...     g.create_array("labels", shape=(n,), dtype="int32", chunks=(10_000,))[:] = y
    """
    if not _is_url(dest):
        if storage_options:
            raise ValueError(f"storage_options apply to URLs, got the local path {dest}")
        with atomic_dir(dest, overwrite=overwrite) as tmp:
            tmp.mkdir()
            writer = GroupWriter(str(tmp), None)
            yield writer
            writer.finish()
        return
    url = str(dest).rstrip("/")
    fs, path = _url_fs(url, storage_options)
    _clear_remote(fs, path, url, overwrite)
    writer = GroupWriter(url, storage_options)
    try:
        yield writer
        writer.finish()
    except BaseException:
        _remove_partial(fs, path, url)
        raise
    fs.invalidate_cache(path)


# --------------------------------------------------------------------------- MNIST ingest


def find_idx_files(directory: PathLike) -> dict[tuple[str, str], Path]:
    """Locate the MNIST-format files in a directory (``.gz`` or uncompressed names)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory}: no such directory")
    found: dict[tuple[str, str], Path] = {}
    for key, stem in MNIST_FILES.items():
        for name in (stem + ".gz", stem, stem.replace("-idx", ".idx")):
            p = directory / name
            if p.is_file():
                found[key] = p
                break
    return found


@overload
def ingest(source: PathLike | dict[tuple[str, str], PathLike], store: os.PathLike[str], *,
           name: str = ..., chunk_rows: int = ..., overwrite: bool = ...,
           extra_attrs: dict[str, Any] | None = ..., progress: Any = ...,
           storage_options: dict[str, Any] | None = ...) -> Path: ...
@overload
def ingest(source: PathLike | dict[tuple[str, str], PathLike], store: str, *,
           name: str = ..., chunk_rows: int = ..., overwrite: bool = ...,
           extra_attrs: dict[str, Any] | None = ..., progress: Any = ...,
           storage_options: dict[str, Any] | None = ...) -> Path | str: ...
def ingest(
    source: PathLike | dict[tuple[str, str], PathLike],
    store: PathLike,
    *,
    name: str = "mnist",
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    overwrite: bool = True,
    extra_attrs: dict[str, Any] | None = None,
    progress: Any = None,
    storage_options: dict[str, Any] | None = None,
) -> Path | str:
    """Ingest MNIST-format IDX files into one Zarr v3 group.

    Parameters
    ----------
    source : path or dict
        A directory holding any of the four standard file names (``.gz`` or not), or a
        mapping ``{(split, "images" | "labels"): path}``.
    store : path or URL
        Destination directory of the Zarr group; replaced atomically. A URL
        (``s3://bucket/mnist.zarr``) is written to a local temporary directory first,
        then uploaded with :func:`upload_store` (root metadata last).
    name : str
        Dataset name recorded in the attrs.
    chunk_rows : int
        Rows per chunk (default 10,000: ~7.8 MB of uint8 images per chunk, 31 MB once
        scaled to float32).
    progress : :data:`daskmeans._progress.ProgressCallback`, optional
        Called after every chunk written as ``progress("ingest", rows_done, rows,
        "<split>/<kind> (<file name>)")``, one run up to ``rows`` per file.
    storage_options : dict, optional
        For a URL: passed to fsspec (s3fs: ``key``, ``secret``, ``endpoint_url``, ...).

    Returns
    -------
    Path of the store (the URL for a URL). Splits without both files are skipped and listed in the
    ``missing_splits`` attribute (and logged).

    Examples
    --------
    >>> from daskmeans.io import ingest, open_dataset
    >>> store = ingest("../shared/data/mnist", "/tmp/mnist.zarr")  # doctest: +SKIP
    >>> X, y = open_dataset(store, "test")                        # doctest: +SKIP
    >>> X.shape, X.dtype                                          # doctest: +SKIP
    ((10000, 784), dtype('float32'))
    """
    if not isinstance(chunk_rows, int | np.integer) or chunk_rows < 1:
        raise ValueError(f"chunk_rows must be a positive integer, got {chunk_rows!r}")
    files = find_idx_files(source) if not isinstance(source, dict) else {
        k: Path(v) for k, v in source.items()
    }
    splits = [s for s in SPLITS if (s, "images") in files and (s, "labels") in files]
    missing = [s for s in SPLITS if s not in splits]
    for s in SPLITS:
        half = [k for k in ("images", "labels") if (s, k) in files]
        if len(half) == 1:
            log.info("split %r has only its %s file; skipped", s, half[0])
    if not splits:
        raise FileNotFoundError(
            f"{source}: no complete split found (need e.g. "
            f"{MNIST_FILES[('test', 'images')]}.gz and {MNIST_FILES[('test', 'labels')]}.gz)"
        )
    if missing:
        log.info("%s: splits %s not present; ingesting %s", name, missing, splits)
    sources: dict[str, Any] = {}
    with _staged(store, storage_options, overwrite) as tmp:
        root = zarr.open_group(tmp, mode="w", zarr_format=3)
        for split in splits:
            grp = root.create_group(split)
            counts = {}
            for kind in ("labels", "images"):
                path = files[(split, kind)]
                counts[kind] = _idx_to_zarr(path, grp, kind, chunk_rows, progress=progress,
                                            what=f"{split}/{kind} ({path.name})")
                sources[f"{split}/{kind}"] = {"file": path.name, **file_checksums(path)}
            if counts["images"] != counts["labels"]:
                raise DataFormatError(
                    f"{files[(split, 'images')]}: {counts['images']} images but "
                    f"{files[(split, 'labels')].name} has {counts['labels']} labels"
                )
        root.attrs.update(
            {
                "dataset": name,
                "format": "daskmeans-idx/1",
                "splits": splits,
                "missing_splits": missing,
                "sources": sources,
                **(extra_attrs or {}),
            }
        )
    log.info("ingested %s (%s) into %s", name, ", ".join(splits), store)
    return str(store) if _is_url(store) else Path(store)


@overload
def arrays_to_dataset(splits: dict[str, tuple[np.ndarray, np.ndarray]],
                      store: os.PathLike[str], *, name: str, chunk_rows: int = ...,
                      overwrite: bool = ...,
                      storage_options: dict[str, Any] | None = ...) -> Path: ...
@overload
def arrays_to_dataset(splits: dict[str, tuple[np.ndarray, np.ndarray]], store: str, *,
                      name: str, chunk_rows: int = ..., overwrite: bool = ...,
                      storage_options: dict[str, Any] | None = ...) -> Path | str: ...
def arrays_to_dataset(
    splits: dict[str, tuple[np.ndarray, np.ndarray]],
    store: PathLike,
    *,
    name: str,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    overwrite: bool = True,
    storage_options: dict[str, Any] | None = None,
) -> Path | str:
    """Write in-memory ``{split: (images uint8 (n, h, w), labels (n,))}`` as a dataset
    store with the layout of :func:`ingest` (used for scikit-learn's digits); ``store``
    may be a URL (with ``storage_options``), written as :func:`ingest` writes one."""
    with _staged(store, storage_options, overwrite) as tmp:
        root = zarr.open_group(tmp, mode="w", zarr_format=3)
        for split, (images, labels) in splits.items():
            if split not in SPLITS:
                raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
            images = np.asarray(images, dtype=np.uint8)
            labels = np.asarray(labels, dtype=np.uint8)
            if images.shape[0] != labels.shape[0]:
                raise DataFormatError(
                    f"{split}: {images.shape[0]} images but {labels.shape[0]} labels")
            grp = root.create_group(split)
            rows = min(chunk_rows, max(1, images.shape[0]))
            grp.create_array("images", shape=images.shape, chunks=(rows, *images.shape[1:]),
                             dtype=np.uint8, compressors=_compressor(np.uint8))[...] = images
            grp.create_array("labels", shape=labels.shape, chunks=(rows,), dtype=np.uint8,
                             compressors=_compressor(np.uint8))[...] = labels
        root.attrs.update({"dataset": name, "format": "daskmeans-idx/1",
                           "splits": [s for s in SPLITS if s in splits],
                           "missing_splits": [s for s in SPLITS if s not in splits],
                           "sources": {}})
    return str(store) if _is_url(store) else Path(store)


def _idx_to_zarr(path: Path, grp: zarr.Group, kind: str, chunk_rows: int, *,
                 progress: Any = None, what: str = "") -> int:
    """Copy one IDX file into ``grp[kind]``; returns its rows. ``progress`` is a
    :data:`daskmeans._progress.ProgressCallback` told ``("ingest", rows, total, what)``."""
    arr = None
    n = 0
    for dtype, shape, block in iter_idx(path, chunk_rows):
        if arr is None:
            expect_ndim = 3 if kind == "images" else 1
            if len(shape) != expect_ndim:
                raise IDXFormatError(
                    f"{path}: {kind} must have {expect_ndim} dimensions, header says {shape}"
                )
            if dtype != np.uint8:
                raise IDXFormatError(f"{path}: {kind} must be uint8, header says {dtype}")
            arr = grp.create_array(
                kind,
                shape=shape,
                chunks=(min(chunk_rows, max(shape[0], 1)), *shape[1:]),
                dtype=np.uint8,
                compressors=_compressor(np.uint8),
            )
        if block.shape[0]:
            arr[n : n + block.shape[0]] = block
        n += block.shape[0]
        log.debug("%s: %d/%d rows", path.name, n, shape[0])
        if progress is not None:
            progress("ingest", n, shape[0], what or path.name)
    return n


def _open_group(store: PathLike | zarr.Group,
                storage_options: dict[str, Any] | None = None) -> zarr.Group:
    if isinstance(store, zarr.Group):
        return store
    if _is_url(store):
        node = _open_url(str(store), storage_options)
        if not isinstance(node, zarr.Group):
            raise StoreError(f"{store}: a Zarr array, not a group")
        return node
    if storage_options:
        raise ValueError(f"storage_options apply to URLs, got the local path {store}")
    p = Path(store)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such Zarr store")
    try:
        return zarr.open_group(p, mode="r")
    except Exception as e:  # zarr raises several types for "not a group"
        raise StoreError(f"{p}: not a Zarr group: {e}{_ingest_hint(p)}") from e


def _ingest_hint(path: Any) -> str:
    """A pointer to ``daskmeans ingest`` when ``path`` is a folder of IDX files."""
    try:
        if not _is_url(path) and Path(path).is_dir() and find_idx_files(Path(path)):
            return (f". It holds MNIST-format IDX files: convert them first with "
                    f"'daskmeans ingest mnist --source {path} --out data.zarr'")
    except OSError:
        pass
    return ""


def _get_array(group: zarr.Group, key: str, where: str) -> zarr.Array:
    try:
        node = group[key]
    except KeyError:
        node = None
    if not isinstance(node, zarr.Array):
        raise StoreError(f"{where}: store has no array {key!r}")
    return node


#: uint8 pixels are scaled to [0, 1] by this factor (in float32).
PIXEL_SCALE = 1.0 / 255.0


def _scale_rows(raw: np.ndarray, scale: float) -> np.ndarray:
    """(n, ...) raw values -> (n, d) float32 times ``scale`` (cast, then multiply)."""
    return np.multiply(raw.reshape(raw.shape[0], -1), np.float32(scale), dtype=np.float32)


def _scale_uint8(block: np.ndarray) -> np.ndarray:
    return _scale_rows(block, PIXEL_SCALE)


def scale_images(images: da.Array) -> da.Array:
    """(n, h, w[, c]) uint8 images -> (n, h*w*c) float32 in [0, 1], lazily per chunk."""
    if images.ndim > 2:
        images = images.rechunk({i: -1 for i in range(1, images.ndim)})
    d = int(np.prod(images.shape[1:]))
    return da.map_blocks(
        _scale_uint8, images,
        dtype=np.float32,
        chunks=(images.chunks[0], (d,)),
        drop_axis=list(range(2, images.ndim)) or None,
        meta=np.empty((0, 0), dtype=np.float32),
    )


# --------------------------------------------------------------------------- data sources

#: raw bytes a store-backed task reads at most (several storage chunks or shards are
#: grouped up to this size: fewer, larger tasks cost fewer scheduler round trips).
TASK_MAX_BYTES = 32 << 20
#: in-memory arrays up to this many bytes per thread get one block per thread.
MEMORY_BLOCK_MAX_BYTES = 256 << 20
#: larger in-memory arrays get blocks of about this many bytes, a multiple of the threads.
MEMORY_BLOCK_BYTES = 32 << 20


class NonFiniteError(ValueError):
    """The data hold NaN or infinity (the message names a row)."""


def local_threads() -> int:
    """Threads of dask's local scheduler (``num_workers`` or the CPU count)."""
    import dask

    return int(dask.config.get("num_workers", None) or os.cpu_count() or 1)


def memory_block_rows(n: int, d: int, itemsize: int, threads: int | None = None) -> int:
    """Rows per block for an in-memory array.

    One block per thread while blocks stay under :data:`MEMORY_BLOCK_MAX_BYTES`: every
    task costs a scheduler round trip and a dense (k, d) partial result, so fewer,
    larger tasks are faster (Fashion-MNIST on 2 threads, 2 blocks instead of 6:
    mini-batch step 10.8 vs 12.5 ms, Lloyd pass 20.0 vs 22.6 ms at K=10). Larger arrays
    get ~32 MB blocks, a multiple of the threads.
    """
    threads = threads or local_threads()
    nbytes = n * d * itemsize
    if nbytes < (1 << 20):  # tiny: one block, scheduling would dominate
        return max(n, 1)
    if nbytes <= threads * MEMORY_BLOCK_MAX_BYTES:
        return -(-n // threads)
    by_bytes = max(1, MEMORY_BLOCK_BYTES // max(1, d * itemsize))
    n_blocks = max(threads, -(-n // by_bytes))
    n_blocks = -(-n_blocks // threads) * threads
    return max(1, -(-n // n_blocks))


def _bounds(sizes: Any) -> tuple[int, ...]:
    return (0, *np.cumsum(np.asarray(sizes, dtype=np.int64)).tolist())


def _even_bounds(n: int, rows: int) -> tuple[int, ...]:
    """Block offsets of ``n`` rows in blocks of ``rows`` (the last one shorter)."""
    return _bounds([min(rows, n - s) for s in range(0, n, rows)] or [0])


def float_rows(raw: np.ndarray, scale: float | None, normalize: bool,
               dtype: Any = None) -> np.ndarray:
    """Stored rows (m, ...) as float (m, d): scaled when ``scale``, L2-normalised when
    ``normalize``, cast to ``dtype`` if given (integer rows without a scale stay as
    stored otherwise); a new array unless nothing applies."""
    x = raw.reshape(raw.shape[0], -1)
    x = _scale_rows(x, scale) if scale is not None else x
    if normalize:
        from .kernels.common import normalize_rows

        x = normalize_rows(x)
    return x if dtype is None else x.astype(dtype, copy=False)


class Source:
    """Rows to cluster, block by block: what every pass of the engine maps over.

    A source is built once per call from whatever the user gave (:func:`as_source`) and
    passed down explicitly to the algorithms and the map-reduce layer
    (:mod:`daskmeans._reduce`); nothing is looked up globally. Kernels see each block
    as an (m, d) array: float32/float64 rows, or, when :attr:`scale` is set, the stored
    integer rows (uint8 pixels) that stand for ``float32(rows) * scale`` and that the
    kernels scale block by block (no float32 copy of a chunk).

    Attributes
    ----------
    n, d : rows and features
    dtype : float dtype of the rows as the kernels compute with them
    bounds : (n_blocks + 1,) row offsets of the blocks
    scale : None, or the factor raw stored values are multiplied by
    normalize : rows are L2-normalised when read (spherical k-means)
    weights : (n,) float64 sample weights (numpy), or None
    xsq : ``|x|^2`` of the rows computed once for every pass, or None: (n,) float64
        numpy, or one future per block when the blocks are held in a cluster's workers
        (see :meth:`block_xsq`)
    lazy : results derived from the rows stay lazy (dask) rather than numpy
    """

    lazy = True
    X: Any = None  # the rows, for sources that hold them (numpy or dask)

    def __init__(self, n: int, d: int, dtype: Any, bounds: tuple[int, ...],
                 scale: float | None = None) -> None:
        self.n, self.d, self.dtype = int(n), int(d), np.dtype(dtype)
        self.bounds, self.scale = bounds, scale
        self.normalize = False
        self.weights: Any = None
        self.xsq: np.ndarray | list[Any] | None = None

    @property
    def shape(self) -> tuple[int, int]:
        return (self.n, self.d)

    @property
    def n_blocks(self) -> int:
        return len(self.bounds) - 1

    def offset(self, i: int) -> int:
        return self.bounds[i]

    def block_rows(self, i: int) -> int:
        return self.bounds[i + 1] - self.bounds[i]

    def with_options(self, *, weights: Any = None, normalize: bool = False) -> Source:
        """A copy with sample weights (numpy (n,), or a dask array for a dask source)
        and/or row normalisation."""
        out = copy.copy(self)
        out.weights, out.normalize = weights, normalize
        if normalize:
            out.xsq = None
        return out

    def block(self, i: int) -> Any:
        """What the task of block ``i`` receives (a numpy view, a future, a reader)."""
        raise NotImplementedError

    def block_xsq(self, i: int) -> Any:
        """Block ``i``'s ``|x|^2`` as its task receives it (a numpy slice or a future in
        the worker holding the block), or None when not known."""
        if self.xsq is None:
            return None
        if isinstance(self.xsq, list):
            return self.xsq[i]
        return self.xsq[self.bounds[i]:self.bounds[i + 1]]

    @property
    def nbytes(self) -> int:
        """Bytes of the rows as the source holds them."""
        return self.n * self.d * np.dtype(self.dtype).itemsize

    def to_dask(self) -> da.Array:
        """The rows as an (n, d) float dask array (lazy)."""
        raise NotImplementedError

    def rows_float(self, raw: np.ndarray) -> np.ndarray:
        """A block's rows as the kernels' float dtype (see :func:`float_rows`)."""
        return float_rows(raw, self.scale, self.normalize)


class ArraySource(Source):
    """An in-memory (n, d) float array, in one block per thread (see
    :func:`memory_block_rows`); on a ``distributed`` cluster the blocks are scattered
    to the workers once (:meth:`scatter`) and every pass reuses them."""

    lazy = False

    def __init__(self, X: np.ndarray, *, block_rows: int | None = None) -> None:
        n, d = X.shape
        rows = block_rows or memory_block_rows(n, d, X.dtype.itemsize)
        super().__init__(n, d, X.dtype, _even_bounds(n, rows))
        self.X = X
        self._futures: list[Any] | None = None

    def scatter(self, client: Any, *, xsq: bool = False) -> None:
        """Ship the blocks to the cluster's workers once, spread out (``persist`` of a
        ``from_array`` graph may leave every block on one worker); ``xsq``: also compute
        each block's ``|x|^2`` once, in the worker holding it (as :attr:`xsq`)."""
        threads = max(1, sum(client.nthreads().values()))
        rows = memory_block_rows(self.n, self.d, self.dtype.itemsize, threads)
        self.bounds = _even_bounds(self.n, rows)
        parts = [self.X[a:b] for a, b in itertools.pairwise(self.bounds)]
        # received buffers may be unaligned for float32, which slows every kernel:
        # keep an aligned copy on the worker instead
        self._futures = [client.submit(_aligned, f, pure=False)
                         for f in client.scatter(parts, hash=False)]
        if xsq:
            self.xsq = [client.submit(_block_xsq, f, pure=False) for f in self._futures]

    def block(self, i: int) -> Any:
        if self._futures is not None:
            return self._futures[i]
        return self.X[self.bounds[i]:self.bounds[i + 1]]

    def to_dask(self) -> da.Array:
        return da.from_array(self.X, chunks=(tuple(np.diff(self.bounds).tolist()), -1))


def _aligned(a: np.ndarray) -> np.ndarray:
    return a if a.flags.aligned and a.flags.c_contiguous else np.array(a, order="C")


def _block_xsq(rows: np.ndarray) -> np.ndarray:
    """(m,) float64 ``|x|^2`` of a scattered block, computed in its worker."""
    from .kernels.common import row_norms_sq

    return row_norms_sq(rows, np.float64)


class ZarrSource(Source):
    """A Zarr array (v2 or v3, any store zarr can open, sharded or not, any codec) read
    block by block inside the tasks that use the rows: a local unsharded array of plain
    layout straight from its chunk files (:mod:`daskmeans._chunkfiles`: ~0.55x zarr's
    time per read), anything else through zarr's public API.

    Blocks are whole storage units (shards, else chunks) along the rows, grouped up to
    :data:`TASK_MAX_BYTES`. uint8 arrays are pixels: the kernels take them raw with
    ``scale = 1/255``.

    ``cache``: a Lloyd fit makes tens of passes, and decoding a compressed chunk can
    cost as much as the pass's arithmetic (zstd: ~38 ms per 47 MB on one core), so by
    default (``None``) :class:`daskmeans.KMeans` reads the decoded stored rows (uint8
    stays uint8) into memory once, in parallel tasks, when they take at most
    :data:`daskmeans._reduce.CACHE_FRACTION` of the memory (the workers' on a
    cluster); ``True`` always, ``False`` never (every pass reads the store: data
    larger than memory streams either way).
    """

    def __init__(self, array: zarr.Array, *, scale: float | None = None,
                 threads: int | None = None, cache: bool | None = None) -> None:
        if array.ndim < 2:
            raise StoreError(f"expected an array of rows (n, d, ...), got shape {array.shape}")
        if scale is None and np.dtype(array.dtype) == np.uint8:
            scale = PIXEL_SCALE
        dtype = np.dtype(np.float32) if scale is not None else np.dtype(array.dtype)
        if dtype.kind != "f":
            dtype = np.dtype(np.float64)
        n = int(array.shape[0])
        d = int(np.prod(array.shape[1:], dtype=np.int64))
        self.unit = int((getattr(array, "shards", None) or array.chunks)[0])
        row_bytes = d * np.dtype(array.dtype).itemsize
        per_task = max(1, TASK_MAX_BYTES // max(1, self.unit * row_bytes))
        threads = threads or local_threads()
        # at least one task per thread where the units allow it
        per_task = max(1, min(per_task, -(-n // self.unit) // threads))
        super().__init__(n, d, dtype, (0, n), scale)
        self.array = array
        self.bounds = self._grouped(per_task)
        self.cache = cache
        self.held: list[Any] | None = None
        self.files = ChunkFiles.of(array)  # None: zarr reads the blocks

    @property
    def nbytes(self) -> int:
        """Bytes of the stored rows once decoded (what holding them in memory costs)."""
        return self.n * self.d * np.dtype(self.array.dtype).itemsize

    def wants_cache(self, budget: int) -> bool:
        """Hold the decoded blocks in memory for a fit: ``cache=True``, or by default
        (``cache=None``) when they take at most ``budget`` bytes; never with
        ``cache=False`` (every pass reads the store)."""
        return self.cache if self.cache is not None else self.nbytes <= budget

    def with_held(self, blocks: list[Any], xsq: np.ndarray | list[Any] | None,
                  bounds: tuple[int, ...] | None = None) -> ZarrSource:
        """A copy whose blocks are already read: numpy arrays (local scheduler) or
        futures in a cluster's workers, with the rows' ``|x|^2`` if known. Passes take
        them instead of reading the store (see :func:`daskmeans._reduce.hold`).
        ``bounds``: the held blocks' row offsets when they are not the store's blocks."""
        out = copy.copy(self)
        out.held, out.xsq = list(blocks), xsq
        if bounds is not None:
            if bounds[-1] != self.n or len(bounds) != len(out.held) + 1:
                raise ValueError(f"bounds {bounds[:3]}... do not cover {self.n} rows in "
                                 f"{len(out.held)} blocks")
            out.bounds = tuple(bounds)
        return out

    def _grouped(self, units: int) -> tuple[int, ...]:
        return _even_bounds(self.n, self.unit * units)

    def regroup(self, units: int) -> ZarrSource:
        """A copy whose blocks are ``units`` storage units (shards or chunks) each: one
        unit for mini-batch steps that take whole blocks."""
        out = copy.copy(self)
        out.bounds = self._grouped(units)
        out.held, out.xsq = None, None  # held blocks follow the old bounds
        return out

    def block(self, i: int) -> Any:
        if self.held is not None:
            return self.held[i]
        return ZarrBlock(self.array, self.bounds[i], self.bounds[i + 1], self.files)

    def raw_dask(self) -> da.Array:
        """The stored rows as an (n, d) dask array of the stored dtype (a stack of
        images: one row per image), one block per storage unit."""
        chunks = (self.unit, *self.array.shape[1:])
        if self.files is not None:  # read from the chunk files, as the passes do
            raw = da.from_array(FileRows(self.files), chunks=chunks, lock=False,
                                meta=np.empty((0,) * self.array.ndim, self.files.dtype))
        else:
            raw = zarr_to_dask(self.array, chunks=chunks)
        if raw.ndim == 2:
            return raw
        return da.map_blocks(_image_rows, raw, chunks=(raw.chunks[0], (self.d,)),
                             drop_axis=list(range(2, raw.ndim)), dtype=raw.dtype,
                             meta=np.empty((0, 0), raw.dtype))

    def to_dask(self, raw: da.Array | None = None) -> da.Array:
        """The rows as an (n, d) float dask array; ``raw``: :meth:`raw_dask` if the
        caller has it (so both come from one read of the store)."""
        raw = self.raw_dask() if raw is None else raw
        # float_rows and two scalars, not the bound self.rows_float: dask tokenizes a
        # bound method by pickling its object, held blocks and all (1.2 s of SHA-1 at
        # the end of every held fit of a 2.35 GB store)
        return da.map_blocks(float_rows, raw, self.scale, self.normalize, self.dtype,
                             dtype=self.dtype, meta=np.empty((0, 0), dtype=self.dtype))


class ZarrBlock:
    """Rows ``[start, stop)`` of a Zarr array, read by :meth:`read` inside the task
    that uses them (the array object pickles as its store and path, not its data).
    ``files``: the array's chunk files when they may be read directly."""

    def __init__(self, array: zarr.Array, start: int, stop: int,
                 files: ChunkFiles | None = None) -> None:
        self.array, self.start, self.stop, self.files = array, start, stop, files

    def read(self) -> np.ndarray:
        """The stored rows as (m, d): straight from the chunk files of a local array
        whose layout allows it (:class:`daskmeans._chunkfiles.ChunkFiles`, ~0.55x the
        time), else through ``zarr.Array.__getitem__``; from object storage, a failure
        names the URL and the rows (:func:`_remote_errors`)."""
        url = None if self.files is not None else _array_url(self.array)
        if self.files is not None:
            rows = self.files.read(self.start, self.stop)
        elif url is None:
            rows = np.asarray(self.array[self.start:self.stop])
        else:
            with _remote_errors(url, f"reading rows {self.start}..{self.stop - 1}"):
                rows = np.asarray(self.array[self.start:self.stop])
        return rows.reshape(rows.shape[0], -1)


class DaskSource(Source):
    """A user's (n, d) dask array: passes map over its row blocks with ``da.blockwise``
    and tree-reduce with ``da.reduction`` (the only public route to a dask array's
    blocks that also works with array query planning). Weights may be a dask array."""

    def __init__(self, X: da.Array) -> None:
        if X.numblocks[1] != 1:
            X = X.rechunk({1: -1})
        dtype = X.dtype if X.dtype.kind == "f" else np.dtype(np.float64)
        super().__init__(X.shape[0], X.shape[1], dtype, _bounds(X.chunks[0]))
        self.X = X

    def to_dask(self) -> da.Array:
        X = self.X if self.X.dtype == self.dtype else self.X.astype(self.dtype)
        if self.normalize:
            from .kernels.common import normalize_rows

            X = da.map_blocks(normalize_rows, X, dtype=X.dtype,
                              meta=np.empty((0, 0), X.dtype))
        return X


# ------------------------------------------------------------------ xarray, nodata


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


def grid_rows(data: da.Array) -> da.Array:
    """(*sample dims, features) dask array -> (n, features) rows in C order, lazily:
    rechunked to strips of the first sample dimension (every other dimension in one
    chunk; ~32 MB a block unless the input's chunks are larger), each strip's block
    reshaped into whole rows (no data moves between blocks)."""
    inner = int(np.prod(data.shape[1:])) * data.dtype.itemsize
    first = max(data.chunks[0])
    strip = first if first * inner <= 4 * TASK_MAX_BYTES else max(1, TASK_MAX_BYTES // inner)
    return _flatten(data.rechunk((strip, *(-1 for _ in data.shape[1:]))), data.ndim - 1)


def _flat_block(block: np.ndarray, keep: int) -> np.ndarray:
    return block.reshape((-1, *block.shape[keep:]))


def _image_rows(block: np.ndarray) -> np.ndarray:
    return block.reshape(block.shape[0], -1)


def _flatten(x: da.Array, n_lead: int) -> da.Array:
    """Merge the first ``n_lead`` axes of x (every axis but the first in one chunk) into
    one, block by block (``da.reshape`` is not in dask's array query planning)."""
    tail = x.shape[n_lead:]
    inner = int(np.prod(x.shape[1:n_lead]))
    chunks = (tuple(c * inner for c in x.chunks[0]), *((t,) for t in tail))
    return da.map_blocks(_flat_block, x, keep=n_lead, chunks=chunks, dtype=x.dtype,
                         drop_axis=list(range(1, n_lead)) or None,
                         meta=np.empty((0,) * (1 + len(tail)), x.dtype))


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


def is_zarr(X: Any) -> bool:
    """True for a Zarr array or group."""
    return isinstance(X, zarr.Array | zarr.Group)


def is_url(store: Any) -> bool:
    """True for a URL string (``s3://bucket/data.zarr``): a store fsspec opens, with
    ``storage_options``."""
    return isinstance(store, str) and "://" in store


_is_url = is_url


def open_source(store: Any, split: str | None = None, *,
                storage_options: dict[str, Any] | None = None,
                cache: bool | None = None) -> Source:
    """The data source for a store path or URL, a Zarr array or group, or a store
    written by daskmeans (a dataset's ``split``, default train, else test).

    ``cache``: hold the decoded rows in memory during a fit (``True``), never
    (``False``: every pass reads the store), or when they fit (``None``); see
    :class:`ZarrSource`.

    ``storage_options``: for a URL (``s3://bucket/mnist.zarr``), passed to fsspec
    (s3fs: ``key``, ``secret``, ``token``, ``endpoint_url``, ``anon``, ``client_kwargs``,
    and ``config_kwargs`` for botocore's retries and timeouts, e.g.
    ``{"retries": {"max_attempts": 10, "mode": "standard"}, "connect_timeout": 5,
    "read_timeout": 30}``). This is how an estimator reads a bucket with explicit
    credentials: ``KMeans(...).fit(open_source(url, split, storage_options=...))``.
    A missing bucket or path raises FileNotFoundError, denied access PermissionError,
    an unreachable server :class:`StoreConnectionError`, each naming the URL; so does a
    read that fails during a fit, once the filesystem's retries are spent.

    Examples
    --------
    >>> src = open_source("mnist.zarr", "test")                   # doctest: +SKIP
    >>> src.shape, src.scale                                      # doctest: +SKIP
    ((10000, 784), 0.00392156862745098)
    """
    node = store if is_zarr(store) else _open_node(store, storage_options)
    if isinstance(node, zarr.Group):
        fmt = str(node.attrs.get("format", ""))
        if fmt.startswith("daskmeans-idx"):
            if split is None:
                split = "train" if "train" in node else "test"
            node = _split_array(node, split, "images", str(store))
        elif fmt.startswith("daskmeans-image"):
            raise StoreError(f"{store}: an image store; cluster its pixels with "
                             "daskmeans.quantize or io.image_pixels")
        else:
            node = _get_array(node, "X", str(store))
    if node.ndim == 1:
        raise StoreError(f"{store}: expected a 2-D array (or a stack of images), got "
                         f"shape {node.shape}")
    if node.ndim > 2 and np.dtype(node.dtype) != np.uint8:
        raise StoreError(f"{store}: expected a 2-D array, got shape {node.shape}")
    return ZarrSource(node, cache=cache)


def as_source(X: Any) -> Source:
    """The :class:`Source` of anything the estimators accept: a Source, a numpy array
    (validated by the caller), a dask array, a Zarr array or group, a store path or
    URL."""
    if isinstance(X, Source):
        return X
    if isinstance(X, da.Array):
        return DaskSource(X)
    if isinstance(X, str | os.PathLike | zarr.Array | zarr.Group):
        return open_source(X)
    return ArraySource(np.asarray(X))


def open_dataset(
    store: PathLike | zarr.Group, split: str = "train", *, scale: bool = True,
    storage_options: dict[str, Any] | None = None,
) -> tuple[da.Array, da.Array]:
    """Open one split of a dataset store as dask arrays.

    For clustering, passing the store itself (or :func:`open_source`) to an estimator
    is faster than passing ``X``: the kernels then read the uint8 rows and scale them
    block by block, instead of receiving float32 copies of every chunk.

    ``store`` may be a URL (``s3://bucket/mnist.zarr``), with ``storage_options`` for
    fsspec (s3fs: ``key``, ``secret``, ``endpoint_url``, ``config_kwargs``).

    Returns
    -------
    X : dask array, shape (n, 784), float32 in [0, 1]
        Scaled lazily per chunk from the uint8 store (or the raw (n, 28, 28) uint8
        images when ``scale=False``).
    y : dask array, shape (n,), int64

    Examples
    --------
    >>> X, y = open_dataset("/tmp/mnist.zarr", "test")           # doctest: +SKIP
    >>> float(X.max().compute()), int(y[0].compute())            # doctest: +SKIP
    (1.0, 7)
    """
    group = _open_group(store, storage_options)
    images = _split_array(group, split, "images", str(store))
    labels = _split_array(group, split, "labels", str(store))
    if images.shape[0] != labels.shape[0]:
        raise StoreError(
            f"{store}: {split}/images has {images.shape[0]} rows but "
            f"{split}/labels has {labels.shape[0]}"
        )
    imgs = zarr_to_dask(images)
    y = zarr_to_dask(labels, chunks=(imgs.chunks[0],)).astype(np.int64)
    return (scale_images(imgs) if scale else imgs), y


def open_array(store: PathLike | zarr.Array | zarr.Group, split: str | None = None) -> da.Array:
    """Open whatever daskmeans wrote as an (n, d) float dask array.

    Accepts a dataset store (its ``split``, default train, else test), a blobs store
    from :func:`make_blobs_zarr` (its ``X``), an image store (its pixel view), or a
    plain 2-D (or uint8 image stack) Zarr array. Estimators fit faster from the store
    itself or :func:`open_source` (no float copy of each chunk).
    """
    node = store if is_zarr(store) else _open_node(store)
    if isinstance(node, zarr.Group) and str(node.attrs.get("format", "")).startswith(
            "daskmeans-image"):
        return image_pixels(node)
    return open_source(node, split).to_dask()


def _open_node(store: Any, storage_options: dict[str, Any] | None = None) -> Any:
    """The Zarr array or group at a path or URL (clear errors for what is not one)."""
    if _is_url(store):
        return _open_url(str(store), storage_options)
    if storage_options:
        raise ValueError(f"storage_options apply to URLs, got the local path {store}")
    if not Path(store).exists():
        raise FileNotFoundError(f"{store}: no such Zarr store")
    try:
        return zarr.open(store, mode="r", storage_options=storage_options)
    except Exception as e:  # zarr raises several types for "not a store"
        raise StoreError(f"{store}: not a Zarr store: {e}{_ingest_hint(store)}") from e


def _split_array(group: zarr.Group, split: str, kind: str, where: str) -> zarr.Array:
    """``group[split/kind]`` of a dataset store, with errors naming the split."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if split not in group:
        raise StoreError(f"{where}: split {split!r} is not in this store "
                         f"(available: {[s for s in SPLITS if s in group]})")
    return _get_array(group, f"{split}/{kind}", where)


# --------------------------------------------------------------------------- images


#: Largest image (width x height pixels) daskmeans decodes from a file: 2**32, a
#: 65536 x 65536 image. Pillow's process-wide decompression-bomb guard
#: (``PIL.Image.MAX_IMAGE_PIXELS``) is raised to this cap only while :func:`_load_rgb`
#: decodes, and is left as it was for everyone else.
MAX_IMAGE_PIXELS = 2**32
_PIL_LIMIT_LOCK = threading.Lock()


@contextlib.contextmanager
def _pil_pixel_limit(limit: int) -> Iterator[None]:
    """Set ``PIL.Image.MAX_IMAGE_PIXELS`` to ``limit`` for the block, then restore it.

    Pillow (<= 13) has no per-call limit: ``Image.open`` and some decoders (TIFF, GIF,
    ICO, ...) read that module global. The lock keeps our own concurrent decodes from
    interleaving their set/restore; the old value comes back even on errors.
    """
    from PIL import Image

    with _PIL_LIMIT_LOCK:
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = limit
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def _load_rgb(path: PathLike) -> np.ndarray:
    """Decode an image file to (H, W, 3) uint8 RGB.

    Images up to :data:`MAX_IMAGE_PIXELS` (2**32) pixels are accepted, whatever
    ``PIL.Image.MAX_IMAGE_PIXELS`` is; that global is set to the cap only around the
    open, the size check and the decode, and restored afterwards, even on errors. A
    larger image, or a decompression bomb claiming a larger size, raises
    :class:`ImageFormatError` naming the path and the cap.
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such image")
    cap = MAX_IMAGE_PIXELS
    too_big = (f"{path}: image larger than daskmeans' limit of {cap} pixels "
               "(daskmeans.io.MAX_IMAGE_PIXELS); refusing a possible decompression bomb")
    try:
        with _pil_pixel_limit(cap), Image.open(path) as im:
            w, h = im.size
            if w * h > cap:
                raise ImageFormatError(f"{too_big}: it has {w} x {h} = {w * h} pixels")
            im.load()  # decode under the same limit: some plugins check it again here
            mode = im.mode
            if mode in ("RGB",):
                return np.asarray(im)
            if mode in ("L", "P", "RGBA", "LA", "CMYK", "YCbCr", "I;16", "I", "1"):
                log.info("%s: converting %s image to RGB", path, mode)
                return np.asarray(im.convert("RGB"))
            raise ImageFormatError(f"{path}: unsupported image mode {mode!r}; expected RGB")
    except Image.DecompressionBombError as e:
        raise ImageFormatError(f"{too_big}: {e}") from e
    except UnidentifiedImageError as e:
        raise ImageFormatError(f"{path}: not a readable image: {e}") from e
    except OSError as e:
        raise ImageFormatError(f"{path}: cannot decode image: {e}") from e


def image_to_zarr(
    image: PathLike | np.ndarray,
    store: PathLike,
    *,
    tile: int = DEFAULT_TILE,
    overwrite: bool = True,
) -> Path:
    """Store an RGB image as (H, W, 3) uint8 in square ``tile`` x ``tile`` Zarr chunks.

    ``image`` is a file PIL can read (greyscale, palette and RGBA are converted to RGB)
    or an (H, W, 3) uint8 array. Decoding a compressed file needs its uint8 pixels in
    memory once (PIL decodes whole frames); everything downstream works tile by tile.
    For images too large to decode at once, write tiles directly into a store laid
    out like this one (see :func:`synthetic_image`), then use :func:`open_image`.

    Examples
    --------
    >>> from sklearn.datasets import load_sample_image
    >>> p = image_to_zarr(load_sample_image("china.jpg"), "/tmp/china.zarr")  # doctest: +SKIP
    >>> open_image(p).shape                                        # doctest: +SKIP
    (427, 640, 3)
    """
    if tile < 16:
        raise ValueError(f"tile must be >= 16, got {tile!r}")
    src = str(image) if not isinstance(image, np.ndarray) else "<array>"
    rgb = _load_rgb(image) if not isinstance(image, np.ndarray) else image
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ImageFormatError(
            f"{src}: expected an (H, W, 3) uint8 RGB image, got {rgb.shape} {rgb.dtype}"
        )
    with atomic_dir(store, overwrite=overwrite) as tmp:
        arr = _create_image_store(tmp, rgb.shape[0], rgb.shape[1], tile, source=src)
        for r in range(0, rgb.shape[0], tile):
            arr[r : r + tile] = rgb[r : r + tile]
    return Path(store)


def _create_image_store(path: Path, h: int, w: int, tile: int, source: str) -> zarr.Array:
    root = zarr.open_group(path, mode="w", zarr_format=3)
    root.attrs.update({"format": "daskmeans-image/1", "source": source, "tile": tile})
    return root.create_array("image", shape=(h, w, 3), chunks=(tile, tile, 3), dtype=np.uint8,
                             compressors=_compressor(np.uint8))


def open_image(store: PathLike | zarr.Group) -> da.Array:
    """The stored image as an (H, W, 3) uint8 dask array chunked in tiles."""
    group = _open_group(store)
    return zarr_to_dask(_get_array(group, "image", str(store)))


def image_pixels(store: PathLike | zarr.Group) -> da.Array:
    """Pixel view for clustering: (H*W, 3) float32 in [0, 1], one chunk per tile.

    Pixels come in *tile-major* order: tile after tile (row of tiles by row of tiles),
    each tile flattened row-major. This keeps every task to one tile of decoded float
    data. Use :func:`daskmeans.quantize` (or ``map_blocks`` on :func:`open_image`) to
    map per-pixel results back to (H, W).
    """
    arr = _get_array(_open_group(store), "image", str(store))
    h, w = arr.shape[:2]
    th, tw = arr.chunks[:2]
    tiles = [(r, c) for r in range(0, h, th) for c in range(0, w, tw)]
    sizes = tuple(min(th, h - r) * min(tw, w - c) for r, c in tiles)
    index = da.from_array(np.arange(len(tiles)), chunks=1)
    # bound with partial: dask-expr loses a list keyword of map_blocks ("Missing
    # dependency list-...") when the result is sliced
    read = functools.partial(_tile_pixels, array=arr, tiles=tiles, tile=(th, tw))
    return da.map_blocks(read, index, chunks=(sizes, (3,)), new_axis=1, dtype=np.float32,
                         meta=np.empty((0, 0), np.float32))


def _tile_pixels(i: np.ndarray, *, array: zarr.Array, tiles: list[tuple[int, int]],
                 tile: tuple[int, int]) -> np.ndarray:
    r, c = tiles[int(i[0])]
    return _scale_rows(np.asarray(array[r:r + tile[0], c:c + tile[1]]).reshape(-1, 3),
                       PIXEL_SCALE)


def store_blocks(x: da.Array, array: zarr.Array) -> da.Array:
    """A lazy (n_blocks,) array whose computation writes ``x`` into ``array`` block by
    block (``da.store`` is not available with dask's array query planning). ``x`` is
    rechunked to ``array``'s chunks first, so no two tasks write the same Zarr chunk."""
    x = x.rechunk(array.chunks)
    return da.map_blocks(_store_block, x, array=array, dtype=np.int8,
                         chunks=tuple((1,) * n for n in x.numblocks),
                         meta=np.empty((0,) * x.ndim, np.int8))


def _store_block(block: np.ndarray, *, array: zarr.Array, block_info: Any = None) -> np.ndarray:
    loc = block_info[0]["array-location"]
    where = tuple(slice(a, b) for a, b in loc)
    url = _array_url(array)
    if url is None:
        array[where] = block
    else:
        with _remote_errors(url, f"writing rows {loc[0][0]}..{loc[0][1] - 1}"):
            array[where] = block
    return np.zeros((1,) * block.ndim, np.int8)


def zarr_to_dask(array: zarr.Array, chunks: Any = None) -> da.Array:
    """A Zarr array as a dask array (``da.from_array``: ``da.from_zarr`` is not
    available with dask's array query planning)."""
    return da.from_array(array, chunks=chunks or array.chunks, lock=False,
                         meta=np.empty((0,) * array.ndim, dtype=array.dtype))


# --------------------------------------------------------------------------- rasters


class Raster:
    """A multi-band raster read from Zarr, lazily: ``data`` is a dask array of shape
    ``(*sample dims, band)`` (the band axis moved last), with the names, coordinates
    and attributes needed to write results aligned with it.

    Attributes
    ----------
    data : dask array (*shape, n_bands)
    dims : sample dimension names (e.g. ``("y", "x")``)
    feature_dim : the band dimension's name
    bands : list of str, band names (coordinate values, variable names, or indices)
    coords : dict name -> 1-D numpy coordinate of a sample dimension (when stored)
    attrs : the array's (and group's) attributes, e.g. a CRS
    chunks : the input's chunks over the sample dimensions
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
    >>> r = open_raster("scene.zarr", "band")                      # doctest: +SKIP
    >>> r.data.shape, r.dims, r.bands                              # doctest: +SKIP
    ((1024, 1024, 6), ('y', 'x'), ['B1', 'B2', 'B3', 'B4', 'B5', 'B6'])
    """
    node = store if is_zarr(store) else _open_node(store, storage_options)
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


def write_labels(labels: da.Array, raster: Raster, out: Any, *,
                 attrs: dict[str, Any] | None = None,
                 storage_options: dict[str, Any] | None = None) -> tuple[zarr.Array, da.Array]:
    """Create ``out`` (a Zarr v3 group, readable by ``xarray.open_zarr``) holding a
    ``labels`` array over the raster's sample dimensions, chunked like the input, its
    coordinates copied; returns the array and the lazy write (compute it once)."""
    root = zarr.open_group(out, mode="w", zarr_format=3, storage_options=storage_options)
    root.attrs.update({k: v for k, v in raster.attrs.items() if _jsonable(v)})
    arr = root.create_array("labels", shape=raster.shape, dtype=np.int32,
                            chunks=tuple(c[0] for c in raster.chunks),
                            dimension_names=raster.dims, fill_value=-1)
    arr.attrs.update({k: v for k, v in {**raster.attrs, **(attrs or {})}.items()
                      if _jsonable(v)})
    for d, values in raster.coords.items():
        c = root.create_array(d, shape=values.shape,
                              dtype=str if values.dtype.kind in "UOT" else values.dtype,
                              chunks=values.shape, dimension_names=(d,))
        c[:] = values
    return arr, store_blocks(labels, arr)


def _jsonable(v: Any) -> bool:
    import json

    try:
        json.dumps(v)
    except (TypeError, ValueError):
        return False
    return True


def synthetic_scene(store: PathLike, height: int, width: int, *, bands: int = 6,
                    n_classes: int = 5, nodata: float = 0.0, tile: int = 512,
                    noise: float = 0.02, random_state: int = 0,
                    overwrite: bool = True) -> Path:
    """Write a multi-band scene with known classes, tile by tile (a few tiles in memory).

    The group holds ``reflectance`` (band, y, x) float32 — each pixel the spectrum of
    its class plus Gaussian noise — with ``nodata`` outside a tilted swath (the
    borders of a satellite scene), ``classes`` (y, x) int32 (-1 outside the swath),
    coordinates ``band``, ``y``, ``x``, and a CRS attribute; xarray opens it as a
    Dataset. Classes are the Voronoi cells of 4 seeds per class.

    Examples
    --------
    >>> p = synthetic_scene("/tmp/scene.zarr", 512, 512)             # doctest: +SKIP
    """
    import dask

    rng = np.random.default_rng(random_state)
    spectra = rng.uniform(0.05, 0.9, size=(n_classes, bands)).astype(np.float32)
    seeds = rng.uniform(0, 1, size=(4 * n_classes, 2)) * (height, width)
    seed_class = np.repeat(np.arange(n_classes), 4)
    with atomic_dir(store, overwrite=overwrite) as tmp:
        root = zarr.open_group(tmp, mode="w", zarr_format=3)
        root.attrs.update({"crs": "EPSG:32633", "title": "daskmeans synthetic scene",
                           "nodata": nodata})
        refl = root.create_array("reflectance", shape=(bands, height, width),
                                 dtype=np.float32, chunks=(bands, tile, tile),
                                 dimension_names=("band", "y", "x"), fill_value=nodata,
                                 compressors=_compressor(np.float32))
        refl.attrs.update({"nodata": nodata, "units": "reflectance"})
        cls = root.create_array("classes", shape=(height, width), dtype=np.int32,
                                chunks=(tile, tile), dimension_names=("y", "x"),
                                fill_value=-1)
        for name, values in (("band", np.array([f"B{i + 1}" for i in range(bands)])),
                             ("y", 5.0 + 10.0 * np.arange(height)),
                             ("x", 500_000.0 + 10.0 * np.arange(width))):
            c = root.create_array(name, shape=values.shape,
                                  dtype=str if values.dtype.kind == "U" else values.dtype,
                                  chunks=values.shape, dimension_names=(name,))
            c[:] = values

        def write(r0: int, c0: int) -> None:
            h, w = min(tile, height - r0), min(tile, width - c0)
            yy, xx = np.mgrid[r0 : r0 + h, c0 : c0 + w]
            d2 = (yy[..., None] - seeds[:, 0]) ** 2 + (xx[..., None] - seeds[:, 1]) ** 2
            label = seed_class[np.argmin(d2, axis=-1)].astype(np.int32)
            t = np.random.default_rng([random_state, r0, c0])
            pix = spectra[label] + t.normal(0, noise, size=(h, w, bands)).astype(np.float32)
            # a swath tilted by ~8 degrees, 80% of the width: nodata outside it
            centre = width / 2 + (yy - height / 2) * 0.14
            outside = np.abs(xx - centre) > 0.4 * width
            pix[outside] = nodata
            label[outside] = -1
            refl[:, r0 : r0 + h, c0 : c0 + w] = np.moveaxis(pix, -1, 0)
            cls[r0 : r0 + h, c0 : c0 + w] = label

        dask.compute(*[dask.delayed(write)(r, c) for r in range(0, height, tile)
                       for c in range(0, width, tile)])
    return Path(store)


# --------------------------------------------------------------------------- synthetic


def _synthetic_tile(src: np.ndarray, r0: int, c0: int, h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng([seed, r0, c0])
    sh, sw = src.shape[:2]
    rows = (np.arange(r0, r0 + h) + rng.integers(sh)) % sh
    cols = (np.arange(c0, c0 + w) + rng.integers(sw)) % sw
    tile = src[rows][:, cols].astype(np.int16)
    tile += rng.integers(-8, 9, size=tile.shape, dtype=np.int16)
    return np.clip(tile, 0, 255).astype(np.uint8)


def synthetic_image(
    store: PathLike, height: int, width: int, *, source: np.ndarray | None = None,
    tile: int = DEFAULT_TILE, random_state: int = 0, overwrite: bool = True,
) -> Path:
    """Write a large RGB test image tile by tile: a photo repeated with random shifts
    and +-8 noise (scikit-learn's china.jpg by default). Memory: a few tiles.

    Examples
    --------
    >>> p = synthetic_image("/tmp/big.zarr", 20_000, 20_000)  # 400 megapixels  # doctest: +SKIP
    """
    import dask

    if source is None:
        from sklearn.datasets import load_sample_image

        source = load_sample_image("china.jpg")
    with atomic_dir(store, overwrite=overwrite) as tmp:
        arr = _create_image_store(tmp, height, width, tile, source="synthetic")

        def write(r0: int, c0: int) -> None:
            h, w = min(tile, height - r0), min(tile, width - c0)
            arr[r0 : r0 + h, c0 : c0 + w] = _synthetic_tile(source, r0, c0, h, w, random_state)

        dask.compute(*[dask.delayed(write)(r, c) for r in range(0, height, tile)
                       for c in range(0, width, tile)])
    return Path(store)



def _blob_block(
    block_id: int, start: int, rows: int, centers: np.ndarray, std: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng([seed, 1, block_id])
    y = rng.integers(0, centers.shape[0], size=rows)
    X = rng.standard_normal((rows, centers.shape[1]), dtype=np.float32)
    X *= np.float32(std)
    X += centers[y].astype(np.float32)
    return X, y.astype(np.int32)


def blob_centers(n_centers: int, n_features: int, seed: int, box: float = 10.0) -> np.ndarray:
    """The centres :func:`make_blobs_zarr` uses for a seed (uniform in [-box, box])."""
    rng = np.random.default_rng([seed, 0])
    return rng.uniform(-box, box, size=(n_centers, n_features))


def make_blobs_zarr(
    store: PathLike,
    n_samples: int,
    n_features: int,
    *,
    centers: int = 8,
    cluster_std: float = 1.0,
    chunk_rows: int = 100_000,
    random_state: int = 0,
    overwrite: bool = True,
) -> Path:
    """Write Gaussian blobs straight to a Zarr group, chunk by chunk, in parallel.

    The group holds ``X`` (n_samples, n_features) float32 and ``y`` (n_samples,) int32
    and the true centres in ``centers``. Block ``i`` is generated from
    ``default_rng([random_state, 1, i])`` so the data depend only on the seed and
    ``chunk_rows``; peak memory is a few chunks whatever ``n_samples`` is.

    Examples
    --------
    >>> p = make_blobs_zarr("/tmp/blobs.zarr", 1_000_000, 16, centers=5)  # doctest: +SKIP
    >>> open_array(p).shape                                            # doctest: +SKIP
    (1000000, 16)
    """
    if n_samples < 1 or n_features < 1:
        raise ValueError(
            f"n_samples and n_features must be >= 1, got {n_samples!r}, {n_features!r}"
        )
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be >= 1, got {chunk_rows!r}")
    import dask

    C = blob_centers(centers, n_features, random_state)
    with atomic_dir(store, overwrite=overwrite) as tmp:
        root = zarr.open_group(tmp, mode="w", zarr_format=3)
        root.attrs.update(
            {
                "format": "daskmeans-blobs/1",
                "n_samples": n_samples,
                "n_features": n_features,
                "centers": centers,
                "cluster_std": cluster_std,
                "random_state": random_state,
            }
        )
        xa = root.create_array(
            "X", shape=(n_samples, n_features), chunks=(chunk_rows, n_features),
            dtype=np.float32, compressors=_compressor(np.float32),
        )
        ya = root.create_array("y", shape=(n_samples,), chunks=(chunk_rows,), dtype=np.int32,
                               compressors=_compressor(np.int32))
        ca = root.create_array("centers", shape=C.shape, dtype=np.float64)
        ca[...] = C

        def write(i: int, start: int, rows: int) -> int:
            X, y = _blob_block(i, start, rows, C, cluster_std, random_state)
            xa[start : start + rows] = X
            ya[start : start + rows] = y
            return rows

        tasks = [
            dask.delayed(write)(i, s, min(chunk_rows, n_samples - s))
            for i, s in enumerate(range(0, n_samples, chunk_rows))
        ]
        # Bounded parallelism: at most ~2 blocks per thread in flight.
        total = sum(dask.compute(*tasks))
        assert total == n_samples
    return Path(store)
