"""scikit-learn's own estimator checks, with numpy and scipy.sparse input."""

from __future__ import annotations

from sklearn.utils.estimator_checks import parametrize_with_checks

from daskmeans import BisectingKMeans, KMeans, MiniBatchKMeans

EXPECTED_FAILURES: dict[str, str] = {
    # As scikit-learn's own KMeans (it xfails the same check): the random init draws
    # different rows from n weighted rows than from their repetitions. With the same
    # initial centres the Lloyd iterations are weight-equivalent, which
    # tests/test_kmeans.py::test_integer_weights_equal_repeated_rows asserts.
    "check_sample_weight_equivalence_on_dense_data": (
        "random init differs between weighted and repeated rows (as scikit-learn)"
    ),
    # the same on CSR rows (the estimators take sparse input: their tags say so, and
    # scikit-learn runs its sparse checks); scikit-learn xfails it for the same reason
    "check_sample_weight_equivalence_on_sparse_data": (
        "random init differs between weighted and repeated rows (as scikit-learn)"
    ),
}


@parametrize_with_checks(
    [KMeans(n_clusters=3, random_state=0, n_init=1),
     MiniBatchKMeans(n_clusters=3, random_state=0, batch_size=10),
     BisectingKMeans(n_clusters=3, random_state=0)],
    expected_failed_checks=lambda est: EXPECTED_FAILURES,
)
def test_sklearn_compatible(estimator, check) -> None:
    check(estimator)
