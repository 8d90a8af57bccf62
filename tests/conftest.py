"""Shared fixtures: offline data, stores, schedulers (threaded and a LocalCluster)."""

from __future__ import annotations

import contextlib
import logging
import subprocess
import sys
from pathlib import Path

import dask
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
MNIST_DIR = SHARED / "mnist"
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


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    if not (MNIST_DIR / "t10k-images-idx3-ubyte.gz").exists():
        pytest.skip(f"offline MNIST not found at {MNIST_DIR}")
    return MNIST_DIR


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


@pytest.fixture(params=["threads", "local_cluster"])
def scheduler(request: pytest.FixtureRequest):
    """Run the test under dask's threaded scheduler, then under the LocalCluster."""
    if request.param == "threads":
        with dask.config.set(scheduler="threads"):
            yield "threads"
    else:
        client = request.getfixturevalue("local_cluster")
        with client.as_current():
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
