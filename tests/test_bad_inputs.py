"""Issue 7: wrong calls fail with a clear error and change nothing; safe loading; determinism.

Every case of the catalogue runs against a model that already learned one
finished task (and, where the call needs one, a current task): the error
must name the problem and the fix, and every variable of the model must be
bitwise what it was before the call, so nothing already learned is lost.
"""

import dataclasses
import pathlib
import re
import zipfile
from typing import Callable, Optional

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_grown as kg
from conftest import assert_weights_unchanged, task_arrays, weights_checksum
from keras_grown import cli
from keras_grown.layers import GrownConv2D, GrownDense


@keras.saving.register_keras_serializable(package="keras_grown_tests")
def tiny_backbone(inputs):
    """Another backbone whose first layer has the shape of LeNet-5's `conv1`."""
    x = GrownConv2D(20, 5, activation="relu", name="conv1")(inputs)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    return GrownDense(16, activation="relu", name="fc1")(x)


# -- models and files, built once per module -----------------------------------


@pytest.fixture(scope="module")
def lenet_file(fashion_stream, tmp_path_factory):
    """A LeNet-5 GrownModel that learned task 0 (2 batches) and finished it, saved."""
    model = kg.GrownModel("lenet5", seed=0)
    task = fashion_stream[0]
    model.add_task(task.train)
    model.fit(task.train.batch(64).take(2), epochs=1, verbose=0)
    model.finish_task()
    path = tmp_path_factory.mktemp("models") / "lenet.keras"
    model.save(path)
    return path


@pytest.fixture(scope="module")
def finished(lenet_file):
    """Loaded from its file: one finished task, no current task."""
    return keras.saving.load_model(lenet_file)


@pytest.fixture(scope="module")
def learning(lenet_file, fashion_stream):
    """One finished task (0) and a current task (1)."""
    model = keras.saving.load_model(lenet_file)
    model.add_task(fashion_stream[1].train)
    return model


@pytest.fixture(scope="module")
def fresh():
    return kg.GrownModel("lenet5", seed=1)


@pytest.fixture(scope="module")
def spent(fashion_stream):
    """A full-size seed in a pool of the full size: nothing is left to grow."""
    model = kg.GrownModel("lenet5", seed_ratio=1.0, capacity=1.0, seed=2)
    model.add_task(fashion_stream[0].train)
    return model


