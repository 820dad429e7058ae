"""Batch normalization with one set of statistics and affines per task."""

import keras
from keras import ops

from keras_grown.layers.task_state import TaskStateMixin


@keras.saving.register_keras_serializable(package="keras_grown")
class TaskBatchNorm(TaskStateMixin, keras.layers.Layer):
    """Batch normalization whose statistics and affines belong to one task.

    Every task owns its `gamma`, `beta`, `moving_mean` and `moving_variance`
    over the last axis. While the current task trains, its batch statistics
    normalize the input and update its moving statistics; a finished task
    always uses its frozen moving statistics, so nothing a later task does can
    change it. Under a `tf.distribute` strategy with several replicas the
    batch statistics are those of the global batch (synchronized across
    replicas, as Keras' `BatchNormalization(synchronized=True)`), so training
    matches one device and every replica keeps the same moving statistics.

    Args:
        momentum: momentum of the moving statistics. Defaults to 0.9 (tasks
            are short; Keras' 0.99 lags behind after a few hundred steps).
        epsilon: small float added to the variance.
        num_tasks: number of task states to create at build time (used when a
            saved model is rebuilt). Defaults to 0.

    Input shape:
        Any tensor whose last axis is the channel axis.

    Output shape:
        Same as the input.

    Example:

    ```python
    norm = TaskBatchNorm()
    norm.build((None, 16))
    norm.add_task_state()
    norm.set_task(0, finished=False)
    y = norm(x, training=True)
    ```
    """

    def __init__(self, momentum=0.9, epsilon=1e-3, num_tasks=0, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= momentum < 1.0:
            raise ValueError(
                f"momentum must be in [0, 1). Received: momentum={momentum}"
            )
        if epsilon <= 0:
            raise ValueError(f"epsilon must be positive. Received: epsilon={epsilon}")
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)
        # Channels the input holds (int array into the allocated channels),
        # set by the grown layer when it computes only the task's on-part;
        # None: every channel.
        self.channel_index = None
        self._init_task_state(num_tasks)

    def build(self, input_shape):
        self.channels = int(input_shape[-1])
        self.built = True
        self._build_initial_task_states()

    def _create_task_variables(self, index):
        shape = (self.channels,)
        return {
            "gamma": self.add_weight(
                name=f"task_{index}_gamma", shape=shape, initializer="ones",
                autocast=False,
            ),
            "beta": self.add_weight(
                name=f"task_{index}_beta", shape=shape, initializer="zeros",
                autocast=False,
            ),
            "moving_mean": self.add_weight(
                name=f"task_{index}_moving_mean",
                shape=shape,
                initializer="zeros",
                trainable=False,
                autocast=False,
            ),
            "moving_variance": self.add_weight(
                name=f"task_{index}_moving_variance",
                shape=shape,
                initializer="ones",
                trainable=False,
                autocast=False,
            ),
        }

    def freeze_task_state(self, task):
        for key in ("gamma", "beta"):
            self._task_variables[task][key].trainable = False

    def call(self, inputs, training=None):
        # As Keras' BatchNormalization: statistics and the affine map in
        # float32 under a mixed-precision policy, the output in its dtype.
        dtype = keras.backend.standardize_dtype(inputs.dtype)
        if dtype in ("float16", "bfloat16"):
            inputs = ops.cast(inputs, "float32")
        return ops.cast(self._normalize(inputs, training), dtype)

    def _normalize(self, inputs, training):
        index = None if self.task_finished else self.channel_index

        def on_part(value):
            return value if index is None else ops.take(value, index, axis=0)

        gamma = on_part(self._current("gamma"))
        beta = on_part(self._current("beta"))
        moving_mean = self._current("moving_mean")
        moving_variance = self._current("moving_variance")
        if training and not self.task_finished:
            axes = list(range(len(inputs.shape) - 1))
            # Under tf.distribute with several replicas the statistics are
            # those of the global batch (as on one device): every replica
            # then writes the same moving statistics, so their copies stay
            # equal and predictions do not depend on the replica.
            mean, variance = ops.moments(inputs, axes=axes, synchronized=_num_replicas() > 1)
            for moving, value in ((moving_mean, mean), (moving_variance, variance)):
                updated = on_part(moving) * self.momentum + value * (1.0 - self.momentum)
                if index is not None:
                    # Only the computed channels' statistics move.
                    updated = ops.scatter_update(moving, index[:, None], updated)
                moving.assign(updated)
        else:
            mean, variance = on_part(moving_mean), on_part(moving_variance)
        scale = gamma * ops.rsqrt(variance + self.epsilon)
        return inputs * scale + (beta - mean * scale)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "momentum": self.momentum,
                "epsilon": self.epsilon,
                "num_tasks": self.num_task_states if self.built else self._initial_num_tasks,
            }
        )
        return config


def _num_replicas():
    """Replicas in sync of the current tf.distribute strategy (1 without one)."""
    if keras.backend.backend() != "tensorflow":
        return 1
    import tensorflow as tf

    return tf.distribute.get_strategy().num_replicas_in_sync
