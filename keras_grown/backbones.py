"""Feature extractors built from grown layers.

A backbone is a function `backbone(inputs) -> features` written with the Keras
functional API. Widths are full-size widths; `GrownModel` calls the function
inside `growth_scope(seed_ratio=..., capacity=...)`, so the grown layers
allocate their capacity and pick their seed from the model's settings. Between
grown layers any shape-preserving Keras layer may stand (pooling, dropout,
activations), plus `Flatten`, `Add` and `Concatenate`: `channel_sources()`
traces which grown channels feed each layer through them.

Register your own with `keras.saving.register_keras_serializable()` to save
models built on it, and pass the function as `GrownModel(backbone=fn)`.
"""

import keras
import numpy as np

from keras_grown import _framework, graph
from keras_grown.layers import GrownConv2D, GrownDense, GrownLayer, growth_scope


@keras.saving.register_keras_serializable(package="keras_grown")
def lenet5(inputs):
    """LeNet-5 as in the paper (20-50-800-500): two 5x5 convs, two dense layers."""
    x = GrownConv2D(20, 5, activation="relu", name="conv1")(inputs)
    x = keras.layers.MaxPooling2D(2, name="pool1")(x)
    x = GrownConv2D(50, 5, activation="relu", name="conv2")(x)
    x = keras.layers.MaxPooling2D(2, name="pool2")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = GrownDense(800, activation="relu", name="fc1")(x)
    return GrownDense(500, activation="relu", name="fc2")(x)


@keras.saving.register_keras_serializable(package="keras_grown")
def lenet_small(inputs):
    """A small LeNet for small images (20-50-200-100): two 3x3 'same' convs, two dense layers.

    LeNet-5's 5x5 valid convolutions need images of 16x16 or more; this one
    keeps LeNet-5's layout (conv, pool, conv, pool, dense, dense) with 3x3
    'same' convolutions, so it takes any image of 4x4 or more (scikit-learn's
    8x8 digits), and smaller dense layers for the smaller feature map.
    """
    x = GrownConv2D(20, 3, padding="same", activation="relu", name="conv1")(inputs)
    x = keras.layers.MaxPooling2D(2, name="pool1")(x)
    x = GrownConv2D(50, 3, padding="same", activation="relu", name="conv2")(x)
    x = keras.layers.MaxPooling2D(2, name="pool2")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = GrownDense(200, activation="relu", name="fc1")(x)
    return GrownDense(100, activation="relu", name="fc2")(x)


_VGG16 = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


@keras.saving.register_keras_serializable(package="keras_grown")
def vgg16_bn(inputs):
    """VGG16 with batch normalization (13 3x3 convs, task-specific BN), CIFAR style."""
    x = inputs
    conv = 0
    for item in _VGG16:
        if item == "M":
            if x.shape[1] is not None and x.shape[1] < 2:
                continue
            x = keras.layers.MaxPooling2D(2, name=f"pool{conv}")(x)
        else:
            conv += 1
            x = GrownConv2D(
                item, 3, padding="same", batch_norm=True, activation="relu",
                name=f"conv{conv}",
            )(x)
    return keras.layers.GlobalAveragePooling2D(name="gap")(x)


@keras.saving.register_keras_serializable(package="keras_grown")
def resnet18(inputs):
    """ResNet-18 (CIFAR style: 3x3 stem, no stem pooling), every conv grown."""
    x = GrownConv2D(64, 3, padding="same", batch_norm=True, activation="relu", name="stem")(inputs)
    for stage, filters in enumerate((64, 128, 256, 512)):
        for block in range(2):
            strides = 2 if stage > 0 and block == 0 else 1
            name = f"stage{stage + 1}_block{block + 1}"
            shortcut = x
            h = GrownConv2D(filters, 3, strides=strides, padding="same", batch_norm=True,
                            activation="relu", name=f"{name}_conv1")(x)
            h = GrownConv2D(filters, 3, padding="same", batch_norm=True,
                            name=f"{name}_conv2")(h)
            if strides != 1 or shortcut.shape[-1] != h.shape[-1]:
                shortcut = GrownConv2D(filters, 1, strides=strides, batch_norm=True,
                                       name=f"{name}_shortcut")(shortcut)
            x = keras.layers.Activation("relu", name=f"{name}_relu")(
                keras.layers.Add(name=f"{name}_add")([h, shortcut]))
    return keras.layers.GlobalAveragePooling2D(name="gap")(x)


