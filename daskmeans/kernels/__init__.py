"""Per-block numerical kernels: numpy (and scipy.sparse) plus compiled numba loops, no dask.

Split by algorithm, as scikit-learn splits its ``_k_means_*`` modules:

- :mod:`.common`: the centres prepared for the distance GEMM, distances, the nearest
  centre with the float64 near-tie rule, row norms, the scaling of raw stored rows,
  per-cluster sums, the farthest rows (:class:`~.common.TopM`), weighted samples, column
  moments and the SSE helpers;
- :mod:`.metric`: the Euclidean, cosine and Manhattan metrics as objects;
- :mod:`.lloyd`: a block's part of a Lloyd iteration (one or several runs at once);
- :mod:`.minibatch`: one mini-batch step, fused (assignment, count-weighted update,
  batch inertia), and a block's share of one;
- :mod:`.bounds`: a Lloyd iteration with Hamerly/Elkan/Yinyang distance bounds;
- :mod:`.init`: k-means++ and k-means|| seeding;
- :mod:`.medians`: k-medians (L1 assignment and the medians' histograms);
- :mod:`.bisect`: bisecting k-means (the tree descent and the 2-means step);
- :mod:`.silhouette`: per-cluster sums of distances to query rows;
- :mod:`.scores`: label validation, contingency tables, scoring a model, gathering rows;
- :mod:`.sparse`: the same on CSR rows (sparse–dense distances, a Lloyd pass).

The hot loops run compiled (``<name>_compiled.py`` beside each ``<name>.py``) when numba
is installed; the numpy versions are the reference the tests compare them with,
selected with ``DASKMEANS_KERNELS=numpy``. numba is imported only when a compiled
kernel is first used.

Every function here works on one in-memory block and never mutates its inputs. The
dask layer maps them over blocks and tree-reduces their partial results with ``+``,
which is associative: the result does not depend on how rows are split into blocks,
beyond float rounding.

Conventions: data ``X`` is (n, d) float32 or float64 and the GEMM runs in that dtype;
every accumulator (sums, counts, SSE, moments) is float64.
"""

from __future__ import annotations

import time


def warm_up() -> float:
    """Compile (or load from numba's on-disk cache) every specialisation a fit uses
    (float32, float64 and uint8 rows, weighted or not; plain and bounded passes; the
    k-medians L1 distances and histograms; the bisecting tree descent and 2-means
    step; the mini-batch step, on float and raw uint8 rows); returns the seconds it
    took."""
    from . import (
        bisect_compiled,
        bounds_compiled,
        common_compiled,
        lloyd_compiled,
        medians_compiled,
        minibatch_compiled,
        sparse_compiled,
    )

    t0 = time.perf_counter()
    for module in (common_compiled, lloyd_compiled, bounds_compiled, medians_compiled,
                   bisect_compiled, minibatch_compiled, sparse_compiled):
        module.warm_up()
    return time.perf_counter() - t0
