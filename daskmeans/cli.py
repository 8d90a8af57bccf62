"""The ``daskmeans`` command: parse, pick the cluster, call the library, print.

Examples::

    daskmeans demo                                    # everything, offline-safe
    daskmeans ingest mnist --source ../shared/data/mnist --out mnist.zarr
    daskmeans fit mnist.zarr --split test --k 256 --algorithm minibatch --model mnist256.npz
    daskmeans evaluate mnist.zarr --model mnist256.npz --split test
    daskmeans predict mnist.zarr --model mnist256.npz --out labels.zarr
    daskmeans sweep mnist.zarr --split test --k 10,16,36,64,144,256 --out sweep/
    daskmeans quantize --sample china --colors 64 --out china64.png
    daskmeans segment scene.zarr --k 5 --feature-dim band --out scene-labels.zarr

Add --workers N for a LocalCluster, or --scheduler tcp://HOST:8786 for a running one.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import re
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .progress import TqdmBars

__all__ = ["main"]

#: When this command started (the entry point imports this module first): the times it
#: prints are wall-clock times from here, imports included.
STARTED = time.perf_counter()

log = logging.getLogger("daskmeans.cli")

TUTORIAL_KS = (10, 16, 36, 64, 144, 256)


class UserError(Exception):
    """A mistake on the command line: printed as one line, exit status 2."""


# --------------------------------------------------------------------- output


class Console:
    """What the command prints: results always, progress on a TTY unless --quiet.

    :meth:`progress` is the :data:`daskmeans.progress.ProgressCallback` the commands
    hand to the library (``callback=`` of the estimators, ``progress=`` of
    :func:`daskmeans.io.ingest` and :func:`daskmeans.quantize`): one tqdm bar per phase
    on stderr, nothing when --quiet or when stderr is not a terminal.
    """

    #: without a terminal, a long phase prints a line at most this often (seconds)
    HEARTBEAT = 5.0

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.tty = sys.stderr.isatty() and not quiet
        self._bars = TqdmBars()
        self._last_line = time.perf_counter()

    def say(self, msg: str = "") -> None:
        """A result: to stdout, always."""
        self.end_progress()
        print(msg, flush=True)
        self._last_line = time.perf_counter()

    def info(self, msg: str) -> None:
        """Status (not results): to stderr, silent with --quiet."""
        if not self.quiet:
            self.end_progress()
            print(msg, file=sys.stderr, flush=True)
            self._last_line = time.perf_counter()

    def progress(self, phase: str, done: int, total: int | None, detail: str = "") -> None:
        """Draw ``done`` of ``total`` steps of ``phase`` (a ``ProgressCallback``); with
        stderr not a terminal, a plain line every :attr:`HEARTBEAT` seconds instead."""
        if self.tty:
            self._bars(phase, done, total, detail)
        elif not self.quiet and time.perf_counter() - self._last_line >= self.HEARTBEAT:
            of = f"/{total}" if total is not None else ""
            self.info(f"  {phase}: {done}{of}" + (f" ({detail})" if detail else ""))

    def end_progress(self) -> None:
        """Close the bar being drawn (it stays on screen as last drawn)."""
        self._bars.close()


class _ConsoleLogHandler(logging.StreamHandler):
    """Log lines to stderr, each after closing any progress bar being drawn."""

    def __init__(self, console: Console) -> None:
        super().__init__(sys.stderr)
        self.console = console

    def emit(self, record: logging.LogRecord) -> None:
        self.console.end_progress()
        super().emit(record)


def _setup_logging(level: str, console: Console) -> None:
    pkg = logging.getLogger("daskmeans")
    pkg.setLevel(logging.DEBUG)
    pkg.handlers.clear()
    pkg.propagate = False
    text = _ConsoleLogHandler(console)
    text.setLevel(getattr(logging, level.upper()))
    text.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    pkg.addHandler(text)
    logging.getLogger("distributed").setLevel(
        logging.WARNING if level.lower() != "debug" else logging.INFO)


# --------------------------------------------------------------------- the cluster


def _nbytes(X: Any) -> int:
    """Bytes of the data as stored (a source's raw rows, a dask array's chunks)."""
    return int(getattr(X, "nbytes", 0) or 0)


def _default_client() -> Any:
    """distributed's default client, or None."""
    from distributed import default_client

    try:
        return default_client()
    except ValueError:
        return None


