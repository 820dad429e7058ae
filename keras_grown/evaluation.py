"""Continual-learning metrics: the accuracy matrix and what is read from it.

`AccuracyMatrix` holds `R[i, j]`, the accuracy on task `j` measured right
after learning task `i` (NaN until recorded). From its filled rows:

* **average accuracy** (ACC): the mean of the last filled row over the tasks
  learned so far, `mean_{j <= T-1} R[T-1, j]`;
* **step average accuracy**: `a_i = mean_{j <= i} R[i, j]` for each step;
* **backward transfer** (BWT, Lopez-Paz & Ranzato 2017):
  `mean_{j < T-1} (R[T-1, j] - R[j, j])`; negative means forgetting, and
  GROWN's is exactly 0 by construction;
* **forgetting** (Chaudhry et al. 2018) of task `j < T-1`:
  `max_{l in [j, T-2]} R[l, j] - R[T-1, j]`, and its mean.

`T` is the number of filled rows: row `i` is filled once `R[i, j]` is
recorded for every `j <= i`; rows count from the top, so metrics can be
read while a stream is still being learned.

The matrix also keeps the model-size curve (`model_size`: the model-size
ratio after each task, the paper's "0.5x ... 1.2x") and the wall time per
task, and writes Markdown, CSV, JSON and PNG plots.
"""

import csv
import json
import math
from pathlib import Path

import numpy as np

from keras_grown._checks import is_integer


def _check_index(name, value, limit):
    if not (is_integer(value) and 0 <= value < limit):
        raise IndexError(
            f"{name} must be a task index in 0..{limit - 1} (the matrix has {limit} tasks). "
            f"Received: {name}={value!r}"
        )
    return int(value)


def _check_accuracy(value, where):
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise TypeError(
            f"{where}: accuracy must be a number in [0, 1]. Received: {value!r}"
        ) from None
    if not math.isfinite(number) or not 0.0 <= number <= 1.0:
        hint = " It looks like a percentage: divide by 100." if 1.0 < number <= 100.0 else ""
        raise ValueError(
            f"{where}: accuracy must be a fraction in [0, 1]. Received: {value!r}.{hint}"
        )
    return number


def _check_nonnegative(value, what):
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{what} must be a number. Received: {value!r}") from None
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"{what} must be a finite number >= 0. Received: {value!r}")
    return number


def _set_at(values, index, number):
    values.extend([None] * (index + 1 - len(values)))
    values[index] = number


def _nan_to_none(value):
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


