"""The map-reduce primitive's per-block outputs (states kept where the blocks are,
summaries that come back, skipped blocks), its one compute per pass, and ``hold`` for
every source kind: trivial kernels against brute-force numpy results, under threads
and on the LocalCluster (where kept states must stay in the workers as futures)."""

from __future__ import annotations

import functools
import sys
from collections.abc import Iterator
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
from tests.engine.test_reductions import worker_address

N, D = 103, 5


class Placed:
    """Per-row values at their global rows and the workers that computed them."""

    def __init__(self, values: np.ndarray, where: frozenset[str]) -> None:
        self.values, self.where = values, where

    def __add__(self, other: Placed) -> Placed:
        return Placed(self.values + other.values, self.where | other.where)


def stateful(x: np.ndarray, w: np.ndarray | None, xsq: np.ndarray | None, v: np.ndarray, *,
             offset: int, n: int, keep: bool = True, summary: bool = False, state: Any = None,
             extra: float = 0.0) -> Any:
    """Each row's ``x @ v + extra`` (plus the state its block kept) at its global row;
    the new state is the block's ``x @ v``, the summary (first row, rows, worker)."""
    out = np.zeros(n)
    y = x @ v + extra
    if state is not None:
        y = y + state
    out[offset:offset + len(x)] = y
    part = Placed(out, frozenset({worker_address()}))
    if not keep and not summary:
        return part
    return (part, *((x @ v,) if keep else ()),
            *(((offset, len(x), worker_address()),) if summary else ()))


def _data() -> tuple[np.ndarray, np.ndarray]:
    """Integer-valued rows: every sum is exact (compared bit for bit)."""
    rng = np.random.default_rng(0)
    return (rng.integers(-50, 50, size=(N, D)).astype(np.float64),
            rng.integers(-5, 5, size=D).astype(np.float64))


def _big() -> np.ndarray:
    """Integer-valued rows over 1 MiB: an in-memory array of them is held in more than
    one block (smaller ones are one block, see memory_block_rows)."""
    return np.random.default_rng(2).integers(-50, 50, size=(30_000, D)).astype(np.float64)


def _source(kind: str, X: np.ndarray, tmp_path: Path, rows: int = 10) -> Source:
    if kind == "array":
        return ArraySource(X, block_rows=rows)
    if kind == "zarr":
        arr = zarr.create_array(tmp_path / "x.zarr", shape=X.shape, chunks=(rows, D),
                                dtype=X.dtype, overwrite=True)
        arr[:] = X
        # one chunk per block (as many blocks as an in-memory array of the same rows)
        return ZarrSource(zarr.open_array(tmp_path / "x.zarr", mode="r"), threads=16)
    return DaskSource(da.from_array(X, chunks=(rows, D)))


def _block_values(src: Source, X: np.ndarray, v: np.ndarray, i: int) -> np.ndarray:
    return X[src.offsets[i]:src.offsets[i + 1]] @ v


@pytest.fixture
def by_value() -> Iterator[None]:
    """This module's kernels pickled by value (the cluster's workers lack tests/)."""
    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    try:
        yield
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


# --------------------------------------------------------------------------- local


@pytest.mark.parametrize("split_every", [2, 16], ids=["tree", "one-level"])
@pytest.mark.parametrize("kind", ["array", "zarr", "dask"])
def test_states_and_summaries_of_the_blocks_read(kind: str, split_every: int,
                                                 tmp_path: Path) -> None:
    """Skipped blocks are not read and get no state or summary; each block read gets
    its own state and summary; its kept state reaches it in the next pass; the same
    with a reduction tree of several levels and with none, and for a dask array that
    is not held (through its own blockwise graph)."""
    X, v = _data()
    src = _source(kind, X, tmp_path)
    assert src.dask_route == (kind == "dask")
    read = [0, 3, 4, src.n_blocks - 1]
    kernel = functools.partial(stateful, n=N, summary=True)
    with dask.config.set(scheduler="threads"):
        out = reductions.map_reduce(src, kernel, v, keep=True, summaries=True,
                                    per_block=lambda i: {} if i in read else None,
                                    split_every=split_every)
        assert isinstance(out, reductions.Reduced)
        assert out.states is not None and out.summaries is not None
        assert list(out.states) == list(out.summaries) == read
        again = reductions.map_reduce(src, functools.partial(stateful, n=N, keep=False), v,
                                      states=out.states,
                                      per_block=lambda i: {"extra": 1.0} if i in read else None,
                                      split_every=split_every)
    want = np.zeros(N)
    for i in read:
        a, b = src.offsets[i], src.offsets[i + 1]
        want[a:b] = X[a:b] @ v
        np.testing.assert_array_equal(out.states[i], X[a:b] @ v)
        assert out.summaries[i] == (a, b - a, "local")
    np.testing.assert_array_equal(out.total.values, want)
    np.testing.assert_array_equal(again.values, 2 * want + _ones(src, read))


