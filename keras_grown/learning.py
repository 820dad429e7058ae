"""`learn()`: the paper's two-stage loop over a whole task stream, in one call."""

import dataclasses
import json
import time
import warnings
import weakref

import keras
import numpy as np

from keras_grown import methods, validation
from keras_grown._checks import check_count, is_integer
from keras_grown.evaluation import AccuracyMatrix
from keras_grown.model import GrownModel
from keras_grown.sizing import ModelSize, TaskSummary
from keras_grown.transaction import learning_task


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


# The datasets `_cache()` made: `prepare()` does not cache them a second time.
_CACHED = weakref.WeakSet()


def _cache(dataset):
    """`dataset.cache()`, once: a dataset this module already cached comes back as it is."""
    if dataset not in _CACHED:
        dataset = dataset.cache()
        _CACHED.add(dataset)
    return dataset


def _read_once(task):
    """The task with its training and validation sets cached in memory.

    `add_task()` reads the training set once to check it; with the cache that
    pass also fills the memory the epochs, the Scratch reference and EWC's
    Fisher pass then read, instead of running the task's input pipeline
    again for each of them. The elements and their order are unchanged.
    """
    if not dataclasses.is_dataclass(task):
        return task
    return dataclasses.replace(task, train=_cache(task.train), val=_cache(task.val))


def prepare(dataset, batch_size, shuffle=False, seed=0):
    """Caches, (shuffles), batches and prefetches an unbatched task dataset."""
    import tensorflow as tf

    dataset = _cache(dataset)
    if shuffle:
        dataset = dataset.shuffle(4096, seed=seed, reshuffle_each_iteration=True)
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def _full_size_twin(model):
    """A GrownModel of the same backbone with every mask off: a plain full-size network."""
    config = model.get_config()
    config.update(
        name="scratch_reference", seed_ratio=1.0, capacity=1.0, selective_mask=False,
        attentive_mask=False, learnable_growth=False, tasks=[], growth_enabled=False,
        selected_task=None, growth_schedule=None, manual_control=False,
    )
    # Trained under the same tf.distribute strategy as the model it stands for.
    with model.distribute_strategy.scope():
        twin = GrownModel.from_config(config)
        if model.controller.compiled_with() is not None:
            twin.compile(**model.controller.compiled_with())
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
        task = _read_once(task)
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


