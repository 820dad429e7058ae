"""The argument types of the `keras-grown` commands: each turns one flag's text into a value.

An `argparse` type function returns the value or raises
`argparse.ArgumentTypeError` saying what the flag takes; argparse prints
that as the command's one error line.
"""

import argparse


def growth_candidates(value):
    """`--growth-candidates`: a positive fraction of the full-size width, or `all` (None)."""
    if value.lower() in ("all", "none"):
        return None
    try:
        number = float(value)
    except ValueError:
        number = float("nan")
    if not number > 0 or number == float("inf"):
        raise argparse.ArgumentTypeError(
            "--growth-candidates takes a positive fraction of the full-size width, or 'all'; "
            f"received {value!r}"
        )
    return number


def accuracy_target(value):
    """`--target`: an accuracy in (0, 1], `scratch`, or `none` (None)."""
    if value.lower() in ("none", "no", ""):
        return None
    if value.lower() == "scratch":
        return "scratch"
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--target takes an accuracy in (0, 1], 'scratch' or 'none'; received {value!r}"
        ) from None
    if not 0.0 < number <= 1.0:
        raise argparse.ArgumentTypeError(
            f"--target must be in (0, 1] (an accuracy, e.g. 0.95); received {value}"
        )
    return number


def non_negative_int(value):
    """An integer >= 0 (`--fixed-mask-epochs`)."""
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an integer >= 0; received {value!r}") from None
    if number < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0; received {value}")
    return number


def positive_int(value):
    """An integer >= 1 (`--epochs`, `--num-tasks`, ...)."""
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer; received {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer; received {value}")
    return number


def search_setting(value):
    """`--l0-lambda 0.1` fixes a value; `--l0-lambda 1e-3:10` searches that range."""
    try:
        if ":" in value:
            low, high = value.split(":", 1)
            return (float(low), float(high))
        return float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a number (fixed) or LOW:HIGH (a range to search); received {value!r}"
        ) from None


def tune_tasks(value):
    """`--tune-tasks`: a number of tasks, or `all` (None)."""
    if value.lower() == "all":
        return None
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--tune-tasks takes a number of tasks or 'all'; received {value!r}"
        ) from None


