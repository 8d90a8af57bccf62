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


#: the relative slack of the 2-means distance bounds: far above the rounding of a
#: float64 distance (and of the bounds' own additions), so that a row the bounds settle
#: is one the exact comparison would leave where it is.
_SLACK = 1e-9


@_jit_inline
def _dists(X: np.ndarray, i: int, raw: bool, scale: float, buf: np.ndarray,
           c0: np.ndarray, c1: np.ndarray) -> tuple[float, float]:
    """:func:`_sq_two` of row ``i``: of X itself, or (``raw``) of ``float32(X[i]) *
    scale`` loaded into ``buf``, where :func:`_add_row` then finds it."""
    if raw:
        load_row(X, i, scale, True, buf[0])
        return _sq_two(buf, 0, c0, c1)
    return _sq_two(X, i, c0, c1)


@_jit_inline
def _add_row(X: np.ndarray, i: int, raw: bool, buf: np.ndarray, wi: float,
             S: np.ndarray, c: int, old: int) -> None:
    """``S[c] += wi * row``, and ``S[old] -= wi * row`` when ``old >= 0``, for the row
    :func:`_dists` read last."""
    for t in range(X.shape[1]):
        v = wi * (np.float64(buf[0, t]) if raw else np.float64(X[i, t]))
        S[c, t] += v
        if old >= 0:
            S[old, t] -= v


@jit_reassoc
def two_means_fit(X: np.ndarray, scale: float | None, pos: np.ndarray, w: np.ndarray,
                  C: np.ndarray, max_iter: int, tol: float, lab: np.ndarray,
                  sse: np.ndarray, weight: np.ndarray, count: np.ndarray) -> int:
    """A whole 2-means (Lloyd's iterations) on the rows ``pos`` of X (a leaf's rows, in
    global row order) of weights ``w`` (indexed as X), from the centres ``C`` (2, d)
    float64, which end as the final centres; returns the iterations made.

    The iterations are those of :func:`daskmeans.kernels.bisect.two_means` (the numpy
    reference), with its stopping rule and empty-child relocation, but each row keeps
    an upper bound of its distance to its centre and a lower bound of its distance to
    the other (Hamerly's bounds, exact for two centres): a row is compared with the
    centres only when its bounds do not settle it, and the children's sums change only
    by the rows that moved. Then one exact pass against the final centres: ``lab``
    (m,) each row's child (the tree descent's choice: the same float64 distances),
    ``sse``, ``weight`` (2,) float64 and ``count`` (2,) int64 of each child. Raw rows
    with a ``scale`` as in :func:`tree_descend` (the same values, so the same results).
    """
    if scale is None:
        return _two_means(X, False, 1.0, pos, w, C, max_iter, tol, lab, sse, weight, count)
    return _two_means(X, True, scale, pos, w, C, max_iter, tol, lab, sse, weight, count)


@jit_reassoc
def _two_means(X: np.ndarray, raw: bool, scale: float, pos: np.ndarray, w: np.ndarray,
               C: np.ndarray, max_iter: int, tol: float, lab: np.ndarray, sse: np.ndarray,
               weight: np.ndarray, count: np.ndarray) -> int:
    """:func:`two_means_fit` (``raw``: X holds raw rows standing for
    ``float32(X) * scale``)."""
    m, d = pos.shape[0], X.shape[1]
    buf = np.empty((1, d), dtype=np.float32)
    upper = np.empty(m)
    lower = np.empty(m)
    S = np.zeros((2, d))
    W = np.zeros(2)
    npos = np.zeros(2, np.int64)  # rows of positive weight per child: 0 is empty
    new = np.empty((2, d))
    delta = np.zeros(2)
    n_iter = 0
    for it in range(max_iter):
        for r in range(m):
            if it > 0 and upper[r] * (1 + _SLACK) < lower[r] * (1 - _SLACK):
                continue
            i = pos[r]
            d0, d1 = _dists(X, i, raw, scale, buf, C[0], C[1])
            c = 1 if d1 < d0 else 0
            upper[r] = np.sqrt(d1 if c == 1 else d0)
            lower[r] = np.sqrt(d0 if c == 1 else d1)
            old = lab[r] if it > 0 else -1
            if c == old:
                continue
            wi = w[i]
            _add_row(X, i, raw, buf, wi, S, c, old)
            W[c] += wi
            npos[c] += 1 if wi > 0 else 0
            if old >= 0:
                W[old] -= wi
                npos[old] -= 1 if wi > 0 else 0
            lab[r] = c
        n_iter += 1
        for c in range(2):
            if npos[c] == 0:  # exactly empty, whatever the rounding of the removals
                W[c] = 0.0
                S[c, :] = 0.0
        sums = S.copy()
        wts = W.copy()
        n_reloc = 0
        if npos[0] == 0 or npos[1] == 0:
            n_reloc = _relocate(X, raw, scale, pos, w, C, lab, buf, sums, wts)
        shift = 0.0
        for c in range(2):
            s = 0.0
            for t in range(d):
                new[c, t] = sums[c, t] / wts[c] if wts[c] > 0 else C[c, t]
                e = new[c, t] - C[c, t]
                s += e * e
            delta[c] = np.sqrt(s) * (1 + _SLACK)
            shift += s
        C[:, :] = new
        if (shift == 0 and n_reloc == 0) or shift <= tol:
            break
        for r in range(m):
            c = lab[r]
            upper[r] += delta[c]
            lower[r] -= delta[1 - c]
    sse[:] = 0.0
    weight[:] = 0.0
    count[:] = 0
    for r in range(m):
        i = pos[r]
        d0, d1 = _dists(X, i, raw, scale, buf, C[0], C[1])
        c = 1 if d1 < d0 else 0
        lab[r] = c
        sse[c] += (d1 if c == 1 else d0) * w[i]
        weight[c] += w[i]
        count[c] += 1
    return n_iter


