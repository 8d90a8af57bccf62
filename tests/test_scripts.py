"""The benchmark scripts run end to end (tiny settings) and print their tables.

All of them run in one fresh Python process, one after another (each as ``__main__``
with its own ``sys.argv``, its output captured): they pay the imports of dask,
scikit-learn and numba once instead of nine times (~20 s of the suite). The
benchmark-kernel script, which switches kernels through the environment, runs last.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"

#: each script's tiny settings ("{data}": the offline MNIST directory)
SMOKE: dict[str, list[str]] = {
    "benchmark.py":
        "--data {data} --k 3 --iters 1 --repeat 1 --no-cluster".split(),
    "benchmark_ninit.py":
        "--data {data} --k 3 --n-init 2 --rounds 1".split(),
    "benchmark_kernel.py":
        "--data {data} --rows 1000 --k 3 --rounds 1 --no-compile-timing".split(),
    "benchmark_converge.py":
        "--data {data} --k 3 --rounds 1 --no-peers --no-warm-up".split(),
    "benchmark_big_store.py":
        "--data {data} --repeat-data 1 --k 3 --iters 1 --rounds 1".split(),
    "benchmark_cli.py":
        "--data {data} --rounds 1 --commands evaluate --no-cluster".split(),
    "kmedians_quality.py":
        "--data {data} --rows 300 --k 3 --max-iter 2 --seeds 1".split(),
    "benchmark_bisecting.py":
        "--data {data} --rows 300 --k 3 --seeds 1 --max-iter 3 "
        "--strategies largest_cluster".split(),
    "near_tie_cost.py":
        "--data {data} --rows 500 --k 3 --offsets 0 100".split(),
    "benchmark_s3.py":
        "--data {data} --rows 1000 --chunk-rows 500 --k 3 --iters 1 --rounds 1".split(),
}

RUNNER = """
import contextlib, io, json, runpy, sys, traceback
specs, dest = json.loads(sys.argv[1]), sys.argv[2]
results = {}
for name, path, args in specs:
    out, err, ok = io.StringIO(), io.StringIO(), True
    sys.argv = [path, *args]
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            runpy.run_path(path, run_name="__main__")
    except SystemExit as e:
        ok = e.code in (0, None)
    except BaseException:
        ok = False
        err.write(traceback.format_exc())
    results[name] = {"ok": ok, "out": out.getvalue(), "err": err.getvalue()[-4000:]}
    with open(dest, "w") as f:
        json.dump(results, f)
"""


@pytest.fixture(scope="module")
def smoke(mnist_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    order = sorted(SMOKE, key=lambda name: name == "benchmark_kernel.py")
    specs = [(name, str(SCRIPTS / name),
              [a.replace("{data}", str(mnist_dir)) for a in SMOKE[name]]) for name in order]
    dest = tmp_path_factory.mktemp("smoke") / "results.json"
    p = subprocess.run([sys.executable, "-c", RUNNER, json.dumps(specs), str(dest)],
                       capture_output=True, text=True, timeout=900)
    results: dict[str, Any] = json.loads(dest.read_text()) if dest.exists() else {}
    for name in SMOKE:  # a crash of the whole process fails every test that did not run
        results.setdefault(name, {"ok": False, "out": "", "err": p.stderr[-4000:]})
    return results


def ran(smoke: dict[str, Any], name: str) -> str:
    """The script's stdout, once it ran to the end."""
    r = smoke[name]
    assert r["ok"], r["err"]
    return str(r["out"])


@pytest.mark.slow
def test_benchmark_prints_every_row(smoke: dict[str, Any]) -> None:
    out = ran(smoke, "benchmark.py")
    rows = [line for line in out.splitlines() if line.startswith("| ")]
    names = [r.split(" | ")[0].lstrip("| ") for r in rows[1:]]
    stores = ["our store", "zarr v3 Blosc", "zarr v3 sharded zstd", "zarr v2"]
    assert names == ["scikit-learn (lloyd)", "daskmeans threaded", "daskmeans threaded, bounds",
                     *(f"daskmeans {s} {h}" for s in stores for h in ("streamed", "held")),
                     "floor: distance GEMM alone"], out
    assert "our store held / in-memory, K=3:" in out
    assert "zarr v2 streamed / in-memory, K=3:" in out
    assert "read and hold, zarr v3 sharded zstd:" in out


