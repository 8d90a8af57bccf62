"""Storage: IDX parsing, ingest to Zarr, open as dask arrays, images, synthetic blobs."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import dask.array as da
import numcodecs
import numpy as np
import pytest
import zarr

from daskmeans import io
from tests.conftest import MNIST_MD5, MNIST_ROWS


def write_idx(path: Path, arr: np.ndarray, *, gz: bool = True, code: int = 0x08) -> Path:
    header = bytes([0, 0, code, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    data = header + arr.astype(arr.dtype.newbyteorder(">")).tobytes()
    (gzip.open if gz else open)(path, "wb").write(data)  # type: ignore[operator]
    return path


@pytest.fixture
def small_dir(tmp_path: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, size=(25, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=25, dtype=np.uint8)
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", imgs)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", labels)
    return tmp_path, imgs, labels


# ---------------------------------------------------------------- IDX reading


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


# ---------------------------------------------------------------- ingest / open


def test_ingest_and_open_dataset(small_dir, tmp_path: Path) -> None:
    d, imgs, labels = small_dir
    store = io.ingest(d, tmp_path / "s.zarr", chunk_rows=10)
    g = zarr.open_group(store, mode="r")
    assert g["test/images"].chunks == (10, 28, 28)
    assert g["test/images"].compressors  # compressed on disk
    X, y = io.open_dataset(store, "test")
    assert isinstance(X, da.Array) and X.dtype == np.float32 and X.shape == (25, 784)
    assert X.chunks[0] == (10, 10, 5)
    da.utils.assert_eq(X, imgs.reshape(25, -1).astype(np.float32) / np.float32(255))
    np.testing.assert_array_equal(y.compute(), labels)
    assert y.dtype == np.int64
    assert io.open_array(store).shape == (25, 784)  # no train split: falls back to test


def test_open_dataset_is_lazy_and_scaled_per_chunk(small_dir, tmp_path: Path) -> None:
    from .conftest import no_compute

    d, _, _ = small_dir
    store = io.ingest(d, tmp_path / "s.zarr", chunk_rows=10)
    with no_compute():
        X, _ = io.open_dataset(store, "test")
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
        io.ingest(bad, dest)
    np.testing.assert_array_equal(io.open_dataset(dest, "test")[1].compute(), labels)


def test_ingest_no_split(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no complete split"):
        io.ingest(tmp_path, tmp_path / "x.zarr")


def test_open_dataset_errors(small_dir, tmp_path: Path) -> None:
    d, _, _ = small_dir
    store = io.ingest(d, tmp_path / "s.zarr")
    with pytest.raises(io.StoreError, match="split 'train' is not in this store"):
        io.open_dataset(store, "train")
    with pytest.raises(ValueError, match="split must be one of"):
        io.open_dataset(store, "validation")
    with pytest.raises(FileNotFoundError, match="no such Zarr store"):
        io.open_dataset(tmp_path / "missing.zarr", "test")
    g = zarr.open_group(store, mode="a")
    del g["test/labels"]
    with pytest.raises(io.StoreError, match="no array 'test/labels'"):
        io.open_dataset(store, "test")


# ---------------------------------------------------------------- images


def test_image_roundtrip_tiles(tmp_path: Path) -> None:
    from sklearn.datasets import load_sample_image

    china = load_sample_image("china.jpg")
    store = io.image_to_zarr(china, tmp_path / "c.zarr", tile=128)
    img = io.open_image(store)
    assert img.shape == (427, 640, 3) and img.dtype == np.uint8
    assert img.chunks[0][0] == 128 and img.chunks[1][0] == 128
    np.testing.assert_array_equal(img.compute(), china)
    px = io.image_pixels(store)
    assert px.shape == (427 * 640, 3) and px.dtype == np.float32
    assert max(px.chunks[0]) == 128 * 128  # one tile per task
    # tile-major order: the first chunk is the top-left tile, row-major
    np.testing.assert_allclose(
        px[: 128 * 128].compute(), china[:128, :128].reshape(-1, 3) / 255.0, rtol=1e-6
    )
    np.testing.assert_allclose(
        np.sort(px.compute(), axis=0), np.sort(china.reshape(-1, 3) / 255.0, axis=0), rtol=1e-6
    )


def test_image_from_file_and_conversion(tmp_path: Path) -> None:
    from PIL import Image

    grey = np.arange(40 * 30, dtype=np.uint8).reshape(40, 30)
    Image.fromarray(grey).save(tmp_path / "g.png")
    store = io.image_to_zarr(tmp_path / "g.png", tmp_path / "g.zarr", tile=16)
    out = io.open_image(store).compute()
    assert out.shape == (40, 30, 3)
    np.testing.assert_array_equal(out[..., 1], grey)


def test_image_errors(tmp_path: Path) -> None:
    (tmp_path / "x.jpg").write_bytes(b"not an image")
    with pytest.raises(io.ImageFormatError, match="x.jpg"):
        io.image_to_zarr(tmp_path / "x.jpg", tmp_path / "x.zarr")
    with pytest.raises(FileNotFoundError):
        io.image_to_zarr(tmp_path / "none.png", tmp_path / "x.zarr")
    with pytest.raises(io.ImageFormatError, match=r"\(H, W, 3\)"):
        io.image_to_zarr(np.zeros((4, 4), np.uint8), tmp_path / "x.zarr")
    assert not (tmp_path / "x.zarr").exists()


# ---------------------------------------------------------------- synthetic


def test_make_blobs_zarr_reproducible(tmp_path: Path) -> None:
    a = io.make_blobs_zarr(tmp_path / "a.zarr", 1050, 5, centers=3, chunk_rows=100,
                           random_state=7)
    b = io.make_blobs_zarr(tmp_path / "b.zarr", 1050, 5, centers=3, chunk_rows=100,
                           random_state=7)
    Xa, Xb = io.open_array(a), io.open_array(b)
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
    assert not np.array_equal(io.open_array(c).compute(), Xa.compute())


# ---------------------------------------------------------------- row sources


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
    src = io.open_source(store, "test")
    assert src.scale == io.PIXEL_SCALE and src.shape == (25, 20)
    assert all(b % 7 == 0 for b in src.bounds[:-1]) and src.bounds[-1] == 25
    assert not (Path(store) / "test" / "images" / "c" / "1").exists()  # the empty chunk
    X, _ = io.open_dataset(store, "test")
    for i in range(src.n_blocks):
        raw = src.block(i).read()
        a, b = src.bounds[i], src.bounds[i + 1]
        np.testing.assert_array_equal(raw, imgs[a:b].reshape(-1, 20))
        np.testing.assert_array_equal(src.rows_float(raw), X[a:b].compute())
    np.testing.assert_array_equal(src.to_dask().compute(), X.compute())



_DIRECT_LAYOUTS = {  # zarr.create_array keywords of layouts whose chunk files we read
    "v3 blosc uint8 images": dict(shape=(25, 4, 5), chunks=(7, 4, 5), dtype="u1",
                                  fill_value=3),
    "v3 zstd float32": dict(shape=(25, 6), chunks=(7, 6), dtype="f4", fill_value=-1.5,
                            compressors=zarr.codecs.ZstdCodec()),
    "v3 uncompressed int16": dict(shape=(25, 6), chunks=(6, 6), dtype="i2", fill_value=7,
                                  compressors=None),
    "v3 dot-separated keys": dict(shape=(25, 6), chunks=(7, 6), dtype="f8", fill_value=0,
                                  chunk_key_encoding={"name": "default", "separator": "."}),
    "v2 blosc float32": dict(shape=(25, 6), chunks=(7, 6), dtype="<f4", fill_value=2,
                             zarr_format=2),
    "v2 zstd nested keys": dict(shape=(25, 2, 3), chunks=(4, 2, 3), dtype="u1", zarr_format=2,
                                compressors=numcodecs.Zstd(),
                                chunk_key_encoding={"name": "v2", "separator": "/"}),
    "v2 no fill value int32": dict(shape=(25, 3), chunks=(6, 3), dtype="<i4", zarr_format=2,
                                   fill_value=None),
    "v3 F-order in memory": dict(shape=(25, 4), chunks=(7, 4), dtype="f4", fill_value=1,
                                 config={"order": "F"}),
    "v3 big-endian bytes of uint8": dict(shape=(25, 4), chunks=(7, 4), dtype="u1",
                                         serializer=zarr.codecs.BytesCodec(endian="big")),
}


def _partly_written(path: Path, kw: dict) -> tuple[zarr.Array, np.ndarray]:
    a = zarr.create_array(path, **kw)
    data = (np.arange(np.prod(kw["shape"])) % 251).reshape(kw["shape"]).astype(kw["dtype"])
    rows = kw["chunks"][0]
    a[: 2 * rows] = data[: 2 * rows]  # chunk 2 is never written: it reads as the fill value
    a[3 * rows:] = data[3 * rows:]  # the last chunk is partial (25 rows)
    return zarr.open_array(path, mode="r"), data


@pytest.mark.parametrize("layout", list(_DIRECT_LAYOUTS))
def test_chunk_files_read_exactly_what_zarr_reads(tmp_path: Path, layout: str) -> None:
    """Local unsharded arrays are read from their chunk files: any row range equals
    zarr's read of it (whole chunks, chunk edges, the partial last chunk, an unwritten
    chunk's fill value), for v2 and v3, Blosc, Zstd and raw chunks."""
    from daskmeans._chunkfiles import ChunkFiles, FileRows

    a, data = _partly_written(tmp_path / "a.zarr", _DIRECT_LAYOUTS[layout])
    files = ChunkFiles.of(a)
    assert files is not None
    rows = a.chunks[0]
    expected = np.asarray(a[:])
    fill = 0 if a.fill_value is None else a.fill_value  # v2 without one: zeros
    assert (expected[2 * rows:3 * rows] == fill).all()  # the unwritten chunk
    np.testing.assert_array_equal(np.delete(expected, np.s_[2 * rows:3 * rows], 0),
                                  np.delete(data, np.s_[2 * rows:3 * rows], 0))
    cuts = sorted({0, 1, rows - 1, rows, rows + 1, 2 * rows, 3 * rows - 1, 3 * rows, 24, 25})
    for start in cuts:
        for stop in cuts:
            if stop >= start:
                got = files.read(start, stop)
                assert got.dtype == expected.dtype and got.shape == expected[start:stop].shape
                np.testing.assert_array_equal(got, expected[start:stop], err_msg=f"{start}:{stop}")
    src = io.ZarrSource(a)
    assert src.files is not None
    np.testing.assert_array_equal(np.concatenate([src.block(i).read()
                                                  for i in range(src.n_blocks)]),
                                  expected.reshape(25, -1))
    # lazy graphs (predict, evaluation) read the same files through da.from_array
    np.testing.assert_array_equal(src.raw_dask().compute(), expected.reshape(25, -1))
    rows = FileRows(files)
    for key in [np.s_[3:17], np.s_[20:], np.s_[5:2], np.s_[2:9, 1:], 4, -1, np.s_[::3],
                np.s_[1:20:4, 0], np.s_[::-2], [0, 24, 7]]:
        np.testing.assert_array_equal(rows[key], expected[key], err_msg=str(key))
    for start, stop in [(-1, 3), (5, 4), (0, 26)]:
        with pytest.raises(ValueError, match=rf"rows \[{start}, {stop}\) are not within"):
            files.read(start, stop)
    lazy = src.to_dask()  # float rows as declared, whatever the stored integer type
    assert lazy.dtype == src.dtype and lazy.compute().dtype == src.dtype


