"""Compact export: a plain Keras model of what one finished task uses.

A `GrownModel` allocates the whole capacity pool and answers for a task through
its stored masks. For deployment a task needs none of that: `export_task()`
builds an ordinary `keras.Model` of standard layers (`Conv2D`, `Dense`,
`BatchNormalization`, `Activation`, pooling, `Flatten`, `Add`, ...) holding
only the channels the task uses, with the kernel entries its mask excludes
written as 0, its own biases and batch-norm state, and its own head. Dormant
channels and channels the task leaves off are removed, so the layers are as
narrow as the task. The exported model loads with Keras alone
(`keras.saving.load_model`), without importing `keras_grown`, and its
predictions equal the grown model's for that task (within float rounding: the
sums run over fewer, all-zero-or-equal terms).

Which channels are kept (DESIGN.md, "compact export"):

* the output channels of a grown layer are the task's channel mask
  (`layer.task_channel_mask(k)`); an off channel outputs exactly zero in the
  grown model, so nothing downstream can read it;
* tensors joined by `Add` (`Maximum`, `Average`, `Subtract`) must have the
  same channels: they keep the union of the channels of every grown layer that
  writes into them (a ResNet stage's residual stream). A grown layer that
  writes into such a stream keeps the union too; the channels it adds are
  *padding* (zero kernel, zero bias, batch norm with gamma = beta = 0), so they
  output exactly 0, as they do in the grown model;
* `Flatten` after a convolution repeats the channel selection over the spatial
  positions (channels last), `Concatenate` concatenates it, other weightless
  layers pass it through; the next layer's kernel is sliced along its input
  axis accordingly;
* the head keeps the rows of the kept features.

`export_size()` counts the weights of an export without building it.
"""

import dataclasses
import os
import shutil
import tempfile

import keras
import numpy as np
from keras import ops

from keras_grown.layers import GrownConv2D, GrownDense, GrownLayer

_MERGE_LAYERS = (
    keras.layers.Add,
    keras.layers.Maximum,
    keras.layers.Average,
    keras.layers.Subtract,
)


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
    plain = build_task_model(model, task)
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
    plan = _plan(model, task)
    used = kernels = biases = norms = padding = 0
    for layer in model.grown_layers:
        inputs, outputs = plan.layer_channels[layer]
        elems = _kernel_elems(layer)
        used += int(layer.task_kernel_mask(task).sum()) * elems
        kernels += len(inputs) * len(outputs) * elems
        biases += len(outputs) * int(layer.use_bias)
        norms += 4 * len(outputs) * int(layer.batch_norm)
        padding += int((~layer.task_channel_mask(task)[outputs]).sum())
    head = (len(plan.features) + 1) * model.heads.num_classes[task]
    return ExportSize(
        task=task,
        used_kernel_weights=used,
        kernel_weights=kernels,
        bias_weights=biases,
        batch_norm_weights=norms,
        head_weights=head,
        padding_channels=padding,
    )


def build_task_model(model, task):
    """The plain `keras.Model` of `task`, built in memory (`export_task` without files)."""
    task = _check_task(model, task)
    plan = _plan(model, task)
    backbone = model.backbone
    inputs = keras.Input(shape=model.image_shape, name="image")
    exported = {}
    clones = {}

    def convert(tensor):
        key = id(tensor)
        if key in exported:
            return exported[key]
        op, node_index, tensor_index = tensor._keras_history
        if isinstance(op, keras.layers.InputLayer):
            result = inputs
        elif isinstance(op, GrownLayer):
            result = _plain_grown_layer(
                op, task, plan, convert(op._inbound_nodes[0].input_tensors[0])
            )
        else:
            node = op._inbound_nodes[node_index]
            values = {id(t): convert(t) for t in node.input_tensors}
            args, kwargs = node.arguments.fill_in(values)
            if op not in clones:
                clones[op] = op.__class__.from_config(op.get_config())
            result = keras.tree.flatten(clones[op](*args, **kwargs))[tensor_index]
        exported[key] = result
        return result

    features = convert(backbone.outputs[0])
    heads = model.heads._task_variables[task]
    head = keras.layers.Dense(model.heads.num_classes[task], activation="softmax", name="head")
    outputs = head(features)
    head.set_weights([_numpy(heads["kernel"])[plan.features], _numpy(heads["bias"])])
    return keras.Model(inputs, outputs, name=f"{model.name}_task_{task}")


