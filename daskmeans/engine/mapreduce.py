"""Map-reduce over a data source's blocks: the one primitive every pass is built on.

:func:`map_reduce` maps a kernel (from :mod:`daskmeans.kernels`) over the blocks of a
:class:`~daskmeans.engine.source.Source` and tree-reduces the per-block partial results
(``split_every`` at a time) with ``+``, in exactly one ``dask.compute`` under whatever
scheduler is active (threaded by default, a ``distributed.Client`` when one is active).
:func:`map_reduce_kept` is the same with per-block state kept where the blocks are
(labels, a bisecting tree's nodes), and :func:`hold` reads a store's blocks once and
keeps them (with their ``|x|^2``) for every later pass. Only public dask APIs are used:

- in-memory and Zarr sources: one ``dask.delayed`` task per block, reading its rows
  where it runs (a numpy view, a scattered future, or a Zarr read), and a tree of
  delayed additions;
- dask arrays: ``da.blockwise`` over the row blocks (with a small object array that
  carries each block's offset and constants) and ``da.reduction`` for the tree
  (:func:`reduce_blocks`). This is the only public route to a dask array's blocks that
  also works with dask's array query planning; it costs more graph handling per pass
  than the delayed route, which is why the other sources do not take it.

Centres are prepared once per pass and go inside each task while all copies stay under
:data:`INLINE_MAX_BYTES`, else enter the graph once as a delayed value
(:func:`shared_operand`).
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Sequence
from typing import Any

import dask
import dask.array as da
import numpy as np

from ..kernels.common import NonFiniteRow, row_norms_sq
from .schedule import (
    compute,
    local_blas,
    memory_budget,
    total_threads,
    using_distributed,
    worker_blas,
)
from .source import (
    DaskSource,
    NonFiniteError,
    Source,
    ZarrBlock,
    ZarrSource,
    block_offsets,
    float_rows,
)

__all__ = ["INLINE_MAX_BYTES", "SPLIT_EVERY", "TaskSource", "add_all", "call_kernel",
           "delayed_tree", "hold", "map_reduce", "map_reduce_kept", "reduce_blocks",
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
    task_src = TaskSource(src)
    if isinstance(src, DaskSource):
        return _map_reduce_dask(src, task_src, kernel, shared, blocks, split_every, raw, aligned)

    def rows_of(a: Any, i: int) -> Any:
        return None if a is None else a[src.offsets[i]:src.offsets[i + 1]]

    s = shared_operand(shared, len(blocks))
    task = dask.delayed(call_kernel, pure=False)
    parts = [
        task(kernel, task_src, src.block(i), rows_of(src.weights, i), src.block_xsq(i), s,
             src.offset(i), {**consts, **{k: rows_of(a, i) for k, a in aligned.items()}}, raw)
        for i, consts in blocks
    ]
    parts = delayed_tree(parts, split_every)
    out = compute(*parts, n_tasks=len(blocks))
    return add_all(*out) if len(parts) > 1 else out


def _dask_block(cols: list[np.ndarray], *rest: Any, kernel: Callable[..., Any],
                task_src: TaskSource, shared: Any, raw: bool, weighted: bool,
                names: tuple[str, ...]) -> np.ndarray:
    """``da.blockwise`` body: one block's partial in a 1-element object array (``cols``:
    the block as the one-element list of its column blocks)."""
    (x,) = cols  # not concatenated by dask: that copied every block in every pass
    w = rest[0] if weighted else None
    info = rest[-1][0]
    consts = {**info["consts"], **dict(zip(names, rest[int(weighted):-1], strict=True))}
    out = np.empty((1,), dtype=object)
    out[0] = call_kernel(kernel, task_src, x, w, None, shared, info["offset"], consts, raw)
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


def _map_reduce_dask(src: DaskSource, task_src: TaskSource, kernel: Callable[..., Any],
                     shared: Any, blocks: list[tuple[int, dict[str, Any]]], split_every: int,
                     raw: bool, aligned: dict[str, Any]) -> Any:
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
        _dask_block, "i", *args, kernel=kernel, task_src=task_src, shared=shared, raw=raw,
        weighted=src.weights is not None, names=tuple(aligned), concatenate=False,
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
    """``src`` with its blocks read once, now (one compute, one task per block) and
    kept in memory (numpy here, futures in the workers on a cluster) when the source
    asks for it (:meth:`ZarrSource.wants_cache`); every later pass takes
    the decoded rows instead of reading and decoding the store. Stored rows stay as
    stored (uint8: a quarter of float32), with each row's ``|x|^2`` unless
    ``with_xsq`` is False (k-medians never uses it). Other sources are returned as they
    are."""
    if not isinstance(src, ZarrSource) or src.held is not None:
        return src
    if not src.wants_cache(memory_budget()):
        return src
    task_src = TaskSource(src)
    read = dask.delayed(_read_block, pure=False, nout=2)
    if using_distributed():
        from distributed import default_client, wait

        # each block's |x|^2 too, held next to it (as for local blocks: without it
        # every pass on the cluster recomputes it)
        parts = [read(src.block(i), task_src, with_xsq) for i in range(src.n_blocks)]
        wanted = [p[0] for p in parts] + ([p[1] for p in parts] if with_xsq else [])
        futures = default_client().compute(wanted)
        wait(futures)
        return src.with_held(futures[:src.n_blocks], futures[src.n_blocks:] or None)
    # |x|^2 once for every pass, as for in-memory arrays (a pass need not recompute it)
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


# --------------------------------------------------------------------------- per-block state


def _call_with_state(kernel: Callable[..., Any], task_src: TaskSource, rows: Any, w: Any,
                     shared: Any, offset: int, state: Any, raw: bool) -> Any:
    return call_kernel(kernel, task_src, rows, w, None, shared, offset, {"state": state}, raw)


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
    task_src = TaskSource(src)
    s = shared_operand(shared, n)
    task = dask.delayed(_call_with_state, pure=False, nout=2 if keep else None)
    parts, kept = [], []
    for i in range(n):
        w = None if src.weights is None else src.weights[src.offsets[i]:src.offsets[i + 1]]
        out = task(kernel, task_src, src.block(i), w, s, src.offset(i),
                   None if states is None else states[i], raw)
        if keep:
            part, state = out
            parts.append(part)
            kept.append(state)
        else:
            parts.append(out)
    parts = delayed_tree(parts, split_every)
    if keep and using_distributed():  # the states stay in the workers as futures
        from distributed import default_client

        client = default_client()
        futures = client.compute([*parts, *kept])
        return add_all(*client.gather(futures[:len(parts)])), futures[len(parts):]
    with local_blas(n):
        got, got_kept = dask.compute(parts, kept)
    return add_all(*got), (list(got_kept) if keep else None)
