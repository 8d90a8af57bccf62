"""Figures (matplotlib, Agg canvas): samples, centroids, sweep curves, contingency.

Every function writes a PNG and returns its path; nothing is shown on screen.
Figures are built as :class:`matplotlib.figure.Figure` objects drawn on their own Agg
canvas: pyplot is never imported and the process-wide backend is left alone, so
importing or calling this module does not change the caller's matplotlib state.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import EngFormatter

from . import io, metrics
from .engine import evaluation
from .kernels.common import nearest_labels
from .metrics.scores import as_label_vector
from .metrics.silhouettes import as_data_source, sample_index

__all__ = [
    "PCAView",
    "centroid_grid",
    "contingency_figure",
    "contingency_heatmap",
    "elbow_curve",
    "elbow_figure",
    "fit_history",
    "history_figure",
    "label_name",
    "label_order",
    "pca_figure",
    "pca_projection",
    "pca_view",
    "purity_bars",
    "purity_figure",
    "quantize_comparison",
    "sample_grid",
    "segment_preview",
    "silhouette_figure",
    "silhouette_plot",
    "sweep_curves",
    "sweep_figure",
]


def _grid(n: int) -> tuple[int, int]:
    cols = math.ceil(math.sqrt(n))
    return math.ceil(n / cols), cols


def _figure(**kwargs: Any) -> Figure:
    """A figure on its own Agg canvas (no pyplot, no global figure registry)."""
    fig = Figure(**kwargs)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: str | Path, overwrite: bool = False) -> Path:
    """Save ``fig`` atomically (:func:`daskmeans.io.atomic_file`): an existing file is
    refused unless ``overwrite``."""
    path = Path(path)
    with io.atomic_file(path, overwrite=overwrite) as tmp:
        fig.savefig(tmp, dpi=100, bbox_inches="tight", format=path.suffix.lstrip(".") or "png")
    return path


def _side(d: int) -> int:
    side = round(math.sqrt(d))
    if side * side != d:
        raise ValueError(f"rows of {d} features are not square images")
    return side


def label_name(label: Any, class_names: Sequence[str] | None) -> str:
    """How a label is shown: its class name when ``class_names`` has one for it, else
    its number.

    >>> label_name(7, ["T-shirt/top", "Trouser"]), label_name(1, ["T-shirt/top", "Trouser"])
    ('7', 'Trouser')
    """
    i = int(label)
    if class_names is not None and 0 <= i < len(class_names):
        return str(class_names[i])
    return str(i)


def _mosaic(images: np.ndarray, order: Sequence[int]) -> tuple[np.ndarray, int, int]:
    """``images[order]`` (rows of square images) as tiles of one image, row-major with
    a NaN gutter: ``(mosaic, columns, tile)``; tile ``pos`` starts at pixel
    ``(pad + (pos // columns) * tile, pad + (pos % columns) * tile)``, ``pad = tile -
    side``.

    >>> m, c, tile = _mosaic(np.arange(8.0).reshape(2, 4), [1, 0])
    >>> c, tile, m[1:3, 1:3].tolist(), m[1:3, 4:6].tolist()
    (2, 3, [[4.0, 5.0], [6.0, 7.0]], [[0.0, 1.0], [2.0, 3.0]])
    """
    side = _side(images.shape[1])
    r, c = _grid(len(order))
    pad = max(1, side // 7)
    tile = side + pad
    mosaic = np.full((r * tile + pad, c * tile + pad), np.nan)
    for pos, i in enumerate(order):
        y, x = divmod(pos, c)
        mosaic[pad + y * tile:pad + y * tile + side, pad + x * tile:pad + x * tile + side] = (
            images[i].reshape(side, side))
    return mosaic, c, tile


def _mosaic_figure(images: np.ndarray, order: Sequence[int], marks: Sequence[str | None],
                   inch: float, fontsize: int, title: str, path: str | Path,
                   overwrite: bool) -> Path:
    """One image of tiles (:func:`_mosaic`), tile ``pos`` marked with ``marks[pos]``.

    Drawn once, with a text per tile, instead of a subplot per image: hundreds of
    subplots under a constrained layout take seconds to lay out."""
    mosaic, c, tile = _mosaic(images, order)
    r, pad = math.ceil(len(order) / c), tile - _side(images.shape[1])
    fig = _figure(figsize=(inch * c + 0.4, inch * r + 0.6))
    ax = fig.add_axes((0.01, 0.01, 0.98, 0.94))
    ax.imshow(mosaic, cmap="gray_r", interpolation="nearest")
    ax.axis("off")
    for pos, mark in enumerate(marks):
        if mark is not None:
            y, x = divmod(pos, c)
            ax.text(pad + x * tile, pad + y * tile, mark, color="C3", fontsize=fontsize,
                    fontweight="bold", ha="left", va="top",
                    bbox={"facecolor": "white", "edgecolor": "none", "pad": 0.6,
                          "alpha": 0.85})
    fig.suptitle(title)
    return _save(fig, path, overwrite)


def sample_grid(
    X: np.ndarray, labels: Sequence[int] | np.ndarray, path: str | Path, *, n: int = 36,
    title: str = "Samples", overwrite: bool = False,
) -> Path:
    """The first ``n`` images (rows of ``X``, square), each marked with its label."""
    X = np.asarray(X)[:n]
    return _mosaic_figure(X, range(len(X)), [str(int(v)) for v in labels[:len(X)]],
                          1.1, 12, title, path, overwrite)


def label_order(k: int, mapping: dict[int, int] | None) -> list[int]:
    """Clusters ``0..k-1`` sorted by their majority label (unlabelled ones last), ties by
    index: the order in which :func:`centroid_grid` draws them.

    >>> label_order(4, {0: 7, 1: 2, 3: 2})
    [1, 3, 0, 2]
    """
    return metrics.order_by_label(range(k), mapping)


def centroid_grid(
    centers: np.ndarray, path: str | Path, *, mapping: dict[int, int] | None = None,
    title: str | None = None, class_names: Sequence[str] | None = None, overwrite: bool = False,
) -> Path:
    """Every centroid as a square image in one mosaic, sorted by inferred label and
    marked with it when ``mapping`` is known (with its name from ``class_names``, as
    :func:`label_name`).
    """
    k = centers.shape[0]
    order = label_order(k, mapping)
    marks = [label_name(mapping[i], class_names) if mapping and i in mapping else None
             for i in order]
    return _mosaic_figure(centers, order, marks, 0.75 if k > 64 else 1.1,
                          10 if k > 64 else 12,
                          title or f"{k} cluster centres" + (
                              ", sorted by majority label (red)" if mapping else ""), path,
                          overwrite)


def _k_axis(ax: Any, ks: Sequence[int]) -> None:
    ax.set_xscale("log")
    ax.set_xticks(ks, [str(k) for k in ks])
    ax.minorticks_off()
    ax.set_xlabel("K (clusters)")
    ax.grid(alpha=0.3)


def sweep_curves(rows: Sequence[dict[str, Any]], path: str | Path, *,
                 overwrite: bool = False) -> Path:
    """The K sweep side by side: scores vs K; inertia vs K with the Kneedle knee; the
    sampled silhouette vs K with 2-standard-error bars (when the rows have it), from
    :func:`daskmeans.metrics.sweep` rows."""
    return _save(sweep_figure(rows), path, overwrite)


def sweep_figure(rows: Sequence[dict[str, Any]]) -> Figure:
    """The figure :func:`sweep_curves` saves, as a matplotlib ``Figure`` on its own Agg
    canvas (no pyplot): to show in a notebook or embed in a page."""
    ks = [r["k"] for r in rows]
    sil = [r for r in rows if r.get("silhouette") is not None]
    fig = _figure(figsize=(16 if sil else 11, 4), layout="constrained")
    axes = fig.subplots(1, 3 if sil else 2)
    a1, a2 = axes[0], axes[1]
    a1.plot(ks, [r["purity"] for r in rows], "o-", label="purity (fit split)")
    if "heldout_accuracy" in rows[0]:
        a1.plot(ks, [r["heldout_accuracy"] for r in rows], "s-",
                label="accuracy (held out, majority mapping)")
    a1.plot(ks, [r["homogeneity"] for r in rows], "^-", label="homogeneity")
    _k_axis(a1, ks)
    a1.set_ylim(0, 1)
    a1.set_ylabel("score (1 is best)")
    a1.legend()
    a1.set_title("Scores vs K")
    a2.plot(ks, [r["inertia"] for r in rows], "o-", color="C3")
    _k_axis(a2, ks)
    a2.yaxis.set_major_formatter(EngFormatter(sep=""))
    a2.set_ylabel("inertia (sum of squared distances)")
    knee = metrics.kneedle(ks, [r["inertia"] for r in rows]).knee
    if knee is not None:
        a2.axvline(knee, color="gray", linestyle="--", label=f"knee K={knee:g} (Kneedle)")
        a2.legend()
    a2.set_title("Inertia vs K")
    if sil:
        a3 = axes[2]
        se = [2 * (r.get("silhouette_se") or 0.0) for r in sil]
        a3.errorbar([r["k"] for r in sil], [r["silhouette"] for r in sil], yerr=se, fmt="o-",
                    color="C4", capsize=3, label="mean silhouette ± 2 SE")
        _k_axis(a3, ks)
        a3.set_ylabel("silhouette coefficient")
        a3.legend()
        a3.set_title("Silhouette vs K")
    return fig


def elbow_curve(ks: Sequence[int], inertias: Sequence[float], path: str | Path, *,
                sensitivity: float = 1.0, overwrite: bool = False) -> Path:
    """The elbow and how its knee was found: inertia against K on linear axes with the
    knee marked, and Kneedle's view of it (the curve scaled to [0, 1], its chord, and
    the difference curve whose maximum is the knee; :func:`daskmeans.metrics.kneedle`)."""
    return _save(elbow_figure(ks, inertias, sensitivity), path, overwrite)


def elbow_figure(ks: Sequence[int], inertias: Sequence[float], sensitivity: float) -> Figure:
    """The figure :func:`elbow_curve` saves, as a matplotlib ``Figure`` on its own Agg
    canvas (no pyplot): to show in a notebook or embed in a page."""
    r = metrics.kneedle(ks, inertias, sensitivity=sensitivity)
    fig = _figure(figsize=(11, 4), layout="constrained")
    a1, a2 = fig.subplots(1, 2)
    a1.plot(r.x, r.y, "o-")
    a1.yaxis.set_major_formatter(EngFormatter(sep=""))
    a1.set_xlabel("K (clusters)")
    a1.set_ylabel("inertia")
    a1.grid(alpha=0.3)
    a2.plot(r.x_norm, r.y_norm, "o-", label="inertia, scaled")
    a2.plot([0, 1], [1, 0], color="gray", linewidth=0.8, label="chord")
    a2.plot(r.x_norm, r.difference, "s-", color="C2", label="difference (below the chord)")
    if r.knee is not None:
        at = int(np.flatnonzero(r.x == r.knee)[0])
        a1.plot([r.knee], [r.y[at]], "o", color="C3", markersize=12, fillstyle="none")
        a1.set_title(f"Elbow curve: knee at K={r.knee:g} (Kneedle)")
        a2.axvline(r.x_norm[at], color="C3", linestyle="--", label=f"knee K={r.knee:g}")
        if r.threshold is not None:
            a2.axhline(r.threshold, color="C2", linestyle=":", linewidth=0.8,
                       label=f"threshold (S={sensitivity:g})")
    else:
        a1.set_title("Elbow curve: no knee found (Kneedle)")
    a2.set_xlabel("K, scaled to [0, 1]")
    a2.set_ylabel("scaled value")
    a2.grid(alpha=0.3)
    a2.legend()
    a2.set_title("Kneedle: the knee is where the difference curve peaks")
    return fig


def contingency_heatmap(
    table: np.ndarray, classes: Sequence[int] | np.ndarray,
    clusters: Sequence[int] | np.ndarray, path: str | Path,
    *, title: str = "Contingency (true label x cluster)",
    order: str | dict[int, int] = "auto", class_names: Sequence[str] | None = None,
    overwrite: bool = False,
) -> Path:
    """Heat map of a contingency table (n_classes, n_clusters), counts written in the
    cells when it is small, the classes named by ``class_names`` (:func:`label_name`).

    Clusters are drawn in :func:`daskmeans.metrics.cluster_order` (``order`` is its
    ``mapping``; ``"sorted"`` keeps ``clusters`` as given): matched one-to-one
    (Hungarian) when there are as many clusters as classes, else by majority label, so
    the large counts form a diagonal.
    """
    return _save(contingency_figure(table, classes, clusters, title=title, order=order,
                                     class_names=class_names), path, overwrite)


def contingency_figure(table: np.ndarray, classes: Sequence[int] | np.ndarray,
                        clusters: Sequence[int] | np.ndarray, *, title: str,
                        order: str | dict[int, int],
                        class_names: Sequence[str] | None = None) -> Figure:
    """The figure :func:`contingency_heatmap` saves, as a matplotlib ``Figure`` on its own Agg
    canvas (no pyplot): to show in a notebook or embed in a page."""
    table = np.asarray(table)
    classes, clusters = np.asarray(classes), np.asarray(clusters)
    if order != "sorted":
        c = metrics.Contingency(classes, clusters, table)
        cols = metrics.cluster_order(c, mapping=order)
        where = {int(k): i for i, k in enumerate(clusters)}
        pos = [where[int(k)] for k in cols]
        table, clusters = table[:, pos], clusters[pos]
        if isinstance(order, dict):
            how = "ordered by the label they are mapped to"
        elif order == "hungarian" or (order == "auto" and clusters.size == classes.size):
            how = "matched to labels one-to-one (Hungarian)"
        else:
            how = "ordered by majority label"
        title = f"{title}\nclusters {how}"
    fig = _figure(figsize=(max(5, 0.45 * table.shape[1] + 2),
                           max(4, 0.4 * table.shape[0] + 1.5)))
    ax = fig.subplots()
    im = ax.imshow(table, cmap="Blues", aspect="auto")
    fig.colorbar(im, ax=ax, label="samples")
    if table.shape[1] <= 40:
        ax.set_xticks(range(len(clusters)), [str(c) for c in clusters], fontsize=8)
    ax.set_yticks(range(len(classes)), [label_name(c, class_names) for c in classes])
    if table.size <= 400:
        hi = table.max() / 2 if table.size else 0
        for (i, j), v in np.ndenumerate(table):
            ax.text(j, i, str(v), ha="center", va="center", fontsize=7,
                    color="white" if v > hi else "black")
    ax.set_xlabel("cluster")
    ax.set_ylabel("true label")
    ax.set_title(title)
    return fig


def silhouette_plot(
    values: np.ndarray, labels: np.ndarray, path: str | Path, *,
    score: float | None = None, standard_error: float | None = None,
    title: str | None = None, overwrite: bool = False,
) -> Path:
    """Silhouette analysis as in scikit-learn's gallery: each cluster's coefficients
    sorted into a knife shape, clusters stacked, the mean as a dashed line.

    Parameters
    ----------
    values : (m,) silhouette coefficients (``metrics.silhouette(...).values``, of a
        sample or of every row)
    labels : (m,) their clusters
    score : the mean silhouette to draw (default: ``values.mean()``)
    standard_error : drawn as a band around the mean when given (a sampled estimate)

    Examples
    --------
    >>> import tempfile
    >>> from daskmeans import metrics
    >>> X = np.array([[0.0], [1.0], [9.0], [10.0], [11.0]])
    >>> s = metrics.silhouette(X, [0, 0, 1, 1, 1], sample_size=4, random_state=0)
    >>> out = silhouette_plot(s.values, s.labels, Path(tempfile.mkdtemp()) / "sil.png",
    ...                       score=s.score, standard_error=s.standard_error)
    >>> out.name, out.stat().st_size > 0
    ('sil.png', True)
    """
    return _save(silhouette_figure(values, labels, score=score,
                                    standard_error=standard_error, title=title), path,
                 overwrite)


def silhouette_figure(values: np.ndarray, labels: np.ndarray, *, score: float | None,
                       standard_error: float | None, title: str | None) -> Figure:
    """The figure :func:`silhouette_plot` saves, as a matplotlib ``Figure`` on its own Agg
    canvas (no pyplot): to show in a notebook or embed in a page."""
    from matplotlib import colormaps

    values, labels = np.asarray(values, dtype=np.float64), np.asarray(labels)
    if values.shape != labels.shape or values.ndim != 1:
        raise ValueError(f"values and labels must be 1-D of the same length, got shapes "
                         f"{values.shape} and {labels.shape}")
    clusters = np.unique(labels)
    k = clusters.size
    score = float(values.mean()) if score is None else score
    gap = max(1, values.size // 100)
    fig = _figure(figsize=(7, 6 if k <= 30 else 8), layout="constrained")
    ax = fig.subplots()
    cmap = colormaps["nipy_spectral"]
    y, middles = gap, []
    for i, c in enumerate(clusters):
        v = np.sort(values[labels == c])
        ax.fill_betweenx(np.arange(y, y + v.size), 0, v, facecolor=cmap(i / k),
                         edgecolor=cmap(i / k), alpha=0.7)
        middles.append(y + v.size / 2)
        y += v.size + gap
    ax.axvline(score, color="red", linestyle="--", label=f"mean {score:.3f}")
    if standard_error:
        ax.axvspan(score - 2 * standard_error, score + 2 * standard_error, color="red",
                   alpha=0.15, label=f"± 2 standard errors (SE {standard_error:.3f})")
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_xlim(min(-0.1, float(values.min()) - 0.02), 1)
    ax.set_ylim(0, y)
    ax.set_yticks(middles if k <= 30 else [], [str(c) for c in clusters] if k <= 30 else [])
    ax.set_xlabel("silhouette coefficient")
    ax.set_ylabel(f"cluster ({values.size} rows)")
    ax.legend(loc="lower right")
    ax.set_title(title or f"Silhouette of {k} clusters")
    return fig


@dataclass(frozen=True)
class PCAView:
    """A 2-D PCA projection fitted on all rows, of a random sample of them."""

    points: np.ndarray  #: (m, 2) the sampled rows, projected
    index: np.ndarray  #: (m,) which rows (sorted)
    labels_true: np.ndarray | None  #: (m,) their true labels, if given
    labels_pred: np.ndarray | None  #: (m,) their clusters, if given (or nearest centre)
    centers: np.ndarray | None  #: (k, 2) the cluster centres, projected, if given
    explained_variance_ratio: np.ndarray  #: (2,) of the two components
    n_samples: int  #: rows the projection was fitted on
    pca: Any  #: the fitted ``dask_ml.decomposition.PCA``


def pca_projection(
    X: Any, labels_true: Any = None, labels_pred: Any = None, *,
    centers: np.ndarray | None = None, n_points: int = 5000, random_state: Any = 0,
    svd_solver: str = "randomized", iterated_power: int = 4,
) -> PCAView:
    """Project the data on its first two principal components, fitted on ALL rows with
    ``dask_ml.decomposition.PCA`` (randomized with 4 power iterations, close to the exact
    solution for drawing; see :func:`daskmeans.engine.evaluation.pca_fit`; ``svd_solver="tsqr"``
    is exact), and keep a random sample of ``n_points`` rows to
    draw (all rows when there are fewer): ``np.sort(default_rng(random_state).choice(n,
    n_points, replace=False))``, as for the sampled silhouette.

    Passes: dask-ml's fit (one compute), its mean (one), and one gathering the sampled
    rows and their labels (none for numpy rows and labels).

    Parameters
    ----------
    X : (n_samples, n_features) numpy, dask, Zarr array, store path or source
    labels_true, labels_pred : (n_samples,) numpy or dask, optional
    centers : (n_clusters, n_features) cluster centres to project; without
        ``labels_pred`` the sampled rows take their nearest centre's index
    n_points : rows to draw

    Examples
    --------
    >>> from sklearn.datasets import make_blobs
    >>> from daskmeans import KMeans
    >>> X, y = make_blobs(300, n_features=5, centers=3, random_state=0)
    >>> km = KMeans(3, random_state=0).fit(X)
    >>> v = pca_projection(X, y, km.labels_, centers=km.cluster_centers_, n_points=100,
    ...                    random_state=0)
    >>> v.points.shape, v.centers.shape
    ((100, 2), (3, 2))
    """
    if isinstance(n_points, bool) or not isinstance(n_points, int | np.integer) or n_points < 1:
        raise ValueError(f"n_points must be a positive integer, got {n_points!r}")
    src = as_data_source(X)
    n = src.n
    vectors = {}
    for name, v in (("labels_true", labels_true), ("labels_pred", labels_pred)):
        if v is not None:
            v = as_label_vector(v, name)
            if v.shape[0] != n:
                raise ValueError(f"{name} must have one entry per row of X, got "
                                 f"{v.shape[0]} for {n} rows")
            vectors[name] = v
    if centers is not None:
        centers = np.asarray(centers, dtype=np.float64)
        if centers.ndim != 2 or centers.shape[1] != src.d:
            raise ValueError(f"centers must be (n_clusters, {src.d}), got shape "
                             f"{centers.shape}")
    pca = evaluation.pca_fit(src, 2, svd_solver=svd_solver, iterated_power=iterated_power,
                          random_state=random_state)
    index = (np.arange(n, dtype=np.int64) if n <= n_points
             else sample_index(n, int(n_points), random_state))
    got = evaluation.gather_pass(src, index, vectors)
    mean = np.asarray(pca.mean_, dtype=np.float64)
    comps = np.asarray(pca.components_, dtype=np.float64)
    pred = got.values.get("labels_pred")
    if pred is None and centers is not None:
        pred = nearest_labels(np.asarray(got.rows, np.float64), centers)
    return PCAView((np.asarray(got.rows, np.float64) - mean) @ comps.T, index,
                   got.values.get("labels_true"), pred,
                   None if centers is None else (centers - mean) @ comps.T,
                   np.asarray(pca.explained_variance_ratio_, dtype=np.float64), n, pca)


def pca_view(
    X: Any, labels_true: Any, labels_pred: Any, path: str | Path, *,
    centers: np.ndarray | None = None, n_points: int = 5000, random_state: Any = 0,
    svd_solver: str = "randomized", iterated_power: int = 4, title: str | None = None,
    class_names: Sequence[str] | None = None, overwrite: bool = False,
) -> Path:
    """The data on their first two principal components, side by side coloured by true
    label and by cluster, the cluster centres projected (black crosses): the PCA is
    fitted on all rows with dask-ml, ``n_points`` random rows are drawn
    (:func:`pca_projection`). Either labelling may be None (one panel then); the true
    labels' legend names them by ``class_names`` (:func:`label_name`).

    Needs dask-ml, whose PCA does not run under dask's array query planning (the
    suite skips this example there, naming the reason).

    Examples
    --------
    >>> import tempfile
    >>> from sklearn.datasets import make_blobs
    >>> from daskmeans import KMeans
    >>> X, y = make_blobs(300, n_features=5, centers=3, random_state=0)
    >>> km = KMeans(3, random_state=0).fit(X)
    >>> with tempfile.TemporaryDirectory() as d:
    ...     out = pca_view(X, y, km.labels_, f"{d}/pca.png", centers=km.cluster_centers_,
    ...                    n_points=100)
    ...     print(out.name, out.stat().st_size > 0)
    pca.png True
    """
    view = pca_projection(X, labels_true, labels_pred, centers=centers, n_points=n_points,
                          random_state=random_state, svd_solver=svd_solver,
                          iterated_power=iterated_power)
    return _save(pca_figure(view, title, class_names), path, overwrite)


def pca_figure(view: PCAView, title: str | None,
                class_names: Sequence[str] | None = None) -> Figure:
    """The figure :func:`pca_view` saves, as a matplotlib ``Figure`` on its own Agg
    canvas (no pyplot): to show in a notebook or embed in a page."""
    from matplotlib import colormaps

    panels = [(v, what) for v, what in ((view.labels_true, "true label"),
                                        (view.labels_pred, "cluster")) if v is not None]
    if not panels:
        raise ValueError("labels_true, labels_pred and centers are all None: nothing to "
                         "colour the points by")
    fig = _figure(figsize=(6.5 * len(panels), 6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(panels), sharex=True, sharey=True))
    evr = view.explained_variance_ratio
    size = 4 if view.points.shape[0] > 2000 else 10
    matched = False
    for ax, (values, what) in zip(axes, panels, strict=True):
        uniq, codes = np.unique(values, return_inverse=True)
        if (what == "cluster" and view.labels_true is not None
                and uniq.size == np.unique(view.labels_true).size <= 20):
            # as many clusters as labels: each cluster takes the colour of the label it
            # is matched to one-to-one (Hungarian, on the drawn rows), so panels compare
            uniq = metrics.cluster_order(view.labels_true, values, mapping="hungarian")
            sorter = np.argsort(uniq)
            codes = sorter[np.searchsorted(uniq, values, sorter=sorter)]
            matched = True
        if uniq.size <= 10:
            colours = colormaps["tab10"](codes % 10)
        elif uniq.size <= 20:
            colours = colormaps["tab20"](codes % 20)
        else:
            colours = colormaps["nipy_spectral"](codes / max(uniq.size - 1, 1))
        ax.scatter(view.points[:, 0], view.points[:, 1], c=colours, s=size, alpha=0.6,
                   linewidths=0)
        if uniq.size <= 20:  # a legend of the colours
            cmap = colormaps["tab10" if uniq.size <= 10 else "tab20"]
            for i, u in enumerate(uniq):
                ax.scatter([], [], color=cmap(i), s=20,
                           label=label_name(u, class_names) if what == "true label"
                           else str(u))
            ax.legend(title=what, fontsize=8, loc="best", ncols=2)
        if view.centers is not None and what == "cluster":
            ax.scatter(view.centers[:, 0], view.centers[:, 1], marker="x", color="black",
                       s=40 if view.centers.shape[0] <= 64 else 15, linewidths=1.5,
                       label="centres")
        ax.set_xlabel(f"PC1 ({100 * evr[0]:.1f}% of the variance)")
        ax.set_ylabel(f"PC2 ({100 * evr[1]:.1f}% of the variance)")
        ax.set_title(f"coloured by {what} ({uniq.size})"
                     + (", centres x" if view.centers is not None and what == "cluster"
                        else "")
                     + ("\neach in the colour of the label it matches (Hungarian)"
                        if matched and what == "cluster" else ""))
        ax.grid(alpha=0.3)
    shown = view.points.shape[0]
    fig.suptitle(title or f"PCA fitted on all {view.n_samples} rows; {shown} drawn")
    return fig


def fit_history(history: Sequence[dict[str, Any]], path: str | Path, *,
                title: str = "Fit history", overwrite: bool = False) -> Path:
    """Inertia against iteration from an estimator's ``history_`` (as saved in the
    model file): :class:`~daskmeans.KMeans`'s inertia per Lloyd iteration, or
    :class:`~daskmeans.MiniBatchKMeans`'s per step, per row (each batch's mean squared
    distance, and its smoothed value; its ``refine`` Lloyd iterations, over all rows,
    marked apart). Raises ValueError for a history that records no inertia
    (:class:`~daskmeans.BisectingKMeans`' rounds).

    Examples
    --------
    >>> import tempfile
    >>> h = [{"iteration": 1, "inertia": 9.0}, {"iteration": 2, "inertia": 4.0}]
    >>> fit_history(h, Path(tempfile.mkdtemp()) / "h.png").name
    'h.png'
    """
    return _save(history_figure(list(history), title), path, overwrite)


def history_figure(history: list[dict[str, Any]], title: str) -> Figure:
    """The figure :func:`fit_history` saves, as a matplotlib ``Figure`` on its own Agg
    canvas (no pyplot): to show in a notebook or embed in a page."""
    keys = set().union(*(h.keys() for h in history)) if history else set()
    fig = _figure(figsize=(8, 4), layout="constrained")
    ax = fig.subplots()
    if {"iteration", "inertia"} <= keys:  # Lloyd: the inertia over all rows
        x_key = "iteration"
        pts = [(h["iteration"], h["inertia"]) for h in history if h.get("inertia") is not None]
        ax.plot(*zip(*pts, strict=True), "o-" if len(pts) <= 60 else "-", markersize=3,
                label="inertia (all rows)")
        ax.set_ylabel("inertia (sum of squared distances)")
    elif {"step", "batch_inertia", "batch_rows"} <= keys:  # mini-batch: per row, comparable
        x_key = "step"
        steps = [h for h in history if h.get("phase") != "lloyd"]
        lloyd = [h for h in history if h.get("phase") == "lloyd"]
        marker = "o-" if len(steps) <= 60 else "-"
        if steps:
            ax.plot([h["step"] for h in steps],
                    [h["batch_inertia"] / h["batch_rows"] for h in steps], marker,
                    markersize=3, color="C0", label="batch inertia per row")
        smooth = [h for h in steps if h.get("ewa_inertia") is not None]
        if smooth:
            ax.plot([h["step"] for h in smooth], [h["ewa_inertia"] for h in smooth], marker,
                    markersize=3, color="C1", label="smoothed (EWA), per row")
        if lloyd:
            ax.plot([h["step"] for h in lloyd],
                    [h["batch_inertia"] / h["batch_rows"] for h in lloyd], "s-",
                    color="C3", label="refining Lloyd iterations (all rows), per row")
        ax.set_ylabel("inertia per row (mean squared distance)")
    else:
        raise ValueError("this history records no inertia per iteration or step "
                         f"(its keys: {sorted(keys)})")
    ax.set_yscale("log")
    ax.set_xlabel(x_key)
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    ax.set_title(f"{title}: {len(history)} {x_key}s")
    return fig


def purity_bars(purity: Any, path: str | Path, *, class_names: Sequence[str] | None = None,
                title: str = "Per-cluster purity", overwrite: bool = False) -> Path:
    """Each cluster's purity (share of its majority label) as a bar, clusters in the
    rows' order, each bar coloured by that label and named by it (:func:`label_name`);
    the overall purity (weighted by size) as a dashed line.

    ``purity``: :func:`daskmeans.metrics.purity_table` (a DataFrame indexed by cluster
    with columns size, label, count, purity), or its rows as dicts with a ``cluster``.

    Examples
    --------
    >>> import tempfile
    >>> from daskmeans import metrics
    >>> t = metrics.purity_table([0, 0, 1, 1, 1], [5, 5, 3, 3, 5])
    >>> purity_bars(t, Path(tempfile.mkdtemp()) / "p.png").name
    'p.png'
    """
    rows = (purity.reset_index().to_dict("records") if hasattr(purity, "reset_index")
            else list(purity))
    return _save(purity_figure(rows, class_names, title), path, overwrite)


def purity_figure(rows: list[dict[str, Any]], class_names: Sequence[str] | None,
                   title: str) -> Figure:
    """The figure :func:`purity_bars` saves, as a matplotlib ``Figure`` on its own Agg
    canvas (no pyplot): to show in a notebook or embed in a page."""
    from matplotlib import colormaps

    k = len(rows)
    fig = _figure(figsize=(min(max(6.0, 0.3 * k + 2), 14), 4), layout="constrained")
    ax = fig.subplots()
    labels = [int(r["label"]) for r in rows]
    cmap = colormaps["tab10" if max(labels, default=0) < 10 else "tab20"]
    ax.bar(range(k), [r["purity"] for r in rows], color=[cmap(v % cmap.N) for v in labels])
    overall = sum(r["count"] for r in rows) / max(sum(r["size"] for r in rows), 1)
    ax.axhline(overall, color="black", linestyle="--", linewidth=1,
               label=f"overall purity {overall:.3f}")
    if k <= 40:
        ax.set_xticks(range(k), [f"{r['cluster']}\n{label_name(v, class_names)}"
                                 for r, v in zip(rows, labels, strict=True)],
                      fontsize=7, rotation=90 if class_names and k > 12 else 0)
    ax.set_xlabel("cluster (and its majority label)" if k <= 40 else
                  "clusters, in the order of the contingency table")
    ax.set_ylabel("purity")
    ax.set_ylim(0, 1.05)
    ax.legend(loc="lower right")
    ax.set_title(title)
    return fig


def quantize_comparison(
    original: np.ndarray, quantized: np.ndarray, random: np.ndarray, path: str | Path, *,
    n_colors: int, psnr_kmeans: float, psnr_random: float, overwrite: bool = False,
) -> Path:
    """Original, K-means colours and random colours side by side, with their PSNR."""
    fig = _figure(figsize=(15, 4.2))
    axes = fig.subplots(1, 3)
    panels = [
        (original, "Original"),
        (quantized, f"{n_colors} colours, K-means (PSNR {psnr_kmeans:.1f} dB)"),
        (random, f"{n_colors} colours, random (PSNR {psnr_random:.1f} dB)"),
    ]
    for ax, (img, t) in zip(axes, panels, strict=True):
        ax.imshow(img)
        ax.set_title(t)
        ax.axis("off")
    return _save(fig, path, overwrite)


def segment_preview(labels: np.ndarray, centers: np.ndarray, bands: Sequence[str],
                    path: str | Path, *, title: str = "Segmentation",
                    overwrite: bool = False) -> Path:
    """A label map in qualitative colours (nodata, label -1, white) beside a legend of
    the clusters' centre spectra in the same colours.

    ``labels``: (h, w) int, a preview of the map (see ``Segmentation.preview``);
    ``centers``: (k, n_bands).
    """
    from matplotlib import colormaps
    from matplotlib.colors import ListedColormap

    k = centers.shape[0]
    base = colormaps["tab10" if k <= 10 else "tab20"]
    colours = [base(i % base.N) for i in range(k)]
    cmap = ListedColormap([(1.0, 1.0, 1.0, 1.0), *colours])
    fig = _figure(figsize=(13, 5.5), layout="constrained")
    ax_map, ax_spec = fig.subplots(1, 2, width_ratios=[1.4, 1])
    ax_map.imshow(np.asarray(labels) + 1, cmap=cmap, vmin=0, vmax=k, interpolation="nearest")
    ax_map.set_title(f"{title}: {k} clusters (white: nodata)")
    ax_map.axis("off")
    x = np.arange(len(bands))
    for j in range(k):
        ax_spec.plot(x, centers[j], marker="o", color=colours[j], label=f"cluster {j}")
    ax_spec.set_xticks(x, [str(b) for b in bands], rotation=45 if len(bands) > 8 else 0)
    ax_spec.set_xlabel("band")
    ax_spec.set_ylabel("centre value")
    ax_spec.set_title("cluster centres (mean spectra)")
    ax_spec.legend(fontsize="small", ncols=2 if k > 8 else 1)
    return _save(fig, path, overwrite)
