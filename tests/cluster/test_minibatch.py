"""daskmeans.MiniBatchKMeans: scikit-learn semantics, distributed steps, streaming."""

from __future__ import annotations

from pathlib import Path

import dask
import dask.array as da
import numpy as np
import pytest
import zarr
from sklearn.base import clone
from sklearn.datasets import make_blobs

from daskmeans import KMeans, MiniBatchKMeans, io, metrics

from ..conftest import computed


def match_centres(found: np.ndarray, true: np.ndarray) -> float:
    d = np.sqrt(((found[:, None] - true[None]) ** 2).sum(-1))
    return float(d.min(axis=0).max())  # worst distance from a true centre to our nearest


def test_recovers_blob_centres() -> None:
    true = np.array([[0, 0], [10, 0], [0, 10], [10, 10]], dtype=float)
    X, _ = make_blobs(20000, centers=true, cluster_std=0.5, random_state=0)
    km = MiniBatchKMeans(4, batch_size=512, random_state=0).fit(X)
    assert match_centres(km.cluster_centers_, true) < 0.1
    assert km.n_steps_ >= 2 and km.n_iter_ >= 1
    # inertia_ is exact over all the data, squared
    sq = ((X - km.cluster_centers_[km.labels_]) ** 2).sum()
    assert km.inertia_ == pytest.approx(sq, rel=1e-9)


def test_mnist_quality(mnist_test) -> None:
    """Real MNIST (the test split's first 2,000 rows): K=256 accuracy >= 0.85, K=10
    purity >= 0.55 on average. (On all 10,000 rows the bound was 0.89, with the same
    margin below what a fit reaches: fewer rows per cluster, lower accuracy.)"""
    X, y = mnist_test
    km = MiniBatchKMeans(256, random_state=1).fit(X)
    assert metrics.cluster_accuracy(y, km.labels_) >= 0.85
    purities = [metrics.purity_score(y, MiniBatchKMeans(10, random_state=s).fit(X).labels_)
                for s in range(5)]
    assert np.mean(purities) >= 0.55, purities


def test_same_seed_same_centres_across_chunkings_and_schedulers(scheduler) -> None:
    X, _ = make_blobs(6000, n_features=5, centers=6, random_state=3)
    ref = MiniBatchKMeans(6, batch_size=700, random_state=4).fit(X)
    for chunks in (6000, 900, 411):  # one block, even and odd splits
        km = MiniBatchKMeans(6, batch_size=700, random_state=4).fit(
            da.from_array(X, chunks=(chunks, 5)))
        np.testing.assert_array_equal(km.cluster_centers_, ref.cluster_centers_)
        assert km.n_steps_ == ref.n_steps_
        np.testing.assert_array_equal(km.labels_.compute(), ref.labels_)


@pytest.mark.parametrize("held", [True, False])
def test_one_compute_per_step_and_none_on_held_rows(
        held: bool, counting_scheduler, monkeypatch: pytest.MonkeyPatch) -> None:
    """A dask array within the memory budget is computed once and held: its steps run
    here and take no compute. Over the budget it streams: one compute per step."""
    from daskmeans.engine import hold as hold_module

    if not held:
        monkeypatch.setattr(hold_module, "memory_budget", lambda: 0)
    X, _ = make_blobs(3000, n_features=4, centers=3, random_state=0)
    Xd = da.from_array(X, chunks=500)
    km = MiniBatchKMeans(3, batch_size=300, max_iter=1, max_no_improvement=None,
                         init=X[:3], random_state=0).fit(Xd)
    assert km.n_steps_ == 10
    # + the exact inertia pass (and the hold)
    assert counting_scheduler.calls == (1 + 1 if held else km.n_steps_ + 1)
    assert isinstance(km.labels_, da.Array)


