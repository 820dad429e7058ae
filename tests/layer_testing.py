"""A small `run_layer_test` for the task-aware layers, after Keras' own."""

import keras
import numpy as np


def run_layer_test(
    layer_cls,
    init_kwargs,
    input_shape,
    expected_output_shape,
    expected_num_trainable_weights,
    expected_num_non_trainable_weights,
    tmp_path,
    num_tasks=1,
):
    """Builds the layer, adds task states, checks shapes, weight counts, config and saving.

    The counts are for a built layer with `num_tasks` task states and task 0
    selected (not finished).
    """
    layer = layer_cls(**init_kwargs)
    layer.build((None,) + tuple(input_shape))
    for _ in range(num_tasks):
        layer.add_task_state()
    layer.set_task(0, finished=False)
    data = np.random.default_rng(0).random((3,) + tuple(input_shape)).astype("float32")
    output = layer(data)
    assert tuple(output.shape) == (3,) + tuple(expected_output_shape)
    assert len(layer.trainable_weights) == expected_num_trainable_weights, [
        w.name for w in layer.trainable_weights]
    assert len(layer.non_trainable_weights) == expected_num_non_trainable_weights, [
        w.name for w in layer.non_trainable_weights]

    # Config round trip, including the number of task states.
    config = layer.get_config()
    clone = layer_cls.from_config(config)
    assert clone.get_config() == config

    # Saved-model round trip inside a functional model.
    inputs = keras.Input(tuple(input_shape))
    model = keras.Model(inputs, layer(inputs))
    path = tmp_path / f"{layer_cls.__name__}.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    loaded_layer = loaded.layers[-1]
    assert isinstance(loaded_layer, layer_cls)
    assert loaded_layer.num_task_states == num_tasks
    loaded_layer.set_task(0, finished=False)
    np.testing.assert_array_equal(
        np.asarray(loaded_layer(data)), np.asarray(layer(data))
    )

    # Symbolic shapes are the eager ones (Keras' compute_output_spec against a call).
    symbolic = layer.compute_output_spec(keras.KerasTensor((3,) + tuple(input_shape)))
    assert tuple(symbolic.shape) == tuple(output.shape)

    # serialize_keras_object round trip (what Keras' own layer tests check).
    revived = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(revived) is layer_cls and revived.get_config() == config

    # A gradient step, with growth on: every trainable weight of task 0 gets a gradient
    # (other tasks' per-task variables are not read), and the step changes the output.
    import tensorflow as tf

    layer.set_task(0, finished=False, growth_enabled=True)
    with tf.GradientTape() as tape:
        loss = keras.ops.sum(keras.ops.square(layer(data, training=True)))
    gradients = tape.gradient(loss, layer.trainable_weights)
    other_tasks = tuple(f"task_{k}_" for k in range(1, num_tasks))
    missing = [w.name for w, g in zip(layer.trainable_weights, gradients)
               if g is None and not w.name.startswith(other_tasks)]
    assert missing == [], f"no gradient for {missing}"
    nonzero = [w.name for w, g in zip(layer.trainable_weights, gradients)
               if g is not None and np.any(np.asarray(g) != 0)]
    needed = "free_kernel" if hasattr(layer, "free_kernel") else layer.trainable_weights[0].name
    assert needed in nonzero, f"the gradient of {needed} is zero ({nonzero} are not)"
    before = [np.array(w.numpy(), copy=True) for w in layer.trainable_weights]
    keras.optimizers.SGD(0.1).apply_gradients(
        [(g, w) for g, w in zip(gradients, layer.trainable_weights) if g is not None])
    moved = [w.name for w, old in zip(layer.trainable_weights, before)
             if not np.array_equal(w.numpy(), old)]
    assert sorted(moved) == sorted(nonzero)
    return layer
