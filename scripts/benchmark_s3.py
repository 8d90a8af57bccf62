#!/usr/bin/env python
"""Seconds per Lloyd iteration streamed from an S3 server vs the same store on local disk.

Usage::

    python scripts/benchmark_s3.py --data /usr/share/datasets/fashion-mnist --k 10
    python scripts/benchmark_s3.py --data ../shared/data/mnist --k 64 --rounds 5

The data (Fashion-MNIST train, or the test split where there is no train split) are
ingested to a local Zarr store (``io.ingest``, 10,000-row chunks) and uploaded to moto's
S3 server on 127.0.0.1 (``io.upload_store``), started by the script in its own process
(``python -m moto.server``: its request handling does not share the client's GIL, as a
real server's would not; it still shares the machine's cores). Both contenders stream
every pass from their store (``cache=False``): local disk (the page cache holds it after
the first pass) and S3 over HTTP on the loopback, so the ratio is the cost of the
S3 protocol stack (s3fs, aiobotocore, moto) per pass, not of a network. Every fit starts
from the same centres with ``tol=0``, plain Lloyd (every block read every pass); time per
iteration is ``(t(max_iter=1+n) - t(max_iter=1)) / n``, the contenders interleaved round
by round; medians and per-round ratios are printed.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmark_results import add_out_argument, save_results

BUCKET = "daskmeans-bench"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def moto_server(timeout: float = 60) -> Iterator[str]:
    """moto's S3 server in a subprocess on a free port of 127.0.0.1; yields its endpoint."""
    port = _free_port()
    endpoint = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1",
                             "-p", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"moto's server did not start on {endpoint}") from None
                time.sleep(0.2)
        yield endpoint
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="/usr/share/datasets/fashion-mnist",
                   help="a directory of MNIST-format IDX files")
    p.add_argument("--rows", type=int, help="use only the first ROWS rows (smoke runs)")
    p.add_argument("--chunk-rows", type=int, default=10_000)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--iters", type=int, default=3)
    p.add_argument("--rounds", type=int, default=3)
    add_out_argument(p, "s3")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)

    import s3fs
    import zarr

    from daskmeans import KMeans, io, open_source

    tmp = Path(tempfile.mkdtemp(prefix="daskmeans-s3-"))
    local = io.ingest(args.data, tmp / "local.zarr", name="bench", chunk_rows=args.chunk_rows)
    split = "train" if "train" in zarr.open_group(local, mode="r").attrs["splits"] else "test"
    if args.rows:
        g = zarr.open_group(local, mode="r")
        local = io.arrays_to_dataset(
            {split: (g[f"{split}/images"][:args.rows], g[f"{split}/labels"][:args.rows])},
            tmp / "rows.zarr", name="bench", chunk_rows=args.chunk_rows)
    images = zarr.open_group(local, mode="r")[f"{split}/images"]
    n, d = images.shape[0], int(np.prod(images.shape[1:]))
    stored = sum(f.stat().st_size for f in Path(local).rglob("*") if f.is_file())
    rng = np.random.default_rng(0)
    C0 = images[np.sort(rng.choice(n, args.k, replace=False))].reshape(args.k, d)
    C0 = C0.astype(np.float32) / np.float32(255)

    with moto_server() as endpoint:
        opts: dict[str, Any] = {"key": "bench", "secret": "bench", "endpoint_url": endpoint}
        s3fs.S3FileSystem(**opts).mkdir(BUCKET)
        url = f"s3://{BUCKET}/bench.zarr"
        t0 = time.perf_counter()
        io.upload_store(local, url, storage_options=opts)
        print(f"store: {n} x {d} uint8 ({split}), {stored / 1e6:.1f} MB compressed in "
              f"{-(-n // args.chunk_rows)} chunks; uploaded to {endpoint} in "
              f"{time.perf_counter() - t0:.1f} s", flush=True)

        def fit(where: str, so: dict[str, Any] | None, m: int) -> float:
            t = time.perf_counter()
            KMeans(args.k, init=C0, max_iter=m, tol=0, algorithm="lloyd").fit(
                open_source(where, split, storage_options=so, cache=False))
            return time.perf_counter() - t

        contenders = {"local disk, streamed": (str(local), None),
                      "moto S3 (127.0.0.1), streamed": (url, opts)}
        for where, so in contenders.values():  # warm-up: compiled kernels, connections
            fit(where, so, 1)
        per_iter: dict[str, list[float]] = {name: [] for name in contenders}
        records: list[dict[str, Any]] = []
        for r in range(args.rounds):
            for name, (where, so) in contenders.items():
                a = fit(where, so, 1)
                b = fit(where, so, 1 + args.iters)
                per_iter[name].append((b - a) / args.iters)
                records.append({"contender": name, "k": args.k, "round": r,
                                "seconds": per_iter[name][-1]})
                print(f"  round {r} {name:<30} {per_iter[name][-1] * 1e3:8.1f} ms/iteration "
                      f"(fit of 1 iteration {a:.2f} s)", flush=True)

    ref = per_iter["local disk, streamed"]
    ratios = {name: [a / b if b > 0 else float("nan") for a, b in zip(v, ref, strict=True)]
              for name, v in per_iter.items()}
    print(f"\nK={args.k}, {n} rows, plain Lloyd streamed (cache=False), median of "
          f"{args.rounds} rounds; ratio to local disk per round\n")
    print("| contender | ms/iteration | stored MB read per s | ratio |\n|---|---|---|---|")
    for name, v in per_iter.items():
        med, rs = float(np.median(v)), ratios[name]
        rate = f"{stored / 1e6 / med:.0f}" if med > 0 else "-"
        print(f"| {name} | {med * 1e3:.1f} | {rate} | {np.median(rs):.2f}x "
              f"[{min(rs):.2f}-{max(rs):.2f}] |")
    s3_ratio = np.median(ratios["moto S3 (127.0.0.1), streamed"])
    print(f"\nS3 / local disk, median of the per-round ratios: {s3_ratio:.2f}x")
    save_results("s3", args, records, measure="seconds per iteration",
                 reference="local disk, streamed", rows=n, stored_bytes=stored)

if __name__ == "__main__":
    main()
