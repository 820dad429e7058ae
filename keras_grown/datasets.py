"""Task streams for continual learning: a sequence of `Task`s, one per step.

A *stream* is what a continual learner sees: tasks arrive one after another,
each with its own label set (task-incremental learning, the task id is known
at test time). Every task carries three **unbatched, unshuffled**
`tf.data.Dataset`s of `(image, label)` pairs:

* images are `float32` in `[0, 1]` with a channel axis (`(28, 28, 1)` for
  Fashion-MNIST, `(32, 32, 3)` for CIFAR-100);
* labels are `int32` in `0 .. num_classes - 1`, remapped inside the task
  (the original class ids and names are kept in `Task.class_names`).

Callers decide how to batch: `task.train.shuffle(10_000).batch(64)`, or
`task.batched(64)` for the usual (shuffled train, val, test) triple.

Validation data is always carved from the **training** split (seeded and
stratified by class), never from the test split.

Streams:

* `split_fashion_mnist`: the 10 Fashion-MNIST classes cut into tasks.
* `permuted_fashion_mnist`: all 10 classes in every task, each task with
  its own fixed pixel permutation.
* `split_digits`: scikit-learn's 8x8 digits cut into tasks (tiny, real).
* `split_cifar100`: the paper's 10 tasks of 10 CIFAR-100 classes.
* `cifar100_superclass`: 20 tasks, one per CIFAR-100 superclass.
* `from_directory`, `from_arrays`, `from_datasets`: your own data.
* `load_stream(name, **kwargs)`: any of the named streams by name.

Fashion-MNIST is read from files already on the machine (Keras' cache
folder, or Debian's `dataset-fashion-mnist` package); nothing downloads.
"""

import collections.abc
import dataclasses
import functools
import gzip
import inspect
import os
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

# ---------------------------------------------------------------------------
# Class names
# ---------------------------------------------------------------------------

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

DIGITS_CLASS_NAMES = [str(digit) for digit in range(10)]

# The fine and coarse label names in the order of CIFAR-100's label ids (the
# same order as tensorflow-datasets' `label` and `coarse_label` features).
# Written out here so that names are right even when tensorflow-datasets has
# no metadata files (offline, or under `tfds.testing.mock_data`).
CIFAR100_FINE_LABEL_NAMES = [
    "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle",
    "bicycle", "bottle", "bowl", "boy", "bridge", "bus", "butterfly", "camel",
    "can", "castle", "caterpillar", "cattle", "chair", "chimpanzee", "clock",
    "cloud", "cockroach", "couch", "crab", "crocodile", "cup", "dinosaur",
    "dolphin", "elephant", "flatfish", "forest", "fox", "girl", "hamster",
    "house", "kangaroo", "keyboard", "lamp", "lawn_mower", "leopard", "lion",
    "lizard", "lobster", "man", "maple_tree", "motorcycle", "mountain", "mouse",
    "mushroom", "oak_tree", "orange", "orchid", "otter", "palm_tree", "pear",
    "pickup_truck", "pine_tree", "plain", "plate", "poppy", "porcupine",
    "possum", "rabbit", "raccoon", "ray", "road", "rocket", "rose", "sea",
    "seal", "shark", "shrew", "skunk", "skyscraper", "snail", "snake",
    "spider", "squirrel", "streetcar", "sunflower", "sweet_pepper", "table",
    "tank", "telephone", "television", "tiger", "tractor", "train", "trout",
    "tulip", "turtle", "wardrobe", "whale", "willow_tree", "wolf", "woman",
    "worm",
]  # fmt: skip

CIFAR100_COARSE_LABEL_NAMES = [
    "aquatic_mammals", "fish", "flowers", "food_containers",
    "fruit_and_vegetables", "household_electrical_devices",
    "household_furniture", "insects", "large_carnivores",
    "large_man-made_outdoor_things", "large_natural_outdoor_scenes",
    "large_omnivores_and_herbivores", "medium_mammals",
    "non-insect_invertebrates", "people", "reptiles", "small_mammals", "trees",
    "vehicles_1", "vehicles_2",
]  # fmt: skip

