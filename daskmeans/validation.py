"""Declarative parameter validation in the style of scikit-learn's ``_parameter_constraints``.

scikit-learn's own machinery lives in the private ``sklearn.utils._param_validation``, which
this project does not import (public APIs only), hence this small stand-in.

An estimator class declares ``_parameter_constraints: dict[str, list]``; each list holds
constraints, and a value is valid if any of them accepts it. A constraint is an
:class:`Interval`, an :class:`Options`, ``None`` (the value None), the builtin ``callable``
(any callable), or one of the strings ``"array-like"``, ``"random_state"`` and ``"boolean"``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from typing import Any, Literal, TypeVar

import numpy as np

__all__ = ["Interval", "InvalidParameterError", "Options", "check_scalar_param", "validate_params"]

T = TypeVar("T")


class InvalidParameterError(ValueError, TypeError):
    """A parameter has an invalid type or value; both a ValueError and a TypeError."""


class Interval:
    """Numbers of a given type between two bounds.

    Parameters
    ----------
    type : numbers.Integral or numbers.Real
        ``Integral`` accepts Python and numpy integers (not bool, not ``2.0``); ``Real``
        accepts integers and floats, numpy scalars included, but not bool or NaN.
    left, right : number or None
        Bounds; None means unbounded on that side.
    closed : {"left", "right", "both", "neither"}, default "left"
        Which bounds belong to the interval.

    Examples
    --------
    >>> from numbers import Integral
    >>> ge2 = Interval(Integral, 2, None, closed="left")
    >>> ge2.is_satisfied_by(2), ge2.is_satisfied_by(2.0), ge2.is_satisfied_by(True)
    (True, False, False)
    >>> str(ge2)
    'an int in the range [2, inf)'
    """

    def __init__(self, type: type, left: float | None, right: float | None, *,
                 closed: Literal["left", "right", "both", "neither"] = "left") -> None:
        if type not in (numbers.Integral, numbers.Real):
            raise TypeError(f"type must be numbers.Integral or numbers.Real, got {type!r}")
        if closed not in ("left", "right", "both", "neither"):
            raise ValueError(f"closed must be 'left', 'right', 'both' or 'neither', got {closed!r}")
        for b in (left, right):
            if b is not None and (not isinstance(b, type) or isinstance(b, bool)):
                raise TypeError(f"bound {b!r} is not a valid {type.__name__}")
        if left is not None and right is not None and right < left:
            raise ValueError(f"right bound {right!r} is below left bound {left!r}")
        self.type, self.left, self.right, self.closed = type, left, right, closed

    def is_satisfied_by(self, val: object) -> bool:
        """Return whether ``val`` has the right type and lies within the bounds."""
        if not isinstance(val, self.type) or isinstance(val, bool | np.bool_):
            return False
        x: Any = val
        if not isinstance(x, numbers.Integral) and math.isnan(x):
            return False
        if self.left is not None:
            if x < self.left or (x == self.left and self.closed in ("right", "neither")):
                return False
        if self.right is not None:
            if x > self.right or (x == self.right and self.closed in ("left", "neither")):
                return False
        return True

    def __str__(self) -> str:
        kind = "an int" if self.type is numbers.Integral else "a float"
        lo = "(-inf" if self.left is None else (
            f"[{self.left}" if self.closed in ("left", "both") else f"({self.left}")
        hi = "inf)" if self.right is None else (
            f"{self.right}]" if self.closed in ("right", "both") else f"{self.right})")
        return f"{kind} in the range {lo}, {hi}"


class Options:
    """A fixed set of string options, matched exactly (case-sensitive).

    Examples
    --------
    >>> algo = Options("lloyd", "elkan")
    >>> algo.is_satisfied_by("lloyd"), algo.is_satisfied_by("Lloyd")
    (True, False)
    >>> str(algo)
    "one of {'lloyd', 'elkan'}"
    """

    def __init__(self, *values: str) -> None:
        if not values or not all(isinstance(v, str) for v in values):
            raise TypeError(f"Options takes one or more strings, got {values!r}")
        self.values = values

    def is_satisfied_by(self, val: object) -> bool:
        """Return whether ``val`` is a string equal to one of the options."""
        return isinstance(val, str) and val in self.values

    def __str__(self) -> str:
        if len(self.values) == 1:
            return repr(self.values[0])
        return "one of {" + ", ".join(map(repr, self.values)) + "}"


_SEED = Interval(numbers.Integral, 0, 2**32 - 1, closed="both")  # RandomState's seed range
_TAGS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "array-like": (lambda v: hasattr(v, "__array__") or isinstance(v, list | tuple),
                   "an array-like"),
    "random_state": (lambda v: v is None or _SEED.is_satisfied_by(v)
                     or isinstance(v, np.random.RandomState | np.random.Generator),
                     f"{_SEED}, a numpy RandomState or Generator, or None"),
    "boolean": (lambda v: isinstance(v, bool | np.bool_), "a bool"),
    "string": (lambda v: isinstance(v, str), "a str"),
    "real": (lambda v: isinstance(v, numbers.Real) and not isinstance(v, bool | np.bool_),
             "a real number (NaN allowed)"),
}


def _resolve(c: object) -> tuple[Callable[[Any], bool], str]:
    if isinstance(c, Interval | Options):
        return c.is_satisfied_by, str(c)
    if c is None:
        return (lambda v: v is None), "None"
    if c is callable:
        return callable, "a callable"
    if isinstance(c, str) and c in _TAGS:
        return _TAGS[c]
    raise ValueError(f"unknown constraint {c!r}")


def check_scalar_param(name: str, value: T, constraints: Sequence[object], owner: str) -> T:
    """Check one value against ``constraints`` (valid if any accepts it) and return it.

    Meant for keyword arguments of methods, e.g. ``checkpoint_every`` of ``KMeans.fit``.

    Raises
    ------
    InvalidParameterError
        Naming ``name``, ``owner``, the value's repr and what is allowed.

    Examples
    --------
    >>> from numbers import Integral
    >>> check_scalar_param("checkpoint_every", 0, [Interval(Integral, 1, None)], "KMeans.fit")
    Traceback (most recent call last):
    ...
    daskmeans.validation.InvalidParameterError: The 'checkpoint_every' parameter of \
