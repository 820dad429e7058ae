"""Issue 14: every public call that changes a GrownModel is all or nothing.

Each case injects a failure half-way through a call (after the step it names
has done its work: a head or a layer's task state created, a layer's masks
packed, a plan made, weights loaded, ...) and checks that the model is exactly
as before the call (every variable bitwise, the optimizers' state, the number
of tasks, every layer's task count, the selected task, the compiled state,
the trainable flags), that the next correct call then works, and that the
finished task still predicts bitwise as before.
"""

import dataclasses
from typing import Callable

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_grown as kg
from conftest import assert_weights_unchanged, task_arrays, weights_checksum
from keras_grown.layers import GrownLayer, TaskHeads, TaskStateMixin
from keras_grown.layers.training_plan import TrainingPlan
from keras_grown.controller import Controller
from keras_grown.model import GrownModel


@pytest.fixture(scope="module")
def data(fashion_stream):
    images, labels = task_arrays(fashion_stream[0].train)
    return {"task0": (images[:32], labels[:32]),
            "task1": tuple(a[:32] for a in task_arrays(fashion_stream[1].train)),
            "test0": task_arrays(fashion_stream[0].test)[0][:32]}


@pytest.fixture(scope="module")
def saved(data, tmp_path_factory):
    """A LeNet-5 GrownModel that learned task 0 (2 steps) and finished it, saved."""
    keras.utils.set_random_seed(0)
    model = kg.GrownModel("lenet5", seed=0)
    model.add_task(data["task0"])
    model.fit(*data["task0"], batch_size=16, epochs=1, verbose=0)
    model.finish_task()
    path = tmp_path_factory.mktemp("transactions") / "lenet.keras"
    model.save(path)
    return path


def _finished(saved, data):
    return keras.saving.load_model(saved)


def _learning(saved, data):
    """Task 0 finished, task 1 being learned (one fit: the optimizers hold state)."""
    model = keras.saving.load_model(saved)
    model.add_task(data["task1"])
    model.fit(*data["task1"], batch_size=16, epochs=1, verbose=0)
    return model


def _growing(saved, data):
    """Task 1 being learned in a growth round (one fit after grow())."""
    model = _learning(saved, data)
    model.grow()
    model.fit(*data["task1"], batch_size=16, epochs=1, verbose=0)
    return model


def _state(model):
    """Everything but the variables' values that a failed call must leave as it was."""
    layers = [layer for layer in model._flatten_layers(include_self=False, recursive=True)
              if isinstance(layer, TaskStateMixin)]
    return {
        "num_tasks": model.num_tasks,
        "current_task": model.current_task,
        "selected_task": model.selected_task,
        "growth_enabled": model.growth_enabled,
        "masks_fixed": model.masks_fixed,
        "finished_tasks": tuple(model.finished_tasks),
        "task_states": [(layer.name, layer.num_task_states, layer.task) for layer in layers],
        "head_classes": list(model.heads.num_classes),
        "compiled": model.compiled,
        "compile_settings": model.controller.compiled_with(),
        "optimizers": (model.optimizer, model.mask_optimizer),
        "plans": [layer.plan for layer in model.grown_layers],
        "variable_names": [v.path for v in model.variables],
        "trainable": [v.path for v in model.trainable_variables],
    }


def _optimizer_values(model):
    return [np.array(v.numpy(), copy=True)
            for optimizer in (model.optimizer, model.mask_optimizer) if optimizer is not None
            for v in optimizer.variables]


def _fail_after(patch, owner, name, error, when=lambda self: True):
    """Makes `owner.name` do its work, then raise `error` where `when(self)` holds."""
    original = getattr(owner, name)

    def failing(self, *args, **kwargs):
        result = original(self, *args, **kwargs)
        if when(self):
            raise error
        return result

    patch.setattr(owner, name, failing)


def _out_of_memory():
    return tf.errors.ResourceExhaustedError(
        None, None, "OOM when allocating tensor with shape[1000,1000000000]")


