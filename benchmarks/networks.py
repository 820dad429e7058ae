"""The contenders the benchmarks time: a GrownModel in the middle of a stream and
plain Keras networks of the same shapes.

* `grown_on_second_task()`: a `GrownModel` with one finished task, learning
  task 1 with `grow()` on, so the selective, attentive and grown masks are all
  sampled in every training step (the most expensive step GROWN has).
* `plain_network()` / `plain_twin()`: the same backbone built from standard Keras layers
  (`Conv2D`, `Dense`, `BatchNormalization`), either at the width the
  GrownModel allocates (`capacity` x full-size: the same conv/dense shapes, so
  the difference is the cost of the masks and the owner/frozen/free storage)
  or at the full-size width (what a user without GROWN would train).
"""

import math

import keras
import numpy as np
import tensorflow as tf

from keras_grown import GrownModel, datasets

BACKBONE_INPUTS = {"lenet5": (28, 28, 1), "vgg16_bn": (32, 32, 3), "resnet18": (32, 32, 3)}

_COMPILE = dict(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])


def task_batches(backbone, batch_size, num_classes=2, seed=0):
    """Two tasks' worth of `(images, labels)` arrays for a backbone.

    LeNet-5 gets real Fashion-MNIST (tasks 0 and 1 of Split Fashion-MNIST);
    the 32x32x3 backbones get uniform noise (no CIFAR files on these
    machines; the data does not change the time of a step).
    """
    shape = BACKBONE_INPUTS[backbone]
    if shape == (28, 28, 1):
        stream = datasets.split_fashion_mnist(
            num_tasks=5,
            train_per_task=max(2 * batch_size, 64),
            val_fraction=0.0,
            test_per_task=20,
            seed=seed,
        )
        return [_arrays(stream[k].train, batch_size) for k in (0, 1)]
    rng = np.random.default_rng(seed)
    return [
        (
            rng.random((batch_size,) + shape, dtype=np.float32),
            rng.integers(0, num_classes, batch_size).astype("int32"),
        )
        for _ in range(2)
    ]


def _arrays(dataset, count):
    images, labels = next(iter(dataset.batch(count)))
    return images.numpy(), labels.numpy()


def grown_on_second_task(
    backbone,
    data,
    jit_compile=False,
    seed_ratio=0.5,
    capacity=2.0,
    task0_steps=4,
    batch_size=None,
    num_classes=2,
    grow=True,
    task0_grow=True,
    **settings,
):
    """A GrownModel that finished task 0 and is learning task 1.

    Task 0 trains `task0_steps` steps (eager graph; growth on as GROWN does
    for the first task, unless `task0_grow=False`: then the model is the seed,
    of size about `seed_ratio ** 2`) and is finished; task 1 is added, then
    `grow()` is called when `grow`, and the model is compiled with
    `jit_compile`. `settings` go to `GrownModel` (e.g. `compact_training`).
    """
    (x0, y0), (x1, y1) = data
    batch_size = batch_size or len(x0)
    model = GrownModel(
        backbone=backbone,
        input_shape=BACKBONE_INPUTS[backbone],
        seed_ratio=seed_ratio,
        capacity=capacity,
        **settings,
    )
    model.compile(**_COMPILE, jit_compile=False)
    first = tf.data.Dataset.from_tensor_slices((x0, y0))
    model.add_task(first, num_classes=num_classes, grow=task0_grow)
    model.fit(first.repeat().batch(batch_size), steps_per_epoch=task0_steps, epochs=1, verbose=0)
    model.finish_task()
    model.compile(**_COMPILE, jit_compile=jit_compile)
    model.add_task(tf.data.Dataset.from_tensor_slices((x1, y1)), num_classes=num_classes)
    if grow:
        model.grow()
    return model


def plain_twin(grown, width="allocated", num_classes=2, jit_compile=False, compile=True):
    """`plain_network()` with the backbone and capacity of a GrownModel.

    `width="planned"`: every layer as wide as the channels the GrownModel's
    current step computes (its plan: the active channels, plus this growth
    round's candidates), the plain network a user would train for that width.
    """
    if width == "planned":
        width = [len(layer.plan.out_index) for layer in grown.grown_layers]
    return plain_network(
        grown.backbone_name, width, grown.capacity, num_classes, jit_compile, compile
    )


