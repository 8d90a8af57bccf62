"""Map-reduce over a data source's blocks: the one primitive every pass is built on.

:func:`map_reduce` maps a kernel (from :mod:`daskmeans.kernels`) over the blocks of a
:class:`~daskmeans.engine.source.Source` and tree-reduces the per-block partial results
(``split_every`` at a time) with ``+``, in exactly one compute under whatever scheduler
is active (threaded by default, a ``distributed.Client`` when one is active). Each
block's task may also receive a state an earlier pass made there (``states``), return
a new one that stays where the block is (``keep``: numpy here, futures in the workers
on a cluster) and a small summary that comes back (``summaries``). Every pass of
:mod:`daskmeans.engine.passes` is one call of it naming a kernel, as each reduction of
``dask.array`` is one call of ``reduction(x, chunk, aggregate, ...)``.

:func:`hold` keeps a source's rows in memory with their ``|x|^2`` for every later pass:
an in-memory array's norms (and, on a cluster, its blocks in the workers), a store's
blocks read once. Only public dask APIs are used:

- in-memory and Zarr sources: one ``dask.delayed`` task per block, reading its rows
  where it runs (a numpy view, a held future, or a Zarr read), and a tree of delayed
  additions;
- dask arrays: ``da.blockwise`` over the row blocks (with a small object array that
  carries each block's offset and constants) and ``da.reduction`` for the tree
  (:func:`reduce_blocks`). This is the only public route to a dask array's blocks that
  also works with dask's array query planning; it costs more graph handling per pass
  than the delayed route, which is why the other sources do not take it. A dask
  array's blocks keep no state between passes (there is no public way to leave a
  result beside a block of a user's array).

Shared operands (the centres, prepared once per pass) go inside each task while all
copies stay under :data:`INLINE_MAX_BYTES`, else enter the graph once as a delayed
value (:func:`shared_operand`).
"""

from __future__ import annotations

import functools
import itertools
import operator
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import dask
import dask.array as da
import numpy as np

from ..kernels.common import NonFiniteRow, row_norms_sq
from .schedule import (
    compute,
    local_blas,
    memory_block_rows,
    memory_budget,
    total_threads,
    using_distributed,
    worker_blas,
)
from .source import (
    ArraySource,
    DaskSource,
    NonFiniteError,
    Source,
    ZarrBlock,
    ZarrSource,
    block_offsets,
    even_offsets,
    float_rows,
)

__all__ = ["INLINE_MAX_BYTES", "SPLIT_EVERY", "Reduced", "TaskSource", "add_all",
           "call_kernel", "delayed_tree", "hold", "map_reduce", "reduce_blocks",
           "shared_operand"]

#: partial results combined per tree node.
SPLIT_EVERY = 8
#: an operand travels inside every task (not as one graph key) while all its copies
#: together stay under this many bytes (saves a worker-to-worker fetch per pass).
INLINE_MAX_BYTES = 1 << 20


def add_all(*parts: Any) -> Any:
    """``parts[0] + parts[1] + ...`` (partial results of a pass)."""
    return functools.reduce(operator.add, parts)


def delayed_tree(parts: list[Any], split_every: int) -> list[Any]:
    """Delayed partials added ``split_every`` at a time until at most that many are
    left (the last level is added on the client, not as a task)."""
    add = dask.delayed(add_all, pure=False)
    while len(parts) > split_every:
        parts = [add(*parts[j:j + split_every]) for j in range(0, len(parts), split_every)]
    return parts


def _rows_for(src: Source | TaskSource, rows: np.ndarray, raw: bool
              ) -> tuple[np.ndarray, float | None]:
    """A block's rows as a kernel takes them: raw with ``scale`` when it can, else float."""
    if src.scale is not None and raw and not src.normalize:
        return rows, src.scale
    if src.scale is None and not src.normalize:
        return (rows if rows.dtype == src.dtype else rows.astype(src.dtype)), None
    return src.rows_float(rows), None


def call_kernel(kernel: Callable[..., Any], src: Source | TaskSource, rows: Any, w: Any,
                xsq: Any, shared: Any, offset: int, consts: dict[str, Any], raw: bool) -> Any:
    """Inside a task: load the rows (reading a :class:`ZarrBlock`), check the weights,
    run the kernel, and name the global row of any NaN/inf it meets."""
    with worker_blas():
        if isinstance(rows, ZarrBlock):
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
        except NonFiniteRow as e:
            local = consts.get("local")
            row = offset + int(local[e.row] if local is not None else e.row)
            raise NonFiniteError(
                f"X contains NaN or infinity in row {row} (or values so large that "
                "squared distances overflow); clean or impute the data first") from None


