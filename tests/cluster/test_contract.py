"""scikit-learn's user contract beyond its own test modules (tests/cluster/
test_sklearn_suite.py runs those): its warnings and error wording for lazy input too,
``verbose`` on stdout and progress bars behind ``callback``, ``n_init="auto"``,
``set_output``, ``get_feature_names_out`` and ``sample_weight`` routed in a Pipeline."""

from __future__ import annotations

import re
import warnings
from typing import Any

import dask.array as da
import numpy as np
import pytest
import sklearn
from sklearn.exceptions import ConvergenceWarning
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from daskmeans import BisectingKMeans, KMeans, MiniBatchKMeans
from daskmeans.progress import TqdmBars

ESTIMATORS = [KMeans, MiniBatchKMeans, BisectingKMeans]


@pytest.fixture(scope="module")
def X() -> np.ndarray:
    rng = np.random.default_rng(0)
    centres = np.array([[0, 0, 0], [6, 0, 0], [0, 6, 0]], float)
    return np.concatenate([c + rng.normal(size=(100, 3)) for c in centres])


@pytest.mark.parametrize("lazy", [False, True])
@pytest.mark.parametrize("cls", ESTIMATORS)
def test_error_wording_is_scikit_learns(cls, lazy: bool) -> None:
    X = np.zeros((5, 2))
    with pytest.raises(ValueError, match=re.escape("n_samples=5 should be >= n_clusters=6.")):
        cls(6).fit(da.from_array(X, chunks=2) if lazy else X)


@pytest.mark.parametrize("cls", [KMeans, MiniBatchKMeans])
def test_init_shape_errors(cls, X: np.ndarray) -> None:
    with pytest.raises(ValueError, match=re.escape(
            "The shape of the initial centers (2, 3) does not match the number of "
            "clusters 3.")):
        cls(3, init=X[:2], n_init=1).fit(X)
    with pytest.raises(ValueError, match=re.escape(
            "The shape of the initial centers (3, 2) does not match the number of "
            "features of the data 3.")):
        cls(3, init=lambda x, k, random_state: x[:k, :2], n_init=1).fit(X)


@pytest.mark.parametrize("cls", [KMeans, MiniBatchKMeans])
def test_explicit_init_with_n_init_warns(cls, X: np.ndarray) -> None:
    with pytest.warns(RuntimeWarning, match="Explicit initial center position passed: "
                      f"performing only one init in {cls.__name__} instead of n_init=4"):
        cls(3, init=X[:3], n_init=4).fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cls(3, init=X[:3], n_init="auto").fit(X)  # "auto" is 1 for an array: no warning
        cls(3, init=X[:3], n_init=1).fit(X)


def test_elkan_with_one_cluster_warns_and_runs_lloyd(X: np.ndarray) -> None:
    with pytest.warns(RuntimeWarning, match="algorithm='elkan' doesn't make sense"):
        km = KMeans(1, algorithm="elkan").fit(X)
    np.testing.assert_allclose(km.cluster_centers_[0], X.mean(0))


def test_fewer_distinct_points_than_clusters_warns() -> None:
    X = np.array([[0.0, 0], [0, 1], [1, 0], [1, 0]])
    with pytest.warns(ConvergenceWarning, match=re.escape(
            "Number of distinct clusters (3) found smaller than n_clusters (4). Possibly "
            "due to duplicate points in X.")):
        km = KMeans(4, random_state=0).fit(X)
    assert set(km.labels_) == {0, 1, 2}
    with warnings.catch_warnings():  # no warning when every cluster gets rows
        warnings.simplefilter("error")
        KMeans(3, random_state=0).fit(X)


def test_minibatch_init_size_warning(X: np.ndarray) -> None:
    with pytest.warns(RuntimeWarning, match=re.escape(
            "init_size=2 should be larger than n_clusters=3. Setting it to "
            "min(3*n_clusters, n_samples)")):
        MiniBatchKMeans(3, init_size=2, random_state=0).fit(X)


@pytest.mark.parametrize(("algorithm", "tol", "last"), [
    ("lloyd", 0.0, r"Converged at iteration \d+: strict convergence\."),
    ("elkan", 0.0, r"Converged at iteration \d+: strict convergence\."),
    ("lloyd", 1e-1, r"Converged at iteration \d+: center shift \S+ within tolerance 0.1"),
])
def test_kmeans_verbose_prints_scikit_learns_lines(X: np.ndarray, capsys, algorithm: str,
                                                   tol: float, last: str) -> None:
    km = KMeans(3, init="random", n_init=2, tol=tol, algorithm=algorithm, random_state=0,
                verbose=1).fit(X)
    out, err = capsys.readouterr()
    assert out.count("Initialization complete") == 2
    assert re.search(r"^Iteration 0, inertia [0-9.e+]+$", out, re.M)
    assert len(re.findall(last, out)) == 2
    assert err == ""  # no progress bars with verbose
    assert len(re.findall(r"^Iteration \d+", out, re.M)) >= km.n_iter_


def test_minibatch_verbose(capsys) -> None:
    from sklearn.datasets import make_blobs

    X, _, centres = make_blobs(centers=3, random_state=0, return_centers=True)
    for tol, max_no_improvement, says in [
            (1e-4, None, "Converged (small centers change) at step"),
            (0.0, 2, "Converged (lack of improvement in inertia) at step")]:
        MiniBatchKMeans(3, init=centres, batch_size=20, tol=tol, random_state=0,
                        max_iter=10, n_init=1, verbose=1,
                        max_no_improvement=max_no_improvement).fit(X)
        out, err = capsys.readouterr()
        assert re.search(r"^Minibatch step 1/\d+: mean batch inertia: \S+$", out, re.M)
        assert says in out and err == ""


