"""Whole row chunks of a Zarr array on a local disk, read straight from their files.

A streamed fit reads every chunk of its store in every pass, in the scheduler's own
threads. Through ``zarr.Array.__getitem__`` a chunk's bytes and its decoding each hop
through zarr's event loop and thread pool; reading the files and decoding them with
numcodecs (the library zarr decodes with) in the task's own thread costs markedly less.

Why the project keeps this reader next to zarr's, and not the maintained alternative:
``zarrs``, the Rust codec pipeline for zarr-python, was measured against it on the same
store, reads and streamed fits interleaved (``scripts/benchmark_zarr_read.py``; results
in ``benchmarks/results/zarr-read-*.json``). It is faster than zarr's own pipeline but
well short of reading the chunk files in the task's thread, for block reads and for
whole streamed fits alike, so the rule "use the library if it is within about 10%" keeps
this one. Re-run that script when zarr or zarrs change; if ``zarrs`` comes within reach,
open arrays under its pipeline (it travels with a pickled array) and delete this module.

This reader is used only where the layout is unambiguous from the array's public
metadata and the Zarr spec; :meth:`ChunkFiles.of` returns None for anything else, which
zarr then reads: object storage, sharding, filters, chunking across the columns,
column-major or byte-swapped data, a codec other than Blosc, Zstd or none.
"""

from __future__ import annotations

import struct
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from .errors import ChunkDecodeError

__all__ = ["ChunkDecodeError", "ChunkFiles", "FileRows", "chunk_error", "store_name"]


def store_name(array: zarr.Array) -> str:
    """Where ``array``'s store is, for messages: its directory, its URL, else zarr's
    description of the store."""
    store = array.store
    if isinstance(store, zarr.storage.LocalStore):
        return str(store.root)
    if isinstance(store, zarr.storage.FsspecStore):
        return str(store.fs.unstrip_protocol(store.path)).rstrip("/")
    return str(store)


def chunk_error(store: str, array: str, key: str, problem: str) -> ChunkDecodeError:
    """The :class:`ChunkDecodeError` of chunk ``key`` of ``array`` in ``store``."""
    return ChunkDecodeError(f"{store}: array {array or '/'!r}, chunk {key}: {problem}")


def _numcodecs_codec(array: zarr.Array) -> tuple[bool, Any]:
    """(eligible, the numcodecs codec decoding a chunk or None for raw bytes)."""
    import numcodecs
    from zarr.codecs import BloscCodec, BytesCodec, ZstdCodec

    compressors = tuple(array.compressors)
    if array.metadata.zarr_format == 3:
        serializer = array.serializer
        if not isinstance(serializer, BytesCodec):
            return False, None
        if serializer.endian is not None and serializer.endian.value != sys.byteorder:
            if np.dtype(array.dtype).itemsize > 1:
                return False, None
        if not compressors:
            return True, None
        if len(compressors) != 1:
            return False, None
        kinds: dict[type, Any] = {BloscCodec: numcodecs.Blosc, ZstdCodec: numcodecs.Zstd}
        codec = kinds.get(type(compressors[0]))
        return (codec is not None), (codec() if codec is not None else None)
    if array.order != "C" or not np.dtype(array.dtype).isnative:
        return False, None
    if not compressors:
        return True, None
    if len(compressors) != 1 or not isinstance(compressors[0], (numcodecs.Blosc, numcodecs.Zstd)):
        return False, None
    return True, compressors[0]


