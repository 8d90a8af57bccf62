"""
Digits: confusion matrix and a PCA view
=======================================

Ten clusters for ten digits, as in Jake VanderPlas' notebook: K-means never
sees the labels, yet most of its clusters are one digit each. The confusion
matrix says which digits it mixes up, and a 2-D PCA view shows why: those
digits overlap in pixel space.
"""

# %%
# Fit ten clusters
# ----------------
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
km = daskmeans.KMeans(10, n_init=4, random_state=0).fit(X)

# %%
# Each centre drawn as an 8x8 image is a recognisable digit, save one or two
# that blend two of them.
fig, axes = plt.subplots(2, 5, figsize=(8, 3.5))
mapping = metrics.infer_cluster_labels(y, km.labels_)
for ax, cluster in zip(axes.flat, plot.label_order(10, mapping), strict=True):
    ax.imshow(km.cluster_centers_[cluster].reshape(8, 8), cmap="binary")
    ax.set_title(f"cluster {cluster}: {mapping.get(cluster, '?')}")
    ax.set_axis_off()

# %%
# The confusion matrix
# --------------------
# Each cluster is named after its majority digit; the confusion matrix counts
# true digit against that name. One-to-one matching (``mapping="hungarian"``)
# forbids two clusters from taking the same digit; with K equal to the number of
# classes it is the fairer accuracy.
for how in ("majority", "hungarian"):
    print(f"accuracy ({how}): {metrics.cluster_accuracy(y, km.labels_, mapping=how):.3f}")
matrix, classes = metrics.confusion_matrix(y, km.labels_, mapping="hungarian")

fig, ax = plt.subplots(figsize=(5.5, 4.5))
ax.imshow(matrix, cmap="Blues")
for (i, j), v in np.ndenumerate(matrix):
    ax.text(j, i, str(v), ha="center", va="center", fontsize=7,
            color="white" if v > matrix.max() / 2 else "black")
ax.set_xticks(range(len(classes)), classes)
ax.set_yticks(range(len(classes)), classes)
ax.set_xlabel("predicted digit (cluster, matched one-to-one)")
ax.set_ylabel("true digit")

# %%
# The same table by cluster is :func:`daskmeans.metrics.contingency_frame`, a
# pandas DataFrame with the clusters in the order that puts the large counts on
# the diagonal:
print(metrics.contingency_frame(y, km.labels_))

# %%
# A PCA view
# ----------
# :func:`daskmeans.plot.pca_view` projects the rows on their first two principal
# components (fitted on all rows, with dask-ml) and draws a sample of them
# twice: coloured by true digit, and by cluster, with the centres. The digits the
# matrix confuses sit on top of each other in this view.
workdir = tempfile.TemporaryDirectory()
png = plot.pca_view(X, y, km.labels_, Path(workdir.name) / "pca.png",
                    centers=km.cluster_centers_, n_points=1797)
image = plt.imread(png)
fig = plt.figure(figsize=(image.shape[1] / 100, image.shape[0] / 100), dpi=100)
ax = fig.add_axes((0, 0, 1, 1))
ax.imshow(image)
ax.set_axis_off()
workdir.cleanup()
