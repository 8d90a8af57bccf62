"""Dask graphs: the only module that builds them.

Each ``*_pass`` function maps a kernel from :mod:`daskmeans._kernels` over the row
chunks of a dask array, tree-reduces the per-chunk results (``split_every`` at a
time) and computes the result with exactly one call of whatever scheduler is active
(threaded by default, a ``distributed.Client`` when one is active). Centres are
prepared once per pass and enter the graph once as a single key, or inside each task
while all the copies stay under 1 MB (see :meth:`_Graph.shared`), so the graph does
not grow with them as the chunks multiply. ``*_lazy`` functions return dask arrays
and compute nothing.

Passes are built as plain task graphs over the input's block keys and handed to the
active scheduler's ``get``: an iteration is a handful of tasks, and going through
``dask.compute`` and delayed objects cost ~2 ms of graph handling per pass (measured),
as much as a whole mini-batch step's kernel at small k.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import logging
import operator
import os
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import dask
import dask.array as da
import dask.threaded
import numpy as np
from dask.base import get_scheduler

from . import _kernels as K
from . import io

log = logging.getLogger(__name__)

#: partial results combined per tree node.
SPLIT_EVERY = 8
#: target bytes per chunk when we chunk a large in-memory array ourselves.
TARGET_CHUNK_BYTES = 32 << 20
#: an operand travels inside every task (not as one graph key) while all its copies
#: together stay under this many bytes.
INLINE_MAX_BYTES = 1 << 20
#: in-memory arrays up to this many bytes per thread get one chunk per thread.
MAX_MEMORY_CHUNK_BYTES = 256 << 20


# --------------------------------------------------------------------------- scheduling


def using_distributed() -> bool:
    """True when computations go to a ``distributed.Client``."""
    sched = dask.config.get("scheduler", None)
    if sched is not None and sched not in ("dask.distributed", "distributed"):
        return False
    try:
        from distributed import default_client

        default_client()
    except (ImportError, ValueError):
        return False
    return True


def n_threads() -> int:
    """Threads the local scheduler uses (``dask.config num_workers`` or the CPU count)."""
    return int(dask.config.get("num_workers", None) or os.cpu_count() or 1)


def total_threads() -> int:
    """Threads computing: the cluster's worker threads, or the local thread count."""
    if using_distributed():
        from distributed import default_client

        return max(1, sum(default_client().nthreads().values()))
    return n_threads()


