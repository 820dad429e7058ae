"""Continual-learning methods as settings of one engine.

Every method here is a small policy object that `keras_grown.learn()` runs
with the same training loop, the same metrics and the same model-size
definition (README.md, "Methods and baselines: one engine"):

| method | seed | selective mask | attentive mask | growth | frees weights |
| --- | --- | --- | --- | --- | --- |
| `GROWN` | small | learned | learned | LSG when below target | yes |
| `GrowOnly` | small | all ones | all ones | channel-wise, every task | no |
| `Piggyback` | full | learned | - | none; task 1 trains the full net | no |
| `PackNet` | full | all ones | magnitude pruning, then retrain | none | pruned weights |
| `WSN` (`keras_grown.wsn`) | full | top-c of one kernel score over owned and free | | none | unselected weights |
| `FineTune(keep_copies=True)` | full, one copy per task | - | - | - | - |
| `FineTune()` | full, one shared | - | - | nothing frozen: forgets | - |
| `Scratch` | full, one network per task | - | - | - | - |
| `EWC` | `FineTune()` plus the EWC penalty | | | | |

A method builds its model(s) from the stream's input shape when `learn()`
starts; the keyword arguments that are not the method's own go to
`GrownModel` (`backbone`, `seed_ratio`, `capacity`, `l0_lambda`, ...), and
`learning_rate`, `optimizer` and `jit_compile` to `compile()`.

Model size after task t (as in the paper): weights owned by some task over
the weights of one full-size backbone for the one-engine methods; t x for
`Scratch` and `FineTune(keep_copies=True)` (one full-size network per task);
1x for the shared `FineTune()` and `EWC`.
"""

import keras
import numpy as np
import tensorflow as tf

from keras_grown import backbones
from keras_grown._checks import check_optional_count
from keras_grown.model import GrownModel

# Settings that make the engine an ordinary full-size network.
_FULL_SIZE = dict(seed_ratio=1.0, capacity=1.0, learnable_growth=False)
_COMPILE_KEYS = ("optimizer", "learning_rate", "jit_compile")


