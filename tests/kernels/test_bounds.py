"""The bounded Lloyd pass: brute force over iterations under both kernels, and the
compiled pass (with and without the group filter) against the numpy reference."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from daskmeans.kernels import bounds, bounds_compiled, common_compiled

from .reference import brute_sqdist


@pytest.mark.usefixtures("both_kernels")
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
    states = [bounds.BlockBounds.fresh(b - a, t) for a, b in parts]
    S, N = np.zeros((6, 5)), np.zeros(6)
    seen: dict[int, np.ndarray] = {}
    margin, skipped = 0.0, 0
    for it in range(8):
        tot = None
        for j, (a, b) in enumerate(parts):
            st = states[j]
            step = None if st.version < 0 else bounds.Drift.of(C, seen[st.version], margin,
                                                          groups=grp)
            p, states[j], _ = bounds.bounds_block(X[a:b], C, st, step, version=it, offset=a,
                                             groups=grp)
            tot = p if tot is None else tot + p
        margin = bounds.bounds_margin(tot.xsq_max, C, np.float32) if it == 0 else margin
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


def _passes_by_kernel(monkeypatch: pytest.MonkeyPatch, data: np.ndarray,
                      Cs: list[np.ndarray], groups: np.ndarray, w: np.ndarray | None = None,
                      **kw: Any) -> dict[str, list[tuple[Any, Any, Any]]]:
    """Bounded passes over ``data`` against the centres ``Cs`` in turn, under the
    compiled and the numpy kernels: each pass's (partial, bounds, summary)."""
    results = {}
    for kern in ("numba", "numpy"):
        monkeypatch.setenv("DASKMEANS_KERNELS", kern)
        st, out = bounds.BlockBounds.fresh(data.shape[0], int(groups.max()) + 1), []
        for it, C in enumerate(Cs):
            step = None if it == 0 else bounds.Drift.of(C, Cs[it - 1], 1e-6, groups=groups)
            p, st, sm = bounds.bounds_block(data, C, st, step, w, version=it, groups=groups,
                                            **kw)
            out.append((p, st, sm))
        results[kern] = out
    return results


