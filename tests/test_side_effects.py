"""Using daskmeans leaves the caller's process alone: Pillow's pixel guard, matplotlib.

The process-wide checks run in a fresh interpreter (``sys.executable -c``), so nothing
this test session imported or configured earlier can hide or fake a side effect.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from daskmeans import io

ROOT = Path(__file__).resolve().parents[1]

# A backend a fresh process reports without a display, and which is not Agg: a package
# that calls matplotlib.use("Agg") (or imports pyplot and switches) changes it.
CHILD_ENV = {**os.environ, "MPLBACKEND": "svg"}

CHILD = r"""
import importlib, json, pkgutil, sys
from pathlib import Path

import PIL.Image
import matplotlib

tmp = Path(sys.argv[1])
pixels_before = PIL.Image.MAX_IMAGE_PIXELS

import numpy as np
import daskmeans

modules = sorted(m.name for m in pkgutil.walk_packages(daskmeans.__path__, "daskmeans."))
for name in modules:
    importlib.import_module(name)
pixels_after_import = PIL.Image.MAX_IMAGE_PIXELS
pyplot_after_import = "matplotlib.pyplot" in sys.modules

from daskmeans import io, plot

png = tmp / "img.png"
rgb = np.arange(40 * 30 * 3, dtype=np.uint8).reshape(40, 30, 3)
PIL.Image.fromarray(rgb).save(png)
store = io.image_to_zarr(png, tmp / "img.zarr", tile=16)
loaded = io.open_image(store).compute()
centers = np.random.default_rng(0).random((4, 16))
out = [plot.centroid_grid(centers, tmp / "centroids.png", mapping={0: 1}),
       plot.elbow_curve([1, 2, 3], [3.0, 2.0, 1.0], tmp / "elbow.png")]
pyplot_after_plot = "matplotlib.pyplot" in sys.modules  # before get_backend(), which may import it

print(json.dumps({
    "modules": modules,
    "pixels_before": pixels_before,
    "pixels_after_import": pixels_after_import,
    "pixels_after": PIL.Image.MAX_IMAGE_PIXELS,
    "pyplot_after_import": pyplot_after_import,
    "pyplot_after_plot": pyplot_after_plot,
    "backend": matplotlib.get_backend(),
    "image_ok": bool((loaded == rgb).all()),
    "plots": [str(p) for p in out if Path(p).stat().st_size > 0],
}))
"""


def _run(code: str, *args: str) -> str:
    r = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                       env=CHILD_ENV, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_import_load_and_plot_leave_process_state_alone(tmp_path: Path) -> None:
    fresh_backend = _run("import matplotlib; print(matplotlib.get_backend())").strip()
    fresh_pixels = json.loads(_run("import json, PIL.Image; "
                                   "print(json.dumps(PIL.Image.MAX_IMAGE_PIXELS))"))
    got = json.loads(_run(CHILD, str(tmp_path)).strip().splitlines()[-1])

    assert {"daskmeans.io", "daskmeans.plot", "daskmeans.cli"} <= set(got["modules"])
    assert got["image_ok"] and len(got["plots"]) == 2
    assert fresh_pixels is not None and got["pixels_before"] == fresh_pixels
    assert got["pixels_after_import"] == fresh_pixels
    assert got["pixels_after"] == fresh_pixels
    assert not got["pyplot_after_import"]
    assert not got["pyplot_after_plot"]
    assert got["backend"] == fresh_backend


def _save(path: Path, h: int, w: int) -> Path:
    Image.fromarray(np.full((h, w, 3), 7, np.uint8)).save(path)
    return path


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
@pytest.mark.parametrize("shape", [(30, 40), (50, 50)], ids=["cap-to-2cap", "beyond-2cap"])
def test_image_above_cap_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          shape: tuple[int, int]) -> None:
    # 1200 pixels: Pillow only warns at the cap, our own check refuses it; 2500 pixels:
    # Pillow's DecompressionBombError (raised beyond twice the limit) is translated
    monkeypatch.setattr(io.images, "MAX_IMAGE_PIXELS", 1000)
    before = Image.MAX_IMAGE_PIXELS
    path = _save(tmp_path / "big.png", *shape)
    with pytest.raises(io.ImageFormatError) as e:
        io.image_to_zarr(path, tmp_path / "big.zarr")
    msg = str(e.value)
    assert str(path) in msg and "1000 pixels" in msg and "MAX_IMAGE_PIXELS" in msg
    assert Image.MAX_IMAGE_PIXELS == before  # restored on the error path too
    assert not (tmp_path / "big.zarr").exists()
    io.load_rgb(_save(tmp_path / "small.png", 25, 40))  # 1000 pixels: at the cap is fine


@pytest.mark.parametrize("fmt", ["png", "tiff", "gif"])
def test_our_cap_covers_the_decode_and_callers_limit_stays(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    # a caller with a strict limit of its own: our read of a 3072-pixel image still
    # works (TIFF checks the limit again while decoding, so the decode is covered too),
    # and the caller's limit is back afterwards and still guards its own opens
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    path = _save(tmp_path / f"img.{fmt}", 48, 64)
    assert io.load_rgb(path).shape == (48, 64, 3)
    assert Image.MAX_IMAGE_PIXELS == 100
    with pytest.raises(Image.DecompressionBombError), Image.open(path):
        pass


def test_concurrent_loads_restore_the_limit(tmp_path: Path) -> None:
    before = Image.MAX_IMAGE_PIXELS
    path = _save(tmp_path / "img.png", 64, 64)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(20):
                io.load_rgb(path)
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert Image.MAX_IMAGE_PIXELS == before
