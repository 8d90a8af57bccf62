"""daskmeans: distributed, out-of-core K-means on Dask and Zarr.

The estimators and functions below are imported on first use (PEP 562), so that
``import daskmeans.cli`` (the ``daskmeans`` command, its ``--help`` and its usage
errors) does not pay for dask and scikit-learn before it needs them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = ["BisectingKMeans", "BlockReadError", "CheckpointFormatError", "ChunkDecodeError",
           "DaskmeansError", "DataFormatError", "IDXFormatError", "ImageFormatError", "KMeans",
           "MiniBatchKMeans", "ModelFormatError", "OutputExistsError", "QuantizedImage",
           "StoreConnectionError", "StoreError", "as_source", "load_model", "open_array",
           "open_dataset", "open_source", "quantize", "save_model"]
from .version import __version__ as __version__

_WHERE = {"BisectingKMeans": "cluster", "KMeans": "cluster", "MiniBatchKMeans": "cluster",
          "load_model": "cluster",
          "save_model": "cluster", "QuantizedImage": "quantization", "quantize": "quantization",
          "as_source": "engine.source", "open_array": "engine.source",
          "open_dataset": "engine.source", "open_source": "engine.source"}
#: the errors about the user's files (:mod:`daskmeans.io.errors`: one family, one base)
_WHERE |= {name: "io.errors" for name in (
    "BlockReadError", "CheckpointFormatError", "ChunkDecodeError", "DaskmeansError",
    "DataFormatError", "IDXFormatError", "ImageFormatError", "ModelFormatError",
    "OutputExistsError", "StoreConnectionError", "StoreError")}

if TYPE_CHECKING:  # what type checkers and IDEs see
    from .cluster import BisectingKMeans, KMeans, MiniBatchKMeans, load_model, save_model
    from .engine.source import as_source, open_array, open_dataset, open_source
    from .io.errors import (
        BlockReadError,
        CheckpointFormatError,
        ChunkDecodeError,
        DaskmeansError,
        DataFormatError,
        IDXFormatError,
        ImageFormatError,
        ModelFormatError,
        OutputExistsError,
        StoreConnectionError,
        StoreError,
    )
    from .quantization import QuantizedImage, quantize


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        value = getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
