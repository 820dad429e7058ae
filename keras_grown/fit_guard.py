"""fit() all or nothing: the copy of what it may change, the NaN stop, the storage write-back.

`GrownModel.fit()` checks its data first (`keras_grown.validation`); what can
only fail half-way (a loss or weights that turn NaN, a label TensorFlow
refuses inside a step, an out-of-memory error) is handled here: the variables
fit() may change are copied before the first step and put back if it fails,
and the error is said in our words.
"""

import contextlib

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from keras_grown import validation
from keras_grown.schedule import GrowWhenNecessary
from keras_grown.transaction import ValueSnapshot


def with_guards(callbacks, growth_schedule=None):
    """fit()'s callbacks: `StopOnNaN` first, after `StoreWorking` when the user gave any;
    the model's `growth_schedule` last unless a schedule is among them."""
    # Callbacks of the user's may read the storage: write the working
    # variables back at every epoch end for them (and not otherwise: it
    # copies the full-capacity storage). The growth schedule reads none.
    callbacks = list(callbacks or [])
    if growth_schedule is not None and not any(
        isinstance(c, GrowWhenNecessary) for c in callbacks
    ):
        # Last: the callbacks before it see the epoch as it trained.
        callbacks.append(growth_schedule)
    readers = [c for c in callbacks if not isinstance(c, GrowWhenNecessary)]
    internal = [StoreWorking()] if readers else []
    return internal + [StopOnNaN()] + callbacks


def fit_state(model):
    """The variables a fit() of `model` may change: what a failed fit() puts back."""
    # Frozen kernels are only written by finish_task(): not worth a copy.
    # With plans, training writes the storage only through the plans'
    # working variables (their on-part, at epoch ends): copy those, not
    # the full-capacity storage, and write them back if fit() fails.
    skipped = {id(layer.frozen_kernel) for layer in model.grown_layers}
    plans = model.controller.plans()
    for plan in plans:
        layer = plan.layer
        skipped |= {id(v) for v in (
            layer.free_kernel, layer.owner, layer.active, layer.selective_score,
            layer.attentive_score, layer.grown_score,
        )}
    state = [v for v in model.variables if id(v) not in skipped]
    state += [v for plan in plans for v in plan.working_variables]
    for optimizer in (model.optimizer, model.mask_optimizer):
        state += list(optimizer.variables) if optimizer is not None else []
    return state


@contextlib.contextmanager
def all_or_nothing(model):
    """The training of one `fit()`: on failure `model` is put back and the error explained.

    A `NonFinite` stop becomes a `FloatingPointError`, TensorFlow's error on a
    label outside the task's classes a `ValueError`; any other error is
    raised as it is, after the model is restored.
    """
    plans = model.controller.plans()
    saved = ValueSnapshot(fit_state(model), model.fit_snapshot_memory_limit)
    model.controller.fit_undo = None
    model.controller.in_fit = True
    for plan in plans:
        plan.ahead = True
    try:
        yield
    except Exception as error:
        if model.controller.fit_undo is not None:
            # The growth schedule changed the phase: first the plans,
            # optimizers, flags and storage of before its first change.
            model.controller.fit_undo.restore()
        saved.restore()
        for plan in plans:
            plan.store()  # the storage's on-part as it was before fit()
        model.controller.in_fit = False
        if isinstance(error, NonFinite):
            raise FloatingPointError(
                f"fit() stopped: {error} while training task {model.current_task}. "
                "Lower the learning rate, or check the inputs for NaN/inf values. The "
                "model was restored to its state before this fit() call (finished "
                "tasks are unchanged)."
            ) from None
        clear = validation.label_error(
            model, error, "fit()", model.current_task,
            "Remap the labels to 0..k-1. The model was restored to its state before "
            "this fit() call.",
        )
        if clear is not None:
            raise clear from None
        raise
    finally:
        model.controller.in_fit = False
        if model.controller.fit_undo is not None:
            model.controller.fit_undo.discard()
            model.controller.fit_undo = None
        saved.discard()


class NonFinite(Exception):
    """Raised inside fit() when the loss or the weights stop being finite."""


class StoreWorking(keras.callbacks.Callback):
    """Writes the task's working variables back to storage at the end of every epoch.

    First in fit()'s callbacks, so that the callbacks after it (growth
    monitors, checkpoints) read up-to-date storage.
    """

    def on_epoch_end(self, epoch, logs=None):
        self.model.controller.store_working()
        for plan in self.model.controller.plans():
            plan.ahead = True


class StopOnNaN(keras.callbacks.Callback):
    """Stops `GrownModel.fit()` at the end of an epoch whose loss or weights are NaN/inf.

    Like `keras.callbacks.TerminateOnNaN`, but it raises, so that `fit()`
    restores the model and reports the cause instead of returning quietly.
    A NaN input can leave the loss finite (max-pooling skips NaN) while the
    gradients turn the weights into NaN, hence the check of the weights.
    """

    # Checked per epoch, not per batch: a per-batch hook makes Keras copy the
    # logs to the host after every step, which stalls an accelerator. The
    # epoch's mean loss is NaN when any batch's was, and the model is put
    # back to its state before fit() anyway.
    def on_epoch_end(self, epoch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not np.isfinite(float(np.mean(ops.convert_to_numpy(loss)))):
            raise NonFinite(f"the loss became NaN or inf in epoch {epoch + 1}")
        for variable in self.model.trainable_variables:
            if not bool(tf.reduce_all(tf.math.is_finite(variable))):
                raise NonFinite(
                    f"the weights {variable.path} became NaN or inf in epoch {epoch + 1}"
                )
