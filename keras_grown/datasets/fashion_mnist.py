"""Fashion-MNIST streams: split, confusable pairs and permuted pixels.

Fashion-MNIST is read from files already on the machine (Keras' cache
folder, or Debian's `dataset-fashion-mnist` package); nothing downloads.
"""

import functools
import gzip
import os

import keras
import numpy as np

from keras_grown.datasets.tasks import (
    _build_stream,
    _check_count,
    _check_fraction,
    _check_num_tasks,
    _class_groups,
    _class_order,
    _class_split_stream,
    _plan_task,
    _rng,
)

FASHION_MNIST_CLASS_NAMES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]

# ---------------------------------------------------------------------------
# Reading the files (never downloads)
# ---------------------------------------------------------------------------

DEBIAN_FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"

_FASHION_MNIST_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)


def _keras_fashion_mnist_dir():
    """The folder `keras.datasets.fashion_mnist.load_data()` reads (its cache)."""
    base = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    if not os.access(base, os.W_OK):  # what keras.utils.get_file falls back to
        base = os.path.join("/tmp", ".keras")
    return os.path.join(base, "datasets", "fashion-mnist")


def _read_idx(path):
    """Reads one gzipped IDX file (the MNIST format) into a uint8 array."""
    with gzip.open(path, "rb") as handle:
        data = handle.read()
    magic = int.from_bytes(data[:4], "big")
    if magic >> 8 != 0x08 or not 1 <= magic & 0xFF <= 4:  # 0x08: unsigned byte
        raise ValueError(
            f"{path} is not a uint8 IDX file (magic number {magic:#010x}). "
            "Reinstall it: apt-get install --reinstall -y dataset-fashion-mnist"
        )
    ndim = magic & 0xFF
    shape = tuple(int.from_bytes(data[4 + 4 * k : 8 + 4 * k], "big") for k in range(ndim))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _has_all(folder):
    return all(os.path.isfile(os.path.join(folder, f)) for f in _FASHION_MNIST_FILES)


def _read_fashion_mnist(keras_dir, debian_dir):
    """((x_train, y_train), (x_test, y_test)) as uint8 arrays, from local files."""
    if _has_all(keras_dir) and os.path.normpath(keras_dir) == os.path.normpath(
        _keras_fashion_mnist_dir()
    ):
        (x_train, y_train), (x_test, y_test) = keras.datasets.fashion_mnist.load_data()
    elif _has_all(debian_dir):
        x_train, y_train, x_test, y_test = (
            _read_idx(os.path.join(debian_dir, f)) for f in _FASHION_MNIST_FILES
        )
    else:
        raise FileNotFoundError(
            "Fashion-MNIST is not on this machine, and keras-grown never downloads it. "
            f"Looked for {', '.join(_FASHION_MNIST_FILES)} in Keras' cache folder "
            f"{keras_dir} and in {debian_dir}. Install Debian's copy with "
            "`apt-get install -y dataset-fashion-mnist` (as root; or `make data` in the "
            "keras-grown repository, which also links it into Keras' cache folder)."
        )
    arrays = ((x_train, y_train), (x_test, y_test))
    for images, labels in arrays:
        images.setflags(write=False)
        labels.setflags(write=False)
    return arrays


@functools.lru_cache(maxsize=1)
def _load_fashion_mnist():
    """Fashion-MNIST as uint8 NumPy arrays, loaded once per process (read-only)."""
    return _read_fashion_mnist(_keras_fashion_mnist_dir(), DEBIAN_FASHION_MNIST_DIR)


def split_fashion_mnist(
    num_tasks=5,
    train_per_task=None,
    val_fraction=0.1,
    test_per_task=None,
    class_order=None,
    seed=0,
):
    """Split Fashion-MNIST: the 10 classes cut into tasks of equal size.

    With the defaults: 5 tasks of 2 classes (`T-shirt/top, Trouser`,
    `Pullover, Dress`, ...); each task takes all 12,000 training images of
    its classes, of which 10 % (1,200) become the validation set, and all
    2,000 test images of its classes.

    Args:
        num_tasks: number of tasks; must divide 10 (1, 2, 5 or 10).
        train_per_task: examples taken from the official training split per
            task, **before** the validation set is carved out of them
            (`train_per_task=320, val_fraction=0.2` gives 256 train and 64
            validation images). Spread evenly over the task's classes.
            None: all of them.
        val_fraction: fraction of those examples held out for validation,
            stratified by class and fixed by `seed`. Never from the test set.
        test_per_task: test examples per task, spread evenly over its
            classes. None: all of them.
        class_order: None (classes 0..9 in order), a list of the 10 class
            ids, or `"random"` (a permutation fixed by `seed`).
        seed: fixes the class order (when random), the examples taken, the
            validation split.

    Returns:
        A `TaskStream` of `num_tasks` tasks with images of shape `(28, 28, 1)`.

    Example:

    >>> stream = keras_grown.datasets.split_fashion_mnist(
    ...     num_tasks=5, train_per_task=1000, test_per_task=400)
    >>> stream[1].class_names
    ['Pullover', 'Dress']
    """
    groups = _class_groups(_class_order(class_order, 10, seed), num_tasks)
    return _fashion_mnist_class_stream(
        "split_fashion_mnist", groups, train_per_task, val_fraction, test_per_task, seed
    )


