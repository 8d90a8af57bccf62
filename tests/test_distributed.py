"""A real multi-process cluster: `dask scheduler` + `dask worker` OS processes on 127.0.0.1.

Fits through Client(address) and the CLI's --scheduler, a worker killed mid-fit,
concurrent fits, a TLS scheduler, and checkpoint/resume after the client process dies.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import dask
import dask.array as da
import numpy as np
import pytest

from daskmeans import KMeans, MiniBatchKMeans, cli, io, open_array
from tests.conftest import ran_on_workers

pytestmark = pytest.mark.slow


class ProcessCluster:
    """A scheduler and workers as separate processes; torn down reliably."""

    def __init__(self, workdir: Path, n_workers: int = 3, tls: dict[str, str] | None = None,
                 memory_limit: str = "1GiB") -> None:
        self.procs: list[subprocess.Popen[bytes]] = []
        self.file = workdir / "scheduler.json"
        self.file.unlink(missing_ok=True)
        tls_args = [] if tls is None else [
            "--tls-ca-file", tls["ca"], "--tls-cert", tls["cert"], "--tls-key", tls["key"]]
        proto = ["--protocol", "tls"] if tls else []
        log = open(workdir / "cluster.log", "ab")
        self.log = log
        try:
            self.procs.append(subprocess.Popen(
                ["dask", "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                 "--scheduler-file", str(self.file), *proto, *tls_args],
                stdout=log, stderr=log, start_new_session=True))
            self.address = self._wait_for_address(workdir / "cluster.log")
            for i in range(n_workers):
                self.procs.append(subprocess.Popen(
                    ["dask", "worker", self.address, "--nthreads", "1", "--no-nanny",
                     "--no-dashboard", "--memory-limit", memory_limit, "--name", f"w{i}",
                     "--host", "127.0.0.1", *tls_args],
                    stdout=log, stderr=log, start_new_session=True))
            self.security = None
            if tls:
                from distributed.security import Security

                self.security = Security(tls_ca_file=tls["ca"], tls_client_cert=tls["cert"],
                                         tls_client_key=tls["key"], require_encryption=True)
            from distributed import Client

            with Client(self.address, security=self.security, timeout=60) as c:
                c.wait_for_workers(n_workers, timeout=60)
                self.worker_pids = c.run(os.getpid)
        except BaseException:
            self.close()
            raise

    def _wait_for_address(self, log_path: Path) -> str:
        # The scheduler creates its file before it finishes writing the JSON: poll until
        # the document parses, and report the scheduler's log if it died instead.
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.procs[0].poll() is not None:
                raise RuntimeError(f"dask scheduler exited:\n{log_path.read_text()}")
            try:
                return str(json.loads(self.file.read_text())["address"])
            except (FileNotFoundError, json.JSONDecodeError, KeyError):
                time.sleep(0.1)
        raise TimeoutError(f"no scheduler address after 60 s:\n{log_path.read_text()}")

    def client(self):  # type: ignore[no-untyped-def]
        from distributed import Client

        return Client(self.address, security=self.security, timeout=30)

    def close(self) -> None:
        # Test processes with nothing to flush: killed at once (a SIGTERM'd worker took
        # the whole 3 s grace period to exit, per test).
        for p in self.procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
        for p in self.procs:
            p.wait()
        self.log.close()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[ProcessCluster]:
    """A cluster of its own, for a test that kills its workers."""
    c = ProcessCluster(tmp_path)
    yield c
    c.close()


@pytest.fixture(scope="module")
def shared_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcessCluster]:
    """One cluster for the tests that leave it as they found it."""
    c = ProcessCluster(tmp_path_factory.mktemp("shared-cluster"))
    yield c
    c.close()


@pytest.fixture(scope="module")
def blobs_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return io.make_blobs_zarr(tmp_path_factory.mktemp("pc") / "blobs.zarr", 120_000, 16,
                              centers=12, chunk_rows=8_000, random_state=3)


def _fit(est, X):  # type: ignore[no-untyped-def]
    return est.fit(X)


def test_fits_through_address_equal_threaded(shared_cluster: ProcessCluster,
                                             blobs_store: Path) -> None:
    cluster = shared_cluster
    X = open_array(blobs_store)
    with dask.config.set(scheduler="threads"):
        ref_l = KMeans(12, init="k-means||", random_state=0, max_iter=12).fit(X)
        ref_m = MiniBatchKMeans(12, random_state=0, batch_size=5000, max_iter=1).fit(X)
    with cluster.client() as client:
        with ran_on_workers(client):
            lloyd = KMeans(12, init="k-means||", random_state=0, max_iter=12).fit(X)
        with ran_on_workers(client):
            mini = MiniBatchKMeans(12, random_state=0, batch_size=5000, max_iter=1).fit(X)
    np.testing.assert_allclose(lloyd.cluster_centers_, ref_l.cluster_centers_, atol=1e-5)
    assert lloyd.n_iter_ == ref_l.n_iter_
    np.testing.assert_allclose(mini.cluster_centers_, ref_m.cluster_centers_, atol=1e-5)


def test_cli_scheduler_option(shared_cluster: ProcessCluster, mnist_store: Path,
                              tmp_path: Path) -> None:
    cluster = shared_cluster
    model = tmp_path / "m.npz"
    with cluster.client() as client, ran_on_workers(client):
        p = subprocess.run([sys.executable, "-m", "daskmeans.cli", "fit", str(mnist_store),
                            "--split", "test", "--k", "10", "--model", str(model),
                            "--scheduler", cluster.address], capture_output=True, text=True,
                           timeout=300)
    assert p.returncode == 0, p.stderr
    assert f"cluster: {cluster.address}" in p.stderr and model.exists()


def _checkpoint_header(path: Path) -> dict:
    """The JSON header of a checkpoint being written by a running fit ({} if none yet)."""
    try:
        with np.load(path) as d:
            return json.loads(bytes(d["header"]).decode())
    except Exception:  # not written yet (writes are atomic: never half a file)
        return {}


def _kill_when(cond, pid: int, fit_thread: threading.Thread) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.time() + 120
    while not cond() and time.time() < deadline:
        time.sleep(0.02)
    alive = fit_thread.is_alive()
    os.kill(pid, signal.SIGKILL)
    return alive


def test_worker_killed_mid_lloyd_fit(cluster: ProcessCluster, blobs_store: Path,
                                     tmp_path: Path) -> None:
    X = open_array(blobs_store)
    ckpt = tmp_path / "c.npz"
    victim = next(iter(cluster.worker_pids.values()))
    result: dict[str, KMeans] = {}
    with cluster.client() as client:
        # 40 clusters on 12 blobs keep moving for many iterations: the kill lands mid-fit.
        # The reference runs on the same cluster: BLAS thread settings change float
        # rounding, which near-ties carry through 9 unconverged iterations.
        with ran_on_workers(client):
            ref = KMeans(40, random_state=1, max_iter=9, tol=0).fit(X)
        assert ref.n_iter_ > 6
        with ran_on_workers(client):  # a fit in this process would not see the kill
            t = threading.Thread(target=lambda: result.setdefault("km", KMeans(
                40, random_state=1, max_iter=9, tol=0).fit(X, checkpoint=ckpt)))
            t.start()

            assert _kill_when(lambda: _checkpoint_header(ckpt).get("iteration", 0) >= 2,
                              victim, t), "fit ended before the kill"
            t.join(timeout=300)
    km = result["km"]
    np.testing.assert_allclose(km.cluster_centers_, ref.cluster_centers_, atol=1e-5)
    assert km.n_iter_ == ref.n_iter_ and km.inertia_ == pytest.approx(ref.inertia_, rel=1e-6)


def _held_store(store: Path):  # type: ignore[no-untyped-def]
    return io_source(store)


def _held_dask(store: Path):  # type: ignore[no-untyped-def]
    import zarr

    from daskmeans.engine.hold import hold
    from daskmeans.engine.source import DaskSource

    X = io.zarr_to_dask(zarr.open_group(store, mode="r")["X"])
    assert hold(DaskSource(X)).held is not None  # the fit holds it
    return X


@pytest.mark.parametrize("make", [_held_store, _held_dask], ids=["store", "dask array"])
def test_worker_killed_mid_fit_of_held_blocks(cluster: ProcessCluster, blobs_store: Path,
                                              tmp_path: Path, make) -> None:  # type: ignore[no-untyped-def]
    """Blocks held in the workers (a store's decoded rows, or a dask array's blocks
    computed once and persisted, with their norms and the distance bounds beside
    them): a worker killed mid-fit loses its share, which the cluster recomputes from
    the store or the array's graph; the fit ends with the model and the labels of an
    undisturbed fit on the same cluster."""
    ckpt = tmp_path / "held.npz"
    victim = next(iter(cluster.worker_pids.values()))
    result: dict[str, KMeans] = {}
    params = {"n_clusters": 40, "random_state": 1, "max_iter": 9, "tol": 0}
    with cluster.client() as client:
        with ran_on_workers(client):
            ref = KMeans(**params).fit(make(blobs_store))
            ref_labels = ref.labels_.compute()  # lazy: kept in the workers
        assert ref.n_iter_ > 6
        with ran_on_workers(client):
            X = make(blobs_store)
            t = threading.Thread(target=lambda: result.setdefault(
                "km", KMeans(**params).fit(X, checkpoint=ckpt)))
            t.start()
            assert _kill_when(lambda: _checkpoint_header(ckpt).get("iteration", 0) >= 2,
                              victim, t), "fit ended before the kill"
            t.join(timeout=300)
            labels = result["km"].labels_.compute()  # the survivor's, or recomputed
        if make is _held_store:
            assert X.held is None  # the fit held a copy; the source given stays as it was
    km = result["km"]
    np.testing.assert_allclose(km.cluster_centers_, ref.cluster_centers_, atol=1e-5)
    assert km.n_iter_ == ref.n_iter_ and km.inertia_ == pytest.approx(ref.inertia_, rel=1e-6)
    np.testing.assert_array_equal(labels, ref_labels)


def io_source(store: Path):  # type: ignore[no-untyped-def]
    """The store as a source that a fit holds in the workers (cache=True)."""
    from daskmeans import open_source

    return open_source(store, cache=True)


def test_worker_killed_mid_minibatch_and_evaluate(cluster: ProcessCluster,
                                                  blobs_store: Path, tmp_path: Path) -> None:
    import zarr

    from daskmeans import metrics

    X = open_array(blobs_store)
    y = io.zarr_to_dask(zarr.open_group(blobs_store, mode="r")["y"])
    params = {"n_clusters": 12, "random_state": 2, "sampling": "chunks", "max_iter": 3,
              "max_no_improvement": None}
    pids = list(cluster.worker_pids.values())
    result: dict[str, object] = {}
    with cluster.client() as client:
        with ran_on_workers(client):
            ref = MiniBatchKMeans(**params).fit(X)  # undisturbed, on the same cluster
            ref_eval = metrics.evaluate(y, ref.predict(X))
        assert ref.n_steps_ >= 12  # the kill after step 4 lands mid-fit
        ckpt = tmp_path / "mb.npz"  # only to see progress: the kill lands after step 4
        with ran_on_workers(client):  # a fit in this process would not see the kill
            t = threading.Thread(target=lambda: result.setdefault(
                "mb", MiniBatchKMeans(**params).fit(X, checkpoint=ckpt, checkpoint_every=2)))
            t.start()
            assert _kill_when(
                lambda: _checkpoint_header(ckpt).get("state", {}).get("step", 0) >= 4,
                pids[0], t
            ), "fit ended before the kill"
            t.join(timeout=300)
        mb = result["mb"]
        e = threading.Thread(target=lambda: result.setdefault(
            "eval", metrics.evaluate(y, mb.predict(X))))  # type: ignore[attr-defined]
        e.start()
        os.kill(pids[1], signal.SIGKILL)  # one worker left
        e.join(timeout=300)
    np.testing.assert_allclose(mb.cluster_centers_, ref.cluster_centers_, atol=1e-5)  # type: ignore[attr-defined]
    assert result["eval"] == ref_eval


def test_ten_concurrent_fits(shared_cluster: ProcessCluster) -> None:
    cluster = shared_cluster
    from sklearn.datasets import make_blobs

    X, _ = make_blobs(20_000, n_features=8, centers=6, random_state=0)
    ref = KMeans(6, random_state=0).fit(X)
    out: list[KMeans] = []
    with cluster.client() as client, ran_on_workers(client) as stream:
        threads = [threading.Thread(target=lambda: out.append(KMeans(6, random_state=0).fit(
            da.from_array(X, chunks=2000)))) for _ in range(10)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
    assert len(out) == 10
    # each fit's blocks went to the workers: 10 chunks per pass, 10 fits
    assert len(stream.data) >= 100, len(stream.data)
    for km in out:
        np.testing.assert_allclose(km.cluster_centers_, ref.cluster_centers_, atol=1e-9)


def test_tls_scheduler_with_self_signed_certificate(tmp_path: Path, mnist_store: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                    str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                   check=True, capture_output=True)
    tls = {"ca": str(cert), "cert": str(cert), "key": str(key)}
    c = ProcessCluster(tmp_path, n_workers=1, tls=tls)
    try:
        assert c.address.startswith("tls://")
        model = tmp_path / "m.npz"
        fit = ["fit", str(mnist_store), "--split", "test", "--k", "10", "--model", str(model),
               "--scheduler", c.address, "--quiet"]
        with c.client() as client, ran_on_workers(client):
            assert cli.main([*fit, "--tls-ca-file", str(cert), "--tls-cert", str(cert),
                             "--tls-key", str(key)]) == 0
        assert model.exists()
        capsys.readouterr()
        # without the certificate the scheduler refuses us: one clear line, and the
        # process is left as it was (distributed's failed connection had pointed dask at
        # a client that does not exist: the next computation hung)
        before = dask.config.get("scheduler", None)
        assert cli.main([*fit, "--connect-timeout", "2"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("daskmeans: error:") and err.count("\n") == 1
        assert dask.config.get("scheduler", None) == before
        from distributed import default_client

        with pytest.raises(ValueError):  # no half-made client left as the default one
            default_client()
    finally:
        c.close()


CRASHING_FIT = """
import os, sys
import numpy as np
import dask
import dask.array as da
from daskmeans.engine import reductions
from daskmeans import KMeans
algorithm = sys.argv[3]
name = "lloyd_runs_pass" if algorithm == "lloyd" else "bounds_pass"
real, calls = getattr(reductions, name), [0]
def dying(*a, **k):
    calls[0] += 1
    if calls[0] == 7:
        os._exit(3)  # the client process dies, mid-fit, without cleaning up
    return real(*a, **k)