@pytest.mark.parametrize("lazy", [False, True])
def test_refine_runs_lloyd_from_the_minibatch_centres(lazy: bool, counting_scheduler) -> None:
    X, _ = make_blobs(5000, n_features=3, centers=8, cluster_std=2.0, random_state=7)
    data = da.from_array(X, chunks=700) if lazy else X
    params = {"batch_size": 256, "max_iter": 2, "random_state": 3}
    plain = MiniBatchKMeans(8, **params).fit(data)
    counting_scheduler.calls = 0
    refined = MiniBatchKMeans(8, refine=3, **params).fit(data)
    if lazy:  # the hold, the init sample (steps on held rows take none), 3 Lloyd
        # passes, the exact inertia pass
        assert counting_scheduler.calls == 1 + 1 + 3 + 1
    lloyd = KMeans(8, init=plain.cluster_centers_, max_iter=3, tol=0).fit(X)
    np.testing.assert_allclose(refined.cluster_centers_, lloyd.cluster_centers_, rtol=1e-10)
    assert refined.inertia_ == pytest.approx(lloyd.inertia_, rel=1e-10)
    assert refined.inertia_ < plain.inertia_
    assert [h["phase"] for h in refined.history_[-4:]] == ["mini-batch"] + ["lloyd"] * 3
    assert refined.n_steps_ == plain.n_steps_ and refined.n_iter_ == plain.n_iter_ + 3


def test_reassigns_starved_centres() -> None:
    X, _ = make_blobs(4000, n_features=2, centers=3, cluster_std=0.3, random_state=1)
    init = np.vstack([X[:3], [[1e3, 1e3]]])  # one centre nobody will ever choose
    km = MiniBatchKMeans(4, init=init, batch_size=256, random_state=0, max_iter=3,
                         reassignment_ratio=0.05).fit(X)
    assert sum(h["n_reassigned"] for h in km.history_) >= 1
    assert np.abs(km.cluster_centers_).max() < 100
    no = MiniBatchKMeans(4, init=init, batch_size=256, random_state=0, max_iter=3,
                         reassignment_ratio=0.0).fit(X)
    assert np.abs(no.cluster_centers_).max() >= 1e3


def test_sample_weight_zero_rows_are_ignored() -> None:
    X, _ = make_blobs(3000, n_features=2, centers=2, random_state=5)
    far = np.full((500, 2), 1e4)
    w = np.r_[np.ones(len(X)), np.zeros(len(far))]
    km = MiniBatchKMeans(2, random_state=0, batch_size=512).fit(np.vstack([X, far]),
                                                                 sample_weight=w)
    assert np.abs(km.cluster_centers_).max() < 100


def test_chunk_sampling_and_partial_fit_stream_a_store(tmp_path: Path) -> None:
    store = io.make_blobs_zarr(tmp_path / "b.zarr", 40_000, 3, centers=4, chunk_rows=4000,
                               cluster_std=0.3, random_state=2)
    true = zarr.open_group(store, mode="r")["centers"][:]
    km = MiniBatchKMeans(4, sampling="chunks", random_state=0).fit(store)
    assert match_centres(km.cluster_centers_, true) < 0.05
    assert {h["batch_rows"] for h in km.history_} <= {4000, 8000}
    stream = MiniBatchKMeans(4, random_state=0)
    Xz = zarr.open_group(store, mode="r")["X"]
    for start in range(0, Xz.shape[0], 4000):
        stream.partial_fit(Xz[start:start + 4000])  # one chunk in memory at a time
    assert stream.n_steps_ == 10
    assert match_centres(stream.cluster_centers_, true) < 0.05


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"batch_size": 0}, "'batch_size' parameter of MiniBatchKMeans must be 'auto' or an "
                            "int in the range .*, got 0"),
        ({"sampling": "random"}, "'sampling' parameter of MiniBatchKMeans must be"),
        ({"reassignment_ratio": -1}, "'reassignment_ratio' parameter of MiniBatchKMeans"),
        ({"refine": -1}, "'refine' parameter of MiniBatchKMeans must be .*, got -1"),
        ({"n_clusters": 30}, r"n_samples=20 should be >= n_clusters=30\."),
    ],
)
def test_errors(params: dict, message: str) -> None:
    X = np.random.default_rng(0).normal(size=(20, 2))
    with pytest.raises(ValueError, match=message):
        MiniBatchKMeans(**{"n_clusters": 2, **params}).fit(X)