class Method:
    """Base of the methods: what is trained, frozen and grown for each task.

    Subclasses set `settings()` (the `GrownModel` arguments the method fixes)
    and `train_task()` (the stages of one task). `learn()` calls, per task:
    `model_for_task()`, `train_task()`, `model.finish_task()`, `end_task()`,
    then `evaluation_model()` for every task seen so far.

    Args:
        learning_rate: Adam learning rate of the weights (ignored when
            `optimizer` is given).
        optimizer: a Keras optimizer (or its name) for the weights; a fresh
            copy is used for every task.
        jit_compile: compile the train step with XLA.
        **model_kwargs: `GrownModel` arguments (`backbone`, `seed_ratio`,
            `capacity`, `l0_lambda`, `seed`, ...). Arguments the method fixes
            (see `settings()`) cannot be overridden.
    """

    name = "method"
    label = "Method"
    # Whether `train_task()` reads `learn()`'s target (GROWN's growth rule);
    # for the others learn() neither trains a Scratch reference nor passes one.
    uses_target = False

    def __init__(self, learning_rate=1e-3, optimizer=None, jit_compile=False, **model_kwargs):
        if not float(learning_rate) > 0:
            raise ValueError(
                f"learning_rate must be positive. Received: learning_rate={learning_rate}"
            )
        fixed = set(model_kwargs) & set(self.settings())
        if fixed:
            raise ValueError(
                f"{type(self).__name__} fixes {sorted(fixed)} (the table of methods "
                "in keras_grown.methods' docstring); remove them from the arguments."
            )
        for key in ("input_shape", "tasks"):
            if key in model_kwargs:
                raise ValueError(
                    f"{type(self).__name__} takes {key} from the stream; remove {key}=."
                )
        self.learning_rate = float(learning_rate)
        self.optimizer = optimizer
        self.jit_compile = jit_compile
        self.model_kwargs = dict(model_kwargs)
        self.models = []

    # -- what the method fixes --------------------------------------------
    def settings(self):
        """The `GrownModel` arguments this method fixes."""
        return {}

    def config(self):
        """Name and every setting, for results files."""
        return {
            "method": self.name,
            "label": self.label,
            "learning_rate": self.learning_rate,
            "jit_compile": bool(self.jit_compile),
            **self.model_kwargs,
            **self.settings(),
            **self._own_config(),
        }

    def _own_config(self):
        return {}

    # -- models -----------------------------------------------------------
    def build_model(self, input_shape):
        """A compiled `GrownModel` with the method's settings."""
        settings = {**self.model_kwargs, **self.settings()}
        # No backbone named: the one that takes these images (lenet5, or
        # lenet_small for images smaller than 16x16).
        settings.setdefault("backbone", backbones.default_backbone(input_shape))
        # Only GROWN's fit() grows by itself (its schedule); the other
        # methods train each stage in the state they set.
        settings.setdefault("growth_schedule", "auto" if self.uses_target else None)
        model = GrownModel(input_shape=input_shape, **settings)
        if self.optimizer is None:
            optimizer = keras.optimizers.Adam(self.learning_rate)
        else:
            optimizer = keras.optimizers.get(self.optimizer)
        model.compile(
            optimizer=optimizer, loss="sparse_categorical_crossentropy",
            metrics=["accuracy"], jit_compile=self.jit_compile,
        )
        return model

    def start(self, input_shape):
        """Forgets the models of a previous run; called by `learn()` first."""
        self.input_shape = tuple(input_shape)
        self.models = []

    def model_for_task(self, index):
        """The model that learns task `index` (one shared model by default)."""
        if not self.models:
            self.models.append(self.build_model(self.input_shape))
        return self.models[0]

    def evaluation_model(self, index):
        """(model, task index inside it) that answers for task `index`."""
        return self.models[0], index

    @property
    def model(self):
        """The model after the last task (for copies, the last copy)."""
        return self.models[-1] if self.models else None

    def model_size(self):
        """Model size in full-size backbones after the finished tasks."""
        return sum(m.model_size().ratio for m in self.models)

    # -- training -----------------------------------------------------------
    def add_task(self, model, task, grow=None):
        return model.add_task(task.train, num_classes=task.num_classes, grow=grow)

    def train_task(self, run, model, index, task, target=None):
        """Trains task `index`; returns the number of growth rounds used."""
        self.add_task(model, task)
        run.fit(model, run.epochs)
        return 0

    def end_task(self, run, model, index, task):
        """Called after `finish_task()` (EWC computes its Fisher here)."""

    # -- checkpoints ---------------------------------------------------------
    def state_arrays(self):
        """Arrays the method keeps outside its models (for checkpoints), or None."""
        return None

    def restore(self, models, arrays=None):
        """Takes the models (and arrays) of a checkpoint after `start()`."""
        self.models = list(models)

    def __repr__(self):
        return f"{type(self).__name__}({self.config()})"


def _check_epochs(name, value):
    """None (the stage's epochs) or an integer >= 0."""
    return check_optional_count(name, value, "None (as many as a stage) or an integer >= 0")


# (selective mask, learnable sparse growth, re-train released) -> name of the Table 5 step.
_ABLATION_NAMES = {
    (False, False, False): "grow",
    (True, False, False): "grow_sel",
    (True, True, False): "grow_sel_lsg",
}


