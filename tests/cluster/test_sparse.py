"""The estimators on scipy.sparse CSR rows in memory: the same fit as scikit-learn's
from the same initial centres (up to label permutation), and as daskmeans' own fit of
the same rows dense; every method and sample weights."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn import cluster as skcluster
from sklearn.datasets import make_blobs

from daskmeans import BisectingKMeans, KMeans, MiniBatchKMeans
from daskmeans.metrics import evaluate_model, silhouette


def _data(dtype: type = np.float64, n: int = 1500, seed: int = 0
          ) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray]:
    """Clustered rows with about 40% of values stored, as CSR, dense, and true labels."""
    X, y = make_blobs(n, 40, centers=6, cluster_std=2.0, random_state=seed)
    X[np.abs(X) < 4] = 0
    X = X.astype(dtype)
    return sp.csr_matrix(X), X, y


def _same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """The labelings are equal up to a permutation of the labels."""
    pairs = set(zip(a.tolist(), b.tolist(), strict=True))
    return len(pairs) == len(set(a.tolist())) == len(set(b.tolist()))


@pytest.mark.parametrize("algorithm", ["lloyd", "elkan"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_kmeans_on_csr_equals_scikit_learn_and_the_dense_fit(algorithm: str, dtype: type) -> None:
    """From the same initial centres: scikit-learn's labels (up to permutation), its
    iterations and inertia, and daskmeans' own fit on X.toarray() to float rounding."""
    Xs, Xd, _ = _data(dtype)
    w = np.random.default_rng(0).uniform(0.5, 2, Xs.shape[0])
    C0 = Xd[[0, 300, 600, 900, 1200, 1400]]
    kw = {"n_clusters": 6, "init": C0, "n_init": 1, "algorithm": algorithm, "tol": 0.0}
    ours = KMeans(**kw).fit(Xs, sample_weight=w)
    dense = KMeans(**kw).fit(Xd, sample_weight=w)
    sk = skcluster.KMeans(**kw).fit(Xs, sample_weight=w)
    assert ours.cluster_centers_.dtype == dtype
    np.testing.assert_array_equal(ours.labels_, dense.labels_)
    assert ours.n_iter_ == dense.n_iter_ == sk.n_iter_
    rtol = 1e-6 if dtype == np.float32 else 1e-10
    assert ours.inertia_ == pytest.approx(dense.inertia_, rel=rtol)
    assert ours.inertia_ == pytest.approx(sk.inertia_, rel=rtol)
    np.testing.assert_allclose(ours.cluster_centers_, dense.cluster_centers_, rtol=rtol,
                               atol=rtol)
    assert _same_partition(ours.labels_, sk.labels_)


def test_bounded_fit_on_csr_is_plain_lloyd() -> None:
    """Distance bounds on sparse rows (Elkan's below 16 centres, Yinyang's groups above)
    give plain Lloyd's labels, iterations and inertia from the same centres."""
    Xs, Xd, _ = _data(n=2500)
    for k in (5, 24):
        C0 = Xd[np.random.default_rng(k).choice(2500, k, replace=False)]
        kw = {"n_clusters": k, "init": C0, "n_init": 1, "tol": 0.0, "max_iter": 60}
        a = KMeans(algorithm="lloyd", **kw).fit(Xs)
        b = KMeans(algorithm="elkan", **kw).fit(Xs)
        np.testing.assert_array_equal(a.labels_, b.labels_)
        assert a.n_iter_ == b.n_iter_
        assert a.inertia_ == pytest.approx(b.inertia_, rel=1e-10)


@pytest.mark.parametrize("kind", [sp.csr_matrix, sp.csr_array])
def test_kmeans_methods_on_sparse_rows(kind: type) -> None:
    """predict, transform, score, fit_predict and fit_transform answer on CSR rows what
    they answer on the same rows dense; csr_array input too."""
    Xs, Xd, _ = _data()
    Xs = kind(Xs)
    km = KMeans(6, random_state=0, n_init=2).fit(Xs)
    ref = KMeans(6, random_state=0, n_init=2).fit(Xd)
    np.testing.assert_array_equal(km.labels_, ref.labels_)
    np.testing.assert_array_equal(km.predict(Xs), km.predict(Xd))
    np.testing.assert_allclose(km.transform(Xs), km.transform(Xd), rtol=1e-9, atol=1e-9)
    assert km.score(Xs) == pytest.approx(km.score(Xd), rel=1e-10)
    np.testing.assert_array_equal(KMeans(6, random_state=0, n_init=2).fit_predict(Xs),
                                  km.labels_)
    np.testing.assert_allclose(KMeans(6, random_state=0, n_init=2).fit_transform(Xs),
                               km.transform(Xd), rtol=1e-9, atol=1e-9)
    assert km.__sklearn_tags__().input_tags.sparse


@pytest.mark.parametrize("init", ["k-means++", "k-means||", "random"])
def test_every_init_on_sparse_rows_equals_the_dense_one(init: str) -> None:
    """k-means++, k-means|| and random draw the same centres from CSR rows as from the
    dense rows (the same sample, the same potentials to float rounding)."""
    Xs, Xd, _ = _data()
    a = KMeans(6, init=init, random_state=3, n_init=1).fit(Xs)
    b = KMeans(6, init=init, random_state=3, n_init=1).fit(Xd)
    np.testing.assert_array_equal(a.labels_, b.labels_)
    assert a.inertia_ == pytest.approx(b.inertia_, rel=1e-10)


