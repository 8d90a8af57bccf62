"""
Object storage: fitting a store in S3 (a local server)
======================================================

Stores can live in object storage: any URL fsspec knows (``s3://``, ``gs://``,
``az://``, ``https://``), with ``storage_options`` passed to fsspec (for S3,
s3fs's ``key``, ``secret``, ``endpoint_url``...). The fit reads each block
inside its task, straight from the bucket: nothing is downloaded first. So that
this example runs anywhere, the S3 server is moto's, started on 127.0.0.1 in
this process; against AWS or MinIO only ``storage_options`` change.
"""

# %%
# Start a local S3 server
# -----------------------
# ``ThreadedMotoServer`` serves moto's in-memory S3 on a free port of the
# loopback. It accepts any credentials; a real server needs yours (or none at
# all in ``storage_options`` when they come from the environment).
import logging

import matplotlib.pyplot as plt
import numpy as np
import s3fs
from moto.server import ThreadedMotoServer
from sklearn.datasets import load_digits

import daskmeans
from daskmeans import io, metrics

werkzeug = logging.getLogger("werkzeug")  # moto's web server: one line per request
werkzeug_level = werkzeug.level
werkzeug.setLevel(logging.ERROR)
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
host, port = server.get_host_and_port()
storage_options = {"key": "testing", "secret": "testing",
                   "endpoint_url": f"http://{host}:{port}"}
fs = s3fs.S3FileSystem(**storage_options)
fs.mkdir("daskmeans-examples")

# %%
# Write a store to the bucket
# ---------------------------
# :func:`daskmeans.io.arrays_to_dataset` writes images and labels as a dataset
# store (the layout ``daskmeans ingest`` gives MNIST: a ``train`` and a ``test``
# split, each with ``images`` and ``labels``), here scikit-learn's digits as
# uint8 pixels, 300 rows a chunk. Written to a URL, the group's root metadata
# goes last: until the upload is complete, the URL does not open as a store.
digits = load_digits()
images = np.rint(digits.images * (255 / 16)).astype(np.uint8)
url = "s3://daskmeans-examples/digits.zarr"
io.arrays_to_dataset({"train": (images[:1400], digits.target[:1400]),
                      "test": (images[1400:], digits.target[1400:])},
                     url, name="digits", chunk_rows=300, storage_options=storage_options)

for path in sorted(fs.find("daskmeans-examples/digits.zarr"))[:8]:
    print(path)
print("...")

# %%
# Fit from the bucket
# -------------------
# :func:`daskmeans.open_source` opens a split of the store at the URL; every pass
# of the fit reads its chunks from the server, block by block. (A store this
# small fits the memory budget, so its decoded rows are kept in memory after
# the first pass; ``cache=False`` would read the bucket in every pass.)
source = daskmeans.open_source(url, "train", storage_options=storage_options)
km = daskmeans.KMeans(10, n_init=4, random_state=0).fit(source)
print(f"{km.n_iter_} iterations, inertia {km.inertia_:.1f}")

# %%
# :func:`daskmeans.open_dataset` gives the held-out split as lazy dask arrays,
# its pixels scaled to [0, 1] as the fit saw them.
X_test, y_test = daskmeans.open_dataset(url, "test", storage_options=storage_options)
_, y_train = daskmeans.open_dataset(url, "train", storage_options=storage_options)
mapping = metrics.infer_cluster_labels(y_train, km.labels_)
predicted = metrics.apply_mapping(km.predict(X_test), mapping)
print(f"held-out accuracy: {float((predicted == y_test).mean().compute()):.3f}")

fig, axes = plt.subplots(1, 10, figsize=(10, 1.6))
for ax, cluster in zip(axes, sorted(mapping, key=mapping.get), strict=False):
    ax.imshow(km.cluster_centers_[cluster].reshape(8, 8), cmap="binary")
    ax.set_title(str(mapping[cluster]))
    ax.set_axis_off()
fig.suptitle("centres fitted from s3://daskmeans-examples/digits.zarr")

# %%
# Stop the server
# ---------------
# Its buckets were in memory: they go with it.
server.stop()
werkzeug.setLevel(werkzeug_level)