# CIFAR100_FINE_TO_COARSE[fine_label] is the superclass of that fine label.
CIFAR100_FINE_TO_COARSE = [
    4, 1, 14, 8, 0, 6, 7, 7, 18, 3,
    3, 14, 9, 18, 7, 11, 3, 9, 7, 11,
    6, 11, 5, 10, 7, 6, 13, 15, 3, 15,
    0, 11, 1, 10, 12, 14, 16, 9, 11, 5,
    5, 19, 8, 8, 15, 13, 14, 17, 18, 10,
    16, 4, 17, 4, 2, 0, 17, 4, 18, 17,
    10, 3, 2, 12, 12, 16, 12, 1, 9, 19,
    2, 10, 0, 1, 16, 12, 9, 13, 15, 13,
    16, 19, 2, 4, 6, 19, 5, 5, 8, 19,
    18, 1, 2, 15, 6, 0, 17, 8, 14, 13,
]  # fmt: skip

# CIFAR100_COARSE_TO_FINE[coarse_label]: its five fine labels, ascending.
CIFAR100_COARSE_TO_FINE = [
    [fine for fine, coarse in enumerate(CIFAR100_FINE_TO_COARSE) if coarse == c] for c in range(20)
]

# ---------------------------------------------------------------------------
# Task and TaskStream
# ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, eq=False)
class Task:
    """One task of a continual-learning stream.

    The three datasets are **unbatched and unshuffled**: each element is one
    `(image, label)` pair, in a fixed order. Shuffle and batch them yourself
    (`task.train.shuffle(10_000, seed=0).batch(64)`) or call `batched()`.

    Attributes:
        name: a short name for tables and plots (`"task_0"`, or the
            superclass / folder name).
        train: `tf.data.Dataset` of `(image, label)`: `float32` images in
            `[0, 1]` with a channel axis, `int32` labels in
            `0 .. num_classes - 1`.
        val: the validation split, carved from the training set.
        test: the test split.
        num_classes: number of classes of this task.
        class_names: the original names of the task's classes; label `k`
            of the task is `class_names[k]`.
        input_shape: the shape of one image, e.g. `(28, 28, 1)`.
        task_id: the 0-based position of the task in its stream.

    Example:

    >>> stream = keras_grown.datasets.split_fashion_mnist(train_per_task=200)
    >>> task = stream[0]
    >>> task.class_names
    ['T-shirt/top', 'Trouser']
    >>> train, val, test = task.batched(batch_size=64)
    """

    name: str
    train: tf.data.Dataset
    val: tf.data.Dataset
    test: tf.data.Dataset
    num_classes: int
    class_names: list
    input_shape: tuple
    task_id: int

    def batched(self, batch_size=64, shuffle=True, seed=0):
        """Returns `(train, val, test)` batched and prefetched.

        Args:
            batch_size: examples per batch.
            shuffle: whether to shuffle the training set (reshuffled every
                epoch, in an order fixed by `seed`). Validation and test
                sets are never shuffled.
            seed: the shuffling seed.

        Returns:
            A tuple of three batched `tf.data.Dataset`s.

        Example:

        >>> train, val, test = task.batched(batch_size=128, seed=1)
        >>> model.fit(train, validation_data=val, epochs=3)
        """
        if (
            isinstance(batch_size, bool)
            or not isinstance(batch_size, (int, np.integer))
            or batch_size < 1
        ):
            raise ValueError(
                f"batch_size must be a positive integer. Received: batch_size={batch_size!r}"
            )
        train = self.train
        if shuffle:
            size = int(train.cardinality())
            buffer_size = size if size > 0 else 10_000
            train = train.shuffle(buffer_size, seed=seed, reshuffle_each_iteration=True)
        return tuple(
            ds.batch(int(batch_size)).prefetch(tf.data.AUTOTUNE)
            for ds in (train, self.val, self.test)
        )

    @property
    def sizes(self):
        """`{"train": n, "val": n, "test": n}` (None where the size is unknown)."""
        counts = {}
        for split in ("train", "val", "test"):
            count = int(getattr(self, split).cardinality())
            counts[split] = count if count >= 0 else None
        return counts

    def __repr__(self):
        sizes = self.sizes
        return (
            f"Task(task_id={self.task_id}, name={self.name!r}, "
            f"num_classes={self.num_classes}, input_shape={self.input_shape}, "
            f"train={sizes['train']}, val={sizes['val']}, test={sizes['test']})"
        )


