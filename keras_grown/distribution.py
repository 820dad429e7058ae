"""A GrownModel under tf.distribute: loss scaling and the MultiWorkerMirroredStrategy fixes.

Keras scales the task loss by 1 / replicas under tf.distribute (the gradients
are summed across replicas); the model-wide terms GrownModel adds to it (the
l0 term, penalties) are scaled the same way. Keras 3 fails twice under
MultiWorkerMirroredStrategy (keras-team/keras#20585); `per_replica_logs` and
`local_build_batch` work around it.
"""

import keras
import tensorflow as tf
from keras import ops

from keras_grown import _framework


def scale_loss(loss):
    """`loss` / replicas under tf.distribute (as Keras scales the task loss)."""
    return _framework.scale_loss_for_distribution(loss)


def unscale_loss(loss):
    """The loss as one replica computed it, before `scale_loss`."""
    return _framework.unscale_loss_for_distribution(loss)


def multi_worker(strategy):
    """True for a MultiWorkerMirroredStrategy across several workers."""
    return (
        isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
        and _framework.in_multi_worker_mode(strategy)
    )


def per_replica_logs(strategy, logs):
    """What a step returns, reducible under `strategy`.

    Under MultiWorkerMirroredStrategy Keras 3 reduces what a step returns
    with `strategy.reduce("MEAN", value, axis=0)`, which fails on scalar
    metrics (keras-team/keras#20585): give each value an axis of one per
    replica; the mean over it is the (synchronized) metric itself.
    """
    if not multi_worker(strategy):
        return logs
    return keras.tree.map_structure(lambda value: ops.expand_dims(value, 0), logs)


def local_build_batch(strategy, iterator, data_batch):
    """`(iterator, data_batch)` for Keras' symbolic build under `strategy`.

    Keras 3 gives the symbolic build the first batch reduced with
    `strategy.reduce()`, which MultiWorkerMirroredStrategy refuses for a
    nested (x, y) batch ("Attempt to convert a value (PerReplica...)",
    keras-team/keras#20585). The batch only lends its shapes: give it this
    worker's first replica's part instead.
    """
    if iterator is not None and multi_worker(strategy):
        for _, _, batches in iterator:
            data_batch = keras.tree.map_structure(
                lambda value: strategy.experimental_local_results(value)[0]
                if isinstance(value, tf.distribute.DistributedValues)
                else value,
                next(batches),
            )
            break
        iterator = None
    return iterator, data_batch
