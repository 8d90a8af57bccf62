"""ONNX export: onnxruntime reproduces ``predict`` (labels) and ``transform`` (distances,
to float32 tolerance) of every estimator, on the shipped MNIST subset; raw pixels with a
scale as a store's rows; the command; what is refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr

from daskmeans import BisectingKMeans, KMeans, MiniBatchKMeans, cli, open_source, save_model
from daskmeans.export import to_onnx
from daskmeans.io.errors import OutputExistsError
from daskmeans.pixels import PIXEL_SCALE

from .conftest import computed

ort = pytest.importorskip("onnxruntime")


def run_onnx(model: Any, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    session = ort.InferenceSession(model.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    label, distances = session.run(["label", "distances"], {"X": X})
    return label, distances


def assert_same(model: Any, est: Any, X: Any, given: np.ndarray) -> None:
    """onnxruntime on ``given`` gives ``est.predict(X)`` and ``est.transform(X)``."""
    label, distances = run_onnx(model, given)
    expected = computed(est.predict(X))
    assert label.dtype == np.int64 and distances.dtype == np.float32
    np.testing.assert_array_equal(label, expected)
    np.testing.assert_allclose(distances, computed(est.transform(X)), rtol=1e-5, atol=1e-5)


ESTIMATORS = {
    "kmeans": lambda: KMeans(10, random_state=0, max_iter=20),
    "minibatch": lambda: MiniBatchKMeans(10, random_state=0, max_iter=2),
    "bisecting": lambda: BisectingKMeans(10, random_state=0, max_iter=20),
}


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_onnxruntime_gives_predict_and_transform(name: str, mnist_test) -> None:
    X = mnist_test[0]  # float32 features in [0, 1]
    est = ESTIMATORS[name]().fit(X)
    assert_same(to_onnx(est), est, X, X)
    assert_same(to_onnx(est, input_dtype="float64"), est, X, X.astype(np.float64))


@pytest.mark.parametrize("name", ["kmeans", "bisecting"])
def test_raw_pixels_with_the_store_scale(name: str, mnist_store: Path) -> None:
    """A model fitted on the uint8 store: the graph takes the stored pixels, scales
    them as predict scales the store's rows, and labels them as predict(store)."""
    src = open_source(mnist_store, "test")
    est = ESTIMATORS[name]().fit(src)
    raw = zarr.open_group(str(mnist_store), mode="r")["test/images"][:]
    raw = raw.reshape(raw.shape[0], -1)
    assert raw.dtype == np.uint8
    model = to_onnx(est, input_dtype="uint8", scale=PIXEL_SCALE)
    assert_same(model, est, src, raw)
    # without the scale the graph reads features: pixels must be scaled first
    assert_same(to_onnx(est), est, src, raw.astype(np.float32) * np.float32(PIXEL_SCALE))


@pytest.mark.parametrize("metric", ["cosine", "manhattan"])
def test_cosine_and_manhattan_models(metric: str, mnist_test) -> None:
    X = mnist_test[0][:600]
    est = KMeans(8, metric=metric, random_state=0, max_iter=10).fit(X)
    assert_same(to_onnx(est), est, X, X)


def test_nodata_rows_are_labelled_minus_one() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 4)).astype(np.float32)
    X[::7, 2] = np.nan
    est = KMeans(3, nodata=np.nan, random_state=0).fit(X)
    label, distances = run_onnx(to_onnx(est), X)
    np.testing.assert_array_equal(label, est.predict(X))
    assert (label[::7] == -1).all() and np.isnan(distances[::7]).all()
    np.testing.assert_allclose(distances, est.transform(X), rtol=1e-5, atol=1e-5)


def test_refused_with_clear_errors(tmp_path: Path) -> None:
    from sklearn.cluster import KMeans as SklearnKMeans
    from sklearn.exceptions import NotFittedError

    X = np.arange(20, dtype=np.float32).reshape(10, 2)
    with pytest.raises(TypeError, match="exports daskmeans' KMeans.*got KMeans"):
        to_onnx(SklearnKMeans(2, n_init=1).fit(X))
    with pytest.raises(NotFittedError):
        to_onnx(KMeans(2))
    est = KMeans(2, random_state=0).fit(X)
    with pytest.raises(ValueError, match="input_dtype must be one of"):
        to_onnx(est, input_dtype="int16")
    with pytest.raises(ValueError, match="scale must be a positive number"):
        to_onnx(est, scale=0)
    out = tmp_path / "m.onnx"
    to_onnx(est, out)
    before = out.read_bytes()
    with pytest.raises(OutputExistsError, match="m.onnx: exists"):
        to_onnx(KMeans(3, random_state=0).fit(X), out)
    assert out.read_bytes() == before
    to_onnx(KMeans(3, random_state=0).fit(X), out, overwrite=True)
    assert run_onnx(_load(out), X)[1].shape == (10, 3)


def _load(path: Path) -> Any:
    import onnx

    return onnx.load(str(path))


def test_command(tmp_path: Path, mnist_store: Path, capsys) -> None:
    src = open_source(mnist_store, "test")
    est = BisectingKMeans(5, random_state=0, max_iter=10).fit(src)
    model, out = save_model(est, tmp_path / "m.npz"), tmp_path / "m.onnx"
    argv = ["export", str(model), "--onnx", str(out), "--input", "uint8", "--scale", "1/255"]
    assert cli.main(argv) == 0
    assert "BisectingKMeans(K=5) -> " in capsys.readouterr().out
    raw = zarr.open_group(str(mnist_store), mode="r")["test/images"][:500]
    label, _ = run_onnx(_load(out), raw.reshape(500, -1))
    np.testing.assert_array_equal(label, computed(est.predict(src))[:500])
    # an existing output is refused before any work, replaced with --overwrite
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert f"{out}: exists" in err and "--overwrite" in err
    assert cli.main([*argv, "--overwrite"]) == 0
    assert cli.main(["export", str(model), "--onnx", str(tmp_path / "x.onnx"),
                     "--scale", "0"]) == 2
    assert "--scale must be a positive number" in capsys.readouterr().err
