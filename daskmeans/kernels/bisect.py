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
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .common import (
    NonFiniteRow,
    ScaledRows,
    TopM,
    compiled_kernels,
    compiled_module,
    merge_top,
    splitmix64_uniform,
    top_m,
)

#: rows per step of the float64 distances to two centres.
_BISECT_STEP = 1024


def _sq_two(x64: np.ndarray, c0: np.ndarray, c1: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Squared distances (float64) of float64 rows to two centres."""
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


class _RowsAt:
    """Row access (``[i]``, ``shape``, ``dtype``) to the rows ``rows`` of a block, so
    that only the rows :func:`top_m` selects are copied."""

    def __init__(self, X: Any, rows: np.ndarray) -> None:
        self.X, self.rows = X, rows
        self.shape, self.dtype = (rows.shape[0], X.shape[1]), X.dtype

    def __getitem__(self, i: np.ndarray) -> np.ndarray:
        return np.asarray(self.X[self.rows[i]])


def _top_of(key: np.ndarray, idx: np.ndarray, n: int, X: Any, labels: np.ndarray,
            w: np.ndarray, offset: int) -> TopM:
    """The ``n`` rows ``idx`` (ascending) of the block with the largest ``key`` (one per
    row of idx), ties to the smaller index; O(len(idx)), not O(block). ``X``: the
    block's rows, or an accessor of them (:class:`ScaledRows` for raw rows). Its
    ``cap`` is ``n`` even when fewer rows are there (a merge then keeps up to ``n``)."""
    return top_m(key, n, _RowsAt(X, idx), labels, w[idx], idx.astype(np.int64) + offset)


def tree_nodes(X: np.ndarray, tree: TreeSnapshot, scale: float | None = None) -> np.ndarray:
    """(m,) node of the tree each row of a block ends in (float rows checked finite
    first). With ``scale``, X holds raw integer rows (uint8 pixels) standing for
    ``float32(X) * scale``: they take the same float64 steps as those float32 rows
    (the same nodes, bit for bit) without a float copy of the block, and need no check.
    """
    X = X.reshape(X.shape[0], -1)
    if scale is None:
        ok = np.isfinite(X).all(1)
        if not ok.all():
            raise NonFiniteRow(int(np.flatnonzero(~ok)[0]))
    return tree.descend(X, scale)


def uses_compiled(X: np.ndarray, scale: float | None) -> bool:
    """The compiled bisecting kernels take these rows: float32/float64, or raw uint8."""
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
                u = splitmix64_uniform(idx.astype(np.int64) + offset, int(step.seeds[s, j]))
                key = np.log(np.maximum(u, 1e-300))
                if step.weighted:
                    with np.errstate(divide="ignore"):
                        key = np.where(w[idx] > 0, key / w[idx], -np.inf)
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
    X = X.reshape(X.shape[0], -1)
    if not np.isfinite(X).all():
        raise NonFiniteRow(int(np.flatnonzero(~np.isfinite(X).all(1))[0]))
    x64 = X.astype(np.float64)
    w = np.ones(X.shape[0]) if weights is None else np.asarray(weights, np.float64)
    return RootPartial(x64.sum(0), w @ x64, X.shape[0], float(w.sum()),
                       float(w @ (x64 ** 2).sum(1)))
