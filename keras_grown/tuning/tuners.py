"""The GROWN tuners (KerasTuner's, told that a trial cannot be reloaded) and `tune()`."""

import json
import os

import keras_tuner

from keras_grown import _framework
from keras_grown._checks import check_count, check_seed
from keras_grown.tuning.hypermodel import SEARCH_SPACE, GrownHyperModel


class _GrownTunerMixin:
    """What every GROWN tuner changes in KerasTuner's tuners."""

    def load_model(self, trial):
        raise ValueError(
            "A GROWN trial learns a sequence of tasks; its model is not checkpointed and "
            "cannot be reloaded by get_best_models(). Rebuild it with "
            "tuner.hypermodel.build(tuner.get_best_hyperparameters()[0]) and run "
            "keras_grown.learn() on the whole stream."
        )


class GrownRandomSearch(_GrownTunerMixin, keras_tuner.RandomSearch):
    """`keras_tuner.RandomSearch` for a `GrownHyperModel`."""


class GrownBayesianOptimization(_GrownTunerMixin, keras_tuner.BayesianOptimization):
    """`keras_tuner.BayesianOptimization` for a `GrownHyperModel`."""


class GrownHyperband(_GrownTunerMixin, keras_tuner.Hyperband):
    """`keras_tuner.Hyperband` for a `GrownHyperModel`.

    Hyperband gives each trial a budget of epochs (passed to `fit()` as
    `epochs`: here, epochs per stage of `learn()`) and promotes the best
    trials to larger budgets. KerasTuner's Hyperband reloads a promoted
    trial's checkpoint and trains on from `initial_epoch`; a GROWN model
    cannot resume a stream halfway, so a promoted trial is built afresh and
    learns the tuning tasks again with the larger budget.
    """

    def _build_hypermodel(self, hp):
        # Skip Hyperband's reload of the previous round's checkpoint.
        return _framework.tuner_build_hypermodel(self, hp)


TUNERS = {
    "random": GrownRandomSearch,
    "bayesian": GrownBayesianOptimization,
    "hyperband": GrownHyperband,
}

_HYPERPARAMETERS = tuple(SEARCH_SPACE)


