"""`bench()`: every method x seed on one task stream, through the same `learn()` loop.

Each (method, seed) run builds the stream with its seed, sets the seed,
makes the method with `keras_grown.methods.get(name, seed=seed, ...)` and
trains it with `learn()`, so all methods see the same data, splits and
shuffling. Here too: the checks of `bench()`'s arguments (method names and
variants, seeds, the stream and the arguments each method takes).

A methods entry is a method name (`wsn`) or a *variant*: the name with
settings of its own, `name@key=value`, several joined by `@`
(`wsn@capacity=0.1`, `packnet@prune_ratio=0.75@retrain_epochs=1`). `@`
and `=` never occur in method names and need no quoting in a shell, and the
entries stay comma-separated. Values are read as int, float, true/false,
none, else as text. A variant runs as a method of its own: its canonical
entry (settings sorted by key, values written back in one form, so
`wsn@capacity=.1` is `wsn@capacity=0.1`) keys its runs in results.json, and
its label shows the settings (`WSN (capacity=0.1)`).
"""

import inspect
import math
import os
import platform
import re
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
from keras_grown.bench.reporting import _duration, _write_markdown, method_file_stem, report
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
DEFAULT_METHODS = (
    "grown", "grow_only", "piggyback", "packnet", "wsn", "finetune", "scratch", "ewc",
)  # fmt: skip

# `name@key=value@key=value`: a method with settings of its own (see the module docstring).
VARIANT_SEPARATOR = "@"
_VARIANT_SYNTAX = (
    "Write a variant as name@key=value, several settings joined by @, e.g. wsn@capacity=0.1 or "
    "packnet@prune_ratio=0.75@retrain_epochs=1 (values: numbers, true/false, none, or text "
    "without , or @)."
)


# ---------------------------------------------------------------------------
# Arguments
# ---------------------------------------------------------------------------


def parse_methods(methods):
    """Methods entries from `"grown,wsn@capacity=0.1"` or a list: each known, none twice.

    Returns the entries in their canonical form: a plain name as given, a
    variant `name@key=value...` with its settings sorted by key and its
    values written in one form (`parse_variant`).
    """
    entries = _as_list(
        methods, lambda text: [entry.strip() for entry in text.split(",") if entry.strip()],
        "methods must be a list of method names or a comma-separated string such as "
        f"'grown,finetune' (or 'grown,wsn@capacity=0.1'). Received: {methods!r}",
    )
    if not entries:
        raise ValueError(
            f"methods is empty. Give at least one of: {', '.join(methods_lib.METHODS)}."
        )
    parsed = []
    for entry in entries:
        if not isinstance(entry, str):
            raise ValueError(
                f"Unknown method {entry!r} in methods. Choose from: "
                f"{', '.join(methods_lib.METHODS)}."
            )
        parsed.append(parse_variant(entry.strip()))
    keys = [variant_key(name, variant) for name, variant in parsed]
    # Equal settings are one variant however they were written (1 and 1.0 too).
    same = [(name, tuple(sorted(variant.items()))) for name, variant in parsed]
    repeated = list(dict.fromkeys(item for i, item in enumerate(same) if item in same[:i]))
    if repeated:
        names = ", ".join(keys[same.index(item)] for item in repeated)
        raise ValueError(
            f"methods names {names} more than once; give each method or variant once."
        )
    return keys


def parse_variant(entry):
    """(method name, {key: value}) of a methods entry `name` or `name@key=value[@key=value...]`.

    Values: `true`/`false` (any case) are booleans, `none` is None, then
    integers, then finite floats (`0.1`, `.5`, `1e-3`), else the text.
    ValueError names the entry and the syntax for an unknown method, a
    setting without `=`, an empty key or value, or a key given twice.
    """
    name, *parts = [part.strip() for part in entry.split(VARIANT_SEPARATOR)]
    if name not in methods_lib.METHODS:
        where = "" if not parts else f" (methods entry {entry!r})"
        raise ValueError(
            f"Unknown method {name!r} in methods{where}. Choose from: "
            f"{', '.join(methods_lib.METHODS)}."
        )
    variant = {}
    for part in parts:
        key, equals, text = (piece.strip() for piece in part.partition("="))
        if not part or not equals or not key or not text:
            problem = (
                "an empty setting" if not part
                else f"the setting {part!r} has no key=value" if not equals
                else f"the setting {part!r} has no key" if not key
                else f"the setting {part!r} has no value (none for None)"
            )  # fmt: skip
            raise ValueError(f"methods entry {entry!r}: {problem}. {_VARIANT_SYNTAX}")
        if key in variant:
            raise ValueError(
                f"methods entry {entry!r} sets {key} more than once; give each setting once."
            )
        variant[key] = _parse_value(entry, key, text)
    return name, variant


