#!/usr/bin/env python
"""What settling near ties in float64 costs a plain Lloyd pass, on data moved away from
the origin.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python scripts/near_tie_cost.py \\
        --data /usr/share/datasets/fashion-mnist

The first ``--rows`` training images as float32 in [0, 1], plus a constant offset
(distances unchanged, ``|x|^2`` grows): per K and offset, one compiled Lloyd pass
(``kernels.lloyd.lloyd_runs``, one thread, after a warm-up call) in milliseconds, and the
share of ``assign``'s labels equal to the float64 argmin on the first 2,000 rows.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import zarr

from daskmeans import io, open_dataset
from daskmeans.engine import schedule
from daskmeans.kernels.common import Centres, assign
from daskmeans.kernels.lloyd import lloyd_runs


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--rows", type=int, default=30_000)
    p.add_argument("--k", type=int, nargs="+", default=[10, 256])
    p.add_argument("--offsets", type=float, nargs="+", default=[0, 10, 100, 5000])
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = io.ingest(args.data, Path(tmp) / "data.zarr")
        split = "train" if "train" in zarr.open_group(store, mode="r").attrs["splits"] else "test"
        X = open_dataset(store, split)[0]
        X = X[:args.rows].compute().reshape(min(args.rows, X.shape[0]), -1)
    print("| K | offset | pass ms | labels = float64 argmin |\n|---|---|---|---|")
    for k in args.k:
        for off in args.offsets:
            Xo = X + np.float32(off)
            C = Xo[np.random.default_rng(0).choice(len(Xo), k, replace=False)]
            cen = Centres(C, np.dtype(np.float32))
            with schedule.client_blas():
                lloyd_runs(Xo, cen)
                t0 = time.perf_counter()
                lloyd_runs(Xo, cen)
                ms = (time.perf_counter() - t0) * 1e3
                lab, _ = assign(Xo, C)
            m = min(2000, len(Xo))
            exact = ((Xo[:m].astype(np.float64)[:, None, :]
                      - C.astype(np.float64)[None]) ** 2).sum(2).argmin(1)
            print(f"| {k} | {off:g} | {ms:.0f} | {(lab[:m] == exact).mean():.4f} |",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
