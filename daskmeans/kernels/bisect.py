"""Bisecting k-means: rows sent down the tree of bisections, the 2-means step of
the leaves being bisected, and the root's statistics.

The tree descent and the 2-means step run compiled
(:mod:`daskmeans.kernels.bisect_compiled`) when numba is installed; the numpy code here
is the reference (the same bits).

Every row follows the tree from the root, at each split to the nearer of the two
children's centres (squared distances in float64, row by row, so that a row's path does
not depend on the block it is in), and the rows that reach a leaf being bisected take
part in that leaf's 2-means. Leaves hold disjoint rows, so all the bisections of a round
share each pass.

CSR rows (:mod:`daskmeans.kernels.sparse`): squared distances to a centre are
``|c|^2`` plus, over the stored values, ``(x_t - c_t)^2 - c_t^2`` in float64; the
2-means runs compiled (:func:`daskmeans.kernels.sparse_compiled.two_means_sparse`), the
rest in numpy; the rows drawn for initialisation stay CSR.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from . import sparse
from .common import (
    NonFiniteRow,
    RowsAt,
    ScaledRows,
    TopM,
    compiled_kernels,
    compiled_module,
    dense,
    is_sparse,
    merge_top,
    row_access,
    splitmix64_uniform,
    stack_rows,
    top_m,
)

#: rows per step of the float64 distances to two centres.
_BISECT_STEP = 1024


def _sq_two(x64: Any, c0: np.ndarray, c1: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Squared distances (float64) of float64 rows (dense or CSR) to two centres."""
    if is_sparse(x64):
        zero = np.zeros(x64.shape[0], np.int64)
        return (sparse.winner_sqdist(x64, c0[None], zero),
                sparse.winner_sqdist(x64, c1[None], zero))
    return ((x64 - c0) ** 2).sum(1), ((x64 - c1) ** 2).sum(1)


@dataclass
class TreeSnapshot:
    """What a task needs to send rows down a bisecting tree: per node its children
    (-1 for a leaf) and centre, plus per node the slot of the 2-means it takes part in
    this pass (-1: none)."""

    left: np.ndarray  # (nodes,) int64
    right: np.ndarray  # (nodes,) int64
    centre: np.ndarray  # (nodes, d) float64
    slot: np.ndarray  # (nodes,) int64

    @property
    def nbytes(self) -> int:
        return int(self.left.nbytes + self.right.nbytes + self.centre.nbytes + self.slot.nbytes)

    def descend(self, X: np.ndarray, scale: float | None = None) -> np.ndarray:
        """(m,) node each row ends in: from the root, at every split the child whose
        centre is nearer (the left one on a tie, as scikit-learn's argmin). With
        ``scale``, X holds raw rows standing for ``float32(X) * scale`` (uint8 pixels;
        the same nodes as for those float32 rows)."""
        if uses_compiled(X, scale):
            out = np.empty(X.shape[0], np.int64)
            compiled_module("bisect").tree_descend(
                np.ascontiguousarray(X), None if scale is None else float(scale), self.left,
                self.right, np.ascontiguousarray(self.centre, dtype=np.float64), out)
            return out
        rows: Any = ScaledRows(X, scale) if scale is not None else X
        node = np.zeros(X.shape[0], np.int64)
        for i in np.flatnonzero(self.left >= 0):  # parents come before their children
            at = np.flatnonzero(node == i)
            for s in range(0, at.shape[0], _BISECT_STEP):
                idx = at[s:s + _BISECT_STEP]
                x64 = rows[idx].astype(np.float64)
                d0, d1 = _sq_two(x64, self.centre[self.left[i]], self.centre[self.right[i]])
                node[idx] = np.where(d1 < d0, self.right[i], self.left[i])
        return node


def tree_labels(X: np.ndarray, tree: TreeSnapshot, leaf_label: np.ndarray,
                scale: float | None = None) -> np.ndarray:
    """(m,) int32 label of the leaf each row reaches (``leaf_label``: per node; raw
    rows with ``scale`` as :func:`tree_nodes`)."""
    return leaf_label[tree_nodes(X, tree, scale)].astype(np.int32)


@dataclass
class TreeCentres:
    """A bisecting tree as an assignment: each row to the leaf it reaches, its squared
    distance to that leaf's centre."""

    tree: TreeSnapshot
    leaf_label: np.ndarray  # (nodes,) int64
    centres: np.ndarray  # (k, d) float64, by label

    @property
    def nbytes(self) -> int:
        return int(self.tree.nbytes + self.centres.nbytes)