@pytest.mark.slow
def test_benchmark_ninit_prints_every_fit(smoke: dict[str, Any]) -> None:
    out = ran(smoke, "benchmark_ninit.py")
    rows = [line for line in out.splitlines() if line.startswith("| daskmeans")]
    assert len(rows) == 4, out
    ours = [line for line in out.splitlines() if "round 0 daskmeans" in line]
    inertias = {line.split("inertia ")[1] for line in ours}
    assert len(ours) == 4 and len(inertias) == 1, out  # shared passes or not, held or not


@pytest.mark.slow
def test_benchmark_kernel_prints_both_kernels(smoke: dict[str, Any]) -> None:
    out = ran(smoke, "benchmark_kernel.py")
    rows = [line for line in out.splitlines() if line.startswith("| 3 |")]
    assert [r.split(" | ")[1] for r in rows] == ["float32", "uint8"], out


@pytest.mark.slow
def test_benchmark_converge_prints_every_contender(smoke: dict[str, Any]) -> None:
    out = ran(smoke, "benchmark_converge.py")
    rows = [line.split(" | ")[0].lstrip("| ") for line in out.splitlines()
            if line.startswith("| ") and "contender" not in line]
    assert rows == ["scikit-learn lloyd", "scikit-learn elkan", "daskmeans lloyd, in memory",
                    "daskmeans auto (bounds), in memory", "daskmeans auto, Zarr store held",
                    "daskmeans auto, Zarr store streamed"], out
    inertias = {line.rsplit(", ", 1)[1] for line in out.splitlines() if " it, " in line}
    assert len(inertias) == 1, out  # every contender converged to the same answer


@pytest.mark.slow
def test_benchmark_big_store_prints_every_contender(smoke: dict[str, Any]) -> None:
    out = ran(smoke, "benchmark_big_store.py")
    rows = [line.split(" | ")[0].lstrip("| ") for line in out.splitlines()
            if line.startswith("| ") and "contender" not in line]
    assert rows == ["threaded, streamed", "threaded, held", "LocalCluster 2x1, streamed",
                    "LocalCluster 2x1, held"], out


def test_near_tie_cost_prints_each_offset(smoke: dict[str, Any]) -> None:
    out = ran(smoke, "near_tie_cost.py")
    rows = [line.split(" | ")[:2] for line in out.splitlines() if line.startswith("| 3 |")]
    assert rows == [["| 3", "0"], ["| 3", "100"]], out

@pytest.mark.slow
def test_benchmark_cli_prints_ratios(smoke: dict[str, Any]) -> None:
    out = ran(smoke, "benchmark_cli.py")
    assert "| threaded | evaluate |" in out and "daskmeans --help:" in out, out


@pytest.mark.slow
def test_kmedians_quality_prints_both_metrics(smoke: dict[str, Any]) -> None:
    out = ran(smoke, "kmedians_quality.py")
    rows = [line.split(" | ")[:2] for line in out.splitlines() if line.startswith("| 3 |")]
    assert rows == [["| 3", "euclidean"], ["| 3", "manhattan"]] * 2, out


@pytest.mark.slow
def test_benchmark_bisecting_prints_both_contenders(smoke: dict[str, Any]) -> None:
    out = ran(smoke, "benchmark_bisecting.py")
    rows = [line.split(" | ")[3] for line in out.splitlines() if line.startswith("| 3 |")
            and line.count(" | ") == 8]
    assert rows == ["scikit-learn", "daskmeans"], out


@pytest.mark.slow
def test_benchmark_s3_prints_both_stores(smoke: dict[str, Any]) -> None:
    pytest.importorskip("s3fs")
    pytest.importorskip("moto.server")
    out = ran(smoke, "benchmark_s3.py")
    rows = [line.split(" | ")[0].lstrip("| ") for line in out.splitlines()
            if line.startswith("| ") and "contender" not in line]
    assert rows == ["local disk, streamed", "moto S3 (127.0.0.1), streamed"], out
    assert "S3 / local disk, median of the per-round ratios:" in out, out
