"""XLA (`jit_compile=True`) for every backbone and method, and training under tf.distribute.

XLA on CPU compiles slowly (seconds per train step program, one program per
task and growth round), so the fast test here uses a two-layer backbone and
the backbone and method tests are marked slow.

The tf.distribute tests run `tests/run_distributed.py` in fresh processes:
logical devices and MultiWorkerMirroredStrategy must be set up before
TensorFlow initializes, which it has long done in a pytest process.

Tolerance against one device. On every replica the Gumbel noise of a step is
the same as on one device (each layer's seed-generator state is a mirrored
variable: its copies start equal and every replica advances them alike), so
a step on two replicas computes the same masks on the two halves of the
global batch that one device computes on the whole. What differs is the
order of floating-point sums (two half-batch gradients all-reduced against
one full-batch sum): rounding, a few float32 ulps per step. For LeNet-5 over
the 12 steps here the weights, mask scores and outputs agree within 2.4e-7
and every hard mask (owner, task masks, active channels) is identical; the
test allows 1e-5. With batch normalization the global-batch statistics
are all-reduced too (`TaskBatchNorm`), but BN's normalization and Adam's first
steps on near-zero mask-score gradients (an update of about
`lr * gradient / (|gradient| + epsilon)`) magnify the rounding: after the 4
steps of the first task the weights agree within 2e-4 (the test allows
1e-3, losses within 1e-4 relative) and the hard masks are identical. Without
the synchronized statistics they differ by 2e-2 after one step.
"""

import json
import os
import socket
import subprocess
import sys

import keras
import numpy as np
import pytest

import keras_grown as kg
from conftest import task_arrays
from keras_grown import methods

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "run_distributed.py")
# Methods whose earlier tasks never change (all but the shared fine-tune and EWC).
FORGETTING_METHODS = ("finetune", "ewc")


def tiny_backbone(inputs):
    """A grown convolution with batch normalization and a grown dense layer."""
    x = kg.layers.GrownConv2D(4, 3, batch_norm=True, activation="relu", name="conv")(inputs)
    x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Flatten()(x)
    return kg.layers.GrownDense(8, activation="relu", name="fc")(x)


def _rgb32(images):
    """Fashion-MNIST padded to 32 x 32 and repeated over 3 channels (VGG/ResNet inputs)."""
    return np.repeat(np.pad(images, ((0, 0), (2, 2), (2, 2), (0, 0))), 3, axis=-1)


def _two_tasks(fashion_stream, count, rgb=False):
    tasks = []
    for task in list(fashion_stream)[:2]:
        images, labels = task_arrays(task.train)
        test, _ = task_arrays(task.test)
        images, labels, test = images[:count], labels[:count].astype("int32"), test[:count]
        if rgb:
            images, test = _rgb32(images), _rgb32(test)
        tasks.append((images, labels, test))
    return tasks


def _learn_two_tasks_with_xla(backbone, tasks, grow_second=False, **model_kwargs):
    """Trains two tasks with jit_compile=True; checks task 0 is bitwise unchanged."""
    keras.utils.set_random_seed(0)
    model = kg.GrownModel(
        backbone, input_shape=tasks[0][0].shape[1:], seed_ratio=0.5, seed=0, **model_kwargs
    )
    model.compile(
        optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"],
        jit_compile=True,
    )
    reference = None
    for index, (images, labels, test) in enumerate(tasks):
        model.add_task((images, labels))
        history = model.fit(images, labels, batch_size=8, epochs=1, verbose=0)
        assert np.isfinite(history.history["loss"]).all()
        if grow_second and index == 1:
            model.grow()
            model.fit(images, labels, batch_size=8, epochs=1, verbose=0)
        model.finish_task()
        assert model.jit_compile is True, "add_task() recompiled without XLA"
        model.select_task(0)
        outputs = model.predict(tasks[0][2], batch_size=8, verbose=0)
        if reference is None:
            reference = outputs
        # Zero forgetting holds with XLA too.
        np.testing.assert_array_equal(outputs, reference)
    # The XLA program computes the function the plain (eager) call computes.
    np.testing.assert_allclose(
        model(tasks[0][2], training=False).numpy(), reference, rtol=1e-4, atol=1e-5
    )
    return model


def test_xla_trains_grows_and_keeps_old_tasks(fashion_stream):
    model = _learn_two_tasks_with_xla(
        tiny_backbone, _two_tasks(fashion_stream, 16), capacity=2.0
    )
    assert model.model_size().ratio > 0
    assert model.num_tasks == 2 and model.finished_tasks == [0, 1]


