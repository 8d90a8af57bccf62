"""MNIST-format datasets as Zarr v3 groups: IDX files (or in-memory arrays) ingested
into one store, and the store's pixels viewed as float rows.

Layout of a dataset store written by :func:`ingest`::

    STORE/                      zarr v3 group, attrs: dataset, splits, missing_splits,
                                sources, and class_names where the dataset has them
      train/images  (n, 28, 28) uint8, chunked by rows, Blosc-LZ4-compressed
      train/labels  (n,)        uint8
      test/images   ...
      test/labels   ...

Pixels stay uint8 on disk. Each images array records how its values map to features,
``scale_factor = 1/255`` (:data:`daskmeans.io.stores.SCALE_ATTR`), so that readers scale them
to float32 in [0, 1] (:func:`daskmeans.open_dataset` lazily, chunk by chunk:
:func:`scale_images`). Stores written before that attribute existed are recognised by
their group's ``format`` (``daskmeans-idx/...``) and read the same way
(:func:`images_scale`).
``class_names[i]`` names label ``i`` (:data:`CLASS_NAMES`, read back with
:func:`class_names`).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, overload

import dask.array as da
import numpy as np
import zarr

from .errors import DataFormatError, IDXFormatError, StoreError
from .idx import DEFAULT_CHUNK_ROWS, MNIST_FILES, file_checksums, find_idx_files, iter_idx
from .stores import (
    PIXEL_SCALE,
    SCALE_ATTR,
    PathLike,
    default_compressor,
    get_array,
    is_url,
    metadata_errors,
    open_group,
    scale_from_attrs,
    scale_rows,
    staged,
)

__all__ = ["CLASS_NAMES", "SPLITS", "arrays_to_dataset", "class_names", "find_idx_files",
           "images_scale", "ingest", "scale_images", "split_array"]

log = logging.getLogger(__name__)

#: The splits a dataset store may hold.
SPLITS = ("train", "test")

#: What the labels of the known datasets stand for, by dataset name: label ``i`` is
#: class ``CLASS_NAMES[name][i]``. :func:`ingest` and :func:`arrays_to_dataset` record
#: them as the store's ``class_names`` attribute, so that reports and figures can say
#: "Sneaker" where the file says 7.
CLASS_NAMES: dict[str, tuple[str, ...]] = {
    "mnist": tuple(str(i) for i in range(10)),
    "digits": tuple(str(i) for i in range(10)),
    "fashion-mnist": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                      "Shirt", "Sneaker", "Bag", "Ankle boot"),
}


def _class_names_attr(name: str, given: Any) -> dict[str, Any]:
    """The ``class_names`` attribute to record: ``given``, else the known dataset's
    (none for a dataset not in :data:`CLASS_NAMES`)."""
    names = CLASS_NAMES.get(name) if given is None else given
    if names is None:
        return {}
    names = [str(v) for v in names]
    if not names:
        raise ValueError("class_names must name at least one class")
    return {"class_names": names}


def class_names(store: PathLike | zarr.Group,
                storage_options: dict[str, Any] | None = None) -> list[str] | None:
    """The class names a dataset store records (label ``i`` is ``names[i]``), or None
    for a store that records none (labels are then shown as their numbers).

    Examples
    --------
    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> images, labels = np.zeros((2, 2, 2), np.uint8), np.array([7, 0], np.uint8)
    >>> store = arrays_to_dataset({"test": (images, labels)}, f"{d}/f.zarr",
    ...                           name="fashion-mnist")
    >>> class_names(store)[7]
    'Sneaker'
    >>> class_names(arrays_to_dataset({"test": (images, labels)}, f"{d}/x.zarr", name="x"))
    """
    names = open_group(store, storage_options).attrs.get("class_names")
    if not isinstance(names, list) or not names:
        return None
    return [str(v) for v in names]


@overload
def ingest(source: PathLike | dict[tuple[str, str], PathLike], store: os.PathLike[str], *,
           name: str = ..., chunk_rows: int = ..., overwrite: bool = ...,
           extra_attrs: dict[str, Any] | None = ..., progress: Any = ...,
           storage_options: dict[str, Any] | None = ...,
           class_names: Any = ...) -> Path: ...
@overload
def ingest(source: PathLike | dict[tuple[str, str], PathLike], store: str, *,
           name: str = ..., chunk_rows: int = ..., overwrite: bool = ...,
           extra_attrs: dict[str, Any] | None = ..., progress: Any = ...,
           storage_options: dict[str, Any] | None = ...,
           class_names: Any = ...) -> Path | str: ...
def ingest(
    source: PathLike | dict[tuple[str, str], PathLike],
    store: PathLike,
    *,
    name: str = "mnist",
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    overwrite: bool = False,
    extra_attrs: dict[str, Any] | None = None,
    progress: Any = None,
    storage_options: dict[str, Any] | None = None,
    class_names: Any = None,
) -> Path | str:
    """Ingest MNIST-format IDX files into one Zarr v3 group.

    Parameters
    ----------
    source : path or dict
        A directory holding any of the four standard file names (``.gz`` or not), or a
        mapping ``{(split, "images" | "labels"): path}``.
    store : path or URL
        Destination directory of the Zarr group, written atomically (beside it, then
        renamed). A URL
        (``s3://bucket/mnist.zarr``) is written to a local temporary directory first,
        then uploaded with :func:`upload_store` (root metadata last).
    name : str
        Dataset name recorded in the attrs.
    overwrite : bool
        Replace a store already at ``store``; by default it is refused
        (:class:`~daskmeans.io.errors.OutputExistsError`). What is not a Zarr store is
        never deleted.
    chunk_rows : int
        Rows per chunk (default 10,000: ~7.8 MB of uint8 images per chunk, 31 MB once
        scaled to float32).
    progress : :data:`daskmeans.progress.ProgressCallback`, optional
        Called after every chunk written as ``progress("ingest", rows_done, rows,
        "<split>/<kind> (<file name>)")``, one run up to ``rows`` per file.
    storage_options : dict, optional
        For a URL: passed to fsspec (s3fs: ``key``, ``secret``, ``endpoint_url``, ...).
    class_names : sequence of str, optional
        What label ``i`` stands for, recorded as the ``class_names`` attribute
        (default: the dataset's in :data:`CLASS_NAMES`, none for another name).

    Returns
    -------
    Path of the store (the URL for a URL). Splits without both files are skipped and listed in the
    ``missing_splits`` attribute (and logged).

    Examples
    --------
    A folder holding only the test split, three 2 x 2 images and their labels:

    >>> import pathlib, shutil, struct, tempfile, zarr
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "t10k-images-idx3-ubyte").write_bytes(
    ...     struct.pack(">BBBBIII", 0, 0, 0x08, 3, 3, 2, 2) + bytes(range(12)))
    >>> _ = (d / "t10k-labels-idx1-ubyte").write_bytes(
    ...     struct.pack(">BBBBI", 0, 0, 0x08, 1, 3) + bytes([7, 2, 1]))
    >>> store = ingest(d, d / "mnist.zarr")
    >>> group = zarr.open_group(store, mode="r")
    >>> group.attrs["splits"], group.attrs["missing_splits"], group["test/images"].shape
    (['test'], ['train'], (3, 2, 2))
    >>> shutil.rmtree(d)

    :func:`daskmeans.open_dataset` opens a split as ``(X, y)`` dask arrays and
    :func:`daskmeans.open_source` as the rows an estimator reads.
    """
    if not isinstance(chunk_rows, int | np.integer) or chunk_rows < 1:
        raise ValueError(f"chunk_rows must be a positive integer, got {chunk_rows!r}")
    names = _class_names_attr(name, class_names)
    files = find_idx_files(source) if not isinstance(source, dict) else {
        k: Path(v) for k, v in source.items()
    }
    splits = [s for s in SPLITS if (s, "images") in files and (s, "labels") in files]
    missing = [s for s in SPLITS if s not in splits]
    for s in SPLITS:
        half = [k for k in ("images", "labels") if (s, k) in files]
        if len(half) == 1:
            log.info("split %r has only its %s file; skipped", s, half[0])
    if not splits:
        raise FileNotFoundError(
            f"{source}: no complete split found (need e.g. "
            f"{MNIST_FILES[('test', 'images')]}.gz and {MNIST_FILES[('test', 'labels')]}.gz)"
        )
    if missing:
        log.info("%s: splits %s not present; ingesting %s", name, missing, splits)
    sources: dict[str, Any] = {}
    with staged(store, storage_options, overwrite) as tmp:
        root = zarr.open_group(tmp, mode="w", zarr_format=3)
        for split in splits:
            grp = root.create_group(split)
            counts = {}
            for kind in ("labels", "images"):
                path = files[(split, kind)]
                counts[kind] = _idx_to_zarr(path, grp, kind, chunk_rows, progress=progress,
                                            what=f"{split}/{kind} ({path.name})")
                sources[f"{split}/{kind}"] = {"file": path.name, **file_checksums(path)}
            if counts["images"] != counts["labels"]:
                raise DataFormatError(
                    f"{files[(split, 'images')]}: {counts['images']} images but "
                    f"{files[(split, 'labels')].name} has {counts['labels']} labels"
                )
        root.attrs.update(
            {
                "dataset": name,
                "format": "daskmeans-idx/1",
                "splits": splits,
                "missing_splits": missing,
                "sources": sources,
                **names,
                **(extra_attrs or {}),
            }
        )
    log.info("ingested %s (%s) into %s", name, ", ".join(splits), store)
    return str(store) if is_url(store) else Path(store)


@overload
def arrays_to_dataset(splits: dict[str, tuple[np.ndarray, np.ndarray]],
                      store: os.PathLike[str], *, name: str, chunk_rows: int = ...,
                      overwrite: bool = ..., storage_options: dict[str, Any] | None = ...,
                      class_names: Any = ...) -> Path: ...
@overload
def arrays_to_dataset(splits: dict[str, tuple[np.ndarray, np.ndarray]], store: str, *,
                      name: str, chunk_rows: int = ..., overwrite: bool = ...,
                      storage_options: dict[str, Any] | None = ...,
                      class_names: Any = ...) -> Path | str: ...
def arrays_to_dataset(
    splits: dict[str, tuple[np.ndarray, np.ndarray]],
    store: PathLike,
    *,
    name: str,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    overwrite: bool = False,
    storage_options: dict[str, Any] | None = None,
    class_names: Any = None,
) -> Path | str:
    """Write in-memory ``{split: (images uint8 (n, h, w), labels (n,))}`` as a dataset
    store with the layout of :func:`ingest` (used for scikit-learn's digits); ``store``
    may be a URL (with ``storage_options``), written as :func:`ingest` writes one, and
    ``class_names`` recorded as there."""
    names = _class_names_attr(name, class_names)
    with staged(store, storage_options, overwrite) as tmp:
        root = zarr.open_group(tmp, mode="w", zarr_format=3)
        for split, (images, labels) in splits.items():
            if split not in SPLITS:
                raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
            images = np.asarray(images, dtype=np.uint8)
            labels = np.asarray(labels, dtype=np.uint8)
            if images.shape[0] != labels.shape[0]:
                raise DataFormatError(
                    f"{split}: {images.shape[0]} images but {labels.shape[0]} labels")
            grp = root.create_group(split)
            rows = min(chunk_rows, max(1, images.shape[0]))
            arr = grp.create_array("images", shape=images.shape,
                                   chunks=(rows, *images.shape[1:]), dtype=np.uint8,
                                   compressors=default_compressor(np.uint8),
                                   attributes={SCALE_ATTR: PIXEL_SCALE})
            arr[...] = images
            grp.create_array("labels", shape=labels.shape, chunks=(rows,), dtype=np.uint8,
                             compressors=default_compressor(np.uint8))[...] = labels
        root.attrs.update({"dataset": name, "format": "daskmeans-idx/1",
                           "splits": [s for s in SPLITS if s in splits],
                           "missing_splits": [s for s in SPLITS if s not in splits],
                           "sources": {}, **names})
    return str(store) if is_url(store) else Path(store)


def _idx_to_zarr(path: Path, grp: zarr.Group, kind: str, chunk_rows: int, *,
                 progress: Any = None, what: str = "") -> int:
    """Copy one IDX file into ``grp[kind]``; returns its rows. ``progress`` is a
    :data:`daskmeans.progress.ProgressCallback` told ``("ingest", rows, total, what)``."""
    arr = None
    n = 0
    for dtype, shape, block in iter_idx(path, chunk_rows):
        if arr is None:
            expect_ndim = 3 if kind == "images" else 1
            if len(shape) != expect_ndim:
                raise IDXFormatError(
                    f"{path}: {kind} must have {expect_ndim} dimensions, header says {shape}"
                )
            if dtype != np.uint8:
                raise IDXFormatError(f"{path}: {kind} must be uint8, header says {dtype}")
            arr = grp.create_array(
                kind,
                shape=shape,
                chunks=(min(chunk_rows, max(shape[0], 1)), *shape[1:]),
                dtype=np.uint8,
                compressors=default_compressor(np.uint8),
                attributes={SCALE_ATTR: PIXEL_SCALE} if kind == "images" else None,
            )
        if block.shape[0]:
            arr[n : n + block.shape[0]] = block
        n += block.shape[0]
        log.debug("%s: %d/%d rows", path.name, n, shape[0])
        if progress is not None:
            progress("ingest", n, shape[0], what or path.name)
    return n

def split_array(group: zarr.Group, split: str, kind: str, where: str) -> zarr.Array:
    """``group[split/kind]`` of a dataset store (``kind``: images or labels), with errors
    naming the split."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    with metadata_errors(where):
        present = split in group
    if not present:
        raise StoreError(f"{where}: split {split!r} is not in this store "
                         f"(available: {[s for s in SPLITS if s in group]})")
    return get_array(group, f"{split}/{kind}", where)


def images_scale(images: zarr.Array) -> float:
    """The factor from a dataset store's stored pixels to features: the images array's
    ``scale_factor`` attribute, or ``1/255`` for a store written before the attribute
    was recorded (every dataset store's images are uint8 pixels).

    Examples
    --------
    >>> import zarr
    >>> old = zarr.create_array(zarr.storage.MemoryStore(), shape=(2, 4), dtype="uint8")
    >>> images_scale(old) == PIXEL_SCALE
    True
    """
    scale = scale_from_attrs(images.attrs, str(images.name))
    return PIXEL_SCALE if scale is None else scale


def _scale_block(block: np.ndarray, scale: float) -> np.ndarray:
    return scale_rows(block, scale)


def scale_images(images: da.Array, scale: float = PIXEL_SCALE) -> da.Array:
    """(n, h, w[, c]) stored images -> (n, h*w*c) float32 ``float32(raw) * scale`` (in
    [0, 1] for uint8 pixels and the default ``scale``), lazily per chunk."""
    if images.ndim > 2:
        images = images.rechunk({i: -1 for i in range(1, images.ndim)})
    d = int(np.prod(images.shape[1:]))
    return da.map_blocks(
        _scale_block, images, scale,
        dtype=np.float32,
        chunks=(images.chunks[0], (d,)),
        drop_axis=list(range(2, images.ndim)) or None,
        meta=np.empty((0, 0), dtype=np.float32),
    )

