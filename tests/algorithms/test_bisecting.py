"""A leaf's subtree grown ahead (:func:`daskmeans.algorithms.bisecting.bisect_subtree`,
run in a cluster's worker on the leaf's rows) against the whole fit on the same rows."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import make_blobs

from daskmeans.algorithms import BisectingTree, Bisection, BisectSpec
from daskmeans.algorithms import bisecting as bisecting_algorithm


def _spec(strategy: str = "biggest_inertia") -> BisectSpec:
    return BisectSpec(init="random", n_init=2, max_iter=50, tol=1e-8, strategy=strategy)


def grown(X: np.ndarray, w: np.ndarray, n_splits: int, spec: BisectSpec,
            seed: int) -> tuple[Bisection | None, int]:
    """The subtree grown from all rows of X, linked, and how many bisections it made."""
    got = bisecting_algorithm.bisect_subtree(np.arange(len(X)), X, w, None, seed,
                                             n_splits, spec)
    if got is None:
        return None, 0
    made, links = got
    assert links.shape == (len(made), 2)
    assert all(b.parts is None for b in made)  # nothing per row comes back
    return bisecting_algorithm.link_subtree(made, links), len(made)


def _same_tree(b: Bisection | None, tree: BisectingTree, node: int) -> int:
    """Check the bisections below ``b`` are ``tree``'s splits from ``node`` down;
    returns the number of splits checked."""
    children = tree.children[node]
    if children[0] < 0:
        assert b is None
        return 0
    assert b is not None and b.below is not None
    np.testing.assert_array_equal(b.centers, tree.centers[children])
    np.testing.assert_array_equal(b.sizes, tree.sizes[children])
    np.testing.assert_array_equal(b.sse, tree.sse[children])
    return 1 + sum(_same_tree(b.below[side], tree, int(children[side])) for side in (0, 1))


@pytest.mark.parametrize("strategy", ["biggest_inertia", "largest_cluster"])
def test_a_subtree_grown_ahead_is_the_fits_tree(strategy: str) -> None:
    """From all rows, with the fit's number of splits, the subtree is the fit's whole
    tree, split for split, bit for bit; with fewer splits, its first splits."""
    X, _ = make_blobs(900, n_features=4, centers=7, random_state=3)
    w = np.random.default_rng(0).uniform(0.5, 2.0, len(X))
    spec, seed = _spec(strategy), 11
    tree, _, _ = bisecting_algorithm.bisect_rows(
        bisecting_algorithm.HeldRows(X, None, w), 8, spec, seed)
    top, made = grown(X, w, 7, spec, seed)
    assert made == 7
    assert _same_tree(top, tree, 0) == 7
    small, _, _ = bisecting_algorithm.bisect_rows(
        bisecting_algorithm.HeldRows(X, None, w), 4, spec, seed)
    top, made = grown(X, w, 3, spec, seed)
    assert made == 3 and _same_tree(top, small, 0) == 3


def test_a_subtree_stops_at_a_leaf_that_cannot_be_bisected() -> None:
    """A leaf without two rows of positive weight ends the subtree when its turn comes
    (the fit fails only if it comes to that leaf): the splits before it are kept."""
    X = np.array([[0.0], [1.0], [100.0]])
    w = np.ones(3)
    spec = _spec()
    top, made = grown(X, w, 5, spec, 0)
    assert made == 2  # {0, 1} | {100}, then {0} | {1}; then a one-row leaf
    tree, _, _ = bisecting_algorithm.bisect_rows(
        bisecting_algorithm.HeldRows(X, None, w), 3, spec, 0)
    assert _same_tree(top, tree, 0) == 2
    with pytest.raises(ValueError, match="cannot bisect"):
        bisecting_algorithm.bisect_rows(bisecting_algorithm.HeldRows(X, None, w), 4, spec, 0)
    one, made = grown(X[:1], w[:1], 3, spec, 0)
    assert one is None and made == 0
