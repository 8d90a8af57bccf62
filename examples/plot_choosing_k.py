"""
Choosing K: the sweep, the elbow and the silhouette
===================================================

K-means needs K. Two common guides: the *elbow* of inertia against K (where
adding clusters stops paying), and the *silhouette* (how much closer each row
is to its own cluster than to the next one, from -1 to 1: higher is better).
:func:`daskmeans.metrics.sweep` fits one model per K and records both;
:func:`daskmeans.metrics.choose_k` reads the knee (Kneedle method) and the
best silhouette. Here on synthetic blobs whose true number is known: five.
"""

# %%
# Data with five clusters
# -----------------------
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
from sklearn.datasets import make_blobs

import daskmeans
from daskmeans import metrics, plot

X, y = make_blobs(n_samples=4000, n_features=6, centers=5, cluster_std=2.0,
                  random_state=3)

# %%
# The sweep
# ---------
# One fit per K, each scored: inertia, silhouette (of 1,000 sampled rows, each
# measured against all rows, with a standard error), and, as the true labels are
# known here, purity and homogeneity.
ks = [2, 3, 4, 5, 6, 7, 8, 10, 12]
rows = metrics.sweep(X, y, ks, random_state=0, silhouette_sample_size=1000)
print(metrics.to_markdown(rows))

# %%
# What the sweep recommends
# -------------------------
choice = metrics.choose_k(rows)
print(choice["message"])

# %%
# :func:`daskmeans.plot.sweep_curves` draws the scores, inertia with its knee,
# and the silhouette with two-standard-error bars; the elbow and the silhouette
# agree on K = 5.
workdir = tempfile.TemporaryDirectory()
out = Path(workdir.name)


def show(png):
    """Show a PNG written by :mod:`daskmeans.plot` as a matplotlib figure."""
    image = plt.imread(png)
    fig = plt.figure(figsize=(image.shape[1] / 100, image.shape[0] / 100), dpi=100)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.imshow(image)
    ax.set_axis_off()


show(plot.sweep_curves(rows, out / "sweep.png"))

# %%
# How the knee was found: Kneedle scales the curve to [0, 1] and takes the K
# farthest below the chord joining its ends.
show(plot.elbow_curve([r["k"] for r in rows], [r["inertia"] for r in rows],
                      out / "elbow.png"))

# %%
# Silhouette plots
# ----------------
# One "knife" per cluster, its rows' coefficients sorted. With K = 4 two blobs
# share a cluster, whose coefficients are lower; with K = 6 a blob is cut in
# two, and the rows along the cut score near zero.
for k in (4, 5, 6):
    km = daskmeans.KMeans(k, random_state=0).fit(X)
    s = metrics.silhouette(X, km.labels_, sample_size=1000, random_state=0)
    show(plot.silhouette_plot(s.values, s.labels, out / f"silhouette-{k}.png",
                              score=s.score, standard_error=s.standard_error,
                              title=f"K = {k}: silhouette {s.score:.3f}"))
workdir.cleanup()