class TaskStream(collections.abc.Sequence):
    """A sequence of `Task`s: what a continual learner trains on, in order.

    Supports `len(stream)`, `stream[i]`, `stream[a:b]` (a shorter stream;
    its tasks keep their `task_id`) and iteration.

    Args:
        tasks: the `Task`s, in the order they are learned. All must share
            one `input_shape` (one model reads them all).
        name: the stream's name, e.g. `"split_fashion_mnist"`.

    Attributes:
        name: the stream's name.
        tasks: the tasks, as a tuple.
        input_shape: the image shape shared by every task.
        num_classes: list with the number of classes of each task.

    Example:

    >>> stream = keras_grown.datasets.split_fashion_mnist(num_tasks=5)
    >>> len(stream), stream.input_shape, stream.num_classes
    (5, (28, 28, 1), [2, 2, 2, 2, 2])
    >>> for task in stream:
    ...     model.fit(task.train.batch(64), epochs=1)
    """

    def __init__(self, tasks, name="stream"):
        tasks = tuple(tasks)
        if not tasks:
            raise ValueError(
                f"A TaskStream needs at least one task; stream {name!r} received none."
            )
        for position, task in enumerate(tasks):
            if not isinstance(task, Task):
                raise TypeError(
                    f"A TaskStream holds Task objects; element {position} is a "
                    f"{type(task).__name__}. Build tasks with from_arrays() or from_datasets()."
                )
        shapes = {tuple(task.input_shape) for task in tasks}
        if len(shapes) != 1:
            raise ValueError(
                "Every task of a stream must have the same input_shape (one model reads "
                f"them all). Received shapes {sorted(shapes)}. Resize the images first."
            )
        self.name = name
        self.tasks = tasks
        self.input_shape = tuple(tasks[0].input_shape)
        self.num_classes = [task.num_classes for task in tasks]

    def __len__(self):
        return len(self.tasks)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return TaskStream(self.tasks[index], name=self.name)
        return self.tasks[index]

    def __repr__(self):
        return (
            f"TaskStream(name={self.name!r}, num_tasks={len(self)}, "
            f"input_shape={self.input_shape}, num_classes={self.num_classes})"
        )


# ---------------------------------------------------------------------------
# Index arithmetic: seeded, stratified selection (NumPy only)
# ---------------------------------------------------------------------------


