"""`bench()`: every method x seed on one task stream, and the paper-style report.

`bench()` runs each method of `keras_grown.methods` on the same stream with
each seed (the stream, the weights and the shuffling all follow the seed),
through the same `learn()` loop, and writes to its `out` folder:

* `results.json`: every run (method, label, settings, seed, accuracy matrix,
  model size, time and validation accuracy per task) with the versions, the
  machine, the command lines, the stream and its arguments. It is rewritten
  atomically after every finished (method, seed) pair, so a run that stops
  half-way loses at most the pair it was on, and `resume=True` skips the
  pairs it already holds.
* `RESULTS.md`: the tables in the form of the paper's Table 1 (average
  accuracy mean ± std over seeds, BWT, model size, training time), Table 3
  (model size after each task) and Table 5 (the ablation Grow, +Sel-mask,
  +LSG, +Re-train: the rows that were run), the mean accuracy matrices and
  one row per run.
* PNG plots: `average_accuracy.png` (average accuracy after each task per
  method), `model_size.png` (model size after each task per method) and one
  accuracy-matrix heat map per method (`accuracy_<method>.png`, mean over
  seeds).

`report(out)` rebuilds `RESULTS.md` and the plots from `results.json` alone.
`add_bench_command()` / `add_report_command()` add `keras-grown bench` and
`keras-grown report` to the command line.
"""

import argparse
import inspect
import json
import math
import os
import platform
import shlex
import shutil
import sys
import time
import warnings
from pathlib import Path

import keras
import numpy as np

from keras_grown import datasets as datasets_lib
from keras_grown import methods as methods_lib
from keras_grown.evaluation import AccuracyMatrix
from keras_grown.learning import learn, set_seed
from keras_grown.model import GrownModel
from keras_grown.version import __version__

RESULTS_FILE = "results.json"
REPORT_FILE = "RESULTS.md"
RESULTS_FORMAT = "keras-grown bench results"
RESULTS_FORMAT_VERSION = 1

# The methods of the paper's Table 1 that `keras-grown bench` runs by default.
DEFAULT_METHODS = ("grown", "grow_only", "piggyback", "packnet", "finetune", "scratch", "ewc")

# The paper's Table 5: each row adds one component to the one above it.
# (method name, row name, (selective mask, learnable sparse growth, re-train released)).
ABLATION = (
    ("grow", "Grow", (False, False, False)),
    ("grow_sel", "+Sel-mask", (True, False, False)),
    ("grow_sel_lsg", "+LSG", (True, True, False)),
    ("grown", "+Re-train", (True, True, True)),
)


# ---------------------------------------------------------------------------
# Arguments
# ---------------------------------------------------------------------------


def parse_methods(methods):
    """Method names from `"grown,packnet"` or a list; each known, none twice."""
    if isinstance(methods, str):
        names = [name.strip() for name in methods.split(",") if name.strip()]
    elif isinstance(methods, (list, tuple)):
        names = list(methods)
    else:
        raise ValueError(
            "methods must be a list of method names or a comma-separated string such as "
            f"'grown,finetune'. Received: {methods!r}"
        )
    if not names:
        raise ValueError(
            f"methods is empty. Give at least one of: {', '.join(methods_lib.METHODS)}."
        )
    for name in names:
        if not isinstance(name, str) or name not in methods_lib.METHODS:
            raise ValueError(
                f"Unknown method {name!r} in methods. Choose from: "
                f"{', '.join(methods_lib.METHODS)}."
            )
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"methods names {', '.join(repeated)} more than once; give each once.")
    return names


def parse_seeds(seeds):
    """Seeds from `"0,1,2"`, an integer or a list; integers >= 0, none twice."""
    if isinstance(seeds, (int, np.integer)) and not isinstance(seeds, bool):
        seeds = [seeds]
    if isinstance(seeds, str):
        parts = [part.strip() for part in seeds.split(",")]
        try:
            values = [int(part) for part in parts]
        except ValueError:
            raise ValueError(
                "seeds must be a comma-separated list of integers >= 0, e.g. 0,1,2. "
                f"Received: {seeds!r}"
            ) from None
    elif isinstance(seeds, (list, tuple)):
        values = list(seeds)
    else:
        raise ValueError(
            "seeds must be a list of integers >= 0 or a string such as '0,1,2'. "
            f"Received: {seeds!r}"
        )
    if not values:
        raise ValueError("seeds is empty. Give at least one seed, e.g. 0.")
    for value in values:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(
                f"seeds must be integers >= 0 (e.g. 0,1,2). Received: {list(values)!r}"
            )
    values = [int(value) for value in values]
    repeated = sorted({value for value in values if values.count(value) > 1})
    if repeated:
        raise ValueError(f"seeds lists {repeated} more than once; give each seed once.")
    return values


