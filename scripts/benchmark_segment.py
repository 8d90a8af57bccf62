#!/usr/bin/env python
"""Segment a 1-GB-class multi-band scene on a LocalCluster with bounded worker memory.

    python scripts/benchmark_segment.py --size 6500x6500 --memory-limit 1GiB

Writes a synthetic scene (6 bands float32, 5 known classes, nodata outside a tilted
swath: 6500 x 6500 is 1.01 GB) with :func:`daskmeans.io.synthetic_scene`, then runs
:func:`daskmeans.segmentation.segment` on a LocalCluster of 2 workers x 1 thread with
the given memory limit, twice: fitted on a 200,000-pixel sample (the default) and on
every pixel (``--full``, Lloyd over the whole scene). Prints the wall time of each,
the adjusted Rand index of the labels against the known classes, and the peak memory
of the cluster sampled by ``distributed.diagnostics.MemorySampler`` (the sum over the
workers; divide by two for one worker), next to the scene's size: the scene is
streamed strip by strip, never loaded whole.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmark_results import add_out_argument, save_results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", default="6500x6500", help="HEIGHTxWIDTH of the scene")
    p.add_argument("--k", type=int, default=5)
    p.add_argument("--memory-limit", default="1GiB", help="per worker")
    p.add_argument("--max-iter", type=int, default=20, help="Lloyd iterations for --full")
    p.add_argument("--work", help="directory for the scene (default: a temporary one)")
    add_out_argument(p, "segment")
    args = p.parse_args()

    import numpy as np
    import zarr
    from distributed import Client, LocalCluster
    from distributed.diagnostics import MemorySampler
    from sklearn.metrics import adjusted_rand_score

    from daskmeans import io
    from daskmeans.segmentation import segment

    h, w = (int(v) for v in args.size.split("x"))
    work = Path(args.work or tempfile.mkdtemp(prefix="daskmeans-segment-"))
    scene = work / "scene.zarr"
    t0 = time.perf_counter()
    if not scene.exists():
        io.synthetic_scene(scene, h, w, tile=1024)
    nbytes = 6 * h * w * 4
    print(f"scene {h}x{w}x6 float32: {nbytes / 1e9:.2f} GB ({time.perf_counter() - t0:.0f} s "
          "to write)")
    truth = zarr.open_array(scene / "classes", mode="r")
    with LocalCluster(n_workers=2, threads_per_worker=1, memory_limit=args.memory_limit,
                      host="127.0.0.1", dashboard_address="127.0.0.1:0") as cluster, \
            Client(cluster) as client:
        print(f"LocalCluster: 2 workers x 1 thread, memory limit {args.memory_limit} each; "
              f"{len(client.scheduler_info()['workers'])} workers up")
        records: list[dict[str, Any]] = []
        for full in (False, True):
            ms = MemorySampler()
            name = "every pixel" if full else "a 200,000-pixel sample"
            t0 = time.perf_counter()
            with ms.sample(name, interval=0.25):
                seg = segment(scene, args.k, work / f"labels-{int(full)}.zarr",
                              feature_dim="band", variable="reflectance", full=full)
            secs = time.perf_counter() - t0
            peak = float(ms.to_pandas().max().iloc[0])
            stride = max(1, h // 1000)
            got = np.asarray(seg.labels[::stride, ::stride])
            want = np.asarray(truth[::stride, ::stride])
            inside = want >= 0
            ari = adjusted_rand_score(want[inside], got[inside])
            print(f"fitted on {name}: {secs:.1f} s, {seg.estimator.n_iter_} iterations, "
                  f"ARI {ari:.4f} (on a 1/{stride} grid), nodata -> -1: "
                  f"{bool((got[~inside] == -1).all())}; peak cluster memory "
                  f"{peak / 2**20:.0f} MiB (2 workers) for a {nbytes / 2**20:.0f} MiB scene")
            records.append({"contender": f"fitted on {name}", "k": args.k, "round": 0,
                            "workers": 2, "seconds": secs,
                            "n_iter": int(seg.estimator.n_iter_), "ari": float(ari),
                            "peak_cluster_memory_bytes": peak})
    save_results("segment", args, records, measure="seconds to segment the scene",
                 scene_bytes=nbytes)


if __name__ == "__main__":
    main()