@pytest.mark.slow
@pytest.mark.parametrize("backbone", ["lenet5", "vgg16_bn", "resnet18"])
def test_xla_every_backbone(fashion_stream, backbone):
    tasks = _two_tasks(fashion_stream, 16, rgb=backbone != "lenet5")
    model = _learn_two_tasks_with_xla(backbone, tasks, grow_second=True, capacity=1.5)
    assert model.backbone_name == backbone


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(methods.METHODS))
def test_xla_every_method(fashion_stream, name):
    stream = list(fashion_stream)[:2]
    method = methods.get(name, jit_compile=True, backbone=tiny_backbone, seed=0)
    # A target of 100 % makes the GROWN family run its growth round.
    result = kg.learn(method, stream, epochs=1, batch_size=32, target=1.0, max_growth_rounds=1)
    values = result.accuracy.values
    assert np.isfinite(values[np.tril_indices(2)]).all()
    assert all(model.jit_compile is True for model in method.models)
    if name not in FORGETTING_METHODS:
        assert values[1, 0] == values[0, 0], f"{name} forgot task 0 under XLA"


# ------------------------------------------------------------ tf.distribute
def _run_script(*args, env=None, timeout=1800):
    completed = subprocess.run(
        [sys.executable, SCRIPT, *args], capture_output=True, text=True, timeout=timeout,
        env={**os.environ, **(env or {})}, cwd=os.path.dirname(HERE),
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    return completed


def _load(path):
    with np.load(path) as data:
        return {key: data[key] for key in data.files}


@pytest.fixture(scope="module")
def mirrored_runs(tmp_path_factory):
    """LeNet-5 and a small BN backbone, each on one device and on 2 mirrored CPU devices."""
    out = tmp_path_factory.mktemp("mirrored")
    _run_script("mirrored", str(out), "lenet5", "small_bn")
    runs = {path.stem: _load(path) for path in out.glob("*.npz")}
    runs["paths"] = {stem: str(out / stem) for stem in runs}
    return runs


def _variables(run, task):
    """{name: value} of every variable after `task`."""
    prefix = f"after_{task}/"
    keys = sorted(k for k in run if k.startswith(prefix))
    return {str(name): run[key] for name, key in zip(run[f"names_{task}"], keys)}


def _assert_matches_one_device(single, other, tasks, atol, loss_rtol):
    """Every hard mask identical, every float within `atol`, losses within `loss_rtol`."""
    for task in tasks:
        ours, theirs = _variables(single, task), _variables(other, task)
        assert ours.keys() == theirs.keys()
        for name, value in ours.items():
            # Owners, packed task masks, active channels and the noise seeds
            # must be identical; weights, scores and statistics within atol.
            if value.dtype.kind in "biu" or name.endswith("/active"):
                np.testing.assert_array_equal(theirs[name], value, err_msg=name)
            else:
                np.testing.assert_allclose(theirs[name], value, rtol=0, atol=atol, err_msg=name)
        for key in (k for k in single if k.startswith(f"use_{task}/")):
            np.testing.assert_array_equal(other[key], single[key], err_msg=key)
    steps = 4 * len(tasks)
    np.testing.assert_allclose(
        other["losses"][:steps], single["losses"][:steps], rtol=loss_rtol
    )


@pytest.mark.slow
def test_mirrored_strategy_matches_one_device(mirrored_runs):
    single, mirrored = mirrored_runs["lenet5_single"], mirrored_runs["lenet5_mirrored"]
    assert int(single["replicas"]) == 1 and int(mirrored["replicas"]) == 2
    _assert_matches_one_device(single, mirrored, tasks=(0, 1), atol=1e-5, loss_rtol=1e-5)
    for key in ("predict_task0_after_1", "call_task0_after_1"):
        np.testing.assert_allclose(mirrored[key], single[key], rtol=0, atol=1e-5)


@pytest.mark.slow
def test_mirrored_batch_norm_uses_global_batch_statistics(mirrored_runs):
    single, mirrored = mirrored_runs["small_bn_single"], mirrored_runs["small_bn_mirrored"]
    _assert_matches_one_device(single, mirrored, tasks=(0,), atol=1e-3, loss_rtol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("backbone", ["lenet5", "small_bn"])
def test_mirrored_zero_forgetting_is_bitwise_and_copies_stay_equal(mirrored_runs, backbone):
    mirrored = mirrored_runs[f"{backbone}_mirrored"]
    # Task 0's outputs after task 1 equal those when it finished, through a
    # distributed predict() (each replica one half of every batch) and a call.
    for how in ("predict", "call"):
        np.testing.assert_array_equal(
            mirrored[f"{how}_task0_after_1"], mirrored[f"{how}_task0_after_0"]
        )
    # Every variable (per-task ones created after build, optimizer-free
    # state such as batch-norm statistics and noise seeds) is the same on
    # both devices.
    unequal = [
        str(name) for name, key in zip(
            mirrored["names_1"], sorted(k for k in mirrored if k.startswith("copies_equal_1/"))
        ) if not mirrored[key]
    ]
    assert not unequal, f"replica copies differ: {unequal}"


@pytest.mark.slow
def test_model_saved_under_mirrored_strategy_loads_without_it(mirrored_runs, tmp_path):
    # The fixture's files live on; its .keras files sit beside the .npz ones.
    mirrored = mirrored_runs["lenet5_mirrored"]
    loaded = keras.saving.load_model(mirrored_runs["paths"]["lenet5_mirrored"] + ".keras")
    assert loaded.num_tasks == 2 and loaded.finished_tasks == [0, 1]
    loaded.select_task(0)
    # The run under the strategy computed through the masked network (compact
    # inference is off under a strategy): the same path here is bitwise equal;
    # the compact model (on without a strategy) agrees within its 1e-5.
    loaded.compact_inference = False
    np.testing.assert_array_equal(
        loaded(mirrored["task0_test_images"], training=False).numpy(),
        mirrored["call_task0_after_1"],
    )
    loaded.compact_inference = True
    np.testing.assert_allclose(
        loaded(mirrored["task0_test_images"], training=False).numpy(),
        mirrored["call_task0_after_1"], rtol=0, atol=1e-5,
    )


def test_cli_run_takes_a_strategy():
    from keras_grown import cli

    parser = cli.build_parser()
    assert parser.parse_args(["run"]).strategy == "none"
    for name in ("mirrored", "multiworker"):
        assert parser.parse_args(["run", "--strategy", name]).strategy == name
    with pytest.raises(SystemExit):
        parser.parse_args(["run", "--strategy", "tpu"])


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _start_two_workers(command):
    """Starts `command` as worker 0 and worker 1 of a cluster on 127.0.0.1 (TF_CONFIG)."""
    ports = [_free_port(), _free_port()]
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    return [
        subprocess.Popen(
            command,
            env={
                **os.environ,
                "TF_CONFIG": json.dumps(
                    {"cluster": cluster, "task": {"type": "worker", "index": index}}
                ),
            },
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            cwd=os.path.dirname(HERE),
        )
        for index in range(2)
    ]


def _wait_for(processes, timeout=1800):
    try:
        outputs = [process.communicate(timeout=timeout) for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
    failed = [
        f"worker {index} (exit {process.returncode}):\n{stderr[-3000:]}"
        for index, (process, (_, stderr)) in enumerate(zip(processes, outputs))
        if process.returncode != 0
    ]
    assert not failed, "\n\n".join(failed)
    return outputs


@pytest.mark.slow
def test_multi_worker_mirrored_strategy_on_two_local_workers(tmp_path):
    processes = _start_two_workers(
        [sys.executable, SCRIPT, "multiworker", str(tmp_path), "lenet5"]
    )
    try:
        _run_script("single", str(tmp_path), "lenet5")
    finally:
        _wait_for(processes)
    single = _load(tmp_path / "lenet5_single.npz")
    workers = [_load(tmp_path / f"lenet5_worker{index}.npz") for index in range(2)]
    assert [int(w["replicas"]) for w in workers] == [2, 2]
    # The two workers hold the same model, bitwise.
    for key, value in workers[0].items():
        np.testing.assert_array_equal(workers[1][key], value, err_msg=key)
    _assert_matches_one_device(single, workers[0], tasks=(0, 1), atol=1e-5, loss_rtol=1e-5)
    for how in ("predict", "call"):
        np.testing.assert_array_equal(
            workers[0][f"{how}_task0_after_1"], workers[0][f"{how}_task0_after_0"]
        )
    # A model saved by a worker loads without any strategy.
    loaded = keras.saving.load_model(tmp_path / "lenet5_worker1.keras")
    loaded.select_task(0)
    loaded.compact_inference = False  # the workers' path (see the test above)
    np.testing.assert_array_equal(
        loaded(workers[1]["task0_test_images"], training=False).numpy(),
        workers[1]["call_task0_after_1"],
    )
    loaded.compact_inference = True
    np.testing.assert_allclose(
        loaded(workers[1]["task0_test_images"], training=False).numpy(),
        workers[1]["call_task0_after_1"], rtol=0, atol=1e-5,
    )


@pytest.mark.slow
def test_cli_run_with_multiworker_strategy_on_two_local_workers(tmp_path):
    out = tmp_path / "run"
    _wait_for(_start_two_workers([
        sys.executable, "-m", "keras_grown.cli", "run", "--strategy", "multiworker",
        "--stream", "split_fashion_mnist", "--num-tasks", "2", "--train-per-task", "64",
        "--epochs", "1", "--batch-size", "16", "--no-tensorboard", "--seed", "0",
        "--out", str(out),
    ]))
    # The chief writes OUT; worker 1 its own copy in OUT/worker_1.
    chief = json.loads((out / "results.json").read_text())
    other = json.loads((out / "worker_1" / "results.json").read_text())
    assert chief["machine"]["replicas"] == 2 and chief["settings"]["strategy"] == "multiworker"
    # Both trained and measured the same model (times aside).
    for key in ("accuracy", "model_size"):
        assert chief["result"]["accuracy"][key] == other["result"]["accuracy"][key]
    assert chief["result"]["model_size"] == other["result"]["model_size"]
    assert chief["backward_transfer"] == 0.0
