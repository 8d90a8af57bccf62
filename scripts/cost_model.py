#!/usr/bin/env python
"""Seconds per Lloyd iteration against rows, K and workers (streaming from Zarr).

    python scripts/make_blobs.py /tmp/blobs20m.zarr --rows 20000000 --features 32
    python scripts/cost_model.py /tmp/blobs20m.zarr --workers 1 2 --k 16 256

Each fit starts from the same random rows, runs 3 iterations (tol=0) and reports the
median iteration time from ``history_``.
"""

from __future__ import annotations

import argparse
import logging

import numpy as np


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("store")
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    p.add_argument("--k", type=int, nargs="+", default=[16, 256])
    p.add_argument("--rows", type=int, nargs="+", default=[5_000_000, 20_000_000])
    p.add_argument("--memory-limit", default="2GiB")
    args = p.parse_args()
    logging.getLogger("distributed").setLevel(logging.ERROR)

    from distributed import Client, LocalCluster

    from daskmeans import KMeans, open_array

    X = open_array(args.store)
    print("| workers | rows | K | s/iteration | M rows/s |\n|---|---|---|---|---|")
    for w in args.workers:
        with LocalCluster(n_workers=w, threads_per_worker=1, memory_limit=args.memory_limit,
                          dashboard_address=None, host="127.0.0.1") as cl, Client(cl):
            for n in args.rows:
                Xn = X[:n]
                for k in args.k:
                    C0 = X[:k].compute()
                    km = KMeans(k, init=C0, max_iter=3, tol=0).fit(Xn)
                    s = float(np.median([h["seconds"] for h in km.history_]))
                    print(f"| {w} | {n:,} | {k} | {s:.2f} | {n / s / 1e6:.1f} |", flush=True)


if __name__ == "__main__":
    main()
