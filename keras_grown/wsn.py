"""WSN (Winning SubNetworks) as a policy of the one engine.

Kang et al. (ICML 2022), "Forget-free Continual Learning with Winning
Subnetworks"; public code `ihaeyong/WSN`. Registered here as
`keras_grown.methods.WSN` and `methods.get("wsn")` (this module subclasses
`methods.Method`, so `methods` cannot import it; the package imports it).
"""

from keras_grown import methods
from keras_grown._checks import check_finite


class WSN(methods.Method):
    """A full-size network; each task trains the top `capacity` of its weight scores in one pass.

    Per task and per layer, a real-valued score per kernel ranks the
    layer's kernels; the task's subnetwork is the fraction `capacity` with
    the largest score magnitudes (hard top-c forward, the score gradient
    passed straight through backward: `keras_grown.masks.straight_through_top_fraction`).
    Weights no earlier task owns train jointly with the scores, in one
    `fit()` per task (no prune and re-train, no growth, no reference
    network); weights earlier tasks own are read when selected and never
    updated (the engine's owner / frozen / free storage). `finish_task()`
    stores the task's mask packed (1 bit per kernel) and gives the task the
    free kernels it selected, as for every method: the model size after task
    t is the union of the subnetworks so far.

    What follows the public code: the top c is taken per layer over all of
    its weights, owned or free, by `|score|`; the scores start at
    U(-1/sqrt(fan-in), 1/sqrt(fan-in)) (kaiming-uniform with a = sqrt(5))
    and are not re-initialised between tasks (a task starts from the scores
    the previous one ended with; `reinit_scores=True` draws new ones); the
    scores train with the weights' learning rate (the code has one Adam for
    both); the head is per task.

    Where ours differs:

    * **Kernel-wise scores** for convolutions: one score per k x k kernel
      (one input/output channel pair), the engine's mask granularity, where
      the paper scores every weight. Dense layers are per weight, as in the
      paper.
    * The scores train with the engine's mask optimizer (Adam at
      `mask_learning_rate`, by default the weights' `learning_rate`), apart
      from the weights' optimizer, which may be any Keras optimizer.
    * Per-task biases and batch-norm state (the engine's), where the public
      networks have bias-free layers; a task's biases start from the
      previous task's.
    * No validation-based early stopping or learning-rate decay inside a
      task: `learn(epochs=)` epochs, as every method here.

    Args:
        capacity: c, the fraction of every layer's kernels a task uses, in
            (0, 1] (the paper's c; its default 0.5). Not `GrownModel`'s
            capacity (the pool width), which WSN fixes at 1 (full size);
            `config()["capacity"]` is c.
        reinit_scores: draw new scores for every task instead of carrying
            the previous task's over.
        mask_learning_rate: learning rate of the scores' Adam (default:
            `learning_rate`).
        **kwargs: see `keras_grown.methods.Method`.

    Example:

    ```python
    import keras_grown as kg

    stream = kg.datasets.split_fashion_mnist(num_tasks=5)
    result = kg.learn(kg.methods.WSN(capacity=0.5), stream, epochs=2)
    result.accuracy.backward_transfer()  # 0.0: nothing forgotten
    ```
    """

    name = "wsn"
    label = "WSN"

    def __init__(self, capacity=0.5, reinit_scores=False, mask_learning_rate=None, **kwargs):
        check_finite("capacity", capacity, "in (0, 1] (the fraction of each layer a task uses)")
        if not 0.0 < float(capacity) <= 1.0:
            raise ValueError(
                "WSN's capacity is the fraction of every layer's weights a task uses and must "
                f"be in (0, 1]. Received: capacity={capacity}"
            )
        self.subnet_capacity = float(capacity)
        self.reinit_scores = bool(reinit_scores)
        super().__init__(**kwargs)
        if mask_learning_rate is None:
            mask_learning_rate = self.learning_rate
        self.model_kwargs["mask_learning_rate"] = float(mask_learning_rate)
        if self.subnet_capacity != 0.5:
            self.label = f"WSN (c={self.subnet_capacity:g})"

    def settings(self):
        # Full size; one combined kernel score (selective where owned,
        # attentive where free), no growth, every weight a task leaves free.
        return dict(
            methods._FULL_SIZE, selective_mask=True, attentive_mask=True,
            retrain_released=True,
        )

    def _own_config(self):
        return {"capacity": self.subnet_capacity, "reinit_scores": self.reinit_scores}

    def build_model(self, input_shape):
        model = super().build_model(input_shape)
        self._configure(model)
        return model

    def restore(self, models, arrays=None):
        super().restore(models, arrays)
        for model in self.models:
            self._configure(model)

    def _configure(self, model):
        """Switches every grown layer of `model` to the top-c rule."""
        for layer in model.grown_layers:
            layer.mode = layer.mode.replace(
                top_fraction=self.subnet_capacity, reinit_top_scores=self.reinit_scores)

    def train_task(self, run, model, index, task, target=None):
        # One pass: the scores pick the subnetwork while its free weights train.
        self.add_task(model, task)
        run.fit(model, run.epochs)
        return 0


# Registered from here (see the module docstring): the package imports this
# module with `methods`, so `methods.get("wsn")`, `--methods wsn` and
# `keras_grown.methods.WSN` always find it.
methods.METHODS["wsn"] = WSN
methods.WSN = WSN
