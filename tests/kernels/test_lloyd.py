"""The Lloyd kernel: hand-computed cases and brute-force references under both kernels,
and the compiled fused loop against the numpy reference."""

from __future__ import annotations

import numpy as np
import pytest

from daskmeans.kernels import common, common_compiled, lloyd

from .reference import brute_sqdist


@pytest.mark.usefixtures("both_kernels")
def test_lloyd_partial_hand_computed_and_additive() -> None:
    X = np.array([[0.0, 0.0], [0.0, 2.0], [9.0, 9.0], [10.0, 9.0]])
    C = np.array([[0.0, 1.0], [9.0, 9.0], [100.0, 100.0]])
    p = lloyd.lloyd_partial(X, C, n_top=2)
    assert p.sums.tolist() == [[0.0, 2.0], [19.0, 18.0], [0.0, 0.0]]
    assert p.counts.tolist() == [2.0, 2.0, 0.0]
    assert p.sse(C) == pytest.approx(3.0)
    # the farthest rows, largest first, ties to the smaller index
    assert p.top.index.tolist() == [0, 1] and p.top.sqdist.tolist() == [1.0, 1.0]
    halves = (lloyd.lloyd_partial(X[:2], C, n_top=2)
              + lloyd.lloyd_partial(X[2:], C, offset=2, n_top=2))
    np.testing.assert_array_equal(halves.sums, p.sums)
    assert halves.sse(C) == pytest.approx(p.sse(C))
    assert halves.top.index.tolist() == [0, 1]
    # blocks of one row each, three rows asked for: the sum keeps the three farthest
    ones = [lloyd.lloyd_partial(X[i:i + 1], C, offset=i, n_top=3) for i in range(4)]
    total = ones[0] + ones[1] + ones[2] + ones[3]
    assert total.top.index.tolist() == [0, 1, 3] and total.top.sqdist.tolist() == [1, 1, 1]


