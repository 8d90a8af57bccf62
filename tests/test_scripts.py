"""The benchmark scripts run end to end (tiny settings), print their tables and write
their results as JSON; the plotting script draws the results kept in the repository.

All of them run in one fresh Python process, one after another (each as ``__main__``
with its own ``sys.argv``, its output captured): they pay the imports of dask,
scikit-learn and numba once instead of nine times (~20 s of the suite). The
benchmark-kernel script, which switches kernels through the environment, runs last.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections.abc import Iterator
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
    "benchmark_workers.py":
        "--data {data} --rows 1000 --k 3 --iters 1 --rounds 1 --no-cluster".split(),
    "benchmark_largek.py":
        ["--data", "{data}", "--k", "8", "--rows", "3000", "--dim", "16", "--components",
         "20", "--chunk-rows", "1000", "--max-iter", "5", "--faiss-iters", "3", "--no-peers",
         "--only", "scikit-learn lloyd", "daskmeans default init, 256 rows per centre"],
    "benchmark_algorithms.py":
        "--data {data} --rows 600 --k-minibatch 3 --k-bisecting 3 --k-medians 3 --seeds 1 "
        "--chunk-rows 300 --no-cluster --no-warm-up".split(),
    "benchmark_inputs.py":
        "--data {data} --k 3 --rounds 1 --max-iter 20 --chunk-rows 700".split(),
    # a second run of the same script ("#" and what follows name the run, not the file)
    "benchmark_inputs.py#cluster":
        "--data {data} --cluster --cluster-rows 3000 --chunk-rows 1000 --cluster-iters 2 "
        "--k 3 --rounds 1".split(),
    "benchmark_sparse.py":
        "--data json --k 3 --seeds 1 --max-iter 3 --no-warm-up".split(),
}

#: the scripts that write their results as JSON (given ``--out`` in a temporary folder,
#: so that no smoke run writes into the repository): name -> their ``benchmark`` field
WRITES_JSON = {"benchmark.py": "lloyd-iteration", "benchmark_ninit.py": "ninit",
               "benchmark_kernel.py": "kernel", "benchmark_converge.py": "converge",
               "benchmark_big_store.py": "big-store", "benchmark_cli.py": "cli",
               "benchmark_bisecting.py": "bisecting", "benchmark_s3.py": "s3",
               "benchmark_workers.py": "workers", "benchmark_largek.py": "largek",
               "benchmark_algorithms.py": "algorithms", "benchmark_inputs.py": "inputs",
               "benchmark_inputs.py#cluster": "inputs",
               "benchmark_sparse.py": "sparse"}

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
    work = tmp_path_factory.mktemp("smoke")
    specs = [(name, str(SCRIPTS / name.split("#")[0]),
              [a.replace("{data}", str(mnist_dir)) for a in SMOKE[name]]
              + (["--out", str(work / f"{name}.json".replace("#", "-"))]
                 if name in WRITES_JSON else []))
             for name in order]
    dest = work / "results.json"
    p = subprocess.run([sys.executable, "-c", RUNNER, json.dumps(specs), str(dest)],
                       capture_output=True, text=True, timeout=900)
    results: dict[str, Any] = json.loads(dest.read_text()) if dest.exists() else {}
    for name in SMOKE:  # a crash of the whole process fails every test that did not run
        results.setdefault(name, {"ok": False, "out": "", "err": p.stderr[-4000:]})
        written = work / f"{name}.json".replace("#", "-")
        results[name]["json"] = json.loads(written.read_text()) if written.exists() else None
    return results


def ran(smoke: dict[str, Any], name: str) -> str:
    """The script's stdout, once it ran to the end."""
    r = smoke[name]
    assert r["ok"], r["err"]
    return str(r["out"])


def results_of(smoke: dict[str, Any], name: str) -> dict[str, Any]:
    """The JSON results the script wrote, checked for what every results file holds."""
    out = ran(smoke, name)
    data = smoke[name]["json"]
    assert data is not None, f"{name} wrote no JSON results:\n{out}"
    assert data["benchmark"] == WRITES_JSON[name]
    machine = data["machine"]
    assert {"date", "cpu", "cores", "versions", "blas", "python"} <= set(machine), machine
    assert "flags" in machine["cpu"] and "numpy" in machine["versions"]
    assert data["params"]["data"] and "out" not in data["params"]
    assert data["measure"] and data["records"], data
    for rec in data["records"]:  # a marginal time of a tiny run may come out negative
        assert isinstance(rec["contender"], str) and math.isfinite(rec["seconds"]), rec
    return data


