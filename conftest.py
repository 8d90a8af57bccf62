"""Collection rules for the whole suite (tests/ and the package's doctests)."""

from __future__ import annotations

import dask
import pytest

#: doctests that need dask.array.linalg (dask-ml's PCA), which dask's array query
#: planning does not implement: skipped there with the reason in the report, as
#: tests/test_pca.py skips its own such tests
NEEDS_LINALG = ("daskmeans.plot.pca_projection", "daskmeans.plot.pca_view")

#: the longest test modules, run first: with one module per xdist worker at a time
#: (``--dist loadfile``), a long module started last would end the run alone while the
#: other workers idle (longest first keeps the workers' loads even)
LONGEST_FIRST = ("tests/test_scripts.py", "tests/test_distributed.py", "tests/test_cli.py",
                 "tests/test_readme.py")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        path = item.nodeid.split("::")[0]
        return LONGEST_FIRST.index(path) if path in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: each module's tests keep their order
    if not dask.config.get("array.query-planning", None):
        return
    skip = pytest.mark.skip(reason="dask-ml's PCA needs dask.array.linalg, which dask's "
                                   "array query planning does not implement")
    for item in items:
        if item.name in NEEDS_LINALG:
            item.add_marker(skip)
