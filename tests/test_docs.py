"""The README stays a front door, and the API reference lists every public name.

Building the site (and running the gallery) is CI's own step (``.ci/run``); these checks
need no Sphinx.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
API_PAGE = ROOT / "docs" / "api" / "index.rst"

#: every module whose ``__all__`` the API reference documents
PUBLIC_MODULES = [
    "daskmeans", "daskmeans.cluster", "daskmeans.io", "daskmeans.io.errors",
    "daskmeans.io.idx", "daskmeans.io.mnist", "daskmeans.io.stores", "daskmeans.io.images",
    "daskmeans.io.rasters", "daskmeans.io.synthetic", "daskmeans.io.sparse",
    "daskmeans.metrics", "daskmeans.plot",
    "daskmeans.quantization", "daskmeans.segmentation", "daskmeans.datasets",
    "daskmeans.report", "daskmeans.pixels", "daskmeans.export",
]


def test_readme_is_a_front_door() -> None:
    text = README.read_text()
    lines = text.splitlines()
    assert len(lines) <= 300, len(lines)
    quick = re.search(r"## Quick start\n\n```bash\n(.*?)```", text, re.S)
    assert quick is not None
    assert quick.group(1) == ('pip install -e . && daskmeans demo\n'
                              'pip install -e ".[dev]" && pytest\n')
    assert ('pip install -e ".[docs]" && python -m sphinx -W -b html docs docs/_build/html'
            in text)
    assert not re.search(r"\bsessions?\b", text, re.I)
    for link in re.findall(r"\]\(((?:docs|examples)/[^)#]*)\)", text):
        assert (ROOT / link).exists(), link


def documented_names() -> dict[str, object]:
    """Fully qualified name -> object, for every autosummary entry of the API page."""
    names: dict[str, object] = {}
    module = None
    in_autosummary = False
    for line in API_PAGE.read_text().splitlines():
        if line.startswith(".. currentmodule::"):
            module = line.split("::", 1)[1].strip()
        elif line.startswith(".. autosummary::"):
            in_autosummary = True
        elif in_autosummary and line.startswith("   ") and not line.strip().startswith(":"):
            if line.strip():
                assert module is not None
                name = line.strip()
                names[f"{module}.{name}"] = getattr(importlib.import_module(module), name)
        elif line.strip() and not line.startswith(" "):
            in_autosummary = False
    return names


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_api_reference_lists_every_public_name(module_name: str) -> None:
    """Each name of the module's ``__all__`` has a page, under this module or under a
    shorter public path to the same object (``daskmeans.KMeans`` for
    ``daskmeans.cluster.KMeans``)."""
    documented = documented_names()
    module = importlib.import_module(module_name)
    for name in module.__all__:
        obj = getattr(module, name)
        assert any(qualified.rsplit(".", 1)[1] == name and value is obj
                   for qualified, value in documented.items()), f"{module_name}.{name}"
