#!/usr/bin/env python
"""Seconds per Lloyd iteration on a multi-GB Zarr store: threaded scheduler vs a
LocalCluster of 2 workers x 1 thread, streamed and held in the workers' memory.

Usage::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python scripts/benchmark_big_store.py \\
        --data /usr/share/datasets/fashion-mnist --repeat-data 50 --k 64

The store holds Fashion-MNIST train repeated ``--repeat-data`` times (50: 3,000,000 x 784
uint8, 2.35 GB, 10,000-row chunks written by ``io.arrays_to_dataset``). Every contender
starts from the same centres with ``tol=0``; time per iteration is
``(t(max_iter=1+n) - t(max_iter=1)) / n``, contenders interleaved round by round; a
held store is read and held once per round before the two timed fits.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmark_results import add_out_argument, save_results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--repeat-data", type=int, default=50)
    p.add_argument("--k", type=int, default=64)
    p.add_argument("--iters", type=int, default=2)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--algorithm", default="lloyd", choices=["lloyd", "auto"])
    p.add_argument("--no-worker-profile", action="store_true",
                   help="start the LocalCluster with distributed's statistical profiler off "
                        "(distributed.worker.profile.enabled: False)")
    add_out_argument(p, "big-store")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("distributed").setLevel(logging.ERROR)

    import dask
    import zarr
    from distributed import Client, LocalCluster

    from daskmeans import KMeans, io, open_source
    from daskmeans.engine.hold import hold

    tmp = Path(tempfile.mkdtemp(prefix="daskmeans-big-"))
    small = io.ingest(args.data, tmp / "small.zarr", name="small")
    split = "train" if "train" in zarr.open_group(small, mode="r").attrs["splits"] else "test"
    g = zarr.open_group(small, mode="r")
    images, labels = g[f"{split}/images"][...], g[f"{split}/labels"][...]
    t0 = time.perf_counter()
    big = io.arrays_to_dataset(
        {"train": (np.concatenate([images] * args.repeat_data),
                   np.concatenate([labels] * args.repeat_data))},
        tmp / "big.zarr", name="big")
    n = images.shape[0] * args.repeat_data
    print(f"store: {n} x {images[0].size} uint8, "
          f"{n * images[0].size / 1e9:.2f} GB, written in {time.perf_counter() - t0:.0f} s",
          flush=True)
    C0 = images[np.random.default_rng(0).choice(len(images), args.k, replace=False)]
    C0 = C0.reshape(args.k, -1).astype(np.float32) / np.float32(255)

    profile = {"distributed.worker.profile.enabled": False} if args.no_worker_profile else {}
    with dask.config.set(profile):  # read by the workers when they start
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                               dashboard_address=None, host="127.0.0.1",
                               silence_logs=logging.ERROR)
    client = Client(cluster, set_as_default=False)

    @contextlib.contextmanager
    def threads() -> Iterator[None]:
        with dask.config.set(scheduler="threads"):
            yield

    def on_cluster() -> contextlib.AbstractContextManager[object]:
        return client.as_current()  # type: ignore[no-any-return]

    def fit(cache: bool) -> Callable[[int], float]:
        held: dict[str, Any] = {}

        def run(m: int) -> float:
            # a held store is read once per round, outside the timed fits (reading it
            # takes long and its variance would swamp the difference of two fits)
            if cache and m == 1:
                held["src"] = hold(open_source(big, "train", cache=True))
            src = held["src"] if cache else open_source(big, "train", cache=False)
            t = time.perf_counter()
            KMeans(args.k, init=C0, max_iter=m, tol=0, algorithm=args.algorithm).fit(src)
            return time.perf_counter() - t
        return run

    contenders = {
        "threaded, streamed": (fit(False), threads),
        "threaded, held": (fit(True), threads),
        "LocalCluster 2x1, streamed": (fit(False), on_cluster),
        "LocalCluster 2x1, held": (fit(True), on_cluster),
    }
    per_iter: dict[str, list[float]] = {name: [] for name in contenders}
    records: list[dict[str, Any]] = []
    with threads():  # untimed: the first fit on a just-written store is much slower
        fit(False)(1)
    for r in range(args.rounds):
        for name, (run, ctx) in contenders.items():
            with ctx():
                a = run(1)
                b = run(1 + args.iters)
            per_iter[name].append((b - a) / args.iters)
            records.append({"contender": name, "k": args.k, "round": r,
                            "seconds": per_iter[name][-1],
                            **({"workers": 2} if "LocalCluster" in name else {})})
            print(f"  round {r} {name:<28} {per_iter[name][-1]:7.2f} s/iteration "
                  f"(fit of 1 iteration {a:.1f} s)", flush=True)
    client.close()
    cluster.close()
    print(f"\nK={args.k}, {n} rows, algorithm={args.algorithm!r}, median of {args.rounds} "
          "rounds; ratios per round to threaded streamed, and to the threaded run of the "
          "same kind (streamed or held)"
          + ("; workers without distributed's profiler" if args.no_worker_profile else "")
          + "\n")
    print("| contender | s/iteration | vs threaded streamed | vs threaded, same kind |\n"
          "|---|---|---|---|")
    for name, v in per_iter.items():
        cells = []
        for ref_name in ("threaded, streamed",
                         "threaded, held" if "held" in name else "threaded, streamed"):
            rs = [a / b for a, b in zip(v, per_iter[ref_name], strict=True)]
            cells.append(f"{np.median(rs):.2f}x [{min(rs):.2f}-{max(rs):.2f}]")
        print(f"| {name} | {np.median(v):.2f} | {cells[0]} | {cells[1]} |")
    save_results("big-store", args, records, measure="seconds per iteration",
                 reference="threaded, streamed", rows=n)


if __name__ == "__main__":
    main()