@dataclasses.dataclass
class TaskRun:
    """What a method needs to train one task: the prepared data and the fit settings."""

    task: object
    train: object
    val: object
    epochs: int
    growth_epochs: int
    max_growth_rounds: int
    fit_kwargs: dict

    def fit(self, model, epochs, schedule=None):
        """`model.fit()` on the task; `schedule` (a `GrowWhenNecessary`) joins the callbacks."""
        kwargs = dict(self.fit_kwargs)
        if schedule is not None:
            kwargs["callbacks"] = list(kwargs.get("callbacks") or []) + [schedule]
        return model.fit(self.train, validation_data=self.val, epochs=epochs, **kwargs)

    def val_accuracy(self, model):
        return _accuracy(model, self.val)


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
    checkpoint_dir=None,
    resume=False,
):
    """Runs a continual-learning method over every task of a stream and measures it.

    `model` is a `GrownModel` (trained with GROWN, using its own settings)
    or any method of `keras_grown.methods` (`GROWN()`, `PackNet()`,
    `Piggyback()`, `FineTune()`, `Scratch()`, `EWC()`, ...), which builds
    its model(s) from the stream's input shape. Every method goes through
    the same loop and is measured the same way.

    For GROWN, per task: `add_task`, **one** `fit(epochs=epochs,
    validation_data=task.val)` and `finish_task()`, the loop a user writes
    (README's quickstart). Inside that fit the growth schedule
    (`kg.callbacks.GrowWhenNecessary`, with the model's `growth_schedule`
    settings) takes GROWN's decisions at epoch boundaries: pick and reuse
    (growth on from the start for the first task), grow when necessary (at
    most `max_growth_rounds` rounds, each ended when validation accuracy
    stops improving), and the last epochs under the fixed hard masks
    (`GROWN(fixed_mask_epochs=)`; 40 % of the epochs by default, 2 of 5). What
    "necessary" means is `target`:

    * None (the default): the task underfits, i.e. its training accuracy at
      the end of a phase is below the schedule's `fit_accuracy` (0.98); the
      l0 penalty then decides how much it grows. Costs nothing beyond the
      fit (FIDELITY.md §12 measures it).
    * a number in (0, 1], or a list of numbers (one per task): validation
      accuracy below it.
    * `"scratch"` (the paper's): a full-size plain network trained on the
      task first (`scratch_reference()`, about one more network's
      training per task) sets the number.

    then the test accuracy on every task learned so far.

    Args:
        model: a `GrownModel` (compiled or not) or a `keras_grown.methods`
            method.
        stream: a sequence of tasks (`keras_grown.datasets` streams), each
            with `train`, `val`, `test` (unbatched) and `num_classes`.
        epochs: epochs of each task's `fit()` (every method trains each task
            for this many epochs per stage; GROWN in one stage).
        target: see above (used by GROWN; other methods ignore it).
        max_growth_rounds: bound on the number of growth rounds per task.
        growth_epochs: deprecated and ignored (a growth round now ends when
            validation accuracy stops improving, inside the task's one fit).
        batch_size: training batch size.
        callbacks: Keras callbacks passed to every `fit()`. A callback with
            an `on_task_end(model, summary)` method is also called after
            every `finish_task()`.
        verbose: Keras verbosity of `fit()`.
        seed: seed of the run. Task t shuffles with `seed + t` and starts
            with `keras.utils.set_random_seed(seed + t)` (new heads, scratch
            references), so a resumed run repeats an uninterrupted one.
        checkpoint_dir: write an atomic checkpoint there after every
            finished task (see `keras_grown.checkpoint`).
        resume: continue from the newest checkpoint in `checkpoint_dir`
            (start from the beginning when there is none). The model(s)
            come from the checkpoint: with a `GrownModel` argument, the
            trained model is `result.model`, not the object passed in.

    Returns:
        A `LearnResult` (its `method` is the method's name and `model` the
        trained model).
    """
    method = methods.as_method(model)
    if not is_integer(epochs, 1):
        raise ValueError(f"epochs must be >= 1 (an integer). Received: epochs={epochs!r}")
    tasks = list(stream)
    if not tasks:
        raise ValueError("learn() received an empty stream: it has no task.")
    targets = _resolve_targets(target, len(tasks))
    check_count("batch_size", batch_size, 1)
    check_count("max_growth_rounds", max_growth_rounds, 0)
    if growth_epochs is not None:
        check_count("growth_epochs", growth_epochs, 1)
        warnings.warn(
            "learn(growth_epochs=) is ignored: GROWN's growth rounds end inside the task's "
            "one fit() when validation accuracy stops improving (GrowWhenNecessary).",
            DeprecationWarning, stacklevel=2,
        )
    _check_stream(model, tasks)
    growth_epochs = epochs if growth_epochs is None else growth_epochs
    names = [getattr(t, "name", f"task {i}") for i, t in enumerate(tasks)]
    matrix = AccuracyMatrix(len(tasks), task_names=names)
    result = LearnResult(matrix, [], [], [], [], [], [])
    result.method = method.name
    tests = [prepare(t.test, 256) for t in tasks]
    fit_kwargs = dict(callbacks=callbacks, verbose=verbose, shuffle=False)  # prepare() shuffles
    method.start(_input_shape(tasks[0]))
    if resume and checkpoint_dir is None:
        raise ValueError("learn(resume=True) needs checkpoint_dir= (where the checkpoints are).")
    run_settings = {
        "method": method.config(), "task_names": names, "epochs": epochs,
        "growth_epochs": growth_epochs, "max_growth_rounds": max_growth_rounds,
        "batch_size": batch_size, "seed": seed,
        "target": target if target is None or isinstance(target, (str, float, int)) else list(target),
    }
    first = 0
    if resume:
        first = _resume(checkpoint_dir, method, run_settings, result)
    for index, task in enumerate(tasks):
        if index < first:
            continue
        # All or nothing per task: a failure leaves the model(s) as after the
        # previous task (the state of the last checkpoint) and is raised.
        with learning_task(method):
            keras.utils.set_random_seed(int(seed) + index)
            start = time.perf_counter()
            task = _read_once(task)
            run = TaskRun(
                task, prepare(task.train, batch_size, shuffle=True, seed=seed + index),
                prepare(task.val, 256), epochs, growth_epochs, max_growth_rounds, fit_kwargs,
            )
            learner = method.model_for_task(index)
            goal = targets[index] if method.uses_target else None
            if goal == "scratch":
                goal = scratch_reference(learner, task, epochs, batch_size, seed=seed + index)
            rounds = method.train_task(run, learner, index, task, goal)
            summary = learner.finish_task()
            method.end_task(run, learner, index, task)
            result.val_accuracy.append(run.val_accuracy(learner))
            result.time_per_task.append(time.perf_counter() - start)
            for callback in callbacks or ():
                if hasattr(callback, "on_task_end"):
                    callback.on_task_end(learner, summary)
            for seen in range(index + 1):
                evaluated, local = method.evaluation_model(seen)
                evaluated.select_task(local)
                matrix.record(index, seen, _accuracy(evaluated, tests[seen]))
            size = method.model_size()
            matrix.record_model_size(index, size)
            matrix.record_time(index, result.time_per_task[-1])
            result.model_size.append(size)
            result.targets.append(goal)
            result.growth_rounds.append(rounds)
            result.summaries.append(summary)
            result.growth.append(learner.growth_report())
            if checkpoint_dir is not None:
                from keras_grown import checkpoint

                checkpoint.write_checkpoint(
                    checkpoint_dir, index + 1, method.models,
                    {"settings": run_settings, "result": _result_state(result)},
                    method.state_arrays(),
                )
    result.model = method.model
    return result