def test_checkpoint_resume_equals_uninterrupted(tmp_path: Path, monkeypatch) -> None:
    from daskmeans.engine import reductions

    X, _ = make_blobs(5000, n_features=4, centers=5, random_state=9)
    params = {"n_clusters": 5, "batch_size": 256, "random_state": 3, "max_iter": 3,
              "max_no_improvement": None}
    fresh = MiniBatchKMeans(**params).fit(X)
    real, calls = reductions.batch_pass, [0]

    def dying(*a, **k):  # type: ignore[no-untyped-def]
        calls[0] += 1
        if calls[0] == 25:
            raise KeyboardInterrupt  # the client goes away mid-fit
        return real(*a, **k)

    monkeypatch.setattr(reductions, "batch_pass", dying)
    ckpt = tmp_path / "mb.npz"
    with pytest.raises(KeyboardInterrupt):
        MiniBatchKMeans(**params).fit(X, checkpoint=ckpt, checkpoint_every=5)
    calls[0] = 0

    def counting(*a, **k):  # type: ignore[no-untyped-def]
        calls[0] += 1
        return real(*a, **k)

    monkeypatch.setattr(reductions, "batch_pass", counting)
    resumed = MiniBatchKMeans(**params).fit(X, checkpoint=ckpt, checkpoint_every=5,
                                            resume=True)
    np.testing.assert_array_equal(resumed.cluster_centers_, fresh.cluster_centers_)
    assert resumed.n_steps_ == fresh.n_steps_ and resumed.inertia_ == fresh.inertia_
    assert calls[0] == fresh.n_steps_ - 20  # continued from the step-20 checkpoint


def test_rows_held_here_take_no_graph_and_the_same_batches_whatever_the_chunking(
        tmp_path: Path, counting_scheduler) -> None:
    """numpy rows, and a store's blocks held in memory for the fit, run every step in
    process (no compute per step), on batches drawn over global row indices: the same
    centres, bit for bit, however the store is chunked."""
    X, _ = make_blobs(6000, n_features=5, centers=6, random_state=3)
    X = X.astype(np.float32)
    params = {"batch_size": 700, "random_state": 4, "max_iter": 2, "reassignment_ratio": 0.2}
    ref = MiniBatchKMeans(6, **params).fit(X)
    assert counting_scheduler.calls == 0
    assert ref.n_steps_ > 5
    for chunks in (6000, 900, 411):  # one chunk, even and odd splits
        z = zarr.create_array(tmp_path / f"x{chunks}.zarr", shape=X.shape, chunks=(chunks, 5),
                              dtype=X.dtype)
        z[:] = X
        counting_scheduler.calls = 0
        km = MiniBatchKMeans(6, **params).fit(z)
        assert counting_scheduler.calls <= 4  # hold, init sample, labels; none per step
        np.testing.assert_array_equal(km.cluster_centers_, ref.cluster_centers_)
        assert km.n_steps_ == ref.n_steps_
        assert [h["n_reassigned"] for h in km.history_] == [h["n_reassigned"]
                                                              for h in ref.history_]
        np.testing.assert_array_equal(computed(km.labels_), ref.labels_)


@pytest.mark.parametrize("sampling", ["rows", "chunks"])
def test_in_process_steps_name_bad_rows_and_take_weights(tmp_path: Path, sampling: str) -> None:
    """A store held here with a NaN row: the step names the row; weighted steps on
    numpy rows (chunks: the weights in the sums; rows: batches drawn by weight)."""
    X, _ = make_blobs(3000, n_features=3, centers=3, random_state=6)
    X = X.astype(np.float32)
    X[2345, 1] = np.nan
    z = zarr.create_array(tmp_path / "nan.zarr", shape=X.shape, chunks=(700, 3), dtype=X.dtype)
    z[:] = X
    with pytest.raises(ValueError, match="row 2345"):
        MiniBatchKMeans(3, init=X[:3], batch_size=3000, sampling=sampling,
                        random_state=0).fit(z)
    X[2345, 1] = 0.0
    w = np.ones(len(X))
    w[:1500] = 0.0  # only the second half counts
    km = MiniBatchKMeans(3, batch_size=500, sampling=sampling, random_state=0,
                         max_no_improvement=None, max_iter=2).fit(X, sample_weight=w)
    half = MiniBatchKMeans(3, batch_size=500, sampling=sampling, random_state=0,
                           max_no_improvement=None, max_iter=2).fit(X[1500:])
    assert match_centres(km.cluster_centers_, half.cluster_centers_) < 1.0


