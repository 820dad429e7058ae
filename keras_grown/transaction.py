"""All or nothing: what a public call of a GrownModel may change, put back if it fails.

`add_task()`, `grow()`, `prune()`, `finish_task()`, `select_task()`,
`load_weights()`, `compile()` and each task of `learn()` are transactions:
they complete, or the model is exactly as it was before the call, and the next
correct call works. Every check that can be made first is made first (the
model then raises before anything changes); a `Transaction` covers what can
only fail half-way (an out-of-memory error while a variable is created, a
`KeyboardInterrupt`, a bug).

It captures, before the call:

* the Python state of the model, of every layer inside it (grown layers,
  their `TaskBatchNorm`, the heads), of each layer's variable tracker, of
  the task's training plans and of the objects the model keeps apart
  (compile settings, the compact inference cache): each object's attributes,
  and the contents of the lists, dicts and sets they hold, two levels deep
  (the controller's tasks, each layer's per-task variables and task count, the heads'
  class counts, the tracked variable lists, the optimizers, the plans, the
  selected task, ...). Nothing is copied but references and small containers.
* the `trainable` flag of every variable;
* the values of the variables the call may write (each call names them: the
  mask scores for `add_task()`, the frozen store for `finish_task()`, ...),
  in memory or spilled to a temporary folder like `fit()`'s copy.

Restoring puts every container back in place (the trackers keep references to
them), every attribute back, every flag and value back. Variables created by
the failed call are then referenced by nothing and freed.
"""

import contextlib
import os
import shutil
import tempfile

import numpy as np

from keras_grown import _framework
from keras_grown.layers import TaskStateMixin


class ValueSnapshot:
    """A copy of some variables' values, restored on demand.

    Kept in host memory up to `limit` bytes (None: always); a larger copy (VGG16-BN at
    capacity 2: about 1 GB with the optimizer's slots) is spilled to a
    temporary folder, one `.npy` file per variable, so that it does not add to
    the resident memory of training (it sits in the page cache, which the OS
    reclaims). If the folder cannot be written, the copy stays in memory.
    """

    def __init__(self, variables, limit):
        self.variables = list(variables)
        self.folder = None
        self.values = None
        nbytes = sum(
            int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize for v in self.variables
        )
        if limit is not None and nbytes > limit:
            try:
                self.folder = tempfile.mkdtemp(prefix="keras_grown_fit_")
                for index, variable in enumerate(self.variables):
                    np.save(os.path.join(self.folder, f"{index}.npy"), variable.numpy())
                return
            except OSError:
                self.discard()
        self.values = [np.array(v.numpy(), copy=True) for v in self.variables]

    def restore(self):
        for index, variable in enumerate(self.variables):
            if self.folder is not None:
                variable.assign(np.load(os.path.join(self.folder, f"{index}.npy")))
            else:
                variable.assign(self.values[index])

    def discard(self):
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None
        self.values = None


_CONTAINERS = (list, dict, set)


class ObjectState:
    """One object's attributes and the contents of the containers they hold.

    Containers (lists, dicts, sets, Keras' tracked versions of them) are
    captured `depth` levels deep and restored in place, through the base
    class methods, so that Keras' trackers, which hold references to them,
    see the old contents and do not track or untrack anything on the way.
    """

    def __init__(self, obj, depth=2):
        self.obj = obj
        self.attributes = dict(vars(obj))
        self.contents = {}
        for value in self.attributes.values():
            self._capture(value, depth)

    def _capture(self, value, depth):
        kind = type(value)  # not isinstance: TensorFlow's trackable proxies pose as dicts
        if (depth == 0 or not issubclass(kind, _CONTAINERS) or id(value) in self.contents
                or kind.__module__.startswith("tensorflow")):
            # TensorFlow's wrappers (the functional backbone's) keep their items
            # elsewhere; no call here changes them.
            return
        if isinstance(value, dict):
            copy = dict.copy(value)
            items = copy.values()
        elif isinstance(value, list):
            copy = list.copy(value)
            items = copy
        else:
            copy = set.copy(value)
            items = ()
        self.contents[id(value)] = (value, copy)
        for item in items:
            self._capture(item, depth - 1)

    def restore(self):
        for container, copy in self.contents.values():
            if isinstance(container, dict):
                dict.clear(container)
                dict.update(container, copy)
            elif isinstance(container, list):
                list.clear(container)
                list.extend(container, copy)
            else:
                set.clear(container)
                set.update(container, copy)
        state = vars(self.obj)
        state.clear()
        state.update(self.attributes)


