"""Spherical (cosine) K-means of a real text corpus, TF-IDF of the standard library's
docstrings, fitted in memory and from the sparse CSR Zarr store (and from a dask array
of CSR blocks): the same labels, centres and inertia, on threads and on a LocalCluster."""

from __future__ import annotations

from pathlib import Path

import dask.array as da
import numpy as np
import pytest
import scipy.sparse as sp

from daskmeans import KMeans, open_source
from daskmeans.datasets import load_docstrings
from daskmeans.io import write_csr

from ..conftest import computed

MODULES = ["json", "tarfile", "threading", "decimal", "logging", "argparse"]


@pytest.fixture(scope="module")
def tfidf() -> tuple[sp.csr_matrix, np.ndarray]:
    from sklearn.feature_extraction.text import TfidfVectorizer

    corpus = load_docstrings(MODULES, min_chars=100)
    vectorizer = TfidfVectorizer(stop_words="english", min_df=2, max_df=0.5,
                                 token_pattern=r"(?u)\b[a-zA-Z][a-zA-Z]+\b")
    return vectorizer.fit_transform(corpus.data).astype(np.float32), corpus.target


@pytest.fixture(scope="module")
def store(tfidf: tuple[sp.csr_matrix, np.ndarray], tmp_path_factory: pytest.TempPathFactory
          ) -> Path:
    # small chunks: the fit reads many row blocks, each its own nonzero chunks
    return write_csr(tfidf[0], tmp_path_factory.mktemp("text") / "tfidf.zarr",
                     rows_per_chunk=16, nnz_per_chunk=500)


def test_corpus_is_deterministic() -> None:
    a, b = load_docstrings(MODULES), load_docstrings(MODULES)
    assert a.data == b.data and a.names == b.names and a.target_names == MODULES
    assert len(a.data) > 50 and set(a.target.tolist()) == set(range(len(MODULES)))
    assert all(len(doc) >= 200 for doc in a.data)
    assert a.names == sorted(a.names, key=lambda n: (MODULES.index(n.split(".")[0]), n))


@pytest.mark.parametrize("cache", [None, False])
def test_store_fit_equals_in_memory_fit(tfidf: tuple[sp.csr_matrix, np.ndarray], store: Path,
                                        scheduler: str, cache: bool | None) -> None:
    X, _ = tfidf
    params = {"n_clusters": len(MODULES), "metric": "cosine", "n_init": 2,
              "random_state": 0}
    memory = KMeans(**params).fit(X)
    src = open_source(store, cache=cache)
    assert src.n_blocks > 1
    stored = KMeans(**params).fit(src)
    np.testing.assert_array_equal(computed(stored.labels_), memory.labels_)
    np.testing.assert_allclose(stored.cluster_centers_, memory.cluster_centers_, rtol=1e-5,
                               atol=1e-7)
    assert stored.inertia_ == pytest.approx(memory.inertia_, rel=1e-6)
    assert stored.n_iter_ == memory.n_iter_
    np.testing.assert_array_equal(computed(stored.predict(open_source(store))),
                                  memory.labels_)


def test_dask_array_of_csr_blocks_fit_equals_in_memory_fit(
        tfidf: tuple[sp.csr_matrix, np.ndarray]) -> None:
    X, _ = tfidf
    params = {"n_clusters": len(MODULES), "metric": "cosine", "n_init": 2,
              "random_state": 0}
    memory = KMeans(**params).fit(X)
    lazy = KMeans(**params).fit(da.from_array(X, chunks=(40, -1), asarray=False))
    np.testing.assert_array_equal(computed(lazy.labels_), memory.labels_)
    assert lazy.inertia_ == pytest.approx(memory.inertia_, rel=1e-6)


def test_clusters_follow_the_modules(tfidf: tuple[sp.csr_matrix, np.ndarray]) -> None:
    """The clustering finds the topics: far above chance agreement with the modules."""
    from sklearn.metrics import adjusted_rand_score

    X, target = tfidf
    labels = KMeans(len(MODULES), metric="cosine", n_init=4, random_state=0).fit_predict(X)
    assert adjusted_rand_score(target, labels) > 0.2


def test_bisecting_from_the_store_equals_in_memory(tfidf: tuple[sp.csr_matrix, np.ndarray],
                                                   store: Path) -> None:
    from daskmeans import BisectingKMeans

    X, _ = tfidf
    memory = BisectingKMeans(4, random_state=0).fit(X)
    stored = BisectingKMeans(4, random_state=0).fit(store)
    np.testing.assert_array_equal(computed(stored.labels_), memory.labels_)
    assert stored.inertia_ == pytest.approx(memory.inertia_, rel=1e-6)


@pytest.mark.parametrize("cache", [None, False])
def test_minibatch_from_the_store_equals_in_memory(tfidf: tuple[sp.csr_matrix, np.ndarray],
                                                   store: Path, scheduler: str,
                                                   cache: bool | None) -> None:
    """The same batches (drawn over global row indices) summed in the same order: the
    same model bit for bit, the store held (here or in the workers) or streamed."""
    from daskmeans import MiniBatchKMeans

    X, _ = tfidf
    params = {"n_clusters": len(MODULES), "batch_size": 64, "max_iter": 3, "n_init": 1,
              "random_state": 0}
    memory = MiniBatchKMeans(**params).fit(X)
    stored = MiniBatchKMeans(**params).fit(open_source(store, cache=cache))
    np.testing.assert_array_equal(stored.cluster_centers_, memory.cluster_centers_)
    assert stored.n_steps_ == memory.n_steps_
    np.testing.assert_array_equal(computed(stored.labels_), memory.labels_)
