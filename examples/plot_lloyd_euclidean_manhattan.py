"""
Lloyd's algorithm: Euclidean K-means and k-medians
==================================================

The from-scratch tutorials write Lloyd's loop by hand: assign every row to its
nearest centre, move every centre to the middle of its rows, repeat until
nothing moves. They then try another distance. With the Manhattan (L1)
distance the "middle" that minimises the distances is the coordinate-wise
*median*, not the mean: that is k-medians, ``KMeans(metric="manhattan")``.
This example compares the two on the digits with a contingency matrix, the
purity of each cluster and the elbow curve.
"""

# %%
# Both fits
# ---------
# Each iteration is one pass over the data; ``history_`` records the objective
# after each of them: the sum of squared distances for K-means, the sum of L1
# distances for k-medians. Neither can go up.
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits

import daskmeans
from daskmeans import metrics, plot

digits = load_digits()
X = (digits.data / 16.0).astype(np.float32)
y = digits.target

models = {metric: daskmeans.KMeans(10, metric=metric, random_state=0).fit(X)
          for metric in ("euclidean", "manhattan")}

fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
for ax, (metric, km) in zip(axes, models.items(), strict=True):
    ax.plot([h["iteration"] for h in km.history_], [h["inertia"] for h in km.history_], "o-")
    ax.set_xlabel("iteration")
    ax.set_title(f"{metric}: {km.n_iter_} iterations")
axes[0].set_ylabel("objective")

# %%
# The centres: means and medians
# ------------------------------
# A median pixel is one of the values its rows hold, so the k-medians centres
# are sharper images than the means (many of their pixels are exactly 0).
fig, axes = plt.subplots(2, 10, figsize=(10, 2.4))
for row, (metric, km) in zip(axes, models.items(), strict=True):
    mapping = metrics.infer_cluster_labels(y, km.labels_)
    for ax, cluster in zip(row, plot.label_order(10, mapping), strict=True):
        ax.imshow(km.cluster_centers_[cluster].reshape(8, 8), cmap="binary")
        ax.set_axis_off()
    row[0].set_title(metric, loc="left", fontsize=9)

# %%
# Contingency matrix
# ------------------
# True digit against cluster. The columns are ordered so that the large counts
# form a diagonal (matched one-to-one when there are as many clusters as
# digits). A column with two large counts is a cluster that mixes two digits.
workdir = tempfile.TemporaryDirectory()
out = Path(workdir.name)


def show(png):
    """Show a PNG written by :mod:`daskmeans.plot` as a matplotlib figure."""
    image = plt.imread(png)
    fig = plt.figure(figsize=(image.shape[1] / 100, image.shape[0] / 100), dpi=100)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.imshow(image)
    ax.set_axis_off()


for metric, km in models.items():
    table = metrics.contingency(y, km.labels_)
    show(plot.contingency_heatmap(table.table, table.classes, table.clusters,
                                  out / f"contingency-{metric}.png",
                                  title=f"Contingency, {metric}"))

# %%
# Purity per cluster
# ------------------
# The purity of a cluster is the share of its rows that carry its majority
# label; the overall purity is their weighted mean, the same number as the
# majority-label accuracy.
for metric, km in models.items():
    print(metric, f"purity {metrics.purity_score(y, km.labels_):.3f}")
    print(metrics.purity_table(y, km.labels_), "\n")

# %%
# The elbow
# ---------
# The objective of the best fit for each K: it always falls as K grows, more
# slowly after the *elbow*. :func:`daskmeans.plot.elbow_curve` marks the knee
# found by the Kneedle method. The digits have no sharp elbow: the knee is a
# hint, not a verdict (see :ref:`sphx_glr_auto_examples_plot_choosing_k.py`).
ks = list(range(2, 21, 2))
inertias = [daskmeans.KMeans(k, random_state=0).fit(X).inertia_ for k in ks]
show(plot.elbow_curve(ks, inertias, out / "elbow.png"))
workdir.cleanup()
