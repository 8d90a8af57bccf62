"""The daskmeans command, in-process (against the session LocalCluster) and as a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import zarr

from daskmeans import cli, load_model
from daskmeans.cli import demo
from tests.conftest import MNIST_ROWS, ran_on_workers


@pytest.fixture
def sched(local_cluster) -> Iterator[list[str]]:
    """The options that send a command to the session LocalCluster; the test fails
    unless tasks then ran on its workers."""
    with ran_on_workers(local_cluster):
        yield ["--scheduler", local_cluster.scheduler.address, "--quiet"]


@pytest.fixture(scope="module")
def store(mnist_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "mnist.zarr"
    assert cli.main(["ingest", "mnist", "--source", str(mnist_dir), "--out", str(out)]) == 0
    return out


def embedded_figures(page: str) -> list[str]:
    """The alternative texts of a page's images, after checking that every image is
    embedded as a PNG data: URI (none linked to a file beside the page)."""
    import re

    images = re.findall(r"<img src='([^']*)' alt='([^']*)'>", page)
    assert len(images) == page.count("<img"), "an image the pattern missed"
    linked = [alt for src, alt in images if not src.startswith("data:image/png;base64,")]
    assert not linked, f"images not embedded: {linked}"
    return [alt for _, alt in images]


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = cli.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_fit_evaluate_predict(store: Path, sched: list[str], tmp_path: Path, capsys) -> None:
    model = tmp_path / "m.npz"
    code, out, _ = run(["fit", str(store), "--split", "test", "--k", "16", "--model",
                        str(model), "--algorithm", "minibatch", "--max-iter", "2",
                        "--refine", "2", *sched], capsys)
    assert code == 0 and "model ->" in out
    est, header = load_model(model)
    assert est.cluster_centers_.shape == (16, 784) and len(header["mapping"]) == 16
    assert est.get_params()["refine"] == 2 and est.get_params()["max_iter"] == 2
    code, out, _ = run(["evaluate", str(store), "--model", str(model), "--json", *sched], capsys)
    r = json.loads(out)
    assert code == 0 and r["n_samples"] == MNIST_ROWS and 0.5 < r["accuracy"] <= 1
    assert r["inertia"] > 0 and 0 < r["homogeneity"] < 1
    code, out, _ = run(["evaluate", str(store), "--model", str(model), *sched], capsys)
    assert "accuracy" in out and "purity" in out and "inertia" in out
    labels = tmp_path / "labels.zarr"
    code, out, _ = run(["predict", str(store), "--model", str(model), "--out", str(labels),
                        *sched], capsys)
    assert code == 0
    lab = zarr.open_group(labels, mode="r")["labels"][:]
    assert lab.shape == (MNIST_ROWS,) and set(np.unique(lab)) <= set(range(16))


def test_fit_and_sweep_with_manhattan_metric(store: Path, tmp_path: Path, capsys,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """--metric manhattan fits k-medians (L1 inertia) and the model keeps the metric;
    sweep hands it to every fit."""
    model = tmp_path / "m1.npz"
    code, out, _ = run(["fit", str(store), "--split", "test", "--k", "4", "--model",
                        str(model), "--metric", "manhattan", "--max-iter", "2", "--quiet"],
                       capsys)
    assert code == 0 and "KMeans(K=4)" in out
    est, _ = load_model(model)
    assert est.metric == "manhattan" and est.n_iter_ <= 2
    code, out, _ = run(["evaluate", str(store), "--model", str(model), "--json", "--quiet"],
                       capsys)
    assert code == 0 and json.loads(out)["inertia"] == pytest.approx(est.inertia_, rel=1e-9)
    from daskmeans import metrics

    seen: list[dict] = []
    sweep = metrics.sweep

    def spy(*args, **kwargs):  # type: ignore[no-untyped-def]
        seen.append(kwargs)
        return sweep(*args, **kwargs, max_iter=1)

    monkeypatch.setattr(metrics, "sweep", spy)
    code, out, _ = run(["sweep", str(store), "--split", "test", "--k", "3", "--out",
                        str(tmp_path), "--metric", "manhattan", "--algorithm", "lloyd",
                        "--quiet"], capsys)
    rows = json.loads((tmp_path / "sweep.json").read_text())
    assert code == 0 and [r["k"] for r in rows] == [3] and rows[0]["n_iter"] == 1
    assert seen[0]["metric"] == "manhattan" and seen[0]["algorithm"] == "lloyd"


def test_fit_bisecting(store: Path, tmp_path: Path, capsys) -> None:
    """--algorithm bisecting saves a BisectingKMeans with its tree; evaluate scores the
    tree's clusters (their SSE is the model's inertia)."""
    model = tmp_path / "b.npz"
    code, out, _ = run(["fit", str(store), "--split", "test", "--k", "4", "--model",
                        str(model), "--algorithm", "bisecting", "--max-iter", "3", "--quiet"],
                       capsys)
    assert code == 0 and "BisectingKMeans(K=4)" in out
    est, header = load_model(model)
    assert len(est.tree_.parent) == 7 and len(header["mapping"]) == 4
    code, out, _ = run(["evaluate", str(store), "--model", str(model), "--json", "--quiet"],
                       capsys)
    assert code == 0 and json.loads(out)["inertia"] == pytest.approx(est.inertia_, rel=1e-6)
    code, _, err = run(["fit", str(store), "--k", "4", "--model", str(model), "--algorithm",
                        "bisecting", "--metric", "cosine", "--quiet"], capsys)
    assert code == 2 and "--algorithm bisecting is Euclidean" in err


def test_sweep_writes_table_and_figures(store: Path, sched: list[str], tmp_path: Path,
                                        capsys) -> None:
    code, out, _ = run(["sweep", str(store), "--split", "test", "--k", "10,36", "--out",
                        str(tmp_path), *sched], capsys)
    assert code == 0 and "| k |" in out
    for name in ("sweep.csv", "sweep.json", "sweep.md", "sweep.png", "elbow.png",
                 "report.html"):
        assert (tmp_path / name).stat().st_size > 0, name
    page = (tmp_path / "report.html").read_text()
    assert embedded_figures(page) == ["sweep.png", "elbow.png"]
    assert "recommendation:" in page and "<td>36</td>" in page
    rows = json.loads((tmp_path / "sweep.json").read_text())
    assert [r["k"] for r in rows] == [10, 36]
    assert {r["dataset"] for r in rows} == {"mnist"} and {r["split"] for r in rows} == {"test"}
    assert {r["algorithm"] for r in rows} == {"minibatch"} and {r["seed"] for r in rows} == {0}
    assert "train_accuracy" not in out and "dataset: mnist, split: test" in out
    assert all(0 < r["silhouette"] < 1 and 0 < r["silhouette_se"] < 0.05 for r in rows)
    best = max(rows, key=lambda r: r["silhouette"])["k"]  # two K: no elbow to find
    assert f"recommendation: K={best}: the highest silhouette" in out


def test_quantize(sched: list[str], tmp_path: Path, capsys) -> None:
    from PIL import Image
    from sklearn.datasets import load_sample_image

    photo = tmp_path / "flower.png"
    Image.fromarray(load_sample_image("flower.jpg")).save(photo)
    out = tmp_path / "q.png"
    code, text, _ = run(["quantize", str(photo), "--colors", "16", "--out", str(out),
                         "--store", str(tmp_path / "q.zarr"), *sched], capsys)
    assert code == 0 and "PSNR" in text
    img = np.asarray(Image.open(out))
    assert img.shape == (427, 640, 3) and len(np.unique(img.reshape(-1, 3), axis=0)) <= 16
    assert (tmp_path / "q-comparison.png").exists()
    # without --scheduler/--workers a photo that fits in memory is done in this process
    code, text, err = run(["quantize", str(photo), "--colors", "4", "--out",
                           str(tmp_path / "q4.png")], capsys)
    assert code == 0 and "PSNR" in text and "in this process (1 MB of data" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["fit", "/nonexistent.zarr", "--k", "3", "--model", "m.npz"], "no such store"),
        (["fit", "STORE", "--split", "train", "--k", "3", "--model", "M"], "split 'train'"),
        (["fit", "STORE", "--split", "test", "--k", "20000", "--model", "M"],
         "larger than the number of samples"),
        (["evaluate", "STORE", "--model", "/nonexistent/m.npz"], "no such model"),
        (["fit", "STORE", "--split", "test", "--k", "3", "--model", "FILE/m.npz"],
         "cannot create output directory"),
        (["sweep", "STORE", "--k", "10,x", "--out", "D"], "--k must be comma-separated"),
        (["fit", "STORE", "--split", "test", "--k", "3", "--model", "M", "--refine", "2"],
         "--refine applies to --algorithm minibatch"),
        (["sweep", "STORE", "--k", "10", "--out", "D", "--metric", "manhattan"],
         "--metric manhattan (k-medians) needs --algorithm lloyd"),
    ],
)
def test_user_errors_one_line(argv: list[str], message: str, store: Path, tmp_path: Path,
                              capsys) -> None:
    (tmp_path / "afile").write_text("x")  # a file where a directory is needed
    subst = {"STORE": str(store), "M": str(tmp_path / "m.npz"), "D": str(tmp_path),
             "FILE/m.npz": str(tmp_path / "afile" / "m.npz")}
    argv = [subst.get(a, a) for a in argv]
    code, _, err = run([*argv, "--quiet"], capsys)
    assert code == 2
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_bad_model_file_and_unreachable_scheduler(store: Path, tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.npz"
    np.savez(bad, cluster_centers=np.zeros((2, 2)))
    code, _, err = run(["evaluate", str(store), "--model", str(bad)], capsys)
    assert code == 2 and "not a daskmeans model" in err
    code, _, err = run(["fit", str(store), "--split", "test", "--k", "3", "--model",
                        str(tmp_path / "m.npz"), "--scheduler", "tcp://127.0.0.1:9",
                        "--connect-timeout", "2"], capsys)
    assert code == 2 and "cannot reach the scheduler" in err and "Traceback" not in err


def _subprocess(args: list[str], cwd: Path, env: dict[str, str] | None = None,
                timeout: int = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "daskmeans.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def test_subprocess_help_and_error(tmp_path: Path) -> None:
    p = _subprocess(["--help"], tmp_path)
    assert p.returncode == 0 and "daskmeans demo" in p.stdout
    p = _subprocess(["fit", "missing.zarr", "--k", "2", "--model", "m.npz"], tmp_path)
    assert p.returncode == 2 and p.stderr.startswith("daskmeans: error:")


@pytest.mark.slow
def test_demo_with_real_mnist(mnist_dir: Path, tmp_path: Path) -> None:
    # as a user runs it: a process of its own; the images fit in memory, so in it, on
    # dask's threads (the CLI on a cluster: test_distributed's --scheduler test). The
    # held-out bound is for the shipped 2,000 rows (0.89 on all 10,000, the same margin
    # below what the demo reaches: fewer rows per cluster, lower accuracy)
    import dask

    query_planning = bool(dask.config.get("array.query-planning", None))
    p = _subprocess(["demo", "--out", str(tmp_path / "out")], tmp_path,
                    env={"DASKMEANS_MNIST_DIR": str(mnist_dir)})
    assert p.returncode == 0, p.stderr
    assert "scheduler: dask's threads, in this process" in p.stderr
    assert "data: MNIST" in p.stdout and "PSNR" in p.stdout
    rows = json.loads((tmp_path / "out" / "sweep.json").read_text())
    assert [r["k"] for r in rows] == [10, 16, 36, 64, 144, 256]
    assert rows[-1]["heldout_accuracy"] >= 0.79
    assert rows[0]["dataset"] == "MNIST" and rows[0]["split"] == f"test[:{MNIST_ROWS * 4 // 5}]"
    for name in ("samples.png", "centroids.png", "contingency_k10.png", "sweep.png",
                 "elbow.png", "china-64.png", "china-64-comparison.png", "model.npz",
                 "silhouette_k10.png", "contingency_k10.csv", "purity_k10.csv",
                 *(() if query_planning else ("pca_k10.png",))):
        assert (tmp_path / "out" / name).stat().st_size > 0, name
    # dask-ml's PCA cannot run under array query planning, and only there
    assert ("PCA view skipped" in p.stdout) == query_planning, p.stdout


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No MNIST mirror answers, no Fashion-MNIST on this machine, an empty cache."""
    import dataclasses

    from daskmeans import datasets

    monkeypatch.delenv("DASKMEANS_MNIST_DIR", raising=False)
    monkeypatch.setenv("DASKMEANS_DATA_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(datasets, "MNIST",
                        dataclasses.replace(datasets.MNIST, mirrors=("http://127.0.0.1:9/",)))
    monkeypatch.setattr(datasets, "FASHION_MNIST",
                        dataclasses.replace(datasets.FASHION_MNIST, local_dirs=()))
    return tmp_path


