"""`from_directory`: a stream from a folder of task folders of class folders of images."""

from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from keras_grown.datasets.tasks import (
    Task,
    TaskStream,
    _carve,
    _check_fraction,
    _pick,
    _proportional_quota,
    _rng,
)


def _subfolders(folder):
    return sorted(
        p.name for p in Path(folder).iterdir() if p.is_dir() and not p.name.startswith(".")
    )


def from_directory(
    path,
    image_size=(32, 32),
    val_fraction=0.1,
    test_subdir=None,
    train_subdir=None,
    test_fraction=0.2,
    color_mode="rgb",
    interpolation="bilinear",
    name=None,
    seed=0,
):
    """A stream from a folder of task folders of class folders of images.

    Layout (e.g. MiniImageNet split into 20 tasks of 5 classes)::

        path/
          task_00/             one folder per task, learned in name order
            n01532829/         one folder per class, labels in name order
              img_0001.jpg
            ...
          task_01/
            ...

    Every image is read with `keras.utils.image_dataset_from_directory`
    (resized to `image_size`), unbatched and scaled to `[0, 1]`.

    * `test_subdir=None`: `test_fraction` of each task's images become its
      test set, then `val_fraction` of the rest its validation set (both
      stratified by class, fixed by `seed`).
    * `test_subdir="test"`: the test images are in `path/<task>/test/<class>/`
      and the training images in `path/<task>/<train_subdir>/<class>/`
      (`train_subdir=None`: the other class folders of `path/<task>/`).
      The validation set is carved from the training images.

    Train, validation and test sets each read the task's images and keep
    their own share, so decoding happens once per set and epoch: add
    `.cache()` when the images are slow to decode.

    Args:
        path: the folder of task folders.
        image_size: `(height, width)` every image is resized to.
        val_fraction: fraction of the training images held out for
            validation, in [0, 1).
        test_subdir: the name of each task's test folder, or None.
        train_subdir: the name of each task's training folder (only with
            `test_subdir`), or None.
        test_fraction: fraction of each task's images held out for testing
            when `test_subdir` is None, in (0, 1).
        color_mode: `"rgb"`, `"grayscale"` or `"rgba"`.
        interpolation: the resize interpolation.
        name: the stream's name (default: the folder's name).
        seed: fixes the test and validation splits.

    Returns:
        A `TaskStream`, one task per task folder, named after it; class
        names are the class folder names.

    Example:

    >>> stream = keras_grown.datasets.from_directory(
    ...     "miniimagenet_tasks", image_size=(84, 84), test_subdir="test")
    """
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(
            f"from_directory() expects a folder of task folders of class folders; "
            f"{str(path)!r} is not a folder. Check the path."
        )
    val_fraction = _check_fraction("val_fraction", val_fraction)
    if test_subdir is None:
        if train_subdir is not None:
            raise ValueError(
                f"train_subdir={train_subdir!r} needs test_subdir (the folder of each task's "
                "test images). Without test_subdir, the test set is carved from the task "
                "folder: leave train_subdir=None."
            )
        test_fraction = _check_fraction("test_fraction", test_fraction, allow_zero=False)
    elif train_subdir == test_subdir:
        raise ValueError(
            f"train_subdir and test_subdir must differ. Received: both {test_subdir!r}."
        )
    task_dirs = _subfolders(root)
    if not task_dirs:
        raise ValueError(
            f"from_directory() found no task folder in {str(root)!r}. Expected "
            f"{root}/<task>/<class>/<image files>."
        )
    layouts = []
    for task_name in task_dirs:  # check every folder before reading any image
        task_dir = root / task_name
        train_dir = task_dir / train_subdir if train_subdir and test_subdir else task_dir
        classes = (
            [c for c in _subfolders(train_dir) if test_subdir is None or c != test_subdir]
            if train_dir.is_dir()
            else []
        )
        if not classes:
            raise ValueError(
                f"Task folder {str(train_dir)!r} has no class sub-folder. Expected "
                f"{train_dir}/<class>/<image files>, one sub-folder per class."
            )
        test_dir = None
        if test_subdir is not None:
            test_dir = task_dir / test_subdir
            test_classes = _subfolders(test_dir) if test_dir.is_dir() else []
            if test_classes != classes:
                raise ValueError(
                    f"Test folder {str(test_dir)!r} must hold the same class sub-folders as "
                    f"{str(train_dir)!r}. Expected {classes}; received {test_classes}."
                )
        layouts.append((task_name, train_dir, test_dir, classes))

    def read(folder, classes):
        dataset = keras.utils.image_dataset_from_directory(
            folder,
            labels="inferred",
            label_mode="int",
            class_names=classes,
            color_mode=color_mode,
            batch_size=None,
            image_size=tuple(image_size),
            shuffle=False,
            interpolation=interpolation,
            verbose=False,
        )
        labels = np.asarray([classes.index(Path(p).parent.name) for p in dataset.file_paths])
        for k, class_name in enumerate(classes):
            if not np.any(labels == k):
                raise ValueError(
                    f"Class folder {str(Path(folder) / class_name)!r} holds no image "
                    "(.jpeg, .jpg, .png, .bmp or .gif). Add images or remove the folder."
                )
        return dataset, labels

    tasks = []
    for task_id, (task_name, train_dir, test_dir, classes) in enumerate(layouts):
        source, labels = read(train_dir, classes)
        rng = _rng(seed, 5, task_id)
        pool = np.arange(len(labels))
        if test_dir is None:
            test_quota = _proportional_quota(
                np.bincount(labels), int(round(len(labels) * test_fraction))
            )
            test_index = _pick(labels, test_quota, rng)
            pool = np.setdiff1d(pool, test_index)
            test = _select(source, test_index, len(labels))
        else:
            test_source, _ = read(test_dir, classes)
            test = test_source.map(_scale_float_image)
        num_val = int(round(len(pool) * val_fraction))
        kept, carved = _carve(labels[pool], len(classes), len(pool) - num_val, num_val, rng)
        input_shape = tuple(source.element_spec[0].shape)
        tasks.append(
            Task(
                name=task_name,
                train=_select(source, pool[kept], len(labels)),
                val=_select(source, pool[carved], len(labels)),
                test=test,
                num_classes=len(classes),
                class_names=list(classes),
                input_shape=input_shape,
                task_id=task_id,
            )
        )
    return TaskStream(tasks, name=name or root.name)


def _scale_float_image(image, label):
    return tf.cast(image, tf.float32) / 255.0, tf.cast(label, tf.int32)


def _select(dataset, index, total):
    """The elements of `dataset` at positions `index`, in order, scaled."""
    keep = np.zeros(total, dtype=bool)
    keep[index] = True
    keep = tf.constant(keep)
    selected = dataset.enumerate().filter(lambda i, element: tf.gather(keep, i))
    selected = selected.map(lambda i, element: _scale_float_image(*element))
    return selected.apply(tf.data.experimental.assert_cardinality(len(index)))
