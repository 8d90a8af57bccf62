"""The same data gives the same model from memory and from a store: how stored values
map to features is the store's ``scale_factor`` attribute (or a dataset store's
format), never its dtype."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import pytest
import zarr

from daskmeans import BisectingKMeans, KMeans, MiniBatchKMeans, open_source
from daskmeans.io import arrays_to_dataset
from daskmeans.pixels import PIXEL_SCALE

SCALES = {"uint8": 1 / 255, "uint16": 1 / 65535, "float32": 0.5}


def _blobs(dtype: str, n: int = 600, d: int = 6) -> np.ndarray:
    """Four well-separated groups of rows in ``dtype``'s own range."""
    rng = np.random.default_rng(0)
    top = {"uint8": 255, "uint16": 65535, "float32": 1000.0}[dtype]
    centres = rng.uniform(0.15, 0.85, size=(4, d)) * top
    rows = centres[rng.integers(0, 4, n)] + rng.normal(0, 0.03 * top, size=(n, d))
    return np.clip(np.rint(rows) if dtype != "float32" else rows, 0, top).astype(dtype)


def _store(path: Path, raw: np.ndarray, scale: float | None) -> Path:
    attrs = {} if scale is None else {"scale_factor": scale}
    arr = zarr.create_array(path, shape=raw.shape, chunks=(128, raw.shape[1]),
                            dtype=raw.dtype, attributes=attrs)
    arr[...] = raw
    return path


def _labels(model: Any) -> np.ndarray:
    """numpy labels of a fit (a lazy fit's are a dask array: np.asarray of one is an
    object array under dask's array query planning)."""
    labels = model.labels_
    return labels.compute() if isinstance(labels, da.Array) else np.asarray(labels)


def _same_model(a: Any, b: Any) -> None:
    np.testing.assert_array_equal(_labels(a), _labels(b))
    assert a.cluster_centers_.dtype == b.cluster_centers_.dtype
    np.testing.assert_allclose(a.cluster_centers_, b.cluster_centers_, rtol=1e-6, atol=0)
    assert a.inertia_ == pytest.approx(b.inertia_, rel=1e-6)


@pytest.mark.parametrize("dtype", sorted(SCALES))
@pytest.mark.parametrize("with_attr", [False, True])
@pytest.mark.parametrize("estimator", [KMeans, MiniBatchKMeans, BisectingKMeans])
def test_a_store_and_its_copy_in_memory_give_the_same_model(tmp_path: Path, dtype: str,
                                                             with_attr: bool,
                                                             estimator: Any) -> None:
    raw = _blobs(dtype)
    scale = SCALES[dtype] if with_attr else None
    store = _store(tmp_path / "x.zarr", raw, scale)
    # what the store's values stand for: scaled in float32 as every reader scales them,
    # else the values themselves (an integer array in memory is read as float64)
    in_memory = raw if scale is None else raw.astype(np.float32) * np.float32(scale)
    params: dict[str, Any] = {"n_clusters": 4, "random_state": 0}
    if estimator is MiniBatchKMeans:
        params.update(batch_size=128, max_iter=5)
    from_store = estimator(**params).fit(str(store))
    from_memory = estimator(**params).fit(in_memory)
    _same_model(from_store, from_memory)
    top = {"uint8": 255, "uint16": 65535, "float32": 1000.0}[dtype]
    if scale is None:  # its own units: centres span the stored values' range
        assert from_store.cluster_centers_.max() > 0.5 * top
    else:
        assert from_store.cluster_centers_.max() <= top * scale * 1.0001


def test_a_uint8_array_without_the_attribute_is_not_a_pixel(tmp_path: Path) -> None:
    raw = _blobs("uint8")
    assert open_source(str(_store(tmp_path / "band.zarr", raw, None))).scale is None
    assert open_source(str(_store(tmp_path / "pix.zarr", raw, PIXEL_SCALE))).scale \
        == PIXEL_SCALE
    # scale= overrides the attribute, either way
    assert open_source(str(tmp_path / "pix.zarr"), scale=1.0).scale == 1.0
    assert open_source(str(tmp_path / "band.zarr"), scale=0.5).scale == 0.5


def test_an_init_array_is_read_in_the_datas_units(tmp_path: Path) -> None:
    raw = _blobs("uint8")
    init = raw[[0, 150, 300, 450]].astype(np.float64)  # in the stored units
    store = _store(tmp_path / "band.zarr", raw, None)
    a = KMeans(4, init=init, n_init=1).fit(str(store))
    b = KMeans(4, init=init, n_init=1).fit(raw)
    _same_model(a, b)


def test_dataset_stores_record_the_scale_and_old_ones_are_recognised(tmp_path: Path
                                                                      ) -> None:
    rng = np.random.default_rng(2)
    images = rng.integers(0, 256, size=(50, 4, 4), dtype=np.uint8)
    store = arrays_to_dataset({"test": (images, np.arange(50) % 10)}, tmp_path / "d.zarr",
                              name="tiny")
    group = zarr.open_group(store, mode="r+")
    assert group["test/images"].attrs["scale_factor"] == PIXEL_SCALE
    assert "scale_factor" not in group["test/labels"].attrs
    new = KMeans(3, random_state=0).fit(open_source(store, "test"))
    # a store written before the attribute existed: recognised by its format
    del group["test/images"].attrs["scale_factor"]
    assert open_source(store, "test").scale == PIXEL_SCALE
    old = KMeans(3, random_state=0).fit(open_source(store, "test"))
    _same_model(new, old)
    pixels = images.reshape(50, -1).astype(np.float32) * np.float32(PIXEL_SCALE)
    _same_model(new, KMeans(3, random_state=0).fit(pixels))


def test_an_offset_or_a_bad_scale_is_refused_naming_the_array(tmp_path: Path) -> None:
    raw = _blobs("uint8")
    arr = zarr.create_array(tmp_path / "o.zarr", shape=raw.shape, dtype=raw.dtype,
                            attributes={"scale_factor": 0.1, "add_offset": 3.0})
    arr[...] = raw
    with pytest.raises(ValueError, match="add_offset"):
        open_source(str(tmp_path / "o.zarr"))
    arr.attrs.update({"add_offset": 0, "scale_factor": -1})
    with pytest.raises(ValueError, match="scale_factor"):
        open_source(str(tmp_path / "o.zarr"))