def contenders(data: dict[str, Any]) -> list[str]:
    """The results' contenders, in the order first measured."""
    return list(dict.fromkeys(r["contender"] for r in data["records"]))


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
    data = results_of(smoke, "benchmark.py")
    assert contenders(data) == names  # every row of the table, in its order
    assert data["reference"] == "scikit-learn (lloyd)"
    assert {r["k"] for r in data["records"]} == {3}
    assert set(data["read_and_hold_seconds"]) == set(stores)


@pytest.mark.slow
def test_benchmark_ninit_prints_every_fit(smoke: dict[str, Any]) -> None:
    out = ran(smoke, "benchmark_ninit.py")
    rows = [line for line in out.splitlines() if line.startswith("| daskmeans")]
    assert len(rows) == 4, out
    ours = [line for line in out.splitlines() if "round 0 daskmeans" in line]
    inertias = {line.split("inertia ")[1] for line in ours}
    assert len(ours) == 4 and len(inertias) == 1, out  # shared passes or not, held or not
    data = results_of(smoke, "benchmark_ninit.py")
    assert contenders(data)[0] == data["reference"] == "scikit-learn"
    assert len(contenders(data)) == 5
    assert len({f"{r['inertia']:.6g}" for r in data["records"][1:]}) == 1, data


@pytest.mark.slow
def test_benchmark_kernel_prints_both_kernels(smoke: dict[str, Any]) -> None:
    out = ran(smoke, "benchmark_kernel.py")
    rows = [line for line in out.splitlines() if line.startswith("| 3 |")]
    assert [r.split(" | ")[1] for r in rows] == ["float32", "uint8"], out
    data = results_of(smoke, "benchmark_kernel.py")
    assert contenders(data) == ["numpy", "numba"] and data["reference"] == "numpy"
    assert {(r["rows"], r["k"]) for r in data["records"]} == {("float32", 3), ("uint8", 3)}


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
    data = results_of(smoke, "benchmark_converge.py")
    assert contenders(data) == rows
    assert all(r["n_iter"] >= 1 and r["inertia"] > 0 for r in data["records"]), data


def test_benchmark_workers_prints_each_worker_count(smoke: dict[str, Any]) -> None:
    out = ran(smoke, "benchmark_workers.py")
    rows = [line.split(" | ")[0].lstrip("| ") for line in out.splitlines()
            if line.startswith("| ") and "contender" not in line]
    assert rows == ["daskmeans threaded 1x1", "daskmeans threaded 1x2"], out
    data = results_of(smoke, "benchmark_workers.py")
    assert [r["workers"] for r in data["records"]] == [1, 2]
    assert data["reference"] == "daskmeans threaded 1x1"
    first, second = (r["inertia"] for r in data["records"])
    assert first == pytest.approx(second, rel=1e-9)  # the same fit (sums in another order)


@pytest.mark.slow
def test_benchmark_algorithms_prints_every_case(smoke: dict[str, Any]) -> None:
    out = ran(smoke, "benchmark_algorithms.py")
    rows = [tuple(cell.strip() for cell in line.split(" | ")[:4]) for line in out.splitlines()
            if line.startswith("| ") and "contender" not in line]
    assert rows == [
        ("| MiniBatchKMeans", "3", "scikit-learn", "in memory"),
        ("| MiniBatchKMeans", "3", "daskmeans", "in memory"),
        ("| MiniBatchKMeans", "3", "daskmeans", "Zarr store"),
        ("| MiniBatchKMeans", "3", "daskmeans", "dask array"),
        ("| MiniBatchKMeans", "3", "dask-ml Incremental", "dask array"),
        ("| BisectingKMeans", "3", "scikit-learn", "in memory"),
        ("| BisectingKMeans", "3", "daskmeans", "in memory"),
        ("| BisectingKMeans", "3", "daskmeans", "Zarr store"),
        ("| k-medians", "3", "daskmeans euclidean", "in memory"),
        ("| k-medians", "3", "daskmeans manhattan", "in memory"),
        ("| k-medians", "3", "daskmeans euclidean", "Zarr store"),
        ("| k-medians", "3", "daskmeans manhattan", "Zarr store"),
    ], out
    data = results_of(smoke, "benchmark_algorithms.py")
    assert data["reference"] == "scikit-learn" and contenders(data)[0] == "scikit-learn"
    assert all(r["inertia"] > 0 and r["case"] and r["where"] for r in data["records"]), data
    summary = {(s["case"], s["contender"], s["where"]): s for s in data["summary"]}
    assert summary["BisectingKMeans", "scikit-learn", "in memory"]["time_ratio"] == 1.0
    medians = summary["k-medians", "daskmeans manhattan", "Zarr store"]
    assert medians["reference"] == "daskmeans euclidean, Zarr store"
    assert medians["time_ratio"] > 0
    # the same fit of the same rows wherever they are (in memory, a store, a dask array)
    ours = {round(s["inertia"], 3) for (case, name, _), s in summary.items()
            if case == "BisectingKMeans" and name == "daskmeans"}
    assert len(ours) == 1, summary


