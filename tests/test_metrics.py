"""Evaluation: every score equals scikit-learn's, on numpy and on dask in one compute."""

from __future__ import annotations

import json
from pathlib import Path

import dask.array as da
import numpy as np
import pytest
import sklearn.metrics as skm
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics.cluster import contingency_matrix as sk_contingency

from daskmeans import KMeans, metrics

SCORES = {
    "homogeneity": (metrics.homogeneity_score, skm.homogeneity_score),
    "completeness": (metrics.completeness_score, skm.completeness_score),
    "v_measure": (metrics.v_measure_score, skm.v_measure_score),
    "adjusted_rand": (metrics.adjusted_rand_score, skm.adjusted_rand_score),
    "normalized_mutual_info": (metrics.normalized_mutual_info_score,
                               skm.normalized_mutual_info_score),
}

labelings = st.integers(1, 60).flatmap(
    lambda n: st.tuples(
        st.lists(st.sampled_from([0, 1, 2, 7, 100]), min_size=n, max_size=n),
        st.lists(st.sampled_from([0, 3, 4, 9, 1000, 5]), min_size=n, max_size=n),
    )
)


def sk_purity(t: np.ndarray, p: np.ndarray) -> float:
    c = sk_contingency(t, p)
    return c.max(axis=0).sum() / c.sum()


@settings(max_examples=150, deadline=None)
@given(labelings)
def test_scores_equal_sklearn(pair: tuple[list[int], list[int]]) -> None:
    t, p = np.array(pair[0]), np.array(pair[1])
    np.testing.assert_array_equal(metrics.contingency_matrix(t, p), sk_contingency(t, p))
    for name, (ours, ref) in SCORES.items():
        assert ours(t, p) == pytest.approx(ref(t, p), abs=1e-12), name
    assert metrics.purity_score(t, p) == pytest.approx(sk_purity(t, p), abs=1e-12)
    r = metrics.evaluate(t, p)
    for name, (_, ref) in SCORES.items():
        assert r[name] == pytest.approx(ref(t, p), abs=1e-12), name


