"""keras_grown.tuning: KerasTuner searches over GROWN on real Fashion-MNIST slices."""

import argparse
import dataclasses
import json

import keras
import keras_tuner
import numpy as np
import pytest
import tensorflow as tf

import keras_grown as kg
from keras_grown import tuning
from keras_grown.cli import tune as tune_cli


@pytest.fixture(scope="module")
def tiny_stream():
    """Five 2-class Fashion-MNIST tasks: 128 train, 32 val, 50 test each."""
    return kg.datasets.split_fashion_mnist(
        num_tasks=5, train_per_task=160, val_fraction=0.2, test_per_task=50, seed=0
    )


def _poisoned(stream):
    """The same stream whose test splits fail as soon as one element is read."""

    def read_test(image, label):
        check = tf.debugging.assert_less(
            label, tf.constant(-1, label.dtype), message="tuning read test data"
        )
        with tf.control_dependencies([check]):
            return tf.identity(image), tf.identity(label)

    return kg.datasets.TaskStream(
        [dataclasses.replace(task, test=task.test.map(read_test)) for task in stream],
        name=stream.name,
    )


@pytest.fixture(scope="module")
def random_search(tiny_stream, tmp_path_factory):
    """Two random trials on the first 2 tasks, test splits poisoned, temperature fixed."""
    directory = tmp_path_factory.mktemp("tune")
    best, tuner = tuning.tune(
        _poisoned(tiny_stream),
        max_trials=2,
        tuner="random",
        directory=directory,
        epochs=1,
        tune_tasks=2,
        objective="accuracy_size",
        size_penalty=0.5,
        size_budget=0.0,
        seed=0,
        temperature=1.5,
        l0_lambda=(1e-2, 1.0),
    )
    return best, tuner, directory


def test_poisoned_test_split_fails_when_read(tiny_stream):
    with pytest.raises(tf.errors.InvalidArgumentError, match="tuning read test data"):
        next(iter(_poisoned(tiny_stream)[0].test))


def test_search_writes_best_json_with_settings_in_range(random_search):
    best, tuner, directory = random_search
    payload = json.loads((directory / "best.json").read_text())
    assert payload["best"] == best
    assert set(best) == {"l0_lambda", "seed_ratio", "learning_rate", "temperature", "epochs"}
    assert 1e-2 <= best["l0_lambda"] <= 1.0
    assert 0.2 <= best["seed_ratio"] <= 0.8
    assert 1e-4 <= best["learning_rate"] <= 1e-2
    assert best["epochs"] == 1
    assert payload["objective"]["name"] == "accuracy_size"
    assert payload["tune_tasks"] == 2 and payload["tuner"] == "random"
    assert len(payload["trials"]) == 2
    best_trial = tuner.oracle.get_best_trials(1)[0]
    assert payload["trial_id"] == best_trial.trial_id
    assert payload["objective"]["value"] == best_trial.score
    assert best_trial.score == max(t["score"] for t in payload["trials"])


def test_trials_never_read_test_data_and_all_complete(random_search):
    # the test splits raise when read: a trial that read one would have failed
    _, tuner, _ = random_search
    statuses = [t.status for t in tuner.oracle.trials.values()]
    assert statuses == ["COMPLETED"] * 2


def test_trials_sample_different_settings_and_respect_fixed_ones(random_search):
    _, tuner, _ = random_search
    values = [t.hyperparameters.values for t in tuner.oracle.trials.values()]
    assert len({v["l0_lambda"] for v in values}) == 2
    assert len({v["seed_ratio"] for v in values}) == 2
    assert len({v["learning_rate"] for v in values}) == 2
    assert all(v["temperature"] == 1.5 for v in values)
    assert all(1e-2 <= v["l0_lambda"] <= 1.0 for v in values)


def test_objective_is_the_documented_formula_of_validation_metrics(random_search):
    _, tuner, _ = random_search
    for trial in tuner.oracle.trials.values():
        metric = trial.metrics.get_last_value
        per_task = [metric("val_accuracy_task_0"), metric("val_accuracy_task_1")]
        assert metric("val_accuracy") == pytest.approx(np.mean(per_task), abs=1e-12)
        # size_penalty=0.5, size_budget=0: every owned weight costs
        expected = metric("val_accuracy") - 0.5 * max(0.0, metric("model_size") - 0.0)
        assert trial.score == pytest.approx(expected, abs=1e-12)
        assert metric("accuracy_size") == trial.score
        assert 0.0 < metric("model_size") < 2.0
        # 32 validation images per task: accuracies are multiples of 1/32
        for accuracy in per_task:
            assert accuracy * 32 == pytest.approx(round(accuracy * 32), abs=1e-6)


