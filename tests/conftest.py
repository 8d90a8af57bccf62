"""Shared fixtures: the shipped test data, stores, schedulers (threaded and a LocalCluster)."""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
from pathlib import Path

import dask
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
#: The first 2,000 images and labels of MNIST's test split, shipped in the repository
#: (tests/data/README.md) so that every MNIST test runs the same way on a fresh clone,
#: in CI and here: the suite never looks for data outside the repository.
MNIST_DIR = ROOT / "tests" / "data"
MNIST_ROWS = 2000
#: md5s of the shipped files (the originals' are ``datasets.MNIST.md5``)
MNIST_MD5 = {
    "t10k-images-idx3-ubyte.gz": "09c79b00154406ecac924b6584731486",
    "t10k-labels-idx1-ubyte.gz": "1015304e6ad525423be345e91f3ffe78",
}
FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")

logging.getLogger("distributed").setLevel(logging.ERROR)


#: the background process filling numba's on-disk cache (see pytest_sessionstart)
_warming: list[subprocess.Popen[bytes]] = []


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: takes more than a few seconds")


def pytest_sessionstart(session: pytest.Session) -> None:
    """Compile the numba kernels into their on-disk cache in a process of its own.

    On a fresh clone every kernel compiles on first use (tens of seconds, most of it
    three specialisations of the bounded pass), in whichever test, cluster worker or
    subprocess needs it first. The tests keep about one core of two busy: compiling on
    the other takes that off the suite's wall clock. A test that gets there first
    compiles for itself, as without this; with the cache filled it costs little."""
    _warming.append(subprocess.Popen(
        [sys.executable, "-c", "from daskmeans.kernels import warm_up; warm_up()"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))


def pytest_sessionfinish(session: pytest.Session) -> None:
    for p in _warming:
        if p.poll() is None:
            p.kill()
        p.wait()


def computed(a: object) -> np.ndarray:
    """Labels or distances as numpy: a dask array computed (``np.asarray`` of a query-
    planning array is an object array), anything else as an array."""
    compute = getattr(a, "compute", None)
    return np.asarray(compute() if callable(compute) else a)


def missing_data(message: str) -> None:
    """Skip a test whose data this machine lacks; under CI (``$CI`` set) fail instead,
    so that a run whose data went missing cannot go green by skipping."""
    if os.environ.get("CI"):
        pytest.fail(f"{message} (CI is set: missing data fails the run)")
    pytest.skip(message)


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """The shipped MNIST subset (the test split's first :data:`MNIST_ROWS` rows)."""
    if not all((MNIST_DIR / name).is_file() for name in MNIST_MD5):
        missing_data(f"the MNIST test data are missing from {MNIST_DIR}")
    return MNIST_DIR


@pytest.fixture
def mnist_md5(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """``datasets.MNIST`` checks downloads against the shipped files' md5s (a download
    test serves them), the real files' md5s otherwise kept."""
    import dataclasses

    from daskmeans import datasets

    md5 = {**datasets.MNIST.md5, **MNIST_MD5}
    monkeypatch.setattr(datasets, "MNIST", dataclasses.replace(datasets.MNIST, md5=md5))
    return md5


@pytest.fixture(scope="session")
def mnist_store(mnist_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from daskmeans import io

    return io.ingest(mnist_dir, tmp_path_factory.mktemp("mnist") / "mnist.zarr",
                     chunk_rows=2500)


@pytest.fixture(scope="session")
def mnist_test(mnist_store: Path) -> tuple[np.ndarray, np.ndarray]:
    from daskmeans import open_dataset

    X, y = open_dataset(mnist_store, "test")
    return X.compute(), y.compute()


@pytest.fixture(scope="session")
def local_cluster():
    """One LocalCluster (2 worker processes x 1 thread) for the whole session."""
    from distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                           dashboard_address="127.0.0.1:0", host="127.0.0.1", memory_limit="2GiB")
    client = Client(cluster, set_as_default=False)
    yield client
    client.close()
    cluster.close()


#: dask's own names of the schedulers that compute in this process
LOCAL_SCHEDULERS = {"sync", "synchronous", "single-threaded", "threads", "threading",
                    "processes", "multiprocessing"}


@contextlib.contextmanager
def ran_on_workers(client):  # type: ignore[no-untyped-def]
    """Fail unless the block's computations ran as tasks on ``client``'s cluster.

    Results alone cannot tell: local threads give the same numbers. Two checks:

    - distributed's task stream (kept by the scheduler, whichever client submitted the
      tasks) must show tasks run by the cluster's workers while the block was open;
    - no computation may run on one of dask's local schedulers (their common loop,
      ``dask.local.get_async``) unless dask's configuration asked for one there: a test
      may compute a reference with ``dask.config.set(scheduler="sync")``, but a fit that
      passes ``scheduler="threads"`` itself, or calls the local scheduler, is caught.

    Yields the task stream; ``stream.data`` lists the tasks (key, worker, start/stop)."""
    import dask.local
    import dask.multiprocessing
    import dask.threaded
    from distributed import get_task_stream

    unasked: list[str] = []
    real = dask.local.get_async

    def watched(*args, **kwargs):  # type: ignore[no-untyped-def]
        configured = dask.config.get("scheduler", None)
        if not (isinstance(configured, str) and configured in LOCAL_SCHEDULERS):
            unasked.append(f"a local dask scheduler ran (configured: {configured!r})")
        return real(*args, **kwargs)

    modules = (dask.local, dask.threaded, dask.multiprocessing)
    workers = set(client.scheduler_info(n_workers=-1)["workers"])
    for module in modules:
        module.get_async = watched  # type: ignore[attr-defined]
    try:
        with get_task_stream(client=client) as stream:
            yield stream
    finally:
        for module in modules:
            module.get_async = real  # type: ignore[attr-defined]
    if unasked:
        pytest.fail(f"computed in this process, not on the cluster: {unasked[0]} "
                    f"({len(unasked)} times)")
    if not any(t.get("worker") in workers for t in stream.data):
        pytest.fail(f"no task ran on the cluster's workers {sorted(workers)}: the "
                    "computation did not go to the cluster")


@pytest.fixture(params=["threads", "local_cluster"])
def scheduler(request: pytest.FixtureRequest):
    """Run the test under dask's threaded scheduler, then under the LocalCluster (where
    the test fails unless its computations ran as tasks on the cluster's workers)."""
    if request.param == "threads":
        with dask.config.set(scheduler="threads"):
            yield "threads"
    else:
        client = request.getfixturevalue("local_cluster")
        with client.as_current(), ran_on_workers(client):
            yield "local_cluster"


class CountingScheduler:
    """A dask scheduler (the threaded one) that counts how often it is asked to compute."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, dsk, keys, **kwargs):  # type: ignore[no-untyped-def]
        self.calls += 1
        return dask.threaded.get(dsk, keys, **kwargs)


@pytest.fixture
def counting_scheduler():
    counter = CountingScheduler()
    with dask.config.set(scheduler=counter):
        yield counter


@contextlib.contextmanager
def no_compute():
    """Fail if anything is computed inside the block."""

    def refuse(dsk, keys, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("computed inside a block that must stay lazy")

    with dask.config.set(scheduler=refuse):
        yield


#: rows a test report draws for its views (fewer than the store's, so it says it sampled)
REPORT_SAMPLE = 500


@pytest.fixture(scope="session")
def report_html(mnist_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A report page (``daskmeans.report.write_report``) of a K=10 model fitted on the
    shipped MNIST subset, with a sweep, in a folder of its own beside its inputs."""
    from daskmeans import KMeans, metrics, open_dataset, open_source, report, save_model

    where = tmp_path_factory.mktemp("report")
    X, y = open_source(mnist_store, "test"), open_dataset(mnist_store, "test")[1]
    km = KMeans(10, random_state=0, max_iter=20).fit(X)
    model = save_model(km, where / "mnist10.npz",
                       mapping=metrics.infer_cluster_labels(y, km.labels_),
                       extra={"store": str(mnist_store), "split": "test"})
    rows = [{"dataset": "mnist", "split": "test", "k": k, "inertia": inertia,
             "purity": purity, "homogeneity": purity - 0.1, "silhouette": sil,
             "silhouette_se": 0.004}
            for k, inertia, purity, sil in [(4, 9e4, 0.4, 0.06), (10, 7.4e4, 0.59, 0.05),
                                            (16, 6.8e4, 0.66, 0.06), (36, 5.9e4, 0.78, 0.07),
                                            (64, 5.3e4, 0.85, 0.07)]]
    sweep = metrics.write_json(rows, where / "sweep.json")
    return report.write_report(model, mnist_store, where / "page" / "report.html",
                               split="test", sweep=sweep, sample_size=REPORT_SAMPLE)
