"""``daskmeans ingest``: IDX files, a photo, a synthetic scene or a sparse matrix (a
scipy ``.npz`` file, or the TF-IDF of a text corpus) into a Zarr store."""

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
    if args.kind in ("npz", "docstrings"):
        return _ingest_sparse(args, console, out, so, replace, t0)
    spec = datasets.MNIST if args.kind == "mnist" else datasets.FASHION_MNIST
    source = args.source or (args.path if args.path else None)
    check_outputs(args, out, storage_options=so)
    chunk_rows = args.chunk_rows or 10_000
    try:  # to a URL: written locally, then uploaded with its root metadata last
        if source:
            store = io.ingest(source, out, name=spec.name, chunk_rows=chunk_rows,
                              progress=console.progress, storage_options=so,
                              overwrite=replace)
        else:
            import shutil

            cached = datasets.fetch(spec, chunk_rows=chunk_rows)  # download + verify
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


def _ingest_sparse(args: argparse.Namespace, console: Console, out: Any,
                   so: dict[str, Any] | None, replace: bool, t0: float) -> int:
    """``ingest npz FILE`` and ``ingest docstrings``: a CSR Zarr store
    (:func:`daskmeans.io.write_csr`), chunk by chunk, locally or to a URL."""
    from .. import io

    if args.chunk_rows is not None and args.chunk_rows < 1:
        raise UserError(f"--chunk-rows must be >= 1, got {args.chunk_rows}")
    check_outputs(args, out, storage_options=so)
    attrs: dict[str, Any] = {}
    if args.kind == "npz":
        import scipy.sparse as sp

        if not args.path:
            raise UserError("ingest npz needs the .npz file's path (scipy.sparse.save_npz)")
        try:
            X = sp.load_npz(args.path)
        except FileNotFoundError as e:
            raise UserError(f"{args.path}: no such file") from e
        except (OSError, ValueError, KeyError) as e:
            raise UserError(f"{args.path}: not a sparse matrix saved by "
                            f"scipy.sparse.save_npz ({type(e).__name__}: {e})") from e
        attrs["source"] = str(Path(args.path).name)
    else:
        X, terms, corpus = docstrings_tfidf()
        attrs.update({"source": "TF-IDF of the Python standard library's docstrings "
                                "(daskmeans.datasets.load_docstrings)",
                      "terms": terms, "modules": corpus.target_names,
                      "documents": corpus.names})
    try:
        io.write_csr(X, out, rows_per_chunk=args.chunk_rows, attrs=attrs,
                     storage_options=so, overwrite=replace)
    except ImportError as e:  # no filesystem package for the URL (s3fs)
        raise UserError(str(e)) from e
    console.say(f"wrote a CSR store of {X.shape[0]} rows x {X.shape[1]} features, "
                f"{X.nnz} stored values -> {out} in {time.perf_counter() - t0:.1f}s")
    return 0


def docstrings_tfidf() -> tuple[Any, list[str], Any]:
    """The TF-IDF (float32 CSR, rows L2-normalised) of the standard library's docstrings
    (:func:`daskmeans.datasets.load_docstrings`), its terms and the corpus."""
    import numpy as np
    from sklearn.feature_extraction.text import TfidfVectorizer

    from ..datasets import load_docstrings

    corpus = load_docstrings()
    vectorizer = TfidfVectorizer(stop_words="english", min_df=2, max_df=0.5,
                                 sublinear_tf=True,
                                 token_pattern=r"(?u)\b[a-zA-Z][a-zA-Z]+\b")
    X = vectorizer.fit_transform(corpus.data).astype(np.float32)
    return X, vectorizer.get_feature_names_out().tolist(), corpus
