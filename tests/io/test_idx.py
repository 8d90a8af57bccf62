"""IDX files: streamed in blocks, every dtype, malformed files named."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import zarr

from daskmeans import io
from tests.conftest import MNIST_MD5, MNIST_ROWS
from tests.io.idx_files import write_idx


@pytest.mark.parametrize("gz", [True, False])
def test_iter_idx_streams_in_blocks(tmp_path: Path, gz: bool) -> None:
    arr = np.arange(7 * 3 * 2, dtype=np.uint8).reshape(7, 3, 2)
    p = write_idx(tmp_path / "a.idx", arr, gz=gz)
    blocks = [b for _, _, b in io.iter_idx(p, chunk_rows=3)]
    assert [b.shape[0] for b in blocks] == [3, 3, 1]
    np.testing.assert_array_equal(np.concatenate(blocks), arr)


def test_read_idx_other_dtypes(tmp_path: Path) -> None:
    arr = np.array([[1.5, -2.0], [3.25, 4.0]], dtype=np.float32)
    p = write_idx(tmp_path / "f.idx", arr.astype(">f4"), gz=False, code=0x0D)
    out = io.read_idx(p)
    assert out.dtype == np.float32 and out.dtype.isnative
    np.testing.assert_array_equal(out, arr)


def test_real_mnist_labels_match_idx(mnist_dir: Path, mnist_store: Path) -> None:
    """The ingested test split is the IDX file, byte for byte."""
    labels = io.read_idx(mnist_dir / "t10k-labels-idx1-ubyte.gz")
    images = io.read_idx(mnist_dir / "t10k-images-idx3-ubyte.gz")
    g = zarr.open_group(mnist_store, mode="r")
    assert g["test/images"].shape == (MNIST_ROWS, 28, 28)
    assert g["test/images"].dtype == np.uint8
    np.testing.assert_array_equal(g["test/labels"][:], labels)
    np.testing.assert_array_equal(g["test/images"][:], images)
    assert labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert g.attrs["splits"] == ["test"] and g.attrs["missing_splits"] == ["train"]
    assert g.attrs["sources"]["test/images"]["md5"] == MNIST_MD5["t10k-images-idx3-ubyte.gz"]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda b: b"\x08\x08" + b[2:], "wrong magic number"),
        (lambda b: b[:2] + b"\x42" + b[3:], "unknown IDX type code"),
        (lambda b: b[:-10], "truncated"),
        (lambda b: b + b"\x00\x00", "trailing bytes"),
        (lambda b: b[:3] + b"\x00" + b[4:], "0 dimensions"),
    ],
)
def test_bad_idx_raises_named_error(tmp_path: Path, mutate, message: str) -> None:
    arr = np.zeros((4, 2, 2), np.uint8)
    raw = bytes([0, 0, 8, 3]) + struct.pack(">3I", 4, 2, 2) + arr.tobytes()
    p = tmp_path / "bad.idx"
    p.write_bytes(mutate(raw))
    with pytest.raises(io.IDXFormatError, match=message) as e:
        io.read_idx(p)
    assert str(p) in str(e.value)
    assert isinstance(e.value, ValueError)


def test_corrupt_and_truncated_gzip(tmp_path: Path) -> None:
    p = write_idx(tmp_path / "x.gz", np.arange(4000, dtype=np.uint8).reshape(1000, 4))
    data = p.read_bytes()
    trunc = tmp_path / "trunc.gz"
    trunc.write_bytes(data[: len(data) // 2])
    with pytest.raises(io.IDXFormatError, match="trunc.gz"):
        io.read_idx(trunc)
    corrupt = tmp_path / "corrupt.gz"
    corrupt.write_bytes(data[:20] + bytes(b ^ 0xFF for b in data[20:40]) + data[40:])
    with pytest.raises(io.IDXFormatError, match="corrupt.gz"):
        io.read_idx(corrupt)


def test_missing_file() -> None:
    with pytest.raises(FileNotFoundError, match="nope.idx"):
        io.read_idx("/nonexistent/nope.idx")
