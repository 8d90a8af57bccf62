"""Holding a source's rows in memory for a fit: the one place rows are held.

:func:`hold` keeps a source's rows in memory with their ``|x|^2`` for every later pass
of :mod:`daskmeans.engine.reductions`: an in-memory array's norms (and, on a cluster,
its blocks in the workers), a store's blocks read once.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import dask
import dask.array as da
import numpy as np

from ..io.errors import DaskmeansError
from ..kernels.common import is_sparse, row_norms_sq
from .reductions import TaskSource, unreadable_block
from .schedule import compute, memory_block_rows, memory_budget, total_threads, using_distributed
from .source import (
    ArraySource,
    DaskSource,
    Source,
    SparseDaskSource,
    ZarrBlock,
    ZarrSource,
    block_offsets,
    even_offsets,
)

__all__ = ["held_summary", "hold"]

def _read_block(block: ZarrBlock, task_src: TaskSource, with_xsq: bool
                ) -> tuple[np.ndarray, np.ndarray | None]:
    """A held block's stored rows and (with ``with_xsq``) their float64 ``|x|^2``."""
    rows = block.read()
    if not with_xsq:
        return rows, None
    if task_src.scale is not None and not task_src.normalize:  # raw pixels: no float32 copy
        return rows, row_norms_sq(rows, np.float64, scale=task_src.scale)
    return rows, row_norms_sq(task_src.rows_float(rows), np.float64)


def hold(src: Source, *, with_xsq: bool = True) -> Source:
    """``src`` with its rows held in memory for every later pass of a fit, with each
    row's ``|x|^2`` unless ``with_xsq`` is False (k-medians never uses it): the one
    place rows are held.

    - an in-memory array here: its ``|x|^2`` computed once (a pass need not recompute
      it);
    - an in-memory array on a cluster: its blocks shipped to the workers once, spread
      out, each block's ``|x|^2`` computed in the worker holding it;
    - a store (:class:`ZarrSource`) that asks for it (:meth:`ZarrSource.wants_cache`:
      within the memory budget by default): its blocks read once, now (one compute,
      one task per block), and kept as stored (uint8: a quarter of float32), numpy
      here or futures in the workers; every later pass takes the decoded rows instead
      of reading and decoding the store;
    - a dask array within the memory budget (sparse blocks: their CSR size, measured
      by one more compute when their dense size is over it): its graph computed once,
      now (one compute), each block kept in the float dtype, numpy here (in the array's own row
      chunks) or persisted in the worker that computed it, with its
      ``|x|^2`` and weights; every later pass then takes the blocks as it takes a held
      store's, bounds and all, and the user's graph is not computed again;
    - anything else (a larger dask array, a store streamed by choice): as it is.

    On a cluster, numpy sample weights are held in the workers too, a block each
    (:attr:`Source.held_weights`): no pass's graph carries anything per row.

    An in-memory source is completed in place and returned (its rows are already the
    caller's memory; holding adds their norms and where they live); a held store is a
    new source (the store itself can still be streamed). Holding twice does nothing
    more.
    """
    if isinstance(src, ArraySource):
        return _hold_weights(_hold_array(src, with_xsq))
    if src.held is not None:
        return src
    if isinstance(src, DaskSource):
        if src.nbytes > memory_budget() and (
                not isinstance(src, SparseDaskSource) or src.measure() > memory_budget()):
            return src  # streams: every pass computes the user's graph
        held = _hold_dask_in_workers(src, with_xsq) if using_distributed() else \
            _hold_dask_here(src, with_xsq)
        return _hold_weights(held)
    if not isinstance(src, ZarrSource) or not src.wants_cache(memory_budget()):
        return src
    if using_distributed():
        return _hold_weights(_hold_store_in_workers(src, with_xsq))
    return _hold_store_here(src, with_xsq)


def held_summary(src: Source) -> str:
    """One line saying what a fit holds of ``src`` and against which budget (the
    progress line of the ``hold`` phase)."""
    budget = _mib(memory_budget())
    if src.held is None and not isinstance(src, ArraySource):
        return (f"streaming {_mib(src.nbytes)} of rows (above the memory budget of "
                f"{budget}, or cache=False): read in every pass, settled blocks skipped")
    where = "in the workers" if using_distributed() else "in this process"
    xsq = " and |x|^2" if src.xsq is not None else ""
    what = "an in-memory array" if isinstance(src, ArraySource) else f"{src.n_blocks} blocks"
    return f"holding {_mib(src.nbytes)} of rows{xsq} {where} ({what}; budget {budget})"