def test_chunk_files_only_where_the_layout_is_plain(tmp_path: Path) -> None:
    """Anything else is read by zarr: sharding, filters, chunks across the columns,
    byte-swapped or column-major data, other codecs, in-memory and fsspec stores."""
    from daskmeans._chunkfiles import ChunkFiles

    base = dict(shape=(20, 6), chunks=(5, 6), dtype="f4")
    others = {
        "sharded": dict(base, shards=(10, 6)),
        "filters": dict(base, filters=[zarr.codecs.TransposeCodec(order=(1, 0))]),
        "chunked columns": dict(base, chunks=(5, 3)),
        "big-endian v2": dict(base, dtype=">f4", zarr_format=2),
        "big-endian v3": dict(base, serializer=zarr.codecs.BytesCodec(endian="big")),
        "column-major v2": dict(base, order="F", zarr_format=2),
        "gzip": dict(base, compressors=zarr.codecs.GzipCodec()),
    }
    X = np.arange(120, dtype=np.float32).reshape(20, 6)
    for name, kw in others.items():
        a = zarr.create_array(tmp_path / f"{name}.zarr", **kw)
        a[...] = X
        a = zarr.open_array(tmp_path / f"{name}.zarr", mode="r")
        assert ChunkFiles.of(a) is None, name
        src = io.ZarrSource(a)
        np.testing.assert_array_equal(src.block(0).read(), X[: src.bounds[1]], err_msg=name)
    mem = zarr.create_array(zarr.storage.MemoryStore(), **base)
    assert ChunkFiles.of(mem) is None
    zarr.create_array(tmp_path / "plain.zarr", **base)[...] = X
    assert ChunkFiles.of(zarr.open_array(tmp_path / "plain.zarr", mode="r")) is not None
    assert io.open_source(f"file://{tmp_path / 'plain.zarr'}").files is None


