"""WSN's subnetwork rule over a grown layer: the top c of its kernel scores.

Kang et al. (ICML 2022), "Forget-free Continual Learning with Winning
Subnetworks" (WSN): a task uses, in every layer, the fraction c of the
weights with the largest score magnitudes; the hard top-c selection is used
forward and the gradient goes to the scores straight through
(`keras_grown.masks.straight_through_top_fraction`). In our engine the rule
replaces the Gumbel-Sigmoid over a layer's combined kernel score (the
selective score where owned, the attentive score where free) when the
layer's `top_fraction` is set (`keras_grown.wsn.WSN` sets it); everything
else (owner / frozen / free storage, stored masks, size) is the engine's.

These are the eager (NumPy) parts: the scores a task starts from and the
merge of the two score stores. The masks, traced or hard, come from
`GrownLayer.kernel_mask` (which calls `GrownLayer._kernel_sample`).
"""

import math

import keras
import numpy as np
from keras import ops


def reset_scores(layer):
    """The kernel scores a task starts from.

    The first task (and every task with `layer.mode.reinit_top_scores`) draws
    them from U(-b, b), b = 1 / sqrt(fan-in): the bound of the public code's
    `kaiming_uniform_(a=sqrt(5))` score initialisation, here one score per
    kernel. A later task keeps the scores the previous task ended with
    (`merge_scores` made them one store), as the public code does (it does
    not re-initialise the scores between tasks). The draw comes from the
    layer's seed generator, which is saved with the model: a resumed run
    draws what an uninterrupted one draws.
    """
    layer.grown_score.assign(
        ops.full(layer.grown_score.shape, layer.grown_init, dtype="float32")
    )
    if layer.num_task_states > 1 and not layer.mode.reinit_top_scores:
        return
    fan_in = layer.input_dim * int(np.prod(layer.kernel_spatial_shape, dtype=int))
    bound = 1.0 / math.sqrt(fan_in)
    score = keras.random.uniform(
        layer.selective_score.shape, -bound, bound, seed=layer.seed_generator
    )
    layer.selective_score.assign(score)
    layer.attentive_score.assign(score)


def merge_scores(layer, owner):
    """Makes the selective and attentive stores one score per kernel (before ownership moves).

    A task reads the selective store where a kernel is owned and the
    attentive store where it is free; the kernels a finishing task takes
    were scored in the attentive store. Writing the combined view into both
    lets the next task start from exactly the scores this one ended with.
    The combined view under the old `owner` does not change, so a
    `finish_task()` that fails after this leaves the scores as they read.
    """
    combined = np.where(
        owner > 0,
        ops.convert_to_numpy(layer.selective_score),
        ops.convert_to_numpy(layer.attentive_score),
    )
    layer.selective_score.assign(combined)
    layer.attentive_score.assign(combined)
