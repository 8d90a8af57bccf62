#!/usr/bin/env python
"""Colour quantisation at scale, and pixel-assignment throughput vs scikit-learn.

    python scripts/benchmark_quantize.py --megapixels 400 --colors 64

1. Writes a synthetic image (china.jpg repeated with shifts and noise) of the given
   size to Zarr tiles, quantises it to N colours on a LocalCluster (2 workers x 1
   thread, --memory-limit each) writing the labels back to Zarr, and reports
   megapixels/second and the workers' peak RSS.
2. Assigns the same in-memory pixels (--assign-megapixels) to one palette with
   scikit-learn's ``KMeans.predict`` and with daskmeans' lookup-table and direct
   kernels, single-threaded and side by side, and prints the ratios.
"""

from __future__ import annotations

import argparse
import logging
import math
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmark_results import add_out_argument, save_results


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--megapixels", type=float, default=400)
    p.add_argument("--colors", type=int, default=64)
    p.add_argument("--tile", type=int, default=1024)
    p.add_argument("--memory-limit", default="1GiB")
    p.add_argument("--assign-megapixels", type=float, default=16)
    p.add_argument("--workdir", default=None)
    p.add_argument("--reuse", action="store_true", help="reuse WORKDIR/big.zarr if present")
    add_out_argument(p, "quantize")
    args = p.parse_args()
    logging.getLogger("distributed").setLevel(logging.ERROR)

    from distributed import Client, LocalCluster
    from sklearn.cluster import KMeans as SKKMeans
    from threadpoolctl import threadpool_limits

    from daskmeans import io, quantize
    from daskmeans.quantization import assign_colors, color_lut, lut_labels

    work = Path(args.workdir or tempfile.mkdtemp(prefix="dm-quant-"))
    side = int(math.sqrt(args.megapixels * 1e6))
    t0 = time.perf_counter()
    with LocalCluster(n_workers=2, threads_per_worker=1, memory_limit=args.memory_limit,
                      dashboard_address=None, host="127.0.0.1") as cl, Client(cl) as client:
        store = work / "big.zarr"
        if not (args.reuse and store.exists()):
            io.synthetic_image(store, side, side, tile=args.tile)
        t1 = time.perf_counter()
        mp = side * side / 1e6
        print(f"synthetic image {side}x{side} ({mp:.0f} MP) written in {t1 - t0:.1f}s "
              f"({mp / (t1 - t0):.0f} MP/s)", flush=True)
        q = quantize(store, args.colors, random_state=0, store=work / "labels.zarr")
        t2 = time.perf_counter()
        q.to_png(work / "preview.png", max_pixels=4_000_000)
        t3 = time.perf_counter()
        peaks = client.run(peak_mb)
    print(f"quantised to {args.colors} colours (sample, fit, assign all pixels, write labels,"
          f" PSNR pass) in {t2 - t1:.1f}s = {mp / (t2 - t1):.1f} MP/s; PSNR {q.psnr:.2f} dB; "
          f"preview in {t3 - t2:.1f}s")
    print("worker peak RSS (MB): " + ", ".join(f"{v:.0f}" for v in peaks.values())
          + f"; client {peak_mb():.0f} MB; tile {args.tile}x{args.tile}")

    n = int(args.assign_megapixels * 1e6)
    img = io.open_image(store)
    rows = math.ceil(n / side)
    pixels = img[:rows].compute().reshape(-1, 3)[:n]
    n = len(pixels)
    palette = q.palette
    X = pixels.astype(np.float32) / np.float32(255)
    sk = SKKMeans(args.colors, n_init=1, max_iter=1, init=palette / 255.0).fit(X[:: max(
        1, n // 100_000)])
    sk.cluster_centers_ = (palette / np.float32(255)).astype(np.float32)
    with threadpool_limits(1):
        t = time.perf_counter()
        ref = sk.predict(X)
        t_sk = time.perf_counter() - t
        t = time.perf_counter()
        lut = color_lut(palette)
        t_lut_build = time.perf_counter() - t
        t = time.perf_counter()
        step = 1 << 20  # tile-sized blocks, as the per-tile tasks do
        ours = np.concatenate([lut_labels(pixels[s : s + step], lut)
                               for s in range(0, n, step)])
        t_lut = time.perf_counter() - t
        t = time.perf_counter()
        direct = assign_colors(pixels, palette)
        t_direct = time.perf_counter() - t
    agree = float(np.mean(ours == ref))
    print(f"\nassigning {n / 1e6:.0f} MP to {args.colors} colours, one thread each:")
    print("| method | seconds | MP/s | ratio to scikit-learn |\n|---|---|---|---|")
    records: list[dict[str, object]] = []
    for name, secs in [("scikit-learn KMeans.predict", t_sk),
                       ("daskmeans lookup table (+ build once)", t_lut + t_lut_build),
                       ("daskmeans lookup table (built)", t_lut),
                       ("daskmeans direct 3-feature kernel", t_direct)]:
        print(f"| {name} | {secs:.2f} | {n / secs / 1e6:.0f} | {secs / t_sk:.2f}x |")
        records.append({"contender": name, "k": args.colors, "round": 0, "seconds": secs,
                        "pixels": n})
    print(f"labels equal to scikit-learn's for {agree:.5%} of pixels "
          f"(direct kernel: {np.mean(direct == ref):.5%})")
    save_results("quantize", args, records, measure="seconds to assign the pixels, one thread",
                 reference="scikit-learn KMeans.predict", megapixels=mp,
                 quantize_seconds=t2 - t1, psnr=q.psnr,
                 worker_peak_rss_mb=list(peaks.values()))


if __name__ == "__main__":
    main()
