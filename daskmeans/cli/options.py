"""What several commands share: stores and their storage options, K, the estimator and
its model file, output directories; each mistake a :class:`~.console.UserError`."""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .console import Console, UserError

__all__ = ["check_k", "check_model", "check_outputs", "command_storage_options",
           "fresh_folder", "is_group", "is_url", "load_fitted", "make_estimator",
           "metric_params", "need_labels", "open_split", "overwrite", "parse_storage_options",
           "writable_dir"]


def is_url(where: Any) -> bool:
    """``where`` names a store at a URL (s3://...), not a local path."""
    return isinstance(where, str) and "://" in where  # as io.is_url, without importing io


def _option_value(text: str) -> Any:
    """A --storage-option value: true/false as bools, integers as ints, decimals as
    floats, anything else as the string given."""
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    if re.fullmatch(r"[+-]?\d+", text):
        return int(text)
    if re.fullmatch(r"[+-]?(\d+\.\d*|\.\d+)([eE][+-]?\d+)?", text):
        return float(text)
    return text


def parse_storage_options(items: Sequence[str]) -> dict[str, Any]:
    """``KEY=VALUE`` strings (repeated ``--storage-option``) as fsspec storage options.

    Values are parsed by :func:`_option_value`; dotted keys nest, so
    ``config_kwargs.retries.max_attempts=3`` gives
    ``{"config_kwargs": {"retries": {"max_attempts": 3}}}``.

    Examples
    --------
    >>> parse_storage_options(["endpoint_url=http://127.0.0.1:5555", "anon=false",
    ...                        "config_kwargs.read_timeout=2.5"])
    {'endpoint_url': 'http://127.0.0.1:5555', 'anon': False, 'config_kwargs': {'read_timeout': 2.5}}
    """
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        parts = key.strip().split(".")
        if not sep or not all(parts):
            raise UserError(f"--storage-option must be KEY=VALUE (KEY may be dotted: "
                            f"config_kwargs.read_timeout=5), got {item!r}")
        node = out
        for i, part in enumerate(parts[:-1]):
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise UserError(f"--storage-option {item!r}: {'.'.join(parts[:i + 1])} "
                                "was already given a value")
        if isinstance(node.get(parts[-1]), dict):
            raise UserError(f"--storage-option {item!r}: {key} already holds options")
        node[parts[-1]] = _option_value(text)
    return out


def command_storage_options(args: argparse.Namespace, *where: Any) -> dict[str, Any] | None:
    """The command's --storage-option values (None when there are none); refused when
    none of ``where`` (its store and outputs) is a URL."""
    items = getattr(args, "storage_option", None) or []
    if not items:
        return None
    if not any(is_url(w) for w in where):
        raise UserError("--storage-option applies to stores at URLs (s3://bucket/data.zarr); "
                        f"this command's stores are local paths: {', '.join(map(str, where))}")
    return parse_storage_options(items)


def open_split(store: str, split: str, storage_options: dict[str, Any] | None = None,
               array: str | None = None) -> tuple[Any, Any]:
    """``(rows, labels)`` of a store: the rows as a source read block by block in the
    tasks (a dataset store's ``split``, or the ``array`` of any Zarr store, see
    :func:`daskmeans.open_source`), the true labels as a dask array when the store has
    them (a dataset store's split, a blobs store's ``y``), else None."""
    from .. import io
    from ..engine.source import open_dataset, open_source
    from ..io.stores import open_node, zarr_to_dask

    url = is_url(store)
    if not url and not Path(store).exists():
        raise UserError(f"{store}: no such store (make one with 'daskmeans ingest')")
    where: Any = store if url else Path(store)
    so = storage_options if url else None
    try:  # the rows as a source (read block by block in the tasks), the labels as dask
        X = open_source(where, split, array=array, storage_options=so)
        if array is not None:  # an array by name: no labels beside it
            return X, None
        node = open_node(where, so)
        fmt = str(node.attrs.get("format", "")) if is_group(node) else ""
        y = None
        if fmt.startswith("daskmeans-idx"):
            y = open_dataset(node, split)[1]
        elif fmt.startswith("daskmeans-blobs") and "y" in node:
            y = zarr_to_dask(node["y"], chunks=(X.offsets[1],))
        return X, y
    except (io.StoreError, ImportError) as e:
        raise UserError(str(e)) from e


def is_group(node: Any) -> bool:
    """``node`` is a Zarr group (not an array)."""
    import zarr

    return isinstance(node, zarr.Group)


def need_labels(y: Any, store: str, command: str) -> Any:
    """``y``, or the refusal of a command that scores against true labels when the
    store has none."""
    if y is None:
        raise UserError(f"{store}: holds no true labels; {command} scores clusters against "
                        "them, so it needs a dataset store written by 'daskmeans ingest'")
    return y


