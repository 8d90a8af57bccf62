#!/usr/bin/env python
"""K in the thousands: daskmeans vs scikit-learn, oneDAL and faiss, as an index's coarse
quantiser is trained.

Usage (Fashion-MNIST train: ``apt-get install dataset-fashion-mnist``; the peers:
``pip install scikit-learn-intelex faiss-cpu``)::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE \\
        python scripts/benchmark_largek.py --k 1024 4096 16384

Two data sets: Fashion-MNIST train (60,000 x 784 pixels scaled to [0, 1], a Zarr store
of uint8 rows) and a synthetic embedding-like store, ``--rows`` x ``--dim`` float32
written chunk by chunk (:func:`daskmeans.io.make_embeddings_zarr`): a mixture of
``--components`` Gaussians of varied sizes (Pareto weights) and spreads (log-normal),
every row normalised to unit length. ``--datasets``, ``--k``, ``--rows``, ``--dim`` and
``--only`` choose a subset (e.g. ``--datasets embeddings --k 16384 --rows 200000``).

For each data set and K, each contender runs in a process of its own, so that its
peak resident memory (``ru_maxrss``, data and imports included) is its own:

- from the same initial centres (``--seed`` picks K rows), to convergence (the default
  ``tol=1e-4``): scikit-learn Lloyd and Elkan, oneDAL, daskmeans (the store held);
- faiss, 25 iterations from those centres (``--faiss-iters``): its inertia is the
  *target* (without faiss, scikit-learn Lloyd's after as many iterations);
- daskmeans' whole fit with its own initialisation: the default (batched k-means++
  from K=1024), the classic greedy k-means++ (scikit-learn's seeding, as a callable
  init), random rows, and the default on at most 256 rows per centre
  (``max_points_per_centroid``, faiss's default): the seconds before the first
  iteration (holding the store's rows, then the init), to reach the target inertia
  (the pass of the iteration that reached it done) and to convergence.

For daskmeans' fits it also prints, per iteration, the machine-independent measure of
the pruning: the (row, centre) distances computed as a share of ``n K`` (what a
Lloyd iteration computes) and the rows read as a share of ``n``, and the iteration's
seconds (all three in the JSON: ``distance_fraction``, ``rows_read_fraction``,
``iteration_seconds``).

Every inertia is recomputed here in float64 from the returned centres and labels, the
same way for everyone. Results as JSON (``benchmark: largek``).
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmark_results import add_out_argument, save_results

#: contender -> (what it starts from, whether it is a peer to skip with --no-peers)
CONTENDERS = {
    "scikit-learn lloyd": ("same centres", False),
    "scikit-learn elkan": ("same centres", False),
    "scikit-learn-intelex (oneDAL)": ("same centres", True),
    "faiss": ("same centres", True),
    "daskmeans auto": ("same centres", False),
    "daskmeans default init": ("own init", False),
    "daskmeans classic k-means++": ("own init", False),
    "daskmeans random init": ("own init", False),
    "daskmeans default init, 256 rows per centre": ("own init", False),
}


def load_rows(spec: dict[str, Any]) -> np.ndarray:
    """The data set's rows as float32 in memory (what the peers fit)."""
    from daskmeans import open_array

    return np.ascontiguousarray(open_array(spec["store"], spec.get("split")).compute(),
                                dtype=np.float32)


def initial_centres(spec: dict[str, Any]) -> np.ndarray:
    """K rows picked by ``seed`` (read from the store, not from a copy in memory)."""
    from daskmeans import open_array

    X = open_array(spec["store"], spec.get("split"))
    idx = np.sort(np.random.default_rng(spec["seed"]).choice(X.shape[0], spec["k"],
                                                             replace=False))
    return np.asarray(X[idx].compute(), dtype=np.float32)


def inertia64(X: np.ndarray, C: np.ndarray, labels: np.ndarray) -> float:
    out = 0.0
    for s in range(0, len(X), 8192):
        diff = X[s:s + 8192].astype(np.float64) - np.asarray(C, np.float64)[labels[s:s + 8192]]
        out += float(np.einsum("ij,ij->", diff, diff))
    return out


