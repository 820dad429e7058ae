"""`BenchProgress`: the progress of a whole benchmark (every method x seed) on one line."""

import shutil
import sys
import time

import keras

from keras_grown.bench.results import RESULTS_FILE


def _clock(seconds):
    seconds = int(round(max(seconds, 0)))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class BenchProgress(keras.callbacks.Callback):
    """Progress of a whole benchmark on one line: method, seed, task, epoch, elapsed, remaining.

    `bench()` passes one instance to every `learn()` (so to every `fit()`);
    it counts finished epochs and tasks. The remaining time is the wall
    time per finished epoch so far times the epochs still planned (PackNet
    plans two fits per task; growth rounds beyond the plan add to it as they
    happen). On a terminal the line is redrawn in place with `\\r`; otherwise
    one plain line is written per finished task and per run.

    Args:
        planned_epochs: the epochs planned for each (method, seed) run to
            train, in order.
        file: where to write (default `sys.stderr`).
        enabled: False: count, write nothing.
    """

    def __init__(self, planned_epochs, file=None, enabled=True):
        super().__init__()
        self.planned = list(planned_epochs)
        self.file = file if file is not None else sys.stderr
        self.enabled = bool(enabled)
        isatty = getattr(self.file, "isatty", None)
        self.interactive = bool(isatty and isatty())
        self.epochs_done = 0
        self.runs_started = 0
        self._start = None
        self._run_epochs = 0
        self._run_planned = 0
        self._width = 0

    # -- the job ------------------------------------------------------------
    def start_run(self, label, seed, num_tasks):
        """A (method, seed) run begins."""
        if self._start is None:
            self._start = time.perf_counter()
        self.runs_started += 1
        self._run_planned = self.planned[self.runs_started - 1]
        self.label, self.seed, self.num_tasks = label, seed, num_tasks
        self.task, self.task_epoch, self._run_epochs = 0, 0, 0
        self._draw()

    def skip_run(self, label, seed):
        """A (method, seed) run already in results.json: nothing to train."""
        self.runs_started += 1
        self._print(f"{self._prefix(label, seed)}: already in {RESULTS_FILE}, skipped")

    def end_run(self, text):
        """A run finished: `text` says how it went."""
        self._print(f"{self._prefix(self.label, self.seed)}: {text}")

    def close(self):
        if self.enabled and self.interactive and self._width:
            self.file.write("\r" + " " * self._width + "\r")
            self.file.flush()
            self._width = 0

    # -- Keras hooks ----------------------------------------------------------
    def on_epoch_end(self, epoch, logs=None):
        self.epochs_done += 1
        self._run_epochs += 1
        self.task_epoch += 1
        self._draw()

    def on_task_end(self, model=None, summary=None):
        self.task += 1
        self.task_epoch = 0
        if not self.interactive:
            self._print(
                f"{self._prefix(self.label, self.seed)}: task {self.task}/{self.num_tasks} done"
                f" | {self._times()}"
            )
        else:
            self._draw()

    # -- the line -------------------------------------------------------------
    def _prefix(self, label, seed):
        return f"bench {self.runs_started}/{len(self.planned)} {label} seed {seed}"

    def remaining_epochs(self):
        future = sum(self.planned[self.runs_started :])
        return future + max(self._run_planned - self._run_epochs, 0)

    def remaining_seconds(self):
        """Estimated seconds left (None before the first finished epoch)."""
        if not self.epochs_done or self._start is None:
            return None
        per_epoch = (time.perf_counter() - self._start) / self.epochs_done
        return per_epoch * self.remaining_epochs()

    def _times(self):
        elapsed = time.perf_counter() - self._start if self._start is not None else 0.0
        left = self.remaining_seconds()
        total = self.epochs_done + self.remaining_epochs()
        percent = 100.0 * self.epochs_done / total if total else 100.0
        return (
            f"{percent:3.0f}% | {_clock(elapsed)} elapsed, "
            f"{'~' + _clock(left) if left is not None else '?'} left"
        )

    def _draw(self):
        if not (self.enabled and self.interactive):
            return
        total = self.epochs_done + self.remaining_epochs()
        filled = int(20 * self.epochs_done / total) if total else 20
        where = (
            f"{self._prefix(self.label, self.seed)} | task {min(self.task + 1, self.num_tasks)}/"
            f"{self.num_tasks} epoch {self.task_epoch} | "
        )
        bar = f"[{'#' * filled}{'.' * (20 - filled)}] "
        columns = shutil.get_terminal_size((120, 24)).columns - 1
        short = (
            f"{self.runs_started}/{len(self.planned)} {self.label} seed {self.seed} "
            f"task {min(self.task + 1, self.num_tasks)}/{self.num_tasks} | "
        )
        # A narrow terminal: the times matter more than the bar and the wording.
        for line in (where + bar + self._times(), where + self._times(), short + self._times()):
            if len(line) <= columns:
                break
        line = line[:columns]
        self.file.write("\r" + line.ljust(self._width))
        self.file.flush()
        self._width = len(line)

    def _print(self, text):
        if not self.enabled:
            return
        if self.interactive and self._width:
            self.file.write("\r" + " " * self._width + "\r")
            self._width = 0
        self.file.write(text + "\n")
        self.file.flush()