class GROWN(Method):
    """GROWN: a small seed that grows only when necessary (the paper's method).

    The three switches are the ablation of the paper's Table 5; all on is
    GROWN, and:

    * `GROWN(selective_mask=False, learnable_growth=False, retrain_released=False)`
      is "Grow": channel-wise growth only (grown mask, every kernel of a
      grown channel taken), old weights all read.
    * `+Sel-mask` turns on the selective mask over frozen weights.
    * `+LSG` turns on learnable *sparse* growth: the attentive mask over the
      kernels of grown channels, so a grown channel takes only the kernels
      that matter.
    * `+Re-train` re-trains released weights (free weights inside active
      channels that their task did not keep).

    Args:
        selective_mask: learn the selective mask over frozen weights.
        learnable_growth: sparse growth (attentive mask); off: channel-wise.
        retrain_released: re-train released weights.
        fixed_mask_epochs: epochs at the end of every task's one `fit()`,
            trained with the masks fixed at their hard values
            (`GrownModel.fix_masks()`: no Gumbel noise, no mask update)
            before `finish_task()`. None: the growth schedule's default (40 % of `learn(epochs=)`, at least 1); 0: none.
        grow_from_start: every task starts with growth on (the l0 penalty
            alone decides; `learn(target=None)` of earlier versions). False:
            only the first task does, later ones grow when the schedule
            decides.
        **kwargs: see `Method`.
    """

    uses_target = True

    def __init__(self, selective_mask=True, learnable_growth=True, retrain_released=True,
                 fixed_mask_epochs=None, grow_from_start=False, **kwargs):
        self.selective_mask = bool(selective_mask)
        self.learnable_growth = bool(learnable_growth)
        self.retrain_released = bool(retrain_released)
        self.fixed_mask_epochs = _check_epochs("fixed_mask_epochs", fixed_mask_epochs)
        self.grow_from_start = bool(grow_from_start)
        super().__init__(**kwargs)
        self._wrapped = None

    def _own_config(self):
        return {"fixed_mask_epochs": self.fixed_mask_epochs,
                "grow_from_start": self.grow_from_start}

    @classmethod
    def from_model(cls, model, fixed_mask_epochs=None, grow_from_start=False):
        """GROWN training an existing `GrownModel` with its own settings."""
        method = cls(selective_mask=model.selective_mask,
                     learnable_growth=model.attentive_mask,
                     retrain_released=model.retrain_released,
                     fixed_mask_epochs=fixed_mask_epochs, grow_from_start=grow_from_start)
        method._wrapped = model
        return method

    @property
    def name(self):
        """The `get()` name of this setting: `grown`, or an ablation step of Table 5."""
        switches = (self.selective_mask, self.learnable_growth, self.retrain_released)
        return _ABLATION_NAMES.get(switches, "grown")

    @property
    def label(self):
        """`GROWN`, or its ablation step of Table 5 (`Grow +Sel-mask`, ...)."""
        switches = (self.selective_mask, self.learnable_growth, self.retrain_released)
        if all(switches):
            return "GROWN"
        names = ("Sel-mask", "LSG", "Re-train")
        on = [n for n, s in zip(names, switches) if s]
        return "Grow" + "".join(f" +{n}" for n in on)

    def settings(self):
        return {
            "selective_mask": self.selective_mask,
            "attentive_mask": self.learnable_growth,
            "retrain_released": self.retrain_released,
        }

    def start(self, input_shape):
        super().start(input_shape)
        if self._wrapped is not None:
            self.models = [self._wrapped]

    def restore(self, models, arrays=None):
        super().restore(models, arrays)
        if self._wrapped is not None:
            self._wrapped = self.models[0]

    def schedule_for(self, model, run, target):
        """The `GrowWhenNecessary` that trains one task: the model's own settings, with
        `learn()`'s target, growth rounds and this method's fixed-mask epochs."""
        from keras_grown.schedule import GrowWhenNecessary

        own = model.growth_schedule
        config = own.get_config() if own is not None else GrowWhenNecessary().get_config()
        config.update(target=target, max_growth_rounds=run.max_growth_rounds)
        if self.fixed_mask_epochs is not None:
            config.update(fixed_mask_epochs=self.fixed_mask_epochs)
        return GrowWhenNecessary(**config)

    def train_task(self, run, model, index, task, target=None):
        # One fit() per task: the first task trains the seed with growth on
        # from the start (the paper); later ones pick and reuse first, then
        # grow when necessary and end under the fixed masks, as decided by
        # the growth schedule at epoch boundaries (`GrowWhenNecessary`).
        grow_now = (index == 0 or self.grow_from_start) and model.learnable_growth
        self.add_task(model, task, grow=grow_now)
        schedule = self.schedule_for(model, run, target)
        run.fit(model, run.epochs, schedule=schedule)
        return schedule.growth_rounds


