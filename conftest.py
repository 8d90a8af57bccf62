"""Collection rules for the whole suite (tests/ and the package's doctests)."""

from __future__ import annotations

import dask
import pytest

#: doctests that need dask.array.linalg (dask-ml's PCA), which dask's array query
#: planning does not implement: skipped there with the reason in the report, as
#: tests/test_pca.py skips its own such tests
NEEDS_LINALG = ("daskmeans.plot.pca_projection", "daskmeans.plot.pca_view")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not dask.config.get("array.query-planning", None):
        return
    skip = pytest.mark.skip(reason="dask-ml's PCA needs dask.array.linalg, which dask's "
                                   "array query planning does not implement")
    for item in items:
        if item.name in NEEDS_LINALG:
            item.add_marker(skip)
