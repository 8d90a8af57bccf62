"""Stores in object storage: a real S3-compatible HTTP server (moto's, in server mode) on
127.0.0.1, reached through s3fs with explicit credentials, an endpoint and small retry
counts and timeouts passed as storage_options (nothing read from the environment or
~/.aws). A TCP proxy in front of the server lets a test drop connections or take the
server away mid-fit."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr

pytest.importorskip("s3fs")
pytest.importorskip("moto.server")

from daskmeans import KMeans, cli, io, open_dataset, open_source

from ..conftest import computed
from ..docs_pages import DOCS, rst_code_block

BUCKET = "daskmeans-test"


# ---------------------------------------------------------------- the server


class Proxy:
    """A TCP proxy to the S3 server that can drop the next connections (a transient
    failure) or go away (its port refuses connections and every open one is cut)."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self.drop_next = 0
        self.dropped = 0
        self.up = True
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while self.up:
            try:
                client, _ = self.sock.accept()
            except OSError:  # the 0.05 s timeout: look at self.up again
                continue
            with self._lock:
                if self.drop_next:
                    self.drop_next -= 1
                    self.dropped += 1
                    client.close()
                    continue
                upstream = socket.create_connection(self.target)
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(1 << 16):
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        """The server goes away: no new connection is accepted, open ones are cut."""
        self.up = False
        self._thread.join()
        self.sock.close()
        with self._lock:
            for s in self._conns:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()


class S3:
    """The session's server: its endpoint, credentials and storage options."""

    def __init__(self, host: str, port: int, key: str, secret: str) -> None:
        self.host, self.port, self.key, self.secret = host, port, key, secret
        self.endpoint = f"http://{host}:{port}"

    def options(self, endpoint: str | None = None, attempts: int = 2,
                **extra: Any) -> dict[str, Any]:
        """storage_options for s3fs: no environment, few retries, short timeouts (a
        test that loses the server fails in seconds)."""
        return {"key": self.key, "secret": self.secret,
                "endpoint_url": endpoint or self.endpoint,
                "config_kwargs": {"retries": {"max_attempts": attempts, "mode": "standard"},
                                  "connect_timeout": 1, "read_timeout": 2}, **extra}

    def cli_options(self) -> list[str]:
        out = []
        for k, v in {"key": self.key, "secret": self.secret, "endpoint_url": self.endpoint,
                     "config_kwargs.retries.max_attempts": 2,
                     "config_kwargs.connect_timeout": 1, "config_kwargs.read_timeout": 2,
                     "anon": "false"}.items():
            out += ["--storage-option", f"{k}={v}"]
        return out

    def reset_auth(self, count: str) -> None:
        """moto server mode's switch: check credentials from the next request on ("0"),
        or never ("inf")."""
        req = urllib.request.Request(f"{self.endpoint}/moto-api/reset-auth", method="POST",
                                     data=count.encode(), headers={"Content-Type": "text/plain"})
        with urllib.request.urlopen(req, timeout=5) as r:
            assert json.loads(r.read())["status"] == "ok"


