"""A local array's chunk files read directly: exactly what zarr reads, only where
the layout is plain, a corrupt chunk named."""

from __future__ import annotations

from pathlib import Path

import numcodecs
import numpy as np
import pytest
import zarr

from daskmeans import open_source
from daskmeans.engine.source import ZarrSource

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
    from daskmeans.io.chunkfiles import ChunkFiles, FileRows

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
    src = ZarrSource(a)
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
    from daskmeans.io.chunkfiles import ChunkFiles

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
        src = ZarrSource(a)
        np.testing.assert_array_equal(src.block(0).read(), X[: src.offsets[1]], err_msg=name)
    mem = zarr.create_array(zarr.storage.MemoryStore(), **base)
    assert ChunkFiles.of(mem) is None
    zarr.create_array(tmp_path / "plain.zarr", **base)[...] = X
    assert ChunkFiles.of(zarr.open_array(tmp_path / "plain.zarr", mode="r")) is not None
    assert open_source(f"file://{tmp_path / 'plain.zarr'}").files is None


@pytest.mark.parametrize("codec", ["blosc", "zstd"])
def test_corrupt_chunk_file_is_an_error_naming_it(tmp_path: Path, codec: str) -> None:
    """A chunk that does not decode, or decodes to the wrong size, raises
    ChunkDecodeError (a ValueError) naming the file: never rows of garbage."""
    from daskmeans.io.chunkfiles import ChunkDecodeError, ChunkFiles

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
