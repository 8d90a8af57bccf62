#!/usr/bin/env python
"""MiniBatchKMeans, BisectingKMeans and k-medians: seconds per fit and inertia against
scikit-learn (and dask-ml), in memory, from a Zarr store and on a LocalCluster.

Usage (Fashion-MNIST train: ``apt-get install dataset-fashion-mnist``)::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE \\
        python scripts/benchmark_algorithms.py --data /usr/share/datasets/fashion-mnist

The images are ingested into a temporary Zarr store (uint8) once; the in-memory
contenders fit the same images as a float32 array (pixels / 255, the values the
store's rows stand for). Every contender runs with its estimator's defaults and the
round's ``random_state`` (seeds 0 .. ``--seeds - 1``, one round each); each round times
every contender once, in turn, so that a slow spell of the machine falls on all of
them. The cases:

- ``MiniBatchKMeans`` (K in ``--k-minibatch``): scikit-learn's in memory; ours in
  memory, from the store, from a dask array (``--chunk-rows`` rows a block) and on a
  LocalCluster; dask-ml's ``Incremental`` wrapping scikit-learn's ``MiniBatchKMeans``
  on the same dask array (one ``partial_fit`` per block, one pass). The inertia of
  every mini-batch contender is recomputed here the same way (float64, each row to
  its nearest centre).
- ``BisectingKMeans`` (K in ``--k-bisecting``): scikit-learn's in memory; ours in
  memory, from the store and on a LocalCluster; the inertia is each model's own (the
  SSE of the rows to the leaf they reach).
- ``k-medians`` (K in ``--k-medians``): ``KMeans(metric="manhattan")`` beside
  ``KMeans()`` (Euclidean) with the same placement, its cost the ratio of their times
  (objectives differ: L1 distances against squared L2).

The LocalCluster (``--workers`` single-threaded worker processes) is started before
the rounds and reads the store itself. The tables give the mean over the seeds of the
seconds and of the inertia, and the mean per-round ratio to the reference (scikit-learn
in memory; for k-medians, the Euclidean fit of the same placement). Results go out as
JSON (``--out``).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmark_results import add_out_argument, save_results

REFERENCE = "scikit-learn"
#: contenders of the k-medians case: its cost is the second's time over the first's
EUCLIDEAN, MANHATTAN = "daskmeans euclidean", "daskmeans manhattan"


def _later(f: Callable[..., float], *args: Any) -> Callable[[], float]:
    """``f(*args)``, when called: an inertia computed after the clock stops."""
    return lambda: f(*args)


def nearest_inertia(X: np.ndarray, C: np.ndarray) -> float:
    """Sum of squared distances (float64) of the rows to their nearest centre."""
    C = np.asarray(C, np.float64)
    csq = (C ** 2).sum(1)
    out = 0.0
    for s in range(0, len(X), 8192):
        x = X[s:s + 8192].astype(np.float64)
        d = (x ** 2).sum(1)[:, None] - 2 * x @ C.T + csq
        out += float(np.maximum(d.min(1), 0).sum())
    return out


def labels_of(model: Any) -> Any:
    return model.labels_.compute() if hasattr(model.labels_, "compute") else model.labels_


@contextlib.contextmanager
def local_cluster(n: int) -> Iterator[Any]:
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                      dashboard_address="127.0.0.1:0", host="127.0.0.1") as cluster, \
            Client(cluster, set_as_default=False) as client:
        yield client


def parse_ks(text: str) -> list[int]:
    return [int(k) for k in text.split(",") if k.strip()]


#: (case, contender, where) -> fit(seed) -> inertia
#: each contender fits with a seed and returns how to get its inertia, which is computed
#: after the clock stops (the nearest-centre pass is not part of a fit)
Contenders = dict[tuple[str, str, str], Callable[[int], Callable[[], float]]]


def build(args: argparse.Namespace, X: np.ndarray, store: Path, split: str,
          client: Any) -> list[tuple[str, int, Contenders]]:
    """Each case and K with its contenders, in the order a round times them."""
    import dask
    import dask.array as da
    from dask_ml.wrappers import Incremental
    from sklearn.cluster import BisectingKMeans as SKBisecting
    from sklearn.cluster import MiniBatchKMeans as SKMiniBatch

    from daskmeans import BisectingKMeans, KMeans, MiniBatchKMeans, open_source

    Xd = da.from_array(X, chunks=(args.chunk_rows, X.shape[1]))

    def threads() -> Any:
        return dask.config.set(scheduler="threads")

    places: dict[str, Callable[[], Any]] = {"in memory": threads, "Zarr store": threads}
    data: dict[str, Callable[[], Any]] = {"in memory": lambda: X,
                                          "Zarr store": lambda: open_source(store, split)}
    if client is not None:
        where = f"LocalCluster {args.workers}x1"
        places[where] = client.as_current
        data[where] = lambda: open_source(store, split)

    def ours(make: Callable[[], Any], get: Callable[[], Any], enter: Any,
             inertia: Callable[[Any], float]) -> Callable[[int], Callable[[], float]]:
        def fit(seed: int) -> Callable[[], float]:
            with enter():
                model = make().set_params(random_state=seed).fit(get())
                labels_of(model)  # lazy labels are part of a fit's result
            return lambda: inertia(model)
        return fit

    def mb_inertia(model: Any) -> float:
        return nearest_inertia(X, model.cluster_centers_)

    def own_inertia(model: Any) -> float:
        return float(model.inertia_)

    cases: list[tuple[str, int, Contenders]] = []
    for k in parse_ks(args.k_minibatch):
        c: Contenders = {("MiniBatchKMeans", REFERENCE, "in memory"): lambda seed, k=k:
                         _later(nearest_inertia, X, SKMiniBatch(k, random_state=seed).fit(X)
                                .cluster_centers_)}
        for where in places:
            c["MiniBatchKMeans", "daskmeans", where] = ours(
                lambda k=k: MiniBatchKMeans(k), data[where], places[where], mb_inertia)
        c["MiniBatchKMeans", "daskmeans", "dask array"] = ours(
            lambda k=k: MiniBatchKMeans(k), lambda: Xd, threads, mb_inertia)

        def incremental(seed: int, k: int = k) -> Callable[[], float]:
            with dask.config.set(scheduler="threads"):
                inc = Incremental(SKMiniBatch(k, random_state=seed)).fit(Xd)
            return _later(nearest_inertia, X, inc.estimator_.cluster_centers_)

        c["MiniBatchKMeans", "dask-ml Incremental", "dask array"] = incremental
        cases.append(("MiniBatchKMeans", k, c))
    for k in parse_ks(args.k_bisecting):
        c = {("BisectingKMeans", REFERENCE, "in memory"): lambda seed, k=k:
             _later(float, SKBisecting(k, random_state=seed).fit(X).inertia_)}
        for where in places:
            c["BisectingKMeans", "daskmeans", where] = ours(
                lambda k=k: BisectingKMeans(k), data[where], places[where], own_inertia)
        cases.append(("BisectingKMeans", k, c))
    for k in parse_ks(args.k_medians):
        c = {}
        for where in places:
            for name, metric in ((EUCLIDEAN, "euclidean"), (MANHATTAN, "manhattan")):
                c["k-medians", name, where] = ours(
                    lambda k=k, metric=metric: KMeans(k, metric=metric), data[where],
                    places[where], own_inertia)
        cases.append(("k-medians", k, c))
    return cases


def summarise(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per case, K, contender and placement: the mean seconds and inertia over the
    rounds and the mean per-round time ratio to the reference (scikit-learn in memory;
    for k-medians the Euclidean fit of the same placement)."""
    def key(r: dict[str, Any]) -> tuple[str, int, str, str]:
        return r["case"], r["k"], r["contender"], r["where"]

    groups: dict[tuple[str, int, str, str], list[dict[str, Any]]] = {}
    for r in records:
        groups.setdefault(key(r), []).append(r)
    out = []
    for (case, k, name, where), rs in groups.items():
        ref = ((case, k, EUCLIDEAN, where) if case == "k-medians"
               else (case, k, REFERENCE, "in memory"))
        base = {r["round"]: r for r in groups.get(ref, [])}
        ratios = [r["seconds"] / base[r["round"]]["seconds"] for r in rs
                  if r["round"] in base and base[r["round"]]["seconds"] > 0]
        inertia = [r["inertia"] / base[r["round"]]["inertia"] for r in rs
                   if r["round"] in base and base[r["round"]]["inertia"] > 0]
        out.append({"case": case, "k": k, "contender": name, "where": where,
                    "reference": f"{ref[2]}, {ref[3]}", "rounds": len(rs),
                    "seconds": float(np.mean([r["seconds"] for r in rs])),
                    "inertia": float(np.mean([r["inertia"] for r in rs])),
                    "time_ratio": float(np.mean(ratios)) if ratios else None,
                    "inertia_ratio": (float(np.mean([r["inertia"] for r in rs])
                                            / np.mean([b["inertia"] for b in base.values()]))
                                      if base and case != "k-medians" else None),
                    "per_round_inertia_ratio": float(np.mean(inertia)) if inertia else None})
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="/usr/share/datasets/fashion-mnist",
                   help="directory with IDX files (the train split, else the test split)")
    p.add_argument("--rows", type=int, default=0, help="use only this many rows (0: all)")
    p.add_argument("--k-minibatch", default="10,256")
    p.add_argument("--k-bisecting", default="16,64")
    p.add_argument("--k-medians", default="10")
    p.add_argument("--seeds", type=int, default=3, help="rounds, random_state 0 .. seeds-1")
    p.add_argument("--chunk-rows", type=int, default=10_000,
                   help="rows per block of the dask array (ours and dask-ml's)")
    p.add_argument("--workers", type=int, default=2, help="LocalCluster worker processes")
    p.add_argument("--no-cluster", action="store_true", help="no LocalCluster contenders")
    p.add_argument("--no-warm-up", action="store_true",
                   help="skip compiling every kernel first (smoke runs)")
    add_out_argument(p, "algorithms")
    args = p.parse_args()

    import zarr

    from daskmeans import io, open_dataset

    tmp = Path(tempfile.mkdtemp(prefix="daskmeans-algorithms-"))
    store = io.ingest(args.data, tmp / "data.zarr", name="bench")
    group = zarr.open_group(store, mode="r")
    split = "train" if "train" in group.attrs["splits"] else "test"
    if args.rows:  # a smaller store of the first rows
        images, labels = (group[f"{split}/{kind}"][:args.rows] for kind in ("images", "labels"))
        store = io.arrays_to_dataset({split: (images, labels)}, tmp / "rows.zarr", name="bench")
    X = open_dataset(store, split)[0].compute()
    print(f"data: {X.shape[0]} x {X.shape[1]} float32 ({split} split of {args.data}), "
          f"seeds 0-{args.seeds - 1}", flush=True)
    if not args.no_warm_up:
        from daskmeans.kernels import warm_up

        print(f"compiled kernels ready in {warm_up():.1f} s", flush=True)
    records: list[dict[str, Any]] = []
    with contextlib.ExitStack() as stack:
        client = None if args.no_cluster else stack.enter_context(local_cluster(args.workers))
        cases = build(args, X, store, split, client)
        for _, _, contenders in cases:  # warm: imports, workers, first compilations
            for fit in contenders.values():
                fit(0)
        for seed in range(args.seeds):
            for case, k, contenders in cases:
                for (_, name, where), fit in contenders.items():
                    t0 = time.perf_counter()
                    done = fit(seed)
                    seconds = time.perf_counter() - t0
                    inertia = done()
                    records.append({"contender": name, "case": case, "k": k, "where": where,
                                    "seed": seed, "round": seed, "seconds": seconds,
                                    "inertia": inertia})
                    print(f"  round {seed} {case} K={k} {name}, {where}: {seconds:.2f} s, "
                          f"inertia {inertia:.7g}", flush=True)
    summary = summarise(records)
    print(f"\nMean over {args.seeds} interleaved rounds (seeds); time ratio: mean per-round "
          "ratio to the reference\n")
    print("| case | K | contender | where | seconds | time ratio | inertia | inertia ratio "
          "| reference |")
    print("|---|---|---|---|---|---|---|---|---|")
    for s in summary:
        ratio = "" if s["time_ratio"] is None else f"{s['time_ratio']:.2f}x"
        iratio = "" if s["inertia_ratio"] is None else f"{s['inertia_ratio']:.4f}"
        print(f"| {s['case']} | {s['k']} | {s['contender']} | {s['where']} | "
              f"{s['seconds']:.2f} | {ratio} | {s['inertia']:.6g} | {iratio} | "
              f"{s['reference']} |")
    save_results("algorithms", args, records, measure="seconds per fit",
                 reference=REFERENCE, rows=int(X.shape[0]), features=int(X.shape[1]),
                 summary=summary)


if __name__ == "__main__":
    main()
