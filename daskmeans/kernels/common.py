"""Kernels every algorithm shares: distances and the nearest centre (with the float64
near-tie rule), row norms, raw rows and their scaling, per-cluster sums, the farthest
rows and weighted samples (mergeable across blocks), column moments, SSE helpers, and
the switch between the compiled and the numpy kernels (:func:`compiled_kernels`).

A block of rows is a dense (m, d) array, or a CSR matrix (``scipy.sparse``
``csr_matrix`` or ``csr_array``) of m rows: :func:`is_sparse` tells them apart, and
:class:`SparseRows` reads a CSR block's rows as dense ones where a few rows are
needed whole (the farthest rows, samples, new centres). The sparse kernels are in
:mod:`daskmeans.kernels.sparse`.
"""

from __future__ import annotations

import functools
import importlib
import os
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from ..pixels import scale_rows

#: rows per block inside a kernel: the block stays in cache while it is assigned and
#: summed, bounds the (rows, k) distance block, and keeps float32 partial sums short
#: before they are added into float64 (scripts/benchmark.py compares block sizes).
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


def scratch(name: str, size: int, dtype: np.dtype) -> np.ndarray:
    """This thread's reusable 1-D buffer ``name`` of at least ``size`` items of ``dtype``
    (grown when too small; see :meth:`Centres.buffer` for why buffers are reused)."""
    buf = getattr(_SCRATCH, name, None)
    if buf is None or buf.dtype != dtype or buf.size < size:
        buf = np.empty(max(size, 1), dtype=dtype)
        setattr(_SCRATCH, name, buf)
    return buf[:size]


#: a temporary the size of the centres is taken from a reused per-thread buffer up to
#: this many bytes (a buffer kept for the life of a thread must stay small; larger
#: temporaries are allocated as usual)
CENTRES_SCRATCH_MAX_BYTES = 32 << 20