def variant_key(name, variant):
    """The canonical methods entry of method `name` with `variant`'s settings (sorted by key)."""
    return VARIANT_SEPARATOR.join(
        [name] + [f"{key}={_format_value(variant[key])}" for key in sorted(variant)]
    )


def variant_label(name, variant):
    """The label of a variant: the method's label and its settings, `WSN (capacity=0.1)`."""
    label = methods_lib.get(name).label
    if not variant:
        return label
    return f"{label} (" + ", ".join(
        f"{key}={_format_value(variant[key])}" for key in sorted(variant)
    ) + ")"


_INTEGER = re.compile(r"[+-]?[0-9]+")


def _parse_value(entry, key, text):
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered == "none":
        return None
    if _INTEGER.fullmatch(text):
        return int(text)
    try:
        number = float(text)
    except ValueError:
        return text
    if not math.isfinite(number):
        raise ValueError(
            f"methods entry {entry!r}: {key}={text} is not a finite number. Give a number such "
            f"as {key}=0.1."
        )
    return number


def _format_value(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "none"
    if isinstance(value, float):
        return repr(value)
    return str(value)


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
    return set(_init_defaults(cls))


def _init_defaults(cls):
    """{parameter: default} of `cls.__init__` along its class hierarchy (the first one wins)."""
    defaults = {}
    for klass in cls.__mro__:
        if "__init__" in vars(klass):
            for parameter in inspect.signature(vars(klass)["__init__"]).parameters.values():
                if parameter.kind not in (parameter.VAR_KEYWORD, parameter.VAR_POSITIONAL):
                    defaults.setdefault(parameter.name, parameter.default)
    defaults.pop("self", None)
    return defaults


_MODEL_PARAMETERS = _init_parameters(GrownModel) - {"input_shape", "tasks", "name"}


def _method_arguments(name, method_kwargs, method_overrides, variant=None, entry=None):
    """The arguments method `name` gets, and the shared ones it fixes itself (dropped).

    `method_kwargs` go to every method: those a method fixes (PackNet is
    full size: no `seed_ratio`) are dropped for it. `method_overrides[name]`
    go to that method (all its variants too) only and are never dropped.
    `variant`: the settings of the methods entry `entry` (`wsn@capacity=0.1`),
    over both.
    """
    default = methods_lib.get(name)
    fixed_values = default.settings()
    fixed = set(fixed_values)
    own_parameters = _init_parameters(type(default))
    accepted = own_parameters | _MODEL_PARAMETERS
    own = dict(method_overrides.get(name, {}))
    variant = dict(variant or {})
    entry = f"methods entry {entry or variant_key(name, variant)!r}"
    checks = [("method_kwargs", method_kwargs), (f"method_overrides[{name!r}]", own)]
    if variant:
        checks.append((entry, variant))
    for where, kwargs in checks:
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
    defaults = {**_init_defaults(GrownModel), **_init_defaults(type(default))}
    for key, value in variant.items():
        if isinstance(defaults.get(key), bool) and not isinstance(value, bool):
            raise ValueError(
                f"{entry}: {key} is true or false "
                f"(write {key}=true or {key}=false). Received: {key}={_format_value(value)}"
            )
    wrongly_fixed = sorted(key for key in variant if key in fixed and key not in own_parameters)
    if wrongly_fixed:
        values = ", ".join(f"{key}={fixed_values[key]!r}" for key in wrongly_fixed)
        raise ValueError(
            f"{entry}: method {name!r} "
            f"({type(default).__name__}) fixes {', '.join(wrongly_fixed)} (it is {values} for "
            "this method); remove the setting, or vary a method that takes it."
        )
    shared = {k: v for k, v in method_kwargs.items() if k not in fixed}
    dropped = sorted(set(method_kwargs) & fixed)
    return {**shared, **own, **variant}, dropped


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
            `grow,grow_sel,grow_sel_lsg,grown`. An entry may be a variant,
            `name@key=value[@key=value...]` (`"wsn,wsn@capacity=0.1"`): the
            method with these arguments over `method_kwargs` and
            `method_overrides[name]`, run, stored and reported as a method
            of its own (see `parse_variant`).
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
            one method only (`{"packnet": {"prune_ratio": 0.75}}`), for its
            plain name and its variants.
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
    names = parse_methods(methods)  # the canonical entries: the keys of the runs
    variants = {key: parse_variant(key) for key in names}
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
    base_names = list(dict.fromkeys(name for name, _ in variants.values()))
    unknown = sorted(set(method_overrides) - set(base_names))
    if unknown:
        hint = (
            " method_overrides is keyed by method name; give a variant's settings in its "
            "methods entry."
            if any(VARIANT_SEPARATOR in key for key in unknown)
            else ""
        )
        raise ValueError(
            f"method_overrides names {', '.join(unknown)}, which methods does not run "
            f"({', '.join(base_names)}).{hint}"
        )
    stream_name, build_stream = _stream_builder(stream, stream_kwargs)
    arguments = {
        key: _method_arguments(name, method_kwargs, method_overrides, variant, key)
        for key, (name, variant) in variants.items()
    }
    # Make every method once now: bad method arguments fail before anything trains.
    made = {key: _make_method(key, variants[key], seeds[0], arguments[key][0]) for key in names}
    labels = {
        key: variant_label(*variants[key]) if variants[key][1] else made[key].label
        for key in names
    }
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
            label = labels[name]
            if (name, seed) in done:
                monitor.skip_run(label, seed)
                continue
            if seed not in streams:
                streams = {seed: build_stream(seed)}  # one stream in memory at a time
            tasks = streams[seed][:first_tasks] if first_tasks else streams[seed]
            keras.backend.clear_session()
            set_seed(seed)
            method = _make_method(name, variants[name], seed, arguments[name][0])
            monitor.start_run(label, seed, num_tasks)
            epochs_before = monitor.epochs_done
            # A checkpoint after every task of the run (exact resume inside a
            # (method, seed) pair); removed once the run is in results.json.
            checkpoints = folder / "checkpoints" / f"{method_file_stem(name)}-seed{seed}"
            result = learn(
                method, tasks, epochs=epochs, target=target, max_growth_rounds=max_growth_rounds,
                batch_size=batch_size, callbacks=[monitor], verbose=0, seed=seed,
                checkpoint_dir=str(checkpoints), resume=resume,
            )  # fmt: skip
            run = _run_record(name, label, variants[name][1], method, seed, result,
                              arguments[name][1])  # fmt: skip
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


def _make_method(key, name_and_variant, seed, arguments):
    """The method of methods entry `key`; a variant's bad value is a ValueError naming the entry."""
    name, variant = name_and_variant
    if not variant:
        return methods_lib.get(name, seed=seed, **arguments)
    try:
        return methods_lib.get(name, seed=seed, **arguments)
    except TypeError as error:
        if "multiple values" not in str(error):
            raise ValueError(f"methods entry {key!r}: {error}") from None
        raise ValueError(
            f"methods entry {key!r}: method {name!r} sets this argument itself ({error}). Remove "
            "the setting, or vary the method that takes it (e.g. grown for the ablation steps)."
        ) from None
    except ValueError as error:
        text = str(error).rstrip()
        raise ValueError(
            f"methods entry {key!r}: {text}{'' if text.endswith('.') else '.'} Change the value "
            "in the entry, or remove the setting."
        ) from None


def _run_record(key, label, variant, method, seed, result, ignored):
    matrix = result.accuracy
    sizes = [model.model_size() for model in method.models]
    return {
        "method": key,
        "label": label,
        # The methods entry's own settings ({} for a plain name); `config`
        # holds every setting the method ran with.
        "variant": dict(variant),
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
