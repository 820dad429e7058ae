"""Size accounting of a GrownModel: the paper's model size, per-task growth, the l0 term.

Every count is derived from the layers' state (`owner`, `active`, the stored
masks), never kept on the side. The unit is the full-size backbone: the
kernel weights of one backbone at the full-size width (`full_size_weights`).
"""

import dataclasses
import math
import zlib

import numpy as np
from keras import ops

from keras_grown import masks

# What the l0 term counts (`GrownModel(l0_scope=...)`, see `growth_terms`).
L0_SCOPES = ("grown_channels", "new_weights")


@dataclasses.dataclass(frozen=True)
class ModelSize:
    """The size of a GrownModel, in the paper's terms.

    Attributes:
        ratio: weights owned by any task over the weights of one full-size
            backbone (the paper's "0.5x ... 1.2x").
        owned_weights: backbone kernel weights owned by some task.
        full_size_weights: kernel weights of one full-size backbone.
        head_weights: weights of the task heads, counted over the features
            each task uses (kernel + bias), reported apart.
        task_specific_weights: per-task biases and batch-norm affines of the
            finished tasks, reported apart.
        mask_bytes: bytes of the stored per-task masks (1 bit per kernel and
            per channel, packed).
        owned_by_task: owned backbone weights per task.
        mask_entropy_bytes: the same stored masks after lossless
            compression, at its bound: each stored mask (one layer's kernel
            mask or channel mask of one finished task) costs its order-0
            entropy, `ceil(n * H(ones / n) / 8)` bytes for `n` bits
            (`keras_grown.masks.mask_entropy_bits`): what an arithmetic coder
            of the bits with the mask's own frequency of ones reaches, and no
            coder of independent bits (Huffman over bits included) does
            better. A mask all on or all off costs 0.
        mask_zlib_bytes: the same stored masks through a standard
            compressor: per finished task, its packed masks of every layer
            (kernel then channel mask, in layer order) as one
            `zlib.compress(..., 9)` stream, headers included.
    """

    ratio: float
    owned_weights: int
    full_size_weights: int
    head_weights: int
    task_specific_weights: int
    mask_bytes: int
    owned_by_task: tuple
    # Defaults: results saved before these fields existed still load.
    mask_entropy_bytes: int = 0
    mask_zlib_bytes: int = 0

    def __str__(self):
        return (
            f"{self.ratio:.3f}x ({self.owned_weights:,} of {self.full_size_weights:,} "
            f"full-size weights; heads {self.head_weights:,}; masks {self.mask_bytes:,} B, "
            f"{self.mask_entropy_bytes:,} B compressed)"
        )


@dataclasses.dataclass(frozen=True)
class TaskSummary:
    """What `finish_task()` did: per-layer growth and the model size after it."""

    task: int
    layers: dict
    size: ModelSize

    @property
    def channels_grown(self):
        return sum(v["channels_grown"] for v in self.layers.values())

    @property
    def kernels_taken(self):
        return sum(v["kernels_taken"] for v in self.layers.values())


def kernel_elements(layer):
    """Weights in one kernel of `layer`: `kh * kw` for a convolution, 1 for Dense."""
    return int(np.prod(layer.kernel_spatial_shape, dtype=int))


def measure_full_size(grown_layers, input_on):
    """The kernel weights of one full-size backbone, and each layer's weight of one channel.

    Sets each layer's `full_input_dim` (its inputs at the full-size width, as
    `input_on` traces them through the backbone).

    Returns:
        `(full_size_weights, channel_weights)`: `channel_weights[i]` is what
        one channel of `grown_layers[i]` adds at full-size fan-in, over the
        weights of one full-size backbone (its weight in the l0 term and in
        the growth ratio).
    """
    full_on = {layer: np.arange(layer.allocated_units) < layer.units for layer in grown_layers}
    full_in = input_on(full_on)
    total = 0
    for layer in grown_layers:
        layer.full_input_dim = int(full_in[layer].sum())
        total += layer.full_input_dim * layer.units * kernel_elements(layer)
    channel_weights = [
        layer.full_input_dim * kernel_elements(layer) / total for layer in grown_layers
    ]
    return total, channel_weights


