"""The package's layers, checked: no module imports a layer above it, the storage
formats and the kernels do not import each other, and no module reaches another
module's private (underscore) names. docs/architecture.md draws the same picture."""

from __future__ import annotations

import ast
from pathlib import Path

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
