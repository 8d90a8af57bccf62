"""Synthetic data written chunk by chunk."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
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


def test_make_embeddings_zarr_unit_rows_varied_clusters_reproducible(tmp_path: Path) -> None:
    """Unit rows, the same whatever else is written (a chunk's rows from its own seed),
    clusters of varied sizes (a few large, many small) and a store refused unless
    overwritten."""
    a = io.make_embeddings_zarr(tmp_path / "a.zarr", 2050, 6, components=40, chunk_rows=500,
                                random_state=3)
    b = io.make_embeddings_zarr(tmp_path / "b.zarr", 2050, 6, components=40, chunk_rows=500,
                                random_state=3)
    X = zarr.open_array(a, mode="r")
    assert X.shape == (2050, 6) and X.chunks == (500, 6) and X.dtype == np.float32
    Xa = X[:]
    np.testing.assert_array_equal(Xa, zarr.open_array(b, mode="r")[:])
    np.testing.assert_allclose((Xa.astype(np.float64) ** 2).sum(1), 1.0, atol=1e-5)
    # the rows' nearest direction among the mixture's: Pareto weights, uneven sizes
    rng = np.random.default_rng([3, 0])
    centres = rng.normal(size=(40, 6))
    sizes = np.bincount((Xa @ centres.T / np.linalg.norm(centres, axis=1)).argmax(1),
                        minlength=40)
    assert sizes.max() > 4 * np.median(sizes), sizes
    with pytest.raises(FileExistsError):
        io.make_embeddings_zarr(a, 10, 6, components=2)
    c = io.make_embeddings_zarr(a, 10, 6, components=2, overwrite=True)
    assert zarr.open_array(c, mode="r").shape == (10, 6)