def test_demo_offline_falls_back_to_digits(offline: Path, capsys) -> None:
    code, out, err = run(["demo", "--out", str(offline / "out")], capsys)
    assert code == 0, err
    first = out.splitlines()[0]  # the first line says which data, and why
    assert first.startswith("data: digits, 1400 + 397 images of 64 pixels: MNIST cannot be "
                            "downloaded"), first
    assert "no local MNIST or Fashion-MNIST" in first and "WARNING" not in err
    assert err.startswith("looking for MNIST")  # said before the (up to 10 s) attempt
    assert (offline / "out" / "centroids.png").exists()
    assert "PSNR" in out and "wall clock" in out
    # small data, no --workers: in this process on dask's threads, no cluster started
    assert "scheduler: dask's threads, in this process" in err
    assert "cluster: local" not in err
    # without a terminal, the steps without a bar are announced, the sweep line by line
    assert "fitting K=10 for the contingency table" in err and "sweep 6/6: K=256" in err
    # the multi-band step: a synthetic scene (none ships in a package), classes recovered
    assert "segmented synthetic 6-band scene" in out and "adjusted Rand index 1.0000" in out
    assert (offline / "out" / "scene-labels.png").exists()
    page = (offline / "out" / "report.html").read_text()  # one page holds every picture
    figures = embedded_figures(page)
    for name in ("samples.png", "cluster centres as images", "inertia per iteration",
                 "contingency table", "per-cluster purity", "contingency_k10.png",
                 "silhouette_k10.png", "sweep.png", "elbow.png", "china-64-comparison.png",
                 "scene-labels.png"):
        assert name in figures, name
    assert "recommendation:" in page and "<table>" in page