def run_ours(spec: dict[str, Any], name: str) -> tuple[np.ndarray, Any, int, dict[str, Any]]:
    """A daskmeans fit of the store, with the time of every iteration's end."""
    import dask

    from daskmeans import KMeans, open_source
    from daskmeans.kernels.init import kmeans_plusplus

    k, seed, t0 = spec["k"], spec["seed"], time.perf_counter()
    marks: list[tuple[str, int, float]] = []

    def callback(phase: str, done: int, total: int | None, detail: str = "") -> None:
        marks.append((phase, done, time.perf_counter() - t0))

    def classic(sample: np.ndarray, n_clusters: int, random_state: Any) -> np.ndarray:
        rng = np.random.default_rng(random_state.randint(np.iinfo(np.int32).max))
        return kmeans_plusplus(sample, n_clusters, rng)

    pruning: list[dict[str, int]] = []

    class Counts(logging.Handler):
        """The bounded solver's per-iteration counts (its DEBUG record's ``pruning``)."""

        def emit(self, record: logging.LogRecord) -> None:
            if hasattr(record, "pruning"):
                pruning.append(record.pruning)

    logger = logging.getLogger("daskmeans.algorithms.bounded")
    logger.setLevel(logging.DEBUG)
    logger.addHandler(Counts())
    params: dict[str, Any] = {"max_iter": spec["max_iter"], "random_state": seed,
                              "callback": callback}
    if name == "daskmeans auto":
        params["init"] = initial_centres(spec)
        t0 = time.perf_counter()  # reading the initial centres is not the fit's
    elif name == "daskmeans classic k-means++":
        params |= {"init": classic, "n_init": 1}
    elif name == "daskmeans random init":
        params |= {"init": "random", "n_init": 1}
    elif name.endswith("256 rows per centre"):
        params["max_points_per_centroid"] = 256
    with dask.config.set(scheduler="threads"):
        m = KMeans(k, **params).fit(open_source(spec["store"], spec.get("split")))
        labels = np.asarray(m.labels_.compute() if hasattr(m.labels_, "compute") else m.labels_)
    seconds = time.perf_counter() - t0
    ends = {done: t for phase, done, t in marks if phase == "lloyd"}
    init_end = min((t for phase, _, t in marks if phase == "lloyd"), default=seconds)
    trajectory = [(ends.get(h["iteration"], seconds), h["inertia"]) for h in m.history_]
    # before the first iteration: holding the store's rows, then the init
    extra = {"seconds_before_iterations":
             init_end - (m.history_[0]["seconds"] if m.history_ else 0.0),
             "trajectory": trajectory,
             # machine-independent: per iteration, the (row, centre) distances computed
             # and the rows read, as shares of n K and n
             "distance_fraction": [p["distances"] / p["all_distances"] for p in pruning],
             "rows_read_fraction": [p["rows_read"] / p["rows"] for p in pruning],
             # each iteration's seconds (its pass and its update, on the client), so
             # that what an iteration costs beside its pass shows
             "iteration_seconds": [h["seconds"] for h in m.history_]}
    return m.cluster_centers_, labels, int(m.n_iter_), {"seconds": seconds, **extra}


def run_peer(spec: dict[str, Any], name: str, X: np.ndarray
             ) -> tuple[np.ndarray, Any, int, dict[str, Any]]:
    C0, k, max_iter = initial_centres(spec), spec["k"], spec["max_iter"]
    t0 = time.perf_counter()
    if name == "faiss":
        import faiss

        km = faiss.Kmeans(X.shape[1], k, niter=spec["faiss_iters"], verbose=False, seed=1,
                          max_points_per_centroid=X.shape[0])
        km.train(X, init_centroids=C0)
        C, labels, n_iter = km.centroids, km.index.search(X, 1)[1].ravel(), spec["faiss_iters"]
    else:
        if name.startswith("scikit-learn-intelex"):
            from sklearnex.cluster import KMeans as Estimator
            params: dict[str, Any] = {}
        else:
            from sklearn.cluster import KMeans as Estimator
            params = {"algorithm": name.rsplit(" ", 1)[1]}
        iters = spec.get("iters", max_iter)
        m = Estimator(k, init=C0, n_init=1, max_iter=iters, **params).fit(X)
        C, labels, n_iter = m.cluster_centers_, m.labels_, int(m.n_iter_)
    return C, labels, n_iter, {"seconds": time.perf_counter() - t0}


def worker(spec: dict[str, Any]) -> None:
    """One contender's fit in this process: prints its record as one JSON line."""
    name = spec["contender"]
    X = None if name.startswith("daskmeans") else load_rows(spec)
    if name.startswith("daskmeans"):
        from daskmeans.kernels import warm_up

        warm_up()  # compiled kernels loaded before the clock starts
        C, labels, n_iter, rec = run_ours(spec, name)
    else:
        C, labels, n_iter, rec = run_peer(spec, name, X)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # before our copy
    X = load_rows(spec) if X is None else X
    rec |= {"n_iter": n_iter, "inertia": inertia64(X, C, np.asarray(labels)),
            "peak_rss_bytes": peak}
    print("RECORD " + json.dumps(rec), flush=True)


