"""daskmeans.KMeans against scikit-learn, across chunkings and schedulers."""

from __future__ import annotations

import itertools
from pathlib import Path

import dask
import dask.array as da
import dask.threaded
import numpy as np
import pytest
from sklearn.cluster import KMeans as SKKMeans
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score

from daskmeans import KMeans, as_source, io, open_dataset, open_source
from daskmeans.engine.source import ArraySource, ZarrBlock, ZarrSource
from daskmeans.validation import InvalidParameterError
from tests.conftest import no_compute


@pytest.fixture(scope="module")
def blobs() -> tuple[np.ndarray, np.ndarray]:
    X, y = make_blobs(n_samples=3000, n_features=6, centers=5, cluster_std=2.0,
                      random_state=0)
    return X, y


def init_rows(X: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    return X[np.random.default_rng(seed).choice(len(X), k, replace=False)].copy()


def exact_inertia(X: np.ndarray, C: np.ndarray, labels: np.ndarray) -> float:
    """Sum of squared differences to each row's centre, in float64."""
    C = np.asarray(C, np.float64)
    return sum(float(((np.asarray(X[s:s + 4096], np.float64) - C[labels[s:s + 4096]]) ** 2)
                     .sum()) for s in range(0, len(X), 4096))


def test_equals_sklearn_lloyd_float64_blobs(blobs) -> None:
    X, _ = blobs
    C0 = init_rows(X, 8)
    sk = SKKMeans(8, init=C0, n_init=1, algorithm="lloyd").fit(X)
    ours = KMeans(8, init=C0).fit(da.from_array(X, chunks=(400, 6)))
    np.testing.assert_array_equal(ours.labels_.compute(), sk.labels_)
    np.testing.assert_allclose(ours.cluster_centers_, sk.cluster_centers_, atol=1e-10)
    assert ours.inertia_ == pytest.approx(sk.inertia_, rel=1e-9)
    assert ours.n_iter_ == sk.n_iter_


@pytest.mark.parametrize("k", [10, 32])
def test_equals_sklearn_on_real_mnist_float32(mnist_test, k: int) -> None:
    X, _ = mnist_test
    C0 = init_rows(X, k, seed=1)
    sk = SKKMeans(k, init=C0, n_init=1, algorithm="lloyd", max_iter=100).fit(X)
    ours = KMeans(k, init=C0, max_iter=100).fit(X)
    assert ours.cluster_centers_.dtype == np.float32
    np.testing.assert_array_equal(ours.labels_, sk.labels_)
    np.testing.assert_allclose(ours.cluster_centers_, sk.cluster_centers_, atol=1e-5)
    # inertia: scikit-learn sums float32 distances (1.1e-6 off the float64 value at
    # K=10); ours sums them in float64 from |x|^2 summed in float64, closer to exact
    C = ours.cluster_centers_.astype(np.float64)
    exact = float(((X.astype(np.float64) - C[ours.labels_]) ** 2).sum())
    assert ours.inertia_ == pytest.approx(exact, rel=5e-7)
    assert ours.inertia_ == pytest.approx(sk.inertia_, rel=2e-6)
    assert ours.n_iter_ == sk.n_iter_


def test_sample_weight_equals_sklearn(blobs) -> None:
    X, _ = blobs
    w = np.random.default_rng(5).uniform(0.1, 3, len(X))
    C0 = init_rows(X, 6)
    sk = SKKMeans(6, init=C0, n_init=1, algorithm="lloyd").fit(X, sample_weight=w)
    ours = KMeans(6, init=C0).fit(da.from_array(X, chunks=500),
                                  sample_weight=da.from_array(w, chunks=700))
    np.testing.assert_array_equal(ours.labels_.compute(), sk.labels_)
    np.testing.assert_allclose(ours.cluster_centers_, sk.cluster_centers_, atol=1e-10)
    assert ours.inertia_ == pytest.approx(sk.inertia_, rel=1e-9)
    assert -ours.score(X, sample_weight=w) == pytest.approx(sk.inertia_, rel=1e-9)


def test_integer_weights_equal_repeated_rows(blobs) -> None:
    X, _ = blobs
    X = X[:600]
    w = np.random.default_rng(6).integers(1, 4, len(X))
    C0 = init_rows(X, 4)
    a = KMeans(4, init=C0).fit(X, sample_weight=w)
    b = KMeans(4, init=C0).fit(np.repeat(X, w, axis=0))
    np.testing.assert_allclose(a.cluster_centers_, b.cluster_centers_, atol=1e-9)
    assert a.inertia_ == pytest.approx(b.inertia_, rel=1e-9)


def test_empty_cluster_relocated_to_farthest_point_like_sklearn(blobs) -> None:
    X, _ = blobs
    C0 = init_rows(X, 5)
    C0[2] = 1e4  # attracts nothing: empty after the first assignment
    sk = SKKMeans(5, init=C0, n_init=1, algorithm="lloyd").fit(X)
    ours = KMeans(5, init=C0).fit(da.from_array(X, chunks=300))
    assert ours.history_[0]["n_relocated"] == 1
    assert not np.any(np.all(ours.cluster_centers_ == 0, axis=1))  # never the origin
    np.testing.assert_array_equal(ours.labels_.compute(), sk.labels_)
    np.testing.assert_allclose(ours.cluster_centers_, sk.cluster_centers_, atol=1e-9)
    assert np.bincount(ours.labels_.compute(), minlength=5).min() > 0


def test_one_compute_per_iteration(blobs, counting_scheduler) -> None:
    X, _ = blobs
    Xd = da.from_array(X, chunks=(250, 6))
    km = KMeans(5, init=init_rows(X, 5), max_iter=4, tol=0).fit(Xd)
    assert km.n_iter_ == 4
    # the array computed once and held, 4 iterations + the final E-step for inertia_
    # against the final centres
    assert counting_scheduler.calls == 1 + 5
    assert isinstance(km.labels_, da.Array)  # still lazy
    counting_scheduler.calls = 0
    KMeans(5, init="k-means++", max_iter=3, tol=0, random_state=0).fit(Xd)
    assert counting_scheduler.calls == 1 + 1 + 3 + 1  # held, init, 3 iterations, E-step


def test_n_init_runs_share_passes_and_equal_separate_runs(
    blobs, scheduler, monkeypatch: pytest.MonkeyPatch
) -> None:
    """n_init runs fitted together (one pass per iteration for all) give what each run
    gives alone: same best run, centres, inertia, labels and per-run histories."""
    from daskmeans.algorithms import init as initialisation
    from daskmeans.algorithms import solvers

    X, _ = blobs
    Xd = da.from_array(X.astype(np.float32), chunks=(750, 6))
    # plain Lloyd alone too (a lone run would otherwise keep bounds: other float rounding)
    params = {"n_clusters": 7, "init": "random", "n_init": 4, "random_state": 5, "tol": 1e-4,
              "algorithm": "lloyd"}
    together = KMeans(**params).fit(Xd)
    assert solvers.runs_per_pass(4, 7, 6) == 4
    monkeypatch.setattr(solvers, "RUNS_MAX_BYTES", 1)  # one run per pass
    monkeypatch.setattr(initialisation, "SAMPLES_MAX_BYTES", 1)  # one init sample per pass
    alone = KMeans(**params).fit(Xd)
    np.testing.assert_array_equal(together.cluster_centers_, alone.cluster_centers_)
    assert together.inertia_ == alone.inertia_ and together.n_iter_ == alone.n_iter_
    np.testing.assert_array_equal(together.labels_.compute(), alone.labels_.compute())
    strip = [{**h, "seconds": 0} for h in together.history_]
    assert strip == [{**h, "seconds": 0} for h in alone.history_]


def test_init_samples_of_runs_gathered_together_within_the_cap(
    blobs, counting_scheduler, monkeypatch: pytest.MonkeyPatch
) -> None:
    from daskmeans.algorithms import init as initialisation

    X, _ = blobs
    Xd = da.from_array(X, chunks=(250, 6))
    w = da.from_array(np.arange(X.shape[0], dtype=np.float64), chunks=250)
    rng = np.random.default_rng(0)
    idxs = [np.sort(rng.choice(X.shape[0], size=s, replace=False)) for s in (100, 50, 80)]
    row = 6 * X.dtype.itemsize
    monkeypatch.setattr(initialisation, "SAMPLES_MAX_BYTES", 150 * row)  # runs 0+1, then 2
    src = as_source(Xd).with_options(weights=w)
    got = initialisation.take_samples(src, idxs)
    assert counting_scheduler.calls == 2
    for (rows, sw), idx in zip(got, idxs, strict=True):
        np.testing.assert_array_equal(rows, X[idx])
        np.testing.assert_array_equal(sw, idx.astype(np.float64))


def test_n_init_runs_one_compute_per_iteration(blobs, counting_scheduler) -> None:
    X, _ = blobs
    Xd = da.from_array(X, chunks=(250, 6))
    KMeans(5, init="random", n_init=3, max_iter=4, tol=0, random_state=0).fit(Xd)
    # the array held, one pass gathers the 3 runs' init samples, 4 shared iterations,
    # one shared E-step
    assert counting_scheduler.calls == 1 + 1 + 4 + 1


def test_graph_does_not_embed_centres_per_task(blobs) -> None:
    from daskmeans.engine import maps

    X, _ = blobs
    Xd = da.from_array(X, chunks=(100, 6))
    km = KMeans(5, random_state=0).fit(X)
    with no_compute():
        lab = maps.predict_lazy(as_source(Xd), km.cluster_centers_)
    assert lab.numblocks == Xd.numblocks[:1] and lab.dtype == np.int32


@pytest.mark.parametrize("init", ["k-means++", "k-means||", "random"])
def test_same_seed_same_result_for_any_chunking(blobs, init: str) -> None:
    X, _ = blobs
    X = X.astype(np.float32)
    results = []
    for n_chunks in (1, 7, 64):
        rows = -(-len(X) // n_chunks)
        km = KMeans(5, init=init, random_state=3, n_init=2).fit(
            da.from_array(X, chunks=(rows, 6)))
        results.append(km)
    for km in results[1:]:
        np.testing.assert_array_equal(km.labels_.compute(), results[0].labels_.compute())
        np.testing.assert_allclose(km.cluster_centers_, results[0].cluster_centers_, atol=1e-5)
        assert km.inertia_ == pytest.approx(results[0].inertia_, rel=1e-5)  # float32 sums


def test_threaded_and_local_cluster_agree(blobs, scheduler) -> None:
    X, y = blobs
    km = KMeans(5, init="k-means||", random_state=1).fit(da.from_array(X, chunks=500))
    ref = KMeans(5, init="k-means||", random_state=1)
    import dask

    with dask.config.set(scheduler="sync"):
        ref.fit(da.from_array(X, chunks=700))
    np.testing.assert_array_equal(km.labels_.compute(), ref.labels_.compute())
    np.testing.assert_allclose(km.cluster_centers_, ref.cluster_centers_, atol=1e-9)
    assert adjusted_rand_score(y, km.labels_.compute()) > 0.95


@pytest.mark.parametrize("init", ["k-means++", "k-means||"])
def test_init_quality_on_blobs(init: str) -> None:
    X, y = make_blobs(4000, 10, centers=20, cluster_std=0.5, random_state=2)
    km = KMeans(20, init=init, random_state=0).fit(X)
    sk = SKKMeans(20, random_state=0, n_init=1).fit(X)
    assert km.inertia_ <= 1.05 * sk.inertia_
    assert adjusted_rand_score(y, km.labels_) > 0.95


def test_init_array_and_callable(blobs) -> None:
    X, _ = blobs
    C0 = init_rows(X, 3)
    calls = []

    def my_init(sample, k, random_state):
        calls.append(sample.shape)
        return C0

    a = KMeans(3, init=my_init, max_iter=1).fit(X)
    b = KMeans(3, init=C0, max_iter=1).fit(X)
    np.testing.assert_array_equal(a.cluster_centers_, b.cluster_centers_)
    assert calls and calls[0][1] == 6
    with pytest.raises(ValueError, match=r"The shape of the initial centers \(3, 6\) does "
                                         r"not match the number of clusters 4\."):
        KMeans(4, init=C0).fit(X)


def test_cosine_is_spherical(blobs) -> None:
    X, _ = blobs
    X = X + 20  # directions matter, not magnitudes
    km = KMeans(4, metric="cosine", random_state=0).fit(X)
    np.testing.assert_allclose(np.linalg.norm(km.cluster_centers_, axis=1), 1, rtol=1e-9)
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    np.testing.assert_array_equal(km.labels_, np.argmax(Xn @ km.cluster_centers_.T, axis=1))
    np.testing.assert_array_equal(km.predict(X * 3.0), km.labels_)  # scale invariant


def test_predict_transform_lazy_for_dask(blobs) -> None:
    X, _ = blobs
    km = KMeans(5, random_state=0).fit(X)
    Xd = da.from_array(X, chunks=1000)
    with no_compute():
        lab, dist = km.predict(Xd), km.transform(Xd)
    assert lab.dtype == np.int32 and dist.shape == (len(X), 5)
    da.utils.assert_eq(lab, km.predict(X))
    sk = SKKMeans(5, init=km.cluster_centers_, n_init=1, max_iter=1).fit(X)
    sk.cluster_centers_ = km.cluster_centers_
    da.utils.assert_eq(dist, sk.transform(X), rtol=1e-6)


def test_zarr_store_input(tmp_path: Path) -> None:
    store = io.make_blobs_zarr(tmp_path / "b.zarr", 5000, 4, centers=3, chunk_rows=700,
                               random_state=0)
    km = KMeans(3, random_state=0).fit(store)
    assert km.cluster_centers_.dtype == np.float32
    import zarr

    true = zarr.open_group(store, mode="r")["centers"][:]
    d = ((km.cluster_centers_[:, None] - true[None]) ** 2).sum(-1)
    assert d.min(axis=1).max() < 0.01
    assert km.predict(str(store)).shape == (5000,)


def test_history_records_each_iteration(blobs) -> None:
    X, _ = blobs
    km = KMeans(5, random_state=0, tol=0).fit(X)
    h = km.history_
    assert len(h) == km.n_iter_ and h[-1]["center_shift"] == 0
    inertias = [r["inertia"] for r in h]
    assert all(b <= a * (1 + 1e-12) for a, b in itertools.pairwise(inertias))
    assert all(r["seconds"] > 0 for r in h)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"n_clusters": 50}, r"n_samples=10 should be >= n_clusters=50\."),
        ({"n_clusters": 0}, r"'n_clusters' parameter of KMeans must be an int in the range "
                            r"\[1, inf\), got 0"),
        ({"init": "kmeans"}, "'init' parameter of KMeans must be"),
        ({"metric": "chebyshev"}, "'metric' parameter of KMeans must be"),
        ({"tol": -1}, "'tol' parameter of KMeans must be .*, got -1"),
        ({"max_iter": 0}, "'max_iter' parameter of KMeans must be .*, got 0"),
        ({"n_init": 0}, "'n_init' parameter of KMeans must be 'auto' or an int"),
        ({"split_every": 1}, r"'split_every' parameter of KMeans must be an int in the range "
                             r"\[2, inf\), got 1"),
        ({"oversampling_factor": 0}, "'oversampling_factor' parameter of KMeans must be"),
        ({"algorithm": "fast"}, "'algorithm' parameter of KMeans must be"),
    ],
)
def test_errors_name_parameter(params: dict, message: str) -> None:
    X = np.random.default_rng(0).normal(size=(10, 2))
    with pytest.raises(ValueError, match=message):
        KMeans(**{"n_clusters": 2, **params}).fit(X)


