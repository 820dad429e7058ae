"""What a GrownModel's selected task computes and trains: layer modes, candidates, plans.

Selecting a task sets every layer's mode (finished or learning, growth on or
off, masks fixed), the dormant channels a growth round may switch on, and,
with compact training, each grown layer's `TrainingPlan`: the on-part the
task being learned computes, with working variables of that size
(`keras_grown.layers.training_plan`). Then it sets which variables train.
"""

import math

import numpy as np
from keras import ops

from keras_grown.layers.training_plan import TrainingPlan


def configure_layers(model):
    """Gives every grown layer of `model` the model's mask rule (`LayerMode`'s rule part)."""
    for layer in model.grown_layers:
        layer.mode = layer.mode.replace(
            selective=model.selective_mask, attentive=model.attentive_mask,
            retrain_released=model.retrain_released,
            freeze_finished=model.freeze_finished_tasks, noise=model.mask_noise,
        )
        layer.after_load = model._after_layer_load


def score_variables(model):
    """The mask scores the current task trains: its plans' when it has plans."""
    plans = model._plans()
    if plans:
        return [v for plan in plans for v in plan.score_variables]
    return [v for layer in model.grown_layers for v in layer.score_variables]


def select(model, task):
    """Makes `task` the one `model` computes: each layer's mode, candidates, plan, trainables."""
    finished = model._tasks[task]["finished"]
    mode = model._mode
    growth = mode.growth and not finished
    fixed = mode.masks_fixed and not finished
    learning = model.current_task is not None
    for layer in model._task_layers:
        if layer not in model.grown_layers:
            layer.set_task(task, finished, growth)
            continue
        candidates = (
            growth_candidates(model, layer) if mode.growth and learning
            else np.zeros((layer.allocated_units,), bool)
        )
        layer.set_mode(layer.mode.replace(
            task=task, finished=finished, growth=growth, masks_fixed=fixed,
            candidates=candidates))
    current = model.current_task
    old_plans = update_plans(model)
    planned = bool(model._plans())
    for layer in model.grown_layers:
        # Only the masks this task learns are trainable variables; with a
        # plan, the working variables are (the storage is not).
        selective = model.selective_mask and not finished and not fixed
        attentive = (
            model.attentive_mask and not layer.mode.pruned and not finished and not fixed
        )
        layer.free_kernel.trainable = current is not None and not planned
        layer.selective_score.trainable = selective and not planned
        layer.attentive_score.trainable = attentive and not planned
        layer.grown_score.trainable = growth and not fixed and not planned
        if layer.plan is not None:
            layer.plan.set_trainable(
                model.selective_mask and not fixed,
                model.attentive_mask and not layer.mode.pruned and not fixed,
                mode.growth and not fixed,
            )
    if any(plan is not None for plan in old_plans.values()):
        model._move_optimizer_state(old_plans)
    model._mode = mode.replace(task=task, finished=finished)
    model._inference_cache.select_functions(model)


def growth_candidates(model, layer):
    """Bool [allocated]: the dormant channels a growth round of `layer` may switch on."""
    dormant = ops.convert_to_numpy(layer.active) == 0
    if model.growth_candidates is None:
        return dormant
    count = math.ceil(model.growth_candidates * layer.units - 1e-9)
    candidates = np.zeros_like(dormant)
    candidates[np.flatnonzero(dormant)[:count]] = True
    return candidates


def update_plans(model):
    """Makes each grown layer's plan match the task being learned and its growth round.

    A plan is kept while its channels stay the same (its working
    variables hold the task's training state); when they change (a new
    task, a growth round, loaded weights) a new plan is made.

    Returns:
        {layer: its previous plan (or None)} for the layers re-planned.
    """
    current = model.current_task
    if not (model.compact_training and model.freeze_finished_tasks and current is not None):
        drop_plans(model)
        return {}
    on = {}
    for layer in model.grown_layers:
        if model._mode.masks_fixed:
            # Masks fixed: only the channels that stay on are computed
            # (candidates whose grown mask is off are dropped).
            on[layer] = layer.hard_channel_on()
        else:
            on[layer] = (ops.convert_to_numpy(layer.active) > 0) | layer.candidate_mask
    for group in model._merge_groups:
        union = np.logical_or.reduce([on[layer] for layer in group])
        for layer in group:
            on[layer] = union
    input_on = model._input_on(on)
    old_plans = {}
    with model.distribute_strategy.scope():
        for layer in model.grown_layers:
            in_index = np.flatnonzero(input_on[layer]).astype("int32")
            out_index = np.flatnonzero(on[layer]).astype("int32")
            plan = layer.plan
            signature = TrainingPlan.signature_of(in_index, out_index, layer.candidate_mask)
            if plan is not None and plan.signature == signature:
                continue
            if plan is not None and plan.ahead:
                plan.store()
            old_plans[layer] = plan
            layer.plan = TrainingPlan(layer, in_index, out_index, layer.candidate_mask)
            layer.plan.load()
    model.heads.feature_index = np.flatnonzero(input_on["__features__"]).astype("int32")
    return old_plans


def drop_plans(model):
    """No plan: the task (or none) computes on the whole allocated width."""
    for layer in model.grown_layers:
        if layer.plan is not None and layer.plan.ahead:
            layer.plan.store()
        layer.plan = None
        if layer.normalization is not None:
            layer.normalization.channel_index = None
    model.heads.feature_index = None
