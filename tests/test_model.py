"""GrownModel: the API of issue 4 and the properties that must hold."""

import numpy as np
import pytest
import keras
import tensorflow as tf

import keras_grown as kg
from conftest import assert_weights_unchanged, count_traces, task_arrays, weights_checksum

BATCH = 64


def _train(task):
    return task.train.batch(BATCH)


def test_example_runs_as_written(fashion_stream):
    model = kg.GrownModel(backbone="lenet5", input_shape=(28, 28, 1),
                          seed_ratio=0.5, capacity=2.0, l0_lambda=1e-3, seed=0)
    for task in list(fashion_stream)[:2]:
        model.add_task(task.train)
        model.fit(task.train.batch(64), validation_data=task.val.batch(256), epochs=1, verbose=0)
        if model.evaluate(task.val.batch(256), return_dict=True, verbose=0)["accuracy"] < 0.95:
            model.grow()
            model.fit(task.train.batch(64), epochs=1, verbose=0)
        summary = model.finish_task()
        assert summary.size.ratio == model.model_size().ratio
    model.select_task(0)
    assert model.num_tasks == 2
    size = model.model_size()
    assert 0 < size.ratio <= 2.0 ** 2  # at most the whole capacity pool
    assert size.owned_weights == sum(size.owned_by_task)
    assert size.full_size_weights == 1 * 20 * 25 + 20 * 50 * 25 + 800 * 800 + 800 * 500


def test_growth_metrics_are_reported(fashion_stream):
    model = kg.GrownModel("lenet5", seed=0)
    task = fashion_stream[0]
    model.add_task(task.train)
    history = model.fit(_train(task), epochs=1, verbose=0)
    assert {"loss", "accuracy", "l0", "growth_ratio"} <= set(history.history)
    assert history.history["l0"][0] > 0
    # seed 0.5 of every layer is on before anything grows
    assert history.history["growth_ratio"][0] >= 0.5


OPTIMIZERS = {
    "adam": lambda: keras.optimizers.Adam(1e-3),
    "adamw": lambda: keras.optimizers.AdamW(1e-3, weight_decay=0.01),
    "sgd_momentum": lambda: keras.optimizers.SGD(0.05, momentum=0.9),
}


# Tasks of the stream each optimizer learns: Adam all five (two growth rounds);
# AdamW and SGD with momentum the first three, the same tasks and steps as
# before (task 1 grows, task 2 learns after the growth round; every earlier task
# is checked after each later one, and after save/load). Each task costs a
# traced fit and a compact model per earlier task: 3 tasks, 4 fits and 9
# predictions against 5 tasks' 7 and 20.
ZERO_FORGETTING_TASKS = {"adam": 5, "adamw": 3, "sgd_momentum": 3}


