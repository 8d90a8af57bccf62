#!/usr/bin/env python
"""Every kind of input side by side: numpy, an in-memory dask array, a store and the
lazy arrays read from it, in one interleaved run.

Usage (Fashion-MNIST: ``apt-get install dataset-fashion-mnist``)::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE \\
        python scripts/benchmark_inputs.py --data /usr/share/datasets/fashion-mnist
    python scripts/benchmark_inputs.py --cluster --cluster-rows 3000000 --k 64

Threaded (the default): Fashion-MNIST train (its test split when a folder has only
that), pixels scaled to [0, 1], for each ``--k`` (10 and 256), every contender from the
same initial centres (``--seed`` picks K rows) to convergence (scikit-learn's default
``tol=1e-4``), the contenders interleaved within each of ``--rounds`` rounds:

- ``numpy``: the rows in memory;
- ``da.from_array``: the same rows as a dask array of ``--chunk-rows`` row chunks;
- ``open_source``: the store, ``daskmeans.open_source(store)``;
- ``open_dataset``: ``daskmeans.open_dataset(store)[0]``, the lazy float32 array;
- ``lazy graph``: a lazy float32 array over the same store that daskmeans did not make
  (``io.zarr_to_dask`` and a scaling ``map_blocks``, what ``da.from_zarr`` or xarray
  give), fitted through its own graph.

Each fit's seconds, iterations and inertia are recorded with its ratio to numpy and to
``open_source`` in the same round; every inertia must equal numpy's to 1e-6 relative
(``CHECK`` lines; the script exits 1 otherwise).

``--cluster``: a uint8 dataset store of ``--cluster-rows`` x 784 (Fashion-MNIST's
images over and over, written chunk by chunk: memory stays a chunk's), a whole fit of
``--cluster-iters`` iterations (``tol=0``, k-means++ from ``--seed``) timed end to end
and per phase, from the ``callback``'s reports: ``read+hold`` (until the ``hold``
report), ``init`` (until the last ``init`` report), ``iterations`` (until the last
``lloyd`` report), ``final`` (the E-step after it, until ``fit`` returns) and
``labels`` (``labels_`` computed). ``open_source`` and the lazy ``open_dataset`` array
on a LocalCluster of 2 workers x 1 thread against the same threaded; any "large graph"
warning distributed gives is recorded. ``--profile`` records where the workers spent
each cluster fit (seconds per task prefix, transfers, the statistical profiler's top
functions) in its record.

Results as JSON (``benchmark: inputs``).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmark_results import add_out_argument, save_results

THREADED = ("numpy", "da.from_array", "open_source", "open_dataset", "lazy graph")
#: relative difference of inertias that counts as the same result
SAME_INERTIA = 1e-6


def _scaled(block: np.ndarray, scale: float) -> np.ndarray:
    """(m, h, w) uint8 images -> (m, h*w) float32 ``float32(raw) * scale``."""
    return block.reshape(len(block), -1).astype(np.float32) * np.float32(scale)


def lazy_graph(images: Any) -> Any:
    """A float32 dask array over a store's images that daskmeans did not make (so it
    is fitted through its own graph, as ``da.from_zarr`` or xarray's would be)."""
    import dask.array as da

    from daskmeans import io

    raw = io.zarr_to_dask(images)
    d = int(np.prod(images.shape[1:]))
    return da.map_blocks(_scaled, raw, float(images.attrs.get("scale_factor", 1 / 255)),
                         dtype=np.float32, chunks=(raw.chunks[0], (d,)),
                         drop_axis=list(range(2, raw.ndim)),
                         meta=np.empty((0, 0), np.float32))


def inputs(store: Path, split: str, X: np.ndarray, chunk_rows: int
           ) -> dict[str, Callable[[], Any]]:
    """Contender -> a function making its input afresh (nothing carried between fits)."""
    import dask.array as da
    import zarr

    from daskmeans import open_dataset, open_source

    images = zarr.open_group(store, mode="r")[f"{split}/images"]
    return {
        "numpy": lambda: X,
        "da.from_array": lambda: da.from_array(X, chunks=(chunk_rows, -1)),
        "open_source": lambda: open_source(store, split),
        "open_dataset": lambda: open_dataset(store, split)[0],
        "lazy graph": lambda: lazy_graph(images),
    }


