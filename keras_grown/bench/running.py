"""`bench()`: every method x seed on one task stream, through the same `learn()` loop.

Each (method, seed) run builds the stream with its seed, sets the seed,
makes the method with `keras_grown.methods.get(name, seed=seed, ...)` and
trains it with `learn()`, so all methods see the same data, splits and
shuffling. Here too: the checks of `bench()`'s arguments (method names,
seeds, the stream and the arguments each method takes).
"""

import inspect
import os
import platform
import shlex
import shutil
import sys
from pathlib import Path

import keras
import numpy as np

from keras_grown import datasets as datasets_lib
from keras_grown import methods as methods_lib
from keras_grown._checks import check_count, is_integer
from keras_grown.bench.progress import BenchProgress
from keras_grown.bench.reporting import _duration, _write_markdown, report
from keras_grown.bench.results import (
    RESULTS_FILE,
    RESULTS_FORMAT,
    RESULTS_FORMAT_VERSION,
    _jsonable,
    _write_json,
    load_results,
)
from keras_grown.learning import learn, set_seed
from keras_grown.model import GrownModel
from keras_grown.version import __version__

# The methods of the paper's Table 1 that `keras-grown bench` runs by default.
DEFAULT_METHODS = ("grown", "grow_only", "piggyback", "packnet", "finetune", "scratch", "ewc")


# ---------------------------------------------------------------------------
# Arguments
# ---------------------------------------------------------------------------


def parse_methods(methods):
    """Method names from `"grown,packnet"` or a list; each known, none twice."""
    names = _as_list(
        methods, lambda text: [name.strip() for name in text.split(",") if name.strip()],
        "methods must be a list of method names or a comma-separated string such as "
        f"'grown,finetune'. Received: {methods!r}",
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
    repeated = _repeated(names)
    if repeated:
        raise ValueError(f"methods names {', '.join(repeated)} more than once; give each once.")
    return names


def parse_seeds(seeds):
    """Seeds from `"0,1,2"`, an integer or a list; integers >= 0, none twice."""
    if is_integer(seeds):
        seeds = [seeds]
    values = _as_list(
        seeds, _seeds_from_text,
        f"seeds must be a list of integers >= 0 or a string such as '0,1,2'. Received: {seeds!r}",
    )
    if not values:
        raise ValueError("seeds is empty. Give at least one seed, e.g. 0.")
    for value in values:
        if not is_integer(value, 0):
            raise ValueError(
                f"seeds must be integers >= 0 (e.g. 0,1,2). Received: {list(values)!r}"
            )
    values = [int(value) for value in values]
    repeated = _repeated(values)
    if repeated:
        raise ValueError(f"seeds lists {repeated} more than once; give each seed once.")
    return values


def _as_list(value, from_text, wrong_type):
    """`value` as a list: `from_text(value)` for a string, a list or tuple as it is."""
    if isinstance(value, str):
        return from_text(value)
    if isinstance(value, (list, tuple)):
        return list(value)
    raise ValueError(wrong_type)


def _seeds_from_text(text):
    try:
        return [int(part.strip()) for part in text.split(",")]
    except ValueError:
        raise ValueError(
            "seeds must be a comma-separated list of integers >= 0, e.g. 0,1,2. "
            f"Received: {text!r}"
        ) from None


def _repeated(items):
    """The items listed more than once, sorted."""
    return sorted({item for item in items if items.count(item) > 1})


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
# Where a benchmark ran
# ---------------------------------------------------------------------------


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
        target: `learn(target=)`: None (the default), an accuracy or `"scratch"`.
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
    epochs = check_count("epochs", epochs, 1)
    batch_size = check_count("batch_size", batch_size, 1)
    max_growth_rounds = check_count("max_growth_rounds", max_growth_rounds, 0)
    if first_tasks is not None:
        first_tasks = check_count("first_tasks", first_tasks, 1)
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
    sizes = [model.model_size() for model in method.models]
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
        # Stored per-task masks after the last task, over the method's
        # models: packed, and losslessly compressed (the entropy bound; see
        # keras_grown.sizing.ModelSize).
        **{
            key: sum(getattr(size, key) for size in sizes)
            for key in ("mask_bytes", "mask_entropy_bytes")
        },
    }
