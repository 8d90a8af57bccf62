"""One self-contained HTML page about a fitted model on a store's split: what
``daskmeans report`` writes, and the page ``daskmeans demo`` and ``daskmeans sweep`` write.

Every figure is a PNG embedded in the page as a ``data:`` URI and the style sits in the
page itself: no script, no network, no sibling file. A page mailed, attached to a
ticket or moved alone into another folder shows everything it showed where it was
written.

:func:`write_report` checks everything it was given (the model file, the store, the
split, the feature count, the sweep file, the output path) before it reads a row, so
a mismatch costs nothing but a clear message; then it writes the page atomically
(a temporary file beside it, renamed into place), refusing to replace an existing
file unless asked to.

The page's parts are public so that other commands build the same kind of page:
:class:`Page` (headings, paragraphs, tables, embedded figures), :func:`model_sections`
(the model, its fit history, its scores, centres, contingency and purity, PCA and
silhouette views of a sample) and :func:`sweep_section` (a K sweep's table, its
recommendation and figures).

This is an application module: it uses :mod:`daskmeans.plot`, :mod:`daskmeans.metrics`
and the estimators; nothing below it imports it.
"""

from __future__ import annotations

import base64
import html
import json
import math
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from . import io, metrics, plot
from .cluster import ModelFormatError, load_model
from .engine.source import open_dataset, open_source
from .version import __version__

__all__ = [
    "DEFAULT_SAMPLE",
    "Page",
    "ReportError",
    "ReportInputs",
    "build_page",
    "check_output",
    "check_sample_size",
    "model_sections",
    "open_inputs",
    "read_sweep",
    "sweep_section",
    "write_report",
]

#: rows drawn at random for the silhouette and PCA views (all rows when fewer)
DEFAULT_SAMPLE = 2000

#: a contingency table wider than this many clusters is shown as a figure only
MAX_TABLE_CLUSTERS = 30

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

_STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;max-width:1200px;
margin:2em auto;padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.6em;border-bottom:2px solid #2a6099;padding-bottom:.2em}
h2{font-size:1.3em;margin-top:1.8em;color:#2a6099}
figure{margin:1em 0}figcaption{font-size:.9em;color:#555}
img{max-width:100%;height:auto;border:1px solid #ddd}
table{border-collapse:collapse;margin:.5em 0;font-size:.9em}
td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}
th{background:#f2f5f9}td.text,th.text{text-align:left}
.scroll{overflow-x:auto}.note{color:#555;font-size:.9em}
details{margin:.5em 0}summary{cursor:pointer;color:#2a6099}
"""

#: what each score says, shown beside it
_SCORES = (
    ("accuracy", "rows whose cluster's label (the mapping below) is their true label"),
    ("accuracy_hungarian", "the same with clusters matched to labels one-to-one "
                           "(only when K is at most the number of classes)"),
    ("purity", "share of rows in their cluster's majority label, learned on these rows"),
    ("homogeneity", "1 when each cluster holds a single class"),
    ("completeness", "1 when each class lies in a single cluster"),
    ("v_measure", "harmonic mean of homogeneity and completeness"),
    ("adjusted_rand", "agreement of the two partitions, 0 for chance, 1 when equal"),
    ("normalized_mutual_info", "mutual information of clusters and classes, scaled to 0..1"),
    ("inertia", "sum of squared distances of the rows to their centre"),
)


class ReportError(ValueError):
    """A model, store, split, sweep file or output that do not go together: raised
    before any row is read."""


class Page:
    """An HTML page built block by block, every figure embedded as a ``data:`` URI.

    Examples
    --------
    >>> page = Page("Run")
    >>> page.heading("Scores")
    >>> page.table([{"k": 10, "inertia": 1.5}])
    >>> "<td>1.5</td>" in page.html() and page.n_figures == 0
    True
    """

    def __init__(self, title: str) -> None:
        self.title = title
        self.n_figures = 0
        self._parts: list[str] = []

    def heading(self, text: str) -> None:
        """A section heading."""
        self._parts.append(f"<h2>{html.escape(text)}</h2>")

    def paragraph(self, text: str, *, note: bool = False) -> None:
        """A paragraph of plain text (``note``: set in smaller grey type)."""
        cls = " class='note'" if note else ""
        self._parts.append(f"<p{cls}>{html.escape(text)}</p>")

    def table(self, rows: Sequence[dict[str, Any]], *, collapsed: str | None = None) -> None:
        """A table of ``rows`` (dicts, their keys the columns); ``collapsed``: inside a
        closed ``<details>`` whose summary is this text."""
        table = _html_table(rows)
        if collapsed is not None:
            table = f"<details><summary>{html.escape(collapsed)}</summary>{table}</details>"
        self._parts.append(f"<div class='scroll'>{table}</div>")

    def figure(self, png: str | Path | bytes, alt: str, caption: str | None = None) -> None:
        """Embed a PNG (a file's path, or its bytes) with its alternative text."""
        data = png if isinstance(png, bytes) else Path(png).read_bytes()
        if not data.startswith(_PNG_SIGNATURE):
            where = "" if isinstance(png, bytes) else f" {png}"
            raise ValueError(f"figure{where} is not a PNG")
        uri = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
        cap = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
        self._parts.append(f"<figure><img src='{uri}' alt='{html.escape(alt)}'>{cap}"
                           "</figure>")
        self.n_figures += 1

    def draw(self, draw: Callable[[Path], Path], alt: str, caption: str | None = None) -> None:
        """Embed the figure ``draw(path)`` writes (a :mod:`daskmeans.plot` function),
        drawn into a temporary folder that is removed at once."""
        with tempfile.TemporaryDirectory(prefix="daskmeans-figure-") as tmp:
            self.figure(draw(Path(tmp) / "figure.png"), alt, caption)

    def html(self) -> str:
        """The whole page."""
        title = html.escape(self.title)
        return ("<!doctype html>\n<html lang='en'><head><meta charset='utf-8'>"
                "<meta name='viewport' content='width=device-width,initial-scale=1'>"
                f"<title>{title}</title><style>{_STYLE}</style></head><body>"
                f"<h1>{title}</h1>{''.join(self._parts)}"
                f"<p class='note'>written by daskmeans {html.escape(__version__)} on "
                f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC</p></body></html>\n")

    def write(self, path: str | Path, *, overwrite: bool = False) -> Path:
        """Write the page to ``path`` atomically (:func:`daskmeans.io.atomic_file`): a
        temporary file beside it, renamed into place, so a reader never sees half a
        page. An existing file is replaced only with ``overwrite``."""
        path = check_output(path, overwrite)
        with io.atomic_file(path, overwrite=overwrite) as tmp:
            tmp.write_text(self.html(), encoding="utf-8")
        return path


def _html_table(rows: Sequence[dict[str, Any]]) -> str:
    cols = list(dict.fromkeys(c for r in rows for c in r))

    def cell(v: Any) -> str:
        if isinstance(v, bool) or v is None:
            return f"<td class='text'>{'' if v is None else v}</td>"
        if isinstance(v, float | np.floating):
            return f"<td>{float(v):.4g}</td>"
        if isinstance(v, int | np.integer):
            return f"<td>{int(v)}</td>"
        return f"<td class='text'>{html.escape(str(v))}</td>"

    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in cols)
    body = "".join("<tr>" + "".join(cell(r.get(c)) for c in cols) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def check_output(path: str | Path, overwrite: bool = False) -> Path:
    """``path`` as a page this process may write: not a folder, its folder there and
    writable, and no file there unless ``overwrite``. Raises :class:`ReportError` or
    :class:`~daskmeans.io.errors.OutputExistsError` naming the path."""
    path = Path(path)
    if path.is_dir():
        raise ReportError(f"{path} is a folder; the output is the HTML file to write "
                          f"(e.g. {path / 'report.html'})")
    io.check_output(path, overwrite=overwrite, store=False)
    parent = path.parent if str(path.parent) else Path(".")
    try:
        io.ensure_writable_dir(parent)
    except OSError as e:
        raise ReportError(str(e)) from e
    return path


def read_sweep(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a sweep file (``sweep.json`` of ``daskmeans sweep``), checked."""
    path = Path(path)
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise ReportError(f"{path}: no such sweep file (daskmeans sweep writes "
                          "sweep.json)") from e
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ReportError(f"{path}: not a sweep file ({e})") from e
    need = {"k", "inertia", "purity", "homogeneity"}
    if (not isinstance(rows, list) or not rows
            or not all(isinstance(r, dict) and need <= r.keys() for r in rows)):
        raise ReportError(f"{path}: not a sweep file: expected a list of rows with "
                          f"{sorted(need)}, as daskmeans sweep writes in sweep.json")
    return rows


@dataclass
class ReportInputs:
    """What a report is made of, opened and checked, no row read yet."""

    model: Any  #: the fitted estimator
    header: dict[str, Any]  #: its model file's header (mapping, history, params, ...)
    X: Any  #: the split's rows (a source, read block by block)
    y: Any  #: the split's true labels (dask)
    class_names: list[str] | None  #: what the labels stand for, if the store says
    sweep: list[dict[str, Any]] | None  #: the sweep's rows, if one was given
    model_path: str  #: where the model was read from
    store: str  #: the store, as given
    split: str  #: the split reported on


def open_inputs(model: str | Path, store: Any, *, split: str = "test",
                sweep: str | Path | None = None, out: str | Path | None = None,
                overwrite: bool = False,
                storage_options: dict[str, Any] | None = None) -> ReportInputs:
    """Open and check a report's inputs before any work: the output path (when given),
    the model file, the sweep file, the store and its split, and that the model was
    fitted on as many features as the split has. Raises :class:`ReportError` (or
    :class:`FileExistsError` for an existing output) saying what does not fit."""
    if out is not None:
        check_output(out, overwrite)
    try:
        est, header = load_model(model)
    except (FileNotFoundError, ModelFormatError) as e:
        raise ReportError(str(e)) from e
    rows = None if sweep is None else read_sweep(sweep)
    url = io.is_url(store)
    where = store if url else Path(store)
    if not url and not where.exists():
        raise ReportError(f"{store}: no such store (make one with 'daskmeans ingest')")
    so = storage_options if url else None
    try:
        X = open_source(where, split, storage_options=so)
        y = open_dataset(where, split, storage_options=so)[1]
        names = io.class_names(where, so)
    except (io.StoreError, KeyError, ValueError) as e:
        message = str(e)
        raise ReportError(message if str(store) in message else f"{store}: {message}") from e
    if X.shape[1] != est.n_features_in_:
        raise ReportError(
            f"{model} was fitted on {est.n_features_in_} features, but split {split!r} of "
            f"{store} has {X.shape[1]}: the model was fitted on other data")
    return ReportInputs(est, header, X, y, names, rows, str(model), str(store), split)


def write_report(model: str | Path, store: Any, out: str | Path, *, split: str = "test",
                 sweep: str | Path | None = None, sample_size: int = DEFAULT_SAMPLE,
                 random_state: int = 0, overwrite: bool = False,
                 storage_options: dict[str, Any] | None = None,
                 title: str | None = None) -> Path:
    """Write one self-contained HTML page about a saved model on a store's split.

    The page holds the model's parameters and fit history (inertia per iteration),
    its scores on the split (accuracy under the label mapping saved with the model,
    else the majority mapping; purity, homogeneity, completeness, V-measure, ARI,
    NMI, inertia), the centres as images when the features form a square image, the
    contingency table and each cluster's purity (labels by the class names the store
    records), a PCA view and the silhouette of ``sample_size`` random rows, and the
    sweep of ``sweep`` (a ``sweep.json``) when given.

    Everything is checked first (:func:`open_inputs`); then the split is read for the
    scores and labels (every row), and sampled for the views.

    Parameters
    ----------
    model : a model file written by ``daskmeans fit`` or :func:`daskmeans.save_model`
    store : a dataset store (path or URL) written by ``daskmeans ingest``
    out : the HTML file to write; an existing one is replaced only with ``overwrite``
    split : the split to score and draw
    sweep : a ``sweep.json`` written by ``daskmeans sweep``
    sample_size : rows drawn for the silhouette and the PCA view
    random_state : seed of those draws
    storage_options : fsspec options for a store at a URL
    title : the page's title (default: the model and the store)

    Returns
    -------
    Path of the page.

    Examples
    --------
    >>> import tempfile
    >>> from sklearn.datasets import load_digits
    >>> from daskmeans import KMeans, io, save_model
    >>> d = load_digits()
    >>> tmp = Path(tempfile.mkdtemp())
    >>> images = (d.images[:300] * 15).astype("uint8")
    >>> store = io.arrays_to_dataset({"test": (images, d.target[:300])},
    ...                              tmp / "digits.zarr", name="digits")
    >>> km = KMeans(10, random_state=0).fit(images.reshape(300, -1) / 255)
    >>> page = write_report(save_model(km, tmp / "m.npz"), store, tmp / "report.html",
    ...                     sample_size=200)
    >>> text = page.read_text()
    >>> text.count("src='data:image/png;base64,") >= 4, "src='http" in text
    (True, False)
    """
    check_sample_size(sample_size)
    inputs = open_inputs(model, store, split=split, sweep=sweep, out=out,
                         overwrite=overwrite, storage_options=storage_options)
    page, _ = build_page(inputs, title=title, sample_size=sample_size,
                         random_state=random_state)
    return page.write(out, overwrite=overwrite)


def check_sample_size(sample_size: Any) -> None:
    """Views need a sample of at least two rows."""
    if isinstance(sample_size, bool) or not isinstance(sample_size, int | np.integer) \
            or sample_size < 2:
        raise ReportError(f"the sample size must be an integer >= 2, got {sample_size!r}")


def build_page(inputs: ReportInputs, *, title: str | None = None,
               sample_size: int = DEFAULT_SAMPLE,
               random_state: int = 0) -> tuple[Page, dict[str, Any]]:
    """The page of :func:`write_report` from its checked inputs (:func:`open_inputs`):
    ``(page, the model's scores on the split)``. The work is done here: the caller
    chooses where it runs (e.g. inside a ``dask.distributed`` client)."""
    X = inputs.X
    page = Page(title or f"daskmeans report: {Path(inputs.model_path).name} on "
                         f"{inputs.store}")
    page.paragraph(f"Model {inputs.model_path}; data: split {inputs.split!r} of "
                   f"{inputs.store}, {X.shape[0]} rows of {X.shape[1]} features"
                   + ("; classes named as the store records them." if inputs.class_names
                      else "; the store records no class names: labels are their numbers."))
    scores = model_sections(page, inputs.model, X, inputs.y,
                            mapping=inputs.header.get("mapping") or None,
                            saved=inputs.header, class_names=inputs.class_names,
                            data=f"split {inputs.split!r}", sample_size=sample_size,
                            random_state=random_state)
    if inputs.sweep is not None:
        sweep_section(page, inputs.sweep)
    return page, scores


def _plain_params(est: Any) -> list[dict[str, Any]]:
    return [{"parameter": k, "value": v if isinstance(v, int | float) else str(v)}
            for k, v in sorted(est.get_params().items())
            if v is None or isinstance(v, str | int | float | bool)]


def _model_facts(page: Page, est: Any, saved: dict[str, Any] | None) -> None:
    """The model's class, what it was fitted on, and its parameters."""
    page.heading("The model")
    facts: list[dict[str, Any]] = [
        {"": "estimator", "value": type(est).__name__},
        {"": "clusters (K)", "value": int(np.shape(est.cluster_centers_)[0])},
        {"": "features", "value": int(est.n_features_in_)},
        {"": "inertia at the end of the fit", "value": float(est.inertia_)},
        {"": "iterations (n_iter_)", "value": int(getattr(est, "n_iter_", 0))}]
    extra = (saved or {}).get("extra") or {}
    for key, value in extra.items():
        facts.append({"": f"fitted on: {key}", "value": str(value)})
    versions = (saved or {}).get("versions") or {}
    if versions:
        facts.append({"": "saved with", "value": ", ".join(f"{k} {v}"
                                                          for k, v in versions.items())})
    page.table(facts)
    page.table(_plain_params(est), collapsed="constructor parameters")


def _history_section(page: Page, est: Any) -> None:
    """The fit's history: inertia per iteration (or step), and the whole table."""
    page.heading("Fit history")
    history = list(getattr(est, "history_", None) or [])
    if not history:
        page.paragraph("The model file records no fit history (it was saved by a "
                       "daskmeans that did not keep it): refit and save to see it.")
        return
    try:
        page.draw(lambda p: plot.fit_history(history, p, title=type(est).__name__),
                  "inertia per iteration", "Inertia at each iteration of the fit "
                  "(log scale): the curve flattens as the centres settle.")
    except ValueError as e:
        page.paragraph(f"No inertia curve: {e}.", note=True)
    page.table(history, collapsed=f"the history's {len(history)} entries")


def _scores_section(page: Page, est: Any, X: Any, y: Any, mapping: dict[int, int] | None,
                    class_names: list[str] | None, data: str) -> dict[str, Any]:
    """Every score of the model on (X, y), from one pass; returns the scores."""
    page.heading(f"Scores on {data}")
    r = metrics.evaluate_model(est, X, y, mapping=mapping or "majority")
    page.table([{"score": key, "value": r[key], "meaning": what} for key, what in _SCORES
                if r.get(key) is not None])
    how = ("the cluster -> label mapping learned when the model was fitted" if mapping
           else "each cluster's majority label on these rows (so accuracy equals purity)")
    page.paragraph(f"{r['n_samples']} rows, {r['n_classes']} classes, {r['n_clusters']} "
                   f"clusters holding rows. Accuracy maps each cluster to a label by {how}.")
    used = r["mapping"]
    page.table([{"cluster": k, "label": int(v), "class": plot.label_name(v, class_names)}
                for k, v in sorted(used.items())],
               collapsed=f"the mapping of {len(used)} clusters to labels")
    return r


def _centres_section(page: Page, est: Any, mapping: dict[int, int],
                     class_names: list[str] | None) -> None:
    page.heading("Cluster centres")
    centers = np.asarray(est.cluster_centers_)
    d = centers.shape[1]
    if math.isqrt(d) ** 2 != d:
        page.paragraph(f"The {d} features do not form a square image: the centres are "
                       "not drawn.", note=True)
        return
    named = "class names" if class_names else "labels"
    page.draw(lambda p: plot.centroid_grid(centers, p, mapping=mapping,
                                           class_names=class_names),
              "cluster centres as images",
              f"Each centre as an image, sorted by the label its cluster maps to (its "
              f"{named} in red).")


def _contingency_section(page: Page, y: np.ndarray, labels: np.ndarray,
                         class_names: list[str] | None, data: str) -> None:
    page.heading("Contingency table and per-cluster purity")
    c = metrics.contingency(y, labels)
    page.draw(lambda p: plot.contingency_heatmap(c.table, c.classes, c.clusters, p,
                                                 title=f"true class x cluster, {data}",
                                                 class_names=class_names),
              "contingency table", "Rows of each true class (down) in each cluster "
              "(across): a good clustering puts the large counts on a diagonal.")
    if c.clusters.size <= MAX_TABLE_CLUSTERS:
        frame = metrics.contingency_frame(c)
        page.table([{"class": plot.label_name(cls, class_names),
                     **{f"cluster {k}": int(v) for k, v in row.items()}}
                    for cls, row in frame.iterrows()], collapsed="the table's counts")
    else:
        page.paragraph(f"With {c.clusters.size} clusters the counts are too many for a "
                       "table: the figure shows them.", note=True)
    purity = metrics.purity_table(c)
    page.draw(lambda p: plot.purity_bars(purity, p, class_names=class_names),
              "per-cluster purity", "Each cluster's share of its majority label, in the "
              "colour of that label; the dashed line is the overall purity.")
    page.table([{"cluster": int(k), "size": int(r["size"]),
                 "majority label": plot.label_name(r["label"], class_names),
                 "count": int(r["count"]), "purity": float(r["purity"])}
                for k, r in purity.iterrows()], collapsed="per-cluster purity")


def _views_section(page: Page, est: Any, X: Any, y: np.ndarray, labels: np.ndarray,
                   class_names: list[str] | None, sample_size: int,
                   random_state: int) -> None:
    """The silhouette and PCA views, of a random sample of rows when there are more."""
    n = int(X.shape[0])
    m = min(n, sample_size)
    page.heading("PCA view and silhouette")
    page.paragraph(f"The views are drawn from {m} of the {n} rows"
                   + (f", drawn at random (seed {random_state})" if m < n else " (all)")
                   + ": each sampled row's silhouette is measured against all rows; the "
                   "PCA is fitted on all rows and the sampled rows drawn.")
    k = int(np.unique(labels).size)
    if k < 2:
        page.paragraph("The silhouette needs at least two clusters.", note=True)
    else:
        sil = metrics.silhouette(X, labels, sample_size=m if m < n else None,
                                 random_state=random_state)
        page.draw(lambda p: plot.silhouette_plot(
            sil.values, sil.labels, p, score=sil.score, standard_error=sil.standard_error,
            title=f"Silhouette of {sil.index.size} rows (against all {sil.n_samples})"),
            "silhouette", f"Mean silhouette {sil.score:.3f}: near 1, rows sit well inside "
                          "their cluster; near 0, between two; below 0, nearer another.")
    try:
        page.draw(lambda p: plot.pca_view(X, y, labels, p, centers=est.cluster_centers_,
                                          n_points=m, random_state=random_state,
                                          class_names=class_names),
                  "PCA view", "The rows on their first two principal components, "
                              "coloured by true class (left) and by cluster (right).")
    except (NotImplementedError, ImportError) as e:  # dask's array query planning
        page.paragraph(f"PCA view skipped: {e}", note=True)


def model_sections(page: Page, est: Any, X: Any, y: Any, *,
                   mapping: dict[int, int] | None = None, saved: dict[str, Any] | None = None,
                   class_names: list[str] | None = None, data: str = "the data",
                   sample_size: int = DEFAULT_SAMPLE, random_state: int = 0,
                   views: bool = True) -> dict[str, Any]:
    """Add a fitted model's sections to ``page``: the model and its parameters, its
    fit history, its scores on ``(X, y)``, its centres as images, the contingency
    table and per-cluster purity, and (``views``) the silhouette and PCA view of
    ``sample_size`` random rows.

    ``mapping``: the cluster -> label mapping to score accuracy with (learned at fit
    time; default: the majority label on these rows). ``saved``: the model file's
    header, for what it was fitted on. Reads X twice (scores with the inertia, then
    the labels), plus the views' passes. Returns the scores.
    """
    _model_facts(page, est, saved)
    _history_section(page, est)
    r = _scores_section(page, est, X, y, mapping, class_names, data)
    labels = np.asarray(_computed(est.predict(X)))
    y_true = np.asarray(_computed(y))
    _centres_section(page, est, r["mapping"], class_names)
    _contingency_section(page, y_true, labels, class_names, data)
    if views:
        _views_section(page, est, X, y_true, labels, class_names, sample_size, random_state)
    return r


def _computed(a: Any) -> Any:
    return a.compute() if hasattr(a, "compute") else a


def sweep_section(page: Page, rows: Sequence[dict[str, Any]], *,
                  figures: Sequence[str | Path] | None = None) -> None:
    """Add a K sweep to ``page``: its table (the columns every row shares said once
    above it), the recommended K and why, and its figures (scores, inertia and
    silhouette against K; the elbow found by Kneedle). ``figures``: those PNGs when
    already drawn (``sweep.png``, ``elbow.png``), else they are drawn here."""
    page.heading("Choosing K: the sweep")
    rows = list(rows)
    shared = {c: rows[0][c] for c in rows[0] if c != "k"
              and isinstance(rows[0][c], str) and all(r.get(c) == rows[0][c] for r in rows)}
    if shared:
        page.paragraph(", ".join(f"{k}: {v}" for k, v in shared.items()))
    page.table([{c: v for c, v in r.items() if c not in shared} for r in rows])
    page.paragraph("recommendation: " + metrics.choose_k(rows)["message"])
    captions = ("Scores, inertia and silhouette against K.",
                "The elbow of inertia against K, and how Kneedle finds it.")
    if figures is not None:
        for png, caption in zip(figures, captions, strict=True):
            page.figure(png, Path(png).name, caption)
        return
    page.draw(lambda p: plot.sweep_curves(rows, p), "sweep.png", captions[0])
    page.draw(lambda p: plot.elbow_curve([r["k"] for r in rows], [r["inertia"] for r in rows],
                                         p), "elbow.png", captions[1])
