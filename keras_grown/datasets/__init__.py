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

The package holds one module per job: `tasks` (the `Task` and `TaskStream`
types, carving and quotas), one module per source (`fashion_mnist`,
`digits`, `cifar100`, `directory`, `arrays`), and the registry of named
streams here.
"""

import inspect

from keras_grown.datasets.arrays import from_arrays, from_datasets
from keras_grown.datasets.cifar100 import (
    CIFAR100_COARSE_LABEL_NAMES,
    CIFAR100_COARSE_TO_FINE,
    CIFAR100_FINE_LABEL_NAMES,
    CIFAR100_FINE_TO_COARSE,
    cifar100_superclass,
    split_cifar100,
)
from keras_grown.datasets.digits import DIGITS_CLASS_NAMES, split_digits
from keras_grown.datasets.directory import from_directory
from keras_grown.datasets.fashion_mnist import (
    CONFUSABLE_FASHION_MNIST_PAIRS,
    FASHION_MNIST_CLASS_NAMES,
    confusable_fashion_mnist,
    permuted_fashion_mnist,
    pixel_permutation,
    split_fashion_mnist,
)

from keras_grown.datasets.tasks import Task, TaskStream

# Where the Fashion-MNIST reader looks, and the reader itself: reachable here
# as they were in the one-file module (the tests check them against Keras').
from keras_grown.datasets.fashion_mnist import (  # noqa: F401
    DEBIAN_FASHION_MNIST_DIR,
    _load_fashion_mnist,
    _read_fashion_mnist,
)

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
