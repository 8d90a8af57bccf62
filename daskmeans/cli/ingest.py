"""``daskmeans ingest``: IDX files, a photo or a synthetic scene into a Zarr store."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from .console import Console, UserError
from .options import check_outputs, command_storage_options, is_url, overwrite, writable_dir

__all__ = ["cmd_ingest"]


def cmd_ingest(args: argparse.Namespace, console: Console) -> int:
    from .. import datasets, io

    so = command_storage_options(args, args.out)
    url = is_url(args.out)
    out: Any = args.out if url else Path(args.out)
    if not url:
        writable_dir(out.parent if out.parent != Path("") else Path("."))
    replace = overwrite(args)
    t0 = time.perf_counter()
    if args.kind == "image":
        if not args.path:
            raise UserError("ingest image needs the photo's path")
        if url:
            raise UserError("ingest image writes a local store: --out must be a path")
        check_outputs(args, out)
        io.image_to_zarr(args.path, out, tile=args.tile, overwrite=replace)
        img = io.open_image(out)
        console.say(f"ingested {args.path} -> {out}: {img.shape} uint8, tiles {args.tile}")
        return 0
    if args.kind == "synthetic-scene":
        try:
            h, w = (int(v) for v in args.size.lower().split("x"))
        except ValueError as e:
            raise UserError(f"--size must be HEIGHTxWIDTH, got {args.size!r}") from e
        if h < 1 or w < 1:
            raise UserError(f"--size must be positive, got {args.size!r}")
        check_outputs(args, out)
        io.synthetic_scene(out, h, w, tile=min(args.tile, 512), overwrite=replace)
        console.say(f"wrote a synthetic {h}x{w} scene of 6 bands, 5 classes, nodata 0 "
                    f"outside a tilted swath -> {out}")
        return 0
    spec = datasets.MNIST if args.kind == "mnist" else datasets.FASHION_MNIST
    source = args.source or (args.path if args.path else None)
    check_outputs(args, out, storage_options=so)
    try:  # to a URL: written locally, then uploaded with its root metadata last
        if source:
            store = io.ingest(source, out, name=spec.name, chunk_rows=args.chunk_rows,
                              progress=console.progress, storage_options=so,
                              overwrite=replace)
        else:
            import shutil

            cached = datasets.fetch(spec, chunk_rows=args.chunk_rows)  # download + verify
            if url:
                io.upload_store(cached, out, storage_options=so, overwrite=replace)
            else:
                with io.atomic_dir(out, overwrite=replace) as tmp:
                    shutil.copytree(cached, tmp)
            store = out
    except ImportError as e:  # no filesystem package for the URL (s3fs)
        raise UserError(str(e)) from e
    import zarr

    attrs = zarr.open_group(store, mode="r", storage_options=so).attrs
    console.say(f"ingested {spec.name} -> {store} in {time.perf_counter() - t0:.1f}s: "
                f"splits {attrs['splits']}"
                + (f" (missing: {attrs['missing_splits']})" if attrs["missing_splits"] else ""))
    return 0