def centres_temporary(name: str, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """An uninitialised C-contiguous array of ``shape``: this thread's reusable buffer
    ``name`` (see :func:`scratch`) up to :data:`CENTRES_SCRATCH_MAX_BYTES`, else a new
    array. For a temporary made every pass and reduced at once (a fresh array of the
    centres' size costs page faults every time); valid until the thread's next call
    with the same ``name``."""
    dtype = np.dtype(dtype)
    size = int(np.prod(shape))
    if size * dtype.itemsize <= CENTRES_SCRATCH_MAX_BYTES:
        return scratch(name, size, dtype).reshape(shape)
    return np.empty(shape, dtype)


def squares(A: np.ndarray) -> np.ndarray:
    """``A * A`` (the same values and layout) for a reduction that follows at once, in
    a reused buffer when ``A`` is C-contiguous (:func:`centres_temporary`)."""
    if not A.flags.c_contiguous:
        return A * A
    return np.multiply(A, A, out=centres_temporary("squares", A.shape, A.dtype))


def sse_of_sums(sums: np.ndarray, counts: np.ndarray, sumsq: np.ndarray,
                C: np.ndarray, csq: np.ndarray | None = None) -> float:
    """``sum_i w_i |x_i - c_(i)|^2`` from each cluster's weighted sums: ``sum_j Q_j - 2
    c_j . S_j + N_j |c_j|^2`` in float64 (``sums`` (k, d) ``S``, ``counts`` ``N`` and
    ``sumsq`` ``Q = sum w |x|^2`` (k,), ``C`` (k, d) the centres the rows went to,
    ``csq`` their ``(C * C).sum(1)`` if known: :meth:`Centres.row_sq64`), clipped at
    0. Exact to float64 rounding of the sums, where adding float32 distances ``|x|^2 -
    2 x.c + |c|^2`` from the GEMM is off by float32 rounding, most on tight clusters.

    >>> sse_of_sums(np.array([[0., 2.]]), np.array([2.]), np.array([4.]), np.array([[0., 1.]]))
    2.0
    """
    C = np.asarray(C, np.float64)
    if csq is None:
        csq = squares(C).sum(1)
    return max(float(sumsq.sum() - 2 * np.einsum("ij,ij->", C, sums) + counts @ csq), 0.0)


def weighted_sse(sqdist: np.ndarray, weights: np.ndarray | None) -> float:
    """Sum of squared distances (weighted if ``weights``), accumulated in float64."""
    sq64 = sqdist.astype(np.float64)
    return float(sq64.sum() if weights is None else sq64 @ np.asarray(weights, np.float64))


def block_rows(k: int, itemsize: int) -> int:
    return max(1, min(ROW_BLOCK, DIST_BLOCK_BYTES // max(1, k * itemsize)))


def padded_k(k: int) -> int:
    """Columns of the distance GEMM for ``k`` centres.

    OpenBLAS's sgemm is slow for narrow outputs that are not 4, 8 or 16 wide: a product
    against 7 columns takes as long as against 16, so 3 columns are padded to 4, 5-7 to
    8 and 9-15 to 16 (dummy centres at +inf), which is faster or equal with both its
    AVX-512 and AVX2 kernels. Wider outputs gain nothing.
    """
    return 1 << (k - 1).bit_length() if 2 < k < 16 else k


class Centres:
    """Centres prepared for the distance GEMM: ``-2 C^T`` (contiguous) and ``|C|^2``.

    Both may carry extra dummy centres (zero columns, ``|C|^2 = inf``) that no row is
    ever assigned to: see :func:`padded_k`. Passes prepare them once and share them
    with every chunk task (kernels accept either an array or a ``Centres``). Centres
    already C-contiguous in the prepared dtype are kept, not copied (:meth:`centres`
    returns them): they must not be modified while the ``Centres`` is in use.
    """

    #: what a pass computes once and every task reuses, left out of the pickled
    #: object (a cluster's worker recomputes them from ``m2t``)
    _CACHED = ("_centres", "_centres64", "_csq64", "_row_sq64")

    def __init__(self, C: np.ndarray, dtype: np.dtype) -> None:
        C = np.asarray(C)
        self.dtype = np.dtype(dtype)
        self.k, d = C.shape
        kp = padded_k(self.k)
        self.m2t = (np.empty if kp == self.k else np.zeros)((d, kp), dtype=self.dtype)
        self.sq = np.full(kp, np.inf, dtype=self.dtype)
        Cd = C.astype(self.dtype, copy=False)
        self.sq[: self.k] = np.einsum("ij,ij->i", Cd, Cd)
        self._centres: np.ndarray | None
        if C.dtype == self.dtype and C.flags.c_contiguous and np.isfinite(self.sq[: self.k]).all():
            # C is already what every kernel of the pass reads back: ``m2t.T / -2`` gives
            # its values exactly (doubling and halving are exact while |c|^2 is finite),
            # so only m2t is made, in one strided pass, and no (k, d) array is allocated
            # (a fresh one costs page faults in every pass)
            np.multiply(C.T, -2, out=self.m2t[:, : self.k])
            self._centres = C
        else:
            # -2 C in the prepared dtype, row-major: transposed once into m2t, then
            # halved into the centres every kernel of the pass reads back (the values of
            # ``m2t.T / -2``, without a strided copy per task)
            m2 = np.empty((self.k, d), dtype=self.dtype)
            np.multiply(C, -2, out=m2, casting="unsafe")
            self.m2t[:, : self.k] = m2.T
            np.divide(m2, -2, out=m2)
            self._centres = m2
        self._centres64: np.ndarray | None = None
        self._csq64: np.ndarray | None = None
        self._row_sq64: np.ndarray | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in self._CACHED}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        for name in self._CACHED:
            setattr(self, name, None)

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
        """The (k, d) centres back (in the prepared dtype), contiguous, not to be modified:
        made once per set of centres, shared by every task of a pass."""
        if self._centres is None:
            C = np.ascontiguousarray(self.m2t[:, : self.k].T / -2)
            self._centres = C
        return self._centres

    def centres64(self) -> np.ndarray:
        """:meth:`centres` in float64 (not to be modified), made once."""
        if self._centres64 is None:
            C = self.centres()
            if C.dtype != np.float64:
                C = C.astype(np.float64)
            self._centres64 = C
        return self._centres64

    def row_sq64(self) -> np.ndarray:
        """(k,) ``(C * C).sum(1)`` of :meth:`centres64` (what :func:`sse_of_sums`
        computes from the centres), made once."""
        if self._row_sq64 is None:
            C = self.centres64()
            self._row_sq64 = squares(C).sum(1)
        return self._row_sq64

    def csq64(self) -> np.ndarray:
        """(kp,) float64 ``|c|^2`` of the centres, exact from ``c = -m2t / 2`` in
        float64, inf for the padding centres (the sparse kernels' near-tie rule), made
        once."""
        if self._csq64 is None:
            if self.dtype == np.float64:
                C = self.centres()  # m2t / -2: the same values, no strided copy
            else:
                C = self.m2t[:, : self.k].T.astype(np.float64) * -0.5
            out = np.full(self.m2t.shape[1], np.inf)
            out[: self.k] = np.einsum("ij,ij->i", C, C)
            self._csq64 = out
        return self._csq64

    def buffer(self, n: int, itemsize: int) -> tuple[int, np.ndarray]:
        """(rows per block, distance block) for ``n`` rows.

        The block is reused per thread: a fresh multi-MB temporary per chunk task costs
        page faults, and inside dask workers ``MALLOC_TRIM_THRESHOLD_`` makes every
        large temporary a fresh mmap.
        """
        kp = self.m2t.shape[1]
        step = block_rows(kp, itemsize)
        rows = min(n, step)
        return step, scratch("dist", rows * kp, self.dtype).reshape(rows, kp)

    def nearest(
        self, xb: np.ndarray, buf: np.ndarray | None = None, xsq: np.ndarray | None = None,
        runs: int = 1,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(labels, squared distance clipped at 0, |x|^2) of a block.

        ``buf``: a reusable (rows >= len(xb), k) array for the distance block. Reusing
        it matters inside dask workers, where ``MALLOC_TRIM_THRESHOLD_`` makes every
        large temporary a fresh mmap.
        ``xsq``: the rows' ``|x|^2`` if already known (computed here otherwise).
        ``runs``: the centres are that many sets of ``k / runs`` stacked (independent
        fits, see :func:`daskmeans.kernels.lloyd.lloyd_runs`): labels and distances are
        then (rows, runs), the
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
#: few ulps of the largest term). The worst-case bound, ``4 d eps``, is far wider at
#: hundreds of features and would send most rows of data away from the origin to the
#: float64 path; this one keeps such data at GEMM speed. Paths agree wherever their
#: roundings differ by less than the window.
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
    :func:`daskmeans.kernels.common_compiled.tie_window` and ``near_tie`` are this rule.

    Examples
    --------
    >>> cen = Centres(np.array([[0.0], [2.0]]), np.dtype(np.float32))
    >>> x = np.array([[1.0]], np.float32)               # exactly half way: the first
    >>> D = x @ cen.m2t[:, :2] + cen.sq[:2]
    >>> lab, sq = np.array([0]), D[:, 0].astype(np.float64)
    >>> settle_near_ties(x, cen, D, lab, sq, np.array([1.0]), 0); lab.tolist()
    [0]
    """
    rows, best, win = near_tie_rows(cen, D, lab, xsq, j0)
    if rows.shape[0] == 0:
        return
    C = cen.m2t[:, j0:j0 + D.shape[1]].T.astype(np.float64) * -0.5
    for i in rows:
        js = np.flatnonzero(D[i] <= best[i] + win[i])
        e = ((xb[i].astype(np.float64)[None, :] - C[js]) ** 2).sum(1)
        b = int(np.argmin(e))
        lab[i] = j0 + js[b]
        sq[i] = e[b] - float(xsq[i])


def near_tie_rows(cen: Centres, D: np.ndarray, lab: np.ndarray, xsq: np.ndarray, j0: int
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows, best, window) of :func:`settle_near_ties`: the rows of ``D`` with another
    centre within the near-tie window of their smallest value, every row's smallest
    value and its window (no rows for fewer than two centres). One rule for dense and
    CSR blocks (:func:`daskmeans.kernels.sparse.settle_near_ties`)."""
    if D.shape[0] == 0 or D.shape[1] < 2:
        return np.empty(0, np.intp), np.empty(0), np.empty(0)
    csq = cen.sq[j0:j0 + D.shape[1]]
    cmax = float(np.max(csq[np.isfinite(csq)], initial=0.0))
    best = np.take_along_axis(D, (lab - j0)[:, None], axis=1)[:, 0]
    win = cen.tie * (np.maximum(xsq, 0) + cmax)
    two = np.partition(D, 1, axis=1)[:, 1]
    return np.flatnonzero((two - best <= win) & np.isfinite(best)), best, win


class NonFiniteRow(ValueError):
    """A row's distance is NaN or infinite (NaN/inf in the row, or an overflow);
    ``row`` is its index in the block. The map-reduce layer names the global row."""

    def __init__(self, row: int) -> None:
        super().__init__(f"non-finite distance in row {row} of the block")
        self.row = row


@dataclass
class Rows:
    """Gathered rows (and weights) of one or more blocks, in row order; added with ``+``."""

    rows: Any  # (m, d), dense or CSR
    weights: np.ndarray | None  # (m,) float64

    def __add__(self, other: Rows) -> Rows:
        w = None if self.weights is None or other.weights is None else np.concatenate(
            [self.weights, other.weights])
        return Rows(stack_rows([self.rows, other.rows]), w)


def stack_rows(parts: list[Any]) -> Any:
    """Blocks of rows one after another: ``np.concatenate``, or one CSR matrix for CSR
    blocks (``scipy.sparse.vstack``)."""
    if parts and is_sparse(parts[0]):
        return sp.vstack(parts, format="csr")
    return np.concatenate(parts)


def row_norms_sq(X: np.ndarray, dtype: Any = None, *, scale: float | None = None
                 ) -> np.ndarray:
    """Squared L2 norm of every row, in ``dtype`` (default X's float dtype). With the
    compiled kernels they are squared and summed in float64 as the compiled Lloyd loop
    does, so that norms given in advance as float64 (``xsq`` of
    :func:`daskmeans.kernels.lloyd.lloyd_runs`) are
    the ones the loop would compute. ``scale``: X holds raw (m, d) values (uint8
    pixels) standing for ``float32(X) * scale``, squared without a float32 copy of X
    (holding a store's block would otherwise scale it once more just for its norms).
    A CSR block: :func:`sparse_row_norms_sq`."""
    if is_sparse(X):
        return sparse_row_norms_sq(X, dtype)
    if scale is not None:
        dtype = np.float32 if dtype is None else dtype  # the scaled rows' dtype
        if X.ndim == 2 and compiled_kernels():
            out = np.empty(X.shape[0])
            compiled = compiled_module("common")
            compiled.row_sq_raw(np.ascontiguousarray(X), scale, compiled.TILE, out)
            return out.astype(dtype, copy=False)
        X = np.multiply(X, np.float32(scale), dtype=np.float32)
    dtype = X.dtype if dtype is None else np.dtype(dtype)
    if X.ndim == 2 and X.dtype in (np.float32, np.float64) and compiled_kernels():
        out = np.empty(X.shape[0], dtype=dtype)
        compiled_module("common").row_sq(np.ascontiguousarray(X), out)
        return out
    if dtype == np.float64:
        X = X.astype(np.float64)
    return np.einsum("ij,ij->i", X, X).astype(dtype, copy=False)


def normalize_rows(X: Any) -> Any:
    """Rows scaled to unit L2 norm (zero rows stay zero); a new array (a new CSR
    matrix of the same kind for CSR rows)."""
    norms = np.sqrt(row_norms_sq(X))
    norms[norms == 0] = 1
    if is_sparse(X):
        out = X.copy()
        out.data /= np.repeat(norms.astype(X.dtype, copy=False), np.diff(X.indptr))
        return out
    return X / norms[:, None].astype(X.dtype, copy=False)


def is_sparse(X: Any) -> bool:
    """True for a block of CSR rows (any ``scipy.sparse`` matrix or array): the one
    test that sends a block to the kernels of :mod:`daskmeans.kernels.sparse`."""
    return bool(sp.issparse(X))


def sparse_row_norms_sq(X: Any, dtype: Any = None) -> np.ndarray:
    """``|x|^2`` of every row of a CSR block, squared and summed in float64 in the
    order of the stored values, returned in ``dtype`` (default X's)."""
    dtype = X.dtype if dtype is None else np.dtype(dtype)
    if compiled_kernels():
        out = np.empty(X.shape[0])
        compiled_module("sparse").row_sq(np.ascontiguousarray(X.data),
                                         np.ascontiguousarray(X.indptr), out)
        return out.astype(dtype, copy=False)
    v = X.data.astype(np.float64)
    rows = np.repeat(np.arange(X.shape[0]), np.diff(X.indptr))
    return np.bincount(rows, weights=v * v, minlength=X.shape[0]).astype(dtype, copy=False)


def dense(X: Any) -> np.ndarray:
    """A block's rows as a dense array (a CSR block densified: for a few rows only)."""
    return X.toarray() if is_sparse(X) else np.asarray(X)


class SparseRows:
    """Row access (``[i]``, ``[idx]``, ``shape``, ``dtype``) to a CSR block as dense
    rows: ``[i]`` is a (d,) row, ``[idx]`` an (m, d) array. For the few rows a kernel
    needs whole (the farthest rows, samples, candidate centres), never a whole block."""

    def __init__(self, X: Any) -> None:
        self.X, self.shape, self.dtype = X, X.shape, X.dtype

    def __getitem__(self, idx: Any) -> np.ndarray:
        if np.ndim(idx) == 0:
            return self.X[[int(idx)]].toarray()[0]
        idx = np.asarray(idx)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        return self.X[idx].toarray()


def row_access(X: Any) -> Any:
    """``X`` itself (dense rows), or :class:`SparseRows` of a CSR block: what
    ``[idx]`` gives dense rows of."""
    return SparseRows(X) if is_sparse(X) else X


class RowsAt:
    """Row access to the rows ``idx`` of ``X`` (an array or an accessor) without
    taking them: ``[j]`` is ``X[idx[j]]``."""

    def __init__(self, X: Any, idx: np.ndarray) -> None:
        self.X, self.idx = X, idx
        self.shape, self.dtype = (len(idx), X.shape[1]), X.dtype

    def __getitem__(self, j: Any) -> Any:
        return self.X[self.idx[j]]


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
    scaled = None if scale is None else scratch("scaled", min(n, step) * X.shape[1], dtype)
    for s in range(0, n, step):
        xb = X[s : s + step]
        if scaled is not None:
            xb = np.multiply(xb, np.float32(scale), dtype=np.float32,
                             out=scaled[: xb.size].reshape(xb.shape))
        labels[s : s + step], _, _ = cen.nearest(xb, buf)
    return labels


#: a squared distance within this many eps of ``|x|^2 + |c|^2`` is within the GEMM
#: expansion's rounding: :func:`distances` recomputes it from the differences
NEAR_EPS = 16


def winner_sqdist(X: np.ndarray, C: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(n,) float64 ``|X[i] - C[labels[i]]|^2``, the differences squared and summed in
    float64 (``C`` float64): each row's distance to its centre without the GEMM
    expansion's rounding (float32 cancellation, worst on tight clusters), so
    that ``score`` and a fit's ``inertia_`` agree.

    >>> winner_sqdist(np.array([[3., 4.]], np.float32), np.zeros((1, 2)), np.array([0]))
    array([25.])
    """
    out = np.empty(X.shape[0])
    if X.ndim == 2 and X.dtype in (np.float32, np.float64) and compiled_kernels():
        compiled_module("common").winner_sq(np.ascontiguousarray(X),
                                            np.ascontiguousarray(C, np.float64),
                                            np.ascontiguousarray(labels, np.int32), out)
        return out
    for s in range(0, X.shape[0], SUM_BLOCK):  # no (n, d) float64 temporary
        diff = X[s : s + SUM_BLOCK].astype(np.float64) - np.asarray(C, np.float64)[
            labels[s : s + SUM_BLOCK]]
        out[s : s + SUM_BLOCK] = np.einsum("ij,ij->i", diff, diff)
    return out


def distances(X: np.ndarray, C: np.ndarray | Centres) -> np.ndarray:
    """(n, k) Euclidean (not squared) distances, X's dtype.

    The GEMM expansion ``|x|^2 + |c|^2 - 2 x.c`` loses a small distance to rounding
    (a row on its centre would be a few ulps of its norm away, not 0), so distances
    within that rounding are recomputed from the differences in float64.

    >>> distances(np.array([[0.1, 0.7], [3.0, 4.0]]), np.array([[0.1, 0.7]]))[:, 0]
    array([0.        , 4.39317653])
    """
    cen = Centres.of(C, X.dtype)
    xsq = row_norms_sq(X)
    D = X @ cen.m2t[:, : cen.k]
    D += cen.sq[: cen.k]
    D += xsq[:, None]
    near = np.nonzero(D <= NEAR_EPS * np.finfo(D.dtype).eps * (xsq[:, None] + cen.sq[: cen.k]))
    if near[0].size:
        diff = X[near[0]].astype(np.float64) - cen.centres()[near[1]].astype(np.float64)
        D[near] = np.einsum("ij,ij->i", diff, diff)
    np.maximum(D, 0, out=D)
    return np.sqrt(D, out=D)


def onehot(labels: np.ndarray, k: int, values: np.ndarray, runs: int = 1) -> sp.csc_matrix:
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
    :data:`SUM_BLOCK` rows, accumulated across blocks in float64: faster than the CSR
    product, than sort + reduceat and than a float64 product (which must copy X to
    float64). ``labels`` may be (n, runs): every row then counts
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
        out += onehot(lab.ravel(), k, vals, runs) @ X[s : s + SUM_BLOCK]
    return out


@dataclass
class TopM:
    """The ``m`` rows farthest from their centres, with what relocation needs."""

    sqdist: np.ndarray  # (m,) float64, descending
    index: np.ndarray  # (m,) int64 global row index (ties: smaller index first)
    rows: Any  # (m, d): dense, or CSR for a sparse Lloyd pass (see lloyd_runs)
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
        order = top_order(self.sqdist, self.index, m)
        return TopM(
            self.sqdist[order], self.index[order], self.rows[order], self.labels[order],
            self.weights[order], m,
        )


def top_order(sqdist: np.ndarray, index: np.ndarray, m: int) -> np.ndarray:
    """Positions of the ``m`` largest ``sqdist``, descending, ties to the smaller
    ``index``: the order :meth:`TopM.select` keeps (found before any row is copied)."""
    return np.lexsort((index, -sqdist))[:m]


def row_index(offset: int | np.ndarray, idx: np.ndarray) -> np.ndarray:
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
        return top_m(sqdist[keep], m, RowsAt(X, keep), labels[keep], weights[keep],
                     row_index(offset, keep))
    n = sqdist.shape[0]
    if min(m, n) == 0:
        return TopM.empty(X.shape[1], X.dtype, m)
    idx = np.arange(n) if m >= n else np.argpartition(sqdist, n - m)[n - m :]
    # argpartition keeps all rows > the m-th value but is arbitrary among equal values
    # at the boundary: pull every row equal to the threshold and let select() decide.
    thr = sqdist[idx].min()
    idx = np.union1d(idx, np.flatnonzero(sqdist == thr)) if m < n else idx
    gidx = row_index(offset, idx).astype(np.int64)
    sq = sqdist[idx].astype(np.float64)
    order = top_order(sq, gidx, m)  # the rows taken once, the kept ones only
    idx = idx[order]
    return TopM(sq[order], gidx[order], X[idx], labels[idx],
                weights[idx].astype(np.float64), m)


def merge_top(a: TopM, b: TopM, m: int | None = None) -> TopM:
    """The ``m`` farthest rows of both (ties: the smaller index); by default as many as
    either was asked for (``cap``), or all of them when neither records what it was
    asked for. A block smaller than its ``cap`` holds all its rows, so the merge keeps
    ``min(cap, rows of both)``: the farthest rows of the union, whatever the blocks.

    >>> a = top_m(np.array([1.0, 4.0]), 3, np.zeros((2, 1)), np.zeros(2, np.int32),
    ...           np.ones(2), 0)                       # a block of 2 rows, 3 asked for
    >>> b = top_m(np.array([9.0, 0.5]), 3, np.zeros((2, 1)), np.zeros(2, np.int32),
    ...           np.ones(2), 2)
    >>> merge_top(a, b).sqdist.tolist(), merge_top(a, b).index.tolist()
    ([9.0, 4.0, 1.0], [2, 1, 0])
    """
    if m is None:
        m = max(a.cap, b.cap) or len(a.sqdist) + len(b.sqdist)
    sqdist = np.concatenate([a.sqdist, b.sqdist])
    index = np.concatenate([a.index, b.index])
    order = top_order(sqdist, index, m)
    na = len(a.sqdist)
    if is_sparse(a.rows) or is_sparse(b.rows):  # CSR rows (a sparse Lloyd pass's)
        rows: Any = sp.vstack([sp.csr_matrix(a.rows), sp.csr_matrix(b.rows)],
                              format="csr")[order]
        return TopM(sqdist[order], index[order], rows,
                    np.concatenate([a.labels, b.labels])[order],
                    np.concatenate([a.weights, b.weights])[order], m)
    from_a = order < na
    # the kept rows only, each from its side (no copy of both sides' rows first)
    rows = np.empty((len(order), *a.rows.shape[1:]), dtype=np.result_type(a.rows, b.rows))
    rows[from_a] = a.rows[order[from_a]]
    rows[~from_a] = b.rows[order[~from_a] - na]
    return TopM(sqdist[order], index[order], rows,
                np.concatenate([a.labels, b.labels])[order],
                np.concatenate([a.weights, b.weights])[order], m)


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




def scaled_block(raw: np.ndarray, scale: float) -> np.ndarray:
    """Scale a block of raw rows into this thread's reusable float32 buffer."""
    n, d = raw.shape
    return scale_rows(raw, scale, scratch("scaled", n * d, np.dtype(np.float32)).reshape(n, d))


class ScaledRows:
    """Row access (``[idx]``, ``shape``, ``dtype``) to raw rows as scaled float32."""

    def __init__(self, raw: np.ndarray, scale: float) -> None:
        self.raw, self.scale = raw, scale
        self.shape, self.dtype = raw.shape, np.dtype(np.float32)

    def __getitem__(self, idx: np.ndarray) -> np.ndarray:
        return scale_rows(self.raw[idx], self.scale)




def rows_and_centres(X: np.ndarray, C: np.ndarray | Centres, scale: float | None
                      ) -> tuple[np.ndarray, Centres]:
    """A block as (m, d) rows (raw rows with ``scale`` flattened: they are float32
    once scaled) and the centres prepared for their dtype."""
    if scale is not None:
        X = X.reshape(X.shape[0], -1)
    return X, Centres.of(C, np.dtype(np.float32) if scale is not None else X.dtype)




def column_moments(X: np.ndarray, scale: float | None) -> Moments:
    """Column moments of the rows: compiled, one tile at a time
    (:func:`daskmeans.kernels.common_compiled.column_moments`, faster than numpy's
    float64 mean and var), else numpy :data:`SUM_BLOCK` rows at a time (raw rows scaled
    block by block): no float64 copy of the whole block (a fresh temporary of that size
    costs page faults)."""
    if compiled_kernels() and X.shape[0] and (scale is not None or X.dtype.kind == "f"):
        mean, m2 = np.empty(X.shape[1]), np.empty(X.shape[1])
        compiled_module("common").column_moments(
            np.ascontiguousarray(X), 1.0 if scale is None else scale, scale is not None,
            mean, m2)
        return Moments(float(X.shape[0]), mean, m2)
    mom = Moments.of(np.empty((0, X.shape[1]), np.float32))
    for s in range(0, X.shape[0], SUM_BLOCK):
        xs = X[s : s + SUM_BLOCK]
        mom = mom + Moments.of(scaled_block(xs, scale) if scale is not None else xs)
    return mom


def compiled_kernels() -> bool:
    """True when the compiled (numba) kernels run: numba is installed and
    ``DASKMEANS_KERNELS`` is not ``numpy`` (the reference)."""
    return (os.environ.get("DASKMEANS_KERNELS", "numba") != "numpy"
            and compiled_module("common") is not None)


@functools.cache
def compiled_module(name: str) -> Any:
    """The compiled kernels of module ``name`` (``"lloyd"``:
    :mod:`daskmeans.kernels.lloyd_compiled`), imported on first use (numba with it), or
    None when numba is missing (the numpy kernels then do everything)."""
    try:
        return importlib.import_module(f"{__package__}.{name}_compiled")
    except ImportError:
        return None


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