# Adam, AdamW (decoupled weight decay) and SGD with momentum (slots that keep
# moving): the package's first promise, in the fast suite.
@pytest.mark.parametrize("optimizer", ["adam", "adamw", "sgd_momentum"])
def test_zero_forgetting_is_bitwise(fashion_stream, optimizer, tmp_path):
    keras.utils.set_random_seed(1)
    model = kg.GrownModel("lenet5", seed_ratio=0.5, capacity=2.0, l0_lambda=1e-3, seed=1)
    model.compile(optimizer=OPTIMIZERS[optimizer](), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    stream = list(fashion_stream)[:ZERO_FORGETTING_TASKS[optimizer]]
    tests = [task_arrays(t.test)[0] for t in stream]
    reference = {}
    for index, task in enumerate(stream):
        model.add_task(task.train)
        untrained = [np.array(v.numpy(), copy=True) for v in model.trainable_variables]
        model.fit(_train(task).take(3), epochs=1, verbose=0)
        # Each task's steps move its weights (what the bitwise checks guard).
        assert any(not np.array_equal(old, v.numpy())
                   for old, v in zip(untrained, model.trainable_variables))
        if index % 2 == 1:
            model.grow()
            model.fit(_train(task).take(3), epochs=1, verbose=0)
        model.finish_task()
        reference[index] = model.predict(tests[index], verbose=0)
        for earlier in range(index):
            model.select_task(earlier)
            np.testing.assert_array_equal(model.predict(tests[earlier], verbose=0), reference[earlier])
    path = tmp_path / "grown.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert loaded.num_tasks == len(stream)
    for index in range(len(stream)):
        loaded.select_task(index)
        np.testing.assert_array_equal(loaded.predict(tests[index], verbose=0), reference[index])


def test_loaded_model_keeps_learning_without_forgetting(fashion_stream, tmp_path):
    model = kg.GrownModel("lenet5", seed=2)
    tests = [task_arrays(t.test)[0] for t in fashion_stream]
    first = fashion_stream[0]
    model.add_task(first.train)
    model.fit(_train(first).take(3), epochs=1, verbose=0)
    model.finish_task()
    before = model.predict(tests[0], verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert loaded.num_tasks == 1 and loaded.current_task is None
    assert loaded.model_size() == model.model_size()
    second = fashion_stream[1]
    loaded.add_task(second.train)
    loaded.grow()
    loaded.fit(_train(second).take(3), epochs=1, verbose=0)
    loaded.finish_task()
    loaded.select_task(0)
    np.testing.assert_array_equal(loaded.predict(tests[0], verbose=0), before)
    assert loaded.model_size().ratio >= model.model_size().ratio


def test_save_in_the_middle_of_a_task_restores_its_state(fashion_stream, tmp_path):
    model = kg.GrownModel("lenet5", seed=3)
    task = fashion_stream[0]
    model.add_task(task.train)
    model.fit(_train(task).take(2), epochs=1, verbose=0)
    images = task_arrays(task.test)[0]
    before = model.predict(images, verbose=0)
    model.save(tmp_path / "mid.keras")
    loaded = keras.models.load_model(tmp_path / "mid.keras")
    assert loaded.current_task == 0 and loaded.growth_enabled
    np.testing.assert_array_equal(loaded.predict(images, verbose=0), before)
    loaded.fit(_train(task).take(2), epochs=1, verbose=0)
    assert loaded.finish_task().task == 0


def test_larger_lambda_grows_fewer_channels(fashion_stream):
    grown = {}
    task = fashion_stream[0]
    for l0_lambda in (0.0, 5.0, 500.0):
        keras.utils.set_random_seed(0)
        model = kg.GrownModel("lenet5", seed_ratio=0.5, capacity=2.0, l0_lambda=l0_lambda, seed=0)
        model.add_task(task.train)
        model.fit(_train(task).repeat(3), epochs=1, verbose=0)
        grown[l0_lambda] = model.finish_task().channels_grown
    assert grown[0.0] > grown[5.0] > grown[500.0], grown


@pytest.mark.slow  # XLA stays in the fast suite: test_xla_distribute.py
def test_fit_with_xla(fashion_stream):
    model = kg.GrownModel("lenet5", seed=4)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"], jit_compile=True)
    task = fashion_stream[0]
    model.add_task(task.train)
    assert model.jit_compile
    history = model.fit(_train(task).take(3), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    model.grow()
    model.fit(_train(task).take(2), epochs=1, verbose=0)
    model.finish_task()


def test_add_task_recompiles_with_the_same_settings_and_a_fresh_optimizer(fashion_stream):
    model = kg.GrownModel("lenet5", seed=5)
    optimizer = keras.optimizers.SGD(0.01, momentum=0.9)
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    task = fashion_stream[0]
    model.add_task(task.train)
    first = model.optimizer
    assert isinstance(first, keras.optimizers.SGD) and first is not optimizer
    model.fit(_train(task).take(2), epochs=1, verbose=0)
    assert int(first.iterations.numpy()) == 2
    model.finish_task()
    model.add_task(fashion_stream[1].train)
    assert model.optimizer is not first
    assert isinstance(model.optimizer, keras.optimizers.SGD)
    assert model.optimizer.get_config()["momentum"] == 0.9
    assert int(model.optimizer.iterations.numpy()) == 0


def _slots(optimizer):
    """The optimizer's per-variable state (Keras keeps its counters as scalars)."""
    return [v for v in optimizer.variables if len(v.shape) > 0]


def test_optimizers_hold_no_full_capacity_slots_between_tasks(fashion_stream):
    # Before a task (and after one) nothing trains: slots there would be
    # copies of the full-capacity storage (about 95 MiB on LeNet-5) for nothing.
    model = kg.GrownModel("lenet5", seed=5)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    assert _slots(model.optimizer) == [] and _slots(model.mask_optimizer) == []
    task = fashion_stream[0]
    model.add_task(task.train)
    # While a task trains: one slot pair per trainable variable of the task
    # (the plans' working variables, heads, ...), none for the storage.
    storage = {id(v) for layer in model.grown_layers for v in (
        layer.free_kernel, layer.selective_score, layer.attentive_score, layer.grown_score)}
    trained = [v for v in model.trainable_variables if id(v) not in storage]
    assert len(trained) == len(model.trainable_variables)
    assert len(_slots(model.optimizer)) + len(_slots(model.mask_optimizer)) == 2 * len(trained)
    model.fit(_train(task).take(1), epochs=1, verbose=0)
    model.finish_task()
    assert _slots(model.optimizer) == [] and _slots(model.mask_optimizer) == []


def test_the_first_fit_of_a_new_model_traces_its_step_once(fashion_stream):
    # The compiled metrics are built eagerly when a task starts: a first
    # trace that created them made TensorFlow trace every new model's step twice
    # (each Scratch reference, each network of Scratch).
    # No growth schedule: its phase change re-traces the step on purpose
    # (tests/test_schedule.py counts those traces).
    model = kg.GrownModel("lenet5", seed=5, growth_schedule=None)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    task = fashion_stream[0]
    model.add_task(task.train)
    traced = count_traces(model)
    history = model.fit(_train(task).take(2), epochs=2, verbose=0)
    assert len(traced) == 1
    assert 0.0 <= history.history["accuracy"][-1] <= 1.0  # "accuracy" resolved and updated
    result = model.evaluate(task.val.batch(64), return_dict=True, verbose=0)
    assert set(result) >= {"loss", "accuracy"}


def test_uncompiled_model_gets_adam_and_accuracy(fashion_stream):
    model = kg.GrownModel("lenet5", seed=6)
    model.add_task(fashion_stream[0].train)
    assert isinstance(model.optimizer, keras.optimizers.Adam)
    result = model.evaluate(fashion_stream[0].val.batch(64), return_dict=True, verbose=0)
    assert "accuracy" in result


def test_num_classes_is_inferred_and_can_be_given(fashion_stream):
    model = kg.GrownModel("lenet5", seed=7)
    model.add_task(fashion_stream[0].train)
    assert model.predict(task_arrays(fashion_stream[0].test)[0][:4], verbose=0).shape == (4, 2)
    model.finish_task()
    model.add_task(fashion_stream[1].train, num_classes=5)
    assert model.predict(task_arrays(fashion_stream[1].test)[0][:4], verbose=0).shape == (4, 5)


def test_add_task_accepts_arrays():
    model = kg.GrownModel("lenet5", seed=8)
    images = np.random.default_rng(0).random((8, 28, 28, 1)).astype("float32")
    labels = np.array([0, 1, 2, 0, 1, 2, 0, 1], "int32")
    assert model.add_task((images, labels)) == 0
    assert model.heads.num_classes == [3]


# -- clear errors, model unchanged -------------------------------------------

def _started_model(fashion_stream):
    model = kg.GrownModel("lenet5", seed=9)
    model.add_task(fashion_stream[0].train)
    model.fit(_train(fashion_stream[0]).take(1), epochs=1, verbose=0)
    return model


# Built once for the module: only calls that are refused (and must change
# nothing, as each test checks) are made on them.
@pytest.fixture(scope="module")
def started_model(fashion_stream):
    """Task 0 added and trained one step."""
    return _started_model(fashion_stream)


@pytest.fixture(scope="module")
def finished_model(fashion_stream):
    """Task 0 trained one step and finished."""
    model = _started_model(fashion_stream)
    model.finish_task()
    return model


def test_fit_before_add_task_is_refused(fashion_stream):
    model = kg.GrownModel("lenet5", seed=9)
    before = weights_checksum(model)
    with pytest.raises(ValueError, match="add_task"):
        model.fit(_train(fashion_stream[0]), epochs=1, verbose=0)
    assert_weights_unchanged(model, before)


def test_add_task_twice_is_refused(started_model, fashion_stream):
    model = started_model
    before = weights_checksum(model)
    with pytest.raises(ValueError, match=r"Task 0 is not finished.*finish_task\(\)"):
        model.add_task(fashion_stream[1].train)
    assert_weights_unchanged(model, before)
    assert model.num_tasks == 1


def test_select_task_out_of_range_is_refused(started_model):
    model = started_model
    before = weights_checksum(model)
    with pytest.raises(ValueError, match=r"select_task\(3\) is out of range.*1 task"):
        model.select_task(3)
    with pytest.raises(ValueError, match="out of range"):
        model.select_task(-1)
    assert model.selected_task == 0
    assert_weights_unchanged(model, before)


def test_images_of_the_wrong_shape_are_refused(finished_model):
    model = finished_model
    before = weights_checksum(model)
    wrong = tf.data.Dataset.from_tensor_slices(
        (np.zeros((4, 32, 32, 3), "float32"), np.zeros((4,), "int32")))
    with pytest.raises(ValueError, match=r"images of shape \(28, 28, 1\).*\(32, 32, 3\)"):
        model.add_task(wrong)
    assert_weights_unchanged(model, before)
    assert model.num_tasks == 1


def test_labels_beyond_num_classes_are_refused(fashion_stream):
    model = kg.GrownModel("lenet5", seed=9)
    before = weights_checksum(model)
    with pytest.raises(ValueError, match=r"Labels must be in 0..1 for num_classes=2.*label 4"):
        model.add_task(fashion_stream[2].train.map(lambda x, y: (x, y + 3)), num_classes=2)
    assert_weights_unchanged(model, before)
    assert model.num_tasks == 0


def test_negative_and_float_labels_and_unpaired_data_are_refused():
    model = kg.GrownModel("lenet5", seed=9)
    images = np.zeros((4, 28, 28, 1), "float32")
    with pytest.raises(ValueError, match="label -1"):
        model.add_task((images, np.array([0, 1, -1, 0])))
    with pytest.raises(ValueError, match="integer class indices"):
        model.add_task((images, np.array([0.0, 1.0, 1.0, 0.0], "float32")))
    with pytest.raises(ValueError, match=r"\(image, label\) pairs.*Map it to \(x, y\)"):
        model.add_task(tf.data.Dataset.from_tensor_slices(images))
    with pytest.raises(ValueError, match="empty dataset"):
        model.add_task((images[:0], np.zeros((0,), "int32")))
    assert model.num_tasks == 0


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"capacity": 0.5}, r"capacity .* must be >= 1. Received: capacity=0.5"),
        ({"seed_ratio": 0.0}, r"seed_ratio .* \(0, 1\]. Received: seed_ratio=0.0"),
        ({"seed_ratio": 1.5}, r"seed_ratio .* \(0, 1\]. Received: seed_ratio=1.5"),
        ({"l0_lambda": -1.0}, r"l0_lambda must be >= 0"),
        ({"temperature": 0.0}, r"temperature must be positive"),
        ({"gumbel": "gauss"}, r"gumbel='gauss'"),
        ({"backbone": "alexnet"}, r"Unknown backbone 'alexnet'"),
    ],
)
def test_bad_constructor_values_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        kg.GrownModel(**kwargs)


