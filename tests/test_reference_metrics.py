"""Purity against a brute-force count, on clusterings that are not perfect.

On a perfect clustering, or one with as many clusters as classes of equal size,
purity equals its transpose (inverse purity); the labelings here have unequal
numbers of classes and clusters and unequal sizes, so that the wrong axis of the
contingency table gives a different number.
"""

from __future__ import annotations

from collections import Counter

import dask.array as da
import numpy as np
import pytest

from daskmeans import KMeans, metrics


def brute_force_purity(labels_true: np.ndarray, labels_pred: np.ndarray
                       ) -> tuple[float, dict[int, float]]:
    """(purity, {cluster: its majority class's share of it}) counted row by row."""
    members: dict[int, Counter[int]] = {}
    for t, p in zip(labels_true.tolist(), labels_pred.tolist(), strict=True):
        members.setdefault(p, Counter())[t] += 1
    top = {k: max(c.values()) for k, c in members.items()}
    size = {k: sum(c.values()) for k, c in members.items()}
    return sum(top.values()) / len(labels_true), {k: top[k] / size[k] for k in members}


def brute_force_inverse_purity(labels_true: np.ndarray, labels_pred: np.ndarray) -> float:
    """The same count with the roles swapped: what the wrong axis computes."""
    return brute_force_purity(labels_pred, labels_true)[0]


def labelings() -> tuple[np.ndarray, np.ndarray]:
    """Three classes (label values 2, 5, 9) in five clusters (values 0, 1, 3, 7, 8):
    one class spread over three clusters, one cluster mixing classes."""
    true = np.array([2] * 30 + [5] * 12 + [9] * 8)
    pred = np.array([0] * 10 + [1] * 10 + [3] * 7 + [7] * 3   # class 2 over four clusters
                    + [7] * 9 + [8] * 3                       # class 5 mostly in cluster 7
                    + [8] * 6 + [7] * 2)                      # class 9 mostly in cluster 8
    order = np.random.default_rng(0).permutation(true.size)
    return true[order], pred[order]


def test_the_labelings_tell_the_axes_apart() -> None:
    t, p = labelings()
    assert brute_force_purity(t, p)[0] != pytest.approx(brute_force_inverse_purity(t, p))


def test_purity_score_matches_the_count() -> None:
    t, p = labelings()
    expected, per = brute_force_purity(t, p)
    assert metrics.purity_score(t, p) == pytest.approx(expected, abs=1e-12)
    score, per_cluster = metrics.purity_score(t, p, per_cluster=True)
    assert score == pytest.approx(expected, abs=1e-12)
    # aligned with the sorted cluster labels
    np.testing.assert_allclose(per_cluster, [per[k] for k in sorted(per)], atol=1e-12)


@pytest.mark.parametrize("lazy", [False, True])
def test_evaluate_purity_matches_the_count(lazy: bool) -> None:
    t, p = labelings()
    expected, _ = brute_force_purity(t, p)
    args = (da.from_array(t, chunks=17), da.from_array(p, chunks=17)) if lazy else (t, p)
    report = metrics.evaluate(*args)
    assert report["purity"] == pytest.approx(expected, abs=1e-12)
    assert report["n_classes"] == 3 and report["n_clusters"] == 5
    # the majority mapping learned on these labels scores the purity
    assert report["accuracy"] == pytest.approx(expected, abs=1e-12)


def test_purity_table_matches_the_count() -> None:
    pytest.importorskip("pandas")
    t, p = labelings()
    expected, per = brute_force_purity(t, p)
    table = metrics.purity_table(t, p).sort_index()
    np.testing.assert_allclose(table["purity"], [per[k] for k in sorted(per)], atol=1e-12)
    assert table["count"].sum() / table["size"].sum() == pytest.approx(expected, abs=1e-12)
    assert table["size"].tolist() == [int((p == k).sum()) for k in sorted(per)]


def model_data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """1-D rows whose K=4 clustering from a fixed init is not pure: rows at 0..5 with
    three classes."""
    X = np.array([[0.0], [0.1], [0.2], [1.0], [1.1], [3.0], [3.1], [3.2], [3.3],
                  [5.0], [5.1], [5.2]])
    y = np.array([0, 0, 1, 1, 1, 2, 2, 2, 0, 2, 1, 1])
    init = np.array([[0.0], [1.0], [3.0], [5.0]])
    return X, y, init


def test_evaluate_model_and_sweep_purity_match_the_count() -> None:
    X, y, init = model_data()
    km = KMeans(4, init=init, n_init=1).fit(X)
    expected, _ = brute_force_purity(y, np.asarray(km.labels_))
    assert expected != pytest.approx(brute_force_inverse_purity(y, np.asarray(km.labels_)))
    assert metrics.evaluate_model(km, X, y)["purity"] == pytest.approx(expected, abs=1e-12)
    (row,) = metrics.sweep(X, y, [4], init=init, n_init=1, silhouette_sample_size=None)
    assert row["purity"] == pytest.approx(expected, abs=1e-12)