@contextlib.contextmanager
def dask_cluster(args: argparse.Namespace, console: Console,
                 nbytes: int | None = None) -> Iterator[Any]:
    """Where the work runs: a ``distributed.Client`` to ``--scheduler``; an embedded
    LocalCluster with ``--workers``; otherwise dask's threaded scheduler in this process
    when the data (``nbytes`` as stored) fit in memory (a quarter of what is available:
    no cluster to start, no round trips), else a LocalCluster. Says which in one line."""
    from distributed import Client, LocalCluster

    if not args.scheduler and not args.workers and nbytes is not None:
        import dask

        from .engine import schedule

        if nbytes <= schedule.memory_budget():
            console.info(f"scheduler: dask's threads, in this process ({nbytes / 1e6:.0f} MB "
                         "of data; --workers N or --scheduler ADDRESS for a cluster)")
            with dask.config.set(scheduler="threads"):
                yield None
            return
    if args.scheduler:
        security = None
        if args.tls_ca_file or args.tls_cert or args.tls_key:
            from distributed.security import Security

            for opt in ("tls_ca_file", "tls_cert", "tls_key"):
                f = getattr(args, opt)
                if f and not Path(f).is_file():
                    raise UserError(f"--{opt.replace('_', '-')}: no such file: {f}")
            security = Security(tls_ca_file=args.tls_ca_file, tls_client_cert=args.tls_cert,
                                tls_client_key=args.tls_key, require_encryption=True)
        import dask

        before = {k: dask.config.get(k, None) for k in ("scheduler", "shuffle")}
        previous = _default_client()
        try:
            client = Client(args.scheduler, security=security, timeout=args.connect_timeout)
        except (OSError, TypeError, ValueError) as e:  # TimeoutError is an OSError
            # a Client that failed to connect can stay registered as the default one
            # (and dask pointed at it): every later computation of this process would
            # wait for it. Undo that: cli.main may run inside a notebook or a test.
            stale = _default_client()
            if stale is not None and stale is not previous:
                stale.close()
            dask.config.set(before)
            hint = ""
            if args.scheduler.startswith("tls://") and security is None:
                hint = " (a tls:// scheduler needs --tls-ca-file, --tls-cert and --tls-key)"
            raise UserError(f"cannot reach the scheduler at {args.scheduler}: {e}{hint}") from e
        console.info(f"cluster: {args.scheduler} "
                    f"({len(client.scheduler_info().get('workers', {}))} workers)")
        try:
            yield client
        finally:
            client.close()
        return
    n_cores = os.cpu_count() or 1
    threads = args.threads_per_worker or 1
    workers = args.workers or max(1, n_cores // threads)
    cluster = LocalCluster(
        n_workers=workers, threads_per_worker=threads, memory_limit=args.memory_limit,
        host="127.0.0.1", dashboard_address="127.0.0.1:0", processes=True,
    )
    client = Client(cluster)
    console.info(f"cluster: local, {workers} workers x {threads} threads, "
                f"memory limit {args.memory_limit}/worker; dashboard {client.dashboard_link}")
    try:
        yield client
    finally:
        client.close()
        cluster.close()


# --------------------------------------------------------------------- commands


def _is_url(where: Any) -> bool:
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


def _storage_options(args: argparse.Namespace, *where: Any) -> dict[str, Any] | None:
    """The command's --storage-option values (None when there are none); refused when
    none of ``where`` (its store and outputs) is a URL."""
    items = getattr(args, "storage_option", None) or []
    if not items:
        return None
    if not any(_is_url(w) for w in where):
        raise UserError("--storage-option applies to stores at URLs (s3://bucket/data.zarr); "
                        f"this command's stores are local paths: {', '.join(map(str, where))}")
    return parse_storage_options(items)


def _open_split(store: str, split: str,
                storage_options: dict[str, Any] | None = None) -> tuple[Any, Any]:
    from . import io
    from .engine.source import open_dataset, open_source

    url = _is_url(store)
    if not url and not Path(store).exists():
        raise UserError(f"{store}: no such store (make one with 'daskmeans ingest')")
    where: Any = store if url else Path(store)
    so = storage_options if url else None
    try:  # the rows as a source (read block by block in the tasks), the labels as dask
        return (open_source(where, split, storage_options=so),
                open_dataset(where, split, storage_options=so)[1])
    except (io.StoreError, ImportError) as e:
        raise UserError(str(e)) from e


def _check_k(k: int, n: int, what: str = "--k") -> None:
    if k < 1:
        raise UserError(f"{what} must be >= 1, got {k}")
    if k > n:
        raise UserError(f"{what} {k} is larger than the number of samples ({n})")


def _metric(args: argparse.Namespace) -> dict[str, str]:
    """The estimator keyword for --metric of fit and sweep (none when euclidean, the
    default, or for commands without it)."""
    metric = str(getattr(args, "metric", None) or "euclidean")
    if metric == "manhattan" and args.algorithm != "lloyd":
        raise UserError("--metric manhattan (k-medians) needs --algorithm lloyd")
    if metric != "euclidean" and args.algorithm == "bisecting":
        raise UserError(f"--algorithm bisecting is Euclidean, got --metric {metric}")
    return {} if metric == "euclidean" else {"metric": metric}


def _estimator(algorithm: str, k: int, args: argparse.Namespace, console: Console) -> Any:
    from . import BisectingKMeans, KMeans, MiniBatchKMeans
    from .validation import InvalidParameterError, validate_params

    params: dict[str, Any] = {"n_clusters": k, "random_state": args.seed,
                              "callback": console.progress}
    if getattr(args, "init", None):
        params["init"] = args.init
    if getattr(args, "max_iter", None):
        params["max_iter"] = args.max_iter
    params |= _metric(args)
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


def _check_model(est: Any, X: Any, model: str) -> None:
    """The model's features against the data's, before any cluster starts."""
    if X.shape[1] != est.n_features_in_:
        raise UserError(f"{model} was fitted on {est.n_features_in_} features; this split "
                        f"has {X.shape[1]}")


def _writable_dir(path: Path) -> Path:
    from . import io

    try:
        return io.ensure_writable_dir(path)
    except OSError as e:
        raise UserError(str(e)) from e


def cmd_ingest(args: argparse.Namespace, console: Console) -> int:
    from . import datasets, io

    so = _storage_options(args, args.out)
    url = _is_url(args.out)
    out: Any = args.out if url else Path(args.out)
    if not url:
        _writable_dir(out.parent if out.parent != Path("") else Path("."))
    t0 = time.perf_counter()
    if args.kind == "image":
        if not args.path:
            raise UserError("ingest image needs the photo's path")
        if url:
            raise UserError("ingest image writes a local store: --out must be a path")
        io.image_to_zarr(args.path, out, tile=args.tile)
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
        io.synthetic_scene(out, h, w, tile=min(args.tile, 512))
        console.say(f"wrote a synthetic {h}x{w} scene of 6 bands, 5 classes, nodata 0 "
                    f"outside a tilted swath -> {out}")
        return 0
    spec = datasets.MNIST if args.kind == "mnist" else datasets.FASHION_MNIST
    source = args.source or (args.path if args.path else None)
    try:  # to a URL: written locally, then uploaded with its root metadata last
        if source:
            store = io.ingest(source, out, name=spec.name, chunk_rows=args.chunk_rows,
                              progress=console.progress, storage_options=so)
        else:
            import shutil

            cached = datasets.fetch(spec, chunk_rows=args.chunk_rows)  # download + verify
            if url:
                io.upload_store(cached, out, storage_options=so)
            else:
                with io.atomic_dir(out) as tmp:
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


def cmd_fit(args: argparse.Namespace, console: Console) -> int:
    from . import metrics, save_model

    _metric(args)
    X, y = _open_split(args.store, args.split, _storage_options(args, args.store))
    _check_k(args.k, X.shape[0])
    _writable_dir(Path(args.model).resolve().parent)
    est = _estimator(args.algorithm, args.k, args, console)  # parameters checked here
    with dask_cluster(args, console, _nbytes(X)):
        t0 = time.perf_counter()
        est.fit(X)
        secs = time.perf_counter() - t0
        mapping = metrics.infer_cluster_labels(y, est.labels_)
    path = save_model(est, args.model, mapping=mapping,  # never the storage options: secrets
                      extra={"store": str(args.store), "split": args.split})
    console.say(f"fitted {type(est).__name__}(K={args.k}) on {X.shape[0]} x {X.shape[1]} in "
                f"{secs:.1f}s: inertia {est.inertia_:.6g}, {est.n_iter_} iterations")
    console.say(f"model -> {path}")
    return 0


def _load(model: str) -> tuple[Any, dict[str, Any]]:
    from . import load_model
    from .cluster import ModelFormatError

    try:
        return load_model(model)
    except (FileNotFoundError, ModelFormatError) as e:
        raise UserError(str(e)) from e


def cmd_predict(args: argparse.Namespace, console: Console) -> int:
    from . import io
    from .engine import schedule

    so = _storage_options(args, args.store, args.out)
    est, _ = _load(args.model)
    X, _ = _open_split(args.store, args.split, so)
    _check_model(est, X, args.model)
    with dask_cluster(args, console, _nbytes(X)):
        labels = est.predict(X)
        # A local --out is written into a temporary directory renamed into place (atomic).
        # An s3:// --out is written in place by the tasks, chunk by chunk (each object put
        # whole), with the group's root metadata last: the URL opens as a store only once
        # every label is written, and a failed write deletes what it wrote when it can.
        # S3 cannot swap the old store for the new one in one step: the old one is gone
        # from the start of the write (see io.write_group).
        try:
            with io.write_group(args.out, storage_options=so if _is_url(args.out) else None
                                ) as group:
                group.attrs.update({"model": str(args.model), "store": str(args.store),
                                    "split": args.split})
                arr = group.create_array("labels", shape=labels.shape, dtype=np.int32,
                                         chunks=(labels.chunks[0][0],))
                schedule.compute(io.store_blocks(labels, arr), n_tasks=labels.numblocks[0])
        except ImportError as e:
            raise UserError(str(e)) from e
    console.say(f"labels of {labels.shape[0]} rows -> {args.out} (array 'labels', int32)")
    return 0


def cmd_evaluate(args: argparse.Namespace, console: Console) -> int:
    from . import metrics

    est, header = _load(args.model)
    X, y = _open_split(args.store, args.split, _storage_options(args, args.store))
    _check_model(est, X, args.model)
    with dask_cluster(args, console, _nbytes(X)):  # scores and inertia from one pass over X
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


def _sweep(X: Any, y: Any, Xt: Any, yt: Any, ks: Sequence[int], args: argparse.Namespace,
           console: Console, out: Path, meta: dict[str, Any]
           ) -> tuple[list[dict[str, Any]], list[Path]]:
    from . import metrics, plot

    def report(row: dict[str, Any]) -> None:
        detail = f"K={row['k']} purity {row['purity']:.3f}"
        if console.tty:
            console.progress("sweep", ks.index(row["k"]) + 1, len(ks), detail)
        else:  # no bar to show it: one line per K
            console.info(f"  sweep {ks.index(row['k']) + 1}/{len(ks)}: {detail}")

    rows = metrics.sweep(X, y, ks, X_test=Xt, y_test=yt, algorithm=args.algorithm,
                         random_state=args.seed, callback=report, meta=meta,
                         silhouette_sample_size=getattr(args, "silhouette_sample", 1000) or None,
                         **_metric(args))
    console.end_progress()
    files = [metrics.write_csv(rows, out / "sweep.csv"),
             metrics.write_json(rows, out / "sweep.json")]
    (out / "sweep.md").write_text(metrics.to_markdown(rows) + "\n" + _recommendation(rows)
                                  + "\n")
    files.append(out / "sweep.md")
    files.append(plot.sweep_curves(rows, out / "sweep.png"))
    files.append(plot.elbow_curve([r["k"] for r in rows], [r["inertia"] for r in rows],
                                  out / "elbow.png"))
    return rows, files


def _recommendation(rows: Sequence[dict[str, Any]]) -> str:
    from . import metrics

    return "recommendation: " + metrics.choose_k(rows)["message"]


def cmd_sweep(args: argparse.Namespace, console: Console) -> int:
    from . import metrics

    ks = _parse_ks(args.k)
    _metric(args)
    if args.silhouette_sample < 0 or args.silhouette_sample == 1:
        raise UserError(f"--silhouette-sample must be 0 or >= 2, got {args.silhouette_sample}")
    out = _writable_dir(Path(args.out))
    so = _storage_options(args, args.store)
    X, y = _open_split(args.store, args.split, so)
    for k in ks:
        _check_k(k, X.shape[0])
    Xt = yt = None
    if args.test_split:
        Xt, yt = _open_split(args.store, args.test_split, so)
    meta = {"dataset": _dataset_name(args.store), "split": args.split}
    if args.test_split:
        meta["heldout_split"] = args.test_split
    with dask_cluster(args, console, _nbytes(X) + (_nbytes(Xt) if Xt is not None else 0)):
        rows, files = _sweep(X, y, Xt, yt, ks, args, console, out, meta)
    from . import plot

    files.append(plot.report_page(out / "report.html", f"K sweep: {args.store}", [
        ("p", ", ".join(f"{k} {v}" for k, v in meta.items())), ("table", rows),
        ("p", _recommendation(rows)), ("img", out / "sweep.png"), ("img", out / "elbow.png")]))
    console.say(metrics.to_markdown(rows))
    console.say(_recommendation(rows))
    for f in files:
        console.say(f"  -> {f}")
    return 0


def _quantize(photo: Any, colors: int, out: Path, seed: int, store: Path | None,
              console: Console, label: str) -> list[Path]:
    from . import plot
    from .quantization import assign_colors, quantize, random_palette_psnr

    t0 = time.perf_counter()
    q = quantize(photo, colors, random_state=seed, store=store, progress=console.progress)
    rand_pal, psnr_random = random_palette_psnr(q.image, colors, random_state=seed)
    png = q.to_png(out)
    side = out.with_name(out.stem + "-comparison.png")
    h, w = q.labels.shape
    stride = max(1, int(np.ceil(np.sqrt(h * w / 4e6))))
    original = q.image[::stride, ::stride].compute()
    # the picture shows the very palette whose PSNR the title states, on the preview
    rand_img = rand_pal[assign_colors(original, rand_pal)]
    plot.quantize_comparison(original, q.preview(4_000_000), rand_img, side, n_colors=colors,
                             psnr_kmeans=q.psnr or 0.0, psnr_random=psnr_random)
    console.say(f"quantised {label} ({h}x{w}) to {colors} colours in "
                f"{time.perf_counter() - t0:.1f}s: PSNR {q.psnr:.2f} dB with K-means colours, "
                f"{psnr_random:.2f} dB with {colors} random colours")
    files = [png, side]
    if store is not None:
        files.append(store)
    return files


def _image_nbytes(photo: Path) -> int | None:
    """Bytes of a photo's RGB pixels from its header (nothing decoded), or of an image
    store's array; None when neither says."""
    try:
        if photo.is_dir():
            import zarr

            node = zarr.open(photo, mode="r")
            arrays = [node] if isinstance(node, zarr.Array) else [a for _, a in node.arrays()]
            return sum(int(a.nbytes) for a in arrays)
        from PIL import Image

        with Image.open(photo) as im:  # reads the header only
            return int(im.width) * int(im.height) * 3
    except Exception:  # unreadable here: _quantize reports it properly
        return None


SAMPLES = ("china", "flower")  # scikit-learn's bundled photos (sklearn.datasets)


def cmd_quantize(args: argparse.Namespace, console: Console) -> int:
    if (args.photo is None) == (args.sample is None):
        raise UserError("quantize needs a photo (a file or an image store) or --sample "
                        f"{'|'.join(SAMPLES)}, not both")
    photo: Any
    if args.sample:
        from sklearn.datasets import load_sample_image

        label = f"{args.sample}.jpg"
        photo = load_sample_image(label)
        nbytes: int | None = photo.nbytes
    else:
        photo = Path(args.photo)
        if not photo.exists():
            raise UserError(f"{photo}: no such image or image store")
        label, nbytes = str(photo), _image_nbytes(photo)
    out = Path(args.out)
    _writable_dir(out.resolve().parent)
    with dask_cluster(args, console, nbytes):
        files = _quantize(photo, args.colors, out, args.seed,
                          Path(args.store) if args.store else None, console, label)
    for f in files:
        console.say(f"  -> {f}")
    return 0


def _nodata_arg(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return float(text)  # "nan" too
    except ValueError as e:
        raise UserError(f"--nodata must be a number or nan, got {text!r}") from e


def _segment(scene: Any, k: int, out: Any, preview: Path | None, args: argparse.Namespace,
             console: Console, label: str,
             storage_options: dict[str, Any] | None = None) -> list[Any]:
    from . import plot
    from .segmentation import segment

    t0 = time.perf_counter()
    seg = segment(scene, k, out, feature_dim=args.feature_dim, variable=args.variable,
                  nodata=_nodata_arg(args.nodata), full=args.full,
                  sample_size=args.sample_size, random_state=args.seed,
                  storage_options=storage_options, progress=console.progress)
    console.end_progress()
    shape = "x".join(map(str, seg.labels.shape))
    how = "all pixels" if seg.n_fit == int(np.prod(seg.labels.shape)) else f"{seg.n_fit} pixels"
    console.say(f"segmented {label} ({shape}, {len(seg.bands)} bands) into {k} clusters in "
                f"{time.perf_counter() - t0:.1f}s (fitted on {how}; nodata "
                f"{seg.nodata if seg.nodata is not None else 'none'} -> label -1)")
    files: list[Any] = [out]
    if preview is not None:
        files.append(plot.segment_preview(seg.preview(), seg.centers, seg.bands, preview,
                                          title=label))
    return files


def cmd_segment(args: argparse.Namespace, console: Console) -> int:
    from . import io

    _check_k(args.k, 1 << 62)
    if args.sample_size < args.k:
        raise UserError(f"--sample-size must be >= --k ({args.k}), got {args.sample_size}")
    _nodata_arg(args.nodata)
    so = _storage_options(args, args.scene, args.out)
    scene: Any = args.scene if _is_url(args.scene) else Path(args.scene)
    if isinstance(scene, Path) and not scene.exists():
        raise UserError(f"{scene}: no such Zarr store")
    out: Any = args.out if _is_url(args.out) else Path(args.out)
    if isinstance(out, Path):
        _writable_dir(out.resolve().parent)
    if args.preview:
        _writable_dir(Path(args.preview).resolve().parent)
    try:
        raster = io.open_raster(scene, args.feature_dim, variable=args.variable,
                                storage_options=so if _is_url(args.scene) else None)
    except (io.StoreError, FileNotFoundError) as e:
        raise UserError(str(e)) from e
    nbytes = int(np.prod(raster.data.shape)) * raster.data.dtype.itemsize
    label = str(scene) if _is_url(args.scene) else scene.name
    with dask_cluster(args, console, nbytes):
        files = _segment(scene, args.k, out, Path(args.preview) if args.preview else None,
                         args, console, label, so)
    for f in files:
        console.say(f"  -> {f}")
    return 0


# --------------------------------------------------------------------- demo


@contextlib.contextmanager
def _quiet_log(name: str) -> Iterator[None]:
    """Silence one logger below ERROR for a while (the caller says it all in a line)."""
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _demo_data(args: argparse.Namespace, console: Console, out: Path) -> tuple[Path, str, str]:
    """The demo's data: ``(store, name, where it came from)``.

    In order: MNIST from ``--source`` / ``$DASKMEANS_MNIST_DIR`` (an explicit copy: its
    errors are the user's to see); MNIST from the cache or a mirror; a local
    Fashion-MNIST (the cache, or Debian's ``dataset-fashion-mnist``); scikit-learn's
    bundled 8x8 digits.
    """
    from . import datasets, io

    source = args.source or os.environ.get("DASKMEANS_MNIST_DIR")
    if source:
        return (datasets.fetch_mnist(source=source, data_home=out / "data"), "MNIST",
                f"the local copy in {source}")
    console.info("looking for MNIST (cache, then its mirrors; 10 s timeout each) ...")
    with _quiet_log("daskmeans.datasets"):
        try:
            return (datasets.fetch_mnist(data_home=args.data_home, timeout=10), "MNIST",
                    "downloaded or cached")
        except (OSError, io.DataFormatError) as e:
            why = f"MNIST cannot be downloaded ({str(e).split(': http')[0]})"
        try:  # no download: only a copy already on this machine
            store = datasets.fetch_fashion_mnist(data_home=args.data_home, mirrors=())
            import zarr

            origin = zarr.open_group(store, mode="r").attrs.get("origin", store)
            return store, "Fashion-MNIST", f"{why}; using the Fashion-MNIST found at {origin}"
        except (OSError, io.DataFormatError):
            pass
    from sklearn.datasets import load_digits

    d = load_digits()
    images = np.rint(d.images * (255 / 16)).astype(np.uint8)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(images))
    tr, te = order[:1400], order[1400:]
    store = io.arrays_to_dataset({"train": (images[tr], d.target[tr]),
                                  "test": (images[te], d.target[te])},
                                 out / "data" / "digits.zarr", name="digits", chunk_rows=500)
    return store, "digits", (f"{why} and no local MNIST or Fashion-MNIST was found; using "
                             "scikit-learn's bundled 8x8 digits (set DASKMEANS_MNIST_DIR or "
                             "--source to use MNIST)")


def _demo_segment(args: argparse.Namespace, console: Console, out: Path) -> list[Path]:
    """Segment a multi-band scene with nodata borders; score it against its classes."""
    import zarr

    from . import io, metrics

    # No multi-band scene ships in the packages we depend on (scikit-learn, matplotlib,
    # xarray, scipy carry RGB photos, a DEM and test NetCDFs): a synthetic one it is.
    console.info("segmenting a synthetic 6-band scene ...")
    scene = io.synthetic_scene(out / "scene.zarr", 768, 1024, tile=256,
                               random_state=args.seed)
    seg_args = argparse.Namespace(feature_dim="band", variable="reflectance", nodata=None,
                                  full=False, sample_size=50_000, seed=args.seed)
    files = _segment(scene, 5, out / "scene-labels.zarr", out / "scene-labels.png", seg_args,
                     console, "synthetic 6-band scene")
    truth = np.asarray(zarr.open_array(scene / "classes", mode="r")[:])
    got = np.asarray(zarr.open_array(out / "scene-labels.zarr" / "labels", mode="r")[:])
    inside = truth >= 0
    ari = metrics.adjusted_rand_score(truth[inside], got[inside])
    console.say(f"  (no multi-band image ships in the installed packages: a synthetic 768x1024 "
                f"scene of 5 known classes, nodata outside a tilted swath; adjusted Rand "
                f"index {ari:.4f} on its {int(inside.sum())} valid pixels, "
                f"{int((got[~inside] == -1).mean() * 100)}% of nodata pixels labelled -1)")
    return [scene, *files]


def cmd_demo(args: argparse.Namespace, console: Console) -> int:
    import dask
    import zarr

    from . import metrics, plot, save_model
    from .engine.source import open_dataset

    out = _writable_dir(Path(args.out))
    store, name, where = _demo_data(args, console, out)
    splits = list(zarr.open_group(store, mode="r").attrs["splits"])  # type: ignore[arg-type]
    if "train" in splits:
        X, y = open_dataset(store, "train")
        Xt, yt = open_dataset(store, "test")
        how = "fit on train, evaluate on test"
    else:  # the offline MNIST copy has only the 10k test split: hold part of it out
        Xa, ya = open_dataset(store, "test")
        cut = int(Xa.shape[0] * 0.8)
        X, y, Xt, yt = Xa[:cut], ya[:cut], Xa[cut:], ya[cut:]
        how = f"only the test split is present: fit on its first {cut}, evaluate on the rest"
    console.say(f"data: {name}, {X.shape[0]} + {Xt.shape[0]} images of {X.shape[1]} pixels: "
                f"{where}")
    console.say(f"  store {store}; {how}")
    ks = [k for k in TUTORIAL_KS if k <= X.shape[0] // 4]
    k_main = ks[-1]
    files: list[Path] = []
    with dask_cluster(args, console, _nbytes(X) + _nbytes(Xt)) as client:
        if client is None:  # in this process: the data fit in a quarter of the memory
            # numpy arrays: the scaled rows read and decoded once, not again in every
            # fit, mini-batch step, prediction and score of the demo, and no graph to
            # build per step
            X, y, Xt, yt = dask.compute(X, y, Xt, yt)
        Xs, ys = X[:36], y[:36]
        if client is not None:
            Xs, ys = dask.compute(Xs, ys)
        files.append(plot.sample_grid(Xs, ys, out / "samples.png", title=f"{name} samples"))
        t0 = time.perf_counter()
        console.info(f"fitting K={k_main} on {X.shape[0]} images ...")
        est = _estimator(args.algorithm, k_main, args, console).fit(X)
        mapping = metrics.infer_cluster_labels(y, est.labels_)
        r = metrics.evaluate(yt, est.predict(Xt), mapping=mapping)
        console.end_progress()
        fitted = (f"K={k_main} {type(est).__name__}: fit in {time.perf_counter() - t0:.1f}s; "
                  f"held-out accuracy {r['accuracy']:.4f}, purity {r['purity']:.4f}, "
                  f"homogeneity {r['homogeneity']:.4f}; inertia {est.inertia_:.6g}")
        console.say(fitted)
        files.append(save_model(est, out / "model.npz", mapping=mapping,
                                extra={"dataset": name}))
        files.append(plot.centroid_grid(est.cluster_centers_, out / "centroids.png",
                                        mapping=mapping))
        console.info("fitting K=10 for the contingency table ...")
        k10 = _estimator(args.algorithm, 10, args, console).fit(X)
        c = metrics.contingency(y, k10.labels_)
        files.append(plot.contingency_heatmap(c.table, c.classes, c.clusters,
                                              out / "contingency_k10.png",
                                              title=f"{name}, K=10: true class x cluster"))
        metrics.contingency_frame(c).to_csv(out / "contingency_k10.csv")
        metrics.purity_table(c).to_csv(out / "purity_k10.csv")
        files += [out / "contingency_k10.csv", out / "purity_k10.csv"]
        sil = metrics.silhouette(X, k10.labels_, sample_size=1000, random_state=args.seed)
        files.append(plot.silhouette_plot(
            sil.values, sil.labels, out / "silhouette_k10.png", score=sil.score,
            standard_error=sil.standard_error,
            title=f"{name}, K=10: silhouette of {sil.index.size} random rows "
                  f"(against all {sil.n_samples})"))
        try:
            files.append(plot.pca_view(X, y, k10.labels_, out / "pca_k10.png",
                                       centers=k10.cluster_centers_, random_state=args.seed))
        except (NotImplementedError, ImportError) as e:  # query planning; no dask-ml
            console.say(f"PCA view skipped: {e}")
        split = "train" if "train" in splits else f"test[:{X.shape[0]}]"
        held = "test" if "train" in splits else f"test[{X.shape[0]}:]"
        console.info(f"the tutorials' sweep over K = {', '.join(map(str, ks))} ...")
        rows, sweep_files = _sweep(X, y, Xt, yt, ks, args, console, out,
                                   {"dataset": name, "split": split, "heldout_split": held})
        files += sweep_files
        console.say(metrics.to_markdown(rows))
        console.say(_recommendation(rows))
        from sklearn.datasets import load_sample_image

        console.info("quantising china.jpg to 64 colours ...")
        files += _quantize(load_sample_image("china.jpg"), 64, out / "china-64.png", args.seed,
                           None, console, "china.jpg")
        files += _demo_segment(args, console, out)
    files.append(plot.report_page(out / "report.html", f"daskmeans demo: {name}", [
        ("p", f"{name}: {X.shape[0]} + {Xt.shape[0]} images of {X.shape[1]} pixels; {how}"),
        ("img", out / "samples.png"),
        ("h", f"K={k_main}"), ("p", fitted), ("img", out / "centroids.png"),
        ("h", "K=10: contingency, purity, silhouette, PCA view"),
        ("img", out / "contingency_k10.png"),
        ("table", metrics.purity_table(c).reset_index().to_dict("records")),
        ("img", out / "silhouette_k10.png"), ("img", out / "pca_k10.png"),
        ("h", "Choosing K"), ("table", rows), ("p", _recommendation(rows)),
        ("img", out / "sweep.png"), ("img", out / "elbow.png"),
        ("h", "Colour quantisation"), ("img", out / "china-64-comparison.png"),
        ("h", "A multi-band scene"), ("img", out / "scene-labels.png")]))
    console.say(f"demo finished in {time.perf_counter() - STARTED:.0f}s (wall clock); "
                "outputs:")
    for f in files:
        console.say(f"  {f}")
    return 0


# --------------------------------------------------------------------- parser


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Examples kept as written, and every option's default shown (where there is one
    and its help does not already say it)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        help_ = action.help or ""
        if (action.default not in (None, False, argparse.SUPPRESS)
                and "default" not in help_ and action.option_strings):
            help_ += " (default: %(default)s)"
        return help_


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    g = common.add_argument_group("cluster and output")
    g.add_argument("--scheduler", metavar="ADDRESS",
                   help="use this dask.distributed scheduler (tcp://host:8786 or tls://...) "
                        "instead of an embedded LocalCluster")
    g.add_argument("--tls-ca-file", help="CA certificate for a tls:// scheduler")
    g.add_argument("--tls-cert", help="client certificate for a tls:// scheduler")
    g.add_argument("--tls-key", help="client key for a tls:// scheduler")
    g.add_argument("--connect-timeout", type=float, default=10, metavar="SECONDS",
                   help="give up connecting to --scheduler after this long")
    g.add_argument("--workers", type=int, help="LocalCluster workers (default: cores)")
    g.add_argument("--threads-per-worker", type=int, default=1,
                   help="threads of each LocalCluster worker")
    g.add_argument("--memory-limit", default="4GiB", help="per LocalCluster worker")
    g.add_argument("--log-level", default="warning",
                   choices=["debug", "info", "warning", "error"],
                   help="debug also shows tracebacks")
    g.add_argument("--quiet", action="store_true", help="no progress bars")
    g.add_argument("--seed", type=int, default=0, help="random_state")

    remote = argparse.ArgumentParser(add_help=False)
    r = remote.add_argument_group("object storage")
    r.add_argument("--storage-option", action="append", metavar="KEY=VALUE",
                   help="fsspec option for stores at URLs (s3://bucket/data.zarr), "
                        "repeatable: endpoint_url=http://127.0.0.1:5555, anon=false, "
                        "config_kwargs.retries.max_attempts=3 (dotted keys nest; true/false, "
                        "integers and decimals are parsed, anything else stays a string). "
                        "Credentials are better left to s3fs's environment variables or "
                        "profile: a command line is visible to other users")

    from . import __version__

    p = argparse.ArgumentParser(
        prog="daskmeans", description="Distributed, out-of-core K-means on Dask and Zarr.",
        epilog=__doc__.split("Examples::", 1)[1], parents=[common],
        formatter_class=_HelpFormatter)
    p.add_argument("--version", action="version", version=f"daskmeans {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, help_: str, example: str, url: bool = False) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help_, description=help_,
                              parents=[common, remote] if url else [common],
                              epilog="example:\n  " + example, formatter_class=_HelpFormatter)

    s = add("ingest", "IDX files or a photo -> chunked Zarr store",
            "daskmeans ingest mnist --source ../shared/data/mnist --out mnist.zarr", url=True)
    s.add_argument("kind", choices=["mnist", "fashion-mnist", "image", "synthetic-scene"],
                   help="what to ingest (synthetic-scene: a multi-band scene with known "
                        "classes and nodata borders, --size HxW)")
    s.add_argument("path", nargs="?", help="the photo (image) or a directory of IDX files")
    s.add_argument("--source", help="directory with the IDX files (else download)")
    s.add_argument("--out", required=True, help="destination store (a path, or for mnist "
                                                "and fashion-mnist a URL: s3://bucket/x.zarr)")
    s.add_argument("--chunk-rows", type=int, default=10_000, help="images per Zarr chunk")
    s.add_argument("--tile", type=int, default=1024, help="image: tile side in pixels")
    s.add_argument("--size", default="1024x1024",
                   help="synthetic-scene: height x width in pixels")

    algo: dict[str, Any] = {"choices": ["lloyd", "minibatch", "bisecting"], "default": "lloyd"}
    metric: dict[str, Any] = {
        "choices": ["euclidean", "cosine", "manhattan"], "default": "euclidean",
        "help": "distance: manhattan is k-medians (L1 distance, coordinate-wise medians; "
                "--algorithm lloyd)"}
    s = add("fit", "fit K-means on a split of a store and save the model",
            "daskmeans fit mnist.zarr --split test --k 256 --algorithm minibatch "
            "--model mnist256.npz", url=True)
    s.add_argument("store", help="a store written by 'daskmeans ingest' (or any Zarr array), "
                                 "a path or a URL")
    s.add_argument("--k", type=int, required=True, help="number of clusters")
    s.add_argument("--split", default="train", help="the split to fit")
    s.add_argument("--algorithm", help="Lloyd (exact; pruned with bounds), mini-batch, or "
                                       "bisecting K-means (a tree of 2-means splits)", **algo)
    s.add_argument("--metric", **metric)
    s.add_argument("--init", choices=["k-means++", "k-means||", "random"],
                   help="initialisation (default: k-means++; k-means|| for minibatch)")
    s.add_argument("--max-iter", type=int, help="Lloyd iterations, or mini-batch epochs")
    s.add_argument("--refine", type=int,
                   help="mini-batch: full Lloyd iterations at the end (e.g. --max-iter 1 "
                        "--refine 6: within 1%% of converged Lloyd, in a tenth of its time)")
    s.add_argument("--model", required=True, help="output .npz (no pickle)")

    s = add("predict", "cluster labels of a split, written chunk by chunk to Zarr",
            "daskmeans predict mnist.zarr --model mnist256.npz --out labels.zarr", url=True)
    s.add_argument("store", help="a store written by 'daskmeans ingest' (a path or a URL)")
    s.add_argument("--model", required=True, help="a model written by 'daskmeans fit'")
    s.add_argument("--split", default="test", help="the split to label")
    s.add_argument("--out", required=True,
                   help="destination Zarr store of the labels (a path or a URL)")

    s = add("evaluate", "accuracy, purity, homogeneity, inertia of a model on a split",
            "daskmeans evaluate mnist.zarr --model mnist256.npz --split test", url=True)
    s.add_argument("store", help="a store written by 'daskmeans ingest' (a path or a URL)")
    s.add_argument("--model", required=True, help="a model written by 'daskmeans fit'")
    s.add_argument("--split", default="test", help="the split to score")
    s.add_argument("--json", action="store_true", help="print JSON instead of a table")

    s = add("sweep", "the tutorials' table over K, with figures",
            "daskmeans sweep mnist.zarr --split test --k 10,16,36,64,144,256 --out sweep/",
            url=True)
    s.add_argument("store", help="a store written by 'daskmeans ingest' (a path or a URL)")
    s.add_argument("--k", default=",".join(map(str, TUTORIAL_KS)),
                   help="comma-separated numbers of clusters")
    s.add_argument("--split", default="train", help="the split to fit")
    s.add_argument("--test-split", help="also score a held-out split")
    s.add_argument("--algorithm", help="Lloyd or mini-batch (faster over many K)",
                   **{**algo, "default": "minibatch"})
    s.add_argument("--metric", **metric)
    s.add_argument("--silhouette-sample", type=int, default=1000, metavar="ROWS",
                   help="rows whose silhouette (against all rows) estimates each K's; "
                        "0: no silhouette column")
    s.add_argument("--out", required=True, help="directory for the table and figures")

    s = add("quantize", "reduce a photo to N colours (K-means vs random colours)",
            "daskmeans quantize --sample china --colors 64 --out china64.png")
    s.add_argument("photo", nargs="?",
                   help="an image file or a store from 'daskmeans ingest image'")
    s.add_argument("--sample", choices=SAMPLES,
                   help="instead of a photo: one of scikit-learn's bundled photos")
    s.add_argument("--colors", type=int, default=64, help="palette size")
    s.add_argument("--out", required=True, help="output PNG")
    s.add_argument("--store", help="also write the labels as a Zarr store here")

    s = add("segment", "cluster the pixels of a multi-band Zarr raster by their spectra",
            "daskmeans segment scene.zarr --k 5 --feature-dim band --out scene-labels.zarr "
            "--preview scene.png", url=True)
    s.add_argument("scene", help="a Zarr array (band, y, x) / (y, x, band), or a group "
                                 "as xarray writes a Dataset")
    s.add_argument("--k", type=int, required=True, help="number of clusters")
    s.add_argument("--feature-dim", help="the band dimension: a name or an axis number "
                                         "(default: the first axis of a 3-D array)")
    s.add_argument("--variable", help="the array of a group to segment (default: the "
                                      "largest-rank arrays, stacked)")
    s.add_argument("--nodata", help="value of missing pixels, or nan (default: the store's "
                                    "'nodata' attribute); they get label -1")
    s.add_argument("--full", action="store_true",
                   help="fit on every pixel instead of a sample")
    s.add_argument("--sample-size", type=int, default=200_000,
                   help="pixels the model is fitted on, drawn over the whole scene")
    s.add_argument("--out", required=True, help="Zarr store for the label map")
    s.add_argument("--preview", help="also draw the map and the centres' spectra (PNG)")

    s = add("demo", "the whole MNIST pipeline end to end (offline: scikit-learn digits)",
            "DASKMEANS_MNIST_DIR=../shared/data/mnist daskmeans demo")
    s.add_argument("--source", help="directory with MNIST IDX files "
                                    "(default: $DASKMEANS_MNIST_DIR, else download)")
    s.add_argument("--data-home", help="download cache")
    s.add_argument("--out", default="daskmeans-output", help="directory for every output")
    s.add_argument("--algorithm", help="Lloyd or mini-batch", **{**algo, "default": "minibatch"})
    return p


COMMANDS = {
    "ingest": cmd_ingest, "fit": cmd_fit, "predict": cmd_predict, "evaluate": cmd_evaluate,
    "sweep": cmd_sweep, "quantize": cmd_quantize, "segment": cmd_segment,
    "demo": cmd_demo,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``daskmeans`` command; returns the exit status."""
    args = build_parser().parse_args(argv)
    console = Console(args.quiet)
    pkg, dist = logging.getLogger("daskmeans"), logging.getLogger("distributed")
    saved = (pkg.level, list(pkg.handlers), pkg.propagate, dist.level)
    _setup_logging(args.log_level, console)
    debug = args.log_level == "debug"
    try:
        return COMMANDS[args.command](args, console)
    except KeyboardInterrupt:
        console.end_progress()
        print("daskmeans: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `daskmeans evaluate ... | head`: the reader left, stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # Python's own advice: no second error at exit
        return 141
    except (UserError, OSError, ValueError, TimeoutError) as e:
        console.end_progress()
        if debug:
            raise
        print(f"daskmeans: error: {e}", file=sys.stderr)
        return 2
    finally:  # called in-process (tests, notebooks): leave logging as it was
        pkg.setLevel(saved[0])
        pkg.handlers[:] = saved[1]
        pkg.propagate = saved[2]
        dist.setLevel(saved[3])

if __name__ == "__main__":
    sys.exit(main())