def test_best_models_are_not_reloadable_and_say_what_to_do(random_search):
    _, tuner, _ = random_search
    with pytest.raises(ValueError, match=r"tuner\.hypermodel\.build"):
        tuner.get_best_models(1)


def test_metrics_formula_by_hand():
    hypermodel = tuning.GrownHyperModel(
        input_shape=(28, 28, 1), objective="accuracy_size", size_penalty=0.5, size_budget=1.0
    )
    metrics = hypermodel.metrics_from([0.75, 0.625], 1.25)
    assert metrics["val_accuracy"] == 0.6875
    assert metrics["accuracy_size"] == 0.6875 - 0.5 * 0.25
    assert hypermodel.metrics_from([0.75, 0.625], 0.75)["accuracy_size"] == 0.6875
    assert hypermodel.objective.name == "accuracy_size"
    assert tuning.GrownHyperModel(input_shape=(28, 28, 1)).objective.name == "val_accuracy"


def test_build_uses_fixed_values_and_declares_the_searched_ones():
    hypermodel = tuning.GrownHyperModel(
        input_shape=(28, 28, 1),
        seed_ratio=0.4,
        learning_rate=3e-3,
        temperature=0.7,
        model_kwargs={"mask_learning_rate": 5e-2},
    )
    hp = keras_tuner.HyperParameters()
    model = hypermodel.build(hp)
    assert isinstance(model, kg.GrownModel)
    assert (model.seed_ratio, model.temperature, model.mask_learning_rate) == (0.4, 0.7, 5e-2)
    assert float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)) == pytest.approx(3e-3)
    assert hp.values == {
        "l0_lambda": 1e-3,
        "seed_ratio": 0.4,
        "learning_rate": 3e-3,
        "temperature": 0.7,
    }  # l0_lambda searched: its default is the low end of the log range
    assert model.l0_lambda == 1e-3


def test_hyperband_promotes_a_trial_and_learns_it_again(tiny_stream, tmp_path):
    # max_epochs=3, factor 3: three 1-epoch trials, then the best learns again at 3 epochs
    best, tuner = tuning.tune(
        tiny_stream,
        max_trials=4,
        tuner="hyperband",
        directory=tmp_path,
        epochs=3,
        tune_tasks=1,
        seed=0,
        seed_ratio=0.5,
        temperature=1.0,
    )
    trials = sorted(tuner.oracle.trials.values(), key=lambda t: t.trial_id)
    assert [t.status for t in trials] == ["COMPLETED"] * 4
    budgets = [t.hyperparameters.values["tuner/epochs"] for t in trials]
    assert budgets == [1, 1, 1, 3]
    promoted = trials[3].hyperparameters.values
    assert promoted["tuner/trial_id"] in {t.trial_id for t in trials[:3]}
    assert best["epochs"] in (1, 3)
    assert json.loads((tmp_path / "best.json").read_text())["tuner"] == "hyperband"


def _parser():
    parser = argparse.ArgumentParser(prog="keras-grown")
    tune_cli.add_tune_command(parser.add_subparsers(dest="command"))
    return parser


def test_cli_tune_prints_and_saves_the_best_settings(tmp_path, capsys):
    out = tmp_path / "tune"
    args = _parser().parse_args(
        [
            "tune",
            "--stream",
            "split_fashion_mnist",
            "--train-per-task",
            "80",
            "--max-trials",
            "1",
            "--tuner",
            "bayesian",
            "--epochs",
            "1",
            "--tune-tasks",
            "1",
            "--objective",
            "accuracy_size",
            "--size-penalty",
            "0.2",
            "--backbone",
            "lenet5",
            "--l0-lambda",
            "0.05",
            "--seed-ratio",
            "0.3:0.6",
            "--out",
            str(out),
            "--seed",
            "1",
        ]
    )
    assert args.func is tune_cli.command_tune
    assert tune_cli.command_tune(args) == 0
    payload = json.loads((out / "best.json").read_text())
    assert payload["best"]["l0_lambda"] == 0.05
    assert 0.3 <= payload["best"]["seed_ratio"] <= 0.6
    assert payload["search_space"]["l0_lambda"] == {"fixed": 0.05}
    assert payload["objective"]["size_penalty"] == 0.2
    assert payload["tuner"] == "bayesian" and payload["tune_tasks"] == 1
    printed = capsys.readouterr().out
    assert "best trial" in printed and "--l0-lambda 0.05" in printed
    assert str(out / "best.json") in printed


