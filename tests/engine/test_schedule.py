"""Scheduling: one compute per call, block sizes, the BLAS split restored."""

from __future__ import annotations

import functools
from pathlib import Path

import dask
import dask.array as da
import numpy as np
import pytest
import zarr

from daskmeans.engine import reductions, schedule
from daskmeans.engine.source import ZarrSource


def test_compute_is_one_compute(counting_scheduler) -> None:
    x = da.arange(100, chunks=10)
    total, mean = schedule.compute(x.sum(), (x * 2).mean(), n_tasks=10)
    assert counting_scheduler.calls == 1
    assert total == 4950 and mean == 99.0
    assert schedule.compute(x.max()) == 99  # one object: the value, not a tuple
    assert counting_scheduler.calls == 2


def _rows(x, w, xsq, shared, *, offset):  # type: ignore[no-untyped-def]
    return x.sum(axis=0)


def test_a_pass_over_a_store_is_one_compute(counting_scheduler, tmp_path: Path) -> None:
    X = np.arange(300, dtype=np.float64).reshape(100, 3)
    arr = zarr.create_array(tmp_path / "x.zarr", shape=X.shape, chunks=(9, 3), dtype=X.dtype)
    arr[:] = X
    src = ZarrSource(zarr.open_array(tmp_path / "x.zarr", mode="r"), threads=2)
    got = reductions.map_reduce(src.regroup(1), functools.partial(_rows), split_every=2)
    np.testing.assert_array_equal(got, X.sum(axis=0))
    assert counting_scheduler.calls == 1


