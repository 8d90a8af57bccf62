"""The mini-batch step kernel: a hand-computed case, a brute-force reference under both
kernels, the compiled step against the numpy reference, its threaded form, raw pixels,
a block's share of a step (rows held elsewhere), and inputs never mutated."""

from __future__ import annotations

import numpy as np
import pytest

from daskmeans.kernels import common, minibatch


def brute_step(X: np.ndarray, C: np.ndarray, counts: np.ndarray, w: np.ndarray | None
               ) -> tuple[np.ndarray, np.ndarray, float]:
    """scikit-learn's step written out: nearest centre in float64, then for every centre
    with batch weight ``wb > 0``: ``c <- (c N + sum w x) / (N + wb)``; the inertia is
    the weighted SSE against the centres before the update."""
    X64, C64 = X.astype(np.float64), C.astype(np.float64)
    w = np.ones(len(X)) if w is None else w
    d2 = ((X64[:, None, :] - C64[None]) ** 2).sum(-1)
    lab = d2.argmin(1)
    new, n = C64.copy(), counts.astype(np.float64).copy()
    for j in range(len(C)):
        mine = lab == j
        wb = w[mine].sum()
        if wb > 0:
            new[j] = (C64[j] * n[j] + (w[mine, None] * X64[mine]).sum(0)) / (n[j] + wb)
            n[j] += wb
    return new, n, float((d2[np.arange(len(X)), lab] * w).sum())


@pytest.mark.usefixtures("both_kernels")
def test_hand_computed_step() -> None:
    X = np.array([[0.0, 0.0], [0.0, 2.0], [9.0, 9.0], [7.0, 7.0]])
    C = np.array([[0.0, 1.0], [8.0, 8.0], [50.0, 50.0]])
    # batch: rows 0, 1, 2 and row 2 again; centre 0 has seen 2 rows, 1 and 2 none
    step = minibatch.minibatch_step([(X, np.array([0, 1, 2, 2]))], C,
                                    np.array([2.0, 0.0, 0.0]), picks=np.array([3, 0]))
    # centre 0: (2 * [0, 1] + [0, 2]) / 4; centre 1: the mean of two [9, 9]
    assert step.centers.tolist() == [[0.0, 1.0], [9.0, 9.0], [50.0, 50.0]]
    assert step.counts.tolist() == [4.0, 2.0, 0.0]
    assert step.inertia == pytest.approx(1 + 1 + 2 + 2)
    assert step.n_rows == 4
    assert step.picked.tolist() == [[9.0, 9.0], [0.0, 0.0]]  # positions 3 and 0
    # weighted: row 1 counts three times, row 0 not at all
    w = np.array([0.0, 3.0, 1.0, 1.0])
    step = minibatch.minibatch_step([(X, np.array([0, 1, 2, 2]))], C,
                                    np.array([2.0, 0.0, 0.0]), w)
    assert step.centers[0].tolist() == [0.0, (2 * 1 + 3 * 2) / 5]
    assert step.counts.tolist() == [5.0, 2.0, 0.0]
    assert step.inertia == pytest.approx(3 * 1 + 2 + 2)


@pytest.mark.usefixtures("both_kernels")
@pytest.mark.parametrize("k", [3, 10, 40])  # padded GEMMs, and wider than a narrow tile
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_brute_force_reference(k: int, weighted: bool, dtype: type) -> None:
    rng = np.random.default_rng(k)
    X = rng.normal(size=(700, 6)).astype(dtype)
    rows = np.sort(rng.integers(0, 700, 300))
    C = X[rng.choice(700, k, replace=False)] + 0.01
    counts = rng.integers(0, 50, k).astype(np.float64)
    w = rng.uniform(0.1, 2.0, 300) if weighted else None
    step = minibatch.minibatch_step([(X, rows)], C, counts, w)
    new, n, inertia = brute_step(X[rows], C, counts, w)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(step.centers, new, rtol=tol, atol=tol)
    np.testing.assert_allclose(step.counts, n, rtol=1e-14)  # weights summed in batch order
    assert step.inertia == pytest.approx(inertia, rel=1e-5 if dtype == np.float32 else 1e-10)