@pytest.mark.parametrize("params", [{"split_every": 1}, {"max_iter": 0}, {"init": "x"}])
def test_parameters_checked_before_data_is_touched(params: dict) -> None:
    """A bad parameter fails before the data is read: here the data would raise."""

    class Untouchable:
        def __array__(self, *a, **k):  # type: ignore[no-untyped-def]
            raise AssertionError("data touched")

    with pytest.raises(InvalidParameterError):
        KMeans(2, **params).fit(Untouchable())


def test_n_init_auto_with_a_callable_init_is_ten_as_scikit_learn() -> None:
    from daskmeans import MiniBatchKMeans

    def init(X, k, random_state):  # type: ignore[no-untyped-def]
        return X[random_state.choice(len(X), k, replace=False)]

    assert KMeans(3, init=init)._n_init() == 10
    assert MiniBatchKMeans(3, init=init)._n_init() == 3
    assert KMeans(3)._n_init() == 1 and KMeans(3, init="random")._n_init() == 10


@pytest.mark.parametrize("chunks", [(1000, 6), (250, 6)])
def test_nan_in_lazy_input_is_an_error_naming_the_row(blobs, chunks: tuple) -> None:
    """Non-finite values in dask or Zarr input are found inside the fit's own passes
    (no extra pass) and raise ValueError naming the row; predict says so too."""
    from daskmeans import MiniBatchKMeans

    X, _ = blobs
    bad = X.copy()
    bad[1234, 2] = np.nan
    Xd = da.from_array(bad, chunks=chunks)
    for est in (KMeans(4, random_state=0), KMeans(4, random_state=0, init="k-means||"),
                MiniBatchKMeans(4, random_state=0)):
        with pytest.raises(ValueError, match="NaN or infinity in row 1234"):
            est.fit(Xd)
    km = KMeans(4, random_state=0).fit(X)
    with pytest.raises(ValueError, match="row 1234"):
        km.predict(Xd).compute()
    w = np.ones(len(X))
    w[2100] = -1.0
    with pytest.raises(ValueError, match="sample_weight must be .* in row 2100"):
        KMeans(4, random_state=0).fit(da.from_array(X, chunks=chunks),
                                      sample_weight=da.from_array(w, chunks=chunks[0]))
    inf = X.copy()
    inf[7, 0] = np.inf
    with pytest.raises(ValueError, match="row 7"):
        KMeans(4, random_state=0).fit(da.from_array(inf, chunks=chunks))


