#!/usr/bin/env python
"""Whole fits with several initialisations (``n_init``): runs sharing passes or not.

    python scripts/benchmark_ninit.py --data /usr/share/datasets/fashion-mnist --k 10

Contenders take turns, round by round, on the same data in one process: scikit-learn
``KMeans(init="random", n_init=N, algorithm="lloyd")`` on the in-memory array, and
daskmeans with the same parameters on that array and streaming from the Zarr store,
once with the runs sharing every pass (the default) and once one run per pass (the
behaviour before runs shared passes, forced through ``algorithms.solvers.RUNS_MAX_BYTES`` and
``algorithms.init.SAMPLES_MAX_BYTES``).
Prints the median seconds and ratio to scikit-learn, and each fit's inertia.

Run it with the BLAS configuration you deploy (see scripts/benchmark.py).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmark_results import add_out_argument, save_results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--n-init", type=int, default=10)
    p.add_argument("--rounds", type=int, default=3)
    add_out_argument(p, "ninit")
    args = p.parse_args()

    import dask
    import zarr
    from sklearn.cluster import KMeans as SKKMeans

    from daskmeans import KMeans, io, open_dataset, open_source
    from daskmeans.algorithms import init as initialisation
    from daskmeans.algorithms import solvers

    store = io.ingest(args.data, Path(tempfile.mkdtemp(prefix="daskmeans-ninit-")) / "d.zarr",
                      name="bench")
    split = "train" if "train" in zarr.open_group(store, mode="r").attrs["splits"] else "test"
    X = open_dataset(store, split)[0].compute()
    Xz = open_source(store, split)  # held in memory for the fit (the default)
    Xs = open_source(store, split, cache=False)  # read and decoded every pass
    shared = solvers.RUNS_MAX_BYTES, initialisation.SAMPLES_MAX_BYTES
    params = {"init": "random", "n_init": args.n_init, "random_state": 0}

    def ours(data: object, share: bool) -> Callable[[], float]:
        def fit() -> float:
            solvers.RUNS_MAX_BYTES, initialisation.SAMPLES_MAX_BYTES = shared if share else (1, 1)
            try:
                return float(KMeans(args.k, **params).fit(data).inertia_)
            finally:
                solvers.RUNS_MAX_BYTES, initialisation.SAMPLES_MAX_BYTES = shared
        return fit

    def sk() -> float:
        return float(SKKMeans(args.k, algorithm="lloyd", **params).fit(X).inertia_)

    contenders = {
        "scikit-learn": sk,
        "daskmeans, runs sharing passes": ours(X, True),
        "daskmeans, one run per pass": ours(X, False),
        "daskmeans from the store (held), runs sharing passes": ours(Xz, True),
        "daskmeans from the store (streamed), runs sharing passes": ours(Xs, True),
    }
    times: dict[str, list[float]] = {name: [] for name in contenders}
    records: list[dict[str, Any]] = []
    with dask.config.set(scheduler="threads"):
        for r in range(args.rounds):
            for name, fit in contenders.items():
                t0 = time.perf_counter()
                inertia = fit()
                times[name].append(time.perf_counter() - t0)
                records.append({"contender": name, "k": args.k, "round": r,
                                "seconds": times[name][-1], "inertia": inertia})
                print(f"  round {r} {name:<48} {times[name][-1]:6.2f} s "
                      f"inertia {inertia:.6g}", flush=True)
    ref = float(np.median(times["scikit-learn"]))
    print(f"\nK={args.k}, init='random', n_init={args.n_init}, {X.shape[0]} x {X.shape[1]}, "
          f"median of {args.rounds} rounds\n")
    print("| fit | seconds | vs scikit-learn |\n|---|---|---|")
    for name, ts in times.items():
        print(f"| {name} | {np.median(ts):.1f} | {np.median(ts) / ref:.2f}x |")
    save_results("ninit", args, records, measure="seconds per fit",
                 reference="scikit-learn", rows=int(X.shape[0]))


if __name__ == "__main__":
    main()
