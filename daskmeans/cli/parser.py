"""The ``daskmeans`` command line: options shared by every command, then one function
per command adding its own."""

from __future__ import annotations

import argparse
import textwrap
from collections.abc import Callable
from typing import Any

from .images import SAMPLES
from .sweep import TUTORIAL_KS

__all__ = ["EXAMPLES", "build_parser"]

#: the examples ``daskmeans --help`` ends with
EXAMPLES = """
    daskmeans demo                                    # everything, offline-safe
    daskmeans ingest mnist --source ../shared/data/mnist --out mnist.zarr
    daskmeans fit mnist.zarr --split test --k 256 --algorithm minibatch --model mnist256.npz
    daskmeans evaluate mnist.zarr --model mnist256.npz --split test
    daskmeans predict mnist.zarr --model mnist256.npz --out labels.zarr
    daskmeans sweep mnist.zarr --split test --k 10,16,36,64,144,256 --out sweep/
    daskmeans report mnist256.npz mnist.zarr --sweep sweep/sweep.json --out report.html
    daskmeans export mnist256.npz --onnx mnist256.onnx --input uint8 --scale 1/255
    daskmeans quantize --sample china --colors 64 --out china64.png
    daskmeans segment scene.zarr --k 5 --feature-dim band --out scene-labels.zarr

Add --workers N for a LocalCluster, or --scheduler tcp://HOST:8786 for a running one.
"""

#: ``add(name, help, example, url=False)``: a subcommand's parser, with the shared
#: options (and the object-storage ones when its stores may be URLs)
AddCommand = Callable[..., argparse.ArgumentParser]

ALGORITHM: dict[str, Any] = {"choices": ["lloyd", "minibatch", "bisecting"], "default": "lloyd"}
METRIC: dict[str, Any] = {
    "choices": ["euclidean", "cosine", "manhattan"], "default": "euclidean",
    "help": "distance: manhattan is k-medians (L1 distance, coordinate-wise medians; "
            "--algorithm lloyd)"}


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Examples kept as written, and every option's default shown (where there is one
    and its help does not already say it)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        help_ = action.help or ""
        if (action.default not in (None, False, argparse.SUPPRESS)
                and "default" not in help_ and action.option_strings):
            help_ += " (default: %(default)s)"
        return help_


def _cluster_options() -> argparse.ArgumentParser:
    """Where the work runs and what is printed: options of every command."""
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
    return common


def _storage_options() -> argparse.ArgumentParser:
    """--storage-option: options of the commands whose stores may be URLs."""
    remote = argparse.ArgumentParser(add_help=False)
    r = remote.add_argument_group("object storage")
    r.add_argument("--storage-option", action="append", metavar="KEY=VALUE",
                   help="fsspec option for stores at URLs (s3://bucket/data.zarr), "
                        "repeatable: endpoint_url=http://127.0.0.1:5555, anon=false, "
                        "config_kwargs.retries.max_attempts=3 (dotted keys nest; true/false, "
                        "integers and decimals are parsed, anything else stays a string). "
                        "Credentials are better left to s3fs's environment variables or "
                        "profile: a command line is visible to other users")
    return remote


def _overwrite(s: argparse.ArgumentParser, what: str = "--out") -> None:
    """--overwrite: without it, a command refuses to replace what exists at its outputs."""
    s.add_argument("--overwrite", action="store_true",
                   help=f"replace what already exists at {what} (by default the command "
                        "refuses before doing any work); the new output is written beside "
                        "it and renamed into place")


def _add_ingest(add: AddCommand) -> None:
    s = add("ingest", "IDX files, a photo or a sparse matrix -> chunked Zarr store",
            "daskmeans ingest mnist --source ../shared/data/mnist --out mnist.zarr", url=True)
    s.add_argument("kind", choices=["mnist", "fashion-mnist", "image", "synthetic-scene",
                                    "npz", "docstrings"],
                   help="what to ingest (synthetic-scene: a multi-band scene with known "
                        "classes and nodata borders, --size HxW; npz: a sparse matrix "
                        "saved by scipy.sparse.save_npz, into a CSR store; docstrings: "
                        "TF-IDF of the Python standard library's docstrings, into a CSR "
                        "store)")
    s.add_argument("path", nargs="?", help="the photo (image), a directory of IDX files, "
                                           "or the .npz file (npz)")
    s.add_argument("--source", help="directory with the IDX files (else download)")
    s.add_argument("--out", required=True, help="destination store (a path, or for mnist "
                                                "and fashion-mnist a URL: s3://bucket/x.zarr)")
    s.add_argument("--chunk-rows", type=int, default=None,
                   help="rows per Zarr chunk (images: 10000 by default; sparse rows: "
                        "about 256 Ki stored values a chunk)")
    s.add_argument("--tile", type=int, default=1024, help="image: tile side in pixels")
    s.add_argument("--size", default="1024x1024",
                   help="synthetic-scene: height x width in pixels")
    _overwrite(s)