def test_memory_block_rows() -> None:
    assert schedule.memory_block_rows(1000, 10, 8, threads=4) == 1000  # tiny: one block
    n, d = 100_000, 100  # 80 MB: one block per thread
    assert schedule.memory_block_rows(n, d, 8, threads=4) == 25_000
    n = 2_000_000  # 1.6 GB on 2 threads: blocks near MEMORY_BLOCK_BYTES, a multiple of 2
    rows = schedule.memory_block_rows(n, d, 8, threads=2)
    blocks = -(-n // rows)
    assert blocks % 2 == 0 and rows * d * 8 <= schedule.MEMORY_BLOCK_BYTES


def test_local_threads_follows_dask_config() -> None:
    with dask.config.set(num_workers=3):
        assert schedule.local_threads() == 3
        with dask.config.set(scheduler="threads"):
            assert not schedule.using_distributed()
            assert schedule.total_threads() == 3


def test_local_blas_splits_the_cores_and_restores_them() -> None:
    from threadpoolctl import threadpool_info

    def blas() -> list[int]:
        return [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]

    with schedule.client_blas():  # loads the BLAS libraries the controller sees
        pass
    before = blas()
    with dask.config.set(scheduler="threads", num_workers=2):
        with schedule.local_blas(2):
            inside = blas()
    assert blas() == before
    import os

    assert inside and all(n == max(1, (os.cpu_count() or 1) // 2) for n in inside)
    with schedule.client_blas():
        assert all(n == 1 for n in blas())
    assert blas() == before


def test_thread_map_keeps_the_order_of_its_items() -> None:
    import threading

    from daskmeans.engine.schedule import thread_map

    seen: set[int] = set()

    def square(x: int) -> int:
        seen.add(threading.get_ident())
        return x * x

    with dask.config.set(num_workers=2):
        assert thread_map(square, range(20)) == [x * x for x in range(20)]
    with dask.config.set(num_workers=1):
        seen.clear()
        assert thread_map(square, [3, 1]) == [9, 1]
        assert seen == {threading.get_ident()}  # one thread: this one
    assert thread_map(square, []) == []


def _counting_who_has(monkeypatch) -> list[int]:  # type: ignore[no-untyped-def]
    """Count the client's ``who_has`` round trips."""
    from distributed import Client

    asked: list[int] = []
    who_has = Client.who_has

    def counted(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        asked.append(len(args[0]) if args else 0)
        return who_has(self, *args, **kwargs)

    monkeypatch.setattr(Client, "who_has", counted)
    return asked


def test_holder_groups_follow_the_holders_asked_once(local_cluster, monkeypatch) -> None:
    """Held futures grouped by the worker holding them, one group per worker thread
    (the cluster's workers have one each), as indices into the blocks a pass maps; the
    scheduler is asked once, then again only after forget_holders or when a held
    future is not finished."""
    from distributed import wait

    workers = sorted(local_cluster.scheduler_info()["workers"])
    asked = _counting_who_has(monkeypatch)
    with local_cluster.as_current():
        held = [local_cluster.scatter(np.full(3, i), workers=[workers[i % 2]], hash=False)
                for i in range(5)]
        wait(held)
        groups = schedule.holder_groups(held, [0, 1, 2, 3, 4])
        assert sorted(map(sorted, groups)) == [[0, 2, 4], [1, 3]]
        assert len(asked) == 1
        # a pass over some blocks: positions in the pass, not block indices
        assert sorted(map(sorted, schedule.holder_groups(held, [1, 2, 4]))) == [[0], [1, 2]]
        assert schedule.holder_groups(held, [3]) is None  # one block: nothing to group
        assert len(asked) == 1
        schedule.forget_holders(held)
        assert sorted(map(sorted, schedule.holder_groups(held, [0, 1]))) == [[0], [1]]
        assert len(asked) == 2
        # a block not finished (as one lost with a worker, being recomputed): the
        # holders are asked again, and it goes alone
        # (restricted to a worker that never joins: pending, and no worker thread busy)
        held[4] = local_cluster.submit(np.zeros, 3, workers=["tcp://127.0.0.1:9"],
                                       allow_other_workers=False, pure=False)
        groups = schedule.holder_groups(held, [0, 1, 2, 3, 4])
        assert len(asked) == 3
        assert sorted(map(sorted, groups)) == [[0, 2], [1, 3], [4]]
        schedule.holder_groups(held, [0, 1, 2, 3, 4])
        assert len(asked) == 4  # a mapping with a block nowhere is not remembered
        held[4].cancel()
    assert schedule.holder_groups(held, [0, 1]) is None  # no cluster: no groups


def test_a_fit_over_held_rows_asks_for_their_holders_once(local_cluster, monkeypatch,
                                                          tmp_path: Path) -> None:
    """Every pass over a store held in the workers plans its tasks from the holders
    asked at its first pass: no round trip per pass."""
    from daskmeans.engine.hold import hold

    X = np.arange(600, dtype=np.float64).reshape(200, 3)
    arr = zarr.create_array(tmp_path / "x.zarr", shape=X.shape, chunks=(25, 3), dtype=X.dtype)
    arr[:] = X
    asked = _counting_who_has(monkeypatch)
    with local_cluster.as_current():
        src = hold(ZarrSource(zarr.open_array(tmp_path / "x.zarr", mode="r")).regroup(1))
        assert src.held is not None and src.n_blocks > 2
        for _ in range(3):
            got = reductions.range_pass(src)
            np.testing.assert_array_equal(got.lo, X.min(axis=0))
            np.testing.assert_array_equal(got.hi, X.max(axis=0))
    assert asked == [src.n_blocks]


def _plus(a: int, b: int) -> int:
    return a + b


def test_compute_graph_is_one_call_of_the_configured_scheduler(counting_scheduler) -> None:
    dsk = {("x", 0): 1, ("x", 1): (_plus, ("x", 0), 2), "y": (_plus, ("x", 1), ("x", 1))}
    assert schedule.compute_graph(dsk, ["y", ("x", 1)], n_tasks=2) == [6, 3]
    assert counting_scheduler.calls == 1


@pytest.mark.parametrize("scheduler", ["threads", "sync", "single-threaded", "executor"])
def test_compute_graph_under_every_local_scheduler(scheduler: str) -> None:
    from concurrent.futures import ThreadPoolExecutor

    dsk = {"a": (_plus, 1, 2), "b": (_plus, "a", 10)}
    with ThreadPoolExecutor(2) as pool:  # an executor: through dask.compute
        with dask.config.set(scheduler=pool if scheduler == "executor" else scheduler):
            assert schedule.compute_graph(dsk, ["b", "a"]) == [13, 3]
