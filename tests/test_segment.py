"""Multi-band rasters: open_raster layouts, segment() and `daskmeans segment`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zarr
from sklearn.metrics import adjusted_rand_score

from daskmeans import cli, io
from daskmeans.segmentation import segment


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return io.synthetic_scene(tmp_path_factory.mktemp("scene") / "scene.zarr", 200, 260,
                              tile=64, random_state=1)


def _truth(scene: Path) -> np.ndarray:
    return np.asarray(zarr.open_group(scene, mode="r")["classes"][:])


@pytest.mark.parametrize("full", [False, True])
def test_segment_recovers_the_classes_and_labels_nodata(scene: Path, tmp_path: Path,
                                                        full: bool) -> None:
    seg = segment(scene, 5, tmp_path / "labels.zarr", feature_dim="band",
                  variable="reflectance", full=full, sample_size=5000)
    truth, got = _truth(scene), np.asarray(seg.labels[:])
    inside = truth >= 0
    assert (~inside).sum() > 1000  # the scene has nodata borders
    assert (got[~inside] == -1).all() and (got[inside] >= 0).all()
    assert adjusted_rand_score(truth[inside], got[inside]) == pytest.approx(1.0)
    assert seg.nodata == 0.0  # from the store's attribute
    assert seg.labels.chunks == (64, 64)  # aligned with the input's chunks
    assert seg.bands == [f"B{i}" for i in range(1, 7)] and seg.centers.shape == (5, 6)
    assert seg.n_fit == (200 * 260 if full else 5000)


def test_labels_open_in_xarray_with_coordinates_and_crs(scene: Path, tmp_path: Path) -> None:
    xr = pytest.importorskip("xarray")
    segment(scene, 5, tmp_path / "labels.zarr", sample_size=5000)
    ds = xr.open_zarr(tmp_path / "labels.zarr", consolidated=False)
    src = xr.open_zarr(scene, consolidated=False)
    assert ds["labels"].dims == ("y", "x") and ds.attrs["crs"] == "EPSG:32633"
    np.testing.assert_array_equal(ds["x"].values, src["x"].values)
    assert ds["labels"].attrs["daskmeans"]["bands"][0] == "B1"


def test_open_raster_layouts(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    cube = rng.random((30, 40, 4)).astype(np.float32)  # (y, x, band)
    arr = zarr.create_array(tmp_path / "yxb.zarr", shape=cube.shape, dtype=cube.dtype,
                            chunks=(16, 16, 4), dimension_names=("y", "x", "band"))
    arr[:] = cube
    for fd in ("band", 2, "-1"):
        r = io.open_raster(tmp_path / "yxb.zarr", fd)
        assert r.dims == ("y", "x") and r.bands == ["0", "1", "2", "3"]
        np.testing.assert_array_equal(r.rows().compute(), cube.reshape(-1, 4))
    r = io.open_raster(tmp_path / "yxb.zarr", 0)  # y as the feature axis: (x, band) samples
    assert r.dims == ("x", "band") and r.data.shape == (40, 4, 30)
    # a group as xarray writes a Dataset of single-band variables: stacked, names = bands
    g = zarr.open_group(tmp_path / "ds.zarr", mode="w", zarr_format=3)
    for i, name in enumerate(("red", "nir", "swir")):
        a = g.create_array(name, shape=(30, 40), dtype=np.float32, chunks=(16, 16),
                           dimension_names=("y", "x"))
        a[:] = cube[..., i]
    r = io.open_raster(tmp_path / "ds.zarr")
    assert r.bands == ["nir", "red", "swir"] and r.feature_dim == "variable"
    np.testing.assert_array_equal(r.rows().compute()[:, 1], cube[..., 0].ravel())
    with pytest.raises(ValueError, match="feature_dim='time' is not a dimension"):
        io.open_raster(tmp_path / "yxb.zarr", "time")
    with pytest.raises(io.StoreError, match="no array 'blue'"):
        io.open_raster(tmp_path / "ds.zarr", variable="blue")


def test_cli_segment(scene: Path, tmp_path: Path, capsys) -> None:
    out, png = tmp_path / "l.zarr", tmp_path / "l.png"
    code = cli.main(["segment", str(scene), "--k", "5", "--feature-dim", "band", "--out",
                     str(out), "--preview", str(png), "--sample-size", "5000", "--quiet"])
    text = capsys.readouterr().out
    assert code == 0 and "into 5 clusters" in text and "nodata 0.0 -> label -1" in text
    assert png.stat().st_size > 0
    got = np.asarray(zarr.open_group(out, mode="r")["labels"][:])
    inside = _truth(scene) >= 0
    assert adjusted_rand_score(_truth(scene)[inside], got[inside]) == pytest.approx(1.0)
    code = cli.main(["segment", str(scene), "--k", "5", "--nodata", "zero", "--out",
                     str(out), "--quiet"])
    assert code == 2 and "--nodata must be a number or nan" in capsys.readouterr().err