@pytest.mark.slow
def test_benchmark_big_store_prints_every_contender(smoke: dict[str, Any]) -> None:
    out = ran(smoke, "benchmark_big_store.py")
    rows = [line.split(" | ")[0].lstrip("| ") for line in out.splitlines()
            if line.startswith("| ") and "contender" not in line]
    assert rows == ["threaded, streamed", "threaded, held", "LocalCluster 2x1, streamed",
                    "LocalCluster 2x1, held"], out
    data = results_of(smoke, "benchmark_big_store.py")
    assert contenders(data) == rows
    assert [r.get("workers") for r in data["records"]] == [None, None, 2, 2]


def test_near_tie_cost_prints_each_offset(smoke: dict[str, Any]) -> None:
    out = ran(smoke, "near_tie_cost.py")
    rows = [line.split(" | ")[:2] for line in out.splitlines() if line.startswith("| 3 |")]
    assert rows == [["| 3", "0"], ["| 3", "100"]], out

@pytest.mark.slow
def test_benchmark_cli_prints_ratios(smoke: dict[str, Any]) -> None:
    out = ran(smoke, "benchmark_cli.py")
    assert "| threaded | evaluate |" in out and "daskmeans --help:" in out, out
    data = results_of(smoke, "benchmark_cli.py")
    assert sorted(contenders(data)) == ["CLI", "script"] and data["reference"] == "script"
    assert {(r["where"], r["command"]) for r in data["records"]} == {("threaded", "evaluate")}


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
    data = results_of(smoke, "benchmark_bisecting.py")
    assert contenders(data) == rows and data["reference"] == "scikit-learn"
    assert all(0 < r["purity"] <= 1 and r["inertia"] > 0 for r in data["records"]), data


@pytest.mark.slow
def test_benchmark_sparse_prints_every_contender(smoke: dict[str, Any]) -> None:
    """The TF-IDF benchmark fits scikit-learn's sparse Lloyd and daskmeans' (plain and
    bounded) from the same centres and records each fit."""
    out = ran(smoke, "benchmark_sparse.py")
    rows = [line.split(" | ")[1] for line in out.splitlines() if line.startswith("| 3 |")]
    assert rows == ["scikit-learn", "daskmeans lloyd", "daskmeans bounded"], out
    data = results_of(smoke, "benchmark_sparse.py")
    assert contenders(data) == rows and data["reference"] == "scikit-learn"
    assert data["nnz"] > 0 and data["terms"] > 0, data
    assert all(r["inertia"] > 0 and 1 <= r["n_iter"] <= 3 for r in data["records"]), data


@pytest.mark.slow
def test_benchmark_s3_prints_both_stores(smoke: dict[str, Any]) -> None:
    pytest.importorskip("s3fs")
    pytest.importorskip("moto.server")
    out = ran(smoke, "benchmark_s3.py")
    rows = [line.split(" | ")[0].lstrip("| ") for line in out.splitlines()
            if line.startswith("| ") and "contender" not in line]
    assert rows == ["local disk, streamed", "moto S3 (127.0.0.1), streamed"], out
    assert "S3 / local disk, median of the per-round ratios:" in out, out
    data = results_of(smoke, "benchmark_s3.py")
    assert contenders(data) == rows and data["reference"] == "local disk, streamed"


# ------------------------------------------------------------------ plot_benchmarks.py


