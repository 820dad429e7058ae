"""Growth inside one fit(): GrowWhenNecessary decides, fit() re-traces in place."""

import keras
import numpy as np
import pytest

import keras_grown as kg
from keras_grown.learning import prepare
from conftest import assert_weights_unchanged, count_traces, task_arrays, weights_checksum


def _model(**kwargs):
    kwargs.setdefault("seed", 0)
    return kg.GrownModel(backbone="lenet5", input_shape=(28, 28, 1), **kwargs)


def _fit(model, task, epochs, index=0, **kwargs):
    return model.fit(prepare(task.train, 64, True, index), validation_data=prepare(task.val, 64),
                     epochs=epochs, verbose=0, **kwargs)


def _grown_channels(summary):
    return summary.channels_grown


def _first_task(model, stream):
    keras.utils.set_random_seed(0)
    model.add_task(stream[0].train)
    _fit(model, stream[0], 2)
    return model.finish_task()


@pytest.fixture(scope="module")
def first_task_file(fashion_stream, tmp_path_factory):
    """A model that learned and finished task 0 (`_first_task`), saved.

    The tests of what a later task does load it and set their own schedule:
    task 0 is learned once for the module, not once per test.
    """
    model = _model()
    _first_task(model, fashion_stream)
    path = tmp_path_factory.mktemp("schedule") / "first_task.keras"
    model.save(path)
    return path


def _after_first_task(path, **growth_schedule):
    """The model of `first_task_file` (task 0 finished), with `growth_schedule=` if given."""
    model = keras.saving.load_model(path)
    if "growth_schedule" in growth_schedule:
        model.growth_schedule = growth_schedule["growth_schedule"]
    keras.utils.set_random_seed(0)
    return model


def test_a_task_that_needs_growth_grows_inside_one_fit(first_task_file, fashion_stream):
    model = _after_first_task(first_task_file, growth_schedule=kg.callbacks.GrowWhenNecessary(
        reuse_epochs=1, fit_accuracy=1.0))
    keras.utils.set_random_seed(1)
    model.add_task(fashion_stream[1].train)
    assert not model.growth_enabled
    traced = count_traces(model)
    history = _fit(model, fashion_stream[1], 4, 1)
    phases = [p["phase"] for p in model.growth_schedule.phases]
    # The step is traced once per phase: in place, inside the one fit().
    assert len(traced) == len(phases)
    # Reuse for its epoch budget, then grow (the task cannot fit its data to
    # 100 %), then the fixed-mask epoch: four epochs, one fit().
    assert phases[:2] == ["reuse", "grow"] and phases[-1] == "fixed"
    assert len(history.history["loss"]) == 4
    assert model.masks_fixed and model.growth_enabled and not model.manual_control
    summary = model.finish_task()
    assert _grown_channels(summary) > 0


def test_a_two_epoch_fit_decides_growth_inside_its_first_epoch(first_task_file, fashion_stream):
    # Two epochs: pick and reuse for a third of the first, grow for the rest
    # of it, then the fixed-mask epoch. The step is traced once per phase.
    schedule = kg.callbacks.GrowWhenNecessary(fit_accuracy=1.0)
    model = _after_first_task(first_task_file, growth_schedule=schedule)
    old = model.predict(prepare(fashion_stream[0].test, 64), verbose=0)
    keras.utils.set_random_seed(1)
    model.add_task(fashion_stream[1].train)
    traced = count_traces(model)
    history = _fit(model, fashion_stream[1], 2, 1)
    assert [(p["phase"], p["start_epoch"]) for p in schedule.phases] == [
        ("reuse", 0), ("grow", 0), ("fixed", 1)]
    assert len(traced) == 3 and len(history.history["loss"]) == 2
    # The reuse phase was judged on its own steps' training accuracy.
    assert 0.0 < schedule.phases[0]["train_accuracy"] < 1.0
    assert _grown_channels(model.finish_task()) > 0
    model.select_task(0)
    np.testing.assert_array_equal(
        model.predict(prepare(fashion_stream[0].test, 64), verbose=0), old)


def test_a_fit_of_unknown_length_rounds_the_reuse_phase_to_whole_epochs(first_task_file,
                                                                   fashion_stream):
    schedule = kg.callbacks.GrowWhenNecessary(fit_accuracy=1.0)
    model = _after_first_task(first_task_file, growth_schedule=schedule)
    model.add_task(fashion_stream[1].train)
    unknown = prepare(fashion_stream[1].train, 64, True, 1).filter(lambda x, y: True)
    model.fit(unknown, epochs=2, verbose=0)
    # No step count to cut the first epoch at: reuse takes it, fixed masks the second.
    assert [p["phase"] for p in schedule.phases] == ["reuse", "fixed"]