@contextlib.contextmanager
def _blas_limits(n_tasks: int) -> Iterator[None]:
    """Under the local threaded scheduler, split the cores between dask and BLAS.

    Distributed workers already pin BLAS to one thread per worker thread (dask sets
    ``OMP_NUM_THREADS`` etc. in the nanny); in-process we use threadpoolctl.
    """
    if using_distributed() or dask.config.get("scheduler", None) == "sync":
        yield
        return
    cores = os.cpu_count() or 1
    parallel = max(1, min(n_tasks, n_threads()))
    with _threadpool_controller().limit(limits=max(1, cores // parallel), user_api="blas"):
        yield


@functools.cache
def _threadpool_controller() -> Any:
    """One threadpoolctl controller (finding the BLAS libraries costs milliseconds)."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


_PINNED: list[Any] = []


def _pin_blas_in_worker() -> None:
    """Inside a distributed worker, pin BLAS to one thread per process, once.

    Workers started through a nanny already get ``OPENBLAS_NUM_THREADS=1``; workers
    started without one (``--no-nanny``, some batch systems) do not, and each would
    run a BLAS pool as large as the machine: on 2 cores, 3 workers spun 6 BLAS threads
    and made every task ~5x slower.
    """
    if _PINNED:
        return
    try:
        from distributed import get_worker

        get_worker()
    except (ImportError, ValueError):
        return
    _PINNED.append(_threadpool_controller().limit(limits=1, user_api="blas"))


def _task(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Mark a function that runs inside dask tasks (pins worker BLAS threads)."""

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        _pin_blas_in_worker()
        return fn(*args, **kwargs)

    return run


def compute(obj: Any, n_tasks: int = 1) -> Any:
    """The one ``dask.compute`` call of a pass (BLAS threads pinned for local threads)."""
    with _blas_limits(n_tasks):
        (out,) = dask.compute(obj)
    return out


# --------------------------------------------------------------------------- arrays


def auto_row_chunks(n: int, d: int, itemsize: int, threads: int | None = None) -> int:
    """Rows per chunk for an in-memory array.

    One chunk per thread while chunks stay under :data:`MAX_MEMORY_CHUNK_BYTES`: every
    task costs a scheduler round trip and a dense (k, d) partial result, so fewer,
    larger tasks are faster (Fashion-MNIST on 2 threads, 2 chunks instead of 6:
    mini-batch step 10.8 vs 12.5 ms, Lloyd pass 20.0 vs 22.6 ms at K=10 and 78 vs
    82 ms at K=256). Larger arrays get ~32 MB chunks, a multiple of the threads.
    """
    threads = threads or n_threads()
    nbytes = n * d * itemsize
    if nbytes < (1 << 20):  # tiny: one chunk, scheduling would dominate
        return max(n, 1)
    if nbytes <= threads * MAX_MEMORY_CHUNK_BYTES:
        return -(-n // threads)
    by_bytes = max(1, TARGET_CHUNK_BYTES // max(1, d * itemsize))
    n_chunks = max(threads, -(-n // by_bytes))
    n_chunks = -(-n_chunks // threads) * threads
    return max(1, -(-n // n_chunks))


def as_dask(X: Any, *, row_chunks: int | None = None) -> da.Array:
    """A 2-D dask array with a single chunk along features (no copy of numpy data)."""
    if isinstance(X, da.Array):
        arr = X
    else:
        arr = da.from_array(
            X,
            chunks=(row_chunks or auto_row_chunks(X.shape[0], X.shape[1], X.dtype.itemsize), -1),
            name=False,
        )
    if arr.ndim == 2 and arr.numblocks[1] != 1:
        arr = arr.rechunk({1: -1})
    return arr


def scatter_rows(X: np.ndarray) -> da.Array:
    """Ship an in-memory array to the cluster once, its row chunks spread over workers.

    (``persist`` of a ``from_array`` graph may leave every chunk on one worker, which
    then computes alone.)
    """
    from distributed import default_client

    client = default_client()
    rows = auto_row_chunks(X.shape[0], X.shape[1], X.dtype.itemsize, total_threads())
    parts = [X[s : s + rows] for s in range(0, X.shape[0], rows)]
    # received buffers may be unaligned for float32 (seen: address % 64 == 42), which
    # slows every kernel: keep an aligned copy on the worker instead
    futures = [client.submit(_aligned, f, pure=False) for f in client.scatter(parts, hash=False)]
    return da.concatenate([
        da.from_delayed(f, shape=p.shape, dtype=X.dtype) for f, p in zip(futures, parts,
                                                                         strict=True)
    ])


def _aligned(a: np.ndarray) -> np.ndarray:
    return a if a.flags.aligned and a.flags.c_contiguous else np.array(a, order="C")


def row_norms(X: np.ndarray, Xd: da.Array) -> da.Array | None:
    """``|x|^2`` of in-memory rows, computed once, chunked like ``Xd`` (or None).

    Passes then skip recomputing it (~15% of a pass at k=10). Only under the local
    scheduler, where it costs a numpy array of n values; on a cluster the kernel
    computes it where the rows live.
    """
    if using_distributed():
        return None
    return da.from_array(K.row_norms_sq(X), chunks=(Xd.chunks[0],), name=False)


def align_weights(sample_weight: Any, X: da.Array) -> da.Array | None:
    """Sample weights as a dask array chunked like X's rows (or None)."""
    if sample_weight is None:
        return None
    if isinstance(sample_weight, da.Array):
        return sample_weight.astype(np.float64).rechunk((X.chunks[0],))
    return da.from_array(np.asarray(sample_weight, dtype=np.float64), chunks=(X.chunks[0],))


def _offsets(X: da.Array) -> list[int]:
    return [0, *np.cumsum(X.chunks[0])[:-1].tolist()]


def _block_keys(X: da.Array | None, n: int) -> list[Any]:
    """The row-block keys of a dask array (or ``n`` times None)."""
    if X is None:
        return [None] * n
    return [k for row in X.__dask_keys__() for k in (row if isinstance(row, list) else [row])]


def _add_all(*parts: Any) -> Any:
    return functools.reduce(operator.add, parts)


class _Graph:
    """A plain task graph over dask arrays' blocks, run by the active scheduler.

    Tasks are ``(callable, *args)`` tuples whose args are keys of the graph (or None);
    constants are bound with :func:`functools.partial` so no literal can be mistaken
    for a key.
    """

    def __init__(self, name: str, X: da.Array, *arrays: da.Array | None) -> None:
        self.prefix = f"{name}-{uuid.uuid4().hex}"
        self.dsk: dict[Any, Any] = {}
        # X opened from a store: its chunks are read inside the tasks using them
        self.X, self.src = X, io.row_source(X)
        for a in (None if self.src else X, *arrays):
            if a is not None:
                self.dsk.update(a.__dask_graph__())
        self.n = 0
        self._wrapped: dict[Callable[..., Any], Callable[..., Any]] = {}
        self._blocks = _block_keys(None if self.src else X, len(X.chunks[0]))
        self.offsets = _offsets(X)

    def chunk_task(self, kernel: Callable[..., Any], i: int, *args: Any, raw: bool = False,
                   **consts: Any) -> tuple[str, int]:
        """``kernel(chunk i of X, *args, **consts)``; from a store, the task reads the
        chunk itself, raw (with ``scale=``) if the kernel scales block by block."""
        if self.src is None:
            return self.task(kernel, self._blocks[i], *args, **consts)
        start = self.offsets[i]
        return self.task(_from_source, *args, kernel=kernel, src=self.src, start=start,
                         stop=start + self.X.chunks[0][i], raw=raw, **consts)

    def data(self, value: Any) -> tuple[str, int]:
        """Put an operand (not a tuple, which would read as a task) in the graph once;
        return its key."""
        return self.task(None, value)

    def shared(self, value: Any, n_uses: int) -> Any:
        """An operand ``n_uses`` tasks use: itself while all those copies together stay
        under :data:`INLINE_MAX_BYTES`, else a key holding it once.

        On a distributed cluster a data key lives on one worker and every other worker
        fetches it before its task can start (one more round trip per pass, ~5-10 ms
        on a 2-core LocalCluster); copying small centres (k=10 x 784: 50 kB) into a few
        tasks is cheaper, and the bound keeps the graph from growing with the chunks.
        """
        nbytes = value.nbytes if isinstance(value, np.ndarray) else getattr(value, "nbytes", None)
        if nbytes is not None and nbytes * max(n_uses, 1) <= INLINE_MAX_BYTES:
            return value
        return self.data(value)

    def task(self, fn: Callable[..., Any] | None, *args: Any, **consts: Any) -> tuple[str, int]:
        key = (self.prefix, self.n)
        self.n += 1
        if fn is None:
            self.dsk[key] = args[0]
        else:
            fn = self._wrapped.setdefault(fn, _task(fn))  # one wrapper per pass, not per task
            self.dsk[key] = (functools.partial(fn, **consts) if consts else fn, *args)
        return key

    def tree(self, parts: Sequence[Any], split_every: int = SPLIT_EVERY) -> list[Any]:
        """Tree-combine ``parts`` with ``+`` (fan-in ``split_every``) down to at most
        ``split_every`` keys; :meth:`run` adds those on the client.

        The root is not a task: on a distributed cluster every dependency level costs
        a scheduler round trip (~5-10 ms measured on a 2-core LocalCluster), and the
        last few partials are small (k x d)."""
        if not parts:
            raise ValueError("a pass needs at least one partial result")
        level = list(parts)
        while len(level) > split_every:
            level = [self.task(_add_all, *level[i : i + split_every])
                     for i in range(0, len(level), split_every)]
        return level

    def run(self, keys: list[Any], n_tasks: int) -> Any:
        """Compute ``keys`` with one call of the active scheduler and add the results."""
        get = get_scheduler() or dask.threaded.get
        with _blas_limits(n_tasks):
            return _add_all(*get(self.dsk, keys))


def _map_reduce(
    name: str,
    kernel: Callable[..., Any],
    X: da.Array,
    aligned: Sequence[da.Array | None],
    shared: Any,
    per_block: Callable[[int, int], dict[str, Any]] | None = None,
    split_every: int = SPLIT_EVERY,
    *,
    raw: bool = False,
) -> Any:
    """``kernel(block, *aligned blocks, shared, **per_block(i, offset))``, tree-reduced.

    ``aligned``: arrays chunked like X's rows (weights, ...); None passes None.
    ``raw``: the kernel accepts ``scale=`` and raw stored rows (see
    :class:`daskmeans.io.RowSource`), used when X was opened from a store.
    """
    g = _Graph(name, X, *aligned)
    n_blocks = len(X.chunks[0])
    s = g.shared(shared, n_blocks)
    cols = [_block_keys(a, n_blocks) for a in aligned]
    parts = [
        g.chunk_task(kernel, i, *(c[i] for c in cols), s, raw=raw,
                     **(per_block(i, off) if per_block else {}))
        for i, off in enumerate(g.offsets)
    ]
    return g.run(g.tree(parts, split_every), n_tasks=len(parts))


def _from_source(*args: Any, kernel: Callable[..., Any], src: io.RowSource, start: int,
                 stop: int, raw: bool, **kwargs: Any) -> Any:
    """Read a chunk where the task runs and hand it to the kernel (raw and ``scale``
    for kernels that scale block by block)."""
    if raw:
        return kernel(src.read(start, stop), *args, scale=src.scale, **kwargs)
    return kernel(src.read_float(start, stop), *args, **kwargs)


# --------------------------------------------------------------------------- passes


def lloyd_pass(
    X: da.Array,
    C: np.ndarray,
    weights: da.Array | None = None,
    *,
    xsq: da.Array | None = None,
    n_top: int = 0,
    moments: bool = False,
    split_every: int = SPLIT_EVERY,
) -> K.LloydPartial:
    """One Lloyd iteration's statistics over all rows: one graph, one compute.

    ``xsq``: the rows' ``|x|^2`` chunked like X (see :func:`row_norms`), or None.
    """
    return lloyd_runs_pass(X, [C], weights, xsq=xsq, n_top=n_top, moments=moments,
                           split_every=split_every)[0]


def lloyd_runs_pass(
    X: da.Array,
    Cs: Sequence[np.ndarray],
    weights: da.Array | None = None,
    *,
    xsq: da.Array | None = None,
    n_top: int = 0,
    moments: bool = False,
    split_every: int = SPLIT_EVERY,
) -> list[K.LloydPartial]:
    """:func:`lloyd_pass` for several independent fits with the same k (``n_init``
    runs): one pass over the data, one compute, one partial per entry of ``Cs``."""
    runs = len(Cs)

    def kernel(block: np.ndarray, w: np.ndarray | None, xs: np.ndarray | None,
               C: K.Centres, offset: int, scale: float | None = None) -> Any:
        return K.lloyd_runs(block, C, w, runs=runs, xsq=xs, offset=offset, n_top=n_top,
                            moments=moments, scale=scale)

    out = _map_reduce(
        "lloyd", kernel, X, [weights, xsq], K.Centres(np.concatenate(Cs), X.dtype),
        lambda i, off: {"offset": off}, split_every, raw=True,
    )
    return list(out.parts)


def batch_pass(
    X: da.Array,
    C: np.ndarray,
    weights: da.Array | None = None,
    *,
    rows: np.ndarray | None = None,
    chunk_ids: Sequence[int] | None = None,
    n_top: int = 0,
    n_sample: int = 0,
    seed: int = 0,
    split_every: int = SPLIT_EVERY,
) -> K.LloydPartial:
    """Lloyd statistics of a mini-batch, gathered where the rows live: one compute.

    ``rows``: sorted global row indices (repeats allowed); each chunk holding some of
    them computes on just those rows, the reservoir keys use their position in the
    batch. ``chunk_ids``: whole chunks form the batch (for data streamed from disk,
    where any row read costs its chunk).
    """
    g = _Graph("batch", X, weights)
    offsets = g.offsets
    wblocks = _block_keys(weights, len(offsets))
    c = g.shared(K.Centres(C, X.dtype), len(offsets))  # prepared once, not per task
    consts = {"n_top": n_top, "n_sample": n_sample, "seed": seed}

    def task(i: int, kernel: Callable[..., Any], **kw: Any) -> Any:
        return g.chunk_task(kernel, i, wblocks[i], c, raw=True, **kw, **consts)

    parts = []
    if rows is not None:
        bounds = np.searchsorted(rows, [*offsets, X.shape[0]])
        for i, (lo, hi) in enumerate(itertools.pairwise(bounds)):
            if hi > lo:
                parts.append(task(i, _batch_rows_kernel, local=rows[lo:hi] - offsets[i],
                                  positions=np.arange(lo, hi, dtype=np.int64)))
    else:
        assert chunk_ids is not None
        parts = [task(i, _batch_chunk_kernel, offset=offsets[i]) for i in chunk_ids]
    return g.run(g.tree(parts, split_every), n_tasks=len(parts))


def _batch_rows_kernel(
    block: np.ndarray, w: np.ndarray | None, C: K.Centres, local: np.ndarray,
    positions: np.ndarray, n_top: int, n_sample: int, seed: int, scale: float | None = None,
) -> K.LloydPartial:
    return K.lloyd_partial(block[local], C, None if w is None else w[local], offset=positions,
                           n_top=n_top, n_sample=n_sample, sample_seed=seed, scale=scale)


def _batch_chunk_kernel(
    block: np.ndarray, w: np.ndarray | None, C: K.Centres, offset: int, n_top: int,
    n_sample: int, seed: int, scale: float | None = None,
) -> K.LloydPartial:
    return K.lloyd_partial(block, C, w, offset=offset, n_top=n_top, n_sample=n_sample,
                           sample_seed=seed, scale=scale)


def score_pass(
    X: da.Array, C: np.ndarray, weights: da.Array | None = None,
    labels_true: da.Array | None = None, split_every: int = SPLIT_EVERY,
) -> K.Scored:
    """SSE against ``C`` (and, given true labels, the contingency table of the nearest
    centres against them) in one pass: no per-cluster sums, no far rows."""
    if labels_true is not None:  # (same length as X: checked by the caller)
        labels_true = labels_true.rechunk((X.chunks[0],))

    def kernel(block: np.ndarray, w: np.ndarray | None, y: np.ndarray | None,
               C: K.Centres) -> K.Scored:
        return K.score_block(block, C, w, y)

    return _map_reduce("score", kernel, X, [weights, labels_true], K.Centres(C, X.dtype),
                       None, split_every)


def oversample_pass(
    X: da.Array, C: np.ndarray, weights: da.Array | None, *, seed: int, m: int,
    split_every: int = SPLIT_EVERY,
) -> K.Oversample:
    """One k-means|| round: total cost and the ``m`` rows with the largest keys."""

    def kernel(block: np.ndarray, w: np.ndarray | None, C: np.ndarray, offset: int) -> Any:
        return K.oversample_partial(block, C, w, offset=offset, seed=seed, m=m)

    return _map_reduce(
        "oversample", kernel, X, [weights], C, lambda i, off: {"offset": off}, split_every
    )


def count_pass(
    X: da.Array, C: np.ndarray, weights: da.Array | None, split_every: int = SPLIT_EVERY
) -> np.ndarray:
    """Weight of rows nearest to each row of C."""

    def kernel(block: np.ndarray, w: np.ndarray | None, C: np.ndarray) -> np.ndarray:
        return K.count_nearest(block, C, w)

    return _map_reduce("count", kernel, X, [weights], C, None, split_every)


def take_rows(X: da.Array, index: np.ndarray, weights: da.Array | None = None) -> tuple[
    np.ndarray, np.ndarray | None
]:
    """Rows ``index`` (sorted, unique) of X (and their weights), one compute."""
    index = np.asarray(index, dtype=np.int64)
    rows = X[index]
    w = weights[index] if weights is not None else None
    out = compute((rows, w), n_tasks=X.numblocks[0])
    return np.asarray(out[0]), (None if out[1] is None else np.asarray(out[1]))


# --------------------------------------------------------------------------- lazy maps


@_task
def _labels_block(block: np.ndarray, C: np.ndarray) -> np.ndarray:
    return K.assign(block, C)[0]


@_task
def _transform_block(block: np.ndarray, C: np.ndarray) -> np.ndarray:
    return K.distances(block, C)


def predict_lazy(X: da.Array, C: np.ndarray) -> da.Array:
    """(n,) int32 labels of the nearest centre, lazily."""
    return da.map_blocks(
        _labels_block, X, dask.delayed(C, pure=False), drop_axis=1, dtype=np.int32,
        meta=np.empty((0,), np.int32),
    )


def transform_lazy(X: da.Array, C: np.ndarray) -> da.Array:
    """(n, k) Euclidean distances to the centres, lazily."""
    return da.map_blocks(
        _transform_block, X, dask.delayed(C, pure=False), dtype=X.dtype,
        chunks=(X.chunks[0], (C.shape[0],)), meta=np.empty((0, 0), X.dtype),
    )


def normalize_lazy(X: da.Array) -> da.Array:
    """Rows scaled to unit norm, lazily (spherical k-means)."""
    return da.map_blocks(K.normalize_rows, X, dtype=X.dtype, meta=np.empty((0, 0), X.dtype))


# --------------------------------------------------------------------------- labels


def contingency_pass(
    labels_true: da.Array, labels_pred: da.Array, *, split_every: int = SPLIT_EVERY
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(classes, clusters, table): per-chunk bincount tables, tree-reduced, one compute.

    The label sets are discovered in the same pass: each chunk's table spans
    ``0..max`` of the values it holds, tables are zero-padded when added, and rows or
    columns that stay empty are dropped at the end.
    """
    if labels_true.shape[0] != labels_pred.shape[0]:
        raise K.LabelError(
            f"labels_true and labels_pred must have the same length, got "
            f"{labels_true.shape[0]} and {labels_pred.shape[0]}"
        )
    labels_pred = labels_pred.rechunk((labels_true.chunks[0],))
    g = _Graph("contingency", labels_true, labels_pred)
    parts = [g.chunk_task(K.pair_table, i, p)
             for i, p in enumerate(_block_keys(labels_pred, 0))]
    return g.run(g.tree(parts, split_every), n_tasks=len(parts)).finish()
