"""Clustering evaluation as one distributed reduction plus formulas on a small table.

Every score here is a function of the contingency table (n_classes x n_clusters),
which :func:`contingency_matrix` builds in one pass: per-chunk ``bincount`` tables,
tree-reduced. Inputs may be numpy arrays, lists or dask arrays (lazy predictions
included: the predictions are then computed in the same pass).

Label sets are discovered in that same pass: labels must be non-negative integers
(floats with integral values are accepted); each chunk's table spans ``0..max`` of the
values it holds and the columns/rows that stay empty are dropped, so labels need not
be contiguous. Values above ~4 million fall back to a sparse per-chunk table.

The formulas follow scikit-learn's definitions exactly (natural logarithms,
arithmetic-mean NMI, ARI from the pair confusion matrix, the same edge-case values)
and agree with ``sklearn.metrics`` to 1e-12; the mutual information is
``sklearn.metrics.mutual_info_score`` itself, applied to the distributed table.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
from sklearn.metrics import mutual_info_score

from .engine import passes
from .engine.source import ArraySource, Source, as_source
from .io.stores import is_zarr
from .kernels.scores import LabelError, as_label_codes, pair_table
from .kernels.silhouette import Queries

__all__ = [
    "Contingency",
    "Knee",
    "Silhouette",
    "adjusted_rand_score",
    "apply_mapping",
    "choose_k",
    "cluster_accuracy",
    "cluster_order",
    "completeness_score",
    "confusion_matrix",
    "contingency",
    "contingency_frame",
    "contingency_matrix",
    "evaluate",
    "evaluate_model",
    "homogeneity_score",
    "infer_cluster_labels",
    "kneedle",
    "normalized_mutual_info_score",
    "order_by_label",
    "purity_score",
    "purity_table",
    "silhouette",
    "silhouette_samples",
    "silhouette_score",
    "sweep",
    "to_markdown",
    "v_measure_score",
    "write_csv",
    "write_json",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Contingency:
    """A contingency table with the label values of its rows and columns."""

    classes: np.ndarray  # (n_classes,) sorted true label values
    clusters: np.ndarray  # (n_clusters,) sorted predicted label values
    table: np.ndarray  # (n_classes, n_clusters) int64

    @property
    def n(self) -> int:
        return int(self.table.sum())


def _as_1d(a: Any, name: str) -> np.ndarray | da.Array:
    if isinstance(a, da.Array):
        if a.ndim != 1:
            raise LabelError(f"{name} must be 1-D, got shape {a.shape}")
        return a
    arr = np.asarray(a)
    if arr.ndim != 1:
        raise LabelError(f"{name} must be 1-D, got shape {arr.shape}")
    return arr


def contingency(labels_true: Any, labels_pred: Any) -> Contingency:
    """The :class:`Contingency` of two labelings, in one pass (one compute for dask)."""
    if isinstance(labels_true, Contingency):
        return labels_true
    t = _as_1d(labels_true, "labels_true")
    p = _as_1d(labels_pred, "labels_pred")
    if t.shape[0] != p.shape[0]:
        raise LabelError(
            f"labels_true and labels_pred must have the same length, got {t.shape[0]} "
            f"and {p.shape[0]}"
        )
    if isinstance(t, da.Array) or isinstance(p, da.Array):
        if not isinstance(t, da.Array):
            t = da.from_array(t, chunks=(p.chunks[0],))  # type: ignore[union-attr]
        if not isinstance(p, da.Array):
            p = da.from_array(p, chunks=(t.chunks[0],))
        classes, clusters, table = passes.contingency_pass(t, p)
    else:
        classes, clusters, table = pair_table(t, p).finish()
    return Contingency(classes, clusters, table)


def contingency_matrix(labels_true: Any, labels_pred: Any) -> np.ndarray:
    """(n_classes, n_clusters) counts, rows and columns in sorted label order.

    scikit-learn's orientation: ``C[i, j]`` counts samples of true class ``i`` (the
    i-th smallest true label) predicted in cluster ``j``.

    Examples
    --------
    >>> contingency_matrix([0, 0, 1, 2], [1, 1, 0, 0])
    array([[0, 2],
           [1, 0],
           [1, 0]])
    """
    return contingency(labels_true, labels_pred).table


# ----------------------------------------------------------------------- formulas


def _entropy(counts: np.ndarray) -> float:
    """Entropy (nats) of a labeling given its class sizes, as scikit-learn computes it."""
    pi = counts[counts > 0].astype(np.float64)
    if pi.size <= 1:
        return 0.0
    s = pi.sum()
    return float(-np.sum((pi / s) * (np.log(pi) - math.log(s))))


def _hcv(c: Contingency) -> tuple[float, float, float]:
    if c.n == 0:
        return 1.0, 1.0, 1.0
    h_c, h_k = _entropy(c.table.sum(axis=1)), _entropy(c.table.sum(axis=0))
    mi = mutual_info_score(None, None, contingency=c.table)
    h = mi / h_c if h_c else 1.0
    comp = mi / h_k if h_k else 1.0
    v = 0.0 if h + comp == 0 else 2 * h * comp / (h + comp)
    return float(h), float(comp), float(v)


def homogeneity_score(labels_true: Any, labels_pred: Any) -> float:
    """Each cluster contains only members of a single class (1.0 is perfect)."""
    return _hcv(contingency(labels_true, labels_pred))[0]


def completeness_score(labels_true: Any, labels_pred: Any) -> float:
    """All members of a class are in the same cluster (1.0 is perfect)."""
    return _hcv(contingency(labels_true, labels_pred))[1]


def v_measure_score(labels_true: Any, labels_pred: Any) -> float:
    """Harmonic mean of homogeneity and completeness."""
    return _hcv(contingency(labels_true, labels_pred))[2]


def _nmi(c: Contingency) -> float:
    nc, nk = c.table.shape
    if (nc == nk == 1) or (nc == nk == 0):
        return 1.0
    mi = mutual_info_score(None, None, contingency=c.table)
    if mi == 0:
        return 0.0
    norm = (_entropy(c.table.sum(axis=1)) + _entropy(c.table.sum(axis=0))) / 2
    return float(mi / norm)


def normalized_mutual_info_score(labels_true: Any, labels_pred: Any) -> float:
    """Mutual information normalised by the arithmetic mean of the two entropies."""
    return _nmi(contingency(labels_true, labels_pred))


def _ari(c: Contingency) -> float:
    table = c.table.astype(object)  # exact Python integers: no overflow at any n
    n = int(c.n)
    n_c = [int(v) for v in table.sum(axis=1)]
    n_k = [int(v) for v in table.sum(axis=0)]
    sum_sq = int((table**2).sum()) if table.size else 0
    tp = sum_sq - n
    fp = int((table @ np.array(n_k, dtype=object)).sum()) - sum_sq if table.size else 0
    fn = int((table.T @ np.array(n_c, dtype=object)).sum()) - sum_sq if table.size else 0
    tn = n * n - fp - fn - sum_sq
    if fn == 0 and fp == 0:
        return 1.0
    return 2.0 * (tp * tn - fn * fp) / ((tp + fn) * (fn + tn) + (tp + fp) * (fp + tn))


def adjusted_rand_score(labels_true: Any, labels_pred: Any) -> float:
    """Rand index adjusted for chance (1.0 perfect, ~0 random, may be negative)."""
    return _ari(contingency(labels_true, labels_pred))


def _majority(c: Contingency) -> dict[int, int]:
    # argmax returns the first maximum: rows are sorted, so ties go to the smallest label
    best = np.argmax(c.table, axis=0) if c.table.size else np.empty(0, int)
    return {int(k): int(c.classes[b]) for k, b in zip(c.clusters, best, strict=True)}


def infer_cluster_labels(labels_true: Any, labels_pred: Any) -> dict[int, int]:
    """Map each cluster to its majority true label (ties: the smallest label).

    Returns ``{cluster: label}``. Learn it on training data and apply it to new
    predictions with :func:`apply_mapping` or ``cluster_accuracy(..., mapping=dict)``.

    Examples
    --------
    >>> infer_cluster_labels([3, 3, 5, 5, 5], [0, 0, 1, 1, 0])
    {0: 3, 1: 5}
    """
    return _majority(contingency(labels_true, labels_pred))


def purity_score(labels_true: Any, labels_pred: Any, per_cluster: bool = False) -> Any:
    """Fraction of samples in their cluster's majority class.

    With ``per_cluster=True`` returns ``(purity, per_cluster_purity)`` where the array
    is aligned with the sorted cluster labels.
    """
    c = contingency(labels_true, labels_pred)
    if c.n == 0:
        raise LabelError("purity is undefined for empty labelings")
    top = c.table.max(axis=0)
    score = float(top.sum() / c.n)
    if per_cluster:
        return score, top / c.table.sum(axis=0)
    return score


def order_by_label(clusters: Iterable[int], mapping: dict[int, int] | None) -> list[int]:
    """``clusters`` sorted by their label in ``mapping`` (clusters it does not map go
    last), ties by cluster id: the order of :func:`daskmeans.plot.centroid_grid`, of
    :func:`cluster_order` and of the contingency figures.

    Examples
    --------
    >>> order_by_label([0, 1, 2, 3], {0: 7, 1: 2, 3: 2})
    [1, 3, 0, 2]
    """
    big = np.iinfo(np.int64).max
    return sorted((int(k) for k in clusters),
                  key=lambda k: (big if not mapping else mapping.get(k, big), k))


def cluster_order(labels_true: Any, labels_pred: Any = None, *,
                  mapping: str | dict[int, int] = "auto") -> np.ndarray:
    """Cluster ids in the order that puts a contingency table's large counts on its
    diagonal: sorted by the label each cluster is mapped to (:func:`order_by_label`).

    ``mapping="auto"`` matches clusters to labels one-to-one (Hungarian) when there are
    as many clusters as classes (a permutation: the diagonal holds the best matching)
    and by majority label otherwise (clusters of the same label side by side);
    ``"majority"``, ``"hungarian"`` or a dict choose. ``labels_true`` may be a
    :class:`Contingency` (then ``labels_pred`` is not needed).

    Returns
    -------
    (n_clusters,) int64 cluster ids

    Examples
    --------
    >>> cluster_order([0, 0, 1, 1, 2], [2, 2, 0, 0, 1]).tolist()
    [2, 0, 1]
    """
    c = contingency(labels_true, labels_pred)
    if mapping == "auto":
        mapping = "hungarian" if c.clusters.size == c.classes.size else "majority"
    return np.array(order_by_label(c.clusters, _mapping_for(c, mapping)), dtype=np.int64)


def _ordered(c: Contingency, order: str | dict[int, int]) -> np.ndarray:
    if isinstance(order, dict):
        return cluster_order(c, mapping=order)
    if order not in ("auto", "majority", "hungarian", "sorted"):
        raise ValueError("order must be 'auto', 'majority', 'hungarian', 'sorted' or a dict, "
                         f"got {order!r}")
    return c.clusters if order == "sorted" else cluster_order(c, mapping=order)


def _pandas(what: str) -> Any:
    try:
        import pandas as pd
    except ImportError as e:  # pragma: no cover - pandas is present where tests run
        raise ImportError(f"{what} returns a pandas DataFrame: install pandas (or use "
                          "metrics.contingency, which returns numpy arrays)") from e
    return pd


def contingency_frame(labels_true: Any, labels_pred: Any = None, *,
                      order: str | dict[int, int] = "auto") -> Any:
    """The contingency table as a pandas DataFrame: true labels x clusters.

    Rows are the true labels (sorted), columns the clusters in :func:`cluster_order`
    (``order`` is its ``mapping``: ``"auto"``, ``"majority"``, ``"hungarian"``, a dict,
    or ``"sorted"`` for cluster id order), so the large counts run down the diagonal.
    One pass over the labels (one compute for dask input); needs pandas.

    Returns
    -------
    DataFrame of shape (n_classes, n_clusters), int64 counts; index named
    ``"true label"``, columns named ``"cluster"``

    Examples
    --------
    >>> contingency_frame([0, 0, 1, 1, 1], [5, 5, 3, 3, 5])  # doctest: +NORMALIZE_WHITESPACE
    cluster     5  3
    true label
    0           2  0
    1           1  2
    """
    pd = _pandas("contingency_frame")
    c = contingency(labels_true, labels_pred)
    cols = _ordered(c, order)
    pos = np.searchsorted(c.clusters, cols)
    return pd.DataFrame(c.table[:, pos], index=pd.Index(c.classes, name="true label"),
                        columns=pd.Index(cols, name="cluster"))


def purity_table(labels_true: Any, labels_pred: Any = None, *,
                 order: str | dict[int, int] = "auto") -> Any:
    """Per-cluster purity as a pandas DataFrame, one row per cluster.

    Columns: ``size`` (samples in the cluster), ``label`` (its majority true label;
    ties: the smallest), ``count`` (samples of that label in it) and ``purity``
    (``count / size``). Rows in :func:`cluster_order` (``order`` as in
    :func:`contingency_frame`). The overall purity (:func:`purity_score`) is
    ``count.sum() / size.sum()``. One pass over the labels; needs pandas.

    Examples
    --------
    >>> purity_table([0, 0, 1, 1, 1], [5, 5, 3, 3, 5])  # doctest: +NORMALIZE_WHITESPACE
             size  label  count    purity
    cluster
    5           3      0      2  0.666667
    3           2      1      2  1.000000
    """
    pd = _pandas("purity_table")
    c = contingency(labels_true, labels_pred)
    if c.n == 0:
        raise LabelError("purity is undefined for empty labelings")
    cols = _ordered(c, order)
    t = c.table[:, np.searchsorted(c.clusters, cols)]
    size, top = t.sum(axis=0), t.max(axis=0)
    return pd.DataFrame({"size": size, "label": c.classes[np.argmax(t, axis=0)],
                         "count": top, "purity": top / size},
                        index=pd.Index(cols, name="cluster"))


def _mapping_for(c: Contingency, mapping: str | dict[int, int]) -> dict[int, int]:
    if isinstance(mapping, dict):
        return mapping
    if mapping == "majority":
        return _majority(c)
    if mapping == "hungarian":
        from scipy.optimize import linear_sum_assignment

        rows, cols = linear_sum_assignment(-c.table)
        return {int(c.clusters[j]): int(c.classes[i]) for i, j in zip(rows, cols, strict=True)}
    raise ValueError(f"mapping must be 'majority', 'hungarian' or a dict, got {mapping!r}")


def _mapped_correct(c: Contingency, mapping: dict[int, int]) -> int:
    pos = {int(v): i for i, v in enumerate(c.classes)}
    total = 0
    for j, k in enumerate(c.clusters):
        lab = mapping.get(int(k))
        if lab is not None and lab in pos:
            total += int(c.table[pos[lab], j])
    return total


def cluster_accuracy(
    labels_true: Any, labels_pred: Any, mapping: str | dict[int, int] = "majority"
) -> float:
    """Accuracy after mapping clusters to labels.

    ``mapping``: ``"majority"`` (each cluster -> its majority label, learned on these
    labels; equals purity), ``"hungarian"`` (one-to-one assignment maximising the
    matches; clusters left unmatched count as wrong), or a ``{cluster: label}`` dict
    learned elsewhere (e.g. on the training split); unmapped clusters count as wrong.
    """
    c = contingency(labels_true, labels_pred)
    if c.n == 0:
        raise LabelError("accuracy is undefined for empty labelings")
    return _mapped_correct(c, _mapping_for(c, mapping)) / c.n


def confusion_matrix(
    labels_true: Any, labels_pred: Any, mapping: str | dict[int, int] = "majority"
) -> tuple[np.ndarray, np.ndarray]:
    """Confusion matrix of the mapped predictions, and its label order.

    Returns ``(matrix, labels)``: ``matrix[i, j]`` counts samples of true label
    ``labels[i]`` predicted as ``labels[j]`` after mapping (unmapped clusters are left
    out).
    """
    c = contingency(labels_true, labels_pred)
    m = _mapping_for(c, mapping)
    labels = np.unique(np.concatenate([c.classes, np.array(list(m.values()), dtype=np.int64)]))
    pos = {int(v): i for i, v in enumerate(labels)}
    out = np.zeros((labels.size, labels.size), dtype=np.int64)
    for j, k in enumerate(c.clusters):
        lab = m.get(int(k))
        if lab is None:
            continue
        for i, t in enumerate(c.classes):
            out[pos[int(t)], pos[lab]] += c.table[i, j]
    return out, labels


def apply_mapping(labels_pred: Any, mapping: dict[int, int], unknown: int = -1) -> Any:
    """Map cluster ids to labels (lazily for dask input); unknown clusters -> ``unknown``."""
    keys = np.array(sorted(mapping), dtype=np.int64)
    vals = np.array([mapping[k] for k in keys], dtype=np.int64)

    def _map(block: np.ndarray) -> np.ndarray:
        idx = np.searchsorted(keys, block)
        idx = np.clip(idx, 0, max(len(keys) - 1, 0))
        hit = keys[idx] == block if len(keys) else np.zeros(block.shape, bool)
        return np.where(hit, vals[idx] if len(keys) else unknown, unknown)

    if isinstance(labels_pred, da.Array):
        return da.map_blocks(_map, labels_pred, dtype=np.int64)
    return _map(np.asarray(labels_pred))


def evaluate(
    labels_true: Any, labels_pred: Any, mapping: str | dict[int, int] = "majority"
) -> dict[str, Any]:
    """Every score from one contingency table (one pass, one compute for dask input).

    Returns a dict with n_samples, n_classes, n_clusters, accuracy (with ``mapping``),
    accuracy_hungarian, purity, homogeneity, completeness, v_measure,
    adjusted_rand, normalized_mutual_info, and the mapping used.

    ``accuracy_hungarian`` (clusters matched to labels one-to-one) is ``None`` when there
    are more clusters than classes: the matching then leaves ``n_clusters - n_classes``
    clusters without a label and counts their samples as wrong (0.07 for K=256 on
    MNIST), which says nothing about the clustering. ``accuracy`` with the majority
    mapping (= ``purity`` when learned on these labels) is the score for large K.

    Examples
    --------
    >>> r = evaluate([0, 0, 1, 1], [1, 1, 0, 0])
    >>> r["accuracy"], r["homogeneity"], r["adjusted_rand"]
    (1.0, 1.0, 1.0)
    """
    return _report(contingency(labels_true, labels_pred), mapping)


def evaluate_model(
    model: Any, X: Any, labels_true: Any, mapping: str | dict[int, int] = "majority"
) -> dict[str, Any]:
    """:func:`evaluate` of a fitted model's clusters on X, plus its ``inertia`` on X.

    One pass over X (one compute for dask input): each chunk is assigned once and gives
    both its contingency counts and its squared distances, where ``evaluate(y,
    model.predict(X))`` and ``-model.score(X)`` would read X twice.

    Parameters
    ----------
    model : fitted :class:`daskmeans.KMeans` or :class:`daskmeans.MiniBatchKMeans`
    X : (n_samples, n_features) numpy array, dask array, Zarr array or store path
    labels_true : (n_samples,) true labels (numpy or dask)
    mapping : as :func:`evaluate` (e.g. the mapping inferred on the training split)

    Examples
    --------
    >>> import numpy as np
    >>> from daskmeans import KMeans
    >>> X = np.array([[0.0], [0.1], [5.0], [5.2]])
    >>> km = KMeans(2, random_state=0).fit(X)
    >>> r = evaluate_model(km, X, [7, 7, 9, 9])
    >>> r["accuracy"], round(r["inertia"], 3)
    (1.0, 0.025)
    """
    scored = model._scored(X, labels_true=_as_1d(labels_true, "labels_true"))
    assert scored.table is not None
    return {**_report(Contingency(*scored.table.finish()), mapping), "inertia": scored.sse}


def _report(c: Contingency, mapping: str | dict[int, int]) -> dict[str, Any]:
    if c.n == 0:
        raise LabelError("evaluate needs at least one sample")
    h, comp, v = _hcv(c)
    m = _mapping_for(c, mapping)
    return {
        "n_samples": c.n,
        "n_classes": int(c.classes.size),
        "n_clusters": int(c.clusters.size),
        "accuracy": _mapped_correct(c, m) / c.n,
        "accuracy_hungarian": (_mapped_correct(c, _mapping_for(c, "hungarian")) / c.n
                               if c.clusters.size <= c.classes.size else None),
        "purity": float(c.table.max(axis=0).sum() / c.n),
        "homogeneity": h,
        "completeness": comp,
        "v_measure": v,
        "adjusted_rand": _ari(c),
        "normalized_mutual_info": _nmi(c),
        "mapping": m,
    }


# ----------------------------------------------------------------------- silhouette

#: bytes of the per-cluster distance sums (k x queries, float64) and of the float64
#: query rows one exact-silhouette pass carries; more queries go in further passes.
SILHOUETTE_PASS_BYTES = 32 << 20


@dataclass(frozen=True)
class Silhouette:
    """Silhouette coefficients of a sample of rows (of every row when exact).

    ``values[j]`` is the silhouette of row ``index[j]`` measured against ALL rows:
    ``(b - a) / max(a, b)`` with ``a`` the mean distance to the other rows of its
    cluster and ``b`` the smallest mean distance to the rows of another cluster (0 for
    a row alone in its cluster), as scikit-learn defines it.
    """

    score: float  #: mean of ``values``: the mean silhouette (estimated from the sample)
    standard_error: float  #: of ``score`` as an estimate of the all-rows mean; 0 if exact
    n_samples: int  #: rows in the data
    index: np.ndarray  #: (m,) sorted rows the values belong to
    values: np.ndarray  #: (m,) their silhouette coefficients
    labels: np.ndarray  #: (m,) their clusters
    a: np.ndarray  #: (m,) mean distance to the other rows of the own cluster
    b: np.ndarray  #: (m,) smallest mean distance to the rows of another cluster

    @property
    def exact(self) -> bool:
        """True when every row is in the sample (``score`` is the exact mean)."""
        return int(self.index.size) == self.n_samples


def _metric_source(X: Any) -> Any:
    from sklearn.utils import check_array

    if isinstance(X, Source | da.Array | str | Path) or is_zarr(X):
        return as_source(X)
    return as_source(check_array(X, dtype=[np.float64, np.float32]))


def silhouette(X: Any, labels: Any, *, sample_size: int | None = None,
               random_state: int | np.random.Generator | None = None) -> Silhouette:
    """Silhouette coefficients of every row (exact) or of a random sample of rows,
    each measured against ALL rows; the sample's mean estimates the mean silhouette.

    Exact (``sample_size=None``, or at least the number of rows): the values equal
    ``sklearn.metrics.silhouette_samples`` (to ~1e-12). This is O(n^2 d) arithmetic
    and needs the rows in memory: lazy X (dask, Zarr) is read into memory once, then
    every row's distances to all rows are summed per cluster, ``SILHOUETTE_PASS_BYTES``
    worth of query rows per pass. Use it on data that fits (~10^4-10^5 rows).

    Sampled (``sample_size=m``): ``m`` rows are drawn uniformly without replacement,
    ``np.sort(np.random.default_rng(random_state).choice(n, m, replace=False))``, so
    the sample depends only on ``n``, ``m`` and ``random_state``, never on the
    chunking. One pass gathers them (none for numpy input), one distributed pass
    (:func:`daskmeans.engine.passes.cluster_distance_pass`) sums, in float64, their distances
    to every row per cluster: each sampled row's a(i), b(i) and s(i) are exact, only
    the mean is estimated. O(m n d); ``standard_error`` is ``std(values, ddof=1) /
    sqrt(m) * sqrt(1 - m / n)`` (simple random sampling without replacement).
    scikit-learn's ``silhouette_score(sample_size=m)`` instead measures the sample
    against itself, which biases a(i) and b(i) for small samples.

    Why not ``sklearn.metrics.silhouette_samples``: it needs X in one process's memory;
    this runs as tree-reduced passes over any source (numpy, dask, Zarr) and a cluster.

    Parameters
    ----------
    X : (n_samples, n_features) numpy array, dask array, Zarr array, store path or
        :func:`daskmeans.open_source` source
    labels : (n_samples,) cluster of each row: numpy (any values), or dask
        (non-negative integers, checked inside the passes)
    sample_size : rows to sample (>= 2), or None for all rows (exact)
    random_state : seed of the sample (unused when exact)

    Returns
    -------
    :class:`Silhouette` (values, labels, a, b of shape (m,), score, standard_error)

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[0.0], [1.0], [9.0], [10.0], [11.0]])
    >>> s = silhouette(X, [0, 0, 1, 1, 1])
    >>> np.round(s.values, 4).tolist(), round(s.score, 4), s.exact
    ([0.9, 0.8889, 0.8235, 0.8947, 0.8571], 0.8729, True)
    >>> r = silhouette(X, [0, 0, 1, 1, 1], sample_size=3, random_state=0)
    >>> r.index.tolist(), np.round(r.values, 4).tolist()
    ([2, 3, 4], [0.8235, 0.8947, 0.8571])
    """
    src = _metric_source(X)
    lab, classes = _silhouette_labels(labels, src.n)
    n = src.n
    if sample_size is not None and (isinstance(sample_size, bool)
                                    or not isinstance(sample_size, int | np.integer)
                                    or sample_size < 2):
        raise ValueError(f"sample_size must be an integer >= 2 or None, got {sample_size!r}")
    if sample_size is not None and sample_size < n:
        index = _sample_index(n, int(sample_size), random_state)
        queries = Queries(passes.gather_pass(src, index).rows, index)
        return _sampled_silhouette(src, lab, classes, queries)
    index = np.arange(n, dtype=np.int64)  # exact: every row, in memory
    if not isinstance(src, ArraySource) or isinstance(lab, da.Array):
        got = passes.gather_pass(src, index, {"labels": lab})  # lazy input read once
        src, lab = ArraySource(got.rows), got.values["labels"]
        if classes is None:
            classes, lab = np.unique(as_label_codes(lab, "labels"), return_inverse=True)
            _check_n_labels(classes.size, n)
    assert classes is not None
    per_pass = max(1, SILHOUETTE_PASS_BYTES // (8 * max(classes.size, src.d)))
    parts = [passes.cluster_distance_pass(
        src, lab, Queries(src.X[a:a + per_pass], index[a:a + per_pass]))
        for a in range(0, n, per_pass)]
    values, a, b = _silhouette_values(np.concatenate([p.sums for p in parts], axis=1),
                                      parts[0].counts, np.asarray(lab))
    return Silhouette(float(values.mean()), 0.0, n, index, values, classes[lab], a, b)


def _silhouette_labels(labels: Any, n: int) -> tuple[Any, np.ndarray | None]:
    """(codes, classes): numpy labels encoded 0..k-1 (any values, checked now); dask
    labels as they are (non-negative integers, checked in the passes), classes None."""
    lab = _as_1d(labels, "labels")
    if lab.shape[0] != n:
        raise LabelError(f"labels must have one entry per row of X, got {lab.shape[0]} "
                         f"labels for {n} rows")
    if isinstance(lab, da.Array):
        return lab, None
    classes, codes = np.unique(lab, return_inverse=True)
    _check_n_labels(classes.size, n)
    return codes.astype(np.int64), classes


def _sample_index(n: int, m: int, random_state: Any) -> np.ndarray:
    """The documented sample: ``m`` of ``n`` rows, uniform without replacement, sorted."""
    rng = np.random.default_rng(random_state)
    return np.sort(rng.choice(n, size=m, replace=False)).astype(np.int64)


def _sampled_silhouette(src: Any, lab: Any, classes: np.ndarray | None,
                        queries: Queries) -> Silhouette:
    """One distributed pass: the queries' distances to every row, per cluster."""
    dist = passes.cluster_distance_pass(src, lab, queries)
    if classes is None:
        _check_n_labels(int((dist.counts > 0).sum()), src.n)
    values, a, b = _silhouette_values(dist.sums, dist.counts, dist.own)
    m, n = values.size, src.n
    se = float(np.std(values, ddof=1) / math.sqrt(m) * math.sqrt(1 - m / n))
    return Silhouette(float(values.mean()), se, n, queries.index, values,
                      dist.own if classes is None else classes[dist.own], a, b)