def parse_target(value):
    """`--target`: an accuracy in (0, 1], `"scratch"`, or `"none"`."""
    if value is None:
        return None
    text = str(value).strip().lower()
    if text in ("", "none", "no"):
        return None
    if text == "scratch":
        return "scratch"
    try:
        number = float(text)
    except ValueError:
        raise ValueError(
            f"target takes an accuracy in (0, 1], 'scratch' or 'none'. Received: {value!r}"
        ) from None
    if not 0.0 < number <= 1.0:
        raise ValueError(f"target must be an accuracy in (0, 1] (e.g. 0.95). Received: {value!r}")
    return number


def _check_count(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}. Received: {name}={value!r}")
    return int(value)


def _init_parameters(cls):
    """The keyword parameters of `cls.__init__` along its class hierarchy."""
    names = set()
    for klass in cls.__mro__:
        if "__init__" in vars(klass):
            for parameter in inspect.signature(vars(klass)["__init__"]).parameters.values():
                if parameter.kind not in (parameter.VAR_KEYWORD, parameter.VAR_POSITIONAL):
                    names.add(parameter.name)
    names.discard("self")
    return names


_MODEL_PARAMETERS = _init_parameters(GrownModel) - {"input_shape", "tasks", "name"}


def _method_arguments(name, method_kwargs, method_overrides):
    """The arguments method `name` gets, and the shared ones it fixes itself (dropped).

    `method_kwargs` go to every method: those a method fixes (PackNet is
    full size: no `seed_ratio`) are dropped for it. `method_overrides[name]`
    go to that method only and are never dropped.
    """
    default = methods_lib.get(name)
    fixed = set(default.settings())
    accepted = _init_parameters(type(default)) | _MODEL_PARAMETERS
    own = dict(method_overrides.get(name, {}))
    for where, kwargs in (("method_kwargs", method_kwargs), (f"method_overrides[{name!r}]", own)):
        for key in kwargs:
            if key == "seed":
                raise ValueError(
                    f"{where} sets seed; the seed of every run comes from seeds. Remove it."
                )
            if key not in accepted:
                hint = (
                    " method_kwargs go to every method; give a method's own argument in "
                    f"method_overrides={{{name!r}: {{{key!r}: ...}}}}."
                    if where == "method_kwargs"
                    else ""
                )
                raise ValueError(
                    f"{where}: method {name!r} ({type(default).__name__}) takes no argument "
                    f"{key!r}. It accepts {', '.join(sorted(accepted))}.{hint}"
                )
    shared = {k: v for k, v in method_kwargs.items() if k not in fixed}
    dropped = sorted(set(method_kwargs) & fixed)
    return {**shared, **own}, dropped


def _stream_builder(stream, stream_kwargs):
    """(name, build(seed) -> TaskStream) for a stream name or a stream function."""
    if isinstance(stream, str):
        if stream not in datasets_lib.STREAMS:
            raise ValueError(
                f"Unknown stream {stream!r}. Known streams: "
                f"{', '.join(datasets_lib.list_streams())}; or pass a function that builds a "
                "stream, e.g. keras_grown.datasets.from_directory."
            )
        function, name = datasets_lib.STREAMS[stream], stream
    elif callable(stream):
        function = stream
        name = getattr(stream, "__name__", None) or type(stream).__name__
    else:
        raise ValueError(
            "stream must be a stream name (e.g. 'split_fashion_mnist') or a function "
            f"fn(seed=..., **stream_kwargs) -> TaskStream. Received: {stream!r}"
        )
    if "seed" in stream_kwargs:
        raise ValueError(
            "stream_kwargs sets seed; each run builds its stream with its own seed "
            "(from seeds). Remove seed from stream_kwargs."
        )
    parameters = inspect.signature(function).parameters
    open_ended = any(p.kind == p.VAR_KEYWORD for p in parameters.values())
    if not open_ended:
        if "seed" not in parameters:
            raise ValueError(
                f"The stream function {name} takes no seed argument; bench() builds the stream "
                "of each run with seed=its seed."
            )
        unknown = sorted(set(stream_kwargs) - set(parameters))
        if unknown:
            raise ValueError(
                f"Stream {name!r} does not take {', '.join(unknown)}. It accepts: "
                f"{', '.join(p for p in parameters if p != 'seed')}."
            )

    def build(seed):
        return function(seed=seed, **stream_kwargs)

    return name, build


def _planned_epochs(method, num_tasks, epochs):
    """Epochs a method is expected to train over a stream (PackNet fits twice per task)."""
    per_task = epochs
    if isinstance(method, methods_lib.PackNet):
        per_task += method.retrain_epochs or epochs
    return num_tasks * per_task