@pytest.fixture(scope="module")
def plotting() -> Iterator[Any]:
    """scripts/plot_benchmarks.py as a module."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("plot_benchmarks",
                                                  SCRIPTS / "plot_benchmarks.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        del sys.modules[spec.name]


def _is_png(path: Path) -> bool:
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_benchmarks_draws_the_results_in_the_repository(
        plotting: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    results = sorted((SCRIPTS.parent / "benchmarks" / "results").glob("*.json"))
    assert results, "the repository keeps benchmark results"
    assert plotting.main(["--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    report = plotting.draw_all(results, tmp_path / "again")
    assert report.drawn and all(_is_png(d.path) for d in report.drawn)
    assert {d.kind for d in report.drawn} <= set(plotting.KINDS)
    assert sorted(p.name for p in tmp_path.glob("*.png")) == sorted(
        d.path.name for d in report.drawn)
    for kind, why in report.skipped.items():  # a kind no result allows: said, and why
        assert f"no {kind} figure: {why}" in out
    # the newest of each benchmark and set of cases: both revisions files (a re-run of
    # one case does not hide the full run), one of the two zarr-read runs
    ratio_sources = {d.source.name for d in report.drawn if d.kind == "ratio"}
    assert {"revisions-restructure-k10.json", "revisions-restructure.json",
            "zarr-read-restructure-2.json"} <= ratio_sources
    assert "zarr-read-restructure.json" not in ratio_sources
    summary = plotting.machine_summary(report.drawn[0].machine)
    assert "2 cores" in summary and "no AVX-512" in summary and "numpy" in summary


def _result(records: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    machine = {"date": "2026-12-07T00:00:00+00:00", "cores": 2,
               "cpu": {"model": "Test CPU", "flags": ["avx2", "avx512f"]},
               "versions": {"numpy": "2"}, "blas": [], "python": "3.11"}
    return {"benchmark": "demo", "machine": machine, "measure": "seconds per iteration",
            "reference": "peer", "records": records, **extra}


def test_plot_benchmarks_ratios_pair_measurements_of_one_round(plotting: Any) -> None:
    recs = [{"contender": "peer", "k": 10, "round": 0, "seconds": 1.0},
            {"contender": "ours", "k": 10, "round": 0, "seconds": 0.5},
            {"contender": "peer", "k": 10, "round": 1, "seconds": 4.0},
            {"contender": "ours", "k": 10, "round": 1, "seconds": 2.0},
            {"contender": "ours", "k": 99, "round": 0, "seconds": 1.0}]  # no reference
    assert plotting.ratios(recs, "peer") == {"K=10": {"peer": 1.0, "ours": 0.5}}
    # round 1 now 0.25: the median of the per-round ratios is 0.375, where the ratio of
    # the medians would be 0.75 / 2.5 = 0.3
    recs[3]["seconds"] = 1.0
    assert plotting.ratios(recs, "peer")["K=10"]["ours"] == pytest.approx(0.375)


def test_plot_benchmarks_draws_k_and_workers_when_results_have_them(
        plotting: Any, tmp_path: Path) -> None:
    recs = [{"contender": c, "k": k, "round": r, "seconds": k * f / w,
             **({"workers": w} if c.startswith("ours") else {})}
            for r in range(2) for k in (10, 256)
            for c, f, w in (("peer", 2.0, 1), ("ours LocalCluster 1x1", 1.0, 1),
                            ("ours LocalCluster 2x1", 1.0, 2))]
    path = tmp_path / "demo.json"
    path.write_text(json.dumps(_result(recs)))
    report = plotting.draw_all([path], tmp_path / "figures")
    assert [d.kind for d in report.drawn] == ["ratio", "k", "workers"]
    assert report.skipped == {}
    assert all(_is_png(d.path) and d.measure == "seconds per iteration"
               for d in report.drawn)
    assert "AVX-512 (avx512f)" in plotting.machine_summary(report.drawn[0].machine)
    # a result with one K and no workers: only the ratio bars
    path.write_text(json.dumps(_result([r for r in recs
                                        if r["k"] == 10 and r.get("workers") != 2])))
    report = plotting.draw_all([path], tmp_path / "fewer")
    assert [d.kind for d in report.drawn] == ["ratio"]
    assert set(report.skipped) == {"k", "workers"}


def test_docs_hook_writes_the_performance_page_figures(tmp_path: Path) -> None:
    """docs/_ext/benchmarks.py, as Sphinx runs it: the figures and the text including
    them, each with its machine."""
    import importlib.util
    from types import SimpleNamespace

    spec = importlib.util.spec_from_file_location(
        "docs_benchmarks_hook", SCRIPTS.parent / "docs" / "_ext" / "benchmarks.py")
    assert spec is not None and spec.loader is not None
    hook = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hook)
    try:
        (tmp_path / "_benchmarks").mkdir()
        (tmp_path / "_benchmarks" / "stale.png").write_bytes(b"")  # of a removed result
        hook.generate(SimpleNamespace(srcdir=str(tmp_path)))
    finally:
        sys.modules.pop("daskmeans_plot_benchmarks", None)
    out = tmp_path / "_benchmarks"
    text = (out / "figures.inc").read_text()
    pngs = sorted(out.glob("*.png"))
    assert pngs and all(_is_png(p) for p in pngs)
    assert [f".. figure:: /_benchmarks/{p.name}" in text for p in pngs] == [True] * len(pngs)
    assert text.count("**Machine:** ") == len(pngs) and "no AVX-512" in text
    # the results kept in the repository give every kind of figure: none is left out
    assert {p.stem.rsplit("-", 1)[1] for p in pngs} == {"ratio", "k", "workers"}
    assert "Figures not drawn" not in text


@pytest.mark.slow
def test_benchmark_largek_records_each_data_set_and_contender(smoke: dict[str, Any]) -> None:
    out = ran(smoke, "benchmark_largek.py")
    assert "fashion, K=8" in out and "embeddings, K=8" in out, out
    data = results_of(smoke, "benchmark_largek.py")
    names = ["scikit-learn lloyd", "daskmeans default init, 256 rows per centre"]
    assert [(r["dataset"], r["contender"]) for r in data["records"]] == [
        (d, n) for d in ("fashion", "embeddings") for n in names]
    for r in data["records"]:
        assert r["k"] == 8 and r["n_iter"] >= 1 and r["peak_rss_bytes"] > 0, r
        assert r["target_inertia"] > 0 and r["inertia"] > 0, r
    ours = [r for r in data["records"] if r["contender"].startswith("daskmeans")]
    assert all(r["seconds_before_iterations"] <= r["seconds"] for r in ours), ours
    # the default init ends below the 3 Lloyd iterations from random rows on both sets
    assert all(r["seconds_to_target"] is not None for r in ours), ours
    # the pruning per iteration: the first pass computes every distance, none is above 1
    for r in ours:
        dist, read = r["distance_fraction"], r["rows_read_fraction"]
        assert len(dist) == len(read) >= r["n_iter"] and dist[0] == read[0] == 1.0, r
        assert all(0 <= v <= 1 for v in dist + read), r
        # each iteration's seconds, one per iteration, within the fit's
        secs = r["iteration_seconds"]
        assert len(secs) == r["n_iter"] and all(0 < v <= r["seconds"] for v in secs), r
    assert "distances computed, share of n*K per iteration: 1.000" in out, out
    assert "seconds per iteration:" in out, out


def test_benchmark_inputs_compares_every_input(smoke: dict[str, Any]) -> None:
    """Threaded: every input at each K, the same inertia as numpy's, ratios to numpy
    and to open_source."""
    out = ran(smoke, "benchmark_inputs.py")
    assert "CHECK inertia equal to numpy's to 1e-6 for every input: ok" in out, out
    data = results_of(smoke, "benchmark_inputs.py")
    names = ["numpy", "da.from_array", "open_source", "open_dataset", "lazy graph"]
    assert contenders(data) == names
    for r in data["records"]:
        assert r["k"] == 3 and r["same_inertia"] and r["n_iter"] >= 1, r
        assert r["vs_numpy"] > 0 and r["vs_open_source"] > 0, r
    assert [r["vs_numpy"] for r in data["records"] if r["contender"] == "numpy"] == [1.0]


@pytest.mark.slow
def test_benchmark_inputs_on_a_cluster_times_every_phase(smoke: dict[str, Any]) -> None:
    """--cluster: each input threaded and on the LocalCluster, a whole fit split into
    its phases, and the large-graph warnings (none)."""
    out = ran(smoke, "benchmark_inputs.py#cluster")
    assert "3000 rows, 2 iterations" in out, out
    data = results_of(smoke, "benchmark_inputs.py#cluster")
    assert contenders(data) == [f"{where}, {name}"
                                for name in ("open_source", "open_dataset", "lazy graph")
                                for where in ("threaded", "LocalCluster 2x1")]
    inertia = data["records"][0]["inertia"]
    for r in data["records"]:
        assert set(r["phases"]) == {"read+hold", "init", "iterations", "final", "labels"}
        assert all(s >= 0 for s in r["phases"].values()), r
        assert sum(r["phases"].values()) == pytest.approx(r["seconds"]), r
        assert r["n_iter"] == 2 and r["large_graph_warnings"] == [], r
        assert r["inertia"] == pytest.approx(inertia, rel=1e-6), r
