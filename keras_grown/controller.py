"""The one object that changes what a GrownModel is doing: its `Controller`.

A GrownModel's state between two calls is its `Mode` (`keras_grown.mode`),
the list of its tasks, and what follows from them: every task-aware layer's
`LayerMode`, the dormant channels a growth round may switch on, and with
compact training each grown layer's `TrainingPlan` (the on-part the task
being learned computes, with working variables of that size). The
controller holds that state and is the only code that changes it: the
bodies of `add_task()`, `grow()`, `fix_masks()`, `prune()`, `finish_task()`
and `select_task()` are its methods, run by `GrownModel` after its checks and
inside its all-or-nothing transaction; the growth schedule changes phase
through the same public calls. Everything a traced step reads is derived
from the mode in `select()`, and the mode (with the layers' modes and plans)
is the key of the traced steps (`keras_grown.mode.trace_key`). docs/design.md
describes the whole design.
"""

import math

import numpy as np
from keras import ops

from keras_grown import compiling
from keras_grown.inference_cache import InferenceCache
from keras_grown.layers.training_plan import TrainingPlan
from keras_grown.mode import Mode
from keras_grown.sizing import TaskSummary, has_dormant_channels


class Controller:
    """The state of a GrownModel's tasks and the steps that change it.

    Args:
        model: the `GrownModel` (its layers are built).
        task_layers: every task-aware layer, the heads last.
        input_on: `backbones.channel_sources(backbone)`: the input channels
            of each grown layer (and of the heads, `"__features__"`) for a
            {grown layer: bool [allocated] output channels on}.
        merge_groups: the grown layers that must compute the same channels
            (`backbones.merged_channel_groups`).
        channel_weights: each grown layer's weight of one channel, over one
            full-size backbone (`sizing.measure_full_size`).

    Attributes:
        tasks: one dict per task added, `{"num_classes", "finished"}`.
        mode: what the model is doing (`Mode`): replaced, never edited.
        inference_cache: the compact models and traced steps of finished
            tasks (`InferenceCache`).
        compile_settings: the last `compile()`'s arguments.
        in_fit: True while `fit()` runs: the working variables of the
            task's plans are then newer than the storage.
        schedule_acting: True while the growth schedule calls `grow()` or
            `fix_masks()` (not manual control).
        fit_undo: what a `fit()` that changed phase puts back if it fails
            later (a `Transaction`), or None.
    """

    def __init__(self, model, task_layers, input_on, merge_groups, channel_weights):
        self.model = model
        self.task_layers = list(task_layers)
        self.input_on = input_on
        self.merge_groups = merge_groups
        self.channel_weights = channel_weights
        self.tasks = []
        self.mode = Mode()
        self.inference_cache = InferenceCache()
        self.compile_settings = compiling.CompileSettings()
        self.in_fit = False
        self.schedule_acting = False
        self.fit_undo = None
        self.configure_layers()

    @property
    def grown_layers(self):
        return self.model.grown_layers

    @property
    def current_task(self):
        """Index of the task being learned, or None between tasks."""
        if self.tasks and not self.tasks[-1]["finished"]:
            return len(self.tasks) - 1
        return None

    def num_classes(self, task):
        return self.tasks[task]["num_classes"]

    # ---------------------------------------------------------- the layers
    def configure_layers(self):
        """Gives every grown layer the model's mask rule (`LayerMode`'s rule part)."""
        model = self.model
        for layer in self.grown_layers:
            layer.mode = layer.mode.replace(
                selective=model.selective_mask, attentive=model.attentive_mask,
                retrain_released=model.retrain_released,
                freeze_finished=model.freeze_finished_tasks, noise=model.mask_noise,
            )
            layer.after_load = self.after_layer_load

    def after_layer_load(self):
        # Loaded storage may hold other active channels: re-plan the task.
        if self.tasks and self.mode.task is not None:
            self.select(self.mode.task)

    def score_variables(self):
        """The mask scores the current task trains: its plans' when it has plans."""
        plans = self.plans()
        if plans:
            return [v for plan in plans for v in plan.score_variables]
        return [v for layer in self.grown_layers for v in layer.score_variables]

    def select(self, task):
        """Makes `task` the one the model computes: each layer's mode, candidates, plan, trainables."""
        model = self.model
        finished = self.tasks[task]["finished"]
        mode = self.mode
        growth = mode.growth and not finished
        fixed = mode.masks_fixed and not finished
        learning = self.current_task is not None
        for layer in self.task_layers:
            if layer not in self.grown_layers:
                layer.set_task(task, finished, growth)
                continue
            candidates = (
                self.growth_candidates(layer) if mode.growth and learning
                else np.zeros((layer.allocated_units,), bool)
            )
            layer.set_mode(layer.mode.replace(
                task=task, finished=finished, growth=growth, masks_fixed=fixed,
                candidates=candidates))
        current = self.current_task
        old_plans = self.update_plans()
        planned = bool(self.plans())
        for layer in self.grown_layers:
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
            self.move_optimizer_state(old_plans)
        self.mode = mode.replace(task=task, finished=finished)
        self.inference_cache.select_functions(model)

    def growth_candidates(self, layer):
        """Bool [allocated]: the dormant channels a growth round of `layer` may switch on."""
        dormant = ops.convert_to_numpy(layer.active) == 0
        share = self.model.growth_candidates
        if share is None:
            return dormant
        count = math.ceil(share * layer.units - 1e-9)
        candidates = np.zeros_like(dormant)
        candidates[np.flatnonzero(dormant)[:count]] = True
        return candidates

    # ------------------------------------------------------------ the plan
    def recompile(self):
        """Compiles again with the last settings: fresh optimizers (`compiling.recompile`)."""
        compiling.recompile(self.model)

    def compiled_with(self):
        """The arguments of the last `compile()` (None if never compiled)."""
        return self.compile_settings.arguments

    def move_optimizer_state(self, old_plans):
        """New optimizers for new plans, their state moved over (`compiling`)."""
        compiling.move_optimizer_state(self.model, old_plans)

    def plans(self):
        return [layer.plan for layer in self.grown_layers if layer.plan is not None]

    def load_working(self):
        """Storage -> working variables (outside fit(): storage is the truth)."""
        if self.in_fit:
            return
        for plan in self.plans():
            plan.load()

    def store_working(self):
        """Working variables -> storage (after training steps)."""
        for plan in self.plans():
            if plan.ahead:
                plan.store()

    def update_plans(self):
        """Makes each grown layer's plan match the task being learned and its growth round.

        A plan is kept while its channels stay the same (its working
        variables hold the task's training state); when they change (a new
        task, a growth round, loaded weights) a new plan is made.

        Returns:
            {layer: its previous plan (or None)} for the layers re-planned.
        """
        model = self.model
        if not (model.compact_training and model.freeze_finished_tasks
                and self.current_task is not None):
            self.drop_plans()
            return {}
        on = {}
        for layer in self.grown_layers:
            if self.mode.masks_fixed:
                # Masks fixed: only the channels that stay on are computed
                # (candidates whose grown mask is off are dropped).
                on[layer] = layer.hard_channel_on()
            else:
                on[layer] = (ops.convert_to_numpy(layer.active) > 0) | layer.candidate_mask
        for group in self.merge_groups:
            union = np.logical_or.reduce([on[layer] for layer in group])
            for layer in group:
                on[layer] = union
        input_on = self.input_on(on)
        old_plans = {}
        with model.distribute_strategy.scope():
            for layer in self.grown_layers:
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

    def drop_plans(self):
        """No plan: the task (or none) computes on the whole allocated width."""
        for layer in self.grown_layers:
            if layer.plan is not None and layer.plan.ahead:
                layer.plan.store()
            layer.plan = None
            if layer.normalization is not None:
                layer.normalization.channel_index = None
        self.model.heads.feature_index = None

    # ------------------------------------------------------ a task's life
    def create_task(self, num_classes):
        """Adds a task's head and per-task state to every task-aware layer."""
        # Per-task variables are created after build: under tf.distribute they
        # must be created in the strategy the model was built in, to be mirrored
        # like the rest (a model built outside any strategy gets the default
        # strategy, a no-op).
        with self.model.distribute_strategy.scope():
            for layer in self.task_layers:
                if layer is self.model.heads:
                    layer.add_head(num_classes)
                else:
                    layer.add_task_state()
        self.tasks.append({"num_classes": num_classes, "finished": False})

    def freeze_task(self, task):
        """Freezes `task`'s head, biases and batch-norm state in every task-aware layer."""
        for layer in self.task_layers:
            layer.freeze_task_state(task)

    def restore_tasks(self, tasks, growth_enabled, masks_fixed, manual, selected_task):
        """Recreates the tasks of a saved model (its config) before its weights load."""
        for spec in tasks:
            self.create_task(int(spec["num_classes"]))
            if spec.get("finished", True):
                self.tasks[-1]["finished"] = True
                self.freeze_task(len(self.tasks) - 1)
        learning = self.current_task is not None
        self.mode = self.mode.replace(
            growth=bool(growth_enabled) and learning, masks_fixed=bool(masks_fixed) and learning)
        if selected_task is not None and self.tasks:
            self.select(int(selected_task))
        self.mode = self.mode.replace(manual=bool(manual) and learning)

    def start_task(self, num_classes, grow):
        """Creates a task of `num_classes` classes, selects it and compiles; returns its index."""
        self.create_task(num_classes)
        index = len(self.tasks) - 1
        for layer in self.grown_layers:
            layer.reset_scores()
            if index > 0:
                # The frozen kernels a task reuses were trained with the
                # previous task's biases and batch-norm state: start there.
                layer.inherit_task_state(index, index - 1)
        if grow is None:
            grow = index == 0
        self.mode = self.mode.replace(
            growth=bool(grow) and self.model.learnable_growth
            and has_dormant_channels(self.model),
            masks_fixed=False, manual=False)
        self.select(index)
        self.recompile()
        return index

    def _manual(self):
        """The mode after a call by hand (not by the growth schedule)."""
        return self.mode.replace(manual=self.mode.manual or not self.schedule_acting)

    def start_growth_round(self):
        """Turns learnable sparse growth on (again) for the current task."""
        self.store_working()
        if self.mode.growth:
            for layer in self.grown_layers:
                layer.reset_dormant_grown_scores()
        self.mode = self.mode.replace(growth=True, masks_fixed=False)
        self.select(self.current_task)
        self.mode = self._manual()

    def fix_masks(self):
        """Fixes the current task's masks at their hard values."""
        self.store_working()
        self.mode = self.mode.replace(masks_fixed=True)
        self.select(self.current_task)
        self.mode = self._manual()

    def prune(self, ratio):
        """Prunes the free kernels the current task uses; {layer name: (kept, pruned)}."""
        self.store_working()
        self.select(self.current_task)
        input_on = self.input_on({l: l.hard_channel_on() for l in self.grown_layers})
        result = {l.name: l.prune_free_kernels(ratio, input_on[l]) for l in self.grown_layers}
        self.select(self.current_task)
        self.mode = self.mode.replace(manual=True)
        return result

    def finish_writes(self, task):
        """The storage `finish_task()` writes: frozen kernels, ownership, the task's stored masks."""
        return [
            v for layer in self.grown_layers
            for v in (layer.frozen_kernel, layer.owner, layer.active,
                      layer._task_variables[task]["kernel_mask"],
                      layer._task_variables[task]["channel_mask"])
        ]

    def finish_task(self, task):
        """Hardens `task`'s masks, gives it what it uses and freezes it; its `TaskSummary`."""
        model = self.model
        self.store_working()
        self.select(task)
        channel_on = {layer: layer.hard_channel_on() for layer in self.grown_layers}
        input_on = self.input_on(channel_on)
        layers = {
            layer.name: layer.finish_task_state(input_on[layer]) for layer in self.grown_layers
        }
        self.freeze_task(task)
        self.tasks[task]["finished"] = True
        self.mode = self.mode.replace(growth=False, masks_fixed=False, manual=False)
        self.select(task)
        if getattr(model, "optimizer", None) is not None:
            # The task's optimizer state has no further use: drop its slots.
            self.recompile()
        return TaskSummary(task=task, layers=layers, size=model.model_size())