# ---------------------------------------------------------------------------
# Progress over the whole job
# ---------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------
# results.json
# ---------------------------------------------------------------------------


def _jsonable(value):
    """Plain JSON values: NumPy numbers and arrays, tuples; NaN and inf become None."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, Path):
        return str(value)
    return repr(value) if not callable(value) else getattr(value, "__name__", repr(value))


def _write_json(path, payload):
    """Writes `payload` to `path` atomically: a temporary file, then `os.replace`."""
    path = Path(path)
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "w") as handle:
        json.dump(_jsonable(payload), handle, indent=1, allow_nan=False)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def _results_path(out):
    path = Path(out)
    return path if path.suffix == ".json" else path / RESULTS_FILE


def load_results(out):
    """The content of `out/results.json`; ValueError naming the file if missing or unreadable."""
    path = _results_path(out)
    if not path.is_file():
        raise ValueError(
            f"{path} does not exist. Run `keras-grown bench --out {path.parent}` first (report "
            "rebuilds the tables and plots from the results.json that bench writes)."
        )
    try:
        payload = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(
            f"{path} is not a readable results.json ({error}). Run bench again, or restore it."
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != RESULTS_FORMAT:
        raise ValueError(
            f"{path} is not a results.json written by keras-grown bench (its 'format' is not "
            f"{RESULTS_FORMAT!r}). `keras-grown run` writes a different file."
        )
    keys = ("stream", "methods", "seeds", "settings", "runs")
    missing = [key for key in keys if key not in payload]
    if missing or not isinstance(payload["runs"], list):
        raise ValueError(f"{path} lacks {', '.join(missing) or 'a list of runs'}: it is damaged.")
    for position, run in enumerate(payload["runs"]):
        needed = ("method", "label", "seed", "accuracy", "model_size", "time_per_task")
        lacking = [key for key in needed if not isinstance(run, dict) or key not in run]
        if lacking:
            raise ValueError(
                f"{path}: run {position} lacks {', '.join(lacking)}: the file is damaged."
            )
        try:
            AccuracyMatrix.from_dict(run["accuracy"])
        except (ValueError, TypeError, IndexError) as error:
            raise ValueError(
                f"{path}: run {position} ({run['method']} seed {run['seed']}) holds no valid "
                f"accuracy matrix: {error}"
            ) from None
    return payload


def _versions():
    import tensorflow as tf

    return {
        "keras_grown": __version__,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def _machine():
    import tensorflow as tf

    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "gpus": [device.name for device in tf.config.list_physical_devices("GPU")],
    }


# ---------------------------------------------------------------------------
# bench()
# ---------------------------------------------------------------------------


def bench(
    stream,
    methods=DEFAULT_METHODS,
    seeds=(0,),
    epochs=3,
    out=os.path.join("runs", "bench"),
    stream_kwargs=None,
    method_kwargs=None,
    method_overrides=None,
    target=None,
    batch_size=64,
    max_growth_rounds=2,
    first_tasks=None,
    resume=False,
    progress=True,
    command=None,
):
    """Runs every method with every seed on one stream; writes results.json, RESULTS.md, plots.

    Every (method, seed) run builds the stream with `seed=seed`, calls
    `keras_grown.learning.set_seed(seed)`, makes the method with
    `keras_grown.methods.get(name, seed=seed, ...)` and trains it with
    `learn()`, so all methods see the same data, splits and shuffling.
    `results.json` is rewritten (atomically) after every finished run.

    Args:
        stream: a stream name of `keras_grown.datasets.list_streams()`, or a
            function `fn(seed=..., **stream_kwargs)` returning a stream (e.g.
            `keras_grown.datasets.from_directory`).
        methods: names of `keras_grown.methods.METHODS`, as a list or a
            comma-separated string. The ablation of the paper's Table 5 is
            `grow,grow_sel,grow_sel_lsg,grown`.
        seeds: the seeds, a list or a string such as `"0,1,2"`.
        epochs: epochs per stage (`learn(epochs=)`).
        out: the results folder (created if missing).
        stream_kwargs: arguments of the stream function (not `seed`).
        method_kwargs: arguments given to every method (`backbone`,
            `l0_lambda`, `seed_ratio`, `capacity`, `learning_rate`,
            `jit_compile`, ...). Those a method fixes are left out for it
            (the full-size baselines fix `seed_ratio` and `capacity`) and
            listed in its run's `ignored_settings`.
        method_overrides: `{method name: {argument: value}}`, arguments of
            one method only (`{"packnet": {"prune_ratio": 0.75}}`).
        target: `learn(target=)`: an accuracy, `"scratch"` or None.
        batch_size: training batch size.
        max_growth_rounds: `learn(max_growth_rounds=)`.
        first_tasks: learn only the first N tasks of the stream (quick looks
            and smoke runs); None: all.
        resume: keep the runs already in `out/results.json` and run only the
            missing (method, seed) pairs. The stream, its arguments and the
            settings must be the ones of that file. Without `resume`, an
            `out` that holds runs is refused.
        progress: write the progress of the whole job to stderr.
        command: the command line to record (default: `sys.argv`).

    Returns:
        The content of `results.json` (a dict; `runs` holds one dict per run).

    Example:

    >>> results = keras_grown.bench.bench(
    ...     "split_fashion_mnist", methods="grown,finetune,scratch", seeds="0,1",
    ...     epochs=2, out="runs/fashion", stream_kwargs=dict(train_per_task=1000))
    >>> print(open("runs/fashion/RESULTS.md").read())
    """
    names = parse_methods(methods)
    seeds = parse_seeds(seeds)
    epochs = _check_count("epochs", epochs, 1)
    batch_size = _check_count("batch_size", batch_size, 1)
    max_growth_rounds = _check_count("max_growth_rounds", max_growth_rounds, 0)
    if first_tasks is not None:
        first_tasks = _check_count("first_tasks", first_tasks, 1)
    target = parse_target(target)
    stream_kwargs = dict(stream_kwargs or {})
    method_kwargs = dict(method_kwargs or {})
    method_overrides = {k: dict(v) for k, v in (method_overrides or {}).items()}
    unknown = sorted(set(method_overrides) - set(names))
    if unknown:
        raise ValueError(
            f"method_overrides names {', '.join(unknown)}, which methods does not run "
            f"({', '.join(names)})."
        )
    stream_name, build_stream = _stream_builder(stream, stream_kwargs)
    arguments = {name: _method_arguments(name, method_kwargs, method_overrides) for name in names}
    # Make every method once now: bad method arguments fail before anything trains.
    made = {name: methods_lib.get(name, seed=seeds[0], **arguments[name][0]) for name in names}
    settings = {
        "epochs": epochs,
        "batch_size": batch_size,
        "target": target,
        "max_growth_rounds": max_growth_rounds,
        "first_tasks": first_tasks,
        "method_kwargs": method_kwargs,
        "method_overrides": method_overrides,
    }
    folder = Path(out)
    path = folder / RESULTS_FILE
    command = command if command is not None else shlex.join(sys.argv)
    header = _jsonable(
        {"stream": stream_name, "stream_kwargs": stream_kwargs, "settings": settings}
    )
    if path.exists():
        payload = load_results(path)
        if not resume and payload["runs"]:
            raise ValueError(
                f"{path} already holds {len(payload['runs'])} finished run(s). Pass "
                "resume=True (--resume) to keep them and run only the missing (method, seed) "
                "pairs, or choose another out folder."
            )
        differing = [key for key in header if payload.get(key) != header[key]]
        if resume and payload["runs"] and differing:
            raise ValueError(
                f"--resume continues {path}, which was run with other "
                + ", ".join(f"{key}={payload.get(key)!r}" for key in differing)
                + " (now: "
                + ", ".join(f"{key}={header[key]!r}" for key in differing)
                + "). Use the same settings, or another out folder."
            )
    else:
        payload = None
    if payload is None or not payload["runs"]:
        payload = {
            "format": RESULTS_FORMAT,
            "format_version": RESULTS_FORMAT_VERSION,
            **header,
            "methods": [],
            "seeds": [],
            "num_tasks": None,
            "task_names": None,
            "versions": _versions(),
            "machine": _machine(),
            "commands": [],
            "runs": [],
        }
    payload["methods"] += [name for name in names if name not in payload["methods"]]
    payload["seeds"] += [seed for seed in seeds if seed not in payload["seeds"]]
    payload["commands"].append(command)
    done = {(run["method"], run["seed"]) for run in payload["runs"]}

    streams = {seeds[0]: build_stream(seeds[0])}  # built now: bad stream arguments fail here
    first = streams[seeds[0]]
    first = first[:first_tasks] if first_tasks else first
    num_tasks = len(first)
    payload["num_tasks"] = num_tasks
    payload["task_names"] = [getattr(t, "name", f"task_{i}") for i, t in enumerate(first)]
    pairs = [(seed, name) for seed in seeds for name in names]
    planned = [
        0 if (name, seed) in done else _planned_epochs(made[name], num_tasks, epochs)
        for seed, name in pairs
    ]
    folder.mkdir(parents=True, exist_ok=True)
    _write_json(path, payload)
    monitor = BenchProgress(planned, enabled=progress)
    try:
        for seed, name in pairs:
            label = made[name].label
            if (name, seed) in done:
                monitor.skip_run(label, seed)
                continue
            if seed not in streams:
                streams = {seed: build_stream(seed)}  # one stream in memory at a time
            tasks = streams[seed][:first_tasks] if first_tasks else streams[seed]
            keras.backend.clear_session()
            set_seed(seed)
            method = methods_lib.get(name, seed=seed, **arguments[name][0])
            monitor.start_run(label, seed, num_tasks)
            epochs_before = monitor.epochs_done
            # A checkpoint after every task of the run (exact resume inside a
            # (method, seed) pair); removed once the run is in results.json.
            checkpoints = folder / "checkpoints" / f"{name}-seed{seed}"
            result = learn(
                method, tasks, epochs=epochs, target=target, max_growth_rounds=max_growth_rounds,
                batch_size=batch_size, callbacks=[monitor], verbose=0, seed=seed,
                checkpoint_dir=str(checkpoints), resume=resume,
            )  # fmt: skip
            run = _run_record(name, method, seed, result, arguments[name][1])
            run["epochs_trained"] = monitor.epochs_done - epochs_before
            payload["runs"].append(run)
            _write_json(path, payload)
            shutil.rmtree(checkpoints, ignore_errors=True)
            _write_markdown(payload, folder)
            monitor.end_run(
                f"average accuracy {100 * run['average_accuracy']:.2f} %, BWT "
                f"{100 * run['backward_transfer']:+.2f}, size {run['model_size'][-1]:.2f}x, "
                f"{_duration(run['seconds'])}"
            )
    finally:
        monitor.close()
    report(folder)
    return payload


def _run_record(name, method, seed, result, ignored):
    matrix = result.accuracy
    return {
        "method": name,
        "label": method.label,
        "seed": seed,
        "config": method.config(),
        "ignored_settings": ignored,
        "accuracy": matrix.to_dict(),
        "average_accuracy": matrix.average_accuracy(),
        "backward_transfer": matrix.backward_transfer(),
        "average_forgetting": matrix.average_forgetting(),
        "model_size": list(result.model_size),
        "time_per_task": list(result.time_per_task),
        "seconds": float(sum(result.time_per_task)),
        "val_accuracy": list(result.val_accuracy),
        "targets": list(result.targets),
        "growth_rounds": list(result.growth_rounds),
    }


# ---------------------------------------------------------------------------
# RESULTS.md and plots
# ---------------------------------------------------------------------------


def _duration(seconds):
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"


def _mean_std(values):
    """(mean, sample std with n - 1, or None for one value)."""
    values = np.asarray(values, dtype=float)
    return float(values.mean()), (float(values.std(ddof=1)) if len(values) > 1 else None)


def _percent(values, signed=False):
    mean, std = _mean_std(100 * np.asarray(values, dtype=float))
    text = f"{mean:+.2f}" if signed else f"{mean:.2f}"
    return text if std is None else f"{text} ± {std:.2f}"


def _size(values):
    mean, std = _mean_std(values)
    return f"{mean:.2f}x" if std is None or std < 0.005 else f"{mean:.2f}x ± {std:.2f}"


def _grouped(payload):
    """[(method name, label, [runs sorted by seed])] in the order methods were asked for."""
    groups = []
    for name in payload["methods"]:
        runs = sorted((r for r in payload["runs"] if r["method"] == name), key=lambda r: r["seed"])
        if runs:
            groups.append((name, runs[0]["label"], runs))
    return groups


def _mean_matrix(runs):
    matrices = [AccuracyMatrix.from_dict(run["accuracy"]) for run in runs]
    stacked = np.stack([m.values for m in matrices])
    with warnings.catch_warnings():  # cells no run recorded (above the diagonal) stay NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(stacked, axis=0)
    matrix = AccuracyMatrix.from_values(mean, task_names=matrices[0].task_names)
    sizes = np.mean([run["model_size"] for run in runs], axis=0)
    for i, size in enumerate(sizes):
        matrix.record_model_size(i, float(size))
    return matrix


def _describe(payload):
    stream_kwargs = ", ".join(f"{k}={v!r}" for k, v in payload["stream_kwargs"].items())
    settings = payload["settings"]
    method_kwargs = ", ".join(f"{k}={v!r}" for k, v in settings["method_kwargs"].items())
    seeds = ", ".join(str(s) for s in sorted({r["seed"] for r in payload["runs"]}))
    versions = payload.get("versions", {})
    machine = payload.get("machine", {})
    gpus = machine.get("gpus") or []
    lines = [
        f"# keras-grown bench: {payload['stream']}",
        "",
        f"Stream `{payload['stream']}` ({stream_kwargs or 'defaults'}): "
        f"{payload.get('num_tasks')} tasks"
        + (f" (the first {settings['first_tasks']})" if settings.get("first_tasks") else "")
        + f"; {settings['epochs']} epoch(s) per stage, batch size {settings['batch_size']}, "
        f"target {settings['target']}; method settings: {method_kwargs or 'defaults'}"
        + "".join(
            f"; {name}: " + ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
            for name, kwargs in settings.get("method_overrides", {}).items()
        )
        + f". Seeds: {seeds or 'none finished'}.",
        "",
        f"keras-grown {versions.get('keras_grown')}, TensorFlow {versions.get('tensorflow')}, "
        f"Keras {versions.get('keras')}, Python {versions.get('python')}; "
        f"{machine.get('platform')}, {machine.get('cpus')} CPUs, "
        + (f"GPU: {', '.join(gpus)}." if gpus else "no GPU."),
    ]
    return lines


def results_markdown(payload):
    """The text of RESULTS.md for the content of a results.json."""
    groups = _grouped(payload)
    lines = _describe(payload)
    if not groups:
        return "\n".join(lines + ["", "No run has finished yet.", ""])
    num_tasks = max(len(run["model_size"]) for _, _, runs in groups for run in runs)
    lines += [
        "",
        "## Average accuracy, backward transfer, model size, training time (as Table 1)",
        "",
        "| method | average accuracy (%) | BWT (%) | model size | training time | seeds |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for _, label, runs in groups:
        lines.append(
            f"| {label} | {_percent([r['average_accuracy'] for r in runs])} | "
            f"{_mean_std([100 * r['backward_transfer'] for r in runs])[0]:+.2f} | "
            f"{_size([r['model_size'][-1] for r in runs])} | "
            f"{_duration(_mean_std([r['seconds'] for r in runs])[0])} | {len(runs)} |"
        )
    lines += [
        "",
        "Average accuracy: the mean test accuracy over all tasks after the last one, mean ± "
        "standard deviation over the seeds (n - 1 in the denominator; no ± with one seed). "
        "BWT: backward transfer, mean over the seeds (below 0: forgetting). Model size: the "
        "weights owned by some task after the last task, in full-size backbones (one network "
        "per task for Scratch and Fine-tune with copies), mean over the seeds. Training time: "
        "wall time of the whole stream, mean over the seeds.",
        "",
        "## Model size after each task (as Table 3)",
        "",
        "| method | " + " | ".join(f"task {t + 1}" for t in range(num_tasks)) + " |",
        "| --- |" + " ---: |" * num_tasks,
    ]
    for _, label, runs in groups:
        sizes = np.mean([run["model_size"] for run in runs], axis=0)
        lines.append(f"| {label} | " + " | ".join(f"{s:.2f}x" for s in sizes) + " |")
    lines += ["", "## Ablation (as Table 5)", ""]
    run_names = {name for name, _, _ in groups}
    if run_names & {name for name, _, _ in ABLATION if name != "grown"}:
        lines += [
            "| | Sel-mask | LSG | Re-train | average accuracy (%) | model size |",
            "| --- | :---: | :---: | :---: | ---: | ---: |",
        ]
        by_name = {name: runs for name, _, runs in groups}
        for name, row, switches in ABLATION:
            if name in by_name:
                runs = by_name[name]
                marks = " | ".join("✓" if on else "" for on in switches)
                lines.append(
                    f"| {row} (`{name}`) | {marks} | "
                    f"{_percent([r['average_accuracy'] for r in runs])} | "
                    f"{_size([r['model_size'][-1] for r in runs])} |"
                )
        lines += [
            "",
            "Each row adds one component of GROWN to the row above it: the selective mask over "
            "frozen weights, learnable sparse growth (the attentive mask over grown channels), "
            "and re-training released weights. Only the settings that were run are listed.",
        ]
    else:
        lines.append(
            "Not run: add the methods grow,grow_sel,grow_sel_lsg (with grown) for the ablation "
            "of the paper's Table 5."
        )
    lines += ["", "## Plots", ""]
    lines += [
        "![average accuracy after each task](average_accuracy.png)",
        "",
        "![model size after each task](model_size.png)",
        "",
        "## Accuracy matrices (test accuracy in %, mean over the seeds)",
    ]
    for name, label, runs in groups:
        lines += [
            "",
            f"### {label}",
            "",
            _mean_matrix(runs).to_markdown(),
            "",
            f"![{label}](accuracy_{name}.png)",
        ]
    lines += [
        "",
        "## Runs",
        "",
        "| method | seed | average accuracy (%) | BWT (%) | model size | time | epochs | "
        "ignored settings |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for _, label, runs in groups:
        for run in runs:
            lines.append(
                f"| {label} | {run['seed']} | {100 * run['average_accuracy']:.2f} | "
                f"{100 * run['backward_transfer']:+.2f} | {run['model_size'][-1]:.2f}x | "
                f"{_duration(run['seconds'])} | {run.get('epochs_trained', '')} | "
                f"{', '.join(run.get('ignored_settings') or []) or '-'} |"
            )
    finished = {(r["method"], r["seed"]) for r in payload["runs"]}
    missing = [
        f"{name} seed {seed}"
        for seed in payload["seeds"]
        for name in payload["methods"]
        if (name, seed) not in finished
    ]
    if missing:
        lines += ["", f"Not finished: {', '.join(missing)}. `--resume` runs them."]
    lines += ["", "## Commands", "", "```"] + list(payload.get("commands", [])) + ["```", ""]
    return "\n".join(lines)


def _write_markdown(payload, folder):
    path = Path(folder) / REPORT_FILE
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(results_markdown(payload))
    os.replace(temporary, path)
    return path


def _figure(size=(6.5, 4.2)):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=size)
    FigureCanvasAgg(figure)
    return figure, figure.add_subplot()


def _plot_curves(groups, path, curve, ylabel, title, reference=None):
    figure, axes = _figure()
    longest = 1
    for _, label, runs in groups:
        values = np.asarray([curve(run) for run in runs], dtype=float)
        steps = np.arange(1, values.shape[1] + 1)
        longest = max(longest, len(steps))
        mean = values.mean(axis=0)
        (line,) = axes.plot(steps, mean, marker="o", label=label)
        if len(values) > 1:
            std = values.std(axis=0, ddof=1)
            axes.fill_between(steps, mean - std, mean + std, color=line.get_color(), alpha=0.15)
    if reference is not None:
        axes.axhline(reference, color="grey", linestyle="--", linewidth=1)
    axes.set_xticks(np.arange(1, longest + 1))
    axes.set_xlabel("after task")
    axes.set_ylabel(ylabel)
    axes.set_title(title)
    axes.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path, format="png", dpi=100)
    return Path(path)


def plot_results(payload, folder):
    """Writes the PNG plots of a results.json's content into `folder`; returns their paths."""
    folder = Path(folder)
    groups = _grouped(payload)
    if not groups:
        return []
    seeds = f"mean over {len({r['seed'] for r in payload['runs']})} seed(s)"
    paths = [
        _plot_curves(
            groups, folder / "average_accuracy.png",
            lambda run: 100 * np.asarray(
                AccuracyMatrix.from_dict(run["accuracy"]).step_average_accuracy()
            ),
            "average accuracy over tasks learned (%)",
            f"Average accuracy after each task ({seeds})",
        ),
        _plot_curves(
            groups, folder / "model_size.png", lambda run: run["model_size"],
            "model size (x full-size backbone)", f"Model size after each task ({seeds})",
            reference=1.0,
        ),
    ]  # fmt: skip
    for name, label, runs in groups:
        matrix = _mean_matrix(runs)
        paths.append(
            matrix.plot_heatmap(
                folder / f"accuracy_{name}.png",
                title=f"{label}: accuracy (%), mean of {len(runs)} seed(s)",
            )
        )
    return paths