@pytest.mark.parametrize("w", [1.0, 2.5])
def test_equal_weights_fit_as_no_weights(w: float) -> None:
    """Random batches drawn by weight count every row once (scikit-learn's fit): equal
    weights, whatever their value, give the fit without weights."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(3000, 5))
    km = MiniBatchKMeans(4, random_state=0, n_init=1, batch_size=256)
    a = clone(km).fit(X)
    b = clone(km).fit(X, sample_weight=np.full(len(X), w))
    np.testing.assert_array_equal(a.labels_, b.labels_)
    np.testing.assert_allclose(a.cluster_centers_, b.cluster_centers_)


def _cluster_data(X: np.ndarray, tmp_path: Path) -> dict[str, object]:
    """The same rows as numpy, dask arrays of even and odd chunks, and a store."""
    z = zarr.create_array(tmp_path / "x.zarr", shape=X.shape, chunks=(700, X.shape[1]),
                          dtype=X.dtype)
    z[:] = X
    return {"numpy": X, "dask 900": da.from_array(X, chunks=(900, X.shape[1])),
            "dask 411": da.from_array(X, chunks=(411, X.shape[1])), "store": z}


@pytest.mark.parametrize("k", [6, 24])  # one thread, and the tiles spread over threads
def test_cluster_steps_are_the_threaded_steps_bit_for_bit(
        k: int, local_cluster, tmp_path: Path) -> None:
    """Rows held in a cluster's workers (numpy blocks scattered, a dask array
    persisted, a store's blocks read there) take the fused step of rows held here, in
    a worker on the batch assembled in batch order, several steps in flight: the same
    centres, steps, reassignments, batch inertias and labels as the threaded fit, bit
    for bit, whatever the chunking; the exact inertia too, wherever the blocks are the
    same."""
    from ..conftest import ran_on_workers

    X, _ = make_blobs(6000, n_features=5, centers=[[0] * 5, [9] * 5, [-9] * 5],
                      cluster_std=[0.5, 2.0, 4.0], random_state=3)
    X = X.astype(np.float32)
    params = {"batch_size": 300, "random_state": 4, "max_iter": 2,
              "reassignment_ratio": 0.3, "max_no_improvement": None}
    data = _cluster_data(X, tmp_path)
    with dask.config.set(scheduler="threads"):
        refs = {name: MiniBatchKMeans(k, **params).fit(x) for name, x in data.items()}
    ref = refs["numpy"]
    reassigned = [h["n_reassigned"] for h in ref.history_]
    assert ref.n_steps_ == 40 and 0 < sum(r > 0 for r in reassigned) < ref.n_steps_ // 2
    for name, x in data.items():
        with local_cluster.as_current(), ran_on_workers(local_cluster):
            km = MiniBatchKMeans(k, **params).fit(x)
        np.testing.assert_array_equal(km.cluster_centers_, ref.cluster_centers_)
        assert [h["n_reassigned"] for h in km.history_] == reassigned
        assert [h["batch_inertia"] for h in km.history_] == [
            h["batch_inertia"] for h in ref.history_]
        np.testing.assert_array_equal(computed(km.labels_), ref.labels_)
        if name != "numpy":  # numpy blocks: one per thread, here or in the workers
            assert km.inertia_ == refs[name].inertia_, name
        assert km.inertia_ == pytest.approx(ref.inertia_, rel=1e-12)


def _nbytes(value: object) -> int:
    """Bytes of the numpy arrays in a task's arguments (futures count nothing)."""
    if isinstance(value, np.ndarray):
        return value.nbytes
    if isinstance(value, (tuple, list)):
        return sum(_nbytes(v) for v in value)
    return 0


