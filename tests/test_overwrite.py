"""No command or application writer replaces existing data unless asked (--overwrite,
overwrite=True), each refuses before doing any work, and a `daskmeans predict` killed
halfway through writing leaves the old labels or nothing, never a half store."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import zarr

from daskmeans import KMeans, cli, io, open_source, save_model
from daskmeans.io.errors import OutputExistsError

ROOT = Path(__file__).resolve().parents[1]


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = cli.main([*argv, "--quiet"])
    out, err = capsys.readouterr()
    return code, out, err


def refused(code: int, err: str, path: Path | str) -> bool:
    return code == 2 and f"{path}: exists" in err and "--overwrite" in err


@pytest.fixture(scope="module")
def store(mnist_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped MNIST subset in chunks of 500 images (four label chunks to write)."""
    return io.ingest(mnist_dir, tmp_path_factory.mktemp("ow") / "mnist.zarr", chunk_rows=500)


@pytest.fixture(scope="module")
def model(store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    est = KMeans(10, random_state=0, max_iter=3).fit(open_source(store, "test"))
    return save_model(est, tmp_path_factory.mktemp("ow") / "m.npz")


# ---------------------------------------------------------------- the commands


def test_ingest_refuses_unless_asked(mnist_dir: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "d.zarr"
    assert run(["ingest", "mnist", "--source", str(mnist_dir), "--out", str(out)], capsys)[0] == 0
    zarr.open_group(out, mode="r+").attrs["mark"] = "old"
    for kind in (["mnist", "--source", str(mnist_dir)], ["synthetic-scene", "--size", "8x8"]):
        code, _, err = run(["ingest", *kind, "--out", str(out)], capsys)
        assert refused(code, err, out), err
        assert zarr.open_group(out, mode="r").attrs["mark"] == "old"
    code, _, err = run(["ingest", "synthetic-scene", "--size", "8x8", "--out", str(out),
                        "--overwrite"], capsys)
    assert code == 0, err
    assert "mark" not in zarr.open_group(out, mode="r").attrs
    assert "reflectance" in zarr.open_group(out, mode="r")
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "keep.txt").write_text("mine")
    code, _, err = run(["ingest", "mnist", "--source", str(mnist_dir), "--out", str(notes),
                        "--overwrite"], capsys)
    assert code == 2 and "is not a Zarr store" in err
    assert (notes / "keep.txt").read_text() == "mine"


def test_fit_refuses_an_existing_model_before_fitting(store: Path, model: Path,
                                                      tmp_path: Path, capsys,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "m.npz"
    path.write_bytes(model.read_bytes())
    fits: list[int] = []
    monkeypatch.setattr(KMeans, "fit", lambda self, X, *a, **k: fits.append(1))
    for given in (path, tmp_path / "m"):  # fit adds the .npz suffix
        code, _, err = run(["fit", str(store), "--split", "test", "--k", "3", "--model",
                            str(given)], capsys)
        assert refused(code, err, path) and not fits, err
    assert path.read_bytes() == model.read_bytes()
    monkeypatch.undo()
    code, _, err = run(["fit", str(store), "--split", "test", "--k", "3", "--max-iter", "1",
                        "--model", str(path), "--overwrite"], capsys)
    assert code == 0, err
    assert path.read_bytes() != model.read_bytes()


def test_predict_refuses_unless_asked(store: Path, model: Path, tmp_path: Path,
                                      capsys) -> None:
    out = tmp_path / "labels.zarr"
    args = ["predict", str(store), "--model", str(model), "--out", str(out)]
    assert run(args, capsys)[0] == 0
    zarr.open_group(out, mode="r+").attrs["mark"] = "old"
    code, _, err = run(args, capsys)
    assert refused(code, err, out), err
    assert zarr.open_group(out, mode="r").attrs["mark"] == "old"
    assert run([*args, "--overwrite"], capsys)[0] == 0
    assert "mark" not in zarr.open_group(out, mode="r").attrs
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels.zarr"]


def test_quantize_and_segment_refuse_unless_asked(tmp_path: Path, capsys) -> None:
    from PIL import Image

    photo = tmp_path / "photo.png"
    Image.fromarray((np.random.default_rng(0).random((40, 50, 3)) * 255).astype(np.uint8)
                    ).save(photo)
    png, side, labels = tmp_path / "q.png", tmp_path / "q-comparison.png", tmp_path / "q.zarr"
    args = ["quantize", str(photo), "--colors", "4", "--out", str(png), "--store", str(labels)]
    assert run(args, capsys)[0] == 0
    for existing in (png, side, labels):
        others = [p for p in (png, side) if p != existing]
        moved = [p.rename(p.with_suffix(".bak")) for p in others]
        code, _, err = run(args, capsys)
        assert refused(code, err, existing), err
        for p, m in zip(others, moved, strict=True):
            m.rename(p)
    before = png.read_bytes()
    png.write_bytes(b"old")
    assert run([*args, "--overwrite"], capsys)[0] == 0
    assert png.read_bytes() == before

    scene = io.synthetic_scene(tmp_path / "scene.zarr", 32, 32, tile=16)
    out, preview = tmp_path / "seg.zarr", tmp_path / "seg.png"
    args = ["segment", str(scene), "--k", "3", "--feature-dim", "band", "--out", str(out),
            "--preview", str(preview)]
    assert run(args, capsys)[0] == 0
    code, _, err = run(args, capsys)
    assert refused(code, err, out), err
    out.rename(tmp_path / "seg-moved.zarr")
    code, _, err = run(args, capsys)
    assert refused(code, err, preview), err
    assert not out.exists()  # refused before any work
    assert run([*args, "--overwrite"], capsys)[0] == 0
    assert zarr.open_group(out, mode="r")["labels"].shape == (32, 32)


def test_sweep_refuses_its_own_files_and_demo_a_folder_in_use(store: Path, tmp_path: Path,
                                                               capsys) -> None:
    out = tmp_path / "sweep"
    out.mkdir()
    (out / "notes.txt").write_text("mine")  # not one of the sweep's files: left alone
    args = ["sweep", str(store), "--split", "test", "--k", "2,3", "--silhouette-sample", "0",
            "--out", str(out)]
    assert run(args, capsys)[0] == 0
    assert (out / "notes.txt").read_text() == "mine"
    (out / "sweep.csv").write_text("old")
    code, _, err = run(args, capsys)
    assert refused(code, err, out / "sweep.csv"), err
    assert (out / "sweep.csv").read_text() == "old"
    assert run([*args, "--overwrite"], capsys)[0] == 0
    assert (out / "sweep.csv").read_text().splitlines()[0].startswith("dataset,split,")
    assert (out / "notes.txt").read_text() == "mine"
    code, _, err = run(["demo", "--out", str(out)], capsys)
    assert code == 2 and f"{out}: exists and is not empty" in err and "--overwrite" in err


# ---------------------------------------------------------------- the library


def test_library_writers_refuse_unless_asked(tmp_path: Path) -> None:
    from sklearn.datasets import load_sample_image

    from daskmeans import metrics, plot, quantize

    image = load_sample_image("china.jpg")[::8, ::8]
    q = quantize(image, 4, random_state=0, store=tmp_path / "q.zarr")
    with pytest.raises(OutputExistsError, match="q.zarr: exists"):
        quantize(image, 4, random_state=0, store=tmp_path / "q.zarr")
    quantize(image, 4, random_state=0, store=tmp_path / "q.zarr", overwrite=True)
    q.to_png(tmp_path / "q.png")
    with pytest.raises(OutputExistsError, match="q.png: exists"):
        q.to_png(tmp_path / "q.png")
    q.to_png(tmp_path / "q.png", overwrite=True)
    rows = [{"k": 2, "inertia": 1.0}, {"k": 3, "inertia": 0.5}]
    for write in (metrics.write_csv, metrics.write_json,
                  lambda r, p, **k: plot.elbow_curve([2, 3], [1.0, 0.5], p, **k),
                  lambda r, p, **k: _page(r).write(p, **k)):
        path = tmp_path / "out.png"
        path.write_text("old")
        with pytest.raises(OutputExistsError, match="out.png: exists"):
            write(rows, path)
        assert path.read_text() == "old"
        write(rows, path, overwrite=True)
        assert path.read_bytes() != b"old"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def _page(rows: list[dict[str, float]]):  # type: ignore[no-untyped-def]
    from daskmeans import report

    page = report.Page("t")
    page.table(rows)
    return page


# ---------------------------------------------------------------- killed mid-write

#: runs `daskmeans ARGS...`, with every Zarr chunk write pausing for ever once the
#: first chunk is written (after touching READY): the process is then killed mid-write
HOLD = """
import pathlib, sys, time, zarr
ready = pathlib.Path(sys.argv[1])
write = zarr.Array.__setitem__
def held(self, key, value):
    write(self, key, value)
    ready.touch()
    time.sleep(600)
zarr.Array.__setitem__ = held
from daskmeans import cli
sys.exit(cli.main(sys.argv[2:]))
"""


def kill_mid_write(argv: list[str], tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    ready.unlink(missing_ok=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(ready), *argv, "--quiet"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 300
        while not ready.exists():
            if proc.poll() is not None:
                raise AssertionError(f"predict ended before writing: {proc.communicate()}")
            if time.monotonic() > deadline:
                raise AssertionError("predict never started writing")
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=60) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_predict_killed_mid_write_leaves_the_old_labels_or_nothing(
        store: Path, model: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "labels.zarr"
    args = ["predict", str(store), "--model", str(model), "--out", str(out)]
    assert run(args, capsys)[0] == 0
    old = zarr.open_group(out, mode="r")["labels"][:]
    zarr.open_group(out, mode="r+").attrs["mark"] = "old"

    kill_mid_write([*args, "--overwrite"], tmp_path)
    group = zarr.open_group(out, mode="r")  # the old store, whole
    assert group.attrs["mark"] == "old"
    np.testing.assert_array_equal(group["labels"][:], old)

    fresh = tmp_path / "fresh.zarr"
    kill_mid_write([*args[:-1], str(fresh)], tmp_path)
    assert not fresh.exists()  # nothing, rather than half a store
    partial = [p for p in tmp_path.iterdir() if p.name.startswith(".fresh.zarr.tmp-")]
    assert partial and (partial[0] / "labels").is_dir()  # the write had begun beside it
    with pytest.raises(FileNotFoundError):
        open_source(fresh)