def report(out):
    """Rebuilds RESULTS.md and the plots from `out/results.json` alone (no training).

    Args:
        out: the folder `bench()` wrote (or the path of its results.json).

    Returns:
        The paths written: RESULTS.md first, then the PNG plots.

    Raises:
        ValueError: results.json is missing or is not a bench results file.
    """
    path = _results_path(out)
    payload = load_results(path)
    folder = path.parent
    return [_write_markdown(payload, folder)] + plot_results(payload, folder)


# ---------------------------------------------------------------------------
# keras-grown bench / report
# ---------------------------------------------------------------------------


def add_bench_command(subparsers):
    """Adds `keras-grown bench` to the `subparsers` of the `keras-grown` parser; returns it."""
    parser = subparsers.add_parser(
        "bench",
        help="run several methods x seeds on one stream; write results.json, RESULTS.md, plots",
        description=(
            "Run every method with every seed on one task stream through the same learn() "
            "loop, and write results.json (after every finished run), RESULTS.md (the paper's "
            "Tables 1, 3 and 5) and PNG plots to --out. --resume skips the (method, seed) "
            "pairs already in --out/results.json."
        ),
    )
    parser.add_argument(
        "--stream", default="split_fashion_mnist", choices=datasets_lib.list_streams()
    )
    parser.add_argument(
        "--methods",
        default=",".join(DEFAULT_METHODS),
        help=f"comma-separated, from: {', '.join(methods_lib.METHODS)} "
        "(default: %(default)s; the ablation is grow,grow_sel,grow_sel_lsg,grown)",
    )
    parser.add_argument("--seeds", default="0", help="comma-separated seeds, e.g. 0,1,2")
    parser.add_argument("--epochs", type=int, default=2, help="epochs per stage")
    parser.add_argument(
        "--num-tasks", type=int, default=None, help="number of tasks (default: the stream's own)"
    )
    parser.add_argument(
        "--train-per-task", type=int, default=None, help="training examples per task"
    )
    parser.add_argument(
        "--first-tasks", type=int, default=None, help="learn only the first N tasks"
    )
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument(
        "--backbone", default=None, choices=("lenet5", "lenet_small", "vgg16_bn", "resnet18"),
        help="default: lenet5, or lenet_small for images smaller than 16x16 (split_digits)",
    )  # fmt: skip
    parser.add_argument("--l0-lambda", type=float, default=None)
    parser.add_argument("--seed-ratio", type=float, default=None, help="growing methods only")
    parser.add_argument("--capacity", type=float, default=None, help="growing methods only")
    parser.add_argument("--learning-rate", type=float, default=None)
    parser.add_argument(
        "--target", default="none", help="accuracy target in (0, 1], 'scratch' or 'none'"
    )
    parser.add_argument("--max-growth-rounds", type=int, default=2)
    parser.add_argument("--jit-compile", action="store_true", help="compile with XLA")
    parser.add_argument(
        "--resume", action="store_true", help="skip the (method, seed) pairs already in --out"
    )
    parser.add_argument("--no-progress", dest="progress", action="store_false")
    parser.add_argument("--out", default=os.path.join("runs", "bench"), help="results folder")
    parser.set_defaults(func=command_bench)
    return parser


