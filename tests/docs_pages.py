"""Code blocks of the documentation pages, for the tests that run them as written."""

from __future__ import annotations

import re
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs"


def rst_code_block(page: Path, name: str) -> str:
    """The code of the ``.. code-block::`` with ``:name: name`` on a docs page, dedented."""
    match = re.search(r"^\.\. code-block:: \w+\n   :name: " + re.escape(name)
                      + r"\n\n(.*?)(?=^\S|\Z)", page.read_text(), re.S | re.M)
    assert match is not None, f"{page.name} lost its {name!r} code block"
    lines = match.group(1).rstrip().splitlines()
    assert all(not line or line.startswith("   ") for line in lines), name
    return "\n".join(line[3:] for line in lines) + "\n"
