"""xarray in and out (feature_dim), and nodata masking, under the threaded scheduler."""

from __future__ import annotations

from pathlib import Path

import dask
import dask.array as da
import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from daskmeans import KMeans, MiniBatchKMeans, io, metrics, open_source

xr = pytest.importorskip("xarray")

#: xarray (2026.9) does not recognise dask's query-planning arrays: ``.values`` of a lazy
#: DataArray then gives an object array. The engine is tested under both; the tests read
#: results through ``values`` below, and leave xarray's own I/O out under query planning.
QUERY_PLANNING = bool(dask.config.get("array.query-planning", None))


def values(a: object) -> np.ndarray:
    data = getattr(a, "data", a)
    return np.asarray(data.compute() if isinstance(data, da.Array) else data)

H, W, B, N_CLASSES = 48, 64, 6, 4


def make_scene(seed: int = 0, nodata: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(y, x, band) float32 scene of N_CLASSES spectra plus noise, nodata borders; its
    classes and its mask of nodata pixels."""
    rng = np.random.default_rng(seed)
    classes = rng.integers(0, N_CLASSES, size=(H, W))
    spectra = rng.uniform(0.2, 1.0, size=(N_CLASSES, B)).astype(np.float32)
    img = spectra[classes] + rng.normal(0, 0.01, size=(H, W, B)).astype(np.float32)
    mask = np.zeros((H, W), bool)
    mask[:4], mask[:, -5:] = True, True
    img[mask] = nodata
    img[10, 10, 2] = nodata  # one band missing is enough to mask a pixel
    mask[10, 10] = True
    return img, classes, mask


def as_dataarray(img: np.ndarray, chunks: int | None = 16) -> object:
    data = np.moveaxis(img, -1, 0)  # (band, y, x), as rasters usually are
    arr = da.from_array(data, chunks=(B, chunks, chunks)) if chunks else data
    return xr.DataArray(arr, dims=("band", "y", "x"),
                        coords={"band": [f"B{i}" for i in range(B)],
                                "y": np.arange(H) * 10.0, "x": 500.0 + np.arange(W) * 10.0},
                        attrs={"crs": "EPSG:32633"}, name="reflectance")


def test_scene_classes_recovered_with_nodata_labelled_minus_one() -> None:
    img, classes, mask = make_scene()
    scene = as_dataarray(img)
    km = KMeans(N_CLASSES, random_state=0, feature_dim="band", nodata=0).fit(scene)
    labels = km.labels_
    assert isinstance(labels, xr.DataArray) and isinstance(labels.data, da.Array)  # lazy
    assert labels.dims == ("y", "x") and labels.attrs["crs"] == "EPSG:32633"
    np.testing.assert_array_equal(labels["x"], scene["x"])
    assert labels.chunks == scene.chunks[1:]  # aligned with the input: writable as is
    got = values(labels)
    assert (got[mask] == -1).all() and (got[~mask] >= 0).all()
    assert adjusted_rand_score(classes[~mask], got[~mask]) == pytest.approx(1.0)
    centres = km.cluster_centers_
    assert centres.dims == ("cluster", "band")
    assert centres["band"].values.tolist() == [f"B{i}" for i in range(B)]
    # the centres are the classes' spectra: masked zeros took no part
    assert float(centres.min()) > 0.15
    # inertia over the valid pixels only
    valid = img[~mask]
    nearest = ((valid[:, None, :] - np.asarray(centres)[None]) ** 2).sum(-1).min(1)
    assert km.inertia_ == pytest.approx(nearest.sum(), rel=1e-4)


def test_predict_transform_and_fit_predict() -> None:
    img, _, mask = make_scene()
    scene = as_dataarray(img)
    km = KMeans(N_CLASSES, random_state=0, feature_dim="band", nodata=0).fit(scene)
    pred = km.predict(scene)
    np.testing.assert_array_equal(values(pred), values(km.labels_))
    dist = km.transform(scene)
    assert dist.dims == ("y", "x", "cluster") and dist.shape == (H, W, N_CLASSES)
    d = values(dist)
    assert np.isnan(d[mask]).all() and np.isfinite(d[~mask]).all()
    # fit_predict is labels_
    again = KMeans(N_CLASSES, random_state=0, feature_dim="band", nodata=0).fit_predict(scene)
    np.testing.assert_array_equal(values(again), values(pred))


@pytest.mark.skipif(QUERY_PLANNING, reason="xarray does not read dask's query-planning "
                                           "arrays: its to_zarr/open_zarr cannot run")
def test_labels_to_zarr_through_xarray(tmp_path: Path) -> None:
    img, _, _ = make_scene()
    scene = as_dataarray(img)
    pred = KMeans(N_CLASSES, random_state=0, feature_dim="band", nodata=0).fit(scene).predict(
        scene)
    pred.to_dataset().to_zarr(tmp_path / "labels.zarr", mode="w", consolidated=False)
    back = xr.open_zarr(tmp_path / "labels.zarr", consolidated=False)["labels"]
    np.testing.assert_array_equal(back.values, values(pred))
    assert back.attrs["crs"] == "EPSG:32633"


@pytest.mark.parametrize("chunks", [None, 7, 48])
def test_results_do_not_depend_on_chunking_or_laziness(chunks: int | None) -> None:
    img, _, _ = make_scene(seed=1)
    ref = KMeans(N_CLASSES, random_state=3, feature_dim="band", nodata=0).fit(
        as_dataarray(img, chunks=16))
    km = KMeans(N_CLASSES, random_state=3, feature_dim="band", nodata=0).fit(
        as_dataarray(img, chunks=chunks))
    np.testing.assert_array_equal(values(km.labels_), values(ref.labels_))
    np.testing.assert_allclose(np.asarray(km.cluster_centers_),
                               np.asarray(ref.cluster_centers_), rtol=1e-5)
    # in-memory data (chunks=None) get bounds, dask input plain Lloyd: both inertias
    # come from float64 per-cluster sums (float32 distances, |x|^2 - 2 x.c + |c|^2, keep
    # few bits on these tight clusters: they were 1e-5 off)
    assert km.inertia_ == pytest.approx(ref.inertia_, rel=1e-9)
    lab = values(km.labels_)
    ok = lab >= 0
    C = np.asarray(km.cluster_centers_, np.float64)
    exact = float(((img[ok].astype(np.float64) - C[lab[ok]]) ** 2).sum())
    assert km.inertia_ == pytest.approx(exact, rel=1e-9)


def test_dataset_variables_are_the_features_and_4d_arrays() -> None:
    img, classes, mask = make_scene(seed=2, nodata=np.nan)
    ds = xr.Dataset({f"B{i}": (("y", "x"), img[..., i]) for i in range(B)},
                    attrs={"title": "scene"})
    km = KMeans(N_CLASSES, random_state=0, nodata=np.nan).fit(ds)
    assert km.cluster_centers_.dims == ("cluster", "variable")
    assert list(km.cluster_centers_["variable"].values) == [f"B{i}" for i in range(B)]
    got = values(km.labels_)
    assert (got[mask] == -1).all()
    assert adjusted_rand_score(classes[~mask], got[~mask]) == pytest.approx(1.0)
    # (time, y, x, band): two dates of the same scene, the band last
    stack = xr.DataArray(np.stack([img, img]), dims=("time", "y", "x", "band"))
    mb = MiniBatchKMeans(N_CLASSES, random_state=0, feature_dim="band", nodata=np.nan,
                         batch_size=512).fit(stack)
    assert mb.labels_.dims == ("time", "y", "x")
    lab = values(mb.labels_)
    np.testing.assert_array_equal(lab[0], lab[1])
    assert (lab[0][mask] == -1).all()
    assert adjusted_rand_score(classes[~mask], lab[0][~mask]) > 0.95


def test_nodata_on_plain_arrays_and_metrics_leave_masked_rows_out() -> None:
    img, classes, mask = make_scene(seed=3)
    X, y, m = img.reshape(-1, B), classes.ravel(), mask.ravel()
    km = KMeans(N_CLASSES, random_state=0, nodata=0).fit(X)
    assert isinstance(km.labels_, np.ndarray) and (km.labels_[m] == -1).all()
    lazy = KMeans(N_CLASSES, random_state=0, nodata=0).fit(da.from_array(X, chunks=500))
    np.testing.assert_array_equal(lazy.labels_.compute(), km.labels_)
    # bounded (in memory) and plain (dask input) fits, score and evaluate_model agree
    # with the float64 sum of squared differences (float32 distances were 4e-5 off on
    # these tight clusters)
    C = km.cluster_centers_.astype(np.float64)
    exact = float(((X[~m].astype(np.float64) - C[km.labels_[~m]]) ** 2).sum())
    assert km.inertia_ == pytest.approx(exact, rel=1e-9)
    assert lazy.inertia_ == pytest.approx(exact, rel=1e-9)
    # masked rows take no part in the scores
    c = metrics.contingency(y, km.labels_)
    assert c.n == int((~m).sum())
    r = metrics.evaluate_model(km, X, y)
    assert r["purity"] == pytest.approx(1.0) and r["inertia"] == pytest.approx(exact, rel=1e-9)
    assert km.score(X) == pytest.approx(-exact, rel=1e-9)
    assert (km.predict(X)[m] == -1).all()


def test_feature_dim_and_nodata_errors() -> None:
    img, _, _ = make_scene()
    scene = as_dataarray(img)
    with pytest.raises(ValueError, match="feature_dim: name the feature dimension"):
        KMeans(3).fit(scene)
    with pytest.raises(ValueError, match="feature_dim='wavelength' is not a dimension"):
        KMeans(3, feature_dim="wavelength").fit(scene)
    with pytest.raises(ValueError, match="every sample of X holds the nodata value"):
        KMeans(3, nodata=0).fit(np.zeros((10, 2)))
    with pytest.raises(ValueError, match="'nodata' parameter"):
        KMeans(3, nodata="zero").fit(np.ones((10, 2)))
    bad = img.reshape(-1, B).copy()
    bad[5, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):  # without nodata, NaN stays an error
        KMeans(3).fit(bad)


def test_zarr_store_with_nodata_compares_raw_values(tmp_path: Path) -> None:
    img, classes, mask = make_scene(seed=4)
    raw = np.rint(img.reshape(-1, B) * 200).astype(np.uint8)  # 0 stays 0: nodata
    store = io.arrays_to_dataset({"test": (raw.reshape(-1, 2, 3), classes.ravel())},
                                 tmp_path / "s.zarr", name="scene", chunk_rows=700)
    km = KMeans(N_CLASSES, random_state=0, nodata=0).fit(open_source(store, "test"))
    lab = np.asarray(km.labels_.compute())
    assert (lab[mask.ravel()] == -1).all()
    assert adjusted_rand_score(classes.ravel()[~mask.ravel()], lab[~mask.ravel()]) > 0.99


@pytest.mark.parametrize("lazy", [False, True])
def test_empty_clusters_never_move_to_nodata_rows(lazy: bool) -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(10, 0.5, size=(400, 3))
    X[::7] = -999.0  # nodata rows: by far the farthest from any centre
    init = np.array([[10.0, 10, 10], [11, 11, 11], [500, 500, 500]])  # the last: empty
    data = da.from_array(X, chunks=100) if lazy else X
    km = KMeans(3, init=init, n_init=1, nodata=-999, algorithm="lloyd",
                max_iter=5).fit(data)
    centres = np.asarray(km.cluster_centers_)
    assert np.abs(centres - 10).max() < 3, centres  # the empty one moved to a real row
    assert (values(km.labels_)[::7] == -1).all()
