"""Colour quantisation of images of any size, stored and processed as Zarr tiles.

Fit a palette on a reproducible sample of pixels (drawn across all tiles), then assign
every pixel lazily tile by tile. The image never exists as float in full: each task
holds one tile.

Pixel assignment with 3 features is memory-bound, not GEMM-bound. For large images we
precompute the nearest palette entry of all 2**24 RGB colours once (a 16 MiB
lookup table, built by the same assignment as the direct path, so the same labels)
and assignment becomes one table lookup per pixel; small images use the direct
assignment. The crossover is :data:`LUT_MIN_PIXELS`.

Both paths assign a pixel as the estimators' ``predict`` does (the nearest-centre rule
of :mod:`daskmeans.kernels.metric`, near ties settled in float64), for centres
``palette / 255``.
"""

from __future__ import annotations

import functools
import logging
import math
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import zarr
from sklearn.utils import check_random_state

from . import io
from .cluster import KMeans, MiniBatchKMeans
from .engine import schedule
from .kernels.metric import EUCLIDEAN
from .progress import Progress, ProgressCallback

__all__ = ["QuantizedImage", "assign_colors", "color_lut", "lut_labels", "psnr", "quantize"]

log = logging.getLogger(__name__)

#: images with at least this many pixels are assigned through the 2**24 lookup table:
#: building it assigns 2**24 colours directly, which a larger image repays.
LUT_MIN_PIXELS = 24_000_000


def _palette_rows(palette: np.ndarray) -> np.ndarray:
    """The palette as the estimators see its colours: (k, 3) float32 in [0, 1]."""
    return np.asarray(palette, dtype=np.float32) / np.float32(255)


