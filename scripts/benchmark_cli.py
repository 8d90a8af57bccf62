#!/usr/bin/env python
"""The command line against the same library calls in a Python script, wall clock.

    python scripts/benchmark_cli.py --data ../shared/data/mnist --rounds 5

Each round runs, as fresh processes and taking turns: ``daskmeans fit`` / ``evaluate``
/ ``predict`` on the store's split, and a ``python -c`` script making the library
calls the command makes (open the split as a source, fit, learn the cluster -> label
mapping, save the model; score the model; label the rows into a Zarr array); then
the same pair with ``--workers 2`` against a script that starts the same LocalCluster
first. Both sides pay interpreter start, imports and (for the fit) numba's cache
load, so the ratio is what the command adds. Prints the median seconds, the ratio
CLI / script with its range over the rounds, and the target (issue 18: <= 1.5x).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmark_results import add_out_argument, save_results

LIBRARY = {
    "fit": """
        import daskmeans
        from daskmeans import io, metrics, open_dataset, open_source
        X = open_source(STORE, SPLIT)
        y = open_dataset(STORE, SPLIT)[1]
        km = daskmeans.KMeans(n_clusters=K, random_state=0).fit(X)
        mapping = metrics.infer_cluster_labels(y, km.labels_)
        daskmeans.save_model(km, OUT + "/lib.npz", mapping=mapping)
    """,
    "evaluate": """
        import daskmeans
        from daskmeans import io, metrics, open_dataset, open_source
        km, header = daskmeans.load_model(MODEL)
        X = open_source(STORE, SPLIT)
        y = open_dataset(STORE, SPLIT)[1]
        print(metrics.evaluate_model(km, X, y, mapping=header["mapping"])["accuracy"])
    """,
    "predict": """
        import numpy as np, zarr, dask
        import daskmeans
        from daskmeans import io, open_dataset, open_source
        km, _ = daskmeans.load_model(MODEL)
        labels = km.predict(open_source(STORE, SPLIT))
        root = zarr.open_group(OUT + "/lib-labels.zarr", mode="w")
        arr = root.create_array("labels", shape=labels.shape, dtype=np.int32,
                                chunks=(labels.chunks[0][0],))
        dask.compute(io.store_blocks(labels, arr))
    """,
}

CLUSTER = """
    from distributed import Client, LocalCluster
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1",
                           dashboard_address="127.0.0.1:0", memory_limit="4GiB")
    client = Client(cluster)
"""


def _time(cmd: list[str], cwd: Path) -> float:
    t0 = time.perf_counter()
    p = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    secs = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{p.stderr[-2000:]}")
    return secs


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="../shared/data/mnist", help="directory of IDX files")
    p.add_argument("--split", default="test")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--no-cluster", action="store_true", help="skip the --workers 2 rows")
    p.add_argument("--commands", default="fit,evaluate,predict", help="which to time")
    add_out_argument(p, "cli")
    args = p.parse_args()

    from daskmeans import cli

    work = Path(tempfile.mkdtemp(prefix="daskmeans-cli-bench-"))
    store = work / "data.zarr"
    cli.main(["ingest", "mnist", "--source", args.data, "--out", str(store), "--quiet"])
    model = work / "model.npz"
    cli.main(["fit", str(store), "--split", args.split, "--k", str(args.k), "--model",
              str(model), "--quiet"])  # also fills numba's cache before any timing
    consts = (f"STORE, SPLIT, K, OUT, MODEL = {str(store)!r}, {args.split!r}, {args.k}, "
              f"{str(work)!r}, {str(model)!r}\n")
    exe = [sys.executable]
    cmd_argv = {
        "fit": ["fit", str(store), "--split", args.split, "--k", str(args.k), "--model",
                str(work / "cli.npz")],
        "evaluate": ["evaluate", str(store), "--split", args.split, "--model", str(model)],
        "predict": ["predict", str(store), "--split", args.split, "--model", str(model),
                    "--out", str(work / "cli-labels.zarr")],
    }
    cmd_argv = {c: cmd_argv[c] for c in args.commands.split(",")}
    setups = [("threaded", [], "")] + ([] if args.no_cluster else
                                       [("LocalCluster 2x1", ["--workers", "2"], CLUSTER)])
    times: dict[tuple[str, str, str], list[float]] = {}
    for r in range(args.rounds):
        for where, flags, prelude in setups:
            for name, argv in cmd_argv.items():
                script = consts + textwrap.dedent(prelude) + textwrap.dedent(LIBRARY[name])
                pair = [("CLI", [*exe, "-m", "daskmeans.cli", *argv, *flags, "--quiet"]),
                        ("script", [*exe, "-c", script])]
                for who, cmd in pair if r % 2 == 0 else pair[::-1]:  # alternate who goes first
                    times.setdefault((where, name, who), []).append(_time(cmd, work))
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr, flush=True)

    print(f"\n{args.split} split of {args.data}, K={args.k}, {args.rounds} rounds, wall clock "
          "of fresh processes (median s)\n")
    print("| where | command | CLI | script | CLI / script (range) |")
    print("|---|---|---|---|---|")
    for where, _, _ in setups:
        for name in cmd_argv:
            c, s = times[(where, name, "CLI")], times[(where, name, "script")]
            ratios = [a / b for a, b in zip(c, s, strict=True)]
            print(f"| {where} | {name} | {statistics.median(c):.2f} | {statistics.median(s):.2f} "
                  f"| {statistics.median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f}) |")
    t0 = time.perf_counter()
    subprocess.run([*exe, "-m", "daskmeans.cli", "--help"], capture_output=True, check=True)
    t_help = time.perf_counter() - t0
    t0 = time.perf_counter()
    subprocess.run([*exe, "-c", "import dask.array"], capture_output=True, check=True)
    t_dask = time.perf_counter() - t0
    print(f"\ndaskmeans --help: {t_help:.2f} s; python -c 'import dask.array': {t_dask:.2f} s "
          "(target: help at most half of it)")
    print("target: CLI / script <= 1.5x for fit, evaluate and predict")
    records: list[dict[str, Any]] = [
        {"contender": who, "command": name, "where": where, "k": args.k, "round": r,
         "seconds": secs, **({"workers": 2} if where.startswith("LocalCluster") else {})}
        for (where, name, who), ts in times.items() for r, secs in enumerate(ts)]
    save_results("cli", args, records, measure="seconds of a fresh process",
                 reference="script", help_seconds=t_help, import_dask_seconds=t_dask)


if __name__ == "__main__":
    main()
