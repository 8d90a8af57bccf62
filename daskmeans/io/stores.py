"""Zarr stores: where they live (a local path or an object-storage URL), how they are
written (atomically on a local disk, root metadata last in object storage), opened and
read as dask arrays, and the compressor daskmeans writes with.

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
import logging
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import zarr

from ..pixels import PIXEL_SCALE, scale_rows
from .errors import StoreConnectionError, StoreError
from .idx import find_idx_files

__all__ = [
    "CREDENTIALS_HINT",
    "PIXEL_SCALE",
    "RETRY_HINT",
    "TASK_MAX_BYTES",
    "GroupWriter",
    "PathLike",
    "array_url",
    "atomic_dir",
    "default_compressor",
    "ensure_writable_dir",
    "get_array",
    "is_url",
    "is_zarr",
    "new_file_mode",
    "open_group",
    "open_node",
    "remote_errors",
    "scale_rows",
    "staged",
    "store_blocks",
    "upload_store",
    "write_group",
    "zarr_to_dask",
]

log = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]

#: raw bytes a store-backed task reads at most (several storage chunks or shards are
#: grouped up to this size: fewer, larger tasks cost fewer scheduler round trips).
TASK_MAX_BYTES = 32 << 20


def default_compressor(dtype: np.dtype[Any] | type) -> Any:
    """The codec daskmeans writes ``dtype`` with: Blosc-LZ4, which decompresses much
    faster than zstd for slightly larger chunks (a fit decodes every chunk in every
    pass it streams); byte shuffle for multi-byte types."""
    from zarr.codecs import BloscCodec, BloscShuffle

    itemsize = np.dtype(dtype).itemsize
    shuffle = BloscShuffle.noshuffle if itemsize == 1 else BloscShuffle.shuffle
    return BloscCodec(cname="lz4", clevel=5, shuffle=shuffle, typesize=itemsize)


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
def remote_errors(url: str, doing: str) -> Iterator[None]:
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

    with remote_errors(url, "opening the filesystem"):
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


def array_url(array: zarr.Array) -> str | None:
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
        with remote_errors(url, "opening the store"):
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
    with remote_errors(url, "checking what is stored there"):
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
    with remote_errors(url, "deleting the old store"):
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
        with remote_errors(url, "uploading the store"):
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
def staged(store: PathLike, storage_options: dict[str, Any] | None,
            overwrite: bool) -> Iterator[Path]:
    """A local directory to write a whole store into: :func:`atomic_dir` for a path; for
    a URL a temporary directory uploaded by :func:`upload_store` once the block succeeds
    (for writers that run in this process and whose data fit on the local disk)."""
    if not is_url(store):
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
        return remote_errors(where, doing) if is_url(where) else contextlib.nullcontext()

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
    The same code writes to ``"s3://bucket/labels.zarr"`` with ``storage_options``:

    >>> import pathlib, shutil, tempfile, zarr
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> with write_group(d / "labels.zarr") as g:
    ...     g.attrs["model"] = "m.npz"
    ...     g.create_array("labels", shape=(3,), dtype="int32", chunks=(2,))[:] = [0, 1, 1]
    >>> zarr.open_group(d / "labels.zarr", mode="r")["labels"][:].tolist()
    [0, 1, 1]
    >>> shutil.rmtree(d)
    """
    if not is_url(dest):
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


# --------------------------------------------------------------------------- opening


def open_group(store: PathLike | zarr.Group,
               storage_options: dict[str, Any] | None = None) -> zarr.Group:
    """The Zarr group at a path or URL (or ``store`` itself), with errors naming it:
    FileNotFoundError, :class:`StoreError` for what is not a group (pointing to
    ``daskmeans ingest`` for a folder of IDX files)."""
    if isinstance(store, zarr.Group):
        return store
    if is_url(store):
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
        if not is_url(path) and Path(path).is_dir() and find_idx_files(Path(path)):
            return (f". It holds MNIST-format IDX files: convert them first with "
                    f"'daskmeans ingest mnist --source {path} --out data.zarr'")
    except OSError:
        pass
    return ""


def get_array(group: zarr.Group, key: str, where: str) -> zarr.Array:
    """``group[key]``, a :class:`StoreError` naming ``where`` when it is not an array."""
    try:
        node = group[key]
    except KeyError:
        node = None
    if not isinstance(node, zarr.Array):
        raise StoreError(f"{where}: store has no array {key!r}")
    return node


def is_zarr(X: Any) -> bool:
    """True for a Zarr array or group."""
    return isinstance(X, zarr.Array | zarr.Group)


def is_url(store: Any) -> bool:
    """True for a URL string (``s3://bucket/data.zarr``): a store fsspec opens, with
    ``storage_options``."""
    return isinstance(store, str) and "://" in store



def open_node(store: Any, storage_options: dict[str, Any] | None = None) -> Any:
    """The Zarr array or group at a path or URL (clear errors for what is not one)."""
    if is_url(store):
        return _open_url(str(store), storage_options)
    if storage_options:
        raise ValueError(f"storage_options apply to URLs, got the local path {store}")
    if not Path(store).exists():
        raise FileNotFoundError(f"{store}: no such Zarr store")
    try:
        return zarr.open(store, mode="r", storage_options=storage_options)
    except Exception as e:  # zarr raises several types for "not a store"
        raise StoreError(f"{store}: not a Zarr store: {e}{_ingest_hint(store)}") from e

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
    url = array_url(array)
    if url is None:
        array[where] = block
    else:
        with remote_errors(url, f"writing rows {loc[0][0]}..{loc[0][1] - 1}"):
            array[where] = block
    return np.zeros((1,) * block.ndim, np.int8)


def zarr_to_dask(array: zarr.Array, chunks: Any = None) -> da.Array:
    """A Zarr array as a dask array (``da.from_array``: ``da.from_zarr`` is not
    available with dask's array query planning)."""
    return da.from_array(array, chunks=chunks or array.chunks, lock=False,
                         meta=np.empty((0,) * array.ndim, dtype=array.dtype))

