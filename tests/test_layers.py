import numpy as np
import pytest

from keras_grown.layers import GrownConv2D, GrownDense, TaskBatchNorm, growth_scope
from layer_testing import run_layer_test


def test_grown_dense(tmp_path):
    # trainable: free_kernel, 3 scores, task bias; non-trainable: frozen,
    # owner, active, task kernel mask, task channel mask.
    layer = run_layer_test(
        GrownDense, {"units": 5, "activation": "relu", "seed_ratio": 0.4, "capacity": 2.0},
        (7,), (10,), 5, 5, tmp_path,
    )
    assert layer.seed_units == 2 and layer.allocated_units == 10


def test_grown_dense_two_tasks(tmp_path):
    run_layer_test(
        GrownDense, {"units": 4}, (3,), (8,), 6, 7, tmp_path, num_tasks=2,
    )


def test_grown_conv2d_with_task_batch_norm(tmp_path):
    # trainable: free_kernel, 3 scores, BN gamma + beta; non-trainable: frozen,
    # owner, active, kernel mask, channel mask, BN moving mean + variance.
    run_layer_test(
        GrownConv2D,
        {"filters": 4, "kernel_size": 3, "padding": "same", "batch_norm": True,
         "activation": "relu", "capacity": 1.5},
        (8, 8, 2), (8, 8, 6), 6, 7, tmp_path,
    )


def test_grown_conv2d_strides_valid(tmp_path):
    run_layer_test(
        GrownConv2D, {"filters": 3, "kernel_size": (3, 2), "strides": 2},
        (9, 9, 1), (4, 4, 6), 5, 5, tmp_path,
    )


def test_task_batch_norm(tmp_path):
    run_layer_test(TaskBatchNorm, {"momentum": 0.5}, (4,), (4,), 2, 2, tmp_path)


def test_off_channels_output_exact_zero():
    layer = GrownDense(4, activation="sigmoid", seed_ratio=0.5, capacity=2.0)
    layer.build((None, 3))
    layer.add_task_state()
    layer.set_task(0, finished=False)
    out = np.asarray(layer(np.ones((2, 3), "float32")))
    assert (out[:, 2:] == 0).all() and (out[:, :2] > 0).all()


def test_growth_scope_sets_defaults():
    with growth_scope(seed_ratio=0.25, capacity=3.0, temperature=0.5):
        layer = GrownDense(8)
    assert (layer.seed_units, layer.allocated_units, layer.temperature) == (2, 24, 0.5)
    with pytest.raises(ValueError, match="unknown settings"):
        with growth_scope(width=2):
            pass


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"units": 0}, "units must be a positive integer"),
        ({"units": 4, "capacity": 0.9}, "capacity"),
        ({"units": 4, "seed_ratio": 0}, "seed_ratio"),
        ({"units": 4, "temperature": -1.0}, "temperature must be positive"),
        ({"units": 4, "gumbel": "x"}, "gumbel='x'"),
    ],
)
def test_bad_layer_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GrownDense(**kwargs)


def test_grown_dense_needs_flat_inputs():
    with pytest.raises(ValueError, match="Add a Flatten layer first"):
        GrownDense(4).build((None, 3, 3))


def test_a_layer_alone_names_how_to_use_it_and_then_trains():
    import keras
    import tensorflow as tf

    x = np.random.default_rng(0).normal(size=(8, 3)).astype("float32")
    with pytest.raises(ValueError, match=r"has no task selected.*num_tasks=1.*set_task\(0, "):
        GrownDense(4)(x)
    layer = GrownDense(4, num_tasks=1, seed=0)
    layer.build(x.shape)
    layer.set_task(0, finished=False)
    before = keras.ops.convert_to_numpy(layer(x, training=False))
    assert before.shape == (8, layer.allocated_units)
    with tf.GradientTape() as tape:
        loss = keras.ops.sum(keras.ops.square(layer(x, training=True)))
    grads = tape.gradient(loss, layer.trainable_weights)
    assert any(g is not None and np.any(keras.ops.convert_to_numpy(g)) for g in grads)
    keras.optimizers.SGD(0.1).apply_gradients(
        [(g, v) for g, v in zip(grads, layer.trainable_weights) if g is not None])
    assert not np.array_equal(before, keras.ops.convert_to_numpy(layer(x, training=False)))
