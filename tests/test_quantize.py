"""Colour quantisation: china.jpg to 64 colours, tile independence, the lookup table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zarr
from sklearn.cluster import KMeans as SKKMeans
from sklearn.datasets import load_sample_image

from daskmeans import io, quantize
from daskmeans import quantization as Q


@pytest.fixture(scope="module")
def china() -> np.ndarray:
    return load_sample_image("china.jpg")


def test_china_64_colours_beats_random(china: np.ndarray) -> None:
    q = quantize(china, 64, random_state=0)
    _, psnr_random = Q.random_palette_psnr(q.image, 64, random_state=0)
    out = q.rgb.compute()
    assert out.shape == china.shape and out.dtype == np.uint8
    assert len(np.unique(out.reshape(-1, 3), axis=0)) <= 64
    assert q.psnr is not None and q.psnr > psnr_random + 2.0, (q.psnr, psnr_random)
    # the PSNR is the real one of the reconstructed image
    mse = np.mean((out.astype(float) - china.astype(float)) ** 2)
    assert q.psnr == pytest.approx(10 * np.log10(255**2 / mse), rel=1e-9)
    again = quantize(china, 64, random_state=0)
    np.testing.assert_array_equal(again.palette, q.palette)


def test_same_labels_one_tile_or_many_and_lut(china: np.ndarray, tmp_path: Path) -> None:
    one = quantize(china, 32, random_state=1, tile=1024, compute_psnr=False)
    store = io.image_to_zarr(china, tmp_path / "c.zarr", tile=100)
    many = quantize(store, 32, random_state=1, use_lut=True, store=tmp_path / "q.zarr")
    np.testing.assert_array_equal(one.palette, many.palette)
    np.testing.assert_array_equal(one.labels.compute(), many.labels.compute())
    g = zarr.open_group(tmp_path / "q.zarr", mode="r")
    assert g["labels"].chunks == (100, 100) and g["labels"].dtype == np.uint8
    np.testing.assert_array_equal(g["palette"][:], many.palette)


def test_assignment_matches_sklearn_predict(china: np.ndarray) -> None:
    q = quantize(china, 16, random_state=2, compute_psnr=False)
    pixels = china.reshape(-1, 3).astype(np.float32) / 255
    sk = SKKMeans(16, n_init=1, init=q.palette / 255.0, max_iter=1).fit(pixels[::97])
    sk.cluster_centers_ = (q.palette / np.float32(255)).astype(np.float32)
    ours = q.labels.compute().ravel()
    agree = np.mean(ours == sk.predict(pixels))
    assert agree > 0.999  # equal up to float32 near-ties


def test_preview_and_png(china: np.ndarray, tmp_path: Path) -> None:
    from PIL import Image

    q = quantize(china, 8, random_state=0, compute_psnr=False)
    small = q.preview(max_pixels=10_000)
    assert small.shape[0] * small.shape[1] <= 10_000 * 1.2
    path = q.to_png(tmp_path / "q.png")
    assert np.asarray(Image.open(path)).shape == china.shape


def test_errors(china: np.ndarray) -> None:
    with pytest.raises(ValueError, match="n_colors must be in"):
        quantize(china, 0)
    with pytest.raises(ValueError, match="algorithm must be"):
        quantize(china, 4, algorithm="kmedoids")
    with pytest.raises(io.ImageFormatError):
        quantize(np.zeros((4, 4), np.uint8), 2)
