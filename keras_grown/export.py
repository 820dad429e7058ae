"""Compact export: a plain Keras model of what one finished task uses, written to files.

A `GrownModel` allocates the whole capacity pool and answers for a task through
its stored masks. For deployment a task needs none of that: `export_task()`
writes the ordinary `keras.Model` that `keras_grown.compact` builds, of standard
layers (`Conv2D`, `Dense`, `BatchNormalization`, `Activation`, pooling,
`Flatten`, `Add`, ...) holding only the channels the task uses (which ones:
`keras_grown.compact`), with the kernel entries its mask excludes written as 0,
its own biases and batch-norm state, and its own head. The exported model loads
with Keras alone (`keras.saving.load_model`), without importing `keras_grown`,
and its predictions equal the grown model's for that task (within float
rounding: the sums run over fewer, all-zero-or-equal terms).

`export_size()` counts the weights of an export without building it.
"""

import dataclasses
import os
import shutil
import tempfile

import keras

from keras_grown import compact
from keras_grown._checks import is_integer
from keras_grown.sizing import kernel_elements


@dataclasses.dataclass(frozen=True)
class ExportSize:
    """The weights of the compact export of one task.

    Attributes:
        task: the task (0-based).
        used_kernel_weights: kernel weights the task reads: the sum over the
            grown layers of `task_kernel_mask(task).sum() * kernel elements`
            (`kh * kw` for a convolution, 1 for Dense). These are the only
            entries of the exported `Conv2D`/`Dense` kernels (the head left
            out) that hold a weight; every other entry is 0.
        kernel_weights: entries of the exported `Conv2D`/`Dense` kernels, the
            head left out (kept input channels x kept output channels x kernel
            elements, per layer).
        bias_weights: the task's biases of the kept channels.
        batch_norm_weights: gamma, beta, moving mean and moving variance of
            the kept channels (4 per channel).
        head_weights: the task's head over the kept features (kernel + bias).
        padding_channels: channels kept only to line up the inputs of an
            `Add` (they output exactly 0); counted in the fields above.

    `total` (a property) is the sum of the weight fields and equals
    `exported.count_params()`.
    """

    task: int
    used_kernel_weights: int
    kernel_weights: int
    bias_weights: int
    batch_norm_weights: int
    head_weights: int
    padding_channels: int

    @property
    def total(self):
        return self.kernel_weights + self.bias_weights + self.batch_norm_weights + self.head_weights


def export_task(model, task, path, saved_model=True):
    """Writes a plain Keras model of what finished task `task` uses.

    The model holds standard Keras layers only (no `keras_grown` class, no
    mask, no `Lambda`), with the channels the task uses (see the module
    docstring), the task's biases, batch-norm statistics and affines, and its
    head (`Dense` with softmax). Its predictions equal those of
    `model.select_task(task); model.predict(x)` within float rounding.

    Files are written atomically: each goes to a temporary name in the same
    directory and is moved into place with `os.replace`, so a reader never
    sees half a file. The parent directory is created if needed.

    Args:
        model: a `keras_grown.GrownModel`.
        task: index of a finished task (0-based).
        path: where to write the `.keras` file (must end in `.keras`).
        saved_model: `True` to also write a TensorFlow SavedModel (through
            `keras.Model.export`) into the directory next to `path` named
            after it, `task_0.keras` -> `task_0_savedmodel/` (serving
            endpoint `serve` and signature `serving_default`); a path to
            write it elsewhere; `False` for none. An existing SavedModel
            directory there is replaced.

    Returns:
        The plain `keras.Model`.

    Example:

    ```python
    plain = keras_grown.export.export_task(model, 0, "export/task_0.keras")
    # Anywhere, without keras_grown:
    plain = keras.saving.load_model("export/task_0.keras")
    serving = tf.saved_model.load("export/task_0_savedmodel")
    probabilities = serving.serve(images)
    ```
    """
    task = _check_task(model, task)
    path = _check_keras_path(path)
    saved_model_path = _check_saved_model(saved_model, path)
    plain = compact.build_task_model(model, task)
    _write_keras(plain, path)
    if saved_model_path is not None:
        _write_saved_model(plain, saved_model_path)
    return plain


def export_all(model, directory, saved_model=True):
    """Exports every finished task into `directory`.

    Writes `directory/task_{k}.keras` for every finished task `k` and, if
    `saved_model`, the SavedModel `directory/task_{k}_savedmodel/` beside it
    (see `export_task`). A task still being learned is skipped.

    Args:
        model: a `keras_grown.GrownModel`.
        directory: output directory (created if needed).
        saved_model: also write the SavedModels (bool).

    Returns:
        The list of `.keras` paths written, in task order.
    """
    _check_model(model)
    if not model.finished_tasks:
        raise ValueError(
            "export_all() needs at least one finished task; the model has "
            f"{model.num_tasks} task(s) and none is finished. Call finish_task() first."
        )
    if not isinstance(saved_model, bool):
        raise TypeError(
            "export_all() takes saved_model=True or False (each task's SavedModel goes "
            f"next to its .keras file). Received: saved_model={saved_model!r}"
        )
    directory = _check_path_like(directory, "directory")
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise ValueError(
            f"export_all() writes into a directory, but {directory!r} is a file. "
            "Pass a directory path."
        )
    paths = [os.path.join(directory, f"task_{k}.keras") for k in model.finished_tasks]
    for path in paths:
        _check_keras_path(path)
        _check_saved_model(saved_model, path)
    for task, path in zip(model.finished_tasks, paths):
        export_task(model, task, path, saved_model=saved_model)
    return paths


