"""RGB images as Zarr v3 stores of square uint8 tiles: decoded from a file (with a
bounded decompression-bomb guard), written tile by tile, and read back as an image or
as a pixel view for clustering.

Layout of an image store::

    STORE/          zarr v3 group, attrs: format "daskmeans-image/1", source, tile
      image         (H, W, 3) uint8 in (tile, tile, 3) chunks
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import dask.array as da
import numpy as np
import zarr

from .errors import ImageFormatError
from .stores import (
    PIXEL_SCALE,
    PathLike,
    atomic_dir,
    default_compressor,
    get_array,
    open_group,
    scale_rows,
    zarr_to_dask,
)

__all__ = ["DEFAULT_TILE", "MAX_IMAGE_PIXELS", "create_image_store", "image_pixels",
           "image_to_zarr", "load_rgb", "open_image"]

log = logging.getLogger(__name__)

#: Side of the square tiles an image is stored in.
DEFAULT_TILE = 1024

#: Largest image (width x height pixels) daskmeans decodes from a file: 2**32, a
#: 65536 x 65536 image. Pillow's process-wide decompression-bomb guard
#: (``PIL.Image.MAX_IMAGE_PIXELS``) is raised to this cap only while :func:`load_rgb`
#: decodes, and is left as it was for everyone else.
MAX_IMAGE_PIXELS = 2**32
_PIL_LIMIT_LOCK = threading.Lock()


@contextlib.contextmanager
def _pil_pixel_limit(limit: int) -> Iterator[None]:
    """Set ``PIL.Image.MAX_IMAGE_PIXELS`` to ``limit`` for the block, then restore it.

    Pillow (<= 13) has no per-call limit: ``Image.open`` and some decoders (TIFF, GIF,
    ICO, ...) read that module global. The lock keeps our own concurrent decodes from
    interleaving their set/restore; the old value comes back even on errors.
    """
    from PIL import Image

    with _PIL_LIMIT_LOCK:
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = limit
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def load_rgb(path: PathLike) -> np.ndarray:
    """Decode an image file to (H, W, 3) uint8 RGB.

    Images up to :data:`MAX_IMAGE_PIXELS` (2**32) pixels are accepted, whatever
    ``PIL.Image.MAX_IMAGE_PIXELS`` is; that global is set to the cap only around the
    open, the size check and the decode, and restored afterwards, even on errors. A
    larger image, or a decompression bomb claiming a larger size, raises
    :class:`ImageFormatError` naming the path and the cap.
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such image")
    cap = MAX_IMAGE_PIXELS
    too_big = (f"{path}: image larger than daskmeans' limit of {cap} pixels "
               "(daskmeans.io.images.MAX_IMAGE_PIXELS); refusing a possible decompression bomb")
    try:
        with _pil_pixel_limit(cap), Image.open(path) as im:
            w, h = im.size
            if w * h > cap:
                raise ImageFormatError(f"{too_big}: it has {w} x {h} = {w * h} pixels")
            im.load()  # decode under the same limit: some plugins check it again here
            mode = im.mode
            if mode in ("RGB",):
                return np.asarray(im)
            if mode in ("L", "P", "RGBA", "LA", "CMYK", "YCbCr", "I;16", "I", "1"):
                log.info("%s: converting %s image to RGB", path, mode)
                return np.asarray(im.convert("RGB"))
            raise ImageFormatError(f"{path}: unsupported image mode {mode!r}; expected RGB")
    except Image.DecompressionBombError as e:
        raise ImageFormatError(f"{too_big}: {e}") from e
    except UnidentifiedImageError as e:
        raise ImageFormatError(f"{path}: not a readable image: {e}") from e
    except OSError as e:
        raise ImageFormatError(f"{path}: cannot decode image: {e}") from e


