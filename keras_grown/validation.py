"""Checks of what a GrownModel is given: settings, images, labels, datasets, memory.

Each check runs before anything is changed and says, in our words, what was
expected, what was received and what to do (Keras style), so that no
framework error (a shape error from inside `call()`, TensorFlow's error on a
label) reaches the user.
"""

import inspect
import os

import numpy as np
import tensorflow as tf

from keras_grown import masks
from keras_grown._checks import check_finite, is_integer
from keras_grown.layers.scope import validate_growth_settings
from keras_grown.sizing import L0_SCOPES, has_dormant_channels


def check_model_settings(
    seed_ratio, capacity, l0_lambda, temperature, gumbel, mask_learning_rate, l0_scope,
    growth_candidates, input_shape,
):
    """Refuses settings a `GrownModel` cannot be built with; returns `input_shape` as a tuple."""
    validate_growth_settings(seed_ratio, capacity)
    if not check_finite("l0_lambda", l0_lambda, ">= 0") >= 0:
        raise ValueError(f"l0_lambda must be >= 0. Received: l0_lambda={l0_lambda}")
    if not check_finite("temperature", temperature, "> 0") > 0:
        raise ValueError(
            f"temperature must be positive. Received: temperature={temperature}"
        )
    masks.validate_gumbel_form(gumbel)
    if not check_finite("mask_learning_rate", mask_learning_rate, "> 0") > 0:
        raise ValueError(
            "mask_learning_rate must be positive. "
            f"Received: mask_learning_rate={mask_learning_rate}"
        )
    input_shape = check_input_shape(input_shape)
    if l0_scope not in L0_SCOPES:
        raise ValueError(
            f"l0_scope must be one of {L0_SCOPES}. Received: l0_scope={l0_scope!r}"
        )
    if growth_candidates is not None and not (
        isinstance(growth_candidates, (int, float, np.integer, np.floating))
        and not isinstance(growth_candidates, bool)
        and np.isfinite(growth_candidates) and float(growth_candidates) > 0
    ):
        raise ValueError(
            "growth_candidates is the fraction of a layer's full-size width one "
            "growth round may add and must be a positive number (or None for the "
            f"whole pool). Received: growth_candidates={growth_candidates!r}"
        )
    return input_shape


def check_input_shape(input_shape):
    """`input_shape` as a tuple of positive ints, or a clear error."""
    try:
        shape = tuple(input_shape)
        valid = bool(shape) and all(
            not isinstance(d, bool) and float(d) == int(d) and int(d) >= 1 for d in shape
        )
    except (TypeError, ValueError, OverflowError):
        valid = False
    if not valid:
        raise ValueError(
            "input_shape is the shape of one image, e.g. (28, 28, 1): a tuple of "
            f"positive integers. Received: input_shape={input_shape!r}"
        )
    return tuple(int(d) for d in shape)


def check_learning(model, where):
    """Refuses `where` (a task call) when no task is being learned."""
    if model.current_task is None:
        raise ValueError(f"{where} needs a task being learned. Call add_task() first.")


def check_no_task_learning(model):
    """Refuses `add_task()` while a task is being learned."""
    if model.current_task is not None:
        raise ValueError(
            f"Task {model.current_task} is not finished. Call finish_task() "
            "before add_task()."
        )


def check_growth_allowed(model, grow):
    """Refuses `add_task(grow=True)` on a model built without learnable growth."""
    if grow and not model.learnable_growth:
        raise ValueError(
            "add_task(grow=True) needs learnable growth, but this model was "
            "built with learnable_growth=False."
        )


def check_can_grow(model):
    """Refuses `grow()` without a task being learned, learnable growth or a dormant channel."""
    check_learning(model, "grow()")
    if not model.learnable_growth:
        raise ValueError("This model was built with learnable_growth=False; it cannot grow.")
    if not has_dormant_channels(model):
        raise ValueError(
            "The capacity is spent: no dormant channel is left to grow. Build "
            "the model with a larger capacity= to grow further."
        )


