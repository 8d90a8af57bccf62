"""
Out of core: fitting a Zarr store larger than the memory limit
==============================================================

A fit reads its data one block per task. When the store's decoded rows fit in
the *memory budget* (a quarter of the memory available, or of the workers'
memory limits on a cluster), daskmeans holds them in memory for the whole fit;
when they do not, every pass streams the store again, chunk by chunk, and only
the centres' partial sums (K x d numbers per block) travel. This example writes
a synthetic store chunk by chunk, gives the fit a memory limit smaller than the
store, and watches the memory the fit allocates.
"""

# %%
# A store larger than the limit
# -----------------------------
# :func:`daskmeans.io.make_blobs_zarr` writes Gaussian blobs straight to Zarr,
# one chunk of rows at a time, so writing needs a few chunks of memory whatever
# the size. Here 1,200,000 rows of 32 float32 features: 146 MiB decoded.
import copy
import tempfile
import time
import tracemalloc
from pathlib import Path

import dask
import matplotlib.pyplot as plt
import numpy as np
import zarr
from distributed import Client, LocalCluster

import daskmeans
from daskmeans.engine import schedule
from daskmeans.io import make_blobs_zarr

workdir = tempfile.TemporaryDirectory()
store = make_blobs_zarr(Path(workdir.name) / "blobs.zarr", 1_200_000, 32, centers=8,
                        cluster_std=5.0, chunk_rows=20_000, random_state=0)
source = daskmeans.open_source(store)
daskmeans.KMeans(8, random_state=0).fit(zarr.open_group(store)["X"][:20_000])
print(f"{source.n} rows x {source.d} features, {source.nbytes / 2**20:.0f} MiB decoded, "
      f"in {len(range(0, source.n, 20_000))} chunks")

# %%
# A memory limit smaller than the store
# -------------------------------------
# One worker with two threads and a memory limit of 128 MiB, in this process.
# Dask's own memory management (spilling to disk, pausing a worker near its
# limit) is switched off: it measures the whole process, which here also holds
# Python, the libraries and this example, so it would pause the worker at once.
# The limit still sets daskmeans' memory budget: a quarter of it.
saved_memory_settings = copy.deepcopy(dask.config.get("distributed.worker.memory"))
dask.config.set({"distributed.worker.memory.target": False,
                 "distributed.worker.memory.spill": False,
                 "distributed.worker.memory.pause": False,
                 "distributed.worker.memory.terminate": False})
cluster = LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                       memory_limit="128MiB", dashboard_address=":0")
client = Client(cluster)
budget = schedule.memory_budget()
print(f"budget {budget / 2**20:.0f} MiB; the store is {source.nbytes / budget:.0f} times "
      f"larger: held in memory? {source.wants_cache(budget)}")

# %%
# The fit, streamed
# -----------------
# ``tracemalloc`` counts what numpy and Python allocate; a first small fit, before
# the cluster started, already did the imports and the one-off compilation of
# the kernels, so they are not counted. The estimator's ``callback`` is told
# after every iteration: we record the largest allocation of each iteration.
#
# Two fits: the default one keeps exact distance bounds for every row between
# iterations (16 bytes a row here, beside the block they belong to) so that
# late iterations skip most rows; ``algorithm="lloyd"`` keeps nothing per row
# and measures every distance in every pass. (distributed warns below that the
# first graph is large: the default fit builds every row's initial bounds here,
# in this process, and sends them with its first pass.)


def fit_measured(**params):
    peaks = []

    def record(phase, done, total, detail):
        peaks.append(tracemalloc.get_traced_memory()[1] / 2**20)
        tracemalloc.reset_peak()

    tracemalloc.start()
    start = time.perf_counter()
    km = daskmeans.KMeans(8, random_state=0, callback=record, **params).fit(source)
    seconds = time.perf_counter() - start
    tracemalloc.stop()
    print(f"{params or 'default'}: {km.n_iter_} iterations in {seconds:.1f} s, largest "
          f"allocation {max(peaks):.0f} MiB for a {source.nbytes / 2**20:.0f} MiB store")
    return km, peaks


km, bounded = fit_measured()
_, plain = fit_measured(algorithm="lloyd")

# %%
# Every iteration read all of the store, yet none held more than part of it: a
# few blocks of rows per thread and the partial sums, plus the distance bounds
# of the default fit.
fig, ax = plt.subplots(figsize=(7, 4), layout="constrained")
for i, (name, peaks) in enumerate([("default (distance bounds)", bounded),
                                   ('algorithm="lloyd"', plain)]):
    ax.bar(np.arange(1, len(peaks) + 1) + 0.4 * i - 0.2, peaks, width=0.4, label=name)
ax.axhline(source.nbytes / 2**20, color="C3", label="the store, decoded")
ax.axhline(128, color="gray", linestyle="--", label="the worker's memory limit")
ax.set_xticks(range(1, max(len(bounded), len(plain)) + 1))
ax.set_ylim(0, 1.45 * source.nbytes / 2**20)
ax.set_xlabel("iteration")
ax.set_ylabel("largest allocation (MiB)")
ax.legend(loc="upper center", ncols=2, fontsize=8)

# %%
# The true centres are in the store; each is matched by a fitted one.
true = zarr.open_group(store)["centers"][:]
gaps = ((true[:, None, :] - km.cluster_centers_[None]) ** 2).sum(-1).min(1) ** 0.5
print(f"largest distance from a true centre to a fitted one: {gaps.max():.3f}")

# %%
# Clean up: close the cluster, restore dask's memory settings, remove the store.
client.close()
cluster.close()
dask.config.set({"distributed.worker.memory": saved_memory_settings})
workdir.cleanup()