def test_cosine_kmeans_on_sparse_rows() -> None:
    """Spherical k-means on CSR rows: unit centres, the dense fit's labels, and the
    caller's matrix is not normalised in place."""
    Xs, Xd, _ = _data()
    before = Xs.data.copy()
    a = KMeans(6, metric="cosine", random_state=0, n_init=1).fit(Xs)
    b = KMeans(6, metric="cosine", random_state=0, n_init=1).fit(Xd)
    np.testing.assert_array_equal(a.labels_, b.labels_)
    np.testing.assert_allclose(np.linalg.norm(a.cluster_centers_, axis=1), 1, rtol=1e-6)
    np.testing.assert_array_equal(Xs.data, before)
    np.testing.assert_array_equal(a.predict(Xs), a.labels_)


def test_manhattan_on_sparse_rows_is_refused() -> None:
    """k-medians has no sparse kernels: a clear error, not a wrong answer."""
    Xs, _, _ = _data(n=200)
    with pytest.raises(ValueError, match="sparse X"):
        KMeans(3, metric="manhattan").fit(Xs)


@pytest.mark.parametrize("weighted", [False, True])
def test_minibatch_on_sparse_rows_equals_the_dense_fit(weighted: bool) -> None:
    """MiniBatchKMeans fit and partial_fit on CSR rows: the same batches, centres and
    inertia as on the dense rows."""
    Xs, Xd, _ = _data()
    w = np.random.default_rng(1).uniform(0.5, 2, Xs.shape[0]) if weighted else None
    a = MiniBatchKMeans(6, random_state=0, batch_size=256, n_init=1).fit(Xs, sample_weight=w)
    b = MiniBatchKMeans(6, random_state=0, batch_size=256, n_init=1).fit(Xd, sample_weight=w)
    assert a.n_steps_ == b.n_steps_
    np.testing.assert_allclose(a.cluster_centers_, b.cluster_centers_, rtol=1e-9, atol=1e-9)
    assert a.inertia_ == pytest.approx(b.inertia_, rel=1e-9)
    np.testing.assert_array_equal(a.labels_, b.labels_)
    p, q = (MiniBatchKMeans(6, random_state=0, batch_size=256, n_init=1) for _ in range(2))
    for s in range(0, Xs.shape[0], 500):
        sw = None if w is None else w[s:s + 500]
        p.partial_fit(Xs[s:s + 500], sample_weight=sw)
        q.partial_fit(Xd[s:s + 500], sample_weight=sw)
    np.testing.assert_allclose(p.cluster_centers_, q.cluster_centers_, rtol=1e-9, atol=1e-9)
    np.testing.assert_array_equal(p.predict(Xs), q.predict(Xd))


@pytest.mark.parametrize("strategy", ["biggest_inertia", "largest_cluster"])
def test_bisecting_on_sparse_rows_equals_the_dense_fit_and_scikit_learn(strategy: str) -> None:
    """BisectingKMeans on CSR rows: the dense fit's tree (labels, centres, inertia), and
    scikit-learn's partition of well separated clusters; predict follows the tree."""
    Xs, Xd, _ = _data()
    w = np.random.default_rng(2).uniform(0.5, 2, Xs.shape[0])
    kw = {"n_clusters": 6, "random_state": 0, "bisecting_strategy": strategy}
    a = BisectingKMeans(**kw).fit(Xs, sample_weight=w)
    b = BisectingKMeans(**kw).fit(Xd, sample_weight=w)
    sk = skcluster.BisectingKMeans(**kw).fit(Xs, sample_weight=w)
    np.testing.assert_array_equal(a.labels_, b.labels_)
    np.testing.assert_allclose(a.cluster_centers_, b.cluster_centers_, rtol=1e-9, atol=1e-9)
    assert a.inertia_ == pytest.approx(b.inertia_, rel=1e-9)
    assert a.inertia_ == pytest.approx(sk.inertia_, rel=1e-6)
    assert _same_partition(a.labels_, sk.labels_)
    np.testing.assert_array_equal(a.predict(Xs), a.labels_)
    assert a.score(Xs, sample_weight=w) == pytest.approx(-a.inertia_, rel=1e-9)


def test_metrics_on_sparse_rows() -> None:
    """Silhouettes (exact and sampled) and evaluate_model take CSR rows and give what
    they give on the dense rows."""
    Xs, Xd, y = _data(n=600)
    km = KMeans(6, random_state=0, n_init=1).fit(Xs)
    a, b = silhouette(Xs, km.labels_), silhouette(Xd, km.labels_)
    np.testing.assert_allclose(a.values, b.values, rtol=1e-9, atol=1e-12)
    a = silhouette(Xs, km.labels_, sample_size=60, random_state=0)
    b = silhouette(Xd, km.labels_, sample_size=60, random_state=0)
    np.testing.assert_allclose(a.values, b.values, rtol=1e-9, atol=1e-12)
    ra, rb = evaluate_model(km, Xs, y), evaluate_model(km, Xd, y)
    assert ra["accuracy"] == rb["accuracy"]
    assert ra["inertia"] == pytest.approx(rb["inertia"], rel=1e-10)
