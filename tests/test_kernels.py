"""Kernels: hand-computed cases and brute-force references, for the numpy reference
and for the compiled (numba) fused Lloyd kernel (every test runs under both)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from daskmeans import _kernels as K


@pytest.fixture(autouse=True, params=["numpy", "numba"])
def kernels(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test here runs with the numpy reference and with the compiled kernel."""
    monkeypatch.setenv("DASKMEANS_KERNELS", request.param)
    assert K.compiled_kernels() == (request.param == "numba")
    if request.param == "numba":
        from daskmeans import _kernels_numba as N

        monkeypatch.setattr(N, "TILE", 64)  # several tiles per block, the last one short
    return str(request.param)


def brute_sqdist(X: np.ndarray, C: np.ndarray) -> np.ndarray:
    return ((X[:, None, :].astype(np.float64) - C[None, :, :]) ** 2).sum(-1)


def test_assign_hand_computed() -> None:
    X = np.array([[0.0, 0.0], [3.0, 1.0], [5.0, 5.0]])
    C = np.array([[0.0, 1.0], [4.0, 1.0]])
    labels, sq = K.assign(X, C)
    assert labels.tolist() == [0, 1, 1] and labels.dtype == np.int32
    np.testing.assert_allclose(sq, [1.0, 1.0, 17.0])


def test_nearest_labels_of_raw_pixels() -> None:
    """``nearest_labels(raw, C, scale=)`` (a store's predict) scales the raw rows a block
    at a time: by hand, then the very labels of the float32 scaled rows over several
    blocks (K=256 makes blocks of 2,048 rows), the input untouched."""
    raw = np.array([[0, 0], [255, 51], [204, 255]], np.uint8)
    C = np.array([[0.0, 0.0], [1.0, 0.25], [0.8, 1.0]])
    assert K.nearest_labels(raw, C, scale=1 / 255).tolist() == [0, 1, 2]
    rng = np.random.default_rng(4)
    raw = rng.integers(0, 256, (5000, 20), dtype=np.uint8)
    keep = raw.copy()
    C = rng.random((256, 20))
    scaled = np.multiply(raw, np.float32(1 / 255), dtype=np.float32)
    got = K.nearest_labels(raw, C, scale=1 / 255)
    np.testing.assert_array_equal(got, K.nearest_labels(scaled, C))
    np.testing.assert_array_equal(got, brute_sqdist(scaled, C).argmin(1))
    np.testing.assert_array_equal(raw, keep)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_assign_matches_brute_force(dtype: type) -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(500, 7)).astype(dtype)
    C = rng.normal(size=(13, 7)).astype(dtype)
    X0, C0 = X.copy(), C.copy()
    labels, sq = K.assign(X, C)
    D = brute_sqdist(X, C)
    np.testing.assert_array_equal(labels, D.argmin(1))
    np.testing.assert_array_equal(K.nearest_labels(X, C), labels)  # predict's labels
    # float64 differences, whatever the rows' dtype (the GEMM only picks the centre)
    np.testing.assert_allclose(sq, D.min(1), rtol=1e-12)
    assert sq.dtype == np.float64
    np.testing.assert_array_equal(X, X0)  # inputs untouched
    np.testing.assert_array_equal(C, C0)
    np.testing.assert_allclose(K.distances(X, C), np.sqrt(D), rtol=1e-3, atol=1e-3)


def test_assign_blocks_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(1)
    X, C = rng.normal(size=(101, 3)), rng.normal(size=(4, 3))
    full = K.assign(X, C)
    monkeypatch.setattr(K, "DIST_BLOCK_BYTES", 64)  # 2 rows per block
    blocked = K.assign(X, C)
    np.testing.assert_array_equal(full[0], blocked[0])
    np.testing.assert_allclose(full[1], blocked[1])


def test_cluster_sums_brute_force(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(2)
    X = rng.normal(size=(1000, 5)).astype(np.float32)
    labels = rng.integers(0, 6, 1000).astype(np.int32)
    w = rng.uniform(0, 2, 1000)
    monkeypatch.setattr(K, "SUM_BLOCK", 128)
    ref = np.zeros((7, 5))
    for i in range(1000):
        ref[labels[i]] += w[i] * X[i].astype(np.float64)
    out = K.cluster_sums(X, labels, 7, w)
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)
    assert np.all(out[6] == 0)  # an empty cluster sums to zero


