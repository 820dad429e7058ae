"""Mixed precision: the layers follow `keras.mixed_precision` policies.

Under `mixed_bfloat16` (or `mixed_float16`) a GrownModel computes its
convolutions and matrix products in the policy's compute dtype; its weights,
mask scores, gates and batch-norm statistics stay float32, and the heads
compute in float32 (the loss and the predictions are float32). A finished
task still predicts bitwise the same after later tasks and a save/load.
"""

import numpy as np
import pytest
import keras

import keras_grown as kg
from conftest import task_arrays


@pytest.fixture
def policy(request):
    keras.mixed_precision.set_global_policy(request.param)
    try:
        yield request.param
    finally:
        keras.mixed_precision.set_global_policy("float32")


def _fit_task(model, task, epochs=2):
    model.add_task(task.train)
    model.fit(task.train.batch(64), epochs=epochs, verbose=0)
    model.finish_task()


@pytest.mark.parametrize("policy", ["mixed_bfloat16"], indirect=True)
def test_mixed_bfloat16_learns_tasks_without_forgetting(policy, fashion_stream, tmp_path):
    keras.utils.set_random_seed(0)
    model = kg.GrownModel("lenet5", seed_ratio=0.5, capacity=2.0, seed=0, growth_schedule=None)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    first, second = fashion_stream[0], fashion_stream[1]
    images, labels = task_arrays(first.test)
    _fit_task(model, first)

    for layer in model.grown_layers:
        assert layer.compute_dtype == "bfloat16"
        for variable in (layer.free_kernel, layer.frozen_kernel, layer.selective_score,
                         layer.attentive_score, layer.grown_score, layer.active):
            assert variable.dtype == "float32", variable.path
    before = model.predict(images, verbose=0)
    assert before.dtype == np.float32
    accuracy = float(np.mean(before.argmax(-1) == labels))
    assert accuracy > 0.8, f"task 1 learned only {accuracy:.2f} under mixed_bfloat16"
    # The masked network and the compact export agree to bfloat16 precision.
    model.compact_inference = False
    masked = model.predict(images, verbose=0)
    model.compact_inference = True
    np.testing.assert_allclose(masked, before, atol=0.05)
    assert np.mean(masked.argmax(-1) == before.argmax(-1)) > 0.97

    _fit_task(model, second)
    model.select_task(0)
    np.testing.assert_array_equal(model.predict(images, verbose=0), before)
    model.compact_inference = False
    np.testing.assert_array_equal(model.predict(images, verbose=0), masked)
    model.compact_inference = True

    path = str(tmp_path / "mixed.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.grown_layers[0].compute_dtype == "bfloat16"
    loaded.select_task(0)
    np.testing.assert_array_equal(loaded.predict(images, verbose=0), before)


@pytest.mark.parametrize("policy", ["mixed_float16"], indirect=True)
def test_mixed_float16_scales_the_loss_and_trains_the_mask_scores(policy, fashion_stream):
    keras.utils.set_random_seed(0)
    model = kg.GrownModel("lenet5", seed_ratio=0.5, capacity=2.0, seed=0, growth_schedule=None)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    # Keras wraps the optimizer for a mixed_float16 policy; the scores'
    # optimizer takes the unscaled gradients (tests/test_loss_scaling.py).
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    task = fashion_stream[0]
    model.add_task(task.train)
    images, labels = task_arrays(task.train)
    scores = [np.array(v.numpy(), copy=True) for v in model.controller.score_variables()]
    logs = model.train_on_batch(images[:64], labels[:64], return_dict=True)
    assert np.isfinite(logs["loss"])
    after = [v.numpy() for v in model.controller.score_variables()]
    moved = [np.abs(a - b).max() for a, b in zip(after, scores)]
    assert max(moved) > 0, "no mask score moved"
    assert all(np.isfinite(a).all() for a in after)
    model.fit(task.train.batch(64), epochs=1, verbose=0)
    model.finish_task()
    predictions = model.predict(images, verbose=0)
    assert predictions.dtype == np.float32 and np.isfinite(predictions).all()
