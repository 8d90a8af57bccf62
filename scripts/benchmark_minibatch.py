#!/usr/bin/env python
"""Mini-batch vs Lloyd vs scikit-learn's MiniBatchKMeans, time to a given inertia.

    python scripts/benchmark_minibatch.py --data /usr/share/datasets/fashion-mnist --k 256

Fits, side by side in one run on the same in-memory array: daskmeans.KMeans
(k-means++, converged with tol=1e-4), scikit-learn MiniBatchKMeans with its defaults,
daskmeans.MiniBatchKMeans with its defaults, and the latter followed by a few Lloyd
iterations from its centres. Prints seconds, inertia and inertia relative to Lloyd's.
"""

from __future__ import annotations

import argparse
import time


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--k", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--polish", type=int, default=3, help="Lloyd iterations after mini-batch")
    args = p.parse_args()

    import tempfile
    from pathlib import Path

    from sklearn.cluster import MiniBatchKMeans as SKMiniBatch

    from daskmeans import KMeans, MiniBatchKMeans, io

    store = io.ingest(args.data, Path(tempfile.mkdtemp()) / "d.zarr")
    X = io.open_dataset(store, "train")[0].compute()
    k, seed = args.k, args.seed
    rows = []

    def timed(name: str, fn) -> object:  # type: ignore[no-untyped-def]
        t0 = time.perf_counter()
        est = fn()
        rows.append((name, time.perf_counter() - t0, float(est.inertia_)))
        print(f"{name:<40} {rows[-1][1]:7.2f}s  inertia {rows[-1][2]:.6g}", flush=True)
        return est

    timed("daskmeans.KMeans (lloyd, converged)", lambda: KMeans(k, random_state=seed).fit(X))
    timed("scikit-learn MiniBatchKMeans", lambda: SKMiniBatch(k, random_state=seed).fit(X))
    t0 = time.perf_counter()
    mb = timed("daskmeans.MiniBatchKMeans", lambda: MiniBatchKMeans(k, random_state=seed).fit(X))
    t_mb = time.perf_counter() - t0
    t1 = time.perf_counter()
    pol = KMeans(k, init=mb.cluster_centers_, max_iter=args.polish, tol=0).fit(X)
    rows.append((f"  + {args.polish} Lloyd iterations", t_mb + time.perf_counter() - t1,
                 float(pol.inertia_)))
    lloyd = rows[0][2]
    print(f"\n{X.shape[0]} x {X.shape[1]}, K={k}\n")
    print("| fit | seconds | inertia | vs Lloyd |\n|---|---|---|---|")
    for name, secs, inertia in rows:
        print(f"| {name.strip()} | {secs:.2f} | {inertia:.6g} | {inertia / lloyd - 1:+.2%} |")


if __name__ == "__main__":
    main()
