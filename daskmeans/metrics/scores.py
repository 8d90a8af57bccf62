"""Scores of a clustering against true labels, all from one contingency table.

Every score here is a function of the contingency table (n_classes x n_clusters),
which :func:`contingency_matrix` builds in one pass: per-chunk ``bincount`` tables,
tree-reduced. Inputs may be numpy arrays, lists or dask arrays (lazy predictions
included: the predictions are then computed in the same pass).

Label sets are discovered in that same pass: labels must be non-negative integers
(floats with integral values are accepted); each chunk's table spans ``0..max`` of the
values it holds and the columns/rows that stay empty are dropped, so labels need not
be contiguous. Values above ~4 million fall back to a sparse per-chunk table.

The formulas follow scikit-learn's definitions exactly (natural logarithms,
arithmetic-mean NMI, ARI from the pair confusion matrix, the same edge-case values);
the mutual information is ``sklearn.metrics.mutual_info_score`` itself, applied to the
distributed table.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import dask.array as da
import numpy as np
from sklearn.metrics import mutual_info_score

from ..engine import evaluation
from ..kernels.scores import LabelError, pair_table

__all__ = [
    "Contingency",
    "adjusted_rand_score",
    "apply_mapping",
    "as_label_vector",
    "cluster_accuracy",
    "cluster_order",
    "completeness_score",
    "confusion_matrix",
    "contingency",
    "contingency_frame",
    "contingency_matrix",
    "evaluate",
    "evaluate_model",
    "homogeneity_completeness_v_measure",
    "homogeneity_score",
    "infer_cluster_labels",
    "normalized_mutual_info_score",
    "order_by_label",
    "purity_score",
    "purity_table",
    "v_measure_score",
]


@dataclass(frozen=True)
class Contingency:
    """A contingency table with the label values of its rows and columns."""

    classes: np.ndarray  # (n_classes,) sorted true label values
    clusters: np.ndarray  # (n_clusters,) sorted predicted label values
    table: np.ndarray  # (n_classes, n_clusters) int64

    @property
    def n(self) -> int:
        return int(self.table.sum())


def as_label_vector(a: Any, name: str) -> np.ndarray | da.Array:
    """``a`` as a 1-D numpy or dask array of labels; ``LabelError`` naming ``name`` if
    it is not 1-D."""
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
    t = as_label_vector(labels_true, "labels_true")
    p = as_label_vector(labels_pred, "labels_pred")
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
        classes, clusters, table = evaluation.contingency_pass(t, p)
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


def homogeneity_completeness_v_measure(labels_true: Any, labels_pred: Any = None
                                       ) -> tuple[float, float, float]:
    """Homogeneity, completeness and V-measure from one contingency table, as
    ``sklearn.metrics.homogeneity_completeness_v_measure``; ``labels_true`` may be a
    :class:`Contingency` (then ``labels_pred`` is not needed).

    Examples
    --------
    >>> [round(s, 4) for s in homogeneity_completeness_v_measure([0, 0, 1, 1], [0, 0, 1, 2])]
    [1.0, 0.6667, 0.8]
    """
    c = contingency(labels_true, labels_pred)
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
    return homogeneity_completeness_v_measure(labels_true, labels_pred)[0]


def completeness_score(labels_true: Any, labels_pred: Any) -> float:
    """All members of a class are in the same cluster (1.0 is perfect)."""
    return homogeneity_completeness_v_measure(labels_true, labels_pred)[1]


def v_measure_score(labels_true: Any, labels_pred: Any) -> float:
    """Harmonic mean of homogeneity and completeness."""
    return homogeneity_completeness_v_measure(labels_true, labels_pred)[2]


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
    clusters without a label and counts their samples as wrong, which at large K says
    nothing about the clustering. ``accuracy`` with the majority
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
    scored = model.scored(X, labels_true=as_label_vector(labels_true, "labels_true"))
    assert scored.table is not None
    return {**_report(Contingency(*scored.table.finish()), mapping), "inertia": scored.sse}


def _report(c: Contingency, mapping: str | dict[int, int]) -> dict[str, Any]:
    if c.n == 0:
        raise LabelError("evaluate needs at least one sample")
    h, comp, v = homogeneity_completeness_v_measure(c)
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
