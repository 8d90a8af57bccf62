"""The compiled (numba) fused Lloyd kernel against the numpy reference (the hand-computed
and brute-force kernel tests in test_kernels.py run under both)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from daskmeans import _kernels as K
from daskmeans import _kernels_numba as N


@pytest.mark.parametrize("rows", ["float32", "float64", "uint8"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("runs", [1, 3])
def test_compiled_lloyd_equals_numpy_reference(
    rows: str, weighted: bool, runs: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The compiled fused loop gives the reference's labels (counts, farthest rows) and
    its sums and SSE to float rounding; inputs are left untouched."""
    monkeypatch.setattr(N, "TILE", 64)  # several tiles, the last one short
    monkeypatch.setenv("DASKMEANS_KERNELS", "numba")
    rng = np.random.default_rng(3)
    U = rng.integers(0, 256, size=(700, 12), dtype=np.uint8)
    X = (U.astype(np.float32) * np.float32(1 / 255)).astype(rows if rows != "uint8" else
                                                           np.float32)
    data, kw = (U, {"scale": 1 / 255}) if rows == "uint8" else (X, {})
    C = np.concatenate([X[rng.choice(700, 10, replace=False)] for _ in range(runs)])
    w = rng.uniform(0, 2, 700) if weighted else None
    kw |= {"n_top": 4, "moments": True, "offset": 5, "runs": runs}
    before = (data.copy(), C.copy())
    got = K.lloyd_runs(data, C, w, **kw).parts
    monkeypatch.setenv("DASKMEANS_KERNELS", "numpy")
    want = K.lloyd_runs(data, C, w, **kw).parts
    tol = 1e-12 if rows == "float64" else 1e-5
    for a, b in zip(got, want, strict=True):
        np.testing.assert_array_equal(a.counts, b.counts)
        np.testing.assert_allclose(a.sums, b.sums, rtol=tol, atol=tol)
        assert a.sq == pytest.approx(b.sq, rel=tol)
        np.testing.assert_array_equal(a.top.index, b.top.index)
        np.testing.assert_array_equal(a.top.labels, b.top.labels)
        np.testing.assert_allclose(a.moments.var, b.moments.var, rtol=1e-12)
    np.testing.assert_array_equal(data, before[0])
    np.testing.assert_array_equal(C, before[1])




def test_column_moments_by_hand_and_against_a_long_double_reference() -> None:
    """Means and squared deviations per column: a hand-computed case, then 700 rows (three
    tiles, the last one short) of float32, float64 and raw uint8 against numpy in long
    double; the rows are left untouched."""
    mean, m2 = np.empty(2), np.empty(2)
    N.column_moments(np.array([[1.0, 2.0], [3.0, 2.0], [5.0, 8.0]]), 1.0, False, mean, m2)
    assert mean.tolist() == [3.0, 4.0] and m2.tolist() == [8.0, 24.0]
    rng = np.random.default_rng(5)
    U = rng.integers(0, 256, size=(700, 9), dtype=np.uint8)
    for rows, scale, raw in ((U.astype(np.float32) + 1000, 1.0, False),
                             (rng.normal(3, 2, (700, 9)), 1.0, False), (U, 1 / 255, True)):
        before = rows.copy()
        mean, m2 = np.empty(9), np.empty(9)
        N.column_moments(rows, scale, raw, mean, m2)
        x = (rows.astype(np.float32) * np.float32(scale) if raw else rows).astype(np.longdouble)
        np.testing.assert_allclose(mean, x.mean(0), rtol=1e-14)
        np.testing.assert_allclose(m2, ((x - x.mean(0)) ** 2).sum(0), rtol=1e-12)
        np.testing.assert_array_equal(rows, before)
        ref = K.Moments.of(x.astype(np.float64))
        np.testing.assert_allclose(K._moments(rows, scale if raw else None).var, ref.var,
                                   rtol=1e-12)

