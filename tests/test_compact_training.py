"""The compacted training step computes what the masked full-capacity step computed.

A task's step computes only its on-part (active channels, this growth
round's candidates, kernels whose input channel is on) with working
variables of that size (`keras_grown.layers.training_plan`). These tests run
the same task on two models that differ only in `compact_training` and
compare outputs, one training step, the hard masks and the size accounting.
The Gumbel noise is switched off (`mask_noise=False`): the two paths draw
different numbers of samples, so with noise they differ by design.
"""

import keras
import numpy as np
import pytest

import keras_grown as kg
from keras_grown.layers import GrownConv2D, GrownDense


def _pair(backbone="lenet5", input_shape=(28, 28, 1), **kwargs):
    models = []
    for compact in (True, False):
        keras.utils.set_random_seed(0)
        model = kg.GrownModel(
            backbone, input_shape=input_shape, seed=1, compact_training=compact,
            mask_noise=False, grown_init=0.5, **kwargs,
        )
        model.compile(optimizer=keras.optimizers.SGD(0.05),
                      loss="sparse_categorical_crossentropy")
        models.append(model)
    return models


def _start(models, data, grow=None):
    for model in models:
        model.add_task(data, grow=grow)
    # Heads draw their initial values from the global RNG: start both alike.
    models[1].set_weights(models[0].get_weights())


def _assert_same_outputs(compact, full, x, atol=1e-6):
    for training in (False, True):
        np.testing.assert_allclose(
            compact(x, training=training).numpy(), full(x, training=training).numpy(),
            atol=atol, rtol=0,
        )


def _assert_same_weights(compact, full, atol=1e-5):
    computed = {
        layer.normalization.path: layer.plan.out_index
        for layer in compact.grown_layers
        if layer.normalization is not None and layer.plan is not None
    }
    for a, b in zip(compact.weights, full.weights):
        a, b, path = np.asarray(a.numpy(), "float64"), np.asarray(b.numpy(), "float64"), a.path
        if "moving_" in path and path.rsplit("/", 1)[0] in computed:
            # The full-capacity step also moves the statistics of channels the
            # task has off (toward those of their zero output); the compact
            # step leaves them: they are never read by the task.
            index = computed[path.rsplit("/", 1)[0]]
            a, b = a[index], b[index]
        np.testing.assert_allclose(a, b, atol=atol, rtol=0, err_msg=path)


def _assert_same_after_training_and_finishing(compact, full, x):
    """Same outputs and weights now; the same summary and size after finish_task()."""
    _assert_same_outputs(compact, full, x)
    _assert_same_weights(compact, full)
    summaries = [model.finish_task() for model in (compact, full)]
    assert summaries[0].size == summaries[1].size
    assert summaries[0].layers == summaries[1].layers


def test_compact_step_matches_the_full_capacity_step_on_a_growing_task(fashion_stream):
    compact, full = _pair()
    x, y = next(iter(fashion_stream[0].train.batch(32)))
    _start((compact, full), fashion_stream[0].train)  # task 0 grows
    _assert_same_outputs(compact, full, x)
    for model in (compact, full):
        model.train_on_batch(x, y)
    _assert_same_after_training_and_finishing(compact, full, x)

    # Task 1: pick and reuse, then a growth round (the plan widens).
    x, y = next(iter(fashion_stream[1].train.batch(32)))
    _start((compact, full), fashion_stream[1].train)
    for model in (compact, full):
        model.train_on_batch(x, y)
        model.grow()
        model.train_on_batch(x, y)
    _assert_same_after_training_and_finishing(compact, full, x)
    for a, b in zip(compact.grown_layers, full.grown_layers):
        for task in (0, 1):
            np.testing.assert_array_equal(a.task_kernel_mask(task), b.task_kernel_mask(task))
            np.testing.assert_array_equal(a.task_channel_mask(task), b.task_channel_mask(task))


def test_the_step_computes_the_active_channels_and_the_rounds_candidates(fashion_stream):
    model = kg.GrownModel("lenet5", seed=1)  # seed_ratio 0.5, growth_candidates 0.5
    model.add_task(fashion_stream[0].train, grow=False)
    widths = {layer.name: tuple(layer.plan.free_kernel.shape) for layer in model.grown_layers}
    # Active only: 10, 25, 400 and 250 of 40, 100, 1600 and 1000 allocated.
    assert widths == {
        "conv1": (5, 5, 1, 10), "conv2": (5, 5, 10, 25),
        "fc1": (4 * 4 * 25, 400), "fc2": (400, 250),
    }
    model.grow()
    widths = {layer.name: tuple(layer.plan.free_kernel.shape) for layer in model.grown_layers}
    # Plus half the full-size width as this round's candidates.
    assert widths == {
        "conv1": (5, 5, 1, 20), "conv2": (5, 5, 20, 50),
        "fc1": (4 * 4 * 50, 800), "fc2": (800, 500),
    }
    # Nothing of the allocated pool is a trainable variable of the step.
    largest = max(int(np.prod(v.shape)) for v in model.trainable_variables)
    assert largest == 800 * 800  # fc1, of 1600 x 1000 allocated