def _check_n_labels(n_labels: int, n: int) -> None:
    if not 2 <= n_labels <= n - 1:
        raise ValueError(f"labels must hold 2 to n_samples - 1 = {n - 1} distinct values "
                         f"for a silhouette, got {n_labels}")


def _silhouette_values(sums: np.ndarray, counts: np.ndarray, own: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """s, a, b of each query from its per-cluster distance sums (k, m), the cluster
    sizes (k,) and its own cluster (m,), as scikit-learn computes them."""
    cols = np.arange(own.size)
    with np.errstate(divide="ignore", invalid="ignore"):
        a = sums[own, cols] / (counts[own] - 1)
        means = np.where(counts[:, None] > 0, sums / np.maximum(counts, 1)[:, None], np.inf)
        means[own, cols] = np.inf
        b = means.min(axis=0)
        s = (b - a) / np.maximum(a, b)
    return np.nan_to_num(s), a, b


def silhouette_samples(X: Any, labels: Any) -> np.ndarray:
    """(n_samples,) silhouette coefficient of every row, exact: equal to
    ``sklearn.metrics.silhouette_samples`` (Euclidean). O(n^2 d); see :func:`silhouette`.

    Examples
    --------
    >>> silhouette_samples([[0.0], [1.0], [9.0], [10.0]], [0, 0, 1, 1]).round(4).tolist()
    [0.8947, 0.8824, 0.8824, 0.8947]
    """
    return silhouette(X, labels).values


def silhouette_score(X: Any, labels: Any, *, sample_size: int | None = None,
                     random_state: int | np.random.Generator | None = None) -> float:
    """Mean silhouette coefficient: exact (``sample_size=None``, equal to
    ``sklearn.metrics.silhouette_score``) or estimated from ``sample_size`` random rows
    measured against ALL rows (:func:`silhouette`, which also gives its standard error).

    Examples
    --------
    >>> round(silhouette_score([[0.0], [1.0], [9.0], [10.0]], [0, 0, 1, 1]), 4)
    0.8885
    """
    return silhouette(X, labels, sample_size=sample_size, random_state=random_state).score


# ----------------------------------------------------------------------- the K sweep


def sweep(
    X: Any,
    y: Any,
    ks: Iterable[int] = (10, 16, 36, 64, 144, 256),
    *,
    X_test: Any = None,
    y_test: Any = None,
    algorithm: str = "lloyd",
    callback: Any = None,
    meta: dict[str, Any] | None = None,
    silhouette_sample_size: int | None = 1000,
    **estimator_params: Any,
) -> list[dict[str, Any]]:
    """Fit K-means for each K and score it: the tutorials' table.

    Each row starts with what the table was made from: the entries of ``meta`` (the
    CLI records ``dataset``, ``split`` and ``heldout_split``), ``algorithm`` and
    ``seed`` (the ``random_state`` given, or None); then k, inertia, silhouette and
    silhouette_se, homogeneity, completeness, purity, heldout_accuracy (only with
    ``X_test``), n_iter, seconds (fit + evaluation).

    ``silhouette`` is estimated from ``silhouette_sample_size`` rows measured against
    all rows (:func:`silhouette`; the same rows for every K, drawn with the
    ``random_state`` given, gathered once), ``silhouette_se`` its standard error: one
    more pass over X per K, O(sample x n x d) arithmetic in float64. ``None`` (or 0)
    leaves both out; a sample of at least the number of rows gives the exact value.

    ``purity`` is the majority accuracy on the split the model was fitted on (each
    cluster read as its majority label, learned on these very labels); it rises with K
    by construction. ``heldout_accuracy`` applies that cluster -> label mapping to
    ``X_test``'s predictions: the honest number.

    ``algorithm`` is ``"lloyd"`` (:class:`daskmeans.KMeans`), ``"minibatch"``
    (:class:`daskmeans.MiniBatchKMeans`) or ``"bisecting"``
    (:class:`daskmeans.BisectingKMeans`); other keywords go to the estimator.
    ``callback(row)`` is called after each K (progress reporting).

    Examples
    --------
    >>> import tempfile
    >>> from sklearn.datasets import make_blobs
    >>> X, y = make_blobs(600, n_features=4, centers=3, random_state=0)
    >>> rows = sweep(X[:400], y[:400], [2, 3], X_test=X[400:], y_test=y[400:],
    ...              random_state=0, silhouette_sample_size=None)
    >>> [(r["k"], round(r["purity"], 2), round(r["heldout_accuracy"], 2)) for r in rows]
    [(2, 0.68, 0.65), (3, 1.0, 1.0)]
    >>> with tempfile.TemporaryDirectory() as d:
    ...     print(write_csv(rows, f"{d}/sweep.csv").read_text().splitlines()[0][:22])
    algorithm,seed,k,inert
    """
    from .cluster import BisectingKMeans, KMeans, MiniBatchKMeans

    est_cls = {"lloyd": KMeans, "minibatch": MiniBatchKMeans,
               "bisecting": BisectingKMeans}.get(algorithm)
    if est_cls is None:
        raise ValueError(f"algorithm must be 'lloyd', 'minibatch' or 'bisecting', got "
                         f"{algorithm!r}")
    if (X_test is None) != (y_test is None):
        raise ValueError("X_test and y_test must be given together")
    if meta is not None and "k" in meta:
        raise ValueError(f"meta must not hold the key 'k', got {meta!r}")
    seed = estimator_params.get("random_state")
    head = {**(meta or {}), "algorithm": algorithm,
            "seed": seed if seed is None or isinstance(seed, int | np.integer) else repr(seed)}
    sil = _SweepSilhouette(X, silhouette_sample_size, seed)
    rows = []
    for k in ks:
        t0 = time.perf_counter()
        est = est_cls(n_clusters=int(k), **estimator_params).fit(X)
        c = contingency(y, est.labels_)
        h, comp, _ = _hcv(c)
        row: dict[str, Any] = {
            **head,
            "k": int(k),
            "inertia": float(est.inertia_),
            **sil.row(est.labels_, c.clusters.size),
            "homogeneity": h,
            "completeness": comp,
            "purity": float(c.table.max(axis=0).sum() / c.n),
        }
        if X_test is not None:
            row["heldout_accuracy"] = cluster_accuracy(y_test, est.predict(X_test),
                                                       _majority(c))
        row["n_iter"] = int(est.n_iter_)
        row["seconds"] = time.perf_counter() - t0
        log.info("sweep K=%d: %s", k, row)
        rows.append(row)
        if callback is not None:
            callback(row)
    return rows


@dataclass(frozen=True)
class Knee:
    """The Kneedle analysis of a decreasing convex curve (e.g. inertia against K)."""

    knee: float | None  #: x value of the knee, or None when the curve has none
    x: np.ndarray  #: (n,) the x values, sorted
    y: np.ndarray  #: (n,) the y values in that order
    x_norm: np.ndarray  #: (n,) x scaled to [0, 1]
    y_norm: np.ndarray  #: (n,) y scaled to [0, 1]
    difference: np.ndarray  #: (n,) ``1 - x_norm - y_norm``: height below the chord
    threshold: float | None  #: the threshold the knee's difference fell below


def kneedle(x: Sequence[float], y: Sequence[float], *, sensitivity: float = 1.0) -> Knee:
    """The knee of a decreasing convex curve by the Kneedle method (Satopää, Albrecht,
    Irwin and Raghavan, "Finding a 'Kneedle' in a Haystack: Detecting Knee Points in
    System Behavior", ICDCS Workshops 2011), offline, as the ``kneed`` package does it.

    x and y are scaled to [0, 1]; the difference curve ``1 - x_norm - y_norm`` (how far
    each point lies below the straight line from the first point to the last) has local
    maxima; a maximum is the knee when the difference curve falls below ``its value -
    sensitivity * mean x step`` before the next local maximum (a local minimum in
    between cancels it). The first knee found is returned. x is used as given (K on a
    linear axis). Implemented here (a dozen lines) rather than depending on ``kneed``;
    checked against ``kneed.KneeLocator(curve="convex", direction="decreasing")``, which
    it equals except that the first point is never a knee here (kneed returns it when
    the curve starts above its chord, i.e. has no elbow there).

    Parameters
    ----------
    x : (n,) e.g. the K values; any order (sorted here), distinct
    y : (n,) e.g. inertia at each K, decreasing
    sensitivity : Kneedle's S (1 is the paper's recommendation offline; larger is more
        conservative)

    Returns
    -------
    :class:`Knee` (``knee`` is None with fewer than 3 points, a flat curve, or none
    found)

    Examples
    --------
    >>> kneedle([1, 2, 3, 4, 5, 6, 7, 8], [100, 50, 20, 16, 13, 11, 10, 9]).knee
    3.0
    >>> print(kneedle([1, 2, 3], [3, 2, 1]).knee)  # a straight line has no knee
    None
    """
    if sensitivity < 0:
        raise ValueError(f"sensitivity must be >= 0, got {sensitivity!r}")
    xs, ys = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if xs.shape != ys.shape or xs.ndim != 1:
        raise ValueError(f"x and y must be 1-D of the same length, got shapes {xs.shape} "
                         f"and {ys.shape}")
    order = np.argsort(xs, kind="stable")
    xs, ys = xs[order], ys[order]
    n = xs.size
    span_x = xs[-1] - xs[0] if n else 0.0
    span_y = ys.max() - ys.min() if n else 0.0
    if n < 3 or span_x <= 0 or span_y <= 0:
        z = np.zeros(n)
        return Knee(None, xs, ys, z, z, z, None)
    xn = (xs - xs[0]) / span_x
    yn = (ys - ys.min()) / span_y
    d = 1 - xn - yn
    step = float(np.mean(np.diff(xn)))
    threshold, candidate, active = 0.0, -1, False
    for i in range(1, n - 1):
        if d[i] >= d[i - 1] and d[i] >= d[i + 1]:  # a local maximum: its threshold
            threshold, candidate, active = float(d[i] - sensitivity * step), i, True
        if d[i] <= d[i - 1] and d[i] <= d[i + 1]:  # a local minimum: none until the next
            active = False
        if active and d[i + 1] < threshold:
            return Knee(float(xs[candidate]), xs, ys, xn, yn, d, threshold)
    return Knee(None, xs, ys, xn, yn, d, None)


def choose_k(rows: Sequence[dict[str, Any]], *, sensitivity: float = 1.0) -> dict[str, Any]:
    """What :func:`sweep` rows say about K, with a one-line recommendation.

    Returns a dict: ``knee`` (the K at the elbow of inertia by :func:`kneedle`, or
    None), ``best_silhouette`` (the K with the highest silhouette, None without that
    column), ``k`` (the recommendation: the knee, else the best silhouette, else None)
    and ``message`` (one line saying why). With few K values Kneedle is conservative
    (a knee must lie ``sensitivity / (len(rows) - 1)`` below the chord of the
    normalised curve): sweep at least 5-6 values of K.

    Examples
    --------
    >>> rows = [{"k": k, "inertia": i, "silhouette": s, "silhouette_se": 0.002}
    ...         for k, i, s in [(2, 90, 0.30), (4, 40, 0.35), (6, 30, 0.25), (8, 26, 0.2),
    ...                         (10, 24, 0.18)]]
    >>> print(choose_k(rows)["message"])
    K=4: the elbow of inertia (Kneedle); the highest silhouette is at K=4 too (0.350, SE 0.002)
    """
    if not rows:
        raise ValueError("choose_k needs at least one sweep row, got none")
    knee = kneedle([r["k"] for r in rows], [r["inertia"] for r in rows],
                   sensitivity=sensitivity).knee
    k_knee = None if knee is None else int(knee)
    sil = [r for r in rows if r.get("silhouette") is not None]
    best = max(sil, key=lambda r: r["silhouette"]) if sil else None
    k_sil = None if best is None else int(best["k"])

    def at(r: dict[str, Any]) -> str:
        se = r.get("silhouette_se")
        return f"{r['silhouette']:.3f}" + (f", SE {se:.3f}" if se else "")

    if k_knee is not None:
        msg = f"K={k_knee}: the elbow of inertia (Kneedle)"
        if best is not None:
            msg += ("; the highest silhouette is at K=" + str(k_sil)
                    + (" too" if k_sil == k_knee else "") + f" ({at(best)})")
            mine = next(r for r in rows if r["k"] == k_knee)
            if k_sil != k_knee and mine.get("silhouette") is not None:
                msg += f", at K={k_knee} it is {at(mine)}"
    elif best is not None:
        msg = (f"K={k_sil}: the highest silhouette ({at(best)}); inertia shows no clear "
               f"elbow (Kneedle, S={sensitivity:g}) over these {len(rows)} K")
    else:
        msg = (f"no recommendation: inertia shows no clear elbow (Kneedle, "
               f"S={sensitivity:g}) over these {len(rows)} K and there is no silhouette")
    return {"k": k_knee if k_knee is not None else k_sil, "knee": k_knee,
            "best_silhouette": k_sil, "message": msg}


class _SweepSilhouette:
    """The sweep's silhouette columns: the sampled rows gathered once for every K."""

    def __init__(self, X: Any, sample_size: int | None, seed: Any) -> None:
        self.on = bool(sample_size)
        if not self.on:
            return

        self.src = _metric_source(X)
        self.sample_size = int(sample_size or 0)
        self.queries = None
        if self.sample_size < self.src.n:
            if isinstance(seed, np.random.RandomState):
                seed = int(seed.randint(np.iinfo(np.int32).max))
            index = _sample_index(self.src.n, self.sample_size, seed)
            self.queries = Queries(passes.gather_pass(self.src, index).rows, index)

    def row(self, labels: Any, n_clusters: int) -> dict[str, Any]:
        if not self.on:
            return {}
        if not 2 <= n_clusters <= self.src.n - 1:
            return {"silhouette": None, "silhouette_se": None}
        if self.queries is None:  # the sample would be every row: exact
            r = silhouette(self.src, labels)
        else:
            r = _sampled_silhouette(self.src, *_silhouette_labels(labels, self.src.n),
                                    self.queries)
        return {"silhouette": r.score, "silhouette_se": r.standard_error}


def write_csv(rows: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """Write sweep rows as CSV (header from the first row)."""
    path = Path(path)
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else [])
        w.writeheader()
        w.writerows(rows)
    return path


def write_json(rows: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """Write sweep rows as a JSON list."""
    path = Path(path)
    path.write_text(json.dumps(list(rows), indent=2) + "\n")
    return path


def to_markdown(rows: Sequence[dict[str, Any]]) -> str:
    """A markdown table of sweep rows (floats to 4 decimals, seconds to 1).

    The columns before ``k`` (what the table was made from: dataset, split, algorithm,
    seed) are written once, in a line above the table, when every row has the same.

    Examples
    --------
    >>> print(to_markdown([{"split": "test", "k": 10, "purity": 0.5}]), end="")
    split: test
    <BLANKLINE>
    | k | purity |
    |---|---|
    | 10 | 0.5000 |
    """
    if not rows:
        return ""
    cols = list(rows[0])
    lead = cols[:cols.index("k")] if "k" in cols else []
    same = [c for c in lead if all(r.get(c) == rows[0].get(c) for r in rows)]
    cols = [c for c in cols if c not in same]
    caption = ", ".join(f"{c}: {rows[0][c]}" for c in same)

    def fmt(key: str, v: Any) -> str:
        if v is None:
            return ""
        if isinstance(v, float):
            if key == "seconds":
                return f"{v:.1f}"
            return f"{v:.1f}" if key == "inertia" else f"{v:.4f}"
        return str(v)

    lines = [caption, ""] if caption else []
    lines += ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(fmt(c, r.get(c, "")) for c in cols) + " |" for r in rows]
    return "\n".join(lines) + "\n"
