#!/usr/bin/env python
"""Fit K-means on a Zarr store larger than the workers' memory, streaming it.

    python scripts/make_blobs.py /tmp/blobs20m.zarr --rows 20000000 --features 32
    python scripts/stream_fit.py /tmp/blobs20m.zarr --k 16 --memory-limit 1GiB

Runs on a LocalCluster (2 workers x 1 thread by default) with the given memory limit
per worker, and prints rows/second and the workers' peak RSS.
"""

from __future__ import annotations

import argparse
import logging
import time

import numpy as np


def worker_peak_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("store")
    p.add_argument("--k", type=int, default=16)
    p.add_argument("--algorithm", choices=["minibatch", "lloyd"], default="minibatch")
    p.add_argument("--max-iter", type=int, default=1, help="epochs (minibatch) or iterations")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--memory-limit", default="1GiB")
    args = p.parse_args()
    logging.getLogger("distributed").setLevel(logging.ERROR)

    from distributed import Client, LocalCluster

    from daskmeans import KMeans, MiniBatchKMeans, open_array

    X = open_array(args.store)
    print(f"data: {X.shape[0]:,} x {X.shape[1]} {X.dtype} = {X.nbytes / 2**30:.2f} GiB in "
          f"{X.numblocks[0]} chunks; workers: {args.workers} x {args.memory_limit}")
    with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                      memory_limit=args.memory_limit, dashboard_address=None,
                      host="127.0.0.1") as cluster, Client(cluster) as client:
        est_cls = MiniBatchKMeans if args.algorithm == "minibatch" else KMeans
        est = est_cls(n_clusters=args.k, max_iter=args.max_iter, random_state=0,
                      **({"tol": 0} if args.algorithm == "lloyd" else
                         {"max_no_improvement": None}))
        t0 = time.perf_counter()
        est.fit(X)
        secs = time.perf_counter() - t0
        rows = (sum(h["batch_rows"] for h in est.history_) if args.algorithm == "minibatch"
                else X.shape[0] * (est.n_iter_ + 1))
        peaks = client.run(worker_peak_mb)
        lost = cluster.scheduler.get_events("worker-memory") if hasattr(cluster, "scheduler") \
            else []
    print(f"{type(est).__name__}(K={args.k}): {secs:.1f}s, {rows / secs:,.0f} rows/s "
          f"({rows:,} rows through the kernel, plus init and the exact-inertia pass); "
          f"inertia {est.inertia_:.6g}")
    print("worker peak RSS (MB): " + ", ".join(f"{v:.0f}" for v in peaks.values()))
    if lost:
        print(f"memory events: {len(lost)}")
    print(f"centres span {np.ptp(est.cluster_centers_):.2f}")


if __name__ == "__main__":
    main()
