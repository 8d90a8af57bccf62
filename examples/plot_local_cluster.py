"""
Fitting on a dask.distributed LocalCluster
==========================================

daskmeans runs on whatever dask scheduler is active: the threads of this
process by default, or a ``distributed.Client`` when one exists. Nothing in
the estimator changes. Here a small cluster of two single-threaded workers
runs in this process (``processes=False``); a real cluster (SSH, jobqueue,
Kubernetes) is used the same way, by creating its ``Client`` before the fit.
"""

# %%
# Start the cluster
# -----------------
# ``processes=False`` keeps the workers in this process (quick to start, and
# the example runs anywhere); with processes, each worker would be its own
# Python process, as on a real cluster.
import time

import dask.array as da
import matplotlib.pyplot as plt
from distributed import Client, LocalCluster

import daskmeans
from daskmeans.io import blob_centers

cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                       dashboard_address=":0")
client = Client(cluster)
print(client)

# %%
# Data in the workers
# -------------------
# A dask array of 400,000 rows in 8 blocks: overlapping blobs (standard
# deviation 6), made by the workers themselves, so the rows never travel
# through this process. The blobs' centres come from
# :func:`daskmeans.io.blob_centers`, so we know the answer.
centres = blob_centers(8, 16, seed=0)
X = da.random.default_rng(0).standard_normal((400_000, 16), chunks=(50_000, 16))
labels_true = da.random.default_rng(1).integers(0, 8, size=400_000, chunks=50_000)
X = (6 * X + da.from_array(centres)[labels_true]).astype("float32").persist()

# %%
# Fit
# ---
# Each iteration is one task per block: the blocks' partial sums (K x d numbers)
# are reduced in a tree and only they travel. The fitted centres are numpy
# arrays; ``labels_`` stays a lazy dask array, like the input.
start = time.perf_counter()
km = daskmeans.KMeans(8, random_state=0).fit(X)
print(f"{km.n_iter_} iterations in {time.perf_counter() - start:.1f} s on "
      f"{len(client.scheduler_info()['workers'])} workers")
print("labels_:", type(km.labels_).__name__, km.labels_.chunks[0][:3], "...")

# %%
# Each true centre is matched by a fitted one: the largest distance from a true
# centre to its nearest fitted centre is small against the blobs' spread (6).
gaps = ((centres[:, None, :] - km.cluster_centers_[None]) ** 2).sum(-1).min(1) ** 0.5
print(f"largest distance from a true centre to a fitted one: {gaps.max():.3f}")

# %%
# The fit's history
# -----------------
# The inertia per iteration, and the seconds each iteration took. A dask array
# runs plain Lloyd, every row measured against every centre in every pass (the
# per-row distance bounds that let later iterations skip rows are kept for numpy
# and Zarr inputs, beside their blocks).
fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
axes[0].plot([h["iteration"] for h in km.history_], [h["inertia"] for h in km.history_], "o-")
axes[0].set_ylabel("inertia")
axes[1].bar([h["iteration"] for h in km.history_], [h["seconds"] for h in km.history_])
axes[1].set_ylabel("seconds")
for ax in axes:
    ax.set_xlabel("iteration")

# %%
# Close the cluster
# -----------------
# Always close the client and the cluster: later computations of this process
# go back to dask's threads.
client.close()
cluster.close()