@pytest.mark.parametrize("codec", ["blosc", "zstd"])
def test_corrupt_chunk_file_is_an_error_naming_it(tmp_path: Path, codec: str) -> None:
    """A chunk that does not decode, or decodes to the wrong size, raises
    ChunkDecodeError (a ValueError) naming the file: never rows of garbage."""
    from daskmeans._chunkfiles import ChunkDecodeError, ChunkFiles

    zcodec, ncodec = {"blosc": (zarr.codecs.BloscCodec(), numcodecs.Blosc()),
                      "zstd": (zarr.codecs.ZstdCodec(), numcodecs.Zstd())}[codec]
    a = zarr.create_array(tmp_path / "a.zarr", shape=(20, 6), chunks=(5, 6), dtype="f4",
                          compressors=zcodec)
    a[...] = np.ones((20, 6), np.float32)
    files = ChunkFiles.of(zarr.open_array(tmp_path / "a.zarr", mode="r"))
    assert files is not None
    chunk = tmp_path / "a.zarr" / "c" / "1" / "0"
    chunk.write_bytes(b"garbage" * 20)
    with pytest.raises(ChunkDecodeError, match=r"c/1/0: (cannot decode|chunk decodes to)"):
        files.read(0, 20)
    chunk.write_bytes(ncodec.encode(np.ones(29, np.float32)))  # 4 bytes short
    with pytest.raises(ChunkDecodeError, match=r"c/1/0: chunk decodes to 116 bytes, expected 120"):
        files.read(5, 10)
    assert issubclass(ChunkDecodeError, ValueError)


def test_sources_of_every_input(small_dir, tmp_path: Path) -> None:
    """as_source: numpy in memory, dask arrays as given, stores and Zarr arrays streamed;
    a store URL goes through zarr (fsspec)."""
    d, _, _ = small_dir
    store = io.ingest(d, tmp_path / "s.zarr")
    assert isinstance(io.as_source(np.zeros((4, 3))), io.ArraySource)
    assert isinstance(io.as_source(da.zeros((4, 3), chunks=2)), io.DaskSource)
    assert isinstance(io.as_source(store), io.ZarrSource)
    assert isinstance(io.as_source(zarr.open_group(store, mode="r")["test/images"]),
                      io.ZarrSource)
    url = io.open_source(f"file://{store}", "test")
    assert url.shape == io.open_source(store, "test").shape
    with pytest.raises(io.StoreError, match="split 'train' is not in this store"):
        io.open_source(store, "train")
    blobs = io.make_blobs_zarr(tmp_path / "b.zarr", 50, 3, centers=2, chunk_rows=20,
                               random_state=0)
    B = io.open_source(blobs)
    assert B.scale is None and B.dtype == np.float32
    np.testing.assert_array_equal(B.to_dask().compute(), io.open_array(blobs).compute())
