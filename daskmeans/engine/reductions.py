"""Reductions over a data source's blocks: the one map-reduce primitive and the passes
built on it, as dask's ``array/reductions.py`` holds ``reduction()`` and the reductions
that call it.

:func:`map_reduce` maps a kernel (from :mod:`daskmeans.kernels`) over the blocks of a
:class:`~daskmeans.engine.source.Source` and tree-reduces the per-block partial results
(``split_every`` at a time) with ``+``, in exactly one compute under whatever scheduler
is active (threaded by default, a ``distributed.Client`` when one is active). Each
block's task may also receive a state an earlier pass made there (``states``), return
a new one that stays where the block is (``keep``: numpy here, futures in the workers
on a cluster) and a small summary that comes back (``summaries``). Every pass below
(:func:`lloyd_runs_pass`, :func:`bounds_pass`, ...) is one call of it naming a kernel of
:mod:`daskmeans.kernels`, as each reduction of ``dask.array`` is one call of
``reduction(x, chunk, aggregate, ...)``: one read of the data and one compute each, with
per-block state kept where the blocks are for the passes that carry labels, bounds or
tree nodes from one pass to the next.

Holding rows in memory for a fit is :mod:`daskmeans.engine.hold`; the lazy per-row
maps (predict, transform) are :mod:`daskmeans.engine.maps`.

Only public dask APIs are used:

- in-memory and Zarr sources under the local scheduler: a low-level graph in dask's
  graph spec, one task per block reading its rows where it runs (a numpy view or a
  Zarr read) and a tree of additions, run by the configured scheduler
  (:func:`~daskmeans.engine.schedule.compute_graph`);
- the same on a cluster: one ``dask.delayed`` task per block (its rows a numpy view,
  a held future or a Zarr read) and a tree of delayed additions;
- dask arrays streamed (not held): ``da.blockwise`` over the row blocks (with a small
  object array that carries each block's offset and constants) and ``da.reduction``
  for the tree (:func:`reduce_blocks`). This is the only public route to a dask
  array's blocks that also works with dask's array query planning (which has neither
  ``to_delayed`` nor ``from_delayed``); it costs more graph handling per pass than the
  delayed route, which is why the other sources do not take it. Per-block state
  travels as one more blockwise operand, a (n_blocks,) object array with one state a
  chunk: numpy here under threads; on a cluster the chunks of an object array
  persisted in the workers (``Client.persist``), so a state stays in the worker that
  made it and the next pass's graph names it by key. Settled blocks are left out of
  the pass's slice of the array, so their part of the user's graph is not computed.

Shared operands (the centres, prepared once per pass) are one object every local
task reads; on a cluster they go inside each task while all copies stay under
:data:`INLINE_MAX_BYTES`, else enter the graph once as a delayed value
(:func:`shared_operand`).
"""

from __future__ import annotations

import functools
import operator
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import dask
import dask.array as da
import numpy as np

from ..io.errors import BlockReadError, DaskmeansError
from ..kernels import (
    bisect,
    bounds,
    common,
    init,
    lloyd,
    medians,
    minibatch,
    scores,
)
from ..kernels.common import NonFiniteRow
from ..kernels.metric import Metric, as_metric
from .schedule import (
    client_blas,
    compute,
    compute_graph,
    forget_holders,
    holder_groups,
    local_threads,
    using_distributed,
    worker_blas,
)
from .source import (
    ArraySource,
    DaskSource,
    NonFiniteError,
    Source,
    ZarrBlock,
    float_rows,
    reads_raw_uint8,
)

__all__ = [
    "INLINE_MAX_BYTES",
    "MINIBATCH_SERIAL_K",
    "SPLIT_EVERY",
    "FreshBounds",
    "HeldLabels",
    "Reduced",
    "TaskSource",
    "add_all",
    "batch_pass",
    "bisect_pass",
    "bounds_labels",
    "bounds_pass",
    "call_kernel",
    "count_pass",
    "delayed_tree",
    "held_parts",
    "leaf_rows_pass",
    "lloyd_pass",
    "lloyd_runs_pass",
    "map_reduce",
    "median_assign_pass",
    "median_refine_pass",
    "non_finite_message",
    "oversample_pass",
    "range_pass",
    "reduce_blocks",
    "root_pass",
    "score_pass",
    "shared_operand",
    "steps_in_process",
    "take_rows",
    "unreadable_block",
]

#: up to this many centres a mini-batch step held here runs on one thread (its GEMM
#: is narrow: the gathering and summing, which stay on one thread, weigh as much).
MINIBATCH_SERIAL_K = 16
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
            raise NonFiniteError(non_finite_message(row)) from None


