"""The test data shipped in tests/data are what their README says they are."""

from __future__ import annotations

import gzip
import hashlib
import struct

from daskmeans import io
from tests.conftest import MNIST_DIR, MNIST_MD5, MNIST_ROWS


def test_shipped_mnist_files_are_the_recorded_ones() -> None:
    readme = (MNIST_DIR / "README.md").read_text()
    for name, md5 in MNIST_MD5.items():
        assert hashlib.md5((MNIST_DIR / name).read_bytes()).hexdigest() == md5, name
        assert f"{md5}  {name}" in readme, name


def test_shipped_mnist_headers_count_the_rows() -> None:
    with gzip.open(MNIST_DIR / "t10k-images-idx3-ubyte.gz") as f:
        assert struct.unpack(">HBB3I", f.read(16)) == (0, 8, 3, MNIST_ROWS, 28, 28)
    with gzip.open(MNIST_DIR / "t10k-labels-idx1-ubyte.gz") as f:
        assert struct.unpack(">HBBI", f.read(8)) == (0, 8, 1, MNIST_ROWS)
    images = io.read_idx(MNIST_DIR / "t10k-images-idx3-ubyte.gz")
    labels = io.read_idx(MNIST_DIR / "t10k-labels-idx1-ubyte.gz")
    assert images.shape == (MNIST_ROWS, 28, 28) and labels.shape == (MNIST_ROWS,)
    # MNIST's test split begins with these digits; every class is present
    assert labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert set(labels.tolist()) == set(range(10))