class TaskSource:
    """What a task needs to know about its source to read a block's rows: the scale,
    the normalisation and the float dtype, never the data (pickling a source would
    ship the whole array or the held blocks with every task)."""

    def __init__(self, src: Source) -> None:
        self.scale, self.normalize, self.dtype = src.scale, src.normalize, src.dtype

    def rows_float(self, raw: np.ndarray) -> np.ndarray:
        """A block's stored rows as float (see :func:`~daskmeans.engine.source.float_rows`)."""
        return float_rows(raw, self.scale, self.normalize)


def shared_operand(value: Any, n_uses: int) -> Any:
    """``value`` itself while all copies stay under :data:`INLINE_MAX_BYTES`, else a
    delayed value entering the graph once; a plain tuple is decided entry by entry
    (each of several operands, e.g. centres in two dtypes, on its own size)."""
    if type(value) is tuple:  # not a NamedTuple operand: that is one value
        return tuple(shared_operand(v, n_uses) for v in value)
    nbytes = getattr(value, "nbytes", None)
    if value is None or (nbytes is not None and nbytes * max(n_uses, 1) <= INLINE_MAX_BYTES):
        return value
    return dask.delayed(value, pure=False)


class Reduced(NamedTuple):
    """What a pass with per-block outputs returns (see :func:`map_reduce`).

    Attributes
    ----------
    total : the summed partial results
    states : block index -> its new state (numpy, or a future in the worker that made
        it), for the blocks mapped; None without ``keep`` or for a dask array
    summaries : block index -> its summary, for the blocks mapped; None without
        ``summaries``
    """

    total: Any
    states: dict[int, Any] | None
    summaries: dict[int, Any] | None

    def state_list(self) -> list[Any] | None:
        """The kept states in block order (every block, when every block was mapped)."""
        return None if self.states is None else list(self.states.values())