def tune(
    stream,
    max_trials=10,
    tuner="random",
    directory=os.path.join("runs", "tune"),
    project_name="grown",
    epochs=1,
    tune_tasks=2,
    objective="accuracy",
    size_penalty=0.1,
    size_budget=1.0,
    seed=0,
    overwrite=False,
    verbose=0,
    **hypermodel_kwargs,
):
    """Searches GROWN's settings on the first tasks of a stream; returns the best.

    Builds a `GrownHyperModel`, runs a KerasTuner search and writes
    `best.json` (the best settings, their metrics, the objective's formula
    and every trial) in `directory`. KerasTuner keeps its own state in
    `directory/project_name`: a second call with the same folder and
    `overwrite=False` resumes the search.

    Args:
        stream: the task stream.
        max_trials: number of trials, >= 1 (for Hyperband: the most trials).
        tuner: `"random"`, `"bayesian"` or `"hyperband"`.
        directory: the output folder.
        project_name: KerasTuner's project name (a subfolder).
        epochs: epochs per stage; for Hyperband, the largest budget
            (`max_epochs`) a trial gets.
        tune_tasks: tasks from the start of the stream each trial learns;
            None for the whole stream.
        objective: `"accuracy"` (maximize `val_accuracy`) or
            `"accuracy_size"` (maximize `val_accuracy - size_penalty *
            max(0, model_size - size_budget)`).
        size_penalty: the weight of the size in `"accuracy_size"`.
        size_budget: the model size `"accuracy_size"` allows for free.
        seed: fixes the tuner's sampling and every trial's weights, noise
            and shuffling.
        overwrite: start the search afresh in `directory/project_name`.
        verbose: KerasTuner's verbosity (1: a summary per trial).
        **hypermodel_kwargs: other `GrownHyperModel` arguments:
            `backbone`, `l0_lambda`, `seed_ratio`, `learning_rate`,
            `temperature` (a number fixes one), `capacity`, `target`,
            `batch_size`, `max_growth_rounds`, `jit_compile`, `model_kwargs`.

    Returns:
        `(best, tuner)`: `best` is a dict with the best trial's
        `l0_lambda`, `seed_ratio`, `learning_rate`, `temperature` and the
        `epochs` per stage it trained with; `tuner` is the KerasTuner tuner.

    Example:

    >>> best, tuner = kg.tuning.tune(stream, max_trials=10, tuner="random",
    ...                              directory="runs/tune", l0_lambda=(1e-2, 10.0))
    >>> best["l0_lambda"]
    """
    if tuner not in TUNERS:
        raise ValueError(f"Unknown tuner {tuner!r}. Choose one of {', '.join(sorted(TUNERS))}.")
    max_trials = check_count("max_trials", max_trials, 1)
    epochs = check_count("epochs", epochs, 1)
    check_seed(seed)
    hypermodel = GrownHyperModel(
        stream, epochs=epochs, tune_tasks=tune_tasks, objective=objective,
        size_penalty=size_penalty, size_budget=size_budget, seed=seed, **hypermodel_kwargs,
    )
    common = dict(
        hypermodel=hypermodel,
        objective=hypermodel.objective,
        # KerasTuner reads seed=0 as "no seed" (it draws one at random).
        seed=int(seed) + 1,
        directory=str(directory),
        project_name=project_name,
        overwrite=overwrite,
    )
    if tuner == "hyperband":
        search = GrownHyperband(max_epochs=epochs, **common)
        search.oracle.max_trials = max_trials
    else:
        search = TUNERS[tuner](max_trials=max_trials, **common)
    search.search(verbose=verbose)

    trials = sorted(search.oracle.trials.values(), key=lambda t: t.trial_id)
    completed = [t for t in trials if t.score is not None]
    if not completed:
        raise RuntimeError(
            f"No trial of the search completed ({len(trials)} ran). KerasTuner logged why "
            f"in {os.path.join(str(directory), project_name)}."
        )
    best_trial = search.oracle.get_best_trials(1)[0]
    best = _settings_of(best_trial, hypermodel)
    payload = {
        "best": best,
        "objective": {
            "name": hypermodel.objective.name,
            "kind": objective,
            "formula": hypermodel.formula,
            "value": best_trial.score,
            "size_penalty": hypermodel.size_penalty,
            "size_budget": hypermodel.size_budget,
        },
        "metrics": _metrics_of(best_trial),
        "trial_id": best_trial.trial_id,
        "tuner": tuner,
        "stream": getattr(stream, "name", None),
        "tune_tasks": hypermodel.tune_tasks,
        "epochs": epochs,
        "seed": int(seed),
        "search_space": {
            name: (
                {"fixed": spec[1]}
                if spec[0] == "fixed"
                else {"low": spec[1], "high": spec[2], "sampling": spec[3]}
            )
            for name, spec in hypermodel.space.items()
        },
        "trials": [
            {
                "trial_id": t.trial_id,
                "status": str(t.status),
                "hyperparameters": _settings_of(t, hypermodel),
                "score": t.score,
                "metrics": _metrics_of(t),
            }
            for t in trials
        ],
    }
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "best.json"), "w") as handle:
        json.dump(payload, handle, indent=2)
    return best, search


def _settings_of(trial, hypermodel):
    values = trial.hyperparameters.values
    settings = {name: float(values[name]) for name in _HYPERPARAMETERS if name in values}
    settings["epochs"] = int(values.get("tuner/epochs", hypermodel.epochs))
    return settings


def _metrics_of(trial):
    return {
        name: float(trial.metrics.get_last_value(name))
        for name in sorted(trial.metrics.metrics)
        if trial.metrics.get_last_value(name) is not None
    }