def add_report_command(subparsers):
    """Adds `keras-grown report OUT` to the `subparsers` of the `keras-grown` parser; returns it."""
    parser = subparsers.add_parser(
        "report",
        help="rebuild RESULTS.md and the plots of a bench folder from its results.json",
        description="Rebuild RESULTS.md and the PNG plots from OUT/results.json (no training).",
    )
    parser.add_argument("out", help="the folder keras-grown bench wrote (--out)")
    parser.set_defaults(func=command_report)
    return parser


def command_bench(args):
    """Runs `keras-grown bench`; returns the exit status."""
    stream_kwargs = {
        key: getattr(args, key)
        for key in ("num_tasks", "train_per_task")
        if getattr(args, key) is not None
    }
    method_kwargs = {
        key: getattr(args, key)
        for key in ("backbone", "l0_lambda", "seed_ratio", "capacity", "learning_rate")
        if getattr(args, key) is not None
    }
    if args.jit_compile:
        method_kwargs["jit_compile"] = True
    names, seeds = parse_methods(args.methods), parse_seeds(args.seeds)
    print(
        f"keras-grown bench: {', '.join(names)} x seeds {', '.join(map(str, seeds))} on "
        f"{args.stream}, {args.epochs} epoch(s) per stage -> {args.out}",
        flush=True,
    )
    payload = bench(
        args.stream, methods=names, seeds=seeds, epochs=args.epochs, out=args.out,
        stream_kwargs=stream_kwargs, method_kwargs=method_kwargs, target=args.target,
        batch_size=args.batch_size, max_growth_rounds=args.max_growth_rounds,
        first_tasks=args.first_tasks, resume=args.resume, progress=args.progress,
        command=shlex.join(["keras-grown"] + sys.argv[1:]),
    )  # fmt: skip
    _print_summary(payload, args.out)
    return 0


def command_report(args):
    """Runs `keras-grown report OUT`; returns the exit status."""
    paths = report(args.out)
    _print_summary(load_results(args.out), args.out)
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0


def summary(payload):
    """The Table 1 of RESULTS.md (method, average accuracy, BWT, size, time) as Markdown."""
    text = results_markdown(payload)
    start = text.find("| method |")
    return text[start : text.find("\n\n", start)] if start >= 0 else "No run has finished yet."


def _print_summary(payload, out):
    print(summary(payload))
    print(f"results: {Path(out) / RESULTS_FILE}, {Path(out) / REPORT_FILE}")


__all__ = [
    "ABLATION",
    "BenchProgress",
    "DEFAULT_METHODS",
    "add_bench_command",
    "add_report_command",
    "bench",
    "command_bench",
    "command_report",
    "load_results",
    "parse_methods",
    "parse_seeds",
    "plot_results",
    "report",
    "results_markdown",
    "summary",
]
