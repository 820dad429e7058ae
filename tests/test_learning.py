"""kg.learn() and `keras-grown run` end to end on real Fashion-MNIST slices."""

import contextlib
import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import keras_grown as kg
from keras_grown import cli, methods

from conftest import task_arrays


@pytest.fixture(scope="module")
def small_stream():
    return kg.datasets.split_fashion_mnist(
        num_tasks=5, train_per_task=192, val_fraction=0.25, test_per_task=100, seed=0
    )


def test_learn_with_a_target_grows_below_it_and_fills_the_matrix(small_stream):
    kg.set_seed(0)
    model = kg.GrownModel("lenet5", seed=0)
    stream = list(small_stream)[:3]
    # Three epochs in the task's one fit(): the first phase (1 epoch), the
    # growth round the schedule starts below the target (1), the fixed masks (1).
    result = kg.learn(model, stream, epochs=3, target=1.0, max_growth_rounds=1, batch_size=64)
    matrix = result.accuracy.values
    assert matrix.shape == (3, 3)
    assert not np.isnan(matrix[np.tril_indices(3)]).any()
    # a target of 100 % is never met on 48 validation images: every later task
    # grows once (the first grows from the start, and again only if its
    # growth phase plateaus before the fixed-mask epoch)
    assert result.growth_rounds[1:] == [1, 1] and result.growth_rounds[0] in (0, 1)
    assert result.targets == [1.0, 1.0, 1.0]
    # zero forgetting: the test accuracy of a task never changes after it finished
    for j in range(3):
        assert len(set(matrix[j:, j].tolist())) == 1
    assert result.accuracy.backward_transfer() == 0.0
    assert result.model_size == sorted(result.model_size)
    assert len(result.time_per_task) == 3 and all(t > 0 for t in result.time_per_task)
    assert result.model_size[-1] == pytest.approx(model.model_size().ratio)
    json.dumps(result.to_dict())


def test_learn_without_target_trains_one_joint_stage(small_stream):
    model = kg.GrownModel("lenet5", seed=1)
    result = kg.learn(model, list(small_stream)[:2], epochs=1, target=None)
    assert result.growth_rounds == [0, 0]
    assert result.targets == [None, None]


def test_learn_with_scratch_target_reads_each_tasks_input_pipeline_once(small_stream):
    # target="scratch": each task's target is the validation accuracy of a full-size
    # reference trained on it. add_task()'s check of the data reads it once;
    # that pass fills the cache the Scratch reference (its own check and
    # epochs), every epoch, the growth round and the fixed-mask stage then
    # read. Before: 4 passes a task.
    passes = []

    def counted(task):
        images, labels = task_arrays(task.train)

        def generator():
            passes.append(task.name)
            yield from zip(images, labels)

        train = tf.data.Dataset.from_generator(generator, output_signature=(
            tf.TensorSpec(images.shape[1:], tf.float32), tf.TensorSpec((), tf.int32)))
        return dataclasses.replace(task, train=train)

    stream = [counted(task) for task in list(small_stream)[:2]]
    kg.set_seed(0)
    result = kg.learn(kg.GrownModel("lenet5", seed=0), stream, epochs=2, target="scratch",
                      max_growth_rounds=1)
    assert passes == [stream[0].name, stream[1].name]
    assert len(result.targets) == 2 and all(0.0 < t <= 1.0 for t in result.targets)
    assert result.accuracy.backward_transfer() == 0.0


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"target": 1.5}, r"target must be an accuracy in \(0, 1\]"),
        ({"target": "best"}, r"target must be"),
        ({"target": [0.9]}, r"one target per task"),
        ({"epochs": 0}, r"epochs must be >= 1"),
    ],
)
def test_learn_rejects_bad_arguments(small_stream, kwargs, message):
    model = kg.GrownModel("lenet5", seed=3)
    with pytest.raises(ValueError, match=message):
        kg.learn(model, list(small_stream)[:2], **kwargs)
    assert model.num_tasks == 0


