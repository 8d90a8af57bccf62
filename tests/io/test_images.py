"""Images: tiles round trip, decoded files converted to RGB, clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from daskmeans import io


def test_image_roundtrip_tiles(tmp_path: Path) -> None:
    from sklearn.datasets import load_sample_image

    china = load_sample_image("china.jpg")
    store = io.image_to_zarr(china, tmp_path / "c.zarr", tile=128)
    img = io.open_image(store)
    assert img.shape == (427, 640, 3) and img.dtype == np.uint8
    assert img.chunks[0][0] == 128 and img.chunks[1][0] == 128
    np.testing.assert_array_equal(img.compute(), china)
    px = io.image_pixels(store)
    assert px.shape == (427 * 640, 3) and px.dtype == np.float32
    assert max(px.chunks[0]) == 128 * 128  # one tile per task
    # tile-major order: the first chunk is the top-left tile, row-major
    np.testing.assert_allclose(
        px[: 128 * 128].compute(), china[:128, :128].reshape(-1, 3) / 255.0, rtol=1e-6
    )
    np.testing.assert_allclose(
        np.sort(px.compute(), axis=0), np.sort(china.reshape(-1, 3) / 255.0, axis=0), rtol=1e-6
    )


def test_image_from_file_and_conversion(tmp_path: Path) -> None:
    from PIL import Image

    grey = np.arange(40 * 30, dtype=np.uint8).reshape(40, 30)
    Image.fromarray(grey).save(tmp_path / "g.png")
    store = io.image_to_zarr(tmp_path / "g.png", tmp_path / "g.zarr", tile=16)
    out = io.open_image(store).compute()
    assert out.shape == (40, 30, 3)
    np.testing.assert_array_equal(out[..., 1], grey)


def test_image_errors(tmp_path: Path) -> None:
    (tmp_path / "x.jpg").write_bytes(b"not an image")
    with pytest.raises(io.ImageFormatError, match="x.jpg"):
        io.image_to_zarr(tmp_path / "x.jpg", tmp_path / "x.zarr")
    with pytest.raises(FileNotFoundError):
        io.image_to_zarr(tmp_path / "none.png", tmp_path / "x.zarr")
    with pytest.raises(io.ImageFormatError, match=r"\(H, W, 3\)"):
        io.image_to_zarr(np.zeros((4, 4), np.uint8), tmp_path / "x.zarr")
    assert not (tmp_path / "x.zarr").exists()