def non_finite_message(row: int) -> str:
    return (f"X contains NaN or infinity in row {row} (or values so large that squared "
            "distances overflow); clean or impute the data first")


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
        future where the block is held, or for a streamed dask array on a cluster a
        one-chunk dask array persisted in the workers), passed to the kernel as
        ``state=``
    keep : keep each mapped block's new state where the block is: numpy here, futures
        (or persisted chunks, for a streamed dask array) in the workers on a cluster;
        only the reduced partial comes back
    summaries : each mapped block's summary comes back too
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
    if not src.dask_route and any(isinstance(a, da.Array) for a in aligned.values()):
        # a dask array read alongside the rows (true labels): the whole pass goes the
        # dask-array route (a dask array handed to a delayed task fails with query
        # planning); only evaluation passes do this
        if per_block is not None or states is not None or keep or summaries:
            raise ValueError("aligned dask arrays need every block (no per_block) and no "
                             "per-block state")
        src = DaskSource(src.to_dask()).with_options(weights=src.weights)
        blocks = [(i, {}) for i in range(src.n_blocks)]
    if src.dask_route:
        assert isinstance(src, DaskSource)
        return _map_reduce_dask(src, kernel, shared, blocks, split_every, raw, aligned,
                                states=states, keep=keep, summaries=summaries)
    if not using_distributed():
        return _map_reduce_local(src, kernel, shared, blocks, states, xsq, raw, aligned,
                                 keep, summaries, split_every)
    n_out = 1 + int(keep) + int(summaries)
    tasks = _block_tasks(src, kernel, shared, blocks, states, xsq, raw, aligned,
                         nout=None if n_out == 1 else n_out)
    try:
        if n_out == 1:
            parts = delayed_tree(tasks, split_every)
            out = compute(*parts, n_tasks=len(blocks))
            return add_all(*out) if len(parts) > 1 else out
        index = [i for i, _ in blocks]
        return _reduce_split(tasks, index, keep, summaries, split_every)
    except BaseException:
        if src.held is not None:
            forget_holders(src.held)  # its workers may have left: asked again next pass
        raise


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
    groups = holder_groups(src.held, [i for i, _ in blocks])
    if groups is not None:
        with_aligned = [(i, {**consts, **{k: rows_of(a, i) for k, a in aligned.items()}})
                        for i, consts in blocks]
        return _group_tasks(src, kernel, task_src, s, with_aligned, groups, states, xsq,
                            raw, nout)
    task = dask.delayed(_block_task, pure=False, nout=nout)
    return [
        task(kernel, task_src, src.block(i), src.block_weights(i),
             src.block_xsq(i) if xsq else None, s, src.offset(i),
             {**consts, **{k: rows_of(a, i) for k, a in aligned.items()}}, raw,
             *(() if states is None else (states[i],)))
        for i, consts in blocks
    ]


def _group_task(kernel: Callable[..., Any], task_src: TaskSource, shared: Any,
                raw: bool, per_block: list[tuple[Any, ...]], n_out: int) -> tuple[Any, ...]:
    """Blocks one worker holds, in one task: each block's :func:`_block_task`
    outputs, flattened in order (``n_out`` each)."""
    out: list[Any] = []
    for rows, w, xsq, offset, consts, *state in per_block:
        got = _block_task(kernel, task_src, rows, w, xsq, shared, offset, consts, raw,
                          *state)
        out.extend(got if n_out > 1 else (got,))
    return tuple(out)


def _group_tasks(src: Source, kernel: Callable[..., Any], task_src: TaskSource, shared: Any,
                 blocks: list[tuple[int, dict[str, Any]]], groups: list[list[int]],
                 states: Sequence[Any] | Mapping[int, Any] | None, xsq: bool, raw: bool,
                 nout: int | None) -> list[Any]:
    """:func:`_block_tasks` on a cluster for held rows: one task per worker thread
    for the blocks its worker holds, so that the scheduler has no queue of block tasks
    to spread by moving held rows between workers (it did, to balance the workers'
    queues; the rows then lived twice). Each block's outputs still come out one by
    one, and the partials are added in the same tree as a task per block adds them:
    the same sums, bit for bit."""
    n_out = nout or 1
    task = dask.delayed(_group_task, pure=False)
    per: list[Any] = [None] * len(blocks)
    for group in groups:
        args = []
        for j in group:
            i, consts = blocks[j]
            args.append((src.block(i), src.block_weights(i),
                         src.block_xsq(i) if xsq else None, src.offset(i), consts,
                         *(() if states is None else (states[i],))))
        got = task(kernel, task_src, shared, raw, args, n_out)
        outs = [got[q] for q in range(len(group) * n_out)]
        for g, j in enumerate(group):
            mine = outs[g * n_out:(g + 1) * n_out]
            per[j] = mine[0] if nout is None else tuple(mine)
    return per


