#!/usr/bin/env python
"""Write a synthetic Gaussian-blob Zarr store of any size, chunk by chunk.

    python scripts/make_blobs.py /tmp/blobs20m.zarr --rows 20000000 --features 32

Peak memory depends on the chunk size and thread count, not on --rows; the script
prints its own peak RSS (and that of a full streaming pass over the store).
"""

from __future__ import annotations

import argparse
import resource
import time

from daskmeans import io, open_array


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("store")
    p.add_argument("--rows", type=int, default=20_000_000)
    p.add_argument("--features", type=int, default=32)
    p.add_argument("--centers", type=int, default=16)
    p.add_argument("--chunk-rows", type=int, default=100_000)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    t0 = time.perf_counter()
    io.make_blobs_zarr(args.store, args.rows, args.features, centers=args.centers,
                       chunk_rows=args.chunk_rows, random_state=args.seed)
    t1 = time.perf_counter()
    gb = args.rows * args.features * 4 / 1e9
    print(f"wrote {args.rows:,} x {args.features} float32 ({gb:.2f} GB) in {t1 - t0:.1f}s; "
          f"peak RSS {peak_mb():.0f} MB")
    X = open_array(args.store)
    m = X.mean(axis=0).compute()
    print(f"streamed a full pass (column means, {X.numblocks[0]} chunks) in "
          f"{time.perf_counter() - t1:.1f}s; peak RSS {peak_mb():.0f} MB; mean[0]={m[0]:.4f}")


if __name__ == "__main__":
    main()
