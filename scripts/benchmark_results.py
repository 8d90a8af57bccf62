"""What every benchmark script records beside its numbers, and how it writes them.

A figure is only worth quoting with the machine it came from: the CPU (and whether it
had AVX-512 that day), the cores, the versions of everything that computes, the BLAS
and its variables, and the date. The docs' performance page reads these files; nothing
else keeps a history of figures.

A results file is one JSON object: ``benchmark`` (its name), ``machine``
(:func:`machine_info`), ``params`` (the script's command-line settings) and, for the
scripts that call :func:`save_results`, ``measure`` (what ``seconds`` means: per
iteration, to convergence, per fit), ``reference`` (the contender ratios are taken
against, when there is one) and ``records``: one object per measurement with at least
``contender`` and ``seconds``, and where they apply ``round`` (the interleaved round it
was measured in), ``k``, ``workers``, ``inertia``. ``scripts/plot_benchmarks.py``
draws them.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGES = ("daskmeans", "numpy", "scipy", "numba", "dask", "distributed", "zarr",
            "scikit-learn", "scikit-learn-intelex", "faiss-cpu", "dask-ml")
FLAGS = ("avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "amx_tile")


def cpu_info() -> dict[str, Any]:
    """The CPU's model name and the vector-instruction flags that change kernel speed."""
    model, flags = platform.processor() or "unknown", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
                break
    except OSError:
        pass
    return {"model": model, "flags": sorted(f for f in FLAGS if f in flags)}


def blas_info() -> list[dict[str, Any]]:
    """The BLAS libraries loaded in this process and their threads (threadpoolctl)."""
    from threadpoolctl import threadpool_info

    keep = ("internal_api", "version", "num_threads", "architecture")
    return [{k: p.get(k) for k in keep} for p in threadpool_info()]


def machine_info() -> dict[str, Any]:
    """The machine, the software and the date a result was measured on."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    import numpy  # noqa: F401  (so that its BLAS shows in blas_info)

    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "cpu": cpu_info(),
        "cores": os.cpu_count(),
        "memory_bytes": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"),
        "python": platform.python_version(),
        "versions": versions,
        "blas": blas_info(),
        "env": {k: os.environ[k] for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE",
                                           "OMP_NUM_THREADS") if k in os.environ},
    }


def write_results(path: str | Path, results: dict[str, Any], *,
                  overwrite: bool = False) -> Path:
    """Write ``results`` as JSON at ``path``, atomically (a sibling file renamed into
    place); an existing file is kept unless ``overwrite``."""
    from daskmeans import io

    with io.atomic_file(path, overwrite=overwrite) as tmp:  # readable like any output
        tmp.write_text(json.dumps(results, indent=1) + "\n")
    return path


def add_out_argument(parser: Any, name: str) -> None:
    """The ``--out`` option every benchmark script takes."""
    parser.add_argument("--out", help=f"JSON results (default: "
                        f"benchmarks/results/{name}-DATE.json)")


def save_results(name: str, args: Any, records: list[dict[str, Any]], *, measure: str,
                 reference: str | None = None, **extra: Any) -> Path:
    """Write a script's ``records`` with the machine and its settings to ``args.out`` (or
    :func:`default_out`) and say where."""
    params = {k: v for k, v in vars(args).items() if k != "out"}
    out = write_results(args.out or default_out(name), {
        "benchmark": name, "machine": machine_info(), "params": params, "measure": measure,
        "reference": reference, **extra, "records": records})
    print(f"results: {out}")
    return out


def default_out(name: str) -> Path:
    """``benchmarks/results/<name>-<UTC date and time>.json`` under the repository."""
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    return Path(__file__).resolve().parents[1] / "benchmarks" / "results" / f"{name}-{stamp}.json"
