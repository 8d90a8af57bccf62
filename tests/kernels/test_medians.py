"""k-medians kernels: L1 assignment and the medians' histograms, by hand, against brute
force, and compiled against the numpy reference bit for bit."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from daskmeans.kernels import common, medians


@pytest.mark.usefixtures("both_kernels")
def test_l1_kernels_hand_computed() -> None:
    """L1 assignment (ties to the lower index), then one cluster's medians digit by
    digit: values 3, 17, 18, 40 of weights 1, 1, 1, 1 have the lower median 17."""
    X = np.array([[0.0, 0.0], [3.0, 1.0], [2.0, 2.0]])
    C = np.array([[0.0, 1.0], [4.0, 1.0]])
    labels, dist = medians.l1_assign(X, C)
    assert labels.tolist() == [0, 1, 0] and dist.tolist() == [1.0, 1.0, 3.0]  # row 2: tie
    np.testing.assert_array_equal(medians.l1_distances(X, C), [[1, 5], [3, 1], [3, 3]])
    U = np.array([[3], [17], [18], [40], [99]], np.uint8)
    grid = medians.MedianGrid(256, scale=1.0)
    part, lab = medians.median_assign(U, np.array([[20.0], [99.0]]), np.array([1, 1, 1, 1, 0.0]),
                                grid=grid, scale=1.0, n_top=1, offset=10)
    assert lab.tolist() == [0, 0, 0, 0, 1] and part.counts.tolist() == [4.0, 0.0]
    assert part.dist == 17 + 3 + 2 + 20  # the zero-weight row adds nothing
    assert part.hist[0, 0].tolist()[:3] == [1.0, 2.0, 1.0]  # high digits 0, 1, 1, 2
    assert part.top.index.tolist() == [13] and part.top.sqdist.tolist() == [20.0]
    # half the weight is 2: reached in high digit 1 (cumulative 3), 1 below it
    step = medians.MedianStep(0, np.array([[1], [0]]), False, np.empty(0, np.int64),
                        np.empty(0, np.int32))
    low = medians.median_refine(U, np.array([1, 1, 1, 1, 0.0]), step, grid=grid, labels=lab)
    assert np.flatnonzero(low.hist[0, 0]).tolist() == [1, 2]  # 17 and 18 (0x11, 0x12)
    # the float grid tracks the values of each bin; a moved row counts for its new cluster
    fgrid = medians.MedianGrid.of_range(np.array([0.0]), np.array([4096.0]))
    step = medians.MedianStep(0, np.ones((2, 1), np.int64), True, np.array([11]),
                        np.array([1], np.int32))  # levels 16-31; row 11 (17) to cluster 1
    h = medians.median_refine(U.astype(np.float64), None, step, grid=fgrid, labels=lab, offset=10)
    assert np.flatnonzero(h.hist[0, 0]).tolist() == [2]  # 18 (3, 40 not in 16-31)
    assert np.flatnonzero(h.hist[1, 0]).tolist() == [1]  # 17 (99 not in 16-31)
    assert h.vmin is not None and h.vmax is not None
    assert h.vmin[1, 0, 1] == h.vmax[1, 0, 1] == 17.0 and h.vmin[0, 0, 0] == np.inf


@pytest.mark.usefixtures("both_kernels")
@pytest.mark.parametrize("rows", ["float32", "float64", "uint8"])
def test_l1_distances_and_histograms_equal_brute_force(rows: str) -> None:
    """Against numpy brute force (L1 to float64 rounding, histograms exactly); the
    compiled and numpy kernels add features in the same order (same bits)."""
    rng = np.random.default_rng(0)
    U = rng.integers(0, 256, size=(300, 9), dtype=np.uint8)
    X = common.scale_rows(U, 1 / 255).astype(np.float32 if rows != "float64" else np.float64)
    data, scale = (U, 1 / 255) if rows == "uint8" else (X, None)
    C = X[rng.choice(300, 7, replace=False)] + 0.001
    D = medians.l1_distances(data, C, scale)
    np.testing.assert_allclose(D, np.abs(X[:, None].astype(np.float64) - C[None]).sum(-1),
                               rtol=1e-12)
    labels, dist = medians.l1_assign(data, C, scale)
    np.testing.assert_array_equal(labels, D.argmin(1))
    np.testing.assert_array_equal(dist, D.min(1))
    w = rng.uniform(0, 2, 300)
    w[::7] = 0
    grid = (medians.MedianGrid(256, scale=scale) if rows == "uint8"
            else medians.MedianGrid.of_range(X.min(0), X.max(0)))
    lev = grid.level(data)
    before = [a.copy() for a in (data, labels, w)]
    prefix = rng.integers(0, 16, size=(7, 9)) if rows != "uint8" else None
    shift = 4 if rows == "uint8" else 4 * (grid.digits - 2)
    h = medians.median_hist(data, labels, w, 7, grid, shift, prefix, track=rows != "uint8")
    want = np.zeros((7, 9, medians.BINS))
    lo = np.full((7, 9, medians.BINS), np.inf)
    for i, t in itertools.product(range(300), range(9)):
        j = labels[i]
        if w[i] > 0 and (prefix is None or lev[i, t] >> (shift + 4) == prefix[j, t]):
            b = (lev[i, t] >> shift) & 15
            want[j, t, b] += w[i]
            lo[j, t, b] = min(lo[j, t, b], X[i, t])
    np.testing.assert_allclose(h.hist, want, rtol=1e-12)
    if h.vmin is not None:
        np.testing.assert_array_equal(h.vmin, lo.astype(X.dtype))
    for a, b in zip(before, (data, labels, w), strict=True):
        np.testing.assert_array_equal(a, b)  # inputs untouched


@pytest.mark.parametrize("rows", ["float32", "uint8"])
def test_compiled_l1_and_histograms_equal_numpy_reference_bit_for_bit(
    rows: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """L1 distances add the features in the same order in both (same bits, so the
    same labels even on exact ties); histograms and tracked values are equal."""
    rng = np.random.default_rng(4)
    U = rng.integers(0, 256, size=(203, 11), dtype=np.uint8)
    X = common.scale_rows(U, 1 / 255)
    data, scale = (U, 1 / 255) if rows == "uint8" else (X, None)
    C = X[rng.choice(203, 9, replace=False)]
    grid = (medians.MedianGrid(256, scale=scale) if rows == "uint8"
            else medians.MedianGrid.of_range(X.min(0), X.max(0)))
    w = rng.integers(0, 3, 203).astype(np.float64)
    out = []
    for kind in ("numba", "numpy"):
        monkeypatch.setenv("DASKMEANS_KERNELS", kind)
        part, labels = medians.median_assign(data, C, w, grid=grid, scale=scale, n_top=5)
        h = medians.median_hist(data, labels, w, 9, grid, 0, np.zeros((9, 11), np.int64),
                          track=rows != "uint8")
        out.append((medians.l1_distances(data, C, scale), labels, part, h))
    (D1, l1, p1, h1), (D2, l2, p2, h2) = out
    np.testing.assert_array_equal(D1, D2)
    np.testing.assert_array_equal(l1, l2)
    assert p1.dist == p2.dist
    np.testing.assert_array_equal(p1.hist, p2.hist)
    np.testing.assert_array_equal(p1.top.index, p2.top.index)
    np.testing.assert_array_equal(h1.hist, h2.hist)
    for a, b in ((h1.vmin, h2.vmin), (h1.vmax, h2.vmax)):
        assert (a is None) == (b is None)
        if a is not None:
            np.testing.assert_array_equal(a, b)


def test_value_range_and_grid_levels_by_hand() -> None:
    r = medians.value_range(np.array([[1.0, 5.0], [-2.0, 7.0]]))
    r = r + medians.value_range(np.array([[0.0, 9.0]]))
    assert r.lo.tolist() == [-2.0, 5.0] and r.hi.tolist() == [1.0, 9.0]
    empty = medians.value_range(np.empty((0, 2)))
    assert (empty + r).lo.tolist() == [-2.0, 5.0]
    with pytest.raises(common.NonFiniteRow) as e:
        medians.value_range(np.array([[0.0, 1.0], [np.inf, 0.0]]))
    assert e.value.row == 1
    grid = medians.MedianGrid.of_range(np.array([0.0, 3.0]), np.array([16.0, 3.0]), 16)
    assert grid.level(np.array([[0.0, 3.0], [15.99, 3.0], [16.0, 3.0]])).tolist() == [
        [0, 0], [15, 0], [15, 0]]  # clipped at the top; a constant feature: level 0
    assert (grid.digits, medians.MedianGrid(256, scale=1.0).digits) == (1, 2)


@pytest.mark.parametrize("raw", [True, False])
def test_histograms_counted_ahead_are_three_prefixed_histograms(
    raw: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second digit counted ahead for the first digits guess - 1, guess, guess + 1
    is, bit for bit, the histogram of each of those prefixes, compiled and in the
    numpy reference (the same for both)."""
    rng = np.random.default_rng(12)
    if raw:
        X, grid = rng.integers(0, 256, size=(500, 7), dtype=np.uint8), medians.MedianGrid(
            256, scale=1 / 255)
    else:
        X = rng.normal(size=(500, 7))
        grid = medians.MedianGrid.of_range(X.min(0), X.max(0))
    labels = rng.integers(0, 3, 500)
    w = rng.integers(0, 3, 500).astype(np.float64)
    shift = grid.shift(1)
    guess = rng.integers(-1, 17, size=(3, 7))
    got = {}
    for kernels in ("numba", "numpy"):
        monkeypatch.setenv("DASKMEANS_KERNELS", kernels)
        got[kernels] = medians.median_hist_ahead(X, labels, w, 3, grid, shift, guess)
        for c in range(3):
            want = medians.median_hist(X, labels, w, 3, grid, shift, guess - 1 + c).hist
            np.testing.assert_array_equal(got[kernels][:, :, c], want)
    np.testing.assert_array_equal(got["numba"], got["numpy"])
    assert got["numba"].sum() > 0