def threaded(args: argparse.Namespace, tmp: Path) -> tuple[list[dict[str, Any]], bool]:
    """The threaded comparison (see the module's docstring): its records and whether
    every inertia matched numpy's."""
    import dask
    import zarr

    from daskmeans import KMeans, io, open_dataset

    store = io.ingest(args.data, tmp / "fashion.zarr", name="bench")
    split = "train" if "train" in zarr.open_group(store, mode="r").attrs["splits"] else "test"
    X = open_dataset(store, split)[0].compute()
    makers = inputs(store, split, X, args.chunk_rows)
    records: list[dict[str, Any]] = []
    ok = True
    with dask.config.set(scheduler="threads"):
        KMeans(3, n_init=1, max_iter=2, random_state=0).fit(makers["open_source"]())  # warm
        for k in args.k:
            C0 = X[np.random.default_rng(args.seed).choice(len(X), k, replace=False)]
            for r in range(args.rounds):
                got: dict[str, dict[str, Any]] = {}
                for name in THREADED:
                    x = makers[name]()
                    t = time.perf_counter()
                    km = KMeans(k, init=C0, n_init=1, max_iter=args.max_iter).fit(x)
                    seconds = time.perf_counter() - t
                    got[name] = {"contender": name, "k": k, "round": r, "seconds": seconds,
                                 "n_iter": int(km.n_iter_), "inertia": float(km.inertia_)}
                for name, rec in got.items():
                    rec["vs_numpy"] = rec["seconds"] / got["numpy"]["seconds"]
                    rec["vs_open_source"] = rec["seconds"] / got["open_source"]["seconds"]
                    rel = abs(rec["inertia"] - got["numpy"]["inertia"]) / got["numpy"]["inertia"]
                    rec["same_inertia"] = bool(rel <= SAME_INERTIA)
                    if not rec["same_inertia"]:
                        ok = False
                        print(f"CHECK FAILED K={k} {name}: inertia {rec['inertia']:.9g} vs "
                              f"numpy's {got['numpy']['inertia']:.9g}", flush=True)
                    print(f"  K={k} round {r} {name:<14} {rec['seconds']:7.2f} s "
                          f"{rec['n_iter']:4d} iterations  x{rec['vs_numpy']:.2f} numpy  "
                          f"x{rec['vs_open_source']:.2f} open_source", flush=True)
                    records.append(rec)
    print(f"\n{len(X)} rows; median over {args.rounds} rounds of each round's ratio\n")
    print("| input | K | seconds | iterations | vs numpy | vs open_source |\n"
          "|---|---|---|---|---|---|")
    for k in args.k:
        for name in THREADED:
            rs = [rec for rec in records if rec["k"] == k and rec["contender"] == name]
            print(f"| {name} | {k} | {np.median([x['seconds'] for x in rs]):.2f} | "
                  f"{rs[0]['n_iter']} | {np.median([x['vs_numpy'] for x in rs]):.2f}x | "
                  f"{np.median([x['vs_open_source'] for x in rs]):.2f}x |")
    print("CHECK inertia equal to numpy's to 1e-6 for every input: "
          + ("ok" if ok else "FAILED"))
    return records, ok


def write_big_store(source: Path, dest: Path, rows: int, chunk_rows: int) -> Path:
    """A dataset store of ``rows`` uint8 images, ``source``'s images over and over,
    written chunk by chunk (memory stays a chunk's)."""
    import zarr

    from daskmeans import io

    g = zarr.open_group(source, mode="r")
    split = "train" if "train" in g.attrs["splits"] else "test"
    images, labels = g[f"{split}/images"][...], g[f"{split}/labels"][...]
    first = min(rows, chunk_rows)
    io.arrays_to_dataset({"train": (np.resize(images, (first, *images.shape[1:])),
                                    np.resize(labels, first))},
                         dest, name="big", chunk_rows=chunk_rows)
    out = zarr.open_group(dest, mode="r+")
    xa, ya = out["train/images"], out["train/labels"]
    xa.resize((rows, *images.shape[1:]))
    ya.resize((rows,))
    for start in range(first, rows, chunk_rows):
        stop = min(rows, start + chunk_rows)
        idx = np.arange(start, stop) % len(images)
        xa[start:stop] = images[idx]
        ya[start:stop] = labels[idx]
    return dest