def _rng(seed, *keys):
    """A NumPy generator fixed by the stream seed and a purpose key."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), *keys]))


def _even_quota(available, total):
    """Spreads `total` over classes as evenly as their `available` counts allow."""
    available = np.asarray(available, dtype=np.int64)
    quota = np.zeros_like(available)
    remaining = int(total)
    while remaining > 0:
        open_classes = np.flatnonzero(quota < available)
        share, extra = divmod(remaining, len(open_classes))
        for rank, c in enumerate(open_classes):
            add = min(share + (1 if rank < extra else 0), available[c] - quota[c])
            quota[c] += add
            remaining -= add
    return quota


def _proportional_quota(counts, total):
    """Splits `total` over classes in proportion to `counts` (largest remainder)."""
    counts = np.asarray(counts, dtype=np.int64)
    if total == 0 or counts.sum() == 0:
        return np.zeros_like(counts)
    exact = counts * (total / counts.sum())
    quota = np.floor(exact).astype(np.int64)
    leftover = int(total - quota.sum())
    order = np.argsort(-(exact - quota), kind="stable")
    quota[order[:leftover]] += 1
    return np.minimum(quota, counts)


def _pick(labels, quota, rng):
    """Per class `c`, `quota[c]` random indices of `labels == c`; sorted."""
    picked = [rng.permutation(np.flatnonzero(labels == c))[:q] for c, q in enumerate(quota)]
    return np.sort(np.concatenate(picked)) if picked else np.zeros(0, np.int64)


def _carve(labels, num_classes, num_keep, num_carved, rng):
    """Takes `num_keep + num_carved` examples (even per class), then carves
    `num_carved` of them (stratified) off. Returns (kept, carved) indices."""
    available = np.bincount(labels, minlength=num_classes)
    chosen = _even_quota(available, num_keep + num_carved)
    carved_quota = _proportional_quota(chosen, num_carved)
    kept, carved = [], []
    for c in range(num_classes):
        members = rng.permutation(np.flatnonzero(labels == c))[: chosen[c]]
        carved.append(members[: carved_quota[c]])
        kept.append(members[carved_quota[c] :])
    return np.sort(np.concatenate(kept)), np.sort(np.concatenate(carved))


def _check_fraction(name, value, allow_zero=True):
    low_ok = value >= 0 if allow_zero else value > 0
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float, np.floating))
        or not (low_ok and value < 1)
    ):
        interval = "[0, 1)" if allow_zero else "(0, 1)"
        raise ValueError(f"{name} must be a fraction in {interval}. Received: {name}={value!r}")
    return float(value)


def _check_count(name, value):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(
            f"{name} must be a non-negative integer or None (all). Received: {name}={value!r}"
        )
    return int(value)


def _class_order(class_order, num_classes, seed):
    """None (natural order), a permutation of the class ids, or "random"."""
    if class_order is None:
        return list(range(num_classes))
    if isinstance(class_order, str):
        if class_order != "random":
            raise ValueError(
                'class_order must be None, "random" or a list of class ids. '
                f"Received: class_order={class_order!r}"
            )
        return [int(c) for c in _rng(seed, 0).permutation(num_classes)]
    order = [int(c) for c in class_order]
    if sorted(order) != list(range(num_classes)):
        raise ValueError(
            f"class_order must list each of the class ids 0..{num_classes - 1} exactly once. "
            f"Received: class_order={list(class_order)}"
        )
    return order


def _class_groups(order, num_tasks):
    if isinstance(num_tasks, bool) or not isinstance(num_tasks, (int, np.integer)) or num_tasks < 1:
        raise ValueError(f"num_tasks must be a positive integer. Received: num_tasks={num_tasks!r}")
    if len(order) % num_tasks:
        divisors = [d for d in range(1, len(order) + 1) if len(order) % d == 0]
        raise ValueError(
            f"num_tasks must divide the {len(order)} classes into tasks of equal size. "
            f"Received: num_tasks={num_tasks}. Use one of {divisors}."
        )
    size = len(order) // num_tasks
    return [order[i * size : (i + 1) * size] for i in range(num_tasks)]


# ---------------------------------------------------------------------------
# From arrays to tf.data
# ---------------------------------------------------------------------------


def _with_channel_axis(images):
    return images[..., np.newaxis] if images.ndim == 3 else images


def _scale_uint8(image, label):
    return tf.cast(image, tf.float32) / 255.0, label


def _to_dataset(images, labels):
    """An unbatched dataset of (float32 image in [0, 1], int32 label).

    `uint8` images are stored as they are and scaled lazily (4x less
    memory); float images must already be in [0, 1].
    """
    labels = np.asarray(labels, dtype=np.int32)
    if images.dtype == np.uint8:
        dataset = tf.data.Dataset.from_tensor_slices((images, labels))
        return dataset.map(_scale_uint8, num_parallel_calls=tf.data.AUTOTUNE)
    return tf.data.Dataset.from_tensor_slices((images.astype(np.float32), labels))


@dataclasses.dataclass
class _TaskPlan:
    """Indices of one task before any dataset is built (so errors come first)."""

    name: str
    classes: list
    class_names: list
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    train_labels: np.ndarray
    val_labels: np.ndarray
    test_labels: np.ndarray
    permutation: object = None


def _plan_task(
    task_id,
    name,
    classes,
    class_names,
    source,
    train_per_task,
    val_fraction,
    val_per_task,
    test_per_task,
    seed,
    test_source_name="test",
):
    """Selects the indices of one task of a class-split stream.

    `source` is `(y_train, y_test)`: original labels. Sizing follows one of
    two rules: with `val_per_task` None, `train_per_task` examples (None:
    all) are taken from the training split and `val_fraction` of them
    becomes the validation set; with `val_per_task` given, `train_per_task`
    training and `val_per_task` validation examples are both carved from the
    training split.
    """
    y_train, y_test = source
    lookup = np.full(max(int(y_train.max()), int(y_test.max()), max(classes)) + 1, -1, np.int64)
    lookup[classes] = np.arange(len(classes))
    train_pool = np.flatnonzero(np.isin(y_train, classes))
    test_pool = np.flatnonzero(np.isin(y_test, classes))
    pool_labels = lookup[y_train[train_pool]]
    available = len(train_pool)
    where = f"task {task_id} (classes {class_names})"
    if val_per_task is None:
        take = available if train_per_task is None else train_per_task
        if take > available:
            raise ValueError(
                f"train_per_task={train_per_task} asks for more training images than exist: "
                f"{where} has {available} in the training split. Ask for at most "
                f"{available}, or train_per_task=None for all of them."
            )
        num_val = int(round(take * val_fraction))
        num_train = take - num_val
    else:
        num_val = val_per_task
        num_train = available - num_val if train_per_task is None else train_per_task
        if num_train < 0 or num_train + num_val > available:
            raise ValueError(
                f"train_per_task={train_per_task} plus val_per_task={val_per_task} asks for more "
                f"training images than exist: {where} has {available} in the training split "
                f"(validation is carved from it). Ask for at most {available} together."
            )
    kept, carved = _carve(pool_labels, len(classes), num_train, num_val, _rng(seed, 1, task_id))
    test_labels_all = lookup[y_test[test_pool]]
    if test_per_task is None:
        test = np.arange(len(test_pool))
    else:
        if test_per_task > len(test_pool):
            raise ValueError(
                f"test_per_task={test_per_task} asks for more test images than exist: {where} "
                f"has {len(test_pool)} in the {test_source_name} split. Ask for at most "
                f"{len(test_pool)}, or test_per_task=None for all of them."
            )
        quota = _even_quota(np.bincount(test_labels_all, minlength=len(classes)), test_per_task)
        test = _pick(test_labels_all, quota, _rng(seed, 2, task_id))
    return _TaskPlan(
        name=name,
        classes=list(classes),
        class_names=list(class_names),
        train=train_pool[kept],
        val=train_pool[carved],
        test=test_pool[test],
        train_labels=pool_labels[kept],
        val_labels=pool_labels[carved],
        test_labels=test_labels_all[test],
    )


def _build_stream(stream_name, plans, arrays):
    """Turns task plans into a TaskStream. `arrays` is (x_train, x_test)."""
    x_train, x_test = arrays
    tasks = []
    for task_id, plan in enumerate(plans):
        splits = []
        for images, index, labels in (
            (x_train, plan.train, plan.train_labels),
            (x_train, plan.val, plan.val_labels),
            (x_test, plan.test, plan.test_labels),
        ):
            selected = _with_channel_axis(images[index])
            if plan.permutation is not None:
                flat = selected.reshape(len(selected), -1)[:, plan.permutation]
                selected = flat.reshape(selected.shape)
            splits.append(_to_dataset(selected, labels))
        tasks.append(
            Task(
                name=plan.name,
                train=splits[0],
                val=splits[1],
                test=splits[2],
                num_classes=len(plan.classes),
                class_names=plan.class_names,
                input_shape=tuple(_with_channel_axis(x_train[:1]).shape[1:]),
                task_id=task_id,
            )
        )
    return TaskStream(tasks, name=stream_name)


def _class_split_stream(
    stream_name,
    groups,
    names,
    arrays,
    train_per_task,
    val_fraction,
    val_per_task,
    test_per_task,
    seed,
    task_names=None,
):
    """A stream where task i holds the original classes `groups[i]`."""
    (x_train, y_train), (x_test, y_test) = arrays
    plans = [
        _plan_task(
            task_id,
            task_names[task_id] if task_names else f"task_{task_id}",
            group,
            [names[c] for c in group],
            (y_train, y_test),
            train_per_task,
            val_fraction,
            val_per_task,
            test_per_task,
            seed,
        )
        for task_id, group in enumerate(groups)
    ]
    return _build_stream(stream_name, plans, (x_train, x_test))


# ---------------------------------------------------------------------------
# Fashion-MNIST (never downloads)
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
    if isinstance(num_tasks, bool) or not isinstance(num_tasks, (int, np.integer)) or num_tasks < 1:
        raise ValueError(f"num_tasks must be a positive integer. Received: num_tasks={num_tasks!r}")
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


# ---------------------------------------------------------------------------
# scikit-learn digits
# ---------------------------------------------------------------------------


def split_digits(
    num_tasks=5,
    train_per_task=None,
    val_fraction=0.1,
    test_fraction=0.2,
    test_per_task=None,
    class_order=None,
    seed=0,
):
    """Split digits: scikit-learn's 1,797 real 8x8 digits cut into tasks.

    The digits data set has no test split, so one is carved first:
    `test_fraction` (20 % by default, 359 images) of all images, stratified
    by class and fixed by `seed`, whatever `num_tasks` is. The validation
    set is then carved from each task's remaining images. Pixels (0..16)
    are divided by 16.

    Args:
        num_tasks: number of tasks; must divide 10.
        train_per_task: examples taken from the non-test images per task,
            before the validation set is carved out of them. None: all.
        val_fraction: fraction of those held out for validation.
        test_fraction: fraction of the whole data set held out as the test
            split, in (0, 1).
        test_per_task: test examples per task. None: all.
        class_order: None, a list of the 10 digits, or `"random"`.
        seed: fixes the test split, the class order (when random), the
            examples taken and the validation split.

    Returns:
        A `TaskStream` of `num_tasks` tasks with images of shape `(8, 8, 1)`.

    Raises:
        ImportError: scikit-learn is not installed.

    Example:

    >>> stream = keras_grown.datasets.split_digits(num_tasks=5)
    >>> stream[0].class_names
    ['0', '1']
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError as error:
        raise ImportError(
            "split_digits() reads scikit-learn's bundled digits data set, and scikit-learn "
            'is not installed. Install it with: pip install "keras-grown[digits]"'
        ) from error
    train_per_task = _check_count("train_per_task", train_per_task)
    test_per_task = _check_count("test_per_task", test_per_task)
    val_fraction = _check_fraction("val_fraction", val_fraction)
    test_fraction = _check_fraction("test_fraction", test_fraction, allow_zero=False)
    groups = _class_groups(_class_order(class_order, 10, seed), num_tasks)
    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)
    labels = digits.target.astype(np.int64)
    counts = np.bincount(labels, minlength=10)
    test_quota = _proportional_quota(counts, int(round(len(labels) * test_fraction)))
    test = _pick(labels, test_quota, _rng(seed, 4))
    rest = np.setdiff1d(np.arange(len(labels)), test)
    arrays = ((images[rest], labels[rest]), (images[test], labels[test]))
    return _class_split_stream(
        "split_digits",
        groups,
        DIGITS_CLASS_NAMES,
        arrays,
        train_per_task,
        val_fraction,
        None,
        test_per_task,
        seed,
    )