def test_demo_finds_a_local_fashion_mnist(offline: Path, mnist_test, monkeypatch) -> None:
    import dataclasses

    from daskmeans import datasets
    from tests.io.idx_files import write_idx

    X, y = mnist_test  # stand-ins for Fashion-MNIST's files, small
    local = offline / "debian-fashion-mnist"
    local.mkdir()
    images = np.rint(X[:300] * 255).astype(np.uint8).reshape(-1, 28, 28)
    for split, rows in (("train", slice(0, 200)), ("t10k", slice(200, 300))):
        write_idx(local / f"{split}-images-idx3-ubyte.gz", images[rows])
        write_idx(local / f"{split}-labels-idx1-ubyte.gz", y[rows].astype(np.uint8))
    monkeypatch.setattr(datasets, "FASHION_MNIST",
                        dataclasses.replace(datasets.FASHION_MNIST, local_dirs=(str(local),)))
    args = cli.build_parser().parse_args(["demo", "--out", str(offline / "out")])
    store, name, where = demo.demo_data(args, cli.Console(quiet=True), offline / "out")
    assert name == "Fashion-MNIST" and str(local) in where and "MNIST cannot be" in where
    from daskmeans import open_dataset

    np.testing.assert_array_equal(open_dataset(store, "train")[1].compute(), y[:200])


