"""``daskmeans quantize`` and ``segment``: the pixels of a photo or of a multi-band
raster clustered, tile by tile."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np

from .console import Console, UserError
from .options import (
    check_k,
    check_outputs,
    command_storage_options,
    is_url,
    overwrite,
    writable_dir,
)
from .scheduler import dask_cluster

__all__ = ["SAMPLES", "cmd_quantize", "cmd_segment", "comparison_path", "run_quantize",
           "run_segment"]

SAMPLES = ("china", "flower")  # scikit-learn's bundled photos (sklearn.datasets)


def comparison_path(out: Path) -> Path:
    """Where :func:`run_quantize` draws its side-by-side picture, beside ``out``."""
    return out.with_name(out.stem + "-comparison.png")


def run_quantize(photo: Any, colors: int, out: Path, seed: int, store: Path | None,
                 console: Console, label: str, replace: bool = False) -> list[Path]:
    """Quantise a photo, compare it with a palette of random colours (PSNR and a
    side-by-side picture on a preview) and say how it went; returns the files written
    (an existing one is refused unless ``replace``)."""
    from .. import plot
    from ..quantization import assign_colors, quantize, random_palette_psnr

    t0 = time.perf_counter()
    q = quantize(photo, colors, random_state=seed, store=store, progress=console.progress,
                 overwrite=replace)
    rand_pal, psnr_random = random_palette_psnr(q.image, colors, random_state=seed)
    png = q.to_png(out, overwrite=replace)
    side = comparison_path(out)
    h, w = q.labels.shape
    stride = max(1, int(np.ceil(np.sqrt(h * w / 4e6))))
    original = q.image[::stride, ::stride].compute()
    # the picture shows the very palette whose PSNR the title states, on the preview
    rand_img = rand_pal[assign_colors(original, rand_pal)]
    plot.quantize_comparison(original, q.preview(4_000_000), rand_img, side, n_colors=colors,
                             psnr_kmeans=q.psnr or 0.0, psnr_random=psnr_random,
                             overwrite=replace)
    console.say(f"quantised {label} ({h}x{w}) to {colors} colours in "
                f"{time.perf_counter() - t0:.1f}s: PSNR {q.psnr:.2f} dB with K-means colours, "
                f"{psnr_random:.2f} dB with {colors} random colours")
    files = [png, side]
    if store is not None:
        files.append(store)
    return files


def _image_nbytes(photo: Path) -> int | None:
    """Bytes of a photo's RGB pixels from its header (nothing decoded), or of an image
    store's array; None when neither says."""
    try:
        if photo.is_dir():
            import zarr

            node = zarr.open(photo, mode="r")
            arrays = [node] if isinstance(node, zarr.Array) else [a for _, a in node.arrays()]
            return sum(int(a.nbytes) for a in arrays)
        from PIL import Image

        with Image.open(photo) as im:  # reads the header only
            return int(im.width) * int(im.height) * 3
    except Exception:  # unreadable here: run_quantize reports it properly
        return None


def cmd_quantize(args: argparse.Namespace, console: Console) -> int:
    if (args.photo is None) == (args.sample is None):
        raise UserError("quantize needs a photo (a file or an image store) or --sample "
                        f"{'|'.join(SAMPLES)}, not both")
    photo: Any
    if args.sample:
        from sklearn.datasets import load_sample_image

        label = f"{args.sample}.jpg"
        photo = load_sample_image(label)
        nbytes: int | None = photo.nbytes
    else:
        photo = Path(args.photo)
        if not photo.exists():
            raise UserError(f"{photo}: no such image or image store")
        label, nbytes = str(photo), _image_nbytes(photo)
    out = Path(args.out)
    writable_dir(out.resolve().parent)
    check_outputs(args, out, comparison_path(out), store=False)
    check_outputs(args, args.store)
    with dask_cluster(args, console, nbytes):
        files = run_quantize(photo, args.colors, out, args.seed,
                             Path(args.store) if args.store else None, console, label,
                             overwrite(args))
    for f in files:
        console.say(f"  -> {f}")
    return 0


def _nodata_arg(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return float(text)  # "nan" too
    except ValueError as e:
        raise UserError(f"--nodata must be a number or nan, got {text!r}") from e


def run_segment(scene: Any, k: int, out: Any, preview: Path | None, args: argparse.Namespace,
                console: Console, label: str,
                storage_options: dict[str, Any] | None = None) -> list[Any]:
    """Segment a scene, draw its preview if asked and say how it went; returns the label
    store and the files written."""
    from .. import plot
    from ..segmentation import segment

    t0 = time.perf_counter()
    seg = segment(scene, k, out, feature_dim=args.feature_dim, variable=args.variable,
                  nodata=_nodata_arg(args.nodata), full=args.full,
                  sample_size=args.sample_size, random_state=args.seed,
                  storage_options=storage_options, progress=console.progress,
                  overwrite=overwrite(args))
    console.end_progress()
    shape = "x".join(map(str, seg.labels.shape))
    how = "all pixels" if seg.n_fit == int(np.prod(seg.labels.shape)) else f"{seg.n_fit} pixels"
    console.say(f"segmented {label} ({shape}, {len(seg.bands)} bands) into {k} clusters in "
                f"{time.perf_counter() - t0:.1f}s (fitted on {how}; nodata "
                f"{seg.nodata if seg.nodata is not None else 'none'} -> label -1)")
    files: list[Any] = [out]
    if preview is not None:
        files.append(plot.segment_preview(seg.preview(), seg.centers, seg.bands, preview,
                                          title=label, overwrite=overwrite(args)))
    return files


def cmd_segment(args: argparse.Namespace, console: Console) -> int:
    from .. import io

    check_k(args.k, 1 << 62)
    if args.sample_size < args.k:
        raise UserError(f"--sample-size must be >= --k ({args.k}), got {args.sample_size}")
    _nodata_arg(args.nodata)
    so = command_storage_options(args, args.scene, args.out)
    scene: Any = args.scene if is_url(args.scene) else Path(args.scene)
    if isinstance(scene, Path) and not scene.exists():
        raise UserError(f"{scene}: no such Zarr store")
    out: Any = args.out if is_url(args.out) else Path(args.out)
    if isinstance(out, Path):
        writable_dir(out.resolve().parent)
    if args.preview:
        writable_dir(Path(args.preview).resolve().parent)
    check_outputs(args, args.out, storage_options=so)
    check_outputs(args, args.preview, store=False)
    try:
        raster = io.open_raster(scene, args.feature_dim, variable=args.variable,
                                storage_options=so if is_url(args.scene) else None)
    except (io.StoreError, FileNotFoundError) as e:
        raise UserError(str(e)) from e
    nbytes = int(np.prod(raster.data.shape)) * raster.data.dtype.itemsize
    label = str(scene) if is_url(args.scene) else scene.name
    with dask_cluster(args, console, nbytes):
        files = run_segment(scene, args.k, out, Path(args.preview) if args.preview else None,
                            args, console, label, so)
    for f in files:
        console.say(f"  -> {f}")
    return 0
