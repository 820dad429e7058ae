"""compile() for a GrownModel: the settings add_task() compiles with again; the two optimizers.

`GrownModel.compile()` remembers its arguments; `add_task()` and
`finish_task()` compile again with them and fresh optimizers (optimizer state
never carries over between tasks), and a new training plan moves the
optimizers' state over to its working variables.
"""

import keras
import tensorflow as tf
from keras import ops

from keras_grown import _framework, masks

COMPILE_DEFAULTS = dict(
    optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"]
)


class CompileSettings:
    """Holds the arguments of the last compile() out of Keras' tracking and saving."""

    def __init__(self):
        self.arguments = None


def apply_gradients(model, gradients, variables):
    """One training step's updates: the mask scores by `mask_optimizer`, the rest by `optimizer`.

    Under loss scaling (a `keras.optimizers.LossScaleOptimizer`, as Keras
    wraps the optimizer for a `mixed_float16` policy) the gradients are of
    the scaled loss: the weights' optimizer unscales its own and skips the
    step when one is not finite; the scores' gradients are unscaled by the
    same scale here and skipped with it, so a step that overflows changes
    neither.
    """
    score_ids = {id(v) for v in model.controller.score_variables()}
    weight_pairs, score_pairs = [], []
    for gradient, variable in zip(gradients, variables):
        if gradient is None:
            continue
        if isinstance(gradient, tf.IndexedSlices):
            # Gathered per-task biases / heads: dense, as on the full path.
            gradient = tf.convert_to_tensor(gradient)
        (score_pairs if id(variable) in score_ids else weight_pairs).append((gradient, variable))
    optimizer = model.optimizer
    scaled = isinstance(optimizer, keras.optimizers.LossScaleOptimizer) and bool(score_pairs)
    if scaled:
        # Read before the weights' step, which may change the scale.
        scale = tf.identity(optimizer.dynamic_scale)
        finite = optimizer.check_finite([g for g, _ in score_pairs])
        if weight_pairs:
            # A score gradient that overflows makes the whole step non-finite
            # for the weights' optimizer too: it skips it and lowers the scale.
            poison = tf.where(finite, 0.0, float("nan"))
            finite = tf.logical_and(finite, optimizer.check_finite([g for g, _ in weight_pairs]))
            weight_pairs = [(g + tf.cast(poison, g.dtype), v) for g, v in weight_pairs]
        score_pairs = [(g / tf.cast(scale, g.dtype), v) for g, v in score_pairs]
    if weight_pairs:
        optimizer.apply_gradients(weight_pairs)
    if not score_pairs:
        return
    if scaled:
        _apply_if_finite(model.mask_optimizer, score_pairs, finite)
    else:
        model.mask_optimizer.apply_gradients(score_pairs)


def _apply_if_finite(optimizer, pairs, finite):
    """`optimizer.apply_gradients(pairs)` when `finite`, as `LossScaleOptimizer` does.

    Under a strategy that merges replicas the condition is taken in the
    cross-replica context (a `cond` in a replica context cannot have a
    branch that merges), as Keras' `LossScaleOptimizer` does.
    """
    def skip():
        return tf.constant(False)

    if tf.__internal__.distribute.strategy_supports_no_merge_call():
        def apply():
            optimizer.apply_gradients(pairs)
            return tf.constant(True)

        tf.cond(finite, apply, skip)
        return

    def cross_replica(distribution, finite, pairs):
        def apply():
            distribution.extended.call_for_each_replica(optimizer.apply_gradients, args=(pairs,))
            return tf.constant(True)

        tf.cond(distribution.experimental_local_results(finite)[0], apply, skip)

    tf.distribute.get_replica_context().merge_call(cross_replica, args=(finite, pairs))


