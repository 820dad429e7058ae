"""Grown layers: owner / frozen / free storage, task masks, task-specific state."""

from keras_grown.layers.grown_base import GrownLayer
from keras_grown.layers.grown_conv2d import GrownConv2D
from keras_grown.layers.grown_dense import GrownDense
from keras_grown.layers.scope import growth_scope
from keras_grown.layers.task_batch_norm import TaskBatchNorm
from keras_grown.layers.task_heads import TaskHeads
from keras_grown.layers.task_state import TaskStateMixin, get_task_aware_layers

__all__ = [
    "GrownConv2D",
    "GrownDense",
    "GrownLayer",
    "TaskBatchNorm",
    "TaskHeads",
    "TaskStateMixin",
    "get_task_aware_layers",
    "growth_scope",
]
