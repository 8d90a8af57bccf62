"""KMeans(metric="manhattan"): k-medians against brute-force numpy references."""

from __future__ import annotations

import itertools
from pathlib import Path

import dask
import dask.array as da
import numpy as np
import pytest
import zarr

from daskmeans import KMeans, MiniBatchKMeans, io, load_model, open_source, save_model
from daskmeans.algorithms import kmedians as kmedians_algorithm
from daskmeans.engine.source import ArraySource
from daskmeans.kernels import common, medians
from daskmeans.validation import InvalidParameterError

from ..conftest import computed


def lower_weighted_median(v: np.ndarray, w: np.ndarray) -> float:
    """The smallest value whose cumulative weight (values sorted, weight > 0) reaches
    half the total: the middle value, or the lower middle one, with unit weights."""
    v, w = v[w > 0], w[w > 0]
    order = np.argsort(v, kind="stable")
    cum = np.cumsum(w[order])
    return float(v[order][np.flatnonzero(cum >= cum[-1] / 2)[0]])


def brute_step(X: np.ndarray, C: np.ndarray, w: np.ndarray, labels: np.ndarray
               ) -> tuple[np.ndarray, int]:
    """Every row, every feature: the centres after one k-medians M-step from
    ``labels``, empty clusters first taking the rows farthest in L1 (as scikit-learn)."""
    X64, C64 = X.astype(np.float64), C.astype(np.float64)
    labels = labels.copy()
    dist = np.abs(X64 - C64[labels]).sum(1)
    counts = np.bincount(labels, w, minlength=len(C))
    far = np.lexsort((np.arange(len(X)), -dist))
    empty = np.flatnonzero(counts == 0)
    for j, row in zip(empty, far, strict=False):
        labels[row] = j
    out = C64.copy()
    for j in range(len(C)):
        m = labels == j
        if (w[m] > 0).any():
            out[j] = [lower_weighted_median(X64[m, f], w[m]) for f in range(X.shape[1])]
    return out, len(empty)


@pytest.fixture(scope="module")
def pixels(tmp_path_factory: pytest.TempPathFactory) -> tuple[np.ndarray, Path]:
    """2000 uint8 rows of 10 features in three groups (plus one far row), as a store of
    300-row chunks."""
    rng = np.random.default_rng(0)
    U = rng.integers(0, 120, size=(2000, 10), dtype=np.uint8)
    U[700:1400] += 130
    U[1400:, :5] += 100
    U[1999] = [255, 0] * 5  # far from every group: the row an empty cluster takes
    path = tmp_path_factory.mktemp("px") / "u.zarr"
    z = zarr.create_array(path, shape=U.shape, chunks=(300, 10), dtype="u1",
                          attributes={"scale_factor": io.PIXEL_SCALE})  # pixels
    z[...] = U
    return U, path


def scaled(U: np.ndarray) -> np.ndarray:
    return common.scale_rows(U, io.PIXEL_SCALE)


def test_uint8_centres_equal_brute_force_medians_exactly(pixels) -> None:
    """One iteration from given centres (one of them attracting nothing): the centres
    are the brute-force lower weighted medians, bit for bit, on the store (raw uint8,
    exact histograms), held or streamed, on numpy and on a dask array; the labels are
    nearest in exact integer L1 distance."""
    U, path = pixels
    X = scaled(U)
    w = np.random.default_rng(1).integers(0, 4, len(U)).astype(np.float64)
    w[1999] = 1.0
    C0 = X[[3, 800, 1500, 20]].copy()
    C0[3] = 5.0  # nearer to no row than the others: empty, relocated
    labels, _ = medians.l1_assign(X, C0)
    levels = np.rint(C0.astype(np.float64) * 255).astype(np.int64)
    exact = np.abs(U[:, None, :].astype(np.int64) - levels[None]).sum(-1)
    assert (exact[np.arange(len(U)), labels] == exact.min(1)).all()
    far = np.sort(exact.min(1))
    assert far[-1] > far[-2]  # one farthest row (no tie for the reference to break)
    want, n_empty = brute_step(X, C0, w, labels)
    assert n_empty == 1
    for data in (open_source(path, cache=False), str(path), X,
                 da.from_array(X, chunks=(450, 10))):
        km = KMeans(4, init=C0, metric="manhattan", max_iter=1).fit(data, sample_weight=w)
        assert km.history_[0]["n_relocated"] == 1
        np.testing.assert_array_equal(km.cluster_centers_, want.astype(np.float32))
        obj = (np.abs(X.astype(np.float64) - C0.astype(np.float64)[labels]).sum(1) * w).sum()
        assert km.history_[0]["inertia"] == pytest.approx(obj, rel=1e-12)


