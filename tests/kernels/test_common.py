"""Shared kernels (distances, nearest centre and the float64 near-tie rule, row norms,
per-cluster sums, moments, the farthest rows): hand-computed cases, brute-force
references, and the compiled helpers against numpy."""

from __future__ import annotations

import numpy as np
import pytest

from daskmeans.kernels import bisect, bounds, common, common_compiled, lloyd

from .reference import brute_sqdist


@pytest.mark.usefixtures("both_kernels")
def test_assign_hand_computed() -> None:
    X = np.array([[0.0, 0.0], [3.0, 1.0], [5.0, 5.0]])
    C = np.array([[0.0, 1.0], [4.0, 1.0]])
    labels, sq = common.assign(X, C)
    assert labels.tolist() == [0, 1, 1] and labels.dtype == np.int32
    np.testing.assert_allclose(sq, [1.0, 1.0, 17.0])


@pytest.mark.usefixtures("both_kernels")
def test_nearest_labels_of_raw_pixels() -> None:
    """``nearest_labels(raw, C, scale=)`` (a store's predict) scales the raw rows a block
    at a time: by hand, then the very labels of the float32 scaled rows over several
    blocks (K=256 makes blocks of 2,048 rows), the input untouched."""
    raw = np.array([[0, 0], [255, 51], [204, 255]], np.uint8)
    C = np.array([[0.0, 0.0], [1.0, 0.25], [0.8, 1.0]])
    assert common.nearest_labels(raw, C, scale=1 / 255).tolist() == [0, 1, 2]
    rng = np.random.default_rng(4)
    raw = rng.integers(0, 256, (5000, 20), dtype=np.uint8)
    keep = raw.copy()
    C = rng.random((256, 20))
    scaled = np.multiply(raw, np.float32(1 / 255), dtype=np.float32)
    got = common.nearest_labels(raw, C, scale=1 / 255)
    np.testing.assert_array_equal(got, common.nearest_labels(scaled, C))
    np.testing.assert_array_equal(got, brute_sqdist(scaled, C).argmin(1))
    np.testing.assert_array_equal(raw, keep)


@pytest.mark.usefixtures("both_kernels")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_assign_matches_brute_force(dtype: type) -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(500, 7)).astype(dtype)
    C = rng.normal(size=(13, 7)).astype(dtype)
    X0, C0 = X.copy(), C.copy()
    labels, sq = common.assign(X, C)
    D = brute_sqdist(X, C)
    np.testing.assert_array_equal(labels, D.argmin(1))
    np.testing.assert_array_equal(common.nearest_labels(X, C), labels)  # predict's labels
    # float64 differences, whatever the rows' dtype (the GEMM only picks the centre)
    np.testing.assert_allclose(sq, D.min(1), rtol=1e-12)
    assert sq.dtype == np.float64
    np.testing.assert_array_equal(X, X0)  # inputs untouched
    np.testing.assert_array_equal(C, C0)
    np.testing.assert_allclose(common.distances(X, C), np.sqrt(D), rtol=1e-3, atol=1e-3)


@pytest.mark.usefixtures("both_kernels")
def test_assign_blocks_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(1)
    X, C = rng.normal(size=(101, 3)), rng.normal(size=(4, 3))
    full = common.assign(X, C)
    monkeypatch.setattr(common, "DIST_BLOCK_BYTES", 64)  # 2 rows per block
    blocked = common.assign(X, C)
    np.testing.assert_array_equal(full[0], blocked[0])
    np.testing.assert_allclose(full[1], blocked[1])


@pytest.mark.usefixtures("both_kernels")
def test_cluster_sums_brute_force(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(2)
    X = rng.normal(size=(1000, 5)).astype(np.float32)
    labels = rng.integers(0, 6, 1000).astype(np.int32)
    w = rng.uniform(0, 2, 1000)
    monkeypatch.setattr(common, "SUM_BLOCK", 128)
    ref = np.zeros((7, 5))
    for i in range(1000):
        ref[labels[i]] += w[i] * X[i].astype(np.float64)
    out = common.cluster_sums(X, labels, 7, w)
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)
    assert np.all(out[6] == 0)  # an empty cluster sums to zero