def test_help_imports_neither_dask_nor_scikit_learn(tmp_path: Path) -> None:
    code = ("import sys, daskmeans.cli\n"
            "try:\n    daskmeans.cli.main(['fit', '--help'])\nexcept SystemExit: pass\n"
            "try:\n    daskmeans.cli.main(['fit', 'x.zarr'])\nexcept SystemExit: pass\n"
            "print(sorted(m for m in ('dask', 'distributed', 'sklearn', 'zarr', 'numba')"
            " if m in sys.modules))")
    p = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                       text=True, timeout=120)
    assert p.stdout.splitlines()[-1] == "[]", p.stdout + p.stderr
    assert "the following arguments are required: --k, --model" in p.stderr


def test_model_and_parameters_checked_before_any_cluster(store: Path, tmp_path: Path,
                                                         capsys) -> None:
    from daskmeans import KMeans, save_model

    model = save_model(KMeans(2, random_state=0).fit(np.eye(4)), tmp_path / "m4.npz")
    for cmd in (["evaluate", str(store), "--model", str(model)],
                ["predict", str(store), "--model", str(model), "--out", str(tmp_path / "l")]):
        code, _, err = run([*cmd, "--workers", "2"], capsys)
        assert code == 2 and "was fitted on 4 features; this split has 784" in err
        assert "cluster:" not in err
    code, _, err = run(["fit", str(store), "--split", "test", "--k", "3", "--max-iter", "-1",
                        "--model", str(tmp_path / "m.npz"), "--workers", "2"], capsys)
    assert code == 2 and "'max_iter' parameter" in err and "cluster:" not in err


