"""Compiled (numba) k-medians kernels: L1 distances and the per-digit histograms of
:mod:`daskmeans.kernels.medians`, which keeps the numpy reference that the tests
compare these against (the same bits: features added in the same order).
"""

from __future__ import annotations

import numpy as np

from .common_compiled import jit

#: rows whose distances to every centre are accumulated together: each centre column
#: of the transposed centres is then read once per this many rows (a few rows share
#: each read of a centre column; more gained nothing: scripts/benchmark_kernel.py).
L1_ROWS = 4


@jit
def l1_dist(X: np.ndarray, scale: float, raw: bool, ct: np.ndarray, D: np.ndarray) -> None:
    """``D[i, j] = sum_t |x_it - c_jt|`` in float64, the features added in order (the
    numpy reference :func:`daskmeans.kernels.medians.l1_distances` adds them in the same
    order, so both give the same bits); raw rows are ``float32(X) * scale``.

    ``ct``: (d, k) float64 transposed centres; ``D``: (m, k) output."""
    m, d = X.shape
    k = ct.shape[1]
    sc = np.float32(scale)
    for s in range(0, m, L1_ROWS):
        e = min(m, s + L1_ROWS)
        for i in range(s, e):
            for j in range(k):
                D[i, j] = 0.0
        for t in range(d):
            for i in range(s, e):
                if raw:
                    x = np.float64(np.float32(X[i, t]) * sc)
                else:
                    x = np.float64(X[i, t])
                for j in range(k):
                    D[i, j] += abs(x - ct[t, j])


@jit
def _level(x: float, raw: bool, lo: float, inv: float, n_levels: int) -> np.int64:
    """A value's level: a raw row's value itself, else ``clip(floor((x - lo) * inv), 0,
    n_levels - 1)`` (as :meth:`daskmeans.kernels.medians.MedianGrid.level`)."""
    if raw:
        return np.int64(x)
    u = (np.float64(x) - lo) * inv
    if u >= n_levels - 1:
        return np.int64(n_levels - 1)
    if u > 0:
        return np.int64(np.floor(u))
    return np.int64(0)


@jit
def median_hist(X: np.ndarray, raw: bool, lo: np.ndarray, inv: np.ndarray, n_levels: int,
                labels: np.ndarray, w: np.ndarray, shift: int, prefix: np.ndarray,
                hist: np.ndarray, vmin: np.ndarray, vmax: np.ndarray) -> None:
    """Add each row's weight into ``hist[label, feature, digit]`` (the digit of the
    value's level at ``shift``), for the values whose level's higher digits equal
    ``prefix[label, feature]`` (every value when ``prefix`` is empty); rows of weight 0
    are skipped. With ``vmin``/``vmax`` non-empty, also the smallest and largest value
    per bin. Levels: raw rows are their own level; float values
    ``clip(floor((x - lo) * inv), 0, n_levels - 1)`` (as
    :meth:`daskmeans.kernels.medians.MedianGrid.level`)."""
    m, d = X.shape
    weighted = w.shape[0] > 0
    filtered = prefix.shape[0] > 0
    track = vmin.shape[0] > 0
    for i in range(m):
        wi = w[i] if weighted else 1.0
        if wi <= 0:
            continue
        j = labels[i]
        for t in range(d):
            lev = _level(X[i, t], raw, lo[t], inv[t], n_levels)
            if filtered and (lev >> (shift + 4)) != prefix[j, t]:
                continue
            b = (lev >> shift) & 15
            hist[j, t, b] += wi
            if track:
                v = X[i, t]
                if v < vmin[j, t, b]:
                    vmin[j, t, b] = v
                if v > vmax[j, t, b]:
                    vmax[j, t, b] = v


@jit
def median_hist_ahead(X: np.ndarray, raw: bool, lo: np.ndarray, inv: np.ndarray,
                      n_levels: int, labels: np.ndarray, w: np.ndarray, shift: int,
                      guess: np.ndarray, hist: np.ndarray) -> None:
    """:func:`median_hist` for the three prefixes ``guess - 1``, ``guess`` and
    ``guess + 1`` at once: ``hist[label, feature, c, digit]`` counts the values whose
    level's higher digits equal ``guess[label, feature] - 1 + c`` (the same additions,
    in the same order, as three calls of :func:`median_hist`)."""
    m, d = X.shape
    weighted = w.shape[0] > 0
    for i in range(m):
        wi = w[i] if weighted else 1.0
        if wi <= 0:
            continue
        j = labels[i]
        for t in range(d):
            lev = _level(X[i, t], raw, lo[t], inv[t], n_levels)
            c = (lev >> (shift + 4)) - guess[j, t] + 1
            if 0 <= c <= 2:
                hist[j, t, c, (lev >> shift) & 15] += wi


def warm_up() -> None:
    """Compile (or load from the on-disk cache) this module's specialisations: float32,
    float64 and raw uint8 rows, weighted or not, with and without a prefix."""
    for rows in (np.zeros((3, 2), np.float32), np.zeros((3, 2)), np.zeros((3, 2), np.uint8)):
        raw = rows.dtype == np.uint8
        l1_dist(rows, 1.0, raw, np.zeros((2, 2)), np.empty((3, 2)))
        for w in (np.empty(0), np.ones(3)):
            for prefix, track in ((np.empty((0, 0), np.int64), False),
                                  (np.zeros((2, 2), np.int64), not raw)):
                vm = np.full((2, 2, 16) if track else (0, 0, 0), 0, rows.dtype)
                median_hist(rows, raw, np.zeros(2), np.ones(2), 256, np.zeros(3, np.int32),
                            w, 0, prefix, np.zeros((2, 2, 16)), vm, vm.copy())
            median_hist_ahead(rows, raw, np.zeros(2), np.ones(2), 256, np.zeros(3, np.int32),
                              w, 0, np.zeros((2, 2), np.int64), np.zeros((2, 2, 3, 16)))
