#!/usr/bin/env python
"""k-medians (``metric="manhattan"``) next to k-means (euclidean) on the real MNIST test
split: purity and majority-mapping accuracy, per K and seed.

Purity is the majority mapping's accuracy on the labels it was learned from; the
held-out accuracy learns each cluster's majority digit on the even rows and scores
the odd rows (and the other way round; the mean of both), the clustering being fitted
on all rows (only the test split's images are available here).

    python scripts/kmedians_quality.py --data ../shared/data/mnist          # K=10, 256
    python scripts/kmedians_quality.py --data ../shared/data/mnist --rows 500 --k 3 \\
        --max-iter 2 --seeds 1                                              # smoke

The 10,000 test images are ingested into a temporary Zarr store (uint8) and fitted from
it: k-medians then takes the store's raw pixels (exact medians, 2 passes per
iteration). Both metrics start from their own k-means++ seeding (squared Euclidean or
L1 distances) with the same ``random_state``, default ``tol`` and ``max_iter``.
Objectives are not comparable across metrics (squared L2 vs L1): each row reports its
own. Prints one markdown table, then the mean per (K, metric) over the seeds.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from daskmeans import KMeans, io, metrics, open_dataset, open_source

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "mnist"),
                   help="directory with the MNIST IDX files (the test split is used)")
    p.add_argument("--k", default="10,256", help="comma-separated numbers of clusters")
    p.add_argument("--seeds", type=int, default=3, help="random_state 0 .. seeds-1")
    p.add_argument("--max-iter", type=int, default=300)
    p.add_argument("--rows", type=int, help="only the first ROWS test images (smoke runs)")
    args = p.parse_args()
    ks = [int(k) for k in args.k.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        store = io.ingest(args.data, Path(tmp) / "mnist.zarr")
        if args.rows:
            X, y = open_dataset(store, "test", scale=False)
            store = io.arrays_to_dataset(
                {"test": (X[:args.rows].compute(), y[:args.rows].compute())},
                Path(tmp) / "small.zarr", name="mnist-head")
        y = open_dataset(store, "test")[1].compute()
        src = open_source(store, "test")
        print(f"MNIST test split: {src.n} x {src.d} uint8, K in {ks}, seeds "
              f"0-{args.seeds - 1}, max_iter {args.max_iter}")
        print("| K | metric | seed | purity | held-out majority accuracy | objective "
              "| iterations | seconds |")
        print("|---|---|---|---|---|---|---|---|")
        table: dict[tuple[int, str], list[tuple[float, float, float]]] = {}
        for k in ks:
            for metric in ("euclidean", "manhattan"):
                for seed in range(args.seeds):
                    t0 = time.perf_counter()
                    km = KMeans(k, metric=metric, random_state=seed,
                                max_iter=args.max_iter).fit(src)
                    secs = time.perf_counter() - t0
                    lab = km.labels_.compute()
                    purity = metrics.evaluate(y, lab)["purity"]
                    held = np.mean([
                        metrics.cluster_accuracy(
                            y[b::2], lab[b::2],
                            mapping=metrics.infer_cluster_labels(y[a::2], lab[a::2]))
                        for a, b in ((0, 1), (1, 0))])
                    kind = "SSE" if metric == "euclidean" else "L1"
                    print(f"| {k} | {metric} | {seed} | {purity:.4f} | {held:.4f} | "
                          f"{kind} {km.inertia_:.6g} | {km.n_iter_} | {secs:.1f} |",
                          flush=True)
                    table.setdefault((k, metric), []).append((purity, held, secs))
        print("\n| K | metric | mean purity | mean held-out accuracy | mean seconds (fit) |")
        print("|---|---|---|---|---|")
        for (k, metric), rows in table.items():
            m = np.mean(rows, axis=0)
            print(f"| {k} | {metric} | {m[0]:.4f} | {m[1]:.4f} | {m[2]:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
