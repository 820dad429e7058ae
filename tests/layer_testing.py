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
    return layer
