"""Sphinx extension: the performance page's figures, drawn from the benchmark results.

At every build (``builder-inited``) it runs ``scripts/plot_benchmarks.py`` on
``benchmarks/results/*.json`` and writes, under the docs' source folder,
``_benchmarks/*.png`` and ``_benchmarks/figures.inc``: one section per figure with the
machine it was measured on (CPU model, vector instructions and AVX-512 or not, cores,
BLAS, versions, date) and the results file it came from. ``performance.rst`` includes
that file. Nothing is typed by hand: a new results file changes the page at the next
build. Enable it in ``conf.py`` with::

    extensions.append("docs._ext.benchmarks")

(the repository's root is on ``sys.path`` there, and ``docs/_ext`` is reached as a
namespace package).
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "plot_benchmarks.py"
RESULTS = ROOT / "benchmarks" / "results"
#: under the docs' source folder; not committed (see .gitignore)
OUT = "_benchmarks"

TITLES = {"ratio": "against the reference", "k": "time against K",
          "workers": "scaling with workers"}


def _plotting() -> Any:
    """scripts/plot_benchmarks.py as a module (scripts/ is not a package)."""
    name = "daskmeans_plot_benchmarks"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, SCRIPT)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # its dataclasses look their module up there
        spec.loader.exec_module(module)
    return sys.modules[name]


def figures_rst(report: Any, summary: Any) -> str:
    """The reStructuredText of the drawn figures, one subsection (``~``) each, newest
    first: the page including it uses ``=`` and ``-`` for its own titles."""
    if not report.drawn:
        return "No benchmark results yet: ``benchmarks/results`` holds no JSON file.\n"
    lines: list[str] = []
    for d in sorted(report.drawn, key=lambda d: str(d.machine.get("date", "")),
                    reverse=True):
        title = f"{d.benchmark}: {TITLES[d.kind]} ({d.source.name})"
        lines += [title, "~" * len(title), "",
                  f".. figure:: /{OUT}/{d.path.name}", f"   :alt: {title}", "",
                  f"   {d.measure}; results file ``benchmarks/results/{d.source.name}``.", "",
                  f"**Machine:** {summary(d.machine)}.", ""]
    if report.skipped:
        lines += ["Figures not drawn", "~~~~~~~~~~~~~~~~~", ""]
        lines += [f"- {TITLES[kind]}: {why}." for kind, why in report.skipped.items()]
        lines.append("")
    return "\n".join(lines)


def generate(app: Any) -> None:
    """Draw the figures and write ``_benchmarks/figures.inc`` (``builder-inited``)."""
    plotting = _plotting()
    out = Path(app.srcdir) / OUT
    shutil.rmtree(out, ignore_errors=True)  # no figure of a removed result survives
    report = plotting.draw_all(sorted(RESULTS.glob("*.json")), out)
    (out / "figures.inc").write_text(figures_rst(report, plotting.machine_summary))


def setup(app: Any) -> dict[str, Any]:
    app.connect("builder-inited", generate)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
