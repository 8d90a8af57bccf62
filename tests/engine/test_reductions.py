"""map_reduce (with and without per-block state), tested on their own with
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

from daskmeans.engine import reductions
from daskmeans.engine.hold import hold
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


def data() -> tuple[np.ndarray, np.ndarray]:
    """Integer-valued float64 rows and vector: every sum is exact, so the result must
    equal numpy's bit for bit."""
    rng = np.random.default_rng(0)
    X = rng.integers(-50, 50, size=(N, D)).astype(np.float64)
    v = rng.integers(-5, 5, size=D).astype(np.float64)
    return X, v


def zarr_source(tmp_path: Path, X: np.ndarray, chunk: int) -> ZarrSource:
    arr = zarr.create_array(tmp_path / f"x{chunk}.zarr", shape=X.shape, chunks=(chunk, D),
                            dtype=X.dtype, overwrite=True)
    arr[:] = X
    return ZarrSource(zarr.open_array(tmp_path / f"x{chunk}.zarr", mode="r"), threads=2)


def _source(kind: str, X: np.ndarray, chunking: tuple[int, ...], tmp_path: Path) -> Source:
    if kind == "array":
        return ArraySource(X, block_rows=chunking[0])
    if kind == "zarr":
        return zarr_source(tmp_path, X, chunking[0])
    return DaskSource(da.from_array(X, chunks=(chunking, D)))


@pytest.mark.parametrize("chunking", list(CHUNKINGS.values()), ids=list(CHUNKINGS))
@pytest.mark.parametrize("kind", ["array", "zarr", "dask"])
def test_map_reduce_is_the_brute_force_result(kind: str, chunking: tuple[int, ...],
                                              tmp_path: Path) -> None:
    X, v = data()
    src = _source(kind, X, chunking, tmp_path)
    with dask.config.set(scheduler="threads"):
        got = reductions.map_reduce(src, functools.partial(place, n=N), v)
    np.testing.assert_array_equal(got.values, X @ v)
    assert got.starts == set(src.offsets[:-1])  # every block once, at its own offset
    assert got.where == {"local"}


@pytest.mark.parametrize("kind", ["array", "zarr", "dask"])
def test_map_reduce_weights_and_aligned_rows_follow_their_blocks(kind: str,
                                                                 tmp_path: Path) -> None:
    X, v = data()
    w = np.arange(N, dtype=np.float64) % 7
    extra = np.arange(N, dtype=np.float64) * 1000
    src = _source(kind, X, CHUNKINGS["uneven"], tmp_path).with_options(weights=w)
    with dask.config.set(scheduler="threads"):
        got = reductions.map_reduce(src, functools.partial(place, n=N), v,
                                    aligned={"extra": extra})
    np.testing.assert_array_equal(got.values, (X @ v) * w + extra)


@pytest.mark.parametrize("kind", ["array", "zarr", "dask"])
def test_map_reduce_per_block_constants_and_skipped_blocks(kind: str, tmp_path: Path) -> None:
    """per_block(i) -> None skips block i; its constants reach the kernel."""
    X, v = data()
    src = _source(kind, X, (17,) * 6 + (1,), tmp_path)
    assert src.n_blocks > 2
    keep = {0, 2} | {src.n_blocks - 1}

    def per_block(i: int) -> dict[str, Any] | None:
        if i not in keep:
            return None
        return {"extra": np.full(src.block_rows(i), float(i))}

    with dask.config.set(scheduler="threads"):
        got = reductions.map_reduce(src, functools.partial(place, n=N), v,
                                    per_block=per_block)
    want = np.zeros(N)
    for i in keep:
        a, b = src.offsets[i], src.offsets[i + 1]
        want[a:b] = X[a:b] @ v + i
    np.testing.assert_array_equal(got.values, want)
    assert got.starts == {src.offsets[i] for i in keep}
    with pytest.raises(ValueError, match="at least one block"):
        reductions.map_reduce(src, functools.partial(place, n=N), v, per_block=lambda i: None)


