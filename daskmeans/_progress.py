"""Former name of :mod:`daskmeans.progress`, kept while modules still import it."""

from __future__ import annotations

from .progress import Progress, ProgressCallback, TqdmBars, progress

__all__ = ["Progress", "ProgressCallback", "TqdmBars", "progress"]