def test_lloyd_partial_hand_computed_and_additive() -> None:
    X = np.array([[0.0, 0.0], [0.0, 2.0], [9.0, 9.0], [10.0, 9.0]])
    C = np.array([[0.0, 1.0], [9.0, 9.0], [100.0, 100.0]])
    p = K.lloyd_partial(X, C, n_top=2)
    assert p.sums.tolist() == [[0.0, 2.0], [19.0, 18.0], [0.0, 0.0]]
    assert p.counts.tolist() == [2.0, 2.0, 0.0]
    assert p.sse(C) == pytest.approx(3.0)
    # the farthest rows, largest first, ties to the smaller index
    assert p.top.index.tolist() == [0, 1] and p.top.sqdist.tolist() == [1.0, 1.0]
    halves = K.lloyd_partial(X[:2], C, n_top=2) + K.lloyd_partial(X[2:], C, offset=2, n_top=2)
    np.testing.assert_array_equal(halves.sums, p.sums)
    assert halves.sse(C) == pytest.approx(p.sse(C))
    assert halves.top.index.tolist() == [0, 1]
    # blocks of one row each, three rows asked for: the sum keeps the three farthest
    ones = [K.lloyd_partial(X[i:i + 1], C, offset=i, n_top=3) for i in range(4)]
    total = ones[0] + ones[1] + ones[2] + ones[3]
    assert total.top.index.tolist() == [0, 1, 3] and total.top.sqdist.tolist() == [1, 1, 1]