def _ones(src: Source, read: list[int]) -> np.ndarray:
    """1.0 on the rows of the blocks read, 0 elsewhere."""
    out = np.zeros(src.n)
    for i in read:
        out[src.offsets[i]:src.offsets[i + 1]] = 1.0
    return out


def test_summaries_alone_and_state_lists_in_block_order(tmp_path: Path) -> None:
    X, v = _data()
    src = _source("array", X, tmp_path)
    with dask.config.set(scheduler="threads"):
        sums = reductions.map_reduce(src, functools.partial(stateful, n=N, keep=False,
                                                            summary=True), v, summaries=True)
        kept = reductions.map_reduce(src, functools.partial(stateful, n=N), v, keep=True,
                                     split_every=2)
    assert sums.states is None and sums.summaries is not None
    assert [s[0] for s in sums.summaries.values()] == list(src.offsets[:-1])
    np.testing.assert_array_equal(sums.total.values, X @ v)
    states = kept.state_list()
    assert states is not None and len(states) == src.n_blocks
    np.testing.assert_array_equal(np.concatenate(states), X @ v)


@pytest.mark.parametrize("split_every", [2, 16], ids=["tree", "one-level"])
@pytest.mark.parametrize("kind", ["array", "zarr", "dask"])
def test_one_compute_per_pass(kind: str, split_every: int, tmp_path: Path,
                              counting_scheduler: Any) -> None:
    """Every form of a pass is one compute: plain, with skipped blocks, with kept
    states and summaries, and a pass over kept states."""
    X, v = _data()
    src = _source(kind, X, tmp_path)
    plain = reductions.map_reduce(src, functools.partial(stateful, n=N, keep=False), v,
                                  split_every=split_every)
    assert counting_scheduler.calls == 1
    np.testing.assert_array_equal(plain.values, X @ v)
    reductions.map_reduce(src, functools.partial(stateful, n=N, keep=False), v,
                          per_block=lambda i: {} if i % 2 else None, split_every=split_every)
    assert counting_scheduler.calls == 2
    out = reductions.map_reduce(src, functools.partial(stateful, n=N, summary=True), v,
                                keep=True, summaries=True, split_every=split_every)
    assert counting_scheduler.calls == 3
    reductions.map_reduce(src, functools.partial(stateful, n=N, keep=False), v,
                          states=out.states, split_every=split_every)
    assert counting_scheduler.calls == 4


def test_aligned_dask_arrays_are_refused_with_block_state(tmp_path: Path) -> None:
    """An aligned dask array sends a pass through the dask-array route, where only a
    dask array's own blocks keep state: with per-block state it is refused."""
    X, v = _data()
    kernel = functools.partial(stateful, n=N, summary=True)
    with pytest.raises(ValueError, match="aligned dask arrays"):
        reductions.map_reduce(_source("array", X, tmp_path), kernel, v, keep=True,
                              aligned={"extra": da.zeros(N, chunks=10)})


def test_xsq_reaches_the_kernel_only_when_asked(tmp_path: Path) -> None:
    X, _ = _data()
    src = hold(ArraySource(X, block_rows=10))
    seen: list[bool] = []

    def spy(x, w, xsq, shared, *, offset):  # type: ignore[no-untyped-def]
        seen.append(xsq is not None and bool(np.array_equal(xsq, (x ** 2).sum(axis=1))))
        return 0

    with dask.config.set(scheduler="sync"):
        reductions.map_reduce(src, spy)
        assert seen == [True] * src.n_blocks
        seen.clear()
        reductions.map_reduce(src, spy, xsq=False)
    assert seen == [False] * src.n_blocks


