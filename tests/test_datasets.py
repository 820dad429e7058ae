"""Task streams on real data: Fashion-MNIST (Debian's files), scikit-learn's
digits, generated image folders, and CIFAR-100 through tfds' mock data."""

import hashlib
import os

import numpy as np
import pytest
import tensorflow as tf

from keras_grown import datasets
from test_recipes import consistent_cifar100 as _consistent_cifar100

SMALL = dict(train_per_task=200, val_fraction=0.1, test_per_task=100)


def arrays(dataset):
    """(images, labels) of a whole unbatched dataset, in one batch."""
    images, labels = [], []
    for x, y in dataset.batch(100_000):
        images.append(x.numpy())
        labels.append(y.numpy())
    if not images:
        return np.zeros((0,)), np.zeros((0,), np.int32)
    return np.concatenate(images), np.concatenate(labels)


def digests(images, levels=255):
    """SHA-1 of every image, after mapping [0, 1] floats back to integers."""
    ints = np.round(np.asarray(images) * levels).astype(np.uint8)
    return [hashlib.sha1(image.tobytes()).hexdigest() for image in ints]


def index_of(images):
    """digest -> position, for raw uint8 images."""
    return {hashlib.sha1(image.tobytes()).hexdigest(): k for k, image in enumerate(images)}


@pytest.fixture(scope="module")
def raw_fashion():
    (x_train, y_train), (x_test, y_test) = datasets._load_fashion_mnist()
    return dict(y_train=y_train, y_test=y_test, train=index_of(x_train), test=index_of(x_test))


@pytest.fixture(scope="module")
def small_stream():
    return datasets.split_fashion_mnist(num_tasks=5, **SMALL)


# ---------------------------------------------------------------- Fashion-MNIST


def test_confusable_fashion_mnist_pairs_the_classes_that_look_alike():
    stream = datasets.load_stream("confusable_fashion_mnist", **SMALL)
    assert stream.name == "confusable_fashion_mnist"
    assert [task.class_names for task in stream] == [
        ["T-shirt/top", "Shirt"], ["Pullover", "Coat"], ["Sneaker", "Ankle boot"],
        ["Dress", "Trouser"], ["Sandal", "Bag"],
    ]
    for task in stream:
        assert task.sizes == {"train": 180, "val": 20, "test": 100}
        images, labels = arrays(task.train)
        assert np.bincount(labels).tolist() == [90, 90]  # remapped to 0, 1
    # The same images as the split stream's task holding the pair (class order given).
    split = datasets.split_fashion_mnist(num_tasks=5, class_order=[0, 6, 2, 4, 7, 9, 3, 1, 5, 8],
                                         **SMALL)
    np.testing.assert_array_equal(arrays(stream[2].test)[0], arrays(split[2].test)[0])


def test_split_fashion_mnist_shapes_dtypes_ranges(small_stream):
    assert len(small_stream) == 5
    assert small_stream.name == "split_fashion_mnist"
    assert small_stream.input_shape == (28, 28, 1)
    assert small_stream.num_classes == [2, 2, 2, 2, 2]
    for task_id, task in enumerate(small_stream):
        assert task.task_id == task_id
        assert task.input_shape == (28, 28, 1)
        assert task.sizes == {"train": 180, "val": 20, "test": 100}
        for split, count in (("train", 90), ("val", 10), ("test", 50)):
            images, labels = arrays(getattr(task, split))
            assert images.shape[1:] == (28, 28, 1)
            assert images.dtype == np.float32 and labels.dtype == np.int32
            assert images.min() >= 0.0 and images.max() <= 1.0
            assert images.max() > 0.5  # scaled, not all-dark
            # Two classes, each with exactly its even share.
            assert np.bincount(labels).tolist() == [count, count]


def test_default_sizes_are_all_training_images_with_ten_percent_validation():
    stream = datasets.split_fashion_mnist()
    assert [task.sizes for task in stream] == [{"train": 10800, "val": 1200, "test": 2000}] * 5