@pytest.mark.parametrize("k", [7, 40])
@pytest.mark.parametrize("weighted", [False, True])
def test_compiled_matches_numpy_and_threads_and_blocks_change_nothing(
    k: int, weighted: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    from daskmeans.kernels import common_compiled

    monkeypatch.setattr(common_compiled, "TILE", 64)  # several tiles, the last short
    rng = np.random.default_rng(3)
    X = rng.normal(size=(1000, 9)).astype(np.float32)
    rows = np.sort(rng.integers(0, 1000, 517))
    C = X[:k] + 0.1
    counts = rng.integers(0, 9, k).astype(np.float64)
    w = rng.uniform(0.5, 2.0, len(rows)) if weighted else None
    got = minibatch.minibatch_step([(X, rows)], C, counts, w)
    # the same batch from blocks of the rows (a store's held blocks): the same bits
    cut = np.searchsorted(rows, [0, 300, 301, 1000])
    parts = [(X[a:b], rows[cut[i]:cut[i + 1]] - a)
             for i, (a, b) in enumerate([(0, 300), (300, 301), (301, 1000)])]
    for threads in (1, 2, 3):
        other = minibatch.minibatch_step(parts, C, counts, w, threads=threads)
        np.testing.assert_array_equal(other.centers, got.centers)
        np.testing.assert_array_equal(other.counts, got.counts)
        assert other.inertia == got.inertia
    monkeypatch.setenv("DASKMEANS_KERNELS", "numpy")
    ref = minibatch.minibatch_step([(X, rows)], C, counts, w)
    np.testing.assert_allclose(got.centers, ref.centers, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(got.counts, ref.counts)
    assert got.inertia == pytest.approx(ref.inertia, rel=1e-12)


@pytest.mark.usefixtures("both_kernels")
@pytest.mark.parametrize("threads", [1, 2])
def test_raw_pixels_equal_scaled_rows(threads: int) -> None:
    rng = np.random.default_rng(5)
    raw = rng.integers(0, 256, (400, 4, 5), dtype=np.uint8)  # stored as images
    rows = np.sort(rng.integers(0, 400, 150))
    scaled = raw.reshape(400, -1).astype(np.float32) * np.float32(1 / 255)
    C = scaled[:30] + 0.01
    counts = np.ones(30)
    a = minibatch.minibatch_step([(raw, rows)], C, counts, scale=1 / 255, threads=threads,
                                 picks=np.array([5, 1]))
    b = minibatch.minibatch_step([(scaled, rows)], C, counts, threads=threads,
                                 picks=np.array([5, 1]))
    np.testing.assert_array_equal(a.centers, b.centers)
    assert a.inertia == b.inertia
    np.testing.assert_array_equal(a.picked, b.picked)
    np.testing.assert_array_equal(a.picked, scaled[rows[[5, 1]]])


@pytest.mark.usefixtures("both_kernels")
def test_block_shares_finish_as_the_fused_step() -> None:
    rng = np.random.default_rng(8)
    X = rng.normal(size=(600, 5))
    rows = np.sort(rng.integers(0, 600, 250))
    C, counts, picks = X[:6] + 0.2, np.arange(6.0), np.array([200, 3, 77])
    fused = minibatch.minibatch_step([(X, rows)], C, counts, picks=picks)
    cut = int(np.searchsorted(rows, 321))
    shares = (minibatch.batch_partial(X[rows[:cut]], C, None, positions=np.arange(cut),
                                      picks=picks)
              + minibatch.batch_partial(X[rows[cut:]], C, None,
                                        positions=np.arange(cut, len(rows)), picks=picks))
    step = shares.finish(C, counts, picks)
    np.testing.assert_allclose(step.centers, fused.centers, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(step.counts, fused.counts)
    assert step.inertia == pytest.approx(fused.inertia, rel=1e-9)
    np.testing.assert_array_equal(step.picked, fused.picked)
    np.testing.assert_array_equal(step.picked, X[rows[picks]])


@pytest.mark.usefixtures("both_kernels")
@pytest.mark.parametrize("threads", [1, 2])
def test_inputs_are_not_mutated_and_bad_rows_are_named(threads: int) -> None:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(300, 4)).astype(np.float32)
    rows = np.sort(rng.integers(0, 300, 200))
    C, counts, w = X[:20] + 0.5, np.arange(20.0), rng.uniform(0.5, 1.5, 200)
    copies = [a.copy() for a in (X, rows, C, counts, w)]
    minibatch.minibatch_step([(X, rows)], C, counts, w, threads=threads, picks=np.array([4]))
    for a, b in zip((X, rows, C, counts, w), copies, strict=True):
        np.testing.assert_array_equal(a, b)
    X[rows[130]] = np.nan
    with pytest.raises(common.NonFiniteRow) as err:
        minibatch.minibatch_step([(X, rows)], C, counts, threads=threads)
    assert rows[err.value.row] == rows[130]


def test_update_centres_is_scikit_learns_rule(both_kernels: str) -> None:
    C = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    counts = np.array([3.0, 0.0, 7.0])
    sums = np.array([[4.0, 4.0], [6.0, 2.0], [0.0, 0.0]])
    wsum = np.array([2.0, 2.0, 0.0])
    new, n = minibatch.update_centres(C, counts, sums, wsum)
    # multiplied by the reciprocal of the new count, as scikit-learn does
    np.testing.assert_array_equal(new, [[(3 + 4) * (1 / 5), (6 + 4) * (1 / 5)], [3.0, 1.0],
                                        [5.0, 6.0]])
    np.testing.assert_array_equal(n, [5.0, 2.0, 7.0])
    assert counts.tolist() == [3.0, 0.0, 7.0] and C[1].tolist() == [3.0, 4.0]


@pytest.mark.usefixtures("both_kernels")
def test_block_shares_of_raw_images_with_and_without_picked_rows() -> None:
    rng = np.random.default_rng(9)
    raw = rng.integers(0, 256, (50, 3, 4), dtype=np.uint8)  # a block of images as stored
    C = raw[:4].reshape(4, -1).astype(np.float32) / 255
    for picks in (None, np.array([7]), np.array([70])):  # none, one here, one elsewhere
        share = minibatch.batch_partial(raw, C, None, positions=np.arange(50), picks=picks,
                                        scale=1 / 255)
        assert share.rows.shape == (0 if picks is None or picks[0] >= 50 else 1, 12)
        assert share.rows.dtype == np.float32 and share.part.n_rows == 50
