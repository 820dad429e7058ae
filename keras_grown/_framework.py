"""Every private Keras, TensorFlow and KerasTuner API keras-grown relies on, in one module.

A release of those libraries may change any of them without notice. Each
function here is the only place the package touches one, and says what it is
for; `setup.py` bounds Keras to the releases they were checked on (the
whole suite on 3.15; the layer, mask, mode, model, schedule and WSN tests on
3.10.0, tox's `keras-oldest` environment), and `tests/test_layout.py` fails when another module imports `keras.src` or
`tensorflow.python`, or reads one of `PRIVATE_ATTRIBUTES` itself.

What is not routed through here, because it is an override of Keras' own
hook rather than a call into it: `GrownModel._maybe_symbolic_build` (Keras
builds the model's metrics from one batch in `fit()` before the first step;
under MultiWorkerMirroredStrategy it must be a local batch) and
`GrownModel.train_step` (Keras' `TensorFlowTrainer.train_step` with the mask
scores updated by their own optimizer), which calls `compute_loss` and
`loss_tracker` below.
"""

import contextlib

# The private attributes of framework objects that only this module reads.
PRIVATE_ATTRIBUTES = frozenset({
    "_inbound_nodes", "_keras_history", "_flatten_layers", "_tracker",
    "_compile_loss", "_compile_metrics", "_loss_tracker", "_compute_loss",
    "_momentums", "_velocities", "_get_variable_index", "_in_multi_worker_mode",
    "_distribute_strategy", "_build_hypermodel",
})


# -- keras.random ---------------------------------------------------------
def draw_seed(seed):
    """A seed tensor from a `keras.random.SeedGenerator` (advancing its state) or an int.

    What `keras.random.uniform(seed=...)` does internally; the layers draw
    their own Philox noise from it (masks.logistic_noise).
    """
    from keras.src.random.seed_generator import draw_seed as keras_draw_seed

    return keras_draw_seed(seed)


# -- TensorFlow graphs and tf.distribute ------------------------------------
def compiled_by_xla():
    """Whether the op being built is compiled by XLA (`jit_compile=True`); None if unknown."""
    import tensorflow as tf

    if tf.executing_eagerly():
        return False
    try:
        from tensorflow.python.ops import control_flow_util
    except ImportError:  # a TensorFlow without it: the caller takes the path right everywhere
        return None
    return bool(control_flow_util.GraphOrParentsInXlaContext(tf.compat.v1.get_default_graph()))


def single_device(strategy):
    """A placement on the first device of this worker that `strategy` creates plain variables on."""
    from tensorflow.python.distribute import numpy_dataset

    return numpy_dataset.SingleDevice(strategy.extended.worker_devices[0])


def in_multi_worker_mode(strategy):
    """Whether a MultiWorkerMirroredStrategy spans several workers."""
    return bool(strategy.extended._in_multi_worker_mode())


def scale_loss_for_distribution(loss):
    """`loss` / replicas under tf.distribute, as Keras scales the task loss."""
    from keras.src.losses import loss as loss_module

    return loss_module.scale_loss_for_distribution(loss)


def unscale_loss_for_distribution(loss):
    """The loss as one replica computed it, before `scale_loss_for_distribution`."""
    from keras.src.losses import loss as loss_module

    return loss_module.unscale_loss_for_distribution(loss)


# -- Keras layers and the functional graph ----------------------------------
def inbound_nodes(operation):
    """The nodes (calls) of a layer or operation in the functional graphs it is part of."""
    return operation._inbound_nodes


def keras_history(tensor):
    """(operation, node index, tensor index) of a symbolic Keras tensor."""
    return tensor._keras_history


def sublayers(layer, include_self=True, recursive=True):
    """Every layer inside `layer` (nested ones with `recursive`), in Keras' order."""
    return list(layer._flatten_layers(include_self=include_self, recursive=recursive))


def tracker(layer):
    """The layer's variable tracker, or None (what `Transaction` saves and restores)."""
    return getattr(layer, "_tracker", None)


@contextlib.contextmanager
def unlocked_tracker(layer):
    """Lets a built layer create variables (Keras locks its tracker after `build()`)."""
    locked = layer._tracker.locked
    layer._tracker.unlock()
    try:
        yield
    finally:
        if locked:
            layer._tracker.lock()


@contextlib.contextmanager
def untracked():
    """Sets attributes without Keras' tracking (which would list them twice in `model.metrics`)."""
    from keras.src.utils import tracking

    with tracking.DotNotTrackScope():
        yield


# -- Keras compile state and the trainer -------------------------------------
def compiled_state(model):
    """(compiled loss, compiled metrics, loss tracker) that `compile()` made, or None."""
    if not getattr(model, "compiled", False) or getattr(model, "_compile_loss", None) is None:
        return None
    return model._compile_loss, model._compile_metrics, model._loss_tracker


def set_compiled_state(model, state):
    """Puts back what `compiled_state()` returned, as `compile()` sets it (untracked)."""
    with untracked():
        model._compile_loss, model._compile_metrics, model._loss_tracker = state


def compiled_loss_and_metrics(model):
    """(compiled loss, compiled metrics) of a compiled model; either may be None."""
    return getattr(model, "_compile_loss", None), getattr(model, "_compile_metrics", None)


def compute_loss(model, **kwargs):
    """Keras' `Trainer._compute_loss` (the compiled loss plus `model.losses`, as `fit()` computes it)."""
    return model._compute_loss(**kwargs)


def loss_tracker(model):
    """The `Mean` metric behind `fit()`'s "loss" log."""
    return model._loss_tracker


def strategy_of(model):
    """The distribution strategy the model was created under (Keras' own attribute)."""
    return model._distribute_strategy


# -- optimizers ---------------------------------------------------------------
def adam_slots(optimizer, variable):
    """(first moment, second moment) variables of `variable` in a Keras Adam."""
    index = optimizer._get_variable_index(variable)
    return optimizer._momentums[index], optimizer._velocities[index]


# -- KerasTuner ------------------------------------------------------------------
def tuner_build_hypermodel(tuner, hp):
    """KerasTuner's `Tuner._build_hypermodel`, skipping a subclass's override (Hyperband's reload)."""
    import keras_tuner

    return keras_tuner.Tuner._build_hypermodel(tuner, hp)
