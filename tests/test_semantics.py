"""Mask semantics and model-size accounting on a tiny backbone counted by hand.

Tiny backbone: GrownConv2D(2, 3x3) on 6x6x1 -> Flatten -> GrownDense(3), with
seed_ratio=0.5 and capacity=2: the conv allocates 4 filters (1 active), the
dense layer 6 units (2 active, round(1.5) = 2). Full size: conv 1*2*9 = 18
weights, dense (4*4*2)*3 = 96, total 114.
"""

import keras
import numpy as np
import pytest

import keras_grown as kg
from keras_grown.layers import GrownConv2D, GrownDense


def tiny(inputs):
    x = GrownConv2D(2, 3, activation="relu", name="conv")(inputs)
    x = keras.layers.Flatten(name="flatten")(x)
    return GrownDense(3, activation="relu", name="dense")(x)


def _data(n=32, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, 6, 6, 1)).astype("float32"), (np.arange(n) % 2).astype("int32")


def _model(**kwargs):
    # Fixed initial weights: with other draws a ReLU unit of this tiny
    # network can start dead and a "was it trained" check would be luck.
    keras.utils.set_random_seed(0)
    kwargs.setdefault("grown_init", -1.0)
    return kg.GrownModel(tiny, input_shape=(6, 6, 1), seed_ratio=0.5, capacity=2.0, seed=0, **kwargs)


def _layers(model):
    return model.backbone.get_layer("conv"), model.backbone.get_layer("dense")


def test_widths_follow_seed_ratio_and_capacity():
    model = _model()
    conv, dense = _layers(model)
    assert (conv.allocated_units, conv.seed_units) == (4, 1)
    assert (dense.allocated_units, dense.seed_units) == (6, 2)
    assert dense.input_dim == 64 and dense.full_input_dim == 32
    assert model.full_size_weights == 114


def test_model_size_matches_a_hand_count():
    model = _model()
    images, labels = _data()
    model.add_task((images, labels))
    summary = model.finish_task()
    size = model.model_size()
    # conv: 1 input channel x 1 active filter x 9; dense: 16 inputs from the
    # one active filter x 2 active units.
    assert size.owned_weights == 9 + 32
    assert size.ratio == pytest.approx(41 / 114)
    assert size.owned_by_task == (41,)
    assert size.head_weights == (2 + 1) * 2
    assert size.task_specific_weights == 1 + 2
    assert size.mask_bytes == 1 + 1 + 48 + 1
    assert summary.layers["conv"]["kernels_taken"] == 1
    assert summary.layers["dense"]["kernels_taken"] == 32
    assert summary.channels_grown == 0

    # Task 1 grows conv filter 1 (its score forced on) and reuses everything.
    conv, dense = _layers(model)
    model.add_task((images, labels), grow=True)
    conv.grown_score.assign(np.array([-1.0, 5.0, -1.0, -1.0], "float32"))
    summary = model.finish_task()
    assert summary.layers["conv"]["channels_grown"] == 1
    assert summary.layers["conv"]["kernels_taken"] == 1
    assert summary.layers["dense"]["kernels_taken"] == 32  # inputs from the new filter
    assert summary.layers["dense"]["kernels_reused"] == 32
    size = model.model_size()
    assert size.owned_by_task == (41, 9 + 32)
    assert size.owned_weights == 82
    report = {r["layer"]: r for r in model.growth_report()}
    assert report["conv"]["active_channels"] == 2 and report["conv"]["growth_ratio"] == 1.0
    assert report["dense"]["kernels_owned_by_task"] == [32, 32]


def test_kernels_reading_a_dormant_channel_are_not_taken():
    model = _model()
    model.add_task(_data())
    conv, dense = _layers(model)
    model.finish_task()
    use = dense.task_kernel_mask(0)
    reads_active_filter = np.tile(np.array([True, False, False, False]), 16)
    expected = reads_active_filter[:, None] & (np.arange(6) < 2)[None, :]
    np.testing.assert_array_equal(use, expected)


def test_a_finished_task_reads_exactly_its_stored_mask():
    model = _model()
    model.add_task(_data())
    model.finish_task()
    for layer in _layers(model):
        kernel, gate = layer.effective_kernel()
        use = layer.task_kernel_mask(0)
        spatial = (None,) * len(layer.kernel_spatial_shape)
        expected = np.where(use[spatial], layer.frozen_kernel.numpy(), 0.0)
        np.testing.assert_array_equal(kernel.numpy(), expected)
        np.testing.assert_array_equal(gate.numpy(), layer.task_channel_mask(0).astype("float32"))


