"""Bisecting kernels: the tree descent and the 2-means step, compiled against the numpy
reference, and raw uint8 rows against their float32 rows bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from daskmeans.kernels import bisect

from .reference import brute_sqdist, brute_two_means


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
    tree = bisect.TreeSnapshot(left, right, centre, np.array([-1, 0, -1, 1, 2]))
    step = bisect.BisectStep(tree, rng.normal(size=(3, 2, 2, 9)), np.ones((3, 2), bool),
                        np.zeros((3, 2), np.int64))
    w = rng.uniform(0, 2, 600) if weighted else None
    before = X.copy()
    monkeypatch.setenv("DASKMEANS_KERNELS", "numba")
    nodes = bisect.tree_nodes(X, tree)
    got = bisect.bisect_block(X, w, step, offset=7)
    monkeypatch.setenv("DASKMEANS_KERNELS", "numpy")
    np.testing.assert_array_equal(nodes, bisect.tree_nodes(X, tree))
    assert set(np.unique(nodes)) == {1, 3, 4}
    want = bisect.bisect_block(X, w, step, offset=7)
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
    assert bisect.uses_compiled(U, scale) == (kernels == "numba")
    # root -> 1, 2; 2 -> 3, 4; 3 -> 5, 6: leaves 1, 4, 5, 6, three of them bisected
    left, right = np.array([1, -1, 3, 5, -1, -1, -1]), np.array([2, -1, 4, 6, -1, -1, -1])
    centre = np.stack([F.mean(0), *F[:6]]).astype(np.float64)
    tree = bisect.TreeSnapshot(left, right, centre, np.array([-1, 0, -1, -1, 1, 2, -1]))
    leaf_label = np.array([-1, 0, -1, -1, 1, 2, 3])
    w = rng.integers(0, 3, 700).astype(np.float64) if weighted else None  # zeros too
    before = U.copy()

    nodes = bisect.tree_nodes(U, tree, scale)
    np.testing.assert_array_equal(nodes, bisect.tree_nodes(F, tree))
    assert set(np.unique(nodes)) == {1, 4, 5, 6}
    np.testing.assert_array_equal(bisect.tree_labels(U, tree, leaf_label, scale),
                                  bisect.tree_labels(F, tree, leaf_label))
    tc = bisect.TreeCentres(tree, leaf_label, centre[[1, 4, 5, 6]])
    for a, b in zip(bisect.tree_assign(U, tc, scale), bisect.tree_assign(F, tc), strict=True):
        np.testing.assert_array_equal(a, b)

    C = F[rng.choice(700, (3, 2, 2))].astype(np.float64)  # 3 slots, 2 runs
    active = np.array([[True, True], [True, False], [True, True]])
    seeds = rng.integers(0, 1 << 40, (3, 2))
    steps = [bisect.BisectStep(tree, C, active, seeds),
             bisect.BisectStep(tree, C, active, seeds, sample=2, weighted=True),
             bisect.BisectStep(tree, C, active, seeds, sample=50, weighted=False)]
    for step in steps:
        for given in (None, nodes):
            got = bisect.bisect_block(U, w, step, offset=11, nodes=given, scale=scale)
            want = bisect.bisect_block(F, w, step, offset=11, nodes=given)
            for f in ("sums", "weight", "sse", "count"):
                np.testing.assert_array_equal(getattr(got, f), getattr(want, f), err_msg=f)
            for s, j in np.ndindex(*active.shape):
                a, b = got.top[s][j], want.top[s][j]
                assert a.rows.dtype == np.float32
                assert len(a.index) > 0 or not (active[s, j] or step.sample)
                for f in ("sqdist", "index", "rows", "labels", "weights"):
                    np.testing.assert_array_equal(getattr(a, f), getattr(b, f), err_msg=f)
    np.testing.assert_array_equal(U, before)


@pytest.mark.usefixtures("both_kernels")
def test_tree_root_and_two_means_by_hand_and_brute_force() -> None:
    """The tree descent, the root's statistics and a 2-means step: by hand on a few
    rows, then every child's sums, weights, SSE and counts against loops in float64."""
    # root 0 -> 1 (centre 0), 2 (centre 10); 2 -> 3 (centre 8), 4 (centre 12)
    tree = bisect.TreeSnapshot(np.array([1, -1, 3, -1, -1]), np.array([2, -1, 4, -1, -1]),
                               np.array([[5.0], [0.0], [10.0], [8.0], [12.0]]),
                               np.array([-1, 0, -1, 1, -1]))
    rows = np.array([[1.0], [5.0], [9.0], [10.0], [13.0]])
    assert bisect.tree_nodes(rows, tree).tolist() == [1, 1, 3, 3, 4]  # 5: tie, the left
    leaf = np.array([-1, 0, -1, 1, 2])
    assert bisect.tree_labels(rows, tree, leaf).tolist() == [0, 0, 1, 1, 2]
    lab, sq = bisect.tree_assign(rows, bisect.TreeCentres(tree, leaf,
                                                          np.array([[0.0], [8.0], [12.0]])))
    assert lab.tolist() == [0, 0, 1, 1, 2] and sq.tolist() == [1.0, 25.0, 1.0, 4.0, 1.0]
    root = bisect.root_block(rows, np.array([1.0, 1.0, 2.0, 0.0, 1.0]))
    assert (root.sum.tolist(), root.wsum.tolist(), root.n) == ([38.0], [37.0], 5)
    assert (root.weight, root.wsq) == (5.0, 1 + 25 + 162 + 169)
    rng = np.random.default_rng(4)
    X = rng.normal(size=(500, 3))
    w = rng.uniform(0, 2, 500)
    flat = bisect.TreeSnapshot(np.array([-1]), np.array([-1]), np.zeros((1, 3)), np.array([0]))
    centres = rng.normal(size=(1, 2, 2, 3))  # one slot, two runs
    step = bisect.BisectStep(flat, centres, np.ones((1, 2), bool), np.zeros((1, 2), np.int64))
    got = bisect.bisect_block(X, w, step, offset=3)
    for j in range(2):
        d = ((X[:, None, :] - centres[0, j][None]) ** 2).sum(-1)
        child = (d[:, 1] < d[:, 0]).astype(int)
        for c in (0, 1):
            sel = child == c
            np.testing.assert_allclose(got.sums[0, j, c], w[sel] @ X[sel], rtol=1e-12)
            assert got.weight[0, j, c] == pytest.approx(w[sel].sum(), rel=1e-12)
            assert got.sse[0, j, c] == pytest.approx(d[sel, c] @ w[sel], rel=1e-12)
            assert got.count[0, j, c] == sel.sum()
        far = np.lexsort((np.arange(500), -d[np.arange(500), child]))[:2]
        assert got.top[0][j].index.tolist() == (far + 3).tolist()


