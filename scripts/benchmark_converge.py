#!/usr/bin/env python
"""Seconds to a converged model: daskmeans vs scikit-learn, oneDAL, faiss, dask-ml.

Usage (Fashion-MNIST train: ``apt-get install dataset-fashion-mnist``; the peers:
``pip install scikit-learn-intelex faiss-cpu dask-ml``)::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE \\
        python scripts/benchmark_converge.py --data /usr/share/datasets/fashion-mnist --k 10 256

Every contender starts from the same initial centres (``--seed`` picks K rows) with
the default tolerance (``tol=1e-4`` relative to the mean feature variance, as
scikit-learn) and ``max_iter=300``, and runs to convergence; each round times every
contender once, in turn, and the table gives the median seconds, the median of the
per-round ratios to scikit-learn ``KMeans(algorithm="lloyd")`` with their range, the
iterations and the final inertia (recomputed here in float64 from the returned centres
and labels, the same way for everyone). faiss has no tolerance: it runs as many
iterations as scikit-learn's Lloyd needed. Peers that are not installed are skipped.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmark_results import add_out_argument, save_results


def inertia64(X: np.ndarray, C: np.ndarray, labels: np.ndarray) -> float:
    out = 0.0
    for s in range(0, len(X), 8192):
        diff = X[s:s + 8192].astype(np.float64) - np.asarray(C, np.float64)[labels[s:s + 8192]]
        out += float(np.einsum("ij,ij->", diff, diff))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--k", type=int, nargs="+", default=[10, 256])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-iter", type=int, default=300)
    p.add_argument("--no-peers", action="store_true", help="only scikit-learn and ours")
    p.add_argument("--no-warm-up", action="store_true",
                   help="skip compiling every kernel first (smoke runs)")
    add_out_argument(p, "converge")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)

    import dask
    import zarr
    from sklearn.cluster import KMeans as SKKMeans

    from daskmeans import KMeans, io, open_dataset, open_source

    tmp = Path(tempfile.mkdtemp(prefix="daskmeans-converge-"))
    store = io.ingest(args.data, tmp / "data.zarr", name="bench")
    split = "train" if "train" in zarr.open_group(store, mode="r").attrs["splits"] else "test"
    X = open_dataset(store, split)[0].compute()
    n, d = X.shape
    print(f"data: {n} x {d} float32 from {args.data}", flush=True)

    Fit = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray, int]]  # C0 -> C, labels, it

    def sk(algorithm: str) -> Fit:
        def fit(C0: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
            m = SKKMeans(len(C0), init=C0, n_init=1, max_iter=args.max_iter,
                         algorithm=algorithm).fit(X)
            return m.cluster_centers_, m.labels_, int(m.n_iter_)
        return fit

    def ours(data: Any, algorithm: str) -> Fit:
        def fit(C0: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
            with dask.config.set(scheduler="threads"):
                m = KMeans(len(C0), init=C0, max_iter=args.max_iter,
                           algorithm=algorithm).fit(data)
                labels = np.asarray(m.labels_) if not hasattr(m.labels_, "compute") else \
                    m.labels_.compute()
            return m.cluster_centers_, labels, int(m.n_iter_)
        return fit

    contenders: dict[str, Fit] = {
        "scikit-learn lloyd": sk("lloyd"),
        "scikit-learn elkan": sk("elkan"),
    }
    if not args.no_peers:
        with contextlib.suppress(ImportError):
            from sklearnex.cluster import KMeans as XKMeans

            def onedal(C0: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
                m = XKMeans(len(C0), init=C0, n_init=1, max_iter=args.max_iter).fit(X)
                return m.cluster_centers_, m.labels_, int(m.n_iter_)

            contenders["scikit-learn-intelex (oneDAL)"] = onedal
    contenders |= {
        "daskmeans lloyd, in memory": ours(X, "lloyd"),
        "daskmeans auto (bounds), in memory": ours(X, "auto"),
        "daskmeans auto, Zarr store held": ours(open_source(store, split), "auto"),
        "daskmeans auto, Zarr store streamed": ours(open_source(store, split, cache=False),
                                                    "auto"),
    }
    sk_iters: dict[int, int] = {}
    if not args.no_peers:
        with contextlib.suppress(ImportError):
            import faiss

            def faiss_fit(C0: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
                it = sk_iters[len(C0)]
                km = faiss.Kmeans(d, len(C0), niter=it, verbose=False, seed=1,
                                  max_points_per_centroid=n)
                km.train(X, init_centroids=C0)
                return km.centroids, km.index.search(X, 1)[1].ravel(), it

            contenders["faiss (scikit-learn's iterations)"] = faiss_fit
        with contextlib.suppress(ImportError):
            import dask.array as da
            from dask_ml.cluster import KMeans as DMKMeans

            Xd = da.from_array(X, chunks=(n // 2, d)).persist()

            def daskml(C0: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
                with dask.config.set(scheduler="threads"):
                    m = DMKMeans(n_clusters=len(C0), init=C0, max_iter=args.max_iter,
                                 tol=1e-4).fit(Xd)
                    return m.cluster_centers_, np.asarray(m.labels_), int(m.n_iter_)

            contenders["dask-ml (threaded)"] = daskml

    rows: dict[str, dict[int, list[tuple[float, float, int, float]]]] = {}
    # compiled kernels loaded (or compiled, after an upgrade) before any timing: else
    # round 0 pays the compilation in our first fit
    if not args.no_warm_up:
        from daskmeans.kernels import warm_up

        print(f"compiled kernels ready in {warm_up():.1f} s", flush=True)
    records: list[dict[str, Any]] = []
    for k in args.k:
        C0 = X[np.random.default_rng(args.seed).choice(n, k, replace=False)]
        print(f"K={k}", flush=True)
        for r in range(args.rounds):
            ref = None
            for name, fit in contenders.items():
                if name.startswith("dask-ml") and r > 0:
                    continue  # one round: it is an order of magnitude slower
                t0 = time.perf_counter()
                C, labels, it = fit(C0)
                secs = time.perf_counter() - t0
                if name == "scikit-learn lloyd":
                    sk_iters[k] = it
                ref = secs if ref is None else ref
                inertia = inertia64(X, C, labels)
                rows.setdefault(name, {}).setdefault(k, []).append(
                    (secs, secs / ref, it, inertia))
                records.append({"contender": name, "k": k, "round": r, "seconds": secs,
                                "n_iter": it, "inertia": inertia})
                print(f"  round {r} {name:<38} {secs:7.2f} s ({secs / ref:.2f}x) "
                      f"{it:4d} iterations, inertia {inertia:.7g}", flush=True)
    print()
    print(f"Seconds to convergence, {n} x {d} float32, median over {args.rounds} "
          "interleaved rounds; ratio = median of per-round ratios to scikit-learn lloyd "
          "[range]; iterations; inertia (float64)")
    print()
    print("| contender | " + " | ".join(f"K={k}" for k in args.k) + " |")
    print("|---|" + "---|" * len(args.k))
    for name, by_k in rows.items():
        cells = []
        for k in args.k:
            v = by_k.get(k, [])
            if not v:
                cells.append("")
                continue
            rs = [x[1] for x in v]
            rng = f" [{min(rs):.2f}-{max(rs):.2f}]" if len(rs) > 1 else ""
            cells.append(f"{np.median([x[0] for x in v]):.2f} s ({np.median(rs):.2f}x{rng}), "
                         f"{v[0][2]} it, {v[0][3]:.6g}")
        print(f"| {name} | " + " | ".join(cells) + " |")
    save_results("converge", args, records, measure="seconds to convergence",
                 reference="scikit-learn lloyd", rows=n, features=d)


if __name__ == "__main__":
    main()
