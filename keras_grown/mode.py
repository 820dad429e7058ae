"""What a GrownModel is doing, as immutable values: `Mode` (the model) and `LayerMode` (a layer).

A GrownModel's state between two calls is a few decisions: which task it
computes, whether that task is finished, and for the task being learned
whether learnable growth is on, whether its masks are fixed and whether a
user took manual control. They used to be a dozen Python flags on the model
and on every layer, set one by one from several modules. They are now one
`Mode`, replaced (never edited) by the model's controller when something
changes, and one `LayerMode` per task-aware layer derived from it, which the
layer reads when a step is traced (like `trainable`: Python state read at
trace time, never a tensor).

Both are frozen dataclasses, hashable and comparable: `GrownModel` keys its
traced train, test and predict steps by them (`GrownModel.trace_key()`), so
that a new mode means a new trace, and an unchanged one keeps the trace.
"""

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class Mode:
    """What the whole model is doing.

    Attributes:
        task: the selected task (0-based) `predict()`/`evaluate()` answer
            for, None before the first task.
        finished: whether the selected task is finished (frozen).
        growth: learnable sparse growth is on for the task being learned.
        masks_fixed: the masks of the task being learned are fixed at their
            hard values (`GrownModel.fix_masks()`).
        manual: `grow()`, `fix_masks()` or `prune()` was called by hand on
            the task being learned: no growth schedule acts on it.

    `growth`, `masks_fixed` and `manual` describe the task being learned
    even while a finished task is selected (they come back when it is
    selected again); they are all False between tasks.
    """

    task: object = None
    finished: bool = False
    growth: bool = False
    masks_fixed: bool = False
    manual: bool = False

    def replace(self, **changes):
        """A copy with `changes` (`dataclasses.replace`)."""
        return dataclasses.replace(self, **changes)

    @property
    def learning(self):
        """Whether the selected task is the one being learned."""
        return self.task is not None and not self.finished

    def computed(self):
        """The part of the mode a traced step depends on (`manual` is not)."""
        return self.replace(manual=False)


@dataclasses.dataclass(frozen=True)
class LayerMode:
    """What one task-aware layer computes: the model's mode as the layer reads it, and its rule.

    The task part (set when the model selects a task):

    Attributes:
        task: the task whose per-task variables the layer reads (None: none).
        finished: the task is finished: it reads its stored masks and frozen
            values only.
        growth: learnable growth is on (the grown mask gates the dormant
            channels listed in `candidates`).
        masks_fixed: the masks are at their hard values (no noise, no score
            trained).
        candidates: the dormant output channels this growth round may switch
            on, as sorted channel indices; None: every dormant channel.
        pruned: PackNet's attentive mask is fixed by magnitude pruning
            (hard, not trained).

    The rule (set once per model by its method; constant through a task):

    Attributes:
        selective: the selective mask over owned (frozen) kernels is
            learned (False: every owned kernel is read).
        attentive: the attentive mask over free kernels is learned.
        retrain_released: free kernels of channels an earlier task
            activated are trained again (False: only grown channels get
            new weights).
        freeze_finished: finished tasks own what they use (False: the
            fine-tune and EWC baselines, which share and forget).
        noise: Gumbel noise in the straight-through masks while training.
        top_fraction: WSN's rule (`keras_grown.wsn`): the task's kernel mask
            is the top `top_fraction` of |score|; None: GROWN's
            Gumbel-Sigmoid rule.
        reinit_top_scores: with `top_fraction`, every task draws new scores.
    """

    task: object = None
    finished: bool = False
    growth: bool = False
    masks_fixed: bool = False
    candidates: object = None
    pruned: bool = False
    selective: bool = True
    attentive: bool = True
    retrain_released: bool = True
    freeze_finished: bool = True
    noise: bool = True
    top_fraction: object = None
    reinit_top_scores: bool = False

    def replace(self, **changes):
        """A copy with `changes`; `candidates` may be given as a bool array."""
        candidates = changes.get("candidates")
        if candidates is not None and not isinstance(candidates, tuple):
            changes["candidates"] = channel_indices(candidates)
        return dataclasses.replace(self, **changes)

    @property
    def learning(self):
        """Whether the layer computes a task being learned (masks sampled, scores trained)."""
        return self.task is not None and not self.finished

    def candidate_mask(self, units):
        """Bool [units]: `candidates` as a mask, or None for every dormant channel."""
        if self.candidates is None:
            return None
        mask = np.zeros((units,), bool)
        mask[list(self.candidates)] = True
        return mask


def channel_indices(mask):
    """The indices of the True entries of a bool mask, as a tuple of ints (hashable)."""
    return tuple(int(i) for i in np.flatnonzero(np.asarray(mask, bool)))


def trace_key(model):
    """What a GrownModel's traced train/test/predict steps depend on.

    The model's mode (`manual` aside), every task-aware layer's `LayerMode`
    and the plans (a new plan has new working variables, which a traced step
    captures; whether it owns any kernel decides if it reads the frozen
    store). Equal keys compute the same function of the same variables; a
    step traced for another key is traced again (`make_*_function`).
    """
    return (
        model.mode.computed(),
        tuple(layer.mode for layer in model.controller.task_layers),
        tuple(None if layer.plan is None else (layer.plan.serial, layer.plan.any_owned)
              for layer in model.grown_layers),
    )