# ---------------------------------------------------------------------------
# CIFAR-100 (tensorflow-datasets)
# ---------------------------------------------------------------------------


def _load_cifar100(data_dir, download):
    """CIFAR-100 through tensorflow-datasets, as NumPy arrays.

    Returns a dict: split -> (images uint8 (N, 32, 32, 3), fine labels,
    coarse labels).
    """
    import tensorflow_datasets as tfds

    arrays = {}
    for split in ("train", "test"):
        # Batches of 10,000 rather than batch_size=-1: that asks tf.data for
        # one batch of "all" examples, which aborts when the split size is
        # unknown (tfds' mock data, metadata-less folders).
        dataset = tfds.load("cifar100", split=split, data_dir=data_dir, download=download)
        batches = list(tfds.as_numpy(dataset.batch(10_000)))
        arrays[split] = tuple(
            np.concatenate([batch[key] for batch in batches]).astype(dtype, copy=False)
            for key, dtype in (("image", np.uint8), ("label", np.int64), ("coarse_label", np.int64))
        )
    return arrays


def split_cifar100(
    num_tasks=10,
    train_per_task=4000,
    val_per_task=1000,
    test_per_task=1000,
    class_order=None,
    data_dir=None,
    download=True,
    seed=0,
):
    """Split CIFAR-100, the paper's setting: 10 tasks of 10 classes.

    Per task (10 classes, 5,000 training and 1,000 test images): 4,000
    training and 1,000 validation images, both carved from the 5,000
    training images of the task's classes (stratified, fixed by `seed`),
    and the 1,000 test images. Data comes from `tfds.load("cifar100")`
    (fine `label`); tensorflow-datasets downloads it to `data_dir` the
    first time (about 160 MB) unless `download=False`.

    Args:
        num_tasks: number of tasks; must divide 100.
        train_per_task: training images per task (None: all that the
            validation set leaves).
        val_per_task: validation images per task, carved from the
            training split.
        test_per_task: test images per task (None: all).
        class_order: None (fine labels 0..99 in order), a list of the 100
            ids, or `"random"`.
        data_dir: tensorflow-datasets' data folder (None: its default,
            `~/tensorflow_datasets`).
        download: let tensorflow-datasets download and prepare the data
            when it is not in `data_dir`.
        seed: fixes the class order (when random), the examples taken and
            the validation split.

    Returns:
        A `TaskStream` of `num_tasks` tasks with images of shape `(32, 32, 3)`.

    Example:

    >>> stream = keras_grown.datasets.split_cifar100()
    >>> stream[0].class_names[:3]
    ['apple', 'aquarium_fish', 'baby']
    """
    train_per_task = _check_count("train_per_task", train_per_task)
    val_per_task = _check_count("val_per_task", val_per_task) or 0
    test_per_task = _check_count("test_per_task", test_per_task)
    groups = _class_groups(_class_order(class_order, 100, seed), num_tasks)
    data = _load_cifar100(data_dir, download)
    arrays = tuple((images, fine) for images, fine, _ in (data["train"], data["test"]))
    return _class_split_stream(
        "split_cifar100",
        groups,
        CIFAR100_FINE_LABEL_NAMES,
        arrays,
        train_per_task,
        0.0,
        val_per_task,
        test_per_task,
        seed,
    )


