"""The benchmark scripts run end to end (tiny settings) and print their tables."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def run_script(name: str, *args: str) -> str:
    p = subprocess.run([sys.executable, str(SCRIPTS / name), *args], capture_output=True,
                       text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    return p.stdout


@pytest.mark.slow
def test_benchmark_prints_every_row(mnist_dir: Path) -> None:
    out = run_script("benchmark.py", "--data", str(mnist_dir), "--k", "3", "--iters", "1",
                     "--repeat", "1", "--no-cluster")
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
def test_benchmark_ninit_prints_every_fit(mnist_dir: Path) -> None:
    out = run_script("benchmark_ninit.py", "--data", str(mnist_dir), "--k", "3",
                     "--n-init", "2", "--rounds", "1")
    rows = [line for line in out.splitlines() if line.startswith("| daskmeans")]
    assert len(rows) == 4, out
    ours = [line for line in out.splitlines() if "round 0 daskmeans" in line]
    inertias = {line.split("inertia ")[1] for line in ours}
    assert len(ours) == 4 and len(inertias) == 1, out  # shared passes or not, held or not


@pytest.mark.slow
def test_benchmark_kernel_prints_both_kernels(mnist_dir: Path) -> None:
    out = run_script("benchmark_kernel.py", "--data", str(mnist_dir), "--rows", "1000",
                     "--k", "3", "--rounds", "1", "--no-compile-timing")
    rows = [line for line in out.splitlines() if line.startswith("| 3 |")]
    assert [r.split(" | ")[1] for r in rows] == ["float32", "uint8"], out


@pytest.mark.slow
def test_benchmark_converge_prints_every_contender(mnist_dir: Path) -> None:
    out = run_script("benchmark_converge.py", "--data", str(mnist_dir), "--k", "3",
                     "--rounds", "1", "--no-peers")
    rows = [line.split(" | ")[0].lstrip("| ") for line in out.splitlines()
            if line.startswith("| ") and "contender" not in line]
    assert rows == ["scikit-learn lloyd", "scikit-learn elkan", "daskmeans lloyd, in memory",
                    "daskmeans auto (bounds), in memory", "daskmeans auto, Zarr store held",
                    "daskmeans auto, Zarr store streamed"], out
    inertias = {line.rsplit(", ", 1)[1] for line in out.splitlines() if " it, " in line}
    assert len(inertias) == 1, out  # every contender converged to the same answer


@pytest.mark.slow
def test_benchmark_big_store_prints_every_contender(mnist_dir: Path) -> None:
    out = run_script("benchmark_big_store.py", "--data", str(mnist_dir), "--repeat-data", "1",
                     "--k", "3", "--iters", "1", "--rounds", "1")
    rows = [line.split(" | ")[0].lstrip("| ") for line in out.splitlines()
            if line.startswith("| ") and "contender" not in line]
    assert rows == ["threaded, streamed", "threaded, held", "LocalCluster 2x1, streamed",
                    "LocalCluster 2x1, held"], out


@pytest.mark.slow
def test_benchmark_cli_prints_ratios(mnist_dir: Path) -> None:
    out = run_script("benchmark_cli.py", "--data", str(mnist_dir), "--rounds", "1",
                     "--commands", "evaluate", "--no-cluster")
    assert "| threaded | evaluate |" in out and "daskmeans --help:" in out, out


@pytest.mark.slow
def test_kmedians_quality_prints_both_metrics(mnist_dir: Path) -> None:
    out = run_script("kmedians_quality.py", "--data", str(mnist_dir), "--rows", "300",
                     "--k", "3", "--max-iter", "2", "--seeds", "1")
    rows = [line.split(" | ")[:2] for line in out.splitlines() if line.startswith("| 3 |")]
    assert rows == [["| 3", "euclidean"], ["| 3", "manhattan"]] * 2, out


@pytest.mark.slow
def test_benchmark_bisecting_prints_both_contenders(mnist_dir: Path) -> None:
    out = run_script("benchmark_bisecting.py", "--data", str(mnist_dir), "--rows", "300",
                     "--k", "3", "--seeds", "1", "--max-iter", "3",
                     "--strategies", "largest_cluster")
    rows = [line.split(" | ")[3] for line in out.splitlines() if line.startswith("| 3 |")
            and line.count(" | ") == 8]
    assert rows == ["scikit-learn", "daskmeans"], out


@pytest.mark.slow
def test_benchmark_s3_prints_both_stores(mnist_dir: Path) -> None:
    pytest.importorskip("s3fs")
    pytest.importorskip("moto.server")
    out = run_script("benchmark_s3.py", "--data", str(mnist_dir), "--rows", "1000",
                     "--chunk-rows", "500", "--k", "3", "--iters", "1", "--rounds", "1")
    rows = [line.split(" | ")[0].lstrip("| ") for line in out.splitlines()
            if line.startswith("| ") and "contender" not in line]
    assert rows == ["local disk, streamed", "moto S3 (127.0.0.1), streamed"], out
    assert "S3 / local disk, median of the per-round ratios:" in out, out
