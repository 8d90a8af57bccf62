#!/usr/bin/env python
"""Seconds to a converged model for two or more checkouts of daskmeans, side by side.

A restructuring must leave the speed as it was: this runs the same fits from each
checkout's own code, one fresh process per fit, checkouts interleaved round by round so
that the machine's drift falls on all of them alike. Usage::

    git worktree add /tmp/before <rev>
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python scripts/benchmark_revisions.py \\
        --tree before=/tmp/before --tree after=. --rounds 3 --out results/revisions.json

Cases: K=10 and K=256 to convergence (same initial centres, default tolerance) on
Fashion-MNIST train in memory and from a Zarr store held for the fit, under the threaded
scheduler; and a 10-iteration K=64 fit (``tol=0``) of the held store on a LocalCluster
of 2 workers x 1 thread. Each process compiles (or loads) the kernels before its timed
fit. Results go to ``--out`` as JSON (machine, CPU flags, versions, date, every fit).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmark_results import default_out, machine_info, write_results

CASES = {
    "K=10 in memory": dict(k=10, data="memory", cluster=False),
    "K=256 in memory": dict(k=256, data="memory", cluster=False),
    "K=10 held store": dict(k=10, data="store", cluster=False),
    "K=256 held store": dict(k=256, data="store", cluster=False),
    "K=64 held store, LocalCluster 2x1, 10 iterations": dict(k=64, data="store",
                                                             cluster=True),
}

CHILD = r"""
import json, sys, time
import numpy as np
import dask
import daskmeans
from daskmeans import io

case = json.loads(sys.argv[1])
open_source = getattr(daskmeans, "open_source", None) or io.open_source
open_dataset = getattr(daskmeans, "open_dataset", None) or io.open_dataset
X = open_dataset(case["store"], "train")[0].compute()
C0 = X[np.random.default_rng(0).choice(len(X), case["k"], replace=False)]
data = X if case["data"] == "memory" else open_source(case["store"], "train")
kw = dict(max_iter=10, tol=0.0) if case["cluster"] else {}
# compile (or load from the on-disk cache) every kernel the fit uses
daskmeans.KMeans(case["k"], init=C0, max_iter=2).fit(X[:5000])
if case["cluster"]:
    from distributed import Client, LocalCluster
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None,
                           host="127.0.0.1")
    client = Client(cluster)
    client.run(lambda: daskmeans.KMeans(2, init=C0[:2], max_iter=2).fit(X[:5000]) and None)
    ctx = client.as_current()
else:
    ctx = dask.config.set(scheduler="threads")
with ctx:
    t0 = time.perf_counter()
    m = daskmeans.KMeans(case["k"], init=C0, **kw).fit(data)
    secs = time.perf_counter() - t0
print(json.dumps({"seconds": secs, "n_iter": int(m.n_iter_), "inertia": float(m.inertia_)}))
"""


def run_child(tree: Path, case: dict[str, Any]) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run([sys.executable, "-c", CHILD, json.dumps(case)], env=env,
                         check=True, capture_output=True, text=True, cwd=tree)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tree", action="append", required=True,
                   help="NAME=PATH of a checkout (repeat: two or more)")
    p.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--case", action="append", choices=list(CASES),
                   help="only these cases (default: all)")
    p.add_argument("--out", help="JSON results (default: benchmarks/results/revisions-DATE.json)")
    args = p.parse_args()
    trees = dict(t.split("=", 1) for t in args.tree)

    from daskmeans import io

    store = io.ingest(args.data, Path(tempfile.mkdtemp(prefix="daskmeans-rev-")) / "d.zarr",
                      name="bench")
    fits: list[dict[str, Any]] = []
    for name in args.case or list(CASES):
        case = {**CASES[name], "store": str(store)}
        for r in range(args.rounds):
            for label, path in trees.items():
                res = run_child(Path(path).resolve(), case)
                fits.append({"case": name, "round": r, "tree": label, **res})
                print(f"{name:<52} round {r} {label:<10} {res['seconds']:7.2f} s "
                      f"{res['n_iter']:4d} it  inertia {res['inertia']:.9g}", flush=True)
    out = write_results(args.out or default_out("revisions"), {
        "benchmark": "revisions", "machine": machine_info(), "trees": trees,
        "rounds": args.rounds, "fits": fits})
    print(f"results: {out}")


if __name__ == "__main__":
    main()