@jit_reassoc
def _relocate(X: np.ndarray, raw: bool, scale: float, pos: np.ndarray, w: np.ndarray,
              C: np.ndarray, lab: np.ndarray, buf: np.ndarray, sums: np.ndarray,
              wts: np.ndarray) -> int:
    """The empty child takes the leaf's row farthest from its centre (of positive
    weight; the first in row order on a tie), whose weighted row leaves the other
    child's sums, as :func:`daskmeans.algorithms.common.relocate_empty`; returns the
    children relocated (1, or 0 when no row has a positive weight)."""
    best, far = -1, -1.0
    for r in range(pos.shape[0]):
        i = pos[r]
        if w[i] <= 0:
            continue
        d0, d1 = _dists(X, i, raw, scale, buf, C[0], C[1])
        dist = d1 if lab[r] == 1 else d0
        if dist > far:
            best, far = r, dist
    if best < 0:
        return 0
    empty = 0 if wts[0] == 0 else 1
    old = lab[best]
    i = pos[best]
    _dists(X, i, raw, scale, buf, C[0], C[1])
    wi = w[i]
    for t in range(X.shape[1]):
        v = wi * (np.float64(buf[0, t]) if raw else np.float64(X[i, t]))
        sums[old, t] -= v
        sums[empty, t] = v
    wts[old] -= wi
    wts[empty] = wi
    return 1


@jit_reassoc
def root_stats(X: np.ndarray, scale: float | None, w: np.ndarray, total: np.ndarray,
               wtotal: np.ndarray) -> float:
    """Column sums of the rows into ``total`` and weighted into ``wtotal`` (d,) float64;
    returns ``sum w |x|^2``. Raw rows with a ``scale`` as in :func:`tree_descend`."""
    if scale is None:
        return _root_stats(X, False, 1.0, w, total, wtotal)
    return _root_stats(X, True, scale, w, total, wtotal)


@jit_reassoc
def _root_stats(X: np.ndarray, raw: bool, scale: float, w: np.ndarray, total: np.ndarray,
                wtotal: np.ndarray) -> float:
    d = X.shape[1]
    buf = np.empty((1, d), dtype=np.float32)
    wsq = 0.0
    for i in range(X.shape[0]):
        if raw:
            load_row(X, i, scale, True, buf[0])
        wi = w[i]
        sq = 0.0
        for t in range(d):
            v = np.float64(buf[0, t]) if raw else np.float64(X[i, t])
            total[t] += v
            wtotal[t] += wi * v
            sq += v * v
        wsq += wi * sq
    return wsq


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
        two_means_fit(rows, sc, np.arange(3), np.ones(3), np.eye(2), 2, 0.0,
                      np.empty(3, np.int32), np.zeros(2), np.zeros(2), np.zeros(2, np.int64))
        root_stats(rows, sc, np.ones(3), np.zeros(2), np.zeros(2))
