"""Where and how the engine's computations run: the local threaded scheduler or a
``distributed.Client``, how many threads compute, how the cores are split between dask
and BLAS, how much memory a fit may hold, which worker thread runs which held blocks
(:func:`holder_groups`), and the one ``compute`` every pass ends in.
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import dask

_T = TypeVar("_T")
_R = TypeVar("_R")

__all__ = ["CACHE_FRACTION", "MEMORY_BLOCK_BYTES", "MEMORY_BLOCK_MAX_BYTES", "WorkerBlas",
           "client_blas", "compute", "compute_graph", "forget_holders", "holder_groups",
           "holders_of", "local_blas", "local_memory_budget", "local_threads",
           "memory_block_rows",
           "memory_budget", "thread_map", "total_threads", "using_distributed",
           "worker_blas", "worker_memory_budget"]

#: in-memory arrays up to this many bytes per thread get one block per thread.
MEMORY_BLOCK_MAX_BYTES = 256 << 20
#: larger in-memory arrays get blocks of about this many bytes, a multiple of the threads.
MEMORY_BLOCK_BYTES = 32 << 20

#: a store's decoded rows are held in memory for a fit while they take at most this
#: fraction of the available memory (of the workers' memory limits on a cluster).
CACHE_FRACTION = 0.25


# --------------------------------------------------------------------------- scheduling


def using_distributed() -> bool:
    """True when computations go to a ``distributed.Client``."""
    sched = dask.config.get("scheduler", None)
    if sched is not None and sched not in ("dask.distributed", "distributed"):
        return False
    try:
        from distributed import default_client

        default_client()
    except (ImportError, ValueError):
        return False
    return True


def total_threads() -> int:
    """Threads computing: the cluster's worker threads, or the local thread count."""
    if using_distributed():
        from distributed import default_client

        return max(1, sum(default_client().nthreads().values()))
    return local_threads()


@functools.cache
def _threadpool_controller() -> Any:
    """One threadpoolctl controller (finding the BLAS libraries costs milliseconds).

    scipy's BLAS (which the compiled kernels call through ``np.dot``) is loaded first:
    a controller made before it would not limit it, and dask threads each running a
    multi-threaded GEMM oversubscribe the cores."""
    import scipy.linalg.cython_blas  # noqa: F401  the BLAS numba's compiled kernels call
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()  # sees the BLAS libraries loaded by now


