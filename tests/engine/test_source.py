"""Data sources: every input's kind, a store's blocks read exactly what zarr reads,
block offsets."""

from __future__ import annotations

from pathlib import Path

import dask.array as da
import numpy as np
import pytest
import zarr

from daskmeans import as_source, io, open_array, open_dataset, open_source
from daskmeans.engine.source import ArraySource, DaskSource, ZarrSource
from tests.io.idx_files import small_idx_dir


@pytest.fixture
def small_dir(tmp_path: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    """A folder holding a 25-image test split in MNIST format, its images and labels."""
    return small_idx_dir(tmp_path)


def _images_with_empty_chunk() -> np.ndarray:
    imgs = np.random.default_rng(2).integers(0, 256, size=(25, 4, 5), dtype=np.uint8)
    imgs[7:14] = 0  # chunk 1 of 7 rows equals the fill value: zarr never writes it
    return imgs


def test_zarr_source_blocks_read_what_zarr_reads(tmp_path: Path) -> None:
    """Blocks are whole chunks (an unwritten chunk reads as the fill value), raw uint8
    rows that scale to exactly what open_dataset gives."""
    imgs = _images_with_empty_chunk()
    store = io.arrays_to_dataset({"test": (imgs, np.zeros(25, np.uint8))}, tmp_path / "d.zarr",
                                 name="t", chunk_rows=7)
    src = open_source(store, "test")
    assert src.scale == io.PIXEL_SCALE and src.shape == (25, 20)
    assert all(b % 7 == 0 for b in src.offsets[:-1]) and src.offsets[-1] == 25
    assert not (Path(store) / "test" / "images" / "c" / "1").exists()  # the empty chunk
    X, _ = open_dataset(store, "test")
    for i in range(src.n_blocks):
        raw = src.block(i).read()
        a, b = src.offsets[i], src.offsets[i + 1]
        np.testing.assert_array_equal(raw, imgs[a:b].reshape(-1, 20))
        np.testing.assert_array_equal(src.rows_float(raw), X[a:b].compute())
    np.testing.assert_array_equal(src.to_dask().compute(), X.compute())


def test_sources_of_every_input(small_dir, tmp_path: Path) -> None:
    """as_source: numpy in memory, dask arrays as given, stores and Zarr arrays streamed;
    a store URL goes through zarr (fsspec)."""
    d, _, _ = small_dir
    store = io.ingest(d, tmp_path / "s.zarr")
    assert isinstance(as_source(np.zeros((4, 3))), ArraySource)
    assert isinstance(as_source(da.zeros((4, 3), chunks=2)), DaskSource)
    assert isinstance(as_source(store), ZarrSource)
    assert isinstance(as_source(zarr.open_group(store, mode="r")["test/images"]),
                      ZarrSource)
    url = open_source(f"file://{store}", "test")
    assert url.shape == open_source(store, "test").shape
    with pytest.raises(io.StoreError, match="split 'train' is not in this store"):
        open_source(store, "train")
    blobs = io.make_blobs_zarr(tmp_path / "b.zarr", 50, 3, centers=2, chunk_rows=20,
                               random_state=0)
    B = open_source(blobs)
    assert B.scale is None and B.dtype == np.float32
    np.testing.assert_array_equal(B.to_dask().compute(), open_array(blobs).compute())


def test_our_own_lazy_arrays_are_read_through_their_store(small_dir, tmp_path: Path) -> None:
    """open_dataset's X and open_array's array, as returned, become the store's source
    (raw uint8 rows with their scale: the same rows); anything derived from them, and
    dask arrays made elsewhere over the same store, stay dask arrays."""
    from daskmeans import KMeans
    from daskmeans.engine.source import opened_source

    d, _, _ = small_dir
    store = io.ingest(d, tmp_path / "s.zarr", chunk_rows=10)
    X, _ = open_dataset(store, "test")
    src = as_source(X)
    assert isinstance(src, ZarrSource) and src.scale == io.PIXEL_SCALE
    assert src.shape == X.shape and src.array.dtype == np.uint8
    np.testing.assert_array_equal(src.to_dask().compute(), X.compute())
    assert as_source(X) is not src  # a copy each time: a fit's holding is its own
    for derived in (X[:20], X.rechunk((5, -1)), X * 1.0, X.astype(np.float64)):
        assert isinstance(as_source(derived), DaskSource)
    raw, _ = open_dataset(store, "test", scale=False)  # stored images: not rows
    assert opened_source(raw) is None
    blobs = io.make_blobs_zarr(tmp_path / "b.zarr", 50, 3, centers=2, chunk_rows=20,
                               random_state=0)
    assert isinstance(as_source(open_array(blobs)), ZarrSource)
    elsewhere = io.zarr_to_dask(zarr.open_group(blobs, mode="r")["X"])  # the same rows
    assert isinstance(as_source(elsewhere), DaskSource)
    # the same model as from the dask array's own graph (the same initial centres)
    C0 = X[:3].compute()
    fast = KMeans(3, init=C0, n_init=1).fit(X)
    plain = KMeans(3, init=C0, n_init=1).fit(X.map_blocks(np.asarray))  # another name
    assert fast.inertia_ == pytest.approx(plain.inertia_, rel=1e-6)
    np.testing.assert_array_equal(fast.labels_.compute(), plain.labels_.compute())
    assert fast.n_iter_ == plain.n_iter_