BACKBONES = {
    "lenet5": lenet5, "lenet_small": lenet_small, "vgg16_bn": vgg16_bn, "resnet18": resnet18,
}

# LeNet-5's smallest input: 5x5 valid conv (s - 4), 2x2 pool, 5x5 valid conv,
# 2x2 pool must leave at least one pixel, so s >= 16
# (`tests/test_bad_inputs.py` checks it against `smallest_input()`).
LENET5_SMALLEST_INPUT = 16


def default_backbone(input_shape):
    """The backbone keras-grown picks for images of `input_shape` when none is named.

    `"lenet5"` (the paper's) for images of 16x16 and larger; `"lenet_small"`
    for smaller ones (scikit-learn's 8x8 digits), which LeNet-5 cannot take.
    """
    spatial = tuple(int(d) for d in tuple(input_shape)[:-1])
    if spatial and min(spatial) < LENET5_SMALLEST_INPUT:
        return "lenet_small"
    return "lenet5"


def empty_output(model):
    """The first layer of a functional model whose output has a dimension < 1, or None.

    Valid convolutions and pooling on an image too small for them give
    feature maps of size 0 or less; Keras may build such a model anyway.
    """
    for operation in model.operations:
        for node in _framework.inbound_nodes(operation):
            for tensor in node.output_tensors:
                if any(d is not None and d < 1 for d in tensor.shape[1:]):
                    return operation.name, tuple(tensor.shape)
    return None


def takes_input(backbone, input_shape):
    """Whether `backbone` builds on images of `input_shape` with no empty feature map.

    Builds it once at the full-size width (capacity 1, no growth pool).
    """
    function = get_backbone(backbone)
    try:
        with growth_scope(seed_ratio=1.0, capacity=1.0):
            inputs = keras.Input(tuple(input_shape))
            features = function(inputs)
        return empty_output(keras.Model(inputs, features)) is None
    except Exception:  # any failure to build means: not this shape
        return False


def smallest_input(backbone, input_shape, largest=1024):
    """The smallest square image size (s, s) that `backbone` takes, or None.

    The channels are those of `input_shape`. Found by building the backbone
    at doubling sizes, then bisecting (each try builds it once): meant for
    error messages, not for hot paths. None when no size up to `largest`
    works, or for inputs that are not images (rank other than 3).
    """
    input_shape = tuple(int(d) for d in input_shape)
    if len(input_shape) != 3:
        return None
    channels = input_shape[-1]
    low, size = 0, 1  # low: the largest size known not to work
    while not takes_input(backbone, (size, size, channels)):
        low, size = size, size * 2
        if size > largest:
            return None
    while size - low > 1:
        middle = (low + size) // 2
        if takes_input(backbone, (middle, middle, channels)):
            size = middle
        else:
            low = middle
    return size, size


def get_backbone(backbone):
    """Returns the backbone function for a name or a callable."""
    if callable(backbone):
        return backbone
    if backbone not in BACKBONES:
        raise ValueError(
            f"Unknown backbone {backbone!r}. Expected one of {sorted(BACKBONES)} "
            "or a function `fn(inputs) -> features` built from grown layers."
        )
    return BACKBONES[backbone]


def saved_backbone(backbone):
    """The backbone a saved config names: a name of `BACKBONES`, or its registered function."""
    if not isinstance(backbone, str) or backbone in BACKBONES:
        return backbone
    function = keras.saving.get_registered_object(backbone)
    if function is None:
        raise ValueError(
            f"The saved model uses backbone {backbone!r}, which is not "
            "registered here. Import the module that defines it (decorated "
            "with keras.saving.register_keras_serializable) before loading."
        )
    return function


def backbone_name(backbone):
    if isinstance(backbone, str):
        return backbone
    return keras.saving.get_registered_name(backbone)


def build_backbone(backbone, input_shape, **growth_settings):
    """`backbone` as a functional `keras.Model` of images of `input_shape` to 2D features.

    Built inside `growth_scope(**growth_settings)`, so its grown layers take
    the model's seed ratio, capacity and mask settings. A backbone that
    cannot take images of `input_shape` is refused, with the smallest input
    it takes.
    """
    function = get_backbone(backbone)
    try:
        with growth_scope(**growth_settings):
            inputs = keras.Input(input_shape, name="image")
            features = function(inputs)
        model = keras.Model(inputs, features, name="backbone")
        empty = empty_output(model)
    except Exception as error:  # a shape error from inside a layer's call()
        _refuse_input_shape(backbone, input_shape, error, None)
        raise
    if empty is not None:
        _refuse_input_shape(backbone, input_shape, None, empty)
    if len(features.shape) != 2:
        raise ValueError(
            "A backbone must return 2D features (batch_size, features); "
            f"received shape {features.shape}. End it with Flatten or pooling."
        )
    return model


