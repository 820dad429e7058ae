"""The model's mode as one immutable value, and the traced steps keyed by it."""

import dataclasses

import pytest

import keras_grown as kg
from keras_grown.mode import LayerMode, Mode
from conftest import count_traces

BATCH = 64  # 256 training images per task: whole batches only, one input signature


def _model():
    return kg.GrownModel("lenet5", seed=3, growth_schedule=None)


def _fit(model, task, epochs=1):
    model.fit(task.train.batch(BATCH), epochs=epochs, verbose=0)


def test_the_mode_follows_a_task_from_add_task_to_finish_task(fashion_stream):
    model = _model()
    assert model.mode == Mode()
    model.add_task(fashion_stream[0].train)
    assert model.mode == Mode(task=0, growth=True)  # the first task grows from the start
    for layer in model.grown_layers:
        assert (layer.mode.task, layer.mode.finished, layer.mode.growth) == (0, False, True)
        assert layer.mode.learning and not layer.mode.masks_fixed
    model.fix_masks()
    assert model.mode == Mode(task=0, growth=True, masks_fixed=True, manual=True)
    assert all(layer.mode.masks_fixed for layer in model.grown_layers)
    model.finish_task()
    assert model.mode == Mode(task=0, finished=True)
    assert all(layer.mode.finished and not layer.mode.learning for layer in model.grown_layers)
    assert all(layer.mode.task == 0 and layer.mode.finished for layer in model.controller.task_layers)

    model.add_task(fashion_stream[1].train)
    assert model.mode == Mode(task=1)  # later tasks start without growth
    model.grow()
    assert model.mode == Mode(task=1, growth=True, manual=True)
    # Selecting a finished task computes it; the learning task's phase is kept for later.
    model.select_task(0)
    assert model.mode == Mode(task=0, finished=True, growth=True, manual=True)
    assert not any(layer.mode.growth for layer in model.grown_layers)
    model.select_task(1)
    assert model.mode == Mode(task=1, growth=True, manual=True)
    assert all(layer.mode.growth and layer.mode.candidates for layer in model.grown_layers)


def test_a_mode_is_replaced_never_edited():
    mode = Mode(task=2, growth=True)
    with pytest.raises(dataclasses.FrozenInstanceError):
        mode.growth = False
    assert mode.replace(growth=False) == Mode(task=2) and mode.growth
    layer_mode = LayerMode().replace(candidates=[False, True, True, False])
    assert layer_mode.candidates == (1, 2)
    assert layer_mode.candidate_mask(5).tolist() == [False, True, True, False, False]
    assert LayerMode().candidate_mask(3) is None
    assert hash(layer_mode) == hash(LayerMode(candidates=(1, 2)))
    with pytest.raises(dataclasses.FrozenInstanceError):
        layer_mode.task = 0


def test_a_mode_survives_save_and_load(fashion_stream, tmp_path):
    model = _model()
    model.add_task(fashion_stream[0].train)
    _fit(model, fashion_stream[0])
    model.fix_masks()
    path = tmp_path / "model.keras"
    model.save(path)
    import keras

    loaded = keras.saving.load_model(path)
    assert loaded.mode == model.mode
    assert [layer.mode for layer in loaded.grown_layers] == [
        layer.mode for layer in model.grown_layers]


def test_the_train_step_is_traced_again_exactly_when_the_mode_changes(fashion_stream):
    model = _model()
    model.add_task(fashion_stream[0].train)
    traces = count_traces(model)
    _fit(model, fashion_stream[0])
    assert len(traces) == 1
    key = model.trace_key()
    _fit(model, fashion_stream[0])
    assert len(traces) == 1  # the same mode: the same step
    model.fix_masks()
    assert model.trace_key() != key
    _fit(model, fashion_stream[0])
    assert len(traces) == 2  # masks fixed: a new step
    model.finish_task()

    model.add_task(fashion_stream[1].train)
    traces = count_traces(model)
    _fit(model, fashion_stream[1])
    assert len(traces) == 1
    key = model.trace_key()
    function = model.train_function
    # Evaluating a finished task and coming back changes nothing the step reads.
    model.select_task(0)
    assert model.trace_key() != key
    model.evaluate(fashion_stream[0].test.batch(BATCH), verbose=0)
    model.select_task(1)
    assert model.trace_key() == key
    _fit(model, fashion_stream[1])
    assert len(traces) == 1 and model.train_function is function
    model.grow()
    _fit(model, fashion_stream[1])
    assert len(traces) == 2  # a growth round computes other channels
