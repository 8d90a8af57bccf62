"""The PCA view (dask-ml's PCA fitted on all rows, a sample drawn) and a dask-ml PCA ->
daskmeans.KMeans scikit-learn Pipeline on dask arrays."""

from __future__ import annotations

from pathlib import Path

import dask
import dask.array as da
import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA as SkPCA
from sklearn.metrics import adjusted_rand_score
from sklearn.pipeline import Pipeline

from daskmeans import KMeans, metrics, plot

QUERY_PLANNING = bool(dask.config.get("array.query-planning", None))
needs_linalg = pytest.mark.skipif(QUERY_PLANNING, reason="dask-ml's PCA needs dask.array."
                                  "linalg, which array query planning does not implement")


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray, KMeans]:
    X, y = load_digits(return_X_y=True)
    return X, y, KMeans(10, random_state=0, n_init=1).fit(X)


def _same_up_to_sign(a: np.ndarray, b: np.ndarray) -> None:
    signs = np.sign((a * b).sum(axis=0))
    np.testing.assert_allclose(a, b * signs, rtol=0, atol=1e-6 * np.abs(b).max())


@needs_linalg
def test_projection_is_sklearns_pca_of_a_sample(digits, counting_scheduler) -> None:
    X, y, km = digits
    counting_scheduler.calls = 0
    v = plot.pca_projection(da.from_array(X, chunks=400), da.from_array(y, chunks=300),
                            km.labels_, centers=km.cluster_centers_, n_points=500,
                            random_state=2)
    assert counting_scheduler.calls == 3  # dask-ml's fit, its mean, the sample
    ref = SkPCA(2).fit(X)
    np.testing.assert_allclose(v.explained_variance_ratio, ref.explained_variance_ratio_,
                               rtol=1e-6)
    want = np.sort(np.random.default_rng(2).choice(len(X), 500, replace=False))
    np.testing.assert_array_equal(v.index, want)
    _same_up_to_sign(v.points, ref.transform(X[want]))
    _same_up_to_sign(v.centers, ref.transform(km.cluster_centers_))
    np.testing.assert_array_equal(v.labels_true, y[want])
    np.testing.assert_array_equal(v.labels_pred, km.labels_[want])
    small = plot.pca_projection(X[:300], centers=km.cluster_centers_)  # all rows drawn
    assert small.points.shape == (300, 2) and small.labels_true is None
    np.testing.assert_array_equal(small.labels_pred, km.predict(X[:300]))


@needs_linalg
def test_pca_view_colours_clusters_as_their_matched_labels(digits, tmp_path: Path) -> None:
    X, y, _ = digits
    perm = np.array([3, 7, 0, 9, 1, 4, 8, 2, 6, 5])
    v = plot.pca_projection(X, y, perm[y], n_points=300, random_state=0)
    fig = plot.pca_figure(v, None)
    by_label, by_cluster = (ax.collections[0].get_facecolors() for ax in fig.axes)
    np.testing.assert_array_equal(by_label, by_cluster)  # cluster perm[i] is label i
    fig.savefig(tmp_path / "pca.png")  # it renders
    assert (tmp_path / "pca.png").stat().st_size > 0
    with pytest.raises(ValueError, match="labels_true must have one entry per row of X"):
        plot.pca_projection(X, y[:5])
    with pytest.raises(ValueError, match="n_points must be a positive integer, got 0"):
        plot.pca_projection(X, y, n_points=0)


@pytest.mark.skipif(not QUERY_PLANNING, reason="only with array query planning")
def test_pca_view_says_why_it_cannot_run_with_query_planning(digits) -> None:
    X, y, _ = digits
    with pytest.raises(NotImplementedError, match="query planning"):
        plot.pca_projection(X, y)


@needs_linalg
def test_dask_ml_pca_then_kmeans_pipeline_on_dask_arrays(digits) -> None:
    import dask_ml.decomposition

    X, y = digits[0][:900], digits[1][:900]
    Xd = da.from_array(X, chunks=300)
    pipe = Pipeline([("pca", dask_ml.decomposition.PCA(16, svd_solver="tsqr")),
                     ("km", KMeans(n_clusters=10, random_state=0, n_init=1))]).fit(Xd)
    labels = pipe.predict(Xd)
    assert isinstance(labels, da.Array) and labels.shape == (len(X),)
    labels = labels.compute()
    np.testing.assert_array_equal(labels, np.asarray(pipe.named_steps["km"].labels_))
    # the same clustering as scikit-learn's PCA in front of the same KMeans, on numpy
    ref = Pipeline([("pca", SkPCA(16)), ("km", KMeans(n_clusters=10, random_state=0,
                                                      n_init=1))]).fit(X)
    assert adjusted_rand_score(ref.predict(X), labels) > 0.99
    assert metrics.cluster_accuracy(y, labels) > 0.6
    assert pipe.transform(Xd).shape == (len(X), 10)
