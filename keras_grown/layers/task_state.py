"""Shared machinery for layers that keep one set of state per task."""

from keras_grown import _framework
from keras_grown.mode import LayerMode


class TaskStateMixin:
    """Bookkeeping for layers whose variables include one group per task.

    The model tells every task-aware layer which task to answer for,
    whether that task is finished (then everything it reads is frozen) and
    whether learnable growth is on: one immutable `LayerMode` in `mode`
    (`set_mode()`, or `set_task()` for the task part), read when a step is
    traced and replaced, never edited. Per-task variables are created
    by `add_task_state()` after build, the way `Dense.enable_lora()` adds
    variables: the layer's tracker is unlocked for the creation and locked
    again. Per-task variables are always created trainable and frozen
    afterwards (`freeze_task_state`), so the saved variable order is the same
    whether a model was trained or loaded.
    """

    def _init_task_state(self, num_tasks):
        if not isinstance(num_tasks, int) or num_tasks < 0:
            raise ValueError(
                f"num_tasks must be a non-negative integer. Received: num_tasks={num_tasks!r}"
            )
        self._initial_num_tasks = num_tasks
        self.num_task_states = 0
        self.mode = LayerMode()
        self._task_variables = []

    @property
    def task(self):
        """The task the layer answers for (`mode.task`), None before one is selected."""
        return self.mode.task

    @property
    def task_finished(self):
        """Whether that task is finished (`mode.finished`)."""
        return self.mode.finished

    @property
    def growth_enabled(self):
        """Whether learnable growth is on for it (`mode.growth`)."""
        return self.mode.growth

    def set_mode(self, mode):
        """Makes `mode` (a `LayerMode`) what the layer computes."""
        if mode.task is not None and not 0 <= mode.task < self.num_task_states:
            raise ValueError(
                f"Layer '{self.name}' has state for {self.num_task_states} task(s); "
                f"received task={mode.task}."
            )
        self.mode = mode

    def set_task(self, task, finished, growth_enabled=False):
        """Selects the task the layer answers for: `set_mode()` with the mode's task part."""
        self.set_mode(self.mode.replace(
            task=task, finished=bool(finished), growth=bool(growth_enabled)))

    def add_task_state(self):
        """Creates the variables of one more task; returns its 0-based index."""
        if not self.built:
            raise ValueError(
                f"Cannot add a task to layer '{self.name}' before it is built. "
                "Call the layer on an input first."
            )
        index = self.num_task_states
        with _framework.unlocked_tracker(self):
            created = self._create_task_variables(index)
        self._task_variables.append(created)
        self.num_task_states += 1
        return index

    # Per-task values a new task starts from (the previous task's): the frozen
    # kernels it reuses were trained with them. Masks are not inherited.
    _inherited_task_values = ("bias", "gamma", "beta", "moving_mean", "moving_variance")

    def inherit_task_state(self, task, source):
        """Initializes the biases / normalization of `task` from those of `source`."""
        for key in self._inherited_task_values:
            if key in self._task_variables[task] and key in self._task_variables[source]:
                self._task_variables[task][key].assign(self._task_variables[source][key])

    def freeze_task_state(self, task):
        """Makes every variable of `task` non-trainable (finished tasks are frozen)."""
        for variable in self._task_variables[task].values():
            variable.trainable = False

    def _build_initial_task_states(self):
        for _ in range(self._initial_num_tasks):
            self.add_task_state()

    def _create_task_variables(self, index):  # pragma: no cover - abstract
        raise NotImplementedError

    def _current(self, key):
        if self.task is None:
            raise ValueError(
                f"Layer '{self.name}' has no task selected. Call "
                "GrownModel.add_task() (or select_task()) before using the model. To use "
                "the layer on its own, create it with num_tasks=1, build it, and call "
                "layer.set_task(0, finished=False)."
            )
        return self._task_variables[self.task][key]


def get_task_aware_layers(layer):
    """All `TaskStateMixin` layers inside `layer`, itself included, in order."""
    return [
        sub
        for sub in _framework.sublayers(layer, include_self=True)
        if isinstance(sub, TaskStateMixin)
    ]
