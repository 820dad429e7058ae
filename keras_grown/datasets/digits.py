"""Split digits: scikit-learn's 1,797 real 8x8 digits cut into tasks (tiny, real)."""

import numpy as np

from keras_grown.datasets.tasks import (
    _check_count,
    _check_fraction,
    _class_groups,
    _class_order,
    _class_split_stream,
    _pick,
    _proportional_quota,
    _rng,
)

DIGITS_CLASS_NAMES = [str(digit) for digit in range(10)]


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
        "split_digits", groups, DIGITS_CLASS_NAMES, arrays,
        train_per_task, val_fraction, None, test_per_task, seed,
    )  # fmt: skip
