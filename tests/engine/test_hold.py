"""hold, tested on its own: rows kept as stored with their squared norms, a pass over
held rows, too few blocks cut into one per thread, and what is left as it is (dask arrays
held: tests/engine/test_hold_dask.py)."""

from __future__ import annotations

import functools
from pathlib import Path

import dask
import dask.array as da
import numpy as np
import pytest
import zarr

from daskmeans.engine import reductions
from daskmeans.engine.hold import hold
from daskmeans.engine.source import ArraySource, DaskSource, ZarrSource
from tests.engine.test_reductions import D, N, data, place, zarr_source


def pixel_source(tmp_path: Path, chunk: int, cache: bool | None = True) -> tuple[ZarrSource,
                                                                                   np.ndarray]:
    U = np.random.default_rng(1).integers(0, 256, size=(N, 12), dtype=np.uint8)
    arr = zarr.create_array(tmp_path / f"u{chunk}.zarr", shape=U.shape, chunks=(chunk, 12),
                            dtype=np.uint8, overwrite=True,
                            attributes={"scale_factor": 1 / 255})  # pixels
    arr[:] = U
    return ZarrSource(zarr.open_array(tmp_path / f"u{chunk}.zarr", mode="r"), threads=2,
                      cache=cache), U


def test_hold_keeps_rows_as_stored_and_their_squared_norms(tmp_path: Path) -> None:
    src, U = pixel_source(tmp_path, 10)
    with dask.config.set(scheduler="threads"):
        held = hold(src)
    assert isinstance(held, ZarrSource) and held.held is not None and src.held is None
    np.testing.assert_array_equal(np.concatenate(held.held), U)  # uint8, as stored
    assert all(b.dtype == np.uint8 for b in held.held)
    scaled = (U.astype(np.float32) * np.float32(src.scale)).astype(np.float64)
    assert isinstance(held.xsq, np.ndarray) and held.xsq.dtype == np.float64
    np.testing.assert_allclose(held.xsq, (scaled ** 2).sum(axis=1), rtol=1e-12)
    for i in range(held.n_blocks):  # each block's norms are its own rows'
        a, b = held.offsets[i], held.offsets[i + 1]
        np.testing.assert_allclose(held.block_xsq(i), (scaled[a:b] ** 2).sum(axis=1),
                                   rtol=1e-12)


def test_hold_float_rows_norms_and_a_pass_over_them(tmp_path: Path) -> None:
    X, v = data()
    src = ZarrSource(zarr_source(tmp_path, X, 25).array, threads=2, cache=True)
    with dask.config.set(scheduler="threads"):
        held = hold(src)
        got = reductions.map_reduce(held, functools.partial(place, n=N), v)
    np.testing.assert_array_equal(held.xsq, (X ** 2).sum(axis=1))  # integers: exact
    np.testing.assert_array_equal(got.values, X @ v)


def test_hold_cuts_too_few_blocks_into_one_per_thread(tmp_path: Path) -> None:
    """A store of one chunk held under 4 threads: four row ranges whose offsets cover
    every row once, the rows and norms unchanged."""
    src, U = pixel_source(tmp_path, N)
    assert src.n_blocks == 1
    with dask.config.set(scheduler="threads", num_workers=4):
        held = hold(src)
    assert held.n_blocks == 4 and held.offsets[0] == 0 and held.offsets[-1] == N
    assert list(np.diff(held.offsets)) == [len(b) for b in held.held]
    np.testing.assert_array_equal(np.concatenate(held.held), U)


def test_hold_leaves_what_it_should_not_hold(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    X, _ = data()
    mem = ArraySource(X)
    lazy = DaskSource(da.from_array(X, chunks=(10, D)))
    streamed, _ = pixel_source(tmp_path, 10, cache=False)
    with dask.config.set(scheduler="threads"):
        assert hold(mem) is mem
        assert hold(streamed) is streamed  # cache=False: every pass reads
        by_budget, _ = pixel_source(tmp_path, 10, cache=None)
        from daskmeans.engine import schedule

        monkeypatch.setattr(schedule, "CACHE_FRACTION", 0.0)  # over the budget: streamed
        assert hold(by_budget) is by_budget
        assert hold(lazy) is lazy  # a dask array over the budget streams too
        monkeypatch.setattr(schedule, "CACHE_FRACTION", 0.25)
        assert hold(by_budget).held is not None
        held_lazy = hold(lazy)  # within the budget: computed once and held
        assert lazy.held is None and held_lazy.held is not None and not held_lazy.dask_route
        no_xsq = hold(pixel_source(tmp_path, 10)[0], with_xsq=False)
    assert no_xsq.held is not None and no_xsq.xsq is None
