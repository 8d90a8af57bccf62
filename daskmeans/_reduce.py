"""Map-reduce over a data source: the only module that builds dask computations.

One function, :func:`map_reduce`, maps a kernel from :mod:`daskmeans.kernels` over the
blocks of a :class:`daskmeans.io.Source` and tree-reduces the per-block partial results
(``split_every`` at a time) with ``+``, in exactly one ``dask.compute`` under whatever
scheduler is active (threaded by default, a ``distributed.Client`` when one is active).
The passes below (:func:`lloyd_pass`, :func:`batch_pass`, ...) are thin wrappers that
name a kernel. Only public dask APIs are used:

- in-memory and Zarr sources: one ``dask.delayed`` task per block, reading its rows
  where it runs (a numpy view, a scattered future, or a Zarr read), and a tree of
  delayed additions;
- dask arrays: ``da.blockwise`` over the row blocks (with a small object array that
  carries each block's offset and constants) and ``da.reduction`` for the tree. This
  is the only public route to a dask array's blocks that also works with dask's array
  query planning; it costs ~4 ms more graph handling per pass than the delayed route
  (measured: 5.2 vs 1.0 ms for 2 blocks, 6.6 vs 1.9 ms for 6).

Centres are prepared once per pass and go inside each task while all copies stay under
:data:`INLINE_MAX_BYTES`, else enter the graph once as a delayed value.
"""

from __future__ import annotations

import contextlib
import functools
import operator
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import dask
import dask.array as da
import numpy as np

from . import io
from .io import ArraySource, DaskSource, NonFiniteError, Source, ZarrSource
from .kernels import bisect, bounds, common, init, lloyd, medians, scores, silhouette
from .kernels.metric import Metric, as_metric

#: partial results combined per tree node.
SPLIT_EVERY = 8
#: an operand travels inside every task (not as one graph key) while all its copies
#: together stay under this many bytes (saves a worker-to-worker fetch per pass).
INLINE_MAX_BYTES = 1 << 20
#: a store's decoded rows are held in memory for a fit while they take at most this
#: fraction of the available memory (of the workers' memory limits on a cluster).
CACHE_FRACTION = 0.25


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


def total_threads() -> int:
    """Threads computing: the cluster's worker threads, or the local thread count."""
    if using_distributed():
        from distributed import default_client

        return max(1, sum(default_client().nthreads().values()))
    return io.local_threads()


@functools.cache
def _threadpool_controller() -> Any:
    """One threadpoolctl controller (finding the BLAS libraries costs milliseconds).

    scipy's BLAS (which the compiled kernels call through ``np.dot``) is loaded first:
    a controller made before it would not limit it, and two dask threads each running
    a two-thread GEMM made bounded K=256 fits 1.35x slower."""
    import scipy.linalg.cython_blas  # noqa: F401  the BLAS numba's compiled kernels call
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()  # sees the BLAS libraries loaded by now