@dataclass(frozen=True)
class ChunkFiles:
    """Where the row chunks of a local, unsharded Zarr array are and how they decode.

    Made by :meth:`of` (None where zarr must read); :meth:`read` returns rows
    ``[start, stop)`` as ``(stop - start, *shape[1:])`` in the stored dtype, equal to
    ``array[start:stop]`` (chunks never written are the fill value).

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     z = zarr.create_array(d + "/a.zarr", shape=(5, 2), chunks=(2, 2), dtype="u1",
    ...                           fill_value=9)
    ...     z[:4] = np.arange(8, dtype="u1").reshape(4, 2)
    ...     files = ChunkFiles.of(zarr.open_array(d + "/a.zarr", mode="r"))
    ...     print(files.read(1, 5).tolist())
    [[2, 3], [4, 5], [6, 7], [9, 9]]
    """

    directory: str
    metadata: Any  # the array's zarr metadata: chunk keys (Zarr spec key encoding)
    codec: Any  # a numcodecs codec, None for uncompressed chunks
    chunk_rows: int
    shape: tuple[int, ...]
    dtype: np.dtype[Any]
    fill_value: Any
    store: str = ""  # the store's directory and the array's path in it, for messages
    array_path: str = ""

    @classmethod
    def of(cls, array: zarr.Array) -> ChunkFiles | None:
        """The chunk files of ``array``, or None when zarr must read it (see the
        module's docstring for what qualifies)."""
        store = array.store
        if not isinstance(store, zarr.storage.LocalStore) or array.shards is not None:
            return None
        if tuple(array.filters) or tuple(array.chunks[1:]) != tuple(array.shape[1:]):
            return None
        dtype = np.dtype(array.dtype)
        if dtype.kind not in "biuf":
            return None
        ok, codec = _numcodecs_codec(array)
        if not ok:
            return None
        fill = array.fill_value if array.fill_value is not None else 0
        return cls(str(Path(store.root) / array.path), array.metadata, codec,
                   int(array.chunks[0]), tuple(int(s) for s in array.shape),
                   dtype.newbyteorder("="), fill, str(store.root), array.path)

    @property
    def _chunk_shape(self) -> tuple[int, ...]:
        return (self.chunk_rows, *self.shape[1:])

    def _key(self, c: int) -> str:
        return str(self.metadata.encode_chunk_key((c,) + (0,) * (len(self.shape) - 1)))

    def _path(self, c: int) -> str:
        return f"{self.directory}/{self._key(c)}"

    def read(self, start: int, stop: int) -> np.ndarray:
        """Rows ``[start, stop)`` (``0 <= start <= stop <= n``) as a new
        ``(stop - start, *shape[1:])`` array of the stored dtype."""
        if not 0 <= start <= stop <= self.shape[0]:
            raise ValueError(f"rows [{start}, {stop}) are not within the array's "
                             f"{self.shape[0]} rows")
        out = np.empty((stop - start, *self.shape[1:]), self.dtype)
        cr = self.chunk_rows
        for c in range(start // cr, (stop - 1) // cr + 1 if stop > start else 0):
            lo, hi = c * cr, (c + 1) * cr
            s, e = max(lo, start), min(hi, stop)
            dest = out[s - start:e - start]
            path = self._path(c)
            try:
                with open(path, "rb") as f:
                    raw = f.read()
            except FileNotFoundError:
                dest[...] = self.fill_value
                continue
            if s == lo and e == hi:
                self._decode(raw, dest, c)
            else:  # the rows wanted are part of the chunk (its last rows, or a block edge)
                full = np.empty(self._chunk_shape, self.dtype)
                self._decode(raw, full, c)
                dest[...] = full[s - lo:e - lo]
        return out

    def _decode(self, raw: bytes, dest: np.ndarray, c: int) -> None:
        """Decode chunk ``c`` (whole) into ``dest`` (contiguous, the chunk's shape)."""
        import numcodecs

        def damaged(problem: str) -> ChunkDecodeError:
            return chunk_error(self.store or self.directory, self.array_path, self._key(c),
                               problem)

        size = dest.nbytes
        if isinstance(self.codec, numcodecs.Blosc):
            # the Blosc header: bytes 4-7 the decoded size, 12-15 the compressed size
            # (little-endian); Blosc decodes a truncated buffer without a word, so the
            # sizes are checked here
            if len(raw) < 16:
                raise damaged(f"cannot decode: {len(raw)} bytes is shorter than a Blosc "
                              "header (an empty or truncated file)")
            got, stored = struct.unpack_from("<I", raw, 4)[0], struct.unpack_from("<I", raw, 12)[0]
            if got != size:
                raise damaged(f"chunk decodes to {got} bytes, expected {size}")
            if stored != len(raw):
                raise damaged(f"cannot decode: the file holds {len(raw)} bytes, its Blosc "
                              f"header says {stored} (truncated or corrupt)")
            try:
                self.codec.decode(raw, out=dest.reshape(-1).view(np.uint8))
            except (RuntimeError, ValueError) as e:
                raise damaged(f"cannot decode: {e}") from e
            return
        try:
            data = raw if self.codec is None else self.codec.decode(raw)
        except (RuntimeError, ValueError) as e:
            raise damaged(f"cannot decode: {e}") from e
        flat = np.frombuffer(data, np.uint8)
        if flat.size != size:
            raise damaged(f"chunk decodes to {flat.size} bytes, expected {size}")
        dest.reshape(-1).view(np.uint8)[...] = flat


class FileRows:
    """:class:`ChunkFiles` as the array-like ``da.from_array`` slices (whole-row
    blocks, as :meth:`daskmeans.engine.source.ZarrSource.raw_dask` asks for them): lazy graphs
    over a store (``predict``, evaluation) read the files as the fit's passes do."""

    def __init__(self, files: ChunkFiles) -> None:
        self.files = files
        self.shape, self.dtype, self.ndim = files.shape, files.dtype, len(files.shape)

    def __getitem__(self, key: Any) -> np.ndarray:
        """``files`` as an (n, ...) array indexed by ``key``: only the rows it spans
        are read."""
        key = key if isinstance(key, tuple) else (key,)
        rows, rest = key[0], key[1:]
        n = self.shape[0]
        if isinstance(rows, slice) and (rows.step or 1) > 0:
            start, stop, step = rows.indices(n)
            stop = max(start, stop)
            out = self.files.read(start, stop)[::step]
            return out[(slice(None), *rest)] if rest else out
        if isinstance(rows, int | np.integer) and -n <= rows < n:
            i = int(rows) % n
            return self.files.read(i, i + 1)[(0, *rest)]
        return self.files.read(0, n)[key]  # other indexes: not how dask asks for blocks
