"""Every storage writer refuses to replace existing data unless asked (overwrite=True),
writes beside its target then renames, and keeps the old data when the write fails
(a full disk included)."""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr

from daskmeans import io
from daskmeans.io.errors import OutputExistsError


def _entries(d: Path) -> list[str]:
    """What is in ``d``: the hidden temporaries of atomic writes are gone too."""
    return sorted(p.name for p in d.iterdir())


def _ingest(src: Path, dest: Path, **kw: Any) -> Path:
    return io.ingest(src, dest, **kw)


def _dataset(_: Path, dest: Path, **kw: Any) -> Any:
    images = np.arange(5 * 4, dtype=np.uint8).reshape(5, 2, 2)
    return io.arrays_to_dataset({"test": (images, np.arange(5))}, dest, name="tiny", **kw)


def _image(_: Path, dest: Path, **kw: Any) -> Path:
    return io.image_to_zarr(np.zeros((20, 30, 3), np.uint8), dest, tile=16, **kw)


def _scene(_: Path, dest: Path, **kw: Any) -> Path:
    return io.synthetic_scene(dest, 32, 32, tile=16, **kw)


def _blobs(_: Path, dest: Path, **kw: Any) -> Any:
    return io.make_blobs_zarr(dest, 100, 3, centers=2, chunk_rows=50, **kw)


def _big_image(_: Path, dest: Path, **kw: Any) -> Any:
    return io.synthetic_image(dest, 32, 32, tile=16, **kw)


def _group(_: Path, dest: Path, **kw: Any) -> Path:
    with io.write_group(dest, **kw) as g:
        g.create_array("a", shape=(3,), dtype="i4")[:] = [1, 2, 3]
    return dest


WRITERS: dict[str, Callable[..., Any]] = {
    "ingest": _ingest, "arrays_to_dataset": _dataset, "image_to_zarr": _image,
    "synthetic_scene": _scene, "make_blobs_zarr": _blobs, "synthetic_image": _big_image,
    "write_group": _group}


@pytest.mark.parametrize("writer", WRITERS)
def test_store_writers_refuse_unless_asked(writer: str, small_dir, tmp_path: Path) -> None:
    write = WRITERS[writer]
    src = small_dir[0]
    tmp_path = tmp_path / "outputs"
    tmp_path.mkdir()
    dest = tmp_path / "out.zarr"
    write(src, dest)
    zarr.open_group(dest, mode="r+").attrs.put({"mark": "old"})  # the data at stake
    with pytest.raises(OutputExistsError, match=rf"{dest}: exists; .*overwrite=True"):
        write(src, dest)
    assert zarr.open_group(dest, mode="r").attrs.asdict() == {"mark": "old"}
    write(src, dest, overwrite=True)
    assert zarr.open_group(dest, mode="r").attrs.get("mark") is None  # replaced
    assert _entries(tmp_path) == ["out.zarr"]  # nothing left beside it
    precious = tmp_path / "notes"
    precious.mkdir()
    (precious / "a.txt").write_text("mine")
    with pytest.raises(OutputExistsError, match="notes: exists and is not a Zarr store"):
        write(src, precious, overwrite=True)
    assert (precious / "a.txt").read_text() == "mine"


def test_write_labels_refuses_unless_asked_and_is_atomic(tmp_path: Path) -> None:
    from daskmeans.engine.rows import rows_to_grid

    scene = io.synthetic_scene(tmp_path / "scene.zarr", 32, 32, tile=16)
    raster = io.open_raster(scene, "band")
    labels = rows_to_grid(io.grid_rows(raster.data)[:, 0] > 0.5, raster.shape).astype(np.int32)
    out = tmp_path / "labels.zarr"
    with io.write_labels(labels, raster, out) as (_, write):
        write.compute()
        assert not out.exists()  # not there until complete
    assert zarr.open_group(out, mode="r")["labels"].shape == (32, 32)
    assert zarr.open_group(out, mode="r").attrs["crs"] == "EPSG:32633"
    zarr.open_group(out, mode="r+").attrs["mark"] = "old"
    with pytest.raises(OutputExistsError, match=rf"{out}: exists"), \
            io.write_labels(labels, raster, out):
        pass
    with pytest.raises(RuntimeError, match="boom"), \
            io.write_labels(labels, raster, out, overwrite=True) as (_, write):
        write.compute()
        raise RuntimeError("boom")
    assert zarr.open_group(out, mode="r").attrs["mark"] == "old"  # the old store is kept
    with io.write_labels(labels, raster, out, overwrite=True) as (_, write):
        write.compute()
    assert "mark" not in zarr.open_group(out, mode="r").attrs
    assert _entries(tmp_path) == ["labels.zarr", "scene.zarr"]


