"""Compact inference: the cached plain models and traced steps of a GrownModel's finished tasks.

A finished task's weights, masks, biases, batch-norm state and head are
frozen, so its predictions can come from a plain Keras model of only the
channels and kernels it uses (`keras_grown.compact.build_task_model`): no mask
is unpacked or applied per batch, no channel of the allocated capacity it does
not use is computed. The cache keeps that model per task, and the evaluate /
predict steps traced for it, so that selecting a finished task again neither
rebuilds nor retraces anything.
"""

import random
import warnings

import tensorflow as tf

from keras_grown import compact


class InferenceCache:
    """Holds compact task models and their traced step functions out of Keras' tracking.

    Attributes:
        models: {task: its compact `keras.Model`, or None where the export
            cannot convert the backbone (the masked path answers)}.
        functions: {(kind, task, jit_compile, run_eagerly,
            steps_per_execution): the traced "test" or "predict" step}.
        traced: {kind ("train", "test", "predict"): the `trace_key()` of
            the model's step function of that kind}: a step is traced again
            exactly when the model's mode (or a plan) changed since.
    """

    def __init__(self):
        self.models = {}
        self.functions = {}
        self.traced = {}

    def clear(self, model, models=True):
        """Forgets the traced steps (and, if `models`, the compact models), `model`'s too."""
        if models:
            self.models.clear()
        self.functions.clear()
        self.traced.clear()
        model.predict_function = None
        model.test_function = None

    def select_functions(self, model):
        """`model`'s evaluate/predict steps after another task (or mode) is selected.

        A finished task's evaluate/predict step reads only what is frozen
        (its compact model or its masked path, the compiled loss and
        metrics): the one traced before is taken back; else the next call
        traces one. (The train step is traced again by its key alone.)
        """
        model.test_function = self.function(model, "test")
        model.predict_function = self.function(model, "predict")

    def make_train_function(self, model, keras_make, force):
        """Keras' `make_train_function` (`keras_make`), traced again when `trace_key()` changed."""
        key = model.trace_key()
        function = keras_make(force or self.traced.get("train") != key)
        self.traced["train"] = key
        return function

    def make_function(self, model, kind, keras_make, force):
        """Keras' `make_{kind}_function` (`keras_make`): the compact model first, the step kept.

        Keras makes (eagerly) the step function of evaluate(), predict(),
        test_on_batch() and predict_on_batch() there, before tracing it: the
        one place to build the compact model the traced step will call.
        """
        self.compact_model(model)
        attribute = f"{kind}_function"
        key = model.trace_key()
        if self.traced.get(kind) != key or getattr(model, attribute) is None:
            # Another mode than the step was traced for (or none): the step
            # traced before for this one (a finished task's), or a new trace.
            setattr(model, attribute, self.function(model, kind))
        keras_make(force)
        self.traced[kind] = key
        return self.keep_function(model, kind, getattr(model, attribute))

    def function(self, model, kind):
        """The step function of `kind` traced before for `model`'s selected task, or None."""
        key = _function_key(model, kind)
        return None if key is None else self.functions.get(key)

    def keep_function(self, model, kind, function):
        """Keeps `function` for `model`'s selected task if it is finished; returns it."""
        key = _function_key(model, kind)
        if key is not None and function is not None:
            self.functions[key] = function
        return function

    def compact_model(self, model):
        """The compact model of `model`'s selected finished task, or None.

        Built once, eagerly (variables cannot be created inside a traced
        step; a trace only reads the cache), and kept until weights are
        loaded or set. Any backbone the export cannot convert keeps the
        masked path (cached as None).
        """
        if not _compact_allowed(model):
            return None
        task = model.selected_task
        if task not in self.models and tf.executing_eagerly():
            try:
                # Building Keras layers draws initializer seeds from Python's
                # global RNG; the values are then overwritten. Leave the RNG as
                # it was, so that predicting (which builds this model only
                # where compact inference is on) never changes what a later
                # add_task() draws: a run under tf.distribute repeats one on
                # one device.
                rng_state = random.getstate()
                try:
                    self.models[task] = compact.build_task_model(model, task)
                finally:
                    random.setstate(rng_state)
            except Exception as error:  # the masked path is always correct
                warnings.warn(
                    f"Compact inference is off for task {task}: the export could not convert "
                    f"this backbone ({type(error).__name__}: {error}). Predictions use the "
                    "masked network; pass compact_inference=False to silence this.",
                    stacklevel=2,
                )
                self.models[task] = None
        return self.models.get(task)


def _function_key(model, kind):
    task = model.selected_task
    if task is None or task not in model.finished_tasks:
        return None
    return (kind, task, bool(model.jit_compile), bool(model.run_eagerly),
            int(model.steps_per_execution))


def _compact_allowed(model):
    task = model.selected_task
    return (
        model.compact_inference
        and model.freeze_finished_tasks
        and task is not None
        and task in model.finished_tasks
        and not tf.distribute.has_strategy()
        and model.distribute_strategy is tf.distribute.get_strategy()
    )
