#!/usr/bin/env python
"""Mini-batch vs Lloyd vs scikit-learn's MiniBatchKMeans: time and inertia, side by side.

    python scripts/benchmark_minibatch.py --data /usr/share/datasets/fashion-mnist --k 256

For every seed, on the same in-memory array in one process: daskmeans.KMeans
(k-means++, converged with tol=1e-4) as the reference inertia, scikit-learn's
MiniBatchKMeans with its defaults, and daskmeans.MiniBatchKMeans with its defaults and
with Lloyd refinement (``refine``). Prints mean and worst seconds and inertia relative
to the same seed's converged Lloyd fit, and time ratios to scikit-learn and to Lloyd.

Run it with the BLAS configuration you deploy: on these machines the environment forces
``OPENBLAS_CORETYPE=Haswell``; ``env -u OPENBLAS_CORETYPE`` lets OpenBLAS pick its
AVX-512 kernels, for every contender alike.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmark_results import add_out_argument, save_results

#: daskmeans.MiniBatchKMeans settings compared (besides its defaults).
RECIPES: dict[str, dict[str, Any]] = {
    "daskmeans.MiniBatchKMeans": {},
    "daskmeans.MiniBatchKMeans refine=3": {"refine": 3},
    "daskmeans.MiniBatchKMeans max_iter=1 refine=6": {"max_iter": 1, "refine": 6},
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--k", type=int, default=256)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    add_out_argument(p, "minibatch")
    args = p.parse_args()

    from sklearn.cluster import MiniBatchKMeans as SKMiniBatch

    from daskmeans import KMeans, MiniBatchKMeans, io, open_dataset

    store = io.ingest(args.data, Path(tempfile.mkdtemp()) / "d.zarr")
    import zarr

    split = "train" if "train" in zarr.open_group(store, mode="r").attrs["splits"] else "test"
    X = open_dataset(store, split)[0].compute()
    k = args.k
    # warm-up: thread pools, BLAS buffers
    MiniBatchKMeans(k, random_state=0, max_iter=1).fit(X)
    SKMiniBatch(k, random_state=0, max_iter=1).fit(X)

    results: dict[str, list[tuple[float, float]]] = {}
    records: list[dict[str, Any]] = []

    def timed(name: str, fit: Any, lloyd: float) -> float:
        t0 = time.perf_counter()
        est = fit()
        secs = time.perf_counter() - t0
        rel = float(est.inertia_) / lloyd - 1 if lloyd else 0.0
        results.setdefault(name, []).append((secs, rel))
        records.append({"contender": name, "k": k, "round": seed, "seed": seed,
                        "seconds": secs, "inertia": float(est.inertia_),
                        "inertia_vs_lloyd": rel})
        print(f"  {name:<48} {secs:6.2f}s  inertia {est.inertia_:.6g} ({rel:+.2%})", flush=True)
        return float(est.inertia_)

    for seed in args.seeds:
        print(f"seed {seed}")
        t0 = time.perf_counter()
        lloyd = float(KMeans(k, random_state=seed).fit(X).inertia_)
        results.setdefault("daskmeans.KMeans (lloyd, converged)", []).append(
            (time.perf_counter() - t0, 0.0))
        records.append({"contender": "daskmeans.KMeans (lloyd, converged)", "k": k,
                        "round": seed, "seed": seed,
                        "seconds": results["daskmeans.KMeans (lloyd, converged)"][-1][0],
                        "inertia": lloyd, "inertia_vs_lloyd": 0.0})
        print(f"  {'daskmeans.KMeans (lloyd, converged)':<48} "
              f"{results['daskmeans.KMeans (lloyd, converged)'][-1][0]:6.2f}s  "
              f"inertia {lloyd:.6g}", flush=True)
        timed("scikit-learn MiniBatchKMeans", lambda s=seed: SKMiniBatch(k, random_state=s).fit(X),
              lloyd)
        for name, params in RECIPES.items():
            timed(name, lambda s=seed, p=params: MiniBatchKMeans(k, random_state=s, **p).fit(X),
                  lloyd)

    sk = np.mean([t for t, _ in results["scikit-learn MiniBatchKMeans"]])
    ll = np.mean([t for t, _ in results["daskmeans.KMeans (lloyd, converged)"]])
    print(f"\n{X.shape[0]} x {X.shape[1]} float32, K={k}, seeds {args.seeds}; inertia relative"
          " to the same seed's converged Lloyd fit\n")
    print("| fit | seconds (mean / worst) | vs scikit-learn MB | vs Lloyd | inertia vs Lloyd"
          " (mean / worst) |")
    print("|---|---|---|---|---|")
    for name, rows in results.items():
        t = np.array([r[0] for r in rows])
        rel = np.array([r[1] for r in rows])
        print(f"| {name} | {t.mean():.2f} / {t.max():.2f} | {t.mean() / sk:.2f}x | "
              f"{t.mean() / ll:.2f}x | {rel.mean():+.2%} / {rel.max():+.2%} |")
    save_results("minibatch", args, records, measure="seconds per fit",
                 reference="scikit-learn MiniBatchKMeans", rows=int(X.shape[0]))


if __name__ == "__main__":
    main()