def _learn_task_1(model, data):
    """The next correct calls after a failure: learn task 1 to the end."""
    if model.current_task is None:
        model.add_task(data["task1"])
    model.fit(*data["task1"], batch_size=16, epochs=1, verbose=0)
    model.finish_task()


@dataclasses.dataclass
class Failure:
    id: str
    setup: Callable  # (saved, data) -> model
    inject: Callable  # (patch) -> None
    call: Callable  # (model, data) -> the call that fails
    error: type
    then: Callable  # (model, data) -> the next correct calls


FAILURES = [
    Failure("add_task-head-out-of-memory", _finished,
            lambda p: _fail_after(p, TaskHeads, "_create_task_variables", _out_of_memory()),
            lambda m, d: m.add_task(d["task1"]), tf.errors.ResourceExhaustedError,
            _learn_task_1),
    Failure("add_task-a-layers-task-state-half-created", _finished,
            lambda p: _fail_after(p, GrownLayer, "_create_task_variables", MemoryError(),
                                  lambda self: self.name == "conv2"),
            lambda m, d: m.add_task(d["task1"]), MemoryError, _learn_task_1),
    Failure("add_task-interrupted-while-compiling", _finished,
            lambda p: _fail_after(p, Controller, "recompile", KeyboardInterrupt(),
                                  lambda self: self.current_task is not None),
            lambda m, d: m.add_task(d["task1"], grow=True), KeyboardInterrupt, _learn_task_1),
    Failure("grow-fails-moving-the-optimizer-state", _learning,
            lambda p: _fail_after(p, Controller, "move_optimizer_state", _out_of_memory()),
            lambda m, d: m.grow(), tf.errors.ResourceExhaustedError,
            lambda m, d: (m.grow(), _learn_task_1(m, d))),
    Failure("grow-fails-loading-a-plan", _learning,
            lambda p: _fail_after(p, TrainingPlan, "load", MemoryError(),
                                  lambda self: self.layer.name == "fc2"),
            lambda m, d: m.grow(), MemoryError, lambda m, d: (m.grow(), _learn_task_1(m, d))),
    Failure("finish_task-fails-after-the-last-layer-took-ownership", _learning,
            lambda p: _fail_after(p, GrownLayer, "finish_task_state", KeyboardInterrupt(),
                                  lambda self: self.name == "fc2"),
            lambda m, d: m.finish_task(), KeyboardInterrupt, _learn_task_1),
    Failure("finish_task-fails-re-compiling", _learning,
            lambda p: _fail_after(p, Controller, "recompile", _out_of_memory(),
                                  lambda self: self.current_task is None),
            lambda m, d: m.finish_task(), tf.errors.ResourceExhaustedError, _learn_task_1),
    Failure("prune-fails-after-the-last-layer-pruned", _learning,
            lambda p: _fail_after(p, GrownLayer, "prune_free_kernels", MemoryError(),
                                  lambda self: self.name == "fc2"),
            lambda m, d: m.prune(0.5), MemoryError,
            lambda m, d: (m.prune(0.5), _learn_task_1(m, d))),
    Failure("fix_masks-interrupted-after-selecting", _learning,
            lambda p: _fail_after(p, Controller, "select", KeyboardInterrupt(),
                                  lambda self: self.mode.masks_fixed),
            lambda m, d: m.fix_masks(), KeyboardInterrupt,
            lambda m, d: (m.fix_masks(), _learn_task_1(m, d))),
    Failure("fix_masks-fails-loading-the-narrowed-plan", _growing,
            lambda p: _fail_after(p, TrainingPlan, "load", MemoryError(),
                                  lambda self: self.layer.name == "fc2"),
            lambda m, d: m.fix_masks(), MemoryError,
            lambda m, d: (m.fix_masks(), _learn_task_1(m, d))),
    Failure("select_task-fails-on-the-heads", _learning,
            lambda p: _fail_after(p, TaskHeads, "set_task", KeyboardInterrupt(),
                                  lambda self: self.task == 0),
            lambda m, d: m.select_task(0), KeyboardInterrupt,
            lambda m, d: (m.select_task(0), m.select_task(1), _learn_task_1(m, d))),
    Failure("compile-an-unknown-optimizer", _learning, lambda p: None,
            lambda m, d: m.compile(optimizer="no_such_optimizer", loss="mse"), ValueError,
            lambda m, d: (m.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                                    metrics=["accuracy"]), _learn_task_1(m, d))),
    Failure("load_weights-fails-after-the-last-layer-loaded", _learning,
            lambda p: _fail_after(p, GrownLayer, "load_own_variables", MemoryError(),
                                  lambda self: self.name == "fc2"),
            lambda m, d: m.load_weights(d["file"]), ValueError,
            lambda m, d: (m.load_weights(d["file"]), _learn_task_1(m, d))),
]


