"""Dask arrays get what a store gets: computed once per fit and held (numpy blocks
under threads, persisted blocks in a cluster's workers) with their |x|^2 and distance
bounds, streamed when larger than the memory budget; and nothing per row in the graphs
a fit sends to a cluster."""

from __future__ import annotations

import re
import sys
import threading
import warnings
from collections.abc import Callable
from pathlib import Path

import dask
import dask.array as da
import numpy as np
import pytest
import zarr
from dask.utils import parse_bytes

from daskmeans import KMeans, io, open_source
from daskmeans.engine import hold as hold_module
from daskmeans.engine.hold import held_summary, hold
from daskmeans.engine.source import DaskSource
from tests.conftest import computed, ran_on_workers

QUERY_PLANNING = bool(dask.config.get("array.query-planning", None))


def blobs(n: int = 6000, d: int = 12, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=4, size=(9, d))
    return (centres[rng.integers(0, 9, n)] + rng.normal(size=(n, d))).astype(np.float32)


class Counter:
    """A block function that counts the non-empty blocks it made (dask calls it on an
    empty block once to learn the output type)."""

    def __init__(self) -> None:
        self.rows = 0
        self.calls = 0
        self.lock = threading.Lock()

    def __dask_tokenize__(self) -> tuple[str, int]:  # query planning tokenizes functions
        return ("Counter", id(self))

    def __call__(self, block: np.ndarray) -> np.ndarray:
        if len(block):
            with self.lock:
                self.calls += 1
                self.rows += len(block)
        return block


def test_a_dask_array_is_computed_once_per_fit() -> None:
    """The input graph's tasks run once per fit, not once per pass: the fit holds the
    computed blocks and every later pass (init, iterations, final E-step) takes them."""
    X = blobs()
    counter = Counter()
    lazy = da.map_blocks(counter, da.from_array(X, chunks=(700, -1)), dtype=X.dtype)
    with dask.config.set(scheduler="threads"):
        km = KMeans(30, random_state=0, max_iter=50).fit(lazy)  # 30 centres on 9 blobs
    assert km.n_iter_ > 5  # many passes...
    assert counter.calls == lazy.numblocks[0] and counter.rows == len(X)  # ...one read
    assert km.labels_.shape == (len(X),)
    ref = KMeans(30, random_state=0, max_iter=50).fit(X)
    assert km.inertia_ == pytest.approx(ref.inertia_, rel=1e-6)


def test_the_same_model_from_every_kind_of_input(tmp_path: Path) -> None:
    """numpy, an in-memory dask array, a lazy array read from a Zarr store and the store
    itself: the same centres and inertia to 1e-6, from the same initial centres."""
    X = blobs(8000)
    C0 = X[np.random.default_rng(1).choice(len(X), 9, replace=False)]
    zarr.create_array(tmp_path / "x.zarr", data=X, chunks=(1000, X.shape[1]))
    inputs: dict[str, object] = {
        "numpy": X,
        "from_array": da.from_array(X, chunks=(1500, -1)),
        "open_source": open_source(tmp_path / "x.zarr"),
        "zarr_to_dask": io.zarr_to_dask(zarr.open_array(tmp_path / "x.zarr", mode="r")),
    }
    if not QUERY_PLANNING:  # da.from_zarr is not in dask's array query planning
        inputs["from_zarr"] = da.from_zarr(str(tmp_path / "x.zarr"))
    fits = {name: KMeans(9, init=C0, n_init=1, max_iter=100).fit(x)
            for name, x in inputs.items()}
    ref = fits.pop("numpy")
    for name, km in fits.items():
        assert km.inertia_ == pytest.approx(ref.inertia_, rel=1e-6), name
        np.testing.assert_allclose(km.cluster_centers_, ref.cluster_centers_, atol=1e-5,
                                   err_msg=name)
        assert km.n_iter_ == ref.n_iter_, name


def test_held_blocks_carry_weights_norms_and_follow_the_threads() -> None:
    X = blobs(5000)
    w = np.random.default_rng(2).random(len(X))
    chunked = DaskSource(da.from_array(X, chunks=(1000, -1))).with_options(
        weights=da.from_array(w, chunks=250))
    with dask.config.set(scheduler="threads", num_workers=2):
        held = hold(chunked)
    assert held.held is not None and not held.dask_route and chunked.held is None
    assert held.offsets == chunked.offsets  # the array's own row chunks
    np.testing.assert_array_equal(np.concatenate(held.held), X)
    with dask.config.set(scheduler="threads", num_workers=4):  # fewer chunks than threads
        two = hold(DaskSource(da.from_array(X, chunks=(2500, -1))))
    assert two.offsets == (0, 1250, 2500, 3750, 5000)
    np.testing.assert_array_equal(np.concatenate(two.held), X)
    np.testing.assert_allclose(held.xsq, (X.astype(np.float64) ** 2).sum(1), rtol=1e-6)
    np.testing.assert_array_equal(held.weights, w)
    assert "holding" in held_summary(held) and "in this process" in held_summary(held)
    weighted = KMeans(9, random_state=0).fit(da.from_array(X, chunks=(700, -1)),
                                             sample_weight=da.from_array(w, chunks=700))
    ref = KMeans(9, random_state=0).fit(X, sample_weight=w)
    assert weighted.inertia_ == pytest.approx(ref.inertia_, rel=1e-6)