def check_prune(model, ratio):
    """Refuses `prune(ratio)` without a task being learned or with a ratio outside [0, 1)."""
    check_learning(model, "prune()")
    if not 0.0 <= float(ratio) < 1.0:
        raise ValueError(
            "prune(ratio) takes the fraction of the task's free weights to "
            f"release, in [0, 1). Received: ratio={ratio}"
        )


def check_selected(model):
    """Refuses to evaluate or predict before `model` has a task."""
    if model.selected_task is None:
        raise ValueError("The model has no task yet. Call add_task() first.")


def check_task_index(model, task):
    """Refuses a `select_task(task)` that names no task of `model`."""
    if not is_integer(task):
        raise TypeError(f"select_task() takes a task index (int). Received: {task!r}")
    if not 0 <= task < model.num_tasks:
        raise ValueError(
            f"select_task({task}) is out of range: the model has "
            f"{model.num_tasks} task(s), numbered 0 to {model.num_tasks - 1}."
            if model.num_tasks else
            f"select_task({task}): the model has no task yet. Call add_task() first."
        )


def check_trainable_task(model):
    """Refuses a fit() with no task being learned, or with another task selected."""
    if not model.controller.tasks:
        raise ValueError(
            "fit() needs a task: call model.add_task(dataset) first, then fit()."
        )
    if model.current_task is None:
        raise ValueError(
            f"All {len(model.controller.tasks)} task(s) are finished; their weights are "
            "frozen. Call add_task() to learn a new task."
        )
    if model.selected_task != model.current_task:
        raise ValueError(
            f"Task {model.selected_task} is selected but task {model.current_task} is "
            f"being learned. Call select_task({model.current_task}) before fit()."
        )


def check_head_fits(model, num_classes, high):
    """Refuses, before anything is created, a head that would not fit in memory."""
    features = int(model.heads.features)
    head_bytes = (features + 1) * int(num_classes) * 4
    # Training holds the weights, their gradients and Adam's two slots.
    training_bytes = 4 * head_bytes
    available = available_memory()
    if available is not None and training_bytes > available:
        raise ValueError(
            f"add_task(num_classes={num_classes}): this task's head would hold "
            f"{features:,} x {num_classes:,} float32 weights, {_bytes(head_bytes)} (about "
            f"{_bytes(training_bytes)} to train with Adam: weights, gradients and two "
            f"optimizer slots), more than the {_bytes(available)} of memory available. "
            f"The labels of this data go up to {high}: pass the task's real number of "
            "classes as num_classes=."
        )


def check_task_data(model, data, num_classes):
    """Reads `add_task()`'s data once: `(num_classes, highest label)`, or a clear error."""
    dataset = as_dataset(data)
    check_task_spec(model.image_shape, dataset.element_spec)
    if num_classes is not None and not is_integer(num_classes, 2):
        raise ValueError(
            f"num_classes must be an integer >= 2. Received: num_classes={num_classes!r}"
        )
    if dataset.element_spec[0].shape.rank == len(model.image_shape):
        # One vectorized reduction per 1,024 examples, not one per example.
        dataset = dataset.batch(1024)
    low, high, count, finite = label_range(dataset)
    if count == 0:
        raise ValueError(
            "add_task() received an empty dataset: it has no (image, label) pair. "
            "Check the pipeline that built it (a filter or take() that keeps nothing?)."
        )
    if not finite:
        raise ValueError(
            "add_task() received images with NaN or inf values; training on them "
            "turns the weights into NaN. Clean the data first, or drop those examples "
            "with dataset.filter(lambda x, y: tf.reduce_all(tf.math.is_finite(x)))."
        )
    if low < 0:
        raise ValueError(
            f"Labels must be in 0..num_classes-1; the dataset has a label {low}. "
            "Remap the task's labels to 0..k-1."
        )
    if num_classes is None:
        num_classes = int(high) + 1
        if num_classes < 2:
            raise ValueError(
                "A task needs at least 2 classes; the labels of this dataset are "
                "all 0. Pass num_classes= if some classes are absent."
            )
    elif high >= num_classes:
        raise ValueError(
            f"Labels must be in 0..{num_classes - 1} for num_classes={num_classes}; "
            f"the dataset has a label {high}. Pass the right num_classes= or "
            "remap the labels."
        )
    return int(num_classes), int(high)