def test_conftest_fixture_sizes(fashion_stream):
    # tests/conftest.py documents 256 train, 64 val, 200 test per task.
    assert [t.sizes for t in fashion_stream] == [{"train": 256, "val": 64, "test": 200}] * 5


def test_each_task_holds_exactly_its_classes(small_stream, raw_fashion):
    for task_id, task in enumerate(small_stream):
        classes = [2 * task_id, 2 * task_id + 1]
        assert task.class_names == [datasets.FASHION_MNIST_CLASS_NAMES[c] for c in classes]
        for split, source in (("train", "train"), ("val", "train"), ("test", "test")):
            images, labels = arrays(getattr(task, split))
            positions = [raw_fashion[source][d] for d in digests(images)]
            original = raw_fashion[f"y_{source}"][positions]
            np.testing.assert_array_equal(original, np.asarray(classes)[labels])


def test_validation_is_carved_from_training_disjoint_from_train_and_test(small_stream, raw_fashion):
    for task in small_stream:
        train = set(digests(arrays(task.train)[0]))
        val = set(digests(arrays(task.val)[0]))
        test = set(digests(arrays(task.test)[0]))
        assert len(train) == 180 and len(val) == 20
        assert not train & val
        assert val <= set(raw_fashion["train"]), "validation must come from the training set"
        assert not val & set(raw_fashion["test"])
        assert test <= set(raw_fashion["test"])


def test_class_order_list_and_random():
    order = [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]
    stream = datasets.split_fashion_mnist(num_tasks=2, class_order=order, **SMALL)
    assert stream[0].class_names == ["Ankle boot", "Bag", "Sneaker", "Shirt", "Sandal"]
    assert stream.num_classes == [5, 5]

    def names(seed):
        stream = datasets.split_fashion_mnist(class_order="random", seed=seed, **SMALL)
        return [name for task in stream for name in task.class_names]

    first, again, other = names(0), names(0), names(1)
    assert first == again
    assert sorted(first) == sorted(datasets.FASHION_MNIST_CLASS_NAMES)
    assert first != datasets.FASHION_MNIST_CLASS_NAMES
    assert first != other


def test_seeded_reproducibility(small_stream):
    again = datasets.split_fashion_mnist(num_tasks=5, **SMALL)
    other = datasets.split_fashion_mnist(num_tasks=5, seed=1, **SMALL)
    for split in ("train", "val", "test"):
        first, second = arrays(getattr(small_stream[2], split)), arrays(getattr(again[2], split))
        np.testing.assert_array_equal(first[0], second[0])
        np.testing.assert_array_equal(first[1], second[1])
    assert set(digests(arrays(small_stream[2].val)[0])) != set(digests(arrays(other[2].val)[0]))


def test_permuted_fashion_mnist_uses_fixed_distinct_permutations(raw_fashion):
    stream = datasets.permuted_fashion_mnist(num_tasks=3, train_per_task=100, test_per_task=50)
    assert stream.num_classes == [10, 10, 10]
    assert [t.sizes for t in stream] == [{"train": 90, "val": 10, "test": 50}] * 3
    permutations = [np.arange(784)] + [datasets.pixel_permutation(0, t) for t in (1, 2)]
    for perm in permutations[1:]:
        np.testing.assert_array_equal(np.sort(perm), np.arange(784))  # a real permutation
        assert not np.array_equal(perm, np.arange(784))
    assert not np.array_equal(permutations[1], permutations[2])
    np.testing.assert_array_equal(permutations[1], datasets.pixel_permutation(0, 1))  # fixed
    for task, perm in zip(stream, permutations):
        inverse = np.argsort(perm)
        for split in ("train", "test"):
            images, labels = arrays(getattr(task, split))
            assert images.shape[1:] == (28, 28, 1) and 0 <= images.min() <= images.max() <= 1
            restored = images.reshape(len(images), -1)[:, inverse].reshape(images.shape)
            positions = [raw_fashion[split][d] for d in digests(restored)]
            np.testing.assert_array_equal(raw_fashion[f"y_{split}"][positions], labels)
    # Task 0 is the original data: its images are found as they are.
    first = digests(arrays(stream[0].train)[0])
    assert all(d in raw_fashion["train"] for d in first)
    second = digests(arrays(stream[1].train)[0])
    assert not any(d in raw_fashion["train"] for d in second)


