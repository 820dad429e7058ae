"""Growth inside one `fit()`: the `GrowWhenNecessary` schedule.

GROWN's stages (pick and reuse, expand only if needed, train under the kept
masks) are decisions, not separate trainings. `GrowWhenNecessary` takes them
at epoch boundaries of the user's own `fit()`, as tfmot's `UpdatePruningStep`
drives a pruning schedule: the train function is traced again in place when
the trained part changes (a growth round adds candidate channels; fixing the
masks drops the candidates that stayed off), not a new `fit()` per stage.

`GrownModel.fit()` uses the model's `growth_schedule` (a `GrowWhenNecessary()`
by default) unless a schedule is among the callbacks passed. The schedule
only acts on a task left to it: after `grow()`, `fix_masks()` or `prune()`
the task is under manual control until the next `add_task()`.
"""

import math
import numbers
import warnings

import keras

from keras_grown._checks import check_count, check_optional_count
from keras_grown.sizing import has_dormant_channels

# The share of a fit()'s epochs trained under the fixed masks, and of the
# rest spent picking and reusing before growth may start, by default
# (FIDELITY.md §12: 2 fixed epochs of 5 and 1 reuse epoch beat 1 and 2 on
# the confusable and permuted streams, and a 4-epoch first task reached
# 79.75 % with 2 fixed epochs against 78.45 % with 1).
FIXED_MASK_SHARE = 0.4
REUSE_SHARE = 1 / 3
# Below this many training steps in one fit(), the in-fit decisions were
# measured below plain training (FIDELITY.md §12c, §12g, §12h: at ~30 steps
# 0.4-5 points below Scratch on class splits whatever the penalty, far more
# on unrelated tasks; at 112 steps 1 point; level at 285): it warns.
SHORT_FIT_STEPS = 200


