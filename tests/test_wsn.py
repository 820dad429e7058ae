"""WSN (Winning SubNetworks) as a policy of the engine, and the compressed size of stored masks."""

import dataclasses
import math
import zlib

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import ops

import keras_grown as kg
from keras_grown import checkpoint, masks, methods
from keras_grown.bench import parse_methods
from keras_grown.layers import GrownConv2D, GrownDense


@pytest.fixture(scope="module")
def two_tasks(fashion_stream):
    """Two 2-class tasks of real Fashion-MNIST (256 train, 64 val, 200 test each)."""
    return list(fashion_stream)[:2]


@pytest.fixture(scope="module")
def probes(two_tasks):
    """Fixed test images of each task."""
    return [np.stack([x.numpy() for x, _ in task.test.take(64)]) for task in two_tasks]


def _outputs(model, probes):
    """Each finished task's outputs on its probe images."""
    rows = []
    for task in model.finished_tasks:
        model.select_task(task)
        rows.append(ops.convert_to_numpy(model(probes[task], training=False)))
    return rows


class TaskEndRecorder(keras.callbacks.Callback):
    """Every finished task's outputs after each task, and the number of fit() calls per task."""

    def __init__(self, probes):
        super().__init__()
        self.probes = probes
        self.outputs = []
        self.fits = [0]

    def on_train_begin(self, logs=None):
        self.fits[-1] += 1

    def on_task_end(self, model, summary):
        self.outputs.append(_outputs(model, self.probes))
        self.fits.append(0)


OPTIMIZERS = {
    "adamw": lambda: keras.optimizers.AdamW(1e-3, weight_decay=0.01),
    "sgd_momentum": lambda: keras.optimizers.SGD(0.05, momentum=0.9),
}


# --- the rule -------------------------------------------------------------


