"""`from_arrays` and `from_datasets`: a stream from your own NumPy arrays or `tf.data` datasets."""

import numpy as np
import tensorflow as tf

from keras_grown._checks import is_integer
from keras_grown.datasets.tasks import (
    Task,
    TaskStream,
    _carve,
    _check_fraction,
    _rng,
    _to_dataset,
    _with_channel_axis,
)

_ARRAY_KEYS = ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")


def _check_images(images, where):
    images = np.asarray(images)
    if images.ndim not in (3, 4):
        raise ValueError(
            f"{where} must be images of shape (N, height, width) or (N, height, width, "
            f"channels). Received shape {images.shape}."
        )
    if images.dtype == np.uint8:
        return _with_channel_axis(images)
    if not np.issubdtype(images.dtype, np.floating):
        raise ValueError(
            f"{where} must be uint8 (0..255) or float in [0, 1]. Received dtype {images.dtype}."
        )
    if images.size and (not np.all(np.isfinite(images)) or images.min() < 0 or images.max() > 1):
        raise ValueError(
            f"{where} are floats outside [0, 1] (min {np.nanmin(images):g}, max "
            f"{np.nanmax(images):g}). Scale them first, e.g. x / 255.0, or pass uint8."
        )
    return _with_channel_axis(images.astype(np.float32))


def _check_labels(labels, where):
    labels = np.asarray(labels)
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1:
        raise ValueError(
            f"{where} must be a 1-D array of integer class ids. Received shape {labels.shape}; "
            "one-hot labels: use labels.argmax(axis=1)."
        )
    if labels.dtype.kind == "f" and labels.size and np.all(labels == np.round(labels)):
        labels = labels.astype(np.int64)
    if labels.dtype.kind not in "iu":
        raise ValueError(f"{where} must be integer class ids. Received dtype {labels.dtype}.")
    return labels.astype(np.int64)


