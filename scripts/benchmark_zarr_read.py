#!/usr/bin/env python
"""Reading a store's row blocks: zarr-python, the zarrs codec pipeline, daskmeans' chunk files.

A streamed fit decodes every chunk of its store in every pass, in the task's own thread,
so what counts is the time for each of the scheduler's threads to read its block of
whole chunks at once. Usage (``pip install zarrs``)::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python scripts/benchmark_zarr_read.py \\
        --data /usr/share/datasets/fashion-mnist --rounds 7

Readers, interleaved round by round: ``zarr`` (``Array.__getitem__`` with zarr's default
pipeline), ``zarrs`` (the same call on an array opened under
``codec_pipeline.path = "zarrs.ZarrsCodecPipeline"``, with its default Rust thread pool
and with one thread per read), and ``chunk files`` (:class:`daskmeans.io.chunkfiles.ChunkFiles`).
Each round reads all rows once, split evenly over ``--threads`` threads. Then, unless
``--no-fit``, a streamed K=10 fit to convergence (``cache=False``) reads the store
through each path. Results go to ``--out`` as JSON.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import zarr

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmark_results import default_out, machine_info, write_results


def chunk_files(array: zarr.Array) -> Any:
    try:
        from daskmeans.io.chunkfiles import ChunkFiles
    except ImportError:  # the layout before daskmeans.io became a package
        from daskmeans._chunkfiles import ChunkFiles  # type: ignore[no-redef]
    return ChunkFiles.of(array)


def open_with(store_path: str, path: str, pipeline: str | None, workers: int | None
              ) -> zarr.Array:
    """The array opened under a codec pipeline: the pipeline is resolved when the array
    is opened and travels with it, so nothing process-wide changes for the others."""
    cfg: dict[str, Any] = {}
    if pipeline is not None:
        cfg["codec_pipeline.path"] = pipeline
    if workers is not None:
        cfg["threading.max_workers"] = workers
    with zarr.config.set(cfg):
        return zarr.open_array(store_path, path=path, mode="r")


def rows_of(array: zarr.Array) -> Any:
    return lambda start, stop: array[start:stop]


def timed_read(read: Any, n: int, threads: int, pool: ThreadPoolExecutor) -> float:
    edges = np.linspace(0, n, threads + 1).astype(int)
    t0 = time.perf_counter()
    list(pool.map(lambda i: read(int(edges[i]), int(edges[i + 1])), range(threads)))
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--no-fit", action="store_true")
    p.add_argument("--out", help="JSON results (default: benchmarks/results/zarr-read-DATE.json)")
    args = p.parse_args()

    import daskmeans
    from daskmeans import io

    open_source = getattr(daskmeans, "open_source", None) or io.open_source
    store = io.ingest(args.data, Path(tempfile.mkdtemp(prefix="daskmeans-read-")) / "d.zarr",
                      name="bench")
    base = open_source(store, "train").array
    store_path, path = str(store), base.path
    n = base.shape[0]
    arrays = {
        "zarr": open_with(store_path, path, None, None),
        "zarrs (default threads)": open_with(store_path, path, "zarrs.ZarrsCodecPipeline", None),
        "zarrs (1 thread per read)": open_with(store_path, path, "zarrs.ZarrsCodecPipeline", 1),
    }
    files = chunk_files(arrays["zarr"])
    readers = {name: rows_of(a) for name, a in arrays.items()}
    if files is not None:
        readers["chunk files"] = files.read
    expected = arrays["zarr"][:]
    for name, read in readers.items():  # every reader gives the same rows
        np.testing.assert_array_equal(read(0, n), expected, err_msg=name)
    print(f"{n} x {base.shape[1:]} {base.dtype}, chunks {base.chunks}, "
          f"compressors {base.compressors}")
    times: dict[str, list[float]] = {name: [] for name in readers}
    with ThreadPoolExecutor(args.threads) as pool:
        for _ in range(args.rounds):
            for name, read in readers.items():
                times[name].append(timed_read(read, n, args.threads, pool))
    ref = statistics.median(times["chunk files"]) if "chunk files" in times else None
    for name, t in times.items():
        ratio = f" ({statistics.median(t) / ref:.2f}x chunk files)" if ref else ""
        print(f"  read {name:<28} {statistics.median(t) * 1e3:7.1f} ms{ratio}")

    fits: dict[str, list[float]] = {}
    if not args.no_fit:
        import dask

        Xm = open_source(store, "train")
        C0 = np.asarray(Xm.array[np.sort(np.random.default_rng(0).choice(n, 10, replace=False))],
                        np.float32).reshape(10, -1) / 255
        for r in range(max(1, args.rounds // 2)):
            for name, array in arrays.items():
                if name.startswith("zarrs") and "1 thread" in name:
                    continue
                for via_files in ((True, False) if name == "zarr" else (False,)):
                    label = "chunk files" if via_files else name
                    src = open_source(array, cache=False)
                    if not via_files:
                        src.files = None  # make zarr (under its pipeline) read the blocks
                    with dask.config.set(scheduler="threads"):
                        t0 = time.perf_counter()
                        daskmeans.KMeans(10, init=C0).fit(src)
                        fits.setdefault(label, []).append(time.perf_counter() - t0)
                    print(f"  fit round {r} {label:<28} {fits[label][-1]:6.2f} s", flush=True)
        for name, t in fits.items():
            print(f"  streamed K=10 fit {name:<28} {statistics.median(t):6.2f} s")
    out = write_results(args.out or default_out("zarr-read"), {
        "benchmark": "zarr-read", "machine": machine_info(), "rows": n,
        "chunks": list(base.chunks), "threads": args.threads,
        "read_seconds": times, "streamed_fit_seconds": fits})
    print(f"results: {out}")


if __name__ == "__main__":
    main()