def compile_with(model, settings, build_metrics=True):
    """`keras.Model.compile(**settings)`, then both optimizers (weights, scores), built.

    During a task, the compiled loss and metrics are built too, unless
    `build_metrics=False` (the caller puts earlier ones back).
    """
    # Both optimizers (and their slots) belong to the model's strategy:
    # add_task() recompiles outside any `strategy.scope()`.
    with model.distribute_strategy.scope():
        keras.Model.compile(model, **settings)
        # Between tasks nothing trains: the optimizers hold no slots (a
        # model saved there loads whatever the next task computes).
        # (The storage variables are created trainable: before the first
        # task, slots for them would be full-capacity copies for nothing.)
        learning = model.current_task is not None
        scores = model.controller.score_variables() if learning else []
        score_ids = {id(v) for v in scores}
        model.optimizer.build(
            [v for v in model.trainable_variables if id(v) not in score_ids] if learning else []
        )
        model.mask_optimizer = masks.ScoreAdam(model.mask_learning_rate, name="mask_optimizer")
        model.mask_optimizer.build(scores)
        if learning and build_metrics:
            _build_compiled_metrics(model)


def _build_compiled_metrics(model):
    """Creates the variables of the compiled loss and metrics now, eagerly.

    Keras creates them in the first traced train (or test) step, and a
    `tf.function` whose first trace creates variables is traced a second
    time: every new model (a Scratch reference, each network of Scratch)
    paid two traces of its train step (about a second each for LeNet-5)
    for its first `fit()`. Labels are integer class indices (`add_task()`
    checks it), so a batch of one with the task's classes resolves
    `"accuracy"` to the metric the real batches would.
    """
    num_classes = model.controller.num_classes(model.current_task)
    y_true = ops.zeros((1,), "int32")
    y_pred = ops.full((1, num_classes), 1.0 / num_classes, dtype="float32")
    for compiled in _framework.compiled_loss_and_metrics(model):
        if compiled is not None and not compiled.built:
            compiled.build(y_true, y_pred)


def recompile(model):
    """Compiles again with the last settings: fresh optimizers, same loss and metrics.

    The compiled loss, metrics and loss tracker are kept (the settings
    that made them are the same), so that the evaluation steps of
    finished tasks traced before stay valid and are not traced again.
    """
    settings = dict(model.controller.compiled_with() or COMPILE_DEFAULTS)
    optimizer = settings.get("optimizer", "rmsprop")
    kept = _framework.compiled_state(model)
    with model.distribute_strategy.scope():
        if isinstance(optimizer, keras.optimizers.Optimizer):
            settings["optimizer"] = optimizer.__class__.from_config(optimizer.get_config())
        compile_with(model, settings, build_metrics=kept is None)
    if kept is None:
        model.controller.inference_cache.functions.clear()
        return
    # Set as Keras' compile() sets them: outside the layer tracker (which
    # would list them a second time in `model.metrics`).
    _framework.set_compiled_state(model, kept)
    if model.current_task is not None:
        with model.distribute_strategy.scope():
            _build_compiled_metrics(model)


def move_optimizer_state(model, old_plans):
    """New optimizers for new plans, with the old optimizers' state moved over.

    Slots are matched by name (Keras names a slot after its variable);
    a slot of a working variable whose shape changed is re-indexed to the
    new channels (channels new to the plan start from zero state).
    """
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None or not optimizer.built or model.mask_optimizer is None:
        return
    moves = {}
    for layer, old in old_plans.items():
        move = layer.plan.reindex_from(old) if old is not None else None
        for variable in layer.plan.working_variables:
            moves[variable.path.replace("/", "_")] = move
    old_optimizers = (model.optimizer, model.mask_optimizer)
    model.controller.recompile()
    for old, new in zip(old_optimizers, (model.optimizer, model.mask_optimizer)):
        previous = {v.name: v for v in old.variables}
        for variable in new.variables:
            source = previous.get(variable.name)
            if source is None:
                continue
            if tuple(source.shape) == tuple(variable.shape):
                variable.assign(source)
                continue
            for prefix, move in moves.items():
                if move is not None and variable.name.startswith(prefix + "_"):
                    variable.assign(move(ops.convert_to_numpy(source), variable.shape))
                    break
