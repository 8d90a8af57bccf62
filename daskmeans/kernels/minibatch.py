"""One mini-batch step (Sculley 2010, scikit-learn's ``_mini_batch_step``): the batch's
rows to their nearest centres, the per-centre count-weighted update and the batch's
inertia, fused (:func:`minibatch_step`), on rows held in this process; and, for rows
held elsewhere (a cluster's workers, a dask array), a block's share of a step
(:func:`batch_partial`), whose sums :meth:`BatchPartial.finish` applies with the same
update (:func:`update_centres`).

A batch is given as *parts*: ``(block, index)`` pairs, a block of rows as held (float
rows, raw uint8 pixels with ``scale``, or CSR rows) and the int64 local indices of the batch's
rows in it (repeats allowed), in batch order. No copy of the batch is made: the
compiled loop (:mod:`daskmeans.kernels.minibatch_compiled`) gathers a tile at a time;
:func:`_step_numpy` is the reference the tests compare it with.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from ..pixels import scale_rows
from . import lloyd, sparse
from .common import (
    Centres,
    NonFiniteRow,
    SparseRows,
    compiled_kernels,
    compiled_module,
    is_sparse,
    row_access,
    rows_and_centres,
    sse_of_sums,
)

#: a batch's rows: (block as held, int64 local indices of the batch's rows in it)
Part = tuple[np.ndarray, np.ndarray]


@dataclass
class BatchStep:
    """What one mini-batch step gives: the centres and counts after scikit-learn's
    count-weighted update (before any reassignment), the batch's weighted SSE against
    the centres it was assigned to, its rows, and the rows at the batch positions the
    step was asked for (candidates for reassignment), in the order asked."""

    centers: np.ndarray  # (k, d) float64
    counts: np.ndarray  # (k,) float64
    inertia: float
    n_rows: int
    picked: np.ndarray  # (m, d)


def update_centres(C: np.ndarray, counts: np.ndarray, sums: np.ndarray, wsum: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's count-weighted update (``_minibatch_update_dense``): every centre
    with batch weight ``wsum_j > 0`` moves to ``(c_j N_j + S_j) / (N_j + wsum_j)``
    (multiplied by the reciprocal, as there) and its count grows by ``wsum_j``; the
    others stay. Returns new float64 (centres, counts); the inputs are not changed.

    >>> c, n = update_centres(np.array([[0.0], [5.0]]), np.array([1.0, 2.0]),
    ...                       np.array([[6.0], [0.0]]), np.array([2.0, 0.0]))
    >>> c.tolist(), n.tolist()
    ([[2.0], [5.0]], [3.0, 2.0])
    """
    C64 = np.ascontiguousarray(C, dtype=np.float64)
    counts = np.ascontiguousarray(counts, dtype=np.float64)
    sums = np.ascontiguousarray(sums, dtype=np.float64)
    wsum = np.ascontiguousarray(wsum, dtype=np.float64)
    out, out_counts = np.empty_like(C64), np.empty_like(counts)
    if compiled_kernels():
        compiled_module("minibatch").update_centres(C64, counts, sums, wsum, out, out_counts)
        return out, out_counts
    nz = wsum > 0
    out[:], out_counts[:] = C64, counts
    n = counts[nz] + wsum[nz]
    out[nz] = (C64[nz] * counts[nz, None] + sums[nz]) * (1.0 / n)[:, None]
    out_counts[nz] = n
    return out, out_counts


def rows_at(parts: Sequence[Part], positions: np.ndarray, scale: float | None = None
            ) -> np.ndarray:
    """The batch's rows at ``positions`` (batch order), as float rows (raw rows scaled)."""
    positions = np.asarray(positions, dtype=np.int64)
    starts = np.cumsum([0] + [len(ix) for _, ix in parts])
    d = int(np.prod(parts[0][0].shape[1:])) if parts else 0
    dtype = np.float32 if scale is not None else (parts[0][0].dtype if parts else np.float64)
    out = np.empty((len(positions), d), dtype=dtype)
    which = np.searchsorted(starts, positions, side="right") - 1
    for j, p in enumerate(which):
        block, index = parts[p]
        row = block[index[positions[j] - starts[p]]].reshape(1, -1)
        out[j] = scale_rows(row, scale)[0] if scale is not None else row[0]
    return out


