#!/usr/bin/env python
"""Seconds per Lloyd iteration: daskmeans vs scikit-learn vs dask-ml, side by side.

Usage (Fashion-MNIST train: ``apt-get install dataset-fashion-mnist``)::

    python scripts/benchmark.py --data /usr/share/datasets/fashion-mnist --k 10 256

Every contender starts from the same initial centres with ``tol=0``. Time per
iteration is measured as ``(t(max_iter=a+n) - t(max_iter=a)) / n``, which cancels
set-up, initialisation and the final E-step. Ratios are to scikit-learn
``KMeans(algorithm="lloyd")`` on the same in-memory array, measured in this run.

Rows:
- ours, threaded: numpy input, dask's threaded scheduler;
- ours, LocalCluster 2x1: 2 worker processes x 1 thread, data persisted;
- ours, Zarr stream: every iteration reads the compressed uint8 store (not persisted);
- dask-ml: ``dask_ml.cluster.KMeans`` on the same LocalCluster and persisted data.

Run it with the BLAS configuration you deploy: on these machines the environment forces
``OPENBLAS_CORETYPE=Haswell``; ``env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE`` lets
OpenBLAS pick its AVX-512 kernels, for every contender alike (README numbers).
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np


def per_iteration(fit: Callable[[int], object], base: int, extra: int, repeat: int) -> float:
    """Best-of-``repeat`` marginal seconds per iteration."""
    fit(base)  # warm-up: thread pools, imports, worker caches
    best = np.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        fit(base)
        t1 = time.perf_counter()
        fit(base + extra)
        t2 = time.perf_counter()
        best = min(best, ((t2 - t1) - (t1 - t0)) / extra)
    return max(best, 1e-9)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", default="/usr/share/datasets/fashion-mnist",
                   help="directory of MNIST-format IDX files (uses the train split)")
    p.add_argument("--k", type=int, nargs="+", default=[10, 256])
    p.add_argument("--iters", type=int, default=10, help="extra iterations measured")
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--no-cluster", action="store_true", help="skip LocalCluster rows")
    p.add_argument("--no-dask-ml", action="store_true")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("distributed").setLevel(logging.ERROR)

    import dask
    from sklearn.cluster import KMeans as SKKMeans

    from daskmeans import KMeans, io

    tmp = Path(tempfile.mkdtemp(prefix="daskmeans-bench-"))
    store = io.ingest(args.data, tmp / "data.zarr", name="bench")
    Xz, _ = io.open_dataset(store, "train" if "train" in io._open_group(store) else "test")
    X = Xz.compute()
    n, d = X.shape
    print(f"data: {n} x {d} float32 from {args.data}; store {store}")

    rows: dict[str, dict[int, float]] = {}

    def record(name: str, k: int, secs: float) -> None:
        rows.setdefault(name, {})[k] = secs
        print(f"  {name:<28} K={k:<4} {secs * 1000:8.1f} ms/iter", flush=True)

    client = cluster = None
    if not args.no_cluster:
        from distributed import Client, LocalCluster

        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                               dashboard_address=None, host="127.0.0.1")
        client = Client(cluster, set_as_default=False)

    for k in args.k:
        C0 = X[np.random.default_rng(0).choice(n, k, replace=False)]
        print(f"K={k}")

        def sk(m: int, C0: np.ndarray = C0, k: int = k) -> object:
            return SKKMeans(k, init=C0, n_init=1, max_iter=m, tol=0, algorithm="lloyd").fit(X)

        record("scikit-learn (lloyd)", k, per_iteration(sk, 2, args.iters, args.repeat))

        def ours(m: int, C0: np.ndarray = C0, k: int = k, data: object = X) -> object:
            return KMeans(k, init=C0, max_iter=m, tol=0).fit(data)

        with dask.config.set(scheduler="threads"):
            record("daskmeans threaded", k, per_iteration(ours, 2, args.iters, args.repeat))
            record("daskmeans Zarr stream", k,
                   per_iteration(lambda m, C0=C0, k=k: ours(m, C0, k, Xz), 2, args.iters,
                                 args.repeat))
        if client is not None:
            with client.as_current():
                from daskmeans import _reduce

                Xp = _reduce.scatter_rows(X)  # persisted, chunks spread over the workers
                record("daskmeans LocalCluster 2x1", k,
                       per_iteration(lambda m, C0=C0, k=k, Xp=Xp: ours(m, C0, k, Xp), 2, args.iters,
                                     args.repeat))
                if not args.no_dask_ml:
                    from dask_ml.cluster import KMeans as DMKMeans

                    def dm(m: int, C0: np.ndarray = C0, k: int = k, Xp: object = Xp) -> object:
                        return DMKMeans(n_clusters=k, init=C0, max_iter=m, tol=0).fit(Xp)

                    record("dask-ml LocalCluster 2x1", k,
                           per_iteration(dm, 2, min(args.iters, 5), 1))

    if client is not None:
        client.close()
        cluster.close()  # type: ignore[union-attr]
    ref = rows["scikit-learn (lloyd)"]
    print()
    print(f"Seconds per Lloyd iteration, {n} x {d} float32, ratio to scikit-learn")
    print()
    print("| contender | " + " | ".join(f"K={k}" for k in args.k) + " |")
    print("|---|" + "---|" * len(args.k))
    for name, vals in rows.items():
        cells = [f"{vals[k] * 1000:.0f} ms ({vals[k] / ref[k]:.2f}x)" for k in args.k if k in vals]
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
