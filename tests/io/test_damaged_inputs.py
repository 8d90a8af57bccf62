"""Damaged inputs raise one family of errors (daskmeans.io.errors) naming the file or
store, the array and the chunk: a truncated, a corrupted and a zero-length file of each
kind (a Zarr chunk read every way daskmeans reads one, array metadata, IDX files,
images). Models and checkpoints: tests/cluster/test_damaged_models.py."""

from __future__ import annotations

import gzip
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import zarr

from daskmeans import KMeans, io, open_dataset, open_source
from daskmeans.io.errors import (
    BlockReadError,
    ChunkDecodeError,
    DaskmeansError,
    DataFormatError,
    IDXFormatError,
    ImageFormatError,
    StoreError,
)


def truncated(raw: bytes) -> bytes:
    return raw[: len(raw) // 2]


def corrupted(raw: bytes) -> bytes:
    """The same length, every byte replaced (a block of the disk overwritten)."""
    return (b"\x5a\xa5garbage" * (len(raw) // 9 + 1))[: len(raw)]


def empty(raw: bytes) -> bytes:
    return b""


DAMAGES: dict[str, Callable[[bytes], bytes]] = {
    "truncated": truncated, "corrupted": corrupted, "zero-length": empty}


def damage(path: Path, how: str) -> None:
    path.write_bytes(DAMAGES[how](path.read_bytes()))


def in_family(e: pytest.ExceptionInfo[BaseException]) -> None:
    assert isinstance(e.value, DaskmeansError) and isinstance(e.value, DataFormatError)
    assert isinstance(e.value, ValueError)


@pytest.fixture
def dataset(mnist_dir: Path, tmp_path: Path) -> Path:
    """The shipped MNIST subset in chunks of 500 images."""
    return io.ingest(mnist_dir, tmp_path / "mnist.zarr", chunk_rows=500)


# ---------------------------------------------------------------- Zarr chunks


@pytest.mark.parametrize("how", DAMAGES)
def test_damaged_chunk_through_open_dataset_names_store_array_chunk(dataset: Path,
                                                                    how: str) -> None:
    """Not zarr's bare RuntimeError: ChunkDecodeError naming the store, the array and the
    chunk, from the dask arrays daskmeans builds (scaled or raw), from the source an
    estimator reads, and from a fit."""
    damage(dataset / "test" / "images" / "c" / "1" / "0" / "0", how)
    expected = rf"{dataset}: array 'test/images', chunk c/1/0/0: "
    X, _ = open_dataset(dataset, "test")
    with pytest.raises(ChunkDecodeError, match=expected) as e:
        X.compute()
    in_family(e)
    with pytest.raises(ChunkDecodeError, match=expected):
        open_dataset(dataset, "test", scale=False)[0][600:700].compute()
    assert open_dataset(dataset, "test")[0][:500].compute().shape == (500, 784)  # others read
    with pytest.raises(ChunkDecodeError, match=expected):
        KMeans(3, random_state=0, max_iter=2).fit(open_source(dataset, "test", cache=False))
    with pytest.raises(ChunkDecodeError, match=expected):
        open_source(dataset, "test").to_dask().compute()


@pytest.mark.parametrize("how", ["corrupted", "zero-length"])
def test_damaged_chunk_read_through_zarr_names_store_array_chunk(dataset: Path,
                                                                 how: str) -> None:
    """Where zarr reads the chunks (here a file:// URL: an fsspec store, as in object
    storage), its codec's error becomes ChunkDecodeError naming the chunk too."""
    damage(dataset / "test" / "images" / "c" / "2" / "0" / "0", how)
    url = f"file://{dataset}"
    X, _ = open_dataset(url, "test")
    with pytest.raises(ChunkDecodeError,
                       match=rf"{dataset}: array 'test/images', chunk c/2/0/0: cannot decode"):
        X.compute()
    src = open_source(url, "test", cache=False)
    assert src.files is None  # zarr reads its blocks
    with pytest.raises(ChunkDecodeError, match=r"array 'test/images', chunk c/2/0/0"):
        KMeans(3, random_state=0, max_iter=2).fit(src)


@pytest.mark.parametrize("how", ["truncated", "corrupted"])
def test_a_sharded_arrays_damaged_shard_is_named(tmp_path: Path, how: str) -> None:
    """Sharded arrays are read by zarr: the shard holding the bad chunk is named (zarr
    reads a zero-length shard as one never written: the docs say so)."""
    X = np.random.default_rng(0).random((400, 4)).astype(np.float32)
    a = zarr.create_array(tmp_path / "s.zarr", shape=X.shape, dtype="f4", chunks=(50, 4),
                          shards=(100, 4))
    a[:] = X
    damage(tmp_path / "s.zarr" / "c" / "2" / "0", how)
    with pytest.raises(ChunkDecodeError, match=r"s.zarr: array '/', chunk c/2/0: "):
        KMeans(2, random_state=0, max_iter=2).fit(tmp_path / "s.zarr")


def test_a_chunk_that_fails_once_is_named(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """A codec reading past a truncated buffer may fail on one read and decode garbage
    on the next: a failed read of one chunk names that chunk even when it then reads
    alone; a failed read of several chunks that all read alone is not a damaged chunk."""
    from daskmeans.io.stores import read_checked

    z = zarr.create_array(tmp_path / "a.zarr", shape=(8, 4), chunks=(4, 4), dtype="f4")
    z[...] = 1.0
    calls = {"n": 0}
    read = zarr.Array.__getitem__

    def flaky(self: zarr.Array, key: object) -> object:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("error during blosc decompression: -1")
        return read(self, key)

    monkeypatch.setattr(zarr.Array, "__getitem__", flaky)
    with pytest.raises(ChunkDecodeError, match=r"a.zarr: array '/', chunk c/1/0: "):
        read_checked(z, (slice(4, 8), slice(None)))
    calls["n"] = 0
    with pytest.raises(RuntimeError, match="blosc"):
        read_checked(z, (slice(0, 8), slice(None)))


@pytest.mark.parametrize("how", DAMAGES)
def test_damaged_raster_chunk_and_metadata(tmp_path: Path, how: str) -> None:
    """A raster's damaged chunk names it (reading the raster, and segmenting it); its
    damaged metadata raises StoreError naming the store."""
    from daskmeans.segmentation import segment

    scene = io.synthetic_scene(tmp_path / "scene.zarr", 64, 64, tile=32)
    chunk = scene / "reflectance" / "c" / "0" / "1" / "1"
    raw = chunk.read_bytes()
    damage(chunk, how)
    expected = r"scene.zarr: array 'reflectance', chunk c/0/1/1: "
    with pytest.raises(ChunkDecodeError, match=expected) as e:
        io.open_raster(scene, "band").data.compute()
    in_family(e)
    with pytest.raises(ChunkDecodeError, match=expected):
        segment(scene, 3, tmp_path / "labels.zarr", feature_dim="band", full=True)
    assert not (tmp_path / "labels.zarr").exists()  # nothing half-written left behind
    chunk.write_bytes(raw)
    damage(scene / "reflectance" / "zarr.json", how)
    with pytest.raises(StoreError, match=r"scene.zarr: damaged Zarr metadata") as e:
        io.open_raster(scene, "band")
    in_family(e)


@pytest.mark.parametrize("how", DAMAGES)
def test_damaged_array_or_group_metadata_of_a_dataset(dataset: Path, how: str) -> None:
    damage(dataset / "test" / "images" / "zarr.json", how)
    with pytest.raises(StoreError, match=rf"{dataset}: .*damaged Zarr metadata"):
        open_dataset(dataset, "test")
    damage(dataset / "zarr.json", how)
    with pytest.raises(StoreError, match=rf"{dataset}: not a Zarr"):
        open_source(dataset, "test")


# ---------------------------------------------------------------- IDX files


@pytest.mark.parametrize("how", DAMAGES)
@pytest.mark.parametrize("gz", [True, False], ids=["gz", "raw"])
def test_damaged_idx_file(mnist_dir: Path, tmp_path: Path, how: str, gz: bool) -> None:
    raw = (mnist_dir / "t10k-images-idx3-ubyte.gz").read_bytes()
    name = "t10k-images-idx3-ubyte" + (".gz" if gz else "")
    path = tmp_path / "src" / name
    path.parent.mkdir()
    path.write_bytes(DAMAGES[how](raw if gz else gzip.decompress(raw)))
    (tmp_path / "src" / "t10k-labels-idx1-ubyte.gz").write_bytes(
        (mnist_dir / "t10k-labels-idx1-ubyte.gz").read_bytes())
    with pytest.raises(IDXFormatError, match=rf"{path}: ") as e:
        io.read_idx(path)
    in_family(e)
    with pytest.raises(IDXFormatError, match=rf"{path}: "):
        io.ingest(tmp_path / "src", tmp_path / "out.zarr")
    assert not (tmp_path / "out.zarr").exists()


# ---------------------------------------------------------------- images


@pytest.mark.parametrize("how", DAMAGES)
def test_damaged_image_file(tmp_path: Path, how: str) -> None:
    from PIL import Image

    from daskmeans import quantize

    path = tmp_path / "photo.png"
    rgb = (np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8)
    Image.fromarray(rgb).save(path)
    damage(path, how)
    with pytest.raises(ImageFormatError, match=rf"{path}: ") as e:
        io.load_rgb(path)
    in_family(e)
    with pytest.raises(ImageFormatError, match=rf"{path}: "):
        quantize(path, 4, random_state=0)
    with pytest.raises(ImageFormatError, match=rf"{path}: "):
        io.image_to_zarr(path, tmp_path / "photo.zarr")
    assert not (tmp_path / "photo.zarr").exists()


def test_the_family_is_exported() -> None:
    import daskmeans
    from daskmeans.io import errors

    for name in errors.__all__:
        if name[0].isupper():
            assert getattr(daskmeans, name) is getattr(errors, name) is getattr(io, name)
            assert issubclass(getattr(errors, name), DaskmeansError)
    assert issubclass(errors.StoreConnectionError, ConnectionError)
    assert issubclass(errors.OutputExistsError, FileExistsError)
    assert issubclass(errors.CheckpointFormatError, errors.ModelFormatError)


@pytest.mark.parametrize("how", ["corrupted", "zero-length"])
@pytest.mark.parametrize("built", ["from_array", "from_zarr"])
def test_a_users_dask_array_over_a_damaged_store_names_the_block(dataset: Path, how: str,
                                                                 built: str) -> None:
    """A dask array the user built over the store (``da.from_array`` over a Zarr array,
    ``da.from_zarr``, xarray's ``open_zarr``) reads its chunks in its own graph's tasks:
    a fit over it raises BlockReadError naming the array, the row block and its rows,
    with the codec's error, instead of the bare RuntimeError; arrays that compute are
    left alone."""
    import dask
    import dask.array as da

    if built == "from_zarr" and dask.config.get("array.query-planning", None):
        pytest.skip("dask's array query planning does not implement da.from_zarr")
    rows = zarr.open_array(dataset / "test" / "images", mode="r")[:].reshape(-1, 784)
    path = dataset.parent / "rows.zarr"  # a 2-D array of the images, in 4 chunks
    zarr.create_array(path, shape=rows.shape, chunks=(500, 784), dtype=rows.dtype,
                      compressors=io.default_compressor(rows.dtype))[...] = rows
    damage(path / "c" / "1" / "0", how)
    X = (da.from_zarr(str(path)) if built == "from_zarr"
         else da.from_array(zarr.open_array(path, mode="r"), chunks=(500, 784)))
    with pytest.raises(Exception) as bare:  # what the user's graph raises by itself
        X.compute()
    assert not isinstance(bare.value, DaskmeansError)
    with pytest.raises(BlockReadError, match=rf"dask array '{X.name}': row block 1 of 4 "
                                             r"\(rows 500\.\.999\) cannot be read: ") as e:
        KMeans(3, random_state=0, max_iter=2).fit(X)
    in_family(e)
    assert str(bare.value) in str(e.value)
    KMeans(3, random_state=0, max_iter=2).fit(X[:500])  # the undamaged rows fit
