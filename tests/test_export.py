"""Compact export (issue 6): plain Keras models of what one finished task uses."""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

import keras_grown as kg
from keras_grown import export
from conftest import task_arrays

BATCH = 64
TOLERANCE = 1e-5


def _set_some_masks(model, rng, grown_on=0.3, kernels_off=0.2):
    """Pushes a random share of the current task's mask scores across the threshold.

    One epoch on a few hundred images rarely moves a score across 0; this sets
    the scores (the variables the masks are learned from) so that every task
    grows some dormant channels, leaves others off, and drops some kernels
    inside the channels it keeps (selective mask over frozen weights,
    attentive mask over free ones).
    """
    for layer in model.grown_layers:
        shape = layer.selective_score.shape
        off = rng.random_sample(shape) < kernels_off
        layer.selective_score.assign(np.where(off, -1.0, 1.0).astype("float32"))
        off = rng.random_sample(shape) < kernels_off
        layer.attentive_score.assign(np.where(off, -1.0, 1.0).astype("float32"))
        if model.growth_enabled:
            on = rng.random_sample(layer.grown_score.shape) < grown_on
            layer.grown_score.assign(np.where(on, 1.0, -1.0).astype("float32"))


@pytest.fixture(scope="module")
def lenet(fashion_stream):
    """LeNet-5 after 3 tasks of real Fashion-MNIST, 1 epoch each; task 1 grows."""
    keras.utils.set_random_seed(0)
    rng = np.random.RandomState(0)
    model = kg.GrownModel("lenet5", seed_ratio=0.5, capacity=2.0, l0_lambda=1e-3, seed=0)
    summaries = []
    for index, task in enumerate(list(fashion_stream)[:3]):
        model.add_task(task.train)
        model.fit(task.train.batch(BATCH), epochs=1, verbose=0)
        if index == 1:
            model.grow()
            model.fit(task.train.batch(BATCH), epochs=1, verbose=0)
        _set_some_masks(model, rng)
        summaries.append(model.finish_task())
    images = np.concatenate([task_arrays(t.test)[0][:100] for t in list(fashion_stream)[:3]])
    return model, summaries, images


@pytest.fixture(scope="module")
def exported_dir(lenet, tmp_path_factory):
    model, _, _ = lenet
    directory = tmp_path_factory.mktemp("export")
    paths = kg.export_all(model, str(directory / "lenet"))
    return directory / "lenet", paths


def _grown_predictions(model, task, images):
    """Predictions of the masked network (not the cached compact model)."""
    model.select_task(task)
    model.compact_inference = False
    try:
        return model.predict(images, verbose=0)
    finally:
        model.compact_inference = True


def test_compact_inference_predicts_like_the_masked_network(lenet, tmp_path):
    model, _, images = lenet
    model.clear_inference_cache()
    for task in range(3):
        masked = _grown_predictions(model, task, images)
        model.select_task(task)
        compact = model.predict(images, verbose=0)
        assert task in model.controller.inference_cache.models  # built once, then reused
        np.testing.assert_allclose(compact, masked, rtol=0, atol=TOLERANCE)
        assert not np.array_equal(compact, _grown_predictions(model, (task + 1) % 3, images))
    # Rebuilt after loading weights, with bitwise the same predictions.
    model.select_task(0)
    first = model.predict(images, verbose=0)
    path = str(tmp_path / "w.weights.h5")
    model.save_weights(path)
    model.load_weights(path)
    assert not model.controller.inference_cache.models
    np.testing.assert_array_equal(model.predict(images, verbose=0), first)
    # Switched off: the masked network answers.
    model.compact_inference = False
    np.testing.assert_array_equal(model.predict(images, verbose=0), _grown_predictions(model, 0, images))
    model.compact_inference = True


def _assert_same_features(plain, model, task, images):
    """Backbone features before the head agree on the channels that carry a value."""
    model.select_task(task)
    grown = keras.ops.convert_to_numpy(model.backbone(images, training=False))
    features = keras.Model(plain.input, plain.get_layer("head").input)
    exported = keras.ops.convert_to_numpy(features(images, training=False))
    # Columns that are zero for every image are off channels (grown model) or
    # padding / dead units (export); the others must line up in order.
    grown, exported = grown[:, grown.any(0)], exported[:, exported.any(0)]
    assert grown.shape == exported.shape
    np.testing.assert_allclose(
        exported, grown, rtol=0, atol=TOLERANCE * max(1, np.abs(grown).max())
    )


def _assert_plain_keras(plain):
    for layer in plain.layers:
        module = type(layer).__module__
        assert module.startswith("keras."), (layer.name, module)
        assert not isinstance(layer, keras.layers.Lambda)


