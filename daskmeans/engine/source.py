"""The data source: the rows to cluster, block by block, as every pass of the engine
maps over them.

A :class:`Source` is built once per call from whatever the user gave (:func:`as_source`:
a numpy array, a dask array, a Zarr array or group, a store path or URL) and passed down
explicitly; nothing is looked up globally. Its kinds:

- :class:`ArraySource`: an in-memory array, in one block per thread (held in the
  workers once on a cluster);
- :class:`ZarrSource`: a Zarr array read block by block inside the tasks
  (:class:`ZarrBlock`), or its blocks held in memory for a fit;
- :class:`DaskSource`: a user's dask array, over its own row chunks;
- :class:`SparseSource`: in-memory ``scipy.sparse`` CSR rows;
- :class:`CSRStoreSource`: a CSR matrix in Zarr (:mod:`daskmeans.io.sparse`), read a
  block of rows at a time (:class:`CSRBlock`), or held for a fit;
- :class:`SparseDaskSource`: a dask array whose blocks are ``scipy.sparse`` matrices.

A block's rows start at ``offsets[i]`` and end at ``offsets[i + 1]`` (its *offsets*;
"bounds" in daskmeans means the Hamerly/Yinyang distance bounds only). A block is
what the kernels take: a dense (m, d) array, or, for a sparse source
(:attr:`Source.sparse`), a CSR matrix of rows ``offsets[i]..offsets[i + 1]``
(``scipy.sparse.csr_matrix`` or ``csr_array`` with no column stored twice in a row,
its columns in any order: :func:`csr_rows`), whose ``|x|^2`` the source computes
once per fit (:attr:`Source.xsq`) like a dense one's. The kernels
(:mod:`daskmeans.kernels.sparse`) need nothing else.
:func:`open_source`, :func:`open_dataset` and :func:`open_array` open what
:mod:`daskmeans.io` writes as a source or as dask arrays.
"""

from __future__ import annotations

import copy
import itertools
import os
import threading
from collections import OrderedDict
from typing import Any

import dask.array as da
import numpy as np
import scipy.sparse as sp
import zarr

from ..io.chunkfiles import ChunkFiles, FileRows
from ..io.errors import StoreError
from ..io.images import image_pixels
from ..io.mnist import images_scale, scale_images, split_array
from ..io.sparse import CSRStore, is_csr_group
from ..io.stores import (
    TASK_MAX_BYTES,
    PathLike,
    is_url,
    is_zarr,
    open_group,
    open_node,
    read_checked,
    scale_from_attrs,
    scale_rows,
    select_array,
    zarr_to_dask,
)
from ..kernels.sparse import duplicate_free
from .schedule import compute, local_threads, memory_block_rows

__all__ = ["ArraySource", "CSRBlock", "CSRStoreSource", "DaskSource", "NonFiniteError", "Source",
           "SparseDaskSource", "SparseSource", "ZarrBlock", "ZarrSource", "as_source",
           "block_offsets", "csr_rows", "even_offsets", "float_rows", "is_sparse_dask",
           "is_url", "is_zarr", "open_array", "open_dataset", "open_source", "opened_source",
           "reads_raw_uint8"]


class NonFiniteError(ValueError):
    """The data hold NaN or infinity (the message names a row)."""


def block_offsets(sizes: Any) -> tuple[int, ...]:
    """The (n_blocks + 1,) row offsets of consecutive blocks of ``sizes`` rows."""
    return (0, *np.cumsum(np.asarray(sizes, dtype=np.int64)).tolist())


def even_offsets(n: int, rows: int) -> tuple[int, ...]:
    """Block offsets of ``n`` rows in blocks of ``rows`` (the last one shorter)."""
    return block_offsets([min(rows, n - s) for s in range(0, n, rows)] or [0])


def float_rows(raw: np.ndarray, scale: float | None, normalize: bool,
               dtype: Any = None) -> np.ndarray:
    """Stored rows (m, ...) as float (m, d): scaled when ``scale``, L2-normalised when
    ``normalize``, cast to ``dtype`` if given (integer rows without a scale stay as
    stored otherwise); a new array unless nothing applies."""
    x = raw.reshape(raw.shape[0], -1)
    x = scale_rows(x, scale) if scale is not None else x
    if normalize:
        from ..kernels.common import normalize_rows

        x = normalize_rows(x)
    return x if dtype is None else x.astype(dtype, copy=False)