def _mib(nbytes: int) -> str:
    return f"{nbytes / (1 << 30):.1f} GiB" if nbytes >= 1 << 30 else f"{nbytes / (1 << 20):.1f} MiB"


def _hold_weights(src: Source) -> Source:
    """On a cluster, numpy sample weights held in the workers, a future per block (else
    every pass's graph would carry them, eight bytes a row)."""
    if not using_distributed() or not isinstance(src.weights, np.ndarray) or (
            src.held_weights is not None):
        return src
    from distributed import default_client

    parts = [src.weights[a:b] for a, b in itertools.pairwise(src.offsets)]
    src.held_weights = default_client().scatter(parts, hash=False)
    return src


def _dask_held_block(cols: list[np.ndarray], *w: np.ndarray, task_src: TaskSource,
                     with_xsq: bool) -> np.ndarray:
    """``da.blockwise`` body: a block of a user's dask array computed for holding, as a
    1-element object array of (rows in the float dtype, their ``|x|^2``, the weights)."""
    (x,) = cols
    rows = x.astype(task_src.dtype, copy=False) if is_sparse(x) else \
        np.ascontiguousarray(x, dtype=task_src.dtype)
    xsq = row_norms_sq(task_src.rows_float(rows), np.float64) if with_xsq else None
    out = np.empty((1,), dtype=object)
    out[0] = (rows, xsq, np.asarray(w[0], np.float64) if w else None)
    return out


def _dask_parts(src: DaskSource, with_xsq: bool) -> da.Array:
    """(n_blocks,) object dask array: each block of the user's array as held (public
    ``da.blockwise``, which dask's array query planning has too)."""
    args: list[Any] = [src.X, "ij"]
    if isinstance(src.weights, da.Array):  # computed with the rows, in the same tasks
        args += [src.weights.rechunk((src.X.chunks[0],)), "i"]
    return da.blockwise(_dask_held_block, "i", *args, task_src=TaskSource(src),
                        with_xsq=with_xsq, concatenate=False, align_arrays=False,
                        dtype=object, meta=np.empty((0,), dtype=object),
                        adjust_chunks={"i": 1})


def _named_errors(src: DaskSource, read: Callable[[], Any]) -> Any:
    """``read()``; an error of the user's graph (a codec's, reading a damaged chunk of
    a store the array was built over) raised as the
    :class:`~daskmeans.io.errors.BlockReadError` naming the first block that cannot be
    computed, as a pass over the array names it
    (:func:`~daskmeans.engine.reductions.unreadable_block`)."""
    try:
        return read()
    except DaskmeansError:
        raise
    except (RuntimeError, ValueError) as e:  # codecs' errors; not a lost worker's
        unreadable = unreadable_block(src, range(src.n_blocks))
        if unreadable is None:  # every block computes alone: the error was not the input's
            raise
        raise unreadable from e


def _hold_dask_here(src: DaskSource, with_xsq: bool) -> DaskSource:
    """:func:`hold` for a dask array under the local scheduler: its graph computed once
    (one compute), the blocks kept as numpy in the array's own row chunks (so that a
    store and a dask array over it in the same blocks give the same fit, bit for bit),
    cut into row ranges when there are fewer blocks than threads, as a store's are."""
    got = _named_errors(src, lambda: compute(_dask_parts(src, with_xsq),
                                             n_tasks=src.n_blocks))
    rows = [g[0] for g in got]
    xsq = np.concatenate([g[1] for g in got]) if with_xsq else None
    weights = src.weights
    if isinstance(weights, da.Array):
        weights = np.concatenate([g[2] for g in got])
    blocks = _per_thread(rows)
    return src.with_held(blocks, xsq, block_offsets([b.shape[0] for b in blocks]), weights)