@contextlib.contextmanager
def _local_blas(n_tasks: int) -> Iterator[None]:
    """Under the local threaded scheduler, split the cores between dask and BLAS for
    the duration of one of our computations (restored when it returns)."""
    if using_distributed() or dask.config.get("scheduler", None) == "sync":
        yield
        return
    cores = os.cpu_count() or 1
    parallel = max(1, min(n_tasks, total_threads()))
    with _threadpool_controller().limit(limits=max(1, cores // parallel), user_api="blas"):
        yield


@contextlib.contextmanager
def client_blas() -> Iterator[None]:
    """One BLAS thread for the small linear algebra an algorithm does between passes
    (e.g. the centres' Gram matrix): a multi-threaded GEMM leaves OpenBLAS threads
    spinning for a while after it returns, and they took the cores from the next
    pass's tasks (bounded K=256 fits: 11.9 vs 8.2 s)."""
    with _threadpool_controller().limit(limits=1, user_api="blas"):
        yield


class _WorkerBlas:
    """BLAS pinned to one thread inside a distributed worker while any of our tasks
    runs there, restored when the last one ends (other users' tasks on a shared
    cluster keep their BLAS threads). Workers started without a nanny would otherwise
    run a BLAS pool as large as the machine in every worker thread (on 2 cores, 3
    workers spun 6 BLAS threads and made every task ~5x slower)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.active = 0
        self.limit: Any = None

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        try:
            from distributed import get_worker

            get_worker()
        except (ImportError, ValueError):
            yield
            return
        with self.lock:
            if self.active == 0:
                self.limit = _threadpool_controller().limit(limits=1, user_api="blas")
            self.active += 1
        try:
            yield
        finally:
            with self.lock:
                self.active -= 1
                if self.active == 0 and self.limit is not None:
                    self.limit.restore_original_limits()
                    self.limit = None


_worker_blas = _WorkerBlas()


def compute(*objs: Any, n_tasks: int = 1) -> Any:
    """``dask.compute(*objs)`` with BLAS threads split for the local scheduler."""
    with _local_blas(n_tasks):
        out = dask.compute(*objs)
    return out[0] if len(objs) == 1 else out


def _add_all(*parts: Any) -> Any:
    return functools.reduce(operator.add, parts)


# --------------------------------------------------------------------------- map-reduce


def _delayed_tree(parts: list[Any], split_every: int) -> list[Any]:
    """Delayed partials added ``split_every`` at a time until at most that many are
    left (the last level is added on the client, not as a task)."""
    add = dask.delayed(_add_all, pure=False)
    while len(parts) > split_every:
        parts = [add(*parts[j:j + split_every]) for j in range(0, len(parts), split_every)]
    return parts


def _rows_for(src: Source | _Light, rows: np.ndarray, raw: bool) -> tuple[np.ndarray, float | None]:
    """A block's rows as a kernel takes them: raw with ``scale`` when it can, else float."""
    if src.scale is not None and raw and not src.normalize:
        return rows, src.scale
    if src.scale is None and not src.normalize:
        return (rows if rows.dtype == src.dtype else rows.astype(src.dtype)), None
    return src.rows_float(rows), None


def _call(kernel: Callable[..., Any], src: Source | _Light, rows: Any, w: Any, xsq: Any,
          shared: Any, offset: int, consts: dict[str, Any], raw: bool) -> Any:
    """Inside a task: load the rows, run the kernel, name the row of any NaN/inf."""
    with _worker_blas():
        if isinstance(rows, io.ZarrBlock):
            rows = rows.read()
        x, scale = _rows_for(src, rows, raw)
        if w is not None:  # (m,) values: dask weights are checked here, in the pass
            w = np.asarray(w, dtype=np.float64)
            bad = ~(np.isfinite(w) & (w >= 0))
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise ValueError(f"sample_weight must be finite and non-negative, got "
                                 f"{w[i]!r} in row {offset + i}")
        try:
            if scale is not None:
                return kernel(x, w, xsq, shared, offset=offset, scale=scale, **consts)
            return kernel(x, w, xsq, shared, offset=offset, **consts)
        except common.NonFiniteRow as e:
            local = consts.get("local")
            row = offset + int(local[e.row] if local is not None else e.row)
            raise NonFiniteError(
                f"X contains NaN or infinity in row {row} (or values so large that "
                "squared distances overflow); clean or impute the data first") from None


class _Light:
    """What a task needs to know about its source (no data: never the whole array)."""

    def __init__(self, src: Source) -> None:
        self.scale, self.normalize, self.dtype = src.scale, src.normalize, src.dtype

    def rows_float(self, raw: np.ndarray) -> np.ndarray:
        return io.float_rows(raw, self.scale, self.normalize)


def _shared(value: Any, n_uses: int) -> Any:
    """``value`` itself while all copies stay under :data:`INLINE_MAX_BYTES`, else a
    delayed value entering the graph once."""
    nbytes = getattr(value, "nbytes", None)
    if value is None or (nbytes is not None and nbytes * max(n_uses, 1) <= INLINE_MAX_BYTES):
        return value
    return dask.delayed(value, pure=False)


def map_reduce(
    src: Source,
    kernel: Callable[..., Any],
    shared: Any = None,
    *,
    per_block: Callable[[int], dict[str, Any] | None] | None = None,
    split_every: int = SPLIT_EVERY,
    raw: bool = False,
    aligned: dict[str, Any] | None = None,
) -> Any:
    """``sum(kernel(rows_i, w_i, xsq_i, shared, offset=off_i, **per_block(i)))`` over the
    blocks of ``src``: one graph, one compute, a tree reduction.

    Parameters
    ----------
    src : the data source
    kernel : ``kernel(rows (m, d), w (m,) or None, xsq (m,) or None, shared, *, offset,
        [scale], **consts) -> partial`` where partials support ``+``
    shared : one operand every task receives (the prepared centres)
    per_block : block index -> extra keyword constants for that block, or None to skip
        the block (mini-batches); every block by default
    split_every : fan-in of the reduction tree (>= 2)
    raw : the kernel accepts raw stored rows with ``scale=`` (see :class:`Source`)
    aligned : name -> (n,) numpy or dask array; each block's slice is passed to the
        kernel as that keyword (read in the same compute for dask arrays)
    """
    blocks: list[tuple[int, dict[str, Any]]] = []
    for i in range(src.n_blocks):
        consts = {} if per_block is None else per_block(i)
        if consts is not None:
            blocks.append((i, consts))
    if not blocks:
        raise ValueError("a pass needs at least one block")
    aligned = aligned or {}
    if not isinstance(src, DaskSource) and any(isinstance(a, da.Array)
                                               for a in aligned.values()):
        # a dask array read alongside the rows (true labels): the whole pass goes the
        # dask-array route (a dask array handed to a delayed task fails with query
        # planning); only evaluation passes do this
        if per_block is not None:
            raise ValueError("aligned dask arrays need every block (no per_block)")
        src = DaskSource(src.to_dask()).with_options(weights=src.weights)
        blocks = [(i, {}) for i in range(src.n_blocks)]
    light = _Light(src)
    if isinstance(src, DaskSource):
        return _map_reduce_dask(src, light, kernel, shared, blocks, split_every, raw, aligned)
    def rows_of(a: Any, i: int) -> Any:
        return None if a is None else a[src.bounds[i]:src.bounds[i + 1]]

    s = _shared(shared, len(blocks))
    task = dask.delayed(_call, pure=False)
    parts = [
        task(kernel, light, src.block(i), rows_of(src.weights, i), src.block_xsq(i), s,
             src.offset(i), {**consts, **{k: rows_of(a, i) for k, a in aligned.items()}}, raw)
        for i, consts in blocks
    ]
    parts = _delayed_tree(parts, split_every)
    out = compute(*parts, n_tasks=len(blocks))
    return _add_all(*out) if len(parts) > 1 else out


def _dask_block(cols: list[np.ndarray], *rest: Any, kernel: Callable[..., Any], light: _Light,
                shared: Any, raw: bool, weighted: bool, names: tuple[str, ...]) -> np.ndarray:
    """``da.blockwise`` body: one block's partial in a 1-element object array (``cols``:
    the block as the one-element list of its column blocks)."""
    (x,) = cols  # not concatenated by dask: that copied every block in every pass
    w = rest[0] if weighted else None
    info = rest[-1][0]
    consts = {**info["consts"], **dict(zip(names, rest[int(weighted):-1], strict=True))}
    out = np.empty((1,), dtype=object)
    out[0] = _call(kernel, light, x, w, None, shared, info["offset"], consts, raw)
    return out


def _tree_combine(parts: Any, axis: Any = None, keepdims: bool = False,
                  computing_meta: bool = False) -> Any:
    if computing_meta:
        return np.empty((0,), dtype=object)
    flat = parts if isinstance(parts, list) else [parts]
    out = np.empty((1,), dtype=object)
    out[0] = _add_all(*[p for a in flat for p in a])
    return out


def _tree_aggregate(parts: Any, axis: Any = None, keepdims: bool = False,
                    computing_meta: bool = False) -> Any:
    if computing_meta:
        return np.empty((), dtype=object)
    return _tree_combine(parts, axis, keepdims)[0]


def _tree_chunk(x: Any, axis: Any = None, keepdims: bool = False,
                computing_meta: bool = False) -> Any:
    return x


def _map_reduce_dask(src: DaskSource, light: _Light, kernel: Callable[..., Any], shared: Any,
                     blocks: list[tuple[int, dict[str, Any]]], split_every: int,
                     raw: bool, aligned: dict[str, Any]) -> Any:
    X = src.X
    vectors = [a if isinstance(a, da.Array) else da.from_array(np.asarray(a), chunks=-1)
               for a in ([] if src.weights is None else [src.weights]) + list(aligned.values())]
    vectors = [v.rechunk((X.chunks[0],)) for v in vectors]
    if len(blocks) < src.n_blocks:  # a subset of the blocks (mini-batch steps)
        keep = [i for i, _ in blocks]
        X, *vectors = (da.concatenate([a[src.bounds[i]:src.bounds[i + 1]] for i in keep])
                       for a in (X, *vectors))
    info = np.empty(len(blocks), dtype=object)
    for j, (i, consts) in enumerate(blocks):
        info[j] = {"offset": src.offset(i), "consts": consts}
    args: list[Any] = [X, "ij"]
    for v in vectors:
        args += [v, "i"]
    args += [da.from_array(info, chunks=1), "i"]
    parts = da.blockwise(
        _dask_block, "i", *args, kernel=kernel, light=light, shared=shared, raw=raw,
        weighted=src.weights is not None, names=tuple(aligned), concatenate=False,
        align_arrays=False, dtype=object,
        meta=np.empty((0,), dtype=object), adjust_chunks={"i": 1},
    )
    total = da.reduction(
        parts, _tree_chunk, _tree_aggregate, combine=_tree_combine, axis=0,
        concatenate=False, dtype=object, split_every=split_every,
        meta=np.empty((), dtype=object),
    )
    return compute(total, n_tasks=len(blocks))


# --------------------------------------------------------------------------- holding


def memory_budget() -> int:
    """Bytes a fit may hold in memory: :data:`CACHE_FRACTION` of the memory available
    here, or of the workers' memory limits on a cluster."""
    if using_distributed():
        from distributed import default_client

        workers = default_client().scheduler_info(n_workers=-1)["workers"].values()
        total = sum(int(w.get("memory_limit") or 0) for w in workers)
    else:
        import psutil

        total = int(psutil.virtual_memory().available)
    return int(total * CACHE_FRACTION)


def _read_block(block: io.ZarrBlock, light: _Light, with_xsq: bool
                ) -> tuple[np.ndarray, np.ndarray | None]:
    rows = block.read()
    if not with_xsq:
        return rows, None
    if light.scale is not None and not light.normalize:  # raw pixels: no float32 copy
        return rows, common.row_norms_sq(rows, np.float64, scale=light.scale)
    return rows, common.row_norms_sq(light.rows_float(rows), np.float64)


def hold(src: Source, *, with_xsq: bool = True) -> Source:
    """``src`` with its blocks read once, now (one compute, one task per block) and
    kept in memory (numpy here, futures in the workers on a cluster) when the source
    asks for it (:meth:`daskmeans.io.ZarrSource.wants_cache`); every later pass takes
    the decoded rows instead of reading and decoding the store. Stored rows stay as
    stored (uint8: a quarter of float32), with each row's ``|x|^2`` unless
    ``with_xsq`` is False (k-medians never uses it). Other sources are returned as they
    are."""
    if not isinstance(src, ZarrSource) or src.held is not None:
        return src
    if not src.wants_cache(memory_budget()):
        return src
    light = _Light(src)
    read = dask.delayed(_read_block, pure=False, nout=2)
    if using_distributed():
        from distributed import default_client, wait

        # each block's |x|^2 too, held next to it (as for local blocks, ~15% of a pass
        # at K=10; without it a LocalCluster pass at K=64 took 1.2x the threaded one)
        parts = [read(src.block(i), light, with_xsq) for i in range(src.n_blocks)]
        wanted = [p[0] for p in parts] + ([p[1] for p in parts] if with_xsq else [])
        futures = default_client().compute(wanted)
        wait(futures)
        return src.with_held(futures[:src.n_blocks], futures[src.n_blocks:] or None)
    # |x|^2 once for every pass, as for in-memory arrays (~15% of a pass at K=10)
    out = compute(*[read(src.block(i), light, with_xsq) for i in range(src.n_blocks)],
                  n_tasks=src.n_blocks)
    out = out if src.n_blocks > 1 else [out]
    blocks = [r for r, _ in out]
    xsq = np.concatenate([x for _, x in out]) if with_xsq else None
    pieces = -(-total_threads() // src.n_blocks)
    if pieces <= 1:
        return src.with_held(blocks, xsq)
    # fewer blocks than threads (a store of one or two chunks, e.g. MNIST's test split):
    # each held block is cut into row ranges (views) so that every thread gets one
    # (BisectingKMeans, MNIST test, K=64: ~270 passes on one thread instead of two)
    views = [v for b in blocks for v in np.array_split(b, min(pieces, max(len(b), 1)))]
    return src.with_held(views, xsq, bounds=io._bounds([len(v) for v in views]))


# --------------------------------------------------------------------------- passes


def lloyd_runs_pass(
    src: Source, Cs: Sequence[np.ndarray], *, n_top: int = 0, moments: bool = False,
    split_every: int = SPLIT_EVERY,
) -> list[lloyd.LloydPartial]:
    """One Lloyd iteration's statistics for one or more independent fits with the same
    k (``n_init`` runs): one read of the data, one compute, one partial per entry of
    ``Cs`` (see :func:`daskmeans.kernels.lloyd.lloyd_runs`)."""
    kernel = functools.partial(_lloyd_kernel, runs=len(Cs), n_top=n_top, moments=moments)
    out = map_reduce(src, kernel, common.Centres(np.concatenate(Cs), src.dtype),
                     split_every=split_every, raw=True)
    return list(out.parts)


def lloyd_pass(src: Source, C: np.ndarray, **kwargs: Any) -> lloyd.LloydPartial:
    """:func:`lloyd_runs_pass` for one set of centres."""
    return lloyd_runs_pass(src, [C], **kwargs)[0]


def _lloyd_kernel(x: np.ndarray, w: np.ndarray | None, xsq: np.ndarray | None,
                  C: common.Centres, *, offset: int, runs: int, n_top: int, moments: bool,
                  scale: float | None = None) -> lloyd.LloydRuns:
    return lloyd.lloyd_runs(x, C, w, runs=runs, xsq=xsq, offset=offset, n_top=n_top,
                        moments=moments, scale=scale)


def batch_pass(
    src: Source, C: np.ndarray, *, rows: np.ndarray | None = None,
    blocks: Sequence[int] | None = None, n_top: int = 0, n_sample: int = 0, seed: int = 0,
    split_every: int = SPLIT_EVERY,
) -> lloyd.LloydPartial:
    """Lloyd statistics of a mini-batch, computed where the rows live: one compute.

    ``rows``: sorted global row indices (repeats allowed); each block holding some of
    them computes on just those rows, the reservoir keys use their position in the
    batch. ``blocks``: whole blocks form the batch (data streamed from storage, where
    any row read costs its block).
    """
    if rows is not None:
        cuts = np.searchsorted(rows, src.bounds)

        def per_block(i: int) -> dict[str, Any] | None:
            lo, hi = int(cuts[i]), int(cuts[i + 1])
            if hi == lo:
                return None
            return {"local": rows[lo:hi] - src.bounds[i],
                    "positions": np.arange(lo, hi, dtype=np.int64)}
    else:
        chosen = set(blocks or ())

        def per_block(i: int) -> dict[str, Any] | None:
            return {} if i in chosen else None

    kernel = functools.partial(_batch_kernel, n_top=n_top, n_sample=n_sample, seed=seed)
    return map_reduce(src, kernel, common.Centres(C, src.dtype), per_block=per_block,
                      split_every=split_every, raw=True)


def _batch_kernel(x: np.ndarray, w: np.ndarray | None, xsq: np.ndarray | None,
                  C: common.Centres, *, offset: int, n_top: int, n_sample: int, seed: int,
                  scale: float | None = None, local: np.ndarray | None = None,
                  positions: np.ndarray | None = None) -> lloyd.LloydPartial:
    if local is not None:
        x, w = x[local], (None if w is None else w[local])
    return lloyd.lloyd_partial(x, C, w, offset=offset if positions is None else positions,
                           n_top=n_top, n_sample=n_sample, sample_seed=seed, scale=scale)


def bounds_pass(
    src: Source, C: np.ndarray, states: Sequence[Any], steps: dict[int, bounds.Drift | None],
    *, version: int, groups: np.ndarray | None = None, n_top: int = 0,
    moments: bool = False, split_every: int = SPLIT_EVERY,
) -> tuple[bounds.BoundsPartial, dict[int, Any], dict[int, bounds.BoundsSummary]]:
    """One Lloyd iteration with per-row bounds (:func:`daskmeans.kernels.bounds.bounds_block`)
    over the blocks named in ``steps`` (block -> how the centres moved since its
    bounds; the other blocks are settled and not read): one compute.

    ``states[i]``: block ``i``'s bounds, a :class:`~daskmeans.kernels.BlockBounds` or,
    on a cluster, a future of one in the worker that made it (bounds stay where they
    were computed; only the partial sums and the per-cluster summaries come back).

    Returns (summed partial, new bounds of the blocks read, their summaries).
    """
    blocks = sorted(steps)
    if not blocks:
        raise ValueError("a pass needs at least one block")
    light = _Light(src)
    cen = _shared(common.Centres(C, src.dtype), len(blocks))
    C64 = _shared(np.asarray(C, np.float64), len(blocks))
    local = not using_distributed()

    def calls(nout: int | None) -> list[Any]:
        task = dask.delayed(_bounds_call, pure=False, nout=nout)
        return [task(light, src.block(i),
                     None if src.weights is None else src.weights[src.bounds[i]:src.bounds[i + 1]],
                     states[i], steps[i], cen, C64, groups, src.offset(i), version, n_top,
                     moments) for i in blocks]

    if local and len(blocks) <= split_every:
        # each block's (partial, bounds, summary) as one result, the partials added here:
        # dask's own time per compute 2.1 -> 1.0 ms (a K=10 fit makes 44 passes of ~10 ms)
        with _local_blas(len(blocks)):
            (got,) = dask.compute(calls(None))
        by = dict(zip(blocks, got, strict=True))
        return (_add_all(*(g[0] for g in got)), {i: g[1] for i, g in by.items()},
                {i: g[2] for i, g in by.items()})
    parts, new, summaries = [], {}, {}
    for i, (p, st, sm) in zip(blocks, calls(3), strict=True):
        parts.append(p)
        new[i], summaries[i] = st, sm
    parts = _delayed_tree(parts, split_every)
    if not local:  # the bounds stay in the workers as futures
        from distributed import default_client

        client = default_client()
        futures = client.compute([*parts, *summaries.values(), *new.values()])
        got = client.gather(futures[:len(parts) + len(summaries)])
        total = _add_all(*got[:len(parts)])
        sums = dict(zip(summaries, got[len(parts):], strict=True))
        return total, dict(zip(new, futures[len(parts) + len(summaries):], strict=True)), sums
    with _local_blas(len(blocks)):
        out = dask.compute(parts, list(new.values()), list(summaries.values()))
    got_parts, got_new, got_sums = out
    return (_add_all(*got_parts), dict(zip(new, got_new, strict=True)),
            dict(zip(summaries, got_sums, strict=True)))


def bounds_labels(states: Sequence[Any]) -> np.ndarray | None:
    """(n,) int32: the rows' labels held in the blocks' bounds, in row order; None
    when the bounds are futures in a cluster's workers or a block has none yet."""
    if not all(isinstance(st, bounds.BlockBounds) for st in states):
        return None
    labels = np.concatenate([st.labels for st in states]).astype(np.int32, copy=False)
    return None if (labels < 0).any() else labels


def _bounds_call(light: _Light, rows: Any, w: Any, state: bounds.BlockBounds,
                 step: bounds.Drift | None, C: common.Centres, C64: np.ndarray,
                 groups: np.ndarray | None, offset: int, version: int, n_top: int, moments: bool
                 ) -> tuple[bounds.BoundsPartial, bounds.BlockBounds, bounds.BoundsSummary]:
    kernel = functools.partial(_bounds_kernel, state=state, step=step, C64=C64,
                               groups=groups, version=version, n_top=n_top, moments=moments)
    return _call(kernel, light, rows, w, None, C, offset, {}, True)


def _bounds_kernel(x: np.ndarray, w: np.ndarray | None, xsq: np.ndarray | None,
                   C: common.Centres, *, offset: int, state: bounds.BlockBounds,
                   step: bounds.Drift | None,
                   C64: np.ndarray, groups: np.ndarray | None, version: int, n_top: int,
                   moments: bool, scale: float | None = None
                   ) -> tuple[bounds.BoundsPartial, bounds.BlockBounds, bounds.BoundsSummary]:
    return bounds.bounds_block(x, C, state, step, w, version=version, n_top=n_top,
                          moments=moments, offset=offset, scale=scale, centres64=C64,
                          groups=groups)


def reads_raw_uint8(src: Source) -> bool:
    """True when the kernels get ``src``'s blocks as raw uint8 rows with a scale."""
    return (isinstance(src, ZarrSource) and src.scale is not None and not src.normalize
            and np.dtype(src.array.dtype) == np.uint8)


def _kept_call(kernel: Callable[..., Any], light: _Light, rows: Any, w: Any, shared: Any,
               offset: int, state: Any, raw: bool) -> Any:
    return _call(kernel, light, rows, w, None, shared, offset, {"state": state}, raw)


def map_reduce_kept(
    src: Source, kernel: Callable[..., Any], shared: Any, states: Sequence[Any] | None, *,
    keep: bool, split_every: int = SPLIT_EVERY, raw: bool = False,
) -> tuple[Any, list[Any] | None]:
    """:func:`map_reduce` over every block of a numpy or Zarr source whose tasks also
    receive ``state=states[i]`` (something a block's task made in an earlier pass,
    kept where it was made) and, with ``keep``, return ``(partial, new state)``: the
    partials are tree-reduced and the new states kept (numpy here, futures in the
    workers on a cluster: only the reduced partial comes back). One compute.

    Returns (summed partial, new states or None).
    """
    if isinstance(src, DaskSource):
        raise TypeError("per-block state needs a numpy or Zarr source, not a dask array")
    n = src.n_blocks
    light = _Light(src)
    s = _shared(shared, n)
    task = dask.delayed(_kept_call, pure=False, nout=2 if keep else None)
    parts, kept = [], []
    for i in range(n):
        w = None if src.weights is None else src.weights[src.bounds[i]:src.bounds[i + 1]]
        out = task(kernel, light, src.block(i), w, s, src.offset(i),
                   None if states is None else states[i], raw)
        if keep:
            part, state = out
            parts.append(part)
            kept.append(state)
        else:
            parts.append(out)
    parts = _delayed_tree(parts, split_every)
    if keep and using_distributed():  # the states stay in the workers as futures
        from distributed import default_client

        client = default_client()
        futures = client.compute([*parts, *kept])
        return _add_all(*client.gather(futures[:len(parts)])), futures[len(parts):]
    with _local_blas(n):
        got, got_kept = dask.compute(parts, kept)
    return _add_all(*got), (list(got_kept) if keep else None)


def median_assign_pass(
    src: Source, C: np.ndarray, grid: medians.MedianGrid, *, n_top: int = 0, moments: bool = False,
    split_every: int = SPLIT_EVERY,
) -> tuple[medians.MedianPartial, list[Any] | None]:
    """The first pass of a k-medians iteration (:func:`daskmeans.kernels.medians.median_assign`):
    one compute. Returns the summed partial and each block's labels, kept where the
    block is (numpy, or futures on a cluster) for the iteration's later passes; None
    for a dask array (no public per-block state: later passes assign again)."""
    kernel = functools.partial(_median_assign_kernel, grid=grid, n_top=n_top, moments=moments)
    cen = medians.L1Centres(C)
    if isinstance(src, DaskSource):
        return map_reduce(src, functools.partial(kernel, keep=False), cen,
                          split_every=split_every, raw=grid.raw), None
    return map_reduce_kept(src, functools.partial(kernel, keep=True), cen, None, keep=True,
                           split_every=split_every, raw=grid.raw)


def _median_assign_kernel(x: np.ndarray, w: np.ndarray | None, xsq: np.ndarray | None,
                          C: medians.L1Centres, *, offset: int, grid: medians.MedianGrid,
                          n_top: int, moments: bool, keep: bool, scale: float | None = None,
                          state: Any = None) -> Any:
    part, labels = medians.median_assign(x, C, w, grid=grid, offset=offset, n_top=n_top,
                                   moments=moments, scale=scale)
    return (part, labels) if keep else part


def median_refine_pass(src: Source, grid: medians.MedianGrid, step: medians.MedianStep,
                       labels: Sequence[Any] | None, split_every: int = SPLIT_EVERY
                       ) -> medians.MedianHist:
    """A later pass of a k-medians iteration (:func:`daskmeans.kernels.medians.median_refine`)
    over the blocks with their kept ``labels`` (or, when None, assigning the rows
    again with ``step.centres``): one compute."""
    kernel = functools.partial(_median_refine_kernel, grid=grid)
    if labels is None:
        return map_reduce(src, kernel, step, split_every=split_every, raw=grid.raw)
    return map_reduce_kept(src, kernel, step, labels, keep=False, split_every=split_every,
                           raw=grid.raw)[0]


def _median_refine_kernel(x: np.ndarray, w: np.ndarray | None, xsq: np.ndarray | None,
                          step: medians.MedianStep, *, offset: int, grid: medians.MedianGrid,
                          scale: float | None = None, state: Any = None) -> medians.MedianHist:
    return medians.median_refine(x, w, step, grid=grid, labels=state, offset=offset, scale=scale)


def range_pass(src: Source, split_every: int = SPLIT_EVERY) -> medians.ValueRange:
    """Per-feature min and max of the rows (as float): one compute; a row holding NaN
    or infinity raises :class:`~daskmeans.io.NonFiniteError` naming it."""
    return map_reduce(src, _range_kernel, split_every=split_every)


def _range_kernel(x: np.ndarray, w: np.ndarray | None, xsq: np.ndarray | None, shared: Any,
                  *, offset: int) -> medians.ValueRange:
    return medians.value_range(x)


def _prepared(C: np.ndarray | bisect.TreeCentres, dtype: np.dtype, metric: str | Metric
              ) -> Any:
    """Centres prepared once per pass for the metric's distances."""
    if isinstance(C, bisect.TreeCentres):
        return C
    return as_metric(metric).prepare(C, dtype)


def score_pass(src: Source, C: np.ndarray | bisect.TreeCentres, labels_true: Any = None,
               split_every: int = SPLIT_EVERY, metric: str = "euclidean") -> scores.Scored:
    """The objective against ``C`` (SSE; the sum of L1 distances for
    ``metric="manhattan"``; to the leaves of a bisecting tree for
    :class:`~daskmeans.kernels.TreeCentres`) and, given true labels (n,), the
    contingency table of the rows' clusters against them, in one pass."""
    kernel = functools.partial(_score_kernel, metric=metric)
    return map_reduce(src, kernel, _prepared(C, src.dtype, metric), split_every=split_every,
                      aligned=None if labels_true is None else {"labels": labels_true})


def _score_kernel(x: np.ndarray, w: np.ndarray | None, xsq: np.ndarray | None,
                  C: common.Centres, *, offset: int, metric: str,
                  labels: np.ndarray | None = None) -> scores.Scored:
    return scores.score_block(x, C, w, None if labels is None else np.asarray(labels), metric)


def oversample_pass(src: Source, C: np.ndarray, *, seed: int, m: int,
                    split_every: int = SPLIT_EVERY, metric: str = "euclidean") -> init.Oversample:
    """One k-means|| round: total cost and the ``m`` rows with the largest keys."""
    kernel = functools.partial(_oversample_kernel, seed=seed, m=m, metric=metric)
    return map_reduce(src, kernel, C, split_every=split_every)


def _oversample_kernel(x: np.ndarray, w: np.ndarray | None, xsq: np.ndarray | None,
                       C: np.ndarray, *, offset: int, seed: int, m: int,
                       metric: str) -> init.Oversample:
    return init.oversample_partial(x, C, w, offset=offset, seed=seed, m=m, metric=metric)


def count_pass(src: Source, C: np.ndarray, split_every: int = SPLIT_EVERY,
               metric: str = "euclidean") -> np.ndarray:
    """Weight of rows nearest to each row of C."""
    return map_reduce(src, functools.partial(_count_kernel, metric=metric), C,
                      split_every=split_every)


def _count_kernel(x: np.ndarray, w: np.ndarray | None, xsq: np.ndarray | None,
                  C: np.ndarray, *, offset: int, metric: str) -> np.ndarray:
    return init.count_nearest(x, C, w, metric)


def bisect_pass(src: Source, step: bisect.BisectStep, split_every: int = SPLIT_EVERY, *,
                nodes: Sequence[Any] | None = None, keep: bool = False
                ) -> tuple[bisect.BisectPartial, list[Any] | None]:
    """One pass of a round of bisections (:func:`daskmeans.kernels.bisect.bisect_block`): every
    2-means of the round (or their init samples) in one read of the data, one compute.

    The tree does not change during a round: with ``keep`` each block's nodes (where
    its rows end in the tree) stay where the block is (numpy, or futures on a cluster)
    and are returned for the round's later passes (``nodes``), which then do not
    descend the tree again (at K=32 the descent was two thirds of a pass). A dask array
    has no public per-block state: its passes descend every time (None returned). A
    store's uint8 rows reach the kernels raw (:func:`reads_raw_uint8`): each row is
    scaled as it is used, not the whole block in every pass (the same results).
    """
    if isinstance(src, DaskSource):
        kernel = functools.partial(_bisect_kernel, keep=False)
        return map_reduce(src, kernel, step, split_every=split_every), None
    return map_reduce_kept(src, functools.partial(_bisect_kernel, keep=keep), step, nodes,
                           keep=keep, split_every=split_every, raw=reads_raw_uint8(src))


def _bisect_kernel(x: np.ndarray, w: np.ndarray | None, xsq: np.ndarray | None,
                   step: bisect.BisectStep, *, offset: int, keep: bool, state: Any = None,
                   scale: float | None = None) -> Any:
    nodes = state if state is not None else bisect.tree_nodes(x, step.tree, scale)
    part = bisect.bisect_block(x, w, step, offset=offset, nodes=nodes, scale=scale)
    return (part, nodes) if keep else part


def root_pass(src: Source, split_every: int = SPLIT_EVERY) -> bisect.RootPartial:
    """Column sums, weights and ``sum w |x|^2`` of all rows (a bisecting tree's root)."""
    return map_reduce(src, _root_kernel, split_every=split_every)


def _root_kernel(x: np.ndarray, w: np.ndarray | None, xsq: np.ndarray | None, shared: Any,
                 *, offset: int) -> bisect.RootPartial:
    return bisect.root_block(x, w)


def take_rows(src: Source, index: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Rows ``index`` (sorted) of the source as float rows (and their weights): one
    compute, each block sending only its rows."""
    index = np.asarray(index, dtype=np.int64)
    if isinstance(src, ArraySource):  # in memory (cosine rows are normalised up front)
        w = None if src.weights is None else np.asarray(src.weights)[index]
        return src.X[index], w
    cuts = np.searchsorted(index, src.bounds)

    def per_block(i: int) -> dict[str, Any] | None:
        lo, hi = int(cuts[i]), int(cuts[i + 1])
        return None if hi == lo else {"local": index[lo:hi] - src.bounds[i]}

    out = map_reduce(src, _take_kernel, per_block=per_block)
    return out.rows, out.weights


def _take_kernel(x: np.ndarray, w: np.ndarray | None, xsq: np.ndarray | None, shared: Any,
                 *, offset: int, local: np.ndarray) -> common.Rows:
    return common.Rows(np.array(x[local]), None if w is None else np.asarray(w, np.float64)[local])


def gather_pass(src: Source, index: np.ndarray, vectors: dict[str, Any] | None = None, *,
                split_every: int = SPLIT_EVERY) -> scores.Gathered:
    """Rows ``index`` (sorted, distinct) of the source as float rows, and the same
    entries of each (n,) vector in ``vectors`` (numpy or dask, e.g. labels): one
    compute (none for numpy rows and vectors), each block sending only its rows."""
    index = np.asarray(index, dtype=np.int64)
    vectors = vectors or {}
    if isinstance(src, ArraySource) and not any(isinstance(v, da.Array)
                                                for v in vectors.values()):
        return scores.Gathered(index, np.asarray(src.X[index]),
                          {k: np.asarray(v)[index] for k, v in vectors.items()})
    out = map_reduce(src, _gather_kernel, index, split_every=split_every, aligned=vectors)
    return out.sorted()


def _gather_kernel(x: np.ndarray, w: np.ndarray | None, xsq: np.ndarray | None,
                   index: np.ndarray, *, offset: int, **vectors: Any) -> scores.Gathered:
    return scores.gather(x, index, offset=offset, **vectors)


def cluster_distance_pass(src: Source, labels: Any, queries: silhouette.Queries, *,
                          split_every: int = SPLIT_EVERY) -> silhouette.ClusterDistances:
    """Distances from every query row to every row of the source, summed per cluster
    of the row (``labels``: (n,) numpy or dask, read in the same pass), in float64:
    one compute (:func:`daskmeans.kernels.silhouette.cluster_distance_sums` per block)."""
    return map_reduce(src, _cluster_distance_kernel, queries, split_every=split_every,
                      aligned={"labels": labels})


def _cluster_distance_kernel(x: np.ndarray, w: np.ndarray | None, xsq: np.ndarray | None,
                             queries: silhouette.Queries, *, offset: int,
                             labels: np.ndarray) -> silhouette.ClusterDistances:
    return silhouette.cluster_distance_sums(x, np.asarray(labels), queries, offset=offset)


def pca_fit(src: Source, n_components: int = 2, *, svd_solver: str = "randomized",
            iterated_power: int = 4, random_state: Any = None) -> Any:
    """``dask_ml.decomposition.PCA`` fitted on every row of the source (read as a dask
    array), its ``mean_`` computed too (dask-ml leaves it lazy, and every later
    ``transform`` would read the data again for it): two computes.

    The randomized solver with 4 power iterations by default: dask-ml's default
    ``iterated_power=0`` is inaccurate (on scikit-learn's digits its first two
    components explained 25.1% of the variance instead of the exact 28.5%; on 8,000
    MNIST rows 14.5% instead of 17.6%); with 4 they equal the exact ones to 1e-6 at a
    tenth of the exact ``"tsqr"`` solver's time (1.0 vs 8-10 s on 8,000 MNIST rows here),
    reading the rows ``2 * iterated_power + 2`` times instead of once."""
    if dask.config.get("array.query-planning", None):
        raise NotImplementedError(
            "dask-ml's PCA needs dask.array.linalg, which dask's array query planning "
            "(config array.query-planning=True) does not implement; run without it")
    try:
        from dask_ml.decomposition import PCA
    except ImportError as e:  # pragma: no cover - dask-ml is a dependency
        raise ImportError("the PCA view needs dask-ml: pip install dask-ml") from e
    pca = PCA(n_components=n_components, svd_solver=svd_solver, iterated_power=iterated_power,
              random_state=random_state)
    with _local_blas(src.n_blocks):
        pca.fit(src.to_dask())
    if isinstance(pca.mean_, da.Array):
        pca.mean_ = compute(pca.mean_, n_tasks=src.n_blocks)
    return pca


def contingency_pass(labels_true: da.Array, labels_pred: da.Array, *,
                     split_every: int = SPLIT_EVERY) -> tuple[np.ndarray, np.ndarray,
                                                                np.ndarray]:
    """(classes, clusters, table): per-chunk bincount tables, tree-reduced, one compute.

    The label sets are discovered in the same pass: each chunk's table spans
    ``0..max`` of the values it holds, tables are zero-padded when added, and rows or
    columns that stay empty are dropped at the end.
    """
    if labels_true.shape[0] != labels_pred.shape[0]:
        raise scores.LabelError(
            f"labels_true and labels_pred must have the same length, got "
            f"{labels_true.shape[0]} and {labels_pred.shape[0]}"
        )
    labels_pred = labels_pred.rechunk((labels_true.chunks[0],))
    parts = da.blockwise(_pair_block, "i", labels_true, "i", labels_pred, "i",
                         dtype=object, meta=np.empty((0,), dtype=object),
                         adjust_chunks={"i": 1})
    total = da.reduction(parts, _tree_chunk, _tree_aggregate, combine=_tree_combine, axis=0,
                         concatenate=False, dtype=object, split_every=split_every,
                         meta=np.empty((), dtype=object))
    return compute(total, n_tasks=labels_true.numblocks[0]).finish()


def _pair_block(t: np.ndarray, p: np.ndarray) -> np.ndarray:
    out = np.empty((1,), dtype=object)
    out[0] = scores.pair_table(t, p)
    return out


# --------------------------------------------------------------------------- lazy maps


def _labels_of(labels: Callable[[], np.ndarray], block_info: Any) -> np.ndarray:
    """A block's ``labels()``; a non-finite row is named by its global index."""
    try:
        return labels()
    except common.NonFiniteRow as e:
        start = block_info[0]["array-location"][0][0] if block_info else 0
        raise NonFiniteError(f"X contains NaN or infinity in row {start + e.row}: "
                             "no cluster can be predicted for it") from None


def _labels_block(x: np.ndarray, C: np.ndarray, metric: str, scale: float | None = None,
                  block_info: Any = None) -> np.ndarray:
    """(m,) labels of a block's rows (raw stored rows standing for ``float32(x) * scale``
    with ``scale``: scaled block by block inside the labelling)."""
    with _worker_blas():
        return _labels_of(lambda: as_metric(metric).nearest_labels(x, C, scale=scale),
                          block_info)


def _transform_block(x: np.ndarray, C: np.ndarray, metric: str) -> np.ndarray:
    with _worker_blas():
        return as_metric(metric).distances(x, C)


def _tree_labels_block(x: np.ndarray, tree: bisect.TreeSnapshot, leaf_label: np.ndarray,
                       scale: float | None = None, block_info: Any = None) -> np.ndarray:
    return _labels_of(lambda: bisect.tree_labels(x, tree, leaf_label, scale), block_info)


def predict_tree_lazy(src: Source, tree: bisect.TreeSnapshot, leaf_label: np.ndarray) -> da.Array:
    """(n,) int32 label of the leaf of a bisecting tree each row reaches, lazily (a
    store's uint8 rows raw, as in :func:`bisect_pass`)."""
    if isinstance(src, ZarrSource) and reads_raw_uint8(src):
        X, scale = src.raw_dask(), src.scale
    else:
        X, scale = src.to_dask(), None
    return da.map_blocks(_tree_labels_block, X, tree=tree, leaf_label=leaf_label, scale=scale,
                         drop_axis=1, dtype=np.int32, meta=np.empty((0,), np.int32))


def predict_lazy(src: Source, C: np.ndarray, metric: str | Metric = "euclidean") -> da.Array:
    """(n,) int32 labels of the nearest centre (in the metric's distance: L1 for
    ``metric="manhattan"``), lazily. A store's raw pixels are scaled block by block
    inside the labelling (no float32 copy of each chunk)."""
    name = as_metric(metric).name  # a name travels in the graph
    if isinstance(src, ZarrSource) and src.scale is not None and not src.normalize:
        raw = src.raw_dask()
        return da.map_blocks(_labels_block, raw, C=C.astype(np.float32), metric=name,
                             scale=src.scale, drop_axis=1, dtype=np.int32,
                             meta=np.empty((0,), np.int32))
    X = src.to_dask()
    return da.map_blocks(_labels_block, X, C=C.astype(X.dtype, copy=False), metric=name,
                         drop_axis=1, dtype=np.int32, meta=np.empty((0,), np.int32))


def labels_array(src: Source, labels: np.ndarray) -> da.Array:
    """Labels already in memory as a dask array in ``src``'s row blocks (what a fit on
    lazy data returns as ``labels_``)."""
    return da.from_array(labels, chunks=(tuple(np.diff(src.bounds).tolist()),))


def transform_lazy(src: Source, C: np.ndarray, metric: str | Metric = "euclidean"
                   ) -> da.Array:
    """(n, k) distances to the centres in the metric's distance (Euclidean; L1 for
    ``metric="manhattan"``), lazily."""
    X = src.to_dask()
    return da.map_blocks(_transform_block, X, C=C.astype(X.dtype, copy=False),
                         metric=as_metric(metric).name, dtype=X.dtype,
                         chunks=(X.chunks[0], (C.shape[0],)), meta=np.empty((0, 0), X.dtype))


__all__ = ["ArraySource", "DaskSource", "ZarrSource", "compute", "map_reduce", "map_reduce_kept"]
