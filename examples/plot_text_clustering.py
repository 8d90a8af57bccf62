"""
Clustering text: spherical K-means of TF-IDF vectors, in memory and from a sparse store
=======================================================================================

Text is clustered as sparse vectors: a TF-IDF matrix has one row per document and
one column per term, and almost every entry is zero. Spherical K-means (K-means
with cosine distance: rows and centres on the unit sphere) is the usual choice for
it. This example clusters the docstrings of a dozen modules of Python's standard
library, a corpus every Python installation has, shows the top terms of each
cluster, and fits the same model again from a sparse CSR matrix stored in Zarr,
read a block of rows at a time: the same clusters.
"""

# %%
# A corpus on every machine
# -------------------------
# :func:`daskmeans.datasets.load_docstrings` collects the docstrings of the public
# functions, classes and methods of standard-library modules, in a fixed order
# (the same documents on any machine with the same Python version). Each
# document's module is kept as a label to compare the clusters with.
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.metrics import adjusted_rand_score

import daskmeans
from daskmeans.datasets import load_docstrings
from daskmeans.io import open_csr, write_csr

modules = ["argparse", "datetime", "decimal", "email.message", "json", "logging",
           "pathlib", "tarfile", "threading", "unittest", "zipfile", "http.client"]
corpus = load_docstrings(modules, min_chars=100)
print(f"{len(corpus.data)} docstrings from {len(corpus.target_names)} modules")
print(corpus.names[0], "->", corpus.data[0].splitlines()[0])

# %%
# TF-IDF: a sparse matrix
# -----------------------
# scikit-learn's vectoriser gives a ``scipy.sparse`` CSR matrix with rows of unit
# length. Words shorter than two letters, English stop words, words in a single
# document and words in more than half of them are left out.
vectorizer = TfidfVectorizer(stop_words="english", min_df=2, max_df=0.5,
                             sublinear_tf=True, token_pattern=r"(?u)\b[a-zA-Z][a-zA-Z]+\b")
X = vectorizer.fit_transform(corpus.data).astype(np.float32)
terms = vectorizer.get_feature_names_out()
print(f"{X.shape[0]} documents x {X.shape[1]} terms, {X.nnz} stored values "
      f"({X.nnz / (X.shape[0] * X.shape[1]):.1%} of the entries)")

# %%
# Spherical K-means in memory
# ---------------------------
# ``metric="cosine"`` clusters by the angle between documents: the centres are
# dense vectors, the rows stay sparse throughout.
params = {"n_clusters": len(modules), "metric": "cosine", "n_init": 4,
          "random_state": 0}
memory = daskmeans.KMeans(**params).fit(X)
print(f"{memory.n_iter_} iterations, inertia {memory.inertia_:.3f}, adjusted Rand index "
      f"against the modules {adjusted_rand_score(corpus.target, memory.labels_):.2f}")

# %%
# The top terms of each cluster
# -----------------------------
# A centre's largest coordinates are the terms its documents share. Beside them, the
# module most of the cluster's docstrings come from.
for j in np.argsort(-np.bincount(memory.labels_, minlength=len(modules))):
    members = memory.labels_ == j
    top = terms[np.argsort(memory.cluster_centers_[j])[::-1][:7]]
    module = corpus.target_names[np.bincount(corpus.target[members]).argmax()]
    print(f"cluster {j:2d}  {members.sum():3d} docs  mostly {module:14s} "
          + " ".join(top))

# %%
# The same fit from a sparse Zarr store
# -------------------------------------
# :func:`daskmeans.io.write_csr` writes the matrix as a CSR group (``indptr``,
# ``indices``, ``data``, chunked so that a block of rows reads only its own chunks;
# see :doc:`/guide/data`), chunk by chunk. ``daskmeans ingest npz FILE`` does the
# same from a file saved by ``scipy.sparse.save_npz``. An estimator given the store
# reads it a block of rows per task, here 64 rows a chunk: on a cluster each worker
# reads its own blocks, and data larger than memory streams.
workdir = tempfile.TemporaryDirectory()
store = write_csr(X, Path(workdir.name) / "docstrings.zarr", rows_per_chunk=64,
                  nnz_per_chunk=4096)
print(f"{open_csr(store).n_chunks} row chunks")
stored = daskmeans.KMeans(**params).fit(store)
labels = np.asarray(stored.labels_.compute())
assert np.array_equal(labels, memory.labels_)
assert np.allclose(stored.cluster_centers_, memory.cluster_centers_, rtol=1e-5, atol=1e-7)
print(f"from the store: the same labels, inertia {stored.inertia_:.3f}")

# %%
# Clusters against modules
# ------------------------
# Each row of the table is a module, each column a cluster. Modules with many
# docstrings (``logging``, ``email.message``) split over several clusters by
# subtopic; modules with few long docstrings, or on close topics, share clusters.
table = np.zeros((len(modules), len(modules)), dtype=int)
np.add.at(table, (corpus.target, memory.labels_), 1)
order = np.argsort(table.argmax(axis=0))
fig, ax = plt.subplots(figsize=(7, 4.5))
ax.imshow(table[:, order], cmap="Blues")
ax.set_yticks(range(len(modules)), corpus.target_names)
ax.set_xticks(range(len(modules)), order)
ax.set_xlabel("cluster")
ax.set_title("docstrings per module and cluster")
fig.tight_layout()
plt.show()
workdir.cleanup()