def _map_reduce_local(src: Source, kernel: Callable[..., Any], shared: Any,
                      blocks: list[tuple[int, dict[str, Any]]],
                      states: Sequence[Any] | Mapping[int, Any] | None, xsq: bool, raw: bool,
                      aligned: dict[str, Any], keep: bool, summaries: bool, split_every: int
                      ) -> Any:
    """:func:`map_reduce` under the local scheduler, as a low-level graph run in one
    compute (:func:`~daskmeans.engine.schedule.compute_graph`): a task per block with
    everything it takes bound in (a ``functools.partial``: nothing in it is tokenized
    or searched for keys, and the shared operand is one object all the threads read),
    and the tree of additions. A fit makes many short passes, and building delayed
    objects and optimising their graph cost more than the graph does to run.

    With per-block outputs, each block's ``(partial, [state], [summary])`` comes back
    whole when the blocks are added in one level, here; else the tree adds their
    partials and a task per block returns the rest (so the partials are freed as the
    tree consumes them).
    """
    name = f"daskmeans-pass-{uuid.uuid4().hex}"
    task_src = TaskSource(src)
    dsk: dict[Any, Any] = {}
    keys = []
    for j, (i, consts) in enumerate(blocks):
        lo, hi = src.offsets[i], src.offsets[i + 1]
        consts = {**consts, **{k: None if a is None else a[lo:hi] for k, a in aligned.items()}}
        keys.append((name, j))
        dsk[keys[-1]] = (functools.partial(
            _block_task, kernel, task_src, src.block(i), src.block_weights(i),
            src.block_xsq(i) if xsq else None, shared, src.offset(i), consts, raw,
            *(() if states is None else (states[i],))),)
    whole = keep or summaries
    if len(keys) <= split_every:
        got = compute_graph(dsk, keys, n_tasks=len(blocks))
        total = add_all(*(g[0] for g in got)) if whole else add_all(*got)
        rest = [g[1:] for g in got] if whole else []
    else:
        top = _add_tree(dsk, keys, f"{name}-sum", split_every, _add_firsts if whole else add_all)
        ends = [(f"{name}-rest", j) for j in range(len(keys))] if whole else []
        dsk.update({end: (_rest, keys[j]) for j, end in enumerate(ends)})
        got = compute_graph(dsk, [*top, *ends], n_tasks=len(blocks))
        total, rest = add_all(*got[:len(top)]), got[len(top):]
    if not whole:
        return total
    index = [i for i, _ in blocks]
    return Reduced(total,
                   dict(zip(index, (r[0] for r in rest), strict=True)) if keep else None,
                   dict(zip(index, (r[-1] for r in rest), strict=True)) if summaries else None)


def _add_tree(dsk: dict[Any, Any], keys: list[Any], name: str, split_every: int,
              first: Callable[..., Any]) -> list[Any]:
    """Add to ``dsk`` the tasks adding ``keys``' values ``split_every`` at a time until
    at most that many are left (the order :func:`delayed_tree` adds them in; ``first``
    adds the first level); their keys."""
    add, level = first, 0
    while len(keys) > split_every:
        level += 1
        nxt = []
        for g in range(0, len(keys), split_every):
            nxt.append((name, level, g))
            dsk[nxt[-1]] = (add, *keys[g:g + split_every])
        keys, add = nxt, add_all
    return keys


def _add_firsts(*outputs: tuple[Any, ...]) -> Any:
    """The sum of the partials of blocks' ``(partial, [state], [summary])``."""
    return add_all(*(o[0] for o in outputs))


def _rest(output: tuple[Any, ...]) -> tuple[Any, ...]:
    """A block's ``([state], [summary])`` without its partial."""
    return output[1:]


def _reduce_split(tasks: list[Any], index: list[int], keep: bool, summaries: bool,
                  split_every: int) -> Reduced:
    """Tree-reduce the partials of tasks with per-block outputs on a cluster, in one
    compute; the kept states stay in the workers as futures."""
    parts = delayed_tree([t[0] for t in tasks], split_every)
    kept = [t[1] for t in tasks] if keep else []
    sums = [t[1 + int(keep)] for t in tasks] if summaries else []
    from distributed import default_client

    client = default_client()
    futures = client.compute([*parts, *sums, *kept])
    got = client.gather(futures[:len(parts) + len(sums)])
    new = futures[len(parts) + len(sums):]
    return Reduced(add_all(*got[:len(parts)]),
                   dict(zip(index, new, strict=True)) if keep else None,
                   dict(zip(index, got[len(parts):], strict=True)) if summaries else None)


def _dask_block(cols: list[np.ndarray], *rest: Any, kernel: Callable[..., Any],
                task_src: TaskSource, shared: Any, raw: bool, weighted: bool,
                names: tuple[str, ...], stateful: bool) -> np.ndarray:
    """``da.blockwise`` body: one block's result in a 1-element object array (``cols``:
    the block as the one-element list of its column blocks; ``rest``: the weights, the
    aligned vectors, the block's state (``stateful``) and its offset and constants)."""
    (x,) = cols  # not concatenated by dask: that copied every block in every pass
    w = rest[0] if weighted else None
    info = rest[-1][0]
    vectors = rest[int(weighted):len(rest) - 1 - int(stateful)]
    consts = {**info["consts"], **dict(zip(names, vectors, strict=True))}
    if stateful:
        consts["state"] = rest[-2][0]
    out = np.empty((1,), dtype=object)
    out[0] = call_kernel(kernel, task_src, x, w, None, shared, info["offset"], consts, raw)
    return out


