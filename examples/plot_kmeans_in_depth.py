"""
K-means in depth: what it finds, and where it fails
===================================================

After Jake VanderPlas' *In Depth: k-Means Clustering* (Python Data Science
Handbook): K-means on well-separated blobs, then three ways it goes wrong and
why: a poor start, the wrong number of clusters, and clusters that are not
round blobs (two moons, stretched blobs).
"""

# %%
# Blobs
# -----
# Four round, equally sized blobs are exactly what K-means assumes: every point
# belongs to the nearest of K centres, and every centre is the mean of its
# points. :class:`daskmeans.KMeans` finds them.
import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import make_blobs, make_moons

import daskmeans

X, y_true = make_blobs(n_samples=300, centers=4, cluster_std=0.60, random_state=0)
km = daskmeans.KMeans(4, random_state=0).fit(X)

fig, ax = plt.subplots(figsize=(5, 4))
ax.scatter(X[:, 0], X[:, 1], c=km.labels_, s=20, cmap="viridis")
ax.scatter(*km.cluster_centers_.T, c="black", s=200, alpha=0.5, marker="X")
ax.set_title(f"K=4: inertia {km.inertia_:.1f} after {km.n_iter_} iterations")

# %%
# A poor start
# ------------
# Lloyd's iterations only ever lower the inertia, so they stop at the local
# optimum nearest to where they began. From random rows as the initial centres
# (``init="random"``, one start), some seeds leave two centres sharing a blob
# while another centre holds two blobs. k-means++ seeding and several starts
# (``n_init``) are the remedy: the best of the runs is kept.
fig, axes = plt.subplots(1, 2, figsize=(10, 4))
for ax, (name, est) in zip(axes, [
        ("init='random', n_init=1, seed 4",
         daskmeans.KMeans(4, init="random", n_init=1, random_state=4)),
        ("k-means++, n_init=10",
         daskmeans.KMeans(4, n_init=10, random_state=4))], strict=True):
    est.fit(X)
    ax.scatter(X[:, 0], X[:, 1], c=est.labels_, s=20, cmap="viridis")
    ax.scatter(*est.cluster_centers_.T, c="black", s=200, alpha=0.5, marker="X")
    ax.set_title(f"{name}\ninertia {est.inertia_:.1f}")

# %%
# The number of clusters is an input
# ----------------------------------
# K-means cannot tell how many clusters there are: asked for six, it cuts the
# blobs into six. See :ref:`sphx_glr_auto_examples_plot_choosing_k.py` for
# choosing K with the elbow and the silhouette.
km6 = daskmeans.KMeans(6, random_state=0).fit(X)
fig, ax = plt.subplots(figsize=(5, 4))
ax.scatter(X[:, 0], X[:, 1], c=km6.labels_, s=20, cmap="viridis")
ax.set_title("K=6 on four blobs")

# %%
# Boundaries are straight lines
# -----------------------------
# Every point goes to the nearest centre, so the border between two clusters
# is the straight line halfway between their centres. Two interleaved moons
# cannot be separated that way, nor can stretched (anisotropic) blobs whose
# points lie closer to a neighbouring blob's centre than to their own.
# A feature transform (a spectral embedding) or a mixture model with full
# covariances fits such data; K-means does not.
moons, _ = make_moons(300, noise=0.05, random_state=0)
stretched = X @ np.array([[0.6, -0.64], [-0.41, 0.85]])

fig, axes = plt.subplots(1, 2, figsize=(10, 4))
for ax, (name, data, k) in zip(axes, [("two moons", moons, 2),
                                      ("stretched blobs", stretched, 4)], strict=True):
    est = daskmeans.KMeans(k, random_state=0).fit(data)
    ax.scatter(data[:, 0], data[:, 1], c=est.labels_, s=20, cmap="viridis")
    ax.scatter(*est.cluster_centers_.T, c="red", s=150, marker="X")
    ax.set_title(f"{name}: K={k}")
