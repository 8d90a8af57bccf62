"""map_reduce (with and without per-block state) and hold, tested on their own with
trivial kernels against brute-force numpy results: every source kind, several
chunkings, threads and LocalCluster runs that prove where their tasks ran and where
the kept states stay."""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Any

import dask
import dask.array as da
import numpy as np
import pytest
import zarr

from daskmeans.engine import mapreduce
from daskmeans.engine.source import ArraySource, DaskSource, Source, ZarrSource

N, D = 103, 5
#: uneven row chunkings (the last chunk shorter, single rows, one block)
CHUNKINGS = {"uneven": (10, 33, 7, 53), "ones-and-rest": (1, 1, 101), "one-block": (N,),
             "even-17": (17,) * 6 + (1,)}


class Placed:
    """Per-row values at their global rows, the blocks' first rows and the workers
    that computed them: a partial result that adds as map_reduce needs."""

    def __init__(self, values: np.ndarray, starts: frozenset[int], where: frozenset[str]):
        self.values, self.starts, self.where = values, starts, where

    def __add__(self, other: Placed) -> Placed:
        return Placed(self.values + other.values, self.starts | other.starts,
                      self.where | other.where)


def worker_address() -> str:
    """The address of the worker running this, or ``local`` outside a cluster."""
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except (ImportError, ValueError):
        return "local"


def place(x: np.ndarray, w: np.ndarray | None, xsq: np.ndarray | None, v: np.ndarray, *,
          offset: int, n: int, extra: np.ndarray | None = None) -> Placed:
    """Each row's ``x @ v`` (times its weight, plus ``extra``) at its global row."""
    out = np.zeros(n)
    y = x @ v
    if w is not None:
        y = y * w
    if extra is not None:
        y = y + extra
    out[offset:offset + len(x)] = y
    return Placed(out, frozenset({offset}), frozenset({worker_address()}))


def _data() -> tuple[np.ndarray, np.ndarray]:
    """Integer-valued float64 rows and vector: every sum is exact, so the result must
    equal numpy's bit for bit."""
    rng = np.random.default_rng(0)
    X = rng.integers(-50, 50, size=(N, D)).astype(np.float64)
    v = rng.integers(-5, 5, size=D).astype(np.float64)
    return X, v


def _zarr_source(tmp_path: Path, X: np.ndarray, chunk: int) -> ZarrSource:
    arr = zarr.create_array(tmp_path / f"x{chunk}.zarr", shape=X.shape, chunks=(chunk, D),
                            dtype=X.dtype, overwrite=True)
    arr[:] = X
    return ZarrSource(zarr.open_array(tmp_path / f"x{chunk}.zarr", mode="r"), threads=2)


def _source(kind: str, X: np.ndarray, chunking: tuple[int, ...], tmp_path: Path) -> Source:
    if kind == "array":
        return ArraySource(X, block_rows=chunking[0])
    if kind == "zarr":
        return _zarr_source(tmp_path, X, chunking[0])
    return DaskSource(da.from_array(X, chunks=(chunking, D)))


@pytest.mark.parametrize("chunking", list(CHUNKINGS.values()), ids=list(CHUNKINGS))
@pytest.mark.parametrize("kind", ["array", "zarr", "dask"])
def test_map_reduce_is_the_brute_force_result(kind: str, chunking: tuple[int, ...],
                                              tmp_path: Path) -> None:
    X, v = _data()
    src = _source(kind, X, chunking, tmp_path)
    with dask.config.set(scheduler="threads"):
        got = mapreduce.map_reduce(src, functools.partial(place, n=N), v)
    np.testing.assert_array_equal(got.values, X @ v)
    assert got.starts == set(src.offsets[:-1])  # every block once, at its own offset
    assert got.where == {"local"}