@contextlib.contextmanager
def local_blas(n_tasks: int) -> Iterator[None]:
    """Under the local threaded scheduler, split the cores between dask and BLAS for
    the duration of one of our computations (restored when it returns)."""
    if using_distributed() or dask.config.get("scheduler", None) == "sync":
        yield
        return
    cores = os.cpu_count() or 1
    parallel = max(1, min(n_tasks, total_threads()))
    with _threadpool_controller().limit(limits=max(1, cores // parallel), user_api="blas"):
        yield


@contextlib.contextmanager
def client_blas() -> Iterator[None]:
    """One BLAS thread for the small linear algebra an algorithm does between passes
    (e.g. the centres' Gram matrix): a multi-threaded GEMM leaves OpenBLAS threads
    spinning for a while after it returns, and they take the cores from the next
    pass's tasks."""
    with _threadpool_controller().limit(limits=1, user_api="blas"):
        yield


class WorkerBlas:
    """BLAS pinned to one thread inside a distributed worker while any of our tasks
    runs there, restored when the last one ends (other users' tasks on a shared
    cluster keep their BLAS threads). Workers started without a nanny would otherwise
    run a BLAS pool as large as the machine in every worker thread, oversubscribing
    the cores many times over. Use the module's one instance, :data:`worker_blas`."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.active = 0
        self.limit: Any = None

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        try:
            from distributed import get_worker

            get_worker()
        except (ImportError, ValueError):
            yield
            return
        with self.lock:
            if self.active == 0:
                self.limit = _threadpool_controller().limit(limits=1, user_api="blas")
            self.active += 1
        try:
            yield
        finally:
            with self.lock:
                self.active -= 1
                if self.active == 0 and self.limit is not None:
                    self.limit.restore_original_limits()
                    self.limit = None


#: Enter ``with worker_blas():`` around a task's kernel call.
worker_blas = WorkerBlas()


def compute(*objs: Any, n_tasks: int = 1) -> Any:
    """``dask.compute(*objs)`` with BLAS threads split for the local scheduler."""
    with local_blas(n_tasks):
        out = dask.compute(*objs)
    return out[0] if len(objs) == 1 else out


#: the names of dask's local schedulers that take a low-level graph as it is
_THREADED = ("threads", "threading")
_SYNC = ("sync", "synchronous", "single-threaded")


def compute_graph(dsk: dict[Any, Any], keys: list[Any], n_tasks: int = 1) -> list[Any]:
    """The values of ``keys`` in the low-level graph ``dsk`` (dask's graph spec: key ->
    ``(callable, *args)``), in one call of dask's configured scheduler, with BLAS
    threads split as :func:`compute` splits them.

    For passes built as such a graph under the local scheduler: a callable configured
    as the scheduler, dask's threaded scheduler (the default, ``dask.threaded.get``) or
    its synchronous one (``dask.get``) runs the graph as it is, with none of
    ``dask.compute``'s handling of collections (the graph has nothing to optimise);
    any other scheduler (a ``Client``, processes) gets it through ``dask.compute``
    without optimisation.
    """
    sched = dask.config.get("scheduler", None)
    name = sched.lower() if isinstance(sched, str) else None
    with local_blas(n_tasks):
        if callable(sched):
            return list(sched(dsk, keys))
        if name in _THREADED or (sched is None and not using_distributed()):
            return list(dask.threaded.get(dsk, keys))
        if name in _SYNC:
            return list(dask.get(dsk, keys))
        from dask.delayed import Delayed

        return list(dask.compute(*[Delayed(k, dsk) for k in keys], optimize_graph=False))


def thread_map(fn: Callable[[_T], _R], items: Iterable[_T]) -> list[_R]:
    """``[fn(x) for x in items]`` in this process's threads (as many as dask's local
    scheduler has), taken in order: for work on rows held in this process by compiled
    kernels that release the GIL, where a dask graph would only add its overhead. A
    thread runs one item at a time, so the results do not depend on the threads."""
    items = list(items)
    threads = min(len(items), local_threads())
    if threads <= 1:
        return [fn(x) for x in items]
    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(fn, items))


# --------------------------------------------------------------------------- placement

#: held sources whose holders are remembered (the oldest forgotten first): a few fits'.
HOLDERS_KEPT = 16
_holders: OrderedDict[tuple[str, ...], tuple[dict[str, str], dict[str, int]]] = OrderedDict()
_holders_lock = threading.Lock()


def _holders_key(client: Any, held: Sequence[Any]) -> tuple[str, ...]:
    return (str(client.id), *(str(getattr(f, "key", id(f))) for f in held))


def holders_of(held: Sequence[Any]) -> tuple[dict[str, str], dict[str, int]]:
    """Which worker holds each of ``held`` (futures of the default client), as
    ``{future key: worker address}`` (the first of its holders, in address order;
    a future no worker holds is left out), and each worker's threads.

    Asked of the scheduler once per held source (``Client.who_has`` and
    ``Client.nthreads``: a round trip each) and remembered for its later passes, so a
    fit's passes over held rows add no round trip of their own. Asked again when a
    held future is not finished (lost with a worker, being recomputed) or after
    :func:`forget_holders` (a failed pass); a mapping with a block no worker holds is
    not remembered."""
    from distributed import default_client

    client = default_client()
    key = _holders_key(client, held)
    if all(f.status == "finished" for f in held):
        with _holders_lock:
            known = _holders.get(key)
            if known is not None:
                _holders.move_to_end(key)
                return known
    where = client.who_has(list(held))
    first = {str(k): sorted(v)[0] for k, v in where.items() if v}
    got = (first, dict(client.nthreads()))
    if len(first) == len(held):  # every block somewhere: remembered
        with _holders_lock:
            _holders[key] = got
            while len(_holders) > HOLDERS_KEPT:
                _holders.popitem(last=False)
    return got


def forget_holders(held: Sequence[Any]) -> None:
    """Ask the scheduler again where ``held`` is at their next pass (after a pass over
    them failed: its workers may have left)."""
    from distributed import default_client

    with _holders_lock:
        _holders.pop(_holders_key(default_client(), held), None)


def holder_groups(held: Sequence[Any] | None, positions: Sequence[int]
                  ) -> list[list[int]] | None:
    """On a cluster, for rows held there (``held``: a future per block): the blocks
    ``positions`` (the ones a pass maps) grouped by the worker holding them, one group
    per worker thread, each group as indices into ``positions``; None without a
    cluster, without held rows or for a single block.

    One task per group (:func:`daskmeans.engine.reductions.map_reduce`) leaves the
    scheduler no queue of block tasks to balance by moving held rows between workers.
    Blocks whose holder is not known (lost with a worker, being recomputed) go alone.
    The holders are remembered per held source (:func:`holders_of`)."""
    if held is None or len(positions) < 2 or not using_distributed():
        return None
    where, threads = holders_of(held)
    by_worker: dict[str, list[int]] = {}
    alone: list[list[int]] = []
    for j, i in enumerate(positions):
        holder = where.get(str(held[i].key))
        if holder is not None:
            by_worker.setdefault(holder, []).append(j)
        else:
            alone.append([j])
    groups = [[int(v) for v in part] for w, group in by_worker.items()
              for part in _split(group, threads.get(w, 1))]
    return [*groups, *alone]


def _split(items: list[int], parts: int) -> list[list[int]]:
    """``items`` in ``parts`` consecutive runs of (nearly) equal length (the first ones
    longer), none empty."""
    parts = max(1, min(len(items), parts))
    size, extra = divmod(len(items), parts)
    out, start = [], 0
    for p in range(parts):
        stop = start + size + int(p < extra)
        out.append(items[start:stop])
        start = stop
    return out


# --------------------------------------------------------------------------- block sizes


def local_threads() -> int:
    """Threads of dask's local scheduler (``num_workers`` or the CPU count)."""
    return int(dask.config.get("num_workers", None) or os.cpu_count() or 1)


def memory_block_rows(n: int, d: int, itemsize: int, threads: int | None = None) -> int:
    """Rows per block for an in-memory array.

    One block per thread while blocks stay under :data:`MEMORY_BLOCK_MAX_BYTES`: every
    task costs a scheduler round trip and a dense (k, d) partial result, so fewer,
    larger tasks are faster. Larger arrays get blocks of about
    :data:`MEMORY_BLOCK_BYTES`, a multiple of the threads.
    """
    threads = threads or local_threads()
    nbytes = n * d * itemsize
    if nbytes < (1 << 20):  # tiny: one block, scheduling would dominate
        return max(n, 1)
    if nbytes <= threads * MEMORY_BLOCK_MAX_BYTES:
        return -(-n // threads)
    by_bytes = max(1, MEMORY_BLOCK_BYTES // max(1, d * itemsize))
    n_blocks = max(threads, -(-n // by_bytes))
    n_blocks = -(-n_blocks // threads) * threads
    return max(1, -(-n // n_blocks))


# --------------------------------------------------------------------------- holding


def memory_budget() -> int:
    """Bytes a fit may hold in memory: :data:`CACHE_FRACTION` of the memory available
    here, or of the workers' memory limits on a cluster."""
    if using_distributed():
        from distributed import default_client

        workers = default_client().scheduler_info(n_workers=-1)["workers"].values()
        total = sum(int(w.get("memory_limit") or 0) for w in workers)
    else:
        return local_memory_budget()
    return int(total * CACHE_FRACTION)


def worker_memory_budget() -> int:
    """Bytes one task may hold in one worker: :data:`CACHE_FRACTION` of the largest
    worker's memory limit (of the memory available here without a cluster)."""
    if not using_distributed():
        return local_memory_budget()
    from distributed import default_client

    workers = default_client().scheduler_info(n_workers=-1)["workers"].values()
    return int(max((int(w.get("memory_limit") or 0) for w in workers), default=0)
               * CACHE_FRACTION)


def local_memory_budget() -> int:
    """Bytes a fit may hold in this process (rows gathered here, whatever the
    scheduler): :data:`CACHE_FRACTION` of the memory available here."""
    import psutil

    return int(psutil.virtual_memory().available * CACHE_FRACTION)

