"""Colour quantisation: china.jpg to 64 colours, tile independence, the lookup table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zarr
from sklearn.cluster import KMeans as SKKMeans
from sklearn.datasets import load_sample_image

from daskmeans import KMeans, io, quantization, quantize


@pytest.fixture(scope="module")
def china() -> np.ndarray:
    return load_sample_image("china.jpg")


def test_china_64_colours_beats_random(china: np.ndarray) -> None:
    q = quantize(china, 64, random_state=0)
    _, psnr_random = quantization.random_palette_psnr(q.image, 64, random_state=0)
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


# Pixels exactly half way (in 0..255 integers) between two palette colours, where the
# plain float32 argmin of ``-2 x.c + |c|^2`` and the estimators' rule (near ties
# settled in float64) pick different colours: found by a search over such triples.
TIES = [  # (colour 0, colour 1, pixel)
    ([1, 31, 2], [15, 33, 14], [8, 32, 8]),
    ([217, 163, 130], [199, 147, 92], [208, 155, 111]),
    ([143, 239, 71], [169, 253, 31], [156, 246, 51]),
]


def _plain_argmin(pixels: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """The assignment quantisation had before it used the estimators' rule."""
    P = palette.astype(np.float32) / np.float32(255)
    x = pixels.reshape(-1, 3).astype(np.float32) * np.float32(1 / 255)
    return np.argmin(x @ (-2 * P).T + np.einsum("ij,ij->i", P, P), axis=1)


def _predict(pixels: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """``KMeans.predict`` with centres ``palette / 255`` on the pixels scaled to [0, 1]."""
    C = palette.astype(np.float32) / np.float32(255)
    km = KMeans(len(C), init=C, n_init=1, max_iter=1).fit(C)
    km.cluster_centers_ = C
    return km.predict(pixels.reshape(-1, 3).astype(np.float32) * np.float32(1 / 255))


@pytest.mark.parametrize("a, b, pixel", TIES)
def test_tie_pixel_gets_the_estimators_label(a: list[int], b: list[int],
                                             pixel: list[int]) -> None:
    palette = np.array([a, b], np.uint8)
    px = np.array([pixel], np.uint8)
    want = _predict(px, palette)
    assert _plain_argmin(px, palette)[0] != want[0]  # the case tells the two rules apart
    np.testing.assert_array_equal(quantization.assign_colors(px, palette), want)


@pytest.mark.parametrize("use_lut", [False, True])
def test_quantised_tie_pixels_match_predict(use_lut: bool) -> None:
    """End to end: two flat halves fit a palette of exactly their colours, and the tie
    pixels sprinkled over them get ``KMeans.predict``'s labels, tile by tile or through
    the lookup table."""
    a, b, pixel = TIES[0]
    img = np.empty((40, 40, 3), np.uint8)
    img[:, :20], img[:, 20:] = a, b
    img[::13, ::11] = pixel
    q = quantize(img, 2, algorithm="lloyd", random_state=0, tile=16, use_lut=use_lut,
                 compute_psnr=False)
    assert sorted(map(tuple, q.palette.tolist())) == sorted([tuple(a), tuple(b)])
    labels = q.labels.compute()
    np.testing.assert_array_equal(labels.ravel(), _predict(img, q.palette))
    assert (_plain_argmin(img[::13, ::11], q.palette)
            != labels[::13, ::11].ravel()).all()
