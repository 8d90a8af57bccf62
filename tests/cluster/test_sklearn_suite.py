"""scikit-learn's own K-means test modules, run against daskmeans' estimators.

``sklearn/cluster/tests/test_k_means.py`` and ``test_bisect_k_means.py`` of the
installed scikit-learn are read at collection time; only the import of the estimators
is swapped (``KMeans``, ``MiniBatchKMeans`` and ``BisectingKMeans`` come from
daskmeans, everything else, ``k_means`` and ``kmeans_plusplus`` included, stays
scikit-learn's), and the source is compiled under the original file's name and line
numbers (tracebacks point into scikit-learn's file). Their tests are then this module's
tests. scikit-learn's ``global_random_seed`` and ``global_dtype`` fixtures are supplied as
scikit-learn's conftest supplies them (seed 42 unless ``SKLEARN_TESTS_GLOBAL_RANDOM_SEED``
says otherwise), except that the float32 variants always run.

The only expected failures (strict: one that starts passing fails the run) are the
tests that read scikit-learn's private attributes, listed below; the sparse variants
(scipy.sparse CSR input) run like the dense ones.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sklearn

SUITE = Path(sklearn.__file__).parent / "cluster" / "tests"
MODULES = ("test_k_means.py", "test_bisect_k_means.py")
#: the import lines naming scikit-learn's estimators, and what replaces each (same
#: number of lines, so line numbers in tracebacks stay scikit-learn's)
IMPORTS = {
    "from sklearn.cluster import KMeans, MiniBatchKMeans, k_means, kmeans_plusplus":
        "from daskmeans import KMeans, MiniBatchKMeans; "
        "from sklearn.cluster import k_means, kmeans_plusplus",
    "from sklearn.cluster import BisectingKMeans":
        "from daskmeans import BisectingKMeans",
}

PRIVATE = "reads scikit-learn's private attribute {}"
#: tests that fail whatever their parameters, with why
XFAIL_TESTS: dict[str, str] = {
    "test_kmeans_init_auto_with_initial_centroids": PRIVATE.format("_n_init"),
    "test_n_init_auto": PRIVATE.format("_n_init"),
    "test_minibatch_kmeans_init_size": PRIVATE.format("_init_size"),
    "test_sample_weight_init": PRIVATE.format("_init_centroids"),
    "test_sample_weight_zero": PRIVATE.format("_init_centroids"),
}


def _load(name: str) -> dict[str, Any]:
    """The namespace of scikit-learn's test module ``name``, estimators swapped."""
    path = SUITE / name
    source = path.read_text()
    for old, new in IMPORTS.items():
        if old in source:
            source = source.replace(old, new)
    assert "daskmeans" in source, f"{path}: the estimators' import line moved"
    namespace: dict[str, Any] = {"__name__": f"sklearn_suite.{path.stem}",
                                 "__file__": str(path)}
    exec(compile(source, str(path), "exec"), namespace)
    return namespace


def _collect() -> dict[str, Any]:
    out: dict[str, Any] = {}
    if not SUITE.is_dir():
        return out
    for name in MODULES:
        for key, value in _load(name).items():
            if key.startswith("test_") and callable(value):
                out[key] = value
            elif hasattr(value, "_fixture_function_marker") or \
                    type(value).__name__ == "FixtureFunctionDefinition":
                out[key] = value
    return out


globals().update(_collect())


def test_scikit_learns_test_modules_are_installed() -> None:
    """The modules above come with scikit-learn's wheels; a build without its tests
    would leave this module empty: say so (under CI, fail)."""
    from tests.conftest import missing_data

    if not all((SUITE / name).is_file() for name in MODULES):
        missing_data(f"scikit-learn's test modules are not installed in {SUITE}")
    assert sum(name.startswith("test_") for name in globals()) > 50


@pytest.fixture(params=[np.float32, np.float64])
def global_dtype(request: pytest.FixtureRequest) -> Any:
    """scikit-learn's ``global_dtype`` fixture, float32 always included (scikit-learn
    runs it only with ``SKLEARN_RUN_FLOAT32_TESTS=1``): daskmeans keeps float32 data in
    float32, so those variants are part of its contract."""
    return request.param


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """scikit-learn's ``global_random_seed``: 42, or ``SKLEARN_TESTS_GLOBAL_RANDOM_SEED``
    (a seed, a range ``a-b`` or ``all``)."""
    if "global_random_seed" not in metafunc.fixturenames:
        return
    var = os.environ.get("SKLEARN_TESTS_GLOBAL_RANDOM_SEED")
    if var is None:
        seeds = [42]
    elif var == "all":
        seeds = list(range(100))
    elif "-" in var:
        start, stop = var.split("-")
        seeds = list(range(int(start), int(stop) + 1))
    else:
        seeds = [int(var)]
    metafunc.parametrize("global_random_seed", seeds)


@pytest.fixture(autouse=True)
def _expected_failures(request: pytest.FixtureRequest) -> None:
    """Mark the listed tests as expected failures (strict), with their reason."""
    name = request.node.originalname
    if name in XFAIL_TESTS:
        request.applymarker(pytest.mark.xfail(reason=XFAIL_TESTS[name], strict=True))