def image_to_zarr(
    image: PathLike | np.ndarray,
    store: PathLike,
    *,
    tile: int = DEFAULT_TILE,
    overwrite: bool = False,
) -> Path:
    """Store an RGB image as (H, W, 3) uint8 in square ``tile`` x ``tile`` Zarr chunks.

    ``image`` is a file PIL can read (greyscale, palette and RGBA are converted to RGB)
    or an (H, W, 3) uint8 array. Decoding a compressed file needs its uint8 pixels in
    memory once (PIL decodes whole frames); everything downstream works tile by tile.
    For images too large to decode at once, write tiles directly into a store laid
    out like this one (see :func:`daskmeans.io.synthetic_image`), then use :func:`open_image`.

    The store is written atomically (:func:`~daskmeans.io.stores.atomic_dir`); one
    already at ``store`` is refused unless ``overwrite=True``.

    Examples
    --------
    >>> import pathlib, shutil, tempfile
    >>> from sklearn.datasets import load_sample_image
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> p = image_to_zarr(load_sample_image("china.jpg"), d / "china.zarr", tile=256)
    >>> open_image(p).shape, open_image(p).numblocks
    ((427, 640, 3), (2, 3, 1))
    >>> shutil.rmtree(d)
    """
    if tile < 16:
        raise ValueError(f"tile must be >= 16, got {tile!r}")
    src = str(image) if not isinstance(image, np.ndarray) else "<array>"
    rgb = load_rgb(image) if not isinstance(image, np.ndarray) else image
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ImageFormatError(
            f"{src}: expected an (H, W, 3) uint8 RGB image, got {rgb.shape} {rgb.dtype}"
        )
    with atomic_dir(store, overwrite=overwrite) as tmp:
        arr = create_image_store(tmp, rgb.shape[0], rgb.shape[1], tile, source=src)
        for r in range(0, rgb.shape[0], tile):
            arr[r : r + tile] = rgb[r : r + tile]
    return Path(store)


def create_image_store(path: Path, h: int, w: int, tile: int, source: str) -> zarr.Array:
    """A new image store's group at ``path`` and its empty (h, w, 3) uint8 array."""
    root = zarr.open_group(path, mode="w", zarr_format=3)
    root.attrs.update({"format": "daskmeans-image/1", "source": source, "tile": tile})
    return root.create_array("image", shape=(h, w, 3), chunks=(tile, tile, 3), dtype=np.uint8,
                             compressors=default_compressor(np.uint8))


def open_image(store: PathLike | zarr.Group) -> da.Array:
    """The stored image as an (H, W, 3) uint8 dask array chunked in tiles."""
    group = open_group(store)
    return zarr_to_dask(get_array(group, "image", str(store)))


def image_pixels(store: PathLike | zarr.Group) -> da.Array:
    """Pixel view for clustering: (H*W, 3) float32 in [0, 1], one chunk per tile.

    Pixels come in *tile-major* order: tile after tile (row of tiles by row of tiles),
    each tile flattened row-major. This keeps every task to one tile of decoded float
    data. Use :func:`daskmeans.quantize` (or ``map_blocks`` on :func:`open_image`) to
    map per-pixel results back to (H, W).
    """
    arr = get_array(open_group(store), "image", str(store))
    h, w = arr.shape[:2]
    th, tw = arr.chunks[:2]
    tiles = [(r, c) for r in range(0, h, th) for c in range(0, w, tw)]
    sizes = tuple(min(th, h - r) * min(tw, w - c) for r, c in tiles)
    index = da.from_array(np.arange(len(tiles)), chunks=1)
    # bound with partial: dask-expr loses a list keyword of map_blocks ("Missing
    # dependency list-...") when the result is sliced
    read = functools.partial(_tile_pixels, array=arr, tiles=tiles, tile=(th, tw))
    return da.map_blocks(read, index, chunks=(sizes, (3,)), new_axis=1, dtype=np.float32,
                         meta=np.empty((0, 0), np.float32))


def _tile_pixels(i: np.ndarray, *, array: zarr.Array, tiles: list[tuple[int, int]],
                 tile: tuple[int, int]) -> np.ndarray:
    r, c = tiles[int(i[0])]
    return scale_rows(np.asarray(array[r:r + tile[0], c:c + tile[1]]).reshape(-1, 3),
                       PIXEL_SCALE)