@pytest.mark.parametrize("failure", FAILURES, ids=[f.id for f in FAILURES])
def test_a_call_that_fails_half_way_changes_nothing_and_the_next_call_works(
        failure, saved, data, monkeypatch):
    model = failure.setup(saved, data)
    if failure.id.startswith("load_weights"):
        # A file of the same model (two tasks), saved from a twin.
        twin = _learning(saved, data)
        data = dict(data, file=saved.parent / f"{failure.id}.weights.h5")
        twin.save_weights(data["file"])
    selected = model.selected_task
    model.select_task(0)
    reference = model.predict(data["test0"], verbose=0)
    model.select_task(selected)
    before, optimizer_before, state = weights_checksum(model), _optimizer_values(model), _state(model)

    with monkeypatch.context() as patch:
        failure.inject(patch)
        with pytest.raises(failure.error):
            failure.call(model, data)

    assert_weights_unchanged(model, before)
    assert _state(model) == state
    optimizer_after = _optimizer_values(model)
    assert len(optimizer_after) == len(optimizer_before)
    for old, new in zip(optimizer_before, optimizer_after):
        np.testing.assert_array_equal(old, new)
    failure.then(model, data)  # the next correct call works
    assert model.num_tasks == 2 and model.finished_tasks == [0, 1]
    model.select_task(0)
    np.testing.assert_array_equal(model.predict(data["test0"], verbose=0), reference)


def test_the_head_of_a_failed_add_task_is_gone(saved, data, monkeypatch):
    # The report: after a failed add_task() the layers held 2 task
    # states, model.weights 12 more variables, and the next add_task() failed
    # again for the head of the failed call.
    model = _finished(saved, data)
    weights = len(model.weights)
    with monkeypatch.context() as patch:
        _fail_after(patch, TaskHeads, "_create_task_variables", _out_of_memory())
        with pytest.raises(tf.errors.ResourceExhaustedError) as raised:
            model.add_task(data["task1"], num_classes=7)
    assert "put back to its state before the call" in "\n".join(raised.value.__notes__)
    assert len(model.weights) == weights
    assert [layer.num_task_states for layer in model.controller.task_layers] == [1] * 5
    assert model.heads.num_classes == [2]
    assert model.add_task(data["task1"]) == 1
    assert model.heads.num_classes == [2, 2]
    assert model.heads._task_variables[1]["kernel"].shape == (model.heads.features, 2)


def test_learn_puts_the_model_back_when_a_task_fails(saved, data, monkeypatch):
    model = _finished(saved, data)
    model.select_task(0)
    reference = model.predict(data["test0"], verbose=0)
    before, state = weights_checksum(model), _state(model)
    images, labels = data["task1"]
    stream = kg.datasets.from_arrays([dict(x_train=images, y_train=labels, x_val=images[:8],
                                           y_val=labels[:8], x_test=images, y_test=labels)])
    with monkeypatch.context() as patch:
        # Fails after the task finished, was measured, and its last step ran.
        _fail_after(patch, GrownModel, "finish_task", KeyboardInterrupt())
        with pytest.raises(KeyboardInterrupt):
            kg.learn(model, stream, epochs=1, batch_size=16)
    assert_weights_unchanged(model, before)
    assert _state(model) == state
    result = kg.learn(model, stream, epochs=1, batch_size=16)  # the next call works
    assert result.model is model and model.finished_tasks == [0, 1]
    model.select_task(0)
    np.testing.assert_array_equal(model.predict(data["test0"], verbose=0), reference)