@pytest.mark.usefixtures("both_kernels")
@pytest.mark.parametrize("fused", [True, False])  # sums per cached block, or per chunk
@pytest.mark.parametrize("k", [5, 10, 16])  # 5 and 10 run the GEMM padded to 8 and 16
def test_lloyd_partial_brute_force_over_blocks(
    k: int, fused: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(k)
    X = rng.normal(size=(700, 6)).astype(np.float32)
    C = rng.normal(size=(k, 6)).astype(np.float32)
    w = rng.uniform(0, 2, 700)
    monkeypatch.setattr(common, "ROW_BLOCK", 64)  # 11 blocks, the last one short
    monkeypatch.setattr(common, "SUM_BLOCK", 100)
    monkeypatch.setattr(common, "FUSED_SUMS_MAX_BYTES", 1 << 20 if fused else 0)
    p = lloyd.lloyd_partial(X, C, w)
    D = brute_sqdist(X, C)
    lab = D.argmin(1)
    onehot = np.eye(k)[lab] * w[:, None]
    np.testing.assert_allclose(p.counts, onehot.sum(0), rtol=1e-12)
    np.testing.assert_allclose(p.sums, onehot.T @ X.astype(np.float64), rtol=1e-5, atol=1e-5)
    assert p.sse() == pytest.approx(float(D.min(1) @ w), rel=1e-5)
    # |x|^2 known in advance (float64, as sources keep them): the same partial
    given = lloyd.lloyd_partial(X, C, w, xsq=common.row_norms_sq(X, np.float64))
    np.testing.assert_array_equal(given.sums, p.sums)
    assert given.sse() == p.sse()
    # the SSE comes from the sums (exact): closer to float64 than float32 distances
    exact = float(((X.astype(np.float64) - C.astype(np.float64)[lab]) ** 2).sum(1) @ w)
    assert p.sse() == pytest.approx(exact, rel=1e-12)


@pytest.mark.usefixtures("both_kernels")
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
    monkeypatch.setattr(common, "ROW_BLOCK", 64)  # 11 blocks, the last one short
    monkeypatch.setattr(common, "SUM_BLOCK", 128)
    monkeypatch.setattr(common, "FUSED_SUMS_MAX_BYTES", 1 << 20 if fused else 0)
    data, kw = (U, {"scale": 1 / 255}) if raw else (X, {})
    kw |= {"n_top": 3, "moments": True, "n_sample": 4, "offset": 10}
    runs = lloyd.lloyd_runs(data, np.concatenate(Cs), w, runs=3, **kw).parts
    assert len(runs) == 3
    for C, got in zip(Cs, runs, strict=True):
        want = lloyd.lloyd_partial(data, C, w, **kw)
        np.testing.assert_array_equal(got.sums, want.sums)
        np.testing.assert_array_equal(got.counts, want.counts)
        assert got.sq == want.sq and got.n_rows == want.n_rows
        np.testing.assert_array_equal(got.moments.m2, want.moments.m2)
        for a, b in ((got.top, want.top), (got.sample, want.sample)):
            np.testing.assert_array_equal(a.rows, b.rows)
            np.testing.assert_array_equal(a.labels, b.labels)  # each run's own 0..k-1
            np.testing.assert_array_equal(a.index, b.index)
    with pytest.raises(ValueError, match="runs must divide the 30 stacked centres, got 4"):
        lloyd.lloyd_runs(X, np.concatenate(Cs), runs=4)


@pytest.mark.usefixtures("both_kernels")
def test_lloyd_runs_hand_computed() -> None:
    X = np.array([[0.0, 0.0], [0.0, 2.0], [9.0, 9.0]])
    a, b = lloyd.lloyd_runs(X, np.array([[0.0, 1.0], [9.0, 9.0], [0.0, 0.0], [1.0, 1.0]]),
                        runs=2).parts
    assert a.sums.tolist() == [[0.0, 2.0], [9.0, 9.0]] and a.sse() == 2.0
    assert b.sums.tolist() == [[0.0, 0.0], [9.0, 11.0]] and b.counts.tolist() == [1.0, 2.0]
    assert b.sse() == 0.0 + 2.0 + 128.0
    s = (lloyd.LloydRuns((a, b)) + lloyd.LloydRuns((a, b))).parts
    assert s[1].counts.tolist() == [2.0, 4.0] and s[0].sse() == 4.0


@pytest.mark.usefixtures("both_kernels")
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
    monkeypatch.setattr(common, "ROW_BLOCK", 64)  # 11 blocks, the last one short
    monkeypatch.setattr(common, "SUM_BLOCK", 128)  # unfused: scaled and summed 128 rows at a time
    monkeypatch.setattr(common, "FUSED_SUMS_MAX_BYTES", 1 << 20 if fused else 0)
    kw = {"n_top": 3, "moments": True, "n_sample": 4, "offset": 10}
    a = lloyd.lloyd_partial(X, C, w, **kw)
    b = lloyd.lloyd_partial(U, C, w, scale=1 / 255, **kw)
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
    np.testing.assert_array_equal(common.scale_rows(U, 1 / 255), X)


@pytest.mark.usefixtures("both_kernels")
@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")  # inf * 0 in numpy
def test_non_finite_distance_names_the_row() -> None:
    X = np.zeros((300, 3), np.float32)
    X[201, 1] = np.nan
    with pytest.raises(common.NonFiniteRow) as e:
        lloyd.lloyd_partial(X, np.ones((2, 3)))
    assert e.value.row == 201
    with pytest.raises(common.NonFiniteRow) as e:  # raw rows: an infinite centre
        lloyd.lloyd_partial(np.zeros((300, 3), np.uint8), np.full((1, 3), np.inf), scale=1.0)
    assert e.value.row == 0


@pytest.mark.parametrize("rows", ["float32", "float64", "uint8"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("runs", [1, 3])
def test_compiled_lloyd_equals_numpy_reference(
    rows: str, weighted: bool, runs: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The compiled fused loop gives the reference's labels (counts, farthest rows) and
    its sums and SSE to float rounding; inputs are left untouched."""
    monkeypatch.setattr(common_compiled, "TILE", 64)  # several tiles, the last one short
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
    got = lloyd.lloyd_runs(data, C, w, **kw).parts
    monkeypatch.setenv("DASKMEANS_KERNELS", "numpy")
    want = lloyd.lloyd_runs(data, C, w, **kw).parts
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
