"""Block offsets: where each block of a source starts and ends, for uneven chunks."""

from __future__ import annotations

from pathlib import Path

import dask.array as da
import numpy as np
import pytest
import zarr

from daskmeans.engine.source import (
    ArraySource,
    DaskSource,
    ZarrSource,
    block_offsets,
    even_offsets,
)


def test_offset_helpers() -> None:
    assert block_offsets([10, 33, 7, 53]) == (0, 10, 43, 50, 103)
    assert block_offsets([]) == (0,)
    assert even_offsets(103, 40) == (0, 40, 80, 103)
    assert even_offsets(80, 40) == (0, 40, 80)
    assert even_offsets(0, 40) == (0, 0)  # one empty block


def test_dask_source_offsets_are_its_chunks() -> None:
    X = np.arange(103 * 3, dtype=np.float64).reshape(103, 3)
    src = DaskSource(da.from_array(X, chunks=((10, 33, 7, 53), (2, 1))))
    assert src.offsets == (0, 10, 43, 50, 103) and src.n_blocks == 4
    assert [src.block_rows(i) for i in range(4)] == [10, 33, 7, 53]
    assert [src.offset(i) for i in range(4)] == [0, 10, 43, 50]
    np.testing.assert_array_equal(src.to_dask().compute(), X)  # columns in one chunk


def test_array_source_offsets_and_blocks() -> None:
    X = np.arange(103 * 2, dtype=np.float32).reshape(103, 2)
    src = ArraySource(X, block_rows=40)
    assert src.offsets == (0, 40, 80, 103)
    for i in range(src.n_blocks):
        np.testing.assert_array_equal(src.block(i), X[src.offset(i):src.offset(i + 1)])
    assert src.to_dask().chunks[0] == (40, 40, 23)
    xsq = (X.astype(np.float64) ** 2).sum(axis=1)
    src.xsq = xsq
    np.testing.assert_array_equal(src.block_xsq(2), xsq[80:])


def test_zarr_source_offsets_are_whole_chunks(tmp_path: Path) -> None:
    X = np.arange(103 * 4, dtype=np.float64).reshape(103, 4)
    arr = zarr.create_array(tmp_path / "x.zarr", shape=X.shape, chunks=(25, 4), dtype=X.dtype)
    arr[:] = X
    src = ZarrSource(zarr.open_array(tmp_path / "x.zarr", mode="r"), threads=2)
    assert src.offsets[-1] == 103 and all(o % 25 == 0 for o in src.offsets[:-1])
    assert src.n_blocks >= 2  # at least one task per thread where the chunks allow it
    one = src.regroup(1)
    assert one.offsets == (0, 25, 50, 75, 100, 103)
    for i in range(one.n_blocks):
        np.testing.assert_array_equal(one.block(i).read(),
                                      X[one.offset(i):one.offset(i + 1)])
    held = one.with_held([X[:50], X[50:]], None, offsets=(0, 50, 103))
    assert held.offsets == (0, 50, 103) and held.block(1) is not None
    with pytest.raises(ValueError, match="do not cover 103 rows"):
        one.with_held([X[:50], X[50:]], None, offsets=(0, 50, 100))
