"""Synthetic data of any size, written to Zarr chunk by chunk in parallel (peak memory
a few chunks): Gaussian blobs with known centres, embedding-like unit vectors (a
mixture of clusters of varied sizes and spreads), a large RGB image, and a multi-band
scene with known classes and a nodata border.

Each is written atomically (:func:`~daskmeans.io.stores.atomic_dir`); a store already
at the destination is refused unless ``overwrite=True``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import zarr

from .images import DEFAULT_TILE, create_image_store
from .stores import PathLike, atomic_dir, default_compressor

__all__ = ["blob_centers", "make_blobs_zarr", "make_embeddings_zarr", "synthetic_image",
           "synthetic_scene"]


def synthetic_scene(store: PathLike, height: int, width: int, *, bands: int = 6,
                    n_classes: int = 5, nodata: float = 0.0, tile: int = 512,
                    noise: float = 0.02, random_state: int = 0,
                    overwrite: bool = False) -> Path:
    """Write a multi-band scene with known classes, tile by tile (a few tiles in memory).

    The group holds ``reflectance`` (band, y, x) float32 — each pixel the spectrum of
    its class plus Gaussian noise — with ``nodata`` outside a tilted swath (the
    borders of a satellite scene), ``classes`` (y, x) int32 (-1 outside the swath),
    coordinates ``band``, ``y``, ``x``, and a CRS attribute; xarray opens it as a
    Dataset. Classes are the Voronoi cells of 4 seeds per class.

    Examples
    --------
    >>> import pathlib, shutil, tempfile, zarr
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> p = synthetic_scene(d / "scene.zarr", 64, 64, n_classes=3, tile=32)
    >>> scene = zarr.open_group(p, mode="r")
    >>> scene["reflectance"].shape, sorted(set(scene["classes"][:].ravel().tolist()))
    ((6, 64, 64), [-1, 0, 1, 2])
    >>> shutil.rmtree(d)
    """
    import dask

    rng = np.random.default_rng(random_state)
    spectra = rng.uniform(0.05, 0.9, size=(n_classes, bands)).astype(np.float32)
    seeds = rng.uniform(0, 1, size=(4 * n_classes, 2)) * (height, width)
    seed_class = np.repeat(np.arange(n_classes), 4)
    with atomic_dir(store, overwrite=overwrite) as tmp:
        root = zarr.open_group(tmp, mode="w", zarr_format=3)
        root.attrs.update({"crs": "EPSG:32633", "title": "daskmeans synthetic scene",
                           "nodata": nodata})
        refl = root.create_array("reflectance", shape=(bands, height, width),
                                 dtype=np.float32, chunks=(bands, tile, tile),
                                 dimension_names=("band", "y", "x"), fill_value=nodata,
                                 compressors=default_compressor(np.float32))
        refl.attrs.update({"nodata": nodata, "units": "reflectance"})
        cls = root.create_array("classes", shape=(height, width), dtype=np.int32,
                                chunks=(tile, tile), dimension_names=("y", "x"),
                                fill_value=-1)
        for name, values in (("band", np.array([f"B{i + 1}" for i in range(bands)])),
                             ("y", 5.0 + 10.0 * np.arange(height)),
                             ("x", 500_000.0 + 10.0 * np.arange(width))):
            c = root.create_array(name, shape=values.shape,
                                  dtype=str if values.dtype.kind == "U" else values.dtype,
                                  chunks=values.shape, dimension_names=(name,))
            c[:] = values

        def write(r0: int, c0: int) -> None:
            h, w = min(tile, height - r0), min(tile, width - c0)
            yy, xx = np.mgrid[r0 : r0 + h, c0 : c0 + w]
            d2 = (yy[..., None] - seeds[:, 0]) ** 2 + (xx[..., None] - seeds[:, 1]) ** 2
            label = seed_class[np.argmin(d2, axis=-1)].astype(np.int32)
            t = np.random.default_rng([random_state, r0, c0])
            pix = spectra[label] + t.normal(0, noise, size=(h, w, bands)).astype(np.float32)
            # a swath tilted by ~8 degrees, 80% of the width: nodata outside it
            centre = width / 2 + (yy - height / 2) * 0.14
            outside = np.abs(xx - centre) > 0.4 * width
            pix[outside] = nodata
            label[outside] = -1
            refl[:, r0 : r0 + h, c0 : c0 + w] = np.moveaxis(pix, -1, 0)
            cls[r0 : r0 + h, c0 : c0 + w] = label

        dask.compute(*[dask.delayed(write)(r, c) for r in range(0, height, tile)
                       for c in range(0, width, tile)])
    return Path(store)



def _synthetic_tile(src: np.ndarray, r0: int, c0: int, h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng([seed, r0, c0])
    sh, sw = src.shape[:2]
    rows = (np.arange(r0, r0 + h) + rng.integers(sh)) % sh
    cols = (np.arange(c0, c0 + w) + rng.integers(sw)) % sw
    tile = src[rows][:, cols].astype(np.int16)
    tile += rng.integers(-8, 9, size=tile.shape, dtype=np.int16)
    return np.clip(tile, 0, 255).astype(np.uint8)


def synthetic_image(
    store: PathLike, height: int, width: int, *, source: np.ndarray | None = None,
    tile: int = DEFAULT_TILE, random_state: int = 0, overwrite: bool = False,
) -> Path:
    """Write a large RGB test image tile by tile: a photo repeated with random shifts
    and +-8 noise (scikit-learn's china.jpg by default). Memory: a few tiles.

    Examples
    --------
    Any size is written in the same memory; a small one here:

    >>> import pathlib, shutil, tempfile
    >>> from daskmeans.io import open_image
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> p = synthetic_image(d / "big.zarr", 300, 200, tile=128)
    >>> open_image(p).shape
    (300, 200, 3)
    >>> shutil.rmtree(d)
    """
    import dask

    if source is None:
        from sklearn.datasets import load_sample_image

        source = load_sample_image("china.jpg")
    with atomic_dir(store, overwrite=overwrite) as tmp:
        arr = create_image_store(tmp, height, width, tile, source="synthetic")

        def write(r0: int, c0: int) -> None:
            h, w = min(tile, height - r0), min(tile, width - c0)
            arr[r0 : r0 + h, c0 : c0 + w] = _synthetic_tile(source, r0, c0, h, w, random_state)

        dask.compute(*[dask.delayed(write)(r, c) for r in range(0, height, tile)
                       for c in range(0, width, tile)])
    return Path(store)


def _blob_block(
    block_id: int, start: int, rows: int, centers: np.ndarray, std: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng([seed, 1, block_id])
    y = rng.integers(0, centers.shape[0], size=rows)
    X = rng.standard_normal((rows, centers.shape[1]), dtype=np.float32)
    X *= np.float32(std)
    X += centers[y].astype(np.float32)
    return X, y.astype(np.int32)


def blob_centers(n_centers: int, n_features: int, seed: int, box: float = 10.0) -> np.ndarray:
    """The centres :func:`make_blobs_zarr` uses for a seed (uniform in [-box, box])."""
    rng = np.random.default_rng([seed, 0])
    return rng.uniform(-box, box, size=(n_centers, n_features))


def make_blobs_zarr(
    store: PathLike,
    n_samples: int,
    n_features: int,
    *,
    centers: int = 8,
    cluster_std: float = 1.0,
    chunk_rows: int = 100_000,
    random_state: int = 0,
    overwrite: bool = False,
) -> Path:
    """Write Gaussian blobs straight to a Zarr group, chunk by chunk, in parallel.

    The group holds ``X`` (n_samples, n_features) float32 and ``y`` (n_samples,) int32
    and the true centres in ``centers``. Block ``i`` is generated from
    ``default_rng([random_state, 1, i])`` so the data depend only on the seed and
    ``chunk_rows``; peak memory is a few chunks whatever ``n_samples`` is.

    Examples
    --------
    >>> import pathlib, shutil, tempfile, zarr
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> p = make_blobs_zarr(d / "blobs.zarr", 1_000, 16, centers=5, chunk_rows=300)
    >>> blobs = zarr.open_group(p, mode="r")
    >>> blobs["X"].shape, blobs["X"].chunks, blobs["centers"].shape
    ((1000, 16), (300, 16), (5, 16))
    >>> shutil.rmtree(d)

    :func:`daskmeans.open_array` opens ``X`` as a dask array, and estimators read the
    store itself.
    """
    if n_samples < 1 or n_features < 1:
        raise ValueError(
            f"n_samples and n_features must be >= 1, got {n_samples!r}, {n_features!r}"
        )
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be >= 1, got {chunk_rows!r}")
    import dask

    C = blob_centers(centers, n_features, random_state)
    with atomic_dir(store, overwrite=overwrite) as tmp:
        root = zarr.open_group(tmp, mode="w", zarr_format=3)
        root.attrs.update(
            {
                "format": "daskmeans-blobs/1",
                "n_samples": n_samples,
                "n_features": n_features,
                "centers": centers,
                "cluster_std": cluster_std,
                "random_state": random_state,
            }
        )
        xa = root.create_array(
            "X", shape=(n_samples, n_features), chunks=(chunk_rows, n_features),
            dtype=np.float32, compressors=default_compressor(np.float32),
        )
        ya = root.create_array("y", shape=(n_samples,), chunks=(chunk_rows,), dtype=np.int32,
                               compressors=default_compressor(np.int32))
        ca = root.create_array("centers", shape=C.shape, dtype=np.float64)
        ca[...] = C

        def write(i: int, start: int, rows: int) -> int:
            X, y = _blob_block(i, start, rows, C, cluster_std, random_state)
            xa[start : start + rows] = X
            ya[start : start + rows] = y
            return rows

        tasks = [
            dask.delayed(write)(i, s, min(chunk_rows, n_samples - s))
            for i, s in enumerate(range(0, n_samples, chunk_rows))
        ]
        # Bounded parallelism: at most ~2 blocks per thread in flight.
        total = sum(dask.compute(*tasks))
        assert total == n_samples
    return Path(store)


def make_embeddings_zarr(
    store: PathLike,
    n_samples: int,
    n_features: int,
    *,
    components: int = 2000,
    chunk_rows: int = 50_000,
    random_state: int = 0,
    overwrite: bool = False,
) -> Path:
    """Write embedding-like rows to a Zarr array, chunk by chunk: what a vector
    index's coarse quantiser is trained on.

    A mixture of ``components`` Gaussians around unit directions, of varied sizes
    (Pareto weights: a few large clusters, many small ones) and spreads (log-normal),
    every row normalised to unit length, float32. Chunk ``i`` comes from
    ``default_rng([random_state, 1, i])``, so the rows depend only on the seed and
    ``chunk_rows`` and memory stays a chunk's whatever ``n_samples`` is.

    Examples
    --------
    >>> import pathlib, shutil, tempfile, zarr
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> p = make_embeddings_zarr(d / "emb.zarr", 1_000, 8, components=5, chunk_rows=300)
    >>> X = zarr.open_array(p, mode="r")
    >>> X.shape, X.chunks, bool(np.allclose((X[:] ** 2).sum(1), 1, atol=1e-5))
    ((1000, 8), (300, 8), True)
    >>> shutil.rmtree(d)
    """
    if n_samples < 1 or n_features < 1 or components < 1:
        raise ValueError("n_samples, n_features and components must be >= 1, got "
                         f"{n_samples!r}, {n_features!r}, {components!r}")
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be >= 1, got {chunk_rows!r}")
    rng = np.random.default_rng([random_state, 0])
    centres = rng.normal(size=(components, n_features))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    weights = rng.pareto(1.5, components) + 0.05
    weights /= weights.sum()
    spread = np.exp(rng.normal(np.log(0.25), 0.5, components)) / np.sqrt(n_features)
    with atomic_dir(store, overwrite=overwrite) as tmp:
        arr = zarr.create_array(str(tmp), shape=(n_samples, n_features),
                                chunks=(chunk_rows, n_features), dtype=np.float32,
                                compressors=default_compressor(np.float32))
        arr.attrs.update({"format": "daskmeans-embeddings/1", "components": components,
                          "random_state": random_state})
        for i, start in enumerate(range(0, n_samples, chunk_rows)):
            rows = min(chunk_rows, n_samples - start)
            r = np.random.default_rng([random_state, 1, i])
            comp = r.choice(components, size=rows, p=weights)
            X = centres[comp] + r.normal(size=(rows, n_features)) * spread[comp, None]
            X /= np.linalg.norm(X, axis=1, keepdims=True)
            arr[start:start + rows] = X.astype(np.float32)
    return Path(store)