@pytest.mark.parametrize("fused", [True, False])  # sums per cached block, or per chunk
@pytest.mark.parametrize("k", [5, 10, 16])  # 5 and 10 run the GEMM padded to 8 and 16
def test_lloyd_partial_brute_force_over_blocks(
    k: int, fused: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(k)
    X = rng.normal(size=(700, 6)).astype(np.float32)
    C = rng.normal(size=(k, 6)).astype(np.float32)
    w = rng.uniform(0, 2, 700)
    monkeypatch.setattr(K, "ROW_BLOCK", 64)  # 11 blocks, the last one short
    monkeypatch.setattr(K, "SUM_BLOCK", 100)
    monkeypatch.setattr(K, "FUSED_SUMS_MAX_BYTES", 1 << 20 if fused else 0)
    p = K.lloyd_partial(X, C, w)
    D = brute_sqdist(X, C)
    lab = D.argmin(1)
    onehot = np.eye(k)[lab] * w[:, None]
    np.testing.assert_allclose(p.counts, onehot.sum(0), rtol=1e-12)
    np.testing.assert_allclose(p.sums, onehot.T @ X.astype(np.float64), rtol=1e-5, atol=1e-5)
    assert p.sse() == pytest.approx(float(D.min(1) @ w), rel=1e-5)
    # |x|^2 known in advance (float64, as sources keep them): the same partial
    given = K.lloyd_partial(X, C, w, xsq=K.row_norms_sq(X, np.float64))
    np.testing.assert_array_equal(given.sums, p.sums)
    assert given.sse() == p.sse()
    # the SSE comes from the sums (exact): closer to float64 than float32 distances
    exact = float(((X.astype(np.float64) - C.astype(np.float64)[lab]) ** 2).sum(1) @ w)
    assert p.sse() == pytest.approx(exact, rel=1e-12)


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("raw", [False, True])
def test_lloyd_runs_give_each_run_its_own_partial_bit_for_bit(
    fused: bool, raw: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stacked centres of 3 runs (n_init): one pass, each run exactly as if alone."""
    rng = np.random.default_rng(7)
    U = rng.integers(0, 256, size=(700, 6), dtype=np.uint8)
    X = U.astype(np.float32) * np.float32(1 / 255)
    Cs = [X[rng.choice(700, 10, replace=False)] for _ in range(3)]
    w = rng.uniform(0, 2, 700)
    monkeypatch.setattr(K, "ROW_BLOCK", 64)  # 11 blocks, the last one short
    monkeypatch.setattr(K, "SUM_BLOCK", 128)
    monkeypatch.setattr(K, "FUSED_SUMS_MAX_BYTES", 1 << 20 if fused else 0)
    data, kw = (U, {"scale": 1 / 255}) if raw else (X, {})
    kw |= {"n_top": 3, "moments": True, "n_sample": 4, "offset": 10}
    runs = K.lloyd_runs(data, np.concatenate(Cs), w, runs=3, **kw).parts
    assert len(runs) == 3
    for C, got in zip(Cs, runs, strict=True):
        want = K.lloyd_partial(data, C, w, **kw)
        np.testing.assert_array_equal(got.sums, want.sums)
        np.testing.assert_array_equal(got.counts, want.counts)
        assert got.sq == want.sq and got.n_rows == want.n_rows
        np.testing.assert_array_equal(got.moments.m2, want.moments.m2)
        for a, b in ((got.top, want.top), (got.sample, want.sample)):
            np.testing.assert_array_equal(a.rows, b.rows)
            np.testing.assert_array_equal(a.labels, b.labels)  # each run's own 0..k-1
            np.testing.assert_array_equal(a.index, b.index)
    with pytest.raises(ValueError, match="runs must divide the 30 stacked centres, got 4"):
        K.lloyd_runs(X, np.concatenate(Cs), runs=4)


def test_lloyd_runs_hand_computed() -> None:
    X = np.array([[0.0, 0.0], [0.0, 2.0], [9.0, 9.0]])
    a, b = K.lloyd_runs(X, np.array([[0.0, 1.0], [9.0, 9.0], [0.0, 0.0], [1.0, 1.0]]),
                        runs=2).parts
    assert a.sums.tolist() == [[0.0, 2.0], [9.0, 9.0]] and a.sse() == 2.0
    assert b.sums.tolist() == [[0.0, 0.0], [9.0, 11.0]] and b.counts.tolist() == [1.0, 2.0]
    assert b.sse() == 0.0 + 2.0 + 128.0
    s = (K.LloydRuns((a, b)) + K.LloydRuns((a, b))).parts
    assert s[1].counts.tolist() == [2.0, 4.0] and s[0].sse() == 4.0


@pytest.mark.parametrize("fused", [True, False])
def test_lloyd_partial_on_raw_rows_equals_scaled_rows(
    fused: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """uint8 rows with ``scale``: scaled block by block, bit for bit the float32 result."""
    rng = np.random.default_rng(1)
    U = rng.integers(0, 256, size=(700, 2, 3), dtype=np.uint8)  # reshaped to (700, 6)
    X = U.reshape(700, 6).astype(np.float32) * np.float32(1 / 255)
    C = X[rng.choice(700, 5, replace=False)]
    w = rng.uniform(0, 2, 700)
    monkeypatch.setattr(K, "ROW_BLOCK", 64)  # 11 blocks, the last one short
    monkeypatch.setattr(K, "SUM_BLOCK", 128)  # unfused: scaled and summed 128 rows at a time
    monkeypatch.setattr(K, "FUSED_SUMS_MAX_BYTES", 1 << 20 if fused else 0)
    kw = {"n_top": 3, "moments": True, "n_sample": 4, "offset": 10}
    a = K.lloyd_partial(X, C, w, **kw)
    b = K.lloyd_partial(U, C, w, scale=1 / 255, **kw)
    np.testing.assert_array_equal(b.sums, a.sums)
    np.testing.assert_array_equal(b.counts, a.counts)
    assert b.sq == a.sq
    for got, want in ((b.top, a.top), (b.sample, a.sample)):
        np.testing.assert_array_equal(got.rows, want.rows)
        np.testing.assert_array_equal(got.index, want.index)
        assert got.rows.dtype == np.float32
    np.testing.assert_allclose(b.moments.var, a.moments.var, rtol=1e-12)
    untouched = U.reshape(700, 6).astype(np.float32) * np.float32(1 / 255)
    np.testing.assert_array_equal(untouched, X)
    np.testing.assert_array_equal(K.scale_rows(U, 1 / 255), X)


def test_moments_merge_equals_numpy() -> None:
    X = np.random.default_rng(3).normal(5, 2, size=(300, 4))
    m = K.Moments.of(X[:17]) + K.Moments.of(X[17:200]) + K.Moments.of(X[200:])
    np.testing.assert_allclose(m.var, X.var(0), rtol=1e-12)
    np.testing.assert_allclose(m.mean, X.mean(0), rtol=1e-12)


def test_kmeans_plusplus_picks_distinct_blobs() -> None:
    rng = np.random.default_rng(4)
    centres = np.array([[0, 0], [100, 0], [0, 100]], dtype=float)
    X = np.concatenate([c + rng.normal(size=(50, 2)) for c in centres])
    C = K.kmeans_plusplus(X, 3, np.random.default_rng(0))
    owners = np.argmin(brute_sqdist(C, centres), axis=1)
    assert sorted(owners.tolist()) == [0, 1, 2]


def test_splitmix_uniform_is_chunk_independent() -> None:
    idx = np.arange(1000)
    u = K.splitmix64_uniform(idx, 42)
    np.testing.assert_array_equal(u[500:], K.splitmix64_uniform(idx[500:], 42))
    assert 0 <= u.min() and u.max() < 1 and abs(u.mean() - 0.5) < 0.05
    assert not np.array_equal(u, K.splitmix64_uniform(idx, 43))


def test_pair_table_hand_and_brute() -> None:
    t = np.array([0, 0, 2, 5])
    p = np.array([1, 1, 0, 1])
    table = K.pair_table(t, p)
    assert table.table is not None and table.table.shape == (6, 2)
    classes, clusters, ct = table.finish()
    assert classes.tolist() == [0, 2, 5] and clusters.tolist() == [0, 1]
    assert ct.tolist() == [[0, 2], [1, 0], [0, 1]]
    big = K.pair_table(np.array([0, 10**9]), np.array([3, 3]))  # sparse path
    merged = (big + table).finish()
    assert merged[0].tolist() == [0, 2, 5, 10**9]
    assert merged[2].sum() == 6


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (np.array([0, -1]), "non-negative"),
        (np.array([0.5, 1.0]), "fractional"),
        (np.array([np.nan, 1.0]), "NaN"),
        (np.array(["a", "b"]), "integer labels"),
    ],
)
def test_label_validation(labels: np.ndarray, message: str) -> None:
    with pytest.raises(K.LabelError, match=message):
        K.pair_table(labels, np.array([0, 0]))


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")  # inf * 0 in numpy
def test_non_finite_distance_names_the_row() -> None:
    X = np.zeros((300, 3), np.float32)
    X[201, 1] = np.nan
    with pytest.raises(K.NonFiniteRow) as e:
        K.lloyd_partial(X, np.ones((2, 3)))
    assert e.value.row == 201
    with pytest.raises(K.NonFiniteRow) as e:  # raw rows: an infinite centre
        K.lloyd_partial(np.zeros((300, 3), np.uint8), np.full((1, 3), np.inf), scale=1.0)
    assert e.value.row == 0


@pytest.mark.parametrize("groups", [None, [0, 1, 0, 1, 2, 2]])
def test_bounds_block_brute_force_over_iterations(groups: list[int] | None) -> None:
    """Bounded iterations over two blocks (one lower bound per row, or one per group
    of centres): labels equal the brute-force argmin, the bounds hold (upper >= own
    distance, each group's lower bound <= the distance to every other centre of the
    group), the summed changes equal the brute-force sums, and rows are skipped."""
    grp = None if groups is None else np.array(groups)
    t = 1 if grp is None else 3
    rng = np.random.default_rng(4)
    X = np.concatenate([rng.normal(c, 1.0, size=(300, 5)) for c in (0, 4, 8)])
    X = X[rng.permutation(len(X))].astype(np.float32)
    C = X[:6].astype(np.float64)
    parts = [(0, 400), (400, 900)]
    states = [K.BlockBounds.fresh(b - a, t) for a, b in parts]
    S, N = np.zeros((6, 5)), np.zeros(6)
    seen: dict[int, np.ndarray] = {}
    margin, skipped = 0.0, 0
    for it in range(8):
        tot = None
        for j, (a, b) in enumerate(parts):
            st = states[j]
            step = None if st.version < 0 else K.Drift.of(C, seen[st.version], margin,
                                                          groups=grp)
            p, states[j], _ = K.bounds_block(X[a:b], C, st, step, version=it, offset=a,
                                             groups=grp)
            tot = p if tot is None else tot + p
        margin = K.bounds_margin(tot.xsq_max, C, np.float32) if it == 0 else margin
        skipped += len(X) - tot.n_read
        S, N = S + tot.dsums, N + tot.dcounts
        D = np.sqrt(brute_sqdist(X, C))
        labels = np.concatenate([s.labels for s in states])
        np.testing.assert_array_equal(labels, D.argmin(1))
        upper = np.concatenate([s.upper for s in states])
        lower = np.concatenate([s.lower for s in states])
        own = D[np.arange(len(X)), labels]
        D[np.arange(len(X)), labels] = np.inf
        assert np.all(upper >= own - 1e-4)
        for g in range(t):
            in_g = np.ones(6, bool) if grp is None else grp == g
            assert np.all(lower[:, g] <= D[:, in_g].min(1) + 1e-4)
        onehot = np.eye(6)[labels]
        np.testing.assert_allclose(N, onehot.sum(0))
        np.testing.assert_allclose(S, onehot.T @ X.astype(np.float64), rtol=1e-9, atol=1e-6)
        seen[it] = C
        C = np.where(N[:, None] > 0, S / np.maximum(N, 1)[:, None], C)
    assert skipped > len(X)  # the bounds settled rows without reading them


# --------------------------------------------------------------------------- k-medians


def test_l1_kernels_hand_computed() -> None:
    """L1 assignment (ties to the lower index), then one cluster's medians digit by
    digit: values 3, 17, 18, 40 of weights 1, 1, 1, 1 have the lower median 17."""
    X = np.array([[0.0, 0.0], [3.0, 1.0], [2.0, 2.0]])
    C = np.array([[0.0, 1.0], [4.0, 1.0]])
    labels, dist = K.l1_assign(X, C)
    assert labels.tolist() == [0, 1, 0] and dist.tolist() == [1.0, 1.0, 3.0]  # row 2: tie
    np.testing.assert_array_equal(K.l1_distances(X, C), [[1, 5], [3, 1], [3, 3]])
    U = np.array([[3], [17], [18], [40], [99]], np.uint8)
    grid = K.MedianGrid(256, scale=1.0)
    part, lab = K.median_assign(U, np.array([[20.0], [99.0]]), np.array([1, 1, 1, 1, 0.0]),
                                grid=grid, scale=1.0, n_top=1, offset=10)
    assert lab.tolist() == [0, 0, 0, 0, 1] and part.counts.tolist() == [4.0, 0.0]
    assert part.dist == 17 + 3 + 2 + 20  # the zero-weight row adds nothing
    assert part.hist[0, 0].tolist()[:3] == [1.0, 2.0, 1.0]  # high digits 0, 1, 1, 2
    assert part.top.index.tolist() == [13] and part.top.sqdist.tolist() == [20.0]
    # half the weight is 2: reached in high digit 1 (cumulative 3), 1 below it
    step = K.MedianStep(0, np.array([[1], [0]]), False, np.empty(0, np.int64),
                        np.empty(0, np.int32))
    low = K.median_refine(U, np.array([1, 1, 1, 1, 0.0]), step, grid=grid, labels=lab)
    assert np.flatnonzero(low.hist[0, 0]).tolist() == [1, 2]  # 17 and 18 (0x11, 0x12)
    # the float grid tracks the values of each bin; a moved row counts for its new cluster
    fgrid = K.MedianGrid.of_range(np.array([0.0]), np.array([4096.0]))
    step = K.MedianStep(0, np.ones((2, 1), np.int64), True, np.array([11]),
                        np.array([1], np.int32))  # levels 16-31; row 11 (17) to cluster 1
    h = K.median_refine(U.astype(np.float64), None, step, grid=fgrid, labels=lab, offset=10)
    assert np.flatnonzero(h.hist[0, 0]).tolist() == [2]  # 18 (3, 40 not in 16-31)
    assert np.flatnonzero(h.hist[1, 0]).tolist() == [1]  # 17 (99 not in 16-31)
    assert h.vmin is not None and h.vmax is not None
    assert h.vmin[1, 0, 1] == h.vmax[1, 0, 1] == 17.0 and h.vmin[0, 0, 0] == np.inf


@pytest.mark.parametrize("rows", ["float32", "float64", "uint8"])
def test_l1_distances_and_histograms_equal_brute_force(rows: str) -> None:
    """Against numpy brute force (L1 to float64 rounding, histograms exactly); the
    compiled and numpy kernels add features in the same order (same bits)."""
    rng = np.random.default_rng(0)
    U = rng.integers(0, 256, size=(300, 9), dtype=np.uint8)
    X = K.scale_rows(U, 1 / 255).astype(np.float32 if rows != "float64" else np.float64)
    data, scale = (U, 1 / 255) if rows == "uint8" else (X, None)
    C = X[rng.choice(300, 7, replace=False)] + 0.001
    D = K.l1_distances(data, C, scale)
    np.testing.assert_allclose(D, np.abs(X[:, None].astype(np.float64) - C[None]).sum(-1),
                               rtol=1e-12)
    labels, dist = K.l1_assign(data, C, scale)
    np.testing.assert_array_equal(labels, D.argmin(1))
    np.testing.assert_array_equal(dist, D.min(1))
    w = rng.uniform(0, 2, 300)
    w[::7] = 0
    grid = (K.MedianGrid(256, scale=scale) if rows == "uint8"
            else K.MedianGrid.of_range(X.min(0), X.max(0)))
    lev = grid.level(data)
    before = [a.copy() for a in (data, labels, w)]
    prefix = rng.integers(0, 16, size=(7, 9)) if rows != "uint8" else None
    shift = 4 if rows == "uint8" else 4 * (grid.digits - 2)
    h = K.median_hist(data, labels, w, 7, grid, shift, prefix, track=rows != "uint8")
    want = np.zeros((7, 9, K.BINS))
    lo = np.full((7, 9, K.BINS), np.inf)
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
