"""The package's layers, checked: no module imports a layer above it, the storage
formats and the kernels do not import each other, and no module reaches another
module's private (underscore) names. docs/architecture.rst draws the same picture."""

from __future__ import annotations

import ast
import sys
from pathlib import Path
from typing import Any

import dask
import numpy as np
import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "daskmeans"

#: layer of each top-level module or package, bottom (0) to top
LAYERS = {
    # support: numpy or the standard library only, usable by every layer
    "pixels": 0, "progress": 0, "validation": 0, "version": 0,
    "io": 1, "kernels": 1,
    "engine": 2,
    "algorithms": 3,
    "cluster": 4,
    "metrics": 5, "plot": 5, "quantization": 5, "segmentation": 5, "datasets": 5,
    # the report page draws on metrics and plot: above them, so they cannot import it
    "report": 6,
    "export": 5,
    "cli": 7,
}
#: the package root is the public facade: only the command line may import it
ROOT_IMPORTERS = {"cli"}


def top_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def imports(path: Path) -> list[tuple[int, str, list[str]]]:
    """(line, absolute module imported, names) of every import in ``path``, those
    inside functions too."""
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    package = list(rel.parts[:-1])  # a module's package; an __init__ is its own package
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name, []) for a in node.names if a.name.startswith("daskmeans")]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if module.startswith("daskmeans"):
                out.append((node.lineno, module, [a.name for a in node.names]))
    return out


def modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def test_every_module_has_a_layer() -> None:
    tops = {p.relative_to(PACKAGE).parts[0].removesuffix(".py") for p in modules()}
    assert tops - {"__init__"} == set(LAYERS)


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_go_down(path: Path) -> None:
    here = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
    if here == "__init__":
        return  # the root: the public facade over every layer
    wrong = []
    for line, module, names in imports(path):
        there = top_of(module)
        if there == "":  # the root package
            targets = [n for n in names if n in LAYERS] or ["<root>"]
            if targets == ["<root>"] and here not in ROOT_IMPORTERS:
                wrong.append(f"{line}: imports the package root")
            for t in targets:
                if t != "<root>" and t != here and LAYERS[t] > LAYERS[here]:
                    wrong.append(f"{line}: {here} imports {t}, a layer above")
            continue
        if there != here and LAYERS[there] > LAYERS[here]:
            wrong.append(f"{line}: {here} imports {module}, a layer above")
        if {here, there} == {"io", "kernels"}:
            wrong.append(f"{line}: {here} imports {module} (formats and kernels stay apart)")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_private_names_of_other_modules(path: Path) -> None:
    wrong = [f"{line}: {module}.{n}" for line, module, names in imports(path)
             for n in names if n.startswith("_") and not n.startswith("__")]
    tree = ast.parse(path.read_text())
    aliases = {a.asname or a.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
               and (node.level or (node.module or "").startswith("daskmeans"))
               for a in node.names}
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and node.value.id in aliases and node.attr.startswith("_")
                and not node.attr.startswith("__")):
            wrong.append(f"{node.lineno}: {node.value.id}.{node.attr}")
    assert not wrong, "\n".join(wrong)


def _paths_to_kernels(fit: Any) -> set[tuple[str, ...]]:
    """Every path of package modules, from the estimator down to the first kernel module
    it enters, that ``fit()`` takes (traced under dask's synchronous scheduler, so
    that each block's task runs on the caller's stack). A ``*_compiled`` module is its
    kernel's compiled half and counts as that kernel; what a kernel calls below itself
    (the common distances, the metric object) is the kernel layer's own business; and
    ``engine/schedule.compute`` is ``dask.compute`` under the BLAS policy, the scheduler
    that runs a pass's tasks rather than a step of the path."""
    paths: set[tuple[str, ...]] = set()

    def module_of(frame: Any) -> str | None:
        name = frame.f_code.co_filename
        if str(PACKAGE) not in name:
            return None
        return str(Path(name).relative_to(PACKAGE).with_suffix("")).removesuffix("_compiled")

    def tracer(frame: Any, event: str, arg: Any) -> None:
        first = module_of(frame)
        if event != "call" or first is None or not first.startswith("kernels/"):
            return
        chain: list[str] = []
        while frame is not None:
            module = module_of(frame)
            if module not in (None, "engine/schedule") and (not chain or chain[-1] != module):
                chain.append(module)
            frame = frame.f_back
        chain.reverse()
        first_kernel = next(i for i, m in enumerate(chain) if m.startswith("kernels/"))
        paths.add(tuple(chain[:first_kernel + 1]))

    with dask.config.set(scheduler="sync"):
        sys.settrace(tracer)
        try:
            fit()
        finally:
            sys.settrace(None)
    return paths


@pytest.mark.parametrize("params", [{"algorithm": "lloyd"}, {"algorithm": "elkan"},
                                    {"metric": "manhattan"}])
def test_a_fit_reaches_every_kernel_through_at_most_four_modules(params: dict) -> None:
    """From ``KMeans.fit`` to a kernel: the estimator, the algorithm, the engine's
    reductions (or hold), the kernel; never more than four modules, never a detour
    back up (docs/architecture.md draws this path)."""
    from daskmeans import KMeans

    X = np.random.default_rng(0).random((500, 6)).astype(np.float32)
    paths = _paths_to_kernels(lambda: KMeans(4, n_init=2, random_state=0, max_iter=5,
                                             **params).fit(X))
    assert paths, "no kernel was reached: the trace saw nothing"
    too_long = [p for p in paths if len(set(p)) > 4]
    assert not too_long, "\n".join(" -> ".join(p) for p in too_long)
    assert any(p[-1] in ("kernels/lloyd", "kernels/bounds", "kernels/medians")
               for p in paths)  # an iteration's kernel was among them
    for path in paths:  # the path only goes down (the cluster package is one estimator)
        layers = [LAYERS[m.split("/")[0]] for m in path]
        assert layers == sorted(layers, reverse=True), " -> ".join(path)
