"""k-means++ seeding against its definition (Arthur & Vassilvitskii): after the first
centre, a row is drawn with probability proportional to weight x squared distance to
the nearest chosen centre (x L1 distance for the k-medians seeding).

Each test counts the picks of many seeded draws and bounds the deviation from the
expected frequencies far out in the tail (a false failure has probability below
1e-8), while sampling proportional to the plain distance lands many standard
deviations outside. The seeds are fixed, so the counts are the same on every run.

The first centre is forced: the origin carries nearly all of the weight (the first
pick is proportional to weight), so it is drawn with probability 1 - 3e-9.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from daskmeans.kernels.init import kmeans_plusplus  # the kernel: a fit draws once per seed

DRAWS = 2000
HEAVY = 1e9


def test_first_centre_is_the_heavy_origin() -> None:
    X = np.array([[0.0, 0.0], [10.0, 0.0], [19.0, 0.0]])
    w = np.array([HEAVY, 1.0, 1.0])
    firsts = [kmeans_plusplus(X, 2, np.random.default_rng(s), weights=w)[0]
              for s in range(50)]
    assert all((c == 0).all() for c in firsts)


@pytest.mark.parametrize(("metric", "expected"), [
    ("euclidean", [2 * 1, 1 * 4, 1 * 9]),   # weight x squared distance
    ("manhattan", [2 * 1, 1 * 2, 1 * 3]),   # weight x L1 distance
])
def test_second_centre_frequencies(metric: str, expected: list[float]) -> None:
    """One candidate per centre (no greedy choice among several): the second centre is
    the draw itself. Three rows at distances 1, 2, 3 from the origin, weights 2, 1, 1;
    a chi-square test with 2 degrees of freedom at p = 1e-9."""
    X = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 3.0]])
    w = np.array([HEAVY, 2.0, 1.0, 1.0])
    counts = np.zeros(3)
    for s in range(DRAWS):
        C = kmeans_plusplus(X, 2, np.random.default_rng(s), weights=w, n_local_trials=1,
                            metric=metric)
        assert (C[0] == 0).all()
        (hit,) = np.flatnonzero((X[1:] == C[1]).all(1))
        counts[hit] += 1
    p = np.array(expected, float) / sum(expected)
    chi2 = float((((counts - DRAWS * p) ** 2) / (DRAWS * p)).sum())
    critical = -2 * math.log(1e-9)  # chi-square, 2 dof: P(> x) = exp(-x / 2)
    assert chi2 < critical, (counts.tolist(), (DRAWS * p).tolist(), chi2)


def test_greedy_choice_keeps_the_squared_distance_law() -> None:
    """The default greedy k-means++ (the best of several candidates): rows A and B lie
    nearer each other (9) than either to the origin (10 and 19), with equal weights, so
    either candidate leaves the same potential (81) and the first candidate drawn is
    kept: A is the second centre with probability 10^2 / (10^2 + 19^2) (the plain
    distance would give 10 / 29). A binomial bound at 6 standard deviations."""
    X = np.array([[0.0, 0.0], [10.0, 0.0], [19.0, 0.0]])
    w = np.array([HEAVY, 1.0, 1.0])
    hits = sum(int(kmeans_plusplus(X, 2, np.random.default_rng(s), weights=w)[1, 0] == 10)
               for s in range(DRAWS))
    p = 100 / 461
    sd = math.sqrt(DRAWS * p * (1 - p))
    assert abs(hits - DRAWS * p) < 6 * sd, (hits, DRAWS * p, sd)