def _per_thread(blocks: list[np.ndarray]) -> list[np.ndarray]:
    """Held blocks cut into row ranges (views) when there are fewer than threads, so
    that every pass of the fit runs on every thread."""
    pieces = -(-total_threads() // max(len(blocks), 1))
    if pieces <= 1 or is_sparse(blocks[0]):  # CSR blocks are held whole
        return blocks
    return [v for b in blocks for v in np.array_split(b, min(pieces, max(len(b), 1)))]


def _part(item: Any, i: int) -> Any:
    """Entry ``i`` of a held block's (rows, |x|^2, weights), inside the worker."""
    return item[0][i]


def _hold_dask_in_workers(src: DaskSource, with_xsq: bool) -> DaskSource:
    """:func:`hold` for a dask array on a cluster: its graph computed once, each block
    persisted in the worker that made it (futures, in block order by their keys: the
    dask collection protocol), its ``|x|^2`` and weights beside it."""
    from distributed import default_client, futures_of, wait

    client = default_client()
    parts = client.persist(_dask_parts(src, with_xsq))
    # a dask array's chunk keys are ``(name, i)``: in block order by ``i`` (with query
    # planning the persisted collection's own keys may name another, equal expression)
    items = sorted(futures_of(parts), key=lambda f: f.key[1:])
    if len(items) != src.n_blocks:
        raise RuntimeError(f"persisting {src.n_blocks} blocks gave {len(items)} futures")
    rows = [client.submit(_part, f, 0, pure=False) for f in items]
    xsq = [client.submit(_part, f, 1, pure=False) for f in items] if with_xsq else None
    held_w = None
    if isinstance(src.weights, da.Array):
        held_w = [client.submit(_part, f, 2, pure=False) for f in items]
    wait(rows + (xsq or []))
    failed = [f for f in rows if f.status == "error"]
    if failed:
        _named_errors(src, failed[0].result)
    weights = src.weights if held_w is None else np.concatenate(client.gather(held_w))
    del parts, items  # the (rows, |x|^2, weights) objects: released
    out = src.with_held(rows, xsq, src.offsets, weights)
    out.held_weights = held_w
    return out


def _aligned(a: np.ndarray) -> np.ndarray:
    """A received block as an aligned C-contiguous array: buffers a worker receives may
    be unaligned for float32, which slows every kernel."""
    return a if a.flags.aligned and a.flags.c_contiguous else np.array(a, order="C")


def _block_xsq(rows: np.ndarray) -> np.ndarray:
    """(m,) float64 ``|x|^2`` of a block held in a worker, computed there."""
    return row_norms_sq(rows, np.float64)


def _hold_array(src: ArraySource, with_xsq: bool) -> ArraySource:
    """:func:`hold` for an in-memory array (in place)."""
    if not using_distributed():
        if with_xsq and src.xsq is None:
            src.xsq = row_norms_sq(src.X, np.float64)
        return src
    from distributed import default_client

    client = default_client()
    if src.held is None and src.sparse:
        # CSR blocks (of about equal stored values) scattered as they are: no pass
        # sends them again
        src.held = client.scatter([src.block(i) for i in range(src.n_blocks)], hash=False)
    elif src.held is None:
        # scattered explicitly, a block per worker thread: ``persist`` of a
        # ``from_array`` graph may leave every block on one worker
        threads = max(1, sum(client.nthreads().values()))
        offsets = even_offsets(src.n, memory_block_rows(src.n, src.d, src.dtype.itemsize,
                                                        threads))
        parts = [src.X[a:b] for a, b in itertools.pairwise(offsets)]
        src.offsets = offsets
        src.held = [client.submit(_aligned, f, pure=False)
                    for f in client.scatter(parts, hash=False)]
    if with_xsq and src.xsq is None:
        src.xsq = [client.submit(_block_xsq, f, pure=False) for f in src.held]
    return src


def _hold_store_in_workers(src: ZarrSource, with_xsq: bool) -> ZarrSource:
    """:func:`hold` for a store on a cluster: futures of the blocks (and of their
    ``|x|^2``, held next to them: without it every pass on the cluster recomputes it)."""
    from distributed import default_client, wait

    read = dask.delayed(_read_block, pure=False, nout=2)
    task_src = TaskSource(src)
    parts = [read(src.block(i), task_src, with_xsq) for i in range(src.n_blocks)]
    wanted = [p[0] for p in parts] + ([p[1] for p in parts] if with_xsq else [])
    futures = default_client().compute(wanted)
    wait(futures)
    return src.with_held(futures[:src.n_blocks], futures[src.n_blocks:] or None)


def _hold_store_here(src: ZarrSource, with_xsq: bool) -> ZarrSource:
    """:func:`hold` for a store under the local scheduler: numpy blocks and ``|x|^2``."""
    read = dask.delayed(_read_block, pure=False, nout=2)
    task_src = TaskSource(src)
    out = compute(*[read(src.block(i), task_src, with_xsq) for i in range(src.n_blocks)],
                  n_tasks=src.n_blocks)
    out = out if src.n_blocks > 1 else [out]
    blocks = [r for r, _ in out]
    xsq = np.concatenate([x for _, x in out]) if with_xsq else None
    if total_threads() <= src.n_blocks:
        return src.with_held(blocks, xsq)
    # fewer blocks than threads (a store of one or two chunks, e.g. MNIST's test split)
    views = _per_thread(blocks)
    return src.with_held(views, xsq, offsets=block_offsets([v.shape[0] for v in views]))
