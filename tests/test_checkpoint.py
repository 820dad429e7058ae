"""Atomic per-task checkpoints and exact resume."""

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

import keras_grown as kg
from keras_grown import checkpoint, methods


@pytest.fixture(scope="module")
def three_tasks(fashion_stream):
    return list(fashion_stream)[:3]


class Interrupt(Exception):
    pass


class InterruptAt(keras.callbacks.Callback):
    """Raises inside fit() at (task, epoch end): a crash in the middle of a task."""

    def __init__(self, task, epoch=0):
        super().__init__()
        self.task, self.epoch = task, epoch
        self.finished = 0

    def on_task_end(self, model, summary):
        self.finished += 1

    def on_epoch_end(self, epoch, logs=None):
        if self.finished == self.task and epoch == self.epoch:
            raise Interrupt(f"interrupted in task {self.task}")


def _grown(seed=0):
    kg.set_seed(seed)
    return kg.GrownModel(backbone="lenet5", input_shape=(28, 28, 1), l0_lambda=1.0, seed=seed)


def _weights(model):
    return [v.numpy() for v in model.variables]


def _assert_same_run(a, b):
    np.testing.assert_array_equal(a.accuracy.values, b.accuracy.values)
    assert a.model_size == b.model_size
    assert a.val_accuracy == b.val_accuracy
    models_a = a.model if isinstance(a.model, list) else [a.model]
    models_b = b.model if isinstance(b.model, list) else [b.model]
    for ma, mb in zip(models_a, models_b):
        wa, wb = _weights(ma), _weights(mb)
        assert len(wa) == len(wb)
        for x, y in zip(wa, wb):
            np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize(
    "make",
    [_grown, pytest.param(lambda: methods.EWC(seed=0, fisher_samples=32), marks=pytest.mark.slow)],
    ids=["grown", "ewc"],
)
def test_resume_after_a_crash_inside_a_task_is_bitwise(make, three_tasks, tmp_path):
    # The default loop (Scratch reference, growth rounds, fixed-mask stage),
    # interrupted inside the second task, resumed from the first's checkpoint.
    tasks = three_tasks[:2]
    settings = dict(epochs=1, batch_size=32, seed=3)
    reference = kg.learn(make(), tasks, checkpoint_dir=str(tmp_path / "a"), **settings)
    with pytest.raises(Interrupt):
        kg.learn(make(), tasks, checkpoint_dir=str(tmp_path / "b"),
                 callbacks=[InterruptAt(task=1)], **settings)
    assert checkpoint.list_checkpoints(str(tmp_path / "b")) == ["task-0001"]
    saved = checkpoint.load_checkpoint(str(tmp_path / "b"))[0]["result"]
    resumed = kg.learn(make(), tasks, checkpoint_dir=str(tmp_path / "b"), resume=True,
                       **settings)
    _assert_same_run(reference, resumed)
    # The first task was restored, not trained again (its time is the crashed run's).
    assert resumed.time_per_task[0] == saved["time_per_task"][0]
    assert resumed.time_per_task[0] != reference.time_per_task[0]
    assert checkpoint.list_checkpoints(str(tmp_path / "b")) == ["task-0001", "task-0002"]


# target=None (no Scratch reference, no growth rounds): what is under test
# below is the checkpoint, and the crash test above covers the default loop.
FINISHED_RUN = dict(epochs=1, batch_size=32, seed=0, target=None)


@pytest.fixture(scope="module")
def finished_run(three_tasks, tmp_path_factory):
    """(result, folder): the three tasks learned once, a checkpoint written after each.

    Trained once for the tests below; each works on its own copy of the folder.
    """
    directory = tmp_path_factory.mktemp("finished_run") / "checkpoints"
    result = kg.learn(_grown(), three_tasks, checkpoint_dir=str(directory), **FINISHED_RUN)
    return result, directory


def _copy_of(finished_run, tmp_path):
    directory = tmp_path / "checkpoints"
    shutil.copytree(finished_run[1], directory)
    return str(directory)


def test_resume_of_a_finished_run_trains_nothing(finished_run, three_tasks, tmp_path):
    reference, _ = finished_run
    directory = _copy_of(finished_run, tmp_path)
    # Only the last two checkpoints are kept.
    assert checkpoint.list_checkpoints(directory) == ["task-0002", "task-0003"]
    again = kg.learn(_grown(), three_tasks, resume=True, checkpoint_dir=directory,
                     **FINISHED_RUN)
    _assert_same_run(reference, again)
    assert again.time_per_task == reference.time_per_task  # restored, not re-measured


