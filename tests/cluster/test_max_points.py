"""KMeans(max_points_per_centroid=): the fit on a sample of the rows, faiss-style, and
``labels_`` / ``inertia_`` of every row."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
from sklearn.datasets import make_blobs

from daskmeans import KMeans
from daskmeans.validation import InvalidParameterError

K, PER = 6, 50  # a sample of 300 of the 2,000 rows


@pytest.fixture(scope="module")
def data() -> np.ndarray:
    X, _ = make_blobs(2000, n_features=5, centers=8, cluster_std=1.5, random_state=3)
    return X


def _history(km: KMeans) -> list[dict[str, float]]:
    return [{k: v for k, v in h.items() if k != "seconds"} for h in km.history_]


def _sample_index(n: int, random_state: int) -> np.ndarray:
    """The rows a fit samples: drawn after the run's seed from the same RandomState."""
    rs = np.random.RandomState(random_state)
    rs.randint(np.iinfo(np.int32).max)  # the run's seed
    rng = np.random.default_rng(int(rs.randint(np.iinfo(np.int32).max)))
    return np.sort(rng.choice(n, size=K * PER, replace=False))


@pytest.mark.parametrize("algorithm", ["lloyd", "elkan"])
def test_the_fit_is_that_of_the_sample_and_labels_every_row(data: np.ndarray,
                                                            algorithm: str) -> None:
    km = KMeans(K, max_points_per_centroid=PER, random_state=4, algorithm=algorithm).fit(data)
    on_sample = KMeans(K, random_state=4, algorithm=algorithm).fit(
        data[_sample_index(len(data), 4)])
    np.testing.assert_array_equal(km.cluster_centers_, on_sample.cluster_centers_)
    assert km.n_iter_ == on_sample.n_iter_ and _history(km) == _history(on_sample)
    # every row's label and the inertia of every row, against the sample's centres
    d2 = ((data[:, None, :] - km.cluster_centers_[None]) ** 2).sum(-1)
    assert km.labels_.shape == (len(data),)
    np.testing.assert_array_equal(km.labels_, d2.argmin(1))
    assert km.inertia_ == pytest.approx(d2.min(1).sum(), rel=1e-10)
    assert km.inertia_ > on_sample.inertia_  # 2,000 rows against 300


def test_same_rows_whatever_the_chunking(data: np.ndarray) -> None:
    X = data.astype(np.float32)
    ref = KMeans(K, max_points_per_centroid=PER, random_state=1).fit(X)
    for rows in (2000, 333, 64):
        km = KMeans(K, max_points_per_centroid=PER, random_state=1).fit(
            da.from_array(X, chunks=(rows, 5)))
        np.testing.assert_allclose(km.cluster_centers_, ref.cluster_centers_, rtol=1e-6)
        np.testing.assert_array_equal(km.labels_.compute(), ref.labels_)
        assert km.inertia_ == pytest.approx(ref.inertia_, rel=1e-6)


def test_weights_and_cosine_follow_the_sampled_rows(data: np.ndarray) -> None:
    w = np.random.default_rng(0).uniform(0.5, 2, len(data))
    idx = _sample_index(len(data), 2)
    for metric in ("euclidean", "cosine", "manhattan"):
        km = KMeans(K, max_points_per_centroid=PER, random_state=2, metric=metric).fit(
            data, sample_weight=w)
        on_sample = KMeans(K, random_state=2, metric=metric).fit(data[idx],
                                                                 sample_weight=w[idx])
        np.testing.assert_allclose(km.cluster_centers_, on_sample.cluster_centers_,
                                   rtol=1e-12, atol=1e-12)
        # the objective of every row, weighted, against the sample's centres
        assert km.inertia_ == pytest.approx(-km.score(data, sample_weight=w), rel=1e-9)
        np.testing.assert_array_equal(km.labels_, km.predict(data))


def test_none_or_a_cap_above_n_fits_every_row(data: np.ndarray) -> None:
    ref = KMeans(K, random_state=0).fit(data)
    for per in (None, len(data) // K + 1):
        km = KMeans(K, random_state=0, max_points_per_centroid=per).fit(data)
        np.testing.assert_array_equal(km.cluster_centers_, ref.cluster_centers_)
        assert km.inertia_ == ref.inertia_ and _history(km) == _history(ref)


@pytest.mark.parametrize("bad", [0, -3, 2.5, "256"])
def test_invalid_values_are_refused(data: np.ndarray, bad: object) -> None:
    with pytest.raises(InvalidParameterError, match="max_points_per_centroid"):
        KMeans(K, max_points_per_centroid=bad).fit(data)
