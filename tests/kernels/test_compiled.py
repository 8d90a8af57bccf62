"""The compiled kernels as a whole: numba's on-disk cache and the warm-up."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from daskmeans import kernels
from daskmeans.kernels import (
    bisect_compiled,
    bounds_compiled,
    common_compiled,
    lloyd_compiled,
    medians_compiled,
    sparse_compiled,
)

COMPILED = (common_compiled, lloyd_compiled, bounds_compiled, medians_compiled, bisect_compiled,
            sparse_compiled)


def test_compiled_functions_are_cached_on_disk(tmp_path: Path) -> None:
    """A second process loads the compiled kernels from numba's cache instead of
    compiling them again (first call: seconds; from the cache: a fraction of that)."""
    code = """
import time, numpy as np
from daskmeans.kernels import lloyd_compiled as compiled
t0 = time.perf_counter()
compiled.lloyd_float(np.zeros((3, 2), np.float32), np.zeros((2, 2), np.float32),
                     np.zeros(2, np.float32), np.empty(0), np.empty(0), 1, 2, compiled.TILE,
                     np.empty((3, 1), np.int32), np.empty((3, 1), np.float32),
                     np.zeros((2, 2)), np.zeros(2), np.zeros(2), 1e-6)
print(time.perf_counter() - t0)
"""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    first = float(subprocess.run([sys.executable, "-c", code], env=env, check=True,
                                 capture_output=True, text=True).stdout)
    again = float(subprocess.run([sys.executable, "-c", code], env=env, check=True,
                                 capture_output=True, text=True).stdout)
    assert any(tmp_path.rglob("*.nbi"))  # numba's cache index files
    assert again < first / 3, (first, again)


def test_warm_up_compiles_every_specialisation_the_estimators_use(mnist_store: Path) -> None:
    """After :func:`warm_up`, fits of every kind on float32, float64 and uint8-store rows
    and on CSR rows (weighted or not) compile nothing more: the warm-up once compiled
    bounds for float64 lower bounds after they became float32, and every first fit paid
    for a compile."""
    from daskmeans import BisectingKMeans, KMeans, MiniBatchKMeans, open_source

    kernels.warm_up()
    dispatchers = {f"{m.__name__}.{n}": f for m in COMPILED for n, f in vars(m).items()
                   if hasattr(f, "signatures")}
    before = {n: set(f.signatures) for n, f in dispatchers.items()}
    rng = np.random.default_rng(0)
    X = rng.random((600, 16), dtype=np.float32)
    w = rng.uniform(0.5, 2, 600)
    store = open_source(mnist_store, "test")
    for rows in (X, X.astype(np.float64), store):
        weights = [None] if rows is store else [None, w]
        for sw in weights:
            KMeans(20, random_state=0, max_iter=3).fit(rows, sample_weight=sw)
            KMeans(20, random_state=0, max_iter=3, algorithm="lloyd").fit(rows, sample_weight=sw)
            KMeans(3, random_state=0, max_iter=2, metric="manhattan").fit(rows, sample_weight=sw)
            BisectingKMeans(3, random_state=0, max_iter=3).fit(rows, sample_weight=sw)
        MiniBatchKMeans(3, random_state=0, max_iter=1).fit(rows)
    for rows in (sp.csr_matrix(X), sp.csr_array(X.astype(np.float64))):  # CSR rows
        for sw in (None, w):
            km = KMeans(20, random_state=0, max_iter=3, algorithm="lloyd").fit(
                rows, sample_weight=sw)
            km.predict(rows)
            MiniBatchKMeans(3, random_state=0, max_iter=1).fit(rows, sample_weight=sw)
            BisectingKMeans(3, random_state=0, max_iter=3).fit(rows, sample_weight=sw)
    new = {n: [str(s) for s in set(f.signatures) - before[n]] for n, f in dispatchers.items()}
    assert not {n: s for n, s in new.items() if s}, new