class Phases:
    """A progress callback noting when each phase last reported (seconds since
    :meth:`start`)."""

    def __init__(self) -> None:
        self.t0 = time.perf_counter()
        self.last: dict[str, float] = {}

    def start(self) -> None:
        self.t0, self.last = time.perf_counter(), {}

    def __call__(self, phase: str, done: int, total: int | None, detail: str = "") -> None:
        self.last[phase] = time.perf_counter() - self.t0

    def split(self, fitted: float, labelled: float) -> dict[str, float]:
        """Seconds of each phase of a fit that returned at ``fitted`` and whose labels
        were computed by ``labelled``."""
        hold = self.last.get("hold", 0.0)
        init = self.last.get("init", hold)
        lloyd = self.last.get("lloyd", init)
        return {"read+hold": hold, "init": init - hold, "iterations": lloyd - init,
                "final": fitted - lloyd, "labels": labelled - fitted}


@contextlib.contextmanager
def large_graph_warnings(found: list[str]) -> Iterator[None]:
    """Collect distributed's "large graph" warnings raised inside the block."""
    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always")
        yield
    found += [str(w.message).splitlines()[0] for w in got if "large graph" in str(w.message)]


def on_cluster(args: argparse.Namespace, tmp: Path) -> list[dict[str, Any]]:
    """The cluster comparison (see the module's docstring)."""
    import dask
    from distributed import Client, LocalCluster, get_task_stream

    from daskmeans import KMeans, io, open_dataset, open_source

    small = io.ingest(args.data, tmp / "small.zarr", name="small")
    t = time.perf_counter()
    big = write_big_store(small, tmp / "big.zarr", args.cluster_rows, args.chunk_rows)
    print(f"store: {args.cluster_rows} x 784 uint8, "
          f"{args.cluster_rows * 784 / 1e9:.2f} GB, written in {time.perf_counter() - t:.0f} s",
          flush=True)
    makers = {"open_source": lambda: open_source(big, "train"),
              "open_dataset": lambda: open_dataset(big, "train")[0],
              "lazy graph": lambda: lazy_graph(_images(big))}
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                           dashboard_address=None, host="127.0.0.1",
                           silence_logs=logging.ERROR)
    client = Client(cluster, set_as_default=False)
    where: dict[str, Callable[[], contextlib.AbstractContextManager[Any]]] = {
        "threaded": lambda: dask.config.set(scheduler="threads"),
        "LocalCluster 2x1": client.as_current,
    }
    records: list[dict[str, Any]] = []
    phases = Phases()
    for ctx in where.values():  # untimed: the workers' imports and compiled kernels
        with ctx():
            KMeans(args.k[0], n_init=1, max_iter=2, random_state=args.seed).fit(
                open_source(small))
    for r in range(args.rounds):
        for name in args.cluster_inputs:
            for place, ctx in where.items():
                found: list[str] = []
                profiled = args.profile and place != "threaded"
                stream = get_task_stream(client) if profiled else contextlib.nullcontext()
                started = time.time()
                with ctx(), large_graph_warnings(found), stream as tasks:
                    phases.start()
                    km = KMeans(args.k[0], n_init=1, max_iter=args.cluster_iters, tol=0,
                                random_state=args.seed, callback=phases)
                    km.fit(makers[name]())
                    fitted = time.perf_counter() - phases.t0
                    labels = km.labels_
                    labels = labels.compute() if hasattr(labels, "compute") else labels
                    labelled = time.perf_counter() - phases.t0
                rec = {"contender": f"{place}, {name}", "k": args.k[0], "round": r,
                       "seconds": labelled, "phases": phases.split(fitted, labelled),
                       "n_iter": int(km.n_iter_), "inertia": float(km.inertia_),
                       "large_graph_warnings": found,
                       **({"workers": 2} if place != "threaded" else {})}
                if profiled:
                    rec["profile"] = worker_profile(client, tasks.data, started)
                records.append(rec)
                cells = "  ".join(f"{p} {s:.2f}" for p, s in rec["phases"].items())
                print(f"  round {r} {rec['contender']:<32} {labelled:7.2f} s  ({cells})"
                      + (f"  WARNINGS: {found}" if found else ""), flush=True)
    client.close()
    cluster.close()
    print(f"\nK={args.k[0]}, {args.cluster_rows} rows, {args.cluster_iters} iterations; "
          "median seconds of a whole fit and ratio of the cluster to threaded\n")
    print("| input | threaded | LocalCluster 2x1 | cluster / threaded | large graph warnings |\n"
          "|---|---|---|---|---|")
    for name in args.cluster_inputs:
        th = [x["seconds"] for x in records if x["contender"] == f"threaded, {name}"]
        cl = [x["seconds"] for x in records if x["contender"] == f"LocalCluster 2x1, {name}"]
        warned = sum(len(x["large_graph_warnings"]) for x in records if name in x["contender"])
        print(f"| {name} | {np.median(th):.2f} | {np.median(cl):.2f} | "
              f"{np.median([c / t for c, t in zip(cl, th, strict=True)]):.2f}x | {warned} |")
    return records