@pytest.mark.parametrize(("chunks", "inline"), [(2, True), (64, False)])
def test_centres_enter_a_pass_once_or_inline_when_small(chunks: int, inline: bool) -> None:
    """Small centres ride inside a few tasks; with many blocks they are one graph key."""
    from dask.delayed import Delayed

    from daskmeans.engine import reductions
    from daskmeans.kernels import common

    X = np.random.default_rng(0).normal(size=(6400, 784)).astype(np.float32)
    src = ArraySource(X, block_rows=6400 // chunks)
    cen = common.Centres(X[:10], X.dtype)
    shared = reductions.shared_operand(cen, src.n_blocks)
    assert (shared is cen) == inline and isinstance(shared, Delayed) != inline
    assert reductions.lloyd_pass(src, X[:10]).counts.sum() == 6400


@pytest.fixture(scope="module")
def pixel_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3000 uint8 'images' (4 x 5) of 6 blobs, stored in 700-row chunks."""
    X, y = make_blobs(n_samples=3000, n_features=20, centers=6, cluster_std=1.5,
                      random_state=1)
    imgs = ((X - X.min()) / (X.max() - X.min()) * 255).astype(np.uint8).reshape(-1, 4, 5)
    return io.arrays_to_dataset({"train": (imgs, y.astype(np.uint8))},
                                tmp_path_factory.mktemp("px") / "p.zarr", name="p",
                                chunk_rows=700)


def test_store_source_gives_the_same_fit_as_the_dask_array(
    pixel_store: Path, scheduler: str
) -> None:
    """Fitting the store (uint8 rows read in the tasks, scaled block by block) equals
    fitting the float32 dask array that open_dataset gives, bit for bit."""
    from daskmeans import MiniBatchKMeans

    src = open_source(pixel_store, "train")
    assert isinstance(src, ZarrSource) and src.scale == io.PIXEL_SCALE
    X, _ = open_dataset(pixel_store, "train")
    X = X.rechunk((tuple(np.diff(src.offsets).tolist()), -1))  # the same blocks
    models = [KMeans(6, random_state=0, n_init=2),
              MiniBatchKMeans(6, random_state=0, batch_size=1000, max_iter=3)]
    direct = [m.fit(src) for m in models]
    via_dask = [type(m)(**m.get_params()).fit(X) for m in models]
    for a, b in zip(direct, via_dask, strict=True):
        np.testing.assert_array_equal(a.cluster_centers_, b.cluster_centers_)
        assert a.inertia_ == b.inertia_
    np.testing.assert_array_equal(direct[0].labels_.compute(), via_dask[0].labels_.compute())
    np.testing.assert_array_equal(direct[0].predict(str(pixel_store)).compute(),
                                  via_dask[0].labels_.compute())


@pytest.mark.parametrize("layout", ["v3", "v3-sharded", "v2"])
def test_any_zarr_layout_is_read_in_the_tasks(tmp_path: Path, layout: str,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Each pass reads every block of a Zarr array exactly once, for v2, v3 (from the
    chunk files) and sharded v3 stores (through zarr); the fit equals the in-memory fit."""
    import zarr

    X, _ = make_blobs(n_samples=3000, n_features=8, centers=4, random_state=2)
    X = X.astype(np.float32)
    kw: dict = {"chunks": (250, 8)}
    if layout == "v3-sharded":
        kw["shards"] = (1000, 8)
    z = zarr.create_array(tmp_path / "x.zarr", shape=X.shape, dtype="f4", overwrite=True,
                          zarr_format=2 if layout == "v2" else 3, **kw)
    z[...] = X
    reads: list[tuple[int, int]] = []
    read = ZarrBlock.read

    def counting(self: ZarrBlock):  # type: ignore[no-untyped-def]
        reads.append((self.start, self.stop))
        return read(self)

    monkeypatch.setattr(ZarrBlock, "read", counting)
    streamed = open_source(str(tmp_path / "x.zarr"), cache=False)
    with dask.config.set(scheduler="threads"):
        km = KMeans(4, init=X[:4], max_iter=3, tol=0).fit(streamed)
    ref = KMeans(4, init=X[:4], max_iter=3, tol=0).fit(X)
    np.testing.assert_allclose(km.cluster_centers_, ref.cluster_centers_, rtol=1e-5)
    src = open_source(str(tmp_path / "x.zarr"))
    assert (src.files is None) == (layout == "v3-sharded")
    assert len(set(reads)) == src.n_blocks
    assert len(reads) == src.n_blocks * (km.n_iter_ + 1)  # passes + the final E-step
    reads.clear()  # by default the decoded blocks are read once and held for the fit
    with dask.config.set(scheduler="threads"):
        held = KMeans(4, init=X[:4], max_iter=3, tol=0).fit(str(tmp_path / "x.zarr"))
    assert sorted(reads) == sorted(set(reads)) and len(reads) == src.n_blocks
    np.testing.assert_array_equal(held.cluster_centers_, km.cluster_centers_)
    assert held.inertia_ == km.inertia_
    if layout == "v3-sharded":  # blocks are whole shards
        assert all(b % 1000 == 0 for b in src.offsets[:-1])


@pytest.mark.parametrize("cache", [None, False, True])
def test_store_rows_held_in_memory_or_streamed_give_one_fit(
    pixel_store: Path, scheduler: str, cache: bool | None, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A fit holds the decoded uint8 blocks (cache=True, or None within the memory
    budget) or reads the store every pass (False, or None over the budget): the same
    model bit for bit, still one compute per Lloyd iteration. Held blocks keep their
    rows' |x|^2 next to them (numpy here, futures in the workers on a cluster), equal to
    the norms of the scaled rows."""
    from daskmeans.engine import schedule
    from daskmeans.engine.hold import hold
    from daskmeans.kernels import common

    ref = KMeans(6, random_state=0, n_init=2).fit(open_source(pixel_store, cache=False))
    if cache is None:  # over the budget: streamed, as with cache=False
        monkeypatch.setattr(schedule, "CACHE_FRACTION", 0.0)
    src = open_source(pixel_store, cache=cache)
    held = hold(src)
    assert (held is not src) == bool(cache)
    if cache and scheduler == "threads":  # numpy blocks here (futures on a cluster)
        assert all(b.dtype == np.uint8 for b in held.held)
    if cache:
        def local(v):  # type: ignore[no-untyped-def]
            return v.result() if hasattr(v, "result") else v

        assert isinstance(held.xsq, np.ndarray if scheduler == "threads" else list)
        assert hold(open_source(pixel_store, cache=True), with_xsq=False).xsq is None
        for i in range(held.n_blocks):
            rows = held.rows_float(local(held.held[i]))
            np.testing.assert_array_equal(local(held.block_xsq(i)),
                                          common.row_norms_sq(rows, np.float64))
    km = KMeans(6, random_state=0, n_init=2).fit(src)
    np.testing.assert_array_equal(km.cluster_centers_, ref.cluster_centers_)
    assert km.inertia_ == ref.inertia_ and km.n_iter_ == ref.n_iter_
    np.testing.assert_array_equal(km.labels_.compute(), ref.labels_.compute())


def test_lazy_rows_of_a_held_store_do_not_pickle_it(pixel_store: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A held source's lazy rows (the labels_ / predict graph at the end of a fit) are
    built without pickling the source: dask tokenizes a bound method by pickling its
    object, held blocks and all (hashing every held byte at the end of a fit)."""
    from daskmeans.engine.hold import hold

    with dask.config.set(scheduler="threads"):
        held = hold(open_source(pixel_store, cache=True))

        pickled: list[int] = []
        reduce_ex = ZarrSource.__reduce_ex__

        def counting(self, protocol):  # type: ignore[no-untyped-def]
            pickled.append(protocol)  # (dask falls back to a random token on errors)
            return reduce_ex(self, protocol)

        monkeypatch.setattr(ZarrSource, "__reduce_ex__", counting)
        X = held.to_dask()
        monkeypatch.undo()
        assert pickled == []
        ref = open_dataset(pixel_store, "train")[0].compute().reshape(len(X), -1)
        np.testing.assert_array_equal(X.compute(), ref)


def test_held_store_of_one_chunk_is_cut_for_every_thread(tmp_path: Path) -> None:
    """A store of a single chunk held under the threaded scheduler becomes one block
    per thread (row ranges of the one read), and fits as the streamed store does."""
    import zarr

    from daskmeans.engine.hold import hold

    X, _ = make_blobs(n_samples=1001, n_features=5, centers=3, random_state=3)
    z = zarr.create_array(tmp_path / "one.zarr", shape=X.shape, dtype="f8", chunks=X.shape)
    z[...] = X
    with dask.config.set(scheduler="threads", num_workers=3):
        src = open_source(str(tmp_path / "one.zarr"), cache=True)
        assert src.n_blocks == 1
        held = hold(src)
        assert held.n_blocks == 3 and held.offsets == (0, 334, 668, 1001)
        np.testing.assert_array_equal(np.concatenate(held.held), X)
        km = KMeans(3, init=X[:3], max_iter=5, tol=0).fit(held)
        ref = KMeans(3, init=X[:3], max_iter=5, tol=0).fit(
            open_source(str(tmp_path / "one.zarr"), cache=False))
    np.testing.assert_allclose(km.cluster_centers_, ref.cluster_centers_, rtol=1e-12)
    np.testing.assert_array_equal(km.labels_.compute(), ref.labels_.compute())
    assert km.n_iter_ == ref.n_iter_


def test_held_store_fit_one_compute_per_iteration(pixel_store: Path, counting_scheduler) -> None:
    C0 = open_dataset(pixel_store)[0][:6].compute()
    counting_scheduler.calls = 0
    km = KMeans(6, init=C0, max_iter=4, tol=0).fit(open_source(pixel_store, cache=True))
    assert km.n_iter_ == 4
    assert counting_scheduler.calls == 1 + 4 + 1  # read and hold + 4 iterations + E-step


@pytest.mark.parametrize("k", [10, 64])
def test_bounds_give_plain_lloyd_iterations_on_real_mnist(
    mnist_test, k: int, scheduler: str
) -> None:
    """algorithm="elkan" (per-row bounds) and "lloyd" (every row every pass): the same
    labels, n_iter_, centres and inertia, iteration by iteration, on both schedulers."""
    X, _ = mnist_test
    C0 = init_rows(X, k, seed=2)
    plain = KMeans(k, init=C0, algorithm="lloyd", max_iter=60).fit(X)
    bounded = KMeans(k, init=C0, algorithm="elkan", max_iter=60).fit(X)
    assert bounded.n_iter_ == plain.n_iter_
    np.testing.assert_array_equal(bounded.labels_, plain.labels_)
    np.testing.assert_allclose(bounded.cluster_centers_, plain.cluster_centers_, atol=1e-6)
    # the final inertia: from float64 per-cluster sums (bounded), from float64
    # differences (plain in memory); float32 distances were 2e-7 off here
    exact = exact_inertia(X, bounded.cluster_centers_, bounded.labels_)
    assert bounded.inertia_ == pytest.approx(exact, rel=1e-9)
    assert plain.inertia_ == pytest.approx(exact, rel=1e-9)
    for a, b in zip(bounded.history_, plain.history_, strict=True):
        assert a["inertia"] == pytest.approx(b["inertia"], rel=1e-6)
        assert a["center_shift"] == pytest.approx(b["center_shift"], rel=1e-4, abs=1e-12)
    assert KMeans(k).algorithm == "auto"


def test_bounded_fit_one_compute_per_iteration_and_skips_settled_blocks(
    pixel_store: Path, counting_scheduler, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Streamed from a store, a bounded fit makes at most one compute per iteration
    and, once blocks settle, does not read them; the result is plain Lloyd's."""
    reads: list[int] = []
    read = ZarrBlock.read

    def counting(self: ZarrBlock):  # type: ignore[no-untyped-def]
        reads.append(self.start)
        return read(self)

    monkeypatch.setattr(ZarrBlock, "read", counting)
    src = open_source(pixel_store, cache=False)
    C0 = open_dataset(pixel_store)[0][:6].compute()
    plain = KMeans(6, init=C0, algorithm="lloyd", tol=0, max_iter=50).fit(src)
    counting_scheduler.calls, reads[:] = 0, []
    km = KMeans(6, init=C0, algorithm="elkan", tol=0, max_iter=50).fit(src)
    # passes (at most one per iteration); the final E-step reads nothing here
    assert counting_scheduler.calls <= km.n_iter_
    assert km.n_iter_ == plain.n_iter_ > 3
    np.testing.assert_allclose(km.cluster_centers_, plain.cluster_centers_, atol=1e-6)
    labels = km.labels_.compute()
    np.testing.assert_array_equal(labels, plain.labels_.compute())
    exact = exact_inertia(open_dataset(pixel_store)[0].compute(), km.cluster_centers_,
                          labels)
    assert km.inertia_ == pytest.approx(exact, rel=1e-9)  # float64 per-cluster sums
    assert plain.inertia_ == pytest.approx(exact, rel=1e-9)  # and plain Lloyd's too
    # boundary rows in every block at every iteration; the labels' final E-step reads
    # none (they stopped changing) and gives labels_ without another pass
    assert len(reads) == src.n_blocks * km.n_iter_
    # well-separated blobs in 100-row chunks: once the centres sit in the blobs, the
    # bounds settle every block and the store is no longer read
    import zarr

    X, _ = make_blobs(n_samples=2000, n_features=4, centers=[[0] * 4, [30] * 4, [-30] * 4],
                      cluster_std=1.0, random_state=0)
    z = zarr.create_array(pixel_store.parent / "sep.zarr", shape=X.shape, chunks=(100, 4),
                          dtype="f8", overwrite=True)
    z[...] = X
    src = open_source(z, cache=False)
    C0 = X[[int(np.flatnonzero(np.abs(X[:, 0] - c) < 5)[0]) for c in (0, 30, -30)]]
    reads[:] = []
    km = KMeans(3, init=C0, algorithm="elkan", tol=0).fit(src)
    plain = KMeans(3, init=C0, algorithm="lloyd", tol=0).fit(X)
    assert km.n_iter_ == plain.n_iter_ == 2
    np.testing.assert_allclose(km.cluster_centers_, plain.cluster_centers_, rtol=1e-12)
    assert len(reads) == src.n_blocks  # the first pass only (the final E-step: none)


def test_bounded_fit_relocates_empty_clusters_as_plain_lloyd(blobs) -> None:
    X, _ = blobs
    C0 = np.concatenate([init_rows(X, 4), [[1e3] * X.shape[1]]])  # one centre far away
    plain = KMeans(5, init=C0, algorithm="lloyd", max_iter=30).fit(X)
    bounded = KMeans(5, init=C0, algorithm="elkan", max_iter=30).fit(X)
    assert plain.history_[0]["n_relocated"] == 1
    assert [h["n_relocated"] for h in bounded.history_] == [
        h["n_relocated"] for h in plain.history_]
    np.testing.assert_array_equal(bounded.labels_, plain.labels_)
    np.testing.assert_allclose(bounded.cluster_centers_, plain.cluster_centers_, atol=1e-9)


def test_dask_array_blocks_reach_the_kernels_without_a_copy() -> None:
    """A pass over a persisted dask array hands each kernel the block itself: dask's
    blockwise ``concatenate=True`` copied every block in every pass (a sizeable part
    of a Lloyd iteration)."""
    from daskmeans.engine import reductions

    X = np.arange(40, dtype=np.float32).reshape(10, 4)
    with dask.config.set(scheduler="threads"):
        Xd = da.from_array(X, chunks=(5, 4)).persist()
        blocks = list(dict(Xd.__dask_graph__()).values())  # the two chunks it holds
        seen: list[bool] = []

        def spy(x, w, xsq, shared, *, offset):  # type: ignore[no-untyped-def]
            seen.append(any(np.shares_memory(x, b) for b in blocks))
            return 0

        reductions.map_reduce(as_source(Xd), spy, None)
    assert seen == [True, True]