def minibatch_step(parts: Sequence[Part], C: np.ndarray | Centres, counts: np.ndarray,
                   weights: np.ndarray | None = None, *, scale: float | None = None,
                   picks: np.ndarray | None = None, threads: int = 1) -> BatchStep:
    """One mini-batch step on a batch held here: every row to its nearest centre (the
    distance GEMM a tile at a time, near ties settled in float64), the per-cluster
    sums in batch order, the count-weighted update (:func:`update_centres`) and the
    batch's weighted SSE (from the sums, exact to float64 rounding), fused.

    Parameters
    ----------
    parts : the batch, ``(block, local indices)`` pairs in batch order (see the module)
    C : (k, d) centres the batch is assigned to (or prepared :class:`Centres`)
    counts : (k,) float64 weight each centre has seen so far
    weights : (b,) sample weights of the batch's rows in batch order, or None
    scale : the blocks hold raw values standing for ``float32(x) * scale``
    picks : batch positions whose rows to return (reassignment candidates)
    threads : the compiled step assigns the batch's tiles on this many threads (each
        tile as one thread would: the same labels), then sums the rows in batch order
        on one; the result does not depend on it

    Examples
    --------
    >>> X = np.array([[0.0, 0.0], [0.0, 2.0], [9.0, 9.0]])
    >>> step = minibatch_step([(X, np.array([0, 1, 2, 2]))], np.array([[0.0, 1.0], [8.0, 8.0]]),
    ...                       np.array([2.0, 0.0]))
    >>> step.centers.tolist(), step.counts.tolist(), step.inertia
    ([[0.0, 1.0], [9.0, 9.0]], [4.0, 2.0], 6.0)
    """
    b = int(sum(len(ix) for _, ix in parts))
    first = parts[0][0] if parts else np.empty((0, 0))
    _, cen = rows_and_centres(first, C, scale)
    C64 = cen.centres().astype(np.float64)
    d = C64.shape[1]
    w = None if weights is None else np.ascontiguousarray(weights, dtype=np.float64)
    if is_sparse(first):
        return _step_sparse(parts, cen, C64, counts, w, picks)
    if compiled_kernels() and threads > 1:
        sums, wsum, sumsq = _step_threaded(parts, cen, w, scale, b, d, threads)
    elif compiled_kernels():
        sums, wsum, sumsq = _step_compiled(parts, cen, w, scale, b, d)
    else:
        sums, wsum, sumsq = _step_numpy(parts, cen, w, scale, b, d)
    centers, new_counts = update_centres(C64, counts, sums, wsum)
    if picks is None or not len(picks):  # most steps reassign nothing
        picked = np.empty((0, d), np.float32 if scale is not None else cen.dtype)
    else:
        picked = rows_at(parts, picks, scale).reshape(-1, d)
    return BatchStep(centers, new_counts, sse_of_sums(sums, wsum, sumsq, C64), b, picked)


def _step_sparse(parts: Sequence[Part], cen: Centres, C64: np.ndarray, counts: np.ndarray,
                 w: np.ndarray | None, picks: np.ndarray | None) -> BatchStep:
    """:func:`minibatch_step` on CSR blocks: the batch's rows gathered as CSR rows in
    batch order (only their stored values), assigned and summed in that order by the
    sparse Lloyd kernel (:func:`daskmeans.kernels.sparse.lloyd_stats`), then the same
    update."""
    batch = sp.vstack([block[np.asarray(index)] for block, index in parts], format="csr")
    b, k = batch.shape[0], cen.k
    labels, sqd = np.empty((b, 1), np.int32), np.empty((b, 1), cen.dtype)
    sums = np.zeros((k, C64.shape[1]))
    wsum, sse = sparse.lloyd_stats(batch, cen, None, w, 1, k, labels, sqd, sums)
    centers, new_counts = update_centres(C64, counts, sums, wsum)
    picked = SparseRows(batch)[np.asarray([] if picks is None else picks, np.int64)]
    return BatchStep(centers, new_counts, sse[0], b, picked)


