"""Sparse CSR matrices in Zarr: written chunk by chunk, read a block of rows at a time.

The layout is anndata's on-disk encoding of a CSR matrix (``encoding-type``
``"csr_matrix"``, ``encoding-version`` ``"0.1.0"``): the de facto convention for sparse
matrices in Zarr, which ``anndata.io.read_elem`` and ``anndata.io.sparse_dataset`` read
as they are. The binsparse specification (GraphBLAS, version 0.1) was considered: it is
an unofficial draft whose binary containers are HDF5 and NetCDF, with no Zarr container
defined yet, so it is not followed here. daskmeans adds two things outside anndata's
keys, which anndata ignores: an array of each row chunk's first nonzero, and a
``daskmeans`` attribute:

.. code-block:: text

    matrix.zarr/                   Zarr v3 group
      zarr.json                    attributes:
                                     encoding-type: "csr_matrix"
                                     encoding-version: "0.1.0"
                                     shape: [n_rows, n_features]
                                     daskmeans: {format: "daskmeans-csr/1",
                                                 rows_per_chunk: R, nnz: N}
      indptr        (n_rows + 1,)  int64, chunks of R rows
      indices       (N,)           int32 (int64 past 2**31 - 1 features), chunks of C
      data          (N,)           float32 or float64, chunks of C (as indices)
      chunk_indptr  (n_chunks + 1,) int64: indptr at every R-th row and N at the end

Rows ``r0:r1`` (a whole number of row chunks) read ``indptr[r0:r1]`` (their own
chunks only), their nonzero range ``chunk_indptr[r0 // R]`` to
``chunk_indptr[ceil(r1 / R)]`` (held by the reader), and only the chunks of
``indices`` and ``data`` that range overlaps: row blocks read independently. Within a
row, column indices are sorted and unique (scipy's canonical CSR).

:func:`write_csr` writes a scipy.sparse matrix, or any iterable of CSR row blocks
(a corpus vectorised a batch at a time), whole chunks at a time, so memory holds at
most a chunk of each array beyond the block being written. It is atomic on a local
disk and writes the group's metadata last in object storage
(:func:`~daskmeans.io.stores.write_group`), and refuses an existing target unless
``overwrite=True``. :func:`open_csr` opens a store for reading (a path, a URL with
``storage_options``, or a Zarr group); damaged stores raise
:class:`~daskmeans.io.errors.StoreError` (metadata) or
:class:`~daskmeans.io.errors.ChunkDecodeError` (a chunk that does not decode, or whose
values contradict the layout), naming the store, the array and the chunk.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import zarr

from .chunkfiles import chunk_error, store_name
from .errors import DataFormatError, StoreError
from .stores import (
    PathLike,
    default_compressor,
    get_array,
    is_zarr,
    open_node,
    read_checked,
    remote_errors,
    write_group,
)

__all__ = [
    "CSR_ENCODING",
    "CSR_FORMAT",
    "DEFAULT_NNZ_PER_CHUNK",
    "DEFAULT_ROWS_PER_CHUNK",
    "CSRStore",
    "is_csr_group",
    "open_csr",
    "write_csr",
]

#: the value of the ``daskmeans`` attribute's ``format`` key
CSR_FORMAT = "daskmeans-csr/1"
#: anndata's encoding attributes of a CSR matrix group
CSR_ENCODING = {"encoding-type": "csr_matrix", "encoding-version": "0.1.0"}
#: nonzeros per chunk of ``indices`` and ``data`` by default (4 MiB of float32 values)
DEFAULT_NNZ_PER_CHUNK = 1 << 20
#: row chunks hold this many nonzeros on average by default (when the writer knows
#: the matrix's density; else :data:`DEFAULT_ROWS_PER_CHUNK` rows)
_NNZ_PER_ROW_CHUNK = 1 << 18
#: rows per chunk of ``indptr`` by default when the writer gets row blocks
DEFAULT_ROWS_PER_CHUNK = 4096


def is_csr_group(node: Any) -> bool:
    """True for a Zarr group holding a CSR matrix in the layout of this module (or
    anndata's ``csr_matrix`` encoding, which it extends)."""
    if not isinstance(node, zarr.Group):
        return False
    ours: Any = node.attrs.get("daskmeans")
    return node.attrs.get("encoding-type") == "csr_matrix" or (
        isinstance(ours, dict) and ours.get("format") == CSR_FORMAT)


# --------------------------------------------------------------------------- writing


def _as_csr(block: Any, n_features: int | None, dtype: Any) -> Any:
    """A row block as canonical scipy CSR (sorted, unique indices) of ``dtype``."""
    import scipy.sparse as sp

    if not sp.issparse(block):
        raise TypeError(f"expected scipy.sparse row blocks, got {type(block).__name__}")
    block = sp.csr_matrix(block, dtype=dtype)
    if n_features is not None and block.shape[1] != n_features:
        raise ValueError(f"a row block has {block.shape[1]} columns, the first had "
                         f"{n_features}")
    if not block.has_canonical_format:
        block = block.copy()
        block.sum_duplicates()  # sorts the indices too
    return block


def _row_blocks(X: Any, rows: int) -> Iterable[Any]:
    for start in range(0, X.shape[0], rows):
        yield X[start:start + rows]


class _ChunkedColumn:
    """A growing 1-D Zarr array written a whole chunk at a time (the remainder when
    :meth:`flush` ends the write)."""

    def __init__(self, array: zarr.Array, chunk: int, where: str) -> None:
        self.array, self.chunk, self.where = array, chunk, where
        self.pending: list[np.ndarray] = []
        self.count = 0

    def add(self, values: np.ndarray) -> None:
        self.pending.append(values)
        self.count += len(values)
        if self.count >= self.chunk:
            whole = self.count - self.count % self.chunk
            buf = np.concatenate(self.pending)
            self._write(buf[:whole])
            self.pending, self.count = [buf[whole:]], self.count - whole

    def flush(self) -> None:
        if self.count:
            self._write(np.concatenate(self.pending))
        self.pending, self.count = [], 0

    def _write(self, values: np.ndarray) -> None:
        if "://" in self.where:
            with remote_errors(self.where, "writing a chunk"):
                self.array.append(values)
        else:
            self.array.append(values)


def write_csr(X: Any, store: PathLike, *, n_features: int | None = None,
              rows_per_chunk: int | None = None,
              nnz_per_chunk: int = DEFAULT_NNZ_PER_CHUNK, dtype: Any = None,
              attrs: dict[str, Any] | None = None,
              storage_options: dict[str, Any] | None = None,
              overwrite: bool = False) -> PathLike:
    """Write a sparse matrix as a CSR Zarr store (the layout of this module), chunk by
    chunk.

    Parameters
    ----------
    X : scipy.sparse matrix or array, or an iterable of them
        The rows: one matrix (any sparse format; written ``rows_per_chunk`` rows at a
        time), or its row blocks in order (e.g. a corpus vectorised a batch at a time),
        all with the same number of columns. Duplicate entries are summed and column
        indices sorted, as scipy's canonical CSR.
    store : path or URL
        Where the group is written; an existing target is refused
        (:class:`~daskmeans.io.errors.OutputExistsError`) unless ``overwrite``.
    n_features : int, optional
        The number of columns, checked against every block (by default the first
        block's).
    rows_per_chunk : int, optional
        Rows per chunk of ``indptr``: the unit a reader's row blocks are made of. By
        default about 256 Ki nonzeros a chunk for a matrix (from its density), else
        4096 rows.
    nnz_per_chunk : int
        Nonzeros per chunk of ``indices`` and ``data``.
    dtype : float dtype, optional
        Of ``data``: by default the first block's when float32 or float64, else
        float64.
    attrs : dict, optional
        Extra attributes of the group (e.g. where the data came from).
    storage_options : dict, optional
        For a URL, passed to fsspec.

    Returns
    -------
    ``store``.

    Examples
    --------
    >>> import pathlib, shutil, tempfile
    >>> import scipy.sparse as sp
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> X = sp.random(10, 6, density=0.3, format="csr", dtype="float32", random_state=0)
    >>> p = write_csr(X, d / "x.zarr", rows_per_chunk=4, nnz_per_chunk=8)
    >>> m = open_csr(p)
    >>> m.shape, m.n_chunks, (m.read_rows(4, 10) != X[4:10]).nnz
    ((10, 6), 3, 0)
    >>> shutil.rmtree(d)
    """
    import scipy.sparse as sp

    if nnz_per_chunk < 1:
        raise ValueError(f"nnz_per_chunk must be >= 1, got {nnz_per_chunk!r}")
    if sp.issparse(X):
        if rows_per_chunk is None:
            per_row = max(1.0, X.nnz / max(1, X.shape[0]))
            rows_per_chunk = int(min(max(1, X.shape[0]), max(1, _NNZ_PER_ROW_CHUNK // per_row)))
        n_features = X.shape[1] if n_features is None else n_features
        blocks: Iterable[Any] = _row_blocks(sp.csr_matrix(X), rows_per_chunk)
        dtype = X.dtype if dtype is None else dtype
    else:
        blocks = X
    rows_per_chunk = rows_per_chunk or DEFAULT_ROWS_PER_CHUNK
    if rows_per_chunk < 1:
        raise ValueError(f"rows_per_chunk must be >= 1, got {rows_per_chunk!r}")
    first = True
    with write_group(store, storage_options=storage_options, overwrite=overwrite) as group:
        n = nnz = 0
        for block in blocks:
            if first:
                dtype = np.dtype(dtype if dtype is not None else block.dtype)
                dtype = dtype if dtype in (np.float32, np.float64) else np.dtype(np.float64)
                n_features = block.shape[1] if n_features is None else n_features
                cols = _create(group, n_features, rows_per_chunk, nnz_per_chunk, dtype)
                cols["indptr"].add(np.zeros(1, np.int64))
                first = False
            csr = _as_csr(block, n_features, dtype)
            cols["indptr"].add(csr.indptr[1:].astype(np.int64) + nnz)
            cols["indices"].add(csr.indices.astype(cols["indices"].array.dtype, copy=False))
            cols["data"].add(csr.data)
            n, nnz = n + csr.shape[0], nnz + csr.nnz
        if first:
            raise ValueError("no rows to write: the matrix (or its blocks) is empty")
        for col in cols.values():
            col.flush()
        indptr = cols["indptr"].array
        starts = np.asarray(indptr[::rows_per_chunk], dtype=np.int64)
        ends = starts if n % rows_per_chunk == 0 else np.append(starts, nnz)
        chunk_indptr = group.create_array("chunk_indptr", shape=(len(ends),), dtype=np.int64,
                                          chunks=(max(1, len(ends)),))
        chunk_indptr[:] = ends
        group.attrs.update(attrs or {})
        group.attrs.update({**CSR_ENCODING, "shape": [n, int(n_features or 0)],
                            "daskmeans": {"format": CSR_FORMAT, "nnz": nnz,
                                          "rows_per_chunk": rows_per_chunk}})
    return store


def _create(group: Any, d: int, rows: int, nnz_chunk: int, dtype: np.dtype[Any]
            ) -> dict[str, _ChunkedColumn]:
    """The three growing arrays of a new CSR group."""
    index = np.int32 if d <= np.iinfo(np.int32).max else np.int64
    out = {}
    # fill values no valid store holds: a missing chunk (which zarr reads as the fill
    # value) is then caught by the reader's checks instead of reading as zeros
    for name, kind, chunk, fill in (("indptr", np.int64, rows, -1),
                                    ("indices", index, nnz_chunk, -1),
                                    ("data", dtype, nnz_chunk, np.nan)):
        array = group.create_array(name, shape=(0,), dtype=kind, chunks=(chunk,),
                                   fill_value=fill, compressors=default_compressor(kind))
        out[name] = _ChunkedColumn(array, chunk, f"{group.root}/{name}")
    return out


# --------------------------------------------------------------------------- reading


class CSRStore:
    """A CSR matrix in a Zarr group (the layout of this module), read a block of rows at
    a time. Pickles as its arrays' stores and paths (for dask tasks), plus the small
    ``chunk_indptr``.

    Attributes
    ----------
    shape : (n_rows, n_features)
    nnz : int
    dtype : the values' dtype (float32 or float64)
    rows_per_chunk : rows per chunk of ``indptr``: row blocks are made of these
    chunk_indptr : (n_chunks + 1,) int64, the first nonzero of every row chunk
    where : the store's path or URL, for messages
    """

    def __init__(self, group: zarr.Group, where: str | None = None) -> None:
        self.where = where or _group_name(group)
        attrs: dict[str, Any] = dict(group.attrs)
        try:
            n, d = (int(v) for v in attrs["shape"])
        except (KeyError, TypeError, ValueError) as e:
            raise StoreError(f"{self.where}: a CSR group needs a 'shape' attribute "
                             f"[n_rows, n_features], got {attrs.get('shape')!r}") from e
        self.shape = (n, d)
        self.indptr = get_array(group, "indptr", self.where)
        self.indices = get_array(group, "indices", self.where)
        self.data = get_array(group, "data", self.where)
        if self.indptr.shape != (n + 1,) or self.indices.shape != self.data.shape:
            raise StoreError(f"{self.where}: indptr {self.indptr.shape}, indices "
                             f"{self.indices.shape} and data {self.data.shape} do not "
                             f"describe a CSR matrix of shape {self.shape}")
        if np.dtype(self.data.dtype).kind not in "fiu" or np.dtype(
                self.indices.dtype).kind not in "iu":
            raise StoreError(f"{self.where}: data {self.data.dtype} and indices "
                             f"{self.indices.dtype}: expected numbers and integers")
        self.nnz = int(self.data.shape[0])
        self.dtype = np.dtype(self.data.dtype)
        self.rows_per_chunk = int(self.indptr.chunks[0])
        self.chunk_indptr = self._chunk_indptr(group)

    def _chunk_indptr(self, group: zarr.Group) -> np.ndarray:
        """``chunk_indptr`` checked (or, for a group anndata wrote, read from
        ``indptr``: one value per row chunk)."""
        n_chunks = -(-self.shape[0] // self.rows_per_chunk)
        if "chunk_indptr" in group:
            array = get_array(group, "chunk_indptr", self.where)
            out = read_checked(array, slice(None), "reading chunk_indptr").astype(np.int64)
            name = "chunk_indptr"
        else:
            out = read_checked(self.indptr, slice(None, None, self.rows_per_chunk),
                               "reading indptr").astype(np.int64)
            out = out if len(out) == n_chunks + 1 else np.append(out, self.nnz)
            name = "indptr"
        if (len(out) != n_chunks + 1 or out[0] != 0 or out[-1] != self.nnz
                or np.any(np.diff(out) < 0)):
            raise StoreError(f"{self.where}: array {name!r}: the row chunks' first "
                             f"nonzeros {out[:4].tolist()}... are not {n_chunks + 1} "
                             f"non-decreasing offsets from 0 to nnz={self.nnz}")
        return out

    @property
    def n_chunks(self) -> int:
        return len(self.chunk_indptr) - 1

    @property
    def nbytes(self) -> int:
        """Bytes of the matrix in memory as scipy CSR."""
        return (self.nnz * (self.dtype.itemsize + np.dtype(self.indices.dtype).itemsize)
                + (self.shape[0] + 1) * 8)

    def chunk_nnz(self) -> np.ndarray:
        """(n_chunks,) nonzeros of every row chunk."""
        return np.diff(self.chunk_indptr)

    def read_rows(self, start: int, stop: int) -> Any:
        """Rows ``start:stop`` as a scipy ``csr_matrix`` (``start`` on a row chunk's
        first row, ``stop`` on one's or the matrix's end: the unit of a task), values
        in the stored dtype, indices int32 (or int64 where needed).

        Only the chunks of ``indptr`` of these rows and the chunks of ``indices`` and
        ``data`` their nonzeros overlap are read. A chunk that does not decode, or
        whose values contradict the layout (pointers that decrease or leave the
        block's range, a column index out of range), raises
        :class:`~daskmeans.io.errors.ChunkDecodeError` naming the store, the array and
        the chunk."""
        import scipy.sparse as sp

        R = self.rows_per_chunk
        n, d = self.shape
        if not (0 <= start <= stop <= n) or start % R or (stop % R and stop != n):
            raise ValueError(f"rows {start}:{stop} are not whole row chunks of {R} rows "
                             f"of a matrix of {n} rows")
        doing = f"reading rows {start}..{stop - 1}"
        c0, c1 = start // R, -(-stop // R)
        p0, p1 = int(self.chunk_indptr[c0]), int(self.chunk_indptr[c1])
        ptr = read_checked(self.indptr, slice(start, stop), doing).astype(np.int64)
        ptr = np.append(ptr, p1)
        steps = np.diff(ptr)
        if stop > start and (ptr[0] != p0 or np.any(steps < 0)):
            bad = start + (0 if ptr[0] != p0 else int(np.flatnonzero(steps < 0)[0]))
            raise self._damaged(self.indptr, bad // R,
                                f"row pointers {ptr[:3].tolist()}... do not run from "
                                f"{p0} to {p1} without decreasing (chunk_indptr says "
                                "where these rows' nonzeros are)")
        cols = read_checked(self.indices, slice(p0, p1), doing)
        vals = read_checked(self.data, slice(p0, p1), doing)
        self._check_nonzeros(cols, vals, ptr - p0, p0)
        index = np.int32 if max(d, p1 - p0) <= np.iinfo(np.int32).max else np.int64
        return sp.csr_matrix((vals, cols.astype(index, copy=False),
                              (ptr - p0).astype(index)), shape=(stop - start, d))

    def _check_nonzeros(self, cols: np.ndarray, vals: np.ndarray, ptr: np.ndarray,
                        p0: int) -> None:
        """Column indices in range and increasing within each row, values not NaN
        (the fill value of ``data``, which a missing chunk reads as)."""
        d = self.shape[1]
        bad_col = (cols < 0) | (cols >= d)
        if cols.size > 1:  # a row's indices increase: sorted and unique
            step = np.diff(cols) <= 0
            step[ptr[1:-1][(ptr[1:-1] > 0) & (ptr[1:-1] < len(cols))] - 1] = False
            bad_col[1:] |= step
        if bad_col.any():
            i = int(np.flatnonzero(bad_col)[0])
            raise self._damaged(self.indices, (p0 + i) // int(self.indices.chunks[0]),
                                f"column index {int(cols[i])} at nonzero {p0 + i} is out "
                                f"of range for {d} features or not increasing within "
                                "its row (a missing chunk reads as -1)")
        nan = np.isnan(vals) if vals.dtype.kind == "f" else np.zeros(len(vals), bool)
        if nan.any():
            i = int(np.flatnonzero(nan)[0])
            raise self._damaged(self.data, (p0 + i) // int(self.data.chunks[0]),
                                f"value at nonzero {p0 + i} is NaN: the chunk is missing "
                                "(it reads as the fill value, NaN) or the data hold NaN")

    def _damaged(self, array: zarr.Array, chunk: int, problem: str) -> DataFormatError:
        key = str(array.metadata.encode_chunk_key((chunk,)))
        return chunk_error(self.where, array.path, key, problem)

    def to_scipy(self) -> Any:
        """The whole matrix as a scipy ``csr_matrix`` (read in one go)."""
        return self.read_rows(0, self.shape[0])

    def __dask_tokenize__(self) -> Any:
        from dask.base import tokenize

        return ("daskmeans.CSRStore", self.where, tokenize(self.indptr), self.shape,
                self.nnz)


def _group_name(group: zarr.Group) -> str:
    """Where ``group`` is (its directory or URL, and its path inside the store)."""
    root = store_name(group)  # type: ignore[arg-type]
    return f"{root}/{group.path}" if group.path else root


def open_csr(store: PathLike | zarr.Group, *,
             storage_options: dict[str, Any] | None = None) -> CSRStore:
    """The CSR matrix at a path, URL (with ``storage_options`` for fsspec) or Zarr
    group, for reading block by block; a :class:`~daskmeans.io.errors.StoreError`
    naming it when it is not one, or its metadata is damaged."""
    node = store if is_zarr(store) else open_node(store, storage_options)
    where = str(store) if not is_zarr(store) else None
    if not isinstance(node, zarr.Group) or not is_csr_group(node):
        raise StoreError(f"{where or store}: not a CSR matrix store (a Zarr group with "
                         "encoding-type 'csr_matrix'; daskmeans ingest --npz or "
                         "daskmeans.io.write_csr writes one)")
    return CSRStore(node, where)