def print_pruning(rec: dict[str, Any]) -> None:
    """The per-iteration shares of the distances computed (of n K) and of the rows
    read (of n), and the distances' share over the whole fit."""
    dist, read = rec["distance_fraction"], rec["rows_read_fraction"]
    print("      distances computed, share of n*K per iteration: "
          + " ".join(f"{v:.3f}" for v in dist), flush=True)
    print("      rows read, share per iteration:                 "
          + " ".join(f"{v:.3f}" for v in read), flush=True)
    print(f"      over the fit: {sum(dist) / len(dist):.4f} of the distances of as many "
          f"Lloyd iterations", flush=True)
    print("      seconds per iteration:                          "
          + " ".join(f"{v:.3f}" for v in rec["iteration_seconds"]), flush=True)


def contend(spec: dict[str, Any]) -> dict[str, Any] | None:
    """Run one contender in a fresh process; None if it failed (said why)."""
    p = subprocess.run([sys.executable, __file__, "--worker", json.dumps(spec)],
                       capture_output=True, text=True)
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("RECORD ")]
    if p.returncode or not lines:
        print(f"    {spec['contender']} failed:\n{p.stderr[-2000:]}", flush=True)
        return None
    return dict(json.loads(lines[-1][len("RECORD "):]))


def datasets(args: argparse.Namespace, tmp: Path) -> dict[str, dict[str, Any]]:
    """Where each data set is: a Fashion-MNIST store, the synthetic embeddings."""
    import zarr

    from daskmeans import io

    out: dict[str, dict[str, Any]] = {}
    if "fashion" in args.datasets:
        store = io.ingest(args.data, tmp / "fashion.zarr", name="bench")
        splits = zarr.open_group(store, mode="r").attrs["splits"]
        out["fashion"] = {"store": str(store), "split": "train" if "train" in splits else "test"}
    if "embeddings" in args.datasets:
        path = io.make_embeddings_zarr(tmp / "embeddings.zarr", args.rows, args.dim,
                                       components=args.components,
                                       chunk_rows=args.chunk_rows, random_state=args.seed)
        out["embeddings"] = {"store": str(path)}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--datasets", nargs="+", default=["fashion", "embeddings"],
                   choices=["fashion", "embeddings"])
    p.add_argument("--k", type=int, nargs="+", default=[1024, 4096, 16384])
    p.add_argument("--rows", type=int, default=1_000_000, help="embedding rows")
    p.add_argument("--dim", type=int, default=128, help="embedding features")
    p.add_argument("--components", type=int, default=2000, help="embedding mixture")
    p.add_argument("--chunk-rows", type=int, default=50_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-iter", type=int, default=300)
    p.add_argument("--faiss-iters", type=int, default=25)
    p.add_argument("--rounds", type=int, default=1,
                   help="interleaved rounds: each runs every contender once, in turn")
    p.add_argument("--no-peers", action="store_true", help="no oneDAL, no faiss")
    p.add_argument("--only", nargs="+", default=None, choices=list(CONTENDERS),
                   help="these contenders only")
    add_out_argument(p, "largek")
    args = p.parse_args()
    if args.worker:
        worker(json.loads(args.worker))
        return
    names = [n for n, (_, peer) in CONTENDERS.items()
             if (args.only is None or n in args.only) and not (peer and args.no_peers)]
    tmp = Path(tempfile.mkdtemp(prefix="daskmeans-largek-"))
    records: list[dict[str, Any]] = []
    for dname, where in datasets(args, tmp).items():
        for k in args.k:
            base = {**where, "k": k, "seed": args.seed, "max_iter": args.max_iter,
                    "faiss_iters": args.faiss_iters}
            print(f"{dname}, K={k}", flush=True)
            ref = "faiss" if "faiss" in names else "scikit-learn lloyd"
            target = contend({**base, "contender": ref, "iters": args.faiss_iters})
            for r, name in ((r, n) for r in range(args.rounds) for n in names):
                rec = contend({**base, "contender": name})
                if rec is None:
                    continue
                reached = [t for t, v in rec.pop("trajectory", [])
                           if target is not None and v <= target["inertia"]]
                rec |= {"contender": name, "dataset": dname, "k": k, "round": r,
                        "starts_from": CONTENDERS[name][0],
                        "target_inertia": None if target is None else target["inertia"],
                        "seconds_to_target": (rec["seconds"] if name == "faiss" else
                                              reached[0] if reached else None)}
                records.append(rec)
                to_t = rec["seconds_to_target"]
                print(f"  round {r} {name:<45} {rec['seconds']:8.2f} s  {rec['n_iter']:4d} it  "
                      f"inertia {rec['inertia']:.7g}  to target "
                      f"{'-' if to_t is None else f'{to_t:.2f} s'}  "
                      f"peak {rec['peak_rss_bytes'] / 2**20:.0f} MiB", flush=True)
                if rec.get("distance_fraction"):
                    print_pruning(rec)
    save_results("largek", args, records, measure="seconds to convergence (faiss: its "
                 "iterations); seconds_to_target: to the target inertia",
                 reference="faiss" if "faiss" in names else None)


if __name__ == "__main__":
    main()