def test_cli_run_writes_results(tmp_path, capsys):
    out = tmp_path / "run"
    code = cli.main([
        "run", "--stream", "split_fashion_mnist", "--num-tasks", "2", "--train-per-task", "128",
        "--epochs", "1", "--out", str(out), "--seed", "0", "--compare-scratch",
        "--growth-candidates", "0.25", "--fixed-mask-epochs", "1",
    ])
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    assert results["backward_transfer"] == 0.0
    assert results["settings"]["growth_candidates"] == 0.25
    assert results["settings"]["fixed_mask_epochs"] == 1
    assert len(results["result"]["model_size"]) == 2
    assert 0.0 < results["average_accuracy"] <= 1.0
    assert results["scratch"]["final_model_size"] == 2.0
    assert 0.0 < results["scratch"]["average_accuracy"] <= 1.0
    assert "| Scratch |" in (out / "accuracy.md").read_text()
    assert "after" in (out / "accuracy.md").read_text()
    for png in ("accuracy.png", "growth.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    events = list((out / "tensorboard").rglob("events.out.tfevents.*"))
    assert events, "no TensorBoard event file written"


@pytest.mark.parametrize(
    "argv, message",
    [
        (["run", "--epochs", "0"], "expected a positive integer"),
        (["run", "--target", "2"], "--target must be in (0, 1]"),
        (["run", "--growth-candidates", "-1"], "--growth-candidates takes a positive fraction"),
        (["run", "--fixed-mask-epochs", "-1"], "expected an integer >= 0"),
        (["run", "--stream", "mnist"], "invalid choice"),
        (["run", "--capacity", "0.5", "--train-per-task", "64", "--num-tasks", "5"],
         "capacity"),
    ],
)
def test_cli_bad_arguments_exit_nonzero_with_one_line(argv, message, tmp_path, capsys):
    # In process (each `python -m keras_grown.cli` pays about 6 s importing
    # TensorFlow); the real process's exit code is checked below.
    code = cli.main(argv + ["--out", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert code != 0
    assert message in err
    assert "Traceback" not in err
    assert not (tmp_path / "x").exists()


def test_cli_process_exits_nonzero_on_a_bad_argument_and_prints_its_version(tmp_path, capsys):
    # One real process (its exit status goes through `sys.exit(main())`, as
    # every command's does); `--version` in process (a process costs ~6 s).
    proc = subprocess.run(
        [sys.executable, "-m", "keras_grown.cli", "run", "--epochs", "0",
         "--out", str(tmp_path / "x")],
        capture_output=True, text=True,
    )
    assert proc.returncode == 2
    assert "expected a positive integer" in proc.stderr and "Traceback" not in proc.stderr
    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out == f"keras-grown {kg.__version__}\n"


def test_cli_help_lists_the_commands(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(command in out for command in ("run", "bench", "report", "tune"))


# Each stream the CLI offers, with a tiny slice and the CLI's default backbone:
# its first task (the digits, whose backbone is not LeNet-5: two tasks).
CLI_STREAMS = {
    "split_fashion_mnist": ["--num-tasks", "2", "--train-per-task", "16", "--first-tasks", "1"],
    "permuted_fashion_mnist": ["--num-tasks", "2", "--train-per-task", "16",
                               "--first-tasks", "1"],
    "confusable_fashion_mnist": ["--train-per-task", "16", "--first-tasks", "1"],
    "split_digits": ["--num-tasks", "5", "--train-per-task", "16", "--first-tasks", "2"],
    "split_cifar100": ["--num-tasks", "2", "--train-per-task", "16", "--first-tasks", "1"],
    "cifar100_superclass": ["--train-per-task", "16", "--first-tasks", "1"],
}


@contextlib.contextmanager
def _offline_data(stream):
    """CIFAR-100 from tfds' mock data (nothing downloads); the other streams are local."""
    if "cifar100" not in stream:
        yield
        return
    tfds = pytest.importorskip("tensorflow_datasets")
    if stream == "split_cifar100":
        # Fine labels at random: about 1,500 images of each 50-class task per split,
        # enough for its 1,000 validation and 1,000 test images.
        mock = dict(num_examples=3000)
    else:
        from test_recipes import consistent_cifar100

        mock = dict(as_dataset_fn=consistent_cifar100({"train": 4, "test": 2}))
    with tfds.testing.mock_data(policy=tfds.testing.MockPolicy.USE_CODE, **mock):
        yield


def test_the_cli_offers_exactly_these_streams():
    assert set(cli.STREAMS) == set(CLI_STREAMS)


@pytest.mark.parametrize("stream", list(CLI_STREAMS))
def test_cli_run_finishes_on_every_stream_with_its_defaults(stream, tmp_path, capsys):
    out = tmp_path / stream
    # The stream's loader and default backbone through the CLI; `--target none`
    # (no Scratch reference, no growth round): the paper's loop through the CLI
    # is test_cli_run_writes_results's.
    argv = ["run", "--stream", stream, *CLI_STREAMS[stream], "--epochs", "1",
            "--batch-size", "16", "--no-tensorboard", "--target", "none", "--out", str(out)]
    with _offline_data(stream):
        code = cli.main(argv)
    assert code == 0, capsys.readouterr().err
    results = json.loads((out / "results.json").read_text())
    backbone = "lenet_small" if stream == "split_digits" else "lenet5"
    assert results["settings"]["backbone"] == backbone
    tasks = int(CLI_STREAMS[stream][CLI_STREAMS[stream].index("--first-tasks") + 1])
    assert len(results["result"]["model_size"]) == tasks
    assert results["backward_transfer"] == 0.0


def test_cli_tune_runs_on_the_digits(tmp_path, capsys):
    code = cli.main(["tune", "--stream", "split_digits", "--num-tasks", "2",
                     "--train-per-task", "16", "--max-trials", "1", "--epochs", "1",
                     "--tune-tasks", "1", "--batch-size", "16", "--out", str(tmp_path / "tune")])
    assert code == 0, capsys.readouterr().err
    assert "--backbone lenet_small" in capsys.readouterr().out


def test_first_task_learns_as_well_as_a_plain_full_size_network():
    # Issue 13: GROWN's first task used to end far below a plain network
    # (Gumbel noise as unscaled dropout, scores near the threshold). The
    # hardest pair of Fashion-MNIST (T-shirt/top vs Shirt), 900 training
    # images, all 2,000 test images, seeded: GROWN with its defaults (2 epochs
    # learning the masks, 2 under fixed masks) against a plain full-size
    # LeNet-5 trained for the same 4 epochs. Measured here: GROWN 80.05 %,
    # plain 82.95 % (2 epochs: 80.75 %); the defaults before issue 13 (scores
    # at +1, mask learning rate 1e-2, no fixed-mask stage): 73.40 %. Margin:
    # 3.5 points. The target (0.5 points) is not met on this slice
    # (FIDELITY.md §6).
    stream = kg.datasets.confusable_fashion_mnist(train_per_task=1000, seed=0)
    first = [stream[0]]
    kg.learning.set_seed(0)
    # One fit() of 4 epochs (3 learning the masks, the last under fixed masks)
    # against a plain network's 4: the same epochs.
    grown = kg.learn(methods.GROWN(seed=0), first, epochs=4, seed=0)
    kg.learning.set_seed(0)
    plain = kg.learning.scratch_baseline(grown.model, first, epochs=4, seed=0)
    grown_accuracy = grown.accuracy.average_accuracy()
    plain_accuracy = plain.accuracy.average_accuracy()
    print(f"first task: GROWN {grown_accuracy:.4f}, plain {plain_accuracy:.4f}")
    assert grown_accuracy >= plain_accuracy - 0.035
