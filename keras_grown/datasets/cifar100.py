"""CIFAR-100 streams through tensorflow-datasets: split CIFAR-100 and the superclass stream."""

import numpy as np

from keras_grown.datasets.tasks import (
    _check_count,
    _check_fraction,
    _class_groups,
    _class_order,
    _class_split_stream,
)

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

    ```pycon
    >>> stream = keras_grown.datasets.split_cifar100()
    >>> stream[0].class_names[:3]
    ['apple', 'aquarium_fish', 'baby']
    ```
    """
    train_per_task = _check_count("train_per_task", train_per_task)
    val_per_task = _check_count("val_per_task", val_per_task) or 0
    test_per_task = _check_count("test_per_task", test_per_task)
    groups = _class_groups(_class_order(class_order, 100, seed), num_tasks)
    data = _load_cifar100(data_dir, download)
    arrays = tuple((images, fine) for images, fine, _ in (data["train"], data["test"]))
    return _class_split_stream(
        "split_cifar100", groups, CIFAR100_FINE_LABEL_NAMES, arrays,
        train_per_task, 0.0, val_per_task, test_per_task, seed,
    )  # fmt: skip


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
        "cifar100_superclass", CIFAR100_COARSE_TO_FINE, CIFAR100_FINE_LABEL_NAMES, arrays,
        train_per_task, val_fraction, None, test_per_task, seed,
        task_names=CIFAR100_COARSE_LABEL_NAMES,
    )  # fmt: skip