def tree_assign(X: np.ndarray, tc: TreeCentres, scale: float | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
    """(labels (m,) int32, squared distances (m,) float64 to the leaf's centre); raw
    rows with ``scale`` as :func:`tree_nodes`."""
    X = X.reshape(X.shape[0], -1)
    labels = tree_labels(X, tc.tree, tc.leaf_label, scale)
    if is_sparse(X):
        return labels, sparse.winner_sqdist(X, tc.centres, labels)
    rows: Any = ScaledRows(X, scale) if scale is not None else X
    sq = np.empty(X.shape[0])
    for s in range(0, X.shape[0], _BISECT_STEP):
        x64 = rows[s:s + _BISECT_STEP].astype(np.float64)
        sq[s:s + _BISECT_STEP] = ((x64 - tc.centres[labels[s:s + _BISECT_STEP]]) ** 2).sum(1)
    return labels, sq


@dataclass
class BisectStep:
    """One pass of a round of bisections: the tree, and per slot (a leaf being
    bisected) and init run the two current centres and whether that 2-means is still
    running (``active``). ``sample``: an initialisation pass instead: per slot and run,
    the ``sample`` rows with the largest keys (seeded by ``seeds``), keys weighted by
    the sample weights when ``weighted`` (random init: a weighted draw without
    replacement), else uniform (the k-means++ sample)."""

    tree: TreeSnapshot
    centres: np.ndarray  # (a, r, 2, d) float64
    active: np.ndarray  # (a, r) bool
    seeds: np.ndarray  # (a, r) int64
    sample: int = 0
    weighted: bool = True

    @property
    def nbytes(self) -> int:
        return int(self.tree.nbytes + self.centres.nbytes)


@dataclass
class BisectPartial:
    """What one block contributes to a pass of a round of bisections; added with ``+``:
    per slot, run and child the weighted sums, weights and SSE against the pass's
    centres and the unweighted row counts; per slot and run the 2 rows farthest from
    their centre (empty children) or, in an init pass, the sampled rows."""

    sums: np.ndarray  # (a, r, 2, d) float64
    weight: np.ndarray  # (a, r, 2) float64
    sse: np.ndarray  # (a, r, 2) float64
    count: np.ndarray  # (a, r, 2) int64
    top: list[list[TopM]]  # [a][r]
    cap: int  # rows kept per top (a block may hold fewer)

    def __add__(self, other: BisectPartial) -> BisectPartial:
        top = [[merge_top(p, q, self.cap) for p, q in zip(a, b, strict=True)]
               for a, b in zip(self.top, other.top, strict=True)]
        return BisectPartial(self.sums + other.sums, self.weight + other.weight,
                             self.sse + other.sse, self.count + other.count, top, self.cap)


def _top_of(key: np.ndarray, idx: np.ndarray, n: int, X: Any, labels: np.ndarray,
            w: np.ndarray, offset: int) -> TopM:
    """The ``n`` rows ``idx`` (ascending) of the block with the largest ``key`` (one per
    row of idx), ties to the smaller index; O(len(idx)), not O(block). ``X``: the
    block's rows, or an accessor of them (:class:`ScaledRows` for raw rows). Its
    ``cap`` is ``n`` even when fewer rows are there (a merge then keeps up to ``n``)."""
    return top_m(key, n, RowsAt(row_access(X), idx), labels, w[idx], idx.astype(np.int64) + offset)


def tree_nodes(X: np.ndarray, tree: TreeSnapshot, scale: float | None = None) -> np.ndarray:
    """(m,) node of the tree each row of a block ends in (float rows checked finite
    first). With ``scale``, X holds raw integer rows (uint8 pixels) standing for
    ``float32(X) * scale``: they take the same float64 steps as those float32 rows
    (the same nodes, bit for bit) without a float copy of the block, and need no check.
    """
    X = X.reshape(X.shape[0], -1)
    if scale is None and not is_sparse(X):  # CSR rows were validated when they came
        ok = np.isfinite(X).all(1)
        if not ok.all():
            raise NonFiniteRow(int(np.flatnonzero(~ok)[0]))
    return tree.descend(X, scale)


def uses_compiled(X: np.ndarray, scale: float | None) -> bool:
    """The compiled bisecting kernels take these rows: float32/float64, or raw uint8."""
    if is_sparse(X):
        return False
    if scale is not None:
        return compiled_kernels() and X.dtype == np.uint8
    return compiled_kernels() and X.dtype in (np.float32, np.float64)


def bisect_block(X: np.ndarray, weights: np.ndarray | None, step: BisectStep, *,
                 offset: int = 0, nodes: np.ndarray | None = None,
                 scale: float | None = None) -> BisectPartial:
    """A block's part of one pass of a round of bisections (see :class:`BisectStep`):
    each row descends the tree; rows reaching a slot's leaf go to the nearer of each
    running 2-means' two centres (ties: the first), or, in an init pass, are sampled
    by key. Rows are taken :data:`_BISECT_STEP` at a time in float64. ``nodes``: the
    rows' nodes from :func:`tree_nodes` when an earlier pass of the round (same tree)
    found them: the tree is not descended again. With ``scale``, X holds raw integer
    rows (uint8 pixels) standing for ``float32(X) * scale``, scaled row by row as they
    are used: the partial equals, bit for bit, the one of those float32 rows (its
    sampled and farthest rows are the scaled float32 rows too).

    Examples
    --------
    >>> tree = TreeSnapshot(np.array([-1]), np.array([-1]), np.zeros((1, 1)),
    ...                     np.array([0]))                 # the root, bisected in slot 0
    >>> step = BisectStep(tree, np.array([[[[0.], [10.]]]]), np.ones((1, 1), bool),
    ...                   np.zeros((1, 1), np.int64))
    >>> p = bisect_block(np.array([[1.], [2.], [9.]]), None, step)
    >>> p.sums[0, 0].tolist(), p.count[0, 0].tolist(), p.sse[0, 0].tolist()
    ([[3.0], [9.0]], [2, 1], [5.0, 1.0])
    """
    X = X.reshape(X.shape[0], -1)
    m, d = X.shape
    a, r = step.active.shape
    w = np.ones(m) if weights is None else np.asarray(weights, np.float64)
    if nodes is None:
        nodes = tree_nodes(X, step.tree, scale)
    rows: Any = ScaledRows(X, scale) if scale is not None else X  # float rows, by index
    sums = np.zeros((a, r, 2, d))
    weight, sse = np.zeros((a, r, 2)), np.zeros((a, r, 2))
    count = np.zeros((a, r, 2), np.int64)
    top = [[TopM.empty(d, rows.dtype) for _ in range(r)] for _ in range(a)]
    slot = step.tree.slot[nodes]
    compiled = uses_compiled(X, scale)
    Xc = np.ascontiguousarray(X) if compiled else X
    order = np.argsort(slot, kind="stable")
    cuts = np.searchsorted(slot[order], np.arange(a + 1))
    for s in range(a):
        idx = order[cuts[s]:cuts[s + 1]]
        if idx.shape[0] == 0:
            continue
        if step.sample:
            for j in range(r):
                key = sample_keys(idx.astype(np.int64) + offset, w[idx], int(step.seeds[s, j]),
                                  step.weighted)
                top[s][j] = _top_of(key, idx, step.sample, rows,
                                    np.zeros(len(idx), np.int32), w, offset)
            continue
        for j in range(r):
            if not step.active[s, j]:
                continue
            lab = np.empty(idx.shape[0], np.int32)
            dist = np.empty(idx.shape[0])
            if compiled:
                compiled_module("bisect").two_means_rows(
                    Xc, None if scale is None else float(scale), idx, w, step.centres[s, j, 0],
                    step.centres[s, j, 1], sums[s, j], weight[s, j], sse[s, j],
                    count[s, j], lab, dist)
                top[s][j] = _top_of(dist, idx, 2, rows, lab, w, offset)
                continue
            for t in range(0, idx.shape[0], _BISECT_STEP):
                it = idx[t:t + _BISECT_STEP]
                x64, wt = rows[it].astype(np.float64), w[it]
                d0, d1 = _sq_two(x64, step.centres[s, j, 0], step.centres[s, j, 1])
                lt = d1 < d0
                lab[t:t + _BISECT_STEP], dist[t:t + _BISECT_STEP] = lt, np.where(lt, d1, d0)
                for c, sel in ((0, ~lt), (1, lt)):
                    sums[s, j, c] += wt[sel] @ x64[sel]
                    weight[s, j, c] += wt[sel].sum()
                    sse[s, j, c] += dist[t:t + _BISECT_STEP][sel] @ wt[sel]
                    count[s, j, c] += int(sel.sum())
            top[s][j] = _top_of(dist, idx, 2, rows, lab, w, offset)
    return BisectPartial(sums, weight, sse, count, top, step.sample or 2)


def sample_keys(index: np.ndarray, w: np.ndarray, seed: int, weighted: bool) -> np.ndarray:
    """Each row's key for drawing a bisection's init rows (the rows with the largest
    keys are drawn): ``log(u)`` of a counter-based uniform of its global ``index``, so
    that the draw does not depend on the chunking; divided by the row's weight
    (``weighted``: the largest keys are then a weighted draw without replacement), and
    ``-inf`` for rows of zero weight."""
    key = np.log(np.maximum(splitmix64_uniform(index, seed), 1e-300))
    if weighted:
        with np.errstate(divide="ignore"):
            key = np.where(w > 0, key / np.where(w > 0, w, 1.0), -np.inf)
    return key


def leaf_sample(X: np.ndarray, pos: np.ndarray, index: np.ndarray, w: np.ndarray, seed: int,
                m: int, weighted: bool, scale: float | None = None) -> TopM:
    """The ``m`` rows of a leaf (rows ``pos`` of X, global indices ``index``, weights
    ``w`` indexed as X) with the largest :func:`sample_keys`, ties to the smaller index:
    what an init pass of :func:`bisect_block` draws from the same rows, whatever blocks
    they are in (raw rows with ``scale`` come back as their float32 rows)."""
    rows: Any = ScaledRows(X, scale) if scale is not None else X
    return top_m(sample_keys(index, w[pos], seed, weighted), m, RowsAt(row_access(rows), pos),
                 np.zeros(len(pos), np.int32), w[pos], index)


@dataclass
class TwoMeans:
    """A finished 2-means on a leaf's rows (:func:`two_means`): the final centres, each
    row's child against them, and each child's SSE, weight and row count."""

    centres: np.ndarray  # (2, d) float64
    labels: np.ndarray  # (m,) int32, 0 or 1
    sse: np.ndarray  # (2,) float64
    weight: np.ndarray  # (2,) float64
    count: np.ndarray  # (2,) int64
    n_iter: int


def two_means(X: np.ndarray, pos: np.ndarray, w: np.ndarray, centres: np.ndarray, *,
              max_iter: int, tol: float, scale: float | None = None) -> TwoMeans:
    """A whole 2-means (Lloyd's iterations) on the rows ``pos`` of X (one leaf's rows
    held in this process, in global row order; ``w``: every row's weight, indexed as
    X) from ``centres`` (2, d).

    Each iteration sends every row to the nearer centre (float64 squared distances,
    row by row: the tree descent's choice, the first centre on a tie), moves an empty
    child (no weight) onto the row farthest from its centre (of positive weight, the
    first in row order on a tie), which leaves the other child, and takes the children's
    weighted means; it stops when nothing moved and nothing was relocated (the centres
    are a fixed point), when the centres' summed squared shift is <= ``tol``, or after
    ``max_iter`` iterations. The rows are then assigned to the final centres once more
    (the labels, SSE, weights and counts returned), as scikit-learn's last E-step. The
    same iterations as a round of masked passes (:func:`bisect_block`), on these rows
    only.

    Runs compiled (:func:`daskmeans.kernels.bisect_compiled.two_means_fit`: with
    distance bounds, the same centres to float rounding) when it can; this numpy code
    is the reference. Raw rows with ``scale`` as :func:`tree_nodes`.

    Examples
    --------
    >>> X = np.array([[0.], [1.], [9.], [10.]])
    >>> got = two_means(X, np.arange(4), np.ones(4), np.array([[0.], [1.]]),
    ...                 max_iter=10, tol=0.0)
    >>> got.centres.ravel().tolist(), got.labels.tolist(), got.sse.tolist(), got.n_iter
    ([0.5, 9.5], [0, 0, 1, 1], [0.5, 0.5], 3)
    """
    pos = np.asarray(pos, np.int64)
    m = pos.shape[0]
    C = np.array(centres, dtype=np.float64)
    lab = np.empty(m, np.int32)
    if is_sparse(X) and compiled_kernels():
        sse, weight, count = np.zeros(2), np.zeros(2), np.zeros(2, np.int64)
        data, indices, indptr = sparse.csr_parts(X)
        n_iter = compiled_module("sparse").two_means_sparse(
            data, indices, indptr, pos, np.ascontiguousarray(w, dtype=np.float64), C,
            int(max_iter), float(tol), lab, sse, weight, count)
        return TwoMeans(C, lab, sse, weight, count, int(n_iter))
    if uses_compiled(X, scale):
        sse, weight, count = np.zeros(2), np.zeros(2), np.zeros(2, np.int64)
        n_iter = compiled_module("bisect").two_means_fit(
            np.ascontiguousarray(X), None if scale is None else float(scale), pos,
            np.ascontiguousarray(w, dtype=np.float64), C, int(max_iter), float(tol), lab, sse,
            weight, count)
        return TwoMeans(C, lab, sse, weight, count, int(n_iter))
    rows: Any = ScaledRows(X, scale) if scale is not None else X
    wl = np.asarray(w, np.float64)[pos]
    n_iter = 0
    for _ in range(max_iter):
        dist = _assign_two(rows, pos, C, lab)
        n_iter += 1
        sums = np.stack([_weighted_rows(rows, pos, wl, lab == c) for c in (0, 1)])
        wts = np.array([wl[lab == c].sum() for c in (0, 1)])
        n_reloc = 0
        if (wts == 0).any() and (wl > 0).any():
            cand = np.flatnonzero(wl > 0)
            far = cand[int(np.argmax(dist[cand]))]  # the first of equal distances
            empty, old = int(np.flatnonzero(wts == 0)[0]), int(lab[far])
            row = dense(rows[pos[far:far + 1]]).astype(np.float64)[0] * wl[far]
            sums[old] -= row
            wts[old] -= wl[far]
            sums[empty], wts[empty] = row, wl[far]
            n_reloc = 1
        new = C.copy()
        nz = wts > 0
        new[nz] = sums[nz] / wts[nz, None]
        shift = float(((new - C) ** 2).sum())
        C = new
        if (shift == 0 and n_reloc == 0) or shift <= tol:
            break
    dist = _assign_two(rows, pos, C, lab)
    sse = np.array([dist[lab == c] @ wl[lab == c] for c in (0, 1)])
    weight = np.array([wl[lab == c].sum() for c in (0, 1)])
    count = np.array([(lab == c).sum() for c in (0, 1)], np.int64)
    return TwoMeans(C, lab, sse, weight, count, n_iter)


def _assign_two(rows: Any, pos: np.ndarray, C: np.ndarray, lab: np.ndarray) -> np.ndarray:
    """Each row ``pos`` to the nearer of ``C[0]``, ``C[1]`` (into ``lab``); returns the
    squared distances to it (float64, :data:`_BISECT_STEP` rows at a time)."""
    dist = np.empty(pos.shape[0])
    for t in range(0, pos.shape[0], _BISECT_STEP):
        x64 = rows[pos[t:t + _BISECT_STEP]].astype(np.float64)
        d0, d1 = _sq_two(x64, C[0], C[1])
        lt = d1 < d0
        lab[t:t + _BISECT_STEP], dist[t:t + _BISECT_STEP] = lt, np.where(lt, d1, d0)
    return dist


def _weighted_rows(rows: Any, pos: np.ndarray, wl: np.ndarray, sel: np.ndarray) -> np.ndarray:
    """``sum(wl[j] * row j)`` over the selected rows of ``pos``, in float64."""
    out = np.zeros(rows.shape[1])
    at = np.flatnonzero(sel)
    for t in range(0, at.shape[0], _BISECT_STEP):
        j = at[t:t + _BISECT_STEP]
        x64 = rows[pos[j]].astype(np.float64)
        out += np.asarray(x64.T @ wl[j]).ravel() if is_sparse(x64) else wl[j] @ x64
    return out


@dataclass
class LeafRows:
    """Rows of leaves gathered from blocks (:func:`leaf_rows_block`): per block that
    holds some, its first row, and their global indices, stored rows, slots (the leaf
    each belongs to) and weights; added with ``+`` (the pieces of both)."""

    pieces: list[tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]]

    def __add__(self, other: LeafRows) -> LeafRows:
        return LeafRows(self.pieces + other.pieces)

    def joined(self, d: int, dtype: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                  np.ndarray | None]:
        """(global indices (m,), rows (m, d), slots (m,), weights (m,) or None) of
        every piece, in global row order."""
        pieces = sorted(self.pieces, key=lambda p: p[0])
        if not pieces:
            return (np.empty(0, np.int64), np.empty((0, d), dtype), np.empty(0, np.int64),
                    None)
        w = None if pieces[0][4] is None else np.concatenate([p[4] for p in pieces])
        return (np.concatenate([p[1] for p in pieces]), stack_rows([p[2] for p in pieces]),
                np.concatenate([p[3] for p in pieces]), w)