class Source:
    """Rows to cluster, block by block: what every pass of the engine maps over.

    A source is built once per call from whatever the user gave (:func:`as_source`) and
    passed down explicitly to the algorithms and the map-reduce layer
    (:mod:`daskmeans.engine.reductions`); nothing is looked up globally. Kernels see each block
    as an (m, d) array: float32/float64 rows, or, when :attr:`scale` is set, the stored
    integer rows (uint8 pixels) that stand for ``float32(rows) * scale`` and that the
    kernels scale block by block (no float32 copy of a chunk).

    Attributes
    ----------
    n, d : rows and features
    dtype : float dtype of the rows as the kernels compute with them
    offsets : (n_blocks + 1,) row offsets of the blocks (block ``i`` is rows
        ``offsets[i]:offsets[i + 1]``)
    scale : None, or the factor raw stored values are multiplied by
    normalize : rows are L2-normalised when read (spherical k-means)
    weights : (n,) float64 sample weights (numpy), or None
    xsq : ``|x|^2`` of the rows computed once for every pass, or None: (n,) float64
        numpy, or one future per block when the blocks are held in a cluster's workers
        (see :meth:`block_xsq`)
    held : the blocks as :func:`daskmeans.engine.hold.hold` keeps them (numpy
        arrays, or futures in a cluster's workers), or None: then every pass reads them
        from where the source has them
    held_weights : the weights' blocks as futures in a cluster's workers, or None (see
        :meth:`block_weights`)
    lazy : results derived from the rows stay lazy (dask) rather than numpy
    """

    lazy = True
    X: Any = None  # the rows, for sources that hold them (numpy or dask)
    #: the blocks are CSR matrices of rows (see the module's docstring)
    sparse = False
    #: passes map over a dask array's own blocks (``da.blockwise``), per-block state
    #: (bounds, labels) going in as one more blockwise operand; see
    #: :attr:`DaskSource.dask_route`
    dask_route = False

    def __init__(self, n: int, d: int, dtype: Any, offsets: tuple[int, ...],
                 scale: float | None = None) -> None:
        self.n, self.d, self.dtype = int(n), int(d), np.dtype(dtype)
        self.offsets, self.scale = offsets, scale
        self.normalize = False
        self.weights: Any = None
        self.xsq: np.ndarray | list[Any] | None = None
        self.held: list[Any] | None = None
        self.held_weights: list[Any] | None = None

    @property
    def shape(self) -> tuple[int, int]:
        return (self.n, self.d)

    @property
    def n_blocks(self) -> int:
        return len(self.offsets) - 1

    def offset(self, i: int) -> int:
        """The first row of block ``i``."""
        return self.offsets[i]

    def block_rows(self, i: int) -> int:
        """The number of rows of block ``i``."""
        return self.offsets[i + 1] - self.offsets[i]

    def with_options(self, *, weights: Any = None, normalize: bool = False) -> Source:
        """A copy with sample weights (numpy (n,), or a dask array for a dask source)
        and/or row normalisation."""
        out = copy.copy(self)
        out.weights, out.normalize = weights, normalize
        out.held_weights = None
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
        return self.xsq[self.offsets[i]:self.offsets[i + 1]]

    def block_weights(self, i: int) -> Any:
        """Block ``i``'s sample weights as its task receives them (a numpy slice, or a
        future in a cluster's workers), or None without weights."""
        if self.held_weights is not None:
            return self.held_weights[i]
        if self.weights is None:
            return None
        return self.weights[self.offsets[i]:self.offsets[i + 1]]

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
    :func:`memory_block_rows`); on a ``distributed`` cluster its blocks are held in
    the workers once (:func:`daskmeans.engine.hold.hold`: :attr:`held`) and every
    pass reuses them."""

    lazy = False

    def __init__(self, X: np.ndarray, *, block_rows: int | None = None) -> None:
        n, d = X.shape
        rows = block_rows or memory_block_rows(n, d, X.dtype.itemsize)
        super().__init__(n, d, X.dtype, even_offsets(n, rows))
        self.X = X

    def block(self, i: int) -> Any:
        if self.held is not None:
            return self.held[i]
        return self.X[self.offsets[i]:self.offsets[i + 1]]

    def to_dask(self) -> da.Array:
        return da.from_array(self.X, chunks=(tuple(np.diff(self.offsets).tolist()), -1))


class ZarrSource(Source):
    """A Zarr array (v2 or v3, any store zarr can open, sharded or not, any codec) read
    block by block inside the tasks that use the rows: a local unsharded array of plain
    layout straight from its chunk files (:mod:`daskmeans.io.chunkfiles`: faster than
    zarr's read path), anything else through zarr's public API.

    Blocks are whole storage units (shards, else chunks) along the rows, grouped up to
    :data:`TASK_MAX_BYTES`. ``scale``: the factor from stored values to features; by
    default the array's ``scale_factor`` attribute (:mod:`daskmeans.pixels`), else none:
    the values are the features, integers read as float64 as scikit-learn reads an
    integer array in memory. Stored uint8 rows with a scale (pixels) reach the kernels
    raw and are scaled a tile at a time inside them.

    ``cache``: a Lloyd fit makes tens of passes, and decoding a compressed chunk can
    cost as much as the pass's arithmetic, so by
    default (``None``) :class:`daskmeans.KMeans` reads the decoded stored rows (uint8
    stays uint8) into memory once, in parallel tasks, when they take at most
    :data:`daskmeans.engine.schedule.CACHE_FRACTION` of the memory (the workers' on a
    cluster); ``True`` always, ``False`` never (every pass reads the store: data
    larger than memory streams either way).
    """

    def __init__(self, array: zarr.Array, *, scale: float | None = None,
                 threads: int | None = None, cache: bool | None = None) -> None:
        if array.ndim < 2:
            raise StoreError(f"expected an array of rows (n, d, ...), got shape {array.shape}")
        if scale is None:
            scale = scale_from_attrs(array.attrs, str(array.name))
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
        self.offsets = self._grouped(per_task)
        self.cache = cache
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
                  offsets: tuple[int, ...] | None = None) -> ZarrSource:
        """A copy whose blocks are already read: numpy arrays (local scheduler) or
        futures in a cluster's workers, with the rows' ``|x|^2`` if known. Passes take
        them instead of reading the store (see :func:`daskmeans.engine.hold.hold`).
        ``offsets``: the held blocks' row offsets when they are not the store's blocks."""
        out = copy.copy(self)
        out.held, out.xsq = list(blocks), xsq
        if offsets is not None:
            if offsets[-1] != self.n or len(offsets) != len(out.held) + 1:
                raise ValueError(f"offsets {offsets[:3]}... do not cover {self.n} rows in "
                                 f"{len(out.held)} blocks")
            out.offsets = tuple(offsets)
        return out

    def _grouped(self, units: int) -> tuple[int, ...]:
        return even_offsets(self.n, self.unit * units)

    def regroup(self, units: int) -> ZarrSource:
        """A copy whose blocks are ``units`` storage units (shards or chunks) each: one
        unit for mini-batch steps that take whole blocks."""
        out = copy.copy(self)
        out.offsets = self._grouped(units)
        out.held, out.xsq = None, None  # held blocks follow the old offsets
        out.held_weights = None
        return out

    def block(self, i: int) -> Any:
        if self.held is not None:
            return self.held[i]
        return ZarrBlock(self.array, self.offsets[i], self.offsets[i + 1], self.files)

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
        # bound method by pickling its object, held blocks and all (hashing every held
        # byte at the end of a fit)
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
        whose layout allows it (:class:`daskmeans.io.chunkfiles.ChunkFiles`, the faster
        path), else through ``zarr.Array.__getitem__``; a chunk that does not decode
        raises :class:`~daskmeans.io.errors.ChunkDecodeError` naming it, and from object
        storage a failure names the URL and the rows
        (:func:`~daskmeans.io.stores.read_checked`)."""
        if self.files is not None:
            rows = self.files.read(self.start, self.stop)
        else:
            rows = read_checked(self.array, slice(self.start, self.stop),
                                f"reading rows {self.start}..{self.stop - 1}")
        return rows.reshape(rows.shape[0], -1)


class DaskSource(Source):
    """A user's (n, d) dask array. Streamed (larger than the memory budget), passes map
    over its row blocks with ``da.blockwise`` and tree-reduce with ``da.reduction``
    (the only public route to a dask array's blocks that also works with array query
    planning); per-block state (distance bounds, labels) is kept beside the blocks all
    the same, numpy here or persisted in a cluster's workers, and blocks whose rows
    are settled are left out of a pass (their part of the graph is not computed).
    Weights may be a dask array.

    Held for a fit (:func:`daskmeans.engine.hold.hold`, when the rows fit the memory
    budget), its blocks are computed once and kept, numpy here or futures in a
    cluster's workers (:attr:`held`, with their ``|x|^2`` and the weights as numpy):
    every later pass then takes them as it takes a held store's, with per-block state
    (bounds, labels) and no recomputation of the user's graph."""

    def __init__(self, X: da.Array) -> None:
        if X.numblocks[1] != 1:
            X = X.rechunk({1: -1})
        dtype = X.dtype if X.dtype.kind == "f" else np.dtype(np.float64)
        super().__init__(X.shape[0], X.shape[1], dtype, block_offsets(X.chunks[0]))
        self.X = X

    @property
    def dask_route(self) -> bool:  # type: ignore[override]
        """True while the blocks are not held: passes go through ``da.blockwise``."""
        return self.held is None

    def block(self, i: int) -> Any:
        if self.held is None:
            raise ValueError("a dask array's blocks are reached through da.blockwise "
                             "until they are held (daskmeans.engine.hold.hold)")
        return self.held[i]

    def with_held(self, blocks: list[Any], xsq: np.ndarray | list[Any] | None,
                  offsets: tuple[int, ...], weights: np.ndarray | None = None) -> DaskSource:
        """A copy whose blocks are computed: numpy arrays of the float dtype here, or
        futures in a cluster's workers, covering rows ``offsets``, with their ``|x|^2``
        (if known) and the weights (numpy, if any)."""
        if offsets[-1] != self.n or len(offsets) != len(blocks) + 1:
            raise ValueError(f"offsets {offsets[:3]}... do not cover {self.n} rows in "
                             f"{len(blocks)} blocks")
        out = copy.copy(self)
        out.held, out.xsq, out.offsets = list(blocks), xsq, tuple(offsets)
        if self.weights is not None:
            out.weights = weights
        return out

    def to_dask(self) -> da.Array:
        X = self.X if self.X.dtype == self.dtype else self.X.astype(self.dtype)
        if self.normalize:
            from ..kernels.common import normalize_rows

            X = da.map_blocks(normalize_rows, X, dtype=X.dtype,
                              meta=np.empty((0, 0), X.dtype))
        return X


class SparseSource(ArraySource):
    """In-memory CSR rows (``scipy.sparse`` ``csr_matrix`` or ``csr_array``, float32 or
    float64), in one block per thread of about equal stored values.

    A block is a CSR matrix of rows ``offsets[i]..offsets[i + 1]`` sharing X's data
    and indices (no copy). Rows that store a column twice are put in canonical form
    first, in a copy (:func:`csr_rows`: the caller's matrix is never changed). An
    in-memory source like :class:`ArraySource` (``lazy`` False: predict and transform
    answer in numpy); on a ``distributed`` cluster its blocks are scattered to the
    workers once per fit."""

    sparse = True

    def __init__(self, X: Any, *, block_rows: int | None = None) -> None:
        X = csr_rows(X)
        n, d = X.shape
        if block_rows is not None:
            offsets = even_offsets(n, block_rows)
        else:
            offsets = _nnz_offsets(X.indptr, local_threads() if X.nnz >= 1 << 16 else 1)
        Source.__init__(self, n, d, X.dtype, offsets)
        self.X = X
        self.blocks = [_csr_view(X, a, b) for a, b in itertools.pairwise(offsets)]

    def block(self, i: int) -> Any:
        return self.blocks[i]

    @property
    def nbytes(self) -> int:
        """Bytes of the stored values, their column indices and the row pointers."""
        return int(self.X.data.nbytes + self.X.indices.nbytes + self.X.indptr.nbytes)

    def to_dask(self) -> da.Array:
        """The rows as a dask array of CSR blocks."""
        return da.from_array(self.X, chunks=(tuple(np.diff(self.offsets).tolist()), -1),
                             asarray=False)


def csr_rows(X: Any) -> Any:
    """``X`` (any ``scipy.sparse`` matrix or array) as CSR of a float dtype (float32
    kept, anything else float64) with no column stored twice in a row: the input
    itself when it already is, its columns in whatever order (a vectoriser's TF-IDF
    rows are not sorted, and sorting a copy of them in every fit buys the kernels
    nothing); else canonical (duplicates summed, columns sorted) in a copy. Never
    changed in place."""
    kind = sp.csr_array if isinstance(X, sp.sparray) else sp.csr_matrix
    dtype = X.dtype if X.dtype in (np.float32, np.float64) else np.float64
    out = kind(X, dtype=dtype)  # a CSR input of the dtype is not copied
    if not duplicate_free(out):
        out = out.copy()  # a new object may still share X's arrays: sorted in a copy
        out.sum_duplicates()
    return out


def _csr_view(X: Any, a: int, b: int) -> Any:
    """Rows ``a:b`` of CSR ``X`` as a CSR matrix of the same kind whose ``data`` and
    ``indices`` are views of X's (scipy's constructor copies a slice much smaller than
    its base, which for the blocks of a source would copy every block)."""
    if a == 0 and b == X.shape[0]:
        return X
    p0, p1 = int(X.indptr[a]), int(X.indptr[b])
    out = type(X)((b - a, X.shape[1]), dtype=X.dtype)
    out.data, out.indices = X.data[p0:p1], X.indices[p0:p1]
    out.indptr = X.indptr[a:b + 1] - X.indptr.dtype.type(p0)
    return out


def _nnz_offsets(indptr: np.ndarray, blocks: int) -> tuple[int, ...]:
    """Row offsets of ``blocks`` blocks of about equal stored values."""
    n = len(indptr) - 1
    targets = np.linspace(0, indptr[-1], blocks + 1)[1:-1]
    cuts = np.searchsorted(indptr, targets)
    return tuple(sorted({0, n, *(int(c) for c in cuts if 0 < c < n)}))


# --------------------------------------------------------------------------- sparse
# out of core: a CSR store in Zarr, and dask arrays of scipy.sparse blocks. Their blocks
# are what SparseSource's are: CSR matrices (csr_rows) of rows offsets[i]..offsets[i+1],
# float32 or float64, their |x|^2 computed once per fit (by hold) like a dense block's.


class CSRStoreSource(ZarrSource):
    """A CSR matrix in a Zarr group (:mod:`daskmeans.io.sparse`) read a block of rows at
    a time inside the tasks that use them (:class:`CSRBlock`): each block reads its own
    chunks of ``indptr`` and only the chunks of ``indices`` and ``data`` its nonzeros
    overlap, from a local path or object storage.

    Blocks are whole row chunks grouped up to :data:`TASK_MAX_BYTES` of stored values
    (at least one block per thread where the chunks allow). Like a dense store
    (:class:`ZarrSource`), a fit holds the blocks in memory when they fit the budget
    (``cache``; numpy here, futures in a cluster's workers) and else reads the store in
    every pass. Values stored as integers (counts) are read as float64."""

    sparse = True

    def __init__(self, matrix: CSRStore, *, threads: int | None = None,
                 cache: bool | None = None) -> None:
        n, d = matrix.shape
        dtype = matrix.dtype if matrix.dtype in (np.float32, np.float64) else np.float64
        Source.__init__(self, n, d, dtype, (0, n))
        self.matrix, self.array, self.files, self.cache = matrix, matrix.data, None, cache
        self.unit = matrix.rows_per_chunk
        per_unit = max(1, self.matrix.nbytes // max(1, matrix.n_chunks))
        per_task = max(1, TASK_MAX_BYTES // per_unit)
        threads = threads or local_threads()
        per_task = max(1, min(per_task, matrix.n_chunks // threads))
        self.offsets = self._grouped(per_task)

    @property
    def nbytes(self) -> int:
        """Bytes of the CSR matrix in memory (values, column indices, row pointers)."""
        return self.matrix.nbytes

    def block(self, i: int) -> Any:
        if self.held is not None:
            return self.held[i]
        return CSRBlock(self.matrix, self.offsets[i], self.offsets[i + 1], self.dtype)

    def raw_dask(self) -> da.Array:
        """The rows as an (n, d) dask array of CSR blocks, one per block of the source."""
        meta = sp.csr_matrix((0, self.d), dtype=self.dtype)
        return da.from_array(_CSRRows(self.matrix, self.dtype), asarray=False, meta=meta,
                             chunks=(tuple(np.diff(self.offsets).tolist()), (self.d,)))

    def to_dask(self, raw: da.Array | None = None) -> da.Array:
        """The rows as an (n, d) dask array of CSR blocks (normalised with
        ``normalize``)."""
        X = self.raw_dask() if raw is None else raw
        if self.normalize:
            from ..kernels.common import normalize_rows

            X = da.map_blocks(normalize_rows, X, dtype=self.dtype,
                             meta=sp.csr_matrix((0, self.d), dtype=self.dtype))
        return X


class CSRBlock(ZarrBlock):
    """Rows ``[start, stop)`` of a CSR store, read by :meth:`read` inside the task that
    uses them (the store pickles as its arrays' stores and paths, not its data)."""

    def __init__(self, matrix: CSRStore, start: int, stop: int, dtype: Any) -> None:
        super().__init__(matrix.data, start, stop)
        self.matrix, self.dtype = matrix, np.dtype(dtype)

    def read(self) -> Any:
        """The rows as a canonical ``scipy.sparse.csr_matrix`` of the source's dtype; a
        damaged chunk raises :class:`~daskmeans.io.errors.ChunkDecodeError` naming the
        store, the array and the chunk (:meth:`CSRStore.read_rows`)."""
        rows = self.matrix.read_rows(self.start, self.stop)
        return rows if rows.dtype == self.dtype else rows.astype(self.dtype)


class _CSRRows:
    """A CSR store as the array-like ``da.from_array`` slices (rows at whole row
    chunks: the source's blocks), each slice a CSR matrix."""

    def __init__(self, matrix: CSRStore, dtype: Any) -> None:
        self.matrix, self.dtype = matrix, np.dtype(dtype)
        self.shape, self.ndim = matrix.shape, 2

    def __dask_tokenize__(self) -> Any:
        from dask.base import tokenize

        return ("daskmeans.CSRRows", tokenize(self.matrix), str(self.dtype))

    def __getitem__(self, key: Any) -> Any:
        rows, cols = key if isinstance(key, tuple) else (key, slice(None))
        start, stop, _ = rows.indices(self.shape[0])
        R = self.matrix.rows_per_chunk
        lo, hi = start - start % R, min(self.shape[0], -(-stop // R) * R)
        out = CSRBlock(self.matrix, lo, hi, self.dtype).read()
        if (lo, hi) != (start, stop):  # not whole row chunks: dask's meta probes
            out = out[start - lo:stop - lo]
        return out if cols == slice(None) else out[:, cols]


def is_sparse_dask(X: da.Array) -> bool:
    """True for a dask array whose blocks are ``scipy.sparse`` matrices or pydata
    ``sparse`` arrays (by its meta: ``dask.array.utils.meta_from_array``)."""
    from dask.array.utils import meta_from_array

    meta = meta_from_array(X)
    return bool(sp.issparse(meta)) or type(meta).__module__.split(".")[0] == "sparse"


def _csr_nbytes(block: Any) -> np.ndarray:
    """(1, 1) bytes of a CSR block's values, column indices and row pointers."""
    return np.array([[block.data.nbytes + block.indices.nbytes + block.indptr.nbytes]],
                    dtype=np.int64)


def _csr_block(block: Any) -> Any:
    """A block of a user's sparse dask array as CSR of a float dtype (:func:`csr_rows`;
    pydata ``sparse`` arrays through their ``tocsr``)."""
    if not sp.issparse(block) and hasattr(block, "tocsr"):
        block = block.tocsr()
    return csr_rows(block)


class SparseDaskSource(DaskSource):
    """A user's (n, d) dask array whose blocks are ``scipy.sparse`` matrices (e.g.
    ``da.from_array(X_csr, chunks=(rows, -1), asarray=False)``, or ``map_blocks``
    producing them) or pydata ``sparse`` arrays, each block made CSR of a float dtype
    (:func:`csr_rows`) as it is computed.

    As a dense dask array (:class:`DaskSource`): streamed through ``da.blockwise``, or
    held for a fit when its rows fit the memory budget: their CSR size (stored values,
    column indices, row pointers), which a lazy array does not know before it is
    computed. Its dense size bounds it; when that is over the budget,
    :meth:`measure` computes the blocks once for their CSR sizes alone
    (:attr:`stored_nbytes`), and rows whose CSR size fits are held all the same."""

    sparse = True
    #: bytes of the CSR blocks (values, column indices, row pointers) once measured or
    #: held, else None (then :attr:`nbytes` is the dense size, a bound)
    stored_nbytes: int | None = None

    def __init__(self, X: da.Array) -> None:
        dtype = X.dtype if X.dtype in (np.float32, np.float64) else np.dtype(np.float64)
        meta = sp.csr_matrix((0, X.shape[1]), dtype=dtype)
        X = da.map_blocks(_csr_block, X, dtype=dtype, meta=meta)
        super().__init__(X)

    @property
    def nbytes(self) -> int:
        """Bytes of the CSR rows once known (:attr:`stored_nbytes`), else the dense size."""
        if self.stored_nbytes is not None:
            return self.stored_nbytes
        return self.n * self.d * np.dtype(self.dtype).itemsize

    def measure(self) -> int:
        """The CSR bytes of the rows (:attr:`stored_nbytes`, recorded on this source):
        one compute of the array's graph from which only each block's size comes back
        (the blocks are not kept)."""
        if self.stored_nbytes is None:
            n_blocks = len(self.X.chunks[0])
            sizes = da.map_blocks(_csr_nbytes, self.X, dtype=np.int64,
                                  chunks=((1,) * n_blocks, (1,)),
                                  meta=np.empty((0, 0), np.int64))
            self.stored_nbytes = int(compute(sizes.sum(), n_tasks=n_blocks))
        return self.stored_nbytes

    def with_held(self, blocks: list[Any], xsq: np.ndarray | list[Any] | None,
                  offsets: tuple[int, ...], weights: np.ndarray | None = None) -> DaskSource:
        out = super().with_held(blocks, xsq, offsets, weights)
        if all(sp.issparse(b) for b in blocks):  # held here: their size is known
            assert isinstance(out, SparseDaskSource)
            out.stored_nbytes = sum(_csr_nbytes(b).item() for b in blocks)
        return out

    def to_dask(self) -> da.Array:
        X = self.X
        if self.normalize:
            from ..kernels.common import normalize_rows

            X = da.map_blocks(normalize_rows, X, dtype=X.dtype,
                             meta=sp.csr_matrix((0, self.d), dtype=X.dtype))
        return X


def _csr_group(node: Any, array: str | None) -> zarr.Group | None:
    """The CSR group a store holds as its rows: the store itself, the group named by
    ``array``, or (unnamed) a CSR group ``X`` in it (an AnnData store's), else None."""
    if not isinstance(node, zarr.Group):
        return None
    if array is None:
        if is_csr_group(node):
            return node
        found = node.get("X")
    else:
        found = node.get(array.strip("/")) if array.strip("/") else node
    return found if isinstance(found, zarr.Group) and is_csr_group(found) else None


def _where(store: Any, group: zarr.Group) -> str | None:
    """The path or URL of a CSR group for messages (None: the reader finds it)."""
    if is_zarr(store):
        return None
    return f"{str(store).rstrip('/')}/{group.path}" if group.path else str(store)


def _image_rows(block: np.ndarray) -> np.ndarray:
    return block.reshape(block.shape[0], -1)


def reads_raw_uint8(src: Source) -> bool:
    """True when the kernels get ``src``'s blocks as raw uint8 rows with a scale."""
    return (isinstance(src, ZarrSource) and src.scale is not None and not src.normalize
            and np.dtype(src.array.dtype) == np.uint8)


def open_source(store: Any, split: str | None = None, *, array: str | None = None,
                storage_options: dict[str, Any] | None = None,
                cache: bool | None = None, scale: float | None = None) -> Source:
    """The data source for a store path or URL, a Zarr array or group, or a store
    written by daskmeans (a dataset's ``split``, default train, else test).

    Which array holds the rows: a store that is one (root) array is that array; in a
    group, ``array`` names it by its path in the group (``"vectors"``,
    ``"embeddings/train"``, or the variable's name in a Zarr store written by xarray's
    ``Dataset.to_zarr``); without ``array``, a dataset store's ``split``, else the
    group's ``X`` (what :func:`~daskmeans.io.make_blobs_zarr` writes), else the
    group's only array of two or more dimensions. A group where none of these applies
    raises :class:`~daskmeans.io.errors.StoreError` listing the arrays it holds.

    ``scale``: the factor from stored values to features. By default the array's
    ``scale_factor`` attribute, which ``daskmeans ingest`` records (``1/255`` for
    pixels; a dataset store written before that attribute existed is recognised by its
    ``format`` and read the same way); an array without it is read in its own units,
    whatever its dtype. ``scale=1.0`` reads a scaled store in its stored units.

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
    A dataset store of five 2 x 2 uint8 images: the rows stay uint8 in the store and
    the kernels scale them by ``1/255``:

    >>> import pathlib, shutil, tempfile
    >>> import numpy as np
    >>> from daskmeans.io import arrays_to_dataset
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> images = np.arange(20, dtype=np.uint8).reshape(5, 2, 2)
    >>> store = arrays_to_dataset({"test": (images, np.arange(5))}, d / "data.zarr",
    ...                           name="tiny")
    >>> src = open_source(store, "test")
    >>> src.shape, src.scale, src.n_blocks
    ((5, 4), 0.00392156862745098, 1)
    >>> shutil.rmtree(d)
    """
    node = store if is_zarr(store) else open_node(store, storage_options)
    csr = _csr_group(node, array)
    if csr is not None:
        return CSRStoreSource(CSRStore(csr, _where(store, csr)), cache=cache)
    if isinstance(node, zarr.Group) and array is None:
        fmt = str(node.attrs.get("format", ""))
        if fmt.startswith("daskmeans-idx"):
            if split is None:
                split = "train" if "train" in node else "test"
            node = split_array(node, split, "images", str(store))
            scale = images_scale(node) if scale is None else scale
        elif fmt.startswith("daskmeans-image"):
            raise StoreError(f"{store}: an image store; cluster its pixels with "
                             "daskmeans.quantize or daskmeans.io.image_pixels")
        else:
            node = select_array(node, None, str(store))
    else:
        dataset = isinstance(node, zarr.Group) and str(
            node.attrs.get("format", "")).startswith("daskmeans-idx")
        node = select_array(node, array, str(store))
        if dataset and node.basename == "images":  # a split named by its path
            scale = images_scale(node) if scale is None else scale
    if node.ndim == 1:
        raise StoreError(f"{store}: expected a 2-D array (or a stack of images), got "
                         f"shape {node.shape}")
    if node.ndim > 2 and np.dtype(node.dtype) != np.uint8:
        raise StoreError(f"{store}: expected a 2-D array, got shape {node.shape}")
    return ZarrSource(node, cache=cache, scale=scale)


def as_source(X: Any) -> Source:
    """The :class:`Source` of anything the estimators accept: a Source, a numpy array
    (validated by the caller), a ``scipy.sparse`` matrix or array, a dask array, a Zarr
    array or group, a store path or URL. A dask array that :func:`open_dataset` or
    :func:`open_array` made, untouched since, is read through its store's own fast path
    (:func:`opened_source`)."""
    if isinstance(X, Source):
        return X
    if isinstance(X, da.Array):
        if is_sparse_dask(X):
            return SparseDaskSource(X)
        opened = opened_source(X)
        return opened if opened is not None else DaskSource(X)
    if sp.issparse(X):
        return SparseSource(X)
    if isinstance(X, str | os.PathLike | zarr.Array | zarr.Group):
        return open_source(X)
    return ArraySource(np.asarray(X))



#: How many of the dask arrays :func:`open_dataset` and :func:`open_array` made are
#: remembered by name (a few per store a session opens; each entry is a store handle).
OPENED_MAX = 64
_opened: OrderedDict[str, ZarrSource] = OrderedDict()
_opened_lock = threading.Lock()


def _remember(X: da.Array, src: ZarrSource) -> da.Array:
    """Remember that the dask array ``X`` reads exactly ``src``'s rows (see
    :func:`opened_source`); returns ``X``."""
    with _opened_lock:
        _opened[X.name] = src
        _opened.move_to_end(X.name)
        while len(_opened) > OPENED_MAX:
            _opened.popitem(last=False)
    return X


def opened_source(X: da.Array) -> ZarrSource | None:
    """The store source behind a dask array that :func:`open_dataset` or
    :func:`open_array` made, or None.

    A dask array's name is a token of its whole graph (public: ``Array.name``, in
    both of dask's array implementations), so an array that was sliced, rechunked or
    computed on since it was opened has another name and is not recognised; one that
    is recognised reads the same rows, and fitting the store itself gives the same
    model while reading raw stored rows (uint8 pixels stay uint8, no float32 copy of
    each chunk, the local chunk-file reader).

    Arrays made elsewhere are not recognised: ``da.from_zarr``, ``io.zarr_to_dask``
    and xarray's ``open_zarr`` build ``da.from_array`` graphs, and which storage a
    dask array reads is said only inside its graph's tasks, whose layout is dask's
    internal business (it differs between the two array implementations, and
    ``from_zarr`` has none under query planning); xarray's ``encoding`` names a
    variable's store, but survives indexing, so it cannot tell a whole variable from a
    slice of one. Pass the store itself (``open_source(path, array=name)``) to get its
    fast path for those."""
    with _opened_lock:
        src = _opened.get(X.name)
    if src is None or src.shape != tuple(X.shape) or src.dtype != X.dtype:
        return None
    return copy.copy(src)


def open_dataset(
    store: PathLike | zarr.Group, split: str = "train", *, scale: bool = True,
    storage_options: dict[str, Any] | None = None,
) -> tuple[da.Array, da.Array]:
    """Open one split of a dataset store as dask arrays.

    An estimator given ``X`` as returned (not sliced or computed on since) reads the
    store itself, as for :func:`open_source`: the kernels then read the uint8 rows and
    scale them block by block, instead of receiving float32 copies of every chunk
    (:func:`opened_source`). Anything derived from ``X`` is a plain dask array.

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
    >>> import pathlib, shutil, tempfile
    >>> import numpy as np
    >>> from daskmeans.io import arrays_to_dataset
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> images = np.full((3, 2, 2), 255, dtype=np.uint8)
    >>> store = arrays_to_dataset({"test": (images, [7, 2, 1])}, d / "data.zarr",
    ...                           name="tiny")
    >>> X, y = open_dataset(store, "test")
    >>> X.shape, X.dtype, float(X.max().compute()), int(y[0].compute())
    ((3, 4), dtype('float32'), 1.0, 7)
    >>> shutil.rmtree(d)
    """
    group = open_group(store, storage_options)
    images = split_array(group, split, "images", str(store))
    labels = split_array(group, split, "labels", str(store))
    if images.shape[0] != labels.shape[0]:
        raise StoreError(
            f"{store}: {split}/images has {images.shape[0]} rows but "
            f"{split}/labels has {labels.shape[0]}"
        )
    imgs = zarr_to_dask(images)
    y = zarr_to_dask(labels, chunks=(imgs.chunks[0],)).astype(np.int64)
    if not scale:
        return imgs, y
    factor = images_scale(images)
    X = scale_images(imgs, factor)
    # an estimator given X reads the store itself (the same rows: float32(raw) * scale)
    return _remember(X, ZarrSource(images, scale=factor)), y


def open_array(store: PathLike | zarr.Array | zarr.Group, split: str | None = None) -> da.Array:
    """Open whatever daskmeans wrote as an (n, d) float dask array.

    Accepts a dataset store (its ``split``, default train, else test), a blobs store
    from :func:`make_blobs_zarr` (its ``X``), an image store (its pixel view), or a
    plain 2-D (or uint8 image stack) Zarr array. Estimators fit faster from the store
    itself or :func:`open_source` (no float copy of each chunk).
    """
    node = store if is_zarr(store) else open_node(store)
    if isinstance(node, zarr.Group) and str(node.attrs.get("format", "")).startswith(
            "daskmeans-image"):
        return image_pixels(node)
    src = open_source(node, split)
    assert isinstance(src, ZarrSource)  # what open_source opens
    return _remember(src.to_dask(), src)