def _step_compiled(parts: Sequence[Part], cen: Centres, w: np.ndarray | None,
                   scale: float | None, b: int, d: int
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-cluster (sums, weights, ``sum w |x|^2``) of the batch, compiled."""
    compiled = compiled_module("minibatch")
    tile = compiled_module("common").tile_rows(cen.m2t.shape[1])
    k = cen.k
    sums, wsum, sumsq = np.zeros((k, d)), np.zeros(k), np.zeros(k)
    labels = np.empty((b, 1), np.int32)
    sqd = np.empty((b, 1), cen.dtype)
    ww = np.empty(0) if w is None else w
    pos = 0
    for block, index in parts:
        X = np.ascontiguousarray(block.reshape(block.shape[0], -1))
        index = np.ascontiguousarray(index, dtype=np.int64)
        if scale is not None:
            bad = compiled.batch_raw(X, float(scale), index, cen.m2t, cen.sq, ww, k, tile,
                                     pos, labels, sqd, sums, wsum, sumsq, cen.tie)
        else:
            bad = compiled.batch_float(X, index, cen.m2t, cen.sq, ww, k, tile, pos, labels,
                                       sqd, sums, wsum, sumsq, cen.tie)
        if bad >= 0:
            raise NonFiniteRow(int(bad))
        pos += len(index)
    return sums, wsum, sumsq


def _step_threaded(parts: Sequence[Part], cen: Centres, w: np.ndarray | None,
                   scale: float | None, b: int, d: int, threads: int
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`_step_compiled` with the assignment (the GEMM, most of a step at large k)
    spread over ``threads`` threads a run of tiles each, then the sums in batch order
    on this thread: the same sums, bit for bit."""
    compiled = compiled_module("minibatch")
    tile = compiled_module("common").tile_rows(cen.m2t.shape[1])
    k = cen.k
    labels, x2 = np.empty(b, np.int32), np.empty(b)
    blocks, jobs, pos = [], [], 0
    per = max(tile, -(-b // threads // tile) * tile)  # tile-aligned runs
    for block, index in parts:
        X = np.ascontiguousarray(block.reshape(block.shape[0], -1))
        index = np.ascontiguousarray(index, dtype=np.int64)
        blocks.append((X, index, pos))
        jobs += [(X, index, lo, min(lo + per, len(index)), pos)
                 for lo in range(0, len(index), per)]
        pos += len(index)
    sc, raw = 1.0 if scale is None else float(scale), scale is not None

    def run(job: tuple[np.ndarray, np.ndarray, int, int, int]) -> int:
        X, index, lo, hi, p0 = job
        return int(compiled.assign_range(X, sc, raw, index, lo, hi, cen.m2t, cen.sq, k, tile,
                                         p0, labels, x2, cen.tie))

    bad = [r for r in _pool().map(run, jobs) if r >= 0]
    if bad:
        raise NonFiniteRow(min(bad))
    sums, wsum, sumsq = np.zeros((k, d)), np.zeros(k), np.zeros(k)
    ww = np.empty(0) if w is None else w
    for X, index, p0 in blocks:
        compiled.accumulate(X, sc, raw, index, p0, labels, x2, ww, sums, wsum, sumsq)
    return sums, wsum, sumsq


@functools.cache
def _pool() -> ThreadPoolExecutor:
    """The threads :func:`_step_threaded` spreads a step's tiles over (the compiled
    loops release the GIL; BLAS is kept to one thread each by the caller)."""
    return ThreadPoolExecutor(max_workers=os.cpu_count() or 1,
                              thread_name_prefix="daskmeans-minibatch")


def _step_numpy(parts: Sequence[Part], cen: Centres, w: np.ndarray | None,
                scale: float | None, b: int, d: int
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The numpy reference of :func:`_step_compiled`: the batch gathered, assigned by
    :meth:`Centres.nearest` (with the near-tie rule) and summed row by row in batch
    order (``np.add.at``)."""
    k = cen.k
    sums, wsum, sumsq = np.zeros((k, d)), np.zeros(k), np.zeros(k)
    if b == 0:
        return sums, wsum, sumsq
    X = np.concatenate([block.reshape(block.shape[0], -1)[index] for block, index in parts])
    if scale is not None:
        X = scale_rows(X, scale)
    X = X.astype(cen.dtype, copy=False)
    lab, _, _ = cen.nearest(X)
    x64 = X.astype(np.float64)
    w1 = np.ones(b) if w is None else w
    np.add.at(sums, lab, x64 * w1[:, None] if w is not None else x64)
    np.add.at(wsum, lab, w1)
    np.add.at(sumsq, lab, w1 * (x64 * x64).sum(1))
    return sums, wsum, sumsq


@dataclass
class BatchPartial:
    """A block's share of a mini-batch step on rows held elsewhere (added with ``+``):
    its per-cluster sums, weights and SSE against the centres (a
    :class:`~daskmeans.kernels.lloyd.LloydPartial`) and the rows at the requested
    batch positions that it holds (``positions``, ``rows``)."""

    part: lloyd.LloydPartial
    positions: np.ndarray  # (m,) int64 batch positions
    rows: np.ndarray  # (m, d)

    def __add__(self, other: BatchPartial) -> BatchPartial:
        return BatchPartial(self.part + other.part,
                            np.concatenate([self.positions, other.positions]),
                            np.concatenate([self.rows, other.rows]))

    def finish(self, C: np.ndarray, counts: np.ndarray, picks: np.ndarray | None
               ) -> BatchStep:
        """The step's result from the summed partials: :func:`update_centres` (as
        :func:`minibatch_step`), the picked rows in the order of ``picks``."""
        centers, new_counts = update_centres(C, counts, self.part.sums, self.part.counts)
        picked = self.rows[:0]
        if picks is not None and len(picks):
            order = {int(p): j for j, p in enumerate(self.positions)}
            picked = self.rows[[order[int(p)] for p in picks]]
        return BatchStep(centers, new_counts, self.part.sse(), self.part.n_rows, picked)


def batch_partial(X: np.ndarray, C: np.ndarray | Centres, weights: np.ndarray | None, *,
                  positions: np.ndarray, picks: np.ndarray | None = None,
                  scale: float | None = None) -> BatchPartial:
    """A block's share of a step: its batch rows ``X`` (batch positions ``positions``)
    assigned and summed (:func:`daskmeans.kernels.lloyd.lloyd_partial`), and those of
    its rows whose position is in ``picks``, as float rows."""
    part = lloyd.lloyd_partial(X, C, weights, scale=scale)
    positions = np.asarray(positions, dtype=np.int64)
    mine = np.flatnonzero(np.isin(positions, picks)) if picks is not None else positions[:0]
    if is_sparse(X):
        return BatchPartial(part, positions[mine], row_access(X)[mine])
    rows = X.reshape(X.shape[0], -1)[mine]
    if scale is not None:
        rows = scale_rows(rows, scale) if len(rows) else rows.astype(np.float32)
    return BatchPartial(part, positions[mine], rows)