def test_a_two_epoch_fit_with_a_target_decides_inside_its_first_epoch(first_task_file,
                                                                      fashion_stream):
    # With a target the reuse phase of a 2-epoch fit also ends a third into the
    # first epoch, judged on its training accuracy against the target (no
    # validation runs inside an epoch). Before, the budget was rounded up to
    # the one learning epoch, and no task after the first could grow.
    for target, phases in ((1.0, [("reuse", 0), ("grow", 0), ("fixed", 1)]),
                           (0.01, [("reuse", 0), ("fixed", 0)])):
        schedule = kg.callbacks.GrowWhenNecessary(target=target)
        model = _after_first_task(first_task_file, growth_schedule=schedule)
        model.add_task(fashion_stream[1].train)
        with pytest.warns(UserWarning, match=r"this fit\(\) trains \d+ steps .* Train more epochs"):
            _fit(model, fashion_stream[1], 2, 1)
        assert [(p["phase"], p["start_epoch"]) for p in schedule.phases] == phases
        assert 0.0 < schedule.phases[0]["train_accuracy"] < 1.0
        assert (_grown_channels(model.finish_task()) > 0) == (target == 1.0)


def test_the_short_fit_warning_comes_once_and_only_under_the_threshold(
        first_task_file, fashion_stream, monkeypatch):
    import warnings

    from keras_grown import schedule as schedule_module

    schedule = kg.callbacks.GrowWhenNecessary()
    model = _after_first_task(first_task_file, growth_schedule=schedule)

    def fit_task(index):
        train = prepare(fashion_stream[index].train, 64, True, index)
        model.add_task(fashion_stream[index].train)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model.fit(train, epochs=1, verbose=0)
        model.finish_task()
        return int(train.cardinality()), [
            str(w.message) for w in caught if "GrowWhenNecessary: this fit()" in str(w.message)]

    steps = int(prepare(fashion_stream[1].train, 64).cardinality())
    monkeypatch.setattr(schedule_module, "SHORT_FIT_STEPS", steps)  # exactly these fits' steps
    assert fit_task(1) == (steps, [])
    monkeypatch.setattr(schedule_module, "SHORT_FIT_STEPS", steps + 1)
    _, said = fit_task(2)
    assert len(said) == 1 and f"trains {steps} steps ({steps} per epoch x 1 epochs)" in said[0]
    assert fit_task(3) == (steps, [])  # the same schedule says it once


def test_a_task_that_fits_its_data_is_not_grown(first_task_file, fashion_stream):
    # fit_accuracy=0.05: every phase already fits; target=0.01: already reached.
    for schedule in (kg.callbacks.GrowWhenNecessary(reuse_epochs=1, fit_accuracy=0.05),
                     kg.callbacks.GrowWhenNecessary(reuse_epochs=1, target=0.01)):
        model = _after_first_task(first_task_file, growth_schedule=schedule)
        model.add_task(fashion_stream[1].train)
        _fit(model, fashion_stream[1], 4, 1)
        assert "grow" not in [p["phase"] for p in schedule.phases]
        assert not model.growth_enabled and model.masks_fixed
        assert _grown_channels(model.finish_task()) == 0


def test_the_fixed_mask_phase_ends_when_it_stops_improving(first_task_file, fashion_stream):
    schedule = kg.callbacks.GrowWhenNecessary(reuse_epochs=1, target=0.01, patience=1)
    model = _after_first_task(first_task_file, growth_schedule=schedule)
    model.add_task(fashion_stream[1].train)
    history = _fit(model, fashion_stream[1], 12, 1)
    fixed = schedule.phases[-1]
    assert fixed["phase"] == "fixed" and fixed["start_epoch"] == 1
    # patience=1: the fit stops after the first fixed epoch that did not improve.
    epochs = len(history.history["loss"])
    assert epochs < 12
    val = history.history["val_accuracy"][1:]
    assert epochs == 1 + next(i for i in range(1, len(val)) if val[i] <= max(val[:i])) + 1


