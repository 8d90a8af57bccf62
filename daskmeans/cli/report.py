"""``daskmeans report``: one self-contained HTML page about a model on a store's split."""

from __future__ import annotations

import argparse

from .console import Console, UserError
from .options import command_storage_options
from .scheduler import dask_cluster, data_nbytes

__all__ = ["cmd_report"]


def cmd_report(args: argparse.Namespace, console: Console) -> int:
    from .. import report

    so = command_storage_options(args, args.store)
    try:  # every input checked before any row is read or any cluster started
        report.check_sample_size(args.sample)
        inputs = report.open_inputs(args.model, args.store, split=args.split,
                                    sweep=args.sweep, out=args.out,
                                    overwrite=args.overwrite, storage_options=so)
    except report.ReportError as e:
        raise UserError(str(e)) from e
    n = inputs.X.shape[0]
    console.info(f"reporting on the {n} rows of split {args.split!r} (views of "
                 f"{min(n, args.sample)}) ...")
    with dask_cluster(args, console, data_nbytes(inputs.X)):
        page, r = report.build_page(inputs, title=args.title, sample_size=args.sample,
                                    random_state=args.seed)
    path = page.write(args.out, overwrite=args.overwrite)
    console.say(f"{args.split}: accuracy {r['accuracy']:.4f}, purity {r['purity']:.4f}, "
                f"homogeneity {r['homogeneity']:.4f}; {page.n_figures} figures embedded")
    console.say(f"report -> {path}")
    return 0
