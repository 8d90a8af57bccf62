"""The declarative parameter validator: every constraint, the message, the error type."""

from __future__ import annotations

import math
from numbers import Integral, Real
from typing import ClassVar

import numpy as np
import pytest

from daskmeans.validation import (
    Interval,
    InvalidParameterError,
    Options,
    check_scalar_param,
    validate_params,
)


def ok(value, *constraints) -> bool:
    try:
        check_scalar_param("p", value, list(constraints), "Owner")
    except InvalidParameterError:
        return False
    return True


@pytest.mark.parametrize("value, expected", [
    (2, True), (np.int64(2), True), (np.uint8(7), True), (10**30, True),
    (1, False), (2.0, False), (np.float64(3), False), (True, False), (np.True_, False),
    ("2", False), (None, False),
])
def test_integral_interval(value, expected):
    assert Interval(Integral, 2, None, closed="left").is_satisfied_by(value) is expected


@pytest.mark.parametrize("value, expected", [
    (0.5, True), (1, True), (np.float32(0.25), True), (np.int64(1), True),
    (0, False), (0.0, False), (1.5, False), (True, False), (math.nan, False),
    (np.float64("nan"), False), ("0.5", False),
])
def test_real_interval_open_left_closed_right(value, expected):
    assert Interval(Real, 0, 1, closed="right").is_satisfied_by(value) is expected


@pytest.mark.parametrize("closed, at_left, at_right", [
    ("left", True, False), ("right", False, True), ("both", True, True), ("neither", False, False),
])
def test_closed_ends(closed, at_left, at_right):
    iv = Interval(Integral, 1, 3, closed=closed)
    assert (iv.is_satisfied_by(1), iv.is_satisfied_by(3)) == (at_left, at_right)
    assert iv.is_satisfied_by(2) and not iv.is_satisfied_by(0) and not iv.is_satisfied_by(4)


def test_unbounded_sides_and_inf():
    assert Interval(Real, None, None).is_satisfied_by(-math.inf)
    assert Interval(Real, 0, None).is_satisfied_by(math.inf)
    assert not Interval(Real, 0, math.inf, closed="left").is_satisfied_by(math.inf)
    assert Interval(Real, 0, math.inf, closed="both").is_satisfied_by(np.inf)
    assert not Interval(Real, 0, None).is_satisfied_by(-math.inf)
    assert Interval(Integral, None, 0, closed="right").is_satisfied_by(-(10**40))


@pytest.mark.parametrize("interval, text", [
    (Interval(Integral, 2, None, closed="left"), "an int in the range [2, inf)"),
    (Interval(Real, 0, 1, closed="right"), "a float in the range (0, 1]"),
    (Interval(Real, None, 0.5, closed="neither"), "a float in the range (-inf, 0.5)"),
    (Interval(Integral, 1, 9, closed="both"), "an int in the range [1, 9]"),
])
def test_interval_str(interval, text):
    assert str(interval) == text


def test_interval_rejects_bad_definitions():
    with pytest.raises(TypeError):
        Interval(int, 0, None)
    with pytest.raises(TypeError):
        Interval(Integral, 0.5, None)
    with pytest.raises(ValueError, match="closed"):
        Interval(Integral, 0, None, closed="open")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="below"):
        Interval(Real, 1, 0)


def test_options_exact_match():
    opts = Options("k-means++", "random")
    assert opts.is_satisfied_by("random")
    assert opts.is_satisfied_by(np.str_("random"))
    for bad in ("Random", "RANDOM", " random", "k-means", None, 0, ["random"]):
        assert not opts.is_satisfied_by(bad)
    assert str(opts) == "one of {'k-means++', 'random'}"
    assert str(Options("auto")) == "'auto'"
    with pytest.raises(TypeError):
        Options(1)  # type: ignore[arg-type]


def test_none_and_callable():
    assert ok(None, None) and not ok(0, None) and not ok("None", None)
    assert ok(len, callable) and ok(lambda x: x, callable) and not ok("len", callable)


def test_array_like():
    for good in ([1, 2], (1.0,), np.zeros((2, 2)), np.float64(1.0)):
        assert ok(good, "array-like")
    for bad in ("abc", 3, None, {1, 2}, {"a": 1}):
        assert not ok(bad, "array-like")


