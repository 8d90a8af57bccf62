"""
Quick start: the digits in ten clusters
=======================================

Fit :class:`daskmeans.KMeans` to scikit-learn's bundled 8x8 digits, read each
cluster's majority digit as its label, and look at the ten centres as images.
The data ship with scikit-learn, so this runs without a network.
"""

# %%
# Fit
# ---
# ``KMeans`` takes numpy arrays, dask arrays and Zarr stores alike; for a numpy
# array the learned attributes are numpy arrays too.
import matplotlib.pyplot as plt
from sklearn.datasets import load_digits

from daskmeans import KMeans, metrics

digits = load_digits()
X, y = digits.data / 16.0, digits.target
km = KMeans(n_clusters=10, random_state=0).fit(X)
print(f"{km.n_iter_} iterations, inertia {km.inertia_:.1f}")

# %%
# Majority-label accuracy
# -----------------------
# Clustering does not see the labels: each cluster is given the digit most of its
# rows carry, and the accuracy counts the rows that agree with their cluster's digit.
scores = metrics.evaluate(y, km.labels_)
print(f"accuracy {scores['accuracy']:.3f}, homogeneity {scores['homogeneity']:.3f}")

# %%
# The centres as images
# ---------------------
# Each centre is the mean of its rows: an 8x8 picture of a typical digit.
mapping = metrics.infer_cluster_labels(y, km.labels_)
fig, axes = plt.subplots(1, 10, figsize=(10, 1.6))
for cluster, ax in enumerate(axes):
    ax.imshow(km.cluster_centers_[cluster].reshape(8, 8), cmap="gray_r")
    ax.set_title(str(mapping[cluster]))
    ax.axis("off")
fig.suptitle("centres, titled with their majority digit")
plt.show()
