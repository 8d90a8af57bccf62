"""``daskmeans demo``: the whole pipeline end to end on MNIST (or what is offline)."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .console import STARTED, Console
from .images import run_quantize, run_segment
from .options import fresh_folder, make_estimator, overwrite
from .scheduler import dask_cluster, data_nbytes
from .sweep import TUTORIAL_KS, recommendation, run_sweep

__all__ = ["cmd_demo", "demo_data"]


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


def demo_data(args: argparse.Namespace, console: Console, out: Path) -> tuple[Path, str, str]:
    """The demo's data: ``(store, name, where it came from)``.

    In order: MNIST from ``--source`` / ``$DASKMEANS_MNIST_DIR`` (an explicit copy: its
    errors are the user's to see); MNIST from the cache or a mirror; a local
    Fashion-MNIST (the cache, or Debian's ``dataset-fashion-mnist``); scikit-learn's
    bundled 8x8 digits.
    """
    from .. import datasets, io

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
                                 out / "data" / "digits.zarr", name="digits", chunk_rows=500,
                                 overwrite=overwrite(args))
    return store, "digits", (f"{why} and no local MNIST or Fashion-MNIST was found; using "
                             "scikit-learn's bundled 8x8 digits (set DASKMEANS_MNIST_DIR or "
                             "--source to use MNIST)")


def _demo_segment(args: argparse.Namespace, console: Console, out: Path) -> list[Path]:
    """Segment a multi-band scene with nodata borders; score it against its classes."""
    import zarr

    from .. import io, metrics

    # No multi-band scene ships in the packages we depend on (scikit-learn, matplotlib,
    # xarray, scipy carry RGB photos, a DEM and test NetCDFs): a synthetic one it is.
    console.info("segmenting a synthetic 6-band scene ...")
    scene = io.synthetic_scene(out / "scene.zarr", 768, 1024, tile=256,
                               random_state=args.seed, overwrite=overwrite(args))
    seg_args = argparse.Namespace(feature_dim="band", variable="reflectance", nodata=None,
                                  full=False, sample_size=50_000, seed=args.seed,
                                  overwrite=overwrite(args))
    files = run_segment(scene, 5, out / "scene-labels.zarr", out / "scene-labels.png",
                        seg_args, console, "synthetic 6-band scene")
    truth = np.asarray(zarr.open_array(scene / "classes", mode="r")[:])
    got = np.asarray(zarr.open_array(out / "scene-labels.zarr" / "labels", mode="r")[:])
    inside = truth >= 0
    ari = metrics.adjusted_rand_score(truth[inside], got[inside])
    console.say(f"  (no multi-band image ships in the installed packages: a synthetic 768x1024 "
                f"scene of 5 known classes, nodata outside a tilted swath; adjusted Rand "
                f"index {ari:.4f} on its {int(inside.sum())} valid pixels, "
                f"{int((got[~inside] == -1).mean() * 100)}% of nodata pixels labelled -1)")
    return [scene, *files]


def _demo_splits(store: Path) -> tuple[Any, Any, Any, Any, str, str, str]:
    """``(X, y, X_test, y_test, how, split, heldout_split)`` of the demo's store: its
    train and test splits, or the test split cut in two when it is alone."""
    import zarr

    from ..engine.source import open_dataset

    splits = list(zarr.open_group(store, mode="r").attrs["splits"])  # type: ignore[arg-type]
    if "train" in splits:
        X, y = open_dataset(store, "train")
        Xt, yt = open_dataset(store, "test")
        return X, y, Xt, yt, "fit on train, evaluate on test", "train", "test"
    # the offline MNIST copy has only the 10k test split: hold part of it out
    Xa, ya = open_dataset(store, "test")
    cut = int(Xa.shape[0] * 0.8)
    return (Xa[:cut], ya[:cut], Xa[cut:], ya[cut:],
            f"only the test split is present: fit on its first {cut}, evaluate on the rest",
            f"test[:{cut}]", f"test[{cut}:]")


def _demo_fit(args: argparse.Namespace, console: Console, out: Path, name: str, k: int,
              X: Any, y: Any, Xt: Any, yt: Any
              ) -> tuple[str, Any, dict[int, int], list[Path]]:
    """The main fit: K=``k``, scored on the held-out rows, saved, its centres drawn.
    Returns the line that says how it went, the estimator, its cluster -> label
    mapping (learned on the fit's rows) and the files written."""
    from .. import metrics, plot, save_model

    t0 = time.perf_counter()
    console.info(f"fitting K={k} on {X.shape[0]} images ...")
    est = make_estimator(args.algorithm, k, args, console).fit(X)
    mapping = metrics.infer_cluster_labels(y, est.labels_)
    r = metrics.evaluate(yt, est.predict(Xt), mapping=mapping)
    console.end_progress()
    fitted = (f"K={k} {type(est).__name__}: fit in {time.perf_counter() - t0:.1f}s; "
              f"held-out accuracy {r['accuracy']:.4f}, purity {r['purity']:.4f}, "
              f"homogeneity {r['homogeneity']:.4f}; inertia {est.inertia_:.6g}")
    console.say(fitted)
    replace = overwrite(args)
    return fitted, est, mapping, [
        save_model(est, out / "model.npz", mapping=mapping, extra={"dataset": name},
                   overwrite=replace),
        plot.centroid_grid(est.cluster_centers_, out / "centroids.png", mapping=mapping,
                           overwrite=replace)]


def _demo_k10(args: argparse.Namespace, console: Console, out: Path, name: str, X: Any,
              y: Any) -> tuple[list[dict[str, Any]], list[Path]]:
    """K=10: its contingency table and purity (figure and CSV), silhouette and PCA view.
    Returns the purity table's rows, and the files written."""
    from .. import io, metrics, plot

    replace = overwrite(args)
    console.info("fitting K=10 for the contingency table ...")
    k10 = make_estimator(args.algorithm, 10, args, console).fit(X)
    c = metrics.contingency(y, k10.labels_)
    files = [plot.contingency_heatmap(c.table, c.classes, c.clusters,
                                      out / "contingency_k10.png",
                                      title=f"{name}, K=10: true class x cluster",
                                      overwrite=replace)]
    with io.atomic_file(out / "contingency_k10.csv", overwrite=replace) as tmp:
        metrics.contingency_frame(c).to_csv(tmp)
    purity = metrics.purity_table(c)
    with io.atomic_file(out / "purity_k10.csv", overwrite=replace) as tmp:
        purity.to_csv(tmp)
    files += [out / "contingency_k10.csv", out / "purity_k10.csv"]
    sil = metrics.silhouette(X, k10.labels_, sample_size=1000, random_state=args.seed)
    files.append(plot.silhouette_plot(
        sil.values, sil.labels, out / "silhouette_k10.png", score=sil.score,
        standard_error=sil.standard_error,
        title=f"{name}, K=10: silhouette of {sil.index.size} random rows "
              f"(against all {sil.n_samples})", overwrite=replace))
    try:
        files.append(plot.pca_view(X, y, k10.labels_, out / "pca_k10.png",
                                   centers=k10.cluster_centers_, random_state=args.seed,
                                   overwrite=replace))
    except (NotImplementedError, ImportError) as e:  # query planning; no dask-ml
        console.say(f"PCA view skipped: {e}")
    return purity.reset_index().to_dict("records"), files


def _demo_page(args: argparse.Namespace, out: Path, store: Path, name: str, how: str,
               fitted: str, model: tuple[Any, dict[int, int], str], Xt: Any, yt: Any,
               purity: list[dict[str, Any]], rows: list[dict[str, Any]]) -> Path:
    """``report.html``: the demo on one self-contained page, as ``daskmeans report``
    writes (every figure embedded): the main model's sections on the held-out rows,
    K=10's views, the sweep, quantisation and the multi-band scene."""
    from .. import io, report

    est, mapping, held = model
    page = report.Page(f"daskmeans demo: {name}")
    page.paragraph(f"{name}: {Xt.shape[1]} pixels per image; {how}.")
    page.figure(out / "samples.png", "samples.png", "The first images and their labels.")
    page.paragraph(fitted)
    report.model_sections(page, est, Xt, yt, mapping=mapping,
                          saved={"extra": {"dataset": name}},
                          class_names=io.class_names(store),
                          data=f"the held-out rows ({held})", views=False)
    page.heading("K=10: contingency, purity, silhouette, PCA view")
    page.figure(out / "contingency_k10.png", "contingency_k10.png",
                "K=10 on the fit's rows: true class x cluster.")
    page.table(purity)
    page.figure(out / "silhouette_k10.png", "silhouette_k10.png")
    if (out / "pca_k10.png").exists():  # not under dask's array query planning
        page.figure(out / "pca_k10.png", "pca_k10.png")
    report.sweep_section(page, rows, figures=[out / "sweep.png", out / "elbow.png"])
    page.heading("Colour quantisation")
    page.figure(out / "china-64-comparison.png", "china-64-comparison.png")
    page.heading("A multi-band scene")
    page.figure(out / "scene-labels.png", "scene-labels.png")
    return page.write(out / "report.html", overwrite=overwrite(args))


def cmd_demo(args: argparse.Namespace, console: Console) -> int:
    import dask

    from .. import metrics, plot

    out = fresh_folder(args, Path(args.out))
    store, name, where = demo_data(args, console, out)
    X, y, Xt, yt, how, split, held = _demo_splits(store)
    console.say(f"data: {name}, {X.shape[0]} + {Xt.shape[0]} images of {X.shape[1]} pixels: "
                f"{where}")
    console.say(f"  store {store}; {how}")
    ks = [k for k in TUTORIAL_KS if k <= X.shape[0] // 4]
    k_main = ks[-1]
    files: list[Path] = []
    with dask_cluster(args, console, data_nbytes(X) + data_nbytes(Xt)) as client:
        if client is None:  # in this process: the data fit in a quarter of the memory
            # numpy arrays: the scaled rows read and decoded once, not again in every
            # fit, mini-batch step, prediction and score of the demo, and no graph to
            # build per step
            X, y, Xt, yt = dask.compute(X, y, Xt, yt)
        Xs, ys = X[:36], y[:36]
        if client is not None:
            Xs, ys = dask.compute(Xs, ys)
        files.append(plot.sample_grid(Xs, ys, out / "samples.png", title=f"{name} samples",
                                      overwrite=overwrite(args)))
        fitted, est, mapping, more = _demo_fit(args, console, out, name, k_main, X, y,
                                               Xt, yt)
        purity, k10_files = _demo_k10(args, console, out, name, X, y)
        files += more + k10_files
        console.info(f"the tutorials' sweep over K = {', '.join(map(str, ks))} ...")
        meta = {"dataset": name, "split": split, "heldout_split": held}
        rows, sweep_files = run_sweep(X, y, Xt, yt, ks, args, console, out, meta)
        files += sweep_files
        console.say(metrics.to_markdown(rows))
        console.say(recommendation(rows))
        from sklearn.datasets import load_sample_image

        console.info("quantising china.jpg to 64 colours ...")
        files += run_quantize(load_sample_image("china.jpg"), 64, out / "china-64.png",
                              args.seed, None, console, "china.jpg", overwrite(args))
        files += _demo_segment(args, console, out)
        console.info("writing the report page ...")
        files.append(_demo_page(args, out, store, name, how, fitted, (est, mapping, held),
                                Xt, yt, purity, rows))
    console.say(f"demo finished in {time.perf_counter() - STARTED:.0f}s (wall clock); "
                "outputs:")
    for f in files:
        console.say(f"  {f}")
    return 0
