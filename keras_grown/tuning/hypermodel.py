"""`GrownHyperModel`: one KerasTuner trial is one run of GROWN over the first tasks of a stream.

The search space (`SEARCH_SPACE`), the objectives and their formulas, and
the checks of the searched settings live here too; the tuners and `tune()`
are in `keras_grown.tuning.tuners`.
"""

import dataclasses
import inspect
import math
import types

import keras
import keras_tuner
import numpy as np

from keras_grown import backbones as backbones_lib
from keras_grown._checks import check_count, check_seed
from keras_grown.layers.scope import validate_growth_settings
from keras_grown.learning import _resolve_targets, learn, set_seed
from keras_grown.model import GrownModel

# name: (low, high, sampling) of the default search space.
SEARCH_SPACE = {
    "l0_lambda": (1e-3, 10.0, "log"),
    "seed_ratio": (0.2, 0.8, "linear"),
    "learning_rate": (1e-4, 1e-2, "log"),
    "temperature": (0.5, 2.0, "linear"),
}

# objective argument: the name of the metric the tuner maximizes.
OBJECTIVES = {"accuracy": "val_accuracy", "accuracy_size": "accuracy_size"}

OBJECTIVE_FORMULAS = {
    "accuracy": (
        "val_accuracy = mean over the tuning tasks of each task's validation accuracy "
        "when it finished"
    ),
    "accuracy_size": (
        "accuracy_size = val_accuracy - size_penalty * max(0, model_size - size_budget)"
    ),
}


# name: (allowed values, in words) of one value of a searched setting.
_DOMAINS = {
    "l0_lambda": (lambda v: v >= 0, ">= 0"),
    "seed_ratio": (lambda v: 0 < v <= 1, "in (0, 1]"),
    "learning_rate": (lambda v: v > 0, "> 0"),
    "temperature": (lambda v: v > 0, "> 0"),
}


def _check_domain(name, value):
    return _DOMAINS[name][0](value)


def _resolve_setting(name, value):
    """None -> default range; a number -> fixed; (low, high) -> that range."""
    low, high, sampling = SEARCH_SPACE[name]
    if value is None:
        return ("range", low, high, sampling)
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        value = float(value)
        if not (math.isfinite(value) and _check_domain(name, value)):
            raise ValueError(f"{name} must be {_DOMAINS[name][1]}. Received: {name}={value!r}")
        return ("fixed", value)
    if isinstance(value, (tuple, list)) and len(value) == 2:
        try:
            low, high = float(value[0]), float(value[1])
        except (TypeError, ValueError):
            low = high = float("nan")
        if not (
            math.isfinite(low)
            and math.isfinite(high)
            and low < high
            and _check_domain(name, low)
            and _check_domain(name, high)
            and (sampling != "log" or low > 0)
        ):
            raise ValueError(
                f"A range for {name} must be (low, high) with low < high, both "
                f"{_DOMAINS[name][1]}{' and low > 0 (log scale)' if sampling == 'log' else ''}. "
                f"Received: {name}={value!r}"
            )
        return ("range", low, high, sampling)
    raise ValueError(
        f"{name} takes None (search {SEARCH_SPACE[name][0]:g}..{SEARCH_SPACE[name][1]:g}), "
        f"a number (fixed) or a (low, high) pair (search that range). Received: {name}={value!r}"
    )


def _check_tune_tasks(tune_tasks):
    if tune_tasks is None or tune_tasks == "all":
        return None
    return check_count("tune_tasks", tune_tasks, 1)


# GrownModel arguments that GrownHyperModel sets itself (or that only a
# loaded model has): not accepted in model_kwargs.
_SET_BY_HYPERMODEL = {
    "backbone", "input_shape", "capacity", "seed", "l0_lambda", "seed_ratio", "temperature",
    "tasks", "growth_enabled", "selected_task",
}  # fmt: skip


def _is_tuner_callback(callback):
    # KerasTuner adds a checkpointing callback (SaveBestEpoch) and a
    # per-epoch hook (TunerCallback) to every fit. A GROWN trial is many
    # fits over a stream; a checkpoint of it cannot be reloaded into a
    # freshly built model (the tasks differ), so neither is used.
    return type(callback).__module__.startswith("keras_tuner")


