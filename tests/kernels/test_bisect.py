"""Bisecting kernels: the tree descent and the 2-means step, compiled against the numpy
reference, and raw uint8 rows against their float32 rows bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from daskmeans.kernels import bisect


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