@pytest.mark.parametrize("kind", ["array", "zarr", "dask"])
def test_map_reduce_weights_and_aligned_rows_follow_their_blocks(kind: str,
                                                                 tmp_path: Path) -> None:
    X, v = _data()
    w = np.arange(N, dtype=np.float64) % 7
    extra = np.arange(N, dtype=np.float64) * 1000
    src = _source(kind, X, CHUNKINGS["uneven"], tmp_path).with_options(weights=w)
    with dask.config.set(scheduler="threads"):
        got = mapreduce.map_reduce(src, functools.partial(place, n=N), v,
                                   aligned={"extra": extra})
    np.testing.assert_array_equal(got.values, (X @ v) * w + extra)


@pytest.mark.parametrize("kind", ["array", "zarr", "dask"])
def test_map_reduce_per_block_constants_and_skipped_blocks(kind: str, tmp_path: Path) -> None:
    """per_block(i) -> None skips block i; its constants reach the kernel."""
    X, v = _data()
    src = _source(kind, X, (17,) * 6 + (1,), tmp_path)
    assert src.n_blocks > 2
    keep = {0, 2} | {src.n_blocks - 1}

    def per_block(i: int) -> dict[str, Any] | None:
        if i not in keep:
            return None
        return {"extra": np.full(src.block_rows(i), float(i))}

    with dask.config.set(scheduler="threads"):
        got = mapreduce.map_reduce(src, functools.partial(place, n=N), v,
                                   per_block=per_block)
    want = np.zeros(N)
    for i in keep:
        a, b = src.offsets[i], src.offsets[i + 1]
        want[a:b] = X[a:b] @ v + i
    np.testing.assert_array_equal(got.values, want)
    assert got.starts == {src.offsets[i] for i in keep}
    with pytest.raises(ValueError, match="at least one block"):
        mapreduce.map_reduce(src, functools.partial(place, n=N), v, per_block=lambda i: None)


@pytest.mark.parametrize("split_every", [2, 3, 8])
def test_the_reduction_tree_adds_every_partial_once(split_every: int) -> None:
    X, v = _data()
    src = ArraySource(X, block_rows=4)  # 26 blocks: a tree of several levels
    with dask.config.set(scheduler="threads"):
        got = mapreduce.map_reduce(src, functools.partial(place, n=N), v,
                                   split_every=split_every)
        dask_got = mapreduce.map_reduce(DaskSource(da.from_array(X, chunks=(4, D))),
                                        functools.partial(place, n=N), v,
                                        split_every=split_every)
    np.testing.assert_array_equal(got.values, X @ v)
    np.testing.assert_array_equal(dask_got.values, X @ v)
    assert len(got.starts) == len(dask_got.starts) == src.n_blocks == 26


def keep_labels(x: np.ndarray, w: np.ndarray | None, xsq: np.ndarray | None, v: np.ndarray, *,
                offset: int, n: int, state: Any = None) -> tuple[Placed, np.ndarray]:
    """A partial, and a per-block state (the rows' ``x @ v``) kept for the next pass;
    a kept state is added to the partial."""
    part = place(x, w, xsq, v, offset=offset, n=n)
    if state is not None:
        part.values[offset:offset + len(x)] += state
    return part, x @ v


@pytest.mark.parametrize("kind", ["array", "zarr"])
def test_map_reduce_kept_hands_each_block_its_own_state(kind: str, tmp_path: Path) -> None:
    X, v = _data()
    src = _source(kind, X, CHUNKINGS["uneven"], tmp_path)
    kernel = functools.partial(keep_labels, n=N)
    with dask.config.set(scheduler="threads"):
        out = mapreduce.map_reduce(src, kernel, v, keep=True)
        first, states = out.total, out.state_list()
        assert states is not None and len(states) == src.n_blocks
        second = mapreduce.map_reduce(
            src, lambda *a, **k: kernel(*a, **k)[0], v, states=states)
    np.testing.assert_array_equal(first.values, X @ v)
    np.testing.assert_array_equal(second.values, 2 * (X @ v))  # the state of its own block
    assert not isinstance(second, mapreduce.Reduced)  # nothing kept: the partial alone
    for i, st in enumerate(states):
        np.testing.assert_array_equal(st, X[src.offsets[i]:src.offsets[i + 1]] @ v)
    with pytest.raises(TypeError, match="per-block state"):
        mapreduce.map_reduce(DaskSource(da.from_array(X, chunks=(10, D))), kernel, v,
                             states=states)


