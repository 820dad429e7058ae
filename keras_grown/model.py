"""GrownModel: one Keras model that learns a stream of tasks by growing."""

import inspect

import keras
import tensorflow as tf
from keras import ops

from keras_grown import backbones as backbones_lib
from keras_grown import (
    _framework, compiling, distribution, export, fit_guard, schedule, sizing, validation,
)
from keras_grown.controller import Controller
from keras_grown.mode import trace_key
from keras_grown.layers import GrownLayer, TaskHeads, TaskStateMixin
# Re-exported: `from keras_grown.model import ModelSize` (and L0_SCOPES) keeps working.
from keras_grown.sizing import L0_SCOPES, ModelSize, TaskSummary  # noqa: F401
from keras_grown.transaction import public_call


# Constructor arguments get_config() reads from the attribute of the same name.
_CONFIG_ATTRIBUTES = (
    "seed_ratio", "capacity", "l0_lambda", "temperature", "gumbel", "selective_init",
    "attentive_init", "grown_init", "mask_learning_rate", "selective_mask", "attentive_mask",
    "learnable_growth", "retrain_released", "l0_scope", "freeze_finished_tasks",
    "growth_candidates", "compact_training", "mask_noise", "seed",
)


@keras.saving.register_keras_serializable(package="keras_grown")
class GrownModel(keras.Model):
    """A continual learner that grows a small seed network only when necessary.

    GROWN (README.md, "How it works"): tasks arrive one after another, each with its own
    head. The backbone starts as a seed (`seed_ratio` of the full-size width)
    inside a pool of `capacity` times the full-size width. For every task:

    * `add_task(ds)`: a new head; old weights are frozen, a selective mask
      picks which of them the task reads, released weights train under an
      attentive mask (the first task grows from the start).
    * `fit(...)`: Keras training (loss plus `l0_lambda * l0` while growing);
      its growth schedule grows the task when necessary and fixes its masks
      for the last epochs (`growth_schedule`; `grow()`/`fix_masks()` by hand).
    * `finish_task()`: masks are hardened, the kernels the task uses become
      its own and are frozen forever; its outputs never change again.

    Args:
        backbone: `"lenet5"` (images of 16x16 and larger), `"lenet_small"`
            (4x4 and larger, e.g. the 8x8 digits), `"vgg16_bn"`, `"resnet18"`,
            or a function `fn(inputs) -> features` built from grown layers.
            One that cannot take `input_shape` is refused, with the smallest
            input it takes.
        input_shape: shape of one input image, e.g. `(28, 28, 1)`: positive
            integers.
        seed_ratio: fraction of the full-size width active at the start, in
            (0, 1].
        capacity: allocated width as a multiple of the full-size width, >= 1.
        l0_lambda: weight of the l0 growth penalty, >= 0. The l0 term is the
            expected growth of the model size (in full-size backbones) under
            the relaxation, so `l0_lambda` means the same for every backbone
            (FIDELITY.md §9: the accuracy-size curve over it).
        temperature: Gumbel-Sigmoid temperature, > 0.
        gumbel: `"concrete"` (standard binary-Concrete) or `"paper"` (Eq. 6
            as printed); see `keras_grown.masks`.
        selective_init: initial selective mask score, +5 (a kernel is off in
            under 1 % of the Gumbel samples: the task starts from nearly
            every weight it may use, FIDELITY.md §6).
        attentive_init: initial attentive mask score, +5 (the same).
        grown_init: initial grown mask score, 0 (p = 1/2: a channel earns it).
        mask_learning_rate: learning rate of the separate Adam that trains
            the mask scores (they must move faster than the weights: at 0.1
            a score can cross from +5 to off in a few dozen steps).
        selective_mask: learn the selective mask over frozen weights (else
            all frozen weights are read).
        attentive_mask: learn the attentive mask over free weights (else all
            free weights of on-channels are used).
        learnable_growth: allow learnable sparse growth (`grow()`).
        retrain_released: re-train free weights inside active channels.
        l0_scope: what the l0 term counts: `"grown_channels"` (the paper's
            `||m_g||_0`, weighted by each channel's share of the full-size
            backbone) or `"new_weights"` (the expected number of free
            weights the task takes).
        freeze_finished_tasks: a finished task owns and freezes what it
            uses (GROWN and every zero-forgetting method). False only for
            the naive fine-tune and EWC baselines: nothing is owned, every
            task reads the shared weights, and old tasks forget.
        growth_candidates: the dormant channels one growth round may switch on,
            per grown layer, as a fraction of the layer's full-size width
            (rounded up): the first ones in channel order. A growth round
            computes the active channels plus these candidates, never the
            whole pool. None: every dormant channel (the whole pool).
        compact_training: the task being learned computes only its on-part
            (active channels, this round's candidates, kernels whose input
            channel is on), not the whole pool; same results within float
            round-off. Used only with `freeze_finished_tasks=True`.
        mask_noise: sample the straight-through masks with Gumbel noise while
            training (the paper). False: deterministic straight-through (the
            inference rule forward, the gradient of the sigmoid backward).
        compact_inference: `predict()`/`evaluate()` of a finished task run
            a cached plain Keras model of only what the task uses (what
            `export_task` writes): the same predictions within 1e-5.
        seed: seed of the Gumbel noise (with `keras.utils.set_random_seed`
            for the rest).
        growth_schedule: what decides inside `fit()` when the task grows and
            when its masks are fixed: `"auto"` (`kg.callbacks.GrowWhenNecessary()`),
            your own `GrowWhenNecessary(...)`, or None (manual: `grow()`,
            `fix_masks()`). One among `fit()`'s callbacks replaces it there.

    Example:

    ```python
    import keras_grown as kg

    model = kg.GrownModel(backbone="lenet5", input_shape=(28, 28, 1))
    for task in kg.datasets.split_fashion_mnist(num_tasks=5):
        model.add_task(task.train)
        model.fit(task.train.batch(64), validation_data=task.val.batch(256), epochs=5)
        model.finish_task()
    model.select_task(0)
    ```
    """

    def __init__(
        self,
        backbone="lenet5",
        input_shape=(28, 28, 1),
        seed_ratio=0.5,
        capacity=2.0,
        l0_lambda=0.1,
        temperature=1.0,
        gumbel="concrete",
        selective_init=5.0,
        attentive_init=5.0,
        grown_init=0.0,
        mask_learning_rate=0.1,
        selective_mask=True,
        attentive_mask=True,
        learnable_growth=True,
        retrain_released=True,
        l0_scope="grown_channels",
        freeze_finished_tasks=True,
        compact_inference=True,
        growth_candidates=0.5,
        compact_training=True,
        mask_noise=True,
        seed=None,
        growth_schedule="auto",
        tasks=(),
        growth_enabled=False,
        masks_fixed=False,
        manual_control=False,
        selected_task=None,
        **kwargs,
    ):
        backbones_lib.get_backbone(backbone)  # an unknown backbone is refused first
        growth_schedule = schedule.resolve(growth_schedule)
        input_shape = validation.check_model_settings(
            seed_ratio, capacity, l0_lambda, temperature, gumbel, mask_learning_rate, l0_scope,
            growth_candidates, input_shape,
        )
        super().__init__(**kwargs)
        self.backbone_name = backbones_lib.backbone_name(backbone)
        self.image_shape = input_shape
        self.seed_ratio = float(seed_ratio)
        self.capacity = float(capacity)
        self.l0_lambda = float(l0_lambda)
        self.temperature = float(temperature)
        self.gumbel = gumbel
        self.selective_init = float(selective_init)
        self.attentive_init = float(attentive_init)
        self.grown_init = float(grown_init)
        self.mask_learning_rate = float(mask_learning_rate)
        self.selective_mask = bool(selective_mask)
        self.attentive_mask = bool(attentive_mask)
        self.learnable_growth = bool(learnable_growth)
        self.retrain_released = bool(retrain_released)
        self.l0_scope = l0_scope
        self.freeze_finished_tasks = bool(freeze_finished_tasks)
        self._compact_inference = bool(compact_inference)
        self.growth_candidates = (
            None if growth_candidates is None else float(growth_candidates)
        )
        self.compact_training = bool(compact_training)
        self.mask_noise = bool(mask_noise)
        # fit() keeps a copy of what it may change (restored if it fails): in
        # memory up to this many bytes, in a temporary folder above (None:
        # always in memory).
        self.fit_snapshot_memory_limit = 256 * 2**20
        self.seed = seed
        self.growth_schedule = growth_schedule

        self.backbone = backbones_lib.build_backbone(
            backbone, input_shape, seed_ratio=self.seed_ratio, capacity=self.capacity,
            temperature=self.temperature, gumbel=self.gumbel,
            selective_init=self.selective_init, attentive_init=self.attentive_init,
            grown_init=self.grown_init, seed=seed,
        )
        features = self.backbone.outputs[0]
        self.heads = TaskHeads(name="heads")
        self.heads.build(features.shape)
        self.grown_layers = [l for l in self.backbone.layers if isinstance(l, GrownLayer)]
        if not self.grown_layers:
            raise ValueError("The backbone has no grown layer (GrownConv2D, GrownDense).")
        input_on = backbones_lib.channel_sources(self.backbone)
        self.full_size_weights, channel_weights = sizing.measure_full_size(
            self.grown_layers, input_on
        )

        self.l0_tracker = keras.metrics.Mean(name="l0")
        self.growth_tracker = keras.metrics.Mean(name="growth_ratio")
        self.mask_optimizer = None
        # Extra loss terms of regularization baselines (EWC): callables
        # returning a scalar tensor, added to the loss of the current task.
        self.penalties = []
        # The tasks, the mode and the steps that change them (not tracked by
        # Keras: the compact models of its inference cache hold copies of
        # frozen values, and compile()'s arguments a template optimizer,
        # none of it state to save).
        self.controller = Controller(
            self,
            [l for l in self.backbone.layers if isinstance(l, TaskStateMixin)] + [self.heads],
            input_on, backbones_lib.merged_channel_groups(self.backbone), channel_weights,
        )
        self.built = True
        self.controller.restore_tasks(
            tasks, growth_enabled, masks_fixed, manual_control, selected_task)

    # ------------------------------------------------------------------ size
    def model_size(self):
        """The model size after the finished tasks (see `ModelSize`)."""
        return sizing.model_size(self)

    def growth_report(self):
        """Per grown layer: active width over full-size width, kernels owned per task."""
        return sizing.growth_report(self)

    # ----------------------------------------------------------------- tasks
    @property
    def num_tasks(self):
        """Number of tasks added so far (finished ones and the current one)."""
        return len(self.controller.tasks)

    @property
    def finished_tasks(self):
        """Indices of the finished tasks (their weights are frozen)."""
        return [k for k, t in enumerate(self.controller.tasks) if t["finished"]]

    @property
    def current_task(self):
        """Index of the task being learned, or None between tasks."""
        return self.controller.current_task

    @property
    def selected_task(self):
        """The task `predict()`/`evaluate()` answer for, or None before the first task."""
        return self.controller.mode.task

    @property
    def growth_enabled(self):
        """Whether learnable sparse growth is on for the current task (`grow()`)."""
        return self.controller.mode.growth

    @property
    def mode(self):
        """What the model is doing now: a `keras_grown.mode.Mode` (immutable)."""
        return self.controller.mode

    def _select(self, task):
        """Makes `task` the one the model computes (see `Controller.select`)."""
        self.controller.select(task)

    # ------------------------------------------------------ transactions
    def _transaction(self, call, values=(), limit="fit"):
        """All or nothing for the body of a public call (see `transaction.public_call`)."""
        return public_call(self, call, values, limit)

    def add_task(self, data, num_classes=None, grow=None):
        """Starts learning a new task.

        Creates the task's head and per-task state, re-initializes the mask
        scores, selects the task and (re)compiles with the settings of the
        last `compile()` and a fresh optimizer (Adam, sparse categorical
        cross-entropy and accuracy if the model was never compiled).

        Args:
            data: a `tf.data.Dataset` of `(image, label)` pairs (batched or
                not), or a tuple `(images, labels)` of arrays. It is read
                once to check shapes and labels (and infer `num_classes`).
            num_classes: number of classes of the task; inferred as
                `max(label) + 1` when None.
            grow: turn learnable sparse growth on from the start. Defaults to
                True for the first task (the paper trains the seed with
                learnable sparse growth) and False afterwards (call `grow()`).

        Returns:
            The 0-based index of the new task.
        """
        validation.check_no_task_learning(self)
        num_classes, high = validation.check_task_data(self, data, num_classes)
        validation.check_growth_allowed(self, grow)
        validation.check_head_fits(self, num_classes, high)
        # All or nothing: a failure while creating the task's state (out of
        # memory, an interrupt) removes what was created.
        scores = [v for layer in self.grown_layers for v in layer.score_variables]
        with self._transaction("add_task()", scores):
            index = self.controller.start_task(num_classes, grow)
        return index

    def grow(self):
        """Turns on learnable sparse growth for the current task.

        Dormant channels may now switch on under the grown mask, paid for by
        the l0 penalty. Calling it again starts another growth round: the
        dormant channels not selected so far get their initial score back.
        The optimizer state is kept (selective mask and released weights
        keep training jointly). Called by hand, it puts the task under manual
        control: no growth schedule acts on it in later `fit()` calls.
        """
        validation.check_can_grow(self)
        with self._transaction("grow()", [l.grown_score for l in self.grown_layers]):
            self.controller.start_growth_round()

    def fix_masks(self):
        """Fixes the current task's masks at their hard values for the rest of the task.

        From here until `finish_task()`, `fit()` trains the task's weights
        (the free kernels its masks keep, biases, batch-norm state, head)
        under exactly the masks `finish_task()` will store: the inference
        rule (`score > 0`) forward, no Gumbel noise, no mask score updated,
        no channel switched on or off. A short fit in this state removes the
        difference between the noisy masks of training and the hard masks of
        inference, as PackNet's re-training after pruning does. `grow()`
        lets the masks learn again. The growth schedule calls it inside
        `fit()`; called by hand it puts the task under manual control.
        """
        validation.check_learning(self, "fix_masks()")
        with self._transaction("fix_masks()"):
            self.controller.fix_masks()

    @property
    def masks_fixed(self):
        """Whether the current task's masks are fixed (`fix_masks()`)."""
        return self.controller.mode.masks_fixed

    @property
    def manual_control(self):
        """Whether `grow()`, `fix_masks()` or `prune()` was called by hand on this task."""
        return self.controller.mode.manual

    def prune(self, ratio):
        """PackNet's magnitude pruning of the weights the current task trains.

        In every grown layer, keeps the `1 - ratio` fraction (by L1 norm) of
        the free kernels the task uses and fixes its attentive mask to them
        (hard, no longer trained); train again afterwards to recover. The
        pruned kernels are released to later tasks by `finish_task()`.

        Returns:
            dict layer name -> (kernels kept, kernels pruned).
        """
        validation.check_prune(self, ratio)
        with self._transaction("prune()", [l.attentive_score for l in self.grown_layers]):
            result = self.controller.prune(ratio)
        return result

    def finish_task(self):
        """Hardens the masks of the current task and freezes what it uses.

        The kernels the task uses (input and output channel both on, mask on)
        become its own: their values move to the frozen store and no later
        task can change them. Grown channels become active; free kernels the
        task did not keep stay free (released) for later tasks. The task's
        masks are stored packed, its head, biases and batch-norm state frozen.

        Returns:
            A `TaskSummary` with channels grown and kernels taken per layer,
            and the model size after the task.
        """
        validation.check_learning(self, "finish_task()")
        task = self.current_task
        with self._transaction("finish_task()", self.controller.finish_writes(task)):
            summary = self.controller.finish_task(task)
        return summary

    def select_task(self, task):
        """Makes `predict()`/`evaluate()` answer for `task` (0-based)."""
        validation.check_task_index(self, task)
        with self._transaction("select_task()"):
            self._select(int(task))

    def export_task(self, task, path, **kwargs):
        """Writes a plain Keras model of what `task` uses (see `keras_grown.export`)."""
        return export.export_task(self, task, path, **kwargs)

    # ------------------------------------------------------------- training
    def compile(self, *args, **kwargs):
        """Configures training like `keras.Model.compile`.

        The settings are remembered: `add_task()` compiles again with them and
        a fresh optimizer, so optimizer state never carries over between
        tasks. The mask scores get their own Adam at `mask_learning_rate`.
        """
        bound = inspect.signature(keras.Model.compile).bind(self, *args, **kwargs)
        settings = dict(bound.arguments)
        settings.pop("self")
        with self._transaction("compile()"):
            self.controller.compile_settings.arguments = settings
            # New loss and metrics objects: the cached evaluation steps of
            # finished tasks update the old ones.
            self.controller.inference_cache.functions.clear()
            compiling.compile_with(self, settings)

    def compile_from_config(self, config):
        # `compile()` is overridden, so Keras leaves re-compiling a loaded
        # model to us: same settings, through our compile.
        self.compile(**keras.saving.deserialize_keras_object(config))

    @property
    def trainable_weights(self):
        weights = super().trainable_weights
        if not self.trainable:
            return weights
        return weights + [
            v for plan in self.controller.plans() for v in plan.working_variables if v.trainable
        ]

    @property
    def trainable_variables(self):
        return self.trainable_weights

    def fit(self, *args, **kwargs):
        """Trains the current task like `keras.Model.fit`, all or nothing.

        The data is checked before any step (image shape and dtype, batching,
        label range of arrays). If training fails, the model's variables and
        the optimizers' state are put back to what they were before the call
        and the error is raised; finished tasks are never touched. A loss or
        weights that become NaN or inf stop training with a `FloatingPointError`
        (lower the learning rate, or check the inputs for NaN).
        """
        validation.check_trainable_task(self)
        bound = inspect.signature(keras.Model.fit).bind(self, *args, **kwargs)
        arguments = bound.arguments
        validation.check_fit_data(
            self, arguments.get("x"), arguments.get("y"), arguments.get("validation_data")
        )
        callbacks = arguments.get("callbacks")
        if callbacks is None or isinstance(callbacks, (list, tuple)):
            arguments["callbacks"] = fit_guard.with_guards(callbacks, self.growth_schedule)
        self.controller.load_working()
        with fit_guard.all_or_nothing(self):
            history = super().fit(*bound.args[1:], **bound.kwargs)
            self.controller.store_working()
        return history

    def train_on_batch(self, *args, **kwargs):
        self.controller.load_working()
        for plan in self.controller.plans():
            plan.ahead = True
        try:
            return super().train_on_batch(*args, **kwargs)
        finally:
            self.controller.store_working()

    def evaluate(self, *args, **kwargs):
        """Like `keras.Model.evaluate`, for the selected task.

        Labels outside the selected task's classes are refused with a
        `ValueError` (arrays before any step, datasets when a batch holds one).
        """
        return validation.evaluate_checked(self, keras.Model.evaluate, "evaluate()", args, kwargs)

    def test_on_batch(self, *args, **kwargs):
        """Like `keras.Model.test_on_batch`; refuses labels outside the selected task's classes."""
        return validation.evaluate_checked(
            self, keras.Model.test_on_batch, "test_on_batch()", args, kwargs
        )

    def predict(self, *args, **kwargs):
        validation.check_selected(self)
        return super().predict(*args, **kwargs)

    def trace_key(self):
        """What the traced steps depend on (`keras_grown.mode.trace_key`): a new key, a new trace."""
        return trace_key(self)

    def make_train_function(self, force=False):
        return self.controller.inference_cache.make_train_function(self, super().make_train_function, force)

    # Keras makes (eagerly) the step function of evaluate(), predict(),
    # test_on_batch() and predict_on_batch() here, before tracing it: the one
    # place to build the compact model the traced step will call.
    def make_test_function(self, force=False):
        validation.check_selected(self)
        self.controller.load_working()
        return self.controller.inference_cache.make_function(self, "test", super().make_test_function, force)

    def make_predict_function(self, force=False):
        validation.check_selected(self)
        self.controller.load_working()
        return self.controller.inference_cache.make_function(
            self, "predict", super().make_predict_function, force
        )

    # ------------------------------------------------------------ inference
    @property
    def compact_inference(self):
        """Whether a finished task predicts through its cached compact model."""
        return self._compact_inference

    @compact_inference.setter
    def compact_inference(self, value):
        self._compact_inference = bool(value)
        self.controller.inference_cache.clear(self, models=False)

    def clear_inference_cache(self):
        """Drops the compact inference models of finished tasks.

        They are rebuilt on the next `predict()`/`evaluate()`. Call it after
        assigning to a finished task's variables by hand; `load_weights()` and
        `set_weights()` clear it themselves (training never changes a
        finished task: its weights are frozen).
        """
        self.controller.inference_cache.clear(self)

    def call(self, inputs, training=False):
        if tf.executing_eagerly() and not self.controller.in_fit:
            self.controller.load_working()
        if training is None or training is False:
            compact = self.controller.inference_cache.compact_model(self)
            if compact is not None:
                return compact(inputs, training=False)
        return self.heads(self.backbone(inputs, training=training))

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        loss = super().compute_loss(
            x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=training
        )
        if not training and self.controller.mode.finished:
            # A finished task is evaluated on its own loss: the growth terms
            # and penalties belong to the task being learned (and a cached
            # evaluation step of a finished task must not read its state).
            return loss
        l0, ratio = sizing.growth_terms(self)
        self.l0_tracker.update_state(l0)
        self.growth_tracker.update_state(ratio)
        # Keras scales the task loss by 1 / replicas under tf.distribute (the
        # gradients are summed across replicas); the model-wide terms are
        # computed whole on every replica, so they are scaled the same way.
        if self.l0_lambda > 0 and (self.controller.mode.growth or self.l0_scope == "new_weights"):
            loss = loss + distribution.scale_loss(
                ops.cast(self.l0_lambda, loss.dtype) * l0
            )
        for penalty in self.penalties:
            loss = loss + distribution.scale_loss(ops.cast(penalty(), loss.dtype))
        return loss

    def train_step(self, data):
        # Keras' TensorFlowTrainer.train_step with one change: the mask
        # scores are updated by their own optimizer (compiling.apply_gradients).
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            y_pred = self(x, training=True)
            loss = _framework.compute_loss(
                self, x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=True
            )
            _framework.loss_tracker(self).update_state(
                distribution.unscale_loss(loss), sample_weight=tf.shape(x)[0]
            )
            loss = self.optimizer.scale_loss(loss)
        variables = self.trainable_variables
        compiling.apply_gradients(self, tape.gradient(loss, variables), variables)
        return self._per_replica_logs(
            self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)
        )

    def test_step(self, data):
        return self._per_replica_logs(super().test_step(data))

    def _per_replica_logs(self, logs):
        return distribution.per_replica_logs(self.distribute_strategy, logs)

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        iterator, data_batch = distribution.local_build_batch(
            _framework.strategy_of(self), iterator, data_batch
        )
        return super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)

    # ---------------------------------------------------------- serializing
    def load_weights(self, filepath, *args, **kwargs):
        """Loads weights saved from a matching GrownModel, all or nothing.

        Like `keras.Model.load_weights`, but a file that is missing, damaged
        or saved from another model (another backbone, input shape, capacity
        or number of tasks) is refused with a clear error and leaves every
        variable as it was (Keras may load part of the layers before it
        finds a mismatch). To restore a whole saved model, tasks included,
        use `keras.saving.load_model(path)`.
        """
        path = validation.check_weights_file(filepath)
        state = list(self.variables)
        for optimizer in (self.optimizer, self.mask_optimizer):
            state += list(optimizer.variables) if optimizer is not None else []
        try:
            # Loading re-plans the task and re-compiles: a failure puts the
            # plans, the optimizers and every value back.
            with self._transaction("load_weights()", state, limit=None):
                self.clear_inference_cache()
                return super().load_weights(filepath, *args, **kwargs)
        except Exception as error:
            raise validation.load_weights_error(path, error) from error

    def set_weights(self, weights):
        self.clear_inference_cache()
        result = super().set_weights(weights)
        if self.controller.mode.task is not None:
            self._select(self.controller.mode.task)
        return result

    def get_config(self):
        config = {key: getattr(self, key) for key in _CONFIG_ATTRIBUTES}
        schedule_config = None if self.growth_schedule is None else self.growth_schedule.get_config()
        config.update(
            name=self.name, backbone=self.backbone_name, input_shape=list(self.image_shape),
            compact_inference=self._compact_inference, tasks=[dict(t) for t in self.controller.tasks],
            growth_schedule=schedule_config, growth_enabled=self.controller.mode.growth,
            masks_fixed=self.controller.mode.masks_fixed, manual_control=self.controller.mode.manual,
            selected_task=self.controller.mode.task,
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if "backbone" in config:
            config["backbone"] = backbones_lib.saved_backbone(config["backbone"])
        return cls(**config)

    def build(self, input_shape=None):
        # Everything is built in __init__ (the backbone is a functional
        # model of known input shape; heads are added per task).
        self.built = True