@pytest.mark.usefixtures("both_kernels")
def test_two_means_by_hand() -> None:
    """A leaf's whole 2-means on a few rows: by hand, with an empty child relocated and
    with rows of the array that are not the leaf's left alone."""
    X = np.array([[0.0], [1.0], [100.0], [9.0], [10.0]])  # row 2 is another leaf's
    pos = np.array([0, 1, 3, 4])
    got = bisect.two_means(X, pos, np.ones(5), np.array([[0.0], [1.0]]), max_iter=10, tol=0.0)
    # 1: {0} {1, 9, 10} -> 0, 20/3; 2: {0, 1} {9, 10} -> 0.5, 9.5; 3: no change
    assert got.centres.ravel().tolist() == [0.5, 9.5] and got.n_iter == 3
    assert got.labels.tolist() == [0, 0, 1, 1]
    assert got.sse.tolist() == [0.5, 0.5] and got.count.tolist() == [2, 2]
    assert got.weight.tolist() == [2.0, 2.0]
    # both centres far to the right: every row goes to the first, the second (empty)
    # takes the farthest row (0), which leaves the first: {1, 9, 10} and {0}
    w = np.array([1.0, 1.0, 1.0, 2.0, 1.0])
    got = bisect.two_means(X, pos, w, np.array([[50.0], [60.0]]), max_iter=1, tol=0.0)
    assert got.n_iter == 1
    assert got.centres.ravel().tolist() == [(1 + 18 + 10) / 4, 0.0]
    assert got.labels.tolist() == [1, 1, 0, 0]  # the final assignment to those centres
    assert got.weight.tolist() == [3.0, 2.0] and got.count.tolist() == [2, 2]
    assert got.sse.tolist() == [2 * 1.75 ** 2 + 2.75 ** 2, 1.0]
    # a loose tolerance stops after the first iteration (then the last assignment)
    got = bisect.two_means(X, pos, np.ones(5), np.array([[0.0], [1.0]]), max_iter=10, tol=50)
    assert got.n_iter == 1 and got.centres.ravel().tolist() == [0.0, 20 / 3]


@pytest.mark.usefixtures("both_kernels")
@pytest.mark.parametrize("weighted", [False, True])
def test_two_means_equals_brute_force(weighted: bool) -> None:
    """Random leaves of random rows, from random and from tied (equal) starting centres:
    the centres, labels, children's SSE, weights and counts of a row-by-row float64
    2-means."""
    rng = np.random.default_rng(8)
    X = np.concatenate([rng.normal(size=(150, 4)), rng.normal(3, 1, size=(150, 4))])
    w = rng.integers(0, 3, 300).astype(np.float64) if weighted else np.ones(300)
    for trial in range(6):
        pos = np.sort(rng.choice(300, 120, replace=False))
        C0 = X[rng.choice(300, 2)] if trial % 3 else np.repeat(X[pos[:1]], 2, axis=0)
        for max_iter, tol in ((300, 0.0), (300, 1e-2), (2, 0.0)):
            got = bisect.two_means(X, pos, w, C0, max_iter=max_iter, tol=tol)
            C, lab, n_iter = brute_two_means(X[pos], w[pos], C0, max_iter, tol)
            np.testing.assert_allclose(got.centres, C, rtol=1e-10, atol=1e-12)
            np.testing.assert_array_equal(got.labels, lab)
            assert got.n_iter == n_iter
            d = brute_sqdist(X[pos], C)
            for c in (0, 1):
                sel = lab == c
                assert got.sse[c] == pytest.approx(d[sel, c] @ w[pos][sel], rel=1e-10)
                assert got.weight[c] == pytest.approx(w[pos][sel].sum(), rel=1e-12)
                assert got.count[c] == sel.sum()


