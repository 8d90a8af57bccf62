"""Former name of :mod:`daskmeans.validation`, kept while modules still import it."""

from __future__ import annotations

from .validation import (
    Interval,
    InvalidParameterError,
    Options,
    check_scalar_param,
    validate_params,
)

__all__ = ["Interval", "InvalidParameterError", "Options", "check_scalar_param", "validate_params"]