@pytest.mark.parametrize("rows", ["float32", "float64", "uint8"])
@pytest.mark.parametrize("weighted", [False, True])
def test_compiled_bounds_equal_numpy_reference(rows: str, weighted: bool,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Three bounded iterations over one block: the compiled kernel and the numpy
    reference give the same labels, bounds and summed changes."""
    monkeypatch.setattr(common_compiled, "TILE", 64)
    rng = np.random.default_rng(5)
    U = rng.integers(0, 256, size=(500, 9), dtype=np.uint8)
    X = U.astype(np.float32) * np.float32(1 / 255)
    data, kw = (U, {"scale": 1 / 255}) if rows == "uint8" else (X.astype(rows), {})
    w = rng.uniform(0.5, 2, 500) if weighted else None
    Cs = [X[:7].astype(np.float64)]
    for _ in range(3):
        Cs.append(Cs[-1] + rng.normal(0, 0.02, Cs[-1].shape))
    groups = np.array([0, 0, 1, 1, 2, 2, 2])  # three groups of centres, three bounds
    results = _passes_by_kernel(monkeypatch, data, Cs, groups, w, **kw)
    for (p, st, sm), (q, su, sn) in zip(results["numba"], results["numpy"], strict=True):
        np.testing.assert_array_equal(st.labels, su.labels)
        np.testing.assert_allclose(st.upper, su.upper, rtol=1e-5, atol=1e-3)  # sqrt near 0
        np.testing.assert_allclose(st.lower, su.lower, rtol=1e-5, atol=1e-3)
        np.testing.assert_allclose(p.dsums, q.dsums, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(p.dcounts, q.dcounts, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(p.dsumsq, q.dsumsq, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(sm.umax, sn.umax, rtol=1e-5, atol=1e-3)
        np.testing.assert_allclose(sm.gapmax, sn.gapmax, rtol=1e-5, atol=2e-3)
        # the same rows read, and the same groups compared
        assert (p.n_read, p.n_full, p.n_pairs, p.n_dist) == (
            q.n_read, q.n_full, q.n_pairs, q.n_dist)
    assert results["numba"][-1][0].n_read < 500  # later iterations skip rows
    # the group filter compared some rows with only some groups
    assert any(p.n_pairs < 3 * p.n_full for p, _, _ in results["numba"][1:])


def test_group_tile_capped_by_bytes_keeps_the_reference_answer(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The group path's row buffers capped at two rows' bytes (rows of 9 float32: 36
    bytes, a cap of 80 bytes): tiles of two rows, and the compiled pass still chooses the
    rows and groups of the numpy reference and gives its labels and bounds."""
    assert bounds_compiled.group_tile(9, 4) == bounds_compiled.GROUP_TILE
    monkeypatch.setattr(bounds_compiled, "GROUP_TILE_BYTES", 80)
    assert bounds_compiled.group_tile(9, 4) == 2
    assert bounds_compiled.group_tile(30, 4) == 1  # one row's bytes above the cap: one row
    rng = np.random.default_rng(6)
    X = rng.random((400, 9), dtype=np.float32)
    Cs = [X[:12].astype(np.float64)]
    for _ in range(3):
        Cs.append(Cs[-1] + rng.normal(0, 0.01, Cs[-1].shape))
    groups = np.repeat(np.arange(4), 3)
    results = _passes_by_kernel(monkeypatch, X, Cs, groups)
    for (p, st, _), (q, su, _) in zip(results["numba"], results["numpy"], strict=True):
        np.testing.assert_array_equal(st.labels, su.labels)
        np.testing.assert_allclose(st.lower, su.lower, rtol=1e-5, atol=1e-3)
        assert (p.n_read, p.n_full, p.n_pairs, p.n_dist) == (
            q.n_read, q.n_full, q.n_pairs, q.n_dist)
    assert any(p.n_pairs < 4 * p.n_full for p, _, _ in results["numba"][1:])


@pytest.mark.parametrize("rows", ["float32", "uint8"])
def test_group_filter_gives_the_full_assignment(rows: str,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Bounded iterations with the group filter always on (every tile group by group,
    with and without the local filter) and always off give the same labels and summed
    changes; the group filter compared fewer (row, group) pairs, the local filter fewer
    (row, centre) distances still, and their bounds are valid (looser lower bounds can leave a row
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
    margin = bounds.bounds_margin(float((X.astype(np.float64) ** 2).sum(1).max()), Cs[0],
                             np.dtype(np.float32))
    results = {}
    for share, local in ((0.0, True), (1.0, False), (1.0, True)):
        monkeypatch.setattr(bounds, "GROUP_FILTER_SHARE", share)
        monkeypatch.setattr(bounds_compiled, "LOCAL_FILTER", local)
        st, out = bounds.BlockBounds.fresh(1500, 6), []
        for it, C in enumerate(Cs):
            step = None if it == 0 else bounds.Drift.of(C, Cs[it - 1], margin, groups=groups)
            p, st, _ = bounds.bounds_block(data, C, st, step, version=it, groups=groups, **kw)
            out.append((p, st))
        results[share, local] = out
    pairs, dists = [], []
    for it, ((p, st), (q, su), (r, sv)) in enumerate(zip(
            results[1.0, True], results[0.0, True], results[1.0, False], strict=True)):
        for pp, ss in ((p, st), (r, sv)):
            np.testing.assert_array_equal(ss.labels, su.labels)
            np.testing.assert_allclose(pp.dsums, q.dsums, rtol=1e-9, atol=1e-9)
            np.testing.assert_array_equal(pp.dcounts, q.dcounts)
            C = Cs[it].astype(np.float32).astype(np.float64)
            dist = np.sqrt(((X.astype(np.float64)[:, None, :] - C[None]) ** 2).sum(2))
            assert (ss.upper >= dist[np.arange(1500), ss.labels] - 1e-5).all()
            dist[np.arange(1500), ss.labels] = np.inf
            for g in range(6):
                assert (ss.lower[:, g] <= dist[:, groups == g].min(1) + 1e-5).all()
        pairs.append((p.n_pairs, q.n_pairs))
        dists.append((p.n_dist, r.n_dist, q.n_dist))
        assert q.n_dist == 24 * q.n_full and r.n_dist == 4 * r.n_pairs, (q, r)
    assert any(a < b for a, b in pairs[1:]), pairs  # the filter skipped groups
    assert any(a < b < c for a, b, c in dists[1:]), dists  # and the local filter centres


def test_one_centre_per_group_compares_every_centre() -> None:
    """Below 16 centres each centre is its own group (Elkan's bounds) and a row that is
    read meets every centre, whatever GROUP_FILTER_SHARE says: the filter would leave
    the bounds of the centres it skips decaying (more rows read over a fit)."""
    from daskmeans.algorithms.bounded import centre_groups

    rng = np.random.default_rng(3)
    X = rng.random((700, 8), dtype=np.float32)
    C0 = X[:10].astype(np.float64)
    groups = centre_groups(C0)
    assert groups.tolist() == list(range(10))
    C1 = C0 + rng.normal(0, 0.05, C0.shape)
    margin = bounds.bounds_margin(float((X.astype(np.float64) ** 2).sum(1).max()), C0,
                             np.dtype(np.float32))
    _, st, _ = bounds.bounds_block(X, C0, bounds.BlockBounds.fresh(700, 10), None, version=0,
                              groups=groups)
    p, _, _ = bounds.bounds_block(X, C1, st, bounds.Drift.of(C1, C0, margin, groups=groups),
                             version=1, groups=groups)
    assert 0 < p.n_full < 700 and p.n_pairs == 10 * p.n_full, (p.n_full, p.n_pairs)


@pytest.mark.parametrize("rows", ["float32", "float64", "uint8"])
def test_row_sqdist_by_hand_and_against_float64(rows: str) -> None:
    """The bounded pass's tightening distance, straight from the stored row (uint8
    scaled on the fly), in the rows' float dtype."""
    X = np.array([[0, 3, 4], [255, 0, 51]], np.uint8)
    scale = 1 / 255 if rows == "uint8" else 1.0
    Xs = X if rows == "uint8" else X.astype(rows)
    dt = np.float64 if rows == "float64" else np.float32
    c = np.zeros(3, dt)
    got = bounds_compiled.row_sqdist(Xs, 0, scale, rows == "uint8", c)
    assert got == pytest.approx(25.0 * scale ** 2, rel=1e-6)  # 3-4-5 by hand
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (50, 784)).astype(np.uint8)
    Xf = X.astype(np.float32) * np.float32(1 / 255)  # how uint8 rows are scaled
    Xs = X if rows == "uint8" else Xf.astype(rows)
    C = rng.random((3, 784)).astype(dt)
    ref = (Xf.astype(np.float64)[:, None, :] - C.astype(np.float64)[None]) ** 2
    for i in range(50):
        for j in range(3):
            d2 = bounds_compiled.row_sqdist(Xs, i, 1 / 255, rows == "uint8", C[j])
            assert d2 == pytest.approx(ref[i, j].sum(), rel=1e-5 if dt == np.float32 else 1e-12)


def test_drift_separation_and_summary_by_hand() -> None:
    """The quantities the bound tests use: half the distance to the nearest other
    centre, each centre's drift and each group's largest, the rounding margin, and a
    block summary that settles (or not) without reading the block."""
    C = np.array([[0.0, 0.0], [6.0, 0.0], [0.0, 8.0]])
    assert bounds.half_separation(C).tolist() == [3.0, 3.0, 4.0]
    assert bounds.half_separation(C[:1]).tolist() == [np.inf]
    C2 = C + np.array([[3.0, 4.0], [0.0, 1.0], [0.0, 0.0]])
    step = bounds.Drift.of(C2, C, 0.0, groups=np.array([0, 1, 1]))
    assert step.drift.tolist() == [5.0, 1.0, 0.0] and step.group_drift.tolist() == [5.0, 1.0]
    np.testing.assert_allclose(step.half_sep, bounds.half_separation(C2))
    eps = float(np.finfo(np.float32).eps)
    assert bounds.bounds_margin(2.0, C, np.dtype(np.float32)) == 4 * 2 * eps * (2.0 + 64.0)
    still = bounds.Drift(np.zeros(3), np.array([3.0, 3.0, 4.0]), 0.0, np.zeros(1))
    near = bounds.BoundsSummary(np.array([1.0, -np.inf, 2.0]), np.array([-1.0, -np.inf, 5.0]),
                                0)
    assert near.settled(still)  # cluster 0 by its lower bounds, cluster 2 by separation
    far = bounds.BoundsSummary(np.array([3.5, -np.inf, 2.0]), np.array([0.5, -np.inf, 5.0]),
                               0)
    assert not far.settled(still)  # cluster 0: 3.5 > 3 and 0.5 > 0


def test_half_separation_in_blocks_of_rows_equals_brute_force(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The Gram matrix a block of rows at a time (blocks of 7 rows here, so the last is
    shorter): each centre's half distance to its nearest other, as pairwise float64
    differences give it."""
    C = np.random.default_rng(3).normal(size=(50, 6))
    want = np.sqrt(((C[:, None] - C[None]) ** 2).sum(-1) + np.diag(np.full(50, np.inf))
                   ).min(1) / 2
    whole = bounds.half_separation(C)
    monkeypatch.setattr(bounds, "SEPARATION_ROWS", 7)
    np.testing.assert_allclose(bounds.half_separation(C), want, rtol=1e-12)
    np.testing.assert_allclose(whole, want, rtol=1e-12)
    # the blocks mapped by a thread pool: the same numbers, bit for bit
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(3) as pool:
        np.testing.assert_array_equal(bounds.half_separation(C, pool.map),
                                      bounds.half_separation(C))


@pytest.mark.parametrize("kernels", ["numba", "numpy"])
def test_group_filter_by_hand(kernels: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Centres 0, 1 (group 0), 10, 11 (group 1), -10, -11 (group 2); rows 0.4 and 5.6
    start at centres 0 (upper 0.4, lower bounds 0.6, 9.6, 10.4) and 10 (upper 4.4,
    lower 4.6, 5.4, 15.6). Centre 0 moves to -0.4 (group 0's drift 0.4). Row 0.4:
    upper 0.8 > max(half separation 0.7, lowest bound 0.6 - 0.4), its distance 0.8 too:
    in doubt, but groups 1 and 2 stay ruled out (9.6, 10.4 > 0.8), so it meets group 0
    alone (one group of three, at most GROUP_FILTER_SHARE): two distances, it moves to
    centre 1 (0.6), group 0's bound becomes 0.8 and the others keep theirs. Row 5.6:
    its distance 4.4 is above group 0's 4.6 - 0.4 = 4.2, so it is in doubt in two
    groups of three and meets every centre (six distances, all its bounds fresh:
    4.6, 5.4, 15.6); it stays at centre 10."""
    monkeypatch.setenv("DASKMEANS_KERNELS", kernels)
    X = np.array([[0.4], [5.6]], np.float32)
    groups = np.array([0, 0, 1, 1, 2, 2])
    C0 = np.array([[0.0], [1.0], [10.0], [11.0], [-10.0], [-11.0]])
    C1 = C0.copy()
    C1[0] = -0.4
    _, st, _ = bounds.bounds_block(X, C0, bounds.BlockBounds.fresh(2, 3), None, version=0,
                                   groups=groups)
    assert st.labels.tolist() == [0, 2]
    np.testing.assert_allclose(st.upper, [0.4, 4.4], rtol=1e-6)
    np.testing.assert_allclose(st.lower, [[0.6, 9.6, 10.4], [4.6, 5.4, 15.6]], rtol=1e-6)
    step = bounds.Drift.of(C1, C0, 1e-9, groups=groups)
    p, st2, _ = bounds.bounds_block(X, C1, st, step, version=1, groups=groups)
    assert (p.n_read, p.n_full, p.n_pairs, p.n_dist) == (2, 2, 1 + 3, 2 + 6)
    assert st2.labels.tolist() == [1, 2]
    np.testing.assert_allclose(st2.upper, [0.6, 4.4], rtol=1e-6)
    np.testing.assert_allclose(st2.lower, [[0.8, 9.6, 10.4], [4.6, 5.4, 15.6]], rtol=1e-6)
    assert p.dcounts.tolist() == [-1.0, 1.0, 0.0, 0.0, 0.0, 0.0]
    np.testing.assert_allclose(p.dsums[:2, 0], [-0.4, 0.4], rtol=1e-6)
    assert st.labels.tolist() == [0, 2]  # the input bounds are not modified


@pytest.mark.parametrize("local", [True, False])
def test_local_filter_by_hand(local: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """One row at 0, centres 1, 5 (group 0) and -10, -3 (group 1): at first its centre
    is 1, upper bound 1, lower bounds 5 (group 0) and 3 (group 1). The centres move to
    1.5, 5, -10, -1: the row is in doubt (upper 1.5 > max(half separation 1.25, group
    1's 3 - 2)) and both groups are compared. The local filter skips centre 5 (5 - 0 >
    1.5) and -10 (3 - 0 > 1.5), not -1 (3 - 2 = 1): two distances instead of four; the
    row moves to -1, and a group's new bound is its nearest compared centre other than
    the row's (1.5 in group 0) or its skipped centres' bound (3 in group 1), where
    comparing every centre finds 1.5 and 10."""
    monkeypatch.setattr(bounds, "GROUP_FILTER_SHARE", 1.0)
    monkeypatch.setattr(bounds_compiled, "LOCAL_FILTER", local)
    monkeypatch.setenv("DASKMEANS_KERNELS", "numba")
    X = np.array([[0.0]], np.float32)
    groups = np.array([0, 0, 1, 1])
    C0 = np.array([[1.0], [5.0], [-10.0], [-3.0]])
    C1 = np.array([[1.5], [5.0], [-10.0], [-1.0]])
    _, st, _ = bounds.bounds_block(X, C0, bounds.BlockBounds.fresh(1, 2), None, version=0,
                                   groups=groups)
    assert st.labels.tolist() == [0] and st.upper.tolist() == [1.0]
    assert st.lower.tolist() == [[5.0, 3.0]]
    step = bounds.Drift.of(C1, C0, 1e-9, groups=groups)
    p, st, _ = bounds.bounds_block(X, C1, st, step, version=1, groups=groups)
    assert (p.n_read, p.n_full, p.n_pairs) == (1, 1, 2)
    assert p.n_dist == (2 if local else 4)
    assert st.labels.tolist() == [3] and st.upper.tolist() == [1.0]
    assert st.lower.tolist() == [[1.5, 3.0 if local else 10.0]]
    assert p.dcounts.tolist() == [-1.0, 0.0, 0.0, 1.0]


def test_separation_bound_by_hand() -> None:
    """Centres 0, 4 (group 0) and 10 (group 1) on a line: half the distance to the
    nearest centre of each group is (2, 5), (2, 3), (3, inf); exact 2, 2, 3. Centre 1
    moves to 5 (group 0's drift 1, group 1's 0): the carried bounds are
    min(2 - 1/2, 5 - 0) - 0 = 1.5, min(2 - 1/2, 3 - 0) - 1/2 = 1 and
    min(3 - 1/2, inf) - 0 = 2.5, below the true 2.5, 2.5, 2.5. With one group, every
    distance falls by the largest drift: the same here, but 3 - 1/2 - 0 for centre 2
    only because its own drift is 0."""
    C = np.array([[0.0, 0.0], [4.0, 0.0], [10.0, 0.0]])
    sb = bounds.SeparationBound.of(C, np.array([0, 0, 1]))
    assert sb.by_group.tolist() == [[2.0, 5.0], [2.0, 3.0], [3.0, np.inf]]
    assert sb.exact.tolist() == [2.0, 2.0, 3.0] == bounds.half_separation(C).tolist()
    C2 = C + np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 0.0]])
    assert sb.bound(C).tolist() == [2.0, 2.0, 3.0]  # not moved: exact
    assert sb.bound(C2).tolist() == [1.5, 1.0, 2.5]
    assert bounds.half_separation(C2).tolist() == [2.5, 2.5, 2.5]
    assert bounds.SeparationBound.of(C).bound(C2).tolist() == [1.5, 1.0, 2.5]
    # group 1 far from centre 0: centre 2's move of 3 (group 1's drift) leaves centre
    # 0's bound at min(2 - 0, 5 - 3/2) = 2 (true 2: centre 1 is still 4 away), where
    # one group would take 2 - 3/2
    C3 = C + np.array([[0.0, 0.0], [0.0, 0.0], [3.0, 0.0]])
    assert sb.bound(C3)[0] == 2.0
    assert bounds.SeparationBound.of(C).bound(C3)[0] == 0.5
    # a centre that moved past its neighbour: never below zero
    assert bounds.SeparationBound.of(C).bound(C + np.array([[9.0, 0.0], [0, 0], [0, 0]]))[0] == 0.0
    assert bounds.SeparationBound.of(C[:1]).exact.tolist() == [np.inf]


def test_separation_bound_stays_below_the_exact_one_as_centres_move(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Random groups (one left empty), centres moved step after step by random
    amounts, a few far (relocated): the carried bound never exceeds the exact half
    separation, and equals it where it was computed (in blocks of 7 rows too)."""
    rng = np.random.default_rng(5)
    C = rng.normal(size=(60, 5))
    groups = rng.choice([0, 1, 3, 4], size=60)  # group 2 has no centre
    monkeypatch.setattr(bounds, "SEPARATION_ROWS", 7)
    sb = bounds.SeparationBound.of(C, groups)
    np.testing.assert_allclose(sb.exact, bounds.half_separation(C), rtol=1e-12)
    assert np.isinf(sb.by_group[:, 2]).all()
    for _ in range(20):
        C = C + rng.normal(size=C.shape) * rng.uniform(0, 0.2, (60, 1))
        C[rng.integers(60)] += rng.normal(size=5) * 3
        low, exact = sb.bound(C), bounds.half_separation(C)
        assert (low >= 0).all() and (low <= exact * (1 + 1e-12)).all()
    assert (low < exact).any()
