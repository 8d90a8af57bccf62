"""Per-chunk numerical kernels: numpy (and scipy.sparse), no dask.

The Lloyd pass's hot loop (distances, argmin, per-cluster sums) runs compiled
(:mod:`daskmeans._kernels_numba`) when numba is installed; the numpy version here
(:func:`_lloyd_numpy`) is the reference the tests compare it with, selected with
``DASKMEANS_KERNELS=numpy``. Measured on Fashion-MNIST, 30,000 rows per thread on two
threads: 21.4 vs 29.0 ms at K=10, equal at K=256 (where the GEMM is the cost).

Every function here works on one in-memory block and never mutates its inputs. The
dask layer (:mod:`daskmeans._reduce`) maps them over chunks and tree-reduces their
results with the ``combine_*`` functions, which are associative: the result does not
depend on how rows are split into chunks, beyond float rounding.

Conventions: data ``X`` is (n, d) float32 or float64 and the GEMM runs in that dtype;
every accumulator (sums, counts, SSE, moments) is float64.
"""

from __future__ import annotations

import functools
import os
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

#: rows per block inside a kernel: the block stays in cache while it is assigned and
#: summed, bounds the (rows, k) distance block, and keeps float32 partial sums short
#: before they are added into float64. Measured on Fashion-MNIST (784 features): 1024
#: to 2048 is best for k from 10 to 256; see scripts/benchmark.py.
ROW_BLOCK = 2048
#: rows per sparse one-hot product for the per-cluster sums (float32 partial sums
#: over at most this many rows, then float64).
SUM_BLOCK = 8192
#: sum rows block by block inside the assignment loop while the (k, d) product of a
#: block stays below this many bytes (glibc's default mmap threshold).
FUSED_SUMS_MAX_BYTES = 128 << 10
#: max bytes of the (rows, k) distance block.
DIST_BLOCK_BYTES = 16 << 20


#: per-thread scratch (the reusable distance block, see :meth:`Centres.buffer`).
_SCRATCH = threading.local()


def _scratch(name: str, size: int, dtype: np.dtype) -> np.ndarray:
    """This thread's reusable 1-D buffer ``name`` of at least ``size`` items of ``dtype``
    (grown when too small; see :meth:`Centres.buffer` for why buffers are reused)."""
    buf = getattr(_SCRATCH, name, None)
    if buf is None or buf.dtype != dtype or buf.size < size:
        buf = np.empty(max(size, 1), dtype=dtype)
        setattr(_SCRATCH, name, buf)
    return buf[:size]


def sse_of_sums(sums: np.ndarray, counts: np.ndarray, sumsq: np.ndarray,
                C: np.ndarray) -> float:
    """``sum_i w_i |x_i - c_(i)|^2`` from each cluster's weighted sums: ``sum_j Q_j - 2
    c_j . S_j + N_j |c_j|^2`` in float64 (``sums`` (k, d) ``S``, ``counts`` ``N`` and
    ``sumsq`` ``Q = sum w |x|^2`` (k,), ``C`` (k, d) the centres the rows went to),
    clipped at 0. Exact to float64 rounding of the sums, where adding float32 distances
    ``|x|^2 - 2 x.c + |c|^2`` from the GEMM is 2e-7 off on Fashion-MNIST and 1e-5 on
    tight clusters.

    >>> sse_of_sums(np.array([[0., 2.]]), np.array([2.]), np.array([4.]), np.array([[0., 1.]]))
    2.0
    """
    C = np.asarray(C, np.float64)
    return max(float(sumsq.sum() - 2 * np.einsum("ij,ij->", C, sums) + counts @ (C * C).sum(1)),
               0.0)


def weighted_sse(sqdist: np.ndarray, weights: np.ndarray | None) -> float:
    """Sum of squared distances (weighted if ``weights``), accumulated in float64."""
    sq64 = sqdist.astype(np.float64)
    return float(sq64.sum() if weights is None else sq64 @ np.asarray(weights, np.float64))