def _entry(parts: np.ndarray, j: int) -> np.ndarray:
    """Entry ``j`` of a block's ``(partial, [state], [summary])`` (``map_blocks`` body)."""
    out = np.empty((1,), dtype=object)
    out[0] = parts[0][j]
    return out


def _entries(parts: da.Array, j: int) -> da.Array:
    return da.map_blocks(_entry, parts, j, dtype=object, meta=np.empty((0,), dtype=object))


def _state_array(states: Sequence[Any] | Mapping[int, Any], mapped: list[int]) -> da.Array:
    """The mapped blocks' states as a (len(mapped),) object dask array, one a chunk:
    states kept here go in as they are; states persisted in a cluster's workers (one-
    chunk dask arrays) are named by their keys, and stay where they are."""
    values = [states[i] for i in mapped]
    if not any(isinstance(v, da.Array) for v in values):
        return da.from_array(_objects(values), chunks=1)
    return da.concatenate([v if isinstance(v, da.Array) else
                           da.from_array(_objects([v]), chunks=1) for v in values])


def _objects(values: list[Any]) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    for j, v in enumerate(values):  # one by one: a state may itself be a sequence
        out[j] = v
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
                     aligned: dict[str, Any], *,
                     states: Sequence[Any] | Mapping[int, Any] | None, keep: bool,
                     summaries: bool) -> Any:
    """:func:`map_reduce`'s dask-array route: ``da.blockwise`` and ``da.reduction``, the
    blocks not mapped left out of the array (their part of its graph not computed)."""
    X = src.X
    vectors = [a if isinstance(a, da.Array) else da.from_array(np.asarray(a), chunks=-1)
               for a in ([] if src.weights is None else [src.weights]) + list(aligned.values())]
    vectors = [v.rechunk((X.chunks[0],)) for v in vectors]
    mapped = [i for i, _ in blocks]
    if len(blocks) < src.n_blocks:  # settled blocks, mini-batch steps: a subset
        X, *vectors = (da.concatenate([a[src.offsets[i]:src.offsets[i + 1]] for i in mapped])
                       for a in (X, *vectors))
    info = np.empty(len(blocks), dtype=object)
    for j, (i, consts) in enumerate(blocks):
        info[j] = {"offset": src.offset(i), "consts": consts}
    args: list[Any] = [X, "ij"]
    for v in vectors:
        args += [v, "i"]
    if states is not None:
        args += [_state_array(states, mapped), "i"]
    args += [da.from_array(info, chunks=1), "i"]
    parts = da.blockwise(
        _dask_block, "i", *args, kernel=kernel, task_src=TaskSource(src), shared=shared,
        raw=raw, weighted=src.weights is not None, names=tuple(aligned),
        stateful=states is not None, concatenate=False, align_arrays=False, dtype=object,
        meta=np.empty((0,), dtype=object), adjust_chunks={"i": 1},
    )
    try:
        if not keep and not summaries:
            return compute(reduce_blocks(parts, split_every), n_tasks=len(blocks))
        return _reduce_dask_outputs(parts, mapped, keep, summaries, split_every)
    except DaskmeansError:
        raise
    except (RuntimeError, ValueError) as e:  # codecs' errors; not a lost worker's
        if isinstance(e, NonFiniteError):
            raise
        unreadable = unreadable_block(src, mapped)
        if unreadable is None:  # every block computes alone: the error was not the input's
            raise
        raise unreadable from e


def _reduce_dask_outputs(parts: da.Array, mapped: list[int], keep: bool, summaries: bool,
                         split_every: int) -> Reduced:
    """The partials of a blockwise pass with per-block outputs tree-reduced with its
    summaries (:class:`_Summarised`: no task of their own), and its states kept: numpy
    here under the local scheduler; on a cluster the states' object array persisted in
    the workers in the same graph (one submission), each block's state a one-chunk
    slice of it that the next pass names by key."""
    total = reduce_blocks(da.map_blocks(_summarised, parts, summaries, dtype=object,
                                        meta=np.empty((0,), dtype=object)), split_every)
    wanted = [total, *([_entries(parts, 1)] if keep else [])]
    if using_distributed():
        from distributed import default_client, futures_of

        client = default_client()
        done = client.persist(wanted)
        (got,) = client.gather(futures_of(done[0]))
        kept = [done[1][j:j + 1] for j in range(len(mapped))] if keep else None
    else:
        out = compute(*wanted, n_tasks=len(mapped))
        got, kept = (out[0], list(out[1])) if keep else (out, None)
    sums = {mapped[j]: sm for j, sm in sorted(got.summaries.items())} if summaries else None
    return Reduced(got.partial, None if kept is None else dict(zip(mapped, kept, strict=True)),
                   sums)