@keras.saving.register_keras_serializable(package="keras_grown")
class GrowWhenNecessary(keras.callbacks.Callback):
    """Grows the task being learned inside one `fit()` when it needs it, then fixes its masks.

    One `fit(epochs=E)` of a `GrownModel` runs GROWN's stages one after the
    other, each ended at an epoch boundary:

    1. **Pick and reuse** (growth off; a task that `add_task()` started
       growing, the first one by default, grows here instead): the
       selective mask picks old weights, released weights train. It ends
       when `monitor` stops improving (Keras' `EarlyStopping` semantics: no
       gain above `min_delta` for `patience` epochs) or after its budget:
       `reuse_epochs` epochs, by default a third of the epochs before the
       fixed-mask phase, which may end inside an epoch (a 2-epoch fit
       decides after a third of its first epoch, on the training accuracy
       of the phase's second half, so that it has time left to grow).
    2. **Expand, only if needed**: with `target=None`, when the task
       underfits (its training accuracy in the phase's last epoch is below
       `fit_accuracy`: the masks cannot fit the task's own data with the
       capacity it has); with a number, when the best `monitor` of the
       phase is below it. A growth round is learnable sparse growth: the l0
       penalty decides how many candidate channels the task keeps. A round
       ends like a phase; another follows while one is needed, the last one paid
       (raised the best `monitor` by more than `min_delta`), fewer than
       `max_growth_rounds` ran and capacity is left.
    3. **Fixed masks** (`GrownModel.fix_masks()`): the last
       `fixed_mask_epochs` epochs (and every epoch after an earlier decision
       not to grow) train the weights under exactly the masks
       `finish_task()` stores. With more than one such epoch the fit stops
       when `monitor` stops improving there (`model.stop_training`).

    Each change stores the training state, re-plans the computed channels,
    moves the optimizers' state over and traces the train step again; the
    epochs keep their count, so a 5-epoch fit trains 5 epochs or fewer.
    Without validation data a `val_` monitor falls back to the training
    metric of the same name.

    Args:
        target: None (grow while the task underfits, see `fit_accuracy`;
            the default), or an accuracy in (0, 1]: grow while `monitor` is
            below it (e.g. `kg.scratch_reference(model, task)`, the paper's).
        fit_accuracy: with `target=None`, the training accuracy below which
            a phase's task needs to grow, in (0, 1].
        monitor: the log entry that measures the task (`"val_accuracy"`).
        patience: epochs without improvement that end a phase, >= 1.
        min_delta: the smallest change of `monitor` that counts as an
            improvement, >= 0.
        max_growth_rounds: growth rounds the schedule starts per `fit()` at
            most, >= 0 (a task that started growing is not a round).
        reuse_epochs: whole epochs of the pick-and-reuse phase at most.
            None: a third of the epochs before the fixed-mask phase (1 of 5,
            2 of 10; a third of the first epoch of 2), rounded up to whole
            epochs when the phase cannot end inside one (a dataset of
            unknown length, no `accuracy` metric). With a `target`, a
            decision inside an epoch compares the phase's training accuracy
            with it (no validation runs inside an epoch).
        fixed_mask_epochs: epochs trained under the fixed masks at the end.
            None: 40 % of the fit's epochs, rounded, at least 1 (0 for a
            one-epoch fit): 2 of 5.

    Example:

    ```python
    model.add_task(task.train)
    model.fit(train, validation_data=val, epochs=5,
              callbacks=[kg.callbacks.GrowWhenNecessary(target=0.95)])
    model.finish_task()
    ```
    """

    def __init__(self, target=None, monitor="val_accuracy", patience=1, min_delta=0.0,
                 max_growth_rounds=2, reuse_epochs=None, fixed_mask_epochs=None,
                 fit_accuracy=0.98):
        super().__init__()
        if target is not None and (
            isinstance(target, (str, bool)) or not isinstance(target, numbers.Real)
            or not 0.0 < float(target) <= 1.0
        ):
            raise ValueError(
                "GrowWhenNecessary(target=) takes None or an accuracy in (0, 1]; for the "
                "paper's Scratch target, pass kg.scratch_reference(model, task). "
                f"Received: target={target!r}"
            )
        if not isinstance(monitor, str) or not monitor:
            raise ValueError(f"monitor must be the name of a log entry. Received: {monitor!r}")
        patience = check_count("patience", patience, 1)
        max_growth_rounds = check_count("max_growth_rounds", max_growth_rounds, 0)
        reuse_epochs = check_optional_count("reuse_epochs", reuse_epochs, "None or an integer >= 0")
        fixed_mask_epochs = check_optional_count(
            "fixed_mask_epochs", fixed_mask_epochs, "None or an integer >= 0")
        if isinstance(fit_accuracy, bool) or not isinstance(fit_accuracy, numbers.Real) \
                or not 0.0 < fit_accuracy <= 1.0:
            raise ValueError(
                f"fit_accuracy must be an accuracy in (0, 1]. Received: {fit_accuracy!r}"
            )
        if isinstance(min_delta, bool) or not isinstance(min_delta, numbers.Real) \
                or not min_delta >= 0:
            raise ValueError(f"min_delta must be a number >= 0. Received: {min_delta!r}")
        self.target = None if target is None else float(target)
        self.monitor = monitor
        self.patience = patience
        self.min_delta = float(min_delta)
        self.max_growth_rounds = max_growth_rounds
        self.reuse_epochs = reuse_epochs
        self.fixed_mask_epochs = fixed_mask_epochs
        self.fit_accuracy = float(fit_accuracy)
        self.phases = []
        self._active = False
        self._short_warned = False

    def get_config(self):
        return {
            "target": self.target, "monitor": self.monitor, "patience": self.patience,
            "min_delta": self.min_delta, "max_growth_rounds": self.max_growth_rounds,
            "reuse_epochs": self.reuse_epochs, "fixed_mask_epochs": self.fixed_mask_epochs,
            "fit_accuracy": self.fit_accuracy,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        settings = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"GrowWhenNecessary({settings})"

    # -- the plan of one fit() -------------------------------------------
    def epochs_of(self, epochs):
        """(pick-and-reuse budget in epochs, first fixed-mask epoch) of a fit of `epochs` epochs.

        The budget is a third of the epochs before the fixed-mask phase, a
        fraction of an epoch where that is not whole (2 epochs: a third of
        the first), so that a short fit has time to grow; `reuse_epochs`
        when given. A one-epoch fit is all pick and reuse.
        """
        if self.fixed_mask_epochs is not None:
            fixed = min(self.fixed_mask_epochs, epochs - 1) if epochs > 1 else 0
        else:
            fixed = 0 if epochs < 2 else max(1, int(round(FIXED_MASK_SHARE * epochs)))
        learning = epochs - fixed
        if self.reuse_epochs is not None:
            reuse = self.reuse_epochs
        elif epochs < 2:
            reuse = 1
        else:
            reuse = learning * REUSE_SHARE
            reuse = round(reuse) if abs(reuse - round(reuse)) < 1e-9 else reuse
        return reuse, learning

    @property
    def growth_rounds(self):
        """Growth rounds the schedule started in the last `fit()` (`grow()` calls)."""
        return sum(1 for phase in self.phases[1:] if phase["phase"] == "grow")

    def on_train_begin(self, logs=None):
        model = self.model
        self.phases = []
        self._active = isinstance(getattr(model, "grown_layers", None), list) and may_act(model)
        if not self._active:
            return
        self._epochs = int(self.params.get("epochs") or 1)
        self._warn_if_short(self.params.get("steps"))
        self._reuse_budget, self._fix_at = self.epochs_of(self._epochs)
        self._seen = 0
        self._best_before = -math.inf
        self._warned = False
        self._start("grow" if model.growth_enabled else "reuse")
        self._decide_at = self._decision_steps()
        self._window = None

    def _warn_if_short(self, steps):
        total = steps * self._epochs if steps else None
        if total is None or total >= SHORT_FIT_STEPS or self._short_warned:
            return
        self._short_warned = True  # once per schedule: a stream's fits are alike
        warnings.warn(
            f"GrowWhenNecessary: this fit() trains {total} steps ({steps} per epoch x "
            f"{self._epochs} epochs). Growth decided inside one fit() needs a few hundred "
            f"steps per task: under {SHORT_FIT_STEPS}, GROWN was measured below a plain "
            "network (0.4 to 5 points at 30 steps on class splits, far more on unrelated "
            "tasks; FIDELITY.md §12g-§12h), and no setting of the penalty, the masks or "
            "the target made up for it. Train more epochs (or more data) per task.",
            stacklevel=2,
        )

    def _decision_steps(self):
        """(epoch, first step, decision step) of a pick-and-reuse phase that ends inside an epoch.

        Such a phase ends on the training accuracy of its second half (the
        steps from `first step` on), in an epoch whose step count Keras
        knows, and with an `accuracy` metric. Else the budget is rounded up
        to whole epochs.
        """
        budget = self._reuse_budget
        whole = math.floor(budget)
        if budget == whole or self.phases[-1]["phase"] != "reuse":
            return None
        steps = self.params.get("steps")
        step = round((budget - whole) * steps) if steps else 0
        if not steps or not 0 < step < steps \
                or "accuracy" not in self.model.get_metrics_result():
            self._reuse_budget = math.ceil(budget)
            return None
        first = step // 2 if whole == 0 else 0
        return whole, first, step

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        # Called before the step `batch` (0-based) of the epoch: `batch`
        # steps of it are done, and the metrics hold their running mean
        # since the epoch began. Only the steps of a decision read them
        # (`get_metrics_result()`): no per-step copy to the host.
        if not self._active or self._decide_at is None or self.phases[-1]["phase"] != "reuse":
            return
        epoch, first, step = self._decide_at
        if self._epoch != epoch or batch < first:
            return
        if first and self._window is None:
            self._window = (batch, self._accuracy())  # the start of the phase's second half
            return
        if batch < step:
            return
        accuracy = self._accuracy()
        if self._window is not None:
            start, then = self._window
            accuracy = (batch * accuracy - start * then) / (batch - start)
        self.phases[-1]["train_accuracy"] = accuracy
        self._decide_at = None
        self._end_reuse(self.phases[-1])

    def _accuracy(self):
        return float(self.model.get_metrics_result()["accuracy"])

    def _start(self, phase):
        self.phases.append({"phase": phase, "start_epoch": self._seen, "best": -math.inf,
                            "epochs": 0, "wait": 0})

    def _value(self, logs):
        logs = logs or {}
        for key in (self.monitor, self.monitor[4:] if self.monitor.startswith("val_") else None):
            if key is not None and logs.get(key) is not None:
                return float(logs[key])
        if not self._warned:
            self._warned = True
            warnings.warn(
                f"GrowWhenNecessary: the logs have no {self.monitor!r} (they have "
                f"{sorted(logs)}); phases end on their epoch budgets only. Pass "
                "validation_data= to fit(), or monitor= an entry of the logs.",
                stacklevel=2,
            )
        return None

    def on_epoch_end(self, epoch, logs=None):
        if not self._active:
            return
        self._seen += 1
        phase = self.phases[-1]
        phase["epochs"] += 1
        value = self._value(logs)
        if (logs or {}).get("accuracy") is not None:
            phase["train_accuracy"] = float(logs["accuracy"])
        if value is not None:
            if value > phase["best"] + self.min_delta or phase["best"] == -math.inf:
                phase["best"], phase["wait"] = value, 0
            else:
                phase["wait"] += 1
        stalled = phase["wait"] >= self.patience
        if phase["phase"] == "fixed":
            if stalled and self._seen < self._epochs:
                self.model.stop_training = True
            return
        if self._seen >= self._epochs:
            return  # the fit ends here; finish_task() hardens the masks as they are
        if self._seen >= self._fix_at:
            self._fix()
            return
        # Pick and reuse ends on a plateau or its budget; growth (from the
        # start, or a round the schedule started) on a plateau.
        reuse = phase["phase"] == "reuse"
        if not (stalled or (reuse and phase["epochs"] >= self._reuse_budget)):
            return
        self._end_reuse(phase)

    def _end_reuse(self, phase):
        """Ends a pick-and-reuse phase or a growth round: the next round, or fixed masks."""
        if self._should_grow(phase):
            self._best_before = max(self._best_before, phase["best"])
            change_phase(self.model, self.model.grow)
            self._start("grow")
        else:
            self._fix()

    def _should_grow(self, phase):
        if self.growth_rounds >= self.max_growth_rounds:
            return False
        model = self.model
        if not model.learnable_growth or not has_dormant_channels(model):
            return False
        if self.target is not None:
            # Inside an epoch no validation has run: the phase's training
            # accuracy stands for it (it is the lower of the two early on).
            measured = phase["best"] if phase["best"] > -math.inf \
                else phase.get("train_accuracy", -math.inf)
            if measured >= self.target:
                return False
        if self.target is None and phase.get("train_accuracy", 0.0) >= self.fit_accuracy:
            return False  # the task fits its own data: more capacity is not what it needs
        if phase["phase"] == "grow" and len(self.phases) > 1:
            # Another round only when this one paid.
            return phase["best"] > self._best_before + self.min_delta
        return True

    def _fix(self):
        change_phase(self.model, self.model.fix_masks)
        self._start("fixed")


def may_act(model):
    """Whether a growth schedule may change `model`'s current task's phase in this fit()."""
    return model.current_task is not None and not model.mode.manual and not model.mode.masks_fixed


def change_phase(model, change):
    """Runs `change` (`model.grow` or `model.fix_masks`) for the schedule, inside fit().

    The first change of a fit() keeps what fit() must put back should it
    fail later (the plans, optimizers and storage it replaces); after the
    change the new plans' working variables are the ones training, and the
    train step is traced again for them.
    """
    from keras_grown.transaction import Transaction

    if model.controller.in_fit and model.controller.fit_undo is None:
        storage = [v for layer in model.grown_layers
                   for v in (layer.free_kernel, *layer.score_variables)]
        model.controller.fit_undo = Transaction(model, storage, limit=model.fit_snapshot_memory_limit)
    model.controller.schedule_acting = True
    try:
        change()
    finally:
        model.controller.schedule_acting = False
    if model.controller.in_fit:
        for plan in model.controller.plans():
            plan.ahead = True
        model.make_train_function()  # the mode changed: traced again


def resolve(schedule):
    """A model's `growth_schedule` argument: "auto", None, a config dict or an instance."""
    if schedule is None or isinstance(schedule, GrowWhenNecessary):
        return schedule
    if schedule == "auto":
        return GrowWhenNecessary()
    if isinstance(schedule, dict):
        return GrowWhenNecessary.from_config(schedule)
    raise ValueError(
        "growth_schedule takes 'auto' (GrowWhenNecessary()), None (fit() trains in the "
        "state you set: grow()/fix_masks() by hand) or a kg.callbacks.GrowWhenNecessary. "
        f"Received: growth_schedule={schedule!r}"
    )
