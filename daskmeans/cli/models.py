"""``daskmeans fit``, ``predict``, ``evaluate`` and ``export``: a model fitted on a
store's split, saved, then applied to and scored on other splits, or exported to ONNX."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from .console import Console, UserError
from .options import (
    check_k,
    check_model,
    check_outputs,
    command_storage_options,
    is_url,
    load_fitted,
    make_estimator,
    metric_params,
    need_labels,
    open_split,
    overwrite,
    writable_dir,
)
from .scheduler import dask_cluster, data_nbytes

__all__ = ["cmd_evaluate", "cmd_export", "cmd_fit", "cmd_predict"]


def cmd_fit(args: argparse.Namespace, console: Console) -> int:
    from .. import metrics, save_model

    metric_params(args)
    X, y = open_split(args.store, args.split, command_storage_options(args, args.store),
                      args.array)
    check_k(args.k, X.shape[0])
    writable_dir(Path(args.model).resolve().parent)
    model = Path(args.model)
    check_outputs(args, model if model.suffix == ".npz" else model.with_suffix(".npz"),
                  store=False)
    est = make_estimator(args.algorithm, args.k, args, console)  # parameters checked here
    with dask_cluster(args, console, data_nbytes(X)):
        t0 = time.perf_counter()
        est.fit(X)
        secs = time.perf_counter() - t0
        # the cluster -> class mapping, when the store has true labels
        mapping = None if y is None else metrics.infer_cluster_labels(y, est.labels_)
    where = {"array": args.array} if args.array else {"split": args.split}
    path = save_model(est, args.model, mapping=mapping,  # never the storage options: secrets
                      extra={"store": str(args.store), **where},
                      overwrite=overwrite(args))
    console.say(f"fitted {type(est).__name__}(K={args.k}) on {X.shape[0]} x {X.shape[1]} in "
                f"{secs:.1f}s: inertia {est.inertia_:.6g}, {est.n_iter_} iterations")
    console.say(f"model -> {path}")
    return 0


def cmd_predict(args: argparse.Namespace, console: Console) -> int:
    from .. import io
    from ..engine import schedule

    so = command_storage_options(args, args.store, args.out)
    check_outputs(args, args.out, storage_options=so)
    est, _ = load_fitted(args.model)
    X, _ = open_split(args.store, args.split, so, args.array)
    check_model(est, X, args.model)
    with dask_cluster(args, console, data_nbytes(X)):
        labels = est.predict(X)
        # A local --out is written into a temporary directory renamed into place (atomic).
        # An s3:// --out is written in place by the tasks, chunk by chunk (each object put
        # whole), with the group's root metadata last: the URL opens as a store only once
        # every label is written, and a failed write deletes what it wrote when it can.
        # S3 cannot swap the old store for the new one in one step: the old one is gone
        # from the start of the write (see io.write_group).
        try:
            with io.write_group(args.out, storage_options=so if is_url(args.out) else None,
                                overwrite=overwrite(args)) as group:
                group.attrs.update({"model": str(args.model), "store": str(args.store),
                                    **({"array": args.array} if args.array
                                       else {"split": args.split})})
                arr = group.create_array("labels", shape=labels.shape, dtype=np.int32,
                                         chunks=(labels.chunks[0][0],))
                schedule.compute(io.store_blocks(labels, arr), n_tasks=labels.numblocks[0])
        except ImportError as e:
            raise UserError(str(e)) from e
    console.say(f"labels of {labels.shape[0]} rows -> {args.out} (array 'labels', int32)")
    return 0


def cmd_evaluate(args: argparse.Namespace, console: Console) -> int:
    from .. import metrics

    est, header = load_fitted(args.model)
    X, y = open_split(args.store, args.split, command_storage_options(args, args.store))
    need_labels(y, args.store, "evaluate")
    check_model(est, X, args.model)
    # the scores and the inertia from one pass over X
    with dask_cluster(args, console, data_nbytes(X)):
        r = metrics.evaluate_model(est, X, y, mapping=header["mapping"] or "majority")
    r["mapping"] = {str(k): v for k, v in r["mapping"].items()}
    if args.json:
        print(json.dumps(r, indent=2))
        return 0
    how = "mapping learned at fit time" if header["mapping"] else "majority mapping"
    console.say(f"{args.split}: {r['n_samples']} samples, K={r['n_clusters']} ({how})")
    for key in ("accuracy", "purity", "homogeneity", "completeness", "v_measure",
                "adjusted_rand", "normalized_mutual_info"):
        console.say(f"  {key:<24} {r[key]:.4f}")
    console.say(f"  {'inertia':<24} {r['inertia']:.6g}")
    return 0


def parse_scale(text: str | None) -> float | None:
    """``--scale``: a positive number or a fraction (``1/255``)."""
    if text is None:
        return None
    try:
        num, _, den = text.partition("/")
        value = float(num) / float(den) if den else float(num)
    except (ValueError, ZeroDivisionError):
        value = float("nan")
    if not (np.isfinite(value) and value > 0):
        raise UserError(f"--scale must be a positive number or fraction (e.g. 1/255), "
                        f"got {text!r}")
    return value


def cmd_export(args: argparse.Namespace, console: Console) -> int:
    from ..export import to_onnx

    scale = parse_scale(args.scale)
    check_outputs(args, args.onnx, store=False)
    est, _ = load_fitted(args.model)
    try:
        to_onnx(est, args.onnx, input_dtype=args.input, scale=scale, overwrite=overwrite(args))
    except ImportError as e:
        raise UserError(f"{e}: 'daskmeans export' needs the onnx package "
                        f"(pip install 'daskmeans[onnx]')") from e
    what = "features" if scale is None else f"raw values, scaled by {scale:.6g}"
    console.say(f"{type(est).__name__}(K={est.n_clusters}) -> {args.onnx} (input X: "
                f"{args.input} {what}; outputs label int64, distances float32)")
    return 0
