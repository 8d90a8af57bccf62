"""Fitted models saved to and loaded from one ``.npz`` file, without pickle."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from sklearn.utils.validation import check_is_fitted

from ..algorithms import BisectingTree
from ..io.errors import ModelFormatError
from .base import BaseKMeans
from .bisecting import BisectingKMeans
from .checkpoints import read_npz, write_npz
from .kmeans import KMeans
from .minibatch import MiniBatchKMeans

MODEL_FORMAT = "daskmeans-model"
MODEL_VERSION = 1


def save_model(
    estimator: BaseKMeans, path: str | Path, *, mapping: dict[int, int] | None = None,
    extra: dict[str, Any] | None = None, overwrite: bool = False,
) -> Path:
    """Save a fitted estimator without pickle: one ``.npz`` (arrays + a JSON header).

    Stores the centres, the constructor parameters that are plain values, the fit's
    ``history_`` (per iteration, step or round: what the estimator recorded), the
    cluster -> label mapping (optional), and the versions of daskmeans, numpy and
    scikit-learn. Written atomically (a temporary file beside ``path``, then a
    rename): an existing file is refused
    (:class:`~daskmeans.io.errors.OutputExistsError`) unless ``overwrite=True``, and a
    failed write (a full disk) leaves the old file as it was.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     path = save_model(KMeans(2, random_state=0).fit([[0.0], [1.0]]), f"{d}/m.npz")
    ...     model, header = load_model(path)
    ...     print(path.name, sorted(model.cluster_centers_.ravel().tolist()))
    m.npz [0.0, 1.0]
    """

    import sklearn

    from ..version import __version__

    check_is_fitted(estimator)
    params = {k: v for k, v in estimator.get_params().items()
              if v is None or isinstance(v, str | int | float | bool)}
    header = {
        "format": MODEL_FORMAT,
        "version": MODEL_VERSION,
        "class": type(estimator).__name__,
        "params": params,
        "n_features_in": int(estimator.n_features_in_),
        "inertia": float(getattr(estimator, "inertia_", float("nan"))),
        "n_iter": int(getattr(estimator, "n_iter_", 0)),
        # added within format version 1: files written before it load without a history
        "history": [_plain(h) for h in getattr(estimator, "history_", None) or []],
        "mapping": {str(k): int(v) for k, v in (mapping or {}).items()},
        "versions": {"daskmeans": __version__, "numpy": np.__version__,
                     "scikit-learn": sklearn.__version__},
        "extra": extra or {},
    }
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_suffix(".npz")
    arrays = {"cluster_centers": np.asarray(estimator.cluster_centers_)}
    tree = getattr(estimator, "tree_", None)
    if tree is not None:  # BisectingKMeans predicts by following its tree
        arrays |= {f"tree_{name}": getattr(tree, name) for name in tree.ARRAYS}
    write_npz(path, header, overwrite=overwrite, **arrays)
    return path


def _plain(record: dict[str, Any]) -> dict[str, Any]:
    """One ``history_`` entry with numpy scalars as Python numbers, for the JSON header
    (non-finite floats become None: JSON has no NaN)."""
    out: dict[str, Any] = {}
    for key, value in record.items():
        if isinstance(value, np.generic):
            value = value.item()
        if isinstance(value, float) and not np.isfinite(value):
            value = None
        out[str(key)] = value
    return out


def load_model(path: str | Path) -> tuple[BaseKMeans, dict[str, Any]]:
    """Load a model saved by :func:`save_model` (never unpickles).

    Returns ``(estimator, header)``; ``header["mapping"]`` holds the cluster -> label
    mapping with integer keys, ``header["history"]`` the fit's history (an empty list
    for files saved before the history was kept; the estimator's ``history_`` then is
    not set). Raises :class:`~daskmeans.io.errors.ModelFormatError` naming the file for
    anything else (a truncated, corrupt or empty file included).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such model file")
    header, arrays = read_npz(path, ModelFormatError, "model")
    tree = {k[5:]: v for k, v in arrays.items() if k.startswith("tree_")}
    if header.get("format") != MODEL_FORMAT:
        raise ModelFormatError(f"{path}: not a daskmeans model (format {header.get('format')!r})")
    if header.get("version") != MODEL_VERSION:
        raise ModelFormatError(
            f"{path}: model format version {header.get('version')!r} is not supported "
            f"(this daskmeans reads version {MODEL_VERSION})"
        )
    classes: dict[str, type[BaseKMeans]] = {
        "KMeans": KMeans, "MiniBatchKMeans": MiniBatchKMeans,
        "BisectingKMeans": BisectingKMeans}
    cls = classes.get(header.get("class", ""))
    if cls is None:
        raise ModelFormatError(f"{path}: unknown estimator class {header.get('class')!r}")
    if "cluster_centers" not in arrays:
        raise ModelFormatError(f"{path}: a daskmeans model without its cluster centres")
    centers = arrays["cluster_centers"]
    est = cls()
    valid = est.get_params()
    est.set_params(**{k: v for k, v in header["params"].items() if k in valid})
    est.cluster_centers_ = centers
    est.n_features_in_ = int(header["n_features_in"])
    est.inertia_ = header["inertia"]
    est.n_iter_ = header["n_iter"]
    header["history"] = list(header.get("history") or [])
    if header["history"]:
        est.history_ = header["history"]
    if isinstance(est, BisectingKMeans):
        missing = set(BisectingTree.ARRAYS) - set(tree)
        if missing:
            raise ModelFormatError(f"{path}: a BisectingKMeans model without its tree "
                                   f"({sorted(missing)} missing)")
        est.tree_ = BisectingTree(**{name: tree[name] for name in BisectingTree.ARRAYS})
    header["mapping"] = {int(k): int(v) for k, v in header.get("mapping", {}).items()}
    return est, header
