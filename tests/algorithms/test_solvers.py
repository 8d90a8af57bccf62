"""The three KMeans solvers behind one signature, and the choice between them."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
from sklearn.datasets import make_blobs

from daskmeans.algorithms import FitSettings, as_metric, choose_solver, runs_per_pass
from daskmeans.algorithms.bounded import lloyd_bounded_runs
from daskmeans.algorithms.kmedians import kmedians_runs, prepare_kmedians
from daskmeans.algorithms.lloyd import lloyd
from daskmeans.engine.source import ArraySource, DaskSource


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, list[np.ndarray]]:
    X, _ = make_blobs(600, n_features=4, centers=5, cluster_std=1.5, random_state=0)
    rng = np.random.default_rng(1)
    return X, [X[rng.choice(600, 5, replace=False)] for _ in range(2)]


def brute_labels(X: np.ndarray, C: np.ndarray, metric: str) -> np.ndarray:
    diff = X[:, None, :] - C[None]
    d = np.abs(diff).sum(2) if metric == "manhattan" else (diff ** 2).sum(2)
    return d.argmin(1)


@pytest.mark.parametrize("solver, metric", [(lloyd, "euclidean"),
                                            (lloyd_bounded_runs, "euclidean"),
                                            (kmedians_runs, "manhattan")])
def test_every_solver_takes_the_same_arguments_and_labels_in_memory_runs(
        data, solver, metric) -> None:
    """Same call for all three; each returns one result per run, in order, with the
    labels of its final centres (the brute-force nearest centre) for in-memory rows."""
    X, C0s = data
    src = ArraySource(X)
    settings = FitSettings(max_iter=50, tol=0.0, metric=as_metric(metric))
    if solver is kmedians_runs:
        settings = prepare_kmedians(src, settings)
    results = solver(src, C0s, [3, 4], settings)
    assert len(results) == 2
    for r in results:
        assert r.strict and r.n_iter >= 1
        assert {h.init_run for h in r.history} <= {3, 4}
        np.testing.assert_array_equal(r.labels, brute_labels(X, r.centers, metric))
    assert [h.init_run for h in results[1].history] == [4] * results[1].n_iter


def test_bounded_and_shared_pass_lloyd_reach_the_same_run(data) -> None:
    X, C0s = data
    settings = FitSettings(max_iter=50, tol=0.0)
    (plain,) = lloyd(ArraySource(X), C0s[:1], [0], settings)
    (bounded,) = lloyd_bounded_runs(ArraySource(X), C0s[:1], [0], settings)
    np.testing.assert_allclose(bounded.centers, plain.centers, rtol=1e-12)
    assert bounded.n_iter == plain.n_iter
    assert bounded.inertia == pytest.approx(plain.inertia, rel=1e-9)
    np.testing.assert_array_equal(bounded.labels, plain.labels)


def test_choose_solver_once_per_fit() -> None:
    X = np.zeros((100, 4))
    mem, lazy = ArraySource(X), DaskSource(da.from_array(X, chunks=50))
    euclidean, manhattan = as_metric("euclidean"), as_metric("manhattan")

    def pick(metric, algorithm, src, n_runs=1, one=False):  # type: ignore[no-untyped-def]
        c = choose_solver(metric, algorithm, src, n_runs=n_runs, n_clusters=8,
                          one_run_at_a_time=one)
        return c.name, c.runs_per_pass

    assert pick(euclidean, "auto", mem) == ("bounded lloyd", 1)
    assert pick(euclidean, "auto", mem, n_runs=10) == ("lloyd, bounded for a lone run", 10)
    assert pick(euclidean, "auto", mem, n_runs=10, one=True) == ("bounded lloyd", 1)
    assert pick(euclidean, "auto", lazy) == ("bounded lloyd", 1)  # streamed: bounds too
    assert pick(euclidean, "elkan", mem, n_runs=10) == ("bounded lloyd", 1)
    assert pick(euclidean, "elkan", lazy, n_runs=10) == ("bounded lloyd", 1)
    assert pick(euclidean, "lloyd", mem) == ("lloyd", 1)
    assert pick(manhattan, "auto", mem, n_runs=10) == ("k-medians", 1)
    assert runs_per_pass(10, 8, 4) == 10 and runs_per_pass(10, 1 << 12, 1 << 12) == 1


def test_a_lone_run_left_over_keeps_its_bounds(monkeypatch: pytest.MonkeyPatch) -> None:
    """n_init runs sharing passes in batches: a last batch of one run is fitted with
    distance bounds (it shares its passes with nothing), the others share passes; the
    result is the same model either way."""
    from daskmeans import KMeans
    from daskmeans.algorithms import bounded, lloyd, solvers

    X, _ = make_blobs(600, n_features=5, centers=4, random_state=0)
    seen: list[str] = []
    monkeypatch.setattr(solvers, "RUNS_MAX_BYTES", 3 * 4 * 5 * 8)  # 3 runs a pass
    real_bounded, real_lloyd = bounded.lloyd_bounded_runs, lloyd.lloyd
    monkeypatch.setattr(solvers, "lloyd_bounded_runs",
                        lambda *a, **k: seen.append("bounded") or real_bounded(*a, **k))
    monkeypatch.setattr(solvers, "lloyd",
                        lambda *a, **k: seen.append(f"shared {len(a[1])}") or real_lloyd(*a, **k))
    km = KMeans(4, init="random", n_init=4, random_state=0).fit(X)
    assert seen == ["shared 3", "bounded"]
    ref = KMeans(4, init="random", n_init=4, random_state=0, algorithm="lloyd").fit(X)
    np.testing.assert_allclose(km.cluster_centers_, ref.cluster_centers_, rtol=1e-10)


def test_bounded_full_pass_asks_few_far_rows_and_again_for_more_empties(
        data, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bounded fit's full pass returns at most FAR_ROWS farthest rows, whatever K;
    one that leaves more clusters empty is redone for as many, so three centres far
    away are relocated as plain Lloyd (every far row known) relocates them."""
    from daskmeans.algorithms import bounded
    from daskmeans.engine import reductions

    X, C0s = data
    C0 = np.concatenate([C0s[0], np.full((3, 4), 1e3) + np.arange(3)[:, None]])
    asked: list[int] = []
    real = reductions.bounds_pass

    def spy(*args, **kwargs):  # type: ignore[no-untyped-def]
        asked.append(kwargs.get("n_top", 0))
        return real(*args, **kwargs)

    monkeypatch.setattr(bounded, "FAR_ROWS", 2)
    monkeypatch.setattr(bounded.reductions, "bounds_pass", spy)
    settings = FitSettings(max_iter=50, tol=0.0)
    (plain,) = lloyd(ArraySource(X), [C0], [0], settings)
    (ours,) = lloyd_bounded_runs(ArraySource(X), [C0], [0], settings)
    assert asked[:2] == [2, 3] and set(asked[2:]) <= {0, 2}, asked
    assert ours.history[0].n_relocated == plain.history[0].n_relocated == 3
    assert ours.n_iter == plain.n_iter
    np.testing.assert_array_equal(ours.labels, plain.labels)
    np.testing.assert_allclose(ours.centers, plain.centers, rtol=1e-12)
