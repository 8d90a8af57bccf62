"""Sphinx configuration of the daskmeans documentation.

Build it from the repository's root with
``python -m sphinx -W --keep-going -b html docs docs/_build/html``: every example
in ``examples/`` named ``plot_*.py`` runs during the build, and any warning fails it.
The build needs no network.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# the checkout being documented, not whichever daskmeans happens to be installed
sys.path.insert(0, str(ROOT))

from daskmeans.version import __version__  # noqa: E402

project = "daskmeans"
author = "the daskmeans developers"
copyright = "the daskmeans developers, BSD-3-Clause"
version = release = __version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]
# the performance page's figures, drawn at build time from benchmarks/results/*.json
extensions.append("docs._ext.benchmarks")

templates_path = ["_templates"]
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "auto_examples/*.ipynb",
                    "auto_examples/*.py", "auto_examples/*.zip"]
source_suffix = {".rst": "restructuredtext"}
root_doc = "index"

# -- API reference ------------------------------------------------------------------
autosummary_generate = True
autosummary_imported_members = False
autodoc_typehints = "none"  # numpydoc's Parameters sections give the types
autodoc_default_options = {"member-order": "bysource"}
numpydoc_show_class_members = False  # the class template lists the members itself
numpydoc_class_members_toctree = False
numpydoc_attributes_as_param_list = True
numpydoc_xref_param_type = False

# No network at build time: intersphinx is loaded (so :external: style references
# can be added later) but has no inventories to fetch.
intersphinx_mapping: dict[str, tuple[str, str | None]] = {}
intersphinx_disabled_reftypes = ["*"]

# -- Gallery -------------------------------------------------------------------------
sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",  # every plot_*.py is executed at build time
    "matplotlib_animations": False,
    "backreferences_dir": None,
    "abort_on_example_error": True,
    "only_warn_on_example_error": False,
    "download_all_examples": False,
    "remove_config_comments": True,
    "within_subsection_order": "FileNameSortKey",
}

# -- HTML ----------------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"daskmeans {version}"
html_static_path: list[str] = []
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "secondary_sidebar_items": ["page-toc"],
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
}
# a fixed light/dark mode: without one the theme's script reads an empty mode on pages
# opened from disk and logs a console error
html_context = {"default_mode": "light"}
html_show_sourcelink = False
html_copy_source = False


def _skip_scikit_learn_members(app: object, what: str, name: str, obj: object, skip: bool,
                               options: object) -> bool | None:
    """Leave out what the estimators inherit from scikit-learn (``set_output``,
    ``set_fit_request``, ...): scikit-learn documents those, and their docstrings
    refer to pages of scikit-learn's own site."""
    module = getattr(obj, "__module__", None) or ""
    if module == "sklearn" or module.startswith("sklearn."):
        return True
    return None


def setup(app: object) -> None:
    app.connect("autodoc-skip-member", _skip_scikit_learn_members)  # type: ignore[attr-defined]