setattr(reductions, name, dying)
X = np.load(sys.argv[1])
with dask.config.set(scheduler="threads"):
    KMeans(8, random_state=0, max_iter=40, tol=0, algorithm=algorithm).fit(
        X, checkpoint=sys.argv[2])
"""


@pytest.mark.parametrize("algorithm", ["lloyd", "elkan"])
def test_checkpoint_resume_after_client_dies(tmp_path: Path, mnist_test,
                                             algorithm: str) -> None:
    X = mnist_test[0][:4000]
    np.save(tmp_path / "X.npy", X)
    ckpt = tmp_path / "fit.npz"
    p = subprocess.run([sys.executable, "-c", CRASHING_FIT, str(tmp_path / "X.npy"),
                        str(ckpt), algorithm], capture_output=True, text=True, timeout=300)
    assert p.returncode == 3, p.stderr
    with np.load(ckpt) as d:
        assert json.loads(bytes(d["header"]).decode())["iteration"] == 6
    params = {"random_state": 0, "max_iter": 40, "tol": 0, "algorithm": algorithm}
    resumed = KMeans(8, **params).fit(X, checkpoint=ckpt, resume=True)
    fresh = KMeans(8, **params).fit(X)
    np.testing.assert_array_equal(resumed.cluster_centers_, fresh.cluster_centers_)
    assert resumed.n_iter_ == fresh.n_iter_
    # a bounded fit's inertia comes from per-cluster sums added up since the resume
    assert resumed.inertia_ == (fresh.inertia_ if params["algorithm"] == "lloyd" else
                                pytest.approx(fresh.inertia_, rel=1e-12))
    assert [h["iteration"] for h in resumed.history_] == list(range(1, fresh.n_iter_ + 1))
    with pytest.raises(ValueError, match="other parameters or data"):
        KMeans(9, random_state=0).fit(X, checkpoint=ckpt, resume=True)