def _fashion_mnist_class_stream(name, groups, train_per_task, val_fraction, test_per_task, seed):
    """A Fashion-MNIST stream whose task i holds the classes `groups[i]` (arguments checked)."""
    return _class_split_stream(
        name,
        groups,
        FASHION_MNIST_CLASS_NAMES,
        _load_fashion_mnist(),
        _check_count("train_per_task", train_per_task),
        _check_fraction("val_fraction", val_fraction),
        None,
        _check_count("test_per_task", test_per_task),
        seed,
    )


# Pairs of Fashion-MNIST classes a classifier confuses most (T-shirt/Shirt,
# Pullover/Coat, Sneaker/Ankle boot), then the two pairs left.
CONFUSABLE_FASHION_MNIST_PAIRS = [(0, 6), (2, 4), (7, 9), (3, 1), (5, 8)]


def confusable_fashion_mnist(
    train_per_task=None,
    val_fraction=0.1,
    test_per_task=None,
    seed=0,
):
    """Split Fashion-MNIST into pairs of classes that look alike: a hard stream.

    Five 2-class tasks: `T-shirt/top, Shirt`, `Pullover, Coat`,
    `Sneaker, Ankle boot` (the pairs a classifier confuses most), then
    `Dress, Trouser` and `Sandal, Bag`. Within a task the classes are close,
    so a task needs fine features; across tasks the inputs are related (all
    clothing), so reusing earlier features helps, unlike permuted pixels.
    Everything else is as in `split_fashion_mnist` (same carving and
    validation split).

    Args:
        train_per_task: examples taken per task before the validation split
            (spread evenly over the two classes). None: all 12,000.
        val_fraction: fraction held out for validation (stratified).
        test_per_task: test examples per task. None: all 2,000.
        seed: fixes the examples taken and the validation split.

    Returns:
        A `TaskStream` of 5 tasks with images of shape `(28, 28, 1)`.

    Example:

    >>> stream = keras_grown.datasets.confusable_fashion_mnist(train_per_task=1000)
    >>> stream[0].class_names
    ['T-shirt/top', 'Shirt']
    """
    return _fashion_mnist_class_stream(
        "confusable_fashion_mnist", [list(pair) for pair in CONFUSABLE_FASHION_MNIST_PAIRS],
        train_per_task, val_fraction, test_per_task, seed,
    )


def permuted_fashion_mnist(
    num_tasks=5,
    train_per_task=None,
    val_fraction=0.1,
    test_per_task=None,
    seed=0,
    permute_first_task=False,
):
    """Permuted Fashion-MNIST: every task has all 10 classes, pixels shuffled.

    Task `t` applies one fixed permutation of the 784 pixel positions to
    every image (train, validation and test alike). **Task 0 keeps the
    original images** (identity permutation) unless
    `permute_first_task=True`; tasks 1.. use permutations drawn from
    `seed` and the task index, so they differ from each other and are the
    same on every call.

    Args:
        num_tasks: number of tasks.
        train_per_task: examples taken from the training split per task
            (spread evenly over the 10 classes) before the validation set
            is carved out of them. None: all 60,000.
        val_fraction: fraction of those held out for validation (stratified).
        test_per_task: test examples per task. None: all 10,000.
        seed: fixes the permutations, the examples taken, the validation split.
        permute_first_task: also permute task 0.

    Returns:
        A `TaskStream` of `num_tasks` 10-class tasks with images of shape
        `(28, 28, 1)`.

    Example:

    >>> stream = keras_grown.datasets.permuted_fashion_mnist(
    ...     num_tasks=3, train_per_task=2000)
    >>> stream.num_classes
    [10, 10, 10]
    """
    _check_num_tasks(num_tasks)
    train_per_task = _check_count("train_per_task", train_per_task)
    test_per_task = _check_count("test_per_task", test_per_task)
    val_fraction = _check_fraction("val_fraction", val_fraction)
    (x_train, y_train), (x_test, y_test) = _load_fashion_mnist()
    plans = []
    for task_id in range(num_tasks):
        plan = _plan_task(
            task_id,
            f"permuted_{task_id}",
            list(range(10)),
            FASHION_MNIST_CLASS_NAMES,
            (y_train, y_test),
            train_per_task,
            val_fraction,
            None,
            test_per_task,
            seed,
        )
        if task_id > 0 or permute_first_task:
            plan.permutation = pixel_permutation(seed, task_id, 28 * 28)
        plans.append(plan)
    return _build_stream("permuted_fashion_mnist", plans, (x_train, x_test))


def pixel_permutation(seed, task_id, num_pixels=784):
    """The fixed pixel permutation `permuted_fashion_mnist` uses for a task.

    Args:
        seed: the stream seed.
        task_id: the task index.
        num_pixels: pixels per image (784 for 28x28x1).

    Returns:
        An int64 array: permuted image pixel `k` is original pixel
        `permutation[k]` (row-major order of the flattened image).
    """
    return _rng(seed, 3, task_id).permutation(num_pixels)