def test_bisecting_verbose_and_quiet_by_default(X: np.ndarray, capsys) -> None:
    BisectingKMeans(3, random_state=0).fit(X)
    assert capsys.readouterr() == ("", "")
    model = BisectingKMeans(3, random_state=0, verbose=1).fit(X)
    out, err = capsys.readouterr()
    assert err == ""
    splits = re.findall(r"^New centroids from bisection: \[\[", out, re.M)  # scikit-learn's
    assert len(splits) == 2
    # the first split's two centres, as numpy prints them
    root = model.tree_.children[0]
    assert f"New centroids from bisection: {model.tree_.centers[list(root)]}" in out


class StdoutAtReports:
    """A progress callback that notes, at every report, the lines printed so far."""

    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self.capsys, self.out, self.seen = capsys, "", []

    def __call__(self, phase: str, done: int, total: int | None, detail: str = "") -> None:
        self.out += self.capsys.readouterr().out
        self.seen.append((phase, done, self.out.splitlines()))


def _sparse(X: np.ndarray) -> Any:
    import scipy.sparse as sp

    Xs = X - X.min(0)
    Xs[Xs < 2] = 0  # mostly zeros
    return sp.csr_matrix(Xs)


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("algorithm", ["lloyd", "elkan"])
def test_kmeans_verbose_lines_are_live(X: np.ndarray, capsys, algorithm: str,
                                       sparse: bool) -> None:
    """Each iteration's line is out before the next progress report: printed as the
    iteration ends, not when the fit does."""
    at = StdoutAtReports(capsys)
    km = KMeans(3, init="random", n_init=1, tol=0.0, algorithm=algorithm, random_state=1,
                verbose=1, callback=at).fit(_sparse(X) if sparse else X)
    reports = [(done, lines) for phase, done, lines in at.seen if phase == "lloyd"]
    assert len(reports) == km.n_iter_ > 1
    for done, lines in reports:
        its = [ln for ln in lines if ln.startswith("Iteration ")]
        assert its[-1].startswith(f"Iteration {done - 1}, inertia ")
        assert len(its) == done
    assert reports[-1][1][-1] == f"Converged at iteration {km.n_iter_ - 1}: strict convergence."
    assert km.history_[0]["inertia"] == float(reports[0][1][-1].split()[-1])


@pytest.mark.parametrize("sparse", [False, True])
def test_minibatch_and_bisecting_verbose_lines_are_live(X: np.ndarray, capsys,
                                                        sparse: bool) -> None:
    rows = _sparse(X) if sparse else X
    at = StdoutAtReports(capsys)
    MiniBatchKMeans(3, batch_size=50, max_iter=3, n_init=1, tol=0.0, random_state=0,
                    max_no_improvement=None, verbose=1, callback=at).fit(rows)
    steps = [(done, lines) for phase, done, lines in at.seen if phase == "mini-batch"]
    assert len(steps) > 1
    for done, lines in steps:
        assert re.match(rf"Minibatch step {done}/\d+: mean batch inertia: ", lines[-1])
    at = StdoutAtReports(capsys)
    BisectingKMeans(4, random_state=0, verbose=1, callback=at).fit(rows)
    splits = [(done, lines) for phase, done, lines in at.seen if phase == "bisecting"]
    assert [done for done, _ in splits] == [1, 2, 3]
    for done, lines in splits:
        assert sum(ln.startswith("New centroids from bisection: ") for ln in lines) == done


def test_progress_bars_behind_callback(X: np.ndarray, capsys) -> None:
    KMeans(3, random_state=0, callback=TqdmBars()).fit(X)
    out, err = capsys.readouterr()
    assert out == "" and "lloyd" in err


@pytest.mark.parametrize(("cls", "init", "runs"), [
    (KMeans, "random", 10), (KMeans, "k-means++", 1), (MiniBatchKMeans, "random", 3),
    (MiniBatchKMeans, "k-means++", 1)])
def test_n_init_auto(cls, init: str, runs: int, X: np.ndarray) -> None:
    """``n_init="auto"``: 10 (KMeans) or 3 (MiniBatchKMeans) runs for random and
    callable inits, one for k-means++ and arrays; the explicit count gives the same."""
    auto = cls(3, init=init, n_init="auto", random_state=0).fit(X)
    explicit = cls(3, init=init, n_init=runs, random_state=0).fit(X)
    np.testing.assert_array_equal(auto.cluster_centers_, explicit.cluster_centers_)


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_set_output_and_feature_names(cls, X: np.ndarray) -> None:
    pd = pytest.importorskip("pandas")
    km = cls(3, random_state=0).set_output(transform="pandas").fit(X)
    names = [f"{cls.__name__.lower()}{i}" for i in range(3)]
    assert list(km.get_feature_names_out()) == names
    out = km.transform(X)
    assert isinstance(out, pd.DataFrame) and list(out.columns) == names
    np.testing.assert_allclose(out.to_numpy(), cls(3, random_state=0).fit(X).transform(X))


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_sample_weight_routed_in_a_pipeline(cls, X: np.ndarray) -> None:
    w = np.r_[np.ones(200), np.zeros(100)]
    with sklearn.config_context(enable_metadata_routing=True):
        pipe = make_pipeline(StandardScaler().set_fit_request(sample_weight=False),
                             cls(3, random_state=0).set_fit_request(sample_weight=True))
        pipe.fit(X, sample_weight=w)
    ref = cls(3, random_state=0).fit(StandardScaler().fit_transform(X), sample_weight=w)
    np.testing.assert_allclose(pipe[-1].cluster_centers_, ref.cluster_centers_)
    unweighted = cls(3, random_state=0).fit(StandardScaler().fit_transform(X))
    assert not np.allclose(pipe[-1].cluster_centers_, unweighted.cluster_centers_)