class _Summarised:
    """A partial result with the summaries of the blocks it sums (by position in the
    pass), added as the partials are."""

    def __init__(self, partial: Any, summaries: dict[int, Any]) -> None:
        self.partial, self.summaries = partial, summaries

    def __add__(self, other: _Summarised) -> _Summarised:
        return _Summarised(self.partial + other.partial, {**self.summaries, **other.summaries})


def _summarised(parts: np.ndarray, summaries: bool, block_info: Any = None) -> np.ndarray:
    """``map_blocks`` body: a block's partial and (with ``summaries``) its summary, from
    its ``(partial, [state], [summary])``."""
    got = parts[0]
    j = block_info[0]["chunk-location"][0] if block_info else 0
    out = np.empty((1,), dtype=object)
    out[0] = _Summarised(got[0], {j: got[-1]} if summaries else {})
    return out


def unreadable_block(src: DaskSource, indices: Sequence[int]) -> BlockReadError | None:
    """The error naming the first of ``src``'s row blocks ``indices`` whose own graph
    fails when computed alone (``X[start:stop]``), or None if every one computes.

    A user's dask array (``da.from_zarr``, xarray over Zarr) reads its chunks in tasks
    of its own graph, so a damaged chunk raises the codec's bare error, naming nothing;
    only after a pass has failed are its blocks tried one by one, to name the array, the
    block and its rows."""
    for i in indices:
        block = src.X[src.offsets[i]:src.offsets[i + 1]]  # slicing: every dask array has it
        try:
            dask.compute(block)
        except Exception as e:
            return BlockReadError(
                f"dask array {src.X.name!r}: row block {i} of {src.n_blocks} (rows "
                f"{src.offsets[i]}..{src.offsets[i + 1] - 1}) cannot be read: "
                f"{type(e).__name__}: {e} (to have the file and chunk named, give daskmeans "
                "the store itself, e.g. daskmeans.open_source(path))")
    return None


# --------------------------------------------------------------------------- the passes

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
    src: Source, C: np.ndarray, counts: np.ndarray, *, rows: np.ndarray | None = None,
    blocks: Sequence[int] | None = None, picks: np.ndarray | None = None,
    split_every: int = SPLIT_EVERY,
) -> minibatch.BatchStep:
    """One mini-batch step (:class:`~daskmeans.kernels.minibatch.BatchStep`): the batch
    assigned to ``C``, the count-weighted update from ``counts``, the batch's inertia,
    and the batch's rows at positions ``picks`` (reassignment candidates).

    ``rows``: sorted global row indices (repeats allowed), the batch in that order;
    ``blocks``: whole blocks form the batch, in block order (data streamed from
    storage, where any row read costs its block).

    Rows held in this process (a numpy array, a store's blocks held here) go straight
    to the fused kernel (:func:`~daskmeans.kernels.minibatch.minibatch_step`): no graph,
    no compute, the batch gathered a tile at a time from where the rows are. Otherwise
    each block holding some of the batch computes its share where it is and only the
    per-cluster sums (and the picked rows) come back: one compute. The batch order,
    and so the result, is the same whatever the blocks. (Blocks held in a cluster's
    workers take the fused step there instead:
    :func:`daskmeans.engine.workers.worker_batch_step`.)
    """
    parts = held_parts(src, rows, blocks)
    if parts is not None:
        w = None
        if src.weights is not None:
            weights = np.asarray(src.weights, dtype=np.float64)
            w = np.concatenate([weights[_held_offset(src, i) + ix] for i, ix in parts])
        try:
            # tile-sized GEMMs, one BLAS thread each; above a few tens of centres the
            # GEMM is most of a step and the tiles are spread over the local threads
            threads = local_threads() if C.shape[0] > MINIBATCH_SERIAL_K else 1
            with client_blas():
                return minibatch.minibatch_step(
                    [(_held_block(src, i), ix) for i, ix in parts], C, counts, w,
                    scale=src.scale, picks=picks, threads=threads)
        except NonFiniteRow as e:
            starts = np.cumsum([0] + [len(ix) for _, ix in parts])
            j = int(np.searchsorted(starts, e.row, side="right")) - 1
            i, ix = parts[j]
            row = _held_offset(src, i) + int(ix[e.row - starts[j]])
            raise NonFiniteError(non_finite_message(row)) from None
    if rows is not None:
        cuts = np.searchsorted(rows, src.offsets)

        def per_block(i: int) -> dict[str, Any] | None:
            lo, hi = int(cuts[i]), int(cuts[i + 1])
            if hi == lo:
                return None
            return {"local": rows[lo:hi] - src.offsets[i],
                    "positions": np.arange(lo, hi, dtype=np.int64)}
    else:
        chosen = sorted(set(blocks or ()))
        first = dict(zip(chosen, np.cumsum([0] + [src.block_rows(i) for i in chosen]).tolist(),
                         strict=False))

        def per_block(i: int) -> dict[str, Any] | None:
            if i not in first:
                return None
            return {"positions": np.arange(first[i], first[i] + src.block_rows(i),
                                           dtype=np.int64)}

    kernel = functools.partial(_batch_kernel, picks=picks)
    out = map_reduce(src, kernel, common.Centres(C, src.dtype), per_block=per_block,
                     split_every=split_every, raw=True)
    return out.finish(C, counts, picks)


