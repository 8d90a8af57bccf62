"""How stored values become features: the one scaling rule every layer uses.

A store says how its values map to features in the attribute ``scale_factor`` of its
array (the CF conventions' name, which xarray also decodes): the features are
``float32(raw) * float32(scale_factor)``. ``daskmeans ingest`` records
``scale_factor = 1/255`` for image pixels, which become features in [0, 1]. A store
without the attribute is read in its own units: the dtype alone never decides (a uint8
satellite band or a count matrix is not a pixel in [0, 1]). Storage formats
(:mod:`daskmeans.io`) scale images they hand out as dask arrays, the engine scales rows
it reads, and the kernels scale raw rows a tile at a time inside a pass; all three must
give the same bits, or the same data would give different models through different
paths. This module depends on numpy only, so every layer may import it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["PIXEL_SCALE", "SCALE_ATTR", "ScaleAttributeError", "scale_from_attrs", "scale_rows"]

#: uint8 pixels are scaled to [0, 1] by this factor (in float32).
PIXEL_SCALE = 1.0 / 255.0
#: the array attribute that records the factor from stored values to features.
SCALE_ATTR = "scale_factor"


class ScaleAttributeError(ValueError):
    """A store's scaling attributes that daskmeans cannot apply as they are."""


def scale_from_attrs(attrs: Mapping[str, Any], where: str = "the array") -> float | None:
    """The factor from stored values to features that an array's attributes record
    (:data:`SCALE_ATTR`), or None: the values are the features.

    An ``add_offset`` other than 0 is refused (a shift of every feature does not change
    a clustering, but the centres would be in other units than the ones the store
    says), naming ``where``.

    Examples
    --------
    >>> scale_from_attrs({"scale_factor": 1 / 255}) == PIXEL_SCALE
    True
    >>> scale_from_attrs({}) is None
    True
    """
    if float(attrs.get("add_offset", 0) or 0) != 0:
        raise ScaleAttributeError(f"{where}: add_offset={attrs['add_offset']!r} is not "
                                  "supported; pass scale= explicitly or remove the offset")
    scale = attrs.get(SCALE_ATTR)
    if scale is None:
        return None
    scale = float(scale)
    if not np.isfinite(scale) or scale <= 0:
        raise ScaleAttributeError(f"{where}: {SCALE_ATTR}={scale!r} must be a positive "
                                  "finite number")
    return scale


def scale_rows(raw: np.ndarray, scale: float, out: np.ndarray | None = None) -> np.ndarray:
    """``raw`` (n, ...) values as (n, d) float32 times ``scale``: a cast, then one
    float32 multiply.

    ``out`` is an optional (>= n, d) float32 buffer to write into (a cast copy, then an
    in-place multiply: the same bits as a casting multiply, without its temporary).

    Examples
    --------
    >>> scale_rows(np.array([[0, 51, 255]], np.uint8), PIXEL_SCALE).tolist()
    [[0.0, 0.20000001788139343, 1.0]]
    """
    raw = raw.reshape(raw.shape[0], -1)
    if out is None:
        out = np.empty(raw.shape, dtype=np.float32)
    out = out[: raw.shape[0]]
    np.copyto(out, raw, casting="unsafe")
    out *= np.float32(scale)
    return out
