"""Damaged model and checkpoint files raise daskmeans' errors naming the file (never
zipfile.BadZipFile or a bare KeyError): a truncated, a corrupted and a zero-length one;
saving refuses to replace a model unless asked, and writes it atomically."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import make_blobs

from daskmeans import KMeans, MiniBatchKMeans, load_model, save_model
from daskmeans.io.errors import (
    CheckpointFormatError,
    DaskmeansError,
    ModelFormatError,
    OutputExistsError,
)
from tests.io.test_damaged_inputs import DAMAGES, damage

X, _ = make_blobs(300, n_features=4, centers=3, random_state=0)


@pytest.fixture(scope="module")
def fitted() -> KMeans:
    return KMeans(3, random_state=0).fit(X)


@pytest.mark.parametrize("how", DAMAGES)
def test_damaged_model_file(fitted: KMeans, tmp_path: Path, how: str) -> None:
    path = save_model(fitted, tmp_path / "m.npz")
    damage(path, how)
    with pytest.raises(ModelFormatError, match=rf"{path}: not a daskmeans model file") as e:
        load_model(path)
    assert isinstance(e.value, DaskmeansError) and isinstance(e.value, ValueError)
    assert not isinstance(e.value, CheckpointFormatError)


def test_a_model_without_centres_or_of_another_kind(fitted: KMeans, tmp_path: Path) -> None:
    other = tmp_path / "other.npz"
    np.savez(other, a=np.zeros(3))
    with pytest.raises(ModelFormatError, match=rf"{other}: not a daskmeans model file"):
        load_model(other)


@pytest.mark.parametrize("how", DAMAGES)
@pytest.mark.parametrize("cls", [KMeans, MiniBatchKMeans])
def test_damaged_checkpoint_on_resume(tmp_path: Path, how: str, cls: type) -> None:
    """fit(..., checkpoint=p, resume=True) over a damaged p: CheckpointFormatError
    naming p (a ModelFormatError and a ValueError), not zipfile.BadZipFile."""
    ckpt = tmp_path / "fit.npz"
    params = {"n_clusters": 3, "random_state": 0, "max_iter": 3}
    cls(**params).fit(X, checkpoint=ckpt, checkpoint_every=1)
    assert ckpt.exists()
    damage(ckpt, how)
    with pytest.raises(CheckpointFormatError,
                       match=rf"{ckpt}: not a daskmeans checkpoint file") as e:
        cls(**params).fit(X, checkpoint=ckpt, resume=True)
    assert isinstance(e.value, ModelFormatError) and isinstance(e.value, DaskmeansError)


def test_a_model_is_not_replaced_unless_asked(fitted: KMeans, tmp_path: Path) -> None:
    path = save_model(fitted, tmp_path / "m.npz")
    before = path.read_bytes()
    other = KMeans(2, random_state=0).fit(X)
    with pytest.raises(OutputExistsError, match=rf"{path}: exists; .*overwrite=True"):
        save_model(other, path)
    assert path.read_bytes() == before
    save_model(other, path, overwrite=True)
    assert load_model(path)[0].cluster_centers_.shape == (2, 4)
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"]  # no temporary file left
    (tmp_path / "d.npz").mkdir()
    with pytest.raises(OutputExistsError, match="is a directory"):
        save_model(other, tmp_path / "d.npz", overwrite=True)


def test_a_failed_model_write_keeps_the_old_file(fitted: KMeans, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A write that fails halfway (here numpy's savez raising after writing part of the
    file) leaves the old model as it was and no temporary file behind."""
    path = save_model(fitted, tmp_path / "m.npz")
    before = path.read_bytes()

    def half(file, **arrays):  # type: ignore[no-untyped-def]
        file.write(b"PK\x03\x04 half a zip")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", half)
    with pytest.raises(OSError, match=rf"{path}: No space left on device while writing it"):
        save_model(KMeans(2, random_state=0).fit(X), path, overwrite=True)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"]