def held_parts(src: Source, rows: np.ndarray | None, blocks: Sequence[int] | None
               ) -> list[tuple[int, np.ndarray]] | None:
    """A mini-batch as (block index, local row indices) pairs in batch order when every
    block is held as a numpy array or a CSR matrix in this process (an in-memory array,
    or any source whose ``held`` blocks are) and the kernels take it as held (no
    normalisation, the rows' dtype or raw pixels with a scale); else None."""
    if src.normalize:
        return None
    if isinstance(src, ArraySource):
        if src.held is not None or src.scale is not None:
            return None
        if rows is not None:  # one part: the whole array, however it is blocked
            return [(-1, np.asarray(rows, dtype=np.int64))]
    elif src.held is None or not all(isinstance(b, np.ndarray) or common.is_sparse(b)
                                     for b in src.held):
        return None
    elif src.scale is None and any(b.dtype != src.dtype for b in src.held):
        return None
    if rows is not None:
        cuts = np.searchsorted(rows, src.offsets)
        return [(i, np.asarray(rows[cuts[i]:cuts[i + 1]] - src.offsets[i], dtype=np.int64))
                for i in range(src.n_blocks) if cuts[i + 1] > cuts[i]]
    return [(i, np.arange(src.block_rows(i), dtype=np.int64)) for i in sorted(set(blocks or ()))]


def steps_in_process(src: Source) -> bool:
    """Whether :func:`batch_pass` runs a mini-batch step of ``src`` in this process
    (its rows held here: no graph per step)."""
    return held_parts(src, np.empty(0, np.int64), None) is not None


def _held_block(src: Source, i: int) -> np.ndarray:
    """Block ``i`` as held here (``-1``: the whole in-memory array)."""
    if i < 0:
        return src.X
    return src.held[i] if src.held is not None else src.block(i)


def _held_offset(src: Source, i: int) -> int:
    """The first row of block ``i`` (``-1``: the whole in-memory array)."""
    return 0 if i < 0 else src.offsets[i]


def _batch_kernel(x: np.ndarray, w: np.ndarray | None, xsq: np.ndarray | None,
                  C: common.Centres, *, offset: int, picks: np.ndarray | None,
                  positions: np.ndarray, scale: float | None = None,
                  local: np.ndarray | None = None) -> minibatch.BatchPartial:
    if local is not None:
        x, w = x[local], (None if w is None else w[local])
    return minibatch.batch_partial(x, C, w, positions=positions, picks=picks, scale=scale)


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
    kernel = functools.partial(_bounds_kernel, groups=groups, version=version, n_top=n_top,
                               moments=moments)
    states = [_as_sent(st) for st in states]
    out = map_reduce(src, kernel, (common.Centres(C, src.dtype), np.asarray(C, np.float64)),
                     per_block=lambda i: {"step": steps[i]} if i in steps else None,
                     states=states, keep=True, summaries=True, xsq=False,
                     split_every=split_every, raw=True)
    return out.total, out.states, out.summaries


def bounds_labels(states: Sequence[Any]) -> np.ndarray | HeldLabels | None:
    """(n,) int32: the rows' labels held in the blocks' bounds, in row order; None
    when a block has none yet. Bounds kept in a cluster's workers give
    :class:`HeldLabels`: each block's labels taken out of its bounds in the worker
    that holds them, and left there."""
    if all(isinstance(st, bounds.BlockBounds) for st in states):
        labels = np.concatenate([st.labels for st in states]).astype(np.int32, copy=False)
        return None if (labels < 0).any() else labels
    if not using_distributed():
        return None
    return HeldLabels.of(states)


def _state_labels(state: bounds.BlockBounds) -> np.ndarray:
    """A block's labels out of its bounds (inside the worker holding them)."""
    return np.asarray(state.labels, dtype=np.int32)


def _chunk_labels(state: np.ndarray) -> np.ndarray:
    """``map_blocks`` body: the labels of a persisted one-chunk state array."""
    return _state_labels(state[0])


