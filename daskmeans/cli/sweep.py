"""``daskmeans sweep``: the tutorials' table over K, its figures and a recommended K."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .console import Console, UserError
from .options import (
    check_k,
    check_outputs,
    command_storage_options,
    metric_params,
    need_labels,
    open_split,
    overwrite,
    writable_dir,
)
from .scheduler import dask_cluster, data_nbytes

__all__ = ["SWEEP_FILES", "TUTORIAL_KS", "cmd_sweep", "recommendation", "run_sweep"]

TUTORIAL_KS = (10, 16, 36, 64, 144, 256)
#: the files ``daskmeans sweep`` writes into its --out folder (refused if there, unless
#: --overwrite: other files in the folder are never touched)
SWEEP_FILES = ("sweep.csv", "sweep.json", "sweep.md", "sweep.png", "elbow.png", "report.html")


def _parse_ks(text: str) -> list[int]:
    try:
        ks = [int(v) for v in text.split(",") if v.strip()]
    except ValueError as e:
        raise UserError(f"--k must be comma-separated integers, got {text!r}") from e
    if not ks:
        raise UserError("--k needs at least one value")
    return ks


def _dataset_name(store: Any) -> str:
    """The dataset a store was ingested from (its ``dataset`` attribute), else its name."""
    import zarr

    try:
        return str(zarr.open_group(store, mode="r").attrs.get("dataset") or Path(store).name)
    except Exception:  # not a daskmeans store: its file name says enough
        return Path(str(store)).name


def run_sweep(X: Any, y: Any, Xt: Any, yt: Any, ks: Sequence[int], args: argparse.Namespace,
              console: Console, out: Path, meta: dict[str, Any]
              ) -> tuple[list[dict[str, Any]], list[Path]]:
    """Sweep ``ks`` (progress per K), then write the table (CSV, JSON, and markdown with
    the recommendation) and its figures into ``out``; returns the rows and the files."""
    from .. import io, metrics, plot

    def report(row: dict[str, Any]) -> None:
        detail = f"K={row['k']} purity {row['purity']:.3f}"
        if console.tty:
            console.progress("sweep", ks.index(row["k"]) + 1, len(ks), detail)
        else:  # no bar to show it: one line per K
            console.info(f"  sweep {ks.index(row['k']) + 1}/{len(ks)}: {detail}")

    rows = metrics.sweep(X, y, ks, X_test=Xt, y_test=yt, algorithm=args.algorithm,
                         random_state=args.seed, callback=report, meta=meta,
                         silhouette_sample_size=getattr(args, "silhouette_sample", 1000) or None,
                         **metric_params(args))
    console.end_progress()
    replace = overwrite(args)
    files = [metrics.write_csv(rows, out / "sweep.csv", overwrite=replace),
             metrics.write_json(rows, out / "sweep.json", overwrite=replace)]
    with io.atomic_file(out / "sweep.md", overwrite=replace) as tmp:
        tmp.write_text(metrics.to_markdown(rows) + "\n" + recommendation(rows) + "\n")
    files.append(out / "sweep.md")
    files.append(plot.sweep_curves(rows, out / "sweep.png", overwrite=replace))
    files.append(plot.elbow_curve([r["k"] for r in rows], [r["inertia"] for r in rows],
                                  out / "elbow.png", overwrite=replace))
    return rows, files


def recommendation(rows: Sequence[dict[str, Any]]) -> str:
    """The line saying which K the sweep's rows recommend, and why."""
    from .. import metrics

    return "recommendation: " + metrics.choose_k(rows)["message"]


def cmd_sweep(args: argparse.Namespace, console: Console) -> int:
    from .. import metrics

    ks = _parse_ks(args.k)
    metric_params(args)
    if args.silhouette_sample < 0 or args.silhouette_sample == 1:
        raise UserError(f"--silhouette-sample must be 0 or >= 2, got {args.silhouette_sample}")
    out = writable_dir(Path(args.out))
    check_outputs(args, *(out / name for name in SWEEP_FILES), store=False)
    so = command_storage_options(args, args.store)
    X, y = open_split(args.store, args.split, so)
    need_labels(y, args.store, "sweep")
    for k in ks:
        check_k(k, X.shape[0])
    Xt = yt = None
    if args.test_split:
        Xt, yt = open_split(args.store, args.test_split, so)
        need_labels(yt, args.store, "sweep")
    meta = {"dataset": _dataset_name(args.store), "split": args.split}
    if args.test_split:
        meta["heldout_split"] = args.test_split
    nbytes = data_nbytes(X) + (data_nbytes(Xt) if Xt is not None else 0)
    with dask_cluster(args, console, nbytes):
        rows, files = run_sweep(X, y, Xt, yt, ks, args, console, out, meta)
    from .. import report

    page = report.Page(f"K sweep: {args.store}")
    page.paragraph(f"{X.shape[0]} rows of {X.shape[1]} features, split {args.split!r} of "
                   f"{args.store}" + (f"; scored on split {args.test_split!r} too"
                                      if args.test_split else ""))
    report.sweep_section(page, rows, figures=[out / "sweep.png", out / "elbow.png"])
    files.append(page.write(out / "report.html", overwrite=overwrite(args)))
    console.say(metrics.to_markdown(rows))
    console.say(recommendation(rows))
    for f in files:
        console.say(f"  -> {f}")
    return 0