def check_task_spec(image_shape, spec, where="add_task()"):
    """Raises unless `spec` is the element_spec of (image, label) pairs this model reads."""
    if not isinstance(spec, tuple) or len(spec) not in (2, 3):
        raise ValueError(
            f"{where} needs a dataset of (image, label) pairs; received a "
            f"dataset of element_spec={spec}. Map it to (x, y) first."
        )
    x_spec, y_spec = spec[0], spec[1]
    if not isinstance(x_spec, tf.TensorSpec) or not isinstance(y_spec, tf.TensorSpec):
        raise ValueError(
            f"{where} needs (image, label) tensors, not nested structures; "
            f"received element_spec={spec}. Map it to (x, y) first."
        )
    check_images(image_shape, tuple(x_spec.shape), x_spec.dtype, where)
    if not y_spec.dtype.is_integer:
        raise ValueError(
            f"{where}: labels must be integer class indices 0..num_classes-1; received "
            f"dtype {y_spec.dtype.name}. Cast them with tf.cast(y, tf.int32)."
        )


def check_images(image_shape, shape, dtype, where, batched=False):
    """Raises unless images of `shape` (with or without the batch axis) and `dtype` fit."""
    rank = len(image_shape)
    ranks = (rank + 1,) if batched else (rank, rank + 1)
    if len(shape) == rank and batched and tuple(shape) == image_shape:
        raise ValueError(
            f"{where} needs batches of images of shape (batch_size,) + "
            f"{image_shape}; received single images of shape {tuple(shape)}. "
            "Batch the dataset first: dataset.batch(64)."
        )
    if len(shape) not in ranks or tuple(shape[-rank:]) != image_shape:
        raise ValueError(
            f"{where}: this model takes images of shape {image_shape} (batched or "
            f"not); received images of shape {tuple(shape)}. Reshape the data or "
            "build the model with the matching input_shape=."
        )
    if not tf.as_dtype(dtype).is_floating:
        raise ValueError(
            f"{where}: images must be floating point (e.g. float32 in [0, 1]); received "
            f"dtype {tf.as_dtype(dtype).name}. Cast and scale them first."
        )


def check_fit_data(model, x, y, validation_data):
    """Refuses, before any step, data that fit() would fail on half-way."""
    for data, argument in ((x, "x"), (validation_data, "validation_data")):
        if isinstance(data, (tuple, list)) and data and argument == "validation_data":
            data = data[0]
        if isinstance(data, tf.data.Dataset):
            spec = data.element_spec
            spec = spec[0] if isinstance(spec, tuple) else spec
            if isinstance(spec, tf.TensorSpec) and spec.shape.rank is not None:
                check_images(
                    model.image_shape, spec.shape, spec.dtype, f"fit({argument}=...)", True
                )
        elif hasattr(data, "shape") and hasattr(data, "dtype"):
            check_images(model.image_shape, data.shape, data.dtype, f"fit({argument}=...)", True)
    check_labels(
        model, y, "fit()", model.current_task,
        "Remap the labels, or start a task with the right num_classes= (add_task()).",
    )


def check_labels(model, y, where, task, fix):
    """Refuses array labels outside the classes of `task` (datasets: `label_error`)."""
    if isinstance(y, (list, tf.Tensor)):
        y = np.asarray(y)
    if not (isinstance(y, np.ndarray) and y.size and np.issubdtype(y.dtype, np.integer)):
        return
    num_classes = model.controller.num_classes(task)
    if y.min() < 0 or y.max() >= num_classes:
        raise ValueError(
            f"{where}: task {task} has {num_classes} classes, so labels "
            f"must be in 0..{num_classes - 1}; received labels {y.min()}..{y.max()}. {fix}"
        )