@pytest.mark.parametrize("rows", ["float32", "uint8"])
def test_compiled_l1_and_histograms_equal_numpy_reference_bit_for_bit(
    rows: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """L1 distances add the features in the same order in both (same bits, so the
    same labels even on exact ties); histograms and tracked values are equal."""
    rng = np.random.default_rng(4)
    U = rng.integers(0, 256, size=(203, 11), dtype=np.uint8)
    X = K.scale_rows(U, 1 / 255)
    data, scale = (U, 1 / 255) if rows == "uint8" else (X, None)
    C = X[rng.choice(203, 9, replace=False)]
    grid = (K.MedianGrid(256, scale=scale) if rows == "uint8"
            else K.MedianGrid.of_range(X.min(0), X.max(0)))
    w = rng.integers(0, 3, 203).astype(np.float64)
    out = []
    for kind in ("numba", "numpy"):
        monkeypatch.setenv("DASKMEANS_KERNELS", kind)
        part, labels = K.median_assign(data, C, w, grid=grid, scale=scale, n_top=5)
        h = K.median_hist(data, labels, w, 9, grid, 0, np.zeros((9, 11), np.int64),
                          track=rows != "uint8")
        out.append((K.l1_distances(data, C, scale), labels, part, h))
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


def test_compiled_functions_are_cached_on_disk(tmp_path: Path) -> None:
    """A second process loads the compiled kernels from numba's cache instead of
    compiling them again (first call: seconds; from the cache: a fraction of that)."""
    code = """
import time, numpy as np
from daskmeans import _kernels_numba as N
t0 = time.perf_counter()
N.lloyd_float(np.zeros((3, 2), np.float32), np.zeros((2, 2), np.float32), np.zeros(2, np.float32),
              np.empty(0), np.empty(0), 1, 2, N.TILE, np.empty((3, 1), np.int32),
              np.empty((3, 1), np.float32), np.zeros((2, 2)), np.zeros(2), np.zeros(2), 1e-6)
print(time.perf_counter() - t0)
"""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    first = float(subprocess.run([sys.executable, "-c", code], env=env, check=True,
                                 capture_output=True, text=True).stdout)
    again = float(subprocess.run([sys.executable, "-c", code], env=env, check=True,
                                 capture_output=True, text=True).stdout)
    assert any(tmp_path.rglob("*.nbi"))  # numba's cache index files
    assert again < first / 3, (first, again)


def test_warm_up_compiles_every_specialisation_the_estimators_use(mnist_store: Path) -> None:
    """After :func:`warm_up`, fits of every kind on float32, float64 and uint8-store rows
    (weighted or not) compile nothing more: the warm-up once compiled bounds for float64
    lower bounds after they became float32, and every first fit paid a compilation."""
    from daskmeans import BisectingKMeans, KMeans, MiniBatchKMeans, open_source

    N.warm_up()
    dispatchers = {n: f for n, f in vars(N).items() if hasattr(f, "signatures")}
    before = {n: set(f.signatures) for n, f in dispatchers.items()}
    rng = np.random.default_rng(0)
    X = rng.random((600, 16), dtype=np.float32)
    w = rng.uniform(0.5, 2, 600)
    store = open_source(mnist_store, "test")
    for rows in (X, X.astype(np.float64), store):
        weights = [None] if rows is store else [None, w]
        for sw in weights:
            KMeans(20, random_state=0, max_iter=3).fit(rows, sample_weight=sw)
            KMeans(20, random_state=0, max_iter=3, algorithm="lloyd").fit(rows, sample_weight=sw)
            KMeans(3, random_state=0, max_iter=2, metric="manhattan").fit(rows, sample_weight=sw)
            BisectingKMeans(3, random_state=0, max_iter=3).fit(rows, sample_weight=sw)
        MiniBatchKMeans(3, random_state=0, max_iter=1).fit(rows)
    new = {n: [str(s) for s in set(f.signatures) - before[n]] for n, f in dispatchers.items()}
    assert not {n: s for n, s in new.items() if s}, new


@pytest.mark.parametrize("rows", ["float32", "float64", "uint8"])
@pytest.mark.parametrize("weighted", [False, True])
def test_compiled_bounds_equal_numpy_reference(rows: str, weighted: bool,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Three bounded iterations over one block: the compiled kernel and the numpy
    reference give the same labels, bounds and summed changes."""
    monkeypatch.setattr(N, "TILE", 64)
    rng = np.random.default_rng(5)
    U = rng.integers(0, 256, size=(500, 9), dtype=np.uint8)
    X = U.astype(np.float32) * np.float32(1 / 255)
    data, kw = (U, {"scale": 1 / 255}) if rows == "uint8" else (X.astype(rows), {})
    w = rng.uniform(0.5, 2, 500) if weighted else None
    Cs = [X[:7].astype(np.float64)]
    for _ in range(3):
        Cs.append(Cs[-1] + rng.normal(0, 0.02, Cs[-1].shape))
    groups = np.array([0, 0, 1, 1, 2, 2, 2])  # three groups of centres, three bounds
    results = {}
    for kern in ("numba", "numpy"):
        monkeypatch.setenv("DASKMEANS_KERNELS", kern)
        st, out = K.BlockBounds.fresh(500, 3), []
        for it, C in enumerate(Cs):
            step = None if it == 0 else K.Drift.of(C, Cs[it - 1], 1e-6, groups=groups)
            p, st, sm = K.bounds_block(data, C, st, step, w, version=it, groups=groups,
                                       **kw)
            out.append((p, st, sm))
        results[kern] = out
    for (p, st, sm), (q, su, sn) in zip(results["numba"], results["numpy"], strict=True):
        np.testing.assert_array_equal(st.labels, su.labels)
        np.testing.assert_allclose(st.upper, su.upper, rtol=1e-5, atol=1e-3)  # sqrt near 0
        np.testing.assert_allclose(st.lower, su.lower, rtol=1e-5, atol=1e-3)
        np.testing.assert_allclose(p.dsums, q.dsums, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(p.dcounts, q.dcounts, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(p.dsumsq, q.dsumsq, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(sm.umax, sn.umax, rtol=1e-5, atol=1e-3)
        np.testing.assert_allclose(sm.gapmax, sn.gapmax, rtol=1e-5, atol=2e-3)
    assert results["numba"][-1][0].n_read < 500  # later iterations skip rows


@pytest.mark.parametrize("rows", ["float32", "uint8"])
def test_group_filter_gives_the_full_assignment(rows: str,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Bounded iterations with the group filter always on (every tile group by group)
    and always off give the same labels and summed changes; the filter compared fewer
    (row, group) pairs, and its bounds are valid (looser lower bounds can leave a row
    unsettled that the other run settles, so the bounds themselves may differ): the
    upper bound above the distance to the row's centre, each lower bound below every
    other centre's distance in its group."""
    rng = np.random.default_rng(11)
    U = rng.integers(0, 256, size=(1500, 16), dtype=np.uint8)
    centres = rng.integers(0, 256, size=(24, 16))
    U[:1200] = np.clip(centres[rng.integers(0, 24, 1200)] + rng.normal(0, 12, (1200, 16)),
                       0, 255).astype(np.uint8)
    X = U.astype(np.float32) * np.float32(1 / 255)
    data, kw = (U, {"scale": 1 / 255}) if rows == "uint8" else (X, {})
    Cs = [X[rng.choice(1500, 24, replace=False)].astype(np.float64)]
    for _ in range(4):
        Cs.append(Cs[-1] + rng.normal(0, 0.01, Cs[-1].shape))
    groups = np.repeat(np.arange(6), 4)
    margin = K.bounds_margin(float((X.astype(np.float64) ** 2).sum(1).max()), Cs[0],
                             np.dtype(np.float32))
    results = {}
    for share in (0.0, 1.0):
        monkeypatch.setattr(N, "GROUP_FILTER_SHARE", share)
        st, out = K.BlockBounds.fresh(1500, 6), []
        for it, C in enumerate(Cs):
            step = None if it == 0 else K.Drift.of(C, Cs[it - 1], margin, groups=groups)
            p, st, _ = K.bounds_block(data, C, st, step, version=it, groups=groups, **kw)
            out.append((p, st))
        results[share] = out
    pairs = []
    for it, ((p, st), (q, su)) in enumerate(zip(results[1.0], results[0.0], strict=True)):
        np.testing.assert_array_equal(st.labels, su.labels)
        np.testing.assert_allclose(p.dsums, q.dsums, rtol=1e-9, atol=1e-9)
        np.testing.assert_array_equal(p.dcounts, q.dcounts)
        C = Cs[it].astype(np.float32).astype(np.float64)
        dist = np.sqrt(((X.astype(np.float64)[:, None, :] - C[None]) ** 2).sum(2))
        assert (st.upper >= dist[np.arange(1500), st.labels] - 1e-5).all()
        dist[np.arange(1500), st.labels] = np.inf
        for g in range(6):
            assert (st.lower[:, g] <= dist[:, groups == g].min(1) + 1e-5).all()
        pairs.append((p.n_pairs, q.n_pairs))
    assert any(a < b for a, b in pairs[1:]), pairs  # the filter skipped groups


def test_one_centre_per_group_compares_every_centre() -> None:
    """Below 16 centres each centre is its own group (Elkan's bounds) and a row that is
    read meets every centre, whatever GROUP_FILTER_SHARE says: the filter would leave
    the bounds of the centres it skips decaying (more rows read over a fit)."""
    from daskmeans import algorithms as A

    rng = np.random.default_rng(3)
    X = rng.random((700, 8), dtype=np.float32)
    C0 = X[:10].astype(np.float64)
    groups = A.centre_groups(C0)
    assert groups.tolist() == list(range(10))
    C1 = C0 + rng.normal(0, 0.05, C0.shape)
    margin = K.bounds_margin(float((X.astype(np.float64) ** 2).sum(1).max()), C0,
                             np.dtype(np.float32))
    _, st, _ = K.bounds_block(X, C0, K.BlockBounds.fresh(700, 10), None, version=0,
                              groups=groups)
    p, _, _ = K.bounds_block(X, C1, st, K.Drift.of(C1, C0, margin, groups=groups),
                             version=1, groups=groups)
    assert 0 < p.n_full < 700 and p.n_pairs == 10 * p.n_full, (p.n_full, p.n_pairs)


def test_row_sq_squares_in_float64() -> None:
    """``|x|^2`` of float32 rows: each square taken in float64 (a bounded fit's inertia
    comes from these sums); float32 squares of 1/3 and of scaled pixels round."""
    x = np.array([[1 / 3, 7 / 255, 0.0], [1.0, 2.0, 2.0]], np.float32)
    out = np.empty(2)
    N.row_sq(x, out)
    assert out[1] == 9.0  # by hand
    ref = (x.astype(np.float64) ** 2).sum(1)
    assert out[0] == ref[0] != float((x[0] * x[0]).astype(np.float64).sum())


def test_row_norms_of_raw_pixels_are_those_of_the_scaled_rows(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """``row_norms_sq(raw, scale=)`` (how a held store's ``|x|^2`` is computed, with no
    float32 copy of the block) equals, bit for bit, the norms of the float32 scaled
    rows; by hand on one row; the numpy fallback agrees to rounding."""
    rng = np.random.default_rng(3)
    raw = rng.integers(0, 256, (700, 784), dtype=np.uint8)  # more than one tile
    raw[0] = 0
    raw[0, :2] = (255, 51)  # 1 + 0.2^2
    scaled = np.multiply(raw, np.float32(1 / 255), dtype=np.float32)
    got = K.row_norms_sq(raw, np.float64, scale=1 / 255)
    assert got.dtype == np.float64 and got.shape == (700,)
    np.testing.assert_array_equal(got, K.row_norms_sq(scaled, np.float64))
    assert got[0] == pytest.approx(1.04, rel=1e-7)
    out = np.empty(700)
    N.row_sq_raw(raw, 1 / 255, 64, out)  # the tile size does not matter
    np.testing.assert_array_equal(out, got)
    np.testing.assert_allclose(got, (scaled.astype(np.float64) ** 2).sum(1), rtol=1e-13)
    assert K.row_norms_sq(raw[:3], scale=1 / 255).dtype == np.float32  # the rows' dtype
    monkeypatch.setenv("DASKMEANS_KERNELS", "numpy")
    ref = K.row_norms_sq(raw, np.float64, scale=1 / 255)
    assert ref.dtype == np.float64
    np.testing.assert_allclose(ref, got, rtol=1e-13)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_winner_sq_equals_float64_differences(dtype: type) -> None:
    """Each row's squared distance to its centre (what ``assign`` returns, hence
    ``score``): compiled and numpy both sum float64 differences."""
    rng = np.random.default_rng(1)
    X = (rng.random((300, 784)) + 5).astype(dtype)  # far from the origin: the GEMM's
    C = X[:4].astype(np.float64) + 0.01              # expansion would lose most digits
    lab = rng.integers(0, 4, 300).astype(np.int32)
    out = np.empty(300)
    N.winner_sq(X, C, lab, out)
    ref = ((X.astype(np.float64) - C[lab]) ** 2).sum(1)
    np.testing.assert_allclose(out, ref, rtol=1e-13)
    labels, sq = K.assign(X, C)
    np.testing.assert_allclose(sq, ((X.astype(np.float64) - C[labels]) ** 2).sum(1),
                               rtol=1e-13)


@pytest.mark.parametrize("rows", ["float32", "float64", "uint8"])
def test_row_sqdist_by_hand_and_against_float64(rows: str) -> None:
    """The bounded pass's tightening distance, straight from the stored row (uint8
    scaled on the fly), in the rows' float dtype."""
    X = np.array([[0, 3, 4], [255, 0, 51]], np.uint8)
    scale = 1 / 255 if rows == "uint8" else 1.0
    Xs = X if rows == "uint8" else X.astype(rows)
    dt = np.float64 if rows == "float64" else np.float32
    c = np.zeros(3, dt)
    got = N._row_sqdist(Xs, 0, scale, rows == "uint8", c)
    assert got == pytest.approx(25.0 * scale ** 2, rel=1e-6)  # 3-4-5 by hand
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (50, 784)).astype(np.uint8)
    Xf = X.astype(np.float32) * np.float32(1 / 255)  # how uint8 rows are scaled
    Xs = X if rows == "uint8" else Xf.astype(rows)
    C = rng.random((3, 784)).astype(dt)
    ref = (Xf.astype(np.float64)[:, None, :] - C.astype(np.float64)[None]) ** 2
    for i in range(50):
        for j in range(3):
            d2 = N._row_sqdist(Xs, i, 1 / 255, rows == "uint8", C[j])
            assert d2 == pytest.approx(ref[i, j].sum(), rel=1e-5 if dt == np.float32 else 1e-12)


@pytest.mark.parametrize("kern", ["numba", "numpy"])
def test_near_ties_are_settled_in_float64_by_every_path(
        kern: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows almost equidistant from two centres, far from the origin, where float32
    GEMM distances pick either: the plain pass, the bounded pass and ``assign`` all give
    the centre nearer in float64 (the first on an exact tie)."""
    monkeypatch.setenv("DASKMEANS_KERNELS", kern)
    rng = np.random.default_rng(2)
    base = np.float32(300) + rng.normal(0, 1, 64).astype(np.float32)
    C = np.stack([base, base + np.float32(2) * rng.choice([-1, 1], 64).astype(np.float32),
                  base + 40]).astype(np.float32)
    mid = (C[0].astype(np.float64) + C[1]) / 2
    X = (mid + rng.normal(0, 1e-3, (400, 64))).astype(np.float32)
    X[:3] = mid.astype(np.float32)  # exact float64 ties where mid is representable
    e = ((X.astype(np.float64)[:, None, :] - C.astype(np.float64)[None]) ** 2).sum(2)
    want = np.argmin(e, axis=1)
    gemm = np.argmin((X @ (-2 * C.T)) + (C * C).sum(1), axis=1)
    assert (gemm != want).any()  # float32 gets some of them wrong
    plain = K.lloyd_runs(X, C).parts[0]
    lab_assign, _ = K.assign(X, C)
    _, st, _ = K.bounds_block(X, C, K.BlockBounds.fresh(400, 1), None, version=0)
    for got in (lab_assign, st.labels):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(plain.counts, np.bincount(want, minlength=3))

@pytest.mark.parametrize("rows", ["float32", "float64"])
@pytest.mark.parametrize("weighted", [False, True])
def test_compiled_bisect_step_equals_numpy_reference(
    rows: str, weighted: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The compiled tree descent and 2-means step give the reference's nodes, labels,
    counts and farthest rows, and its sums, weights and SSE to float rounding."""
    rng = np.random.default_rng(5)
    X = rng.normal(size=(600, 9)).astype(rows)
    # a root split in two, its right child split again: leaves 1, 3, 4
    left, right = np.array([1, -1, 3, -1, -1]), np.array([2, -1, 4, -1, -1])
    centre = np.stack([X[:5].mean(0), X[5], X[6], X[7], X[8]]).astype(np.float64)
    tree = K.TreeSnapshot(left, right, centre, np.array([-1, 0, -1, 1, 2]))
    step = K.BisectStep(tree, rng.normal(size=(3, 2, 2, 9)), np.ones((3, 2), bool),
                        np.zeros((3, 2), np.int64))
    w = rng.uniform(0, 2, 600) if weighted else None
    before = X.copy()
    monkeypatch.setenv("DASKMEANS_KERNELS", "numba")
    nodes = K.tree_nodes(X, tree)
    got = K.bisect_block(X, w, step, offset=7)
    monkeypatch.setenv("DASKMEANS_KERNELS", "numpy")
    np.testing.assert_array_equal(nodes, K.tree_nodes(X, tree))
    assert set(np.unique(nodes)) == {1, 3, 4}
    want = K.bisect_block(X, w, step, offset=7)
    np.testing.assert_array_equal(got.count, want.count)
    np.testing.assert_allclose(got.sums, want.sums, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(got.weight, want.weight, rtol=1e-12)
    np.testing.assert_allclose(got.sse, want.sse, rtol=1e-9)
    for tops_got, tops_want in zip(got.top, want.top, strict=True):
        for a, b in zip(tops_got, tops_want, strict=True):
            np.testing.assert_array_equal(a.index, b.index)
    np.testing.assert_array_equal(X, before)


@pytest.mark.parametrize("kernels", ["numba", "numpy"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("d", [37, 784])
def test_raw_uint8_bisect_step_equals_float_rows_bit_for_bit(
    kernels: str, weighted: bool, d: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """uint8 rows with a scale give, bit for bit, what their float32 rows
    (``float32(x) * float32(scale)``) give: the nodes, leaf labels and distances of the
    tree descent, every 2-means partial, and the sampled and farthest rows (returned as
    those float32 rows), compiled and in the numpy reference."""
    monkeypatch.setenv("DASKMEANS_KERNELS", kernels)
    rng = np.random.default_rng(6)
    scale = 1 / 255
    U = rng.integers(0, 256, size=(700, d), dtype=np.uint8)
    F = U.astype(np.float32) * np.float32(scale)
    assert K._bisect_compiled(U, scale) == (kernels == "numba")
    # root -> 1, 2; 2 -> 3, 4; 3 -> 5, 6: leaves 1, 4, 5, 6, three of them bisected
    left, right = np.array([1, -1, 3, 5, -1, -1, -1]), np.array([2, -1, 4, 6, -1, -1, -1])
    centre = np.stack([F.mean(0), *F[:6]]).astype(np.float64)
    tree = K.TreeSnapshot(left, right, centre, np.array([-1, 0, -1, -1, 1, 2, -1]))
    leaf_label = np.array([-1, 0, -1, -1, 1, 2, 3])
    w = rng.integers(0, 3, 700).astype(np.float64) if weighted else None  # zeros too
    before = U.copy()

    nodes = K.tree_nodes(U, tree, scale)
    np.testing.assert_array_equal(nodes, K.tree_nodes(F, tree))
    assert set(np.unique(nodes)) == {1, 4, 5, 6}
    np.testing.assert_array_equal(K.tree_labels(U, tree, leaf_label, scale),
                                  K.tree_labels(F, tree, leaf_label))
    tc = K.TreeCentres(tree, leaf_label, centre[[1, 4, 5, 6]])
    for a, b in zip(K.tree_assign(U, tc, scale), K.tree_assign(F, tc), strict=True):
        np.testing.assert_array_equal(a, b)

    C = F[rng.choice(700, (3, 2, 2))].astype(np.float64)  # 3 slots, 2 runs
    active = np.array([[True, True], [True, False], [True, True]])
    seeds = rng.integers(0, 1 << 40, (3, 2))
    steps = [K.BisectStep(tree, C, active, seeds),
             K.BisectStep(tree, C, active, seeds, sample=2, weighted=True),
             K.BisectStep(tree, C, active, seeds, sample=50, weighted=False)]
    for step in steps:
        for given in (None, nodes):
            got = K.bisect_block(U, w, step, offset=11, nodes=given, scale=scale)
            want = K.bisect_block(F, w, step, offset=11, nodes=given)
            for f in ("sums", "weight", "sse", "count"):
                np.testing.assert_array_equal(getattr(got, f), getattr(want, f), err_msg=f)
            for s, j in np.ndindex(*active.shape):
                a, b = got.top[s][j], want.top[s][j]
                assert a.rows.dtype == np.float32
                assert len(a.index) > 0 or not (active[s, j] or step.sample)
                for f in ("sqdist", "index", "rows", "labels", "weights"):
                    np.testing.assert_array_equal(getattr(a, f), getattr(b, f), err_msg=f)
    np.testing.assert_array_equal(U, before)
