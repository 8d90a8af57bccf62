#!/usr/bin/env python
"""K-means on MNIST with and without a dask-ml PCA in front: time and majority accuracy.

    python scripts/pca_pipeline.py --data ../shared/data/mnist            # K=256, PCA(50)
    python scripts/pca_pipeline.py --rows 2000 --k 16 --components 10 --max-iter 3  # smoke

The MNIST test split (10,000 x 784, scaled to [0, 1], as a dask array) is cut in two:
the first ``1 - holdout`` of the rows are clustered, the rest held out. Each contender
fits on the first part; ``purity`` is the majority accuracy there (each cluster read as
its majority digit), ``held-out`` applies that cluster -> digit mapping to the held-out
rows. Contenders, in turn for ``--rounds`` rounds (median seconds reported):

- ``KMeans`` on the 784 pixels;
- ``Pipeline([("pca", dask_ml.decomposition.PCA(C)), ("km", KMeans)])`` on the same
  dask array: every K-means pass recomputes the projection of each block;
- the same with the projection persisted once (``PCA.fit_transform(X).persist()``, then
  ``KMeans``): what holding the PCA output would save.

Runs on dask's threaded scheduler in this process. Seconds are whole fits (PCA
included), single measurements per round: run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import dask
import numpy as np

from daskmeans import KMeans, io, metrics, open_dataset

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(DEFAULT_DATA), help="directory of the MNIST IDX files")
    p.add_argument("--k", type=int, default=256, help="clusters")
    p.add_argument("--components", type=int, default=50, help="PCA components")
    p.add_argument("--svd-solver", default="auto", choices=["auto", "tsqr", "randomized"],
                   help="dask-ml PCA solver ('auto' is dask-ml's default: randomized)")
    p.add_argument("--iterated-power", type=int, default=0,
                   help="power iterations of the randomized solver (dask-ml's default 0 is "
                        "inexact; daskmeans.plot.pca_view uses 4)")
    p.add_argument("--rows", type=int, default=0, help="use only the first ROWS rows (0: all)")
    p.add_argument("--holdout", type=float, default=0.2, help="fraction of rows held out")
    p.add_argument("--max-iter", type=int, default=300, help="K-means iterations at most")
    p.add_argument("--rounds", type=int, default=1, help="rounds (median seconds)")
    p.add_argument("--seed", type=int, default=0, help="random_state")
    args = p.parse_args()

    import dask_ml.decomposition
    from sklearn.pipeline import Pipeline

    with tempfile.TemporaryDirectory() as tmp:
        store = io.ingest(args.data, Path(tmp) / "mnist.zarr", chunk_rows=2500)
        X, y = open_dataset(store, "test")
        if args.rows:
            X, y = X[:args.rows], y[:args.rows]
        cut = int(X.shape[0] * (1 - args.holdout))
        Xf, yf, Xh, yh = X[:cut], y[:cut].compute(), X[cut:], y[cut:].compute()
        km = {"n_clusters": args.k, "random_state": args.seed, "max_iter": args.max_iter}

        def pca() -> Any:
            return dask_ml.decomposition.PCA(args.components, svd_solver=args.svd_solver,
                                             iterated_power=args.iterated_power,
                                             random_state=args.seed)

        def plain() -> Any:
            return KMeans(**km).fit(Xf)

        def pipeline() -> Any:
            return Pipeline([("pca", pca()), ("km", KMeans(**km))]).fit(Xf)

        def persisted() -> Any:
            pc = pca()
            Z = pc.fit_transform(Xf).persist()
            return Pipeline([("pca", pc), ("km", KMeans(**km).fit(Z))])

        contenders = {
            "KMeans on the pixels": plain,
            f"PCA({args.components}) -> KMeans pipeline": pipeline,
            f"PCA({args.components}), projection persisted, then KMeans": persisted,
        }
        times: dict[str, list[float]] = {name: [] for name in contenders}
        scores: dict[str, tuple[float, float, int]] = {}
        with dask.config.set(scheduler="threads"):
            for r in range(args.rounds):
                for name, fit in contenders.items():
                    t0 = time.perf_counter()
                    model = fit()
                    times[name].append(time.perf_counter() - t0)
                    est = model if isinstance(model, KMeans) else model.named_steps["km"]
                    labels = np.asarray(dask.compute(est.labels_)[0])
                    mapping = metrics.infer_cluster_labels(yf, labels)
                    held = metrics.cluster_accuracy(yh, np.asarray(
                        dask.compute(model.predict(Xh))[0]), mapping)
                    scores[name] = (metrics.purity_score(yf, labels), held, int(est.n_iter_))
                    print(f"round {r} {name}: {times[name][-1]:.2f} s, "
                          f"{est.n_iter_} iterations", flush=True)
    print(f"\nMNIST test split, {cut} rows fitted + {X.shape[0] - cut} held out, K={args.k}, "
          f"seed {args.seed}, dask-ml PCA svd_solver={args.svd_solver!r} "
          f"iterated_power={args.iterated_power}, median of "
          f"{args.rounds} round(s)\n")
    print("| contender | seconds | iterations | purity (fitted rows) | held-out accuracy |")
    print("|---|---|---|---|---|")
    for name in contenders:
        pur, held, it = scores[name]
        print(f"| {name} | {statistics.median(times[name]):.2f} | {it} | {pur:.4f} | "
              f"{held:.4f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