#: what fit and predict take as their store
ROWS_STORE = ("the rows: a dataset store written by 'daskmeans ingest', a Zarr array, or a "
              "Zarr group holding the array (see --array); a path or a URL")


def _array_option(s: argparse.ArgumentParser) -> None:
    """--array: which array of a Zarr group holds the rows."""
    s.add_argument("--array", metavar="NAME",
                   help="the array of rows, by its path in the store's group (e.g. vectors, "
                        "or an xarray Dataset's variable); default: a dataset store's "
                        "--split (--split applies to dataset stores only), else the array "
                        "X, else the group's only array of two or more dimensions")


def _add_models(add: AddCommand) -> None:
    """fit, predict and evaluate."""
    s = add("fit", "fit K-means on a split of a store and save the model",
            "daskmeans fit mnist.zarr --split test --k 256 --algorithm minibatch "
            "--model mnist256.npz", url=True)
    s.add_argument("store", help=ROWS_STORE)
    _array_option(s)
    s.add_argument("--k", type=int, required=True, help="number of clusters")
    s.add_argument("--split", default="train", help="the split to fit")
    s.add_argument("--algorithm", help="Lloyd (exact; pruned with bounds), mini-batch, or "
                                       "bisecting K-means (a tree of 2-means splits)",
                   **ALGORITHM)
    s.add_argument("--metric", **METRIC)
    s.add_argument("--init", choices=["k-means++", "k-means||", "random"],
                   help="initialisation (default: k-means++; k-means|| for minibatch)")
    s.add_argument("--max-iter", type=int, help="Lloyd iterations, or mini-batch epochs")
    s.add_argument("--refine", type=int,
                   help="mini-batch: full Lloyd iterations at the end (e.g. --max-iter 1 "
                        "--refine 6: close to converged Lloyd in a fraction of its time)")
    s.add_argument("--model", required=True, help="output .npz (no pickle)")
    _overwrite(s, "--model")

    s = add("predict", "cluster labels of a split, written chunk by chunk to Zarr",
            "daskmeans predict mnist.zarr --model mnist256.npz --out labels.zarr", url=True)
    s.add_argument("store", help=ROWS_STORE)
    _array_option(s)
    s.add_argument("--model", required=True, help="a model written by 'daskmeans fit'")
    s.add_argument("--split", default="test", help="the split to label")
    s.add_argument("--out", required=True,
                   help="destination Zarr store of the labels (a path or a URL)")
    _overwrite(s)

    s = add("evaluate", "accuracy, purity, homogeneity, inertia of a model on a split",
            "daskmeans evaluate mnist.zarr --model mnist256.npz --split test", url=True)
    s.add_argument("store", help="a store written by 'daskmeans ingest' (a path or a URL)")
    s.add_argument("--model", required=True, help="a model written by 'daskmeans fit'")
    s.add_argument("--split", default="test", help="the split to score")
    s.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _add_export(add: AddCommand) -> None:
    s = add("export", "a saved model as an ONNX graph (predict's labels and transform's "
            "distances) for onnxruntime and other runtimes",
            "daskmeans export mnist256.npz --onnx mnist256.onnx --input uint8 --scale 1/255")
    s.add_argument("model", help="a model written by 'daskmeans fit' (or save_model)")
    s.add_argument("--onnx", required=True, help="output .onnx file")
    s.add_argument("--input", choices=["float32", "float64", "uint8"], default="float32",
                   help="element type of the graph's input X")
    s.add_argument("--scale", help="the input holds raw stored values whose features are "
                                   "float32(raw) * scale, as a store's scale_factor (e.g. "
                                   "1/255 for pixels of 'daskmeans ingest'): the graph "
                                   "scales them as predict scales the store's rows; "
                                   "without it the input is the features")
    _overwrite(s, "--onnx")


def _add_sweep(add: AddCommand) -> None:
    s = add("sweep", "the tutorials' table over K, with figures",
            "daskmeans sweep mnist.zarr --split test --k 10,16,36,64,144,256 --out sweep/",
            url=True)
    s.add_argument("store", help="a store written by 'daskmeans ingest' (a path or a URL)")
    s.add_argument("--k", default=",".join(map(str, TUTORIAL_KS)),
                   help="comma-separated numbers of clusters")
    s.add_argument("--split", default="train", help="the split to fit")
    s.add_argument("--test-split", help="also score a held-out split")
    s.add_argument("--algorithm", help="Lloyd or mini-batch (faster over many K)",
                   **{**ALGORITHM, "default": "minibatch"})
    s.add_argument("--metric", **METRIC)
    s.add_argument("--silhouette-sample", type=int, default=1000, metavar="ROWS",
                   help="rows whose silhouette (against all rows) estimates each K's; "
                        "0: no silhouette column")
    s.add_argument("--out", required=True, help="directory for the table and figures")
    _overwrite(s, "--out (a folder that is not empty)")


