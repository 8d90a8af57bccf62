"""How stored values become features: the one scaling rule every layer uses.

A store says how its values map to features in the attribute ``scale_factor`` of its
array (the CF conventions' name, which xarray also decodes): the features are
``float32(raw) * float32(scale_factor)`` (:func:`daskmeans.io.stores.scale_from_attrs`
reads it). ``daskmeans ingest`` records
``scale_factor = 1/255`` for image pixels, which become features in [0, 1]. A store
without the attribute is read in its own units: the dtype alone never decides (a uint8
satellite band or a count matrix is not a pixel in [0, 1]). Storage formats
(:mod:`daskmeans.io`) scale images they hand out as dask arrays, the engine scales rows
it reads, and the kernels scale raw rows a tile at a time inside a pass; all three must
give the same bits, or the same data would give different models through different
paths. This module depends on numpy only, so every layer may import it.
"""

from __future__ import annotations

import numpy as np

__all__ = ["PIXEL_SCALE", "scale_rows"]

#: uint8 pixels are scaled to [0, 1] by this factor (in float32).
PIXEL_SCALE = 1.0 / 255.0
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