def _result_state(result):
    return {
        "accuracy": result.accuracy.to_dict(),
        "model_size": list(result.model_size),
        "time_per_task": list(result.time_per_task),
        "targets": list(result.targets),
        "growth_rounds": list(result.growth_rounds),
        "val_accuracy": list(result.val_accuracy),
        "summaries": [
            {"task": s.task, "layers": s.layers, "size": dataclasses.asdict(s.size)}
            for s in result.summaries
        ],
        "growth": list(result.growth),
    }


def _resume(checkpoint_dir, method, run_settings, result):
    """Restores the method and `result` from the newest checkpoint; returns the next task."""
    from keras_grown import checkpoint

    loaded = checkpoint.load_checkpoint(checkpoint_dir)
    if loaded is None:
        return 0
    state, models, method_state = loaded
    saved = json.loads(json.dumps(state["settings"], default=str))
    wanted = json.loads(json.dumps(run_settings, default=str))
    different = sorted(k for k in wanted if saved.get(k) != wanted[k])
    if different:
        raise checkpoint.CheckpointError(
            f"The checkpoint in {checkpoint_dir} is from another run: its "
            f"{', '.join(different)} differ from this call's. Use the same settings, or "
            "another checkpoint_dir to start a new run."
        )
    method.restore(models, method_state)
    saved_result = state["result"]
    matrix = AccuracyMatrix.from_dict(saved_result["accuracy"])
    result.accuracy._values[...] = matrix._values
    for i, ratio in enumerate(saved_result["model_size"]):
        result.accuracy.record_model_size(i, ratio)
    for i, seconds in enumerate(saved_result["time_per_task"]):
        result.accuracy.record_time(i, seconds)
    for key in ("model_size", "time_per_task", "targets", "growth_rounds", "val_accuracy",
                "growth"):
        getattr(result, key).extend(saved_result[key])
    for summary in saved_result["summaries"]:
        size = dict(summary["size"], owned_by_task=tuple(summary["size"]["owned_by_task"]))
        result.summaries.append(TaskSummary(summary["task"], summary["layers"], ModelSize(**size)))
    return int(state["finished_tasks"])


def _input_shape(task):
    shape = getattr(task, "input_shape", None)
    if shape is None:
        shape = tuple(task.train.element_spec[0].shape)
    return tuple(int(d) for d in shape)


def _check_stream(model, tasks):
    """Refuses, before anything is trained, a stream that would fail half-way.

    Every task needs unbatched tf.data `train`, `val` and `test` datasets of
    (image, label) pairs that a `GrownModel` (or the model a method builds
    from the first task) can read, and a valid `num_classes`.
    """
    import tensorflow as tf

    if isinstance(model, GrownModel) and model.current_task is not None:
        raise ValueError(
            f"learn() starts new tasks, but task {model.current_task} of the model is not "
            "finished. Call model.finish_task() first."
        )
    first = None
    for index, task in enumerate(tasks):
        where = f"learn(): task {index} ({getattr(task, 'name', index)})"
        for split in ("train", "val", "test"):
            data = getattr(task, split, None)
            if not isinstance(data, tf.data.Dataset):
                raise ValueError(
                    f"{where} has no {split} dataset (received {type(data).__name__}). Every "
                    "task needs unbatched tf.data datasets train, val and test, as the "
                    "tasks of keras_grown.datasets have."
                )
            spec = data.element_spec
            if isinstance(model, GrownModel):
                validation.check_task_spec(model.image_shape, spec, where=f"{where}.{split}")
                continue
            shape = tuple(spec[0].shape) if isinstance(spec, tuple) and spec else None
            first = shape if first is None else first
            if shape != first:
                raise ValueError(
                    f"{where}.{split}: every task of a stream must have images of one shape "
                    f"(the first task's: {first}); received {shape}. Resize the images first."
                )
        num_classes = getattr(task, "num_classes", None)
        if num_classes is not None and not is_integer(num_classes, 2):
            raise ValueError(
                f"{where}: num_classes must be an integer >= 2 (or None to infer it). "
                f"Received: num_classes={num_classes!r}"
            )


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


def set_seed(seed, deterministic=False):
    """Seeds Python, NumPy, TensorFlow and Keras (`keras.utils.set_random_seed`).

    With `deterministic=True` it also calls
    `tf.config.experimental.enable_op_determinism()`, so that two runs with
    the same seed give bitwise identical weights and accuracy matrices on
    any device (on GPU some kernels are otherwise nondeterministic). It is a
    process-wide switch that can make training slower, and ops with no
    deterministic kernel then raise an error, so it is off by default.
    """
    keras.utils.set_random_seed(int(seed))
    np.random.seed(int(seed))
    if deterministic:
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