def assign_colors(pixels: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """Nearest palette entry of each uint8 RGB pixel; (..., 3) -> (...) uint8/uint16.

    The nearest-centre rule of the estimators
    (:meth:`daskmeans.kernels.metric.Metric.nearest_labels`): colours scaled to [0, 1]
    in float32 by the GEMM, near ties settled in float64, so a pixel gets the label
    ``KMeans.predict`` gives it for centres ``palette / 255``. The pixels are scaled
    a block at a time inside the labelling: no float32 copy of the tile.
    """
    flat = np.asarray(pixels).reshape(-1, 3)
    dtype = np.uint8 if len(palette) <= 256 else np.uint16
    labels = EUCLIDEAN.nearest_labels(flat, _palette_rows(palette), scale=1 / 255)
    return labels.astype(dtype).reshape(np.asarray(pixels).shape[:-1])


def color_lut(palette: np.ndarray) -> np.ndarray:
    """Nearest palette entry of every 24-bit colour: (2**24,) lookup table.

    Built one red value (65,536 colours) at a time: a few MB of temporaries.
    """
    dtype = np.uint8 if len(palette) <= 256 else np.uint16
    lut = np.empty(1 << 24, dtype=dtype)
    gb = np.stack(np.meshgrid(np.arange(256), np.arange(256), indexing="ij"), axis=-1)
    slab = np.empty((65536, 3), dtype=np.uint8)
    slab[:, 1:] = gb.reshape(-1, 2)
    for r in range(256):
        slab[:, 0] = r
        lut[r << 16 : (r + 1) << 16] = assign_colors(slab, palette)
    return lut


def sample_pixels(img: da.Array, size: int, rng: np.random.Generator) -> np.ndarray:
    """``size`` distinct pixels, (size, 3) float32 in [0, 1], drawn by row-major position
    so the sample does not depend on the tiling; one compute."""
    h, w, _ = img.shape
    idx = np.sort(rng.choice(h * w, size=size, replace=False))
    # each tile returns its sampled pixels (and their positions) in a 1x1 object block:
    # works with dask's array query planning, where ``vindex`` does not exist
    picks = da.map_blocks(_tile_picks, img, r=idx // w, c=idx % w, drop_axis=2,
                          chunks=tuple((1,) * n for n in img.numblocks[:2]), dtype=object,
                          meta=np.empty((0, 0), dtype=object))
    parts = [p for p in schedule.compute(picks, n_tasks=img.numblocks[0] * img.numblocks[1]).ravel()
             if len(p[0])]
    pos = np.concatenate([p[0] for p in parts])
    rows = np.concatenate([p[1] for p in parts])[np.argsort(pos, kind="stable")]
    return np.asarray(rows, dtype=np.float32) / np.float32(255)


def _tile_picks(tile: np.ndarray, r: np.ndarray, c: np.ndarray,
                block_info: Any = None) -> np.ndarray:
    """The sampled pixels inside one tile: ``[(positions, pixels)]`` as a 1x1 object."""
    (r0, r1), (c0, c1) = block_info[0]["array-location"][:2]
    inside = (r >= r0) & (r < r1) & (c >= c0) & (c < c1)
    out = np.empty((1, 1), dtype=object)
    out[0, 0] = (np.flatnonzero(inside), tile[r[inside] - r0, c[inside] - c0])
    return out


_LUT_LOCK = threading.Lock()


@functools.lru_cache(maxsize=2)
def _cached_lut(palette_bytes: bytes, k: int) -> np.ndarray:
    return color_lut(np.frombuffer(palette_bytes, dtype=np.uint8).reshape(k, 3))


def lut_labels(pixels: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """Labels of uint8 RGB pixels (..., 3) through a :func:`color_lut` table: one lookup
    per pixel."""
    t = pixels.astype(np.uint32)
    return lut[(t[..., 0] << 16) | (t[..., 1] << 8) | t[..., 2]]


def _lut_tile(tile: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """Labels of a tile through the palette's lookup table, built once per process
    (worker) and palette: the 16-32 MB table never travels in the graph."""
    with _LUT_LOCK:
        lut = _cached_lut(np.ascontiguousarray(palette).tobytes(), len(palette))
    return lut_labels(tile, lut)


def _take_rows(labels: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """The palette colour of every label (a tile of the quantised image)."""
    return palette[labels]


def _sq_err_tile(tile: np.ndarray, labels: np.ndarray, palette: np.ndarray) -> np.ndarray:
    diff = tile.astype(np.float64) - palette[labels[..., 0]].astype(np.float64)
    return np.array([[[np.sum(diff * diff)]]])


def psnr(mse: float) -> float:
    """Peak signal-to-noise ratio (dB) of 8-bit images from their mean squared error."""
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


@dataclass
class QuantizedImage:
    """Result of :func:`quantize`.

    Attributes
    ----------
    palette : ndarray of shape (k, 3), uint8
        The colours.
    labels : dask.array.Array of shape (H, W)
        Palette indices, tiled like the image (read from the output store when one
        was written).
    image : dask.array.Array of shape (H, W, 3), uint8
        The original image.
    store : Path or None
        The output Zarr store, if one was written.
    psnr : float or None
        PSNR (dB) of the quantised image against the original, when computed.
    """

    palette: np.ndarray
    labels: da.Array
    image: da.Array
    store: Path | None = None
    psnr: float | None = None

    @property
    def rgb(self) -> da.Array:
        """The quantised image, (H, W, 3) uint8, reconstructed lazily per tile."""
        return da.map_blocks(
            _take_rows, self.labels, palette=self.palette, new_axis=2,
            chunks=(*self.labels.chunks, (3,)),
            dtype=np.uint8, meta=np.empty((0, 0, 0), np.uint8),
        )

    def preview(self, max_pixels: int = 50_000_000) -> np.ndarray:
        """The quantised image in memory, subsampled by a stride if above ``max_pixels``."""
        h, w = self.labels.shape
        stride = max(1, math.ceil(math.sqrt(h * w / max_pixels)))
        lab = self.labels[::stride, ::stride].compute()
        return self.palette[lab]

    def to_png(self, path: str | Path, max_pixels: int = 50_000_000, *,
               overwrite: bool = False) -> Path:
        """Write a PNG (or JPEG by suffix); images above ``max_pixels`` as a preview.
        Written atomically; an existing file is refused unless ``overwrite``."""
        from PIL import Image

        path = Path(path)
        picture = Image.fromarray(self.preview(max_pixels))
        with io.atomic_file(path, overwrite=overwrite) as tmp:
            picture.save(tmp, format=Image.registered_extensions().get(path.suffix.lower()))
        return path


def _open_source(image: Any, tile: int, work: Path | None) -> da.Array:
    if isinstance(image, da.Array):
        return image
    if isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise io.ImageFormatError(f"expected an (H, W, 3) uint8 image, got {image.shape} "
                                      f"{image.dtype}")
        return da.from_array(image, chunks=(tile, tile, 3))
    p = Path(image)
    if p.is_dir():
        return io.open_image(p)
    if work is None:  # decode the file straight into tiles in memory
        rgb = io.load_rgb(p)
        return da.from_array(rgb, chunks=(tile, tile, 3))
    return io.open_image(io.image_to_zarr(p, work, tile=tile))


def quantize(
    image: Any,
    n_colors: int = 64,
    *,
    sample_size: int = 100_000,
    algorithm: str = "minibatch",
    random_state: Any = None,
    store: str | Path | None = None,
    tile: int = io.DEFAULT_TILE,
    compute_psnr: bool = True,
    use_lut: bool | None = None,
    progress: ProgressCallback | None = None,
    overwrite: bool = False,
) -> QuantizedImage:
    """Reduce an image to ``n_colors`` colours with K-means.

    Parameters
    ----------
    image : photo path, image Zarr store (from :func:`daskmeans.io.image_to_zarr`),
        (H, W, 3) uint8 numpy array or dask array
    n_colors : palette size (<= 65,536)
    sample_size : pixels drawn (reproducibly, across all tiles) to fit the palette
    algorithm : "minibatch" or "lloyd"
    store : when given, write ``labels`` (H, W) and ``palette`` there (atomically) and
        return labels read back from it; a store already there is refused
        (:class:`~daskmeans.io.errors.OutputExistsError`, before any work) unless
        ``overwrite=True``
    use_lut : force (True) or forbid (False) the 2**24 lookup table; default by size
    progress : :data:`daskmeans.progress.ProgressCallback`, optional
        Told ``("quantize", step, n_steps, detail)`` before the first and after every
        step (sample the pixels, fit the palette, write the store if any, PSNR if
        computed); also given to the palette's estimator as its ``callback``, so its
        own phase (``"mini-batch"`` or Lloyd's) shows between steps 1 and 2.

    Returns
    -------
    :class:`QuantizedImage`

    Examples
    --------
    >>> from sklearn.datasets import load_sample_image
    >>> image = load_sample_image("china.jpg")[::8, ::8]  # a small copy: a fast example
    >>> q = quantize(image, 16, random_state=0)
    >>> q.palette.shape, q.psnr > 20
    ((16, 3), True)
    """
    if not 1 <= n_colors <= 65536:
        raise ValueError(f"n_colors must be in [1, 65536], got {n_colors!r}")
    if algorithm not in ("minibatch", "lloyd"):
        raise ValueError(f"algorithm must be 'minibatch' or 'lloyd', got {algorithm!r}")
    if store is not None:
        io.check_output(store, overwrite=overwrite)
    img = _open_source(image, tile, None)
    h, w, _ = img.shape
    n = h * w
    rng = np.random.default_rng(check_random_state(random_state).randint(2**31))
    n_steps = 2 + (store is not None) + bool(compute_psnr)
    with Progress(callback=progress) as p:
        m = min(n, sample_size)
        p.report("quantize", 0, n_steps, f"sampling {m} of {n} pixels")
        sample = sample_pixels(img, m, rng)
        p.report("quantize", 1, n_steps, f"sampled {m} of {n} pixels")
        est_cls = MiniBatchKMeans if algorithm == "minibatch" else KMeans
        k = min(n_colors, len(sample))
        watch: dict[str, Any] = {} if progress is None else {"callback": progress}
        est = est_cls(n_clusters=k, random_state=random_state, **watch).fit(sample)
        palette = np.clip(np.rint(est.cluster_centers_ * 255), 0, 255).astype(np.uint8)
        p.report("quantize", 2, n_steps, f"palette of {k} colours")
        labels = _assign_lazy(img, palette,
                              use_lut if use_lut is not None else n >= LUT_MIN_PIXELS)
        out_store = None
        if store is not None:
            labels, out_store = _write(labels, palette, Path(store), n_colors, overwrite)
            p.report("quantize", 3, n_steps, f"labels -> {out_store}")
        q = QuantizedImage(palette, labels, img, out_store)
        if compute_psnr:
            q.psnr = psnr(_mse(img, labels, palette))
            p.report("quantize", n_steps, n_steps, f"PSNR {q.psnr:.2f} dB")
    return q


def _assign_lazy(img: da.Array, palette: np.ndarray, lut: bool) -> da.Array:
    dtype = np.uint8 if len(palette) <= 256 else np.uint16
    meta = np.empty((0, 0), dtype)
    # the palette (<= 192 kB) goes inside each task: a delayed argument to map_blocks
    # fails with dask's array query planning ("Missing dependency ...")
    return da.map_blocks(_lut_tile if lut else assign_colors, img, palette=palette,
                         drop_axis=2, dtype=dtype, meta=meta)


def _mse(img: da.Array, labels: da.Array, palette: np.ndarray) -> float:
    sq = da.map_blocks(_sq_err_tile, img, labels[..., None], palette=palette,
                       chunks=(tuple(1 for _ in img.chunks[0]), tuple(1 for _ in img.chunks[1]),
                               (1,)), dtype=np.float64)
    total = schedule.compute(sq.sum(), n_tasks=img.numblocks[0] * img.numblocks[1])
    return float(total) / (img.shape[0] * img.shape[1] * 3)


def _write(labels: da.Array, palette: np.ndarray, store: Path, n_colors: int,
           overwrite: bool) -> tuple[da.Array, Path]:
    with io.atomic_dir(store, overwrite=overwrite) as tmp:
        root = zarr.open_group(tmp, mode="w", zarr_format=3)
        root.attrs.update({"format": "daskmeans-quantized/1", "n_colors": n_colors})
        root.create_array("palette", shape=palette.shape, dtype=np.uint8)[...] = palette
        arr = root.create_array("labels", shape=labels.shape, dtype=labels.dtype,
                                chunks=tuple(c[0] for c in labels.chunks),
                                compressors=io.default_compressor(labels.dtype))
        schedule.compute(io.store_blocks(labels, arr),
                  n_tasks=labels.numblocks[0] * labels.numblocks[1])
    written = zarr.open_group(store, mode="r")["labels"]
    assert isinstance(written, zarr.Array)
    return io.zarr_to_dask(written), store


def random_palette_psnr(img: da.Array, n_colors: int, random_state: Any = None) -> tuple[
    np.ndarray, float
]:
    """The baseline: ``n_colors`` random pixels as the palette, and its PSNR."""
    n = img.shape[0] * img.shape[1]
    rng = np.random.default_rng(check_random_state(random_state).randint(2**31))
    rows = sample_pixels(img, n_colors, rng)
    palette = np.clip(np.rint(rows * 255), 0, 255).astype(np.uint8)
    labels = _assign_lazy(img, palette, lut=n >= LUT_MIN_PIXELS)
    return palette, psnr(_mse(img, labels, palette))
