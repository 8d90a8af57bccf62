"""The README's Python example runs as written (on the offline MNIST test split)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_example_runs(mnist_dir: Path, tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    block = re.search(r"```python\n(.*?)```", README.read_text(), re.S)
    assert block is not None, "the README lost its Python example"
    code = block.group(1).replace('"../shared/data/mnist"', repr(str(mnist_dir)))
    # the K sweep fits six models: covered by test_metrics/test_cli; keep this test short
    code = code.replace("[10, 16, 36, 64, 144, 256]", "[10]")
    monkeypatch.setenv("DASKMEANS_DATA_HOME", str(tmp_path))
    namespace: dict[str, object] = {}
    exec(compile(code, str(README), "exec"), namespace)
    assert namespace["km"].cluster_centers_.shape == (256, 784)  # type: ignore[attr-defined]
    assert len(namespace["rows"]) == 1  # type: ignore[arg-type]
