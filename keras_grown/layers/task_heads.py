"""One classifier head per task."""

import keras
from keras import ops

from keras_grown.layers.task_state import TaskStateMixin


@keras.saving.register_keras_serializable(package="keras_grown")
class TaskHeads(TaskStateMixin, keras.layers.Layer):
    """A dense softmax classifier per task, over the backbone's features.

    Task-incremental learning knows the task at test time, so each task has
    its own label set and its own head. A head belongs to its task: it is
    trained with it and frozen when it finishes.

    Args:
        num_classes: list with the number of classes of each task whose head
            is created at build time (used when a saved model is rebuilt).
        kernel_initializer: initializer of the head kernels.

    Input shape:
        2D tensor `(batch_size, features)`.

    Output shape:
        2D tensor `(batch_size, num_classes[task])` of class probabilities.

    Example:

    ```python
    heads = TaskHeads()
    heads.build((None, 500))
    heads.add_head(10)
    heads.set_task(0, finished=False)
    probabilities = heads(features)
    ```
    """

    def __init__(self, num_classes=(), kernel_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        self.num_classes = [int(c) for c in num_classes]
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self._pending_classes = list(self.num_classes)
        self.num_classes = []
        # Backbone features the input holds (int array into the allocated
        # features), set by GrownModel while a task computes only its
        # on-part; None: every feature.
        self.feature_index = None
        self._init_task_state(0)

    def build(self, input_shape):
        self.features = int(input_shape[-1])
        self.built = True
        for classes in self._pending_classes:
            self.add_head(classes)

    def add_head(self, num_classes):
        """Adds the head of a new task with `num_classes` outputs."""
        if not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(
                "A task needs at least 2 classes. "
                f"Received: num_classes={num_classes!r}"
            )
        self.num_classes.append(num_classes)
        return self.add_task_state()

    def _create_task_variables(self, index):
        classes = self.num_classes[index]
        # A fresh initializer per head: a Keras initializer built without a
        # seed fixes one at construction, so every head would start alike and
        # a loaded model would draw other values than the one it was saved
        # from. A fresh one draws its seed from the global RNG now, which
        # `learn()` seeds per task (exact resume).
        initializer = self.kernel_initializer.__class__.from_config(
            self.kernel_initializer.get_config()
        )
        return {
            "kernel": self.add_weight(
                name=f"task_{index}_kernel",
                shape=(self.features, classes),
                initializer=initializer,
                autocast=False,
            ),
            "bias": self.add_weight(
                name=f"task_{index}_bias", shape=(classes,), initializer="zeros",
                autocast=False,
            ),
        }

    def call(self, inputs):
        kernel = self._current("kernel")
        if self.feature_index is not None and not self.task_finished:
            kernel = ops.take(kernel, self.feature_index, axis=0)
        # In float32 under a mixed-precision policy, as Keras advises for a
        # model's last layer: the loss and the predictions are float32
        # whatever the policy (the compact export's head is the same).
        inputs = ops.cast(inputs, "float32")
        logits = ops.matmul(inputs, kernel) + self._current("bias")
        return ops.softmax(logits)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.num_classes[self.task])

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_classes": list(self.num_classes) or list(self._pending_classes),
                "kernel_initializer": keras.initializers.serialize(
                    self.kernel_initializer
                ),
            }
        )
        return config