def from_arrays(tasks, name="arrays", remap_labels=True, val_fraction=0.1, seed=0):
    """A stream from NumPy arrays, one entry per task.

    Each entry is a dict with keys `x_train, y_train, x_val, y_val, x_test,
    y_test` (and optionally `name`, `class_names`), or a tuple of those six
    arrays. Images are `uint8` (scaled by 1/255) or floats in `[0, 1]`, of
    shape `(N, H, W)` or `(N, H, W, C)`; labels are integer class ids.
    `x_val`/`y_val` may be None: `val_fraction` of the training examples
    is then carved off (stratified, fixed by `seed`).

    Args:
        tasks: the list of task entries, in learning order.
        name: the stream's name.
        remap_labels: True: the task's classes are the distinct training
            labels, in ascending order, remapped to 0..k-1; validation and
            test labels must be among them. False: labels must already be
            in `0 .. num_classes - 1` (`num_classes` from the entry, else
            the largest training label plus one).
        val_fraction: used only for entries without validation arrays.
        seed: fixes those validation splits.

    Returns:
        A `TaskStream`.

    Example:

    >>> stream = keras_grown.datasets.from_arrays([
    ...     dict(x_train=x0, y_train=y0, x_val=xv0, y_val=yv0, x_test=xt0, y_test=yt0),
    ...     dict(x_train=x1, y_train=y1, x_val=None, y_val=None, x_test=xt1, y_test=yt1),
    ... ])
    """
    if isinstance(tasks, dict) or not isinstance(tasks, (list, tuple)) or not tasks:
        raise ValueError(
            "from_arrays() takes a non-empty list with one entry per task (a dict or a tuple "
            f"of {', '.join(_ARRAY_KEYS)}). Received: {type(tasks).__name__}."
        )
    val_fraction = _check_fraction("val_fraction", val_fraction)
    prepared = []
    for task_id, entry in enumerate(tasks):
        if isinstance(entry, dict):
            missing = [k for k in _ARRAY_KEYS if k not in entry and k not in ("x_val", "y_val")]
            if missing:
                raise ValueError(
                    f"Task {task_id} of from_arrays() lacks {missing}. Expected keys {_ARRAY_KEYS}."
                )
            arrays = [entry.get(k) for k in _ARRAY_KEYS]
        elif isinstance(entry, (list, tuple)) and len(entry) == 6:
            arrays, entry = list(entry), {}
        else:
            raise ValueError(
                f"Task {task_id} of from_arrays() must be a dict or a 6-tuple "
                f"({', '.join(_ARRAY_KEYS)}). Received: {type(entry).__name__}"
                f"{' of length %d' % len(entry) if isinstance(entry, (list, tuple)) else ''}."
            )
        if (arrays[2] is None) != (arrays[3] is None):
            raise ValueError(f"Task {task_id}: give both x_val and y_val, or neither.")
        if arrays[4] is None or arrays[5] is None:
            raise ValueError(f"Task {task_id}: x_test and y_test are required.")
        splits = {}
        for split, (x, y) in zip(("train", "val", "test"), zip(arrays[0::2], arrays[1::2])):
            if x is None:
                continue
            x = _check_images(x, f"Task {task_id}: x_{split}")
            y = _check_labels(y, f"Task {task_id}: y_{split}")
            if len(x) != len(y):
                raise ValueError(
                    f"Task {task_id}: x_{split} has {len(x)} images but y_{split} has "
                    f"{len(y)} labels."
                )
            splits[split] = (x, y)
        shapes = {split: x.shape[1:] for split, (x, _) in splits.items()}
        if len(set(shapes.values())) != 1:
            raise ValueError(
                f"Task {task_id}: every split must have one image shape. Received {shapes}."
            )
        if len(splits["train"][1]) == 0:
            raise ValueError(f"Task {task_id}: y_train is empty; a task needs training examples.")
        y_train = splits["train"][1]
        if remap_labels:
            classes = np.unique(y_train)
            num_classes = len(classes)
        else:
            num_classes = int(entry.get("num_classes", y_train.max() + 1))
            classes = np.arange(num_classes)
        for split, (x, y) in splits.items():
            outside = ~np.isin(y, classes)
            if outside.any():
                expected = (
                    f"the training labels {classes.tolist()}"
                    if remap_labels
                    else f"0..{num_classes - 1}"
                )
                hint = (
                    "Every validation and test class must also appear in the training set."
                    if remap_labels
                    else "Fix the labels, give a larger num_classes, or pass remap_labels=True "
                    "to number the task's classes 0..k-1."
                )
                raise ValueError(
                    f"Task {task_id}: y_{split} has labels outside range: "
                    f"{sorted(set(y[outside].tolist()))[:10]} are not among {expected}. {hint}"
                )
            splits[split] = (x, np.searchsorted(classes, y))
        if "val" not in splits:
            x, y = splits["train"]
            num_val = int(round(len(y) * val_fraction))
            kept, carved = _carve(y, num_classes, len(y) - num_val, num_val, _rng(seed, 6, task_id))
            splits["train"], splits["val"] = (x[kept], y[kept]), (x[carved], y[carved])
        class_names = [str(n) for n in entry.get("class_names", [str(c) for c in classes])]
        if len(class_names) != num_classes:
            raise ValueError(
                f"Task {task_id}: class_names has {len(class_names)} names for "
                f"{num_classes} classes."
            )
        prepared.append((entry.get("name", f"task_{task_id}"), splits, num_classes, class_names))
    built = [
        Task(
            name=str(task_name),
            train=_to_dataset(*splits["train"]),
            val=_to_dataset(*splits["val"]),
            test=_to_dataset(*splits["test"]),
            num_classes=num_classes,
            class_names=class_names,
            input_shape=tuple(splits["train"][0].shape[1:]),
            task_id=task_id,
        )
        for task_id, (task_name, splits, num_classes, class_names) in enumerate(prepared)
    ]
    return TaskStream(built, name=name)


