"""The same data gives the same model, for every estimator, whatever its container and
chunking, the scheduler (threads, a LocalCluster of one or two workers), the number of
threads and the number of BLAS threads.

What "the same" means here is what docs say the estimators promise: identical labels
and iteration counts, centres and inertia equal to float rounding (the partial sums of
differently chunked data are added in another order)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import dask
import dask.array as da
import numpy as np
import pytest
import zarr
from sklearn.datasets import make_blobs
from threadpoolctl import threadpool_limits

from daskmeans import BisectingKMeans, KMeans, MiniBatchKMeans, open_source
from tests.conftest import ran_on_workers

ESTIMATORS: dict[str, Callable[[], Any]] = {
    "lloyd": lambda: KMeans(6, algorithm="lloyd", random_state=0, n_init=2),
    "elkan": lambda: KMeans(6, algorithm="elkan", random_state=0, n_init=2),
    "k-medians": lambda: KMeans(6, metric="manhattan", random_state=0, n_init=1,
                                max_iter=12),
    "cosine": lambda: KMeans(6, metric="cosine", random_state=0, n_init=2),
    "minibatch": lambda: MiniBatchKMeans(6, batch_size=256, random_state=0, n_init=2,
                                         max_no_improvement=None, max_iter=2),
    "bisecting": lambda: BisectingKMeans(6, random_state=0, n_init=2, max_iter=10),
}


@pytest.fixture(scope="module")
def rows() -> np.ndarray:
    """Overlapping blobs: many rows near a boundary, so that a changed sum order that
    moved one of them would show."""
    X, _ = make_blobs(2400, n_features=7, centers=6, cluster_std=2.5, random_state=5)
    return X.astype(np.float32)


def labels_of(model: Any) -> np.ndarray:
    labels = model.labels_
    return labels.compute() if isinstance(labels, da.Array) else np.asarray(labels)


def assert_same_model(got: Any, ref: Any, how: str) -> None:
    np.testing.assert_array_equal(labels_of(got), labels_of(ref), err_msg=how)
    np.testing.assert_allclose(got.cluster_centers_, ref.cluster_centers_, rtol=1e-5,
                               atol=1e-5, err_msg=how)
    assert got.inertia_ == pytest.approx(ref.inertia_, rel=1e-5), how
    for count in ("n_iter_", "n_steps_"):
        if hasattr(ref, count):
            assert getattr(got, count) == getattr(ref, count), how


def _store(path: Path, X: np.ndarray, chunk: int) -> Path:
    z = zarr.create_array(path, shape=X.shape, chunks=(chunk, X.shape[1]), dtype=X.dtype)
    z[...] = X
    return path


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_containers_chunkings_threads_and_blas_threads(name: str, rows: np.ndarray,
                                                       tmp_path: Path) -> None:
    make = ESTIMATORS[name]
    with dask.config.set(scheduler="sync"), threadpool_limits(1):
        ref = make().fit(rows)
    inputs: dict[str, Any] = {
        "numpy": rows,
        "dask, one chunk": da.from_array(rows, chunks=(2400, 7)),
        "dask, uneven chunks": da.from_array(rows, chunks=(333, 7)),
        "zarr held": open_source(str(_store(tmp_path / "a.zarr", rows, 500))),
        "zarr streamed": open_source(str(_store(tmp_path / "b.zarr", rows, 170)),
                                     cache=False),
    }
    # every container and chunking, and the thread and BLAS thread counts one at a time
    runs = [(label, data, 3, 2) for label, data in inputs.items()]
    runs += [("uneven chunks", inputs["dask, uneven chunks"], 1, 2),
             ("uneven chunks", inputs["dask, uneven chunks"], 3, 1),
             ("numpy", rows, 1, 1)]
    for label, data, threads, blas in runs:
        with dask.config.set(scheduler="threads", num_workers=threads), \
                threadpool_limits(blas):
            got = make().fit(data)
        assert_same_model(got, ref, f"{label}, {threads} threads, {blas} BLAS threads")


@pytest.fixture(scope="module")
def one_worker() -> Any:
    """A LocalCluster of one worker process with two threads."""
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=2, processes=True,
                      dashboard_address="127.0.0.1:0", host="127.0.0.1",
                      memory_limit="2GiB") as cluster, \
            Client(cluster, set_as_default=False) as client:
        yield client


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_one_and_two_workers_give_the_threaded_model(name: str, rows: np.ndarray,
                                                      local_cluster: Any, one_worker: Any,
                                                      tmp_path: Path) -> None:
    make = ESTIMATORS[name]
    with dask.config.set(scheduler="threads"):
        ref = make().fit(rows)
    store = _store(tmp_path / "c.zarr", rows, 400)
    with local_cluster.as_current(), ran_on_workers(local_cluster):  # two workers
        assert_same_model(make().fit(open_source(str(store))), ref, "two workers")
    with one_worker.as_current(), ran_on_workers(one_worker):
        assert_same_model(make().fit(open_source(str(store))), ref, "one worker")


def test_two_fits_at_once_in_one_process_give_their_models_alone(rows: np.ndarray,
                                                                 tmp_path: Path) -> None:
    """Two fits in two threads of one process, at the same time, over a store and an
    array (sharing the threaded scheduler, the BLAS policy and the compiled kernels):
    each gives the model it gives alone."""
    import threading

    store = _store(tmp_path / "d.zarr", rows, 300)
    jobs = {"elkan on the store": (ESTIMATORS["elkan"], lambda: open_source(str(store))),
            "minibatch on a dask array": (ESTIMATORS["minibatch"],
                                          lambda: da.from_array(rows[::-1], chunks=(400, 7))),
            "k-medians in memory": (ESTIMATORS["k-medians"], lambda: rows[:1500])}
    alone = {name: make().fit(data()) for name, (make, data) in jobs.items()}
    together: dict[str, Any] = {}
    start = threading.Barrier(len(jobs))

    def fit(name: str) -> None:
        make, data = jobs[name]
        start.wait()
        together[name] = make().fit(data())

    threads = [threading.Thread(target=fit, args=(name,)) for name in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert set(together) == set(jobs)
    for name in jobs:
        assert_same_model(together[name], alone[name], name)