def _conv_dense(plain):
    return [
        layer
        for layer in plain.layers
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)) and layer.name != "head"
    ]


def _used_and_nonzero(model, task, plain):
    """(kernel weights `task` uses by its stored masks, non-zero kernel entries of `plain`)."""
    used = sum(
        int(layer.task_kernel_mask(task).sum()) * int(np.prod(layer.kernel_spatial_shape))
        for layer in model.grown_layers
    )
    nonzero = sum(
        int(np.count_nonzero(keras.ops.convert_to_numpy(layer.kernel)))
        for layer in _conv_dense(plain)
    )
    return used, nonzero


def _lenet_channels(model, task):
    """Kept (input, output) channel indices of each LeNet-5 layer, traced by hand."""
    on = {layer.name: layer.task_channel_mask(task) for layer in model.grown_layers}
    flatten = np.tile(on["conv2"], 4 * 4)  # channels last: position * channels + channel
    inputs = {"conv1": np.ones(1, bool), "conv2": on["conv1"], "fc1": flatten, "fc2": on["fc1"]}
    return {name: (np.flatnonzero(inputs[name]), np.flatnonzero(on[name])) for name in on}


# ------------------------------------------------------------------ LeNet-5
def test_lenet_tasks_reuse_and_grow(lenet):
    _, summaries, _ = lenet
    assert summaries[1].channels_grown > 0
    assert sum(v["kernels_reused"] for v in summaries[1].layers.values()) > 0


@pytest.mark.parametrize("task", [0, 1, 2])
def test_predictions_equal_the_grown_model(lenet, task, tmp_path):
    model, _, images = lenet
    plain = export.export_task(model, task, str(tmp_path / "task.keras"), saved_model=False)
    assert isinstance(plain, keras.Model) and not isinstance(plain, kg.GrownModel)
    _assert_plain_keras(plain)
    reference = _grown_predictions(model, task, images)
    predicted = plain.predict(images, verbose=0)
    assert predicted.shape == reference.shape == (len(images), 2)
    assert np.abs(predicted - reference).max() <= TOLERANCE
    _assert_same_features(plain, model, task, images)


@pytest.mark.parametrize("task", [0, 1, 2])
def test_only_the_task_channels_and_kernels_are_kept(lenet, task):
    model, _, _ = lenet
    plain = export.build_task_model(model, task)
    channels = _lenet_channels(model, task)
    for layer in model.grown_layers:
        inputs, outputs = channels[layer.name]
        exported = plain.get_layer(layer.name)
        kernel = keras.ops.convert_to_numpy(exported.kernel)
        use = layer.task_kernel_mask(task)[np.ix_(inputs, outputs)]
        frozen = keras.ops.convert_to_numpy(layer.frozen_kernel)[..., inputs, :][..., outputs]
        assert kernel.shape == frozen.shape  # off and dormant channels removed
        spatial = (None,) * len(layer.kernel_spatial_shape)
        np.testing.assert_array_equal(kernel, np.where(use[spatial], frozen, 0.0))
        bias = layer._task_variables[task]["bias"]
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(exported.bias), keras.ops.convert_to_numpy(bias)[outputs]
        )
    head = model.heads._task_variables[task]
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(plain.get_layer("head").kernel),
        keras.ops.convert_to_numpy(head["kernel"])[channels["fc2"][1]],
    )


def test_excluded_kernels_inside_kept_channels_are_zero(lenet):
    # Task 1 reads some of task 0's frozen kernels and leaves others out
    # (selective mask): those left out hold weights in the grown model but
    # must be 0 in task 1's export.
    model, _, _ = lenet
    plain = export.build_task_model(model, 1)
    channels = _lenet_channels(model, 1)
    excluded_total = 0
    for layer in model.grown_layers:
        inputs, outputs = channels[layer.name]
        cut = np.ix_(inputs, outputs)
        owner = keras.ops.convert_to_numpy(layer.owner)[cut]
        excluded = (owner == 1) & ~layer.task_kernel_mask(1)[cut]
        frozen = keras.ops.convert_to_numpy(layer.frozen_kernel)[..., inputs, :][..., outputs]
        kernel = keras.ops.convert_to_numpy(plain.get_layer(layer.name).kernel)
        assert np.all(frozen[..., excluded] != 0)
        assert np.all(kernel[..., excluded] == 0)
        excluded_total += int(excluded.sum())
    assert excluded_total > 0