def leaf_rows_block(X: np.ndarray, weights: np.ndarray | None, tree: TreeSnapshot, *,
                    offset: int = 0, scale: float | None = None) -> LeafRows:
    """The rows of a block that reach the leaves with a slot in ``tree`` (the leaves
    being gathered), as stored (raw with ``scale``), with their global indices, slots
    and weights (float rows are checked finite, as :func:`tree_nodes`)."""
    X = X.reshape(X.shape[0], -1)
    nodes = tree_nodes(X, tree, scale)
    keep = np.flatnonzero(tree.slot[nodes] >= 0)
    if keep.shape[0] == 0:
        return LeafRows([])
    w = None if weights is None else np.asarray(weights, np.float64)[keep]
    return LeafRows([(offset, keep.astype(np.int64) + offset,
                      X[keep] if is_sparse(X) else np.array(X[keep]),
                      tree.slot[nodes[keep]], w)])


def root_rows(X: np.ndarray, w: np.ndarray, scale: float | None = None) -> RootPartial:
    """The root statistics (:class:`RootPartial`) of rows held in this process (``w``:
    their weights), :data:`_BISECT_STEP` rows at a time (compiled when it can)."""
    d = X.shape[1]
    total, wtotal = np.zeros(d), np.zeros(d)
    w = np.ascontiguousarray(w, dtype=np.float64)
    if uses_compiled(X, scale):
        wsq = compiled_module("bisect").root_stats(
            np.ascontiguousarray(X), None if scale is None else float(scale), w, total, wtotal)
        return RootPartial(total, wtotal, X.shape[0], float(w.sum()), float(wsq))
    if is_sparse(X):
        x64 = X.astype(np.float64)
        total += np.asarray(x64.sum(0)).ravel()
        wtotal += np.asarray(x64.T @ w).ravel()
        return RootPartial(total, wtotal, X.shape[0], float(w.sum()),
                           float(w @ sparse.winner_sqdist(x64, np.zeros((1, d)),
                                                          np.zeros(X.shape[0], np.int64))))
    rows: Any = ScaledRows(X, scale) if scale is not None else X
    wsq = 0.0
    for t in range(0, X.shape[0], _BISECT_STEP):
        x64 = rows[t:t + _BISECT_STEP].astype(np.float64)
        total += x64.sum(0)
        wtotal += w[t:t + _BISECT_STEP] @ x64
        wsq += float(w[t:t + _BISECT_STEP] @ (x64 ** 2).sum(1))
    return RootPartial(total, wtotal, X.shape[0], float(w.sum()), wsq)


