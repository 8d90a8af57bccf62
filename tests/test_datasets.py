"""Dataset fetching against local HTTP servers on 127.0.0.1 (no network needed)."""

from __future__ import annotations

import functools
import http.server
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import zarr

from daskmeans import datasets, io, open_dataset
from tests.conftest import MNIST_ROWS, missing_data


class _Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:  # keep test output clean
        pass


@pytest.fixture
def serve() -> Iterator:
    servers = []

    def start(directory: Path) -> str:
        handler = functools.partial(_Handler, directory=str(directory))
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        servers.append(srv)
        return f"http://127.0.0.1:{srv.server_address[1]}/"

    yield start
    for srv in servers:
        srv.shutdown()
        srv.server_close()


DEAD = "http://127.0.0.1:9/"  # discard port: connection refused


def test_download_falls_through_dead_and_corrupt_mirrors(
    mnist_dir: Path, mnist_md5: dict[str, str], tmp_path: Path, serve,
    caplog: pytest.LogCaptureFixture
) -> None:
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    for f in mnist_dir.glob("t10k-*"):
        data = bytearray(f.read_bytes())
        data[100] ^= 0xFF
        (corrupt / f.name).write_bytes(bytes(data))
    mirrors = [DEAD, serve(corrupt), serve(mnist_dir)]
    home = tmp_path / "home"
    store = datasets.fetch_mnist(data_home=home, mirrors=mirrors, splits=("test",))
    X, y = open_dataset(store, "test")
    assert X.shape == (MNIST_ROWS, 784)
    np.testing.assert_array_equal(y.compute(), io.read_idx(mnist_dir / "t10k-labels-idx1-ubyte.gz"))
    assert "checksum mismatch" in caplog.text and "127.0.0.1:9" in caplog.text
    raw = home / "mnist" / "raw"
    assert sorted(p.name for p in raw.iterdir()) == [
        "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]  # no temp files left
    assert zarr.open_group(store, mode="r").attrs["origin"] == "download"


def test_rerun_uses_cache(mnist_dir: Path, mnist_md5: dict[str, str], tmp_path: Path,
                          serve) -> None:
    home = tmp_path / "home"
    url = serve(mnist_dir)
    first = datasets.fetch_mnist(data_home=home, mirrors=[url], splits=("test",))
    # the mirror is gone: the cached store must be enough
    again = datasets.fetch_mnist(data_home=home, mirrors=[DEAD], splits=("test",))
    assert again == first
    # the store is gone but the raw files are cached and verified: no download needed
    shutil.rmtree(first)
    third = datasets.fetch_mnist(data_home=home, mirrors=[DEAD], splits=("test",))
    assert open_dataset(third, "test")[0].shape == (MNIST_ROWS, 784)


def test_all_mirrors_corrupt_raises_checksum_error(mnist_dir: Path, mnist_md5: dict[str, str],
                                                   tmp_path: Path, serve) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    for f in mnist_dir.glob("t10k-*"):
        (bad / f.name).write_bytes(f.read_bytes()[:-5] + b"xxxxx")
    with pytest.raises(datasets.ChecksumError, match="md5") as e:
        datasets.fetch_mnist(data_home=tmp_path / "h", mirrors=[serve(bad)], splits=("test",))
    assert isinstance(e.value, OSError)
    assert not (tmp_path / "h" / "mnist.zarr").exists()


def test_missing_file_on_every_mirror(mnist_dir: Path, tmp_path: Path, serve) -> None:
    # the offline copy has no training images: fetching the train split must say so
    with pytest.raises(datasets.DownloadError, match="train-images-idx3-ubyte.gz"):
        datasets.fetch_mnist(data_home=tmp_path, mirrors=[DEAD, serve(mnist_dir)],
                             splits=("train",))


def test_local_source_and_cache(mnist_dir: Path, tmp_path: Path,
                                caplog: pytest.LogCaptureFixture) -> None:
    import logging

    caplog.set_level(logging.INFO)
    store = datasets.fetch_mnist(source=mnist_dir, data_home=tmp_path)
    attrs = zarr.open_group(store, mode="r").attrs
    assert attrs["splits"] == ["test"] and attrs["missing_splits"] == ["train"]
    caplog.clear()
    assert datasets.fetch_mnist(source=mnist_dir, data_home=tmp_path) == store
    assert "using cached" in caplog.text
    with pytest.raises(FileNotFoundError, match="source directory"):
        datasets.fetch_mnist(source=tmp_path / "nope", data_home=tmp_path)


def test_bad_split_name(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="splits must be among"):
        datasets.fetch_mnist(data_home=tmp_path, splits=("validation",))


def test_debian_fashion_mnist_found(tmp_path: Path) -> None:
    local = Path(datasets.FASHION_MNIST.local_dirs[0])
    if not (local / "t10k-images-idx3-ubyte.gz").exists():
        missing_data("dataset-fashion-mnist is not installed")
    store = datasets.fetch_fashion_mnist(data_home=tmp_path, mirrors=[DEAD], splits=("test",))
    X, y = open_dataset(store, "test")
    assert X.shape == (10000, 784) and set(np.unique(y.compute())) == set(range(10))
    names = io.class_names(store)  # what a person reads, where the files say 0-9
    assert names is not None and names[0] == "T-shirt/top" and names[9] == "Ankle boot"
