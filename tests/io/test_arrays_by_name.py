"""Any array a user has, by name: a root Zarr array, an array in a group named by
``array=``, an xarray Dataset's variable; and the error listing what a group holds."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import zarr

from daskmeans import KMeans, io, open_source
from daskmeans.io.stores import array_paths, select_array


@pytest.fixture
def rows() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(300, 5)).astype(np.float32)


def _fit(X: object) -> KMeans:
    return KMeans(n_clusters=3, random_state=0, max_iter=20).fit(X)


def test_a_root_array_fits_as_its_rows(tmp_path: Path, rows: np.ndarray) -> None:
    zarr.create_array(tmp_path / "emb.zarr", data=rows, chunks=(100, 5))
    src = open_source(tmp_path / "emb.zarr")
    assert src.shape == rows.shape and src.scale is None
    km = _fit(str(tmp_path / "emb.zarr"))
    np.testing.assert_allclose(km.inertia_, _fit(rows).inertia_, rtol=1e-6)


def test_an_array_in_a_group_by_name(tmp_path: Path, rows: np.ndarray) -> None:
    group = zarr.open_group(tmp_path / "grp.zarr", mode="w")
    group.create_array("vectors", data=rows, chunks=(100, 5))
    group.create_array("nested/more", data=rows * 2, chunks=(100, 5))
    group.create_array("ids", data=np.arange(300))
    assert array_paths(group) == ["ids", "nested/more", "vectors"]
    a = open_source(tmp_path / "grp.zarr", array="vectors")
    b = open_source(tmp_path / "grp.zarr", array="nested/more")
    assert a.array.path == "vectors" and b.array.path == "nested/more"
    np.testing.assert_allclose(_fit(b).inertia_, 4 * _fit(a).inertia_, rtol=1e-5)
    # two arrays of rows and no X: the error names the way out and lists them all
    with pytest.raises(io.StoreError, match=r"array=.*ids \(300,\) int64, nested/more "
                                            r"\(300, 5\) float32, vectors"):
        open_source(tmp_path / "grp.zarr")
    with pytest.raises(io.StoreError, match=r"grp.zarr: no array 'vector'; it holds ids"):
        open_source(tmp_path / "grp.zarr", array="vector")
    with pytest.raises(io.StoreError, match=r"a group, not an array 'nested'"):
        open_source(tmp_path / "grp.zarr", array="nested")


def test_a_group_with_one_array_of_rows_needs_no_name(tmp_path: Path, rows: np.ndarray) -> None:
    group = zarr.open_group(tmp_path / "one.zarr", mode="w")
    group.create_array("embedding", data=rows)
    group.create_array("ids", data=np.arange(300))  # 1-D: not rows
    assert open_source(tmp_path / "one.zarr").array.path == "embedding"


def test_a_root_array_named_wrongly_is_refused(tmp_path: Path, rows: np.ndarray) -> None:
    zarr.create_array(tmp_path / "emb.zarr", data=rows)
    with pytest.raises(io.StoreError, match="not a group.*leave out array="):
        open_source(tmp_path / "emb.zarr", array="vectors")


def test_an_xarray_datasets_variable(tmp_path: Path, rows: np.ndarray) -> None:
    xr = pytest.importorskip("xarray")
    ds = xr.Dataset({"emb": (("sample", "feature"), rows),
                     "twice": (("sample", "feature"), rows * 2)},
                    coords={"sample": np.arange(300)})
    with warnings.catch_warnings():  # xarray's notes on the Zarr format it writes
        warnings.simplefilter("ignore")
        ds.to_zarr(tmp_path / "xr.zarr", consolidated=False)  # numpy: no da.store
    src = open_source(tmp_path / "xr.zarr", array="emb")
    assert src.shape == rows.shape
    np.testing.assert_allclose(_fit(src).inertia_, _fit(rows).inertia_, rtol=1e-6)
    with pytest.raises(io.StoreError, match=r"emb \(300, 5\) float32.*sample \(300,\) int64"):
        open_source(tmp_path / "xr.zarr")


def test_select_array_in_memory() -> None:
    group = zarr.open_group(zarr.storage.MemoryStore(), mode="w")
    assert "holds no array" in _error(lambda: select_array(group, None, "mem"))
    group.create_array("X", shape=(4, 2), dtype="f4")
    group.create_array("Y", shape=(4, 2), dtype="f4")
    assert select_array(group, None, "mem").path == "X"  # the default name wins
    assert select_array(group, "/Y", "mem").path == "Y"
    for i in range(io.stores.LISTED_ARRAYS + 3):
        group.create_array(f"z{i:02d}", shape=(1,), dtype="i1")
    assert "and 5 more" in _error(lambda: select_array(group, "nope", "mem"))


def _error(call: object) -> str:
    with pytest.raises(io.StoreError) as e:
        call()  # type: ignore[operator]
    return str(e.value)


def test_the_guides_example_runs() -> None:
    from tests.docs_pages import DOCS, rst_code_block

    namespace: dict[str, object] = {}
    exec(rst_code_block(DOCS / "guide" / "data.rst", "array-by-name"), namespace)
    assert namespace["src"].array.path == "vectors"  # type: ignore[attr-defined]
    assert namespace["km"].cluster_centers_.shape == (4, 8)  # type: ignore[attr-defined]
