#!/usr/bin/env python
"""Scaling with workers: a whole KMeans fit of a Zarr store on 1 and 2 threads, and on
LocalClusters of 1 and 2 single-threaded worker processes.

Usage (Fashion-MNIST train: ``apt-get install dataset-fashion-mnist``)::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE \\
        python scripts/benchmark_workers.py --data /usr/share/datasets/fashion-mnist

The data are ingested into a temporary store once. Each contender fits the store
(``open_source``: its rows read and held where the fit runs, the k-means++ init, then
``--iters`` Lloyd iterations with ``tol=0``), so the time is the whole fit, read
included; the clusters are started before the rounds (their start-up is not timed),
and each round times every contender once, in turn. The table gives the median
seconds, the median per-round ratio to one thread, and the speed-up from 1 to 2 of the
same kind. On a machine of 2 cores, 2 is as far as this can scale.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from statistics import median
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmark_results import add_out_argument, save_results

REFERENCE = "daskmeans threaded 1x1"


@contextlib.contextmanager
def threaded(n: int) -> Iterator[None]:
    import dask

    with dask.config.set(scheduler="threads", num_workers=n):
        yield


@contextlib.contextmanager
def local_cluster(n: int) -> Iterator[None]:
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                      dashboard_address="127.0.0.1:0", host="127.0.0.1") as cluster, \
            Client(cluster, set_as_default=False) as client:
        yield client


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--k", type=int, default=64)
    p.add_argument("--iters", type=int, default=10, help="Lloyd iterations per fit")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--rows", type=int, default=0, help="use only this many rows (0: all)")
    p.add_argument("--no-cluster", action="store_true", help="threads only")
    add_out_argument(p, "workers")
    args = p.parse_args()

    import zarr

    from daskmeans import KMeans, io, open_source

    tmp = Path(tempfile.mkdtemp(prefix="daskmeans-workers-"))
    store = io.ingest(args.data, tmp / "data.zarr", name="bench")
    group = zarr.open_group(store, mode="r")
    split = "train" if "train" in group.attrs["splits"] else "test"
    if args.rows:  # a smaller store of the first rows
        images, labels = (group[f"{split}/{kind}"][:args.rows] for kind in ("images", "labels"))
        store = io.arrays_to_dataset({split: (images, labels)}, tmp / "rows.zarr", name="bench")

    def fit() -> Any:
        return KMeans(args.k, random_state=0, n_init=1, max_iter=args.iters, tol=0,
                      algorithm="lloyd").fit(open_source(store, split))

    with contextlib.ExitStack() as stack:
        contenders: dict[str, tuple[int, Any]] = {
            "daskmeans threaded 1x1": (1, lambda: threaded(1)),
            "daskmeans threaded 1x2": (2, lambda: threaded(2)),
        }
        if not args.no_cluster:
            for n in (1, 2):
                client = stack.enter_context(local_cluster(n))
                contenders[f"daskmeans LocalCluster {n}x1"] = (
                    n, lambda client=client: client.as_current())
        for _, enter in contenders.values():  # warm: compiled kernels, imports, workers
            with enter():
                fit()
        records: list[dict[str, Any]] = []
        for r in range(args.rounds):
            for name, (workers, enter) in contenders.items():
                with enter():
                    t0 = time.perf_counter()
                    km = fit()
                    seconds = time.perf_counter() - t0
                records.append({"contender": name, "workers": workers, "k": args.k,
                                "round": r, "seconds": seconds, "n_iter": int(km.n_iter_),
                                "inertia": float(km.inertia_)})
                print(f"  round {r} {name:<28} {seconds:7.2f} s  inertia {km.inertia_:.6g}")

    def seconds_of(name: str) -> list[float]:
        return [x["seconds"] for x in records if x["contender"] == name]

    print(f"\nSeconds for a whole fit of the store (read, hold, init, {args.iters} "
          f"iterations), K={args.k}, median of {args.rounds} interleaved rounds\n")
    print("| contender | seconds | ratio to one thread |")
    print("|---|---|---|")
    ref = seconds_of(REFERENCE)
    for name in contenders:
        got = seconds_of(name)
        ratio = median(g / f for g, f in zip(got, ref, strict=True))
        print(f"| {name} | {median(got):.2f} | {ratio:.2f}x |")
    save_results("workers", args, records, reference=REFERENCE,
                 measure=f"seconds for a whole fit (read, hold, init, {args.iters} "
                         "iterations)")


if __name__ == "__main__":
    main()