def _standardize_dataset(dataset, num_classes, where):
    """Checks an unbatched (image, label) dataset and casts it to the stream format."""
    if not isinstance(dataset, tf.data.Dataset):
        raise TypeError(f"{where} must be a tf.data.Dataset. Received: {type(dataset).__name__}.")
    spec = dataset.element_spec
    if not (isinstance(spec, tuple) and len(spec) == 2):
        raise ValueError(
            f"{where} must yield (image, label) pairs. Received element_spec={spec}. "
            "Map it to (x, y) first."
        )
    image_spec, label_spec = spec
    if image_spec.shape.rank == 4 or label_spec.shape.rank == 1:
        raise ValueError(
            f"{where} looks batched (element_spec={spec}); tasks hold unbatched datasets. "
            "Call .unbatch() first."
        )
    if image_spec.shape.rank not in (2, 3) or not image_spec.shape.is_fully_defined():
        raise ValueError(
            f"{where} must yield images of a fixed shape (height, width[, channels]). "
            f"Received element_spec={spec}. Resize them first."
        )
    scale = 255.0 if image_spec.dtype == tf.uint8 else 1.0

    def standardize(image, label):
        image = tf.cast(image, tf.float32) / scale
        if image_spec.shape.rank == 2:
            image = image[..., tf.newaxis]
        label = tf.cast(label, tf.int32)
        message = f"{where}: labels outside range [0, {num_classes})"
        with tf.control_dependencies(
            [
                tf.debugging.assert_non_negative(label, message=message),
                tf.debugging.assert_less(label, num_classes, message=message),
            ]
        ):
            label = tf.identity(label)
        return image, label

    standardized = dataset.map(standardize)
    shape = tuple(standardized.element_spec[0].shape)
    return standardized, shape


def from_datasets(tasks, name="datasets"):
    """A stream from your own unbatched `tf.data.Dataset`s, one dict per task.

    Each dict has `train`, `val`, `test` (datasets of `(image, label)`,
    unbatched, images of a fixed shape; `uint8` images are scaled by
    1/255, others only cast to `float32`), `num_classes`, and optionally
    `name` and `class_names`. Labels must be in `0 .. num_classes - 1`:
    that is checked as the data is read (an `InvalidArgumentError` saying
    "labels outside range").

    Args:
        tasks: the list of task dicts, in learning order.
        name: the stream's name.

    Returns:
        A `TaskStream`.

    Example:

    >>> stream = keras_grown.datasets.from_datasets([
    ...     dict(train=train_ds, val=val_ds, test=test_ds, num_classes=5),
    ... ])
    """
    if isinstance(tasks, dict) or not isinstance(tasks, (list, tuple)) or not tasks:
        raise ValueError(
            "from_datasets() takes a non-empty list of dicts (train, val, test, num_classes). "
            f"Received: {type(tasks).__name__}."
        )
    built = []
    for task_id, entry in enumerate(tasks):
        if not isinstance(entry, dict) or any(
            k not in entry for k in ("train", "val", "test", "num_classes")
        ):
            raise ValueError(
                f"Task {task_id} of from_datasets() must be a dict with keys train, val, test, "
                f"num_classes. Received: {entry!r:.200}"
            )
        num_classes = entry["num_classes"]
        if not is_integer(num_classes, 1):
            raise ValueError(
                f"Task {task_id}: num_classes must be a positive integer. Received: {num_classes!r}"
            )
        splits, shapes = {}, set()
        for split in ("train", "val", "test"):
            splits[split], shape = _standardize_dataset(
                entry[split], int(num_classes), f"Task {task_id} {split}"
            )
            shapes.add(shape)
        if len(shapes) != 1:
            raise ValueError(
                f"Task {task_id}: train, val and test images differ in shape: {sorted(shapes)}."
            )
        class_names = [str(n) for n in entry.get("class_names", range(num_classes))]
        if len(class_names) != num_classes:
            raise ValueError(
                f"Task {task_id}: class_names has {len(class_names)} names for "
                f"{num_classes} classes."
            )
        built.append(
            Task(
                name=str(entry.get("name", f"task_{task_id}")),
                num_classes=int(num_classes),
                class_names=class_names,
                input_shape=shapes.pop(),
                task_id=task_id,
                **splits,
            )
        )
    return TaskStream(built, name=name)