class Transaction:
    """The state of a GrownModel (and of `extra` objects) before a call.

    Args:
        model: the `GrownModel`.
        values: the variables whose values the call may write.
        extra: other objects whose attributes the call may change (a
            `learn()` method object).
        limit: bytes of values kept in memory before spilling to disk
            (None: always in memory).
    """

    def __init__(self, model, values=(), extra=(), limit=None):
        controller = model.controller
        objects = [model, controller, controller.compile_settings, controller.inference_cache,
                   *extra]
        layers = _framework.sublayers(model, include_self=False)
        objects += layers
        objects += [t for t in map(_framework.tracker, [model, *layers]) if t is not None]
        plans = [layer.plan for layer in model.grown_layers if layer.plan is not None]
        objects += plans
        self.objects = [ObjectState(obj) for obj in objects]
        variables = list(model.variables)
        variables += [v for plan in plans for v in plan.working_variables]
        self.trainable = [(v, v.trainable) for v in variables]
        unique, seen = [], set()
        for variable in values:
            if id(variable) not in seen:
                seen.add(id(variable))
                unique.append(variable)
        self.values = ValueSnapshot(unique, limit)

    def restore(self):
        self.values.restore()
        for state in self.objects:
            state.restore()
        for variable, trainable in self.trainable:
            variable.trainable = trainable

    def discard(self):
        self.values.discard()


@contextlib.contextmanager
def transaction(model, call, values=(), extra=(), limit=None):
    """Runs the body of `call` as a transaction on `model`: all or nothing.

    On any exception (`KeyboardInterrupt` included) the model is put back to
    its state before the `with` block and the exception is raised again,
    with a note that says so.
    """
    state = Transaction(model, values, extra, limit)
    try:
        yield state
    except BaseException as error:
        state.restore()
        error.add_note(
            f"keras-grown: {call} failed half-way; the model was put back to its state "
            "before the call."
        )
        raise
    finally:
        state.discard()


def public_call(model, call, values=(), limit="fit"):
    """`transaction()` for the body of `call`, a public call of `model`.

    `values` are the storage variables the call may write; the working
    variables of the task's plans and, while they are newer than it, the
    storage they are written back to are added here. `limit="fit"`: the
    model's `fit_snapshot_memory_limit`.
    """
    values = list(values)
    for plan in model.controller.plans():
        values += plan.working_variables
        if plan.ahead:
            layer = plan.layer
            values += [layer.free_kernel, *layer.score_variables]
    if limit == "fit":
        limit = model.fit_snapshot_memory_limit
    return transaction(model, call, values, limit=limit)


def task_storage(model):
    """The variables learning a task may write: all but the finished tasks' own."""
    finished = {
        id(v)
        for layer in _framework.sublayers(model, include_self=False)
        if isinstance(layer, TaskStateMixin)
        for k in model.finished_tasks if k < len(layer._task_variables)
        for v in layer._task_variables[k].values()
    }
    return [v for v in model.variables if id(v) not in finished]


@contextlib.contextmanager
def learning_task(method):
    """One task of `learn()` as a transaction over every model `method` holds now.

    A failure anywhere in the task (adding it, training, growing, finishing,
    evaluating, writing its checkpoint) puts each of the method's models back
    to its state after the previous task, and the method's own state (its
    list of models, EWC's Fisher information, ...) too: the models then match
    the last checkpoint, and learning can go on from there.
    """
    method_state = ObjectState(method)
    with contextlib.ExitStack() as stack:
        for model in list(method.models):
            stack.enter_context(transaction(
                model, "learn()", task_storage(model), limit=model.fit_snapshot_memory_limit
            ))
        try:
            yield
        except BaseException:
            method_state.restore()
            raise