def _add_report(add: AddCommand) -> None:
    s = add("report", "one self-contained HTML page about a model on a split: its fit, "
                      "scores, centres, contingency, purity, PCA and silhouette",
            "daskmeans report mnist256.npz mnist.zarr --sweep sweep/sweep.json --out report.html",
            url=True)
    s.description = textwrap.fill(
        "Write one HTML file about a fitted model on a split of a store: the model's "
        "parameters and fit history (inertia per iteration), its scores (accuracy under "
        "the mapping saved with the model, purity, homogeneity, completeness, V-measure, "
        "ARI, NMI, inertia), the centres as images when the features form a square "
        "image, the contingency table and per-cluster purity (classes named when the "
        "store records their names), a PCA view and the silhouette of a random sample "
        "of rows, and a K sweep when given. Every figure is embedded in the page: it "
        "needs no network and no other file, so it can be moved or mailed alone. The "
        "model, store, split, feature count, sweep file and output are all checked "
        "before any row is read.", break_on_hyphens=False)
    s.add_argument("model", help="a model written by 'daskmeans fit' (.npz)")
    s.add_argument("store", help="a store written by 'daskmeans ingest' (a path or a URL)")
    s.add_argument("--split", default="test", help="the split to score and draw")
    s.add_argument("--sweep", metavar="SWEEP.json",
                   help="also show a sweep: the sweep.json 'daskmeans sweep' wrote")
    s.add_argument("--sample", type=int, default=2000, metavar="ROWS",
                   help="rows drawn at random for the PCA view and the silhouette "
                        "(all rows when there are fewer)")
    s.add_argument("--title", help="the page's title (default: the model and the store)")
    s.add_argument("--out", required=True, help="the HTML file to write")
    s.add_argument("--overwrite", action="store_true",
                   help="replace --out if it exists (otherwise refused)")


def _add_images(add: AddCommand) -> None:
    """quantize and segment."""
    s = add("quantize", "reduce a photo to N colours (K-means vs random colours)",
            "daskmeans quantize --sample china --colors 64 --out china64.png")
    s.add_argument("photo", nargs="?",
                   help="an image file or a store from 'daskmeans ingest image'")
    s.add_argument("--sample", choices=SAMPLES,
                   help="instead of a photo: one of scikit-learn's bundled photos")
    s.add_argument("--colors", type=int, default=64, help="palette size")
    s.add_argument("--out", required=True, help="output PNG")
    s.add_argument("--store", help="also write the labels as a Zarr store here")
    _overwrite(s, "--out, its -comparison.png and --store")

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
    _overwrite(s, "--out and --preview")


def _add_demo(add: AddCommand) -> None:
    s = add("demo", "the whole MNIST pipeline end to end (offline: scikit-learn digits)",
            "DASKMEANS_MNIST_DIR=../shared/data/mnist daskmeans demo")
    s.add_argument("--source", help="directory with MNIST IDX files "
                                    "(default: $DASKMEANS_MNIST_DIR, else download)")
    s.add_argument("--data-home", help="download cache")
    s.add_argument("--out", default="daskmeans-output", help="directory for every output")
    s.add_argument("--algorithm", help="Lloyd or mini-batch",
                   **{**ALGORITHM, "default": "minibatch"})
    _overwrite(s, "--out (a folder that is not empty)")


def build_parser() -> argparse.ArgumentParser:
    """The ``daskmeans`` parser: one subcommand per command, each with the shared options."""
    from .. import __version__

    common, remote = _cluster_options(), _storage_options()
    p = argparse.ArgumentParser(
        prog="daskmeans", description="Distributed, out-of-core K-means on Dask and Zarr.",
        epilog=EXAMPLES, parents=[common], formatter_class=_HelpFormatter)
    p.add_argument("--version", action="version", version=f"daskmeans {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, help_: str, example: str, url: bool = False) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help_, description=help_,
                              parents=[common, remote] if url else [common],
                              epilog="example:\n  " + example, formatter_class=_HelpFormatter)

    for add_commands in (_add_ingest, _add_models, _add_export, _add_sweep, _add_report,
                         _add_images, _add_demo):
        add_commands(add)
    return p
