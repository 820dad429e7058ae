"""results.json: what `bench()` writes after every run, and reading it back.

The file holds every finished (method, seed) run with the versions, the
machine, the command lines, the stream and its arguments. It is written
atomically (a temporary file, then `os.replace`), so a benchmark that stops
half-way leaves the last complete file behind.
"""

import json
import math
import os
from pathlib import Path

import numpy as np

from keras_grown.evaluation import AccuracyMatrix

RESULTS_FILE = "results.json"
RESULTS_FORMAT = "keras-grown bench results"
RESULTS_FORMAT_VERSION = 1


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
