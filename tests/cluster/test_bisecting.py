"""BisectingKMeans against scikit-learn's and brute-force references."""

from __future__ import annotations

import inspect
from pathlib import Path

import dask
import dask.array as da
import numpy as np
import pytest
import zarr
from sklearn.cluster import BisectingKMeans as SKBisecting
from sklearn.datasets import load_digits, make_blobs
from sklearn.metrics import adjusted_rand_score

from daskmeans import BisectingKMeans, io, load_model, open_source, save_model
from daskmeans.algorithms import BisectingTree
from daskmeans.algorithms import bisecting as bisecting_algorithm
from daskmeans.engine.source import ArraySource, reads_raw_uint8
from daskmeans.kernels import bisect
from daskmeans.validation import InvalidParameterError

from ..conftest import computed


@pytest.fixture(scope="module")
def blobs() -> tuple[np.ndarray, np.ndarray]:
    """1,500 rows of 6 well-separated blobs of unequal sizes in 5-D."""
    centers = np.random.default_rng(0).uniform(-30, 30, size=(6, 5))
    X, y = make_blobs(n_samples=[100, 200, 250, 300, 300, 350], n_features=5,
                      centers=centers, cluster_std=0.7, random_state=0)
    return X, y


def descend(tree: BisectingTree, X: np.ndarray) -> np.ndarray:
    """Each row from the root to a leaf, at each split to the nearer child centre."""
    out = np.empty(len(X), np.int64)
    for i, x in enumerate(X.astype(np.float64)):
        node = 0
        while tree.children[node, 0] >= 0:
            left, right = tree.children[node]
            d = [((x - tree.centers[c]) ** 2).sum() for c in (left, right)]
            node = right if d[1] < d[0] else left
        out[i] = tree.labels[node]
    return out


@pytest.mark.parametrize("strategy", ["biggest_inertia", "largest_cluster"])
def test_tree_recovers_the_blobs_and_describes_itself(blobs, strategy: str) -> None:
    X, y = blobs
    w = np.random.default_rng(1).uniform(0.5, 2.0, len(X))
    bk = BisectingKMeans(6, bisecting_strategy=strategy, random_state=0).fit(
        X, sample_weight=w)
    assert adjusted_rand_score(y, bk.labels_) == 1.0
    t = bk.tree_
    leaves = t.leaves()
    assert len(leaves) == 6 and len(t.parent) == 11 and t.labels[leaves].tolist() == list(
        range(6))
    inner = np.flatnonzero(t.children[:, 0] >= 0)
    for i in inner:  # the children partition their parent's rows
        kids = t.children[i]
        assert t.parent[kids].tolist() == [i, i]
        assert t.sizes[kids].sum() == t.sizes[i]
        assert t.weights[kids].sum() == pytest.approx(t.weights[i], rel=1e-12)
        assert t.sse[kids].sum() <= t.sse[i] * (1 + 1e-12)
    assert t.sizes[0] == len(X) and t.weights[0] == pytest.approx(w.sum(), rel=1e-12)
    lab = bk.labels_
    for leaf in leaves:  # each leaf: its rows' count, weight, weighted mean and SSE
        rows = lab == t.labels[leaf]
        mean = w[rows] @ X[rows] / w[rows].sum()
        np.testing.assert_allclose(t.centers[leaf], mean, rtol=1e-9, atol=1e-9)
        assert t.sizes[leaf] == rows.sum()
        sse = w[rows] @ ((X[rows] - t.centers[leaf]) ** 2).sum(1)
        assert t.sse[leaf] == pytest.approx(sse, rel=1e-9)
    scores = t.sse if strategy == "biggest_inertia" else t.sizes
    np.testing.assert_allclose(t.scores[1:], scores[1:])
    assert bk.inertia_ == pytest.approx(t.sse[leaves].sum(), rel=1e-12)
    np.testing.assert_array_equal(bk.predict(X), descend(t, X))
    np.testing.assert_array_equal(bk.predict(X), bk.labels_)
    np.testing.assert_array_equal(bk.cluster_centers_, t.centers[leaves])


