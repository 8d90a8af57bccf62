"""Fixtures of the kernel tests."""

from __future__ import annotations

import pytest

from daskmeans.kernels import common


@pytest.fixture(params=["numpy", "numba"])
def both_kernels(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The test runs with the numpy reference and with the compiled kernels."""
    monkeypatch.setenv("DASKMEANS_KERNELS", request.param)
    assert common.compiled_kernels() == (request.param == "numba")
    if request.param == "numba":
        from daskmeans.kernels import common_compiled

        # several tiles per block, the last one short
        monkeypatch.setattr(common_compiled, "TILE", 64)
    return str(request.param)