@pytest.mark.usefixtures("both_kernels")
def test_moments_merge_equals_numpy() -> None:
    X = np.random.default_rng(3).normal(5, 2, size=(300, 4))
    m = common.Moments.of(X[:17]) + common.Moments.of(X[17:200]) + common.Moments.of(X[200:])
    np.testing.assert_allclose(m.var, X.var(0), rtol=1e-12)
    np.testing.assert_allclose(m.mean, X.mean(0), rtol=1e-12)


@pytest.mark.usefixtures("both_kernels")
def test_splitmix_uniform_is_chunk_independent() -> None:
    idx = np.arange(1000)
    u = common.splitmix64_uniform(idx, 42)
    np.testing.assert_array_equal(u[500:], common.splitmix64_uniform(idx[500:], 42))
    assert 0 <= u.min() and u.max() < 1 and abs(u.mean() - 0.5) < 0.05
    assert not np.array_equal(u, common.splitmix64_uniform(idx, 43))


def test_column_moments_by_hand_and_against_a_long_double_reference() -> None:
    """Means and squared deviations per column: a hand-computed case, then 700 rows (three
    tiles, the last one short) of float32, float64 and raw uint8 against numpy in long
    double; the rows are left untouched."""
    mean, m2 = np.empty(2), np.empty(2)
    common_compiled.column_moments(np.array([[1.0, 2.0], [3.0, 2.0], [5.0, 8.0]]), 1.0, False,
                                   mean, m2)
    assert mean.tolist() == [3.0, 4.0] and m2.tolist() == [8.0, 24.0]
    rng = np.random.default_rng(5)
    U = rng.integers(0, 256, size=(700, 9), dtype=np.uint8)
    for rows, scale, raw in ((U.astype(np.float32) + 1000, 1.0, False),
                             (rng.normal(3, 2, (700, 9)), 1.0, False), (U, 1 / 255, True)):
        before = rows.copy()
        mean, m2 = np.empty(9), np.empty(9)
        common_compiled.column_moments(rows, scale, raw, mean, m2)
        x = (rows.astype(np.float32) * np.float32(scale) if raw else rows).astype(np.longdouble)
        np.testing.assert_allclose(mean, x.mean(0), rtol=1e-14)
        np.testing.assert_allclose(m2, ((x - x.mean(0)) ** 2).sum(0), rtol=1e-12)
        np.testing.assert_array_equal(rows, before)
        ref = common.Moments.of(x.astype(np.float64))
        np.testing.assert_allclose(common.column_moments(rows, scale if raw else None).var, ref.var,
                                   rtol=1e-12)


def test_row_sq_squares_in_float64() -> None:
    """``|x|^2`` of float32 rows: each square taken in float64 (a bounded fit's inertia
    comes from these sums); float32 squares of 1/3 and of scaled pixels round."""
    x = np.array([[1 / 3, 7 / 255, 0.0], [1.0, 2.0, 2.0]], np.float32)
    out = np.empty(2)
    common_compiled.row_sq(x, out)
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
    got = common.row_norms_sq(raw, np.float64, scale=1 / 255)
    assert got.dtype == np.float64 and got.shape == (700,)
    np.testing.assert_array_equal(got, common.row_norms_sq(scaled, np.float64))
    assert got[0] == pytest.approx(1.04, rel=1e-7)
    out = np.empty(700)
    common_compiled.row_sq_raw(raw, 1 / 255, 64, out)  # the tile size does not matter
    np.testing.assert_array_equal(out, got)
    np.testing.assert_allclose(got, (scaled.astype(np.float64) ** 2).sum(1), rtol=1e-13)
    assert common.row_norms_sq(raw[:3], scale=1 / 255).dtype == np.float32  # the rows' dtype
    monkeypatch.setenv("DASKMEANS_KERNELS", "numpy")
    ref = common.row_norms_sq(raw, np.float64, scale=1 / 255)
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
    common_compiled.winner_sq(X, C, lab, out)
    ref = ((X.astype(np.float64) - C[lab]) ** 2).sum(1)
    np.testing.assert_allclose(out, ref, rtol=1e-13)
    labels, sq = common.assign(X, C)
    np.testing.assert_allclose(sq, ((X.astype(np.float64) - C[labels]) ** 2).sum(1),
                               rtol=1e-13)


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
    plain = lloyd.lloyd_runs(X, C).parts[0]
    lab_assign, _ = common.assign(X, C)
    _, st, _ = bounds.bounds_block(X, C, bounds.BlockBounds.fresh(400, 1), None, version=0)
    for got in (lab_assign, st.labels):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(plain.counts, np.bincount(want, minlength=3))