def worker_profile(client: Any, tasks: list[dict[str, Any]], since: float,
                   top: int = 15) -> dict[str, Any]:
    """Where the workers spent a fit: seconds computing per task prefix and moving data
    (distributed's task stream), and the functions its statistical profiler saw most
    often in the workers' task threads since ``since`` (own samples, not children's)."""
    from dask.utils import key_split

    computing: dict[str, float] = {}
    moving = 0.0
    for t in tasks:
        prefix = key_split(t["key"])
        for s in t["startstops"]:
            if s["action"] == "compute":
                computing[prefix] = computing.get(prefix, 0.0) + s["stop"] - s["start"]
            else:
                moving += s["stop"] - s["start"]
    own: dict[str, int] = {}

    def walk(node: dict[str, Any]) -> None:
        d = node.get("description", {})
        name = f"{d.get('filename', '?')}:{d.get('name', '?')}"
        below = sum(c["count"] for c in node.get("children", {}).values())
        own[name] = own.get(name, 0) + node["count"] - below
        for child in node.get("children", {}).values():
            walk(child)

    tree = client.profile(start=since)
    walk(tree)
    total = max(1, tree.get("count", 0))
    return {"compute_seconds_by_task": dict(sorted(computing.items(), key=lambda kv: -kv[1])),
            "transfer_seconds": moving, "tasks": len(tasks),
            "profile_top": [(n, c / total) for n, c in sorted(own.items(),
                                                              key=lambda kv: -kv[1])[:top]]}


def _images(store: Path) -> Any:
    import zarr

    return zarr.open_group(store, mode="r")["train/images"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--k", type=int, nargs="+", default=None,
                   help="cluster counts (default 10 256; --cluster: 64)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--max-iter", type=int, default=300)
    p.add_argument("--chunk-rows", type=int, default=10_000,
                   help="rows per chunk of da.from_array and of the --cluster store")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cluster", action="store_true",
                   help="the LocalCluster comparison on a large store instead")
    p.add_argument("--cluster-rows", type=int, default=3_000_000)
    p.add_argument("--cluster-iters", type=int, default=10)
    p.add_argument("--cluster-inputs", nargs="+",
                   default=["open_source", "open_dataset", "lazy graph"],
                   choices=["open_source", "open_dataset", "lazy graph"])
    p.add_argument("--profile", action="store_true",
                   help="record where the workers spent each cluster fit: seconds per task "
                        "prefix, transfers and the profiler's top functions")
    add_out_argument(p, "inputs")
    args = p.parse_args()
    args.k = args.k or ([64] if args.cluster else [10, 256])
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("distributed").setLevel(logging.ERROR)
    tmp = Path(tempfile.mkdtemp(prefix="daskmeans-inputs-"))
    ok = True
    if args.cluster:
        records = on_cluster(args, tmp)
        measure, reference = "seconds of a whole fit, labels computed", None
    else:
        records, ok = threaded(args, tmp)
        measure, reference = "seconds to convergence", "numpy"
    save_results("inputs", args, records, measure=measure, reference=reference)
    if not ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
