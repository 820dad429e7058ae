"""Atomic per-task checkpoints of a `learn()` run, and exact resume.

A checkpoint is written after every finished task into its own folder
`task-NNNN/` (NNNN = the number of finished tasks) of the checkpoint
directory:

* `model_0.keras`, `model_1.keras`, ...: the method's models (one for the
  one-engine methods, one per task for Scratch and Fine-tune copies), in
  Keras' own format (weights, mask scores, the Gumbel noise generators'
  state, masks, owners, per-task state);
* `method_state.npz`: state a method keeps outside its models (EWC's Fisher
  information and anchor weights), if any;
* `state.json`: the stream position (`next_task`), the results so far, the
  settings of the run (checked on resume) and the SHA-256 of every file.

The folder is written under a temporary name, flushed, and renamed into
place; then `latest.json` is replaced atomically. A kill at any moment
leaves the previous checkpoint intact. Older checkpoints beyond `keep` are
removed after the new one is in place.

Optimizer state is not part of a checkpoint: every task starts with a fresh
optimizer (`add_task()`), so the state at a task boundary is complete. A run
killed inside a task resumes from the last finished task and learns that
task again; with the per-task seeding of `learn()` it ends bitwise where an
uninterrupted run ends.
"""

import hashlib
import json
import os
import shutil
import tempfile
import warnings

import keras
import numpy as np

FORMAT = 1
LATEST = "latest.json"
PREFIX = "task-"


class CheckpointError(ValueError):
    """A checkpoint that cannot be used (corrupt, truncated, or from another run)."""


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync_file(path):
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def _fsync_dir(path):
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def write_json_atomic(path, payload):
    """Writes JSON to `path` through a temporary file, fsync and rename."""
    directory = os.path.dirname(os.path.abspath(path))
    descriptor, temporary = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=directory)
    try:
        with os.fdopen(descriptor, "w") as handle:
            json.dump(payload, handle, indent=2, default=_json_default)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise
    _fsync_dir(directory)


def _json_default(value):
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def write_checkpoint(directory, finished_tasks, models, state, method_state=None, keep=2):
    """Writes the checkpoint after `finished_tasks` tasks; returns its folder.

    Args:
        directory: the checkpoint directory (created if missing).
        finished_tasks: number of tasks finished (the stream position).
        models: the models to save.
        state: JSON-serializable dict (results so far, settings).
        method_state: dict name -> array kept by the method, or None.
        keep: how many checkpoints to keep (>= 1).
    """
    os.makedirs(directory, exist_ok=True)
    name = f"{PREFIX}{finished_tasks:04d}"
    final = os.path.join(directory, name)
    temporary = tempfile.mkdtemp(prefix=f".{name}.tmp-", dir=directory)
    try:
        files = {}
        for index, model in enumerate(models):
            filename = f"model_{index}.keras"
            model.save(os.path.join(temporary, filename))
            files[filename] = None
        if method_state:
            np.savez(os.path.join(temporary, "method_state.npz"), **method_state)
            files["method_state.npz"] = None
        for filename in files:
            path = os.path.join(temporary, filename)
            _fsync_file(path)
            files[filename] = _sha256(path)
        payload = dict(state, format=FORMAT, finished_tasks=finished_tasks,
                       models=len(models), files=files)
        with open(os.path.join(temporary, "state.json"), "w") as handle:
            json.dump(payload, handle, indent=2, default=_json_default)
            handle.flush()
            os.fsync(handle.fileno())
        _fsync_dir(temporary)
        if os.path.exists(final):  # the same task learned again after a resume
            shutil.rmtree(final)
        os.replace(temporary, final)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    _fsync_dir(directory)
    write_json_atomic(os.path.join(directory, LATEST), {"checkpoint": name})
    for old in list_checkpoints(directory)[:-max(1, int(keep))]:
        shutil.rmtree(os.path.join(directory, old), ignore_errors=True)
    return final


def list_checkpoints(directory):
    """Checkpoint folder names in `directory`, oldest first (temporary ones left out)."""
    if not os.path.isdir(directory):
        return []
    names = [
        n for n in os.listdir(directory)
        if n.startswith(PREFIX) and n[len(PREFIX):].isdigit()
        and os.path.isdir(os.path.join(directory, n))
    ]
    return sorted(names)


def _verify(folder):
    """The state of a checkpoint folder; raises CheckpointError naming the bad file."""
    state_path = os.path.join(folder, "state.json")
    try:
        with open(state_path) as handle:
            state = json.load(handle)
    except (OSError, ValueError) as error:
        raise CheckpointError(f"Checkpoint file {state_path} is unreadable ({error}).") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(
            f"Checkpoint file {state_path} is not a keras-grown checkpoint of format {FORMAT}."
        )
    for filename, digest in state.get("files", {}).items():
        path = os.path.join(folder, filename)
        if not os.path.exists(path):
            raise CheckpointError(f"Checkpoint file {path} is missing.")
        if _sha256(path) != digest:
            raise CheckpointError(
                f"Checkpoint file {path} is corrupt or truncated (its SHA-256 does not "
                "match the one recorded when it was written)."
            )
    return state


def load_checkpoint(directory):
    """The newest usable checkpoint of `directory`: (state, models, method_state).

    Returns None when the directory holds no checkpoint. When the newest
    checkpoint is corrupt, warns (naming the file) and falls back to the one
    before; raises `CheckpointError` naming every bad file when none is usable.
    """
    names = list_checkpoints(directory)
    if not names:
        return None
    problems = []
    for name in reversed(names):
        folder = os.path.join(directory, name)
        try:
            state = _verify(folder)
            models = [
                keras.saving.load_model(os.path.join(folder, f"model_{i}.keras"))
                for i in range(int(state["models"]))
            ]
        except CheckpointError as error:
            problems.append(str(error))
            continue
        except Exception as error:  # a file that passed its checksum but does not load
            problems.append(f"Checkpoint {folder} does not load ({error}).")
            continue
        method_state = None
        if "method_state.npz" in state.get("files", {}):
            with np.load(os.path.join(folder, "method_state.npz")) as arrays:
                method_state = {k: arrays[k] for k in arrays.files}
        if problems:
            warnings.warn(
                "Skipped unusable checkpoint(s): " + " ".join(problems)
                + f" Resuming from the previous good checkpoint {folder}.",
                stacklevel=2,
            )
        return state, models, method_state
    raise CheckpointError(
        f"No usable checkpoint in {directory}: " + " ".join(problems)
        + " Delete the folder to start over."
    )
