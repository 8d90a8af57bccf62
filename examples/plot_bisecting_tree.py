"""
Bisecting K-means and its tree
==============================

:class:`daskmeans.BisectingKMeans` starts from one cluster and splits one
cluster at a time in two with 2-means, the one with the largest inertia (or the
most rows), until there are K; scikit-learn's algorithm, with the whole tree
kept as ``tree_``. The tree says which clusters are near relatives: here on the
digits, drawn with each node's centre as an image.
"""

# %%
# Fit
# ---
import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits

import daskmeans
from daskmeans import metrics

digits = load_digits()
X = (digits.data / 16.0).astype(np.float32)
y = digits.target
bk = daskmeans.BisectingKMeans(12, random_state=0).fit(X)
km = daskmeans.KMeans(12, random_state=0).fit(X)
print(f"bisecting: inertia {bk.inertia_:.0f}, purity {metrics.purity_score(y, bk.labels_):.3f}")
print(f"K-means:   inertia {km.inertia_:.0f}, purity {metrics.purity_score(y, km.labels_):.3f}")

# %%
# Bisecting K-means gives a somewhat higher inertia than K-means at the same K
# (each split is final), but a hierarchy for free: the first splits separate
# the most different groups of digits.
tree = bk.tree_
for node in range(tree.parent.shape[0]):
    if tree.children[node, 0] >= 0:
        left, right = tree.children[node]
        print(f"node {node} ({tree.sizes[node]} rows) -> {left} ({tree.sizes[left]}) "
              f"+ {right} ({tree.sizes[right]})")

# %%
# The tree
# --------
# Leaves left to right in the order of ``labels_``; every inner node centred
# above its children. Each node shows its centre (the mean of its rows) and its
# majority digit with its share.
leaves = tree.leaves()
x = {leaf: i for i, leaf in enumerate(leaves)}
depth = {0: 0}
for node in range(1, tree.parent.shape[0]):
    depth[node] = depth[int(tree.parent[node])] + 1
for node in sorted(depth, key=depth.get, reverse=True):  # parents after children
    if tree.children[node, 0] >= 0:
        x[node] = (x[int(tree.children[node, 0])] + x[int(tree.children[node, 1])]) / 2

leaf_of_row = np.asarray(bk.labels_)
rows_of = {}
for node in reversed(range(tree.parent.shape[0])):
    if tree.children[node, 0] < 0:
        rows_of[node] = np.flatnonzero(leaf_of_row == tree.labels[node])
    else:
        rows_of[node] = np.concatenate([rows_of[int(c)] for c in tree.children[node]])

# one unit of x (a leaf) and of y (a level) the same size on the page
fig, ax = plt.subplots(figsize=(len(leaves) + 0.5, max(depth.values()) + 1.7),
                       layout="constrained")
for node, parent in enumerate(tree.parent):
    if parent >= 0:
        ax.plot([x[int(parent)], x[node]], [-depth[int(parent)], -depth[node]], color="gray",
                zorder=0)
for node in depth:
    digit_counts = np.bincount(y[rows_of[node]], minlength=10)
    share = digit_counts.max() / digit_counts.sum()
    ax.imshow(tree.centers[node].reshape(8, 8), cmap="binary",
              extent=(x[node] - 0.35, x[node] + 0.35, -depth[node] - 0.35,
                      -depth[node] + 0.35), aspect="auto", zorder=1)
    ax.text(x[node], -depth[node] - 0.42, f"{digit_counts.argmax()} ({share:.0%})",
            ha="center", va="top", fontsize=7)
ax.set_xlim(-0.6, len(leaves) - 0.4)
ax.set_ylim(-max(depth.values()) - 0.7, 0.5)
ax.set_axis_off()
ax.set_title("BisectingKMeans(12) on the digits: each node's centre and majority digit")

# %%
# Per round of splits
# -------------------
# Leaves hold disjoint rows, so every leaf that may still be split is bisected
# in the same passes over the data; ``history_`` records each round.
for h in bk.history_:
    print(h)
