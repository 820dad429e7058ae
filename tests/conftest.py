import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest


@pytest.fixture(scope="session")
def fashion_stream():
    """Five 2-class tasks of real Fashion-MNIST: 256 train, 64 val, 200 test each."""
    from keras_grown import datasets

    return datasets.split_fashion_mnist(
        num_tasks=5, train_per_task=320, val_fraction=0.2, test_per_task=200, seed=0
    )


def task_arrays(dataset):
    """(images, labels) NumPy arrays of an unbatched task dataset."""
    images, labels = zip(*[(x.numpy(), y.numpy()) for x, y in dataset])
    return np.stack(images), np.asarray(labels)


def count_traces(model):
    """A list that grows by one each time `model`'s train step is traced."""
    traced = []
    step = model.train_step

    def counted(data):
        traced.append(1)
        return step(data)

    model.train_step = counted
    return traced


def weights_checksum(model):
    """Every variable of the model, copied (for 'nothing changed' checks)."""
    return [np.array(v.numpy(), copy=True) for v in model.variables]


def assert_weights_unchanged(model, before):
    after = [v.numpy() for v in model.variables]
    assert len(after) == len(before), "variables were added or removed"
    for old, new in zip(before, after):
        np.testing.assert_array_equal(old, new)



def pytest_sessionstart(session):
    """Moves everything imported so far out of the garbage collector's scans.

    TensorFlow, Keras and the package leave about 380,000 long-lived objects;
    without `gc.freeze()` every full collection walks them all (0.15 s on an
    idle machine), and a test's teardown ran two (its own and
    `clear_session()`'s): 40 s of test_bad_inputs.py's 111 s, 3 s now.
    """
    import gc

    import keras  # noqa: F401
    import tensorflow  # noqa: F401

    import keras_grown  # noqa: F401

    gc.collect()
    gc.freeze()


@pytest.fixture(autouse=True)
def _free_memory_between_tests():
    """Drops each test's Keras state and unreferenced models."""
    yield
    import keras

    # One full collection (clear_session runs it): models and traced
    # functions of the test are freed before the next one.
    keras.backend.clear_session(free_memory=True)
