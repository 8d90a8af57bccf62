"""Compiled (numba) bisecting k-means kernels: the tree descent and the 2-means step of
:mod:`daskmeans.kernels.bisect`, which keeps the numpy reference that the tests compare
these against.

The bisecting loops let float64 sums reassociate (they vectorise; a strict
left-to-right sum over the features is a chain of dependent additions): a row's
distances depend only on the row and the centres, never on its block.
"""

from __future__ import annotations

import numba
import numpy as np

from .common_compiled import jit_reassoc, load_row

#: the per-row steps, inlined into their callers by numba (as calls they made the float
#: 2-means step slower); float32 rows and raw rows scaled into a float32 row then run
#: the same loop over the same types: the same sums, in the same order.
_jit_inline = numba.njit(cache=True, nogil=True, fastmath={"reassoc"}, error_model="numpy",
                         inline="always")


@_jit_inline
def _sq_two(X: np.ndarray, i: int, c0: np.ndarray, c1: np.ndarray) -> tuple[float, float]:
    """Squared float64 distances of row ``i`` of X to ``c0`` and ``c1``. Float rows and
    raw rows (scaled into a float32 row first) run this same loop, so they add the same
    terms in the same order: the same bits."""
    d0 = 0.0
    d1 = 0.0
    for t in range(X.shape[1]):
        v = np.float64(X[i, t])
        e0 = v - c0[t]
        e1 = v - c1[t]
        d0 += e0 * e0
        d1 += e1 * e1
    return d0, d1


@_jit_inline
def _descend_row(X: np.ndarray, i: int, left: np.ndarray, right: np.ndarray,
                 centre: np.ndarray) -> int:
    """The node row ``i`` of X ends in (see :func:`tree_descend`)."""
    node = 0
    while left[node] >= 0:
        a, b = left[node], right[node]
        d0, d1 = _sq_two(X, i, centre[a], centre[b])
        node = b if d1 < d0 else a
    return node


@jit_reassoc
def tree_descend(X: np.ndarray, scale: float | None, left: np.ndarray, right: np.ndarray,
                 centre: np.ndarray, nodes: np.ndarray) -> None:
    """``nodes[i]``: the node row ``i`` ends in, from the root, at every split the child
    whose centre is nearer in float64 squared distance (the left one on a tie): what
    :meth:`daskmeans.kernels.bisect.TreeSnapshot.descend` computes, row by row. With a
    ``scale`` (None: float rows), X holds raw rows (uint8 pixels) standing for
    ``float32(X) * scale``: each is scaled once into a float32 row (:func:`load_row`:
    the values the float path reads) that then takes the same steps. (numba compiles
    only the branch of ``scale is None`` that the argument's type takes.)"""
    m = X.shape[0]
    if scale is None:
        for i in range(m):
            nodes[i] = _descend_row(X, i, left, right, centre)
    else:
        buf = np.empty((1, X.shape[1]), dtype=np.float32)
        for i in range(m):
            load_row(X, i, scale, True, buf[0])
            nodes[i] = _descend_row(buf, 0, left, right, centre)


@_jit_inline
def _two_means_row(X: np.ndarray, i: int, wi: float, c0: np.ndarray, c1: np.ndarray,
                   sums: np.ndarray, weight: np.ndarray, sse: np.ndarray,
                   count: np.ndarray) -> tuple[int, float]:
    """Row ``i`` of X, of weight ``wi``, into the 2-means of :func:`two_means_rows`;
    returns (its child, its squared distance)."""
    d0, d1 = _sq_two(X, i, c0, c1)
    c = 1 if d1 < d0 else 0
    dd = d1 if c == 1 else d0
    for t in range(X.shape[1]):
        sums[c, t] += wi * np.float64(X[i, t])
    weight[c] += wi
    sse[c] += dd * wi
    count[c] += 1
    return c, dd


@jit_reassoc
def two_means_rows(X: np.ndarray, scale: float | None, idx: np.ndarray, w: np.ndarray,
                   c0: np.ndarray, c1: np.ndarray, sums: np.ndarray, weight: np.ndarray,
                   sse: np.ndarray, count: np.ndarray, lab: np.ndarray,
                   dist: np.ndarray) -> None:
    """One 2-means pass over the rows ``idx`` of X (a leaf's rows in a block): each to
    the nearer of ``c0``/``c1`` (float64 squared distances; ``c0`` on a tie), its label
    and distance into ``lab``/``dist``, its weighted row, weight, weighted squared
    distance and count added into ``sums`` (2, d), ``weight``, ``sse`` and ``count``.
    Raw rows with a ``scale`` as in :func:`tree_descend` (the same values, so the same
    results)."""
    if scale is None:
        for r in range(idx.shape[0]):
            i = idx[r]
            lab[r], dist[r] = _two_means_row(X, i, w[i], c0, c1, sums, weight, sse, count)
    else:
        buf = np.empty((1, X.shape[1]), dtype=np.float32)
        for r in range(idx.shape[0]):
            i = idx[r]
            load_row(X, i, scale, True, buf[0])
            lab[r], dist[r] = _two_means_row(buf, 0, w[i], c0, c1, sums, weight, sse, count)


def warm_up() -> None:
    """Compile (or load from the on-disk cache) this module's specialisations: float32,
    float64 and raw uint8 rows."""
    for rows in (np.zeros((3, 2), np.float32), np.zeros((3, 2)), np.zeros((3, 2), np.uint8)):
        sc = 1.0 if rows.dtype == np.uint8 else None
        kids = np.array([-1]), np.zeros((1, 2))
        tree_descend(rows, sc, kids[0], kids[0], kids[1], np.empty(3, np.int64))
        two_means_rows(rows, sc, np.arange(3), np.ones(3), np.zeros(2), np.zeros(2),
                       np.zeros((2, 2)), np.zeros(2), np.zeros(2), np.zeros(2, np.int64),
                       np.empty(3, np.int32), np.empty(3))
