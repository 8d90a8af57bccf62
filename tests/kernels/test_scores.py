"""Label validation and contingency tables."""

from __future__ import annotations

import numpy as np
import pytest

from daskmeans.kernels import scores


@pytest.mark.usefixtures("both_kernels")
def test_pair_table_hand_and_brute() -> None:
    t = np.array([0, 0, 2, 5])
    p = np.array([1, 1, 0, 1])
    table = scores.pair_table(t, p)
    assert table.table is not None and table.table.shape == (6, 2)
    classes, clusters, ct = table.finish()
    assert classes.tolist() == [0, 2, 5] and clusters.tolist() == [0, 1]
    assert ct.tolist() == [[0, 2], [1, 0], [0, 1]]
    big = scores.pair_table(np.array([0, 10**9]), np.array([3, 3]))  # sparse path
    merged = (big + table).finish()
    assert merged[0].tolist() == [0, 2, 5, 10**9]
    assert merged[2].sum() == 6


@pytest.mark.usefixtures("both_kernels")
@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (np.array([0, -1]), "non-negative"),
        (np.array([0.5, 1.0]), "fractional"),
        (np.array([np.nan, 1.0]), "NaN"),
        (np.array(["a", "b"]), "integer labels"),
    ],
)
def test_label_validation(labels: np.ndarray, message: str) -> None:
    with pytest.raises(scores.LabelError, match=message):
        scores.pair_table(labels, np.array([0, 0]))


@pytest.mark.usefixtures("both_kernels")
@pytest.mark.parametrize("name", ["euclidean", "manhattan"])
def test_score_block_against_brute_force(name: str) -> None:
    """The weighted objective and the contingency table of one assignment, against
    numpy brute force; rows of zero weight take no part in the table."""
    rng = np.random.default_rng(6)
    X = rng.normal(size=(300, 4))
    C = rng.normal(size=(5, 4))
    w = rng.uniform(0, 2, 300)
    w[::10] = 0
    truth = rng.integers(0, 3, 300)
    diff = X[:, None, :] - C[None]
    D = (diff ** 2).sum(-1) if name == "euclidean" else np.abs(diff).sum(-1)
    got = scores.score_block(X, C, w, truth, name)
    assert got.sse == pytest.approx(float(D.min(1) @ w), rel=1e-12)
    keep = w > 0
    want = np.zeros((3, 5), np.int64)
    np.add.at(want, (truth[keep], D.argmin(1)[keep]), 1)
    assert got.table is not None and got.table.table is not None
    np.testing.assert_array_equal(got.table.table, want[:, : got.table.table.shape[1]])


def test_gather_picks_rows_by_global_index() -> None:
    X = np.arange(12.0).reshape(6, 2)
    parts = [scores.gather(X[:3], np.array([1, 4, 5]), offset=0, labels=np.arange(3)),
             scores.gather(X[3:], np.array([1, 4, 5]), offset=3, labels=np.arange(3, 6))]
    g = (parts[1] + parts[0]).sorted()
    assert g.index.tolist() == [1, 4, 5] and g.values["labels"].tolist() == [1, 4, 5]
    np.testing.assert_array_equal(g.rows, X[[1, 4, 5]])
