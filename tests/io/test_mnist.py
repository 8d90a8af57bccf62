"""MNIST-format datasets: ingest to Zarr (atomically), opened as dask arrays."""

from __future__ import annotations

from pathlib import Path

import dask.array as da
import numpy as np
import pytest
import zarr

from daskmeans import io, open_array, open_dataset
from tests.io.idx_files import write_idx


def test_ingest_and_open_dataset(small_dir, tmp_path: Path) -> None:
    d, imgs, labels = small_dir
    store = io.ingest(d, tmp_path / "s.zarr", chunk_rows=10)
    g = zarr.open_group(store, mode="r")
    assert g["test/images"].chunks == (10, 28, 28)
    assert g["test/images"].compressors  # compressed on disk
    X, y = open_dataset(store, "test")
    assert isinstance(X, da.Array) and X.dtype == np.float32 and X.shape == (25, 784)
    assert X.chunks[0] == (10, 10, 5)
    da.utils.assert_eq(X, imgs.reshape(25, -1).astype(np.float32) / np.float32(255))
    np.testing.assert_array_equal(y.compute(), labels)
    assert y.dtype == np.int64
    assert open_array(store).shape == (25, 784)  # no train split: falls back to test


def test_open_dataset_is_lazy_and_scaled_per_chunk(small_dir, tmp_path: Path) -> None:
    from tests.conftest import no_compute

    d, _, _ = small_dir
    store = io.ingest(d, tmp_path / "s.zarr", chunk_rows=10)
    with no_compute():
        X, _ = open_dataset(store, "test")
    assert zarr.open_group(store)["test/images"].dtype == np.uint8  # no float copy on disk
    assert X.numblocks == (3, 1)  # scaled chunk by chunk
    assert 0.0 <= float(X.min().compute()) and float(X.max().compute()) <= 1.0


def test_ingest_count_mismatch_is_atomic(tmp_path: Path) -> None:
    d = tmp_path / "src"
    d.mkdir()
    write_idx(d / "t10k-images-idx3-ubyte.gz", np.zeros((5, 28, 28), np.uint8))
    write_idx(d / "t10k-labels-idx1-ubyte.gz", np.zeros(4, np.uint8))
    dest = tmp_path / "out.zarr"
    with pytest.raises(io.DataFormatError, match="5 images but .* 4 labels"):
        io.ingest(d, dest)
    assert not dest.exists()
    assert list(tmp_path.glob(".out.zarr*")) == []  # no temporary left behind


def test_failed_ingest_keeps_previous_store(small_dir, tmp_path: Path) -> None:
    d, _, labels = small_dir
    dest = io.ingest(d, tmp_path / "keep.zarr")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "t10k-images-idx3-ubyte.gz").write_bytes(b"garbage")
    write_idx(bad / "t10k-labels-idx1-ubyte.gz", np.zeros(3, np.uint8))
    with pytest.raises(io.IDXFormatError):
        io.ingest(bad, dest, overwrite=True)
    np.testing.assert_array_equal(open_dataset(dest, "test")[1].compute(), labels)


def test_ingest_no_split(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no complete split"):
        io.ingest(tmp_path, tmp_path / "x.zarr")


def test_open_dataset_errors(small_dir, tmp_path: Path) -> None:
    d, _, _ = small_dir
    store = io.ingest(d, tmp_path / "s.zarr")
    with pytest.raises(io.StoreError, match="split 'train' is not in this store"):
        open_dataset(store, "train")
    with pytest.raises(ValueError, match="split must be one of"):
        open_dataset(store, "validation")
    with pytest.raises(FileNotFoundError, match="no such Zarr store"):
        open_dataset(tmp_path / "missing.zarr", "test")
    g = zarr.open_group(store, mode="a")
    del g["test/labels"]
    with pytest.raises(io.StoreError, match="no array 'test/labels'"):
        open_dataset(store, "test")


def test_ingest_records_class_names(small_dir, tmp_path: Path) -> None:
    """The store says what each label stands for where the dataset has names; a store
    of another dataset records none; names given explicitly win."""
    d, _, _ = small_dir
    fashion = io.ingest(d, tmp_path / "f.zarr", name="fashion-mnist")
    names = io.class_names(fashion)
    assert names == ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                     "Shirt", "Sneaker", "Bag", "Ankle boot"]
    assert zarr.open_group(fashion, mode="r").attrs["class_names"] == names
    assert io.class_names(io.ingest(d, tmp_path / "m.zarr")) == [str(i) for i in range(10)]
    assert io.class_names(io.ingest(d, tmp_path / "x.zarr", name="mine")) is None
    given = io.ingest(d, tmp_path / "g.zarr", name="mine", class_names=["a", "b"])
    assert io.class_names(given) == ["a", "b"]
    images, labels = np.zeros((2, 2, 2), np.uint8), np.array([0, 1], np.uint8)
    digits = io.arrays_to_dataset({"test": (images, labels)}, tmp_path / "d.zarr",
                                  name="digits")
    assert io.class_names(digits) == [str(i) for i in range(10)]
    with pytest.raises(ValueError, match="at least one class"):
        io.ingest(d, tmp_path / "e.zarr", class_names=[])
