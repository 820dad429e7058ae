"""Trains a GrownModel over two tasks on one device and under tf.distribute; saves what it saw.

`tests/test_xla_distribute.py` runs it in a fresh process, because logical
devices and strategies must be set up before TensorFlow initializes:

    python tests/run_distributed.py mirrored OUT_DIR lenet5 small_bn
        # 2 logical CPU devices: for each backbone, one run on one device
        # (OUT_DIR/<backbone>_single.npz) and one under MirroredStrategy over
        # both devices (OUT_DIR/<backbone>_mirrored.npz)
    python tests/run_distributed.py single OUT_DIR lenet5
    TF_CONFIG=... python tests/run_distributed.py multiworker OUT_DIR lenet5
        # one worker of a MultiWorkerMirroredStrategy cluster
        # (OUT_DIR/<backbone>_worker<index>.npz)

Every run trains the same model on the same data in the same order, with the
same seeds: task 0 with learnable growth, task 1 with pick-and-reuse and then
one growth round, 4 steps of a global batch of 32 each (the strategy splits a
global batch between its replicas). It saves the loss after every step, every
variable after each task (by position; `names` holds their paths) and whether
every replica's copy of it is equal, each task's stored kernel mask, and the
outputs of task 0 when it finished and after task 1, through a distributed
`predict()` and through a plain call; and the model itself (`<run>.keras`).
"""

import json
import os
import sys

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

MODE, OUT_DIR, BACKBONES = sys.argv[1], sys.argv[2], sys.argv[3:] or ["lenet5"]

import tensorflow as tf  # noqa: E402

if MODE == "mirrored":
    # Two logical CPU devices; must happen before any TensorFlow op.
    _cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        _cpu, [tf.config.LogicalDeviceConfiguration()] * 2
    )
    STRATEGIES = {
        "single": tf.distribute.get_strategy(),
        "mirrored": tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]),
    }
elif MODE == "multiworker":
    # TF_CONFIG names the cluster and this worker; created before any op.
    _index = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
    STRATEGIES = {f"worker{_index}": tf.distribute.MultiWorkerMirroredStrategy()}
elif MODE == "single":
    STRATEGIES = {"single": tf.distribute.get_strategy()}
else:
    raise SystemExit(f"unknown mode {MODE!r}: mirrored, single or multiworker")

import keras  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import keras_grown as kg  # noqa: E402

GLOBAL_BATCH = 32
STEPS = 4


def small_bn(inputs):
    """Two grown convolutions with per-task batch normalization (fast on CPU)."""
    x = kg.layers.GrownConv2D(8, 3, batch_norm=True, activation="relu", name="conv1")(inputs)
    x = keras.layers.MaxPooling2D(2)(x)
    x = kg.layers.GrownConv2D(16, 3, batch_norm=True, activation="relu", name="conv2")(x)
    x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Flatten()(x)
    return kg.layers.GrownDense(32, activation="relu", name="fc")(x)


BACKBONE_FUNCTIONS = {"lenet5": "lenet5", "small_bn": small_bn}


def task_data():
    """Two tasks of real Fashion-MNIST: 128 training and 64 test images each."""
    stream = kg.datasets.split_fashion_mnist(
        num_tasks=5, train_per_task=160, val_fraction=0.2, test_per_task=64, seed=0
    )
    tasks = []
    for task in list(stream)[:2]:
        images, labels = zip(*[(x.numpy(), y.numpy()) for x, y in task.train])
        test = np.stack([x.numpy() for x, _ in task.test])
        count = GLOBAL_BATCH * STEPS
        tasks.append((np.stack(images)[:count], np.asarray(labels, "int32")[:count], test))
    return tasks


class StepLosses(keras.callbacks.Callback):
    """The (running mean) loss Keras reports after every step."""

    def __init__(self):
        super().__init__()
        self.losses = []

    def on_train_batch_end(self, batch, logs=None):
        self.losses.append(float(np.mean(logs["loss"])))


def train(backbone, strategy, tasks):
    keras.utils.set_random_seed(0)
    with strategy.scope():
        model = kg.GrownModel(
            BACKBONE_FUNCTIONS[backbone], input_shape=(28, 28, 1), seed_ratio=0.5,
            capacity=1.5, l0_lambda=1e-2, seed=0,
        )
        model.compile(
            optimizer=keras.optimizers.SGD(0.05, momentum=0.9),
            loss="sparse_categorical_crossentropy", metrics=["accuracy"],
        )
    result = {"replicas": strategy.num_replicas_in_sync}
    losses = StepLosses()
    for index, (images, labels, _) in enumerate(tasks):
        # Not shuffled: every run sees the same global batches in the same order.
        data = tf.data.Dataset.from_tensor_slices((images, labels)).batch(GLOBAL_BATCH)
        model.add_task(data)
        model.fit(data, epochs=1, verbose=0, callbacks=[losses])
        if index == 1:
            model.grow()
            model.fit(data, epochs=1, verbose=0, callbacks=[losses])
        summary = model.finish_task()
        result[f"size_{index}"] = summary.size.ratio
        for position, variable in enumerate(model.variables):
            copies = [
                np.asarray(v) for v in strategy.experimental_local_results(variable.value)
            ]
            result[f"after_{index}/{position:03d}"] = copies[0]
            result[f"copies_equal_{index}/{position:03d}"] = all(
                np.array_equal(copies[0], copy) for copy in copies[1:]
            )
        result[f"names_{index}"] = np.asarray([_stable_name(v.path) for v in model.variables])
        for layer in model.grown_layers:
            result[f"use_{index}/{layer.name}"] = layer.task_kernel_mask(index)
        model.select_task(0)
        result[f"predict_task0_after_{index}"] = model.predict(
            tasks[0][2], batch_size=GLOBAL_BATCH, verbose=0
        )
        result[f"call_task0_after_{index}"] = model(tasks[0][2], training=False).numpy()
    result["losses"] = np.asarray(losses.losses)
    result["task0_test_images"] = tasks[0][2]
    return result, model


def _stable_name(path):
    # Auto-named seed generators count up within a process.
    return path.split("/")[-1] if path.startswith("seed_generator") else path


def main():
    tasks = task_data()
    for backbone in BACKBONES:
        for label, strategy in STRATEGIES.items():
            result, model = train(backbone, strategy, tasks)
            path = os.path.join(OUT_DIR, f"{backbone}_{label}")
            np.savez(path + ".npz", **{k: np.asarray(v) for k, v in result.items()})
            model.save(path + ".keras")
            print(json.dumps({"run": f"{backbone}_{label}", "replicas": result["replicas"]}))


if __name__ == "__main__":
    main()