def cifar100_superclass(
    train_per_task=None,
    val_fraction=0.1,
    test_per_task=None,
    data_dir=None,
    download=True,
    seed=0,
):
    """CIFAR-100 superclass: 20 tasks, one per coarse label, 5 classes each.

    Task `c` holds the images whose `coarse_label` is `c` (named after the
    superclass, e.g. `"aquatic_mammals"`); its labels are the five fine
    classes of that superclass in ascending fine-label order, remapped to
    0..4 (`CIFAR100_COARSE_TO_FINE[c]`). Per task: 2,500 training images,
    of which `val_fraction` (10 %: 250) become the validation set, leaving
    2,250 for training; and 500 test images.

    Args:
        train_per_task: examples taken from the training split per task,
            before the validation set is carved out of them. None: all 2,500.
        val_fraction: fraction of those held out for validation.
        test_per_task: test examples per task. None: all 500.
        data_dir: tensorflow-datasets' data folder.
        download: let tensorflow-datasets download the data if missing.
        seed: fixes the examples taken and the validation split.

    Returns:
        A `TaskStream` of 20 five-class tasks with images of shape `(32, 32, 3)`.

    Example:

    >>> stream = keras_grown.datasets.cifar100_superclass()
    >>> stream[0].name, stream[0].class_names
    ('aquatic_mammals', ['beaver', 'dolphin', 'otter', 'seal', 'whale'])
    """
    train_per_task = _check_count("train_per_task", train_per_task)
    test_per_task = _check_count("test_per_task", test_per_task)
    val_fraction = _check_fraction("val_fraction", val_fraction)
    data = _load_cifar100(data_dir, download)
    fine_to_coarse = np.asarray(CIFAR100_FINE_TO_COARSE)
    for split, (_, fine, coarse) in data.items():
        wrong = np.flatnonzero(fine_to_coarse[fine] != coarse)
        if len(wrong):
            k = wrong[0]
            raise ValueError(
                f"The CIFAR-100 {split} split pairs fine and coarse labels in a way CIFAR-100 "
                f"does not: example {k} has label={fine[k]} ({CIFAR100_FINE_LABEL_NAMES[fine[k]]}) "
                f"but coarse_label={coarse[k]} (expected {fine_to_coarse[fine[k]]}); "
                f"{len(wrong)} examples disagree. Rebuild the data set (tfds build cifar100)."
            )
    arrays = tuple((images, fine) for images, fine, _ in (data["train"], data["test"]))
    return _class_split_stream(
        "cifar100_superclass",
        CIFAR100_COARSE_TO_FINE,
        CIFAR100_FINE_LABEL_NAMES,
        arrays,
        train_per_task,
        val_fraction,
        None,
        test_per_task,
        seed,
        task_names=CIFAR100_COARSE_LABEL_NAMES,
    )


