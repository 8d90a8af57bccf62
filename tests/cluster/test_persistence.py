"""Saved models: the fit's history travels in the model file, and files saved before it
did still load."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import make_blobs

from daskmeans import BisectingKMeans, KMeans, MiniBatchKMeans, load_model, save_model


@pytest.fixture(scope="module")
def blobs() -> np.ndarray:
    return make_blobs(300, n_features=4, centers=3, random_state=0)[0]


@pytest.mark.parametrize("est", [KMeans(3, random_state=0),
                                 MiniBatchKMeans(3, batch_size=64, random_state=0),
                                 BisectingKMeans(3, random_state=0)],
                         ids=["kmeans", "minibatch", "bisecting"])
def test_history_saved_and_loaded(est, blobs: np.ndarray, tmp_path: Path) -> None:
    est.fit(blobs)
    assert est.history_
    model, header = load_model(save_model(est, tmp_path / "m.npz"))
    assert header["history"] == model.history_
    assert len(model.history_) == len(est.history_)
    for saved, fitted in zip(model.history_, est.history_, strict=True):
        assert saved.keys() == fitted.keys()
        for key, value in fitted.items():
            assert saved[key] == pytest.approx(value), key


def test_kmeans_history_is_the_inertia_per_iteration(blobs: np.ndarray,
                                                     tmp_path: Path) -> None:
    est = KMeans(3, random_state=0, n_init=2).fit(blobs)
    model, _ = load_model(save_model(est, tmp_path / "m.npz"))
    inertias = [h["inertia"] for h in model.history_]
    assert [h["iteration"] for h in model.history_] == list(range(1, est.n_iter_ + 1))
    assert inertias == sorted(inertias, reverse=True)  # Lloyd never increases it
    assert inertias[-1] == pytest.approx(est.inertia_, rel=1e-6)


def test_model_saved_without_history_loads(blobs: np.ndarray, tmp_path: Path) -> None:
    """A file written before the history was kept: no ``history`` in its header."""
    est = KMeans(3, random_state=0).fit(blobs)
    path = save_model(est, tmp_path / "m.npz")
    with np.load(path) as data:
        arrays = {k: np.array(data[k]) for k in data.files}
    header = json.loads(bytes(arrays["header"]).decode())
    del header["history"]
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    np.savez(path, **arrays)
    model, header = load_model(path)
    assert header["history"] == [] and not hasattr(model, "history_")
    np.testing.assert_array_equal(model.predict(blobs), est.labels_)
