"""`learn()`: the paper's two-stage loop over a whole task stream, in one call."""

import dataclasses
import time

import keras
import numpy as np

from keras_grown.evaluation import AccuracyMatrix
from keras_grown.model import GrownModel


@dataclasses.dataclass
class LearnResult:
    """What `learn()` measured.

    Attributes:
        accuracy: the `AccuracyMatrix` (test accuracy on task j after task i).
        model_size: model-size ratio after each task.
        time_per_task: wall seconds spent on each task (training, the
            scratch reference when `target="scratch"`, finishing).
        targets: the target accuracy used for each task (None: no target).
        growth_rounds: the number of growth rounds each task used.
        val_accuracy: validation accuracy of each task when it finished.
        summaries: the `TaskSummary` returned by `finish_task()` per task.
        growth: `GrownModel.growth_report()` after each task.
    """

    accuracy: AccuracyMatrix
    model_size: list
    time_per_task: list
    targets: list
    growth_rounds: list
    val_accuracy: list
    summaries: list
    growth: list = dataclasses.field(default_factory=list)

    def to_dict(self):
        return {
            "accuracy": self.accuracy.to_dict(),
            "model_size": list(self.model_size),
            "time_per_task": list(self.time_per_task),
            "targets": list(self.targets),
            "growth_rounds": list(self.growth_rounds),
            "val_accuracy": list(self.val_accuracy),
            "channels_grown": [s.channels_grown for s in self.summaries],
            "layers": [s.layers for s in self.summaries],
            "growth": list(self.growth),
        }

    def plot_growth(self, path):
        """Writes a PNG: model size after each task, and each layer's active width."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        tasks = np.arange(1, len(self.model_size) + 1)
        figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
        left.plot(tasks, self.model_size, marker="o")
        left.axhline(1.0, color="grey", linestyle="--", linewidth=1)
        left.set(xlabel="after task", ylabel="model size (x full-size backbone)",
                 title="Model size", xticks=tasks)
        if self.growth:
            for position, layer in enumerate(self.growth[0]):
                widths = [report[position]["growth_ratio"] for report in self.growth]
                right.plot(tasks, widths, marker="o", label=layer["layer"])
            right.legend(fontsize="small")
        right.axhline(1.0, color="grey", linestyle="--", linewidth=1)
        right.set(xlabel="after task", ylabel="active width / full-size width",
                  title="Growth per layer", xticks=tasks)
        figure.tight_layout()
        figure.savefig(path, dpi=100)
        plt.close(figure)


def prepare(dataset, batch_size, shuffle=False, seed=0):
    """Caches, (shuffles), batches and prefetches an unbatched task dataset."""
    import tensorflow as tf

    dataset = dataset.cache()
    if shuffle:
        dataset = dataset.shuffle(4096, seed=seed, reshuffle_each_iteration=True)
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def _full_size_twin(model):
    """A GrownModel of the same backbone with every mask off: a plain full-size network."""
    config = model.get_config()
    config.update(
        name="scratch_reference", seed_ratio=1.0, capacity=1.0, selective_mask=False,
        attentive_mask=False, learnable_growth=False, tasks=[], growth_enabled=False,
        selected_task=None,
    )
    twin = GrownModel.from_config(config)
    if model._compile_kwargs is not None:
        twin.compile(**model._compile_kwargs)
    return twin


def scratch_baseline(model, stream, epochs=3, batch_size=64, verbose=0, seed=0):
    """Trains one full-size plain network per task ("Scratch"); returns a LearnResult.

    Each task gets its own network of the backbone's full-size width, so
    nothing is forgotten and the size after task t is t x. This is the
    reference GROWN's accuracy is compared with.
    """
    tasks = list(stream)
    names = [getattr(t, "name", f"task {i}") for i, t in enumerate(tasks)]
    matrix = AccuracyMatrix(len(tasks), task_names=names)
    result = LearnResult(matrix, [], [], [], [], [], [])
    accuracies = []
    for index, task in enumerate(tasks):
        start = time.perf_counter()
        reference = _full_size_twin(model)
        reference.add_task(task.train, num_classes=task.num_classes, grow=False)
        reference.fit(prepare(task.train, batch_size, True, seed + index), epochs=epochs,
                      verbose=verbose, shuffle=False)
        result.val_accuracy.append(_accuracy(reference, prepare(task.val, 256)))
        accuracies.append(_accuracy(reference, prepare(task.test, 256)))
        result.time_per_task.append(time.perf_counter() - start)
        matrix.record_row(index, accuracies)
        matrix.record_model_size(index, float(index + 1))
        matrix.record_time(index, result.time_per_task[-1])
        result.model_size.append(float(index + 1))
    return result


def scratch_reference(model, task, epochs=3, batch_size=64, verbose=0, seed=0):
    """Trains a full-size plain network on one task; returns its validation accuracy.

    The reference is the same engine with every mask switched off: the seed
    is the full width (`seed_ratio=1`, `capacity=1`), no selective or
    attentive mask, no growth. That is an ordinary network of the
    backbone's full-size width, trained from scratch on the task, as the
    paper's "Scratch" baseline is.
    """
    reference = _full_size_twin(model)
    reference.add_task(task.train, num_classes=task.num_classes, grow=False)
    reference.fit(prepare(task.train, batch_size, True, seed), epochs=epochs, verbose=verbose,
                  shuffle=False)
    return _accuracy(reference, prepare(task.val, 256))


def _accuracy(model, dataset):
    return float(model.evaluate(dataset, verbose=0, return_dict=True)["accuracy"])


def learn(
    model,
    stream,
    epochs=3,
    target=None,
    max_growth_rounds=2,
    growth_epochs=None,
    batch_size=64,
    callbacks=None,
    verbose=0,
    seed=0,
):
    """Runs GROWN over every task of a stream and measures it.

    For each task: `add_task`, then

    * `target=None` (no target): one stage with selective mask, released
      weights and learnable sparse growth trained jointly; the l0 penalty
      alone decides the growth.
    * `target=` a number in (0, 1], `"scratch"`, or a list of numbers (one
      per task): stage 1 (pick and reuse, no growth), then, while the
      validation accuracy is below the target and fewer than
      `max_growth_rounds` rounds ran and capacity is left, `grow()` and
      train again (stage 2). The first task always trains with growth on.
      `"scratch"` trains a full-size plain network on the task first and
      uses its validation accuracy, as the paper does.

    then `finish_task()`, and the test accuracy on every task learned so far.

    Args:
        model: a `GrownModel` (compiled or not).
        stream: a sequence of tasks (`keras_grown.datasets` streams), each
            with `train`, `val`, `test` (unbatched) and `num_classes`.
        epochs: epochs per stage.
        target: see above.
        max_growth_rounds: bound on the number of growth rounds per task.
        growth_epochs: epochs per growth round (default: `epochs`).
        batch_size: training batch size.
        callbacks: Keras callbacks passed to every `fit()`; those with an
            `on_task_end(model, summary)` method (`callbacks.GrowthMonitor`)
            are also called after each `finish_task()`.
        verbose: Keras verbosity of `fit()`.
        seed: shuffling seed.

    Returns:
        A `LearnResult`.
    """
    if not isinstance(model, GrownModel):
        raise TypeError(f"learn() takes a GrownModel; received {type(model).__name__}.")
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1. Received: epochs={epochs}")
    tasks = list(stream)
    if not tasks:
        raise ValueError("learn() received an empty stream: it has no task.")
    targets = _resolve_targets(target, len(tasks))
    growth_epochs = epochs if growth_epochs is None else growth_epochs
    names = [getattr(t, "name", f"task {i}") for i, t in enumerate(tasks)]
    matrix = AccuracyMatrix(len(tasks), task_names=names)
    result = LearnResult(matrix, [], [], [], [], [], [])
    tests = [prepare(t.test, 256) for t in tasks]
    fit_kwargs = dict(callbacks=callbacks, verbose=verbose, shuffle=False)  # prepare() shuffles
    for index, task in enumerate(tasks):
        start = time.perf_counter()
        train = prepare(task.train, batch_size, shuffle=True, seed=seed + index)
        val = prepare(task.val, 256)
        goal = targets[index]
        if goal == "scratch":
            goal = scratch_reference(model, task, epochs, batch_size, seed=seed + index)
        grow_now = index == 0 or goal is None
        model.add_task(task.train, num_classes=task.num_classes, grow=grow_now and model.learnable_growth)
        model.fit(train, validation_data=val, epochs=epochs, **fit_kwargs)
        rounds = 0
        if goal is not None and model.learnable_growth:
            while rounds < max_growth_rounds and _accuracy(model, val) < goal:
                try:
                    model.grow()
                except ValueError:  # capacity spent
                    break
                model.fit(train, validation_data=val, epochs=growth_epochs, **fit_kwargs)
                rounds += 1
        summary = model.finish_task()
        for callback in callbacks or ():
            if hasattr(callback, "on_task_end"):  # e.g. callbacks.GrowthMonitor
                callback.on_task_end(model, summary)
        result.val_accuracy.append(_accuracy(model, val))
        result.time_per_task.append(time.perf_counter() - start)
        for seen in range(index + 1):
            model.select_task(seen)
            matrix.record(index, seen, _accuracy(model, tests[seen]))
        matrix.record_model_size(index, summary.size.ratio)
        matrix.record_time(index, result.time_per_task[-1])
        result.model_size.append(summary.size.ratio)
        result.targets.append(goal)
        result.growth_rounds.append(rounds)
        result.summaries.append(summary)
        result.growth.append(model.growth_report())
    return result


def _resolve_targets(target, count):
    if target is None or target == "scratch":
        return [target] * count
    if isinstance(target, (list, tuple)):
        if len(target) != count:
            raise ValueError(
                f"target has {len(target)} values for a stream of {count} tasks; "
                "give one target per task, a single number, 'scratch' or None."
            )
        return [_check_target(t) for t in target]
    return [_check_target(target)] * count


def _check_target(value):
    if value is None:
        return None
    if isinstance(value, str) or not 0.0 < float(value) <= 1.0:
        raise ValueError(
            "target must be an accuracy in (0, 1], 'scratch' or None. "
            f"Received: target={value!r}"
        )
    return float(value)


def set_seed(seed):
    """Seeds Python, NumPy, TensorFlow and Keras (`keras.utils.set_random_seed`)."""
    keras.utils.set_random_seed(int(seed))
    np.random.seed(int(seed))
