"""Initial centres of independent runs: k-means++, random, a callable, an array, or
k-means|| (:func:`kmeans_parallel`), the samples of several runs gathered in one pass.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..engine import reductions
from ..engine.reductions import SPLIT_EVERY
from ..engine.source import ArraySource, NonFiniteError, Source
from ..kernels.common import dense, is_sparse
from ..kernels.init import kmeans_plusplus
from ..kernels.metric import EUCLIDEAN, Metric
from ..progress import ProgressCallback

log = logging.getLogger(__name__)

#: from this many clusters on, k-means++ draws :data:`LARGE_K_TRIALS` candidates per
#: centre (instead of ``2 + log k``) and the candidates of :data:`LARGE_K_BATCH`
#: centres at once, so that their distances to the sample are one GEMM (see
#: :func:`~daskmeans.kernels.init.kmeans_plusplus`): below it, the seeding is
#: scikit-learn's greedy k-means++ draw for draw.
LARGE_K = 1024
LARGE_K_TRIALS = 4
LARGE_K_BATCH = 64

#: the init samples of several ``n_init`` runs are gathered in one pass while their rows
#: together stay under this many bytes.
SAMPLES_MAX_BYTES = 256 << 20


def check_finite_rows(rows: np.ndarray, index: np.ndarray) -> None:
    """Raise :class:`NonFiniteError` naming the first row of a gathered sample that
    holds NaN or infinity (``index``: the rows' global indices)."""
    if is_sparse(rows):  # validated by scikit-learn when it came in: finite
        return
    ok = np.isfinite(rows).all(axis=1)
    if not ok.all():
        raise NonFiniteError(f"X contains NaN or infinity in row {int(index[~ok][0])}; "
                             "clean or impute the data first")


def take_samples(src: Source, idxs: Sequence[np.ndarray]
                 ) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """The rows (and weights) at each sorted index array: the union of consecutive
    arrays gathered in one pass while it stays under :data:`SAMPLES_MAX_BYTES`; each
    gets exactly the rows it would get alone."""
    row_bytes = src.d * src.dtype.itemsize
    out: list[tuple[np.ndarray, np.ndarray | None]] = []
    group: list[np.ndarray] = []
    for i, idx in enumerate(idxs):
        group.append(idx)
        rows_next = sum(g.size for g in group) + (idxs[i + 1].size if i + 1 < len(idxs) else 0)
        if i + 1 < len(idxs) and rows_next * row_bytes <= SAMPLES_MAX_BYTES:
            continue  # the next run's sample still fits in this gather
        union = group[0] if len(group) == 1 else np.unique(np.concatenate(group))
        rows, sw = reductions.take_rows(src, union)
        check_finite_rows(rows, union)
        for g in group:
            if g is union:
                out.append((rows, sw))
            else:
                pos = np.searchsorted(union, g)
                out.append((rows[pos], None if sw is None else sw[pos]))
        group = []
    return out


def training_sample(src: Source, n_rows: int, rng: np.random.Generator) -> Source:
    """``n_rows`` rows of the source drawn uniformly without replacement across all its
    blocks, in memory with their weights (one pass); the source itself when it has
    no more rows than that.

    The rows are chosen by their global indices, so the same generator gives the same
    rows whatever the chunking (an index's training set, as faiss's
    ``max_points_per_centroid`` subsamples it).
    """
    if src.n <= n_rows:
        return src
    index = np.sort(rng.choice(src.n, size=n_rows, replace=False))
    rows, weights = reductions.take_rows(src, index)
    check_finite_rows(rows, index)
    return ArraySource(rows).with_options(weights=weights)


@dataclass
class InitSpec:
    """How to initialise: ``init`` ("k-means++", "random", "k-means||", an array or a
    callable ``init(sample, k, random_state=RandomState)``) and its sizes."""

    init: Any
    n_clusters: int
    sample_size: int
    metric: Metric = EUCLIDEAN
    oversampling_factor: float = 2.0
    init_rounds: int = 5
    split_every: int = SPLIT_EVERY


def init_centers(src: Source, spec: InitSpec, rngs: Sequence[np.random.Generator],
                 seeds: Sequence[int], progress: ProgressCallback | None = None
                 ) -> list[np.ndarray]:
    """Initial centres of independent runs (one generator and seed each).

    Inits that start from a uniform sample of rows (k-means++, random, a callable)
    gather every run's sample in one pass (see :data:`SAMPLES_MAX_BYTES`); each run
    gets the rows and random draws it would get alone. ``progress`` hears of the
    phase ``"init"``: the k-means++ centres chosen of ``n_clusters``, the k-means||
    rounds done.
    """
    k, n, init = spec.n_clusters, src.n, spec.init
    if hasattr(init, "__array__") and not isinstance(init, str):
        C = np.array(init, dtype=src.dtype)
        check_centre_shape(C, k, src.d)
        if not np.isfinite(C).all():
            raise ValueError("init array contains NaN or infinity")
        Cs = [C.copy() for _ in rngs]
    elif isinstance(init, str) and init == "k-means||":
        Cs = [kmeans_parallel(src, k, rng, seed, oversampling_factor=spec.oversampling_factor,
                              rounds=spec.init_rounds, split_every=spec.split_every,
                              metric=spec.metric, progress=progress)
              for rng, seed in zip(rngs, seeds, strict=True)]
    else:
        idxs = [np.sort(rng.choice(n, size=spec.sample_size, replace=False)) for rng in rngs]
        Cs = [_from_sample(spec, sample, sw, rng, seed, src.d, progress)
              for (sample, sw), rng, seed in zip(take_samples(src, idxs), rngs, seeds,
                                                 strict=True)]
    Cs = [spec.metric.finish_centres(C) for C in Cs]  # cosine: onto the unit sphere
    return [C.astype(src.dtype, copy=False) for C in Cs]


def check_centre_shape(C: np.ndarray, k: int, d: int) -> None:
    """Initial centres (an array, or a callable's result) must be (k, d); the errors
    in scikit-learn's words (users and tests match them)."""
    if C.ndim != 2 or C.shape[0] != k:
        raise ValueError(f"The shape of the initial centers {C.shape} does not match the "
                         f"number of clusters {k}.")
    if C.shape[1] != d:
        raise ValueError(f"The shape of the initial centers {C.shape} does not match the "
                         f"number of features of the data {d}.")


def _from_sample(spec: InitSpec, sample: np.ndarray, sw: np.ndarray | None,
                 rng: np.random.Generator, seed: int, d: int,
                 progress: ProgressCallback | None = None) -> np.ndarray:
    """Initial centres drawn from a sample of rows (k-means++, random, callable)."""
    k, init = spec.n_clusters, spec.init
    if callable(init):
        C = dense(init(sample, k, random_state=np.random.RandomState(seed))).astype(
            sample.dtype, copy=False)
        check_centre_shape(C, k, d)
        return C
    if init == "random":
        p = None if sw is None else sw / sw.sum()
        return dense(sample[np.sort(rng.choice(sample.shape[0], size=k, replace=False, p=p))])
    return seed_plusplus(sample, k, rng, sw, spec.metric, progress,
                         f"k-means++ on {sample.shape[0]} rows")


def seed_plusplus(rows: np.ndarray, k: int, rng: np.random.Generator,
                  weights: np.ndarray | None, metric: Metric,
                  progress: ProgressCallback | None, detail: str) -> np.ndarray:
    """k-means++ on rows in memory, reporting the centres chosen: scikit-learn's greedy
    seeding below :data:`LARGE_K` clusters, batched with fewer candidates from there
    on (a fraction of the time, most of the quality)."""
    large = k >= LARGE_K
    report = None if progress is None else (
        lambda done, total: progress("init", done, total, detail))
    if report is not None:
        report(1, k)
    return kmeans_plusplus(rows, k, rng, weights=weights, metric=metric,
                           n_local_trials=LARGE_K_TRIALS if large else None,
                           batch=LARGE_K_BATCH if large else 1, report=report)


def kmeans_parallel(src: Source, k: int, rng: np.random.Generator, seed: int, *,
                    oversampling_factor: float = 2.0, rounds: int = 5,
                    split_every: int = SPLIT_EVERY, metric: Metric = EUCLIDEAN,
                    progress: ProgressCallback | None = None) -> np.ndarray:
    """k-means|| (Bahmani et al. 2012): ``rounds`` passes of oversampling
    ``oversampling_factor * k`` candidates each, then weighted k-means++ on the
    candidates weighted by the rows they attract (one more pass). With
    ``metric=MANHATTAN`` every distance is L1 (not squared). ``progress`` hears of
    each round, then of the k-means++ centres chosen."""
    n = src.n
    ell = oversampling_factor * k
    first = np.array([int(rng.integers(n))])
    C, _ = reductions.take_rows(src, first)
    check_finite_rows(C, first)
    C = dense(C)
    for r in range(rounds):
        ov = reductions.oversample_pass(src, C, seed=seed * 1000 + r, m=int(2 * ell) + 16,
                               split_every=split_every, metric=metric.name)
        if ov.cost <= 0:
            break
        C = np.vstack([C, ov.rows[ov.key > ov.cost / ell]])
        log.debug("k-means|| round %d: cost %.6g, %d candidates", r, ov.cost, len(C))
        if progress is not None:
            progress("init", r + 1, rounds, f"k-means|| round {r + 1}: {len(C)} candidates")
    if C.shape[0] < k:  # tiny or degenerate data: top up with random rows
        rows, _ = reductions.take_rows(src, np.sort(rng.choice(n, size=k, replace=False)))
        C = np.vstack([C, dense(rows)])
    weights = reductions.count_pass(src, C, split_every=split_every, metric=metric.name)
    weights = np.maximum(weights, 1e-12)  # unattracting candidates stay drawable last
    return seed_plusplus(C, k, rng, weights, metric, progress,
                         f"k-means++ on {len(C)} k-means|| candidates")

