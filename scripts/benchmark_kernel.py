#!/usr/bin/env python
"""One chunk, one thread: the numpy reference Lloyd kernel vs the compiled (numba) one.

Usage::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python scripts/benchmark_kernel.py \\
        --data /usr/share/datasets/fashion-mnist --rows 30000 --k 10 256

Times ``kernels.lloyd.lloyd_runs`` on the first ``--rows`` rows, as float32 (|x|^2 given, as
for in-memory data) and as raw uint8 with ``scale`` (|x|^2 computed in the pass, as for
a store), BLAS pinned to one thread, the two kernels interleaved round by round
(median of the rounds). Also prints what compiling the numba kernels costs on first
use, and loading them from numba's on-disk cache.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmark_results import add_out_argument, save_results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--rows", type=int, default=30_000)
    p.add_argument("--k", type=int, nargs="+", default=[10, 256])
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--no-compile-timing", action="store_true",
                   help="skip timing the first compilation (two fresh processes)")
    add_out_argument(p, "kernel")
    args = p.parse_args()

    import tempfile

    records: list[dict[str, Any]] = []
    compile_seconds = None

    if not args.no_compile_timing:
        code = "from daskmeans.kernels import warm_up; print(warm_up())"
        with tempfile.TemporaryDirectory() as cache:
            env = {**os.environ, "NUMBA_CACHE_DIR": cache}
            first, again = (float(subprocess.run([sys.executable, "-c", code], env=env,
                                                 check=True, capture_output=True,
                                                 text=True).stdout) for _ in range(2))
        compile_seconds = {"compile": first, "load": again}
        print(f"numba kernels: compiled on first use in {first:.2f} s, "
              f"loaded from the disk cache in {again:.2f} s")

    from threadpoolctl import threadpool_limits

    from daskmeans import io
    from daskmeans.kernels.common import row_norms_sq, scale_rows
    from daskmeans.kernels.lloyd import lloyd_runs

    U = np.concatenate([io.read_idx(f) for f in sorted(
        os.path.join(args.data, n) for n in os.listdir(args.data) if "images" in n)])
    U = np.ascontiguousarray(U[: args.rows].reshape(args.rows, -1))
    X = scale_rows(U, io.PIXEL_SCALE)
    cases = {"float32": (X, {}), "uint8": (U, {"scale": io.PIXEL_SCALE})}
    print(f"{args.rows} x {X.shape[1]} rows, one thread, median of {args.rounds} rounds")
    print("| K | rows | numpy reference | numba | ratio |\n|---|---|---|---|---|")
    with threadpool_limits(1, user_api="blas"):
        for k in args.k:
            C = X[np.random.default_rng(0).choice(args.rows, k, replace=False)]
            for name, (data, kw) in cases.items():
                xsq = None
                times: dict[str, list[float]] = {"numpy": [], "numba": []}
                for r in range(args.rounds + 1):
                    for kern in times:
                        os.environ["DASKMEANS_KERNELS"] = kern
                        if name == "float32":
                            xsq = row_norms_sq(X)  # per kernel: each sums its own way
                        t0 = time.perf_counter()
                        lloyd_runs(data, C, xsq=xsq, n_top=k, **kw)
                        if r:  # round 0 warms up
                            times[kern].append(time.perf_counter() - t0)
                            records.append({"contender": kern, "k": k, "rows": name,
                                            "round": r - 1, "seconds": times[kern][-1]})
                a, b = (float(np.median(times[kern])) * 1000 for kern in ("numpy", "numba"))
                print(f"| {k} | {name} | {a:.1f} ms | {b:.1f} ms | {b / a:.2f}x |",
                      flush=True)
    save_results("kernel", args, records, measure="seconds per Lloyd pass, one thread",
                 reference="numpy", compile_seconds=compile_seconds)


if __name__ == "__main__":
    main()