def test_float_centres_within_the_stated_tolerance() -> None:
    """Continuous float data: every centre coordinate lies within one grid cell
    ((max - min) / 4096 of its feature) of the brute-force weighted median, chunked or
    not; data on a coarser lattice (pixels as floats) give it exactly."""
    rng = np.random.default_rng(2)
    X = np.concatenate([rng.normal(0, 1, (600, 5)), rng.laplace(6, 2, (700, 5))])
    w = rng.uniform(0.1, 2.0, len(X))
    C0 = X[[0, 900, 1]].copy()
    labels, _ = medians.l1_assign(X, C0)
    want, _ = brute_step(X, C0, w, labels)
    cell = (X.max(0) - X.min(0)) / medians.FLOAT_LEVELS
    for data in (X, da.from_array(X, chunks=(250, 5))):
        km = KMeans(3, init=C0, metric="manhattan", max_iter=1).fit(data, sample_weight=w)
        err = np.abs(km.cluster_centers_ - want)
        assert (err <= cell).all() and err.max() > 0  # within tolerance, not exact here
    lattice = np.round(X * 20) / 20  # 0.05 apart: at most one value per grid cell
    labels, _ = medians.l1_assign(lattice, C0)
    want, _ = brute_step(lattice, C0, w, labels)
    km = KMeans(3, init=C0, metric="manhattan", max_iter=1).fit(lattice, sample_weight=w)
    np.testing.assert_array_equal(km.cluster_centers_, want)


@pytest.mark.parametrize("kind", ["uint8 store", "float"])
def test_objective_never_increases_and_inertia_is_the_l1_sum(pixels, kind: str) -> None:
    U, path = pixels
    rng = np.random.default_rng(3)
    if kind == "float":
        X = rng.standard_t(3, size=(1500, 6))
        data: object = X
    else:
        X, data = scaled(U).astype(np.float64), path
    km = KMeans(6, metric="manhattan", init="random", n_init=1, tol=0, max_iter=100,
                random_state=0).fit(data)
    objs = [h["inertia"] for h in km.history_]
    assert len(objs) > 2 and km.history_[-1]["center_shift"] == 0
    assert all(b <= a * (1 + 1e-12) for a, b in itertools.pairwise(objs))
    lab = computed(km.labels_)
    C = km.cluster_centers_.astype(np.float64)
    D = np.abs(X[:, None, :] - C[None]).sum(-1)
    assert km.inertia_ == pytest.approx(D.min(1).sum(), rel=1e-9)
    assert (D[np.arange(len(X)), lab] <= D.min(1) + 1e-9).all()
    assert -km.score(data) == pytest.approx(km.inertia_, rel=1e-9)
    np.testing.assert_allclose(computed(km.transform(data)), D, rtol=1e-5)


def test_independent_of_chunking_and_source(pixels) -> None:
    """Numpy in 1 or 3 blocks, dask arrays in 5 or 13 chunks, the store held or
    streamed: one fit (uint8 rows, integer weights: every sum exact)."""
    U, path = pixels
    X = scaled(U)
    w = np.random.default_rng(4).integers(1, 3, len(U)).astype(np.float64)
    params = {"n_clusters": 5, "metric": "manhattan", "random_state": 7, "tol": 0,
              "max_iter": 4}
    ref = KMeans(**params).fit(X, sample_weight=w)
    sources = [ArraySource(X, block_rows=700), da.from_array(X, chunks=(154, 10)),
               str(path), open_source(path, cache=False)]
    for data in sources:
        km = KMeans(**params).fit(data, sample_weight=w)
        np.testing.assert_array_equal(km.cluster_centers_, ref.cluster_centers_)
        np.testing.assert_array_equal(computed(km.labels_), ref.labels_)
        assert km.inertia_ == pytest.approx(ref.inertia_, rel=1e-12)
        assert km.n_iter_ == ref.n_iter_