@pytest.fixture(scope="module")
def files(lenet_file, fashion_stream):
    folder = lenet_file.parent
    other = kg.GrownModel(tiny_backbone, seed=3)
    other.add_task(fashion_stream[0].train)
    other.finish_task()
    other.save(folder / "tiny.keras")
    (folder / "corrupt.keras").write_bytes(np.random.default_rng(0).bytes(4096))
    data = lenet_file.read_bytes()
    (folder / "truncated.keras").write_bytes(data[: len(data) // 2])
    # a zip that is still a zip, but whose weights file was cut short
    with zipfile.ZipFile(lenet_file) as source, zipfile.ZipFile(folder / "cut.keras", "w") as out:
        for name in source.namelist():
            content = source.read(name)
            out.writestr(name, content[: len(content) // 2] if name.endswith(".h5") else content)
    return {
        "lenet": lenet_file,
        "tiny": folder / "tiny.keras",
        "corrupt": folder / "corrupt.keras",
        "truncated": folder / "truncated.keras",
        "cut": folder / "cut.keras",
        "missing": folder / "missing.keras",
    }


@dataclasses.dataclass
class Context:
    stream: object
    files: dict
    images: np.ndarray
    labels: np.ndarray


@pytest.fixture(scope="module")
def ctx(fashion_stream, files):
    images, labels = task_arrays(fashion_stream[1].train)
    return Context(fashion_stream, files, images[:32], labels[:32])


# -- the catalogue -------------------------------------------------------------


@dataclasses.dataclass
class Case:
    id: str
    model: Optional[str]  # the fixture the call is made on (None: no model)
    call: Callable
    error: type
    match: str  # regex over the message: the problem and the fix


def _pairs(images, labels):
    return tf.data.Dataset.from_tensor_slices((images, labels))


def _images(shape, dtype="float32", count=8):
    return np.random.default_rng(0).random((count,) + shape).astype(dtype)


LABELS = np.array([0, 1] * 4, "int32")


def _fit(model, *args, **kwargs):
    kwargs.setdefault("verbose", 0)
    kwargs.setdefault("epochs", 1)
    return model.fit(*args, **kwargs)


def _fit_other_task_selected(model, ctx):
    model.select_task(0)
    try:
        _fit(model, ctx.images, ctx.labels, batch_size=16)
    finally:
        model.select_task(1)


def _fit_nan_images(model, ctx):
    images = ctx.images.copy()
    images[3, 5, 5, 0] = np.nan
    _fit(model, images, ctx.labels, batch_size=8)


def _fit_huge_learning_rate(model, ctx):
    settings = model.controller.compiled_with()
    model.compile(optimizer=keras.optimizers.SGD(1e12), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    try:
        _fit(model, ctx.images, ctx.labels, batch_size=8, epochs=2)
    finally:
        model.controller.compile_settings.arguments = settings  # back to the model's own settings
        model.controller.recompile()


def _resized(task, size):
    def resize(dataset):
        return dataset.map(lambda x, y: (tf.image.resize(x, size), y))

    return dataclasses.replace(task, train=resize(task.train), val=resize(task.val),
                               test=resize(task.test), input_shape=size + (1,))


CASES = [
    # add_task(): the data of a new task
    Case("add_task-uint8-images", "finished",
         lambda m, c: m.add_task((_images((28, 28, 1), "uint8"), LABELS)),
         ValueError, r"floating point.*uint8.*Cast and scale"),
    Case("add_task-wrong-image-size", "finished",
         lambda m, c: m.add_task((_images((32, 32, 1)), LABELS)),
         ValueError, r"images of shape \(28, 28, 1\).*\(32, 32, 1\).*Reshape the data"),
    Case("add_task-wrong-channels", "finished",
         lambda m, c: m.add_task((_images((28, 28, 3)), LABELS)),
         ValueError, r"images of shape \(28, 28, 1\).*\(28, 28, 3\).*input_shape="),
    Case("add_task-no-channel-axis", "finished",
         lambda m, c: m.add_task((_images((28, 28)), LABELS)),
         ValueError, r"images of shape \(28, 28, 1\).*\(28, 28\)\..*Reshape"),
    Case("add_task-negative-label", "finished",
         lambda m, c: m.add_task((_images((28, 28, 1)), LABELS - 1)),
         ValueError, r"label -1.*Remap the task's labels to 0..k-1"),
    Case("add_task-labels-beyond-num_classes", "finished",
         lambda m, c: m.add_task((_images((28, 28, 1)), np.arange(8) % 4), num_classes=2),
         ValueError, r"Labels must be in 0..1 for num_classes=2.*label 3.*right num_classes="),
    Case("add_task-a-single-class", "finished",
         lambda m, c: m.add_task((_images((28, 28, 1)), LABELS * 0)),
         ValueError, r"at least 2 classes.*Pass num_classes="),
    Case("add_task-num_classes-1", "finished",
         lambda m, c: m.add_task((_images((28, 28, 1)), LABELS), num_classes=1),
         ValueError, r"num_classes must be an integer >= 2. Received: num_classes=1"),
    Case("add_task-num_classes-a-string", "finished",
         lambda m, c: m.add_task((_images((28, 28, 1)), LABELS), num_classes="2"),
         ValueError, r"num_classes must be an integer >= 2. Received: num_classes='2'"),
    Case("add_task-float-labels", "finished",
         lambda m, c: m.add_task((_images((28, 28, 1)), LABELS.astype("float32"))),
         ValueError, r"integer class indices.*float32.*tf\.cast\(y, tf\.int32\)"),
    Case("add_task-empty-dataset", "finished",
         lambda m, c: m.add_task((_images((28, 28, 1), count=0), LABELS[:0])),
         ValueError, r"empty dataset.*Check the pipeline"),
    Case("add_task-dataset-of-dicts", "finished",
         lambda m, c: m.add_task(tf.data.Dataset.from_tensor_slices(
             {"image": _images((28, 28, 1)), "label": LABELS})),
         ValueError, r"\(image, label\) pairs.*element_spec=\{.*Map it to \(x, y\)"),
    Case("add_task-images-without-labels", "finished",
         lambda m, c: m.add_task(tf.data.Dataset.from_tensor_slices(_images((28, 28, 1)))),
         ValueError, r"\(image, label\) pairs.*Map it to \(x, y\)"),
    Case("add_task-nested-images", "finished",
         lambda m, c: m.add_task(_pairs((_images((28, 28, 1)), _images((28, 28, 1))), LABELS)),
         ValueError, r"not nested structures.*Map it to \(x, y\)"),
    Case("add_task-nan-images", "finished",
         lambda m, c: m.add_task((np.where(np.arange(8)[:, None, None, None] == 5, np.nan,
                                           _images((28, 28, 1))).astype("float32"), LABELS)),
         ValueError, r"NaN or inf.*Clean the data first.*filter"),
    Case("add_task-not-a-dataset", "finished",
         lambda m, c: m.add_task({"x": _images((28, 28, 1)), "y": LABELS}),
         TypeError, r"Expected a tf\.data\.Dataset of \(image, label\) pairs.*received dict"),
    # the task life cycle
    Case("add_task-while-a-task-is-unfinished", "learning",
         lambda m, c: m.add_task(c.stream[2].train),
         ValueError, r"Task 1 is not finished\. Call finish_task\(\) before add_task\(\)"),
    Case("select_task-out-of-range", "learning", lambda m, c: m.select_task(2),
         ValueError, r"select_task\(2\) is out of range.*2 task\(s\), numbered 0 to 1"),
    Case("select_task-negative", "learning", lambda m, c: m.select_task(-1),
         ValueError, r"select_task\(-1\) is out of range.*numbered 0 to 1"),
    Case("select_task-a-string", "learning", lambda m, c: m.select_task("0"),
         TypeError, r"select_task\(\) takes a task index \(int\)\. Received: '0'"),
    Case("select_task-a-float", "learning", lambda m, c: m.select_task(1.0),
         TypeError, r"task index \(int\)\. Received: 1\.0"),
    Case("finish_task-without-a-task", "finished", lambda m, c: m.finish_task(),
         ValueError, r"finish_task\(\) needs a task being learned\. Call add_task\(\) first"),
    Case("grow-without-a-task", "finished", lambda m, c: m.grow(),
         ValueError, r"grow\(\) needs a task being learned\. Call add_task\(\) first"),
    Case("grow-with-the-capacity-spent", "spent", lambda m, c: m.grow(),
         ValueError, r"capacity is spent.*larger capacity="),
    Case("fit-before-add_task", "fresh", lambda m, c: _fit(m, c.images, c.labels),
         ValueError, r"fit\(\) needs a task: call model\.add_task\(dataset\) first"),
    Case("fit-after-every-task-finished", "finished", lambda m, c: _fit(m, c.images, c.labels),
         ValueError, r"task\(s\) are finished.*Call add_task\(\)"),
    Case("fit-with-another-task-selected", "learning", _fit_other_task_selected,
         ValueError, r"Task 0 is selected.*Call select_task\(1\) before fit\(\)"),
    # fit(): the data of the current task
    Case("fit-wrong-image-shape", "learning",
         lambda m, c: _fit(m, _pairs(_images((32, 32, 1)), LABELS).batch(4)),
         ValueError, r"fit\(x=\.\.\.\): this model takes images of shape \(28, 28, 1\).*"
                     r"\(None, 32, 32, 1\).*Reshape"),
    Case("fit-wrong-channels-arrays", "learning",
         lambda m, c: _fit(m, _images((28, 28, 3)), LABELS),
         ValueError, r"\(28, 28, 1\).*\(8, 28, 28, 3\).*input_shape="),
    Case("fit-uint8-images", "learning",
         lambda m, c: _fit(m, (c.images * 255).astype("uint8"), c.labels),
         ValueError, r"floating point.*uint8.*Cast and scale"),
    Case("fit-unbatched-dataset", "learning",
         lambda m, c: _fit(m, c.stream[1].train),
         ValueError, r"single images of shape \(28, 28, 1\).*dataset\.batch\(64\)"),
    Case("fit-validation-data-of-the-wrong-shape", "learning",
         lambda m, c: _fit(m, c.images, c.labels, validation_data=(_images((32, 32, 1)), LABELS)),
         ValueError, r"fit\(validation_data=\.\.\.\).*\(28, 28, 1\).*\(8, 32, 32, 1\)"),
    Case("fit-labels-out-of-range-arrays", "learning",
         lambda m, c: _fit(m, c.images, c.labels + 4),
         ValueError, r"task 1 has 2 classes.*0\.\.1; received labels 4\.\.5.*Remap"),
    Case("fit-labels-out-of-range-dataset", "learning",
         lambda m, c: _fit(m, _pairs(c.images, c.labels + 4).batch(8)),
         ValueError, r"outside the classes of task 1.*label value of [45].*Remap.*restored"),
    Case("fit-nan-in-the-inputs", "learning", _fit_nan_images,
         FloatingPointError, r"NaN or inf.*check the inputs for NaN.*restored"),
    Case("fit-learning-rate-makes-the-loss-nan", "learning", _fit_huge_learning_rate,
         FloatingPointError, r"loss became NaN or inf.*Lower the learning rate.*restored"),
    # the constructor (no model exists yet)
    Case("seed_ratio-0", None, lambda m, c: kg.GrownModel(seed_ratio=0.0),
         ValueError, r"seed_ratio .* must be in \(0, 1\]\. Received: seed_ratio=0\.0"),
    Case("seed_ratio-1.5", None, lambda m, c: kg.GrownModel(seed_ratio=1.5),
         ValueError, r"seed_ratio .* must be in \(0, 1\]\. Received: seed_ratio=1\.5"),
    Case("capacity-0.5", None, lambda m, c: kg.GrownModel(capacity=0.5),
         ValueError, r"capacity .* must be >= 1\. Received: capacity=0\.5"),
    Case("l0_lambda-negative", None, lambda m, c: kg.GrownModel(l0_lambda=-0.1),
         ValueError, r"l0_lambda must be >= 0\. Received: l0_lambda=-0\.1"),
    Case("temperature-0", None, lambda m, c: kg.GrownModel(temperature=0.0),
         ValueError, r"temperature must be positive\. Received: temperature=0\.0"),
    Case("temperature-negative", None, lambda m, c: kg.GrownModel(temperature=-1.0),
         ValueError, r"temperature must be positive\. Received: temperature=-1\.0"),
    Case("unknown-backbone", None, lambda m, c: kg.GrownModel(backbone="alexnet"),
         ValueError, r"Unknown backbone 'alexnet'\. Expected one of \['lenet5', 'lenet_small', 'resnet18'"),
    Case("unknown-gumbel-form", None, lambda m, c: kg.GrownModel(gumbel="gauss"),
         ValueError, r"gumbel='gauss'\. Use 'concrete'.*or 'paper'"),
    Case("mask_learning_rate-0", None, lambda m, c: kg.GrownModel(mask_learning_rate=0.0),
         ValueError, r"mask_learning_rate must be positive\. Received: mask_learning_rate=0\.0"),
    Case("unknown-l0_scope", None, lambda m, c: kg.GrownModel(l0_scope="all"),
         ValueError, r"l0_scope must be one of \('grown_channels', 'new_weights'\)"),
    Case("capacity-inf", None, lambda m, c: kg.GrownModel(capacity=float("inf")),
         ValueError, r"capacity must be a finite number >= 1 .*Received: capacity=inf"),
    Case("seed_ratio-nan", None, lambda m, c: kg.GrownModel(seed_ratio=float("nan")),
         ValueError, r"seed_ratio must be a finite number in \(0, 1\]\. Received: seed_ratio=nan"),
    Case("temperature-inf", None, lambda m, c: kg.GrownModel(temperature=float("inf")),
         ValueError, r"temperature must be a finite number > 0\. Received: temperature=inf"),
    Case("l0_lambda-nan", None, lambda m, c: kg.GrownModel(l0_lambda=float("nan")),
         ValueError, r"l0_lambda must be a finite number >= 0\. Received: l0_lambda=nan"),
    Case("mask_learning_rate-inf", None,
         lambda m, c: kg.GrownModel(mask_learning_rate=float("inf")),
         ValueError, r"mask_learning_rate must be a finite number > 0\. "
                     r"Received: mask_learning_rate=inf"),
    Case("input_shape-0", None, lambda m, c: kg.GrownModel(input_shape=(0, 28, 1)),
         ValueError, r"input_shape is the shape of one image.*positive integers\. "
                     r"Received: input_shape=\(0, 28, 1\)"),
    Case("input_shape-negative", None, lambda m, c: kg.GrownModel(input_shape=(28, -28, 1)),
         ValueError, r"positive integers\. Received: input_shape=\(28, -28, 1\)"),
    Case("lenet5-on-8x8-images", None, lambda m, c: kg.GrownModel(input_shape=(8, 8, 1)),
         ValueError, r"backbone 'lenet5' cannot take images of input_shape=\(8, 8, 1\).*"
                     r"smallest input it takes is 16x16 \(input_shape=\(16, 16, 1\)\)\. "
                     r"Resize the images, or use backbone='lenet_small'"),
    Case("own-backbone-on-images-too-small", None,
         lambda m, c: kg.GrownModel(tiny_backbone, input_shape=(3, 3, 1)),
         ValueError, r"cannot take images of input_shape=\(3, 3, 1\).*"
                     r"smallest input it takes is 5x5"),
    # add_task(): a head that cannot fit, refused before anything is created
    Case("add_task-num_classes-too-large-for-memory", "finished",
         lambda m, c: m.add_task((_images((28, 28, 1)), LABELS), num_classes=10**9),
         ValueError, r"num_classes=1000000000.*1,000 x 1,000,000,000 float32 weights, "
                     r"3\.6 TiB.*more than the .* of memory available.*labels of this data go "
                     r"up to 1: pass the task's real number of classes"),
    # evaluate() / test_on_batch(): labels of the selected task
    Case("evaluate-labels-out-of-range-arrays", "learning",
         lambda m, c: m.evaluate(c.images, c.labels + 4, verbose=0),
         ValueError, r"evaluate\(\): task 1 has 2 classes.*0\.\.1; received labels 4\.\.5.*"
                     r"select_task\(\)"),
    Case("evaluate-labels-out-of-range-dataset", "learning",
         lambda m, c: m.evaluate(_pairs(c.images, c.labels + 4).batch(8), verbose=0),
         ValueError, r"evaluate\(\): a label is outside the classes of task 1 \(2 classes\).*"
                     r"label value of [45].*Remap the labels"),
    Case("evaluate-a-finished-task-with-labels-of-another", "finished",
         lambda m, c: m.evaluate(_pairs(c.images, c.labels + 2).batch(8), verbose=0),
         ValueError, r"outside the classes of task 0.*select the task they belong to"),
    Case("test_on_batch-labels-out-of-range", "learning",
         lambda m, c: m.test_on_batch(c.images, c.labels - 1),
         ValueError, r"test_on_batch\(\): task 1 has 2 classes.*received labels -1\.\.0"),
    # learn(): refused before anything is trained
    Case("learn-epochs-0", "finished", lambda m, c: kg.learn(m, c.stream[1:3], epochs=0),
         ValueError, r"epochs must be .*>= 1.*Received: epochs=0"),
    Case("learn-target-2", "finished", lambda m, c: kg.learn(m, c.stream[1:3], target=2),
         ValueError, r"target must be an accuracy in \(0, 1\], 'scratch' or None.*target=2"),
    Case("learn-batch_size-0", "finished", lambda m, c: kg.learn(m, c.stream[1:3], batch_size=0),
         ValueError, r"batch_size must be an integer >= 1\. Received: batch_size=0"),
    Case("learn-empty-stream", "finished", lambda m, c: kg.learn(m, []),
         ValueError, r"empty stream"),
    Case("learn-a-stream-that-changes-the-input-shape", "finished",
         lambda m, c: kg.learn(m, [c.stream[1], _resized(c.stream[2], (32, 32))], epochs=1),
         ValueError, r"learn\(\): task 1 \(task_2\)\.train: this model takes images of shape "
                     r"\(28, 28, 1\).*\(32, 32, 1\).*Reshape"),
    Case("learn-with-a-task-unfinished", "learning", lambda m, c: kg.learn(m, c.stream[2:3]),
         ValueError, r"task 1 of the model is not finished\. Call model\.finish_task\(\) first"),
    # files
    Case("load_weights-missing-file", "finished",
         lambda m, c: m.load_weights(c.files["missing"]),
         FileNotFoundError, r"there is no file .*missing\.keras.*Check the path"),
    Case("load_weights-corrupt-file", "finished",
         lambda m, c: m.load_weights(c.files["corrupt"]),
         ValueError, r"corrupt\.keras.*failed.*the model is unchanged.*save the file again"),
    Case("load_weights-truncated-file", "finished",
         lambda m, c: m.load_weights(c.files["truncated"]),
         ValueError, r"truncated\.keras.*failed.*the model is unchanged.*save the file again"),
    Case("load_weights-weights-cut-short", "finished",
         lambda m, c: m.load_weights(c.files["cut"]),
         ValueError, r"cut\.keras.*failed.*the model is unchanged.*save the file again"),
    Case("load_weights-another-backbone", "finished",
         lambda m, c: m.load_weights(c.files["tiny"]),
         ValueError, r"tiny\.keras.*failed.*unchanged.*Weights load only into a GrownModel "
                     r"with the backbone.*keras\.saving\.load_model"),
    Case("load_model-missing-file", None,
         lambda m, c: keras.saving.load_model(c.files["missing"]),
         ValueError, r"missing\.keras\. Please ensure the file is an accessible `\.keras` zip"),
    Case("load_model-corrupt-file", None,
         lambda m, c: keras.saving.load_model(c.files["corrupt"]),
         ValueError, r"corrupt\.keras\. Please ensure the file is an accessible `\.keras` zip"),
    Case("load_model-truncated-file", None,
         lambda m, c: keras.saving.load_model(c.files["truncated"]),
         ValueError, r"truncated\.keras\. Please ensure the file is an accessible `\.keras` zip"),
]


def _task_state(model):
    return (model.num_tasks, model.current_task, model.selected_task, model.growth_enabled,
            tuple(model.finished_tasks))


def test_the_catalogue_is_large_and_named_uniquely():
    assert len(CASES) >= 25
    assert len({case.id for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_a_wrong_call_names_the_fix_and_changes_nothing(case, request, ctx):
    model = request.getfixturevalue(case.model) if case.model else None
    if model is not None:
        before = weights_checksum(model)
        state = _task_state(model)
    with pytest.raises(case.error) as raised:
        case.call(model, ctx)
    message = str(raised.value)
    assert re.search(case.match, message, re.S), f"{message!r} does not match {case.match!r}"
    assert "Traceback" not in message
    if model is not None:
        assert_weights_unchanged(model, before)
        assert _task_state(model) == state


def test_the_default_backbone_takes_the_stream_and_lenet5s_smallest_input_is_measured():
    assert kg.backbones.smallest_input("lenet5", (28, 28, 1)) == (
        kg.backbones.LENET5_SMALLEST_INPUT,) * 2
    assert kg.backbones.smallest_input("lenet_small", (8, 8, 1)) == (4, 4)
    assert kg.backbones.default_backbone((28, 28, 1)) == "lenet5"
    assert kg.backbones.default_backbone((16, 16, 3)) == "lenet5"
    assert kg.backbones.default_backbone((8, 8, 1)) == "lenet_small"
    model = kg.GrownModel(kg.backbones.default_backbone((8, 8, 1)), input_shape=(8, 8, 1))
    assert model.backbone.output_shape == (None, 200)  # fc2: 100 x capacity 2


def test_other_backbones_weights_would_load_in_part(files):
    """Why load_weights() restores on failure: Keras loads the layers that match first."""
    model = kg.GrownModel("lenet5", seed=4)
    model.add_task((_images((28, 28, 1)), LABELS))
    model.finish_task()
    before = weights_checksum(model)
    with pytest.raises(ValueError):
        keras.Model.load_weights(model, files["tiny"])
    changed = [not np.array_equal(a, b.numpy()) for a, b in zip(before, model.variables)]
    assert any(changed), "the test file no longer shares a layer shape with LeNet-5"
    with pytest.raises(ValueError, match="unchanged"):
        model.load_weights(files["tiny"])
    model.load_weights(files["lenet"])  # a matching file still loads


def test_nan_stops_training_and_the_finished_task_is_bitwise_intact(learning, ctx):
    images = task_arrays(ctx.stream[0].test)[0][:64]
    learning.select_task(0)
    reference = learning.predict(images, verbose=0)
    learning.select_task(1)
    with pytest.raises(FloatingPointError, match="Lower the learning rate"):
        _fit_huge_learning_rate(learning, ctx)
    learning.select_task(0)
    np.testing.assert_array_equal(learning.predict(images, verbose=0), reference)
    learning.select_task(1)
    # restored, so the task trains on at a sane learning rate (float64 images
    # are not an error: Keras casts them to the model's float32)
    history = _fit(learning, ctx.images.astype("float64"), ctx.labels, batch_size=16)
    assert np.isfinite(history.history["loss"][0])
    assert all(np.isfinite(v.numpy()).all() for v in learning.trainable_variables)
    learning.select_task(0)
    np.testing.assert_array_equal(learning.predict(images, verbose=0), reference)
    learning.select_task(1)


# -- the command line ------------------------------------------------------------

SMALL = ["--num-tasks", "5", "--train-per-task", "32", "--no-tensorboard"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["run", "--stream", "mnist"], "argument --stream: invalid choice: 'mnist'"),
        (["run", "--epochs", "0"], "argument --epochs: expected a positive integer; received 0"),
        (["run", "--target", "2"], "--target must be in (0, 1] (an accuracy, e.g. 0.95)"),
        (["run", "--seed-ratio", "0"] + SMALL, "must be in (0, 1]. Received: seed_ratio=0.0"),
        (["run", "--learning-rate", "1e12", "--epochs", "1", "--batch-size", "8"] + SMALL,
         "Lower the learning rate"),
    ],
    ids=["unknown-stream", "epochs-0", "target-2", "seed-ratio-0", "learning-rate-nan"],
)
def test_cli_bad_arguments_exit_nonzero_with_one_error_line(argv, message, tmp_path, capsys):
    code = cli.main(argv + ["--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    errors = [line for line in lines if "error:" in line]
    assert len(errors) == 1 and errors[0] == lines[-1], err
    assert lines[-1].startswith("keras-grown run: error: ") and message in lines[-1], err
    if not any(line.startswith("usage:") for line in lines):
        assert len(lines) == 1, err  # errors after parsing: one line, nothing else


# -- safe loading ----------------------------------------------------------------


def test_a_file_with_a_lambda_layer_is_refused_in_safe_mode(tmp_path):
    inputs = keras.Input((4,))
    unsafe = keras.Model(inputs, keras.layers.Lambda(lambda x: x * 2.0)(inputs))
    path = tmp_path / "lambda.keras"
    unsafe.save(path)
    with pytest.raises(ValueError, match=r"lambda.*safe_mode=False"):
        keras.saving.load_model(path)


def test_grown_model_round_trips_in_safe_mode_without_pickle(lenet_file, fashion_stream):
    images = task_arrays(fashion_stream[0].test)[0][:32]
    model = keras.saving.load_model(lenet_file, safe_mode=True)
    again = keras.saving.load_model(lenet_file, safe_mode=True)
    for loaded in (model, again):
        loaded.select_task(0)
    np.testing.assert_array_equal(model.predict(images, verbose=0),
                                  again.predict(images, verbose=0))
    with zipfile.ZipFile(lenet_file) as archive:
        assert sorted(archive.namelist()) == ["config.json", "metadata.json", "model.weights.h5"]
        config = archive.read("config.json").decode()
    assert "__lambda__" not in config and '"Lambda"' not in config and "pickle" not in config
    assert '"registered_name": "keras_grown>GrownModel"' in config


def test_keras_grown_never_loads_unsafely_and_registers_its_classes():
    package = pathlib.Path(kg.__file__).parent
    for source in package.rglob("*.py"):
        text = source.read_text()
        assert not re.search(r"safe_mode\s*=\s*False", text), source
        assert "enable_unsafe_deserialization" not in text, source
    for name, obj in [
        ("GrownModel", kg.GrownModel),
        ("GrownConv2D", kg.layers.GrownConv2D),
        ("GrownDense", kg.layers.GrownDense),
        ("TaskBatchNorm", kg.layers.TaskBatchNorm),
        ("TaskHeads", kg.layers.TaskHeads),
        ("lenet5", kg.backbones.lenet5),
        ("vgg16_bn", kg.backbones.vgg16_bn),
        ("resnet18", kg.backbones.resnet18),
    ]:
        assert keras.saving.get_registered_object(f"keras_grown>{name}") is obj
        assert keras.saving.get_registered_name(obj) == f"keras_grown>{name}"


# -- determinism -----------------------------------------------------------------


@pytest.fixture
def op_determinism_restored():
    from tensorflow.python.framework import config as tf_config

    enabled = tf_config.is_op_determinism_enabled()
    yield
    if not enabled:
        tf_config.disable_op_determinism()


def test_set_seed_makes_two_learn_runs_bitwise_identical(op_determinism_restored):
    stream = kg.datasets.split_fashion_mnist(
        num_tasks=5, train_per_task=64, val_fraction=0.25, test_per_task=32, seed=0
    )[:2]
    runs = []
    for _ in range(2):
        kg.set_seed(11, deterministic=True)
        model = kg.GrownModel("lenet5", seed_ratio=0.5, capacity=1.5, seed=11)
        result = kg.learn(model, stream, epochs=1, batch_size=16, target=None)
        runs.append((result.accuracy.values, weights_checksum(model)))
    from tensorflow.python.framework import config as tf_config

    assert tf_config.is_op_determinism_enabled()
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    assert len(runs[0][1]) == len(runs[1][1])
    for first, second in zip(runs[0][1], runs[1][1]):
        np.testing.assert_array_equal(first, second)


def test_a_failed_fit_restores_from_a_snapshot_spilled_to_disk(ctx, tmp_path, monkeypatch):
    # A snapshot above fit_snapshot_memory_limit goes to a temporary folder:
    # restored from there bitwise when training fails, and removed after.
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    keras.utils.set_random_seed(0)
    model = kg.GrownModel("lenet5", seed=0, l0_lambda=1e-3)
    model.add_task((ctx.images, ctx.labels))
    _fit(model, ctx.images, ctx.labels, batch_size=16)
    model.fit_snapshot_memory_limit = 0  # always spill
    seen = []

    class Look(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            seen.append(sorted(p.name for p in tmp_path.iterdir()))

    model.compile(optimizer=keras.optimizers.SGD(1e12), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    before = weights_checksum(model)
    with pytest.raises(FloatingPointError, match="restored to its state before this fit"):
        _fit(model, ctx.images, ctx.labels, batch_size=8, epochs=2, callbacks=[Look()])
    assert seen and seen[0] and seen[0][0].startswith("keras_grown_fit_")
    assert_weights_unchanged(model, before)
    assert list(tmp_path.iterdir()) == []