def test_compute_output_shape_is_what_call_returns_in_every_mode(fashion_stream):
    model = kg.GrownModel("lenet5", seed=1)
    backbone = model.backbone
    probe = keras.Model(backbone.input, [(l.input, l.output) for l in model.grown_layers])
    images = np.stack([x.numpy() for x, _ in fashion_stream[0].train.take(4)])

    def check(planned):
        for layer, (inputs, outputs) in zip(model.grown_layers, probe(images)):
            assert tuple(layer.compute_output_shape(tuple(inputs.shape))) == tuple(outputs.shape)
            expected = len(layer.plan.out_index) if planned else layer.allocated_units
            assert outputs.shape[-1] == expected, layer.name

    model.add_task(fashion_stream[0].train, grow=False)  # the active channels only
    assert model.grown_layers[0].computed_units == 10
    check(planned=True)
    model.grow()  # plus this round's candidates
    assert model.grown_layers[0].computed_units == 20
    check(planned=True)
    model.finish_task()  # a finished task: the allocated width, masked
    assert model.grown_layers[0].computed_units == 40
    check(planned=False)


def test_grow_keeps_the_optimizer_state_of_the_channels_already_computed(fashion_stream):
    model = kg.GrownModel("lenet5", seed=1)
    task = fashion_stream[0]
    model.add_task(task.train, grow=False)
    model.fit(task.train.batch(64).take(3), epochs=1, verbose=0)
    fc2 = model.backbone.get_layer("fc2")
    before = {v.name: v.numpy().copy() for v in model.optimizer.variables}
    old_in, old_out = fc2.plan.in_index.copy(), fc2.plan.out_index.copy()
    model.grow()
    after = {v.name: v.numpy() for v in model.optimizer.variables}
    assert int(after["iteration"]) == int(before["iteration"]) == 3
    slot = "fc2_free_kernel_momentum"
    rows = np.searchsorted(fc2.plan.in_index, old_in)
    cols = np.searchsorted(fc2.plan.out_index, old_out)
    assert after[slot].shape == (800, 500) and before[slot].shape == (400, 250)
    np.testing.assert_array_equal(after[slot][np.ix_(rows, cols)], before[slot])
    kept = np.zeros(after[slot].shape, bool)
    kept[np.ix_(rows, cols)] = True
    assert not after[slot][~kept].any()  # new channels start from zero state


def test_a_model_saved_during_a_growth_round_resumes_it(fashion_stream, tmp_path):
    model = kg.GrownModel("lenet5", seed=3)
    first, second = fashion_stream[0], fashion_stream[1]
    model.add_task(first.train)
    model.fit(first.train.batch(64).take(2), epochs=1, verbose=0)
    model.finish_task()
    model.add_task(second.train)
    model.grow()
    model.fit(second.train.batch(64).take(2), epochs=1, verbose=0)
    images = np.stack([x.numpy() for x, _ in second.test.take(16)])
    before = model.predict(images, verbose=0)
    model.save(tmp_path / "round.keras")
    loaded = keras.models.load_model(tmp_path / "round.keras")
    assert loaded.current_task == 1 and loaded.growth_enabled
    np.testing.assert_array_equal(loaded.predict(images, verbose=0), before)
    for a, b in zip(model.optimizer.variables, loaded.optimizer.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.name)
    for a, b in zip(model.grown_layers, loaded.grown_layers):
        assert a.plan.signature == b.plan.signature
    loaded.fit(second.train.batch(64).take(2), epochs=1, verbose=0)
    assert loaded.finish_task().task == 1


def residual(inputs):
    x = GrownConv2D(4, 3, padding="same", activation="relu", name="stem")(inputs)
    h = GrownConv2D(4, 3, padding="same", batch_norm=True, activation="relu", name="body")(x)
    x = keras.layers.Add(name="add")([x, h])
    x = keras.layers.Flatten(name="flatten")(x)
    return GrownDense(6, activation="relu", name="fc")(x)


def test_layers_meeting_in_an_add_compute_the_same_channels():
    # stem and body meet in `add`: each computes the union of their channels.
    compact, full = _pair(residual, input_shape=(6, 6, 2), seed_ratio=0.25)
    rng = np.random.default_rng(0)
    x = rng.random((16, 6, 6, 2)).astype("float32")
    y = (np.arange(16) % 3).astype("int32")
    _start((compact, full), (x, y), grow=False)
    stem, body = compact.backbone.get_layer("stem"), compact.backbone.get_layer("body")
    # Make the two layers' active channels differ, then start a new task.
    for model in (compact, full):
        model.backbone.get_layer("body").grown_score.assign(np.array(
            [-1, 5, -1, -1, -1, -1, -1, -1], "float32"))
        model.grow()
        model.finish_task()
    _start((compact, full), (x, y), grow=True)
    np.testing.assert_array_equal(stem.plan.out_index, body.plan.out_index)
    _assert_same_outputs(compact, full, x)
    for model in (compact, full):
        model.train_on_batch(x, y)
    _assert_same_outputs(compact, full, x)
    _assert_same_weights(compact, full)
    assert compact.finish_task().layers == full.finish_task().layers


@pytest.mark.parametrize("value", [0, -0.5, float("nan"), float("inf"), True, "half"])
def test_growth_candidates_must_be_a_positive_fraction(value):
    with pytest.raises(ValueError, match="growth_candidates"):
        kg.GrownModel("lenet5", growth_candidates=value)