def test_merge_top_keeps_the_farthest_rows_of_blocks_smaller_than_asked() -> None:
    """Three rows asked for, from blocks holding fewer: the merge keeps min(3, rows of
    both), the largest keys first (ties: the smaller index), by hand; then against the
    brute-force top 3 of the union, whatever the order of the merges."""
    def block(keys: list[float], offset: int, m: int = 3) -> common.TopM:
        n = len(keys)
        rows = np.arange(offset, offset + n, dtype=np.float64)[:, None]
        return common.top_m(np.array(keys), m, rows, np.zeros(n, np.int32), np.ones(n),
                            offset)

    one, two = block([5.0], 0), block([7.0, 1.0], 1)
    both = common.merge_top(one, two)
    assert both.sqdist.tolist() == [7.0, 5.0, 1.0] and both.index.tolist() == [1, 0, 2]
    assert both.rows[:, 0].tolist() == [1.0, 0.0, 2.0] and both.cap == 3
    # rows that know no cap (built by hand): all of them are kept
    bare = [common.TopM(np.array([k]), np.array([i]), np.zeros((1, 1)),
                        np.zeros(1, np.int32), np.ones(1)) for i, k in enumerate([2.0, 3.0])]
    assert common.merge_top(*bare).sqdist.tolist() == [3.0, 2.0]
    # a bisecting block's slots record the rows asked for, not the rows they hold
    tree = bisect.TreeSnapshot(np.array([-1]), np.array([-1]), np.zeros((1, 1)),
                               np.array([0]))
    step = bisect.BisectStep(tree, np.zeros((1, 1, 2, 1)), np.ones((1, 1), bool),
                             np.zeros((1, 1), np.int64), sample=3)
    tops = [bisect.bisect_block(np.array([[float(i)]]), None, step, offset=i).top[0][0]
            for i in range(4)]
    assert [t.cap for t in tops] == [3, 3, 3, 3]
    merged = common.merge_top(common.merge_top(tops[0], tops[1]),
                              common.merge_top(tops[2], tops[3]))
    keys = np.concatenate([t.sqdist for t in tops])
    index = np.concatenate([t.index for t in tops])
    want = index[np.lexsort((index, -keys))[:3]]
    assert merged.index.tolist() == want.tolist() and len(merged.index) == 3
    # random blocks of 0 to 4 rows against the brute-force top 5 of the union
    rng = np.random.default_rng(0)
    sizes = rng.integers(0, 5, 12)
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    keys = rng.integers(0, 6, int(sizes.sum())).astype(np.float64)  # ties too
    parts = [block(keys[o:o + s].tolist(), int(o), 5) for o, s in zip(offsets, sizes, strict=True)]
    total = parts[0]
    for p in parts[1:]:
        total = common.merge_top(p, total)
    order = np.lexsort((np.arange(len(keys)), -keys))[:5]
    assert total.index.tolist() == order.tolist()
    assert total.sqdist.tolist() == keys[order].tolist()


