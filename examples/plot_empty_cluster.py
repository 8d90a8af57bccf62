"""
An empty cluster, and how Lloyd's loop recovers
===============================================

A from-scratch Lloyd loop has a trap: a centre that no row is nearest to has no
rows to average, and ``rows.mean(axis=0)`` of nothing is NaN. It happens with
a poor initialisation (a centre placed far from the data) and, on large data,
in the middle of a fit. daskmeans does what scikit-learn does: an empty cluster
is moved onto the row farthest from its current centre, the row the other
centres explain worst, and the loop goes on with K clusters.
"""

# %%
# A start with a centre nowhere near the data
# -------------------------------------------
import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import make_blobs

import daskmeans

X, _ = make_blobs(n_samples=300, centers=3, cluster_std=0.8, random_state=0)
init = np.array([[0.0, 4.0], [1.0, 1.0], [12.0, 12.0]])

# %%
# Fit with this start. ``history_`` says, per iteration, how many empty
# clusters were relocated: the third centre, in the first iteration.
km = daskmeans.KMeans(3, init=init, n_init=1).fit(X)
for h in km.history_[:4]:
    print({k: h[k] for k in ("iteration", "inertia", "n_relocated")})
print("rows per cluster:", np.bincount(km.labels_))

# %%
# Where the centres went
# ----------------------
# Left, the start: no row is nearest to the top-right centre. Middle, after one
# iteration (``max_iter=1``): the empty centre now sits on the row that was
# farthest from its centre. Right, the converged fit: three clusters again.
one_step = daskmeans.KMeans(3, init=init, n_init=1, max_iter=1).fit(X)
nearest = np.argmin(((X[:, None, :] - init[None]) ** 2).sum(axis=-1), axis=1)

fig, axes = plt.subplots(1, 3, figsize=(13, 4), sharex=True, sharey=True)
stages = [("start: one centre is empty", nearest, init),
          ("after one iteration (relocated)", one_step.labels_, one_step.cluster_centers_),
          (f"converged after {km.n_iter_} iterations", km.labels_, km.cluster_centers_)]
for ax, (title, labels, centres) in zip(axes, stages, strict=True):
    ax.scatter(X[:, 0], X[:, 1], c=labels, s=12, cmap="viridis", vmin=0, vmax=2)
    ax.scatter(*np.asarray(centres).T, c="red", s=150, marker="X")
    ax.set_title(title)

# %%
# The same holds for k-medians (``metric="manhattan"``): the empty cluster
# takes the row farthest in L1 distance.
kmed = daskmeans.KMeans(3, init=init, n_init=1, metric="manhattan").fit(X)
print("k-medians relocations per iteration:",
      [h["n_relocated"] for h in kmed.history_])