def model_size(model):
    """The size of `model` after its finished tasks (see `ModelSize`)."""
    owned = 0
    by_task = np.zeros(model.num_tasks, dtype=np.int64)
    mask_bytes = 0
    task_specific = 0
    mask_entropy_bytes = 0
    task_streams = {k: [] for k in model.finished_tasks}
    for layer in model.grown_layers:
        owner = ops.convert_to_numpy(layer.owner)
        elems = kernel_elements(layer)
        if model.freeze_finished_tasks:
            owned += int((owner > 0).sum()) * elems
            for k in range(model.num_tasks):
                by_task[k] += int((owner == k + 1).sum()) * elems
        else:
            # Nothing is owned: count the shared kernels any task uses.
            used = np.zeros(owner.shape, bool)
            for k in model.finished_tasks:
                task_use = layer.task_kernel_mask(k)
                by_task[k] += int((task_use & ~used).sum()) * elems
                used |= task_use
            owned += int(used.sum()) * elems
        for k in model.finished_tasks:
            variables = layer._task_variables[k]
            mask_bytes += int(variables["kernel_mask"].shape[0])
            mask_bytes += int(variables["channel_mask"].shape[0])
            for key, bits in (("kernel_mask", layer.task_kernel_mask(k)),
                              ("channel_mask", layer.task_channel_mask(k))):
                mask_entropy_bytes += math.ceil(masks.mask_entropy_bits(bits) / 8)
                task_streams[k].append(ops.convert_to_numpy(variables[key]).tobytes())
            channels = int(layer.task_channel_mask(k).sum())
            task_specific += channels * (int(layer.use_bias) + 2 * int(layer.batch_norm))
    head_weights = 0
    for k in model.finished_tasks:
        features = model.controller.input_on({l: l.task_channel_mask(k) for l in model.grown_layers})
        head_weights += (int(features["__features__"].sum()) + 1) * model.controller.num_classes(k)
    return ModelSize(
        ratio=owned / model.full_size_weights,
        owned_weights=owned,
        full_size_weights=model.full_size_weights,
        head_weights=head_weights,
        task_specific_weights=task_specific,
        mask_bytes=mask_bytes,
        owned_by_task=tuple(int(v) for v in by_task),
        mask_entropy_bytes=mask_entropy_bytes,
        mask_zlib_bytes=sum(len(zlib.compress(b"".join(s), 9)) for s in task_streams.values()),
    )


def has_dormant_channels(model):
    """Whether any grown layer of `model` has a channel left to grow."""
    return any(
        bool((ops.convert_to_numpy(layer.active) == 0).any())
        for layer in model.grown_layers
    )


def growth_report(model):
    """Per grown layer of `model`: active width over full-size width, kernels owned per task."""
    report = []
    for layer in model.grown_layers:
        owner = ops.convert_to_numpy(layer.owner)
        active = int((ops.convert_to_numpy(layer.active) > 0).sum())
        report.append(
            {
                "layer": layer.name,
                "full_width": layer.units,
                "allocated_width": layer.allocated_units,
                "active_channels": active,
                "growth_ratio": active / layer.units,
                "kernels_owned_by_task": [
                    int((owner == k + 1).sum()) for k in range(model.num_tasks)
                ],
            }
        )
    return report


def growth_terms(model):
    """(l0, growth_ratio) of the task being learned, from the mask scores: tensor math only.

    Over each layer's plan (its on-part) when the task has one, else over
    the allocated width: channels and kernels outside the plan add 0.
    """
    l0 = ops.zeros(())
    ratio = ops.zeros(())
    for layer, weight in zip(model.grown_layers, model.controller.channel_weights):
        active, candidate, grown_score, owned, attentive_score = layer.growth_state()
        on = ops.sum(active)
        channel_probability = active
        if model.growth_enabled:
            # The l0 norm of the grown mask is not differentiable: use its
            # expectation sum(sigmoid(score)) over this round's candidates,
            # each weighted by the share of one full-size backbone it adds.
            grown = candidate * masks.on_probability(grown_score)
            channel_probability = channel_probability + grown
            if model.l0_scope == "grown_channels":
                l0 = l0 + weight * masks.expected_l0(grown_score, where=candidate)
            on = on + ops.sum(candidate * masks.hard_mask(grown_score))
        if model.l0_scope == "new_weights" and layer.mode.attentive:
            # Expected number of free weights the task takes: kernel kept
            # (attentive mask) times its channel on (active or grown).
            kept = ops.sum((1.0 - owned) * masks.on_probability(attentive_score), axis=0)
            l0 = l0 + ops.sum(kept * channel_probability) * (
                kernel_elements(layer) / model.full_size_weights
            )
        ratio = ratio + weight * on
    return l0, ratio
