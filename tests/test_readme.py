"""The README's Python example, and the command-line walk-through and xarray example of
the user guide, run as written (on the offline MNIST test split)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from .docs_pages import DOCS, rst_code_block

README = DOCS.parent / "README.md"
CLI_PAGE = DOCS / "guide" / "cli.rst"
IMAGES_PAGE = DOCS / "guide" / "images.rst"


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


def _cli_block() -> list[str]:
    """The commands of the user guide's command-line walk-through, continuation lines
    joined."""
    joined = rst_code_block(CLI_PAGE, "cli-walkthrough").replace("\\\n", " ")
    return [line.split("  #")[0].strip() for line in joined.splitlines() if line.strip()]


def test_readme_commands_run_in_order(mnist_dir: Path, tmp_path: Path, capsys,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import shlex

    from daskmeans import cli

    monkeypatch.chdir(tmp_path)
    commands = _cli_block()
    assert len(commands) >= 8
    for command in commands:
        # the K sweep over six K is covered by the demo test: two K here, to keep it short
        command = command.replace("../shared/data/mnist", str(mnist_dir)).replace(
            "--k 10,16,36,64,144,256", "--k 10,16")
        argv = shlex.split(command)
        assert argv[0] == "daskmeans", command
        code = cli.main(argv[1:])
        _, err = capsys.readouterr()
        assert code == 0, f"{command}: {err}"
    for output in ("mnist.zarr", "mnist256.npz", "mnist256r.npz", "labels.zarr",
                   "sweep/sweep.json", "report.html", "china64.png", "china8.png",
                   "china8.zarr", "scene.zarr", "scene-labels.zarr", "scene.png"):
        assert (tmp_path / output).exists(), output


def test_every_help_example_is_in_the_docs() -> None:
    """So that the test above runs each of them (demo: the demo tests run it)."""
    from daskmeans import cli

    parser = cli.build_parser()
    subs = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    examples = [line.split("#")[0].strip() for line in (parser.epilog or "").splitlines()
                if line.strip().startswith("daskmeans")]
    examples += [sub.epilog.split("example:", 1)[1].strip() for sub in subs.values()]
    commands, text = _cli_block(), CLI_PAGE.read_text()
    assert len(examples) >= 2 * len(subs) - 1
    for example in examples:
        if example.endswith("daskmeans demo"):
            assert example in text
        else:
            assert any(c.startswith(example) for c in commands), example


def test_docs_xarray_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("xarray")
    import dask

    if dask.config.get("array.query-planning", None):
        pytest.skip("xarray does not read dask's query-planning arrays (the docs say so)")
    monkeypatch.chdir(tmp_path)
    code = rst_code_block(IMAGES_PAGE, "xarray-example")
    assert "1024, 1024" in code
    code = code.replace("1024, 1024", "256, 256")  # the same, smaller
    namespace: dict[str, object] = {}
    exec(compile(code, str(IMAGES_PAGE), "exec"), namespace)
    import xarray as xr

    labels = xr.open_zarr(tmp_path / "labels.zarr", consolidated=False)["labels"]
    assert labels.dims == ("y", "x") and int(labels.min()) == -1 and int(labels.max()) == 4