def test_cluster_steps_carry_no_rows_from_the_client(
        local_cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    """A step on rows held in the workers submits tasks whose arguments are the K x d
    centres, the counts and the batch's local row indices, never rows; and it takes
    no graph compute (``Client.get``): a fit of three times the steps makes the same
    computes."""
    from distributed import Client

    from ..conftest import ran_on_workers

    k, d, batch = 4, 64, 200
    X, _ = make_blobs(4000, n_features=d, centers=k, random_state=1)
    X = X.astype(np.float32)
    sent: list[int] = []
    gets: list[int] = []
    submit, get = Client.submit, Client.get

    def spy_submit(self, fn, *args, **kwargs):  # type: ignore[no-untyped-def]
        sent.append(_nbytes(args) + _nbytes(list(kwargs.values())))
        return submit(self, fn, *args, **kwargs)

    def spy_get(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        gets.append(1)
        return get(self, *args, **kwargs)

    monkeypatch.setattr(Client, "submit", spy_submit)
    monkeypatch.setattr(Client, "get", spy_get)
    counts = []
    for max_iter in (1, 3):
        sent.clear()
        gets.clear()
        with local_cluster.as_current(), ran_on_workers(local_cluster):
            km = MiniBatchKMeans(k, batch_size=batch, max_iter=max_iter,
                                 max_no_improvement=None, random_state=0).fit(X)
        assert km.n_steps_ == max_iter * len(X) // batch
        counts.append(len(gets))
        # the largest task argument: the centres (float64 in a step), never rows
        assert max(sent) <= 8 * k * d + 8 * k + 8 * batch + 64
        assert sum(sent) < km.n_steps_ * (8 * k * d + 8 * k + 8 * batch + 256)
        assert max(sent) < batch * d * X.itemsize // 4
    assert counts[0] == counts[1]


def test_cluster_steps_checkpoint_and_resume_as_threads(
        tmp_path: Path, local_cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    """Steps in flight on a cluster leave the checkpoint what a step at a time leaves
    (the random generator as after the step, not after the batches drawn ahead): a fit
    interrupted mid-way and resumed on the cluster is the threaded fit."""
    from daskmeans.engine import workers

    X, _ = make_blobs(5000, n_features=4, centers=5, random_state=9)
    params = {"n_clusters": 5, "batch_size": 256, "random_state": 3, "max_iter": 3,
              "max_no_improvement": None, "reassignment_ratio": 0.3}
    with dask.config.set(scheduler="threads"):
        fresh = MiniBatchKMeans(**params).fit(X)
    real, calls = workers.WorkerSteps.result, [0]

    def dying(self, handle):  # type: ignore[no-untyped-def]
        calls[0] += 1
        if calls[0] == 23:
            raise KeyboardInterrupt  # the client goes away mid-fit
        return real(self, handle)

    ckpt = tmp_path / "mb.npz"
    with local_cluster.as_current():
        monkeypatch.setattr(workers.WorkerSteps, "result", dying)
        with pytest.raises(KeyboardInterrupt):
            MiniBatchKMeans(**params).fit(X, checkpoint=ckpt, checkpoint_every=5)
        monkeypatch.setattr(workers.WorkerSteps, "result", real)
        resumed = MiniBatchKMeans(**params).fit(X, checkpoint=ckpt, checkpoint_every=5,
                                                resume=True)
    assert resumed.history_[0]["step"] == 1 and len(resumed.history_) == fresh.n_steps_
    np.testing.assert_array_equal(resumed.cluster_centers_, fresh.cluster_centers_)
    assert resumed.n_steps_ == fresh.n_steps_
    assert [h["n_reassigned"] for h in resumed.history_] == [
        h["n_reassigned"] for h in fresh.history_]
