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
import errno
import logging
import os
import shutil
import struct
import uuid
import zlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import zarr

from ..pixels import PIXEL_SCALE, scale_rows
from .chunkfiles import ChunkFiles, FileRows, chunk_error, store_name
from .errors import ChunkDecodeError, StoreConnectionError, StoreError, output_exists
from .idx import find_idx_files

__all__ = [
    "CREDENTIALS_HINT",
    "LISTED_ARRAYS",
    "PIXEL_SCALE",
    "RETRY_HINT",
    "ROOT_METADATA",
    "SCALE_ATTR",
    "TASK_MAX_BYTES",
    "CheckedArray",
    "GroupWriter",
    "PathLike",
    "array_paths",
    "array_url",
    "atomic_dir",
    "atomic_file",
    "check_output",
    "default_compressor",
    "ensure_writable_dir",
    "get_array",
    "is_url",
    "is_zarr",
    "metadata_errors",
    "new_file_mode",
    "open_group",
    "open_node",
    "read_checked",
    "remote_errors",
    "scale_from_attrs",
    "scale_rows",
    "select_array",
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


#: the array attribute that records the factor from stored values to features.
SCALE_ATTR = "scale_factor"


def scale_from_attrs(attrs: Mapping[str, Any], where: str = "the array") -> float | None:
    """The factor from stored values to features that an array's attributes record
    (:data:`SCALE_ATTR`), or None: the values are the features.

    An ``add_offset`` other than 0 is refused (a shift of every feature does not change
    a clustering, but the centres would be in other units than the ones the store
    says), naming ``where``.

    Examples
    --------
    >>> scale_from_attrs({"scale_factor": 1 / 255}) == 1 / 255
    True
    >>> scale_from_attrs({}) is None
    True
    """
    if float(attrs.get("add_offset", 0) or 0) != 0:
        raise StoreError(f"{where}: add_offset={attrs['add_offset']!r} is not "
                                  "supported; pass scale= explicitly or remove the offset")
    scale = attrs.get(SCALE_ATTR)
    if scale is None:
        return None
    scale = float(scale)
    if not np.isfinite(scale) or scale <= 0:
        raise StoreError(f"{where}: {SCALE_ATTR}={scale!r} must be a positive "
                                  "finite number")
    return scale


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


#: the root metadata files of a Zarr store (v3, then v2)
ROOT_METADATA = ("zarr.json", ".zgroup", ".zarray")


def _is_local_store(path: Path) -> bool:
    return path.is_dir() and any((path / m).is_file() for m in ROOT_METADATA)


def _check_local(dest: Path, overwrite: bool, store: bool) -> None:
    """Whether ``dest`` may be (re)written: refused when it exists, unless
    ``overwrite``; even then never over a directory that is not a Zarr store when a
    store is written (``store``), nor over a directory when a file is."""
    if not (dest.exists() or dest.is_symlink()):
        return
    if not overwrite:
        raise output_exists(dest)
    if store and not (_is_local_store(dest) or dest.is_file()):
        raise output_exists(dest, "exists and is not a Zarr store: refusing to delete it "
                                  "to write a store there")
    if not store and dest.is_dir():
        raise output_exists(dest, "is a directory: refusing to replace it with a file")


def _disk_full(dest: Path, e: OSError) -> OSError:
    """The error of a write that ran out of space (or quota), naming ``dest`` and saying
    that nothing was replaced."""
    return OSError(e.errno, f"{dest}: {os.strerror(e.errno or errno.ENOSPC)} while writing it "
                            f"({e}); nothing was replaced: whatever was at {dest} is kept")


_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


@contextlib.contextmanager
def atomic_dir(dest: PathLike, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary directory (hidden, beside ``dest``) that replaces ``dest`` only
    if the block succeeds.

    An existing ``dest`` is refused (:class:`~daskmeans.io.errors.OutputExistsError`)
    unless ``overwrite``; even then, a directory that is not a Zarr store is never
    deleted. The new store is renamed into place: readers of ``dest`` see the old store
    or the whole new one. Replacing takes two renames (the old store aside, the new one
    in), so a process killed between them leaves no ``dest`` and the old store under
    ``.NAME.old-*`` beside it; a write that fails or is killed earlier leaves ``dest``
    as it was (a killed one also leaves its ``.NAME.tmp-*`` directory behind). A full
    disk raises OSError(ENOSPC) naming ``dest`` and saying that nothing was replaced.
    """
    dest = Path(dest)
    _check_local(dest, overwrite, store=True)
    parent = ensure_writable_dir(dest.parent)
    tmp = parent / f".{dest.name}.tmp-{uuid.uuid4().hex[:12]}"
    try:
        yield tmp
        _check_local(dest, overwrite, store=True)  # nothing appeared meanwhile
        if dest.exists() or dest.is_symlink():
            trash = parent / f".{dest.name}.old-{uuid.uuid4().hex[:12]}"
            os.replace(dest, trash)
            os.replace(tmp, dest)
            if trash.is_dir() and not trash.is_symlink():
                shutil.rmtree(trash, ignore_errors=True)
            else:
                trash.unlink(missing_ok=True)
        else:
            os.replace(tmp, dest)
    except OSError as e:
        if e.errno in _FULL:
            raise _disk_full(dest, e) from e
        raise
    finally:
        _remove_temporary(tmp)


def _remove_temporary(tmp: Path, attempts: int = 20) -> None:
    """Delete a failed write's temporary directory. Tasks still running when another
    failed may write a last chunk into it after a first delete (dask raises the first
    error at once), so it is deleted again until it stays gone (a bounded wait)."""
    import time

    for _ in range(attempts):
        if not tmp.exists():
            return
        shutil.rmtree(tmp, ignore_errors=True)
        time.sleep(0.05)
    if tmp.exists():
        log.warning("%s: could not delete this temporary directory of a failed write", tmp)


@contextlib.contextmanager
def atomic_file(dest: PathLike, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path (hidden, beside ``dest``) that replaces the file ``dest``
    in one rename only if the block succeeds (for files: models, figures, tables).

    An existing ``dest`` is refused (:class:`~daskmeans.io.errors.OutputExistsError`)
    unless ``overwrite``, and a directory is never replaced. The new file gets the
    permissions ``open()`` would give it (:func:`new_file_mode`). A failed, killed or
    out-of-space write leaves ``dest`` as it was; a full disk raises OSError(ENOSPC)
    naming ``dest``.
    """
    dest = Path(dest)
    _check_local(dest, overwrite, store=False)
    parent = ensure_writable_dir(dest.parent)
    tmp = parent / f".{dest.name}.tmp-{uuid.uuid4().hex[:12]}{dest.suffix}"
    try:
        yield tmp
        _check_local(dest, overwrite, store=False)
        os.chmod(tmp, new_file_mode())
        os.replace(tmp, dest)
    except OSError as e:
        if e.errno in _FULL:
            raise _disk_full(dest, e) from e
        raise
    finally:
        tmp.unlink(missing_ok=True)


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
            raise output_exists(url)
        metas = [m for m in ROOT_METADATA if fs.exists(f"{path}/{m}")]
        if not metas:
            raise output_exists(url, "exists and is not a Zarr store: refusing to delete "
                                     "it to write a store there")
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
                 overwrite: bool = False) -> str:
    """Copy a local Zarr store to a URL (object storage), its root metadata last.

    Parameters
    ----------
    local : path
        A Zarr store on disk (v2 or v3).
    url : str
        Destination, e.g. ``s3://bucket/mnist.zarr``; a store already there is refused
        (:class:`~daskmeans.io.errors.OutputExistsError`) unless ``overwrite``, and
        anything there that is not a Zarr store is never deleted.
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


def check_output(dest: PathLike, *, overwrite: bool = False, store: bool = True,
                 storage_options: dict[str, Any] | None = None) -> None:
    """Refuse, before any work, what the writers here would refuse at ``dest`` (a path
    or URL; a Zarr store when ``store``, else a file): anything already there unless
    ``overwrite``, and even then a directory (or object-storage prefix) that is not a
    Zarr store. Raises :class:`~daskmeans.io.errors.OutputExistsError`."""
    if is_url(dest):
        url = str(dest).rstrip("/")
        _check_remote(*_url_fs(url, storage_options), url, overwrite)
    else:
        _check_local(Path(dest), overwrite, store=store)


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
                overwrite: bool = False) -> Iterator[GroupWriter]:
    """Write a new Zarr v3 group at a local path or a URL, its arrays created with
    :meth:`GroupWriter.create_array` and filled by the block (in dask tasks, on any
    scheduler: the arrays pickle as their store and path).

    On a local disk the group is written into :func:`atomic_dir` and renamed into place:
    readers see the old store or the whole new one, never a part.

    Whatever is at ``dest`` is refused (:class:`~daskmeans.io.errors.OutputExistsError`)
    unless ``overwrite``; even then, what is not a Zarr store is never deleted.

    In object storage (``s3://...``) there is no rename, and this is the guarantee:

    - a store already at ``dest`` is deleted first (its root metadata first), when
      ``overwrite``;
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


@contextlib.contextmanager
def metadata_errors(where: str) -> Iterator[None]:
    """Damaged Zarr metadata (an array's or a group's ``zarr.json`` truncated, corrupt
    or empty: zarr raises the JSON parser's error) as :class:`StoreError` naming
    ``where``."""
    import json

    try:
        yield
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise StoreError(f"{where}: damaged Zarr metadata (a zarr.json in it is truncated, "
                         f"corrupt or empty: {type(e).__name__}: {e})") from e


def get_array(group: zarr.Group, key: str, where: str) -> zarr.Array:
    """``group[key]``, a :class:`StoreError` naming ``where`` when it is not an array
    (or its metadata is damaged)."""
    try:
        with metadata_errors(f"{where}: array {key!r}"):
            node = group[key]
    except KeyError:
        node = None
    if not isinstance(node, zarr.Array):
        raise StoreError(f"{where}: store has no array {key!r}")
    return node


#: arrays a "has no array" error lists at most
LISTED_ARRAYS = 20


def array_paths(group: zarr.Group) -> list[str]:
    """The path of every array in ``group`` and its subgroups (``"a/b"``), sorted."""
    with metadata_errors(str(getattr(group, "store_path", group))):
        return sorted(name for name, node in group.members(max_depth=None)
                      if isinstance(node, zarr.Array))


def _listing(group: zarr.Group) -> str:
    """The arrays of ``group`` as an error lists them: path, shape and dtype."""
    paths = array_paths(group)
    if not paths:
        return "it holds no array"
    arrays = [_array_at(group, p) for p in paths[:LISTED_ARRAYS]]
    shown = [f"{p} {tuple(a.shape)} {a.dtype}" for p, a in zip(paths, arrays, strict=False)]
    more = len(paths) - len(shown)
    return "it holds " + ", ".join(shown) + (f" and {more} more" if more > 0 else "")


def _array_at(group: zarr.Group, path: str) -> zarr.Array:
    """``group[path]``, known to be an array."""
    node = group[path]
    assert isinstance(node, zarr.Array)
    return node


def select_array(node: zarr.Array | zarr.Group, array: str | None, where: str,
                 default: str = "X") -> zarr.Array:
    """The array of rows in a store's root ``node``: the root array itself; in a group,
    the array at path ``array`` (``"vectors"``, ``"embeddings/train"``, an xarray
    Dataset's variable); without ``array``, ``default`` if the group has it, else the
    group's only array of two or more dimensions. Anything else is a
    :class:`StoreError` naming ``where`` and listing the arrays the group holds.

    Examples
    --------
    >>> g = zarr.open_group(zarr.storage.MemoryStore(), mode="w")
    >>> _ = g.create_array("vectors", shape=(4, 3), dtype="f4")
    >>> _ = g.create_array("ids", shape=(4,), dtype="i8")
    >>> select_array(g, None, "mem").path, select_array(g, "vectors", "mem").shape
    ('vectors', (4, 3))
    >>> select_array(g, "nope", "mem")  # doctest: +NORMALIZE_WHITESPACE
    Traceback (most recent call last):
    ...
    daskmeans.io.errors.StoreError: mem: no array 'nope';
        it holds ids (4,) int64, vectors (4, 3) float32
    """
    if isinstance(node, zarr.Array):
        if array is not None and array.strip("/") not in ("", node.basename):
            raise StoreError(f"{where}: a Zarr array, not a group, so it holds no array "
                             f"{array!r}: leave out array= (--array)")
        return node
    if array is not None:
        key = array.strip("/")
        try:
            with metadata_errors(f"{where}: array {key!r}"):
                found = node[key] if key else None
        except KeyError:
            found = None
        if not isinstance(found, zarr.Array):
            what = "a group, not an array" if isinstance(found, zarr.Group) else "no array"
            raise StoreError(f"{where}: {what} {key!r}; {_listing(node)}")
        return found
    if isinstance(node.get(default), zarr.Array):
        return _array_at(node, default)
    rows = [p for p in array_paths(node) if _array_at(node, p).ndim >= 2]
    if len(rows) == 1:
        return _array_at(node, rows[0])
    raise StoreError(f"{where}: no array {default!r}, and {len(rows)} arrays of rows to "
                     "choose from: name one with array= (on the command line, --array of "
                     f"fit and predict); {_listing(node)}")


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
    available with dask's array query planning) whose tasks raise
    :class:`~daskmeans.io.errors.ChunkDecodeError` naming the store, the array and the
    chunk for a chunk that does not decode. A local array of plain layout is read
    straight from its chunk files (:mod:`daskmeans.io.chunkfiles`, which also catches
    a truncated Blosc chunk that Blosc itself would decode into garbage); anything else
    through zarr (:class:`CheckedArray`)."""
    chunks = chunks or array.chunks
    meta = np.empty((0,) * array.ndim, dtype=array.dtype)
    files = ChunkFiles.of(array)
    if files is not None:
        return da.from_array(FileRows(files), chunks=chunks, lock=False,
                             meta=meta.astype(files.dtype))
    return da.from_array(CheckedArray(array), chunks=chunks, lock=False, meta=meta)


#: what zarr's codecs raise for a chunk they cannot decode (Blosc: RuntimeError; zstd,
#: gzip, numcodecs' own checks: ValueError and its kin)
_DECODE_ERRORS = (RuntimeError, ValueError, TypeError, EOFError, struct.error, zlib.error)


class CheckedArray:
    """A Zarr array as the array-like ``da.from_array`` slices, each read of which turns
    a codec's error into :class:`~daskmeans.io.errors.ChunkDecodeError` naming the
    store, the array and the chunk (found by reading the request's storage units one
    by one once a read has failed); in object storage, transport failures name the
    URL (:func:`remote_errors`)."""

    def __init__(self, array: zarr.Array) -> None:
        self.array = array
        self.shape, self.dtype, self.ndim = array.shape, array.dtype, array.ndim

    def __dask_tokenize__(self) -> Any:
        from dask.base import tokenize

        return ("daskmeans.CheckedArray", tokenize(self.array))

    def __getitem__(self, key: Any) -> np.ndarray:
        return read_checked(self.array, key)


def read_checked(array: zarr.Array, key: Any, doing: str = "reading a block") -> np.ndarray:
    """``array[key]`` with the errors of :class:`CheckedArray` (``doing`` says what, in
    a transport error's message)."""
    url = array_url(array)
    try:
        if url is None:
            return np.asarray(array[key])
        with remote_errors(url, doing):
            return np.asarray(array[key])
    except ChunkDecodeError:
        raise
    except _DECODE_ERRORS as e:
        bad = _find_bad_unit(array, key)
        if bad is None:
            # every unit read alone: a read of one unit names it all the same (a codec
            # may read past a truncated buffer, and then fail or not); of several, not
            # a damaged chunk
            units = _units(array, key)
            if units is None or len(units) != 1:
                raise
            bad = str(array.metadata.encode_chunk_key(units[0]))
        raise chunk_error(store_name(array), array.path, bad,
                          f"cannot decode: {type(e).__name__}: {e}") from e


def _units(array: zarr.Array, key: Any, limit: int = 4096) -> list[tuple[int, ...]] | None:
    """The grid coordinates of the storage units (shards, else chunks) ``key`` reads, or
    None when ``key`` is not plain slices and integers or spans more than ``limit``."""
    import itertools

    key = key if isinstance(key, tuple) else (key,)
    key = key + (slice(None),) * (array.ndim - len(key))
    if len(key) != array.ndim or not all(isinstance(k, slice | int | np.integer) for k in key):
        return None
    unit = tuple(array.shards or array.chunks)
    ranges = []
    for k, n, u in zip(key, array.shape, unit, strict=True):
        lo, hi = (k.indices(n)[:2] if isinstance(k, slice) else (int(k) % n, int(k) % n + 1))
        ranges.append(range(lo // u, max(lo, hi - 1) // u + 1))
    if np.prod([len(r) for r in ranges]) > limit:
        return None
    return list(itertools.product(*ranges))


def _find_bad_unit(array: zarr.Array, key: Any) -> str | None:
    """The key of the first storage unit (shard, else chunk) within ``key`` that fails to
    read alone, or None (also when ``key`` is not plain slices or spans too many)."""
    units = _units(array, key)
    if units is None:
        return None
    unit = tuple(array.shards or array.chunks)
    for coords in units:
        region = tuple(slice(c * u, min((c + 1) * u, n))
                       for c, u, n in zip(coords, unit, array.shape, strict=True))
        try:
            array[region]
        except _DECODE_ERRORS:
            return str(array.metadata.encode_chunk_key(coords))
    return None