def test_permute_first_task_option():
    stream = datasets.permuted_fashion_mnist(
        num_tasks=1, train_per_task=20, test_per_task=10, permute_first_task=True
    )
    plain = datasets.permuted_fashion_mnist(num_tasks=1, train_per_task=20, test_per_task=10)
    images, _ = arrays(stream[0].train)
    original, _ = arrays(plain[0].train)
    perm = datasets.pixel_permutation(0, 0)
    np.testing.assert_array_equal(images.reshape(18, -1), original.reshape(18, -1)[:, perm])


def test_fashion_errors_say_what_to_do():
    with pytest.raises(
        ValueError, match=r"num_tasks must divide the 10 classes.*num_tasks=3.*\[1, 2, 5, 10\]"
    ):
        datasets.split_fashion_mnist(num_tasks=3)
    with pytest.raises(ValueError, match=r"train_per_task=20000 .* has 12000 .* at most 12000"):
        datasets.split_fashion_mnist(train_per_task=20000)
    with pytest.raises(ValueError, match=r"test_per_task=5000 .* has 2000 in the test split"):
        datasets.split_fashion_mnist(train_per_task=100, test_per_task=5000)
    with pytest.raises(ValueError, match=r"val_fraction must be a fraction in \[0, 1\)"):
        datasets.split_fashion_mnist(val_fraction=1.5)
    with pytest.raises(ValueError, match="exactly once"):
        datasets.split_fashion_mnist(class_order=[0, 1, 2])
    with pytest.raises(ValueError, match='"random"'):
        datasets.split_fashion_mnist(class_order="shuffled")


def test_fashion_reader_parses_debian_idx_files_like_keras(tmp_path):
    (x_train, y_train), (x_test, y_test) = datasets._load_fashion_mnist()
    (px_train, py_train), (px_test, py_test) = datasets._read_fashion_mnist(
        str(tmp_path), datasets.DEBIAN_FASHION_MNIST_DIR  # empty Keras cache: IDX parsing
    )
    assert px_train.shape == (60000, 28, 28) and px_test.shape == (10000, 28, 28)
    assert px_train.dtype == np.uint8 and py_train.dtype == np.uint8
    np.testing.assert_array_equal(px_train, x_train)
    np.testing.assert_array_equal(py_train, y_train)
    np.testing.assert_array_equal(px_test, x_test)
    np.testing.assert_array_equal(py_test, y_test)


def test_fashion_loader_is_cached_and_read_only():
    first, second = datasets._load_fashion_mnist(), datasets._load_fashion_mnist()
    assert first is second
    with pytest.raises(ValueError):
        first[0][0][0, 0, 0] = 1


def test_missing_fashion_mnist_names_the_install_command(tmp_path):
    with pytest.raises(
        FileNotFoundError, match=r"apt-get install -y dataset-fashion-mnist.*make data"
    ):
        datasets._read_fashion_mnist(str(tmp_path / "keras"), str(tmp_path / "debian"))


# ---------------------------------------------------------------- digits


def test_split_digits_shapes_and_carved_splits():
    stream = datasets.split_digits(num_tasks=5)
    assert stream.input_shape == (8, 8, 1) and len(stream) == 5
    assert stream[0].class_names == ["0", "1"]
    sizes = [task.sizes for task in stream]
    assert sum(s["test"] for s in sizes) == 359  # round(0.2 * 1797)
    assert sum(s["train"] + s["val"] + s["test"] for s in sizes) == 1797
    for task in stream:
        splits = {name: arrays(getattr(task, name)) for name in ("train", "val", "test")}
        for images, labels in splits.values():
            assert images.dtype == np.float32 and images.shape[1:] == (8, 8, 1)
            assert 0.0 <= images.min() and images.max() <= 1.0
            assert set(labels.tolist()) == {0, 1}
        seen = {name: set(digests(images, levels=16)) for name, (images, _) in splits.items()}
        assert not seen["train"] & seen["val"]
        assert not seen["test"] & (seen["train"] | seen["val"])