def test_ingest_image_then_quantize_store(sched: list[str], tmp_path: Path, capsys) -> None:
    from PIL import Image
    from sklearn.datasets import load_sample_image

    photo = tmp_path / "china.png"
    Image.fromarray(load_sample_image("china.jpg")).save(photo)
    store = tmp_path / "china.zarr"
    code, out, _ = run(["ingest", "image", str(photo), "--out", str(store), "--tile", "128",
                        *sched], capsys)
    assert code == 0 and "(427, 640, 3)" in out
    code, out, _ = run(["quantize", str(store), "--colors", "8", "--out",
                        str(tmp_path / "q.png"), *sched], capsys)
    assert code == 0 and "PSNR" in out


def test_model_version_is_checked(store: Path, tmp_path: Path, capsys) -> None:
    import json as _json

    from daskmeans import KMeans, save_model

    path = save_model(KMeans(2, random_state=0).fit(np.eye(4)), tmp_path / "m.npz")
    with np.load(path) as d:
        header = _json.loads(bytes(d["header"]).decode())
        centres = d["cluster_centers"]
    header["version"] = 99
    np.savez(path, cluster_centers=centres,
             header=np.frombuffer(_json.dumps(header).encode(), dtype=np.uint8))
    code, _, err = run(["evaluate", str(store), "--model", str(path)], capsys)
    assert code == 2 and "version 99 is not supported" in err


def test_version_and_defaults_in_every_help(capsys) -> None:
    with pytest.raises(SystemExit) as e:
        cli.main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == "daskmeans 0.1.0"
    parser = cli.build_parser()
    subs = parser._subparsers._group_actions[0].choices
    helps = {name: " ".join(sub.format_help().split()) for name, sub in subs.items()}
    assert "--split SPLIT the split to fit (default: train)" in helps["fit"]
    assert "(default: lloyd)" in helps["fit"] and "(default: minibatch)" in helps["sweep"]
    assert "--k K number of clusters" in helps["fit"]
    for name, sub in subs.items():  # every argument says what it is
        for action in sub._actions:
            assert action.help, (name, action.dest)
        assert "(default: None)" not in helps[name]


def test_idx_folder_suggests_ingest(mnist_dir: Path, tmp_path: Path, capsys) -> None:
    code, _, err = run(["fit", str(mnist_dir), "--k", "3", "--model", str(tmp_path / "m")],
                       capsys)
    assert code == 2 and "daskmeans ingest mnist --source" in err
    assert not (tmp_path / "m.npz").exists()


def test_model_files_get_the_permissions_of_other_outputs(tmp_path: Path) -> None:
    from daskmeans import KMeans, io, save_model

    path = save_model(KMeans(2, random_state=0).fit(np.eye(4)), tmp_path / "m.npz")
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    assert path.stat().st_mode & 0o777 == plain.stat().st_mode & 0o777 == io.new_file_mode()