class GrownHyperModel(keras_tuner.HyperModel):
    """A KerasTuner `HyperModel` whose trial is GROWN over the first tasks of a stream.

    `build(hp)` returns a compiled `GrownModel` with the sampled
    `l0_lambda`, `seed_ratio` and `temperature`, and Adam at the sampled
    `learning_rate` for the weights. `fit(hp, model)` runs
    `keras_grown.learning.learn` over the tuning tasks and returns the
    metrics `val_accuracy`, `model_size` and `accuracy_size` (see the module
    docstring for the formulas); `objective` names the one the tuner
    maximizes. Only validation data is read: each tuning task's test split
    is replaced by its validation split for the trial.

    Every trial starts from the same seed (`keras_grown.set_seed(seed)`
    before the model is built), so trials differ only by their
    hyperparameters.

    Args:
        stream: the task stream (a `TaskStream` or a list of tasks with
            `train`, `val`, `test`, `num_classes`). May be None if
            `input_shape` is given and the stream is passed to
            `tuner.search(stream)` instead.
        input_shape: shape of one image; default: the stream's.
        backbone: the `GrownModel` backbone (default: `backbones.default_backbone()`
            of the input shape: lenet5, or lenet_small below 16x16).
        l0_lambda: None to search the default range (`SEARCH_SPACE`), a
            number to fix the value, or a `(low, high)` pair to search that
            range.
        seed_ratio: as `l0_lambda`.
        learning_rate: as `l0_lambda` (Adam's, for the weights).
        temperature: as `l0_lambda` (the Gumbel-Sigmoid's).
        capacity: `GrownModel` capacity (fixed).
        epochs: epochs per stage of `learn()`. The Hyperband tuner passes
            its own `epochs` to `fit()` (the trial's budget): that replaces
            this value, see `fit()`.
        tune_tasks: number of tasks from the start of the stream a trial
            learns; None (or `"all"`) for the whole stream.
        target: `learn()`'s target: None, a number, `"scratch"`, or a list
            of one number per task of the stream (cut to the tuning tasks).
            None by default here, unlike `learn()`: `"scratch"` trains a
            full-size reference per task in every trial.
        max_growth_rounds: `learn()`'s bound on growth rounds.
        batch_size: training batch size.
        objective: `"accuracy"` or `"accuracy_size"`.
        size_penalty: weight of the model size in `accuracy_size`, >= 0.
        size_budget: model size (in full-size backbones) allowed for free
            in `accuracy_size`, >= 0. 0 penalizes every weight owned.
        seed: seed of the weights, the Gumbel noise and the shuffling.
        jit_compile: compile the model with XLA.
        model_kwargs: other fixed `GrownModel` arguments (e.g.
            `mask_learning_rate`, `gumbel`).
        name: as in `keras_tuner.HyperModel`.
        tunable: as in `keras_tuner.HyperModel`.

    Example:

    ```python
    hypermodel = kg.tuning.GrownHyperModel(stream, l0_lambda=(1e-2, 1.0), seed_ratio=0.5)
    tuner = kg.tuning.GrownRandomSearch(hypermodel, objective=hypermodel.objective,
                                        max_trials=10, directory="runs/tune")
    tuner.search()
    tuner.get_best_hyperparameters()[0].values
    ```
    """

    def __init__(
        self,
        stream=None,
        input_shape=None,
        backbone=None,
        l0_lambda=None,
        seed_ratio=None,
        learning_rate=None,
        temperature=None,
        capacity=2.0,
        epochs=1,
        tune_tasks=2,
        target=None,
        max_growth_rounds=2,
        batch_size=64,
        objective="accuracy",
        size_penalty=0.1,
        size_budget=1.0,
        seed=0,
        jit_compile=False,
        model_kwargs=None,
        name=None,
        tunable=True,
    ):
        space = {
            "l0_lambda": _resolve_setting("l0_lambda", l0_lambda),
            "seed_ratio": _resolve_setting("seed_ratio", seed_ratio),
            "learning_rate": _resolve_setting("learning_rate", learning_rate),
            "temperature": _resolve_setting("temperature", temperature),
        }
        if objective not in OBJECTIVES:
            raise ValueError(
                f"objective must be one of {sorted(OBJECTIVES)}. Received: objective={objective!r}"
            )
        for key, value in (("size_penalty", size_penalty), ("size_budget", size_budget)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
                raise ValueError(f"{key} must be a number >= 0. Received: {key}={value!r}")
        epochs = check_count("epochs", epochs, 1)
        batch_size = check_count("batch_size", batch_size, 1)
        tune_tasks = _check_tune_tasks(tune_tasks)
        check_seed(seed)
        model_kwargs = dict(model_kwargs or {})
        taken = sorted(set(model_kwargs) & _SET_BY_HYPERMODEL)
        if taken:
            raise ValueError(
                f"model_kwargs must not set {', '.join(taken)}: they are arguments of "
                "GrownHyperModel itself."
            )
        if stream is not None:
            # Checks the stream and the target before anything runs.
            tasks = self._tuning_tasks(stream, tune_tasks)
            _resolve_targets(_targets_for(target, len(tasks)), len(tasks))
        if input_shape is None:
            if stream is None:
                raise ValueError(
                    "GrownHyperModel needs a stream or an input_shape (the shape of one image, "
                    "e.g. (28, 28, 1))."
                )
            input_shape = _stream_input_shape(stream)
        super().__init__(name=name, tunable=tunable)
        self.stream = stream
        self.input_shape = tuple(int(d) for d in input_shape)
        # None: the backbone keras-grown picks for these images (lenet5, or
        # lenet_small below 16x16).
        self.backbone = (
            backbones_lib.default_backbone(self.input_shape) if backbone is None else backbone
        )
        self.space = space
        self.capacity = float(capacity)
        self.epochs = epochs
        self.tune_tasks = tune_tasks
        self.target = target
        self.max_growth_rounds = int(max_growth_rounds)
        self.batch_size = batch_size
        self.objective_kind = objective
        self.size_penalty = float(size_penalty)
        self.size_budget = float(size_budget)
        self.seed = int(seed)
        self.jit_compile = bool(jit_compile)
        self.model_kwargs = model_kwargs
        # Fails now, not in the first trial.
        self._check_model_settings()

    @property
    def objective(self):
        """The `keras_tuner.Objective` to pass to a tuner (always maximized)."""
        return keras_tuner.Objective(OBJECTIVES[self.objective_kind], direction="max")

    @property
    def formula(self):
        """The objective's formula, in words."""
        return OBJECTIVE_FORMULAS[self.objective_kind]

    def _check_model_settings(self):
        backbones_lib.get_backbone(self.backbone)
        validate_growth_settings(1.0, self.capacity)
        accepted = set(inspect.signature(GrownModel).parameters) - {"kwargs"}
        unknown = sorted(set(self.model_kwargs) - accepted)
        if unknown:
            raise ValueError(
                f"model_kwargs has {', '.join(unknown)}, which GrownModel does not take. "
                f"It takes: {', '.join(sorted(accepted))}."
            )

    def declare(self, hp):
        """Declares the four settings in `hp`; returns their values."""
        values = {}
        for name, spec in self.space.items():
            if spec[0] == "fixed":
                values[name] = hp.Fixed(name, spec[1])
            else:
                _, low, high, sampling = spec
                values[name] = hp.Float(name, low, high, sampling=sampling)
        return values

    def build(self, hp):
        values = self.declare(hp)
        set_seed(self.seed)
        model = GrownModel(
            backbone=self.backbone,
            input_shape=self.input_shape,
            seed_ratio=values["seed_ratio"],
            capacity=self.capacity,
            l0_lambda=values["l0_lambda"],
            temperature=values["temperature"],
            seed=self.seed,
            **self.model_kwargs,
        )
        model.compile(
            optimizer=keras.optimizers.Adam(values["learning_rate"]),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
            jit_compile=self.jit_compile,
        )
        return model

    def fit(
        self,
        hp,
        model,
        stream=None,
        epochs=None,
        initial_epoch=0,
        callbacks=None,
        verbose=0,
        **kwargs,
    ):
        """Runs GROWN over the tuning tasks; returns the trial's metrics.

        Args:
            hp: the trial's `HyperParameters`.
            model: the `GrownModel` from `build(hp)`.
            stream: the stream, if not given to the constructor.
            epochs: epochs per stage (default: the constructor's). The
                Hyperband tuner passes the trial's budget here.
            initial_epoch: ignored. Hyperband passes it with a promoted
                trial to resume training; a GROWN trial cannot resume (its
                model has finished tasks a freshly built one has not), so a
                promoted trial learns the tuning tasks again from the start
                with the larger budget of epochs per stage.
            callbacks: passed to every `fit()` of `learn()`, except
                KerasTuner's own checkpointing callbacks.
            verbose: KerasTuner's verbosity; `learn()` prints one line per
                epoch only at `verbose >= 2`.

        Returns:
            A dict: `val_accuracy`, `model_size`, `accuracy_size`, and
            `val_accuracy_task_<k>` for each tuning task k.
        """
        if kwargs:
            raise keras_tuner.errors.FatalTypeError(
                f"GrownHyperModel.fit() does not take {', '.join(sorted(kwargs))}. It takes "
                "stream, epochs, callbacks and verbose."
            )
        stream = self.stream if stream is None else stream
        if stream is None:
            raise keras_tuner.errors.FatalValueError(
                "GrownHyperModel.fit() has no stream: give it to GrownHyperModel(stream) or "
                "to tuner.search(stream)."
            )
        epochs = self.epochs if epochs is None else epochs
        try:
            tasks = self._tuning_tasks(stream, self.tune_tasks)
            target = _targets_for(self.target, len(tasks))
            _resolve_targets(target, len(tasks))
        except ValueError as error:
            # A bad stream fails every trial alike: stop the search.
            raise keras_tuner.errors.FatalValueError(str(error)) from error
        callbacks = [c for c in (callbacks or []) if not _is_tuner_callback(c)]
        result = learn(
            model,
            tasks,
            epochs=int(epochs),
            target=target,
            max_growth_rounds=self.max_growth_rounds,
            batch_size=self.batch_size,
            callbacks=callbacks,
            verbose=2 if verbose and verbose >= 2 else 0,
            seed=self.seed,
        )
        return self.metrics_from(result.val_accuracy, result.model_size[-1])

    def metrics_from(self, val_accuracy, model_size):
        """The trial's metrics from per-task validation accuracies and the final size."""
        mean_accuracy = float(np.mean(val_accuracy))
        metrics = {
            "val_accuracy": mean_accuracy,
            "model_size": float(model_size),
            "accuracy_size": mean_accuracy
            - self.size_penalty * max(0.0, float(model_size) - self.size_budget),
        }
        for index, accuracy in enumerate(val_accuracy):
            metrics[f"val_accuracy_task_{index}"] = float(accuracy)
        return metrics

    @staticmethod
    def _tuning_tasks(stream, tune_tasks):
        """The first `tune_tasks` tasks, each with its test split replaced by validation."""
        tasks = list(stream)
        if not tasks:
            raise ValueError("The stream has no task to tune on.")
        if tune_tasks is not None:
            if tune_tasks > len(tasks):
                raise ValueError(
                    f"tune_tasks={tune_tasks} but the stream has only {len(tasks)} task(s). "
                    "Pass a smaller tune_tasks, or None to tune on the whole stream."
                )
            tasks = tasks[:tune_tasks]
        for position, task in enumerate(tasks):
            missing = [a for a in ("train", "val", "num_classes") if not hasattr(task, a)]
            if missing:
                raise ValueError(
                    f"Task {position} of the stream has no {', '.join(missing)}; tuning needs "
                    "tasks with train, val and num_classes (keras_grown.datasets streams)."
                )
        return [_validation_only(task) for task in tasks]


def _targets_for(target, count):
    """A list of per-task targets (for the whole stream) cut to the tuning tasks."""
    if isinstance(target, (list, tuple)):
        return list(target)[:count]
    return target


def _validation_only(task):
    # learn() measures test accuracy for its matrix; a tuning trial must
    # not read test data, so it sees the validation split in its place.
    if dataclasses.is_dataclass(task):
        return dataclasses.replace(task, test=task.val)
    return types.SimpleNamespace(
        name=getattr(task, "name", None) or "task",
        train=task.train,
        val=task.val,
        test=task.val,
        num_classes=task.num_classes,
    )


def _stream_input_shape(stream):
    shape = getattr(stream, "input_shape", None)
    if shape is None:
        tasks = list(stream)
        shape = getattr(tasks[0], "input_shape", None) if tasks else None
    if shape is None:
        raise ValueError(
            "Cannot tell the image shape of this stream; pass input_shape= (e.g. (28, 28, 1))."
        )
    return shape
