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