def test_random_state():
    for good in (None, 0, 42, np.int32(5), 2**32 - 1, np.random.RandomState(0),
                 np.random.default_rng(0)):
        assert ok(good, "random_state")
    for bad in (-1, 2**32, 1.0, True, "0", np.random.SeedSequence(0)):
        assert not ok(bad, "random_state")


def test_boolean():
    assert ok(True, "boolean") and ok(False, "boolean") and ok(np.bool_(False), "boolean")
    for bad in (0, 1, "True", None, 1.0):
        assert not ok(bad, "boolean")


def test_unknown_constraint_is_a_programming_error():
    with pytest.raises(ValueError, match="unknown constraint"):
        check_scalar_param("p", 1, ["array_like"], "Owner")


def test_error_is_value_and_type_error_and_message():
    with pytest.raises(ValueError) as vi:
        check_scalar_param("checkpoint_every", 0, [Interval(Integral, 1, None)], "KMeans.fit")
    assert isinstance(vi.value, TypeError)
    assert str(vi.value) == ("The 'checkpoint_every' parameter of KMeans.fit must be "
                             "an int in the range [1, inf), got 0.")
    with pytest.raises(TypeError, match=r"got 'x'\.$"):
        check_scalar_param("tol", "x", [Interval(Real, 0, None)], "KMeans")


def test_message_joins_three_or_more_alternatives():
    with pytest.raises(InvalidParameterError) as ei:
        check_scalar_param("init", 3, [Options("k-means++", "random"), "array-like", callable],
                           "KMeans")
    assert str(ei.value) == ("The 'init' parameter of KMeans must be one of "
                             "{'k-means++', 'random'}, an array-like or a callable, got 3.")


def test_check_scalar_param_returns_value():
    assert check_scalar_param("k", np.int64(3), [Interval(Integral, 1, None)], "f") == 3


class Dummy:
    _parameter_constraints: ClassVar[dict[str, list]] = {
        "split_every": [Interval(Integral, 2, None, closed="left")],
        "n_init": [Options("auto"), Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "random_state": ["random_state"],
        "verbose": ["boolean"],
        "callback": [None, callable],
    }

    def __init__(self, split_every=8, n_init="auto", tol=1e-4, random_state=None,
                 verbose=False, callback=None, unchecked=None):
        self.split_every = split_every
        self.n_init = n_init
        self.tol = tol
        self.random_state = random_state
        self.verbose = verbose
        self.callback = callback
        self.unchecked = unchecked


def test_validate_params_accepts_defaults_and_good_values():
    validate_params(Dummy())
    validate_params(Dummy(split_every=np.int64(2), n_init=5, tol=0, random_state=np.int64(3),
                          verbose=np.True_, callback=print, unchecked=-1))


@pytest.mark.parametrize("kwargs, message", [
    ({"split_every": 1},
     "The 'split_every' parameter of Dummy must be an int in the range [2, inf), got 1."),
    ({"n_init": 0},
     "The 'n_init' parameter of Dummy must be 'auto' or an int in the range [1, inf), got 0."),
    ({"n_init": "Auto"},
     "The 'n_init' parameter of Dummy must be 'auto' or an int in the range [1, inf), "
     "got 'Auto'."),
    ({"split_every": 2.0}, "got 2.0."),
    ({"tol": math.nan}, "The 'tol' parameter of Dummy must be a float in the range [0, inf), "
                        "got nan."),
    ({"verbose": 1}, "The 'verbose' parameter of Dummy must be a bool, got 1."),
    ({"callback": "print"}, "must be None or a callable, got 'print'."),
    ({"random_state": -1}, "must be an int in the range [0, 4294967295], a numpy RandomState "
                           "or Generator, or None, got -1."),
])
def test_validate_params_rejects(kwargs, message):
    with pytest.raises(InvalidParameterError) as ei:
        validate_params(Dummy(**kwargs))
    assert str(ei.value).endswith(message)
    assert isinstance(ei.value, ValueError) and isinstance(ei.value, TypeError)


def test_validate_params_without_constraints_is_a_no_op():
    validate_params(object())
