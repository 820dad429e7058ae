"""A finished task as a plain, compact Keras model, built in memory.

A finished task of a `GrownModel` computes through its stored masks inside the
allocated capacity pool. `build_task_model()` turns it into an ordinary
`keras.Model` of standard layers (`Conv2D`, `Dense`, `BatchNormalization`,
`Activation`, pooling, `Flatten`, `Add`, ...) holding only the channels the
task uses, with the kernel entries its mask excludes written as 0, its own
biases and batch-norm state, and its own head. `GrownModel`'s compact inference
runs it, `keras_grown.export` writes it to files; this module imports neither.

Which channels are kept (README.md, "Compact export"):

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
"""

import dataclasses

import keras
import numpy as np
from keras import ops

from keras_grown import _framework, graph
from keras_grown.layers import GrownConv2D, GrownDense


def build_task_model(model, task):
    """The plain `keras.Model` of finished task `task` of the GrownModel `model`.

    `task` is not checked here: `keras_grown.export.build_task_model` checks it.
    """
    plan = plan_channels(model, task)
    backbone = model.backbone
    inputs = keras.Input(shape=model.image_shape, name="image")
    clones, plain = {}, {}
    for step in graph.channel_steps(backbone.outputs[0]):
        if step.rule == graph.INPUT:
            value = inputs
        elif step.rule == graph.GROWN:
            value = _plain_grown_layer(step.op, task, plan, plain[id(step.parents[0])])
        else:
            op = step.op
            args, kwargs = step.node.arguments.fill_in({id(t): plain[id(t)] for t in step.parents})
            if op not in clones:
                clones[op] = op.__class__.from_config(op.get_config())
            tensor_index = _framework.keras_history(step.tensor)[2]
            value = keras.tree.flatten(clones[op](*args, **kwargs))[tensor_index]
        plain[id(step.tensor)] = value
    features = plain[id(backbone.outputs[0])]
    heads = model.heads._task_variables[task]
    head = keras.layers.Dense(
        model.heads.num_classes[task], activation="softmax", name="head", dtype="float32"
    )
    outputs = head(features)
    head.set_weights([_numpy(heads["kernel"])[plan.features], _numpy(heads["bias"])])
    return keras.Model(inputs, outputs, name=f"{model.name}_task_{task}")


# --------------------------------------------------------------- planning
@dataclasses.dataclass
class ChannelPlan:
    """Kept channels: per grown layer (input indices, output indices); features."""

    layer_channels: dict
    features: np.ndarray


def plan_channels(model, task):
    """The channels the compact model of `task` keeps (see `ChannelPlan`)."""
    layouts = _channel_layouts(model, task)
    layer_channels = {}
    for layer in model.grown_layers:
        if not isinstance(layer, (GrownConv2D, GrownDense)):
            raise ValueError(
                f"export supports GrownConv2D and GrownDense; layer '{layer.name}' is a "
                f"{type(layer).__name__}."
            )
        node = _framework.inbound_nodes(layer)[0]
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
    return ChannelPlan(layer_channels=layer_channels, features=features)


def _channel_layouts(model, task):
    """Returns `layout(tensor)`: bool array over the tensor's channels, the ones kept.

    Tensors that must carry the same channels (joined by a merge layer, or one
    passed through a channel-preserving layer) form one class
    (`graph.channel_classes`); a class keeps the union of what its sources
    bring: a grown layer its channel mask, the model input everything,
    `Flatten`/`Concatenate` what they derive from their inputs (those cannot be
    padded: a conflict raises).
    """
    steps = graph.channel_steps(model.backbone.outputs[0])
    for step in steps:
        _check_exportable(step)
    classes = graph.channel_classes(steps)
    class_layouts = {}

    def layout(tensor):
        members = classes[id(tensor)]
        if id(members) in class_layouts:
            return class_layouts[id(members)]
        kept = np.zeros((int(tensor.shape[-1]),), bool)
        derived = []
        for step in members:
            if step.rule == graph.GROWN:
                kept |= step.op.task_channel_mask(task)
            elif step.rule == graph.INPUT:
                kept[:] = True
            elif step.rule in (graph.FLATTEN, graph.CONCATENATE):
                value = graph.derive(step, [layout(t) for t in step.parents])
                kept |= value
                derived.append((step, value))
        for step, value in derived:
            if not np.array_equal(value, kept):
                raise ValueError(
                    f"Cannot export: the output of '{step.op.name}' ({type(step.op).__name__}) "
                    "is merged with tensors that use other channels, and it cannot be padded."
                )
        class_layouts[id(members)] = kept
        return kept

    return layout


def _check_exportable(step):
    """Refuses a layer between grown layers that the compact export cannot slice."""
    op = step.op
    if step.rule in (graph.INPUT, graph.GROWN):
        return
    if op.weights:
        raise ValueError(
            f"Cannot export layer '{op.name}' ({type(op).__name__}): it holds weights "
            "over the whole capacity pool that export cannot slice per task. Between "
            "grown layers use weightless layers (pooling, activations, Flatten, Add, "
            "Concatenate, Dropout)."
        )
    if step.rule == graph.CONCATENATE and op.axis not in (-1, len(step.tensor.shape) - 1):
        raise ValueError(
            f"Cannot export Concatenate layer '{op.name}' on axis {op.axis}: "
            "only concatenation along the channel axis (-1) is supported."
        )
    if step.rule == graph.OTHER:
        raise ValueError(
            f"Cannot export layer '{op.name}' ({type(op).__name__}): it changes the "
            "channel count. Between grown layers use shape-preserving layers, "
            "Flatten, Add or Concatenate."
        )


# ---------------------------------------------------------------- building
def _plain_grown_layer(layer, task, plan, x):
    """The standard layers computing `layer` for a finished `task` on kept channels."""
    inputs, outputs = plan.layer_channels[layer]
    channel_on = layer.task_channel_mask(task)[outputs]
    # A finished task computes with where(use, frozen_kernel, 0): kernels it
    # does not read are 0, also inside the channels it keeps. Without
    # ownership (naive fine-tune, EWC: freeze_finished is False) it reads the
    # shared weights as they are now, like the grown model does.
    kernel = _numpy(layer.finished_kernel(
        layer.task_kernel_mask(task), _numpy(layer.owner), _numpy(layer.frozen_kernel),
        _numpy(layer.free_kernel),
    )).astype("float32")
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
            dtype=layer.dtype_policy,
        )
    else:
        core = keras.layers.Dense(
            len(outputs), use_bias=layer.use_bias, activation=activation, name=layer.name,
            dtype=layer.dtype_policy,
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
        momentum=norm.momentum, epsilon=norm.epsilon, name=f"{layer.name}_bn",
        dtype=layer.dtype_policy,
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
    return keras.layers.Activation(
        layer.activation, name=f"{layer.name}_activation", dtype=layer.dtype_policy
    )(x)


def _maps_zero_to_zero(activation):
    if activation is None:
        return True
    return bool(np.all(_numpy(activation(ops.zeros((1,), "float32"))) == 0))


def _numpy(variable):
    return np.asarray(ops.convert_to_numpy(variable))
