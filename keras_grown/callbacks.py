"""Callbacks for GrownModel: the growth schedule, a TensorBoard monitor of growth, size and masks."""

import numbers

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from keras_grown.model import GrownModel
from keras_grown.schedule import GrowWhenNecessary  # noqa: F401  (kg.callbacks.GrowWhenNecessary)


class GrowthMonitor(keras.callbacks.Callback):
    """Writes TensorBoard summaries of how a `GrownModel` grows, epoch by epoch and task by task.

    Pass the same instance to every `fit()` of every task (`kg.learn(...,
    callbacks=[monitor])` does). The step axis is the monitor's own counter:
    it never resets, so the curves of all tasks and all growth rounds lie one
    after the other. Every epoch takes one step; every finished task takes one
    more step, where the state after `finish_task()` is written (the owned
    weights and grown channels only change there). The summaries:

    * `task`: the index (0-based) of the task being learned, or of the task
      just finished; `task/growing`: 1 while learnable sparse growth is on.
      It steps up where a new task starts.
    * `task/events` (text): "task k started", "growth switched on" and
      "masks fixed" (at the step of the first epoch after the change: a
      growth schedule's decisions inside one `fit()` show where they are
      taken), and on finishing a table of channels grown and kernels taken
      and reused per layer, with the model size.
    * `growth/<layer>`: the layer's width over its full-size width: active
      channels plus, while growing, the dormant channels the grown mask
      switches on without noise (`layer.hard_channel_on()`). After a task
      finished it equals `growth_report()[i]["growth_ratio"]`.
    * `size/model_size`: `model_size().ratio`; `size/owned_task_<k>`: the
      weights owned by task k over the weights of one full-size backbone.
      Both only change when a task finishes.
    * `l0`: the l0 term of the loss (`logs["l0"]`, else `model.l0_tracker`).
    * `selected_kernels/task_<k>` (k >= 1): how many kernels owned by earlier
      tasks task k reads: while it learns, owned kernels whose selective mask
      is on without noise; once finished, from its stored mask. Task 0 has no
      earlier task and gets no such curve.
    * `metrics/<name>`: every number in the epoch's logs (loss, accuracy,
      val_accuracy, ...) on the continuing step axis.
    * histograms (`histograms=True`), per layer and epoch:
      `scores/<layer>/selective` (selective scores of owned kernels),
      `scores/<layer>/attentive` (attentive scores of free kernels whose
      output channel is on: the others get no gradient and keep their
      initial score), `scores/<layer>/grown` (grown scores of dormant
      channels, while growing). A mask is on where its score is above 0.

    `finish_task()` is called outside `fit()`, so a callback cannot see it
    happen. `kg.learn()` calls `monitor.on_task_end(model, summary)` after
    each `finish_task()`; in a loop of your own, call it yourself. A finished
    task you did not report is written at the next `fit()` (before its first
    epoch), so only the last task of a stream needs the explicit call.

    Everything is read at the end of an epoch, eagerly, from the model's
    variables: the compiled training step is not touched.

    Args:
        log_dir: folder of the event files (created if missing; `gs://` and
            other `tf.io.gfile` paths work).
        histograms: write the mask-score histograms.

    Example:

    ```python
    monitor = kg.callbacks.GrowthMonitor("logs/growth")
    kg.learn(model, stream, epochs=3, callbacks=[monitor])
    # tensorboard --logdir logs
    ```
    """

    def __init__(self, log_dir, histograms=True):
        super().__init__()
        self.log_dir = _check_log_dir(log_dir)
        self.histograms = bool(histograms)
        self._writer = None
        self._step = 0
        self._seen_tasks = []
        self._reported_tasks = set()
        self._growing = {}

    @property
    def step(self):
        """The step the next summary is written at (epochs plus finished tasks so far)."""
        return self._step

    @property
    def writer(self):
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(self.log_dir)
        return self._writer

    def close(self):
        """Flushes and closes the event file (a later summary opens a new one)."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    # ---------------------------------------------------------------- hooks
    def on_train_begin(self, logs=None):
        model = self.model
        _check_grown_model(model, "GrowthMonitor")
        for task in self._seen_tasks:
            if task not in self._reported_tasks and task in model.finished_tasks:
                self._write_task_end(model, task, None)
        self._write_phase_events(model)

    def on_epoch_begin(self, epoch, logs=None):
        if epoch > 0:
            # A growth schedule changes the phase at an epoch's end, after
            # this monitor wrote that epoch: the change shows from the next.
            self._write_phase_events(self.model)

    def _write_phase_events(self, model):
        """"Task k started", "growth switched on/off", "masks fixed", where they happen."""
        task = model.current_task
        growing, fixed = model.growth_enabled, model.masks_fixed
        events = []
        if task not in self._seen_tasks:
            self._seen_tasks.append(task)
            events.append(f"Task {task} started (growth {'on' if growing else 'off'}).")
        else:
            was_growing, was_fixed = self._growing.get(task, (growing, fixed))
            if growing != was_growing:
                events.append(f"Task {task}: growth switched {'on' if growing else 'off'}.")
            if fixed and not was_fixed:
                events.append(f"Task {task}: masks fixed.")
        self._growing[task] = (growing, fixed)
        if events:
            with self.writer.as_default(step=self._step):
                tf.summary.text("task/events", " ".join(events))

    def on_epoch_end(self, epoch, logs=None):
        model = self.model
        logs = logs or {}
        task = model.current_task
        with self.writer.as_default(step=self._step):
            tf.summary.scalar("task", task)
            tf.summary.scalar("task/growing", int(model.growth_enabled))
            for name, value in logs.items():
                if name != "l0" and _is_number(value):
                    tf.summary.scalar(f"metrics/{name}", float(value))
            l0 = logs["l0"] if _is_number(logs.get("l0")) else model.l0_tracker.result()
            tf.summary.scalar("l0", float(l0))
            self._write_size(model)
            for layer in model.grown_layers:
                width = int(layer.hard_channel_on().sum())
                tf.summary.scalar(f"growth/{layer.name}", width / layer.units)
            if task > 0:
                selected = sum(
                    int((layer.hard_kernel_mask() & (_owner(layer) > 0)).sum())
                    for layer in model.grown_layers
                )
                tf.summary.scalar(f"selected_kernels/task_{task}", selected)
            if self.histograms:
                self._write_score_histograms(model)
        self._step += 1

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.flush()

    def on_task_end(self, model=None, summary=None):
        """Writes the state after `finish_task()`: call it right after, with its summary.

        Args:
            model: the `GrownModel` (default: the model of the last `fit()`).
            summary: the `TaskSummary` `finish_task()` returned; None: the
                last finished task, its table rebuilt from the model.

        A task already written (here or at a later `fit()`) is not written
        twice.
        """
        model = self.model if model is None else model
        _check_grown_model(model, "on_task_end()")
        task = (
            summary.task
            if summary is not None
            else (model.finished_tasks[-1] if model.finished_tasks else None)
        )
        if task is None or task not in model.finished_tasks:
            raise ValueError(
                "on_task_end() writes a finished task, but "
                + ("the model has none" if task is None else f"task {task} is not finished")
                + ". Call model.finish_task() first."
            )
        if task in self._reported_tasks:
            return
        if task not in self._seen_tasks:
            self._seen_tasks.append(task)
        self._write_task_end(model, task, summary)

    # -------------------------------------------------------------- writing
    def _write_task_end(self, model, task, summary):
        report = model.growth_report()
        with self.writer.as_default(step=self._step):
            tf.summary.scalar("task", task)
            tf.summary.scalar("task/growing", 0)
            size = self._write_size(model)
            for entry in report:
                tf.summary.scalar(f"growth/{entry['layer']}", entry["growth_ratio"])
            if task > 0:
                tf.summary.scalar(
                    f"selected_kernels/task_{task}", _selected_by_finished_task(model, task)
                )
            tf.summary.text("task/events", _task_end_text(model, task, summary, size))
        self._reported_tasks.add(task)
        self._step += 1
        self.writer.flush()

    def _write_size(self, model):
        size = model.model_size()
        tf.summary.scalar("size/model_size", size.ratio)
        for k, owned in enumerate(size.owned_by_task):
            tf.summary.scalar(f"size/owned_task_{k}", owned / size.full_size_weights)
        return size

    def _write_score_histograms(self, model):
        for layer in model.grown_layers:
            owner = _owner(layer)
            on = layer.hard_channel_on()
            dormant = ops.convert_to_numpy(layer.active) == 0
            groups = {
                "selective": (layer.selective_score, owner > 0),
                "attentive": (layer.attentive_score, (owner == 0) & on[None, :]),
            }
            if model.growth_enabled:
                groups["grown"] = (layer.grown_score, dormant)
            for name, (score, where) in groups.items():
                if where.any():
                    values = ops.convert_to_numpy(score)[where]
                    tf.summary.histogram(f"scores/{layer.name}/{name}", values)


def _check_log_dir(log_dir):
    path = str(log_dir)
    if not path:
        raise ValueError("GrowthMonitor needs a log_dir folder; received an empty path.")
    if tf.io.gfile.exists(path) and not tf.io.gfile.isdir(path):
        raise ValueError(
            f"GrowthMonitor writes event files into the folder log_dir={path!r}, but that "
            "path is an existing file. Pass a folder path (new or existing)."
        )
    try:
        tf.io.gfile.makedirs(path)
    except (tf.errors.OpError, OSError) as error:
        raise ValueError(
            f"GrowthMonitor cannot create the folder log_dir={path!r}: {error}. "
            "Pass a writable folder path."
        ) from error
    return path


def _check_grown_model(model, what):
    if not isinstance(model, GrownModel):
        raise TypeError(f"{what} monitors a GrownModel; received {type(model).__name__}.")


def _is_number(value):
    if isinstance(value, bool):
        return False
    if isinstance(value, numbers.Number):
        return True
    return np.ndim(value) == 0 and np.issubdtype(np.asarray(value).dtype, np.number)


def _owner(layer):
    return ops.convert_to_numpy(layer.owner)


def _selected_by_finished_task(model, task):
    """Kernels owned by earlier tasks that finished task `task` reads (its stored mask)."""
    selected = 0
    for layer in model.grown_layers:
        owner = _owner(layer)
        selected += int((layer.task_kernel_mask(task) & (owner > 0) & (owner != task + 1)).sum())
    return selected


def _task_end_text(model, task, summary, size):
    lines = [f"Task {task} finished. Model size {size}.", ""]
    if summary is not None:
        lines += [
            "| layer | channels grown | channels on | kernels taken | kernels reused |",
            "| --- | ---: | ---: | ---: | ---: |",
        ]
        for name, entry in summary.layers.items():
            lines.append(
                f"| {name} | {entry['channels_grown']} | {entry['channels_on']} | "
                f"{entry['kernels_taken']} | {entry['kernels_reused']} |"
            )
    else:
        lines += [
            "| layer | active channels | full-size width | kernels owned by the task |",
            "| --- | ---: | ---: | ---: |",
        ]
        for entry in model.growth_report():
            lines.append(
                f"| {entry['layer']} | {entry['active_channels']} | {entry['full_width']} | "
                f"{entry['kernels_owned_by_task'][task]} |"
            )
    return "\n".join(lines)
