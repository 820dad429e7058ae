"""Loss scaling (mixed precision's LossScaleOptimizer): the mask scores follow the weights' step."""

import os
import subprocess
import sys

import numpy as np
import pytest
import keras

import keras_grown as kg
from conftest import task_arrays

HERE = os.path.dirname(os.path.abspath(__file__))


def _model(task, optimizer):
    keras.utils.set_random_seed(0)
    model = kg.GrownModel("lenet5", seed_ratio=0.5, capacity=2.0, seed=0, growth_schedule=None)
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.add_task(task.train)
    return model


def _state(model):
    scores = [np.array(v.numpy(), copy=True) for v in model.controller.score_variables()]
    weights = [np.array(v.numpy(), copy=True) for v in model.trainable_variables
               if all(v is not s for s in model.controller.score_variables())]
    return scores, weights


def test_a_step_whose_scaled_gradients_overflow_changes_neither_weights_nor_scores(
        fashion_stream):
    task = fashion_stream[0]
    images, labels = task_arrays(task.train)
    # The largest float32 scale, with gradients above 1 (sample weights of 1e4):
    # the scaled gradients overflow and the step is not finite.
    optimizer = keras.optimizers.LossScaleOptimizer(keras.optimizers.Adam(1e-3),
                                                    initial_scale=3.4e38)
    model = _model(task, optimizer)
    scores, weights = _state(model)
    assert scores, "the task learns mask scores"
    model.train_on_batch(images[:64], labels[:64], sample_weight=np.full(64, 1e4))
    after_scores, after_weights = _state(model)
    for before, after in zip(weights, after_weights):
        np.testing.assert_array_equal(before, after)
    for before, after in zip(scores, after_scores):
        assert np.isfinite(after).all(), "an overflowed step wrote non-finite mask scores"
        np.testing.assert_array_equal(before, after)
    assert float(optimizer.dynamic_scale.numpy()) < 3.4e38  # the scale went down


def test_scores_learn_from_the_unscaled_gradients(fashion_stream):
    task = fashion_stream[0]
    images, labels = task_arrays(task.train)
    moved = []
    for optimizer in (keras.optimizers.Adam(1e-3),
                      keras.optimizers.LossScaleOptimizer(keras.optimizers.Adam(1e-3),
                                                          initial_scale=2.0 ** 12)):
        model = _model(task, optimizer)
        before, _ = _state(model)
        for _ in range(3):
            model.train_on_batch(images[:64], labels[:64])
        after, _ = _state(model)
        moved.append([a - b for a, b in zip(after, before)])
    for plain, scaled in zip(*moved):
        assert np.abs(plain).max() > 0
        np.testing.assert_allclose(scaled, plain, rtol=1e-4, atol=1e-6)


MIRRORED = r"""
import sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import numpy as np, keras
import keras_grown as kg
from keras_grown import datasets
sys.path.insert(0, "tests")
from conftest import task_arrays
task = datasets.split_fashion_mnist(num_tasks=5, train_per_task=320, val_fraction=0.2,
                                    test_per_task=200, seed=0)[0]
x, y = task_arrays(task.train)
with tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]).scope():
    model = kg.GrownModel("lenet5", seed_ratio=0.5, capacity=2.0, seed=0, growth_schedule=None)
    model.compile(optimizer=keras.optimizers.LossScaleOptimizer(
        keras.optimizers.Adam(1e-3), initial_scale=3.4e38),
        loss="sparse_categorical_crossentropy")
    model.add_task(task.train)
def scores():
    return [v.numpy().copy() for v in model.controller.score_variables()]
before = scores()
heavy = np.full(64, 1e4, "float32")
model.fit(tf.data.Dataset.from_tensor_slices((x[:64], y[:64], heavy)).batch(64), verbose=0)
assert all(np.array_equal(a, b) for a, b in zip(before, scores())), "overflow moved scores"
assert float(model.optimizer.dynamic_scale.numpy()) < 3.4e38
model.fit(tf.data.Dataset.from_tensor_slices((x[:64], y[:64])).batch(64), verbose=0)
after = scores()
assert all(np.isfinite(a).all() for a in after)
assert any(not np.array_equal(a, b) for a, b in zip(before, after)), "scores never learned"
print("ok")
"""


@pytest.mark.slow
def test_loss_scaling_under_a_mirrored_strategy_skips_and_learns_like_one_device():
    # Logical devices must exist before TensorFlow starts: a fresh process.
    completed = subprocess.run([sys.executable, "-c", MIRRORED], capture_output=True,
                               text=True, timeout=600, cwd=os.path.dirname(HERE))
    assert completed.returncode == 0, completed.stderr[-4000:]
    assert completed.stdout.strip().endswith("ok")