def plain_network(
    backbone, width="allocated", capacity=2.0, num_classes=2, jit_compile=False, compile=True,
    head=True,
):
    """A plain Keras network with the layers of a keras_grown backbone.

    Every `GrownConv2D`/`GrownDense` of `keras_grown.backbones` becomes a
    `Conv2D`/`Dense` (then `BatchNormalization` when the grown layer has batch
    norm, then the activation) with the width a GrownModel allocates
    (`width="allocated"`: `ceil(units * capacity)`, as `GrownLayer` does),
    the full-size width (`width="full"`) or the given widths (a list, one per
    grown layer); the head is a softmax `Dense` (none with `head=False`). It
    needs no GrownModel, so a memory measurement of it holds nothing else.
    """
    explicit = None if isinstance(width, str) else list(width)
    if explicit is None and width not in ("allocated", "full"):
        raise ValueError(
            f"width must be 'allocated', 'full' or a list of widths. Received: width={width!r}"
        )
    if backbone not in _PLAIN_LAYERS:
        raise ValueError(
            f"No plain network for backbone {backbone!r}; use {sorted(_PLAIN_LAYERS)}."
        )

    def units(full_size):
        if explicit is not None:
            return explicit.pop(0)
        if width == "full":
            return full_size
        return max(full_size, math.ceil(full_size * capacity))

    layers = [keras.Input(BACKBONE_INPUTS[backbone], name="image")]
    for kind, *spec in _PLAIN_LAYERS[backbone]:
        if kind == "conv":
            filters, size, batch_norm = spec
            layers.append(
                keras.layers.Conv2D(
                    units(filters),
                    size,
                    padding="same" if batch_norm else "valid",
                    use_bias=not batch_norm,
                )
            )
            if batch_norm:
                layers.append(keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-3))
            layers.append(keras.layers.Activation("relu"))
        elif kind == "dense":
            layers.append(keras.layers.Dense(units(spec[0]), activation="relu"))
        elif kind == "pool":
            layers.append(keras.layers.MaxPooling2D(2))
        elif kind == "flatten":
            layers.append(keras.layers.Flatten())
        elif kind == "gap":
            layers.append(keras.layers.GlobalAveragePooling2D())
    if head:
        layers.append(keras.layers.Dense(num_classes, activation="softmax", name="head"))
    label = width if explicit is None else "planned"
    model = keras.Sequential(layers, name=f"plain_{backbone}_{label}")
    if compile:
        model.compile(**_COMPILE, jit_compile=jit_compile)
    return model


# keras_grown.backbones, layer by layer (conv: filters, kernel size, batch norm).
_PLAIN_LAYERS = {
    "lenet5": [
        ("conv", 20, 5, False),
        ("pool",),
        ("conv", 50, 5, False),
        ("pool",),
        ("flatten",),
        ("dense", 800),
        ("dense", 500),
    ],
    "vgg16_bn": [
        ("pool",) if item == "M" else ("conv", item, 3, True)
        for item in (
            64,
            64,
            "M",
            128,
            128,
            "M",
            256,
            256,
            256,
            "M",
            512,
            512,
            512,
            "M",
            512,
            512,
            512,
            "M",
        )
    ]
    + [("gap",)],
}


def check_same_shapes(grown, plain):
    """Raises unless the plain network's conv/dense kernels have the GrownModel's shapes."""
    plain_shapes = [
        tuple(layer.kernel.shape)
        for layer in plain.layers
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)) and layer.name != "head"
    ]
    grown_shapes = [tuple(layer.free_kernel.shape) for layer in grown.grown_layers]
    if plain_shapes != grown_shapes:
        raise AssertionError(
            f"plain kernels {plain_shapes} differ from the GrownModel's {grown_shapes}"
        )


def step_runner(model, x, y, steps):
    """`fn() -> seconds per step` running `steps` compiled training steps of `model`.

    Times `model.train_function(iterator)` on one batch repeated (the input
    pipeline is out of the measurement), after `make_train_function()`; the
    caller warms it up first.
    """
    iterator = iter(tf.data.Dataset.from_tensors((x, y)).repeat())
    model.make_train_function()
    function = model.train_function

    def run():
        import time

        start = time.perf_counter()
        for _ in range(steps):
            logs = function(iterator)
        float(logs["loss"])
        return (time.perf_counter() - start) / steps

    return run


def forward_runner(model, x, steps, jit_compile=False):
    """`fn() -> seconds per batch` of compiled inference (`model(x, training=False)`)."""
    forward = tf.function(lambda images: model(images, training=False), jit_compile=jit_compile)
    x = tf.convert_to_tensor(x)

    def run():
        import time

        start = time.perf_counter()
        for _ in range(steps):
            outputs = forward(x)
        outputs.numpy()
        return (time.perf_counter() - start) / steps

    return run
