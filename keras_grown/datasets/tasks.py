"""The task and stream types, and how a stream is carved from arrays.

`Task` is one task of a continual-learning stream (three unbatched datasets
of `(image, label)` pairs and its class names); `TaskStream` is the sequence
of tasks a learner sees. The helpers below them do the index arithmetic
every stream shares: seeded, class-stratified quotas, the validation set
carved from the training split, task plans checked before any dataset is
built. The source modules (`fashion_mnist`, `digits`, `cifar100`,
`directory`, `arrays`) read their data and call these.
"""

import collections.abc
import dataclasses

import numpy as np
import tensorflow as tf

from keras_grown._checks import check_optional_count, is_integer

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
        if not is_integer(batch_size, 1):
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
    return check_optional_count(name, value, "a non-negative integer or None (all)")


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


def _check_num_tasks(num_tasks):
    if not is_integer(num_tasks, 1):
        raise ValueError(f"num_tasks must be a positive integer. Received: num_tasks={num_tasks!r}")
    return num_tasks


def _class_groups(order, num_tasks):
    _check_num_tasks(num_tasks)
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