def test_finish_and_grow_without_a_task_are_refused(fashion_stream):
    model = kg.GrownModel("lenet5", seed=9)
    with pytest.raises(ValueError, match="add_task"):
        model.finish_task()
    with pytest.raises(ValueError, match="add_task"):
        model.grow()


def test_grow_with_the_capacity_spent_is_refused(fashion_stream):
    model = kg.GrownModel("lenet5", seed_ratio=1.0, capacity=1.0, seed=9)
    model.add_task(fashion_stream[0].train)
    before = weights_checksum(model)
    with pytest.raises(ValueError, match="capacity is spent"):
        model.grow()
    assert not model.growth_enabled
    assert_weights_unchanged(model, before)


def test_fit_on_a_finished_task_is_refused(finished_model, fashion_stream):
    model = finished_model
    with pytest.raises(ValueError, match="finished"):
        model.fit(_train(fashion_stream[0]), epochs=1, verbose=0)


def test_a_finished_task_is_evaluated_without_tracing_again(fashion_stream):
    # learn() evaluates every finished task after each new one: their traced
    # evaluation steps are kept across add_task()/finish_task() (which compile
    # again) and give the same numbers; a user's compile() starts afresh.
    model = kg.GrownModel("lenet5", seed=0)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    first, second = fashion_stream[0], fashion_stream[1]
    model.add_task(first.train)
    model.fit(_train(first), epochs=1, verbose=0)
    model.finish_task()
    test = first.test.batch(256)
    before = model.evaluate(test, verbose=0, return_dict=True)
    traced = model.test_function
    x, y = task_arrays(first.test)
    probabilities = model.predict(x, verbose=0)
    # A finished task's loss is its own cross-entropy, no growth term.
    assert before["loss"] == pytest.approx(float(np.mean(
        keras.losses.sparse_categorical_crossentropy(y, probabilities))), rel=1e-5)
    model.add_task(second.train)
    model.fit(_train(second), epochs=1, verbose=0)
    model.finish_task()
    model.select_task(0)
    assert model.test_function is traced
    assert model.evaluate(test, verbose=0, return_dict=True) == before
    assert [m.name for m in model.metrics] == ["loss", "compile_metrics", "l0", "growth_ratio"]
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy", keras.metrics.SparseTopKCategoricalAccuracy(k=1)])
    model.select_task(0)
    assert model.test_function is None
    after = model.evaluate(test, verbose=0, return_dict=True)
    assert after["sparse_top_k_categorical_accuracy"] == after["accuracy"] == before["accuracy"]


