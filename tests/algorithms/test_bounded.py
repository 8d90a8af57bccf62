"""The bounded Lloyd solver's client-side state: the centres' half separation carried
between passes as a lower bound, and the fit it leaves unchanged."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import make_blobs

from daskmeans.algorithms import FitSettings, bounded
from daskmeans.algorithms.lloyd import lloyd
from daskmeans.engine.source import ArraySource
from daskmeans.kernels.bounds import half_separation


def test_half_separation_carried_then_computed_anew_once_it_lost_its_share() -> None:
    """The first call is exact; a small move is carried (a lower bound, from the same
    exact computation); a move that costs the bound more than SEPARATION_LOSS of its
    sum is computed exactly at the new centres."""
    rng = np.random.default_rng(0)
    C = rng.normal(size=(40, 6)) * 5
    state = bounded.DistanceBounds(ArraySource(rng.normal(size=(1000, 6))), C, 64)
    np.testing.assert_allclose(state.half_separation(C), half_separation(C), rtol=1e-12)
    first = state.separation
    C_near = C + rng.normal(size=C.shape) * 1e-3
    low = state.half_separation(C_near)
    assert state.separation is first
    assert (low <= half_separation(C_near)).all() and (low < half_separation(C_near)).any()
    C_far = C + rng.normal(size=C.shape)
    np.testing.assert_allclose(state.half_separation(C_far), half_separation(C_far),
                               rtol=1e-12)
    assert state.separation is not first
    np.testing.assert_array_equal(state.separation.centres, C_far)
    # 40 centres for 500 rows: the Gram matrix would cost more than SEPARATION_COST
    # of a pass, so the first exact one is carried whatever the centres do
    few = bounded.DistanceBounds(ArraySource(rng.normal(size=(500, 6))), C, 64)
    few.half_separation(C)
    first = few.separation
    low = few.half_separation(C_far)
    assert few.separation is first and (low <= half_separation(C_far)).all()
    np.testing.assert_array_equal(low, first.bound(C_far))


@pytest.mark.parametrize("loss", [0.0, 0.3, 1.0])
def test_carried_separation_leaves_the_fit_as_plain_lloyds(
        loss: float, monkeypatch: pytest.MonkeyPatch) -> None:
    """Whether the half separation is computed at every pass (0), carried until it
    lost 30% (the default), or carried from the first pass to the last (1, as from
    ``k > SEPARATION_COST n``): the same iterations, labels and centres as plain
    Lloyd, with Yinyang groups (K=48) over several blocks."""
    X, _ = make_blobs(3000, n_features=8, centers=60, cluster_std=2.0, random_state=3)
    C0 = X[np.random.default_rng(2).choice(3000, 48, replace=False)]
    settings = FitSettings(max_iter=100, tol=0.0)
    (plain,) = lloyd(ArraySource(X, block_rows=700), [C0], [0], settings)
    monkeypatch.setattr(bounded, "SEPARATION_LOSS", loss)
    made = []
    exact = bounded.SeparationBound.of
    monkeypatch.setattr(bounded.SeparationBound, "of",
                        lambda *a, **kw: made.append(1) or exact(*a, **kw))
    result = bounded.lloyd_bounded(ArraySource(X, block_rows=700), C0, 0, settings)
    # computed once (carried ever after), at every bounded pass, or in between
    assert len(made) == 1 if loss == 1.0 else len(made) > 1
    assert len(made) >= result.n_iter - 1 if loss == 0.0 else len(made) < result.n_iter - 1
    assert result.n_iter == plain.n_iter > 5
    np.testing.assert_array_equal(result.labels, plain.labels)
    np.testing.assert_allclose(result.centers, plain.centers, rtol=1e-12)
    assert result.inertia == pytest.approx(plain.inertia, rel=1e-9)
