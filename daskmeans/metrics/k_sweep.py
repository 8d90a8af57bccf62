"""Choosing K: a sweep of fits scored per K, the knee of its inertia curve, and the
sweep's table as CSV, JSON or markdown."""

from __future__ import annotations

import csv
import json
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .scores import (
    cluster_accuracy,
    contingency,
    homogeneity_completeness_v_measure,
    infer_cluster_labels,
)
from .silhouettes import SilhouetteSample

__all__ = ["Knee", "choose_k", "kneedle", "sweep", "to_markdown", "write_csv", "write_json"]

log = logging.getLogger(__name__)

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
    est_cls = _estimator_class(algorithm)
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
        h, comp, _ = homogeneity_completeness_v_measure(c)
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
                                                       infer_cluster_labels(c, None))
        row["n_iter"] = int(est.n_iter_)
        row["seconds"] = time.perf_counter() - t0
        log.info("sweep K=%d: %s", k, row)
        rows.append(row)
        if callback is not None:
            callback(row)
    return rows


def _estimator_class(algorithm: str) -> Any:
    """The estimator :func:`sweep` fits for ``algorithm``."""
    from ..cluster import BisectingKMeans, KMeans, MiniBatchKMeans

    est_cls = {"lloyd": KMeans, "minibatch": MiniBatchKMeans,
               "bisecting": BisectingKMeans}.get(algorithm)
    if est_cls is None:
        raise ValueError(f"algorithm must be 'lloyd', 'minibatch' or 'bisecting', got "
                         f"{algorithm!r}")
    return est_cls


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
        self.sample = SilhouetteSample(X, int(sample_size), seed) if sample_size else None

    def row(self, labels: Any, n_clusters: int) -> dict[str, Any]:
        if self.sample is None:
            return {}
        if not 2 <= n_clusters <= self.sample.n_samples - 1:
            return {"silhouette": None, "silhouette_se": None}
        r = self.sample.score(labels)
        return {"silhouette": r.score, "silhouette_se": r.standard_error}


def write_csv(rows: Sequence[dict[str, Any]], path: str | Path, *,
              overwrite: bool = False) -> Path:
    """Write sweep rows as CSV (header from the first row), atomically; an existing
    file is refused unless ``overwrite``."""
    from .. import io

    path = Path(path)
    with io.atomic_file(path, overwrite=overwrite) as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else [])
        w.writeheader()
        w.writerows(rows)
    return path


def write_json(rows: Sequence[dict[str, Any]], path: str | Path, *,
               overwrite: bool = False) -> Path:
    """Write sweep rows as a JSON list, atomically; an existing file is refused unless
    ``overwrite``."""
    from .. import io

    path = Path(path)
    with io.atomic_file(path, overwrite=overwrite) as tmp:
        tmp.write_text(json.dumps(list(rows), indent=2) + "\n")
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
