"""Argument checks shared across the package: each error echoes the value it received.

The lowest module of keras-grown (NumPy only): the datasets, the layers, the
model, learning, bench and tuning all check integers and finite numbers the
same way, with the same words.
"""

import math

import numpy as np


def is_integer(value, minimum=None):
    """Whether `value` is an integer (NumPy's too; a bool is not), at least `minimum` if given."""
    return (
        not isinstance(value, bool)
        and isinstance(value, (int, np.integer))
        and (minimum is None or value >= minimum)
    )


def check_count(name, value, minimum):
    """`value` as an int, or a ValueError: `{name} must be an integer >= {minimum}`."""
    if not is_integer(value, minimum):
        raise ValueError(f"{name} must be an integer >= {minimum}. Received: {name}={value!r}")
    return int(value)


def check_optional_count(name, value, allowed):
    """None, or `value` as an int >= 0; else a ValueError: `{name} must be {allowed}`."""
    if value is None:
        return None
    if not is_integer(value, 0):
        raise ValueError(f"{name} must be {allowed}. Received: {name}={value!r}")
    return int(value)


def check_seed(seed):
    """Refuses a seed that is not an integer."""
    if not is_integer(seed):
        raise ValueError(f"seed must be an integer. Received: seed={seed!r}")


def check_finite(name, value, allowed):
    """Returns `value` as a float; raises a clear error for NaN, inf or a non-number.

    Args:
        name: the argument's name, as the user wrote it.
        value: what the user passed.
        allowed: what is allowed, in words, e.g. `">= 1"`.
    """
    if isinstance(value, bool):
        number = float("nan")
    else:
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = float("nan")
    if not math.isfinite(number):
        raise ValueError(
            f"{name} must be a finite number {allowed}. Received: {name}={value!r}"
        )
    return number
