"""Synthetic data written chunk by chunk."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import zarr

from daskmeans import io, open_array


def test_make_blobs_zarr_reproducible(tmp_path: Path) -> None:
    a = io.make_blobs_zarr(tmp_path / "a.zarr", 1050, 5, centers=3, chunk_rows=100,
                           random_state=7)
    b = io.make_blobs_zarr(tmp_path / "b.zarr", 1050, 5, centers=3, chunk_rows=100,
                           random_state=7)
    Xa, Xb = open_array(a), open_array(b)
    assert Xa.shape == (1050, 5) and Xa.chunks[0][-1] == 50 and Xa.dtype == np.float32
    np.testing.assert_array_equal(Xa.compute(), Xb.compute())
    g = zarr.open_group(a, mode="r")
    y = g["y"][:]
    C = g["centers"][:]
    # rows are their centre plus unit noise
    resid = Xa.compute() - C[y]
    assert abs(resid.std() - 1.0) < 0.05
    c = io.make_blobs_zarr(tmp_path / "c.zarr", 1050, 5, centers=3, chunk_rows=100,
                           random_state=8)
    assert not np.array_equal(open_array(c).compute(), Xa.compute())