def test_split_digits_test_split_does_not_depend_on_num_tasks():
    def test_images(num_tasks):
        stream = datasets.split_digits(num_tasks=num_tasks)
        return {d for task in stream for d in digests(arrays(task.test)[0], levels=16)}

    assert test_images(5) == test_images(2)


def test_split_digits_without_scikit_learn(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_sklearn(name, *args, **kwargs):
        if name.startswith("sklearn"):
            raise ImportError("No module named 'sklearn'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_sklearn)
    with pytest.raises(ImportError, match=r'pip install "keras-grown\[digits\]"'):
        datasets.split_digits()


# ---------------------------------------------------------------- registry


def test_load_stream_by_name():
    stream = datasets.load_stream("split_digits", num_tasks=2, val_fraction=0.2)
    assert stream.name == "split_digits" and stream.num_classes == [5, 5]
    assert datasets.list_streams() == [
        "cifar100_superclass",
        "confusable_fashion_mnist",
        "permuted_fashion_mnist",
        "split_cifar100",
        "split_digits",
        "split_fashion_mnist",
    ]


def test_load_stream_names_the_arguments_a_stream_takes():
    with pytest.raises(
        TypeError,
        match=r"'cifar100_superclass' does not take num_tasks. It accepts: train_per_task, ",
    ):
        datasets.load_stream("cifar100_superclass", num_tasks=5)


def test_unknown_stream_lists_known_names():
    with pytest.raises(
        ValueError,
        match=r"Unknown stream 'split_mnist'. Known streams: cifar100_superclass, .*"
        r"split_fashion_mnist",
    ):
        datasets.load_stream("split_mnist")


# ---------------------------------------------------------------- Task, TaskStream


def test_task_batched_shuffles_train_only_and_reproducibly(small_stream):
    task = small_stream[0]
    train, val, test = task.batched(batch_size=64, seed=3)
    batches = [y.numpy() for _, y in train]
    assert [len(b) for b in batches] == [64, 64, 52]
    again = [y.numpy() for _, y in task.batched(batch_size=64, seed=3)[0]]
    for first, second in zip(batches, again):
        np.testing.assert_array_equal(first, second)
    unshuffled = arrays(task.train)[1]
    assert not np.array_equal(np.concatenate(batches), unshuffled)
    assert sorted(np.concatenate(batches).tolist()) == sorted(unshuffled.tolist())
    np.testing.assert_array_equal(
        np.concatenate([y for _, y in test.as_numpy_iterator()]), arrays(task.test)[1]
    )
    x, _ = next(iter(val))
    assert x.shape == (20, 28, 28, 1)
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        task.batched(batch_size=0)


def test_task_stream_sequence_behaviour(small_stream):
    assert [task.task_id for task in small_stream] == [0, 1, 2, 3, 4]
    assert small_stream[-1].task_id == 4
    tail = small_stream[3:]
    assert isinstance(tail, datasets.TaskStream) and len(tail) == 2
    assert [task.task_id for task in tail] == [3, 4]
    assert "num_tasks=5" in repr(small_stream) and "train=180" in repr(small_stream[0])
    with pytest.raises(ValueError, match="at least one task"):
        datasets.TaskStream([], name="empty")
    with pytest.raises(TypeError, match="holds Task objects"):
        datasets.TaskStream([object()])


# ---------------------------------------------------------------- from_directory


def _write_folder(root, tasks=2, classes=2, per_class=10, size=(12, 10), layout="flat"):
    """Random colour PNGs: root/<task>/<class>/*.png (or train/ and test/ inside)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    written = {}
    for t in range(tasks):
        for c in range(classes):
            parts = [("", per_class)] if layout == "flat" else [("train", per_class), ("test", 3)]
            for sub, count in parts:
                folder = root / f"task_{t}" / sub / f"class_{'ab'[c]}"
                folder.mkdir(parents=True)
                for k in range(count):
                    pixels = rng.integers(0, 256, size=(*size, 3), dtype=np.uint8)
                    Image.fromarray(pixels).save(folder / f"img_{k:02d}.png")
                    written[hashlib.sha1(pixels.tobytes()).hexdigest()] = (t, c, sub)
    return written


def test_from_directory_carves_test_and_validation(tmp_path):
    written = _write_folder(tmp_path / "mini")
    stream = datasets.from_directory(
        tmp_path / "mini", image_size=(12, 10), val_fraction=0.25, test_fraction=0.2
    )
    assert stream.name == "mini" and len(stream) == 2
    assert stream.input_shape == (12, 10, 3)
    for task_id, task in enumerate(stream):
        assert task.name == f"task_{task_id}" and task.class_names == ["class_a", "class_b"]
        assert task.sizes == {"train": 12, "val": 4, "test": 4}
        seen = {}
        for split in ("train", "val", "test"):
            images, labels = arrays(getattr(task, split))
            assert images.dtype == np.float32 and 0 <= images.min() <= images.max() <= 1
            assert np.bincount(labels).tolist() == [len(labels) // 2] * 2  # stratified
            seen[split] = digests(images)
            # Same size as on disk: pixels come back exactly.
            assert [written[d][:2] for d in seen[split]] == [(task_id, int(y)) for y in labels]
        assert len(set(seen["train"]) | set(seen["val"]) | set(seen["test"])) == 20


def test_from_directory_with_test_subfolders(tmp_path):
    written = _write_folder(tmp_path / "tasks", tasks=1, layout="split")
    for train_subdir in ("train", None):
        if train_subdir is None:  # classes directly in the task folder, beside test/
            for c in "ab":
                (tmp_path / "tasks/task_0/train" / f"class_{c}").rename(
                    tmp_path / "tasks/task_0" / f"class_{c}"
                )
            (tmp_path / "tasks/task_0/train").rmdir()
        stream = datasets.from_directory(
            tmp_path / "tasks",
            image_size=(12, 10),
            val_fraction=0.2,
            test_subdir="test",
            train_subdir=train_subdir,
        )
        task = stream[0]
        assert task.class_names == ["class_a", "class_b"]
        assert task.sizes["train"] == 16 and task.sizes["val"] == 4
        test_images, test_labels = arrays(task.test)
        assert [written[d][2] for d in digests(test_images)] == ["test"] * 6
        assert test_labels.tolist() == [0, 0, 0, 1, 1, 1]
        assert {written[d][2] for d in digests(arrays(task.val)[0])} == {"train"}


def test_from_directory_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        datasets.from_directory(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no task folder"):
        datasets.from_directory(tmp_path / "empty")
    _write_folder(tmp_path / "bad", tasks=1)
    flat = tmp_path / "bad" / "task_9"
    flat.mkdir()
    (flat / "img.png").write_bytes(b"not really")
    with pytest.raises(ValueError, match=r"Task folder '.*task_9' has no class sub-folder"):
        datasets.from_directory(tmp_path / "bad")
    _write_folder(tmp_path / "split", tasks=1, layout="split")
    with pytest.raises(ValueError, match="train_subdir='train' needs test_subdir"):
        datasets.from_directory(tmp_path / "split", train_subdir="train")
    with pytest.raises(ValueError, match=r"Test folder .* same class sub-folders"):
        datasets.from_directory(tmp_path / "split", test_subdir="missing", train_subdir="train")


# ---------------------------------------------------------------- from_arrays / from_datasets


def _task_arrays(rng, labels, n=30, shape=(6, 6)):
    y = np.resize(np.asarray(labels), n)
    return rng.integers(0, 256, size=(n, *shape), dtype=np.uint8), y


def test_from_arrays_remaps_labels_and_scales():
    rng = np.random.default_rng(0)
    x, y = _task_arrays(rng, [3, 7])
    xv, yv = _task_arrays(rng, [7, 3], n=10)
    xt, yt = _task_arrays(rng, [3, 7], n=8)
    stream = datasets.from_arrays(
        [
            dict(x_train=x, y_train=y, x_val=xv, y_val=yv, x_test=xt, y_test=yt, name="first"),
            (x.astype(np.float32) / 255, y, None, None, xt, yt),
        ]
    )
    assert stream.input_shape == (6, 6, 1)
    assert [t.name for t in stream] == ["first", "task_1"]
    assert stream[0].class_names == ["3", "7"]
    images, labels = arrays(stream[0].val)
    assert labels.tolist() == [1, 0] * 5
    np.testing.assert_allclose(images[..., 0], xv / 255.0, rtol=0, atol=1e-7)
    assert stream[1].sizes == {"train": 27, "val": 3, "test": 8}  # carved: round(0.1 * 30)


def test_from_arrays_rejects_bad_labels_and_images():
    rng = np.random.default_rng(0)
    x, y = _task_arrays(rng, [0, 1])
    xt, yt = _task_arrays(rng, [0, 2], n=4)
    with pytest.raises(
        ValueError,
        match=r"y_test has labels outside range: \[2\] .* must also appear in the training set",
    ):
        datasets.from_arrays([(x, y, None, None, xt, yt)])
    with pytest.raises(ValueError, match=r"labels outside range: \[5\] are not among 0\.\.2"):
        datasets.from_arrays(
            [dict(x_train=x, y_train=y, x_test=xt, y_test=np.full(4, 5), num_classes=3)],
            remap_labels=False,
        )
    with pytest.raises(ValueError, match="must be integer class ids"):
        datasets.from_arrays([(x, y + 0.5, None, None, xt, yt)])
    with pytest.raises(ValueError, match=r"outside \[0, 1\].*x / 255.0"):
        datasets.from_arrays([(x.astype(np.float32), y, None, None, xt, yt)])
    with pytest.raises(ValueError, match="has 30 images but y_train has 29 labels"):
        datasets.from_arrays([(x, y[:-1], None, None, xt, yt)])
    yt = np.array([0, 1, 0, 1])
    with pytest.raises(ValueError, match="same input_shape"):
        datasets.from_arrays(
            [(x, y, None, None, xt, yt), (x[:, :5, :5], y, None, None, xt[:, :5, :5], yt)]
        )


def test_from_datasets_checks_labels_while_reading():
    images = np.zeros((6, 5, 5), np.uint8)
    good = tf.data.Dataset.from_tensor_slices((images, np.array([0, 1, 2, 0, 1, 2])))
    bad = tf.data.Dataset.from_tensor_slices((images, np.array([0, 1, 2, 3, 1, 2])))
    stream = datasets.from_datasets(
        [dict(train=good, val=good, test=bad, num_classes=3, name="own")]
    )
    task = stream[0]
    assert task.input_shape == (5, 5, 1) and task.name == "own"
    x, y = arrays(task.train)
    assert x.dtype == np.float32 and y.dtype == np.int32 and y.tolist() == [0, 1, 2, 0, 1, 2]
    with pytest.raises(tf.errors.InvalidArgumentError, match="labels outside range"):
        arrays(task.test)
    with pytest.raises(ValueError, match=r"looks batched.*\.unbatch\(\)"):
        datasets.from_datasets([dict(train=good.batch(2), val=good, test=good, num_classes=3)])
    with pytest.raises(ValueError, match=r"\(image, label\) pairs"):
        datasets.from_datasets(
            [dict(train=good.map(lambda x, y: x), val=good, test=good, num_classes=3)]
        )


# ---------------------------------------------------------------- CIFAR-100 (mocked tfds)


def test_cifar100_label_tables():
    assert len(datasets.CIFAR100_FINE_LABEL_NAMES) == 100
    assert len(datasets.CIFAR100_COARSE_LABEL_NAMES) == 20
    assert [len(fine) for fine in datasets.CIFAR100_COARSE_TO_FINE] == [5] * 20
    names = datasets.CIFAR100_FINE_LABEL_NAMES
    assert [names[f] for f in datasets.CIFAR100_COARSE_TO_FINE[0]] == [
        "beaver",
        "dolphin",
        "otter",
        "seal",
        "whale",
    ]
    assert [names[f] for f in datasets.CIFAR100_COARSE_TO_FINE[14]] == [
        "baby",
        "boy",
        "girl",
        "man",
        "woman",
    ]


def test_split_cifar100_on_mock_data(tmp_path):
    import tensorflow_datasets as tfds

    # Fine labels drawn at random: about 100 images of each 10-class task per split.
    with tfds.testing.mock_data(num_examples=1000, policy=tfds.testing.MockPolicy.USE_CODE):
        stream = datasets.split_cifar100(
            train_per_task=50, val_per_task=20, test_per_task=40, data_dir=str(tmp_path)
        )
    assert len(stream) == 10 and stream.num_classes == [10] * 10
    assert stream.input_shape == (32, 32, 3)
    assert stream[0].class_names == datasets.CIFAR100_FINE_LABEL_NAMES[:10]
    assert stream[9].class_names == datasets.CIFAR100_FINE_LABEL_NAMES[90:]
    for task in stream:
        assert task.sizes == {"train": 50, "val": 20, "test": 40}
        train, val = arrays(task.train), arrays(task.val)
        images, labels = arrays(task.test)
        for x, y in (train, val, (images, labels)):
            assert x.shape[1:] == (32, 32, 3) and x.dtype == np.float32
            assert 0 <= x.min() and x.max() <= 1 and 0 <= y.min() and y.max() <= 9
        assert not set(digests(train[0])) & set(digests(val[0]))


def test_split_cifar100_too_many_examples(tmp_path):
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=500, policy=tfds.testing.MockPolicy.USE_CODE):
        with pytest.raises(
            ValueError,
            match=r"train_per_task=4000 plus val_per_task=1000 .* has \d+ in the training split",
        ):
            datasets.split_cifar100(data_dir=str(tmp_path))


def test_cifar100_superclass_on_mock_data(tmp_path):
    import tensorflow_datasets as tfds

    mock = _consistent_cifar100({"train": 10, "test": 4})
    with tfds.testing.mock_data(as_dataset_fn=mock, policy=tfds.testing.MockPolicy.USE_CODE):
        stream = datasets.cifar100_superclass(data_dir=str(tmp_path))
    assert len(stream) == 20 and stream.num_classes == [5] * 20
    assert stream.input_shape == (32, 32, 3)
    assert stream[0].name == "aquatic_mammals"
    assert stream[0].class_names == ["beaver", "dolphin", "otter", "seal", "whale"]
    for task in stream:
        # 50 training images of the superclass: 10 % (5) for validation.
        assert task.sizes == {"train": 45, "val": 5, "test": 20}
        images, labels = arrays(task.train)
        assert images.shape[1:] == (32, 32, 3) and 0 <= images.min() <= images.max() <= 1
        assert np.bincount(labels, minlength=5).tolist() == [9, 9, 9, 9, 9]
        assert np.bincount(arrays(task.test)[1]).tolist() == [4] * 5


def test_cifar100_superclass_rejects_inconsistent_labels(tmp_path):
    import tensorflow_datasets as tfds

    # tfds' default mock draws fine and coarse labels independently.
    with tfds.testing.mock_data(num_examples=50, policy=tfds.testing.MockPolicy.USE_CODE):
        with pytest.raises(
            ValueError, match="pairs fine and coarse labels in a way CIFAR-100 does not"
        ):
            datasets.cifar100_superclass(data_dir=str(tmp_path))


def test_stream_modules_never_import_model_code():
    folder = os.path.dirname(datasets.__file__)  # the datasets package: every module of it
    source = "".join(
        open(os.path.join(folder, name)).read() for name in sorted(os.listdir(folder))
        if name.endswith(".py")
    )
    for higher in (
        "keras_grown.model",
        "keras_grown.layers",
        "keras_grown.masks",
        "keras_grown.evaluation",
    ):
        assert higher not in source