def _refuse_input_shape(backbone, input_shape, error, empty):
    """Raises a clear error when `backbone` cannot take images of `input_shape`.

    Called when building the backbone failed (`error`) or left a layer with an
    empty output (`empty`: (layer name, shape)). Returns (the caller re-raises
    `error`) when no input size works either: the failure is not the size.
    """
    smallest = smallest_input(backbone, input_shape)
    if smallest is None:
        if error is None:
            raise ValueError(
                f"The backbone's layer {empty[0]!r} gets an empty output of shape "
                f"{empty[1]} from images of input_shape={input_shape}. Check the backbone."
            )
        return
    name = backbone_name(backbone) if not callable(backbone) else getattr(
        backbone, "__name__", repr(backbone)
    )
    if empty is not None:
        why = f"its layer {empty[0]!r} would output shape {empty[1]}"
    else:
        why = "its convolutions and pooling shrink the feature maps below one pixel"
    fit = [n for n in BACKBONES
           if n != name and default_backbone(input_shape) == n]
    hint = f", or use backbone={fit[0]!r}, which takes images this small" if fit else ""
    raise ValueError(
        f"The backbone {name!r} cannot take images of input_shape={input_shape}: {why}. "
        f"The smallest input it takes is {smallest[0]}x{smallest[1]} "
        f"(input_shape={smallest + input_shape[-1:]}). Resize the images{hint}."
    ) from error


def channel_sources(model):
    """Traces, for every grown layer of a functional model, what feeds its inputs.

    Returns a function `input_on(channel_on)` that maps `{grown_layer: bool
    array [allocated_units]}` (which output channels of each grown layer are
    on) to `{grown_layer: bool array [input_dim]}` (which input channels of
    each grown layer are on), plus `"__features__"` for the model output.
    Model inputs are always on. `Flatten` repeats a channel mask over the
    spatial positions (channels last); `Add`/`Maximum`/`Average` take the union;
    `Concatenate` concatenates; any other layer must keep the channel count
    (the rules of `keras_grown.graph`).
    """
    grown = [layer for layer in model.layers if isinstance(layer, GrownLayer)]
    for layer in grown:
        if len(_framework.inbound_nodes(layer)) != 1:
            raise ValueError(
                f"Grown layer '{layer.name}' is called {len(_framework.inbound_nodes(layer))} "
                "times in the backbone; each grown layer must be called exactly once."
            )
    steps = graph.channel_steps(model.outputs[0])

    def input_on(channel_on):
        masks = {}
        for step in steps:
            if step.rule == graph.GROWN:
                mask = np.asarray(channel_on[step.op], bool)
            elif step.rule == graph.INPUT:
                mask = np.ones((step.channels,), bool)
            elif step.rule == graph.OTHER:
                raise ValueError(
                    f"Cannot trace channels through layer '{step.op.name}' "
                    f"({type(step.op).__name__}). Between grown layers use "
                    "shape-preserving layers, Flatten, Add or Concatenate "
                    "(on the channel axis, axis=-1)."
                )
            else:
                mask = graph.derive(step, [masks[id(t)] for t in step.parents])
            masks[id(step.tensor)] = mask
        result = {layer: masks[id(_framework.inbound_nodes(layer)[0].input_tensors[0])] for layer in grown}
        result["__features__"] = masks[id(model.outputs[0])]
        return result

    return input_on


def merged_channel_groups(model):
    """Groups of grown layers whose outputs meet in an element-wise merge (`Add`, ...).

    A task's step computes only some channels of each grown layer; tensors
    that are added together must hold the same channels, so every layer of a
    group computes the union of the group's channels (ResNet's blocks and
    identity shortcuts chain a whole stage into one group). Layers in no
    merge are not listed.

    Returns:
        A list of lists of grown layers.
    """
    classes = graph.channel_classes(graph.channel_steps(model.outputs[0]))
    groups = {}
    for layer in model.layers:
        if not isinstance(layer, GrownLayer):
            continue
        members = classes[id(_framework.inbound_nodes(layer)[0].output_tensors[0])]
        if any(step.rule == graph.MERGE for step in members):
            groups.setdefault(id(members), []).append(layer)
    return list(groups.values())