@settings(max_examples=40, deadline=None)
@given(labelings, st.integers(1, 9))
def test_dask_any_chunking_equals_numpy(pair, chunk: int) -> None:
    t, p = np.array(pair[0]), np.array(pair[1])
    dt, dp = da.from_array(t, chunks=chunk), da.from_array(p, chunks=max(1, chunk // 2))
    assert metrics.evaluate(dt, dp) == metrics.evaluate(t, p)


def test_edge_cases_match_sklearn() -> None:
    cases = [
        ([0, 0, 0], [1, 1, 1]),  # single class, single cluster
        ([0, 0, 0], [0, 1, 2]),  # single class
        ([0, 1, 2], [5, 5, 5]),  # single cluster
        ([3], [8]),
        ([10**6, 5, 5], [2, 2, 10**7]),  # large, non-contiguous label values
        ([], []),  # empty
    ]
    for t, p in cases:
        ta, pa = np.array(t, dtype=np.int64), np.array(p, dtype=np.int64)
        for name, (ours, ref) in SCORES.items():
            want = ref(t, p)
            assert ours(t, p) == pytest.approx(want, abs=1e-12), (name, t, p)
            lazy = ours(da.from_array(ta, chunks=2), da.from_array(pa, chunks=2))
            assert lazy == pytest.approx(want, abs=1e-12), (name, t, p, "dask")


def test_empty_chunks_and_float_labels() -> None:
    t = da.concatenate([da.from_array(np.array([0, 1, 1]), chunks=3),
                        da.zeros(0, dtype=int, chunks=1),
                        da.from_array(np.array([2.0, 2.0]), chunks=1)])
    p = np.array([1, 0, 0, 2, 2])
    np.testing.assert_array_equal(metrics.contingency_matrix(t, p),
                                  sk_contingency([0, 1, 1, 2, 2], p))


def test_evaluate_is_one_compute_with_lazy_predictions(counting_scheduler) -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(3000, 4))
    y = (X[:, 0] > 0).astype(int)
    km = KMeans(4, random_state=0, init=X[:4]).fit(X)
    counting_scheduler.calls = 0
    Xd = da.from_array(X, chunks=500)
    r = metrics.evaluate(da.from_array(y, chunks=500), km.predict(Xd))
    assert counting_scheduler.calls == 1
    assert r["accuracy"] == pytest.approx(metrics.cluster_accuracy(y, km.predict(X)))


def test_mapping_accuracy_and_confusion() -> None:
    y = np.array([0, 0, 0, 1, 1, 2, 2, 2])
    c = np.array([5, 5, 6, 6, 6, 7, 7, 5])
    assert metrics.infer_cluster_labels(y, c) == {5: 0, 6: 1, 7: 2}
    assert metrics.cluster_accuracy(y, c) == pytest.approx(6 / 8)
    assert metrics.cluster_accuracy(y, c, mapping="hungarian") == pytest.approx(6 / 8)
    score, per = metrics.purity_score(y, c, per_cluster=True)
    assert score == pytest.approx(6 / 8) and per.tolist() == pytest.approx([2 / 3, 2 / 3, 1])
    cm, labels = metrics.confusion_matrix(y, c)
    assert labels.tolist() == [0, 1, 2]
    assert cm.tolist() == [[2, 1, 0], [0, 2, 0], [1, 0, 2]]
    # ties go to the smallest label
    assert metrics.infer_cluster_labels([4, 2], [0, 0]) == {0: 2}
    # hungarian is one-to-one: two clusters cannot both map to label 0
    assert metrics.cluster_accuracy([0, 0, 0, 0], [1, 1, 2, 2], mapping="hungarian") == 0.5


def test_mapping_learned_on_train_applies_to_test(mnist_test) -> None:
    X, y = mnist_test
    cut = len(X) * 4 // 5  # learn on 80% of the rows, apply to the other 20%
    Xtr, ytr, Xte, yte = X[:cut], y[:cut], X[cut:], y[cut:]
    km = KMeans(36, random_state=0).fit(Xtr)
    mapping = metrics.infer_cluster_labels(ytr, km.labels_)
    pred_te = km.predict(da.from_array(Xte, chunks=700))
    acc = metrics.cluster_accuracy(yte, pred_te, mapping)
    mapped = metrics.apply_mapping(pred_te, mapping)
    assert isinstance(mapped, da.Array)
    assert acc == pytest.approx(float((mapped.compute() == yte).mean()))
    assert acc > 0.7


@pytest.mark.parametrize(
    ("t", "p", "message"),
    [
        ([0, 1], [0], "same length"),
        ([0, -1], [0, 1], "non-negative"),
        ([0.5, 1], [0, 1], "fractional"),
        ([np.nan, 1], [0, 1], "NaN"),
    ],
)
def test_label_errors(t, p, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        metrics.evaluate(np.array(t), np.array(p))
    with pytest.raises(ValueError, match=message):
        metrics.evaluate(da.from_array(np.array(t), chunks=1), np.array(p))


def test_sweep_table_and_writers(mnist_test, tmp_path: Path) -> None:
    X, y = mnist_test
    rows = metrics.sweep(X[:1500], y[:1500], [10, 36], X_test=X[1500:2000],
                         y_test=y[1500:2000], random_state=0, max_iter=50,
                         meta={"dataset": "mnist", "split": "test[:1500]"})
    assert [r["k"] for r in rows] == [10, 36]
    assert rows[1]["purity"] > rows[0]["purity"]
    assert rows[1]["inertia"] < rows[0]["inertia"]
    assert list(rows[0])[:5] == ["dataset", "split", "algorithm", "seed", "k"]
    assert set(rows[0]) >= {"inertia", "homogeneity", "purity", "heldout_accuracy", "seconds",
                            "silhouette", "silhouette_se"}
    # the silhouette column is the sampled estimate (1000 of the 1500 rows, the sweep's seed)
    km = KMeans(10, random_state=0, max_iter=50).fit(X[:1500])
    want = metrics.silhouette(X[:1500], km.labels_, sample_size=1000, random_state=0)
    assert rows[0]["silhouette"] == pytest.approx(want.score, abs=1e-12)
    assert rows[0]["silhouette_se"] == pytest.approx(want.standard_error, rel=1e-9)
    assert "train_accuracy" not in rows[0]  # it was purity under another name
    metrics.write_csv(rows, tmp_path / "s.csv")
    metrics.write_json(rows, tmp_path / "s.json")
    assert json.loads((tmp_path / "s.json").read_text())[0]["k"] == 10
    assert (tmp_path / "s.csv").read_text().startswith("dataset,split,algorithm,seed,k,inertia")
    md = metrics.to_markdown(rows)
    assert md.startswith("dataset: mnist, split: test[:1500], algorithm: lloyd, seed: 0\n")
    assert "| k | inertia |" in md
    with pytest.raises(ValueError, match="algorithm must be"):
        metrics.sweep(X[:100], y[:100], [2], algorithm="elkan")


@pytest.mark.slow
def test_tutorial_table_on_real_mnist(mnist_test) -> None:
    """The tutorials' K sweep on real MNIST (mini-batch, as they do). On the shipped
    2,000 rows the top purity bound is 0.84 (0.89 on the whole 10,000-row test split,
    the same margin below what the sweep reaches)."""
    X, y = mnist_test
    ks = [10, 16, 36, 64, 144, 256]
    rows = metrics.sweep(X, y, ks, algorithm="minibatch", random_state=0,
                         silhouette_sample_size=None)  # tested above; ~3 s here
    acc = [r["purity"] for r in rows]
    assert "silhouette" not in rows[0]
    assert acc[-1] >= 0.84, acc
    assert acc[2] < acc[4] < acc[5] and acc[0] < acc[3], acc  # rising with K
    assert all(a.get("homogeneity") for a in rows)


@pytest.mark.parametrize("lazy", [False, True])
def test_evaluate_model_is_one_pass_and_equals_two(lazy: bool, counting_scheduler) -> None:
    from sklearn.datasets import make_blobs

    from daskmeans import KMeans

    X, y = make_blobs(3000, n_features=5, centers=6, cluster_std=3.0, random_state=4)
    km = KMeans(8, random_state=0, n_init=1).fit(X)
    Xin = da.from_array(X, chunks=700) if lazy else X
    yin = da.from_array(y, chunks=1000) if lazy else y  # chunked unlike X on purpose
    counting_scheduler.calls = 0
    r = metrics.evaluate_model(km, Xin, yin, mapping="hungarian")
    assert counting_scheduler.calls == (1 if lazy else 0)
    two = metrics.evaluate(y, km.predict(X), mapping="hungarian")
    assert {k: v for k, v in r.items() if k != "inertia"} == two
    assert r["inertia"] == pytest.approx(-km.score(X), rel=1e-12)
    assert r["inertia"] == pytest.approx(((X - km.cluster_centers_[km.predict(X)]) ** 2).sum(),
                                         rel=1e-6)
    with pytest.raises(metrics.LabelError, match="one label per row of X"):
        metrics.evaluate_model(km, Xin, y[:10])



def test_cluster_order_puts_counts_on_the_diagonal() -> None:
    from scipy.optimize import linear_sum_assignment

    rng = np.random.default_rng(1)
    y = rng.integers(0, 10, 3000)
    perm = rng.permutation(10) + 20  # cluster ids unrelated to the labels
    p = np.where(rng.random(3000) < 0.7, perm[y], rng.choice(perm, 3000))
    table = sk_contingency(y, p)
    order = metrics.cluster_order(y, p)  # K == n_classes: Hungarian, a permutation
    assert sorted(order.tolist()) == sorted(perm.tolist())
    reordered = table[:, np.searchsorted(np.unique(p), order)]
    rows, cols = linear_sum_assignment(-table)
    assert np.trace(reordered) == table[rows, cols].sum()
    assert order.tolist() == perm.tolist()  # cluster perm[i] holds mostly label i
    # more clusters than classes: majority labels non-decreasing along the order
    p2 = p * 3 + rng.integers(0, 3, 3000)
    order2 = metrics.cluster_order(y, da.from_array(p2, chunks=700))
    mapping = metrics.infer_cluster_labels(y, p2)
    labels = [mapping[k] for k in order2.tolist()]
    assert labels == sorted(labels) and len(order2) == 30
    assert metrics.cluster_order(y, p2, mapping="majority").tolist() == order2.tolist()
    from daskmeans import plot

    assert plot.label_order(4, {0: 7, 1: 2, 3: 2}) == metrics.order_by_label(range(4),
                                                                          {0: 7, 1: 2, 3: 2})


def test_contingency_frame_and_purity_table() -> None:
    rng = np.random.default_rng(2)
    y = rng.integers(0, 4, 500) * 2 + 1  # labels 1, 3, 5, 7
    p = (y + rng.integers(0, 3, 500)) % 6  # six clusters
    frame = metrics.contingency_frame(y, da.from_array(p, chunks=77))
    order = metrics.cluster_order(y, p)
    assert frame.index.tolist() == [1, 3, 5, 7] and frame.columns.tolist() == order.tolist()
    assert frame.index.name == "true label" and frame.columns.name == "cluster"
    np.testing.assert_array_equal(frame.to_numpy(), sk_contingency(y, p)[:, order])
    by_id = metrics.contingency_frame(y, p, order="sorted")
    assert by_id.columns.tolist() == list(range(6))
    table = metrics.purity_table(y, p)
    assert table.index.tolist() == order.tolist()
    c = sk_contingency(y, p)[:, order]
    np.testing.assert_array_equal(table["size"], c.sum(axis=0))
    np.testing.assert_allclose(table["purity"], c.max(axis=0) / c.sum(axis=0))
    assert (table["label"].to_numpy() == np.array([1, 3, 5, 7])[c.argmax(axis=0)]).all()
    assert table["count"].sum() / table["size"].sum() == pytest.approx(sk_purity(y, p))
    _, per = metrics.purity_score(y, p, per_cluster=True)
    np.testing.assert_allclose(table.sort_index()["purity"], per)
    with pytest.raises(ValueError, match="order must be .* got 'diagonal'"):
        metrics.purity_table(y, p, order="diagonal")


def test_hungarian_accuracy_only_where_clusters_can_all_be_matched() -> None:
    y = np.repeat([0, 1, 2], 4)
    assert metrics.evaluate(y, y + 5)["accuracy_hungarian"] == 1.0
    few = metrics.evaluate(y, np.repeat([0, 1, 1], 4))  # 2 clusters, 3 classes
    assert few["accuracy_hungarian"] == pytest.approx(8 / 12)
    many = metrics.evaluate(y, np.arange(12))  # 12 clusters: 9 would be left unmatched
    assert many["accuracy_hungarian"] is None and many["accuracy"] == 1.0


@pytest.fixture(scope="module")
def digits_clusters() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    X = load_digits().data.astype(np.float32)
    return X, KMeans(10, random_state=0, n_init=1).fit(X).labels_


def test_silhouette_exact_equals_sklearn(digits_clusters) -> None:
    X, labels = digits_clusters
    want = skm.silhouette_samples(X, labels)
    got = metrics.silhouette_samples(X, labels)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
    assert metrics.silhouette_score(X, labels) == pytest.approx(want.mean(), abs=1e-6)
    # float32 rows: scikit-learn rounds its distances to float32, ours stay float64
    want64 = skm.silhouette_samples(X.astype(np.float64), labels)
    np.testing.assert_allclose(got, want64, rtol=0, atol=1e-12)
    # any label values, a cluster of one row, duplicate rows; lazy rows and labels
    odd = labels.astype(np.int64) * 7 + 3
    odd[100] = 1000
    Xd = np.concatenate([X[:300], X[:50]])
    ld = np.concatenate([odd[:300], odd[:50]])
    want = skm.silhouette_samples(Xd, ld)
    got = metrics.silhouette(da.from_array(Xd, chunks=77), da.from_array(ld, chunks=50))
    np.testing.assert_allclose(got.values, want, rtol=0, atol=1e-6)
    assert got.exact and got.standard_error == 0 and got.values[100] == 0
    np.testing.assert_array_equal(got.labels, ld)


def test_silhouette_sample_is_exact_per_row_and_chunking_free(
        digits_clusters, tmp_path: Path, counting_scheduler) -> None:
    import zarr

    X, labels = digits_clusters
    exact = skm.silhouette_samples(X, labels)
    counting_scheduler.calls = 0
    est = metrics.silhouette(X, labels, sample_size=400, random_state=3)
    assert counting_scheduler.calls == 1  # numpy: no gathering pass
    want_index = np.sort(np.random.default_rng(3).choice(len(X), 400, replace=False))
    np.testing.assert_array_equal(est.index, want_index)
    np.testing.assert_allclose(est.values, exact[est.index], rtol=0, atol=1e-6)
    np.testing.assert_array_equal(est.labels, labels[est.index])
    se = np.std(est.values, ddof=1) / np.sqrt(400) * np.sqrt(1 - 400 / len(X))
    assert est.standard_error == pytest.approx(se) and est.score == pytest.approx(
        est.values.mean())
    assert abs(est.score - exact.mean()) < 4 * est.standard_error
    # the same estimate from dask (any chunks, labels chunked otherwise) and from Zarr
    counting_scheduler.calls = 0
    lazy = metrics.silhouette(da.from_array(X, chunks=333), da.from_array(labels, chunks=500),
                              sample_size=400, random_state=3)
    assert counting_scheduler.calls == 2  # gather the sample, then one pass of sums
    z = zarr.create_array(tmp_path / "x.zarr", shape=X.shape, chunks=(250, 64), dtype=X.dtype)
    z[:] = X
    stored = metrics.silhouette(z, labels, sample_size=400, random_state=3)
    for other in (lazy, stored):
        np.testing.assert_array_equal(other.index, est.index)
        np.testing.assert_allclose(other.values, est.values, rtol=0, atol=1e-12)
        assert other.standard_error == pytest.approx(est.standard_error, rel=1e-9)
    assert metrics.silhouette_score(X, labels, sample_size=400, random_state=3) == est.score
    other_seed = metrics.silhouette(X, labels, sample_size=400, random_state=4)
    assert not np.array_equal(other_seed.index, est.index)


def test_silhouette_errors() -> None:
    X = np.random.default_rng(0).normal(size=(50, 3))
    lab = np.arange(50) % 3
    with pytest.raises(ValueError, match="labels must have one entry per row of X, got 49"):
        metrics.silhouette(X, lab[:49])
    with pytest.raises(ValueError, match="sample_size must be an integer >= 2 or None, got 1"):
        metrics.silhouette(X, lab, sample_size=1)
    with pytest.raises(ValueError, match="2 to n_samples - 1 = 49 distinct values.*got 1"):
        metrics.silhouette(X, np.zeros(50, int))
    with pytest.raises(ValueError, match="labels must be non-negative"):
        metrics.silhouette(da.from_array(X, chunks=20), da.from_array(lab - 1, chunks=20),
                           sample_size=10, random_state=0)
    with pytest.raises(ValueError, match="2 to n_samples - 1 = 49 distinct values.*got 1"):
        metrics.silhouette(da.from_array(X, chunks=20), da.zeros(50, dtype=int, chunks=20),
                           sample_size=10, random_state=0)
    bad = X.copy()
    bad[33, 1] = np.nan
    with pytest.raises(ValueError, match="row 33"):
        metrics.silhouette(da.from_array(bad, chunks=20), lab, sample_size=10, random_state=0)


def test_silhouette_under_each_scheduler(digits_clusters, scheduler) -> None:
    X, labels = digits_clusters
    want = metrics.silhouette(X, labels, sample_size=300, random_state=1)
    for Xin, lab in [(X, labels), (da.from_array(X, chunks=400), da.from_array(labels, 600))]:
        got = metrics.silhouette(Xin, lab, sample_size=300, random_state=1)
        np.testing.assert_allclose(got.values, want.values, rtol=0, atol=1e-12)


MNIST_KS = [10, 16, 36, 64, 144, 256]
MNIST_INERTIA = [2.53e5, 2.30e5, 1.95e5, 1.76e5, 1.52e5, 1.36e5]
TWO_ELBOWS = [100, 60, 40, 38, 37, 36, 35.5, 20, 10, 9, 8.5, 8, 7.8, 7.6, 7.5]


@pytest.mark.parametrize(("x", "y", "s", "want"), [
    # the answers of kneed 0.9.0's KneeLocator(curve="convex", direction="decreasing")
    (MNIST_KS, MNIST_INERTIA, 0.5, 64), (MNIST_KS, MNIST_INERTIA, 1.0, 64),
    (MNIST_KS, MNIST_INERTIA, 3.0, None),
    (list(range(1, 11)), [7.5, 3.5, 2.3, 1.8, 1.5, 1.3, 1.1, 1.0, 0.9, 0.85], 1.0, 3),
    (list(range(1, 16)), TWO_ELBOWS, 1.0, 3), (list(range(1, 16)), TWO_ELBOWS, 2.0, 3),
    # an L: the corner; a straight line: none; kneed says 2 (the first point) here
    ([1, 2, 3, 4, 5, 6], [50, 25, 0, -1, -2, -3], 1.0, 3), ([1, 2, 3, 4], [4, 3, 2, 1], 1.0, None),
    ([2, 3, 4, 5, 6, 7, 8], [100, 99, 98, 60, 30, 29, 28], 1.0, 6),
])
def test_kneedle(x, y, s: float, want) -> None:
    r = metrics.kneedle(x[::-1], y[::-1], sensitivity=s)  # any order
    assert r.knee == want
    assert r.x.tolist() == sorted(x) and r.difference[0] == pytest.approx(0)


def test_choose_k_says_why() -> None:
    rows = [{"k": k, "inertia": i, "silhouette": s, "silhouette_se": 0.002}
            for k, i, s in zip(MNIST_KS, MNIST_INERTIA, [0.18, 0.12, 0.09, 0.07, 0.06, 0.06],
                               strict=True)]
    r = metrics.choose_k(rows)
    assert (r["k"], r["knee"], r["best_silhouette"]) == (64, 64, 10)
    assert r["message"] == ("K=64: the elbow of inertia (Kneedle); the highest silhouette "
                            "is at K=10 (0.180, SE 0.002), at K=64 it is 0.070, SE 0.002")
    flat = [{**row, "inertia": 100.0 - row["k"]} for row in rows]  # a line: no elbow
    assert metrics.choose_k(flat)["k"] == 10
    assert metrics.choose_k([{"k": 2, "inertia": 1.0}])["k"] is None
    with pytest.raises(ValueError, match="at least one sweep row"):
        metrics.choose_k([])


@settings(max_examples=50, deadline=None)
@given(labelings)
def test_homogeneity_completeness_v_measure_equals_sklearn(pair: tuple[list, list]) -> None:
    from daskmeans.metrics.scores import homogeneity_completeness_v_measure

    t, p = np.array(pair[0]), np.array(pair[1])
    want = skm.homogeneity_completeness_v_measure(t, p)
    np.testing.assert_allclose(homogeneity_completeness_v_measure(t, p), want, atol=1e-12)
    c = metrics.contingency(t, p)  # a table already built: no second pass
    assert homogeneity_completeness_v_measure(c) == homogeneity_completeness_v_measure(t, p)


def test_silhouette_sample_scores_every_labeling_like_silhouette() -> None:
    from daskmeans.metrics.silhouettes import SilhouetteSample

    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 3))
    sample = SilhouetteSample(da.from_array(X, chunks=70), 40, random_state=5)
    for k in (2, 5):
        labels = rng.integers(0, k, 300)
        got = sample.score(labels)
        want = metrics.silhouette(X, labels, sample_size=40, random_state=5)
        np.testing.assert_array_equal(got.index, want.index)
        np.testing.assert_allclose(got.values, want.values, rtol=1e-12)
        assert got.standard_error == pytest.approx(want.standard_error, rel=1e-12)
    exact = SilhouetteSample(X, 300).score(labels)
    np.testing.assert_allclose(exact.values, skm.silhouette_samples(X, labels), atol=1e-12)