def test_cli_parser_reads_ranges_and_all_tasks():
    args = _parser().parse_args(["tune", "--l0-lambda", "1e-3:10", "--tune-tasks", "all"])
    assert args.l0_lambda == (1e-3, 10.0) and args.tune_tasks is None
    assert (args.tuner, args.max_trials, args.objective) == ("random", 10, "accuracy")
    with pytest.raises(SystemExit):
        _parser().parse_args(["tune", "--tuner", "grid"])
    with pytest.raises(SystemExit):
        _parser().parse_args(["tune", "--l0-lambda", "small"])


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--max-trials", "0"], r"--max-trials must be >= 1; received 0"),
        (["--epochs", "0"], r"--epochs must be >= 1"),
        (["--l0-lambda", "-1"], r"l0_lambda must be >= 0"),
        (["--tune-tasks", "9"], r"tune_tasks=9 but the stream has only 5 task"),
    ],
)
def test_cli_tune_errors_are_value_errors(tmp_path, flags, message):
    out = tmp_path / "tune"
    args = _parser().parse_args(["tune", "--train-per-task", "40", "--out", str(out)] + flags)
    with pytest.raises(ValueError, match=message):
        tune_cli.command_tune(args)
    assert not out.exists()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"tuner": "grid"}, r"Unknown tuner 'grid'\. Choose one of bayesian, hyperband, random"),
        ({"max_trials": 0}, r"max_trials must be an integer >= 1\. Received: max_trials=0"),
        ({"tune_tasks": 6}, r"tune_tasks=6 but the stream has only 5 task"),
        ({"objective": "size"}, r"objective must be one of"),
        ({"l0_lambda": (1.0, 0.1)}, r"A range for l0_lambda must be \(low, high\) with low < high"),
        ({"l0_lambda": (0.0, 1.0)}, r"low > 0 \(log scale\)"),
        ({"seed_ratio": 1.5}, r"seed_ratio must be in \(0, 1\]"),
        ({"temperature": "hot"}, r"temperature takes None"),
        ({"size_penalty": -1}, r"size_penalty must be a number >= 0"),
        ({"backbone": "alexnet"}, r"Unknown backbone 'alexnet'"),
        ({"capacity": 0.5}, r"capacity .* must be >= 1"),
        ({"model_kwargs": {"seed_ratio": 0.5}}, r"model_kwargs must not set seed_ratio"),
        ({"model_kwargs": {"dropout": 0.5}}, r"model_kwargs has dropout, which GrownModel"),
        ({"target": 1.5}, r"target must be an accuracy in \(0, 1\]"),
        ({"target": [0.9]}, r"target has 1 values for a stream of 2 tasks"),
    ],
)
def test_tune_rejects_bad_arguments_before_searching(tiny_stream, tmp_path, kwargs, message):
    directory = tmp_path / "tune"
    with pytest.raises(ValueError, match=message):
        tuning.tune(tiny_stream, directory=directory, **kwargs)
    assert not directory.exists()


def test_stream_given_to_search_and_per_task_targets_cut_to_the_tuning_tasks(tiny_stream, tmp_path):
    hypermodel = tuning.GrownHyperModel(
        input_shape=(28, 28, 1), tune_tasks=1, target=[0.5, 0.6, 0.7, 0.8, 0.9], seed_ratio=0.5
    )
    tuner = tuning.GrownRandomSearch(
        hypermodel, objective=hypermodel.objective, max_trials=1, directory=tmp_path, seed=3
    )
    tuner.search(tiny_stream)
    (trial,) = tuner.oracle.trials.values()
    assert trial.status == "COMPLETED"
    assert set(trial.metrics.metrics) == {
        "val_accuracy",
        "val_accuracy_task_0",
        "model_size",
        "accuracy_size",
    }


def test_a_bad_stream_given_to_search_stops_the_search_at_once(tiny_stream, tmp_path):
    hypermodel = tuning.GrownHyperModel(input_shape=(28, 28, 1), tune_tasks=6)
    tuner = tuning.GrownRandomSearch(
        hypermodel, objective=hypermodel.objective, max_trials=3, directory=tmp_path, seed=3
    )
    with pytest.raises(ValueError, match=r"tune_tasks=6 but the stream has only 5 task"):
        tuner.search(tiny_stream)
    assert len(tuner.oracle.trials) == 1


def test_hypermodel_needs_a_stream_or_an_input_shape():
    with pytest.raises(ValueError, match=r"needs a stream or an input_shape"):
        tuning.GrownHyperModel()


def test_tuning_is_exported():
    assert kg.tuning is tuning
    assert "tuning" in kg.__all__