def _block_rows(k: int, itemsize: int) -> int:
    return max(1, min(ROW_BLOCK, DIST_BLOCK_BYTES // max(1, k * itemsize)))


def _padded_k(k: int) -> int:
    """Columns of the distance GEMM for ``k`` centres.

    OpenBLAS's sgemm is slow for narrow outputs that are not 4, 8 or 16 wide: a
    (2048, 784) x (784, k) product took as long at k=7 as at k=16, and padding 3 to 4,
    5-7 to 8 and 9-15 to 16 columns (dummy centres at +inf) was faster or equal with
    both its AVX-512 and AVX2 kernels (single-thread timings on Fashion-MNIST rows;
    k=10 20% faster). Wider outputs gained nothing.
    """
    return 1 << (k - 1).bit_length() if 2 < k < 16 else k


class Centres:
    """Centres prepared for the distance GEMM: ``-2 C^T`` (contiguous) and ``|C|^2``.

    Both may carry extra dummy centres (zero columns, ``|C|^2 = inf``) that no row is
    ever assigned to: see :func:`_padded_k`. Passes prepare them once and share them
    with every chunk task (kernels accept either an array or a ``Centres``).
    """

    def __init__(self, C: np.ndarray, dtype: np.dtype) -> None:
        C = np.asarray(C)
        self.dtype = np.dtype(dtype)
        self.k, d = C.shape
        kp = _padded_k(self.k)
        self.m2t = np.zeros((d, kp), dtype=self.dtype)
        np.multiply(C.T, -2, out=self.m2t[:, : self.k], casting="unsafe")
        self.sq = np.full(kp, np.inf, dtype=self.dtype)
        Cd = C.astype(self.dtype, copy=False)
        self.sq[: self.k] = np.einsum("ij,ij->i", Cd, Cd)

    @property
    def nbytes(self) -> int:
        return int(self.m2t.nbytes + self.sq.nbytes)

    @property
    def tie(self) -> float:
        """:data:`TIE_EPS` times the dtype's eps: see :func:`settle_near_ties`."""
        return TIE_EPS * float(np.finfo(self.dtype).eps)

    @classmethod
    def of(cls, C: np.ndarray | Centres, dtype: np.dtype) -> Centres:
        """``C`` itself if already prepared for ``dtype``, else prepared now."""
        if isinstance(C, Centres) and C.dtype == dtype:
            return C
        return cls(C.centres() if isinstance(C, Centres) else C, dtype)

    def centres(self) -> np.ndarray:
        """The (k, d) centres back (in the prepared dtype)."""
        return np.ascontiguousarray(self.m2t[:, : self.k].T / -2)

    def buffer(self, n: int, itemsize: int) -> tuple[int, np.ndarray]:
        """(rows per block, distance block) for ``n`` rows.

        The block is reused per thread: a fresh multi-MB temporary per chunk task costs
        page faults (measured: six 683-row K=256 tasks on two threads took 10 ms
        instead of 7), and inside dask workers ``MALLOC_TRIM_THRESHOLD_`` makes every
        large temporary a fresh mmap (2x slower kernels without reuse).
        """
        kp = self.m2t.shape[1]
        step = _block_rows(kp, itemsize)
        rows = min(n, step)
        return step, _scratch("dist", rows * kp, self.dtype).reshape(rows, kp)

    def nearest(
        self, xb: np.ndarray, buf: np.ndarray | None = None, xsq: np.ndarray | None = None,
        runs: int = 1,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(labels, squared distance clipped at 0, |x|^2) of a block.

        ``buf``: a reusable (rows >= len(xb), k) array for the distance block. Reusing
        it matters inside dask workers, where ``MALLOC_TRIM_THRESHOLD_`` makes every
        large temporary a fresh mmap (measured 2x slower without reuse).
        ``xsq``: the rows' ``|x|^2`` if already known (computed here otherwise).
        ``runs``: the centres are that many sets of ``k / runs`` stacked (independent
        fits, see :func:`lloyd_runs`): labels and distances are then (rows, runs), the
        nearest centre of each set (labels index the stacked centres).
        """
        m = xb.shape[0]
        D = xb @ self.m2t if buf is None else np.matmul(xb, self.m2t, out=buf[:m])
        D += self.sq
        if xsq is None:
            xsq = row_norms_sq(xb)
        if runs == 1:
            lab = np.argmin(D, axis=1)
            sq = D[np.arange(m), lab]
            settle_near_ties(xb, self, D[:, : self.k], lab, sq, xsq, 0)
            sq += xsq
        else:
            k = self.k // runs
            lab = np.argmin(D[:, : self.k].reshape(m, runs, k), axis=2)
            lab += np.arange(0, self.k, k)
            sq = np.take_along_axis(D, lab, axis=1)
            for r in range(runs):  # each run's columns; lab/sq settled through views
                settle_near_ties(xb, self, D[:, r * k:(r + 1) * k], lab[:, r], sq[:, r],
                                 xsq, r * k)
            sq += xsq[:, None]
        if not np.isfinite(sq).all():  # (m,) or (m, runs) values: costs ~nothing
            raise NonFiniteRow(int(np.flatnonzero(~np.isfinite(sq).reshape(m, -1).all(1))[0]))
        np.maximum(sq, 0, out=sq)
        return lab, sq, xsq


#: near-tie window in units of ``eps * (|x|^2 + max |c|^2)``: several times the rounding
#: differences seen between GEMMs of different shapes on the same row and centres (a
#: few ulps of the largest term). The worst-case bound, ``4 d eps``, is 200x wider at
#: d=784 and sent most rows of data away from the origin to float64 (pixels offset by 10:
#: a K=256 pass 151 -> 1711 ms); this one keeps such data at GEMM speed. Paths agree
#: wherever their roundings differ by less than the window.
TIE_EPS = 16.0


def settle_near_ties(xb: np.ndarray, cen: Centres, D: np.ndarray, lab: np.ndarray,
                     sq: np.ndarray, xsq: np.ndarray, j0: int) -> None:
    """Settle near ties of a GEMM assignment in float64, in place.

    ``D`` (m, k): ``-2 x.c + |c|^2`` of the rows against one set of centres (stacked
    index ``j0 + j``), ``lab``/``sq`` the argmin (stacked index) and its value. Where
    another centre lies within ``tie * (|x|^2 + max |c|^2)`` of the smallest value
    (``tie`` = :data:`TIE_EPS` eps), the centres within that window are compared by
    their float64 distance (the first on a tie) and ``sq``
    becomes that distance minus ``|x|^2`` (the caller adds it back). Every assignment
    path does this (GEMM tiles of any shape, the bounded passes' group by group
    products), so a row gets the same centre whichever computed its distances, and the
    nearer one where float32 rounding would have picked either: the compiled kernels'
    :func:`daskmeans._kernels_numba.tie_window` and ``_near_tie`` are this rule.

    Examples
    --------
    >>> cen = Centres(np.array([[0.0], [2.0]]), np.dtype(np.float32))
    >>> x = np.array([[1.0]], np.float32)               # exactly half way: the first
    >>> D = x @ cen.m2t[:, :2] + cen.sq[:2]
    >>> lab, sq = np.array([0]), D[:, 0].astype(np.float64)
    >>> settle_near_ties(x, cen, D, lab, sq, np.array([1.0]), 0); lab.tolist()
    [0]
    """
    if D.shape[0] == 0 or D.shape[1] < 2:
        return
    k = D.shape[1]
    csq = cen.sq[j0:j0 + k]
    cmax = float(np.max(csq[np.isfinite(csq)], initial=0.0))
    best = np.take_along_axis(D, (lab - j0)[:, None], axis=1)[:, 0]
    win = cen.tie * (np.maximum(xsq, 0) + cmax)
    two = np.partition(D, 1, axis=1)[:, 1]
    rows = np.flatnonzero((two - best <= win) & np.isfinite(best))
    if rows.shape[0] == 0:
        return
    C = cen.m2t[:, j0:j0 + k].T.astype(np.float64) * -0.5
    for i in rows:
        js = np.flatnonzero(D[i] <= best[i] + win[i])
        e = ((xb[i].astype(np.float64)[None, :] - C[js]) ** 2).sum(1)
        b = int(np.argmin(e))
        lab[i] = j0 + js[b]
        sq[i] = e[b] - float(xsq[i])


class NonFiniteRow(ValueError):
    """A row's distance is NaN or infinite (NaN/inf in the row, or an overflow);
    ``row`` is its index in the block. The map-reduce layer names the global row."""

    def __init__(self, row: int) -> None:
        super().__init__(f"non-finite distance in row {row} of the block")
        self.row = row


@dataclass
class Rows:
    """Gathered rows (and weights) of one or more blocks, in row order; added with ``+``."""

    rows: np.ndarray  # (m, d)
    weights: np.ndarray | None  # (m,) float64

    def __add__(self, other: Rows) -> Rows:
        w = None if self.weights is None or other.weights is None else np.concatenate(
            [self.weights, other.weights])
        return Rows(np.concatenate([self.rows, other.rows]), w)


def row_norms_sq(X: np.ndarray, dtype: Any = None, *, scale: float | None = None
                 ) -> np.ndarray:
    """Squared L2 norm of every row, in ``dtype`` (default X's float dtype). With the
    compiled kernels they are squared and summed in float64 as the compiled Lloyd loop
    does, so that norms given in advance as float64 (:func:`lloyd_runs`' ``xsq``) are
    the ones the loop would compute. ``scale``: X holds raw (m, d) values (uint8
    pixels) standing for ``float32(X) * scale``, squared without a float32 copy of X
    (holding a 40,000-row block of a store: 78 ms of scaling per block before)."""
    if scale is not None:
        dtype = np.float32 if dtype is None else dtype  # the scaled rows' dtype
        if X.ndim == 2 and compiled_kernels():
            out = np.empty(X.shape[0])
            N = _numba()
            N.row_sq_raw(np.ascontiguousarray(X), scale, N.TILE, out)
            return out.astype(dtype, copy=False)
        X = np.multiply(X, np.float32(scale), dtype=np.float32)
    dtype = X.dtype if dtype is None else np.dtype(dtype)
    if X.ndim == 2 and X.dtype in (np.float32, np.float64) and compiled_kernels():
        out = np.empty(X.shape[0], dtype=dtype)
        _numba().row_sq(np.ascontiguousarray(X), out)
        return out
    if dtype == np.float64:
        X = X.astype(np.float64)
    return np.einsum("ij,ij->i", X, X).astype(dtype, copy=False)


def normalize_rows(X: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (zero rows stay zero); a new array."""
    norms = np.sqrt(row_norms_sq(X))
    norms[norms == 0] = 1
    return X / norms[:, None].astype(X.dtype, copy=False)


def assign(X: np.ndarray, C: np.ndarray | Centres) -> tuple[np.ndarray, np.ndarray]:
    """Nearest centre of every row.

    Parameters
    ----------
    X : (n, d) array
    C : (k, d) array (cast to X's dtype for the GEMM)

    Returns
    -------
    labels : (n,) int32
    sqdist : (n,) float64 squared distance to that centre: the differences squared and
        summed in float64 (:func:`winner_sqdist`), not the GEMM's expansion

    Examples
    --------
    >>> assign(np.array([[0., 0.], [3., 1.]]), np.array([[0., 1.], [4., 1.]]))
    (array([0, 1], dtype=int32), array([1., 1.]))
    """
    C64 = (C.centres() if isinstance(C, Centres) else np.asarray(C)).astype(np.float64)
    labels = nearest_labels(X, C)
    return labels, winner_sqdist(X, C64, labels)


def nearest_labels(X: np.ndarray, C: np.ndarray | Centres, *, scale: float | None = None
                   ) -> np.ndarray:
    """(n,) int32 index of the nearest centre of every row (:func:`assign` without
    the distances: what ``predict`` needs). ``scale``: X holds raw (n, d) values (uint8
    pixels) standing for ``float32(X) * scale``, scaled a block of rows at a time into
    a reused buffer (the same labels as on the scaled rows, no float32 copy of X).

    >>> nearest_labels(np.array([[0., 0.], [3., 1.]]), np.array([[0., 1.], [4., 1.]]))
    array([0, 1], dtype=int32)
    """
    dtype = np.dtype(np.float32) if scale is not None else X.dtype
    cen = Centres.of(C, dtype)
    n = X.shape[0]
    labels = np.empty(n, dtype=np.int32)
    step, buf = cen.buffer(n, dtype.itemsize)
    scaled = None if scale is None else _scratch("scaled", min(n, step) * X.shape[1], dtype)
    for s in range(0, n, step):
        xb = X[s : s + step]
        if scaled is not None:
            xb = np.multiply(xb, np.float32(scale), dtype=np.float32,
                             out=scaled[: xb.size].reshape(xb.shape))
        labels[s : s + step], _, _ = cen.nearest(xb, buf)
    return labels


def winner_sqdist(X: np.ndarray, C: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(n,) float64 ``|X[i] - C[labels[i]]|^2``, the differences squared and summed in
    float64 (``C`` float64): each row's distance to its centre without the GEMM
    expansion's rounding (2e-7 of an SSE on Fashion-MNIST, 1e-5 on tight clusters), so
    that ``score`` and a fit's ``inertia_`` agree.

    >>> winner_sqdist(np.array([[3., 4.]], np.float32), np.zeros((1, 2)), np.array([0]))
    array([25.])
    """
    out = np.empty(X.shape[0])
    if X.ndim == 2 and X.dtype in (np.float32, np.float64) and compiled_kernels():
        _numba().winner_sq(np.ascontiguousarray(X), np.ascontiguousarray(C, np.float64),
                           np.ascontiguousarray(labels, np.int32), out)
        return out
    for s in range(0, X.shape[0], SUM_BLOCK):  # no (n, d) float64 temporary
        diff = X[s : s + SUM_BLOCK].astype(np.float64) - np.asarray(C, np.float64)[
            labels[s : s + SUM_BLOCK]]
        out[s : s + SUM_BLOCK] = np.einsum("ij,ij->i", diff, diff)
    return out


def distances(X: np.ndarray, C: np.ndarray | Centres) -> np.ndarray:
    """(n, k) Euclidean (not squared) distances, X's dtype."""
    cen = Centres.of(C, X.dtype)
    D = X @ cen.m2t[:, : cen.k]
    D += cen.sq[: cen.k]
    D += row_norms_sq(X)[:, None]
    np.maximum(D, 0, out=D)
    return np.sqrt(D, out=D)


def _onehot(labels: np.ndarray, k: int, values: np.ndarray, runs: int = 1) -> sp.csc_matrix:
    """(k, m) one-hot matrix in CSC form, built without sorting: ``runs`` entries per
    column, ``labels`` row-major (m, runs) flattened."""
    m = labels.shape[0] // runs
    return sp.csc_matrix((values, labels, np.arange(0, m * runs + 1, runs)), shape=(k, m))


def cluster_sums(
    X: np.ndarray,
    labels: np.ndarray,
    k: int,
    weights: np.ndarray | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Per-cluster (weighted) sums of rows, (k, d) float64 (added into ``out`` if given).

    A sparse one-hot (CSC) matrix times X, in X's dtype over blocks of
    :data:`SUM_BLOCK` rows, accumulated across blocks in float64. Measured ~2x faster
    than the CSR product, ~3x faster than sort + reduceat and than a float64 product
    (which must copy X to float64). ``labels`` may be (n, runs): every row then counts
    once in each of ``runs`` clusters (independent fits with stacked centres), all
    summed in one product that reads X once.
    """
    n, d = X.shape
    runs = 1 if labels.ndim == 1 else labels.shape[1]
    if out is None:
        out = np.zeros((k, d), dtype=np.float64)
    ones = np.ones(min(n, SUM_BLOCK) * runs, dtype=X.dtype)
    for s in range(0, n, SUM_BLOCK):
        lab = labels[s : s + SUM_BLOCK]
        vals = (
            ones[: lab.size]
            if weights is None
            else np.repeat(weights[s : s + SUM_BLOCK].astype(X.dtype, copy=False), runs)
        )
        out += _onehot(lab.ravel(), k, vals, runs) @ X[s : s + SUM_BLOCK]
    return out


@dataclass
class TopM:
    """The ``m`` rows farthest from their centres, with what relocation needs."""

    sqdist: np.ndarray  # (m,) float64, descending
    index: np.ndarray  # (m,) int64 global row index (ties: smaller index first)
    rows: np.ndarray  # (m, d)
    labels: np.ndarray  # (m,) int32
    weights: np.ndarray  # (m,) float64
    cap: int = 0  # the rows asked for: a small block holds fewer, a merge keeps up to it

    @classmethod
    def empty(cls, d: int, dtype: np.dtype, cap: int = 0) -> TopM:
        return cls(
            np.empty(0), np.empty(0, np.int64), np.empty((0, d), dtype), np.empty(0, np.int32),
            np.empty(0), cap,
        )

    def select(self, m: int) -> TopM:
        """The ``m`` farthest (ties: smaller index), ``m`` the new ``cap``."""
        order = np.lexsort((self.index, -self.sqdist))[:m]
        return TopM(
            self.sqdist[order], self.index[order], self.rows[order], self.labels[order],
            self.weights[order], m,
        )


def _row_index(offset: int | np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Global int64 index of the local rows ``idx``: ``offset`` is the index of row 0,
    or an array of every row's index."""
    if np.ndim(offset) == 0:
        return idx.astype(np.int64) + int(offset)
    return np.asarray(offset, dtype=np.int64)[idx]


def top_m(
    sqdist: np.ndarray,
    m: int,
    X: Any,
    labels: np.ndarray,
    weights: np.ndarray,
    offset: int | np.ndarray,
) -> TopM:
    """The ``m`` rows with the largest ``sqdist``, ties broken by smaller global index.

    ``X``: the rows, or an accessor of them (``[idx]``, ``shape``, ``dtype``).
    ``offset`` is the global index of row 0, or an array of every row's global index.
    Rows of zero weight (nodata) are never chosen: they take no part, not even as the
    farthest rows that empty clusters move to.
    """
    if weights.size and not (weights > 0).all():
        keep = np.flatnonzero(weights > 0)
        return top_m(sqdist[keep], m, X[keep], labels[keep], weights[keep],
                     _row_index(offset, keep))
    n = sqdist.shape[0]
    if min(m, n) == 0:
        return TopM.empty(X.shape[1], X.dtype, m)
    idx = np.arange(n) if m >= n else np.argpartition(sqdist, n - m)[n - m :]
    # argpartition keeps all rows > the m-th value but is arbitrary among equal values
    # at the boundary: pull every row equal to the threshold and let select() decide.
    thr = sqdist[idx].min()
    idx = np.union1d(idx, np.flatnonzero(sqdist == thr)) if m < n else idx
    gidx = _row_index(offset, idx)
    t = TopM(
        sqdist[idx].astype(np.float64), gidx.astype(np.int64), X[idx],
        labels[idx], weights[idx].astype(np.float64),
    )
    return t.select(m)


def _merge_top(a: TopM, b: TopM, m: int | None = None) -> TopM:
    """The ``m`` farthest rows of both; by default as many as either was asked for
    (blocks smaller than that hold all their rows: the merge keeps them, up to it)."""
    if m is None:
        m = max(a.cap, b.cap, len(a.sqdist), len(b.sqdist))
    return TopM(
        np.concatenate([a.sqdist, b.sqdist]),
        np.concatenate([a.index, b.index]),
        np.concatenate([a.rows, b.rows]),
        np.concatenate([a.labels, b.labels]),
        np.concatenate([a.weights, b.weights]),
    ).select(m)


def weighted_sample(
    X: np.ndarray, labels: np.ndarray, weights: np.ndarray, index: np.ndarray, m: int,
    seed: int,
) -> TopM:
    """``m`` rows drawn without replacement with probability ~ weight, mergeable.

    Efraimidis-Spirakis keys ``u ** (1 / w)`` with ``u`` from the rows' global index
    (:func:`splitmix64_uniform`): the top ``m`` keys of a union of chunks are a
    weighted sample of that union, whatever the chunking.
    """
    u = splitmix64_uniform(index, seed)
    with np.errstate(divide="ignore"):
        key = np.where(weights > 0, np.log(np.maximum(u, 1e-300)) / weights, -np.inf)
    return top_m(key, m, X, labels, weights, index)


@dataclass
class Moments:
    """Weighted-free column moments for the tolerance (Chan et al. parallel update)."""

    n: float
    mean: np.ndarray  # (d,) float64
    m2: np.ndarray  # (d,) float64

    @property
    def nbytes(self) -> int:
        return int(self.mean.nbytes + self.m2.nbytes)

    @classmethod
    def of(cls, X: np.ndarray) -> Moments:
        n = X.shape[0]
        if n == 0:
            return cls(0.0, np.zeros(X.shape[1]), np.zeros(X.shape[1]))
        mean = X.mean(axis=0, dtype=np.float64)
        m2 = np.var(X, axis=0, dtype=np.float64) * n
        return cls(float(n), mean, m2)

    def __add__(self, other: Moments) -> Moments:
        if self.n == 0:
            return other
        if other.n == 0:
            return self
        n = self.n + other.n
        delta = other.mean - self.mean
        mean = self.mean + delta * (other.n / n)
        m2 = self.m2 + other.m2 + delta**2 * (self.n * other.n / n)
        return Moments(n, mean, m2)

    @property
    def var(self) -> np.ndarray:
        return self.m2 / self.n if self.n else np.zeros_like(self.m2)


@dataclass
class LloydPartial:
    """What one chunk contributes to a Lloyd iteration; added with ``+``.

    ``sums``/``counts`` are weighted per-cluster sums and weights; ``sq`` is the
    weighted SSE against the assigning centres, from those sums and each cluster's
    ``sum w |x|^2`` (:func:`sse_of_sums`: exact, where the per-row float32 distances
    are not).
    """

    sums: np.ndarray  # (k, d) float64
    counts: np.ndarray  # (k,) float64
    sq: float
    top: TopM
    moments: Moments | None = None
    n_rows: int = 0
    sample: TopM | None = None  # weighted random rows (key in ``sqdist``), mini-batch

    def __add__(self, other: LloydPartial) -> LloydPartial:
        top = _merge_top(self.top, other.top)
        moments = None
        if self.moments is not None and other.moments is not None:
            moments = self.moments + other.moments
        sample = None
        if self.sample is not None and other.sample is not None:
            sample = _merge_top(self.sample, other.sample)
        return LloydPartial(
            self.sums + other.sums,
            self.counts + other.counts,
            self.sq + other.sq,
            top,
            moments,
            self.n_rows + other.n_rows,
            sample,
        )

    def sse(self, C: np.ndarray | None = None) -> float:
        """Weighted sum of squared distances to the centres the rows were assigned to."""
        return self.sq


def scale_rows(raw: np.ndarray, scale: float, out: np.ndarray | None = None) -> np.ndarray:
    """``raw`` (integer, e.g. uint8 pixels) as float32 times ``scale``, (n, d).

    Bit for bit what ``io`` scales stored pixels with (cast, then one float32
    multiply); ``out`` is an optional (>= n, d) float32 buffer to write into (a cast
    copy, then an in-place multiply: 15% faster than a casting multiply).
    """
    raw = raw.reshape(raw.shape[0], -1)
    if out is None:
        out = np.empty(raw.shape, dtype=np.float32)
    out = out[: raw.shape[0]]
    np.copyto(out, raw, casting="unsafe")
    out *= np.float32(scale)
    return out


def _scaled_block(raw: np.ndarray, scale: float) -> np.ndarray:
    """Scale a block of raw rows into this thread's reusable float32 buffer."""
    n, d = raw.shape
    return scale_rows(raw, scale, _scratch("scaled", n * d, np.dtype(np.float32)).reshape(n, d))


class _ScaledRows:
    """Row access (``[idx]``, ``shape``, ``dtype``) to raw rows as scaled float32."""

    def __init__(self, raw: np.ndarray, scale: float) -> None:
        self.raw, self.scale = raw, scale
        self.shape, self.dtype = raw.shape, np.dtype(np.float32)

    def __getitem__(self, idx: np.ndarray) -> np.ndarray:
        return scale_rows(self.raw[idx], self.scale)


def lloyd_partial(
    X: np.ndarray,
    C: np.ndarray | Centres,
    weights: np.ndarray | None = None,
    *,
    xsq: np.ndarray | None = None,
    offset: int | np.ndarray = 0,
    n_top: int = 0,
    moments: bool = False,
    n_sample: int = 0,
    sample_seed: int = 0,
    scale: float | None = None,
) -> LloydPartial:
    """Assign a chunk to ``C`` and return its per-cluster sums, counts and SSE parts.

    Parameters
    ----------
    X : (n, d) float array, one chunk; with ``scale``, raw (n, ...) values (uint8
        pixels) standing for ``float32(X) * scale``
    C : (k, d) current centres (cast to X's dtype for the GEMM)
    weights : (n,) sample weights or None
    xsq : (n,) the rows' ``|x|^2`` in X's dtype if known (in-memory data: computed once
        per fit instead of every pass, ~15% of a pass at k=10)
    offset : global index of the chunk's first row, or of every row (tie-breaks, keys)
    n_top : how many farthest rows to keep for empty-cluster relocation
    moments : also return column moments (for the tolerance)
    n_sample : also return that many weighted random rows (mini-batch reassignment)
    sample_seed : seed of those draws
    scale : X holds raw values: each block of rows is scaled into a reused float32
        buffer just before use, so a chunk streamed from a store never exists as a
        whole float32 array (results equal those on the scaled chunk)

    Examples
    --------
    >>> p = lloyd_partial(np.array([[0., 0.], [0., 2.], [9., 9.]]),
    ...                   np.array([[0., 1.], [9., 9.]]))
    >>> p.sums.tolist(), p.counts.tolist(), p.sse(np.array([[0., 1.], [9., 9.]]))
    ([[0.0, 2.0], [9.0, 9.0]], [2.0, 1.0], 2.0)
    >>> q = lloyd_partial(np.array([[0, 0], [0, 2], [9, 9]], dtype=np.uint8),
    ...                   np.array([[0., 1.], [9., 9.]]), scale=1.0)
    >>> q.sums.tolist() == p.sums.tolist()
    True
    """
    return lloyd_runs(X, C, weights, runs=1, xsq=xsq, offset=offset, n_top=n_top,
                      moments=moments, n_sample=n_sample, sample_seed=sample_seed,
                      scale=scale).parts[0]


@dataclass
class LloydRuns:
    """One :class:`LloydPartial` per independent fit of a pass; added run by run."""

    parts: tuple[LloydPartial, ...]

    def __add__(self, other: LloydRuns) -> LloydRuns:
        return LloydRuns(tuple(a + b for a, b in zip(self.parts, other.parts, strict=True)))


def _rows_and_centres(X: np.ndarray, C: np.ndarray | Centres, scale: float | None
                      ) -> tuple[np.ndarray, Centres]:
    """A block as (m, d) rows (raw rows with ``scale`` flattened: they are float32
    once scaled) and the centres prepared for their dtype."""
    if scale is not None:
        X = X.reshape(X.shape[0], -1)
    return X, Centres.of(C, np.dtype(np.float32) if scale is not None else X.dtype)


def lloyd_runs(
    X: np.ndarray,
    C: np.ndarray | Centres,
    weights: np.ndarray | None = None,
    *,
    runs: int = 1,
    xsq: np.ndarray | None = None,
    offset: int | np.ndarray = 0,
    n_top: int = 0,
    moments: bool = False,
    n_sample: int = 0,
    sample_seed: int = 0,
    scale: float | None = None,
) -> LloydRuns:
    """:func:`lloyd_partial` for ``runs`` independent fits at once (``n_init``).

    ``C`` stacks the runs' centres, (runs * k, d), run ``r`` owning rows ``r*k`` to
    ``(r+1)*k``. One GEMM computes every run's distances and one sparse product every
    run's sums, so the chunk is read once for all runs (K=10 and ten runs on 30k
    Fashion-MNIST rows, one thread: 66 ms instead of 153 ms for ten passes). Each
    run's partial equals what :func:`lloyd_partial` gives for its centres alone (the
    same GEMM columns and the same float32 sums order), other arguments as there.

    Examples
    --------
    >>> X = np.array([[0., 0.], [0., 2.], [9., 9.]])
    >>> a, b = lloyd_runs(X, np.array([[0., 1.], [9., 9.], [0., 0.], [1., 1.]]), runs=2).parts
    >>> a.counts.tolist(), b.counts.tolist(), b.sse()
    ([2.0, 1.0], [1.0, 2.0], 130.0)
    """
    n = X.shape[0]
    X, cen = _rows_and_centres(X, C, scale)
    dtype, d = cen.dtype, X.shape[1]
    kk = cen.k
    if runs < 1 or kk % runs:
        raise ValueError(f"runs must divide the {kk} stacked centres, got {runs!r}")
    k = kk // runs
    w = None if weights is None else np.asarray(weights, dtype=np.float64)
    labels = np.empty((n, runs), dtype=np.int32)  # index of the stacked centre
    sqdist = np.empty((n, runs), dtype=dtype)
    sums = np.zeros((kk, d), dtype=np.float64)
    C64 = cen.centres().astype(np.float64)  # the centres the rows were assigned to
    if compiled_kernels():
        counts = np.zeros(kk, dtype=np.float64)
        sumsq = np.zeros(kk, dtype=np.float64)  # per cluster, sum w |x|^2
        _lloyd_compiled(X, scale, cen, xsq, w, runs, k, labels, sqdist, sums, counts, sumsq)
        mom = _moments(X, scale) if moments else None
        each = [slice(r * k, (r + 1) * k) for r in range(runs)]
        sse = [sse_of_sums(sums[j], counts[j], sumsq[j], C64[j]) for j in each]
    else:
        mom, counts, sse = _lloyd_numpy(X, scale, cen, C64, xsq, w, runs, k, moments, labels,
                                        sqdist, sums)
    w1 = np.ones(n) if w is None else w
    rows: Any = _ScaledRows(X, scale) if scale is not None else X
    index = _row_index(offset, np.arange(n)) if n_sample else None
    parts = []
    for r in range(runs):
        lab_r = labels[:, r] - np.int32(r * k) if r else labels[:, 0]
        sample = None
        if index is not None:
            sample = weighted_sample(rows, lab_r, w1, index, n_sample, sample_seed)
        parts.append(LloydPartial(
            sums[r * k : (r + 1) * k], counts[r * k : (r + 1) * k], sse[r],
            top_m(sqdist[:, r], n_top, rows, lab_r, w1, offset), mom, n, sample))
    return LloydRuns(tuple(parts))

def _lloyd_numpy(X: np.ndarray, scale: float | None, cen: Centres, C64: np.ndarray,
                 xsq: np.ndarray | None, w: np.ndarray | None, runs: int, k: int,
                 moments: bool, labels: np.ndarray, sqdist: np.ndarray, sums: np.ndarray
                 ) -> tuple[Moments | None, np.ndarray, list[float]]:
    """The numpy reference of the fused loop (see :func:`lloyd_runs`): fills
    ``labels``, ``sqdist`` and ``sums`` (outputs); returns (moments, counts, each run's
    SSE against ``C64``, the float64 centres, summed from float64 differences: the
    sums here are float32 products, not exact enough for :func:`sse_of_sums`)."""
    n, d = X.shape
    raw = scale is not None
    dtype, kk = cen.dtype, cen.k
    step, buf = cen.buffer(n, dtype.itemsize)
    # small k: sum each block while it is cached (K=10: 21.5 -> 16.8 ms per 30k rows);
    # large k: the (k, d) product per block is a large temporary, which dask workers
    # (MALLOC_TRIM_THRESHOLD_) mmap afresh every time: sum over SUM_BLOCK rows instead.
    # Decided by one run's k, so that every run sums its rows as it would alone.
    fused = k * d * dtype.itemsize <= FUSED_SUMS_MAX_BYTES
    # raw rows are scaled into a reused float32 block just before use: one block of
    # `step` rows while sums are fused (cache-resident: K=10, 10k uint8 rows 6.9 ms,
    # 11.0 ms scaling 8192 rows at a time, 8.2 ms on the float32 rows), else SUM_BLOCK
    outer = (step if fused else max(step, SUM_BLOCK // step * step)) if raw else max(n, 1)
    mom = None
    sse = [0.0] * runs
    for s0 in range(0, n, outer):
        xo = _scaled_block(X[s0 : s0 + outer], scale) if scale is not None else X
        wo = None if w is None else w[s0 : s0 + outer]
        for s in range(0, xo.shape[0], step):
            xb, g = xo[s : s + step], s0 + s
            lab, sq, _ = cen.nearest(xb, buf, None if xsq is None else xsq[g : g + step], runs)
            labels[g : g + step] = lab.reshape(-1, runs)
            sqdist[g : g + step] = sq.reshape(-1, runs)
            for r, lab_r in enumerate(lab.reshape(-1, runs).T):
                e = winner_sqdist(xb, C64, lab_r)
                sse[r] += float(e.sum() if wo is None else e @ wo[s : s + step])
            if fused:
                cluster_sums(xb, lab, kk, None if wo is None else wo[s : s + step], out=sums)
        if not fused:
            lab_o = labels[s0 : s0 + outer]
            cluster_sums(xo, lab_o[:, 0] if runs == 1 else lab_o, kk, wo, out=sums)
        if moments and raw:
            mom = Moments.of(xo) if mom is None else mom + Moments.of(xo)
    if moments and not raw:
        mom = Moments.of(X)
    if moments and mom is None:  # no rows
        mom = Moments.of(np.empty((0, d), dtype))
    counts = np.bincount(labels.ravel(), weights=None if w is None else np.repeat(w, runs),
                         minlength=kk).astype(np.float64)
    return mom, counts, sse


def _moments(X: np.ndarray, scale: float | None) -> Moments:
    """Column moments of the rows: compiled, one tile at a time
    (:func:`daskmeans._kernels_numba.column_moments`: 30,000 x 784 float32 rows in
    ~20 ms, where numpy's float64 mean and var took ~100 ms), else numpy
    :data:`SUM_BLOCK` rows at a time (raw rows scaled block by block): no float64 copy
    of the whole block (a fresh 188 MB temporary for 30,000 x 784 rows cost 0.5 s of
    page faults)."""
    if compiled_kernels() and X.shape[0] and (scale is not None or X.dtype.kind == "f"):
        mean, m2 = np.empty(X.shape[1]), np.empty(X.shape[1])
        _numba().column_moments(np.ascontiguousarray(X), 1.0 if scale is None else scale,
                                scale is not None, mean, m2)
        return Moments(float(X.shape[0]), mean, m2)
    mom = Moments.of(np.empty((0, X.shape[1]), np.float32))
    for s in range(0, X.shape[0], SUM_BLOCK):
        xs = X[s : s + SUM_BLOCK]
        mom = mom + Moments.of(_scaled_block(xs, scale) if scale is not None else xs)
    return mom


def compiled_kernels() -> bool:
    """True when the compiled (numba) fused kernel runs Lloyd passes: numba is
    installed and ``DASKMEANS_KERNELS`` is not ``numpy`` (the reference)."""
    return os.environ.get("DASKMEANS_KERNELS", "numba") != "numpy" and _numba() is not None


@functools.cache
def _numba() -> Any:
    try:
        from . import _kernels_numba
    except ImportError:  # numba missing: the numpy kernels do everything
        return None
    return _kernels_numba


def _lloyd_compiled(X: np.ndarray, scale: float | None, cen: Centres, xsq: np.ndarray | None,
                    w: np.ndarray | None, runs: int, k: int, labels: np.ndarray,
                    sqdist: np.ndarray, sums: np.ndarray, counts: np.ndarray,
                    sumsq: np.ndarray) -> None:
    """The fused loop in compiled code (:mod:`daskmeans._kernels_numba`)."""
    N = _numba()
    X = np.ascontiguousarray(X)
    xs = np.empty(0) if xsq is None else np.ascontiguousarray(xsq, np.float64)
    ww = np.empty(0) if w is None else np.ascontiguousarray(w)
    tile = N.tile_rows(cen.m2t.shape[1])
    if scale is not None:
        bad = N.lloyd_raw(X, float(scale), cen.m2t, cen.sq, xs, ww, runs, k, tile,
                          labels, sqdist, sums, counts, sumsq, cen.tie)
    else:
        bad = N.lloyd_float(X, cen.m2t, cen.sq, xs, ww, runs, k, tile, labels, sqdist,
                            sums, counts, sumsq, cen.tie)
    if bad >= 0:
        raise NonFiniteRow(int(bad))




# --------------------------------------------------------------------------- bounds


@dataclass
class BlockBounds:
    """A block's rows between Lloyd iterations: each row's centre, an upper bound of
    its distance to that centre and, per group of centres (Yinyang's global filter;
    one group is Hamerly's), a lower bound of its distance to every other centre of
    the group, valid for the centres of iteration ``version``. ``12 + 4 t`` bytes a row
    (t groups: see :func:`daskmeans.algorithms.n_groups`). The lower bounds are float32:
    half the bytes to read and write in every pass, and their rounding (a relative
    6e-8) is far inside the slack every bound test keeps (``4 d eps (|x|^2 + |c|^2)``
    in float32)."""

    labels: np.ndarray  # (m,) int32; -1: not assigned yet
    upper: np.ndarray  # (m,) float64
    lower: np.ndarray  # (m, t) float32: per group of centres
    version: int = -1

    @classmethod
    def fresh(cls, m: int, n_groups: int = 1) -> BlockBounds:
        return cls(np.full(m, -1, np.int32), np.full(m, np.inf),
                   np.zeros((m, n_groups), np.float32))

    @property
    def nbytes(self) -> int:
        return int(self.labels.nbytes + self.upper.nbytes + self.lower.nbytes)


@dataclass
class BoundsSummary:
    """Per cluster, the largest upper bound and the largest ``upper - lower`` among a
    block's rows (-inf where the block has no row of that cluster): from it the client
    can tell, without reading the block, that none of its rows can change centre."""

    umax: np.ndarray  # (k,) float64
    gapmax: np.ndarray  # (k,) float64
    version: int

    def settled(self, step: Drift) -> bool:
        """True when the bounds prove every row of the block keeps its centre after
        the centres moved by ``step`` (from this block's version): in each cluster,
        every row passes the lower-bound test, or every row the separation test (each
        with ``sqrt(margin)`` of slack, more than the rows' own tests keep)."""
        has = self.umax > -np.inf
        slack = np.sqrt(step.margin)
        # every group bound of a row fell by at most the largest group drift
        by_lower = self.gapmax[has] + step.drift[has] + step.group_drift.max() + slack <= 0
        by_sep = self.umax[has] + step.drift[has] + slack <= step.half_sep[has]
        return bool(np.all(by_lower | by_sep))


@dataclass
class Drift:
    """How far the centres moved since the centres some bounds refer to, and how far
    apart they are now: what :func:`bounds_block` needs to update and test bounds."""

    drift: np.ndarray  # (k,) |C_now - C_then| per centre
    half_sep: np.ndarray  # (k,) half the distance to the nearest other current centre
    margin: float  # squared-distance slack covering the float rounding of distances
    group_drift: np.ndarray  # (t,) largest drift of a centre in each group

    @classmethod
    def of(cls, C_now: np.ndarray, C_then: np.ndarray, margin: float,
           half_sep: np.ndarray | None = None, groups: np.ndarray | None = None) -> Drift:
        """The step from ``C_then`` to ``C_now`` (``half_sep``: of ``C_now``, if known;
        the same for every block in an iteration, and costs a (k, k) Gram matrix;
        ``groups``: (k,) group of each centre, one group if None)."""
        C_now = np.asarray(C_now, np.float64)
        drift = np.sqrt(((C_now - np.asarray(C_then, np.float64)) ** 2).sum(1))
        k = len(drift)
        if half_sep is None:
            half_sep = half_separation(C_now)
        if groups is None or k == 0:
            group_drift = np.array([drift.max() if k else 0.0])
        else:
            group_drift = np.zeros(int(groups.max()) + 1)
            np.maximum.at(group_drift, groups, drift)
        return cls(drift, half_sep, float(margin), group_drift)


def half_separation(C: np.ndarray) -> np.ndarray:
    """(k,) half the distance from each centre to the nearest other one (inf for k=1)."""
    C = np.asarray(C, np.float64)
    if len(C) < 2:
        return np.full(len(C), np.inf)
    sq = (C ** 2).sum(1)
    G = np.maximum(sq[:, None] + sq[None, :] - 2 * C @ C.T, 0)
    np.fill_diagonal(G, np.inf)
    return np.asarray(np.sqrt(G.min(1)) / 2)


def bounds_margin(xsq_max: float, C: np.ndarray, dtype: np.dtype) -> float:
    """Slack (in squared distance) a bound test keeps: the rounding error of a
    ``|x|^2 - 2 x.c + |c|^2`` distance in ``dtype`` over d features is below
    ``d * eps * (|x|^2 + |c|^2)``; four times that, so that a row the bounds settle is
    one plain Lloyd would assign to the same centre."""
    d = C.shape[1]
    csq = float((np.asarray(C, np.float64) ** 2).sum(1).max()) if len(C) else 0.0
    return 4.0 * d * float(np.finfo(dtype).eps) * (xsq_max + csq)


@dataclass
class BoundsPartial:
    """What a block's bounded Lloyd iteration contributes; added with ``+``: the
    changes of the per-cluster sums, weights and ``sum w |x|^2`` (the rows that moved;
    everything, from blocks without bounds yet) and how many rows were read and
    assigned in full. ``top``/``moments``: as :class:`LloydPartial`, for a pass that
    assigns every row (from fresh bounds). ``n_pairs``: (row, group of centres) pairs
    the rows assigned in full were compared with (``n_full`` times the groups without
    the group filter)."""

    dsums: np.ndarray  # (k, d) float64
    dcounts: np.ndarray  # (k,) float64
    dsumsq: np.ndarray  # (k,) float64
    n_rows: int
    n_read: int
    n_full: int
    xsq_max: float
    top: TopM | None = None
    moments: Moments | None = None
    n_pairs: int = 0

    def __add__(self, other: BoundsPartial) -> BoundsPartial:
        top = None if self.top is None or other.top is None else _merge_top(self.top,
                                                                              other.top)
        mom = (None if self.moments is None or other.moments is None
               else self.moments + other.moments)
        return BoundsPartial(self.dsums + other.dsums, self.dcounts + other.dcounts,
                             self.dsumsq + other.dsumsq, self.n_rows + other.n_rows,
                             self.n_read + other.n_read, self.n_full + other.n_full,
                             max(self.xsq_max, other.xsq_max), top, mom,
                             self.n_pairs + other.n_pairs)


def bounds_block(
    X: np.ndarray,
    C: np.ndarray | Centres,
    state: BlockBounds,
    step: Drift | None,
    weights: np.ndarray | None = None,
    *,
    version: int,
    n_top: int = 0,
    moments: bool = False,
    offset: int = 0,
    scale: float | None = None,
    centres64: np.ndarray | None = None,
    groups: np.ndarray | None = None,
) -> tuple[BoundsPartial, BlockBounds, BoundsSummary]:
    """One Lloyd iteration over a block with per-row bounds (Hamerly's, Elkan's or
    Yinyang's, by ``groups``), exact: the labels are
    those of :func:`lloyd_runs` (up to float ties), but rows whose bounds prove they
    keep their centre are not read and rows that move update the per-cluster sums by
    their difference.

    Parameters
    ----------
    X : (m, d) float rows, or raw rows with ``scale`` (as :func:`lloyd_runs`)
    C : (k, d) current centres
    state : the block's bounds (:meth:`BlockBounds.fresh` for a first pass: every row
        is then assigned in full and the partial holds the whole sums)
    step : how the centres moved since ``state.version`` (None for fresh bounds)
    weights : (m,) sample weights or None
    version : the iteration of ``C`` (stored in the new bounds)
    n_top, moments : as :func:`lloyd_runs`, only for fresh bounds (exact distances)
    centres64 : C as float64, if the caller has it (C prepared as :class:`Centres`)
    groups : (k,) group of each centre (``state.lower`` holds one bound per group);
        one group if None

    Returns
    -------
    (partial, new bounds, their per-cluster summary); inputs are not modified.

    Examples
    --------
    >>> X = np.array([[0., 0.], [0., 2.], [9., 9.]])
    >>> C = np.array([[0., 1.], [9., 9.]])
    >>> p, b, _ = bounds_block(X, C, BlockBounds.fresh(3), None, version=0)
    >>> p.dsums.tolist(), p.dcounts.tolist(), b.labels.tolist()
    ([[0.0, 2.0], [9.0, 9.0]], [2.0, 1.0], [0, 0, 1])
    >>> C2 = np.array([[0., 1.], [9., 9.5]])          # centre 1 moves by 0.5
    >>> q, b2, _ = bounds_block(X, C2, b, Drift.of(C2, C, 1e-9), version=1)
    >>> q.dcounts.tolist(), q.n_full, b2.labels.tolist()   # nobody moves, nothing recomputed
    ([0.0, 0.0], 0, [0, 0, 1])
    """
    n = X.shape[0]
    X, cen = _rows_and_centres(X, C, scale)
    raw, d = scale is not None, X.shape[1]
    k = cen.k
    if centres64 is None:
        centres64 = cen.centres() if isinstance(C, Centres) else np.asarray(C)
    C64 = np.ascontiguousarray(centres64, dtype=np.float64)
    grp = np.zeros(k, np.int64) if groups is None else np.asarray(groups, np.int64)
    t = state.lower.shape[1]
    if step is None:
        if not (state.labels < 0).all():
            raise ValueError("bounds that refer to earlier centres need their drift")
        step = Drift(np.zeros(k), np.zeros(k), 0.0, np.zeros(t))
    w = None if weights is None else np.asarray(weights, dtype=np.float64)
    out = BlockBounds(np.empty(n, np.int32), np.empty(n), np.empty((n, t), np.float32),
                      version)
    dS, dN, dQ = np.zeros((k, d)), np.zeros(k), np.zeros(k)
    if compiled_kernels():
        N = _numba()
        m2r, gstart, gcols = _centres_by_group(cen, grp, t)
        bad, n_read, n_full, x2max, n_pairs = N.bounds_pass(
            np.ascontiguousarray(X), float(scale or 1.0), raw, cen.m2t, cen.sq, C64, grp,
            np.empty(0) if w is None else w, state.labels, state.upper, state.lower,
            step.drift, step.group_drift, step.half_sep, step.margin,
            N.tile_rows(cen.m2t.shape[1]),
            out.labels, out.upper, out.lower, dS, dN, dQ, m2r, gstart, gcols,
            N.GROUP_FILTER_SHARE, cen.tie)
    else:
        bad, n_read, n_full, x2max = _bounds_numpy(
            X, scale, cen, C64, grp, w, state, step, out, dS, dN, dQ)
        n_pairs = n_full * t
    if bad >= 0:
        raise NonFiniteRow(int(bad))
    top = mom = None
    if n_top or moments:
        if (state.labels >= 0).any():
            raise ValueError("n_top and moments need fresh bounds (every row assigned)")
        rows: Any = _ScaledRows(X, scale) if scale is not None else X
        if n_top:
            w1 = np.ones(n) if w is None else w
            top = top_m(out.upper ** 2, n_top, rows, out.labels, w1, offset)
        if moments:
            mom = _moments(X, scale)
    umax, gapmax = np.empty(k), np.empty(k)
    if compiled_kernels():
        _numba().cluster_extrema(out.labels, out.upper, out.lower, k, umax, gapmax)
    else:
        umax[:], gapmax[:] = -np.inf, -np.inf
        np.maximum.at(umax, out.labels, out.upper)
        np.maximum.at(gapmax, out.labels, out.upper - out.lower.min(1))
    part = BoundsPartial(dS, dN, dQ, n, int(n_read), int(n_full), float(x2max), top, mom,
                         int(n_pairs))
    return part, out, BoundsSummary(umax, gapmax, version)


def _centres_by_group(cen: Centres, grp: np.ndarray, t: int
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The centres' ``-2 C`` group by group for the compiled group filter: (k, d) rows
    in group order, ``start`` (t + 1,) where each group begins, and the centres'
    indices in that order (ascending within each group)."""
    cols = np.argsort(grp, kind="stable").astype(np.int64)
    start = np.searchsorted(grp[cols], np.arange(t + 1)).astype(np.int64)
    return np.ascontiguousarray(cen.m2t[:, cols].T), start, cols


def _bounds_numpy(X: np.ndarray, scale: float | None, cen: Centres, C64: np.ndarray,
                  grp: np.ndarray, w: np.ndarray | None, state: BlockBounds, step: Drift,
                  out: BlockBounds, dS: np.ndarray, dN: np.ndarray, dQ: np.ndarray
                  ) -> tuple[int, int, int, float]:
    """The numpy reference of the compiled bounded pass (same outputs)."""
    k, t = cen.k, state.lower.shape[1]
    a = state.labels
    fresh = a < 0
    ai = np.where(fresh, 0, a)
    ub = state.upper + step.drift[ai]
    lg = state.lower - step.group_drift[None, :]
    bnd = np.maximum(step.half_sep[ai], lg.min(1))
    ok = (bnd > 0) & (ub * ub <= bnd * bnd - step.margin) & ~fresh
    out.labels[:], out.upper[:], out.lower[:] = a, ub, lg
    read = np.flatnonzero(~ok)
    rows = X[read]
    rows = scale_rows(rows, scale) if scale is not None else rows
    d2 = ((rows.astype(np.float64) - C64[ai[read]]) ** 2).sum(1)
    ok2 = ~fresh[read] & (bnd[read] > 0) & (d2 <= bnd[read] ** 2 - step.margin)
    out.upper[read[ok2]] = np.sqrt(d2[ok2])
    full, xf = read[~ok2], rows[~ok2]
    if len(full) == 0:
        return -1, len(read), 0, 0.0
    xf64 = xf.astype(np.float64)
    x2 = np.einsum("ij,ij->i", xf64, xf64)  # float64, as the compiled pass keeps it
    D = (xf @ cen.m2t)[:, :k] + cen.sq[:k]
    lab = np.argmin(D, axis=1)
    best = D[np.arange(len(full)), lab].astype(np.float64)
    settle_near_ties(xf, cen, D, lab, best, x2, 0)
    lab = lab.astype(np.int32)
    s1 = best + x2
    if not np.isfinite(s1).all():
        return int(full[np.flatnonzero(~np.isfinite(s1))[0]]), len(read), len(full), 0.0
    D[np.arange(len(full)), lab] = np.inf
    out.labels[full] = lab
    out.upper[full] = np.sqrt(np.maximum(s1.astype(np.float64), 0))
    for g in range(t):
        in_g = grp == g
        gmin = D[:, in_g].min(1) if in_g.any() else np.full(len(full), np.inf)
        out.lower[full, g] = np.sqrt(np.maximum((gmin + x2).astype(np.float64), 0))
    old = a[full]
    moved = lab != old
    wf = np.ones(len(full)) if w is None else w[full]
    wm, xm, x2m = wf[moved], xf64[moved], x2[moved]
    np.add.at(dN, lab[moved], wm)
    np.add.at(dQ, lab[moved], wm * x2m)
    np.add.at(dS, lab[moved], xm * wm[:, None])
    was = old[moved] >= 0
    np.subtract.at(dN, old[moved][was], wm[was])
    np.subtract.at(dQ, old[moved][was], (wm * x2m)[was])
    np.subtract.at(dS, old[moved][was], (xm * wm[:, None])[was])
    return -1, len(read), len(full), float(x2.max())


def kmeans_plusplus(
    X: np.ndarray,
    n_clusters: int,
    rng: np.random.Generator,
    weights: np.ndarray | None = None,
    n_local_trials: int | None = None,
    metric: str = "euclidean",
) -> np.ndarray:
    """Greedy k-means++ (Arthur & Vassilvitskii; greedy variant as in scikit-learn).

    Each new centre is the best of ``2 + log(k)`` candidates drawn with probability
    proportional to weight x squared distance (x L1 distance for
    ``metric="manhattan"``, the k-medians seeding: the potential is then the L1
    objective). Returns (k, d) centres in X's dtype.
    """
    n, d = X.shape
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)
    if n_local_trials is None:
        n_local_trials = 2 + int(np.log(n_clusters))
    centers = np.empty((n_clusters, d), dtype=X.dtype)
    x_sq = row_norms_sq(X).astype(np.float64)
    first = rng.choice(n, p=w / w.sum())
    centers[0] = X[first]

    def sqd(cands: np.ndarray) -> np.ndarray:
        if metric == "manhattan":
            return l1_distances(X, cands).T
        # GEMM in X's dtype (float32 stays float32) and padded to an efficient width
        # (7 candidates at k=256: 2.7x faster), distances kept in float64
        D = (X @ Centres(cands, X.dtype).m2t)[:, : len(cands)].T.astype(np.float64)
        D += row_norms_sq(cands.astype(np.float64))[:, None]
        D += x_sq
        return np.maximum(D, 0, out=D)

    closest = sqd(centers[:1])[0]
    pot = float(closest @ w)
    for c in range(1, n_clusters):
        if pot <= 0:  # fewer distinct points than clusters: duplicate one
            centers[c] = X[rng.integers(n)]
            continue
        cum = np.cumsum(closest * w)
        ids = np.searchsorted(cum, rng.uniform(size=n_local_trials) * cum[-1])
        np.clip(ids, None, n - 1, out=ids)
        dcand = np.minimum(closest, sqd(X[ids]))
        pots = dcand @ w
        best = int(np.argmin(pots))
        pot, closest = float(pots[best]), dcand[best]
        centers[c] = X[ids[best]]
    return centers


def splitmix64_uniform(index: np.ndarray, seed: int) -> np.ndarray:
    """Counter-based uniforms in [0, 1): one per global row index, for any chunking."""
    with np.errstate(over="ignore"):
        z = index.astype(np.uint64) + np.uint64(seed & 0xFFFFFFFFFFFFFFFF) * np.uint64(
            0x9E3779B97F4A7C15
        )
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


@dataclass
class Oversample:
    """One k-means|| round's contribution: total cost and the top rows by sampling key."""

    cost: float
    key: np.ndarray  # (m,) float64, descending
    index: np.ndarray  # (m,) int64
    rows: np.ndarray  # (m, d)

    def __add__(self, other: Oversample) -> Oversample:
        m = max(len(self.key), len(other.key))
        key = np.concatenate([self.key, other.key])
        index = np.concatenate([self.index, other.index])
        order = np.lexsort((index, -key))[:m]
        return Oversample(
            self.cost + other.cost, key[order], index[order],
            np.concatenate([self.rows, other.rows])[order],
        )


def oversample_partial(
    X: np.ndarray,
    C: np.ndarray,
    weights: np.ndarray | None,
    *,
    offset: int,
    seed: int,
    m: int,
    metric: str = "euclidean",
) -> Oversample:
    """k-means|| sampling in one pass: row i is kept when ``w d^2 / u_i > cost / l``.

    The key ``w d^2 / u`` (u from :func:`splitmix64_uniform`) does not depend on the
    chunking; each chunk returns its ``m`` largest keys and the caller, once the total
    cost is known, keeps those above the threshold. ``metric="manhattan"``: ``d`` is
    the L1 distance (not squared).
    """
    _, sqdist = l1_assign(X, C) if metric == "manhattan" else assign(X, C)
    w = np.ones(X.shape[0]) if weights is None else np.asarray(weights, np.float64)
    cost_i = sqdist.astype(np.float64) * w
    u = splitmix64_uniform(np.arange(X.shape[0]) + offset, seed)
    key = cost_i / np.maximum(u, 1e-300)
    mm = min(m, key.shape[0])
    idx = np.argpartition(-key, mm - 1)[:mm] if 0 < mm < key.shape[0] else np.arange(mm)
    order = np.lexsort((idx, -key[idx]))
    idx = idx[order]
    return Oversample(float(cost_i.sum()), key[idx], idx.astype(np.int64) + offset, X[idx])


def count_nearest(
    X: np.ndarray, C: np.ndarray, weights: np.ndarray | None = None,
    metric: str = "euclidean",
) -> np.ndarray:
    """Weight of rows nearest to each centre of C (in L1 distance for
    ``metric="manhattan"``), (k,) float64."""
    labels, _ = l1_assign(X, C) if metric == "manhattan" else assign(X, C)
    return np.bincount(labels, weights=weights, minlength=C.shape[0]).astype(np.float64)


class LabelError(ValueError):
    """Labels that are not non-negative integers (names the argument and the value)."""


def as_label_codes(block: np.ndarray, name: str) -> np.ndarray:
    """Validate one block of labels and return it as int64.

    Accepts integer dtypes and floats with integral values; rejects NaN, fractions and
    negative values with a :class:`LabelError` naming ``name``.
    """
    a = np.asarray(block)
    if a.ndim != 1:
        raise LabelError(f"{name} must be 1-D, got shape {a.shape}")
    if a.dtype.kind == "f":
        if np.isnan(a).any():
            raise LabelError(f"{name} contains NaN")
        if not np.all(a == np.round(a)):
            bad = a[a != np.round(a)][0]
            raise LabelError(f"{name} must hold integers, got fractional value {bad!r}")
    elif a.dtype.kind == "b":
        a = a.astype(np.int64)
    elif a.dtype.kind not in "iu":
        raise LabelError(f"{name} must be integer labels, got dtype {a.dtype}")
    if a.size and a.min() < 0:
        raise LabelError(f"{name} must be non-negative, got {a.min()!r}")
    return a.astype(np.int64)


#: a dense per-chunk table is used while (max_true + 1) * (max_pred + 1) stays below this.
DENSE_TABLE_CELLS = 1 << 22


@dataclass
class PairTable:
    """Contingency counts of one or more chunks, added with ``+``.

    Dense (``table[t, p]`` for codes up to the maxima seen) while the label values are
    small, as in every clustering here; sparse (distinct pairs + counts) otherwise.
    """

    table: np.ndarray | None  # dense (max_t + 1, max_p + 1) int64
    pairs: np.ndarray | None = None  # sparse (m, 2) int64
    counts: np.ndarray | None = None  # sparse (m,) int64

    def to_sparse(self) -> tuple[np.ndarray, np.ndarray]:
        if self.table is None:
            assert self.pairs is not None and self.counts is not None
            return self.pairs, self.counts
        t, p = np.nonzero(self.table)
        return np.stack([t, p], axis=1).astype(np.int64), self.table[t, p]

    def __add__(self, other: PairTable) -> PairTable:
        if self.table is not None and other.table is not None:
            shape = tuple(max(a, b) for a, b in zip(self.table.shape, other.table.shape,
                                                     strict=True))
            if shape[0] * shape[1] <= DENSE_TABLE_CELLS:
                out = np.zeros(shape, dtype=np.int64)
                out[: self.table.shape[0], : self.table.shape[1]] += self.table
                out[: other.table.shape[0], : other.table.shape[1]] += other.table
                return PairTable(out)
        (pa, ca), (pb, cb) = self.to_sparse(), other.to_sparse()
        pairs, counts = np.concatenate([pa, pb]), np.concatenate([ca, cb])
        uniq, inv = np.unique(pairs, axis=0, return_inverse=True)
        return PairTable(None, uniq, np.bincount(inv.ravel(), weights=counts,
                                                 minlength=uniq.shape[0]).astype(np.int64))

    def finish(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(classes, clusters, table) over the label values that occur."""
        pairs, counts = self.to_sparse()
        classes, ti = np.unique(pairs[:, 0], return_inverse=True)
        clusters, pi = np.unique(pairs[:, 1], return_inverse=True)
        table = np.zeros((classes.shape[0], clusters.shape[0]), dtype=np.int64)
        table[ti.ravel(), pi.ravel()] = counts
        return classes, clusters, table


def pair_table(labels_true: np.ndarray, labels_pred: np.ndarray) -> PairTable:
    """Contingency counts of one block (validated), dense by ``bincount`` when small.

    Examples
    --------
    >>> pair_table(np.array([0, 0, 2]), np.array([1, 1, 0])).table
    array([[0, 2],
           [0, 0],
           [1, 0]])

    A predicted label of -1 (a sample masked as nodata, or DBSCAN's noise) takes no
    part: the row is left out of the table.

    >>> pair_table(np.array([0, 0, 2]), np.array([1, -1, 0])).table
    array([[0, 1],
           [0, 0],
           [1, 0]])
    """
    raw = np.asarray(labels_pred)
    if raw.dtype.kind in "if" and np.shape(labels_true) == raw.shape and (raw == -1).any():
        keep = raw != -1
        labels_true, labels_pred = np.asarray(labels_true)[keep], raw[keep]
    t = as_label_codes(labels_true, "labels_true")
    p = as_label_codes(labels_pred, "labels_pred")
    if t.shape != p.shape:
        raise LabelError(
            f"labels_true and labels_pred must have the same length, got {t.shape[0]} "
            f"and {p.shape[0]}"
        )
    if t.size == 0:
        return PairTable(np.zeros((0, 0), np.int64))
    nt, npred = int(t.max()) + 1, int(p.max()) + 1
    if nt * npred <= DENSE_TABLE_CELLS:
        flat = np.bincount(t * npred + p, minlength=nt * npred)
        return PairTable(flat.reshape(nt, npred).astype(np.int64))
    uniq, counts = np.unique(np.stack([t, p], axis=1), axis=0, return_counts=True)
    return PairTable(None, uniq, counts.astype(np.int64))


@dataclass
class Scored:
    """What one chunk contributes to scoring a model; added with ``+``."""

    sse: float  # weighted sum of squared (L1 for manhattan) distances to the nearest centre
    table: PairTable | None = None  # contingency counts against true labels, if given

    def __add__(self, other: Scored) -> Scored:
        table = None
        if self.table is not None and other.table is not None:
            table = self.table + other.table
        return Scored(self.sse + other.sse, table)


def score_block(
    X: np.ndarray,
    C: np.ndarray | Centres | L1Centres | TreeCentres,
    weights: np.ndarray | None = None,
    labels_true: np.ndarray | None = None,
    metric: str = "euclidean",
) -> Scored:
    """Assign a chunk: its (weighted) SSE (sum of L1 distances for
    ``metric="manhattan"``; rows to the leaf of a bisecting tree they reach for
    :class:`TreeCentres`) and, given true labels, its contingency counts (rows of zero
    weight, such as nodata samples, left out).

    Evaluating a model needs both; one assignment of each chunk gives both.

    Examples
    --------
    >>> s = score_block(np.array([[0., 0.], [0., 2.], [9., 9.]]),
    ...                 np.array([[0., 1.], [9., 9.]]), labels_true=np.array([3, 3, 5]))
    >>> s.sse, s.table.table[3:].tolist()
    (2.0, [[2, 0], [0, 0], [0, 1]])
    """
    if isinstance(C, TreeCentres):
        labels, sq = tree_assign(X, C)
    elif metric == "manhattan":
        assert not isinstance(C, Centres)
        labels, sq = l1_assign(X, C)
    else:
        assert not isinstance(C, L1Centres)
        labels, sq = assign(X, C)
    if labels_true is not None and weights is not None:  # zero weight (nodata): no part
        labels = np.where(weights > 0, labels, np.int32(-1))
    table = None if labels_true is None else pair_table(labels_true, labels)
    return Scored(weighted_sse(sq, weights), table)



# --------------------------------------------------------------------------- k-medians
#
# metric="manhattan": rows go to the centre nearest in L1 distance, and each centre
# moves to the coordinate-wise weighted median of its rows. Medians come from
# histograms of the values' *levels* (integers), one 16-bin digit per pass: raw uint8
# rows are their own level (256 levels, 2 passes, exact); float values fall on a grid
# of 4096 cells per feature (3 passes, then the centre is placed inside the cell that
# holds the median, see :class:`MedianGrid`). A pass's partial result is a (k, d, 16)
# float64 histogram: 25.7 MB at K=256, d=784, whatever the block size.

#: bits of a level's digit: each median pass counts 16 bins per cluster and feature.
DIGIT_BITS = 4
BINS = 1 << DIGIT_BITS
#: cells of the float grid per feature (three 16-bin passes).
FLOAT_LEVELS = BINS ** 3
#: target size in elements of one (rows, k) step of the numpy L1 reference.
_L1_STEP = 1 << 16


class L1Centres:
    """Centres prepared for L1 distances: (d, k) float64, transposed (a pass prepares
    them once and shares them with every task, as :class:`Centres`)."""

    def __init__(self, C: np.ndarray) -> None:
        C = np.asarray(C)
        self.k, self.d = C.shape
        self.ct = np.ascontiguousarray(C.T, dtype=np.float64)

    @property
    def nbytes(self) -> int:
        return int(self.ct.nbytes)

    @classmethod
    def of(cls, C: np.ndarray | L1Centres) -> L1Centres:
        return C if isinstance(C, L1Centres) else cls(C)


def _l1_dist_numpy(X: np.ndarray, scale: float | None, ct: np.ndarray, D: np.ndarray) -> None:
    """The numpy reference of the compiled L1 distances: features added in order, in
    float64, so that both give the same bits."""
    m, k = D.shape
    step = max(1, _L1_STEP // max(k, 1))
    for s in range(0, m, step):
        xb = X[s:s + step]
        xb = (scale_rows(xb, scale) if scale is not None else xb).astype(np.float64)
        Db = D[s:s + step]
        Db[:] = 0.0
        tmp = np.empty_like(Db)
        for t in range(xb.shape[1]):
            np.subtract(xb[:, t, None], ct[t], out=tmp)
            np.abs(tmp, out=tmp)
            Db += tmp


def l1_distances(X: np.ndarray, C: np.ndarray | L1Centres, scale: float | None = None
                 ) -> np.ndarray:
    """(n, k) L1 (Manhattan) distances in float64, the features added in order.

    Parameters
    ----------
    X : (n, d) float rows, or raw integer rows standing for ``float32(X) * scale``
    C : (k, d) centres

    Examples
    --------
    >>> l1_distances(np.array([[0., 0.], [3., 1.]]), np.array([[0., 1.], [4., 1.]]))
    array([[1., 5.],
           [3., 1.]])
    """
    X = X.reshape(X.shape[0], -1)
    cen = L1Centres.of(C)
    D = np.empty((X.shape[0], cen.k))
    if compiled_kernels():
        _numba().l1_dist(np.ascontiguousarray(X), float(scale or 1.0), scale is not None,
                         cen.ct, D)
    else:
        _l1_dist_numpy(X, scale, cen.ct, D)
    return D


def l1_assign(X: np.ndarray, C: np.ndarray | L1Centres, scale: float | None = None
              ) -> tuple[np.ndarray, np.ndarray]:
    """Nearest centre in L1 distance (ties: the lower index) of every row.

    Rows are taken :data:`DIST_BLOCK_BYTES` of distances at a time.

    Returns
    -------
    labels : (n,) int32
    dist : (n,) float64 L1 distance to that centre

    Raises :class:`NonFiniteRow` for a row whose distance is NaN or infinite.

    Examples
    --------
    >>> l1_assign(np.array([[0., 0.], [3., 1.]]), np.array([[0., 1.], [4., 1.]]))
    (array([0, 1], dtype=int32), array([1., 1.]))
    """
    X = X.reshape(X.shape[0], -1)
    cen = L1Centres.of(C)
    n = X.shape[0]
    labels = np.empty(n, np.int32)
    dist = np.empty(n)
    step = max(1, DIST_BLOCK_BYTES // max(1, 8 * cen.k))
    for s in range(0, n, step):
        D = l1_distances(X[s:s + step], cen, scale)
        lab = np.argmin(D, axis=1)
        best = D[np.arange(D.shape[0]), lab]
        if not np.isfinite(best).all():
            raise NonFiniteRow(s + int(np.flatnonzero(~np.isfinite(best))[0]))
        labels[s:s + step], dist[s:s + step] = lab, best
    return labels, dist


@dataclass
class MedianGrid:
    """How values map to integer *levels* whose histograms give the medians.

    Raw uint8 rows (a store's pixels, ``scale`` set) are their own level: 256 levels,
    two 16-bin digits, and the median level is exact (its value is ``float32(level) *
    scale``, as the rows are scaled). Float values fall on a grid of
    :data:`FLOAT_LEVELS` cells per feature between the feature's smallest and largest
    value: ``level = clip(floor((x - lo) * inv), 0, levels - 1)`` (monotone in x), three
    digits; the median is then known to lie in one cell, whose smallest and largest
    values are tracked in the last pass.
    """

    levels: int
    lo: np.ndarray | None = None  # (d,) float64; None: raw levels
    inv: np.ndarray | None = None  # (d,) float64 cells per unit (0 for a constant feature)
    scale: float | None = None  # raw rows: the value of level l is float32(l) * scale

    @property
    def raw(self) -> bool:
        return self.lo is None

    @property
    def digits(self) -> int:
        return max(1, (int(self.levels) - 1).bit_length() + DIGIT_BITS - 1) // DIGIT_BITS

    def shift(self, p: int) -> int:
        """Bit position of digit ``p`` (0: the most significant)."""
        return DIGIT_BITS * (self.digits - 1 - p)

    @classmethod
    def of_range(cls, lo: np.ndarray, hi: np.ndarray, levels: int = FLOAT_LEVELS
                 ) -> MedianGrid:
        """The float grid over ``[lo, hi]`` per feature."""
        lo, hi = np.asarray(lo, np.float64), np.asarray(hi, np.float64)
        width = hi - lo
        inv = np.zeros_like(lo)
        np.divide(levels, width, out=inv, where=width > 0)
        return cls(levels, lo, inv)

    def level(self, rows: np.ndarray) -> np.ndarray:
        """(m, d) int64 levels of rows (raw rows for the raw grid, float otherwise)."""
        rows = rows.reshape(rows.shape[0], -1)
        if self.lo is None:
            return rows.astype(np.int64)
        assert self.inv is not None
        u = np.floor((rows.astype(np.float64) - self.lo) * self.inv)
        return np.clip(u, 0, self.levels - 1).astype(np.int64)

    def value(self, level: np.ndarray) -> np.ndarray:
        """The float32 value of raw levels (the raw grid only)."""
        return scale_rows(np.asarray(level, np.float32), float(self.scale or 1.0))


@dataclass
class ValueRange:
    """Per-feature smallest and largest value of one or more blocks; added with ``+``."""

    lo: np.ndarray  # (d,) float64
    hi: np.ndarray  # (d,) float64

    def __add__(self, other: ValueRange) -> ValueRange:
        return ValueRange(np.minimum(self.lo, other.lo), np.maximum(self.hi, other.hi))


def value_range(X: np.ndarray) -> ValueRange:
    """Per-feature min and max of a block; :class:`NonFiniteRow` for a row holding NaN
    or infinity."""
    ok = np.isfinite(X).all(axis=1)
    if not ok.all():
        raise NonFiniteRow(int(np.flatnonzero(~ok)[0]))
    if X.shape[0] == 0:
        return ValueRange(np.full(X.shape[1], np.inf), np.full(X.shape[1], -np.inf))
    return ValueRange(X.min(axis=0).astype(np.float64), X.max(axis=0).astype(np.float64))


@dataclass
class MedianHist:
    """One median pass's histograms, added with ``+``: the weight per (cluster,
    feature, digit) of the values still in the running and, in a float grid's last
    pass, the smallest and largest of those values per bin."""

    hist: np.ndarray  # (k, d, BINS) float64
    vmin: np.ndarray | None = None  # (k, d, BINS) X's dtype, +inf where no value
    vmax: np.ndarray | None = None  # (k, d, BINS) X's dtype, -inf where no value

    @property
    def nbytes(self) -> int:
        return int(sum(a.nbytes for a in (self.hist, self.vmin, self.vmax) if a is not None))

    def __add__(self, other: MedianHist) -> MedianHist:
        if self.vmin is None or other.vmin is None:
            return MedianHist(self.hist + other.hist)
        assert self.vmax is not None and other.vmax is not None
        return MedianHist(self.hist + other.hist, np.minimum(self.vmin, other.vmin),
                          np.maximum(self.vmax, other.vmax))


def median_hist(X: np.ndarray, labels: np.ndarray, weights: np.ndarray | None, k: int,
                grid: MedianGrid, shift: int, prefix: np.ndarray | None = None,
                track: bool = False) -> MedianHist:
    """Histogram of one block's levels per (cluster, feature): each row's weight goes
    to ``hist[label, feature, (level >> shift) & 15]``, for the values whose level has
    ``level >> (shift + 4) == prefix[label, feature]`` (all values if ``prefix`` is
    None). Rows of weight 0 are left out (they never hold a median). ``track``: also
    the smallest and largest such value per bin.

    Parameters
    ----------
    X : (m, d) rows as the grid takes them (raw uint8 for the raw grid)
    labels : (m,) int cluster of each row
    weights : (m,) or None
    prefix : (k, d) int64 or None

    Examples
    --------
    >>> g = MedianGrid(256, scale=1.0)                    # raw levels 0..255
    >>> X = np.array([[1], [17], [18], [200]], np.uint8)
    >>> h = median_hist(X, np.array([0, 0, 0, 1]), None, 2, g, shift=4)
    >>> h.hist[0, 0, :2].tolist(), float(h.hist[1, 0, 12])   # high digits 0, 1, 1; 12
    ([1.0, 2.0], 1.0)
    >>> median_hist(X, np.array([0, 0, 0, 1]), None, 2, g, shift=0,
    ...             prefix=np.array([[1], [12]])).hist[0, 0, :3].tolist()
    [0.0, 1.0, 1.0]
    """
    X = X.reshape(X.shape[0], -1)
    m, d = X.shape
    hist = np.zeros((k, d, BINS))
    vmin = vmax = None
    if track:
        vmin = np.full((k, d, BINS), np.inf, X.dtype)
        vmax = np.full((k, d, BINS), -np.inf, X.dtype)
    labels = np.asarray(labels)
    w = None if weights is None else np.asarray(weights, np.float64)
    if compiled_kernels():
        empty_f = np.empty(0)
        _numba().median_hist(
            np.ascontiguousarray(X), grid.raw,
            empty_f if grid.lo is None else grid.lo, empty_f if grid.inv is None else grid.inv,
            int(grid.levels), np.ascontiguousarray(labels),
            empty_f if w is None else w, int(shift),
            np.empty((0, 0), np.int64) if prefix is None else np.ascontiguousarray(prefix,
                                                                                     np.int64),
            hist, np.empty((0, 0, 0), X.dtype) if vmin is None else vmin,
            np.empty((0, 0, 0), X.dtype) if vmax is None else vmax)
        return MedianHist(hist, vmin, vmax)
    keep = np.ones(m, bool) if w is None else w > 0
    order = np.argsort(labels, kind="stable")
    order = order[keep[order]]
    cuts = np.searchsorted(labels[order], np.arange(k + 1))
    base = np.arange(d) * BINS
    step = max(1, SUM_BLOCK // max(1, d // 64))
    for j in np.flatnonzero(np.diff(cuts)):
        rows = order[cuts[j]:cuts[j + 1]]
        flat = hist[j].reshape(-1)
        for s in range(0, rows.shape[0], step):
            r = rows[s:s + step]
            xb = X[r]
            lev = grid.level(xb)
            idx = base + ((lev >> shift) & (BINS - 1))
            wt = np.broadcast_to((np.ones(len(r)) if w is None else w[r])[:, None], idx.shape)
            if prefix is None:
                sel = np.ones(idx.shape, bool)
            else:
                sel = (lev >> (shift + DIGIT_BITS)) == prefix[j]
            flat += np.bincount(idx[sel], wt[sel], minlength=d * BINS)
            if vmin is not None and vmax is not None:
                np.minimum.at(vmin[j].reshape(-1), idx[sel], xb[sel])
                np.maximum.at(vmax[j].reshape(-1), idx[sel], xb[sel])
    return MedianHist(hist, vmin, vmax)


@dataclass
class MedianPartial:
    """What one block contributes to a k-medians iteration's first pass; added with
    ``+``: per-cluster weights, the weighted L1 objective against the assigning
    centres, the first digit's histograms, the rows farthest from their centres (for
    empty clusters) and, optionally, column moments (for the tolerance)."""

    counts: np.ndarray  # (k,) float64
    dist: float
    hist: np.ndarray  # (k, d, BINS) float64
    top: TopM
    moments: Moments | None = None
    n_rows: int = 0

    def __add__(self, other: MedianPartial) -> MedianPartial:
        mom = (None if self.moments is None or other.moments is None
               else self.moments + other.moments)
        return MedianPartial(self.counts + other.counts, self.dist + other.dist,
                             self.hist + other.hist, _merge_top(self.top, other.top), mom,
                             self.n_rows + other.n_rows)


def median_assign(
    X: np.ndarray, C: np.ndarray | L1Centres, weights: np.ndarray | None = None, *,
    grid: MedianGrid, offset: int = 0, n_top: int = 0, moments: bool = False,
    scale: float | None = None,
) -> tuple[MedianPartial, np.ndarray]:
    """The first pass of a k-medians iteration over one block: assign every row to
    its nearest centre in L1 distance and histogram the first digit of its levels.

    Parameters
    ----------
    X : (m, d) float rows, or raw uint8 rows with ``scale`` (then ``grid`` is raw)
    C : (k, d) centres
    weights : (m,) or None
    grid : the levels (:class:`MedianGrid`)
    offset : global index of row 0 (farthest rows)
    n_top : how many farthest rows (by L1 distance) to keep
    moments : also the column moments

    Returns
    -------
    (partial, labels): the block's :class:`MedianPartial` and its (m,) int32 labels

    Examples
    --------
    >>> X = np.array([[0, 0], [0, 2], [9, 9], [9, 7]], np.uint8)
    >>> p, lab = median_assign(X, np.array([[0., 1.], [9., 8.]]), grid=MedianGrid(256,
    ...                        scale=1.0), scale=1.0)
    >>> lab.tolist(), p.counts.tolist(), p.dist, float(p.hist[1, 0, 0])
    ([0, 0, 1, 1], [2.0, 2.0], 4.0, 2.0)
    """
    X = X.reshape(X.shape[0], -1)
    cen = L1Centres.of(C)
    labels, dist = l1_assign(X, cen, scale)
    w = None if weights is None else np.asarray(weights, np.float64)
    counts = np.bincount(labels, weights=w, minlength=cen.k).astype(np.float64)
    total = float(dist.sum() if w is None else dist @ w)
    hist = median_hist(X, labels, w, cen.k, grid, grid.shift(0)).hist
    w1 = np.ones(X.shape[0]) if w is None else w
    top = top_m(dist, n_top, X, labels, w1, offset)  # raw rows stay raw (their levels)
    mom = _moments(X, scale) if moments else None
    return MedianPartial(counts, total, hist, top, mom, X.shape[0]), labels


@dataclass
class MedianStep:
    """What a later median pass needs: the digit to count (``shift``), the level
    prefix chosen so far per (cluster, feature), whether to track the values' range
    (a float grid's last pass), the rows moved to empty clusters (global index -> new
    cluster) and, when the block's labels were not kept, the centres to recompute
    them."""

    shift: int
    prefix: np.ndarray  # (k, d) int64
    track: bool
    moved_index: np.ndarray  # (r,) int64
    moved_label: np.ndarray  # (r,) int32
    centres: L1Centres | None = None

    @property
    def nbytes(self) -> int:
        return int(self.prefix.nbytes + (0 if self.centres is None else self.centres.nbytes))


def median_refine(
    X: np.ndarray, weights: np.ndarray | None, step: MedianStep, *, grid: MedianGrid,
    labels: np.ndarray | None = None, offset: int = 0, scale: float | None = None,
) -> MedianHist:
    """A later pass of a k-medians iteration over one block: the histogram of the next
    digit of the levels that match the prefix chosen so far.

    ``labels``: the block's labels from the iteration's first pass (kept where the
    block is), or None to assign the rows again with ``step.centres`` (same labels);
    rows in ``step.moved_index`` count for their new cluster. Inputs are not modified.
    """
    X = X.reshape(X.shape[0], -1)
    if labels is None:
        assert step.centres is not None
        labels = l1_assign(X, step.centres, scale)[0]
    m = X.shape[0]
    sel = (step.moved_index >= offset) & (step.moved_index < offset + m)
    if sel.any():
        labels = np.array(labels)
        labels[step.moved_index[sel] - offset] = step.moved_label[sel]
    k = step.prefix.shape[0]
    return median_hist(X, labels, weights, k, grid, step.shift, step.prefix, step.track)


# --------------------------------------------------------------------------- bisecting
#
# BisectingKMeans: every row follows the tree from the root, at each split to the
# nearer of the two children's centres (squared distances in float64, row by row, so
# that a row's path does not depend on the block it is in), and the rows that reach a
# leaf being bisected take part in that leaf's 2-means. Leaves hold disjoint rows, so
# all the bisections of a round share each pass.

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
        if _bisect_compiled(X, scale):
            out = np.empty(X.shape[0], np.int64)
            _numba().tree_descend(np.ascontiguousarray(X),
                                  None if scale is None else float(scale), self.left, self.right,
                                  np.ascontiguousarray(self.centre, dtype=np.float64), out)
            return out
        rows: Any = _ScaledRows(X, scale) if scale is not None else X
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
    rows: Any = _ScaledRows(X, scale) if scale is not None else X
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
        top = [[_merge_top(p, q, self.cap) for p, q in zip(a, b, strict=True)]
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
    block's rows, or an accessor of them (:class:`_ScaledRows` for raw rows)."""
    return top_m(key, min(n, idx.shape[0]), _RowsAt(X, idx), labels, w[idx],
                 idx.astype(np.int64) + offset)


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


def _bisect_compiled(X: np.ndarray, scale: float | None) -> bool:
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
    rows: Any = _ScaledRows(X, scale) if scale is not None else X  # float rows, by index
    sums = np.zeros((a, r, 2, d))
    weight, sse = np.zeros((a, r, 2)), np.zeros((a, r, 2))
    count = np.zeros((a, r, 2), np.int64)
    top = [[TopM.empty(d, rows.dtype) for _ in range(r)] for _ in range(a)]
    slot = step.tree.slot[nodes]
    compiled = _bisect_compiled(X, scale)
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
                _numba().two_means_rows(
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


# --------------------------------------------------------------------------- silhouette


@dataclass
class Queries:
    """Rows whose Euclidean distances to every row of the data are summed per cluster
    (the silhouette's a(i) and b(i)), with their global row indices (sorted, distinct)."""

    rows: np.ndarray  # (m, d) float
    index: np.ndarray  # (m,) int64

    @property
    def nbytes(self) -> int:
        return int(self.rows.nbytes + self.index.nbytes)


@dataclass
class ClusterDistances:
    """Per-cluster sums of distances to the queries over one or more blocks; added with
    ``+`` (tables of different cluster counts are zero-padded)."""

    sums: np.ndarray  # (k, m) float64: sums[c, j] = sum over rows x of cluster c of |x - q_j|
    counts: np.ndarray  # (k,) int64 rows per cluster
    own: np.ndarray  # (m,) int64 cluster of each query (-1 while its row is not among these)

    def __add__(self, other: ClusterDistances) -> ClusterDistances:
        own = np.maximum(self.own, other.own)
        if self.sums.shape == other.sums.shape:
            return ClusterDistances(self.sums + other.sums, self.counts + other.counts, own)
        k = max(self.sums.shape[0], other.sums.shape[0])
        sums = np.zeros((k, self.sums.shape[1]))
        counts = np.zeros(k, dtype=np.int64)
        for part in (self, other):
            sums[: part.sums.shape[0]] += part.sums
            counts[: part.counts.shape[0]] += part.counts
        return ClusterDistances(sums, counts, own)


def cluster_distance_sums(X: np.ndarray, labels: np.ndarray, queries: Queries, *,
                          offset: int = 0) -> ClusterDistances:
    """Distances from every query to the rows of one block, summed per cluster.

    Parameters
    ----------
    X : (n, d) float rows of the block
    labels : (n,) their clusters, non-negative integers (validated here: the error
        names ``labels``)
    queries : (m, d) rows and their global indices; a query that is row ``offset + i``
        of the data is at distance exactly 0 from ``X[i]`` (as scikit-learn zeroes the
        diagonal)
    offset : global index of ``X[0]``

    Returns
    -------
    ClusterDistances with ``sums`` (max label + 1, m) float64, ``counts`` and ``own``
    (the label of each query that is a row of this block, else -1)

    Distances are computed in float64 (``|x|^2 + |q|^2 - 2 x.q``, clipped at 0, square
    root), in tiles of rows whose (tile, m) distance block stays under
    :data:`DIST_BLOCK_BYTES`, and summed per cluster by a sparse one-hot product.

    Examples
    --------
    >>> q = Queries(np.array([[0.0, 0.0]]), np.array([0]))
    >>> r = cluster_distance_sums(np.array([[0.0, 0.0], [3.0, 4.0], [6.0, 8.0]]),
    ...                           np.array([0, 1, 1]), q)
    >>> r.sums.tolist(), r.counts.tolist(), r.own.tolist()
    ([[0.0], [15.0]], [1, 2], [0])
    """
    codes = as_label_codes(labels, "labels")
    n, m = X.shape[0], queries.rows.shape[0]
    if codes.shape[0] != n:
        raise LabelError(f"labels must have one entry per row of X, got {codes.shape[0]} "
                         f"for {n} rows")
    k = int(codes.max()) + 1 if n else 0
    sums = np.zeros((k, m))
    counts = np.bincount(codes, minlength=k).astype(np.int64)
    # the queries that are rows of this block: their label, and their own distance is 0
    lo, hi = np.searchsorted(queries.index, [offset, offset + n])
    own_rows, own_q = queries.index[lo:hi] - offset, np.arange(lo, hi)
    own = np.full(m, -1, dtype=np.int64)
    own[own_q] = codes[own_rows]
    if n == 0 or m == 0:
        return ClusterDistances(sums, counts, own)
    Q = np.asarray(queries.rows, dtype=np.float64)
    qsq = np.einsum("ij,ij->i", Q, Q)
    step = max(1, DIST_BLOCK_BYTES // (8 * m))
    for s in range(0, n, step):
        x = np.asarray(X[s:s + step], dtype=np.float64)
        xsq = np.einsum("ij,ij->i", x, x)
        if not np.isfinite(xsq).all():
            raise NonFiniteRow(s + int(np.flatnonzero(~np.isfinite(xsq))[0]))
        D = x @ Q.T
        D *= -2
        D += xsq[:, None]
        D += qsq
        np.maximum(D, 0, out=D)
        np.sqrt(D, out=D)
        mine = (own_rows >= s) & (own_rows < s + x.shape[0])
        D[own_rows[mine] - s, own_q[mine]] = 0
        t = codes[s:s + x.shape[0]]
        sums += _onehot(t, k, np.ones(t.shape[0])) @ D
    return ClusterDistances(sums, counts, own)


@dataclass
class Gathered:
    """Rows picked by global index from one or more blocks, with the values of the
    vectors read alongside (labels); added with ``+`` (concatenated)."""

    index: np.ndarray  # (m,) int64
    rows: np.ndarray  # (m, d)
    values: dict[str, np.ndarray]  # name -> (m,)

    def __add__(self, other: Gathered) -> Gathered:
        return Gathered(np.concatenate([self.index, other.index]),
                        np.concatenate([self.rows, other.rows]),
                        {k: np.concatenate([v, other.values[k]]) for k, v in self.values.items()})

    def sorted(self) -> Gathered:
        order = np.argsort(self.index, kind="stable")
        return Gathered(self.index[order], self.rows[order],
                        {k: v[order] for k, v in self.values.items()})


def gather(X: np.ndarray, index: np.ndarray, *, offset: int = 0,
           **vectors: np.ndarray) -> Gathered:
    """The rows of one block whose global indices are in ``index`` (sorted), and the
    same entries of each of ``vectors`` (the block's slices of (n,) arrays).

    Examples
    --------
    >>> g = gather(np.arange(6.0).reshape(3, 2), np.array([1, 4, 9]), offset=3,
    ...            labels=np.array([7, 8, 9]))
    >>> g.index.tolist(), g.rows.tolist(), g.values["labels"].tolist()
    ([4], [[2.0, 3.0]], [8])
    """
    lo, hi = np.searchsorted(index, [offset, offset + X.shape[0]])
    local = np.asarray(index[lo:hi]) - offset
    return Gathered(np.asarray(index[lo:hi], dtype=np.int64), np.array(X[local]),
                    {k: np.asarray(v)[local] for k, v in vectors.items()})