class HeldLabels(NamedTuple):
    """A run's labels where its blocks' bounds are, in a cluster's workers: a future of
    each block's (m,) int32 labels, in block order (made in the worker holding the
    bounds; nothing per row comes back until they are computed)."""

    futures: list[Any]

    @classmethod
    def of(cls, states: Sequence[Any]) -> HeldLabels:
        """The labels of bounds kept as futures (a held source's blocks) or as
        persisted one-chunk object arrays (a streamed dask array's)."""
        from distributed import default_client

        client = default_client()
        if all(isinstance(st, da.Array) for st in states):  # persisted: named by key
            return cls(client.compute([
                da.map_blocks(_chunk_labels, st, dtype=np.int32, chunks=((np.nan,),),
                              meta=np.empty((0,), np.int32)) for st in states]))
        return cls([client.submit(_state_labels, st, pure=False) for st in states])

    def gather(self) -> np.ndarray:
        """(n,) int32 labels in row order, here."""
        from distributed import default_client

        return np.concatenate(default_client().gather(self.futures)).astype(np.int32,
                                                                          copy=False)


class FreshBounds(NamedTuple):
    """What a task receives instead of a block's fresh bounds (no row assigned yet):
    the task makes them (:meth:`~daskmeans.kernels.BlockBounds.fresh`) where the block
    is, so that a first pass's graph carries nothing per row (``12 + 4 t`` bytes a row
    otherwise, sent from the client with every task on a cluster)."""

    n_groups: int


def _as_sent(state: Any) -> Any:
    """A block's state as its task receives it: fresh bounds as :class:`FreshBounds`."""
    if isinstance(state, bounds.BlockBounds) and state.version < 0:  # never assigned
        return FreshBounds(int(state.lower.shape[1]))
    return state


def _bounds_kernel(x: np.ndarray, w: np.ndarray | None, xsq: np.ndarray | None,
                   centres: tuple[common.Centres, np.ndarray], *, offset: int,
                   state: bounds.BlockBounds | FreshBounds, step: bounds.Drift | None,
                   groups: np.ndarray | None, version: int, n_top: int, moments: bool,
                   scale: float | None = None
                   ) -> tuple[bounds.BoundsPartial, bounds.BlockBounds, bounds.BoundsSummary]:
    C, C64 = centres
    if isinstance(state, FreshBounds):
        state = bounds.BlockBounds.fresh(x.shape[0], state.n_groups)
    return bounds.bounds_block(x, C, state, step, w, version=version, n_top=n_top,
                               moments=moments, offset=offset, scale=scale, centres64=C64,
                               groups=groups)



def median_assign_pass(
    src: Source, C: np.ndarray, grid: medians.MedianGrid, *, n_top: int = 0, moments: bool = False,
    guess: np.ndarray | None = None, split_every: int = SPLIT_EVERY,
) -> tuple[medians.MedianPartial, list[Any] | None]:
    """The first pass of a k-medians iteration (:func:`daskmeans.kernels.medians.median_assign`,
    with the second digit's histograms counted ahead around ``guess``, if given): one
    compute. Returns the summed partial and each block's labels, kept where the block is
    (numpy, or futures on a cluster; one-chunk persisted arrays for a streamed dask
    array) for the iteration's later passes."""
    kernel = functools.partial(_median_assign_kernel, grid=grid, n_top=n_top, moments=moments)
    out = map_reduce(src, kernel, (medians.L1Centres(C), guess), keep=True, xsq=False,
                     split_every=split_every, raw=grid.raw)
    return out.total, out.state_list()


def _median_assign_kernel(x: np.ndarray, w: np.ndarray | None, xsq: np.ndarray | None,
                          shared: tuple[medians.L1Centres, np.ndarray | None], *,
                          offset: int, grid: medians.MedianGrid, n_top: int, moments: bool,
                          scale: float | None = None
                          ) -> tuple[medians.MedianPartial, np.ndarray]:
    C, guess = shared
    return medians.median_assign(x, C, w, grid=grid, offset=offset, n_top=n_top,
                                 moments=moments, scale=scale, guess=guess)


def median_refine_pass(src: Source, grid: medians.MedianGrid, step: medians.MedianStep,
                       labels: Sequence[Any] | None, split_every: int = SPLIT_EVERY
                       ) -> medians.MedianHist:
    """A later pass of a k-medians iteration (:func:`daskmeans.kernels.medians.median_refine`)
    over the blocks with their kept ``labels`` (or, when None, assigning the rows
    again with ``step.centres``): one compute."""
    return map_reduce(src, functools.partial(_median_refine_kernel, grid=grid), step,
                      states=labels, xsq=False, split_every=split_every, raw=grid.raw)


def _median_refine_kernel(x: np.ndarray, w: np.ndarray | None, xsq: np.ndarray | None,
                          step: medians.MedianStep, *, offset: int, grid: medians.MedianGrid,
                          scale: float | None = None, state: Any = None) -> medians.MedianHist:
    return medians.median_refine(x, w, step, grid=grid, labels=state, offset=offset, scale=scale)


