"""Default growth settings for the grown layers built inside a backbone function."""

import contextlib
import threading

from keras_grown._checks import check_finite

_DEFAULTS = {
    "seed_ratio": 0.5,
    "capacity": 2.0,
    "temperature": 1.0,
    "gumbel": "concrete",
    "selective_init": 1.0,
    "attentive_init": 1.0,
    "grown_init": 0.0,
    "seed": None,
}

_state = threading.local()


def current_growth_settings():
    """The settings of the innermost `growth_scope` (or the defaults)."""
    return getattr(_state, "settings", _DEFAULTS)


@contextlib.contextmanager
def growth_scope(**settings):
    """Sets defaults for every grown layer created inside the `with` block.

    `GrownModel` builds its backbone inside this scope, so a backbone function
    written by a user only states full-size widths (`GrownConv2D(32, 3)`) and
    the layers take `seed_ratio`, `capacity` and the mask settings from the
    model.

    Args:
        **settings: any of `seed_ratio`, `capacity`, `temperature`, `gumbel`,
            `selective_init`, `attentive_init`, `grown_init`, `seed`.

    Example:

    ```python
    with growth_scope(seed_ratio=0.25, capacity=2.0):
        layer = GrownDense(500)   # 125 active units, 1000 allocated
    ```
    """
    unknown = sorted(set(settings) - set(_DEFAULTS))
    if unknown:
        raise ValueError(
            f"growth_scope() got unknown settings {unknown}; expected any of "
            f"{sorted(_DEFAULTS)}."
        )
    previous = current_growth_settings()
    merged = dict(previous)
    merged.update(settings)
    _state.settings = merged
    # Every grown layer built in this scope gets its own noise stream derived
    # from the model seed and its position, so runs are reproducible.
    _state.layer_counter = 0
    try:
        yield merged
    finally:
        _state.settings = previous


def next_layer_seed():
    """A reproducible per-layer seed inside the current scope (None if unseeded)."""
    base = current_growth_settings().get("seed")
    if base is None:
        return None
    count = getattr(_state, "layer_counter", 0)
    _state.layer_counter = count + 1
    return int(base) * 1000 + count


def validate_growth_settings(seed_ratio, capacity):
    """Raises a clear error for a seed ratio outside (0, 1] or a capacity below 1."""
    check_finite("seed_ratio", seed_ratio, "in (0, 1]")
    check_finite("capacity", capacity, ">= 1 (the allocated width over the full-size width)")
    if not 0.0 < float(seed_ratio) <= 1.0:
        raise ValueError(
            "seed_ratio is the fraction of the full-size width the seed network "
            f"starts with and must be in (0, 1]. Received: seed_ratio={seed_ratio}"
        )
    if not float(capacity) >= 1.0:
        raise ValueError(
            "capacity is the allocated width as a multiple of the full-size "
            f"width and must be >= 1. Received: capacity={capacity}"
        )