# --------------------------------------------------------------- planning
@dataclasses.dataclass
class _Plan:
    """Kept channels: per grown layer (input indices, output indices); features."""

    layer_channels: dict
    features: np.ndarray


def _plan(model, task):
    layouts = _channel_layouts(model, task)
    layer_channels = {}
    for layer in model.grown_layers:
        if not isinstance(layer, (GrownConv2D, GrownDense)):
            raise ValueError(
                f"export supports GrownConv2D and GrownDense; layer '{layer.name}' is a "
                f"{type(layer).__name__}."
            )
        node = layer._inbound_nodes[0]
        inputs = np.flatnonzero(layouts(node.input_tensors[0]))
        outputs = np.flatnonzero(layouts(node.output_tensors[0]))
        if len(inputs) == 0 or len(outputs) == 0:
            raise ValueError(
                f"Task {task} uses no channel of layer '{layer.name}' "
                f"({'inputs' if len(inputs) == 0 else 'outputs'}); its export would have "
                "an empty layer."
            )
        padding = ~layer.task_channel_mask(task)[outputs]
        if padding.any() and not _maps_zero_to_zero(layer.activation):
            raise ValueError(
                f"Layer '{layer.name}' writes into an Add whose channels it must pad with "
                "zeros, but its activation does not map 0 to 0. Use an activation with "
                "f(0) = 0 (relu, linear, tanh, ...) before an Add."
            )
        layer_channels[layer] = (inputs, outputs)
    features = np.flatnonzero(layouts(model.backbone.outputs[0]))
    return _Plan(layer_channels=layer_channels, features=features)


def _channel_layouts(model, task):
    """Returns `layout(tensor)`: bool array over the tensor's channels, the ones kept.

    Tensors that must carry the same channels (joined by a merge layer, or one
    passed through a channel-preserving layer) form one class; a class keeps
    the union of what its sources bring: a grown layer its channel mask, the
    model input everything, `Flatten`/`Concatenate` what they derive from their
    inputs (those cannot be padded: a conflict raises).
    """
    parent = {}
    sources = {}
    tensors = {}

    def find(key):
        while parent[key] != key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    def union(a, b):
        parent[find(a)] = find(b)

    def visit(tensor):
        key = id(tensor)
        if key in parent:
            return
        parent[key] = key
        tensors[key] = tensor
        op, node_index, _ = tensor._keras_history
        if isinstance(op, GrownLayer):
            sources[key] = ("grown", op.task_channel_mask(task))
            visit(op._inbound_nodes[0].input_tensors[0])
            return
        if isinstance(op, keras.layers.InputLayer):
            sources[key] = ("input", None)
            return
        if op.weights:
            raise ValueError(
                f"Cannot export layer '{op.name}' ({type(op).__name__}): it holds weights "
                "over the whole capacity pool that export cannot slice per task. Between "
                "grown layers use weightless layers (pooling, activations, Flatten, Add, "
                "Concatenate, Dropout)."
            )
        node = op._inbound_nodes[node_index]
        for parent_tensor in node.input_tensors:
            visit(parent_tensor)
        if isinstance(op, keras.layers.Flatten):
            sources[key] = ("derived", (op, node))
        elif isinstance(op, keras.layers.Concatenate):
            rank = len(tensor.shape)
            if op.axis not in (-1, rank - 1):
                raise ValueError(
                    f"Cannot export Concatenate layer '{op.name}' on axis {op.axis}: "
                    "only concatenation along the channel axis (-1) is supported."
                )
            sources[key] = ("derived", (op, node))
        elif isinstance(op, _MERGE_LAYERS):
            for parent_tensor in node.input_tensors:
                union(id(parent_tensor), key)
        elif len(node.input_tensors) == 1 and (node.input_tensors[0].shape[-1] == tensor.shape[-1]):
            union(id(node.input_tensors[0]), key)
        else:
            raise ValueError(
                f"Cannot export layer '{op.name}' ({type(op).__name__}): it changes the "
                "channel count. Between grown layers use shape-preserving layers, "
                "Flatten, Add or Concatenate."
            )

    visit(model.backbone.outputs[0])
    members = {}
    for key in parent:
        members.setdefault(find(key), []).append(key)
    class_layouts = {}

    def derive(op, node):
        parents = [layout(t) for t in node.input_tensors]
        if isinstance(op, keras.layers.Flatten):
            shape = node.input_tensors[0].shape
            repeats = int(np.prod(shape[1:-1], dtype=int)) if len(shape) > 2 else 1
            # Channels last: the flat index is position * channels + channel.
            return np.tile(parents[0], repeats)
        return np.concatenate(parents)

    def layout(tensor):
        root = find(id(tensor))
        if root in class_layouts:
            return class_layouts[root]
        kept = np.zeros((int(tensor.shape[-1]),), bool)
        derived = []
        for key in members[root]:
            kind, info = sources.get(key, (None, None))
            if kind == "grown":
                kept |= info
            elif kind == "input":
                kept[:] = True
            elif kind == "derived":
                value = derive(*info)
                kept |= value
                derived.append((key, value))
        for key, value in derived:
            if not np.array_equal(value, kept):
                op = tensors[key]._keras_history[0]
                raise ValueError(
                    f"Cannot export: the output of '{op.name}' ({type(op).__name__}) is "
                    "merged with tensors that use other channels, and it cannot be padded."
                )
        class_layouts[root] = kept
        return kept

    return layout


