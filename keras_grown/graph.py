"""One walk over a backbone's functional graph, with the channel rules between grown layers.

A task computes only some channels of each grown layer, and three things
follow which channels reach which tensor: the input channels each grown layer
sees (`backbones.channel_sources`), the grown layers that must compute the
same channels (`backbones.merged_channel_groups`) and the channels a compact
export keeps (`compact.plan_channels`). All three walk the graph with
`channel_steps()`, which visits each tensor once, after the tensors it is
computed from, and names the rule it follows:

* `INPUT`: a model input, every channel on;
* `GROWN`: a grown layer's output, its own channels;
* `FLATTEN`: the channel mask repeated over the spatial positions (channels last);
* `MERGE`: `Add`, `Maximum`, `Average`, `Subtract`; the tensors joined must
  hold the same channels, the union of what they bring;
* `CONCATENATE`: the masks concatenated (a `Concatenate` on the channel axis;
  on another axis it is `OTHER`);
* `SAME`: any other layer of one input that keeps the channel count passes
  the mask through;
* `OTHER`: anything else (several inputs, or a changed channel count): the
  callers refuse it.

`derive()` applies the rules to masks, `channel_classes()` groups the tensors
that must hold the same channels.
"""

import dataclasses

import keras
import numpy as np

from keras_grown import _framework
from keras_grown.layers import GrownLayer

# The element-wise merges: the tensors they join must hold the same channels.
MERGE_LAYERS = (
    keras.layers.Add, keras.layers.Maximum, keras.layers.Average, keras.layers.Subtract,
)

INPUT, GROWN, FLATTEN, MERGE, CONCATENATE, SAME, OTHER = (
    "input", "grown", "flatten", "merge", "concatenate", "same", "other",
)


@dataclasses.dataclass(frozen=True, eq=False)
class ChannelStep:
    """One tensor of the graph, the operation and node computing it, and its channel rule.

    `node` is None and `parents` empty for a model input.
    """

    tensor: object
    op: object
    node: object
    parents: tuple
    rule: str

    @property
    def channels(self):
        return int(self.tensor.shape[-1])


def _step(tensor):
    op, node_index, _ = _framework.keras_history(tensor)
    if isinstance(op, keras.layers.InputLayer):
        return ChannelStep(tensor, op, None, (), INPUT)
    node = _framework.inbound_nodes(op)[node_index]
    parents = tuple(node.input_tensors)
    if isinstance(op, GrownLayer):
        rule = GROWN
    elif isinstance(op, keras.layers.Flatten):
        rule = FLATTEN
    elif isinstance(op, MERGE_LAYERS):
        rule = MERGE
    elif isinstance(op, keras.layers.Concatenate):
        # Only along the channels (the last axis) do the channel masks concatenate.
        rule = CONCATENATE if op.axis in (-1, len(tensor.shape) - 1) else OTHER
    elif len(parents) == 1 and parents[0].shape[-1] == tensor.shape[-1]:
        rule = SAME
    else:
        rule = OTHER
    return ChannelStep(tensor, op, node, parents, rule)


def channel_steps(output):
    """Every tensor `output` is computed from (itself included), as `ChannelStep`s.

    Each tensor comes once, after the tensors it is computed from (depth
    first, inputs in call order), so a tensor reached along several paths (a
    residual stream) is visited once.
    """
    steps, seen = [], set()
    stack = [(output, None)]
    while stack:
        tensor, step = stack.pop()
        if step is not None:  # its inputs are done
            steps.append(step)
            continue
        if id(tensor) in seen:
            continue
        seen.add(id(tensor))
        step = _step(tensor)
        stack.append((tensor, step))
        stack.extend((parent, None) for parent in reversed(step.parents))
    return steps


def derive(step, masks):
    """The channel mask of `step`'s tensor from the masks of its inputs (`masks`, in order).

    For the `FLATTEN`, `MERGE`, `CONCATENATE` and `SAME` rules.
    """
    if step.rule == FLATTEN:
        shape = step.parents[0].shape
        repeats = int(np.prod(shape[1:-1], dtype=int)) if len(shape) > 2 else 1
        # Channels last: the flat index is position * channels + channel.
        return np.tile(masks[0], repeats)
    if step.rule == MERGE:
        return np.logical_or.reduce(masks)
    if step.rule == CONCATENATE:
        return np.concatenate(masks)
    return masks[0]


def channel_classes(steps):
    """The tensors that must hold the same channels, as `{id(tensor): class}`.

    A merge joins its inputs and its output, a `SAME` layer its input and its
    output; a class is the tuple of its `ChannelStep`s (the same tuple for
    every tensor of the class), in the order of `steps`.
    """
    parent = {id(step.tensor): id(step.tensor) for step in steps}

    def find(key):
        while parent[key] != key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    for step in steps:
        if step.rule in (MERGE, SAME):
            for tensor in step.parents:
                parent[find(id(tensor))] = find(id(step.tensor))
    members = {}
    for step in steps:
        members.setdefault(find(id(step.tensor)), []).append(step)
    classes = {root: tuple(group) for root, group in members.items()}
    return {id(step.tensor): classes[find(id(step.tensor))] for step in steps}