def check_k(k: int, n: int, what: str = "--k") -> None:
    """``k`` clusters are possible for ``n`` samples."""
    if k < 1:
        raise UserError(f"{what} must be >= 1, got {k}")
    if k > n:
        raise UserError(f"{what} {k} is larger than the number of samples ({n})")


def metric_params(args: argparse.Namespace) -> dict[str, str]:
    """The estimator keyword for --metric of fit and sweep (none when euclidean, the
    default, or for commands without it)."""
    metric = str(getattr(args, "metric", None) or "euclidean")
    if metric == "manhattan" and args.algorithm != "lloyd":
        raise UserError("--metric manhattan (k-medians) needs --algorithm lloyd")
    if metric != "euclidean" and args.algorithm == "bisecting":
        raise UserError(f"--algorithm bisecting is Euclidean, got --metric {metric}")
    return {} if metric == "euclidean" else {"metric": metric}


def make_estimator(algorithm: str, k: int, args: argparse.Namespace, console: Console) -> Any:
    """The estimator of ``--algorithm`` with the command's options, its parameters
    checked before any data is read or any cluster started."""
    from .. import BisectingKMeans, KMeans, MiniBatchKMeans
    from ..validation import InvalidParameterError, validate_params

    params: dict[str, Any] = {"n_clusters": k, "random_state": args.seed,
                              "callback": console.progress}
    if getattr(args, "init", None):
        params["init"] = args.init
    if getattr(args, "max_iter", None):
        params["max_iter"] = args.max_iter
    params |= metric_params(args)
    refine = getattr(args, "refine", None)
    if refine is not None:
        if algorithm != "minibatch":
            raise UserError("--refine applies to --algorithm minibatch")
        if refine < 0:
            raise UserError(f"--refine must be >= 0, got {refine}")
        params["refine"] = refine
    classes = {"minibatch": MiniBatchKMeans, "bisecting": BisectingKMeans}
    est = classes.get(algorithm, KMeans)(**params)
    try:
        validate_params(est)  # before any data is read or any cluster started
    except InvalidParameterError as e:
        raise UserError(str(e)) from e
    return est


def check_model(est: Any, X: Any, model: str) -> None:
    """The model's features against the data's, before any cluster starts."""
    if X.shape[1] != est.n_features_in_:
        raise UserError(f"{model} was fitted on {est.n_features_in_} features; this split "
                        f"has {X.shape[1]}")


def writable_dir(path: Path) -> Path:
    """``path`` as a directory this command can write into (made if missing)."""
    from .. import io

    try:
        return io.ensure_writable_dir(path)
    except OSError as e:
        raise UserError(str(e)) from e


def overwrite(args: argparse.Namespace) -> bool:
    """Whether the command may replace what is at its outputs (``--overwrite``)."""
    return bool(getattr(args, "overwrite", False))


def check_outputs(args: argparse.Namespace, *outputs: Any, store: bool = True,
                  storage_options: dict[str, Any] | None = None) -> None:
    """Refuse, before any work, outputs (stores when ``store``, else files) that exist
    and would be replaced without ``--overwrite`` (and, even with it, a directory that
    is not a Zarr store): daskmeans never replaces data unasked."""
    from .. import io

    for out in outputs:
        if out is None:
            continue
        try:
            io.check_output(out, overwrite=overwrite(args), store=store,
                            storage_options=storage_options if is_url(out) else None)
        except io.OutputExistsError as e:
            raise UserError(_cli_wording(str(e))) from e


def _cli_wording(message: str) -> str:
    """A refusal as the command line says it: pass --overwrite."""
    return message.replace("unless asked (overwrite=True; on the command line --overwrite)",
                           "unless asked: pass --overwrite to replace it")


def fresh_folder(args: argparse.Namespace, path: Path) -> Path:
    """``path`` as an output folder: made if missing; one that holds anything is refused
    without ``--overwrite`` (with it, the files the command writes there are replaced,
    each atomically, and nothing else in it is touched)."""
    if path.is_dir() and any(path.iterdir()) and not overwrite(args):
        raise UserError(f"{path}: exists and is not empty; daskmeans does not replace "
                        "existing data unless asked: pass --overwrite to replace the files "
                        "this command writes there, or choose another --out")
    if path.exists() and not path.is_dir():
        raise UserError(f"{path}: exists and is not a directory")
    return writable_dir(path)


def load_fitted(model: str) -> tuple[Any, dict[str, Any]]:
    """``(estimator, header)`` of a model file written by ``daskmeans fit``."""
    from .. import load_model
    from ..cluster import ModelFormatError

    try:
        return load_model(model)
    except (FileNotFoundError, ModelFormatError) as e:
        raise UserError(str(e)) from e