def test_merge_top_of_csr_rows_equals_the_dense_merge() -> None:
    """Farthest rows kept as CSR (a sparse Lloyd pass's), merged with each other and
    with an empty block's dense rows: the rows, keys and order of the dense merge."""
    import scipy.sparse as sp

    rng = np.random.default_rng(1)
    X = rng.random((12, 6))
    X[X < 0.6] = 0
    keys = rng.integers(0, 4, 12).astype(np.float64)  # ties too

    def tops(rows: np.ndarray | sp.csr_matrix) -> list[common.TopM]:
        return [common.top_m(keys[a:b], 4, rows[a:b], np.zeros(b - a, np.int32),
                             np.ones(b - a), a) for a, b in [(0, 5), (5, 5), (5, 12)]]

    dense = tops(X)
    csr = tops(sp.csr_matrix(X))
    assert sp.issparse(csr[0].rows) and not sp.issparse(csr[1].rows)  # empty: dense
    want = common.merge_top(common.merge_top(dense[0], dense[1]), dense[2])
    got = common.merge_top(common.merge_top(csr[0], csr[1]), csr[2])
    assert sp.issparse(got.rows) and got.cap == 4
    assert got.index.tolist() == want.index.tolist()
    np.testing.assert_array_equal(got.rows.toarray(), want.rows)
    np.testing.assert_array_equal(want.rows, X[want.index])


def _splitmix64(index: int, seed: int) -> float:
    """splitmix64 of ``index + seed * golden`` in Python integers, as a [0, 1) double."""
    mask = (1 << 64) - 1
    z = (index + (seed & mask) * 0x9E3779B97F4A7C15) & mask
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
    z ^= z >> 31
    return (z >> 11) / float(1 << 53)


def test_splitmix_uniform_equals_an_integer_reference() -> None:
    idx = np.array([0, 1, 2, 12345, 2**40 + 7])
    for seed in (0, 42, -3):
        want = [_splitmix64(int(i), seed) for i in idx]
        assert common.splitmix64_uniform(idx, seed).tolist() == want


def test_weighted_sample_takes_the_largest_keys_of_any_chunking() -> None:
    """Efraimidis-Spirakis: the rows with the ``m`` largest ``log(u) / w`` (zero weight:
    never), by brute force; the same rows from two chunks merged."""
    rng = np.random.default_rng(5)
    X = rng.normal(size=(40, 3))
    w = rng.uniform(0.1, 3, 40)
    w[::9] = 0
    index = np.arange(100, 140)
    got = common.weighted_sample(X, np.zeros(40, np.int32), w, index, 6, seed=9)
    u = np.array([_splitmix64(int(i), 9) for i in index])
    key = np.where(w > 0, np.log(u) / np.where(w > 0, w, 1), -np.inf)
    want = np.argsort(-key, kind="stable")[:6]
    assert got.index.tolist() == index[want].tolist()
    np.testing.assert_array_equal(got.rows, X[want])
    np.testing.assert_allclose(got.sqdist, key[want], rtol=1e-12)
    halves = common.merge_top(
        common.weighted_sample(X[:15], np.zeros(15, np.int32), w[:15], index[:15], 6, 9),
        common.weighted_sample(X[15:], np.zeros(25, np.int32), w[15:], index[15:], 6, 9))
    assert halves.index.tolist() == got.index.tolist()


def test_small_helpers_by_hand() -> None:
    X = np.array([[1.0, 0.0], [2.0, 2.0], [3.0, 4.0]], np.float32)
    sums = common.cluster_sums(X, np.array([1, 0, 1], np.int32), 3, np.array([1.0, 2.0, 0.5]))
    assert sums.tolist() == [[4.0, 4.0], [2.5, 2.0], [0.0, 0.0]]
    two = common.cluster_sums(X, np.array([[0, 2], [1, 2], [0, 3]], np.int32), 4)  # 2 runs
    assert two.tolist() == [[4.0, 4.0], [2.0, 2.0], [3.0, 2.0], [3.0, 4.0]]
    assert common.weighted_sse(np.array([1.0, 4.0], np.float32), None) == 5.0
    assert common.weighted_sse(np.array([1.0, 4.0]), np.array([2.0, 0.5])) == 4.0
    np.testing.assert_allclose(common.normalize_rows(np.array([[3.0, 4.0], [0.0, 0.0]])),
                               [[0.6, 0.8], [0.0, 0.0]])
    assert common.padded_k(3) == 4 and common.padded_k(10) == 16 and common.padded_k(17) == 17


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_distances_are_zero_on_a_centre_and_match_brute_force(dtype: type) -> None:
    """Rows that are centres are at distance exactly 0 (the expansion alone leaves a
    few ulps of their norms); every other distance matches the differences'."""
    rng = np.random.default_rng(0)
    X = (rng.normal(size=(500, 30)) * 10 + 50).astype(dtype)
    C = X[[3, 77, 401]].astype(np.float64)
    D = common.distances(X, C)
    assert D.dtype == dtype
    assert D[3, 0] == D[77, 1] == D[401, 2] == 0
    brute = np.sqrt(((X.astype(np.float64)[:, None, :] - C[None]) ** 2).sum(-1))
    np.testing.assert_allclose(D, brute, rtol=1e-3 if dtype == np.float32 else 1e-9,
                               atol=1e-2 if dtype == np.float32 else 1e-9)