def test_inertia_within_two_percent_of_scikit_learn_on_digits() -> None:
    """Same settings, three seeds each: the mean inertias agree within 2% (the seeds
    draw different rows, so single fits reach different nearby trees)."""
    from threadpoolctl import threadpool_limits

    X = load_digits().data
    for k, strategy in ((16, "biggest_inertia"), (8, "largest_cluster")):
        ours = [BisectingKMeans(k, bisecting_strategy=strategy, random_state=s).fit(X)
                for s in range(3)]
        with threadpool_limits(1):  # its OpenMP threads are slow on a busy 2-core box
            theirs = [SKBisecting(k, bisecting_strategy=strategy, random_state=s).fit(X)
                      for s in range(3)]
        a, b = np.mean([m.inertia_ for m in ours]), np.mean([m.inertia_ for m in theirs])
        assert abs(a / b - 1) < 0.02, (k, strategy, a, b)
        for m in ours:  # inertia_ is the SSE of the tree's own labels
            C = m.cluster_centers_[m.labels_]
            assert m.inertia_ == pytest.approx(((X - C) ** 2).sum(), rel=1e-9)


def test_bisections_share_passes_and_give_the_sequential_tree(
    blobs, counting_scheduler, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Leaves too large to gather (here: no room at all) are bisected by masked passes:
    the leaves that may still be split are bisected together (their 2-means share
    every pass, one compute each) and the tree is the one made one bisection at a
    time, in scikit-learn's order."""
    X, _ = blobs
    Xd = da.from_array(X, chunks=(400, 5))
    monkeypatch.setattr(bisecting_algorithm, "gather_budget", lambda: 0)
    together = BisectingKMeans(6, random_state=3, n_init=2).fit(Xd)
    passes = sum(h["passes"] for h in together.history_)
    # the array computed once and held, the root's pass, the rounds' passes
    assert counting_scheduler.calls == 1 + 1 + passes
    assert isinstance(together.labels_, da.Array)
    assert max(h["bisections"] for h in together.history_) > 1
    monkeypatch.setattr(bisecting_algorithm, "BISECT_TOGETHER", False)
    counting_scheduler.calls = 0
    alone = BisectingKMeans(6, random_state=3, n_init=2).fit(Xd)
    assert [h["bisections"] for h in alone.history_] == [1] * 5
    assert counting_scheduler.calls == 1 + 1 + sum(h["passes"] for h in alone.history_) > (
        1 + 1 + passes)
    np.testing.assert_array_equal(together.cluster_centers_, alone.cluster_centers_)
    np.testing.assert_array_equal(together.tree_.children, alone.tree_.children)
    np.testing.assert_array_equal(together.labels_.compute(), alone.labels_.compute())


def test_rows_gathered_once_give_the_tree_of_masked_passes(
    blobs, counting_scheduler, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A dask array that fits in memory is held (one compute, the only one of the
    whole fit: the held blocks are joined here and every 2-means runs on its leaf's
    rows), and the tree is the
    one masked passes over the blocks make; leaves gathered as they become small enough
    (room for a third of the rows) give it too."""
    X, _ = blobs
    w = np.random.default_rng(4).uniform(0.5, 2.0, len(X))
    Xd = da.from_array(X, chunks=(400, 5))
    gathered = BisectingKMeans(8, random_state=1, n_init=2).fit(Xd, sample_weight=w)
    assert counting_scheduler.calls == 1
    assert sum(h["passes"] for h in gathered.history_) == 0
    assert isinstance(gathered.labels_, da.Array)
    for room in (0, X.nbytes // 3):
        monkeypatch.setattr(bisecting_algorithm, "gather_budget", lambda room=room: room)
        counting_scheduler.calls = 0
        other = BisectingKMeans(8, random_state=1, n_init=2).fit(Xd, sample_weight=w)
        passes = sum(h["passes"] for h in other.history_)
        # the hold, the root's pass, the rounds'
        assert counting_scheduler.calls == 1 + 1 + passes > 3
        np.testing.assert_array_equal(other.tree_.children, gathered.tree_.children)
        np.testing.assert_array_equal(other.tree_.sizes, gathered.tree_.sizes)
        np.testing.assert_allclose(other.cluster_centers_, gathered.cluster_centers_,
                                   rtol=1e-9, atol=1e-12)
        assert other.inertia_ == pytest.approx(gathered.inertia_, rel=1e-9)
        np.testing.assert_array_equal(other.labels_.compute(), gathered.labels_.compute())


def test_independent_of_chunking_source_and_scheduler(blobs, tmp_path: Path,
                                                      scheduler: str) -> None:
    X, _ = blobs
    X = X.astype(np.float32)
    ref = BisectingKMeans(5, init="k-means++", random_state=2)
    with dask.config.set(scheduler="sync"):
        ref.fit(X)
    z = zarr.create_array(tmp_path / "x.zarr", shape=X.shape, chunks=(300, 5), dtype="f4")
    z[...] = X
    sources = [open_source(z, cache=False)]  # streamed blocks, gathered here
    if scheduler == "threads":
        sources += [da.from_array(X, chunks=(170, 5)), X]
    for data in sources:
        bk = BisectingKMeans(5, init="k-means++", random_state=2).fit(data)
        np.testing.assert_array_equal(computed(bk.labels_), ref.labels_)
        np.testing.assert_allclose(bk.cluster_centers_, ref.cluster_centers_, rtol=1e-6)
        np.testing.assert_array_equal(bk.tree_.sizes, ref.tree_.sizes)
        assert bk.inertia_ == pytest.approx(ref.inertia_, rel=1e-9)


def test_cluster_fit_runs_in_a_worker_and_equals_threads(blobs, tmp_path: Path,
                                                       local_cluster,
                                                       monkeypatch: pytest.MonkeyPatch
                                                       ) -> None:
    """On a cluster, a dask array's or store's blocks held in the workers (and a store
    streamed from there) are joined in one task on a worker, which runs the whole fit
    there and sends back the tree and labels: no row reaches the client, and the model
    is the threaded fit's, bit for bit (a uint8 store's rows stay raw)."""
    from distributed import Client

    from ..conftest import ran_on_workers

    X, _ = blobs
    X = X.astype(np.float32)
    w = np.random.default_rng(4).uniform(0.5, 2.0, len(X))
    z = zarr.create_array(tmp_path / "x.zarr", shape=X.shape, chunks=(300, 5), dtype="f4")
    z[...] = X
    pixels = (load_digits().images * 15).astype(np.uint8)
    px = zarr.create_array(tmp_path / "px.zarr", shape=pixels.shape, chunks=(450, 8, 8),
                           dtype="u1", attributes={"scale_factor": io.PIXEL_SCALE})
    px[...] = pixels
    cases = {"dask": lambda: da.from_array(X, chunks=(170, 5)),
             "held store": lambda: open_source(z, cache=True),
             "streamed store": lambda: open_source(z, cache=False),
             "uint8 store": lambda: open_source(px, cache=True)}
    params = {"n_clusters": 7, "init": "k-means++", "n_init": 2, "random_state": 2}
    gets: list[int] = []
    get = Client.get

    def spy_get(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        gets.append(1)
        return get(self, *args, **kwargs)

    monkeypatch.setattr(Client, "get", spy_get)
    for name, data in cases.items():
        weights = w if name != "uint8 store" else None
        with dask.config.set(scheduler="threads"):
            ref = BisectingKMeans(**params).fit(data(), sample_weight=weights)
        gets.clear()
        with local_cluster.as_current(), ran_on_workers(local_cluster):
            bk = BisectingKMeans(**params).fit(data(), sample_weight=weights)
            fit_gets = len(gets)
            labels = computed(bk.labels_)
        # no graph computed from here: the hold persists, the rows are joined and
        # bisected by a submitted task (a gather here would be a compute)
        assert fit_gets == 0, name
        assert sum(h["passes"] for h in bk.history_) == 0
        for attr in BisectingTree.ARRAYS:
            np.testing.assert_array_equal(getattr(bk.tree_, attr), getattr(ref.tree_, attr))
        np.testing.assert_array_equal(bk.cluster_centers_, ref.cluster_centers_)
        assert bk.inertia_ == ref.inertia_
        np.testing.assert_array_equal(labels, computed(ref.labels_))


def _array_bytes(value: object) -> list[int]:
    """The sizes of the numpy arrays in ``value`` (through tuples, lists, dicts and the
    package's objects' attributes), a few levels deep."""
    seen: list[int] = []

    def walk(v: object, depth: int) -> None:
        if isinstance(v, np.ndarray):
            seen.append(v.nbytes)
        elif depth > 6 or isinstance(v, (str, bytes, int, float)) or v is None:
            return
        elif isinstance(v, dict):
            for item in v.values():
                walk(item, depth + 1)
        elif isinstance(v, (tuple, list)):
            for item in v:
                walk(item, depth + 1)
        elif type(v).__module__.startswith("daskmeans") and hasattr(v, "__dict__"):
            for item in list(vars(v).values()):
                walk(item, depth + 1)

    walk(value, 0)
    return seen


def test_cluster_leaves_too_large_for_a_worker_bisect_in_the_workers(
        tmp_path: Path, local_cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a cluster, rows that do not fit in a worker (the root here: the worker's
    budget patched just below it) are bisected by masked passes, not gathered to the
    client though they would fit there, and each leaf whose
    rows fit then has them joined in one task on a worker, which grows its whole
    subtree there: the two leaves of the root's split go to the workers at once and
    no other round follows. No row goes through the client (no task argument and no
    result the client receives is as large as a byte per row), and the model is the
    threaded fit's, bit for bit, when that fit bisects the root by masked passes and
    every later leaf on its rows held here: for a weighted dask array, and a store
    held, streamed, or of uint8 rows (raw in the leaves' tasks)."""
    from distributed import Client, Future

    from daskmeans.engine import workers

    from ..conftest import ran_on_workers

    X, _ = make_blobs(12000, n_features=8, centers=6, cluster_std=2.0, random_state=5)
    X = X.astype(np.float32)
    n = len(X)
    w = np.random.default_rng(4).uniform(0.5, 2.0, n)
    z = zarr.create_array(tmp_path / "x.zarr", shape=X.shape, chunks=(1500, 8), dtype="f4")
    z[...] = X
    pixels = np.clip(X * 8 + 128, 0, 255).astype(np.uint8)
    px = zarr.create_array(tmp_path / "px.zarr", shape=X.shape, chunks=(1500, 8), dtype="u1",
                           attributes={"scale_factor": io.PIXEL_SCALE})
    px[...] = pixels
    # the data, the weights, the bytes of the rows as held (uint8 rows stay raw)
    cases = {"dask": (lambda: da.from_array(X, chunks=(1700, 8)), w, X.nbytes),
             "held store": (lambda: open_source(z, cache=True), None, X.nbytes),
             "streamed store": (lambda: open_source(z, cache=False), None, X.nbytes),
             "uint8 store": (lambda: open_source(px, cache=True), None, pixels.nbytes)}
    params = {"n_clusters": 7, "init": "random", "n_init": 2, "random_state": 2}
    real_round = bisecting_algorithm.bisect_round
    masked: list[int] = []

    def spy_round(*args, **kwargs):  # type: ignore[no-untyped-def]
        masked.append(1)
        return real_round(*args, **kwargs)

    monkeypatch.setattr(bisecting_algorithm, "bisect_round", spy_round)
    on_cluster: list[bool] = []
    rows_bytes = [0]
    # threads: no room here for all the rows until a masked round has run, then room
    # for all; on the cluster room for all here (rows in the workers stay there)
    monkeypatch.setattr(bisecting_algorithm, "gather_budget",
                        lambda: rows_bytes[0] - 1 if not (masked or on_cluster) else 1 << 40)
    # in a worker: room for any leaf but the root
    monkeypatch.setattr(bisecting_algorithm, "worker_gather_budget",
                        lambda: rows_bytes[0] - 1)
    sent: list[int] = []
    received: list[int] = []
    leaves_sent: list[int] = []
    submit, gather, get, result = Client.submit, Client.gather, Client.get, Future.result
    real_calls = workers.leaf_rows_calls

    def spy_submit(self, fn, *args, **kwargs):  # type: ignore[no-untyped-def]
        sent.extend(_array_bytes([args, kwargs]))
        return submit(self, fn, *args, **kwargs)

    def spy_gather(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        got = gather(self, *args, **kwargs)
        received.extend(_array_bytes(got))
        return got

    def spy_get(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        got = get(self, *args, **kwargs)
        received.extend(_array_bytes(got))
        return got

    def spy_result(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        got = result(self, *args, **kwargs)
        received.extend(_array_bytes(got))
        return got

    def spy_calls(src, snap, fn, args):  # type: ignore[no-untyped-def]
        leaves_sent.append(len(args))
        return real_calls(src, snap, fn, args)

    monkeypatch.setattr(workers, "leaf_rows_calls", spy_calls)
    for name, (data, weights, nbytes) in cases.items():
        rows_bytes[0] = nbytes
        masked.clear()
        on_cluster.clear()
        with dask.config.set(scheduler="threads"):
            ref = BisectingKMeans(**params).fit(data(), sample_weight=weights)
        assert ref.history_[0]["passes"] > 0  # the root: masked passes
        # the root's children gathered here (one pass), the rest bisected here
        assert [h["passes"] for h in ref.history_[1:]] == [1] + [0] * (len(ref.history_) - 2)
        masked.clear()
        sent.clear()
        received.clear()
        leaves_sent.clear()
        on_cluster.append(True)
        with local_cluster.as_current(), ran_on_workers(local_cluster):
            monkeypatch.setattr(Client, "submit", spy_submit)
            monkeypatch.setattr(Client, "gather", spy_gather)
            monkeypatch.setattr(Client, "get", spy_get)
            monkeypatch.setattr(Future, "result", spy_result)
            try:
                bk = BisectingKMeans(**params).fit(data(), sample_weight=weights)
            finally:
                for cls, attr, real in ((Client, "submit", submit), (Client, "gather", gather),
                                        (Client, "get", get), (Future, "result", result)):
                    monkeypatch.setattr(cls, attr, real)
            labels = computed(bk.labels_)
        assert max(sent + received) < n, name  # less than a byte a row
        assert masked and received and sent, name
        assert [k for k in leaves_sent if k] == [2], name  # the root's children, together
        assert len(bk.history_) == 2 and bk.history_[0]["passes"] > 0, name
        assert bk.history_[1]["passes"] == 0, name
        for attr in BisectingTree.ARRAYS:
            np.testing.assert_array_equal(getattr(bk.tree_, attr), getattr(ref.tree_, attr),
                                          err_msg=f"{name}: {attr}")
        np.testing.assert_array_equal(bk.cluster_centers_, ref.cluster_centers_)
        assert bk.inertia_ == ref.inertia_, name
        np.testing.assert_array_equal(labels, computed(ref.labels_))


@pytest.mark.parametrize("kernels", ["numba", "numpy"])
def test_uint8_store_fits_as_its_float32_rows_in_memory(
    tmp_path: Path, kernels: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store of uint8 images reaches the bisecting passes and the labels raw; the fit
    is, bit for bit, the one on the same rows as float32 (``float32(x) * float32(1/255)``)
    in memory, in blocks of the same rows, whether the store is held or streamed."""
    monkeypatch.setenv("DASKMEANS_KERNELS", kernels)
    seen: list[tuple[str, np.dtype, float | None]] = []  # what the kernels were given

    def spy(name: str, fn):  # type: ignore[no-untyped-def]
        def call(*args, **kw):  # type: ignore[no-untyped-def]
            given = inspect.signature(fn).bind(*args, **kw).arguments
            seen.append((name, given["X"].dtype, given.get("scale")))
            return fn(*args, **kw)
        return call

    for name in ("two_means", "tree_nodes", "tree_labels"):
        monkeypatch.setattr(bisect, name, spy(name, getattr(bisect, name)))
    pixels = (load_digits().images * 15).astype(np.uint8)  # (1797, 8, 8), 0..240
    z = zarr.create_array(tmp_path / "px.zarr", shape=pixels.shape, chunks=(450, 8, 8),
                          dtype="u1", attributes={"scale_factor": io.PIXEL_SCALE})
    z[...] = pixels
    X = pixels.reshape(len(pixels), -1).astype(np.float32) * np.float32(1 / 255)
    for cache in (True, False):
        src = open_source(z, cache=cache)
        assert reads_raw_uint8(src) and src.n_blocks > 1
        seen.clear()
        bk = BisectingKMeans(8, init="k-means++", n_init=2, random_state=0).fit(src)
        computed(bk.labels_)  # known from the bisections: no descent
        bk.predict(src).compute()
        assert {name for name, _, _ in seen} == {"two_means", "tree_nodes", "tree_labels"}
        assert set(seen) == {(name, np.dtype(np.uint8), io.PIXEL_SCALE)
                             for name in ("two_means", "tree_nodes", "tree_labels")}
        mem = ArraySource(X, block_rows=src.offsets[1])  # the store's blocks
        assert mem.offsets == src.offsets
        ref = BisectingKMeans(8, init="k-means++", n_init=2, random_state=0).fit(mem)
        np.testing.assert_array_equal(computed(bk.labels_), ref.labels_)
        np.testing.assert_array_equal(bk.cluster_centers_, ref.cluster_centers_)
        assert bk.cluster_centers_.dtype == np.float32
        for name in BisectingTree.ARRAYS:
            np.testing.assert_array_equal(getattr(bk.tree_, name), getattr(ref.tree_, name))
        assert bk.inertia_ == ref.inertia_
        assert bk.history_[-1]["passes"] == ref.history_[-1]["passes"]
        np.testing.assert_array_equal(computed(bk.predict(z)), ref.labels_)


def test_saved_model_predicts_by_its_tree(blobs, tmp_path: Path) -> None:
    X, _ = blobs
    bk = BisectingKMeans(4, random_state=0).fit(X)
    est, _ = load_model(save_model(bk, tmp_path / "b.npz"))
    assert isinstance(est, BisectingKMeans)
    np.testing.assert_array_equal(est.predict(X), bk.labels_)
    np.testing.assert_array_equal(est.tree_.children, bk.tree_.children)
    Xd = da.from_array(X, chunks=500)
    np.testing.assert_array_equal(est.predict(Xd).compute(), bk.labels_)
    assert -est.score(X) <= bk.inertia_ * (1 + 1e-12)  # score: nearest centre, as sklearn


@pytest.mark.parametrize(("params", "message"), [
    ({"bisecting_strategy": "smallest"}, "'bisecting_strategy' parameter of BisectingKMeans"),
    ({"init": "k-means||"}, "'init' parameter of BisectingKMeans"),
    ({"n_init": 0}, "'n_init' parameter of BisectingKMeans"),
])
def test_errors_name_the_parameter(params: dict, message: str) -> None:
    with pytest.raises(InvalidParameterError, match=message):
        BisectingKMeans(2, **params).fit(np.zeros((5, 2)))
    with pytest.raises(ValueError, match=r"n_samples=5 should be >= n_clusters=6\."):
        BisectingKMeans(6).fit(np.zeros((5, 2)))


def test_sparse_rows_bisected_by_masked_passes_give_the_gathered_tree(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A CSR store's rows too large to gather take the masked passes (the root's
    statistics from the stored values only, the drawn rows dense) and reach the tree
    of the rows in memory; a non-finite stored value is named by its row."""
    import scipy.sparse

    from daskmeans.io import write_csr
    from daskmeans.kernels.common import NonFiniteRow

    X = scipy.sparse.random(600, 40, density=0.1, format="csr", random_state=0)
    gathered = BisectingKMeans(5, random_state=0).fit(X)
    store = write_csr(X, tmp_path / "x.zarr", rows_per_chunk=150, nnz_per_chunk=1000)
    monkeypatch.setattr(bisecting_algorithm, "gather_budget", lambda: 0)
    masked = BisectingKMeans(5, random_state=0).fit(open_source(store, cache=False))
    assert masked.history_[0]["passes"] > 1  # masked passes, not one gathered fit
    # the same tree; CSR sums of the masked passes add in block order (rounding only)
    np.testing.assert_allclose(masked.cluster_centers_, gathered.cluster_centers_,
                               rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(computed(masked.labels_), computed(gathered.labels_))
    assert masked.inertia_ == pytest.approx(gathered.inertia_, rel=1e-12)
    bad = X.copy()
    bad.data[bad.indptr[7]] = np.inf  # the first stored value of row 7
    with pytest.raises(NonFiniteRow) as err:
        bisect.root_block(bad, None)
    assert err.value.row == 7