def sorted_blobs(n: int = 12_000, d: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """Rows ordered by blob (most blocks hold one blob: their rows settle early, and
    whole blocks are skipped) and initial centres drawn from them."""
    rng = np.random.default_rng(4)
    centres = rng.normal(scale=6, size=(9, d))
    X = (centres[np.sort(rng.integers(0, 9, n))] + rng.normal(size=(n, d))).astype(np.float32)
    return X, X[rng.choice(n, 9, replace=False)]


def mapped_blocks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The number of blocks each bounded pass of a fit maps (its unsettled blocks)."""
    from daskmeans.engine import reductions

    mapped: list[int] = []
    real = reductions.bounds_pass

    def spy(src, C, states, steps, **kwargs):  # type: ignore[no-untyped-def]
        mapped.append(len(steps))
        return real(src, C, states, steps, **kwargs)

    monkeypatch.setattr(reductions, "bounds_pass", spy)
    return mapped


def test_over_the_budget_a_dask_array_streams_with_bounds(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Over the memory budget the array is not held but keeps its distance bounds:
    the same labels, inertia and iterations as held and as numpy, and the blocks whose
    rows are all settled are not computed (the user's graph runs exactly for the
    blocks the passes map)."""
    X, C0 = sorted_blobs()
    counter = Counter()
    lazy = da.map_blocks(counter, da.from_array(X, chunks=(500, -1)), dtype=X.dtype)
    params = {"n_clusters": 9, "init": C0, "n_init": 1, "max_iter": 100}
    with dask.config.set(scheduler="threads"):
        ref = KMeans(**params).fit(X)
        held = KMeans(**params).fit(lazy)
        monkeypatch.setattr(hold_module, "memory_budget", lambda: 0)
        src = hold(DaskSource(lazy))
        assert src.held is None and src.dask_route and "streaming" in held_summary(src)
        counter.calls = 0
        mapped = mapped_blocks(monkeypatch)
        streamed = KMeans(**params).fit(lazy)
        calls = counter.calls
    assert calls == sum(mapped)  # exactly the blocks the passes mapped...
    assert len(mapped) == streamed.n_iter_ + 1 and mapped[0] == lazy.numblocks[0]
    assert min(mapped) < lazy.numblocks[0] // 2  # ...and the settled ones were skipped
    for km in (held, streamed):
        assert km.n_iter_ == ref.n_iter_
        assert km.inertia_ == pytest.approx(ref.inertia_, rel=1e-6)
        np.testing.assert_array_equal(computed(km.labels_), ref.labels_)
        np.testing.assert_allclose(km.cluster_centers_, ref.cluster_centers_, atol=1e-5)


class Marker:
    """A block function that leaves a file per non-empty block it made (it runs in a
    cluster's worker processes: the files are the count)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def __dask_tokenize__(self) -> tuple[str, str]:
        return ("Marker", str(self.folder))

    def __call__(self, block: np.ndarray) -> np.ndarray:
        if len(block):
            import uuid

            (self.folder / uuid.uuid4().hex).touch()
        return block


def test_a_streamed_dask_array_on_a_cluster(local_cluster, tmp_path: Path,  # type: ignore[no-untyped-def]
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """On a cluster a streamed array's bounds stay in the workers (persisted chunks):
    numpy's model, labels and iterations, its settled blocks not computed, and the
    graphs it sends do not carry the rows' bounds."""
    import cloudpickle

    X, C0 = sorted_blobs()
    marks = tmp_path / "marks"
    marks.mkdir()
    lazy = da.map_blocks(Marker(marks), da.from_array(X, chunks=(500, -1)), dtype=X.dtype)
    params = {"n_clusters": 9, "init": C0, "n_init": 1, "max_iter": 100}
    ref = KMeans(**params).fit(X)
    monkeypatch.setattr(hold_module, "memory_budget", lambda: 0)
    mapped = mapped_blocks(monkeypatch)
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    try:
        with local_cluster.as_current(), ran_on_workers(local_cluster):
            sizes = graph_sizes(lambda: KMeans(**params).fit(lazy))
            calls = len(list(marks.iterdir()))
            km = KMeans(**params).fit(lazy)
            labels = computed(km.labels_)
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    assert calls == sum(mapped) // 2  # two fits, each its mapped blocks
    assert min(mapped) < lazy.numblocks[0] // 2
    # the user's graph (its numpy array) and per-block constants; the rows' bounds
    # (48 bytes a row here: as large as the rows) stay in the workers
    assert max(sizes) < X.nbytes + (1 << 17)
    assert km.n_iter_ == ref.n_iter_
    assert km.inertia_ == pytest.approx(ref.inertia_, rel=1e-6)
    np.testing.assert_array_equal(labels, ref.labels_)


def test_held_in_the_workers_of_a_cluster(local_cluster) -> None:  # type: ignore[no-untyped-def]
    """On a cluster the blocks are persisted where they were computed (futures), with
    their norms and weights beside them, and bounds kept there: the model of numpy's."""
    from distributed import Future

    X = blobs(6000)
    w = np.random.default_rng(3).random(len(X))
    lazy = da.from_array(X, chunks=(1000, -1))
    with local_cluster.as_current(), ran_on_workers(local_cluster):
        src = hold(DaskSource(lazy).with_options(weights=da.from_array(w, chunks=1000)))
        assert all(isinstance(b, Future) for b in src.held)
        assert all(isinstance(x, Future) for x in src.xsq)
        assert all(isinstance(x, Future) for x in src.held_weights)
        assert "in the workers" in held_summary(src)
        km = KMeans(9, random_state=0, max_iter=50).fit(lazy, sample_weight=w)
        labels = km.labels_.compute()
    ref = KMeans(9, random_state=0, max_iter=50).fit(X, sample_weight=w)
    assert km.inertia_ == pytest.approx(ref.inertia_, rel=1e-6)
    np.testing.assert_array_equal(labels, ref.labels_)


def graph_sizes(fit: Callable[[], object]) -> list[int]:
    """The size of every graph a fit sends to the cluster, as the client measures it
    (its "large graph" warning, with the threshold at zero: one per graph)."""
    pattern = re.compile(r"large graph of size ([0-9.]+ ?[kMGT]?i?B)")
    with warnings.catch_warnings(record=True) as got, dask.config.set(
            {"distributed.admin.large-graph-warning-threshold": "0B"}):
        warnings.simplefilter("always")
        fit()
    return [parse_bytes(m.group(1)) for w in got if (m := pattern.search(str(w.message)))]


def fits_of(store: Path, n: int) -> dict[str, Callable[[], object]]:
    """A fit of the store held in the workers, the same weighted, and one of a dask
    array read from the store."""
    params = {"n_clusters": 40, "random_state": 0, "max_iter": 4, "tol": 0}
    return {
        "store": lambda: KMeans(**params).fit(open_source(store, cache=True)),
        "weighted": lambda: KMeans(**params).fit(open_source(store, cache=True),
                                                 sample_weight=np.ones(n)),
        "dask": lambda: KMeans(**params).fit(
            io.zarr_to_dask(zarr.open_array(store / "X", mode="r"))),
    }


def test_nothing_per_row_in_the_graphs_sent(local_cluster, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The graphs a fit sends, and those computing its ``labels_``, do not grow with
    the rows: bounds start in the workers, weights, held blocks and the last E-step's
    labels stay there, only centres and per-block constants travel. (The first pass
    once sent every row's fresh bounds, ``12 + 4 t`` bytes a row; labels gathered and
    wrapped in ``da.from_array`` would send 4 bytes a row.)"""
    largest: dict[str, list[int]] = {"store": [], "weighted": [], "dask": []}
    for n in (40_000, 160_000):
        store = io.make_blobs_zarr(tmp_path / f"b{n}.zarr", n, 16, centers=12,
                                   chunk_rows=10_000, random_state=3)
        with local_cluster.as_current():
            for name, fit in fits_of(store, n).items():
                sizes = graph_sizes(lambda fit=fit: computed(fit().labels_))
                assert sizes, name
                largest[name].append(max(sizes))
    for name, (small, large) in largest.items():
        assert large < 1.2 * small and large < (1 << 20), (name, small, large)


def test_the_progress_says_what_a_fit_holds(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    X = blobs(3000)
    calls: list[tuple[str, int, int | None, str]] = []
    with dask.config.set(scheduler="threads"):
        KMeans(9, random_state=0, callback=lambda *a: calls.append(a)).fit(
            da.from_array(X, chunks=(1000, -1)))
        phase, done, total, detail = calls[0]
        assert (phase, done, total) == ("hold", 1, 1)
        assert re.fullmatch(r"holding 0\.1 MiB of rows and \|x\|\^2 in this process "
                            r"\(\d+ blocks; budget [0-9.]+ [MG]iB\)", detail), detail
        monkeypatch.setattr(hold_module, "memory_budget", lambda: 1 << 10)
        calls.clear()
        KMeans(9, random_state=0, callback=lambda *a: calls.append(a)).fit(
            da.from_array(X, chunks=(1000, -1)))
        assert calls[0][3].startswith("streaming 0.1 MiB of rows (above the memory budget")
        calls.clear()
        KMeans(9, random_state=0, callback=lambda *a: calls.append(a)).fit(X)
        assert calls[0][0] != "hold"  # numpy: the caller's own memory, nothing held