@pytest.mark.parametrize("compact", [False, True], ids=["masked", "compact"])
def test_kernels_owned_later_are_invisible_to_earlier_tasks(compact):
    # Both inference paths of a finished task: the masked network and the
    # cached compact model (rebuilt after the hand-made writes below, as
    # clear_inference_cache() documents).
    model = _model(compact_inference=compact)
    images, labels = _data()
    model.add_task((images, labels))
    model.finish_task()
    before = model.predict(images, verbose=0)
    conv, dense = _layers(model)
    model.add_task((images, labels), grow=True)
    conv.grown_score.assign(np.array([-1.0, 5.0, 5.0, -1.0], "float32"))
    model.finish_task()
    owner = dense.owner.numpy()
    assert (owner == 2).any()
    # Scribble over everything task 1 owns: task 0 does not see it.
    frozen = dense.frozen_kernel.numpy()
    dense.frozen_kernel.assign(np.where(owner == 2, 123.0, frozen))
    model.clear_inference_cache()
    model.select_task(0)
    np.testing.assert_array_equal(model.predict(images, verbose=0), before)
    # ...while what task 0 owns is what it reads.
    dense.frozen_kernel.assign(np.where(owner == 1, frozen + 1.0, frozen))
    model.clear_inference_cache()
    model.select_task(0)
    assert not np.array_equal(model.predict(images, verbose=0), before)


def test_released_kernels_are_trained_by_the_next_task():
    model = _model()
    images, labels = _data()
    conv, dense = _layers(model)
    model.add_task((images, labels))
    scores = dense.attentive_score.numpy()
    scores[0, 0] = -1.0  # task 0 does not keep this kernel of an active unit
    dense.attentive_score.assign(scores)
    model.finish_task()
    assert dense.owner.numpy()[0, 0] == 0 and dense.owner.numpy()[0, 1] == 1
    model.add_task((images, labels))
    free_before = dense.free_kernel.numpy().copy()
    model.fit(images, labels, batch_size=32, epochs=3, verbose=0)
    free_after = dense.free_kernel.numpy()
    assert free_after[0, 0] != free_before[0, 0]
    model.finish_task()
    assert dense.owner.numpy()[0, 0] == 2
    assert dense.frozen_kernel.numpy()[0, 0] == free_after[0, 0]


def test_a_dormant_channel_is_invisible_until_grown():
    model = _model()
    images, labels = _data()
    model.add_task((images, labels), grow=False)
    conv, dense = _layers(model)
    before = model.predict(images, verbose=0)
    free = conv.free_kernel.numpy()
    free[..., 1:] = 50.0
    conv.free_kernel.assign(free)
    dense.free_kernel.assign(dense.free_kernel.numpy() + np.where(
        np.arange(6) >= 2, 7.0, 0.0)[None, :].astype("float32"))
    np.testing.assert_array_equal(model.predict(images, verbose=0), before)
    # Filter 1 is the growth round's one candidate (growth_candidates=0.5 of
    # the full-size 2 filters).
    conv.grown_score.assign(np.array([-1.0, 5.0, -1.0, -1.0], "float32"))
    model.grow()
    assert not np.array_equal(model.predict(images, verbose=0), before)


@pytest.mark.parametrize("candidates, grown", [(0.5, [1]), (1.0, [1, 2]), (None, [1, 2, 3])])
def test_a_growth_round_switches_on_only_its_candidates(candidates, grown):
    # Every dormant filter's grown score is forced on; only the round's
    # candidates (the first ceil(candidates x 2) dormant filters) may grow.
    model = _model(growth_candidates=candidates)
    model.add_task(_data(), grow=True)
    conv, _ = _layers(model)
    conv.grown_score.assign(np.full((4,), 5.0, "float32"))
    summary = model.finish_task()
    assert summary.layers["conv"]["channels_grown"] == len(grown)
    np.testing.assert_array_equal(
        np.flatnonzero(conv.task_channel_mask(0)), [0] + grown
    )


def test_a_new_task_starts_from_the_previous_tasks_biases():
    model = _model()
    images, labels = _data()
    conv, dense = _layers(model)
    model.add_task((images, labels))
    model.fit(images, labels, batch_size=32, epochs=2, verbose=0)
    model.finish_task()
    trained = dense._task_variables[0]["bias"].numpy().copy()
    assert np.abs(trained).sum() > 0
    model.add_task((images, labels))
    np.testing.assert_array_equal(dense._task_variables[1]["bias"].numpy(), trained)
    assert dense._task_variables[1]["bias"].trainable
    assert not dense._task_variables[0]["bias"].trainable


def test_compact_inference_falls_back_to_the_masked_network_with_a_warning():
    # A plain weighted layer after a grown one (a shared BatchNormalization,
    # not the per-task TaskBatchNorm) cannot be sliced per task: export
    # refuses it, and a finished task's predictions come from the masked
    # network, with a warning that says so.
    def mixed(inputs):
        x = keras.layers.Flatten()(inputs)
        x = GrownDense(4, activation="relu", name="dense")(x)
        return keras.layers.BatchNormalization(name="shared_bn")(x)

    keras.utils.set_random_seed(0)
    model = kg.GrownModel(mixed, input_shape=(6, 6, 1), seed=0)
    images, labels = _data()
    model.add_task((images, labels))
    model.finish_task()
    with pytest.warns(UserWarning, match="Compact inference is off for task 0"):
        compact_try = model.predict(images, verbose=0)
    assert model.controller.inference_cache.models == {0: None}
    model.compact_inference = False
    np.testing.assert_array_equal(compact_try, model.predict(images, verbose=0))