def test_growth_inside_fit_keeps_earlier_tasks_bitwise(first_task_file, fashion_stream):
    model = _after_first_task(first_task_file, growth_schedule=kg.callbacks.GrowWhenNecessary(
        reuse_epochs=1, fit_accuracy=1.0))
    # Task 1 learns with AdamW (add_task() keeps the compiled settings).
    model.compile(optimizer=keras.optimizers.AdamW(1e-3, weight_decay=0.05),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    images, _ = task_arrays(fashion_stream[0].test)
    before = model.predict(images, verbose=0)
    model.add_task(fashion_stream[1].train)
    _fit(model, fashion_stream[1], 4, 1)
    assert "grow" in [p["phase"] for p in model.growth_schedule.phases]
    model.finish_task()
    model.select_task(0)
    np.testing.assert_array_equal(model.predict(images, verbose=0), before)


def test_hand_calls_put_the_task_under_manual_control(first_task_file, fashion_stream):
    model = _after_first_task(first_task_file)
    model.add_task(fashion_stream[1].train)
    model.grow()
    assert model.manual_control
    _fit(model, fashion_stream[1], 3, 1)
    # The schedule did nothing: growth still on, masks still learned.
    assert model.growth_schedule.phases == []
    assert model.growth_enabled and not model.masks_fixed
    model.finish_task()
    model.add_task(fashion_stream[2].train)
    assert not model.manual_control  # a new task is the schedule's again


def test_no_schedule_trains_in_the_state_set(first_task_file, fashion_stream):
    model = _after_first_task(first_task_file, growth_schedule=None)
    model.add_task(fashion_stream[1].train)
    _fit(model, fashion_stream[1], 3, 1)
    assert not model.masks_fixed and not model.growth_enabled


def test_learn_and_the_design_card_loop_give_the_same_numbers(fashion_stream):
    stream = fashion_stream[:2]
    keras.utils.set_random_seed(5)  # the same initial weights for both
    result = kg.learn(_model(), stream, epochs=3, seed=5)
    keras.utils.set_random_seed(5)
    model = _model()
    accuracy = []
    for index, task in enumerate(stream):
        keras.utils.set_random_seed(5 + index)
        model.add_task(task.train, num_classes=task.num_classes)
        model.fit(prepare(task.train, 64, shuffle=True, seed=5 + index),
                  validation_data=prepare(task.val, 256), epochs=3, verbose=0)
        model.finish_task()
    for index, task in enumerate(stream):
        model.select_task(index)
        accuracy.append(model.evaluate(prepare(task.test, 256), verbose=0,
                                       return_dict=True)["accuracy"])
    assert accuracy == [result.accuracy.values[1, j] for j in range(2)]
    assert model.model_size().ratio == result.model_size[-1]
    for mine, theirs in zip(model.variables, result.model.variables):
        np.testing.assert_array_equal(mine.numpy(), theirs.numpy())


class _FailAt(keras.callbacks.Callback):
    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            raise RuntimeError("stop here")


def test_a_fit_that_fails_after_growing_puts_everything_back(first_task_file, fashion_stream):
    schedule = kg.callbacks.GrowWhenNecessary(reuse_epochs=1, fit_accuracy=1.0)
    model = _after_first_task(first_task_file, growth_schedule=schedule)
    model.add_task(fashion_stream[1].train)
    _fit(model, fashion_stream[1], 1, 1)  # one epoch: no decision, plans trained
    before = weights_checksum(model)
    optimizer = model.optimizer
    with pytest.raises(RuntimeError, match="stop here"):
        # The schedule (last) grows at the end of epoch 0; the failure is at epoch 1.
        _fit(model, fashion_stream[1], 4, 1, callbacks=[_FailAt(1), schedule])
    assert [p["phase"] for p in schedule.phases][:2] == ["reuse", "grow"]
    assert not model.growth_enabled and not model.masks_fixed
    assert model.optimizer is optimizer
    assert_weights_unchanged(model, before)
    # And the next fit works from there.
    _fit(model, fashion_stream[1], 2, 1)
    model.finish_task()


def test_a_model_saved_mid_task_keeps_its_phase(first_task_file, fashion_stream, tmp_path):
    # Task 0 finished (the module's `first_task_file`, not learned again here),
    # then this schedule's own settings for task 1.
    schedule = kg.callbacks.GrowWhenNecessary(target=0.9, patience=2, fit_accuracy=0.9)
    model = _after_first_task(first_task_file, growth_schedule=schedule)
    assert model.growth_schedule is schedule and model.finished_tasks == [0]
    model.add_task(fashion_stream[1].train)
    model.fix_masks()
    path = tmp_path / "mid_task.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert loaded.masks_fixed and loaded.manual_control
    assert loaded.growth_schedule.get_config() == schedule.get_config()
    assert kg.GrownModel.from_config(_model(growth_schedule=None).get_config()).growth_schedule \
        is None


@pytest.mark.parametrize("kwargs, message", [
    (dict(target=1.5), "target"),
    (dict(target="scratch"), "scratch_reference"),
    (dict(patience=0), "patience"),
    (dict(min_delta=-1), "min_delta"),
    (dict(fit_accuracy=0), "fit_accuracy"),
    (dict(max_growth_rounds=-1), "max_growth_rounds"),
])
def test_bad_schedule_settings_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        kg.callbacks.GrowWhenNecessary(**kwargs)


def test_a_bad_growth_schedule_is_refused():
    with pytest.raises(ValueError, match="growth_schedule takes 'auto'"):
        _model(growth_schedule="sometimes")


def test_the_plan_of_a_fit():
    schedule = kg.callbacks.GrowWhenNecessary()
    # (pick-and-reuse budget, first fixed-mask epoch)
    assert schedule.epochs_of(1) == (1, 1)
    # A third of the learning epochs, a fraction of an epoch where it is not whole.
    assert schedule.epochs_of(2) == (pytest.approx(1 / 3), 1)
    assert schedule.epochs_of(3) == (pytest.approx(2 / 3), 2)
    assert schedule.epochs_of(5) == (1, 3)
    assert schedule.epochs_of(10) == (2, 6)
    assert kg.callbacks.GrowWhenNecessary(fixed_mask_epochs=0).epochs_of(5) == (
        pytest.approx(5 / 3), 5)
    assert kg.callbacks.GrowWhenNecessary(reuse_epochs=1).epochs_of(2) == (1, 1)