@dataclass
class RootPartial:
    """Column sums (plain and weighted), row count, total weight and ``sum w |x|^2``
    of one or more blocks: the root of a bisecting tree; added with ``+``."""

    sum: np.ndarray  # (d,) float64
    wsum: np.ndarray  # (d,) float64
    n: int
    weight: float
    wsq: float

    def __add__(self, other: RootPartial) -> RootPartial:
        return RootPartial(self.sum + other.sum, self.wsum + other.wsum, self.n + other.n,
                           self.weight + other.weight, self.wsq + other.wsq)


def root_block(X: np.ndarray, weights: np.ndarray | None) -> RootPartial:
    """A block's part of the root statistics (:class:`RootPartial`)."""
    if is_sparse(X):  # only the stored values can be non-finite
        data, _, indptr = sparse.csr_parts(X)
        bad = np.flatnonzero(~np.isfinite(data))
        if bad.size:
            raise NonFiniteRow(int(np.searchsorted(indptr, bad[0], side="right") - 1))
    else:
        X = X.reshape(X.shape[0], -1)
        if not np.isfinite(X).all():
            raise NonFiniteRow(int(np.flatnonzero(~np.isfinite(X).all(1))[0]))
    return root_rows(X, np.ones(X.shape[0]) if weights is None else weights)