def test_map_reduce_runs_on_the_cluster(local_cluster, tmp_path: Path) -> None:
    """Under a distributed client every block's task runs in one of its workers (the
    partials name the worker that computed them), with the brute-force result."""
    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers lack tests/
    try:
        X, v = _data()
        workers = set(local_cluster.scheduler_info()["workers"])
        scattered = ArraySource(X)
        with local_cluster.as_current():
            assert mapreduce.hold(scattered) is scattered  # its blocks in the workers
            for src in (scattered, _zarr_source(tmp_path, X, 10),
                        DaskSource(da.from_array(X, chunks=(CHUNKINGS["uneven"], D)))):
                got = mapreduce.map_reduce(src, functools.partial(place, n=N), v)
                np.testing.assert_array_equal(got.values, X @ v)
                assert got.where and got.where <= workers, (type(src).__name__, got.where)
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


# --------------------------------------------------------------------------- hold


def _pixel_source(tmp_path: Path, chunk: int, cache: bool | None = True) -> tuple[ZarrSource,
                                                                                   np.ndarray]:
    U = np.random.default_rng(1).integers(0, 256, size=(N, 12), dtype=np.uint8)
    arr = zarr.create_array(tmp_path / f"u{chunk}.zarr", shape=U.shape, chunks=(chunk, 12),
                            dtype=np.uint8, overwrite=True)
    arr[:] = U
    return ZarrSource(zarr.open_array(tmp_path / f"u{chunk}.zarr", mode="r"), threads=2,
                      cache=cache), U


def test_hold_keeps_rows_as_stored_and_their_squared_norms(tmp_path: Path) -> None:
    src, U = _pixel_source(tmp_path, 10)
    with dask.config.set(scheduler="threads"):
        held = mapreduce.hold(src)
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
    X, v = _data()
    src = ZarrSource(_zarr_source(tmp_path, X, 25).array, threads=2, cache=True)
    with dask.config.set(scheduler="threads"):
        held = mapreduce.hold(src)
        got = mapreduce.map_reduce(held, functools.partial(place, n=N), v)
    np.testing.assert_array_equal(held.xsq, (X ** 2).sum(axis=1))  # integers: exact
    np.testing.assert_array_equal(got.values, X @ v)


def test_hold_cuts_too_few_blocks_into_one_per_thread(tmp_path: Path) -> None:
    """A store of one chunk held under 4 threads: four row ranges whose offsets cover
    every row once, the rows and norms unchanged."""
    src, U = _pixel_source(tmp_path, N)
    assert src.n_blocks == 1
    with dask.config.set(scheduler="threads", num_workers=4):
        held = mapreduce.hold(src)
    assert held.n_blocks == 4 and held.offsets[0] == 0 and held.offsets[-1] == N
    assert list(np.diff(held.offsets)) == [len(b) for b in held.held]
    np.testing.assert_array_equal(np.concatenate(held.held), U)


def test_hold_leaves_what_it_should_not_hold(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    X, _ = _data()
    mem = ArraySource(X)
    lazy = DaskSource(da.from_array(X, chunks=(10, D)))
    streamed, _ = _pixel_source(tmp_path, 10, cache=False)
    with dask.config.set(scheduler="threads"):
        assert mapreduce.hold(mem) is mem and mapreduce.hold(lazy) is lazy
        assert mapreduce.hold(streamed) is streamed  # cache=False: every pass reads
        by_budget, _ = _pixel_source(tmp_path, 10, cache=None)
        from daskmeans.engine import schedule

        monkeypatch.setattr(schedule, "CACHE_FRACTION", 0.0)  # over the budget: streamed
        assert mapreduce.hold(by_budget) is by_budget
        monkeypatch.setattr(schedule, "CACHE_FRACTION", 0.25)
        assert mapreduce.hold(by_budget).held is not None
        no_xsq = mapreduce.hold(_pixel_source(tmp_path, 10)[0], with_xsq=False)
    assert no_xsq.held is not None and no_xsq.xsq is None
