"""The daskmeans command, in-process (against the session LocalCluster) and as a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import zarr

from daskmeans import cli, load_model


@pytest.fixture(scope="module")
def sched(local_cluster) -> list[str]:
    return ["--scheduler", local_cluster.scheduler.address, "--quiet"]


@pytest.fixture(scope="module")
def store(mnist_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "mnist.zarr"
    assert cli.main(["ingest", "mnist", "--source", str(mnist_dir), "--out", str(out)]) == 0
    return out


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
    assert code == 0 and r["n_samples"] == 10000 and 0.5 < r["accuracy"] <= 1
    assert r["inertia"] > 0 and 0 < r["homogeneity"] < 1
    code, out, _ = run(["evaluate", str(store), "--model", str(model), *sched], capsys)
    assert "accuracy" in out and "purity" in out and "inertia" in out
    labels = tmp_path / "labels.zarr"
    code, out, _ = run(["predict", str(store), "--model", str(model), "--out", str(labels),
                        *sched], capsys)
    assert code == 0
    lab = zarr.open_group(labels, mode="r")["labels"][:]
    assert lab.shape == (10000,) and set(np.unique(lab)) <= set(range(16))


def test_sweep_writes_table_and_figures(store: Path, sched: list[str], tmp_path: Path,
                                        capsys) -> None:
    code, out, _ = run(["sweep", str(store), "--split", "test", "--k", "10,36", "--out",
                        str(tmp_path), *sched], capsys)
    assert code == 0 and "| k |" in out
    for name in ("sweep.csv", "sweep.json", "sweep.md", "sweep.png", "elbow.png"):
        assert (tmp_path / name).stat().st_size > 0, name
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
    p = _subprocess(["demo", "--out", str(tmp_path / "out"), "--workers", "2"], tmp_path,
                    env={"DASKMEANS_MNIST_DIR": str(mnist_dir)})
    assert p.returncode == 0, p.stderr
    assert "cluster: local, 2 workers" in p.stderr  # --workers asks for a cluster
    assert "data: MNIST" in p.stdout and "PSNR" in p.stdout
    rows = json.loads((tmp_path / "out" / "sweep.json").read_text())
    assert [r["k"] for r in rows] == [10, 16, 36, 64, 144, 256]
    assert rows[-1]["heldout_accuracy"] >= 0.89
    assert rows[0]["dataset"] == "MNIST" and rows[0]["split"] == "test[:8000]"
    for name in ("samples.png", "centroids.png", "contingency_k10.png", "sweep.png",
                 "elbow.png", "china-64.png", "china-64-comparison.png", "model.npz",
                 "silhouette_k10.png", "contingency_k10.csv", "purity_k10.csv",
                 *(() if "PCA view skipped" in p.stdout else ("pca_k10.png",))):
        assert (tmp_path / "out" / name).stat().st_size > 0, name


@pytest.mark.slow
def test_demo_offline_falls_back_to_digits(tmp_path: Path) -> None:
    env = {"DASKMEANS_MNIST_DIR": "", "DASKMEANS_DATA_HOME": str(tmp_path / "cache")}
    p = _subprocess(["demo", "--out", str(tmp_path / "out")], tmp_path, env=env)
    assert p.returncode == 0, p.stderr
    assert "MNIST unavailable" in p.stdout and "digits" in p.stdout
    assert p.stdout.count("MNIST unavailable") == 1 and "WARNING" not in p.stderr
    assert (tmp_path / "out" / "centroids.png").exists()
    # small data, no --workers: in this process on dask's threads, no cluster started
    assert "scheduler: dask's threads, in this process" in p.stderr
    assert "cluster: local" not in p.stderr


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