# ---------------------------------------------------------------- building
def _plain_grown_layer(layer, task, plan, x):
    """The standard layers computing `layer` for a finished `task` on kept channels."""
    inputs, outputs = plan.layer_channels[layer]
    channel_on = layer.task_channel_mask(task)[outputs]
    spatial = (None,) * len(layer.kernel_spatial_shape)
    # A finished task computes with where(use, frozen_kernel, 0): kernels it
    # does not read are 0, also inside the channels it keeps. Without
    # ownership (naive fine-tune, EWC: freeze_finished is False) it reads the
    # shared weights as they are now, like the grown model does.
    use = layer.task_kernel_mask(task)
    source = _numpy(layer.frozen_kernel)
    if not getattr(layer, "freeze_finished", True):
        owned = _numpy(layer.owner) > 0
        source = np.where(owned[spatial], source, _numpy(layer.free_kernel))
    kernel = np.where(use[spatial], source, 0.0).astype("float32")
    kernel = kernel[..., inputs, :][..., outputs]
    variables = layer._task_variables[task]
    activation = None if layer.batch_norm else layer.activation
    if isinstance(layer, GrownConv2D):
        core = keras.layers.Conv2D(
            len(outputs),
            layer.kernel_size,
            strides=layer.strides,
            padding=layer.padding,
            use_bias=layer.use_bias,
            activation=activation,
            name=layer.name,
        )
    else:
        core = keras.layers.Dense(
            len(outputs), use_bias=layer.use_bias, activation=activation, name=layer.name
        )
    x = core(x)
    weights = [kernel]
    if layer.use_bias:
        # Padding channels (kept only to line up an Add) output exactly 0.
        weights.append(np.where(channel_on, _numpy(variables["bias"])[outputs], 0.0))
    core.set_weights(weights)
    if not layer.batch_norm:
        return x
    norm = layer.normalization
    state = norm._task_variables[task]
    batch_norm = keras.layers.BatchNormalization(
        momentum=norm.momentum, epsilon=norm.epsilon, name=f"{layer.name}_bn"
    )
    x = batch_norm(x)
    batch_norm.set_weights(
        [
            np.where(channel_on, _numpy(state["gamma"])[outputs], 0.0),
            np.where(channel_on, _numpy(state["beta"])[outputs], 0.0),
            np.where(channel_on, _numpy(state["moving_mean"])[outputs], 0.0),
            np.where(channel_on, _numpy(state["moving_variance"])[outputs], 1.0),
        ]
    )
    if keras.activations.serialize(layer.activation) in ("linear", None):
        return x
    return keras.layers.Activation(layer.activation, name=f"{layer.name}_activation")(x)


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
    from keras_grown.model import GrownModel

    if not isinstance(model, GrownModel):
        raise TypeError(
            f"Compact export takes a keras_grown.GrownModel. Received: {type(model).__name__}."
        )


def _check_task(model, task):
    _check_model(model)
    if isinstance(task, bool) or not isinstance(task, (int, np.integer)):
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


def _maps_zero_to_zero(activation):
    if activation is None:
        return True
    return bool(np.all(_numpy(activation(ops.zeros((1,), "float32"))) == 0))


def _kernel_elems(layer):
    return int(np.prod(layer.kernel_spatial_shape, dtype=int))


def _numpy(variable):
    return np.asarray(ops.convert_to_numpy(variable))