@pytest.mark.parametrize("split_every", [2, 3, 8])
def test_the_reduction_tree_adds_every_partial_once(split_every: int) -> None:
    X, v = data()
    src = ArraySource(X, block_rows=4)  # 26 blocks: a tree of several levels
    with dask.config.set(scheduler="threads"):
        got = reductions.map_reduce(src, functools.partial(place, n=N), v,
                                    split_every=split_every)
        dask_got = reductions.map_reduce(DaskSource(da.from_array(X, chunks=(4, D))),
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
    X, v = data()
    src = _source(kind, X, CHUNKINGS["uneven"], tmp_path)
    kernel = functools.partial(keep_labels, n=N)
    with dask.config.set(scheduler="threads"):
        out = reductions.map_reduce(src, kernel, v, keep=True)
        first, states = out.total, out.state_list()
        assert states is not None and len(states) == src.n_blocks
        second = reductions.map_reduce(
            src, lambda *a, **k: kernel(*a, **k)[0], v, states=states)
    np.testing.assert_array_equal(first.values, X @ v)
    np.testing.assert_array_equal(second.values, 2 * (X @ v))  # the state of its own block
    assert not isinstance(second, reductions.Reduced)  # nothing kept: the partial alone
    for i, st in enumerate(states):
        np.testing.assert_array_equal(st, X[src.offsets[i]:src.offsets[i + 1]] @ v)
    # a streamed dask array in other chunks hands its blocks their states as well
    lazy = DaskSource(da.from_array(X, chunks=(tuple(np.diff(src.offsets).tolist()), D)))
    assert lazy.dask_route and lazy.offsets == src.offsets
    with dask.config.set(scheduler="threads"):
        third = reductions.map_reduce(lazy, lambda *a, **k: kernel(*a, **k)[0], v,
                                      states=states)
    np.testing.assert_array_equal(third.values, 2 * (X @ v))


def test_map_reduce_runs_on_the_cluster(local_cluster, tmp_path: Path) -> None:
    """Under a distributed client every block's task runs in one of its workers (the
    partials name the worker that computed them), with the brute-force result."""
    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers lack tests/
    try:
        X, v = data()
        workers = set(local_cluster.scheduler_info()["workers"])
        scattered = ArraySource(X)
        with local_cluster.as_current():
            assert hold(scattered) is scattered  # its blocks in the workers
            for src in (scattered, zarr_source(tmp_path, X, 10),
                        DaskSource(da.from_array(X, chunks=(CHUNKINGS["uneven"], D)))):
                got = reductions.map_reduce(src, functools.partial(place, n=N), v)
                np.testing.assert_array_equal(got.values, X @ v)
                assert got.where and got.where <= workers, (type(src).__name__, got.where)
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


def test_take_rows_of_raw_pixels_scales_only_the_rows_taken(tmp_path: Path) -> None:
    """take_rows of a uint8 store with a scale: exactly the rows as a whole block read
    as float would give them (the kernel receives the block raw and scales the rows it
    takes), and one block's rows only where the index names no other."""
    from daskmeans import io, open_source
    from daskmeans.engine.source import float_rows

    imgs = np.random.default_rng(5).integers(0, 256, size=(300, 4, 5), dtype=np.uint8)
    store = io.arrays_to_dataset({"test": (imgs, np.zeros(300, np.uint8))},
                                 tmp_path / "d.zarr", name="t", chunk_rows=70)
    src = open_source(store, "test", cache=False)
    assert src.scale is not None and src.n_blocks > 1
    index = np.array([0, 3, 69, 70, 150, 299])
    with dask.config.set(scheduler="threads"):
        rows, w = reductions.take_rows(src, index)
    want = float_rows(imgs.reshape(300, -1), src.scale, False)[index]
    assert rows.dtype == np.float32 and w is None
    np.testing.assert_array_equal(rows, want)


def keep_and_summarise(x: np.ndarray, w: np.ndarray | None, xsq: np.ndarray | None,
                       v: np.ndarray, *, offset: int, n: int
                       ) -> tuple[Placed, np.ndarray, int]:
    """A partial, a state (the rows' ``x @ v``) and a summary (the block's offset)."""
    return place(x, w, xsq, v, offset=offset, n=n), x @ v, offset


@pytest.mark.parametrize("split_every", [2, 8, 32])
def test_a_local_pass_with_outputs_is_one_compute_whatever_the_tree(
        split_every: int, counting_scheduler) -> None:
    X, v = data()
    src = ArraySource(X, block_rows=4)  # 26 blocks: no tree, or several levels
    got = reductions.map_reduce(src, functools.partial(keep_and_summarise, n=N), v,
                                keep=True, summaries=True, split_every=split_every)
    assert counting_scheduler.calls == 1
    np.testing.assert_array_equal(got.total.values, X @ v)
    assert got.total.starts == set(src.offsets[:-1])
    assert got.summaries == {i: src.offsets[i] for i in range(src.n_blocks)}
    assert got.states is not None and list(got.states) == list(range(src.n_blocks))
    for i, st in got.states.items():
        np.testing.assert_array_equal(st, X[src.offsets[i]:src.offsets[i + 1]] @ v)


def test_local_tasks_share_the_operand_itself(counting_scheduler) -> None:
    X, _ = data()
    seen: list[int] = []

    def kernel(x, w, xsq, shared, *, offset):  # type: ignore[no-untyped-def]
        seen.append(id(shared))
        return len(x)

    big = np.zeros(reductions.INLINE_MAX_BYTES)  # too large to copy into every task
    src = ArraySource(X, block_rows=4)
    assert reductions.map_reduce(src, kernel, big) == len(X)
    assert counting_scheduler.calls == 1 and set(seen) == {id(big)}