KMeans.fit must be an int in the range [1, inf), got 0.
    """
    resolved = [_resolve(c) for c in constraints]
    if any(accepts(value) for accepts, _ in resolved):
        return value
    descs = [d for _, d in resolved]
    allowed = descs[0] if len(descs) == 1 else ", ".join(descs[:-1]) + " or " + descs[-1]
    raise InvalidParameterError(
        f"The {name!r} parameter of {owner} must be {allowed}, got {value!r}.")


def validate_params(estimator: object) -> None:
    """Check each parameter named in ``type(estimator)._parameter_constraints``.

    Raises
    ------
    InvalidParameterError
        For the first parameter that no constraint of its list accepts.

    Examples
    --------
    >>> from numbers import Integral
    >>> class Est:
    ...     _parameter_constraints = {"n_init": [Options("auto"), Interval(Integral, 1, None)]}
    ...     def __init__(self, n_init="auto"):
    ...         self.n_init = n_init
    >>> validate_params(Est(n_init=3))
    >>> validate_params(Est(n_init=0))
    Traceback (most recent call last):
    ...
    daskmeans.validation.InvalidParameterError: The 'n_init' parameter of Est must be \
'auto' or an int in the range [1, inf), got 0.
    """
    owner = type(estimator)
    constraints: dict[str, Sequence[object]] = getattr(owner, "_parameter_constraints", {})
    for name, allowed in constraints.items():
        check_scalar_param(name, getattr(estimator, name), allowed, owner.__name__)
