"""
MiniBatchKMeans over K = 10 ... 256 on the digits
=================================================

The scikit-learn MNIST tutorials cluster the handwritten digits with
:class:`~sklearn.cluster.MiniBatchKMeans` for growing numbers of clusters K,
name each cluster after the digit most of its images show (its *majority
label*), and measure how often that name is right. Here is the same flow with
:class:`daskmeans.MiniBatchKMeans` on scikit-learn's bundled 8x8 digits (1,797
images, so it runs anywhere without a download): the accuracy of the majority
labels on images the model never saw, the homogeneity of the clusters, and the
centroids drawn as images.
"""

# %%
# The data
# --------
# Pixels of the digits are integers 0...16; scaled to [0, 1] they read as
# the MNIST pixels do. We keep a quarter of the images aside to measure the
# majority labels on data the clustering never saw.
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import daskmeans
from daskmeans import metrics, plot

digits = load_digits()
X = (digits.data / 16.0).astype(np.float32)
y = digits.target
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0)
print(X_train.shape, X_test.shape)

# %%
# One K, step by step
# -------------------
# Fit 64 clusters, map each cluster to its majority digit on the training
# images, then predict the clusters of the held-out images and read their
# digit through that mapping.
km = daskmeans.MiniBatchKMeans(64, random_state=0).fit(X_train)
mapping = metrics.infer_cluster_labels(y_train, km.labels_)
held_out = metrics.apply_mapping(km.predict(X_test), mapping)
print(f"held-out accuracy of the majority labels: {np.mean(held_out == y_test):.3f}")
print(f"homogeneity: {metrics.homogeneity_score(y_train, km.labels_):.3f}")

# %%
# :func:`daskmeans.metrics.evaluate` gives every score at once, from a single
# contingency table:
scores = metrics.evaluate(y_train, km.labels_)
print({k: round(v, 3) for k, v in scores.items() if isinstance(v, float)})

# %%
# The centroids as images
# -----------------------
# Each centroid is the mean of its images: drawn as an 8x8 picture, sorted by
# the digit it stands for (in red). Several clusters share a digit: they are
# its different ways of being written.
workdir = tempfile.TemporaryDirectory()
out = Path(workdir.name)


def show(png):
    """Show a PNG written by :mod:`daskmeans.plot` as a matplotlib figure."""
    image = plt.imread(png)
    fig = plt.figure(figsize=(image.shape[1] / 100, image.shape[0] / 100), dpi=100)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.imshow(image)
    ax.set_axis_off()


show(plot.centroid_grid(km.cluster_centers_, out / "centroids.png", mapping=mapping))

# %%
# The sweep over K
# ----------------
# :func:`daskmeans.metrics.sweep` fits one model per K and scores it: purity
# (the majority-label accuracy on the images it was fitted on), the accuracy on
# the held-out images, homogeneity, inertia and a sampled silhouette. More
# clusters are purer, with diminishing returns, and the held-out accuracy
# follows the purity closely: the clusters' names hold for images they never saw.
rows = metrics.sweep(X_train, y_train, [10, 16, 36, 64, 144, 256], X_test=X_test,
                     y_test=y_test, algorithm="minibatch", random_state=0,
                     silhouette_sample_size=500)
print(metrics.to_markdown(rows))
show(plot.sweep_curves(rows, out / "sweep.png"))

# %%
# At K = 256 each cluster holds five images on average: many are almost
# prototypes of one writer's digit.
best = daskmeans.MiniBatchKMeans(256, random_state=0).fit(X_train)
show(plot.centroid_grid(best.cluster_centers_, out / "centroids256.png",
                        mapping=metrics.infer_cluster_labels(y_train, best.labels_)))

# %%
# The figures were written to a temporary folder; remove it.
workdir.cleanup()