def test_atomic_file_refuses_replaces_and_keeps_the_old_on_failure(tmp_path: Path) -> None:
    dest = tmp_path / "t.csv"
    with io.atomic_file(dest) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".t.csv.tmp-")
        tmp.write_text("old")
    assert oct(dest.stat().st_mode & 0o777) == oct(io.new_file_mode())
    with pytest.raises(OutputExistsError, match=rf"{dest}: exists"), io.atomic_file(dest):
        pass
    with pytest.raises(RuntimeError), io.atomic_file(dest, overwrite=True) as tmp:
        tmp.write_text("half")
        raise RuntimeError
    assert dest.read_text() == "old" and _entries(tmp_path) == ["t.csv"]
    with io.atomic_file(dest, overwrite=True) as tmp:
        tmp.write_text("new")
    assert dest.read_text() == "new"


def test_check_output_refuses_before_any_work(tmp_path: Path) -> None:
    io.check_output(tmp_path / "nothing.zarr")
    (tmp_path / "f.png").write_bytes(b"x")
    with pytest.raises(OutputExistsError, match="f.png: exists"):
        io.check_output(tmp_path / "f.png", store=False)
    io.check_output(tmp_path / "f.png", store=False, overwrite=True)
    with pytest.raises(OutputExistsError, match="is a directory"):
        io.check_output(tmp_path, store=False, overwrite=True)


# ---------------------------------------------------------------- a full disk


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs (needs the right to mount, as root in a container has)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()}): "
                    "test_full_disk_simulated covers the same path")
    try:
        yield disk
    finally:
        subprocess.run(["umount", str(disk)], check=True)


def _labels_write(dest: Path, n: int, value: int, **kw: Any) -> None:
    import dask.array as da

    labels = da.full((n,), value, dtype=np.int32, chunks=50_000)
    with io.write_group(dest, **kw) as g:
        arr = g.create_array("labels", shape=(n,), dtype=np.int32, chunks=(50_000,),
                             compressors=None)
        io.store_blocks(labels, arr).compute()


def test_full_disk_keeps_the_old_labels_and_model(small_disk: Path) -> None:
    """Labels (400 KB uncompressed) and a model written onto a full 1 MiB filesystem:
    OSError(ENOSPC) naming the destination, the old data kept, no temporary left."""
    from daskmeans import KMeans, load_model, save_model

    dest = small_disk / "labels.zarr"
    _labels_write(dest, 100_000, 1)
    with pytest.raises(OSError, match=rf"{dest}: No space left on device while writing it"
                                      r".*nothing was replaced") as e:
        _labels_write(dest, 300_000, 2, overwrite=True)  # 1.2 MB: cannot fit
    assert e.value.errno == errno.ENOSPC
    old = zarr.open_group(dest, mode="r")["labels"][:]
    assert old.shape == (100_000,) and set(np.unique(old)) == {1}
    assert _entries(small_disk) == ["labels.zarr"]

    model = small_disk / "m.npz"
    small = KMeans(2, random_state=0).fit(np.random.default_rng(0).random((50, 3)))
    save_model(small, model)
    filler = small_disk / "filler"
    free = os.statvfs(small_disk).f_bavail * os.statvfs(small_disk).f_frsize
    filler.write_bytes(b"\0" * max(0, free - 20_000))
    big = KMeans(4, random_state=0).fit(np.random.default_rng(0).random((50, 20_000)))
    with pytest.raises(OSError, match=rf"{model}: No space left on device") as e:
        save_model(big, model, overwrite=True)  # 640 KB of centres
    assert e.value.errno == errno.ENOSPC
    assert load_model(model)[0].cluster_centers_.shape == (2, 3)
    assert _entries(small_disk) == ["filler", "labels.zarr", "m.npz"]


def test_full_disk_simulated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same without a small filesystem: zarr's local store (the lowest layer a
    labels write reaches through public API) raising ENOSPC once half the chunks are
    written."""
    dest = tmp_path / "labels.zarr"
    _labels_write(dest, 100_000, 1)
    real, real_sync = zarr.storage.LocalStore.set, zarr.storage.LocalStore.set_sync
    calls: list[str] = []

    def full(key: str) -> None:
        calls.append(key)
        if key.startswith("c/") and len(calls) > 3:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), key)

    async def set_(self, key, value):  # type: ignore[no-untyped-def]
        full(key)
        return await real(self, key, value)

    def set_sync(self, key, value):  # type: ignore[no-untyped-def]
        full(key)
        return real_sync(self, key, value)

    monkeypatch.setattr(zarr.storage.LocalStore, "set_sync", set_sync)
    monkeypatch.setattr(zarr.storage.LocalStore, "set", set_)
    with pytest.raises(OSError, match=rf"{dest}: No space left on device while writing it"):
        _labels_write(dest, 300_000, 2, overwrite=True)
    monkeypatch.undo()
    assert any(key.startswith("c/") for key in calls[3:])  # it failed writing chunks
    assert set(np.unique(zarr.open_group(dest, mode="r")["labels"][:])) == {1}
    assert _entries(tmp_path) == ["labels.zarr"]
