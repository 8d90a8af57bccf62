#!/usr/bin/env python
"""BisectingKMeans against scikit-learn's on the real MNIST test split: quality and time.

    python scripts/benchmark_bisecting.py --data ../shared/data/mnist       # K=16, 64
    python scripts/benchmark_bisecting.py --data ../shared/data/mnist --rows 400 --k 4 \\
        --seeds 1 --max-iter 3                                               # smoke

The 10,000 test images go to a temporary Zarr store (uint8); daskmeans fits the store
(rows read once and held, as a fit does by default) on dask's threaded scheduler,
scikit-learn the same images as a float32 array (pixels / 255, the values the store's
rows stand for), with the same settings (``init="random"``, ``n_init=1``, default
``tol`` and ``max_iter``, ``bisecting_strategy``) and the same ``random_state`` (which
draws other rows in each: compare the means over seeds). Per K, strategy and seed:
inertia (the ratio to scikit-learn's), purity, seconds; ours also rounds and passes
(the bisections of a round share each pass). Then the means per (K, strategy).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.cluster import BisectingKMeans as SKBisecting

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmark_results import add_out_argument, save_results

from daskmeans import BisectingKMeans, io, metrics, open_dataset, open_source

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "mnist"),
                   help="directory with the MNIST IDX files (the test split is used)")
    p.add_argument("--k", default="16,64", help="comma-separated numbers of clusters")
    p.add_argument("--strategies", default="biggest_inertia,largest_cluster")
    p.add_argument("--seeds", type=int, default=3, help="random_state 0 .. seeds-1")
    p.add_argument("--max-iter", type=int, default=300)
    p.add_argument("--rows", type=int, help="only the first ROWS test images (smoke runs)")
    add_out_argument(p, "bisecting")
    args = p.parse_args()
    ks = [int(k) for k in args.k.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        store = io.ingest(args.data, Path(tmp) / "mnist.zarr")
        if args.rows:
            imgs, lab = open_dataset(store, "test", scale=False)
            store = io.arrays_to_dataset(
                {"test": (imgs[:args.rows].compute(), lab[:args.rows].compute())},
                Path(tmp) / "small.zarr", name="mnist-head")
        X, y = (a.compute() for a in open_dataset(store, "test"))
        src = open_source(store, "test")
        # compiled kernels loaded (numba's disk cache) and dask started before timing
        BisectingKMeans(2, max_iter=2).fit(src)
        SKBisecting(2, max_iter=2).fit(X)
        print(f"MNIST test split: {X.shape[0]} x {X.shape[1]}, K in {ks}, seeds "
              f"0-{args.seeds - 1}, max_iter {args.max_iter}")
        print("| K | strategy | seed | contender | inertia | vs scikit-learn | purity "
              "| seconds | rounds / passes |")
        print("|---|---|---|---|---|---|---|---|---|")
        means: dict[tuple[int, str, str], list[tuple[float, float, float]]] = {}
        records: list[dict[str, Any]] = []
        for k in ks:
            for strategy in args.strategies.split(","):
                for seed in range(args.seeds):
                    params = {"bisecting_strategy": strategy, "random_state": seed,
                              "max_iter": args.max_iter}
                    t0 = time.perf_counter()
                    sk = SKBisecting(k, **params).fit(X)
                    t_sk = time.perf_counter() - t0
                    t0 = time.perf_counter()
                    ours = BisectingKMeans(k, **params).fit(src)
                    t_ours = time.perf_counter() - t0
                    rounds = len(ours.history_)
                    passes = sum(h["passes"] for h in ours.history_)
                    for name, est, secs, extra in (
                            ("scikit-learn", sk, t_sk, ""),
                            ("daskmeans", ours, t_ours, f"{rounds} / {passes}")):
                        labels = np.asarray(est.labels_.compute() if hasattr(
                            est.labels_, "compute") else est.labels_)
                        purity = metrics.evaluate(y, labels)["purity"]
                        ratio = est.inertia_ / sk.inertia_
                        print(f"| {k} | {strategy} | {seed} | {name} | {est.inertia_:.6g} | "
                              f"{ratio:.4f} | {purity:.4f} | {secs:.2f} | {extra} |",
                              flush=True)
                        means.setdefault((k, strategy, name), []).append(
                            (est.inertia_, purity, secs))
                        records.append({"contender": name, "k": k, "strategy": strategy,
                                        "seed": seed, "round": seed, "seconds": secs,
                                        "inertia": float(est.inertia_),
                                        "purity": float(purity)})
        print("\n| K | strategy | contender | mean inertia | vs scikit-learn | mean purity "
              "| mean seconds |")
        print("|---|---|---|---|---|---|---|")
        for (k, strategy, name), rows in means.items():
            m = np.mean(rows, axis=0)
            ref = np.mean(means[k, strategy, "scikit-learn"], axis=0)[0]
            print(f"| {k} | {strategy} | {name} | {m[0]:.6g} | {m[0] / ref:.4f} | "
                  f"{m[1]:.4f} | {m[2]:.2f} |")
    save_results("bisecting", args, records, measure="seconds per fit",
                 reference="scikit-learn", rows=int(X.shape[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