def map_reduce(
    src: Source,
    kernel: Callable[..., Any],
    shared: Any = None,
    *,
    per_block: Callable[[int], dict[str, Any] | None] | None = None,
    states: Sequence[Any] | Mapping[int, Any] | None = None,
    keep: bool = False,
    summaries: bool = False,
    xsq: bool = True,
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
        [scale], [state], **consts)``; returns a partial result that supports ``+``, or
        with ``keep`` / ``summaries`` the tuple ``(partial, [new state], [summary])``
    shared : one operand every task receives (the prepared centres); a plain tuple of
        operands enters the graph entry by entry (see :func:`shared_operand`)
    per_block : block index -> extra keyword constants for that block, or None to skip
        the block (mini-batches, settled blocks); every block by default
    states : block index -> the state an earlier pass kept for that block (numpy, or a
        future where the block is held), passed to the kernel as ``state=``; not for a
        dask array
    keep : keep each mapped block's new state where the block is: numpy here, futures
        in the workers on a cluster (only the reduced partial comes back). A dask
        array's blocks keep none: its states are dropped in the tasks (None returned)
    summaries : each mapped block's summary comes back too (not for a dask array)
    xsq : pass each block's ``|x|^2`` when the source holds it (False for kernels that
        never use it: their tasks then do not depend on it)
    split_every : fan-in of the reduction tree (>= 2)
    raw : the kernel accepts raw stored rows with ``scale=`` (see :class:`Source`)
    aligned : name -> (n,) numpy or dask array; each block's slice is passed to the
        kernel as that keyword (read in the same compute for dask arrays)

    Returns
    -------
    The summed partial; with ``keep`` or ``summaries`` a :class:`Reduced`.
    """
    blocks = _mapped_blocks(src, per_block)
    aligned = aligned or {}
    if not isinstance(src, DaskSource) and any(isinstance(a, da.Array)
                                               for a in aligned.values()):
        # a dask array read alongside the rows (true labels): the whole pass goes the
        # dask-array route (a dask array handed to a delayed task fails with query
        # planning); only evaluation passes do this
        if per_block is not None or states is not None or keep or summaries:
            raise ValueError("aligned dask arrays need every block (no per_block) and no "
                             "per-block state")
        src = DaskSource(src.to_dask()).with_options(weights=src.weights)
        blocks = [(i, {}) for i in range(src.n_blocks)]
    if isinstance(src, DaskSource):
        if states is not None or summaries:
            raise TypeError("per-block state and summaries need a numpy or Zarr source, "
                            "not a dask array")
        total = _map_reduce_dask(src, kernel, shared, blocks, split_every, raw, aligned,
                                 first_only=keep)
        return Reduced(total, None, None) if keep else total
    n_out = 1 + int(keep) + int(summaries)
    # with per-block outputs on the local scheduler and no tree to build, each block's
    # outputs come back as one result (no task splits the tuples apart: dask's own
    # time per compute counts in fits of many short passes)
    whole = n_out > 1 and not using_distributed() and len(blocks) <= split_every
    tasks = _block_tasks(src, kernel, shared, blocks, states, xsq, raw, aligned,
                         nout=None if (n_out == 1 or whole) else n_out)
    if n_out == 1:
        parts = delayed_tree(tasks, split_every)
        out = compute(*parts, n_tasks=len(blocks))
        return add_all(*out) if len(parts) > 1 else out
    index = [i for i, _ in blocks]
    if whole:
        return _reduce_whole(tasks, index, keep, summaries)
    return _reduce_split(tasks, index, keep, summaries, split_every)


def _mapped_blocks(src: Source, per_block: Callable[[int], dict[str, Any] | None] | None
                   ) -> list[tuple[int, dict[str, Any]]]:
    """(block index, its constants) of every block the pass maps, in block order."""
    blocks: list[tuple[int, dict[str, Any]]] = []
    for i in range(src.n_blocks):
        consts = {} if per_block is None else per_block(i)
        if consts is not None:
            blocks.append((i, consts))
    if not blocks:
        raise ValueError("a pass needs at least one block")
    return blocks


def _block_task(kernel: Callable[..., Any], task_src: TaskSource, rows: Any, w: Any,
                xsq: Any, shared: Any, offset: int, consts: dict[str, Any], raw: bool,
                *state: Any) -> Any:
    """One block's task: :func:`call_kernel`, with the block's kept state (a positional
    argument, so that a future of it is a dependency the scheduler resolves)."""
    if state:
        consts = {**consts, "state": state[0]}
    return call_kernel(kernel, task_src, rows, w, xsq, shared, offset, consts, raw)


def _block_tasks(src: Source, kernel: Callable[..., Any], shared: Any,
                 blocks: list[tuple[int, dict[str, Any]]],
                 states: Sequence[Any] | Mapping[int, Any] | None, xsq: bool, raw: bool,
                 aligned: dict[str, Any], nout: int | None) -> list[Any]:
    """The delayed task of each mapped block (``nout``: outputs to split apart)."""

    def rows_of(a: Any, i: int) -> Any:
        return None if a is None else a[src.offsets[i]:src.offsets[i + 1]]

    task_src = TaskSource(src)
    s = shared_operand(shared, len(blocks))
    task = dask.delayed(_block_task, pure=False, nout=nout)
    return [
        task(kernel, task_src, src.block(i), rows_of(src.weights, i),
             src.block_xsq(i) if xsq else None, s, src.offset(i),
             {**consts, **{k: rows_of(a, i) for k, a in aligned.items()}}, raw,
             *(() if states is None else (states[i],)))
        for i, consts in blocks
    ]


def _reduce_whole(tasks: list[Any], index: list[int], keep: bool, summaries: bool
                  ) -> Reduced:
    """Each task's ``(partial, [state], [summary])`` computed as one result (local
    scheduler, one level), the partials added here."""
    with local_blas(len(index)):
        (got,) = dask.compute(tasks)
    return Reduced(add_all(*(g[0] for g in got)),
                   dict(zip(index, (g[1] for g in got), strict=True)) if keep else None,
                   dict(zip(index, (g[-1] for g in got), strict=True)) if summaries else None)


def _reduce_split(tasks: list[Any], index: list[int], keep: bool, summaries: bool,
                  split_every: int) -> Reduced:
    """Tree-reduce the partials of tasks with per-block outputs, in one compute; the
    kept states stay in the workers as futures on a cluster."""
    parts = delayed_tree([t[0] for t in tasks], split_every)
    kept = [t[1] for t in tasks] if keep else []
    sums = [t[1 + int(keep)] for t in tasks] if summaries else []
    if using_distributed():
        from distributed import default_client

        client = default_client()
        futures = client.compute([*parts, *sums, *kept])
        got = client.gather(futures[:len(parts) + len(sums)])
        new = futures[len(parts) + len(sums):]
    else:
        with local_blas(len(index)):
            got, new = dask.compute([*parts, *sums], kept)
    return Reduced(add_all(*got[:len(parts)]),
                   dict(zip(index, new, strict=True)) if keep else None,
                   dict(zip(index, got[len(parts):], strict=True)) if summaries else None)


def _dask_block(cols: list[np.ndarray], *rest: Any, kernel: Callable[..., Any],
                task_src: TaskSource, shared: Any, raw: bool, weighted: bool,
                names: tuple[str, ...], first_only: bool) -> np.ndarray:
    """``da.blockwise`` body: one block's partial in a 1-element object array (``cols``:
    the block as the one-element list of its column blocks; ``first_only``: the kernel
    returns ``(partial, state)`` and the state is dropped)."""
    (x,) = cols  # not concatenated by dask: that copied every block in every pass
    w = rest[0] if weighted else None
    info = rest[-1][0]
    consts = {**info["consts"], **dict(zip(names, rest[int(weighted):-1], strict=True))}
    out = np.empty((1,), dtype=object)
    got = call_kernel(kernel, task_src, x, w, None, shared, info["offset"], consts, raw)
    out[0] = got[0] if first_only else got
    return out


def _tree_combine(parts: Any, axis: Any = None, keepdims: bool = False,
                  computing_meta: bool = False) -> Any:
    if computing_meta:
        return np.empty((0,), dtype=object)
    flat = parts if isinstance(parts, list) else [parts]
    out = np.empty((1,), dtype=object)
    out[0] = add_all(*[p for a in flat for p in a])
    return out


def _tree_aggregate(parts: Any, axis: Any = None, keepdims: bool = False,
                    computing_meta: bool = False) -> Any:
    if computing_meta:
        return np.empty((), dtype=object)
    return _tree_combine(parts, axis, keepdims)[0]


def _tree_chunk(x: Any, axis: Any = None, keepdims: bool = False,
                computing_meta: bool = False) -> Any:
    return x


def reduce_blocks(parts: da.Array, split_every: int = SPLIT_EVERY) -> da.Array:
    """The sum of a (n_blocks,) object dask array of partial results (one per block),
    tree-reduced ``split_every`` at a time with ``da.reduction``: a 0-d object array."""
    return da.reduction(
        parts, _tree_chunk, _tree_aggregate, combine=_tree_combine, axis=0,
        concatenate=False, dtype=object, split_every=split_every,
        meta=np.empty((), dtype=object),
    )


def _map_reduce_dask(src: DaskSource, kernel: Callable[..., Any], shared: Any,
                     blocks: list[tuple[int, dict[str, Any]]], split_every: int, raw: bool,
                     aligned: dict[str, Any], *, first_only: bool) -> Any:
    """:func:`map_reduce`'s dask-array route: ``da.blockwise`` and ``da.reduction``."""
    X = src.X
    vectors = [a if isinstance(a, da.Array) else da.from_array(np.asarray(a), chunks=-1)
               for a in ([] if src.weights is None else [src.weights]) + list(aligned.values())]
    vectors = [v.rechunk((X.chunks[0],)) for v in vectors]
    if len(blocks) < src.n_blocks:  # a subset of the blocks (mini-batch steps)
        keep = [i for i, _ in blocks]
        X, *vectors = (da.concatenate([a[src.offsets[i]:src.offsets[i + 1]] for i in keep])
                       for a in (X, *vectors))
    info = np.empty(len(blocks), dtype=object)
    for j, (i, consts) in enumerate(blocks):
        info[j] = {"offset": src.offset(i), "consts": consts}
    args: list[Any] = [X, "ij"]
    for v in vectors:
        args += [v, "i"]
    args += [da.from_array(info, chunks=1), "i"]
    parts = da.blockwise(
        _dask_block, "i", *args, kernel=kernel, task_src=TaskSource(src), shared=shared,
        raw=raw, weighted=src.weights is not None, names=tuple(aligned),
        first_only=first_only, concatenate=False,
        align_arrays=False, dtype=object,
        meta=np.empty((0,), dtype=object), adjust_chunks={"i": 1},
    )
    return compute(reduce_blocks(parts, split_every), n_tasks=len(blocks))


# --------------------------------------------------------------------------- holding

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
