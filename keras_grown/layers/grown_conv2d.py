"""A 2D convolution that grows from a seed."""

import keras
from keras import ops

from keras_grown.layers.grown_base import GrownLayer


@keras.saving.register_keras_serializable(package="keras_grown")
class GrownConv2D(GrownLayer):
    """2D convolution with GROWN's owner / frozen / free storage and task masks.

    `filters` is the full-size number of filters. The layer allocates
    `ceil(filters * capacity)` filters, starts with
    `round(filters * seed_ratio)` active, and grows the rest only when a task
    needs them. A kernel is the `k x k` slice between one input and one output
    channel: the masks are kernel-wise. Channels last.

    Args:
        filters: full-size number of output filters.
        kernel_size: int or tuple of 2 ints.
        strides: int or tuple of 2 ints. Defaults to 1.
        padding: `"valid"` or `"same"`.
        **kwargs: `activation`, `use_bias`, `batch_norm`, `seed_ratio`,
            `capacity`, `kernel_initializer`, `temperature`, `gumbel`,
            `selective_init`, `attentive_init`, `grown_init`, `seed`,
            `num_tasks`: as in `GrownDense`.

    Input shape:
        4D tensor `(batch_size, height, width, channels)`.

    Output shape:
        4D tensor `(batch_size, new_height, new_width, ceil(filters * capacity))`;
        filters that are off for the selected task output exactly zero.

    Example:

    ```python
    conv = GrownConv2D(20, 5, activation="relu", seed_ratio=0.5, capacity=2.0)
    y = conv(keras.Input((28, 28, 1)))   # y.shape == (None, 24, 24, 40)
    ```
    """

    def __init__(self, filters, kernel_size, strides=1, padding="valid", **kwargs):
        super().__init__(filters, **kwargs)
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.strides = _pair(strides, "strides")
        padding = str(padding).lower()
        if padding not in ("valid", "same"):
            raise ValueError(
                f"padding must be 'valid' or 'same'. Received: padding={padding!r}"
            )
        self.padding = padding

    @property
    def filters(self):
        return self.units

    @property
    def kernel_spatial_shape(self):
        return self.kernel_size

    def build(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(
                "GrownConv2D expects 4D inputs (batch_size, height, width, "
                f"channels). Received: input_shape={input_shape}"
            )
        super().build(input_shape)

    def _output_shape_for(self, input_shape):
        return self._spatial_output_shape(input_shape) + (self.allocated_units,)

    def _apply_kernel(self, inputs, kernel):
        return ops.conv(inputs, kernel, strides=self.strides, padding=self.padding)

    def compute_output_shape(self, input_shape):
        return self._spatial_output_shape(input_shape) + (self.computed_units,)

    def _spatial_output_shape(self, input_shape):
        spatial = []
        for size, k, s in zip(input_shape[1:3], self.kernel_size, self.strides):
            if size is None:
                spatial.append(None)
            elif self.padding == "same":
                spatial.append(-(-size // s))
            else:
                spatial.append((size - k) // s + 1)
        return (input_shape[0], *spatial)

    def get_config(self):
        config = super().get_config()
        config["filters"] = config.pop("units")
        config.update(
            {
                "kernel_size": self.kernel_size,
                "strides": self.strides,
                "padding": self.padding,
            }
        )
        return config


def _pair(value, name):
    if isinstance(value, int):
        value = (value, value)
    value = tuple(value)
    if len(value) != 2 or not all(isinstance(v, int) and v > 0 for v in value):
        raise ValueError(
            f"{name} must be a positive int or a tuple of 2 positive ints. "
            f"Received: {name}={value!r}"
        )
    return value