def _prepared_fields(cen: common.Centres) -> list[np.ndarray]:
    return [cen.m2t, cen.sq, cen.centres(), cen.centres64(), cen.row_sq64(), cen.csq64()]


def _prepared_by_copies(C: np.ndarray, dtype: np.dtype) -> list[np.ndarray]:
    """What :class:`common.Centres` prepared when it always copied: ``-2 C`` made,
    transposed into ``m2t`` and halved back into the centres."""
    k, d = C.shape
    kp = common.padded_k(k)
    m2 = np.empty((k, d), dtype=dtype)
    np.multiply(C, -2, out=m2, casting="unsafe")
    m2t = np.zeros((d, kp), dtype=dtype)
    m2t[:, :k] = m2.T
    sq = np.full(kp, np.inf, dtype=dtype)
    Cd = C.astype(dtype, copy=False)
    sq[:k] = np.einsum("ij,ij->i", Cd, Cd)
    np.divide(m2, -2, out=m2)
    C64 = m2.astype(np.float64)
    exact = C64 if dtype == np.float64 else m2t[:, :k].T.astype(np.float64) * -0.5
    csq = np.full(kp, np.inf)
    csq[:k] = np.einsum("ij,ij->i", exact, exact)
    return [m2t, sq, m2, C64, (C64 * C64).sum(1), csq]


@pytest.mark.parametrize("k", [3, 20])
def test_centres_of_their_own_dtype_are_kept_and_prepare_the_same_values(k: int) -> None:
    rng = np.random.default_rng(0)
    C = rng.normal(size=(k, 37))
    cen = common.Centres(C, np.dtype(np.float64))
    assert cen.centres() is C  # kept, not copied
    huge = C.copy()
    huge[0, 0] = 1e308  # -2 c overflows: the centres read back are m2t's, as before
    for A, dtype in [(C, np.float64), (np.asfortranarray(C), np.float64),
                     (C, np.float32), (C.astype(np.float32), np.float32),
                     (C.astype(np.float32), np.float64), (huge, np.float64)]:
        with np.errstate(over="ignore"):
            got = _prepared_fields(common.Centres(A, np.dtype(dtype)))
            want = _prepared_by_copies(A, np.dtype(dtype))
        for a, b in zip(got, want, strict=True):
            np.testing.assert_array_equal(a, b)
    with np.errstate(over="ignore"):
        assert np.isinf(common.Centres(huge, np.dtype(np.float64)).centres()[0, 0])


def test_squares_and_centres_temporaries() -> None:
    rng = np.random.default_rng(0)
    A = rng.normal(size=(5, 11))
    sq = common.squares(A)
    np.testing.assert_array_equal(sq, A * A)
    assert sq.flags.c_contiguous and sq.shape == A.shape
    np.testing.assert_array_equal(common.squares(A).sum(1), (A * A).sum(1))
    F = np.asfortranarray(A)
    assert common.squares(F).flags.f_contiguous  # the layout A * A has
    t = common.centres_temporary("test", (3, 4), np.float32)
    assert t.shape == (3, 4) and t.dtype == np.float32 and t.flags.c_contiguous
    assert np.shares_memory(t, common.centres_temporary("test", (2, 6), np.float32))
    big = (common.CENTRES_SCRATCH_MAX_BYTES // 8 + 1,)
    assert not np.shares_memory(common.centres_temporary("test2", big, np.float64),
                                common.centres_temporary("test2", big, np.float64))