@pytest.mark.parametrize("task", [0, 1, 2])
def test_parameter_counts_are_exact(lenet, task):
    model, _, _ = lenet
    plain = export.build_task_model(model, task)
    size = export.export_size(model, task)
    # Kernel weights the task uses, from its stored masks, are exactly the
    # non-zero kernel entries of the exported Conv2D/Dense.
    used, nonzero = _used_and_nonzero(model, task, plain)
    assert size.used_kernel_weights == used == nonzero
    # Total = kept-channel conv/dense kernels and biases + head (LeNet-5 has no BN).
    channels = _lenet_channels(model, task)
    kernels = sum(
        len(channels[layer.name][0])
        * len(channels[layer.name][1])
        * int(np.prod(layer.kernel_spatial_shape))
        for layer in model.grown_layers
    )
    biases = sum(len(channels[layer.name][1]) for layer in model.grown_layers)
    head = (len(channels["fc2"][1]) + 1) * 2
    assert (size.kernel_weights, size.bias_weights, size.head_weights) == (kernels, biases, head)
    assert size.batch_norm_weights == 0 and size.padding_channels == 0
    assert plain.count_params() == size.total == kernels + biases + head
    # The head counts what model_size() counts for this task.
    assert size.head_weights == (int(model.grown_layers[-1].task_channel_mask(task).sum()) + 1) * 2


def test_grown_model_export_task_forwards(lenet, tmp_path):
    model, _, images = lenet
    path = tmp_path / "task_2.keras"
    plain = model.export_task(2, path, saved_model=False)
    assert path.is_file() and not (tmp_path / "task_2_savedmodel").exists()
    np.testing.assert_allclose(
        plain.predict(images, verbose=0), _grown_predictions(model, 2, images), atol=TOLERANCE
    )


def test_shared_weights_without_ownership(tmp_path):
    # Naive fine-tune / EWC keep nothing frozen: a finished task reads the
    # shared weights as they are now, and so does its export.
    keras.utils.set_random_seed(0)  # (a weight drawn exactly 0.0 would not count)
    rng = np.random.RandomState(0)
    model = kg.GrownModel("lenet5", seed=0, freeze_finished_tasks=False)
    images = rng.uniform(size=(8, 28, 28, 1)).astype("float32")
    model.add_task((images, np.arange(8) % 2))
    _set_some_masks(model, rng)
    model.finish_task()
    assert all(not keras.ops.convert_to_numpy(l.owner).any() for l in model.grown_layers)
    plain = export.export_task(model, 0, tmp_path / "t.keras", saved_model=False)
    np.testing.assert_allclose(
        plain.predict(images, verbose=0), _grown_predictions(model, 0, images), atol=TOLERANCE
    )
    assert export.export_size(model, 0).used_kernel_weights == sum(
        int(np.count_nonzero(keras.ops.convert_to_numpy(l.kernel))) for l in _conv_dense(plain)
    )


# ------------------------------------------------------------------ files
def test_export_all_writes_every_finished_task(lenet, exported_dir):
    model, _, _ = lenet
    directory, paths = exported_dir
    assert paths == [str(directory / f"task_{k}.keras") for k in range(3)]
    assert sorted(os.listdir(directory)) == sorted(
        [f"task_{k}.keras" for k in range(3)] + [f"task_{k}_savedmodel" for k in range(3)]
    )
    for k in range(3):
        assert (directory / f"task_{k}_savedmodel" / "saved_model.pb").is_file()
    assert export.saved_model_path(paths[0]) == str(directory / "task_0_savedmodel")


def test_exports_load_without_keras_grown(lenet, exported_dir, tmp_path):
    # A fresh interpreter that cannot import keras_grown loads the .keras file
    # with Keras alone and the SavedModel with TensorFlow alone.
    model, _, images = lenet
    directory, paths = exported_dir
    np.save(tmp_path / "images.npy", images)
    script = textwrap.dedent("""
        import json, os, sys
        sys.modules["keras_grown"] = None  # any import of keras_grown fails
        os.environ["KERAS_BACKEND"] = "tensorflow"
        import numpy as np, keras, tensorflow as tf
        images = np.load(sys.argv[1])
        out = {}
        for k, path in enumerate(json.loads(sys.argv[2])):
            plain = keras.saving.load_model(path)
            modules = {type(layer).__module__.split(".")[0] for layer in plain.layers}
            assert modules == {"keras"}, modules
            out[f"keras_{k}"] = plain.predict(images, verbose=0)
            serving = tf.saved_model.load(path[: -len(".keras")] + "_savedmodel")
            out[f"serve_{k}"] = serving.serve(tf.constant(images)).numpy()
            signature = serving.signatures["serving_default"]
            (value,) = signature(tf.constant(images)).values()
            out[f"signature_{k}"] = value.numpy()
        np.savez(sys.argv[3], **out)
        """)
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            script,
            str(tmp_path / "images.npy"),
            json.dumps(paths),
            str(tmp_path / "out.npz"),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = np.load(tmp_path / "out.npz")
    for k in range(3):
        reference = _grown_predictions(model, k, images)
        for kind in ("keras", "serve", "signature"):
            assert np.abs(out[f"{kind}_{k}"] - reference).max() <= TOLERANCE, (kind, k)


