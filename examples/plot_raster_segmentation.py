"""
Segmenting an xarray raster with nodata
=======================================

A multi-band scene (a satellite image, a microscopy stack) is a cube of
(band, y, x) values; clustering its pixels by their spectra segments it into
land-cover classes. Real scenes have *nodata*: pixels outside the swath, under
a mask, or missing, often stored as NaN. Those must take no part in the fit
and get no class. This example writes a synthetic scene whose classes are
known, clusters it as an :class:`xarray.DataArray` with ``nodata=NaN``, then
with :func:`daskmeans.segmentation.segment`, which writes the label map to Zarr
beside the scene.
"""

# %%
# A synthetic scene
# -----------------
# :func:`daskmeans.io.synthetic_scene` writes, tile by tile, six bands of
# reflectance for five classes (the Voronoi cells of random seeds, each class
# with its own spectrum plus noise), NaN outside a tilted swath, and the true
# classes (-1 outside). xarray opens it as a Dataset with its coordinates.
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import xarray as xr

import daskmeans
from daskmeans import metrics
from daskmeans.io import synthetic_scene
from daskmeans.segmentation import segment

workdir = tempfile.TemporaryDirectory()
scene_path = synthetic_scene(Path(workdir.name) / "scene.zarr", 384, 384, n_classes=5,
                             nodata=np.nan, tile=128, noise=0.05, random_state=1)
scene = xr.open_zarr(scene_path, consolidated=False)
print(scene)

# %%
# Each pixel's spectrum is a row of six features, the band dimension
# (``feature_dim="band"``); pixels with NaN in any band are nodata.
reflectance = scene["reflectance"]
nodata = reflectance.isnull().any("band")
print(f"{int(nodata.sum())} of {nodata.size} pixels are nodata")

fig, axes = plt.subplots(1, 2, figsize=(10, 4.5), layout="constrained")
reflectance.sel(band=["B1", "B2", "B3"]).transpose("y", "x", "band").plot.imshow(
    ax=axes[0], robust=True)
axes[0].set_title("bands B1-B3 as RGB (nodata white)")
scene["classes"].where(scene["classes"] >= 0).plot.imshow(ax=axes[1], cmap="tab10",
                                                           add_colorbar=False)
axes[1].set_title("true classes")
for ax in axes:
    ax.tick_params(axis="x", labelrotation=30)

# %%
# Fit on the DataArray
# --------------------
# :class:`daskmeans.KMeans` takes the DataArray with ``feature_dim`` and
# ``nodata``: nodata pixels take no part in the fit, and ``labels_`` is a
# DataArray on the scene's (y, x) grid, -1 where the pixel was nodata.
km = daskmeans.KMeans(5, feature_dim="band", nodata=np.nan, random_state=0).fit(reflectance)
labels = km.labels_.compute()
print(labels.dims, labels.shape, "labels:", np.unique(labels.values))
assert bool(((labels == -1) == nodata).all())

# %%
# Against the true classes (valid pixels only), the clusters are the classes:
valid = ~nodata.values
truth = scene["classes"].values[valid]
print(f"adjusted Rand index {metrics.adjusted_rand_score(truth, labels.values[valid]):.3f}")
print(metrics.contingency_frame(truth, labels.values[valid]))

# %%
# Segment the scene, to Zarr
# --------------------------
# :func:`~daskmeans.segmentation.segment` does the same on a stored scene of any
# size: it fits on a sample of pixels drawn across all tiles (or every pixel,
# ``full=True``), labels every pixel tile by tile, and writes the label map
# with the scene's coordinates and attributes (its CRS) to a Zarr store that
# xarray opens. The store's ``nodata`` attribute (NaN here) is used by itself.
seg = segment(scene_path, 5, Path(workdir.name) / "labels.zarr", sample_size=50_000,
              random_state=0)
print(f"fitted on {seg.n_fit} pixels, nodata {seg.nodata}")
written = xr.open_zarr(seg.store, consolidated=False)
print(written)

fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), width_ratios=[1, 1.2],
                         layout="constrained")
written["labels"].where(written["labels"] >= 0).plot.imshow(ax=axes[0], cmap="tab10",
                                                            add_colorbar=False)
axes[0].set_title("segment(): labels, nodata blank")
axes[0].tick_params(axis="x", labelrotation=30)
for c, spectrum in enumerate(seg.centers):
    axes[1].plot(seg.bands, spectrum, "o-", color=plt.get_cmap("tab10")(c / 9),
                 label=f"cluster {c}")
axes[1].set_xlabel("band")
axes[1].set_ylabel("mean reflectance")
axes[1].set_title("the clusters' mean spectra")
axes[1].legend(fontsize=8)
workdir.cleanup()