class GrowOnly(Method):
    """Channel-wise learnable growth every task; old weights all read, nothing released.

    Yuan et al. (2020)-style growing: no selective mask (every frozen weight
    is read), no attentive mask (a grown channel takes all its kernels).
    """

    name = "grow_only"
    label = "Grow only"

    def settings(self):
        return dict(selective_mask=False, attentive_mask=False, retrain_released=False,
                    learnable_growth=True)

    def train_task(self, run, model, index, task, target=None):
        self.add_task(model, task, grow=True)
        run.fit(model, run.epochs)
        return 0


class Piggyback(Method):
    """The first task trains the full-size network; later tasks learn a binary mask over it.

    Mallya et al. (2018): nothing grows and nothing is released; every
    later task only learns its selective mask (plus its head, biases and
    batch-norm state).
    """

    name = "piggyback"
    label = "Piggyback"

    def settings(self):
        return dict(_FULL_SIZE, selective_mask=True, attentive_mask=False)


class PackNet(Method):
    """Full-size network; each task trains the free weights, prunes, re-trains.

    Mallya & Lazebnik (2018): after training, the smallest `prune_ratio` of
    the free weights the task used (by magnitude, per layer) are released to
    later tasks; the task re-trains the rest for `retrain_epochs` and keeps
    them. Every task reads all weights of earlier tasks.

    Args:
        prune_ratio: fraction of the task's free weights released, in [0, 1).
        retrain_epochs: epochs after pruning (default: the stage's epochs).
    """

    name = "packnet"
    label = "PackNet"

    def __init__(self, prune_ratio=0.5, retrain_epochs=None, **kwargs):
        if not 0.0 <= float(prune_ratio) < 1.0:
            raise ValueError(f"prune_ratio must be in [0, 1). Received: prune_ratio={prune_ratio}")
        self.prune_ratio = float(prune_ratio)
        self.retrain_epochs = retrain_epochs
        super().__init__(**kwargs)

    def _own_config(self):
        return {"prune_ratio": self.prune_ratio, "retrain_epochs": self.retrain_epochs}

    def settings(self):
        return dict(_FULL_SIZE, selective_mask=False, attentive_mask=False)

    def train_task(self, run, model, index, task, target=None):
        self.add_task(model, task)
        run.fit(model, run.epochs)
        model.prune(self.prune_ratio)
        run.fit(model, self.retrain_epochs or run.epochs)
        return 0


class FineTune(Method):
    """Fine-tuning, in its two forms.

    * `FineTune()` (naive, the usual lower bound): one shared full-size
      network, nothing frozen; every task trains all of it with its own
      head, so earlier tasks forget. Size 1x.
    * `FineTune(keep_copies=True)` (the paper's Fine-tune): task 1 trains a
      full-size network from scratch; each later task fine-tunes a *copy* of
      the previous task's network and keeps it. Nothing is forgotten; the
      size after task t is t x.
    """

    name = "finetune"
    label = "Fine-tune"

    def __init__(self, keep_copies=False, **kwargs):
        self.keep_copies = bool(keep_copies)
        super().__init__(**kwargs)
        if self.keep_copies:
            self.name, self.label = "finetune_copies", "Fine-tune (copies)"

    def _own_config(self):
        return {"keep_copies": self.keep_copies}

    def settings(self):
        return dict(
            _FULL_SIZE, selective_mask=False, attentive_mask=False,
            freeze_finished_tasks=self.keep_copies,
        )

    def model_for_task(self, index):
        if not self.keep_copies:
            return super().model_for_task(index)
        model = self.build_model(self.input_shape)
        # add_task() copies the previous task's network into the new one.
        self._copy_into = (model, self.models[-1]) if self.models else None
        self.models.append(model)
        return model

    def evaluation_model(self, index):
        if not self.keep_copies:
            return super().evaluation_model(index)
        return self.models[index], 0

    def add_task(self, model, task, grow=None):
        result = super().add_task(model, task, grow)
        pending = getattr(self, "_copy_into", None)
        if pending is not None and pending[0] is model:
            copy_backbone(pending[1], model)
            self._copy_into = None
        return result