def label_error(model, error, where, task, fix):
    """A clear ValueError for TensorFlow's error on a label outside the task's classes, or None."""
    detail = [
        line.split("  Label values")[0].strip()
        for line in str(error).splitlines() if "label value" in line
    ]
    if not (isinstance(error, tf.errors.InvalidArgumentError) and detail):
        return None
    return ValueError(
        f"{where}: a label is outside the classes of task {task} "
        f"({model.controller.num_classes(task)} classes): {detail[0]} {fix}"
    )


# What evaluate() and test_on_batch() say to do about a label outside the task's classes.
EVALUATE_FIX = (
    "Remap the labels to 0..k-1, or select the task they belong to with select_task()."
)


def evaluate_checked(model, keras_method, where, args, kwargs):
    """Runs `keras_method` (evaluate or test_on_batch) with the selected task's label checks."""
    check_selected(model)
    bound = inspect.signature(keras_method).bind(model, *args, **kwargs)
    task = model.selected_task
    check_labels(model, bound.arguments.get("y"), where, task, EVALUATE_FIX)
    try:
        return keras_method(model, *args, **kwargs)
    except tf.errors.InvalidArgumentError as error:
        clear = label_error(model, error, where, task, EVALUATE_FIX)
        if clear is None:
            raise
        raise clear from None


def check_weights_file(filepath):
    """`filepath` as a str, or a FileNotFoundError that says where weights come from."""
    path = str(filepath)
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(
            f"load_weights(): there is no file {path!r}. Check the path; weights "
            "are written by model.save(path) or model.save_weights(path)."
        )
    return path


def load_weights_error(path, error):
    """The ValueError of a `load_weights(path)` that Keras refused with `error`."""
    reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
    return ValueError(
        f"load_weights({path!r}) failed ({type(error).__name__}: {reason}); the model "
        "is unchanged. Weights load only into a GrownModel with the backbone, "
        "input_shape, capacity and number of tasks of the model that saved them: "
        "restore a whole saved model with keras.saving.load_model(path), or save "
        "the file again if it is damaged."
    )


def label_range(dataset):
    """(min label, max label, count, images all finite) of a dataset of (x, y[, w]) in one pass."""
    labels = dataset.map(
        lambda *e: (
            tf.reshape(tf.cast(e[1], tf.int64), [-1]),
            tf.reduce_all(tf.math.is_finite(e[0])) if e[0].dtype.is_floating else True,
        )
    )
    init = (
        tf.constant(np.iinfo(np.int64).max, tf.int64),
        tf.constant(np.iinfo(np.int64).min, tf.int64),
        tf.constant(0, tf.int64),
        tf.constant(True),
    )

    def step(acc, element):
        y, finite = element
        low = tf.minimum(acc[0], tf.reduce_min(tf.concat([y, acc[0][None]], 0)))
        high = tf.maximum(acc[1], tf.reduce_max(tf.concat([y, acc[1][None]], 0)))
        return low, high, acc[2] + tf.size(y, tf.int64), tf.logical_and(acc[3], finite)

    low, high, count, finite = labels.reduce(init, step)
    return int(low), int(high), int(count), bool(finite)


def as_dataset(data):
    """A `tf.data.Dataset` from a dataset or an `(images, labels)` tuple of arrays."""
    if isinstance(data, tf.data.Dataset):
        return data
    if isinstance(data, (tuple, list)) and len(data) == 2:
        images, labels = data
        return tf.data.Dataset.from_tensor_slices(
            (np.asarray(images), np.asarray(labels))
        )
    raise TypeError(
        "Expected a tf.data.Dataset of (image, label) pairs or a tuple "
        f"(images, labels) of arrays; received {type(data).__name__}."
    )


def available_memory():
    """Bytes of host memory available now (Linux' MemAvailable), or None if unknown."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _bytes(count):
    """`count` bytes in words: '3.6 TiB'."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if count < 1024 or unit == "TiB":
            return f"{count:,.0f} {unit}" if unit == "B" else f"{count:,.1f} {unit}"
        count /= 1024