# ---------------------------------------------------------------------------
# Your own data
# ---------------------------------------------------------------------------


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
        if (
            isinstance(num_classes, bool)
            or not isinstance(num_classes, (int, np.integer))
            or num_classes < 1
        ):
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


# ---------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------

STREAMS = {
    "split_fashion_mnist": split_fashion_mnist,
    "confusable_fashion_mnist": confusable_fashion_mnist,
    "split_digits": split_digits,
    "permuted_fashion_mnist": permuted_fashion_mnist,
    "split_cifar100": split_cifar100,
    "cifar100_superclass": cifar100_superclass,
}


def list_streams():
    """The names `load_stream` knows, sorted."""
    return sorted(STREAMS)


def load_stream(name, **kwargs):
    """Builds a named stream: `load_stream("split_fashion_mnist", num_tasks=5)`.

    Args:
        name: one of `list_streams()`: `"split_fashion_mnist"`,
            `"confusable_fashion_mnist"`, `"split_digits"`, `"permuted_fashion_mnist"`, `"split_cifar100"`,
            `"cifar100_superclass"`.
        **kwargs: passed to the stream's function.

    Returns:
        A `TaskStream`.

    Example:

    >>> stream = keras_grown.datasets.load_stream("split_digits", num_tasks=5)
    """
    if name not in STREAMS:
        raise ValueError(
            f"Unknown stream {name!r}. Known streams: {', '.join(list_streams())}. "
            "For your own data use from_directory(), from_arrays() or from_datasets()."
        )
    accepted = list(inspect.signature(STREAMS[name]).parameters)
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise TypeError(
            f"Stream {name!r} does not take {', '.join(unknown)}. It accepts: "
            f"{', '.join(accepted)}."
        )
    return STREAMS[name](**kwargs)


__all__ = [
    "CIFAR100_COARSE_LABEL_NAMES",
    "CIFAR100_COARSE_TO_FINE",
    "CIFAR100_FINE_LABEL_NAMES",
    "CIFAR100_FINE_TO_COARSE",
    "CONFUSABLE_FASHION_MNIST_PAIRS",
    "DIGITS_CLASS_NAMES",
    "FASHION_MNIST_CLASS_NAMES",
    "STREAMS",
    "Task",
    "TaskStream",
    "cifar100_superclass",
    "confusable_fashion_mnist",
    "from_arrays",
    "from_datasets",
    "from_directory",
    "list_streams",
    "load_stream",
    "permuted_fashion_mnist",
    "pixel_permutation",
    "split_cifar100",
    "split_digits",
    "split_fashion_mnist",
]