def test_overwrite_is_atomic_and_leaves_no_temporary_files(lenet, tmp_path):
    model, _, _ = lenet
    path = tmp_path / "m.keras"
    for task in (0, 1):  # the second export replaces the first one's files
        plain = export.export_task(model, task, path)
        assert sorted(os.listdir(tmp_path)) == ["m.keras", "m_savedmodel"]
    loaded = keras.saving.load_model(path)
    assert [w.shape for w in loaded.weights] == [w.shape for w in plain.weights]
    mode = os.stat(path).st_mode & 0o777
    assert mode & 0o644 == 0o644 & ~_umask()


def test_saved_model_goes_where_asked(lenet, tmp_path):
    model, _, _ = lenet
    serving = tmp_path / "serving" / "task_0" / "1"
    export.export_task(model, 0, tmp_path / "task_0.keras", saved_model=str(serving))
    assert (serving / "saved_model.pb").is_file()
    assert not (tmp_path / "task_0_savedmodel").exists()


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


# ------------------------------------------------------------------ errors
# Built once for the module: the tests make only calls that are refused or
# that write files (export_all), none changes the model.
@pytest.fixture(scope="module")
def untrained():
    """LeNet-5 with task 0 finished (no training) and task 1 being learned."""
    model = kg.GrownModel("lenet5", seed=0)
    data = (np.zeros((4, 28, 28, 1), "float32"), np.array([0, 1, 0, 1], "int32"))
    model.add_task(data)
    model.finish_task()
    model.add_task(data)
    return model


def test_errors_are_clear_and_write_nothing(untrained, tmp_path):
    model = untrained
    path = str(tmp_path / "t.keras")
    with pytest.raises(ValueError, match="still being learned.*finish_task"):
        export.export_task(model, 1, path)
    with pytest.raises(ValueError, match="out of range.*2 task"):
        export.export_task(model, 2, path)
    with pytest.raises(ValueError, match="out of range"):
        export.export_task(model, -1, path)
    with pytest.raises(TypeError, match="task index"):
        export.export_task(model, True, path)
    with pytest.raises(TypeError, match="task index"):
        export.export_task(model, "0", path)
    with pytest.raises(ValueError, match="must end in '.keras'.*t.h5"):
        export.export_task(model, 0, str(tmp_path / "t.h5"))
    with pytest.raises(TypeError, match="str or os.PathLike"):
        export.export_task(model, 0, 3)
    (tmp_path / "dir.keras").mkdir()
    with pytest.raises(ValueError, match="is a directory"):
        export.export_task(model, 0, str(tmp_path / "dir.keras"))
    (tmp_path / "t_savedmodel").write_text("not a directory")
    with pytest.raises(ValueError, match="a file is there"):
        export.export_task(model, 0, path)
    with pytest.raises(TypeError, match="GrownModel"):
        export.export_task(keras.Sequential([keras.layers.Dense(2)]), 0, path)
    assert sorted(os.listdir(tmp_path)) == ["dir.keras", "t_savedmodel"]


def test_export_all_skips_the_task_being_learned(untrained, tmp_path):
    paths = kg.export_all(untrained, tmp_path / "out", saved_model=False)
    assert paths == [str(tmp_path / "out" / "task_0.keras")]
    assert os.listdir(tmp_path / "out") == ["task_0.keras"]


def test_export_all_errors(untrained, tmp_path):
    model = kg.GrownModel("lenet5", seed=0)
    with pytest.raises(ValueError, match="none is finished"):
        kg.export_all(model, tmp_path)
    model.add_task((np.zeros((4, 28, 28, 1), "float32"), np.array([0, 1, 0, 1], "int32")))
    with pytest.raises(ValueError, match="none is finished"):
        kg.export_all(model, tmp_path)
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match="is a file"):
        kg.export_all(untrained, tmp_path / "file")
    with pytest.raises(TypeError, match="saved_model=True or False"):
        kg.export_all(untrained, tmp_path / "out", saved_model="somewhere")
    assert os.listdir(tmp_path) == ["file"]