class Scratch(Method):
    """One full-size network per task, trained from scratch. Size after task t: t x."""

    name = "scratch"
    label = "Scratch"

    def settings(self):
        return dict(_FULL_SIZE, selective_mask=False, attentive_mask=False)

    def model_for_task(self, index):
        self.models.append(self.build_model(self.input_shape))
        return self.models[-1]

    def evaluation_model(self, index):
        return self.models[index], 0


class EWC(FineTune):
    """Elastic weight consolidation over the shared fine-tuned network.

    Kirkpatrick et al. (2017): `FineTune()` plus the penalty
    `ewc_lambda / 2 * sum_i F_i (w_i - w*_i)^2` over the shared kernels,
    where `w*` are the kernels after the previous task and `F` the diagonal
    empirical Fisher information, summed over the finished tasks.

    Args:
        ewc_lambda: weight of the penalty, >= 0.
        fisher_samples: training examples per task used for the Fisher.
    """

    name = "ewc"
    label = "EWC"

    def __init__(self, ewc_lambda=100.0, fisher_samples=256, **kwargs):
        if not float(ewc_lambda) >= 0:
            raise ValueError(f"ewc_lambda must be >= 0. Received: ewc_lambda={ewc_lambda}")
        if int(fisher_samples) < 1:
            raise ValueError(
                f"fisher_samples must be >= 1. Received: fisher_samples={fisher_samples}"
            )
        self.ewc_lambda = float(ewc_lambda)
        self.fisher_samples = int(fisher_samples)
        if kwargs.get("keep_copies"):
            raise ValueError("EWC regularizes one shared network; remove keep_copies=.")
        super().__init__(keep_copies=False, **kwargs)
        self.name, self.label = "ewc", "EWC"

    def _own_config(self):
        return {"ewc_lambda": self.ewc_lambda, "fisher_samples": self.fisher_samples}

    def start(self, input_shape):
        super().start(input_shape)
        self._fisher = None
        self._anchor = None

    def end_task(self, run, model, index, task):
        kernels = [layer.free_kernel for layer in model.grown_layers]
        fisher = _diagonal_fisher(model, task.train, kernels, self.fisher_samples)
        if self._fisher is None:
            self._install(model, fisher, [k.numpy() for k in kernels])
        else:
            for variable, value in zip(self._fisher, fisher):
                variable.assign_add(value)
            for variable, kernel in zip(self._anchor, kernels):
                variable.assign(kernel.numpy())

    def _install(self, model, fisher, anchor):
        """Adds the EWC penalty over `model`'s shared kernels to its loss."""
        kernels = [layer.free_kernel for layer in model.grown_layers]
        self._fisher = [tf.Variable(f, trainable=False) for f in fisher]
        self._anchor = [tf.Variable(a, trainable=False) for a in anchor]
        strength = self.ewc_lambda / 2.0

        def ewc_penalty():
            total = 0.0
            for f, a, kernel in zip(self._fisher, self._anchor, kernels):
                total = total + tf.reduce_sum(f * tf.square(kernel.value - a))
            return strength * total

        model.penalties.append(ewc_penalty)

    def state_arrays(self):
        if self._fisher is None:
            return None
        arrays = {f"fisher_{i}": f.numpy() for i, f in enumerate(self._fisher)}
        arrays.update({f"anchor_{i}": a.numpy() for i, a in enumerate(self._anchor)})
        return arrays

    def restore(self, models, arrays=None):
        super().restore(models, arrays)
        if arrays:
            count = len(self.models[0].grown_layers)
            self._install(
                self.models[0],
                [arrays[f"fisher_{i}"] for i in range(count)],
                [arrays[f"anchor_{i}"] for i in range(count)],
            )