def _score_values(model):
    model.controller.store_working()
    return [np.array(v.numpy(), copy=True) for l in model.grown_layers for v in l.score_variables]


def test_fix_masks_trains_the_weights_under_the_masks_finish_task_stores(fashion_stream, tmp_path):
    model = kg.GrownModel("lenet5", seed=0)
    task = fashion_stream[0]
    model.add_task(task.train)
    model.fit(_train(task), epochs=1, verbose=0)
    candidates = {l.name: l.plan.out_index.size for l in model.grown_layers}
    model.fix_masks()
    assert model.masks_fixed
    for layer in model.grown_layers:
        # The step now computes only the channels that stay on.
        np.testing.assert_array_equal(layer.plan.out_index, np.flatnonzero(layer.hard_channel_on()))
        assert layer.plan.out_index.size <= candidates[layer.name]
    x, _ = task_arrays(task.test)
    x = x[:32]
    # Training forward = inference rule: no noise, hard masks.
    np.testing.assert_allclose(model(x, training=True), model(x, training=False), atol=1e-6)
    scores = _score_values(model)
    kernels = [np.array(l.free_kernel.numpy(), copy=True) for l in model.grown_layers]
    model.fit(_train(task), epochs=1, verbose=0)
    for before, after in zip(scores, _score_values(model)):
        np.testing.assert_array_equal(before, after)  # no score moved
    assert any(not np.array_equal(k, l.free_kernel.numpy())
               for k, l in zip(kernels, model.grown_layers))  # the weights did
    expected = model.predict(x, verbose=0)
    path = str(tmp_path / "fixed.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.masks_fixed
    np.testing.assert_allclose(loaded(x, training=True), loaded(x, training=False), atol=1e-6)
    model.finish_task()
    assert not model.masks_fixed
    # The finished task predicts with exactly the masks it was trained under.
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, atol=1e-5)


def test_grow_lets_fixed_masks_learn_again(fashion_stream):
    model = kg.GrownModel("lenet5", seed=0)
    task = fashion_stream[0]
    model.add_task(task.train)
    model.fix_masks()
    model.grow()
    assert not model.masks_fixed
    scores = _score_values(model)
    model.fit(_train(task), epochs=1, verbose=0)
    assert any(not np.array_equal(a, b) for a, b in zip(scores, _score_values(model)))
    model.finish_task()
    with pytest.raises(ValueError, match="fix_masks\\(\\) needs a task being learned"):
        model.fix_masks()
