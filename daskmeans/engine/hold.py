"""Holding a source's rows in memory for a fit: the one place rows are held.

:func:`hold` keeps a source's rows in memory with their ``|x|^2`` for every later pass
of :mod:`daskmeans.engine.reductions`: an in-memory array's norms (and, on a cluster,
its blocks in the workers), a store's blocks read once.
"""

from __future__ import annotations

import itertools

import dask
import numpy as np

from ..kernels.common import row_norms_sq
from .reductions import TaskSource
from .schedule import compute, memory_block_rows, memory_budget, total_threads, using_distributed
from .source import ArraySource, Source, ZarrBlock, ZarrSource, block_offsets, even_offsets

__all__ = ["hold"]

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
    - anything else (a dask array, a store streamed by choice): as it is.

    An in-memory source is completed in place and returned (its rows are already the
    caller's memory; holding adds their norms and where they live); a held store is a
    new source (the store itself can still be streamed). Holding twice does nothing
    more.
    """
    if isinstance(src, ArraySource):
        return _hold_array(src, with_xsq)
    if not isinstance(src, ZarrSource) or src.held is not None:
        return src
    if not src.wants_cache(memory_budget()):
        return src
    if using_distributed():
        return _hold_store_in_workers(src, with_xsq)
    return _hold_store_here(src, with_xsq)


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
    if src.held is None:
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
    pieces = -(-total_threads() // src.n_blocks)
    if pieces <= 1:
        return src.with_held(blocks, xsq)
    # fewer blocks than threads (a store of one or two chunks, e.g. MNIST's test split):
    # each held block is cut into row ranges (views) so that every thread gets one
    # (otherwise every pass of the fit runs on fewer threads than there are)
    views = [v for b in blocks for v in np.array_split(b, min(pieces, max(len(b), 1)))]
    return src.with_held(views, xsq, offsets=block_offsets([len(v) for v in views]))
