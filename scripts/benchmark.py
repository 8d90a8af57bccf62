#!/usr/bin/env python
"""Seconds per Lloyd iteration: daskmeans vs scikit-learn vs dask-ml, side by side.

Usage (Fashion-MNIST train: ``apt-get install dataset-fashion-mnist``)::

    python scripts/benchmark.py --data /usr/share/datasets/fashion-mnist --k 10 256

Every contender starts from the same initial centres with ``tol=0``. Time per
iteration is measured as ``(t(max_iter=a+n) - t(max_iter=a)) / n``, which cancels
set-up, initialisation and the final E-step. Ratios are to scikit-learn
``KMeans(algorithm="lloyd")`` on the same in-memory array. The contenders take turns:
each round measures every one once, and the table gives the median time and the median
of the per-round ratios (with their range), because these virtual machines' speed
drifts a lot within minutes and a ratio of two measurements taken minutes apart
means little.

Rows (ours run ``algorithm="lloyd"``, every row assigned in every iteration, unless
marked "bounds": ``algorithm="auto"``, the default, whose per-row bounds skip rows that
cannot change centre; with ``tol=0`` from the same centres both make the same
iterations; how much bounds save grows as a fit converges, see
``scripts/benchmark_converge.py`` for whole fits):
- ours, threaded: numpy input, dask's threaded scheduler;
- ours, LocalCluster 2x1: 2 worker processes x 1 thread, data persisted;
- ours, <store> streamed: every iteration reads and decodes the compressed uint8 store
  (``cache=False``), for the store daskmeans writes and three written by zarr itself
  (v3 Blosc, v3 sharded zstd, v2);
- ours, <store> held: the default for a store that fits in memory: the decoded uint8
  blocks are read once per fit (a cost the marginal method cancels: it is printed
  apart, as "read and hold") and every iteration takes them from memory;
- dask-ml: ``dask_ml.cluster.KMeans`` on the same LocalCluster and persisted data;
- floor: the distance GEMM alone (``X @ -2C^T``, float32, the BLAS call every Lloyd
  implementation here makes), one block of rows per thread on as many threads as the
  machine has cores. No Lloyd pass can be faster without doing less arithmetic, so
  this row shows how far a target below it is out of reach.

Run it with the BLAS configuration you deploy: on these machines the environment forces
``OPENBLAS_CORETYPE=Haswell``; ``env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE`` lets
OpenBLAS pick its AVX-512 kernels, for every contender alike (README numbers).
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmark_results import add_out_argument, save_results


def marginal(fit: Callable[[int], object], base: int, extra: int) -> float:
    """Seconds per iteration, ``(t(base + extra) - t(base)) / extra``, each ``t`` the
    faster of two fits (a pause in one short fit would otherwise make the difference
    zero or negative: seen here for scikit-learn)."""
    times: dict[int, float] = {}
    for m in (base, base + extra) * 2:
        t0 = time.perf_counter()
        fit(m)
        times[m] = min(times.get(m, np.inf), time.perf_counter() - t0)
    return max((times[base + extra] - times[base]) / extra, 1e-9)


def gemm_floor(X: np.ndarray, C: np.ndarray) -> Callable[[], float]:
    """Seconds of the distance GEMM alone over ``X``, rows split evenly over the cores
    (one BLAS thread each), in blocks of the kernels' row block, like one pass."""
    import os
    from concurrent.futures import ThreadPoolExecutor

    from threadpoolctl import threadpool_limits

    from daskmeans.kernels.common import Centres

    cen = Centres(C, X.dtype)
    threads = os.cpu_count() or 1
    parts = np.array_split(X, threads)
    pool = ThreadPoolExecutor(threads)

    def gemm(part: np.ndarray) -> None:
        step, buf = cen.buffer(part.shape[0], part.dtype.itemsize)
        for s in range(0, part.shape[0], step):
            np.matmul(part[s : s + step], cen.m2t, out=buf[: part[s : s + step].shape[0]])

    def run() -> float:
        best = np.inf
        with threadpool_limits(1, user_api="blas"):
            for _ in range(2):
                t0 = time.perf_counter()
                list(pool.map(gemm, parts))
                best = min(best, time.perf_counter() - t0)
        return best

    return run


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", default="/usr/share/datasets/fashion-mnist",
                   help="directory of MNIST-format IDX files (uses the train split)")
    p.add_argument("--k", type=int, nargs="+", default=[10, 256])
    p.add_argument("--iters", type=int, default=10, help="extra iterations measured")
    p.add_argument("--repeat", type=int, default=5, help="interleaved rounds")
    p.add_argument("--no-cluster", action="store_true", help="skip LocalCluster rows")
    p.add_argument("--no-dask-ml", action="store_true")
    p.add_argument("--no-other-stores", action="store_true",
                   help="skip the stores written by zarr itself (v3 Blosc, sharded, v2)")
    add_out_argument(p, "lloyd-iteration")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("distributed").setLevel(logging.ERROR)

    import contextlib

    import dask
    import zarr
    from sklearn.cluster import KMeans as SKKMeans

    from daskmeans import KMeans, io, open_dataset, open_source

    tmp = Path(tempfile.mkdtemp(prefix="daskmeans-bench-"))
    store = io.ingest(args.data, tmp / "data.zarr", name="bench")
    split = "train" if "train" in zarr.open_group(store, mode="r").attrs["splits"] else "test"
    X = open_dataset(store, split)[0].compute()
    # the same rows in stores written by others: plain zarr v3 (Blosc), sharded zstd, v2
    from zarr.codecs import BloscCodec, ZstdCodec

    stores: dict[str, object] = {"our store": zarr.open_group(store, mode="r")[f"{split}/images"]}
    images = stores["our store"][...]  # type: ignore[index]
    if not args.no_other_stores:
        for name, kw in [
            ("zarr v3 Blosc", {"chunks": (5000, 28, 28), "compressors": BloscCodec()}),
            ("zarr v3 sharded zstd", {"chunks": (1000, 28, 28), "shards": (10000, 28, 28),
                                      "compressors": ZstdCodec(level=3)}),
            ("zarr v2", {"chunks": (5000, 28, 28), "zarr_format": 2}),
        ]:
            z = zarr.create_array(tmp / f"{len(stores)}.zarr", shape=images.shape,
                                  dtype="u1", attributes={"scale_factor": io.PIXEL_SCALE},
                                  **kw)  # pixels, as the ingested store says
            z[...] = images
            stores[name] = z
    n, d = X.shape
    print(f"data: {n} x {d} float32 from {args.data}; store {store}")

    client = cluster = None
    Xp = None
    if not args.no_cluster:
        from distributed import Client, LocalCluster

        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                               dashboard_address=None, host="127.0.0.1",
                               silence_logs=logging.ERROR)
        client = Client(cluster, set_as_default=False)
        Xp = X  # scattered to the workers once per fit (cancelled by the marginal method)

    def threads() -> contextlib.AbstractContextManager[object]:
        return dask.config.set(scheduler="threads")

    def on_cluster() -> contextlib.AbstractContextManager[object]:
        assert client is not None
        return client.as_current()  # type: ignore[no-any-return]

    # (name, fit(max_iter), context, rounds): every round measures each contender once,
    # in this order, so each ratio compares measurements seconds apart
    results: dict[str, dict[int, list[float]]] = {}
    ratios: dict[str, dict[int, list[float]]] = {}
    records: list[dict[str, Any]] = []
    for k in args.k:
        C0 = X[np.random.default_rng(0).choice(n, k, replace=False)]

        def sk(m: int, C0: np.ndarray = C0, k: int = k) -> object:
            return SKKMeans(k, init=C0, n_init=1, max_iter=m, tol=0, algorithm="lloyd").fit(X)

        def ours(data: object, C0: np.ndarray = C0, k: int = k,
                 algorithm: str = "lloyd") -> Callable[[int], object]:
            return lambda m: KMeans(k, init=C0, max_iter=m, tol=0,
                                    algorithm=algorithm).fit(data)

        contenders: list[tuple[str, Callable[[int], object], Callable[[], object], int]] = [
            ("scikit-learn (lloyd)", sk, contextlib.nullcontext, args.repeat),
            ("daskmeans threaded", ours(X), threads, args.repeat),
            ("daskmeans threaded, bounds", ours(X, algorithm="auto"), threads, args.repeat),
        ] + [(f"daskmeans {name} {how}", ours(open_source(z, cache=how == "held")),
              threads, args.repeat) for name, z in stores.items()
             for how in ("streamed", "held")]
        if Xp is not None:
            contenders.append(("daskmeans LocalCluster 2x1", ours(Xp), on_cluster, args.repeat))
            contenders.append(("daskmeans LocalCluster 2x1, bounds",
                               ours(Xp, algorithm="auto"), on_cluster, args.repeat))
            if not args.no_dask_ml:
                from dask_ml.cluster import KMeans as DMKMeans

                def dm(m: int, C0: np.ndarray = C0, k: int = k) -> object:
                    return DMKMeans(n_clusters=k, init=C0, max_iter=m, tol=0).fit(Xp)

                contenders.append(("dask-ml LocalCluster 2x1", dm, on_cluster, 1))
        floor = gemm_floor(X, C0)
        print(f"K={k}", flush=True)
        for _, fit, ctx, _ in contenders:  # warm-up: thread pools, imports, worker caches
            with ctx():
                fit(2)
        for r in range(args.repeat):
            ref = None
            for name, fit, ctx, rounds in contenders:
                if r >= rounds:
                    continue
                with ctx():
                    secs = marginal(fit, 2, args.iters if rounds > 1 else min(args.iters, 5))
                ref = secs if ref is None else ref
                results.setdefault(name, {}).setdefault(k, []).append(secs)
                ratios.setdefault(name, {}).setdefault(k, []).append(secs / ref)
                records.append({"contender": name, "k": k, "round": r, "seconds": secs,
                                **({"workers": 2} if "LocalCluster" in name else {})})
                print(f"  round {r} {name:<28} K={k:<4} {secs * 1000:8.1f} ms/iter "
                      f"({secs / ref:.2f}x)", flush=True)
            assert ref is not None
            secs = floor()
            name = "floor: distance GEMM alone"
            results.setdefault(name, {}).setdefault(k, []).append(secs)
            ratios.setdefault(name, {}).setdefault(k, []).append(secs / ref)
            records.append({"contender": name, "k": k, "round": r, "seconds": secs})
            print(f"  round {r} {name:<28} K={k:<4} {secs * 1000:8.1f} ms/pass "
                  f"({secs / ref:.2f}x)", flush=True)

    if client is not None:
        client.close()
        cluster.close()  # type: ignore[union-attr]
    print()
    print(f"Seconds per Lloyd iteration, {n} x {d} float32: median over {args.repeat} "
          "interleaved rounds; ratio = median of the per-round ratios to scikit-learn "
          "[range]")
    print()
    print("| contender | " + " | ".join(f"K={k}" for k in args.k) + " |")
    print("|---|" + "---|" * len(args.k))
    for name, vals in results.items():
        cells = []
        for k in args.k:
            if k not in vals:
                continue
            rs = ratios[name][k]
            rng = f" [{min(rs):.2f}-{max(rs):.2f}]" if len(rs) > 1 and min(rs) != max(rs) else ""
            cells.append(f"{np.median(vals[k]) * 1000:.0f} ms ({np.median(rs):.2f}x{rng})")
        print(f"| {name} | " + " | ".join(cells) + " |")
    memory = results["daskmeans threaded"]
    for name in [f"daskmeans {s} {h}" for s in stores for h in ("streamed", "held")]:
        stream = results.get(name, {})
        for k in args.k:
            if k in stream:  # the targets for stores are relative to in-memory
                rs = [a / b for a, b in zip(stream[k], memory[k], strict=True)]
                print(f"{name[10:]} / in-memory, K={k}: {np.median(rs):.2f}x "
                      f"[{min(rs):.2f}-{max(rs):.2f}] per round")
    print()
    from daskmeans.engine.hold import hold

    hold_seconds: dict[str, list[float]] = {}
    for name, z in stores.items():  # the once-per-fit cost the held rows cancel
        times = hold_seconds[name] = []
        for _ in range(3):
            t0 = time.perf_counter()
            with threads():
                hold(open_source(z, cache=True))
            times.append(time.perf_counter() - t0)
        print(f"read and hold, {name}: {np.median(times) * 1000:.0f} ms once per fit")
    save_results("lloyd-iteration", args, records, measure="seconds per iteration",
                 reference="scikit-learn (lloyd)", rows=n, features=d,
                 read_and_hold_seconds=hold_seconds)


if __name__ == "__main__":
    main()