def range_pass(src: Source, split_every: int = SPLIT_EVERY) -> medians.ValueRange:
    """Per-feature min and max of the rows (as float): one compute; a row holding NaN
    or infinity raises :class:`~daskmeans.engine.source.NonFiniteError` naming it."""
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
               split_every: int = SPLIT_EVERY, metric: str | Metric = "euclidean"
               ) -> scores.Scored:
    """The objective against ``C`` (SSE; the sum of L1 distances for
    ``metric="manhattan"``; to the leaves of a bisecting tree for
    :class:`~daskmeans.kernels.TreeCentres`) and, given true labels (n,), the
    contingency table of the rows' clusters against them, in one pass."""
    name = as_metric(metric).name  # a name travels in the graph
    kernel = functools.partial(_score_kernel, metric=name)
    return map_reduce(src, kernel, _prepared(C, src.dtype, name), split_every=split_every,
                      aligned=None if labels_true is None else {"labels": labels_true})


def _score_kernel(x: np.ndarray, w: np.ndarray | None, xsq: np.ndarray | None,
                  C: common.Centres, *, offset: int, metric: str,
                  labels: np.ndarray | None = None) -> scores.Scored:
    return scores.score_block(x, C, w, None if labels is None else np.asarray(labels), metric)


def oversample_pass(src: Source, C: np.ndarray, *, seed: int, m: int,
                    split_every: int = SPLIT_EVERY, metric: str | Metric = "euclidean"
                    ) -> init.Oversample:
    """One k-means|| round: total cost and the ``m`` rows with the largest keys."""
    kernel = functools.partial(_oversample_kernel, seed=seed, m=m,
                               metric=as_metric(metric).name)
    return map_reduce(src, kernel, C, split_every=split_every)


def _oversample_kernel(x: np.ndarray, w: np.ndarray | None, xsq: np.ndarray | None,
                       C: np.ndarray, *, offset: int, seed: int, m: int,
                       metric: str) -> init.Oversample:
    return init.oversample_partial(x, C, w, offset=offset, seed=seed, m=m, metric=metric)


def count_pass(src: Source, C: np.ndarray, split_every: int = SPLIT_EVERY,
               metric: str | Metric = "euclidean") -> np.ndarray:
    """Weight of rows nearest to each row of C."""
    return map_reduce(src, functools.partial(_count_kernel, metric=as_metric(metric).name), C,
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
    descend the tree again (the descent is a large part of a pass). A
    store's uint8 rows reach the kernels raw (:func:`reads_raw_uint8`): each row is
    scaled as it is used, not the whole block in every pass (the same results).
    """
    out = map_reduce(src, functools.partial(_bisect_kernel, keep=keep), step, states=nodes,
                     keep=keep, xsq=False, split_every=split_every, raw=reads_raw_uint8(src))
    return (out.total, out.state_list()) if keep else (out, None)


def _bisect_kernel(x: np.ndarray, w: np.ndarray | None, xsq: np.ndarray | None,
                   step: bisect.BisectStep, *, offset: int, keep: bool, state: Any = None,
                   scale: float | None = None) -> Any:
    nodes = state if state is not None else bisect.tree_nodes(x, step.tree, scale)
    part = bisect.bisect_block(x, w, step, offset=offset, nodes=nodes, scale=scale)
    return (part, nodes) if keep else part


def leaf_rows_pass(src: Source, tree: bisect.TreeSnapshot, split_every: int = SPLIT_EVERY
                   ) -> bisect.LeafRows:
    """The rows that reach the leaves with a slot in ``tree``, gathered into this
    process (:func:`daskmeans.kernels.bisect.leaf_rows_block`: each block sends only
    those rows, as stored: raw uint8 rows stay raw): one compute."""
    return map_reduce(src, _leaf_rows_kernel, tree, xsq=False, split_every=split_every,
                      raw=reads_raw_uint8(src))


def _leaf_rows_kernel(x: np.ndarray, w: np.ndarray | None, xsq: np.ndarray | None,
                      tree: bisect.TreeSnapshot, *, offset: int,
                      scale: float | None = None) -> bisect.LeafRows:
    return bisect.leaf_rows_block(x, w, tree, offset=offset, scale=scale)


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
    cuts = np.searchsorted(index, src.offsets)

    def per_block(i: int) -> dict[str, Any] | None:
        lo, hi = int(cuts[i]), int(cuts[i + 1])
        return None if hi == lo else {"local": index[lo:hi] - src.offsets[i]}

    out = map_reduce(src, _take_kernel, per_block=per_block, raw=True)
    return out.rows, out.weights


def _take_kernel(x: np.ndarray, w: np.ndarray | None, xsq: np.ndarray | None, shared: Any,
                 *, offset: int, local: np.ndarray, scale: float | None = None) -> common.Rows:
    if common.is_sparse(x):  # CSR rows stay CSR
        rows = x[local]
    else:
        # raw stored rows: only the rows taken are scaled, not the whole block (the
        # init's sample takes a few rows of every block)
        rows = np.array(x[local] if scale is None else float_rows(x[local], scale, False))
    return common.Rows(rows, None if w is None else np.asarray(w, np.float64)[local])
