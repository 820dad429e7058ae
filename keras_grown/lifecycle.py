"""A task's life in a GrownModel: created, grown, pruned, finished (hardened and frozen).

The bodies of `add_task()`, `grow()`, `prune()` and `finish_task()`, run by
`GrownModel` after its checks and inside its all-or-nothing transaction.
"""

from keras_grown.sizing import TaskSummary, has_dormant_channels


def create_task(model, num_classes):
    """Adds a task's head and per-task state to every task-aware layer of `model`."""
    # Per-task variables are created after build: under tf.distribute they
    # must be created in the strategy the model was built in, to be mirrored
    # like the rest (a model built outside any strategy gets the default
    # strategy, a no-op).
    with model.distribute_strategy.scope():
        for layer in model._task_layers:
            if layer is model.heads:
                layer.add_head(num_classes)
            else:
                layer.add_task_state()
    model._tasks.append({"num_classes": num_classes, "finished": False})


def freeze_task(model, task):
    """Freezes `task`'s head, biases and batch-norm state in every task-aware layer."""
    for layer in model._task_layers:
        layer.freeze_task_state(task)


def restore_tasks(model, tasks, growth_enabled, masks_fixed, selected_task):
    """Recreates the tasks of a saved `model` (its config) before its weights load."""
    for spec in tasks:
        create_task(model, int(spec["num_classes"]))
        if spec.get("finished", True):
            model._tasks[-1]["finished"] = True
            freeze_task(model, len(model._tasks) - 1)
    learning = model.current_task is not None
    model._mode = model._mode.replace(
        growth=bool(growth_enabled) and learning, masks_fixed=bool(masks_fixed) and learning)
    if selected_task is not None and model._tasks:
        model._select(int(selected_task))


def start_task(model, num_classes, grow):
    """Creates a task of `num_classes` classes, selects it and compiles; returns its index."""
    create_task(model, num_classes)
    index = len(model._tasks) - 1
    for layer in model.grown_layers:
        layer.reset_scores()
        if index > 0:
            # The frozen kernels a task reuses were trained with the
            # previous task's biases and batch-norm state: start there.
            layer.inherit_task_state(index, index - 1)
    if grow is None:
        grow = index == 0
    model._mode = model._mode.replace(
        growth=bool(grow) and model.learnable_growth and has_dormant_channels(model),
        masks_fixed=False, manual=False)
    model._select(index)
    model._recompile()
    return index


def start_growth_round(model):
    """Turns learnable sparse growth on (again) for the current task."""
    model._store_working()
    if model._mode.growth:
        for layer in model.grown_layers:
            layer.reset_dormant_grown_scores()
    model._mode = model._mode.replace(growth=True, masks_fixed=False)
    model._select(model.current_task)


def prune(model, ratio):
    """Prunes the free kernels the current task uses; {layer name: (kept, pruned)}."""
    model._store_working()
    model._select(model.current_task)
    input_on = model._input_on({l: l.hard_channel_on() for l in model.grown_layers})
    result = {l.name: l.prune_free_kernels(ratio, input_on[l]) for l in model.grown_layers}
    model._select(model.current_task)
    return result


def finish_writes(model, task):
    """The storage `finish_task()` writes: frozen kernels, ownership, the task's stored masks."""
    return [
        v for layer in model.grown_layers
        for v in (layer.frozen_kernel, layer.owner, layer.active,
                  layer._task_variables[task]["kernel_mask"],
                  layer._task_variables[task]["channel_mask"])
    ]


def finish_task(model, task):
    """Hardens `task`'s masks, gives it what it uses and freezes it; its `TaskSummary`."""
    model._store_working()
    model._select(task)
    channel_on = {layer: layer.hard_channel_on() for layer in model.grown_layers}
    input_on = model._input_on(channel_on)
    layers = {
        layer.name: layer.finish_task_state(input_on[layer]) for layer in model.grown_layers
    }
    freeze_task(model, task)
    model._tasks[task]["finished"] = True
    model._mode = model._mode.replace(growth=False, masks_fixed=False, manual=False)
    model._select(task)
    if getattr(model, "optimizer", None) is not None:
        # The task's optimizer state has no further use: drop its slots.
        model._recompile()
    return TaskSummary(task=task, layers=layers, size=model.model_size())