def test_top_fraction_keeps_exactly_c_by_magnitude_and_passes_the_gradient_through():
    score = tf.constant([[0.3, -0.9, 0.05], [-0.2, 0.6, -0.01]])
    hard = ops.convert_to_numpy(masks.top_fraction_mask(score, 0.5))
    # round(0.5 * 6) = 3 kept: |-0.9|, |0.6|, |0.3|.
    np.testing.assert_array_equal(hard, [[1, 1, 0], [0, 1, 0]])
    assert masks.top_fraction_count(6, 0.5) == 3
    assert masks.top_fraction_count(5, 0.5) == 3  # round half up
    assert masks.top_fraction_count(10, 0.01) == 1  # never empty
    # The same entries as tf.math.top_k over |score|, ties (lower index first) included.
    rng = np.random.default_rng(0)
    for trial in range(60):
        size, fraction = int(rng.integers(2, 200)), float(rng.uniform(0.01, 1.0))
        values = rng.standard_normal(size).astype("float32")
        if trial % 2:
            values = np.round(values * 2) / 2  # many ties, zeros among them
        count = masks.top_fraction_count(size, fraction)
        expected = np.zeros(size, bool)
        expected[tf.math.top_k(np.abs(values), count).indices.numpy()] = True
        np.testing.assert_array_equal(
            ops.convert_to_numpy(masks.top_fraction_mask(values, fraction)) > 0, expected
        )
    upstream = tf.constant([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    with tf.GradientTape() as tape:
        tape.watch(score)
        mask = masks.straight_through_top_fraction(score, 0.5)
        loss = tf.reduce_sum(mask * upstream)
    np.testing.assert_array_equal(ops.convert_to_numpy(mask), hard)
    # Straight through to |score|, then through the abs: upstream * sign(score).
    np.testing.assert_array_equal(
        tape.gradient(loss, score).numpy(), upstream.numpy() * np.sign(score.numpy())
    )


# --- zero forgetting, size, one pass ------------------------------------------


@pytest.mark.parametrize("optimizer", ["adamw", "sgd_momentum"])
def test_wsn_zero_forgetting_is_bitwise_after_save_and_load(optimizer, two_tasks, probes, tmp_path):
    method = methods.WSN(capacity=0.5, optimizer=OPTIMIZERS[optimizer](), seed=0)
    recorder = TaskEndRecorder(probes)
    result = kg.learn(method, two_tasks, epochs=1, batch_size=32, callbacks=[recorder])
    after_task_0, after_task_1 = recorder.outputs
    np.testing.assert_array_equal(after_task_0[0], after_task_1[0])
    assert result.accuracy.backward_transfer() == 0.0
    model = method.model
    model.save(tmp_path / "wsn.keras")
    loaded = keras.saving.load_model(tmp_path / "wsn.keras")
    for task, expected in enumerate(after_task_1):
        loaded.select_task(task)
        np.testing.assert_array_equal(
            ops.convert_to_numpy(loaded(probes[task], training=False)), expected
        )
    assert loaded.model_size() == model.model_size()


def test_wsn_takes_exactly_c_of_every_layer_and_its_size_is_the_union(two_tasks, probes):
    method = methods.get("wsn", capacity=0.3, seed=0)
    recorder = TaskEndRecorder(probes)
    result = kg.learn(method, two_tasks, epochs=1, batch_size=32, callbacks=[recorder])
    # One fit() per task: the scores and the free weights train together.
    assert recorder.fits == [1, 1, 0]
    model = method.model
    owned = 0
    by_task = [0, 0]
    for layer in model.grown_layers:
        kernels = layer.input_dim * layer.units
        elements = int(np.prod(layer.kernel_spatial_shape, dtype=int))
        use_0, use_1 = layer.task_kernel_mask(0), layer.task_kernel_mask(1)
        for use in (use_0, use_1):
            assert use.sum() == math.floor(0.3 * kernels + 0.5), layer.name
        owner = ops.convert_to_numpy(layer.owner)
        # Task 0 owns its subnetwork; task 1 the part of its own that was free.
        np.testing.assert_array_equal(owner == 1, use_0)
        np.testing.assert_array_equal(owner == 2, use_1 & ~use_0)
        owned += int((use_0 | use_1).sum()) * elements
        by_task[0] += int(use_0.sum()) * elements
        by_task[1] += int((use_1 & ~use_0).sum()) * elements
    size = model.model_size()
    assert size.owned_weights == owned
    assert size.owned_by_task == tuple(by_task)
    assert result.model_size[1] == owned / model.full_size_weights
    assert result.model_size[0] == by_task[0] / model.full_size_weights


def test_wsn_trains_free_weights_and_scores_and_never_moves_owned_ones(two_tasks):
    method = methods.WSN(seed=0)
    method.start(two_tasks[0].input_shape)
    run = kg.learning.TaskRun(
        two_tasks[0], kg.learning.prepare(two_tasks[0].train, 32, True),
        kg.learning.prepare(two_tasks[0].val, 256), 1, 1, 0, dict(verbose=0, shuffle=False),
    )
    model = method.model_for_task(0)
    method.train_task(run, model, 0, two_tasks[0])
    model.finish_task()
    fc1 = model.backbone.get_layer("fc1")
    frozen = ops.convert_to_numpy(fc1.frozen_kernel).copy()
    scores = ops.convert_to_numpy(fc1.selective_score).copy()
    free = ops.convert_to_numpy(fc1.free_kernel).copy()
    owned = ops.convert_to_numpy(fc1.owner) > 0
    second = kg.learning.TaskRun(
        two_tasks[1], kg.learning.prepare(two_tasks[1].train, 32, True),
        kg.learning.prepare(two_tasks[1].val, 256), 1, 1, 0, dict(verbose=0, shuffle=False),
    )
    method.train_task(second, model, 1, two_tasks[1])
    # The second task starts from the first's scores (no re-draw) and trains them.
    trained = np.where(
        owned, ops.convert_to_numpy(fc1.selective_score),
        ops.convert_to_numpy(fc1.attentive_score),
    )
    assert not np.array_equal(trained, scores)
    # Owned weights never move (frozen store); free ones the task selects train.
    np.testing.assert_array_equal(ops.convert_to_numpy(fc1.frozen_kernel)[owned], frozen[owned])
    selected = fc1.hard_kernel_mask()
    moved = ops.convert_to_numpy(fc1.free_kernel) != free
    assert moved[selected & ~owned].mean() > 0.5
    assert selected.sum() == math.floor(0.5 * fc1.input_dim * fc1.units + 0.5)


# --- resume -----------------------------------------------------------------


class Interrupt(Exception):
    pass


class InterruptInTask(keras.callbacks.Callback):
    """Raises at the end of the first epoch of task `task`: a crash inside it."""

    def __init__(self, task):
        super().__init__()
        self.task, self.finished = task, 0

    def on_task_end(self, model, summary):
        self.finished += 1

    def on_epoch_end(self, epoch, logs=None):
        if self.finished == self.task:
            raise Interrupt(f"interrupted in task {self.task}")


def test_wsn_resumes_bitwise_from_its_checkpoint(two_tasks, tmp_path):
    # 128 training images per task: 4 steps, what is under test is the checkpoint.
    two_tasks = [dataclasses.replace(t, train=t.train.take(128)) for t in two_tasks]
    settings = dict(epochs=1, batch_size=32, seed=3)
    reference = kg.learn(methods.WSN(seed=0), two_tasks, checkpoint_dir=str(tmp_path / "a"),
                         **settings)
    with pytest.raises(Interrupt):
        kg.learn(methods.WSN(seed=0), two_tasks, checkpoint_dir=str(tmp_path / "b"),
                 callbacks=[InterruptInTask(1)], **settings)
    assert checkpoint.list_checkpoints(str(tmp_path / "b")) == ["task-0001"]
    resumed_method = methods.WSN(seed=0)
    resumed = kg.learn(resumed_method, two_tasks, checkpoint_dir=str(tmp_path / "b"),
                       resume=True, **settings)
    # The restored model trains the second task with WSN's rule again.
    assert all(layer.top_fraction == 0.5 for layer in resumed_method.model.grown_layers)
    np.testing.assert_array_equal(reference.accuracy.values, resumed.accuracy.values)
    assert reference.model_size == resumed.model_size
    for a, b in zip(reference.model.variables, resumed.model.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


# --- compressed mask sizes ---------------------------------------------------------


def tiny(inputs):
    # test_semantics' tiny backbone, counted there by hand.
    x = GrownConv2D(2, 3, activation="relu", name="conv")(inputs)
    x = keras.layers.Flatten(name="flatten")(x)
    return GrownDense(3, activation="relu", name="dense")(x)


def _entropy_bytes(ones, bits):
    p = ones / bits
    return math.ceil(bits * -(p * math.log2(p) + (1 - p) * math.log2(1 - p)) / 8)


def test_compressed_mask_sizes_match_a_hand_count():
    assert masks.mask_entropy_bits([1, 1, 1, 1]) == 0.0
    assert masks.mask_entropy_bits([1, 0, 1, 0]) == 4.0  # p = 1/2: one bit each
    keras.utils.set_random_seed(0)
    model = kg.GrownModel(tiny, input_shape=(6, 6, 1), seed_ratio=0.5, capacity=2.0, seed=0,
                          grown_init=-1.0)
    rng = np.random.default_rng(0)
    images = rng.random((32, 6, 6, 1)).astype("float32")
    labels = (np.arange(32) % 2).astype("int32")
    model.add_task((images, labels))
    model.finish_task()
    size = model.model_size()
    # Stored masks (as test_semantics counts them): conv kernels 1 x 4, 1 on;
    # conv channels 4, 1 on; dense kernels 64 x 6, 16 x 2 on; dense channels 6, 2 on.
    assert size.mask_bytes == 1 + 1 + 48 + 1
    # Entropy: ceil(4 H(1/4) / 8) = ceil(3.245 / 8) = 1; the same for the
    # channels; ceil(384 H(1/12) / 8) = ceil(158.9 / 8) = 20; ceil(6 H(1/3) / 8) = 1.
    assert [_entropy_bytes(1, 4), _entropy_bytes(32, 384), _entropy_bytes(2, 6)] == [1, 20, 1]
    assert size.mask_entropy_bytes == 1 + 1 + 20 + 1
    conv, dense = model.backbone.get_layer("conv"), model.backbone.get_layer("dense")
    stream = b"".join(
        ops.convert_to_numpy(layer._task_variables[0][key]).tobytes()
        for layer in (conv, dense) for key in ("kernel_mask", "channel_mask")
    )
    assert len(stream) == 51
    assert size.mask_zlib_bytes == len(zlib.compress(stream, 9))
    assert "23 B compressed" in str(size)


# --- names and errors ----------------------------------------------------------------


def test_wsn_is_named_everywhere_and_refuses_bad_settings():
    method = methods.get("wsn")
    assert isinstance(method, kg.methods.WSN)
    assert method.config()["capacity"] == 0.5
    assert method.config()["mask_learning_rate"] == method.learning_rate
    assert methods.get("wsn", capacity=0.3).label == "WSN (c=0.3)"
    assert parse_methods("wsn,packnet") == ["wsn", "packnet"]
    for bad in (0, 1.5, float("nan")):
        with pytest.raises(ValueError, match="capacity"):
            methods.WSN(capacity=bad)
    with pytest.raises(ValueError, match="WSN fixes \\['seed_ratio'\\]"):
        methods.WSN(seed_ratio=0.5)