class AccuracyMatrix:
    """Accuracy on every task after every task: `R[i, j]`, and its metrics.

    Args:
        num_tasks: number of tasks of the stream.
        task_names: one name per task (default `"task_0"`, `"task_1"`, ...);
            they label the columns of tables and plots.

    Attributes:
        values: a `(num_tasks, num_tasks)` float array; `values[i, j]` is
            the accuracy (a fraction in [0, 1]) on task `j` after learning
            task `i`, NaN where nothing was recorded. Read-only view.
        task_names: the task names.
        model_size: list, the model-size ratio after each task (None where
            not recorded).
        time_per_task: list, wall seconds spent on each task (None where
            not recorded).

    Example:

    ```pycon
    >>> matrix = AccuracyMatrix(3)
    >>> matrix.record_row(0, [0.90])
    >>> matrix.record_row(1, [0.85, 0.80])
    >>> matrix.record_row(2, [0.80, 0.75, 0.70])
    >>> round(matrix.average_accuracy(), 4)   # (0.80 + 0.75 + 0.70) / 3
    0.75
    >>> round(matrix.backward_transfer(), 4)  # ((0.80 - 0.90) + (0.75 - 0.80)) / 2
    -0.075
    >>> [round(f, 4) for f in matrix.forgetting()]  # [0.90 - 0.80, 0.80 - 0.75]
    [0.1, 0.05]
    >>> print(matrix.to_markdown())
    ```
    """

    def __init__(self, num_tasks, task_names=None):
        if (
            isinstance(num_tasks, bool)
            or not isinstance(num_tasks, (int, np.integer))
            or num_tasks < 1
        ):
            raise ValueError(
                f"num_tasks must be a positive integer. Received: num_tasks={num_tasks!r}"
            )
        num_tasks = int(num_tasks)
        if task_names is None:
            task_names = [f"task_{j}" for j in range(num_tasks)]
        task_names = [str(name) for name in task_names]
        if len(task_names) != num_tasks:
            raise ValueError(
                f"task_names must have one name per task: expected {num_tasks}, "
                f"received {len(task_names)} ({task_names})."
            )
        self.num_tasks = num_tasks
        self.task_names = task_names
        self._values = np.full((num_tasks, num_tasks), np.nan)
        self.model_size = []
        self.time_per_task = []

    # ------------------------------------------------------------------ filling

    @property
    def values(self):
        view = self._values.view()
        view.setflags(write=False)
        return view

    def record(self, i, j, accuracy):
        """Records `R[i, j]`: the accuracy on task `j` after learning task `i`.

        Args:
            i: the task just learned (row), in `0..num_tasks-1`.
            j: the task evaluated (column), in `0..num_tasks-1`. Columns
                `j > i` may be recorded (e.g. for forward transfer) but no
                metric reads them.
            accuracy: a fraction in [0, 1] (not a percentage).
        """
        i = _check_index("i", i, self.num_tasks)
        j = _check_index("j", j, self.num_tasks)
        self._values[i, j] = _check_accuracy(accuracy, f"record({i}, {j}, ...)")

    def record_row(self, i, accuracies):
        """Records row `i`: the accuracies on tasks `0, 1, ...` after task `i`.

        Args:
            i: the task just learned.
            accuracies: `i + 1` values (tasks `0..i`) or up to `num_tasks`
                values (later tasks too). Nothing is recorded if one is
                invalid.
        """
        i = _check_index("i", i, self.num_tasks)
        accuracies = list(np.asarray(accuracies, dtype=object).reshape(-1))
        if not i + 1 <= len(accuracies) <= self.num_tasks:
            raise ValueError(
                f"record_row({i}, ...) needs the accuracies on tasks 0..{i}: between {i + 1} and "
                f"{self.num_tasks} values. Received {len(accuracies)}."
            )
        checked = [
            _check_accuracy(a, f"record_row({i}, ...)[{j}]") for j, a in enumerate(accuracies)
        ]
        self._values[i, : len(checked)] = checked

    def record_model_size(self, i, ratio):
        """Records the model-size ratio after task `i` (e.g. 1.05 for 1.05x)."""
        i = _check_index("i", i, self.num_tasks)
        _set_at(self.model_size, i, _check_nonnegative(ratio, f"model size after task {i}"))

    def record_time(self, i, seconds):
        """Records the wall seconds spent learning task `i`."""
        i = _check_index("i", i, self.num_tasks)
        _set_at(self.time_per_task, i, _check_nonnegative(seconds, f"time of task {i}"))

    @property
    def num_filled(self):
        """T: the number of leading rows `i` with `R[i, 0..i]` all recorded."""
        count = 0
        for i in range(self.num_tasks):
            if np.isnan(self._values[i, : i + 1]).any():
                break
            count += 1
        return count

    def _filled(self, what):
        count = self.num_filled
        if count == 0:
            raise ValueError(
                f"{what} needs at least one filled row, and row 0 (accuracy on task 0 after "
                "task 0) is not recorded yet. Call record(0, 0, accuracy) first."
            )
        return count, self._values[:count, :count]

    # ------------------------------------------------------------------ metrics

    def average_accuracy(self):
        """ACC: mean accuracy over tasks `0..T-1` after the last filled row `T-1`."""
        count, r = self._filled("average_accuracy()")
        return float(np.mean(r[count - 1, :count]))

    def step_average_accuracy(self):
        """`[a_0, ..., a_{T-1}]` with `a_i = mean_{j <= i} R[i, j]`."""
        count, r = self._filled("step_average_accuracy()")
        return [float(np.mean(r[i, : i + 1])) for i in range(count)]

    def backward_transfer(self):
        """BWT: `mean_{j < T-1} (R[T-1, j] - R[j, j])`; 0.0 with one filled row."""
        count, r = self._filled("backward_transfer()")
        if count == 1:
            return 0.0
        return float(np.mean([r[count - 1, j] - r[j, j] for j in range(count - 1)]))

    def forgetting(self):
        """Per task `j < T-1`: `max_{l in [j, T-2]} R[l, j] - R[T-1, j]`.

        Returns:
            A list of `T - 1` floats (empty with one filled row).
        """
        count, r = self._filled("forgetting()")
        return [float(np.max(r[j : count - 1, j]) - r[count - 1, j]) for j in range(count - 1)]

    def average_forgetting(self):
        """The mean of `forgetting()`; 0.0 with one filled row."""
        values = self.forgetting()
        return float(np.mean(values)) if values else 0.0

    def summary(self):
        """The metrics as a dict (all None while no row is filled)."""
        if self.num_filled == 0:
            return dict(
                tasks_learned=0, average_accuracy=None, backward_transfer=None,
                average_forgetting=None, step_average_accuracy=[], forgetting=[],
            )  # fmt: skip
        return dict(
            tasks_learned=self.num_filled,
            average_accuracy=self.average_accuracy(),
            backward_transfer=self.backward_transfer(),
            average_forgetting=self.average_forgetting(),
            step_average_accuracy=self.step_average_accuracy(),
            forgetting=self.forgetting(),
        )

    # ------------------------------------------------------------------ output

    def to_markdown(self):
        """The matrix as a Markdown table (percentages) plus a summary line.

        Rows are "after task i", columns the task names; cells not recorded
        are blank. The summary line gives average accuracy, BWT and average
        forgetting in percent (points), and the last model size when known.
        """
        header = "| | " + " | ".join(self.task_names) + " |"
        rule = "| --- |" + " ---: |" * self.num_tasks
        lines = [header, rule]
        for i in range(self.num_tasks):
            cells = ["" if np.isnan(v) else f"{100 * v:.2f}" for v in self._values[i]]
            lines.append(f"| after task {i} | " + " | ".join(cells) + " |")
        summary = self.summary()
        if summary["tasks_learned"] == 0:
            lines.append("\nNo task learned yet.")
        else:
            text = (
                f"\nAfter {summary['tasks_learned']} of {self.num_tasks} tasks: "
                f"average accuracy {100 * summary['average_accuracy']:.2f} %, "
                f"BWT {100 * summary['backward_transfer']:.2f} %, "
                f"average forgetting {100 * summary['average_forgetting']:.2f} %"
            )
            sizes = [s for s in self.model_size if s is not None]
            if sizes:
                text += f", model size {sizes[-1]:.2f}x"
            lines.append(text + ".")
        return "\n".join(lines)

    def to_dict(self):
        """A JSON-ready dict: the matrix (None for unrecorded), names, curves, summary."""
        return {
            "num_tasks": self.num_tasks,
            "task_names": list(self.task_names),
            "accuracy": [[_nan_to_none(float(v)) for v in row] for row in self._values],
            "model_size": list(self.model_size),
            "time_per_task": list(self.time_per_task),
            "summary": self.summary(),
        }

    @classmethod
    def from_dict(cls, config):
        """Rebuilds a matrix from `to_dict()` output (its `summary` is ignored)."""
        for key in ("num_tasks", "accuracy"):
            if key not in config:
                raise ValueError(
                    f"from_dict() needs the output of AccuracyMatrix.to_dict(); the key {key!r} "
                    f"is missing. Received keys: {sorted(config)}."
                )
        matrix = cls(config["num_tasks"], task_names=config.get("task_names"))
        rows = config["accuracy"]
        if len(rows) != matrix.num_tasks or any(len(row) != matrix.num_tasks for row in rows):
            raise ValueError(
                f"from_dict(): 'accuracy' must be a {matrix.num_tasks}x{matrix.num_tasks} "
                "nested list (None for unrecorded cells)."
            )
        for i, row in enumerate(rows):
            for j, value in enumerate(row):
                if value is not None:
                    matrix.record(i, j, value)
        for i, ratio in enumerate(config.get("model_size") or []):
            if ratio is not None:
                matrix.record_model_size(i, ratio)
        for i, seconds in enumerate(config.get("time_per_task") or []):
            if seconds is not None:
                matrix.record_time(i, seconds)
        return matrix

    @classmethod
    def from_values(cls, values, task_names=None):
        """A matrix from a square array-like (NaN or None: not recorded)."""
        array = np.array(values, dtype=float)
        if array.ndim != 2 or array.shape[0] != array.shape[1]:
            raise ValueError(f"from_values() needs a square matrix. Received shape {array.shape}.")
        matrix = cls(array.shape[0], task_names=task_names)
        for (i, j), value in np.ndenumerate(array):
            if not np.isnan(value):
                matrix.record(i, j, value)
        return matrix

    def to_json(self, path):
        """Writes `to_dict()` as JSON to `path`; returns the path."""
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    @classmethod
    def from_json(cls, path):
        """Reads a matrix written by `to_json()`."""
        return cls.from_dict(json.loads(Path(path).read_text()))

    def to_csv(self, path):
        """Writes the matrix as CSV to `path`; returns the path.

        One row per "after task i": columns `after_task`, one column per
        task name (accuracy as a fraction, blank if not recorded),
        `model_size` and `time_per_task`. `from_csv()` reads it back.
        """
        path = Path(path)
        with path.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["after_task", *self.task_names, "model_size", "time_per_task"])
            for i in range(self.num_tasks):
                extras = [
                    "" if i >= len(curve) or curve[i] is None else repr(float(curve[i]))
                    for curve in (self.model_size, self.time_per_task)
                ]
                cells = ["" if np.isnan(v) else repr(float(v)) for v in self._values[i]]
                writer.writerow([i, *cells, *extras])
        return path

    @classmethod
    def from_csv(cls, path):
        """Reads a matrix written by `to_csv()`."""
        with Path(path).open(newline="") as handle:
            rows = list(csv.reader(handle))
        header = rows[0] if rows else []
        if (
            len(header) < 4
            or header[0] != "after_task"
            or header[-2:] != ["model_size", "time_per_task"]
        ):
            raise ValueError(
                f"{path} is not a CSV written by AccuracyMatrix.to_csv(): expected the header "
                f"after_task, <task names>, model_size, time_per_task. Received: {header}."
            )
        matrix = cls(len(header) - 3, task_names=header[1:-2])
        for i, row in enumerate(rows[1:]):
            *cells, size, seconds = row[1:]
            for j, cell in enumerate(cells):
                if cell:
                    matrix.record(i, j, float(cell))
            if size:
                matrix.record_model_size(i, float(size))
            if seconds:
                matrix.record_time(i, float(seconds))
        return matrix

    def plot_heatmap(self, path, title="Accuracy after each task (%)"):
        """Writes a PNG heatmap of the matrix (cells annotated in %); returns the path."""
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        size = 1.0 + 0.7 * self.num_tasks
        figure = Figure(figsize=(size + 1.5, size))
        FigureCanvasAgg(figure)
        axes = figure.add_subplot()
        data = np.ma.masked_invalid(100 * self._values)
        image = axes.imshow(data, vmin=0, vmax=100, cmap="viridis")
        figure.colorbar(image, ax=axes, label="accuracy (%)")
        if self.num_tasks <= 20:
            for (i, j), value in np.ndenumerate(self._values):
                if not np.isnan(value):
                    axes.text(j, i, f"{100 * value:.1f}", ha="center", va="center",
                              color="white" if value < 0.6 else "black", fontsize=8)  # fmt: skip
        axes.set_xticks(range(self.num_tasks), self.task_names, rotation=45, ha="right")
        axes.set_yticks(range(self.num_tasks), [f"after {i}" for i in range(self.num_tasks)])
        axes.set_xlabel("evaluated on")
        axes.set_ylabel("after learning task")
        axes.set_title(title)
        figure.tight_layout()
        figure.savefig(path, format="png")
        return Path(path)

    def plot_curves(self, path, title="Continual learning curves"):
        """Writes a PNG of the step average accuracy (and model size) vs task.

        The model size is drawn on a second axis when it was recorded.
        Returns the path.
        """
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        steps = self.step_average_accuracy()
        figure = Figure(figsize=(6, 4))
        FigureCanvasAgg(figure)
        axes = figure.add_subplot()
        tasks = np.arange(1, len(steps) + 1)
        axes.plot(tasks, [100 * a for a in steps], marker="o", color="tab:blue",
                  label="average accuracy")  # fmt: skip
        axes.set_xlabel("tasks learned")
        axes.set_ylabel("average accuracy (%)", color="tab:blue")
        axes.set_xticks(np.arange(1, self.num_tasks + 1))
        axes.set_xlim(0.5, self.num_tasks + 0.5)
        sizes = [(i + 1, s) for i, s in enumerate(self.model_size) if s is not None]
        if sizes:
            size_axes = axes.twinx()
            size_axes.plot(*zip(*sizes), marker="s", color="tab:orange", label="model size")
            size_axes.set_ylabel("model size (x full-size backbone)", color="tab:orange")
            size_axes.set_ylim(bottom=0)
        axes.set_title(title)
        figure.tight_layout()
        figure.savefig(path, format="png")
        return Path(path)

    def __repr__(self):
        summary = self.summary()
        if not summary["tasks_learned"]:
            return f"AccuracyMatrix(num_tasks={self.num_tasks}, no task learned yet)"
        return (
            f"AccuracyMatrix(num_tasks={self.num_tasks}, tasks_learned={summary['tasks_learned']}, "
            f"average_accuracy={summary['average_accuracy']:.4f}, "
            f"backward_transfer={summary['backward_transfer']:.4f})"
        )


__all__ = ["AccuracyMatrix"]
