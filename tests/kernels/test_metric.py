"""The metric objects: by hand, against brute force, and as the names they stand for."""

from __future__ import annotations

import numpy as np
import pytest

from daskmeans.kernels import common, medians, metric

from .reference import brute_sqdist

X = np.array([[0.0, 0.0], [3.0, 1.0], [2.0, 2.0]])
C = np.array([[0.0, 1.0], [4.0, 1.0]])


@pytest.mark.usefixtures("both_kernels")
def test_metrics_by_hand() -> None:
    e, c, m = metric.EUCLIDEAN, metric.COSINE, metric.MANHATTAN
    assert e.nearest_labels(X, C).tolist() == [0, 1, 0]
    assert e.assign(X, C)[1].tolist() == [1.0, 1.0, 5.0]  # squared distances
    np.testing.assert_allclose(e.distances(X, C), [[1, 17 ** 0.5], [3, 1],
                                                   [5 ** 0.5, 5 ** 0.5]])
    assert m.nearest_labels(X, C).tolist() == [0, 1, 0]  # row 2: 3 and 3, the first
    assert m.assign(X, C)[1].tolist() == [1.0, 1.0, 3.0]  # L1 distances
    assert m.distances(X, C).tolist() == [[1, 5], [3, 1], [3, 3]]
    assert m.seeding_distances(X, np.empty(0), C).tolist() == [[1, 3, 3], [5, 1, 3]]
    assert e.seeding_distances(X, (X ** 2).sum(1), C).tolist() == [[1, 9, 5], [17, 1, 5]]
    assert (e.squared, m.squared, e.uses_row_norms, m.uses_row_norms) == (True, False, True,
                                                                           False)
    assert (e.normalizes_rows, c.normalizes_rows, m.normalizes_rows) == (False, True, False)
    np.testing.assert_allclose(c.finish_centres(np.array([[3.0, 4.0], [0.0, 0.0]])),
                               [[0.6, 0.8], [0.0, 0.0]])
    np.testing.assert_array_equal(e.finish_centres(C), C)
    assert isinstance(e.prepare(C, np.dtype(np.float32)), common.Centres)
    assert isinstance(m.prepare(C, np.dtype(np.float32)), medians.L1Centres)


@pytest.mark.usefixtures("both_kernels")
@pytest.mark.parametrize("name", ["euclidean", "cosine", "manhattan"])
def test_metrics_against_brute_force(name: str) -> None:
    """Labels, objective terms and distances of every metric against numpy brute force,
    the centres given as arrays or prepared once (as a pass shares them)."""
    met = metric.as_metric(name)
    rng = np.random.default_rng(1)
    rows = rng.normal(size=(300, 5)).astype(np.float32)
    cen = rng.normal(size=(7, 5))
    if met.normalizes_rows:
        rows, cen = common.normalize_rows(rows), met.finish_centres(cen)
    if met.squared:
        D = brute_sqdist(rows, cen)
    else:
        D = np.abs(rows[:, None].astype(np.float64) - cen[None]).sum(-1)
    for given in (cen, met.prepare(cen, rows.dtype)):
        np.testing.assert_array_equal(met.nearest_labels(rows, given), D.argmin(1))
        labels, terms = met.assign(rows, given)
        np.testing.assert_array_equal(labels, D.argmin(1))
        np.testing.assert_allclose(terms, D.min(1), rtol=1e-6)
    dist = met.distances(rows, cen)
    assert dist.dtype == rows.dtype
    np.testing.assert_allclose(dist, np.sqrt(D) if met.squared else D, rtol=1e-4, atol=1e-4)
    xsq = (rows.astype(np.float64) ** 2).sum(1)
    np.testing.assert_allclose(met.seeding_distances(rows, xsq, cen[:3]), D[:, :3].T,
                               rtol=1e-5, atol=1e-5)


def test_names_and_raw_rows() -> None:
    assert metric.as_metric("euclidean") is metric.EUCLIDEAN
    assert metric.as_metric(metric.MANHATTAN) is metric.MANHATTAN
    assert sorted(metric.METRICS) == ["cosine", "euclidean", "manhattan"]
    with pytest.raises(ValueError, match="unknown metric 'cityblock'"):
        metric.as_metric("cityblock")
    raw = np.array([[0, 255], [255, 0], [51, 51]], np.uint8)
    scaled = common.scale_rows(raw, 1 / 255)
    for met in (metric.EUCLIDEAN, metric.MANHATTAN):  # raw rows: those of the scaled rows
        np.testing.assert_array_equal(met.nearest_labels(raw, C / 4, scale=1 / 255),
                                      met.nearest_labels(scaled, C / 4))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_seeding_distances_are_row_major_by_candidate(dtype: type) -> None:
    """The k-means++ seeding reads the potentials a candidate at a time: dense rows
    give them (m, n) row-major from the GEMM itself (no transposing copy), float64,
    equal to float64 differences (CSR rows too, in the same layout)."""
    import scipy.sparse as sp

    rng = np.random.default_rng(0)
    Y = rng.normal(size=(300, 20)).astype(dtype)
    cands = Y[[3, 50, 7, 200, 9]]
    xsq = (Y.astype(np.float64) ** 2).sum(1)
    want = ((Y.astype(np.float64)[None] - cands.astype(np.float64)[:, None]) ** 2).sum(-1)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    for rows in (Y, sp.csr_matrix(Y)):
        got = metric.EUCLIDEAN.seeding_distances(rows, xsq, cands)
        assert got.shape == (5, 300) and got.dtype == np.float64
        assert got.flags.c_contiguous
        np.testing.assert_allclose(got, want, rtol=rtol, atol=1e-4 if dtype == np.float32
                                   else 1e-9)