def test_a_tuple_of_shared_operands_enters_the_graph_entry_by_entry() -> None:
    from dask.delayed import Delayed

    small, large = np.zeros(4), np.zeros(reductions.INLINE_MAX_BYTES // 8)
    got = reductions.shared_operand((small, large), 2)
    assert type(got) is tuple and got[0] is small and isinstance(got[1], Delayed)
    assert reductions.shared_operand((small, small), 2) == (small, small)


# --------------------------------------------------------------------------- cluster


@pytest.mark.parametrize("kind", ["array", "zarr"])
def test_kept_states_stay_in_the_workers(kind: str, local_cluster: Any, by_value: None,
                                         tmp_path: Path) -> None:
    """On a cluster the kept states are futures held by its workers (only the partial
    and the summaries come back); the next pass takes them there, read by the block
    each belongs to, and every task ran in a worker."""
    from distributed import Future, wait

    X, v = _data()
    if kind == "array":
        X = _big()
    n = len(X)
    workers = set(local_cluster.scheduler_info()["workers"])
    with local_cluster.as_current():
        src = hold(_source(kind, X, tmp_path, rows=25))
        assert src.held is not None and all(isinstance(b, Future) for b in src.held)
        read = [0, src.n_blocks - 1]
        assert read[0] < read[1]
        out = reductions.map_reduce(src, functools.partial(stateful, n=n, summary=True), v,
                                    keep=True, summaries=True,
                                    per_block=lambda i: {} if i in read else None)
        assert out.states is not None and out.summaries is not None
        assert list(out.states) == read
        assert all(isinstance(st, Future) for st in out.states.values())
        wait(list(out.states.values()))
        held_by = local_cluster.who_has(list(out.states.values()))
        assert all(set(ws) and set(ws) <= workers for ws in held_by.values())
        for i, (start, rows, where) in out.summaries.items():
            assert (start, rows) == (src.offsets[i], src.block_rows(i)) and where in workers
        assert out.total.where <= workers
        again = reductions.map_reduce(src, functools.partial(stateful, n=n, keep=False), v,
                                      states=out.states,
                                      per_block=lambda i: {} if i in read else None)
        for i in read:
            np.testing.assert_array_equal(out.states[i].result(), _block_values(src, X, v, i))
    want = np.zeros(n)
    for i in read:
        want[src.offsets[i]:src.offsets[i + 1]] = _block_values(src, X, v, i)
    np.testing.assert_array_equal(out.total.values, want)
    np.testing.assert_array_equal(again.values, 2 * want)
    assert again.where <= workers


def test_a_streamed_dask_array_keeps_its_states_in_the_workers(local_cluster: Any,
                                                              by_value: None,
                                                              tmp_path: Path) -> None:
    """A dask array that is not held, on a cluster: each block's kept state is a one-
    chunk dask array persisted in a worker (its future named in the next pass's graph,
    nothing per row sent back or forth); the next pass takes it."""
    from distributed import futures_of, wait

    X, v = _data()
    workers = set(local_cluster.scheduler_info()["workers"])
    src = _source("dask", X, tmp_path, rows=25)
    read = [0, src.n_blocks - 1]
    with local_cluster.as_current():
        assert src.dask_route
        out = reductions.map_reduce(src, functools.partial(stateful, n=N, summary=True), v,
                                    keep=True, summaries=True,
                                    per_block=lambda i: {} if i in read else None)
        assert out.states is not None and out.summaries is not None
        assert list(out.states) == list(out.summaries) == read
        futures = list({f.key: f for st in out.states.values() for f in futures_of(st)}
                       .values())
        assert len(futures) == len(read)  # one object, a block's state, each
        wait(futures)
        held_by = local_cluster.who_has(futures)
        assert all(set(ws) and set(ws) <= workers for ws in held_by.values())
        for i, (start, rows, where) in out.summaries.items():
            assert (start, rows) == (src.offsets[i], src.block_rows(i)) and where in workers
        again = reductions.map_reduce(src, functools.partial(stateful, n=N, keep=False), v,
                                      states=out.states,
                                      per_block=lambda i: {} if i in read else None)
        kept = {i: local_cluster.compute(st).result()[0] for i, st in out.states.items()}
    want = np.zeros(N)
    for i in read:
        want[src.offsets[i]:src.offsets[i + 1]] = _block_values(src, X, v, i)
        np.testing.assert_array_equal(kept[i], _block_values(src, X, v, i))
    np.testing.assert_array_equal(out.total.values, want)
    np.testing.assert_array_equal(again.values, 2 * want)
    assert out.total.where <= workers and again.where <= workers


# --------------------------------------------------------------------------- hold


def test_hold_an_array_here_computes_its_norms_once() -> None:
    X, _ = _data()
    src = ArraySource(X, block_rows=10)
    with dask.config.set(scheduler="threads"):
        assert hold(src, with_xsq=False) is src and src.xsq is None
        assert hold(src) is src
        xsq = src.xsq
        assert isinstance(xsq, np.ndarray) and xsq.dtype == np.float64
        np.testing.assert_array_equal(xsq, (X ** 2).sum(axis=1))  # integers: exact
        assert hold(src).xsq is xsq  # held once
    assert src.held is None  # the rows stay the caller's array, viewed block by block
    np.testing.assert_array_equal(src.block(1), X[10:20])


def test_hold_an_array_on_a_cluster_ships_its_blocks_and_norms(local_cluster: Any) -> None:
    """Its blocks are futures spread over the workers (one per worker thread); each
    block's |x|^2 is computed in the worker holding it."""
    from distributed import Future, wait

    X = _big()
    src = ArraySource(X)
    workers = set(local_cluster.scheduler_info()["workers"])
    with local_cluster.as_current():
        assert hold(src) is src
        held, xsq = src.held, src.xsq
        assert held is not None and isinstance(xsq, list)
        assert src.n_blocks == len(held) == len(xsq) == len(workers)
        assert all(isinstance(f, Future) for f in [*held, *xsq])
        assert src.offsets[0] == 0 and src.offsets[-1] == len(X)
        wait([*held, *xsq])
        who = local_cluster.who_has([*held, *xsq])
        for b, q in zip(held, xsq, strict=True):
            assert set(who[q.key]) & set(who[b.key])  # the norms beside their block
        assert {w for f in held for w in who[f.key]} == workers  # spread out
        blocks = local_cluster.gather(held)
        norms = local_cluster.gather(xsq)
        assert hold(src).held is held  # held once
    np.testing.assert_array_equal(np.concatenate(blocks), X)
    np.testing.assert_array_equal(np.concatenate(norms), (X ** 2).sum(axis=1))


def test_hold_a_store_on_a_cluster(local_cluster: Any, tmp_path: Path) -> None:
    X, _ = _data()
    src = ZarrSource(_source("zarr", X, tmp_path, rows=20).array, threads=2, cache=True)
    with local_cluster.as_current():
        held = hold(src)
        assert held is not src and src.held is None
        assert held.held is not None and isinstance(held.xsq, list)
        blocks = local_cluster.gather(held.held)
        norms = local_cluster.gather(held.xsq)
        no_xsq = hold(ZarrSource(src.array, threads=2, cache=True), with_xsq=False)
        assert no_xsq.held is not None and no_xsq.xsq is None
    np.testing.assert_array_equal(np.concatenate(blocks), X)
    np.testing.assert_array_equal(np.concatenate(norms), (X ** 2).sum(axis=1))


def test_hold_leaves_a_streamed_store_and_a_dask_array_over_the_budget(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    X, _ = _data()
    lazy = _source("dask", X, tmp_path)
    streamed = ZarrSource(_source("zarr", X, tmp_path).array, threads=2, cache=False)
    with dask.config.set(scheduler="threads"):
        assert hold(streamed) is streamed and streamed.held is None
        held = hold(lazy)  # within the budget: a copy holding the computed blocks
        assert held is not lazy and held.held is not None and lazy.xsq is None
        from daskmeans.engine import hold as hold_module

        monkeypatch.setattr(hold_module, "memory_budget", lambda: 0)
        assert hold(lazy) is lazy and lazy.held is None
