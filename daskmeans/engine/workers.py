"""Work run in a cluster's workers on rows fetched from worker to worker, never
through the client: a mini-batch step on rows held in the workers
(:class:`WorkerSteps`: the batch assembled in one worker and stepped by the same fused
kernel as in process, so the model is the threaded fit's bit for bit), and a function
run on all of a source's rows joined once where they are (:func:`all_rows_call`: a
whole bisecting fit) or on the rows of each of some leaves of a bisecting tree, each
leaf's joined in its own task (:func:`leaf_rows_calls`: a leaf's whole subtree).
Beside :mod:`daskmeans.engine.reductions`, whose passes map a kernel over every block
and reduce the results; here one task does the work on rows brought to it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..kernels import bisect, minibatch
from ..kernels.common import NonFiniteRow
from .reductions import (
    MINIBATCH_SERIAL_K,
    SPLIT_EVERY,
    TaskSource,
    add_all,
    call_kernel,
    leaf_rows_pass,
    non_finite_message,
)
from .schedule import local_threads, using_distributed, worker_blas
from .source import NonFiniteError, Source, ZarrSource, reads_raw_uint8

__all__ = ["LeafCalls", "WorkerSteps", "all_rows_call", "leaf_rows_calls", "readable_in_workers",
           "steps_in_workers", "worker_batch_step"]


def steps_in_workers(src: Source) -> bool:
    """Whether a mini-batch step of ``src`` runs in a cluster's worker
    (:func:`worker_batch_step`, :class:`WorkerSteps`): its blocks held in the workers
    (futures) and taken by the fused step as held (no normalisation)."""
    return (src.held is not None and not src.normalize and using_distributed()
            and not all(isinstance(b, np.ndarray) for b in src.held))


def worker_batch_step(src: Source, C: np.ndarray, counts: np.ndarray, *,
                      rows: np.ndarray | None = None, blocks: Sequence[int] | None = None,
                      picks: np.ndarray | None = None) -> minibatch.BatchStep:
    """One mini-batch step of rows held in a cluster's workers, the same step, bit for
    bit, as on rows held here (see :class:`WorkerSteps`)."""
    steps = WorkerSteps(src, C.dtype)
    return steps.result(steps.submit(rows, (C, counts), blocks=blocks, picks=picks))


class WorkerSteps:
    """Mini-batch steps of rows held in a cluster's workers (:func:`steps_in_workers`),
    each the same step, bit for bit, as on rows held here: each block holding some of
    the batch picks its rows (a task where the block is), and ONE task assembles the
    batch in batch order and runs the fused step
    (:func:`~daskmeans.kernels.minibatch.minibatch_step`) on it, so that the rows are
    summed in the same order as in process. Rows move from worker to worker only: the
    client sends the centres and counts (or nothing: the step before's future), the
    batch's local row indices, and receives the K x d step.

    A step may start from the future of the step before it (``submit(rows, handle)``):
    its centres and counts as :func:`~daskmeans.algorithms.minibatch.minibatch_update`
    leaves them when it reassigns nothing (``dtype``: the centres' dtype), so several
    steps can be in flight before the first result comes back.
    """

    def __init__(self, src: Source, dtype: Any) -> None:
        from distributed import default_client

        self.src, self.dtype, self.client = src, np.dtype(dtype), default_client()

    def submit(self, rows: np.ndarray | None, start: Any, *,
               blocks: Sequence[int] | None = None, picks: np.ndarray | None = None) -> Any:
        """Submit a step on the batch ``rows`` (sorted global indices) or ``blocks``
        (whole blocks), from ``start``: (centres, counts), or the handle of an earlier
        step. Returns its handle (a future)."""
        if rows is not None:
            shares = self._shares(rows)
        else:
            src = self.src
            shares = [self.client.submit(_batch_share, src.block(i), None, src.block_weights(i),
                                         src.offsets[i], self._cast(), pure=False)
                      for i in sorted(set(blocks or ()))]
        if isinstance(start, tuple):
            C, counts, after = start[0], start[1], None
        else:
            C, counts, after = start, None, self.dtype
        return self.client.submit(_batch_step_task, C, counts, after, picks, self.src.scale,
                                  *shares, pure=False)

    def result(self, handle: Any) -> minibatch.BatchStep:
        """The step's :class:`~daskmeans.kernels.minibatch.BatchStep` (waits for it)."""
        return handle.result()

    def cancel(self, handles: Sequence[Any]) -> None:
        """Drop steps submitted ahead that will not be used."""
        if handles:
            self.client.cancel(list(handles))

    def rows(self, index: np.ndarray) -> np.ndarray:
        """Rows ``index`` (global, in that order, repeats allowed) as the fused step
        picks them for reassignment (float rows, raw rows scaled): at most a few
        rows, assembled in a worker."""
        uniq, pos = np.unique(np.asarray(index, np.int64), return_inverse=True)
        return self.client.submit(_rows_task, self.src.scale, pos, *self._shares(uniq),
                                  pure=False).result()

    def _cast(self) -> Any:
        return self.src.dtype if self.src.scale is None else None

    def _shares(self, rows: np.ndarray) -> list[Any]:
        src = self.src
        cuts = np.searchsorted(rows, src.offsets)
        return [self.client.submit(_batch_share, src.block(i),
                                   np.asarray(rows[cuts[i]:cuts[i + 1]] - src.offsets[i],
                                              np.int64),
                                   src.block_weights(i), src.offsets[i], self._cast(),
                                   pure=False)
                for i in range(src.n_blocks) if cuts[i + 1] > cuts[i]]


def _batch_share(block: np.ndarray, index: np.ndarray | None, w: Any, offset: int,
                 dtype: Any) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """In the worker holding a block: its rows ``index`` of a batch (all of them for
    None), as the fused step takes them, with their weights and global row indices."""
    if index is None:
        index = np.arange(block.shape[0], dtype=np.int64)
    x = block[index]
    if dtype is not None and x.dtype != dtype:
        x = x.astype(dtype)
    w = None if w is None else np.asarray(w, np.float64)[index]
    return x, w, index + offset


Share = tuple[np.ndarray, np.ndarray | None, np.ndarray]


def _batch_step_task(C: Any, counts: Any, after: Any, picks: np.ndarray | None,
                     scale: float | None, *shares: Share) -> minibatch.BatchStep:
    """In one worker: the batch's shares (in batch order) through the fused step, from
    (C, counts), or from the step ``C`` before it (``after``: the centres' dtype)."""
    if after is not None:  # as minibatch_update leaves a step that reassigns nothing
        C, counts = C.centers.astype(after), C.counts
    parts = [(x, np.arange(x.shape[0], dtype=np.int64)) for x, _, _ in shares]
    w = None if shares[0][1] is None else np.concatenate([s[1] for s in shares])
    threads = local_threads() if C.shape[0] > MINIBATCH_SERIAL_K else 1
    try:
        with worker_blas():
            return minibatch.minibatch_step(parts, C, counts, w, scale=scale, picks=picks,
                                            threads=threads)
    except NonFiniteRow as e:
        row = int(np.concatenate([s[2] for s in shares])[e.row])
        raise NonFiniteError(non_finite_message(row)) from None


def _rows_task(scale: float | None, positions: np.ndarray, *shares: Share) -> np.ndarray:
    """In one worker: the rows at ``positions`` of the shares (in order)."""
    parts = [(x, np.arange(x.shape[0], dtype=np.int64)) for x, _, _ in shares]
    return minibatch.rows_at(parts, positions, scale)


def all_rows_call(src: Source, fn: Callable[..., Any], *args: Any, budget_here: int,
                  budget_worker: int, here: dict[str, Any] | None = None,
                  split_every: int = SPLIT_EVERY) -> Any:
    """``fn(index, X, w, scale, *args)`` on all of ``src``'s rows, gathered once where
    they are, in global row order as :func:`leaf_rows_pass` gathers them (``X`` as
    stored for raw uint8 rows, with ``scale``; else float rows and ``scale`` None;
    ``w`` the weights or None; ``index`` the global row indices):

    - on a cluster, when the blocks are held in the workers (or are a store's, read
      there: :func:`readable_in_workers`) and fit in ``budget_worker``: in ONE task on
      a worker, which reads the blocks' rows (worker to worker) and runs ``fn`` there;
      only ``fn``'s result comes back, no row travels through the client; rows that
      do not fit in a worker are not gathered here either (None);
    - blocks held here as numpy: joined here, no compute;
    - else, when they fit in ``budget_here``: gathered here in one pass.

    ``here``: keyword arguments for ``fn`` when it runs in this process (a progress
    callback). Returns ``fn``'s result, or None when the rows fit nowhere.
    """
    raw = reads_raw_uint8(src)
    dtype = np.dtype(np.uint8) if raw else src.dtype
    nbytes = src.n * src.d * dtype.itemsize
    snap = bisect.TreeSnapshot(np.array([-1]), np.array([-1]), np.zeros((1, src.d)),
                               np.zeros(1, np.int64))
    scale = src.scale if raw else None
    held_here = src.held is not None and all(isinstance(b, np.ndarray) for b in src.held)
    if readable_in_workers(src) and nbytes <= budget_worker:
        from distributed import default_client

        k = src.n_blocks
        items = ([src.block(i) for i in range(k)] + [src.block_weights(i) for i in range(k)]
                 + [src.offset(i) for i in range(k)])
        return default_client().submit(
            _all_rows_task, fn, args, TaskSource(src), snap, raw, src.d, dtype, scale, *items,
            pure=False).result()
    if nbytes > budget_here or readable_in_workers(src):
        return None
    if held_here:
        joined = _joined_rows(TaskSource(src), snap, raw, src.d, dtype, [
            (src.block(i), src.block_weights(i), src.offset(i)) for i in range(src.n_blocks)])
    else:
        joined = leaf_rows_pass(src, snap, split_every).joined(src.d, dtype)
    index, X, _, w = joined
    return fn(index, X, w, scale, *args, **(here or {}))


def readable_in_workers(src: Source) -> bool:
    """Whether a task on a cluster's worker can take ``src``'s rows where they are: a
    cluster is in use and the blocks are held in its workers (futures), or are a
    store's, read in the task (not a streamed dask array, whose blocks are a graph)."""
    if not using_distributed():
        return False
    if src.held is not None:
        return not all(isinstance(b, np.ndarray) for b in src.held)
    return isinstance(src, ZarrSource)


class LeafCalls:
    """The tasks of :func:`leaf_rows_calls`, submitted: :meth:`result` waits for them."""

    def __init__(self, futures: list[Any]) -> None:
        self.futures = futures

    def result(self) -> list[Any]:
        """Each leaf's ``fn`` result, in slot order (waits for them)."""
        if not self.futures:
            return []
        from distributed import default_client

        return list(default_client().gather(self.futures))


def leaf_rows_calls(src: Source, snap: bisect.TreeSnapshot, fn: Callable[..., Any],
                    args: Sequence[tuple[Any, ...]]) -> LeafCalls:
    """``fn(index, X, w, scale, *args[s])`` on the rows of each leaf ``s`` of a tree
    (the rows that reach a node with ``snap.slot`` == s), each leaf's rows joined in
    ONE task on a worker, in global row order as :func:`all_rows_call` joins them:
    the rows move from worker to worker, never through the client
    (:func:`readable_in_workers` must hold).

    Each block's task sends its rows down the tree once and splits them by leaf (the
    kernel of :func:`~daskmeans.engine.reductions.leaf_rows_pass`: the same rows,
    checks and errors); a leaf's task then fetches its share of every block. The
    leaves' tasks are independent: the scheduler spreads them over the workers.
    Submits them all and returns at once (:meth:`LeafCalls.result` waits)."""
    if not args:
        return LeafCalls([])
    from distributed import default_client

    client = default_client()
    raw = reads_raw_uint8(src)
    dtype = np.dtype(np.uint8) if raw else src.dtype
    scale = src.scale if raw else None
    task_src, n_leaves = TaskSource(src), len(args)
    split = [client.submit(_leaf_split, task_src, snap, raw, n_leaves, src.block(i),
                           src.block_weights(i), src.offset(i), pure=False)
             for i in range(src.n_blocks)]
    futures = []
    for s, leaf_args in enumerate(args):
        shares = [client.submit(_leaf_share, part, s, pure=False) for part in split]
        futures.append(client.submit(_leaf_call_task, fn, leaf_args, src.d, dtype, scale,
                                     *shares, pure=False))
    return LeafCalls(futures)


def _leaf_split(task_src: TaskSource, snap: bisect.TreeSnapshot, raw: bool, n_leaves: int,
                rows: Any, w: Any, offset: int) -> list[bisect.LeafRows]:
    """In the worker holding a block: its rows that reach the leaves, one
    :class:`~daskmeans.kernels.bisect.LeafRows` per leaf (slot)."""
    got = call_kernel(_leaf_rows, task_src, rows, w, None, snap, offset, {}, raw)
    out = [bisect.LeafRows([]) for _ in range(n_leaves)]
    for first, index, x, slots, wp in got.pieces:
        for s in np.unique(slots):
            keep = np.flatnonzero(slots == s)
            out[int(s)] = bisect.LeafRows([(first, index[keep], x[keep], slots[keep],
                                            None if wp is None else wp[keep])])
    return out


def _leaf_share(split: list[bisect.LeafRows], s: int) -> bisect.LeafRows:
    """A block's rows of leaf ``s`` (picked where the block's split is)."""
    return split[s]


def _leaf_call_task(fn: Callable[..., Any], args: tuple[Any, ...], d: int, dtype: Any,
                    scale: float | None, *shares: bisect.LeafRows) -> Any:
    """In one worker: a leaf's rows from every block joined in global row order, then
    ``fn`` on them (see :func:`leaf_rows_calls`)."""
    index, X, _, w = add_all(bisect.LeafRows([]), *shares).joined(d, dtype)
    return fn(index, X, w, scale, *args)


def _joined_rows(task_src: TaskSource, snap: bisect.TreeSnapshot, raw: bool, d: int,
                 dtype: Any, blocks: list[tuple[Any, Any, int]]
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """Every block's rows through the kernel of :func:`leaf_rows_pass` (the same rows,
    checks and errors), joined in global row order."""
    parts = [call_kernel(_leaf_rows, task_src, rows, w, None, snap, offset, {}, raw)
             for rows, w, offset in blocks]
    return add_all(*parts).joined(d, dtype)


def _all_rows_task(fn: Callable[..., Any], args: tuple[Any, ...], task_src: TaskSource,
                   snap: bisect.TreeSnapshot, raw: bool, d: int, dtype: Any,
                   scale: float | None, *items: Any) -> Any:
    """In one worker: all the blocks' rows (``items``: the blocks, their weights, their
    offsets) joined, then ``fn`` on them (see :func:`all_rows_call`)."""
    k = len(items) // 3
    blocks = list(zip(items[:k], items[k:2 * k], items[2 * k:], strict=True))
    index, X, _, w = _joined_rows(task_src, snap, raw, d, dtype, blocks)
    return fn(index, X, w, scale, *args)


def _leaf_rows(x: np.ndarray, w: np.ndarray | None, xsq: np.ndarray | None,
               tree: bisect.TreeSnapshot, *, offset: int,
               scale: float | None = None) -> bisect.LeafRows:
    """The kernel of :func:`~daskmeans.engine.reductions.leaf_rows_pass`."""
    return bisect.leaf_rows_block(x, w, tree, offset=offset, scale=scale)