def test_resume_refuses_a_checkpoint_of_another_run(finished_run, three_tasks, tmp_path):
    directory = _copy_of(finished_run, tmp_path)
    with pytest.raises(checkpoint.CheckpointError, match="epochs differ"):
        kg.learn(_grown(), three_tasks, checkpoint_dir=directory, resume=True,
                 **dict(FINISHED_RUN, epochs=2))
    with pytest.raises(ValueError, match="needs checkpoint_dir"):
        kg.learn(_grown(), three_tasks[:1], resume=True)


def test_a_corrupt_checkpoint_is_named_and_the_previous_one_used(finished_run, tmp_path):
    directory = _copy_of(finished_run, tmp_path)
    older, newer = [os.path.join(directory, n) for n in checkpoint.list_checkpoints(directory)]
    model_file = os.path.join(newer, "model_0.keras")
    with open(model_file, "r+b") as handle:  # truncate: a write cut short
        handle.truncate(os.path.getsize(model_file) // 2)
    with pytest.warns(UserWarning, match="model_0.keras is corrupt or truncated"):
        state, models, _ = checkpoint.load_checkpoint(directory)
    assert state["finished_tasks"] == 2
    assert models[0].num_tasks == 2
    with open(os.path.join(older, "state.json"), "w") as handle:
        handle.write("{not json")
    with pytest.raises(checkpoint.CheckpointError) as error:
        checkpoint.load_checkpoint(directory)
    assert "model_0.keras" in str(error.value) and "state.json" in str(error.value)


def test_a_failed_write_leaves_the_previous_checkpoint_intact(finished_run, tmp_path,
                                                             monkeypatch):
    directory = _copy_of(finished_run, tmp_path)
    before = sorted(os.listdir(directory))
    model = checkpoint.load_checkpoint(directory)[1][0]

    def broken_save(self, path, *args, **kwargs):
        with open(path, "wb") as handle:
            handle.write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(kg.GrownModel, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        checkpoint.write_checkpoint(directory, 4, [model], {"settings": {}, "result": {}})
    assert sorted(os.listdir(directory)) == before  # no temporary folder left, nothing replaced
    state, _, _ = checkpoint.load_checkpoint(directory)
    assert state["finished_tasks"] == 3


KILL_SCRIPT = textwrap.dedent(
    """
    import json, os, signal, sys
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    import keras
    import keras_grown as kg
    from keras_grown import checkpoint

    out, kill = sys.argv[1], sys.argv[2]
    stream = list(kg.datasets.split_fashion_mnist(
        num_tasks=5, train_per_task=160, val_fraction=0.2, test_per_task=100, seed=0))[:3]

    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    class Killer(keras.callbacks.Callback):
        finished = 0
        def on_task_end(self, model, summary):
            self.finished += 1
            if kill == f"after_task_{self.finished}":
                die()
        def on_train_batch_end(self, batch, logs=None):
            if kill == f"batch_{self.finished}_{batch}":
                die()

    if kill.startswith("write_"):
        # Die in the middle of the checkpoint write of task N (after the
        # model file, before the folder is renamed into place).
        target = int(kill.split("_")[1])
        original = checkpoint._sha256
        def dying_sha256(path):
            if f"task-{target:04d}" in path:
                die()
            return original(path)
        checkpoint._sha256 = dying_sha256

    kg.set_seed(0)
    model = kg.GrownModel(backbone="lenet5", input_shape=(28, 28, 1), l0_lambda=1.0, seed=0)
    result = kg.learn(model, stream, epochs=1, batch_size=32, seed=0, callbacks=[Killer()],
                      checkpoint_dir=os.path.join(out, "ckpt"), resume=True)
    weights = sum(float(abs(v.numpy().astype("float64")).sum()) for v in result.model.variables)
    with open(os.path.join(out, "result.json"), "w") as handle:
        json.dump({"accuracy": result.accuracy.values.tolist(),
                   "size": result.model_size, "weights": repr(weights)}, handle)
    """
)


@pytest.mark.slow
@pytest.mark.parametrize(
    "kill", ["batch_0_2", "after_task_1", "write_2", "batch_1_3", "batch_2_0", "write_3"]
)
def test_sigkill_at_any_point_then_resume_is_bitwise(kill, tmp_path_factory):
    script = tmp_path_factory.getbasetemp() / "kill_script.py"
    script.write_text(KILL_SCRIPT)
    reference_dir = tmp_path_factory.getbasetemp() / "reference"
    if not (reference_dir / "result.json").exists():
        reference_dir.mkdir(exist_ok=True)
        subprocess.run([sys.executable, str(script), str(reference_dir), "never"], check=True)
    run_dir = tmp_path_factory.mktemp(kill)
    killed = subprocess.run([sys.executable, str(script), str(run_dir), kill])
    assert killed.returncode == -signal.SIGKILL
    subprocess.run([sys.executable, str(script), str(run_dir), "never"], check=True)
    reference = json.loads((reference_dir / "result.json").read_text())
    resumed = json.loads((run_dir / "result.json").read_text())
    assert resumed == reference