def test_threaded_and_local_cluster_agree(pixels, scheduler: str) -> None:
    """The store's blocks keep their labels between an iteration's passes where they
    were computed (futures in the workers on the LocalCluster)."""
    U, path = pixels
    C0 = scaled(U[[1, 900, 1600]])
    C0[2] = 5.0  # an empty cluster: the moved row's label is overridden in later passes
    ref = KMeans(3, init=C0, metric="manhattan", tol=0, max_iter=4)
    with dask.config.set(scheduler="sync"):
        ref.fit(scaled(U))
    assert ref.history_[0]["n_relocated"] == 1
    for data in (open_source(path, cache=False), scaled(U)):
        km = KMeans(3, init=C0, metric="manhattan", tol=0, max_iter=4).fit(data)
        np.testing.assert_array_equal(km.cluster_centers_, ref.cluster_centers_)
        np.testing.assert_array_equal(computed(km.labels_), ref.labels_)
        assert km.n_iter_ == ref.n_iter_


def test_one_compute_per_pass(pixels, counting_scheduler,
                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Per iteration, without counting ahead: 2 passes on a uint8 store (assign + first
    digit, second digit), 3 on float data (one more digit), plus one range pass per
    float fit (and the dask array computed once and held)."""
    U, path = pixels
    monkeypatch.setattr(kmedians_algorithm, "COUNT_AHEAD", False)
    C0 = scaled(U[[1, 900, 1600]])
    for data, passes, once in ((open_source(path, cache=False), 2, 0),
                               (da.from_array(scaled(U), chunks=(500, 10)), 3, 2)):
        counting_scheduler.calls = 0
        km = KMeans(3, init=C0, metric="manhattan", max_iter=3, tol=0).fit(data)
        strict = km.history_[-1]["center_shift"] == 0  # converged: no final E-step
        assert km.n_iter_ >= 2
        assert counting_scheduler.calls == once + passes * km.n_iter_ + (not strict)
        assert isinstance(km.labels_, da.Array)


@pytest.mark.parametrize("kernels", ["numba", "numpy"])
def test_counting_ahead_saves_passes_and_changes_nothing(
    pixels, counting_scheduler, monkeypatch: pytest.MonkeyPatch, kernels: str
) -> None:
    """Once the medians' first digits move by at most one, the first pass also counts
    the second digit around them: iterations whose medians stay that close make one
    pass fewer (a uint8 store: one pass; float data: two), and the fit is the same,
    bit for bit, as with a separate pass for every digit."""
    monkeypatch.setenv("DASKMEANS_KERNELS", kernels)
    U, path = pixels
    w = np.random.default_rng(3).integers(0, 3, len(U)).astype(np.float64)
    C0 = scaled(U[[1, 5, 900, 1600]])
    for data, passes, once in ((open_source(path, cache=False), 2, 0),
                               (da.from_array(scaled(U), chunks=(500, 10)), 3, 2)):
        fits, calls = [], []  # once: the range pass of float data (and the hold)
        for ahead in (False, True):
            monkeypatch.setattr(kmedians_algorithm, "COUNT_AHEAD", ahead)
            counting_scheduler.calls = 0
            fits.append(KMeans(4, init=C0, metric="manhattan", max_iter=30, tol=0).fit(
                data, sample_weight=w))
            calls.append(counting_scheduler.calls)
        alone, ahead_fit = fits
        strict = alone.history_[-1]["center_shift"] == 0
        assert alone.n_iter_ == ahead_fit.n_iter_ >= 4
        assert calls[0] == once + passes * alone.n_iter_ + (not strict)
        assert calls[0] - alone.n_iter_ + 1 <= calls[1] < calls[0]  # one per iteration
        np.testing.assert_array_equal(ahead_fit.cluster_centers_, alone.cluster_centers_)
        np.testing.assert_array_equal(computed(ahead_fit.labels_), computed(alone.labels_))
        assert ahead_fit.inertia_ == alone.inertia_
        assert ([h["inertia"] for h in ahead_fit.history_]
                == [h["inertia"] for h in alone.history_])


def test_seeding_n_init_and_lazy_predict(pixels) -> None:
    """k-means++ and k-means|| seed with L1 distances (other rows than the Euclidean
    seeding draws); n_init keeps the best run; predict/transform stay lazy on dask."""
    U, _ = pixels
    X = scaled(U)
    rows = {tuple(r) for r in X}
    for init in ("k-means++", "k-means||"):
        seeds = [KMeans(6, metric=m, init=init)._init(
            ArraySource(X), [np.random.default_rng(5)], [5])[0]
            for m in ("manhattan", "euclidean")]
        assert not np.array_equal(*seeds)
        assert {tuple(r) for r in seeds[0]} <= rows
    first = KMeans(4, metric="manhattan", init="random", n_init=1, random_state=0).fit(X)
    best = KMeans(4, metric="manhattan", init="random", n_init=4, random_state=0).fit(X)
    assert best.inertia_ <= first.inertia_  # run 0 of the four is `first`
    assert best.history_[0]["init_run"] in range(4)
    Xd = da.from_array(X, chunks=600)
    lab, dist = best.predict(Xd), best.transform(Xd)
    assert isinstance(lab, da.Array) and dist.shape == (len(X), 4)
    np.testing.assert_array_equal(lab.compute(), best.labels_)
    np.testing.assert_allclose(dist.compute(), best.transform(X), rtol=1e-6)


def test_saved_model_and_checkpoint_resume(pixels, tmp_path: Path) -> None:
    U, path = pixels
    X = scaled(U)
    params = {"n_clusters": 4, "metric": "manhattan", "random_state": 1, "tol": 0}
    ref = KMeans(**params).fit(path)
    est, _ = load_model(save_model(ref, tmp_path / "m.npz"))
    assert est.metric == "manhattan"
    np.testing.assert_array_equal(est.predict(X), ref.predict(X))
    assert -est.score(X) == pytest.approx(ref.inertia_, rel=1e-9)
    assert ref.n_iter_ >= 3

    class Stop(Exception):
        pass

    armed, seen = [True], []

    def stop_at_2(phase: str, done: int, total: int | None, detail: str = "") -> None:
        if phase != "k-medians":  # the store's "hold" report comes first
            return
        seen.append(done)
        if armed[0] and phase == "k-medians" and done == 2:
            raise Stop  # the client dies in iteration 2: iteration 1 is checkpointed

    ckpt = tmp_path / "c.npz"
    with pytest.raises(Stop):
        KMeans(**params, callback=stop_at_2).fit(path, checkpoint=ckpt)
    armed[0], seen[:] = False, []
    resumed = KMeans(**params, callback=stop_at_2).fit(path, checkpoint=ckpt, resume=True)
    assert seen[0] == 2 and len(resumed.history_) == ref.n_iter_  # from iteration 2 on
    np.testing.assert_array_equal(resumed.cluster_centers_, ref.cluster_centers_)
    assert resumed.n_iter_ == ref.n_iter_ and resumed.inertia_ == ref.inertia_


def test_errors_name_the_parameter() -> None:
    X = np.random.default_rng(0).normal(size=(20, 2))
    with pytest.raises(InvalidParameterError, match="'algorithm' parameter of KMeans .* "
                                                    "metric='manhattan'.*got 'elkan'"):
        KMeans(2, metric="manhattan", algorithm="elkan").fit(X)
    with pytest.raises(InvalidParameterError, match="'metric' parameter of MiniBatchKMeans"):
        MiniBatchKMeans(2, metric="manhattan").fit(X)
    bad = X.copy()
    bad[13, 1] = np.inf
    with pytest.raises(ValueError, match="row 13"):
        KMeans(2, metric="manhattan", init=X[:2]).fit(da.from_array(bad, chunks=5))


def test_store_predict_reads_raw_pixels_as_their_scaled_rows(pixels) -> None:
    """predict and transform on a uint8 store (labels from the raw pixels, scaled block by
    block inside the L1 labelling) equal those on the scaled float32 rows in memory."""
    U, path = pixels
    X = scaled(U)
    km = KMeans(5, metric="manhattan", n_init=1, max_iter=5, random_state=0).fit(X)
    np.testing.assert_array_equal(computed(km.predict(path)), km.predict(X))
    np.testing.assert_array_equal(computed(km.transform(path)), km.transform(X))