def _diagonal_fisher(model, dataset, variables, samples):
    """Mean squared gradient of the log-likelihood of the true label, per example."""

    @tf.function
    def squared_gradients(x, y):
        with tf.GradientTape() as tape:
            probabilities = model(x[None], training=False)[0]
            log_likelihood = tf.math.log(tf.gather(probabilities, y) + 1e-12)
        return [tf.square(g) for g in tape.gradient(log_likelihood, variables)]

    totals = [np.zeros(v.shape, "float32") for v in variables]
    count = 0
    for x, y in dataset.take(samples):
        for total, value in zip(totals, squared_gradients(x, tf.cast(y, tf.int32))):
            total += value.numpy()
        count += 1
    return [total / max(count, 1) for total in totals]


def copy_backbone(source, target):
    """Copies the weights `source`'s last finished task uses into `target`'s current task.

    Both are full-size models of the same backbone. The kernels go to the
    target's free (trainable) store; the biases and batch-norm state of the
    source's last task become those of the target's current task; the head
    stays new.
    """
    task = source.finished_tasks[-1]
    for src, dst in zip(source.grown_layers, target.grown_layers):
        owned = keras.ops.convert_to_numpy(src.owner) > 0
        spatial = (None,) * len(src.kernel_spatial_shape)
        kernel = np.where(
            owned[spatial],
            keras.ops.convert_to_numpy(src.frozen_kernel),
            keras.ops.convert_to_numpy(src.free_kernel),
        )
        dst.free_kernel.assign(kernel)
        for a, b in ((src, dst), (src.normalization, dst.normalization)):
            if a is None:
                continue
            for key in a._inherited_task_values:
                if key in a._task_variables[task] and key in b._task_variables[dst.task]:
                    b._task_variables[dst.task][key].assign(a._task_variables[task][key])


METHODS = {
    "grown": GROWN,
    "grow_only": GrowOnly,
    "piggyback": Piggyback,
    "packnet": PackNet,
    "finetune": FineTune,
    "finetune_copies": lambda **kw: FineTune(keep_copies=True, **kw),
    "scratch": Scratch,
    "ewc": EWC,
    # The ablation of the paper's Table 5.
    "grow": lambda **kw: GROWN(selective_mask=False, learnable_growth=False,
                               retrain_released=False, **kw),
    "grow_sel": lambda **kw: GROWN(learnable_growth=False, retrain_released=False, **kw),
    "grow_sel_lsg": lambda **kw: GROWN(retrain_released=False, **kw),
}


def get(name, **kwargs):
    """A method by name (`keras-grown bench --methods ...`), with its arguments."""
    if name not in METHODS:
        raise ValueError(
            f"Unknown method {name!r}. Choose from: {', '.join(METHODS)}."
        )
    return METHODS[name](**kwargs)


def as_method(model_or_method):
    """A `Method` from a method or a `GrownModel` (trained as GROWN with its own settings)."""
    if isinstance(model_or_method, Method):
        return model_or_method
    if isinstance(model_or_method, GrownModel):
        return GROWN.from_model(model_or_method)
    raise TypeError(
        "learn() takes a GrownModel or a method from keras_grown.methods (GROWN(), "
        f"PackNet(), ...); received {type(model_or_method).__name__}."
    )
