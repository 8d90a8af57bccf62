"""Fixtures of the storage-format tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.io.idx_files import small_idx_dir


@pytest.fixture
def small_dir(tmp_path: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    """A folder holding a 25-image test split in MNIST format, its images and labels."""
    return small_idx_dir(tmp_path)