def test_any_array_by_name(tmp_path: Path, capsys) -> None:
    """fit and predict take a root Zarr array, an array of a group named by --array and
    an xarray Dataset's variable; a group holding several arrays of rows, or a name it
    does not hold, is refused listing what it holds; evaluate, which needs true labels,
    refuses a store without them."""
    import warnings

    import xarray as xr

    X = np.random.default_rng(1).normal(size=(240, 6)).astype(np.float32)
    zarr.create_array(tmp_path / "emb.zarr", data=X, chunks=(80, 6))
    group = zarr.open_group(tmp_path / "grp.zarr", mode="w")
    group.create_array("vectors", data=X, chunks=(80, 6))
    group.create_array("other", data=X[:, :3], chunks=(80, 3))
    with warnings.catch_warnings():  # xarray's notes on the Zarr format it writes
        warnings.simplefilter("ignore")
        xr.Dataset({"emb": (("row", "feature"), X)}).to_zarr(tmp_path / "xr.zarr",
                                                             consolidated=False)
    inertias = []
    for name, extra in (("emb.zarr", []), ("grp.zarr", ["--array", "vectors"]),
                        ("xr.zarr", ["--array", "emb"])):
        model = tmp_path / f"{name}.npz"
        code, out, err = run(["fit", str(tmp_path / name), *extra, "--k", "4", "--model",
                              str(model), "--quiet"], capsys)
        assert code == 0, err
        est, header = load_model(model)
        inertias.append(est.inertia_)
        assert header["extra"].get("array") == (extra[1] if extra else None)
        labels = tmp_path / f"{name}-labels.zarr"
        code, out, err = run(["predict", str(tmp_path / name), *extra, "--model", str(model),
                              "--out", str(labels), "--quiet"], capsys)
        assert code == 0, err
        np.testing.assert_array_equal(zarr.open_group(labels, mode="r")["labels"][:],
                                      est.predict(X))
    np.testing.assert_allclose(inertias, inertias[0], rtol=1e-6)
    for argv, message in (
            (["fit", "grp.zarr"], "arrays of rows to choose from: name one with array= "
                                  "(on the command line, --array of fit and predict)"),
            (["fit", "grp.zarr", "--array", "vector"], "no array 'vector'; it holds other "
                                                      "(240, 3) float32, vectors (240, 6)"),
            (["fit", "emb.zarr", "--array", "vectors"], "not a group"),
            (["evaluate", "emb.zarr", "--model", "emb.zarr.npz"], "holds no true labels")):
        argv = [str(tmp_path / a) if a.endswith((".zarr", ".npz")) else a for a in argv]
        if argv[0] == "fit":
            argv += ["--k", "3", "--model", str(tmp_path / "x.npz")]
        code, _, err = run([*argv, "--quiet"], capsys)
        assert code == 2 and message in err and err.count("\n") == 1, err
    for command in ("fit", "predict"):  # --help says what the store and --array are
        with pytest.raises(SystemExit):
            cli.main([command, "--help"])
        out = " ".join(capsys.readouterr().out.split())
        assert "--array NAME" in out and "a Zarr array, or a Zarr group holding" in out


def test_ingest_npz_then_fit_the_csr_store(tmp_path: Path, capsys) -> None:
    """A scipy .npz becomes a CSR store; fitting it from the command line gives the
    in-memory fit's centres; an existing store is refused, a bad file named."""
    import scipy.sparse as sp

    from daskmeans import KMeans
    from daskmeans.io import open_csr

    X = sp.random(400, 30, density=0.1, format="csr", dtype="float32", random_state=0)
    sp.save_npz(tmp_path / "x.npz", X)
    out = tmp_path / "x.zarr"
    code, text, _ = run(["ingest", "npz", str(tmp_path / "x.npz"), "--out", str(out),
                         "--chunk-rows", "64"], capsys)
    assert code == 0 and "400 rows x 30 features" in text
    m = open_csr(out)
    assert m.rows_per_chunk == 64 and (m.to_scipy() != X).nnz == 0
    code, _, err = run(["ingest", "npz", str(tmp_path / "x.npz"), "--out", str(out)], capsys)
    assert code == 2 and "--overwrite" in err
    code, _, _ = run(["fit", str(out), "--k", "4", "--metric", "cosine", "--seed", "0",
                      "--model", str(tmp_path / "m.npz")], capsys)
    assert code == 0
    model, _ = load_model(tmp_path / "m.npz")
    memory = KMeans(4, metric="cosine", random_state=0).fit(X)
    np.testing.assert_allclose(model.cluster_centers_, memory.cluster_centers_, rtol=1e-5,
                               atol=1e-7)
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    code, _, err = run(["ingest", "npz", str(tmp_path / "bad.npz"), "--out",
                        str(tmp_path / "bad.zarr")], capsys)
    assert code == 2 and "bad.npz: not a sparse matrix" in err
    assert not (tmp_path / "bad.zarr").exists()


def test_ingest_docstrings(tmp_path: Path, capsys) -> None:
    code, text, _ = run(["ingest", "docstrings", "--out", str(tmp_path / "d.zarr")], capsys)
    assert code == 0 and "CSR store" in text
    g = zarr.open_group(tmp_path / "d.zarr", mode="r")
    assert g.attrs["encoding-type"] == "csr_matrix"
    assert len(g.attrs["terms"]) == g.attrs["shape"][1]
    assert len(g.attrs["documents"]) == g.attrs["shape"][0]
