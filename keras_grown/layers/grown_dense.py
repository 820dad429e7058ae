"""A densely-connected layer that grows from a seed."""

import keras
from keras import ops

from keras_grown.layers.grown_base import GrownLayer


@keras.saving.register_keras_serializable(package="keras_grown")
class GrownDense(GrownLayer):
    """Dense layer with GROWN's owner / frozen / free storage and task masks.

    `units` is the full-size width (the width of the ordinary network this
    layer stands for). The layer allocates `ceil(units * capacity)` outputs,
    starts with `round(units * seed_ratio)` of them active, and grows the rest
    only when a task needs them. A kernel is one weight.

    Args:
        units: full-size number of output units.
        activation: activation applied before the channel gate.
        use_bias: per-task bias. Defaults to `not batch_norm`.
        batch_norm: apply a `TaskBatchNorm` before the activation.
        seed_ratio: fraction of `units` active in the seed, in (0, 1].
            Defaults to the enclosing `growth_scope` (0.5).
        capacity: allocated width as a multiple of `units`, >= 1.
            Defaults to the enclosing `growth_scope` (2.0).
        kernel_initializer: initializer of the free kernel.
        temperature: Gumbel-Sigmoid temperature (see `keras_grown.masks`);
            defaults to the scope's.
        gumbel: `"concrete"` or `"paper"`, the Gumbel-Sigmoid form;
            defaults to the scope's.
        selective_init: initial selective mask score; defaults to the scope's.
        attentive_init: initial attentive mask score; defaults to the scope's.
        grown_init: initial grown mask score; defaults to the scope's.
        seed: seed of the Gumbel noise.
        num_tasks: task states to create at build (for rebuilding a saved model).

    Input shape:
        2D tensor `(batch_size, input_dim)`.

    Output shape:
        2D tensor `(batch_size, ceil(units * capacity))`; channels that are off
        for the selected task are exactly zero.

    Example:

    ```python
    layer = GrownDense(500, activation="relu", seed_ratio=0.5, capacity=2.0)
    y = layer(keras.Input((800,)))   # y.shape == (None, 1000)
    ```
    """

    @property
    def kernel_spatial_shape(self):
        return ()

    def build(self, input_shape):
        if len(input_shape) != 2:
            raise ValueError(
                "GrownDense expects 2D inputs (batch_size, features). "
                f"Received: input_shape={input_shape}. Add a Flatten layer first."
            )
        super().build(input_shape)

    def _apply_kernel(self, inputs, kernel):
        return ops.matmul(inputs, kernel)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.computed_units)