@pytest.fixture(scope="session")
def s3() -> Iterator[S3]:
    """moto's S3 server on a free port of 127.0.0.1, an IAM user with a key, a bucket."""
    import boto3
    from moto.server import ThreadedMotoServer

    werkzeug = logging.getLogger("werkzeug")
    level = werkzeug.level
    werkzeug.setLevel(logging.ERROR)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    admin = {"endpoint_url": f"http://{host}:{port}", "region_name": "us-east-1",
             "aws_access_key_id": "admin", "aws_secret_access_key": "admin"}
    iam = boto3.client("iam", **admin)
    iam.create_user(UserName="daskmeans")
    iam.put_user_policy(UserName="daskmeans", PolicyName="all", PolicyDocument=json.dumps(
        {"Version": "2012-10-17",
         "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
    key = iam.create_access_key(UserName="daskmeans")["AccessKey"]
    boto3.client("s3", **admin).create_bucket(Bucket=BUCKET)
    yield S3(host, port, key["AccessKeyId"], key["SecretAccessKey"])
    server.stop()
    werkzeug.setLevel(level)


def _digits() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    from sklearn.datasets import load_digits

    d = load_digits()
    images = np.rint(d.images * (255 / 16)).astype(np.uint8)
    return {"train": (images[:1400], d.target[:1400]), "test": (images[1400:], d.target[1400:])}


@pytest.fixture(scope="session")
def local_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """scikit-learn's digits as a dataset store on disk, 200 rows a chunk."""
    return io.arrays_to_dataset(_digits(), tmp_path_factory.mktemp("s3") / "digits.zarr",
                                name="digits", chunk_rows=200)


@pytest.fixture(scope="session")
def s3_store(s3: S3, local_store: Path) -> str:
    """The same store uploaded to the bucket with s3fs (not with daskmeans)."""
    import s3fs

    fs = s3fs.S3FileSystem(**s3.options())
    fs.put(str(local_store), f"{BUCKET}/digits.zarr", recursive=True)
    assert fs.exists(f"{BUCKET}/digits.zarr/train/images/zarr.json")
    return f"s3://{BUCKET}/digits.zarr"


@pytest.fixture
def proxy(s3: S3) -> Iterator[Proxy]:
    p = Proxy((s3.host, s3.port))
    yield p
    if p.up:
        p.close()


# ---------------------------------------------------------------- reading


@pytest.mark.parametrize("cache", [None, False])
def test_fit_from_url_equals_fit_from_local_store(s3: S3, s3_store: str, local_store: Path,
                                                  cache: bool | None) -> None:
    remote = KMeans(n_clusters=10, random_state=0).fit(
        open_source(s3_store, "train", storage_options=s3.options(), cache=cache))
    local = KMeans(n_clusters=10, random_state=0).fit(open_source(local_store, "train"))
    np.testing.assert_array_equal(remote.cluster_centers_, local.cluster_centers_)
    np.testing.assert_array_equal(computed(remote.labels_), computed(local.labels_))
    assert remote.inertia_ == local.inertia_ and remote.n_iter_ == local.n_iter_
    src = open_source(s3_store, "test", storage_options=s3.options(), cache=cache)
    np.testing.assert_array_equal(computed(remote.predict(src)),
                                  computed(local.predict(open_source(local_store, "test"))))


def test_estimators_take_a_bare_url(s3: S3, s3_store: str, local_store: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A URL string alone, credentials and endpoint from the environment (as botocore
    reads them): fit and predict as from the local store (the dataset's train split)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3.key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3.secret)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3.endpoint)
    remote = KMeans(n_clusters=10, random_state=0, max_iter=5).fit(s3_store)
    local = KMeans(n_clusters=10, random_state=0, max_iter=5).fit(str(local_store))
    np.testing.assert_array_equal(remote.cluster_centers_, local.cluster_centers_)
    np.testing.assert_array_equal(computed(remote.predict(s3_store)), computed(local.labels_))


def test_open_dataset_from_url(s3: S3, s3_store: str, local_store: Path) -> None:
    X, y = open_dataset(s3_store, "test", storage_options=s3.options())
    Xl, yl = open_dataset(local_store, "test")
    assert X.shape == (397, 64)
    np.testing.assert_array_equal(X.compute(), Xl.compute())
    np.testing.assert_array_equal(y.compute(), yl.compute())


def test_storage_options_refused_for_a_local_path(local_store: Path) -> None:
    with pytest.raises(ValueError, match="storage_options apply to URLs.*digits.zarr"):
        open_source(str(local_store), "test", storage_options={"anon": True})


# ---------------------------------------------------------------- writing


@pytest.fixture(scope="session")
def model(local_store: Path) -> KMeans:
    """A model of the local store (fitted once, on dask's threads)."""
    return KMeans(n_clusters=10, random_state=0, max_iter=5).fit(
        open_source(local_store, "train"))


def test_predict_writes_labels_back_to_the_bucket(s3: S3, s3_store: str, model: KMeans,
                                                  scheduler: str) -> None:
    """Labels computed by the tasks (threads, or the LocalCluster's worker processes) are
    written chunk by chunk to the bucket and read back equal."""
    from daskmeans.engine import schedule

    km = model
    labels = km.predict(open_source(s3_store, "train", storage_options=s3.options()))
    out = f"s3://{BUCKET}/labels-{scheduler}.zarr"
    with io.write_group(out, storage_options=s3.options()) as g:
        g.attrs["k"] = 10
        arr = g.create_array("labels", shape=labels.shape, dtype=np.int32, chunks=(300,))
        schedule.compute(io.store_blocks(labels, arr), n_tasks=5)
    back = zarr.open_group(out, mode="r", storage_options=s3.options())
    assert back.attrs["k"] == 10
    np.testing.assert_array_equal(back["labels"][:], computed(km.labels_))


def test_write_group_root_metadata_last_and_cleanup(s3: S3) -> None:
    """A store opens as a group only when complete; a failed write leaves nothing; an old
    store is replaced; what is not a Zarr store (or a bucket's root) is never deleted."""
    import s3fs

    fs = s3fs.S3FileSystem(**s3.options())
    url = f"s3://{BUCKET}/w.zarr"
    with io.write_group(url, storage_options=s3.options()) as g:
        g.create_array("a", shape=(4,), dtype=np.int32)[:] = [1, 2, 3, 4]
        assert fs.exists(f"{BUCKET}/w.zarr/a/zarr.json")
        with pytest.raises(FileNotFoundError):  # not yet a group: no root metadata
            zarr.open_group(url, mode="r", storage_options=s3.options())
    assert list(zarr.open_group(url, mode="r", storage_options=s3.options())["a"][:]) == [
        1, 2, 3, 4]
    with pytest.raises(io.OutputExistsError, match="w.zarr: exists; .*overwrite=True"), \
            io.write_group(url, storage_options=s3.options()):
        pass  # not asked to replace it: refused before anything is deleted
    assert list(zarr.open_group(url, mode="r", storage_options=s3.options())["a"][:]) == [
        1, 2, 3, 4]
    with pytest.raises(RuntimeError, match="boom"), \
            io.write_group(url, storage_options=s3.options(), overwrite=True) as g:
        g.create_array("b", shape=(4,), dtype=np.int32)[:] = 7
        raise RuntimeError("boom")
    fs.invalidate_cache()
    assert not fs.exists(f"{BUCKET}/w.zarr")  # the old store went first, the partial one after
    fs.pipe(f"{BUCKET}/notzarr/file.txt", b"precious")
    with pytest.raises(FileExistsError, match="notzarr: exists and is not a Zarr store"), \
            io.write_group(f"s3://{BUCKET}/notzarr", storage_options=s3.options(),
                           overwrite=True):
        pass
    assert fs.cat(f"{BUCKET}/notzarr/file.txt") == b"precious"
    with pytest.raises(ValueError, match="needs a path inside the bucket"), \
            io.write_group(f"s3://{BUCKET}", storage_options=s3.options()):
        pass


def test_ingest_to_a_url(s3: S3, local_store: Path) -> None:
    url = io.arrays_to_dataset(_digits(), f"s3://{BUCKET}/up.zarr", name="digits",
                               chunk_rows=500, storage_options=s3.options())
    assert url == f"s3://{BUCKET}/up.zarr"
    with pytest.raises(io.OutputExistsError, match=rf"{url}: exists; .*overwrite=True"):
        io.arrays_to_dataset(_digits(), url, name="again", storage_options=s3.options())
    with pytest.raises(io.OutputExistsError, match=rf"{url}: exists"):
        io.upload_store(local_store, url, storage_options=s3.options())
    assert zarr.open_group(url, mode="r", storage_options=s3.options()).attrs[
        "dataset"] == "digits"
    io.arrays_to_dataset(_digits(), url, name="digits", chunk_rows=500,
                         storage_options=s3.options(), overwrite=True)
    X, y = open_dataset(url, "train", storage_options=s3.options())
    Xl, yl = open_dataset(local_store, "train")
    np.testing.assert_array_equal(X.compute(), Xl.compute())
    np.testing.assert_array_equal(y.compute(), yl.compute())
    assert X.chunks[0][0] == 500


# ---------------------------------------------------------------- errors


def test_missing_bucket_and_missing_path_name_the_url(s3: S3, s3_store: str) -> None:
    with pytest.raises(FileNotFoundError,
                       match=r"s3://nobucket/digits.zarr: no Zarr store at this URL: the "
                             r"bucket 'nobucket' does not exist"):
        open_source("s3://nobucket/digits.zarr", "test", storage_options=s3.options())
    with pytest.raises(FileNotFoundError, match=rf"s3://{BUCKET}/nothere.zarr: .*the bucket "
                                                rf"'{BUCKET}' exists, nothing is stored"):
        open_dataset(f"s3://{BUCKET}/nothere.zarr", "test", storage_options=s3.options())


@pytest.fixture
def s3_auth(s3: S3) -> Iterator[None]:
    """moto checks credentials during the test (not for the others: with checks on, moto
    5.2 rejects the signature of a delimited ListObjectsV2, getmoto/moto#5948)."""
    s3.reset_auth("0")
    try:
        yield
    finally:
        s3.reset_auth("inf")


def test_wrong_credentials_name_the_url(s3: S3, s3_store: str, s3_auth: None) -> None:
    import s3fs

    # the right key is accepted (a plain GET: no listing)
    assert s3fs.S3FileSystem(**s3.options()).cat(f"{BUCKET}/digits.zarr/zarr.json")
    for wrong in ({"secret": "not-the-secret"}, {"key": "AKIANOSUCHKEY"}):
        with pytest.raises(PermissionError, match=rf"{s3_store}: opening the store: access "
                                                  r"denied .*check the credentials"):
            open_source(s3_store, "test", storage_options={**s3.options(), **wrong})


def test_unreachable_server_names_the_url(s3: S3, proxy: Proxy) -> None:
    proxy.close()
    t0 = time.perf_counter()
    with pytest.raises(io.StoreConnectionError,
                       match=rf"s3://{BUCKET}/digits.zarr: .*cannot reach the store.*retries"):
        open_source(f"s3://{BUCKET}/digits.zarr", "test",
                       storage_options=s3.options(proxy.endpoint))
    assert time.perf_counter() - t0 < 10


def test_server_gone_mid_fit_fails_fast_naming_the_url(s3: S3, s3_store: str,
                                                        proxy: Proxy) -> None:
    """The server goes away after the first Lloyd iteration of a streamed fit: the next
    pass fails once botocore's two attempts are spent, naming the URL and the rows."""

    def server_goes_away(phase: str, done: int, total: int | None, detail: str) -> None:
        if phase == "lloyd" and done == 1:
            proxy.close()

    src = open_source(s3_store, "train", storage_options=s3.options(proxy.endpoint),
                         cache=False)
    km = KMeans(n_clusters=10, random_state=0, algorithm="lloyd", callback=server_goes_away)
    t0 = time.perf_counter()
    with pytest.raises(io.StoreConnectionError,
                       match=rf"{s3_store}/train/images: reading rows \d+\.\.\d+: cannot reach"):
        km.fit(src)
    assert not proxy.up and time.perf_counter() - t0 < 10


def test_dropped_connections_are_retried(s3: S3, s3_store: str, local_store: Path,
                                         proxy: Proxy) -> None:
    """Connections cut before any answer are transient errors, retried (by s3fs, which
    retries HTTP client errors itself, and botocore): the streamed fit goes on unharmed."""
    src = open_source(s3_store, "train", storage_options=s3.options(proxy.endpoint),
                         cache=False)
    proxy.drop_next = 2
    km = KMeans(n_clusters=10, random_state=0, max_iter=3, algorithm="lloyd").fit(src)
    local = KMeans(n_clusters=10, random_state=0, max_iter=3, algorithm="lloyd").fit(
        open_source(local_store, "train"))
    np.testing.assert_array_equal(km.cluster_centers_, local.cluster_centers_)
    assert proxy.dropped == 2


# ---------------------------------------------------------------- the command line


def _write_idx_dir(where: Path, n: int = 30) -> Path:
    """A directory of MNIST-format test-split files with ``n`` random images."""
    import gzip
    import struct

    rng = np.random.default_rng(0)
    arrays = {"t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (n, 28, 28), np.uint8),
              "t10k-labels-idx1-ubyte.gz": rng.integers(0, 10, n).astype(np.uint8)}
    where.mkdir(parents=True, exist_ok=True)
    for name, a in arrays.items():
        header = bytes([0, 0, 8, a.ndim]) + struct.pack(f">{a.ndim}I", *a.shape)
        with gzip.open(where / name, "wb") as f:
            f.write(header + a.tobytes())
    return where


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = cli.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_fit_evaluate_predict_with_a_bucket(s3: S3, s3_store: str, local_store: Path,
                                                tmp_path: Path, capsys) -> None:
    opts = s3.cli_options()
    model = tmp_path / "m.npz"
    code, out, err = run(["fit", s3_store, "--k", "10", "--max-iter", "5", "--model",
                          str(model), "--quiet", *opts], capsys)
    assert code == 0, err
    code, out, err = run(["evaluate", s3_store, "--model", str(model), "--json", "--quiet",
                          *opts], capsys)
    assert code == 0, err
    assert json.loads(out)["n_samples"] == 397
    url = f"s3://{BUCKET}/cli-labels.zarr"
    for replace in ([], ["--overwrite"]):  # the second run replaces the first store
        code, out, err = run(["predict", s3_store, "--model", str(model), "--out", url,
                              "--quiet", *replace, *opts], capsys)
        assert code == 0 and url in out, err
        if not replace:  # asked to write over it without --overwrite: refused, kept
            code, _, err = run(["predict", s3_store, "--model", str(model), "--out", url,
                                "--quiet", *opts], capsys)
            assert code == 2 and f"{url}: exists" in err and "--overwrite" in err, err
            assert zarr.open_group(url, mode="r", storage_options=s3.options()).attrs[
                "split"] == "test"
    from daskmeans import load_model

    est, header = load_model(model)
    assert "secret" not in json.dumps(header) and s3.secret not in json.dumps(header)
    back = zarr.open_group(url, mode="r", storage_options=s3.options())
    expect = est.predict(open_source(local_store, "test"))
    np.testing.assert_array_equal(back["labels"][:], computed(expect))
    assert back.attrs["split"] == "test"


def test_cli_ingest_to_a_bucket(s3: S3, tmp_path: Path, capsys) -> None:
    idx = _write_idx_dir(tmp_path)
    url = f"s3://{BUCKET}/ingested.zarr"
    code, out, err = run(["ingest", "mnist", "--source", str(idx), "--out", url,
                          "--chunk-rows", "10", *s3.cli_options()], capsys)
    assert code == 0 and url in out, err
    X, y = open_dataset(url, "test", storage_options=s3.options(), scale=False)
    Xl, yl = open_dataset(io.ingest(idx, tmp_path / "local.zarr"), "test", scale=False)
    np.testing.assert_array_equal(X.compute(), Xl.compute())
    np.testing.assert_array_equal(y.compute(), yl.compute())
    assert X.chunks[0] == (10, 10, 10)


def test_cli_errors_name_the_url(s3: S3, s3_store: str, local_store: Path, model: KMeans,
                                 tmp_path: Path, capsys) -> None:
    from daskmeans import save_model

    save_model(model, tmp_path / "m.npz")
    opts = s3.cli_options()
    code, _, err = run(["fit", "s3://nobucket/x.zarr", "--k", "3", "--model",
                        str(tmp_path / "m.npz"), *opts], capsys)
    assert code == 2 and "s3://nobucket/x.zarr: no Zarr store" in err and "Traceback" not in err
    dead = [o.replace(s3.endpoint, "http://127.0.0.1:9") for o in opts]  # discard port: refused
    code, _, err = run(["evaluate", s3_store, "--model", str(tmp_path / "m.npz"), *dead],
                       capsys)
    assert code == 2 and f"{s3_store}: opening the store: cannot reach" in err, err
    code, _, err = run(["fit", str(local_store), "--k", "3", "--model",
                        str(tmp_path / "m.npz"), "--storage-option", "anon=true"], capsys)
    assert code == 2 and "--storage-option applies to stores at URLs" in err
    code, _, err = run(["fit", s3_store, "--k", "3", "--model", str(tmp_path / "m.npz"),
                        "--storage-option", "anon"], capsys)
    assert code == 2 and "must be KEY=VALUE" in err


def test_parse_storage_options() -> None:
    got = cli.parse_storage_options([
        "endpoint_url=http://127.0.0.1:5555", "anon=false", "use_ssl=True", "key=AKIA123",
        "config_kwargs.retries.max_attempts=3", "config_kwargs.read_timeout=2.5",
        "config_kwargs.retries.mode=standard", "token=0x1f"])
    assert got == {"endpoint_url": "http://127.0.0.1:5555", "anon": False, "use_ssl": True,
                   "key": "AKIA123", "token": "0x1f",
                   "config_kwargs": {"retries": {"max_attempts": 3, "mode": "standard"},
                                     "read_timeout": 2.5}}
    with pytest.raises(cli.UserError, match="already"):
        cli.parse_storage_options(["a=1", "a.b=2"])
    with pytest.raises(cli.UserError, match="KEY=VALUE"):
        cli.parse_storage_options(["=1"])


# ------------------------------------------------ the examples of the data page of the docs

DATA_PAGE = DOCS / "guide" / "data.rst"


def test_docs_python_example_runs(s3: S3, local_store: Path) -> None:
    """The object storage section's Python block, against the test's own server (digits,
    not MNIST)."""
    code = rst_code_block(DATA_PAGE, "s3-python")
    code = code.replace("http://127.0.0.1:5555", s3.endpoint).replace(
        'datasets.fetch_mnist(source="../shared/data/mnist")', repr(str(local_store)))
    assert s3.endpoint in code and str(local_store) in code
    namespace: dict[str, Any] = {}
    exec(compile(code, str(DATA_PAGE), "exec"), namespace)
    opts = namespace["opts"]
    back = zarr.open_group("s3://demo/labels.zarr", mode="r", storage_options=opts)
    np.testing.assert_array_equal(back["labels"][:], computed(namespace["labels"]))


def test_docs_commands_run(s3: S3, tmp_path: Path, capsys,
                           monkeypatch: pytest.MonkeyPatch) -> None:
    """The object storage section's command block in order (a 30-image IDX directory
    for MNIST's), the credentials from the environment as the page has them."""
    import shlex

    import s3fs

    block = rst_code_block(DATA_PAGE, "s3-commands")
    lines = [line.split("  #")[0].strip() for line in block.splitlines() if line.strip()]
    env = dict(kv.split("=", 1) for kv in shlex.split(lines[0].removeprefix("export ")))
    assert set(env) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    name, value = lines[1].split("=", 1)
    extra = shlex.split(value)[0].replace("http://127.0.0.1:5555", s3.endpoint)
    monkeypatch.chdir(tmp_path)
    idx = _write_idx_dir(tmp_path / "idx")
    fs = s3fs.S3FileSystem(**s3.options())
    if not fs.exists("demo"):  # made by the Python example, when it ran first
        fs.mkdir("demo")
    commands = lines[2:]
    assert len(commands) == 4 and all(f"${name}" in c for c in commands)
    for command in commands:
        argv = shlex.split(command.replace(f"${name}", extra).replace(
            "../shared/data/mnist", str(idx)))
        assert argv[0] == "daskmeans", command
        code = cli.main(argv[1:])
        _, err = capsys.readouterr()
        assert code == 0, f"{command}: {err}"
    back = zarr.open_group("s3://demo/cli-labels.zarr", mode="r",
                           storage_options=s3.options())
    assert back["labels"].shape == (30,)


def test_cli_segment_a_scene_in_the_bucket(s3: S3, tmp_path: Path, capsys) -> None:
    """`daskmeans segment` reads the scene from the bucket and writes the label map
    back to it, aligned with the scene's chunks."""
    import s3fs

    local = io.synthetic_scene(tmp_path / "scene.zarr", 96, 128, tile=32)
    fs = s3fs.S3FileSystem(**s3.options())
    fs.put(str(local), f"{BUCKET}/scene.zarr", recursive=True)
    url, out = f"s3://{BUCKET}/scene.zarr", f"s3://{BUCKET}/scene-labels.zarr"
    code, text, err = run(["segment", url, "--k", "5", "--feature-dim", "band", "--out",
                           out, "--sample-size", "3000", "--quiet", *s3.cli_options()],
                          capsys)
    assert code == 0, err
    assert "into 5 clusters" in text
    labels = zarr.open_group(out, mode="r", storage_options=s3.options())["labels"]
    truth = zarr.open_group(local, mode="r")["classes"][:]
    got = labels[:]
    assert labels.chunks == (32, 32) and (got[truth < 0] == -1).all()
    from sklearn.metrics import adjusted_rand_score

    assert adjusted_rand_score(truth[truth >= 0], got[truth >= 0]) == pytest.approx(1.0)


def test_predict_to_a_bucket_killed_mid_write_does_not_open(s3: S3, s3_store: str,
                                                           local_store: Path, model: KMeans,
                                                           tmp_path: Path) -> None:
    """Object storage has no rename: a predict killed after writing label chunks leaves
    objects without the root metadata, and readers refuse them (not found)."""
    import s3fs

    from daskmeans import save_model
    from tests.test_overwrite import kill_mid_write

    path = save_model(model, tmp_path / "m.npz")
    url = f"s3://{BUCKET}/killed.zarr"
    kill_mid_write(["predict", s3_store, "--model", str(path), "--out", url,
                    *s3.cli_options()], tmp_path)
    fs = s3fs.S3FileSystem(**s3.options())
    fs.invalidate_cache()
    assert fs.exists(f"{BUCKET}/killed.zarr/labels/zarr.json")  # the write had begun
    assert not fs.exists(f"{BUCKET}/killed.zarr/zarr.json")
    with pytest.raises(FileNotFoundError, match=rf"{url}: no Zarr store at this URL"):
        open_source(url, storage_options=s3.options())
    with pytest.raises(FileNotFoundError):
        zarr.open_group(url, mode="r", storage_options=s3.options())


def test_arrays_by_name_from_a_bucket(s3: S3, local_store: Path, tmp_path: Path,
                                      capsys) -> None:
    """A root array and an array of a group named by array= (--array), at URLs: the same
    fit as from the local copies; a wrong name lists what the group holds."""
    import s3fs

    rows = open_source(local_store, "train").array[:].reshape(1400, -1).astype(np.float32)
    zarr.create_array(tmp_path / "root.zarr", data=rows, chunks=(400, 64))
    group = zarr.open_group(tmp_path / "grp.zarr", mode="w")
    group.create_array("vectors", data=rows, chunks=(400, 64))
    group.create_array("ids", data=np.arange(1400))
    fs = s3fs.S3FileSystem(**s3.options())
    for name in ("root.zarr", "grp.zarr"):
        fs.put(str(tmp_path / name), f"{BUCKET}/named/{name}", recursive=True)
    root, grp = (f"s3://{BUCKET}/named/{name}" for name in ("root.zarr", "grp.zarr"))
    local = KMeans(n_clusters=5, random_state=0, max_iter=5).fit(rows)
    for url, array in ((root, None), (grp, "vectors"), (grp, None)):  # ids is 1-D: rows found
        km = KMeans(n_clusters=5, random_state=0, max_iter=5).fit(
            open_source(url, array=array, storage_options=s3.options()))
        np.testing.assert_allclose(km.inertia_, local.inertia_, rtol=1e-6)
    with pytest.raises(io.StoreError, match=rf"{grp}: no array 'x'; it holds ids"):
        open_source(grp, array="x", storage_options=s3.options())
    model = tmp_path / "m.npz"
    code, _, err = run(["fit", grp, "--array", "vectors", "--k", "5", "--max-iter", "5",
                          "--model", str(model), "--quiet", *s3.cli_options()], capsys)
    assert code == 0, err
    code, _, err = run(["fit", root, "--k", "5", "--max-iter", "5", "--model", str(model),
                          "--overwrite", "--quiet", *s3.cli_options()], capsys)
    assert code == 0, err


# ---------------------------------------------------------------- sparse CSR stores


def test_csr_store_in_a_bucket(s3: S3, tmp_path: Path) -> None:
    """A CSR store written to a bucket chunk by chunk reads back block by block, its
    root metadata written last; an existing one is refused unless overwrite."""
    import s3fs
    import scipy.sparse as sp

    from daskmeans.io.sparse import open_csr, write_csr

    X = sp.random(120, 40, density=0.1, format="csr", dtype="float32", random_state=1)
    url = f"s3://{BUCKET}/tfidf.zarr"
    write_csr(X, url, rows_per_chunk=32, nnz_per_chunk=100, storage_options=s3.options())
    fs = s3fs.S3FileSystem(**s3.options())
    assert fs.exists(f"{BUCKET}/tfidf.zarr/zarr.json")
    m = open_csr(url, storage_options=s3.options())
    assert m.where == url and m.shape == (120, 40)
    assert (m.read_rows(32, 96) != X[32:96]).nnz == 0
    assert (m.to_scipy() != X).nnz == 0
    with pytest.raises(io.OutputExistsError, match=url):
        write_csr(X, url, storage_options=s3.options())
    write_csr(X[:10], url, storage_options=s3.options(), overwrite=True)
    assert open_csr(url, storage_options=s3.options()).shape == (10, 40)