@pytest.mark.parametrize("dtype", ["float32", "float64", "uint8"])
@pytest.mark.parametrize("weighted", [False, True])
def test_compiled_two_means_equals_numpy_reference(
    dtype: str, weighted: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The compiled 2-means (distance bounds, sums changed by the rows that move) ends
    where the reference (every row, every iteration) does; raw uint8 rows as their
    float32 rows, bit for bit; root statistics likewise."""
    rng = np.random.default_rng(9)
    if dtype == "uint8":
        X, scale = rng.integers(0, 256, size=(800, 40), dtype=np.uint8), 1 / 255
        F = X.astype(np.float32) * np.float32(scale)
    else:
        X, scale = (rng.normal(size=(800, 40)) + np.arange(800)[:, None] % 3).astype(dtype), None
        F = X
    w = rng.uniform(0, 2, 800) * (rng.uniform(size=800) > 0.1) if weighted else np.ones(800)
    pos = np.sort(rng.choice(800, 600, replace=False))
    C0 = F[pos[:2]].astype(np.float64)
    got = {}
    for kernels in ("numba", "numpy"):
        monkeypatch.setenv("DASKMEANS_KERNELS", kernels)
        got[kernels] = bisect.two_means(X, pos, w, C0, max_iter=300, tol=1e-6, scale=scale)
        if scale is not None:
            same = bisect.two_means(F, pos, w, C0, max_iter=300, tol=1e-6)
            for f in ("centres", "labels", "sse", "weight", "count", "n_iter"):
                np.testing.assert_array_equal(getattr(got[kernels], f), getattr(same, f))
            a, b = bisect.root_rows(X, w, scale), bisect.root_rows(F, w)
            np.testing.assert_array_equal(a.sum, b.sum)
            assert a.wsq == b.wsq
    a, b = got["numba"], got["numpy"]
    assert a.n_iter == b.n_iter > 2
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.count, b.count)
    np.testing.assert_allclose(a.centres, b.centres, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(a.sse, b.sse, rtol=1e-9)
    np.testing.assert_allclose(a.weight, b.weight, rtol=1e-12)
    monkeypatch.setenv("DASKMEANS_KERNELS", "numba")
    r64 = bisect.root_rows(X, w, scale)
    monkeypatch.setenv("DASKMEANS_KERNELS", "numpy")
    ref = bisect.root_rows(X, w, scale)
    np.testing.assert_allclose(r64.sum, ref.sum, rtol=1e-10)
    np.testing.assert_allclose(r64.wsum, ref.wsum, rtol=1e-10)
    assert r64.wsq == pytest.approx(ref.wsq, rel=1e-10)


@pytest.mark.usefixtures("both_kernels")
def test_leaf_sample_draws_what_an_init_pass_draws() -> None:
    """A leaf's init rows drawn from its rows held together are those a masked init
    pass draws from the same rows spread over blocks (weighted and uniform keys)."""
    rng = np.random.default_rng(10)
    X = rng.normal(size=(400, 3))
    w = rng.integers(0, 3, 400).astype(np.float64)
    tree = bisect.TreeSnapshot(np.array([1, -1, -1]), np.array([2, -1, -1]),
                               np.array([[0.0] * 3, [-1.0] * 3, [1.0] * 3]),
                               np.array([-1, 0, -1]))
    pos = np.flatnonzero(bisect.tree_nodes(X, tree) == 1)
    for m, weighted in ((2, True), (30, False)):
        step = bisect.BisectStep(tree, np.zeros((1, 1, 2, 3)), np.ones((1, 1), bool),
                                 np.array([[12345]]), sample=m, weighted=weighted)
        parts = [bisect.bisect_block(X[s:s + 70], w[s:s + 70], step, offset=s)
                 for s in range(0, 400, 70)]
        want = parts[0]
        for p in parts[1:]:
            want = want + p
        got = bisect.leaf_sample(X, pos, pos, w, 12345, m, weighted)
        np.testing.assert_array_equal(got.index, want.top[0][0].index)
        np.testing.assert_array_equal(got.rows, want.top[0][0].rows)