# ------------------------------------------------------------ VGG / ResNet
def _randomize_task_state(model, rng):
    """Random biases and batch-norm state for the current task (as training would leave)."""
    task = model.current_task
    for layer in model.grown_layers:
        variables = layer._task_variables[task]
        if "bias" in variables:
            variables["bias"].assign(rng.normal(0, 0.1, variables["bias"].shape))
        if layer.normalization is not None:
            state = layer.normalization._task_variables[task]
            shape = state["gamma"].shape
            state["gamma"].assign(rng.uniform(0.5, 1.5, shape))
            state["beta"].assign(rng.normal(0, 0.1, shape))
            state["moving_mean"].assign(rng.normal(0, 0.1, shape))
            state["moving_variance"].assign(rng.uniform(0.5, 2.0, shape))


def _check_exports(model, images):
    for task in model.finished_tasks:
        plain = export.build_task_model(model, task)
        _assert_plain_keras(plain)
        reference = _grown_predictions(model, task, images)
        assert np.abs(plain.predict(images, verbose=0) - reference).max() <= TOLERANCE
        _assert_same_features(plain, model, task, images)
        size = export.export_size(model, task)
        used, nonzero = _used_and_nonzero(model, task, plain)
        assert size.used_kernel_weights == used == nonzero
        assert plain.count_params() == size.total
        norms = [l for l in plain.layers if isinstance(l, keras.layers.BatchNormalization)]
        assert size.batch_norm_weights == sum(4 * l.gamma.shape[0] for l in norms) > 0
        yield task, plain, size


def test_resnet18_add_pads_the_residual_stream():
    # No training: random masks and batch-norm state make every layer keep
    # different channels, so each Add lines up its inputs with zero channels.
    keras.utils.set_random_seed(0)
    rng = np.random.RandomState(0)
    model = kg.GrownModel(
        "resnet18", input_shape=(16, 16, 3), seed_ratio=0.25, capacity=1.0, seed=0
    )
    images = rng.uniform(size=(8, 16, 16, 3)).astype("float32")
    labels = np.array([0, 1, 2, 0, 1, 2, 0, 1], "int32")
    for _ in range(2):
        model.add_task((images, labels))
        model.grow()
        _set_some_masks(model, rng, grown_on=0.5)
        _randomize_task_state(model, rng)
        model.finish_task()
    padded = 0
    for task, plain, size in _check_exports(model, images):
        for layer in model.grown_layers:
            on = int(layer.task_channel_mask(task).sum())
            padded += plain.get_layer(layer.name).kernel.shape[-1] - on
        assert size.padding_channels > 0
    assert padded > 0


def test_vgg16_bn_one_training_step():
    keras.utils.set_random_seed(0)
    rng = np.random.RandomState(0)
    model = kg.GrownModel("vgg16_bn", input_shape=(32, 32, 3), seed_ratio=0.5, capacity=1.5, seed=0)
    images = rng.uniform(size=(16, 32, 32, 3)).astype("float32")
    labels = rng.randint(0, 3, 16).astype("int32")
    model.add_task((images, labels))
    model.fit(images, labels, batch_size=8, epochs=1, steps_per_epoch=1, verbose=0)
    _set_some_masks(model, rng)
    model.finish_task()
    for task, plain, size in _check_exports(model, images):
        assert size.padding_channels == 0  # no Add: every layer keeps exactly its channels
        for layer in model.grown_layers:
            assert plain.get_layer(layer.name).filters == layer.task_channel_mask(task).sum()


@pytest.mark.slow
def test_resnet18_two_trained_tasks(tmp_path):
    keras.utils.set_random_seed(1)
    rng = np.random.RandomState(1)
    model = kg.GrownModel("resnet18", input_shape=(32, 32, 3), seed_ratio=0.5, capacity=1.5, seed=1)
    images = rng.uniform(size=(16, 32, 32, 3)).astype("float32")
    labels = rng.randint(0, 3, 16).astype("int32")
    for index in range(2):
        model.add_task((images, labels))
        model.fit(images, labels, batch_size=8, epochs=1, steps_per_epoch=1, verbose=0)
        if index:
            model.grow()
            model.fit(images, labels, batch_size=8, epochs=1, steps_per_epoch=1, verbose=0)
        _set_some_masks(model, rng)
        model.finish_task()
    assert len(list(_check_exports(model, images))) == 2
    paths = kg.export_all(model, tmp_path)
    loaded = keras.saving.load_model(paths[1])
    np.testing.assert_allclose(
        loaded.predict(images, verbose=0), _grown_predictions(model, 1, images), atol=TOLERANCE
    )