def export_size(model, task):
    """Counts the weights of the compact export of `task` (see `ExportSize`)."""
    task = _check_task(model, task)
    plan = compact.plan_channels(model, task)
    used = kernels = biases = norms = padding = 0
    for layer in model.grown_layers:
        inputs, outputs = plan.layer_channels[layer]
        elems = kernel_elements(layer)
        used += int(layer.task_kernel_mask(task).sum()) * elems
        kernels += len(inputs) * len(outputs) * elems
        biases += len(outputs) * int(layer.use_bias)
        norms += 4 * len(outputs) * int(layer.batch_norm)
        padding += int((~layer.task_channel_mask(task)[outputs]).sum())
    head = (len(plan.features) + 1) * model.heads.num_classes[task]
    return ExportSize(
        task=task, used_kernel_weights=used, kernel_weights=kernels, bias_weights=biases,
        batch_norm_weights=norms, head_weights=head, padding_channels=padding,
    )


def build_task_model(model, task):
    """The plain `keras.Model` of `task`, built in memory (`export_task` without files)."""
    return compact.build_task_model(model, _check_task(model, task))


# ------------------------------------------------------------------ writing
def _write_keras(plain, path):
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    handle, temporary = tempfile.mkstemp(
        dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp.keras"
    )
    os.close(handle)
    try:
        plain.save(temporary)
        os.chmod(temporary, _permissions(0o666))
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise


def _write_saved_model(plain, path):
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    name = os.path.basename(os.path.normpath(path))
    temporary = tempfile.mkdtemp(dir=directory, prefix=f".{name}.", suffix=".tmp")
    try:
        plain.export(temporary, format="tf_saved_model", verbose=False)
        os.chmod(temporary, _permissions(0o777))
        if os.path.isdir(path):
            # A directory cannot replace a non-empty one in one rename: move the
            # old one aside (onto an empty directory), then the new one in.
            old = tempfile.mkdtemp(dir=directory, prefix=f".{name}.", suffix=".old")
            os.replace(path, old)
            os.replace(temporary, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(temporary, path)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise


def _permissions(mode):
    # mkstemp/mkdtemp create private (0600/0700) entries; give the final files
    # the permissions an ordinary write would (mode minus the umask).
    umask = os.umask(0)
    os.umask(umask)
    return mode & ~umask


def saved_model_path(path):
    """Where `export_task(..., saved_model=True)` puts the SavedModel of `path`."""
    path = _check_keras_path(path)
    return path[: -len(".keras")] + "_savedmodel"


# ------------------------------------------------------------------ checking
def _check_model(model):
    if not _is_grown_model(model):
        raise TypeError(
            f"Compact export takes a keras_grown.GrownModel. Received: {type(model).__name__}."
        )


def _check_task(model, task):
    _check_model(model)
    if not is_integer(task):
        raise TypeError(f"export takes a task index (int). Received: task={task!r}")
    task = int(task)
    if not 0 <= task < model.num_tasks:
        raise ValueError(
            f"Task {task} is out of range: the model has {model.num_tasks} task(s), "
            f"numbered 0 to {model.num_tasks - 1}."
            if model.num_tasks
            else f"Task {task} does not exist: the model has no task yet. "
            "Call add_task(), fit() and finish_task() first."
        )
    if task not in model.finished_tasks:
        raise ValueError(
            f"Task {task} is still being learned; only finished tasks can be exported "
            "(their masks are stored when they finish). Call model.finish_task() first."
        )
    return task


def _check_path_like(path, name):
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{name} must be a str or os.PathLike. Received: {name}={path!r}")
    return os.fspath(path)


def _check_keras_path(path):
    path = _check_path_like(path, "path")
    if not path.endswith(".keras"):
        raise ValueError(
            "The exported model is saved in the Keras format and its path must end in "
            f"'.keras'. Received: path={path!r}"
        )
    if os.path.isdir(path):
        raise ValueError(f"path {path!r} is a directory; pass a file path ending in '.keras'.")
    return path


def _check_saved_model(saved_model, path):
    if saved_model is False or saved_model is None:
        return None
    if saved_model is True:
        target = saved_model_path(path)
    else:
        target = _check_path_like(saved_model, "saved_model")
    if os.path.exists(target) and not os.path.isdir(target):
        raise ValueError(
            f"The SavedModel goes to the directory {target!r}, but a file is there. "
            "Remove it or pass saved_model=<another directory>."
        )
    return target


def _is_grown_model(model):
    # isinstance(model, GrownModel) without importing keras_grown.model, which
    # imports this module (GrownModel.export_task): by its registered name.
    return any(
        keras.saving.get_registered_name(cls) == "keras_grown>GrownModel"
        for cls in type(model).__mro__
    )
