"""IDX files written for the tests."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np


def write_idx(path: Path, arr: np.ndarray, *, gz: bool = True, code: int = 0x08) -> Path:
    header = bytes([0, 0, code, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    data = header + arr.astype(arr.dtype.newbyteorder(">")).tobytes()
    (gzip.open if gz else open)(path, "wb").write(data)  # type: ignore[operator]
    return path


def small_idx_dir(where: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    """A 25-image test split of random 28 x 28 images in ``where`` (MNIST file names)."""
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, size=(25, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=25, dtype=np.uint8)
    write_idx(where / "t10k-images-idx3-ubyte.gz", imgs)
    write_idx(where / "t10k-labels-idx1-ubyte.gz", labels)
    return where, imgs, labels
