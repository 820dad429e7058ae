"""The storage and masking shared by GrownDense and GrownConv2D."""

import contextlib
import math

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from keras_grown import _framework, masks
from keras_grown._checks import is_integer
from keras_grown.layers import subnetwork
from keras_grown.layers.scope import (
    current_growth_settings, next_layer_seed, validate_growth_settings,
)
from keras_grown.layers.task_batch_norm import TaskBatchNorm
from keras_grown.layers.task_state import TaskStateMixin


class GrownLayer(TaskStateMixin, keras.layers.Layer):
    """Base of the grown layers: owner / frozen / free storage and task masks.

    The full capacity (`ceil(units * capacity)` output channels) is allocated
    once, so shapes never change: growth flips masks, it never reshapes a
    variable. Per kernel (the k x k slice between one input and one output
    channel; one weight for Dense) the layer keeps:

    * `owner[i, o]`: 0 = free, k = owned by task k - 1 (1-based, 0-based task
      index plus one). Owned values live in the non-trainable
      `frozen_kernel`, free values in the trainable `free_kernel`; the forward
      pass reads `where(owner > 0, frozen_kernel, free_kernel)`, so no
      optimizer (momentum, decoupled weight decay) can move an owned weight.
    * `active[o]`: 1 when channel o is active (part of the seed or grown by a
      task), 0 while it is dormant in the capacity pool.
    * per finished task: its kernel mask (what it reads, packed 1 bit per
      kernel) and its channel mask (which outputs are on, 1 bit per channel),
      and its bias.
    * the scores of the current task's selective, attentive and grown masks.

    The effective mask of the task being learned (README.md, "How it works"):

        M[i, o] = m_s[i, o]           if owner[i, o] > 0     (frozen, picked)
                = m_a[i, o]           if free and o active
                = m_g[o] * m_a[i, o]  if free and o dormant

    and the output is `act(norm(op(x, W * M) + b)) * gate[o]` with
    `gate[o] = active[o]` (or `max(active[o], m_g[o])` while growing): an off
    channel outputs exactly zero, so nothing downstream can read it.
    """

    def __init__(
        self,
        units,
        activation=None,
        use_bias=None,
        batch_norm=False,
        seed_ratio=None,
        capacity=None,
        kernel_initializer="glorot_uniform",
        temperature=None,
        gumbel=None,
        selective_init=None,
        attentive_init=None,
        grown_init=None,
        seed=None,
        num_tasks=0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        defaults = current_growth_settings()

        def pick(value, key):
            return defaults[key] if value is None else value

        self.units = _positive_int(units, "units")
        self.activation = keras.activations.get(activation)
        self.batch_norm = bool(batch_norm)
        self.use_bias = (not self.batch_norm) if use_bias is None else bool(use_bias)
        self.seed_ratio = float(pick(seed_ratio, "seed_ratio"))
        self.capacity = float(pick(capacity, "capacity"))
        validate_growth_settings(self.seed_ratio, self.capacity)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.temperature = float(pick(temperature, "temperature"))
        if not self.temperature > 0:
            raise ValueError(
                "temperature must be positive. "
                f"Received: temperature={self.temperature}"
            )
        self.gumbel = masks.validate_gumbel_form(pick(gumbel, "gumbel"))
        self.selective_init = float(pick(selective_init, "selective_init"))
        self.attentive_init = float(pick(attentive_init, "attentive_init"))
        self.grown_init = float(pick(grown_init, "grown_init"))
        self.seed = next_layer_seed() if seed is None else seed
        self.seed_generator = keras.random.SeedGenerator(self.seed)
        self.allocated_units = max(self.units, math.ceil(self.units * self.capacity))
        self.seed_units = min(
            self.allocated_units, max(1, int(round(self.units * self.seed_ratio)))
        )
        self.normalization = TaskBatchNorm(name="task_batch_norm") if self.batch_norm else None
        # What the layer computes (task, finished or learning, growth,
        # masks fixed, candidates) and its method's mask rule: one immutable
        # `LayerMode` in `self.mode`, set by GrownModel (`set_mode`).
        # The on-part the current task computes (set by GrownModel; None:
        # the whole allocated width, the masked full-capacity path).
        self.plan = None
        # Called after load_own_variables (GrownModel rebuilds its plans).
        self.after_load = None
        # Weight of one channel in the l0 term and in the size report, set by
        # GrownModel once it knows the full-size input width of this layer.
        self.full_input_dim = None
        self._init_task_state(num_tasks)

    # -- subclass hooks -------------------------------------------------
    @property
    def kernel_spatial_shape(self):
        """Spatial shape of one kernel: `()` for Dense, `(kh, kw)` for Conv2D."""
        raise NotImplementedError

    def _apply_kernel(self, inputs, kernel):
        raise NotImplementedError

    # -- build ----------------------------------------------------------
    def build(self, input_shape):
        self.input_dim = int(input_shape[-1])
        kernel_shape = tuple(self.kernel_spatial_shape) + (
            self.input_dim,
            self.allocated_units,
        )
        mask_shape = (self.input_dim, self.allocated_units)
        self.free_kernel = self.add_weight(
            name="free_kernel", shape=kernel_shape, initializer=self.kernel_initializer
        )
        self.frozen_kernel = self.add_weight(
            name="frozen_kernel", shape=kernel_shape, initializer="zeros", trainable=False
        )
        self.owner = self.add_weight(
            name="owner", shape=mask_shape, initializer="zeros", dtype="int32",
            trainable=False,
        )
        active = np.zeros((self.allocated_units,), "float32")
        active[: self.seed_units] = 1.0
        self.active = self.add_weight(
            name="active", shape=(self.allocated_units,),
            initializer=keras.initializers.Constant(active), trainable=False,
            autocast=False,
        )
        self.selective_score = self.add_weight(
            name="selective_score", shape=mask_shape,
            initializer=keras.initializers.Constant(self.selective_init),
            autocast=False,
        )
        self.attentive_score = self.add_weight(
            name="attentive_score", shape=mask_shape,
            initializer=keras.initializers.Constant(self.attentive_init),
            autocast=False,
        )
        self.grown_score = self.add_weight(
            name="grown_score", shape=(self.allocated_units,),
            initializer=keras.initializers.Constant(self.grown_init),
            autocast=False,
        )
        if self.normalization is not None:
            self.normalization.build(self._output_shape_for(input_shape))
        self.built = True
        self._build_initial_task_states()

    def _output_shape_for(self, input_shape):
        return tuple(input_shape[:-1]) + (self.allocated_units,)

    def _create_task_variables(self, index):
        mask_bytes = math.ceil(self.input_dim * self.allocated_units / 8)
        channel_bytes = math.ceil(self.allocated_units / 8)
        with _local_packed_masks():
            created = {
                "kernel_mask": self.add_weight(
                    name=f"task_{index}_kernel_mask", shape=(mask_bytes,),
                    initializer="zeros", dtype="uint8", trainable=False,
                ),
                "channel_mask": self.add_weight(
                    name=f"task_{index}_channel_mask", shape=(channel_bytes,),
                    initializer="zeros", dtype="uint8", trainable=False,
                ),
            }
        if self.use_bias:
            created["bias"] = self.add_weight(
                name=f"task_{index}_bias", shape=(self.allocated_units,),
                initializer="zeros",
            )
        if self.normalization is not None:
            self.normalization.add_task_state()
        return created

    def set_mode(self, mode):
        super().set_mode(mode)
        if self.normalization is not None:
            self.normalization.set_mode(mode)

    @property
    def candidate_mask(self):
        """Bool [allocated]: the channels this growth round may switch on (None: every dormant one)."""
        return self.mode.candidate_mask(self.allocated_units)

    @property
    def top_fraction(self):
        """WSN's top-c fraction of the kernel mask (`mode.top_fraction`), None for GROWN's rule."""
        return self.mode.top_fraction

    def inherit_task_state(self, task, source):
        super().inherit_task_state(task, source)
        if self.normalization is not None:
            self.normalization.inherit_task_state(task, source)

    def freeze_task_state(self, task):
        super().freeze_task_state(task)
        if self.normalization is not None:
            self.normalization.freeze_task_state(task)

    @property
    def score_variables(self):
        """The trainable mask scores (trained by the model's mask optimizer)."""
        return [self.selective_score, self.attentive_score, self.grown_score]

    def reset_scores(self):
        """Re-initializes the mask scores for a new task."""
        self.mode = self.mode.replace(pruned=False)
        if self.mode.top_fraction is not None:
            subnetwork.reset_scores(self)
            return
        shape = self.selective_score.shape
        self.selective_score.assign(ops.full(shape, self.selective_init, dtype="float32"))
        self.attentive_score.assign(ops.full(shape, self.attentive_init, dtype="float32"))
        self.grown_score.assign(
            ops.full(self.grown_score.shape, self.grown_init, dtype="float32")
        )

    def reset_dormant_grown_scores(self):
        """Gives channels that are still off another chance (a new growth round)."""
        scores = ops.convert_to_numpy(self.grown_score)
        off = (ops.convert_to_numpy(self.active) == 0) & (scores <= 0)
        scores[off] = self.grown_init
        self.grown_score.assign(scores)

    # -- saving ---------------------------------------------------------
    # Keras does not save a SeedGenerator's state; the Gumbel noise of a
    # loaded (or resumed) model must go on where it stopped, not restart.
    _SEED_STATE_KEY = "gumbel_seed_state"

    def save_own_variables(self, store):
        if self.plan is not None and self.plan.ahead:
            self.plan.store()
        super().save_own_variables(store)
        store[self._SEED_STATE_KEY] = ops.convert_to_numpy(self.seed_generator.state)

    def load_own_variables(self, store):
        keys = list(store.keys())
        seed_state = None
        if self._SEED_STATE_KEY in keys:
            seed_state = np.asarray(store[self._SEED_STATE_KEY])
            store = {k: store[k] for k in keys if k != self._SEED_STATE_KEY}
        super().load_own_variables(store)
        if seed_state is not None:
            self.seed_generator.state.assign(seed_state)
        if self.after_load is not None:
            self.after_load()

    # -- forward --------------------------------------------------------
    def _mask(self, score, learned, training):
        if not learned:
            return ops.ones_like(score)
        if self.mode.masks_fixed and not self.mode.finished:
            return masks.hard_mask(score)
        return masks.straight_through_gumbel_sigmoid(
            score, self.temperature, self.seed_generator, self.gumbel, training,
            noise=self.mode.noise,
        )

    def _kernel_sample(self, score, training):
        """The kernel mask of the task being learned from its combined kernel scores.

        `score` is the selective score where owned and the attentive score
        where free. GROWN: the straight-through Gumbel-Sigmoid. WSN
        (`top_fraction`): the top `top_fraction` of `|score|`, straight-through;
        its hard value when not training or with the masks fixed.
        """
        if self.mode.top_fraction is None:
            return self._mask(score, True, training)
        if not training or (self.mode.masks_fixed and not self.mode.finished):
            return masks.top_fraction_mask(score, self.mode.top_fraction)
        return masks.straight_through_top_fraction(score, self.mode.top_fraction)

    def candidates(self):
        """Bool [allocated]: the dormant channels the current growth round may switch on."""
        dormant = ops.convert_to_numpy(self.active) == 0
        if self.candidate_mask is None:
            return dormant
        return dormant & np.asarray(self.candidate_mask, bool)

    def effective_kernel(self, training=False):
        """The kernel and output-channel gate the selected task computes with."""
        spatial = (None,) * len(self.kernel_spatial_shape)
        mask_shape = (self.input_dim, self.allocated_units)
        if self.mode.finished:
            # A finished task reads its stored mask over owned (frozen)
            # weights only; `where` keeps the kernel bitwise identical
            # whatever later tasks write elsewhere in `frozen_kernel`.
            gate = masks.unpack_bits(self._current("channel_mask"), (self.allocated_units,))
            if not self.mode.freeze_finished and self._uses_every_kernel():
                # Nothing is owned (the fine-tune / EWC baselines) and the
                # task kept every kernel: it reads the shared kernel as it is.
                return self.free_kernel, gate
            use = ops.greater(masks.unpack_bits(self._current("kernel_mask"), mask_shape), 0.0)
            return self.finished_kernel(use), gate
        if (
            not self.mode.freeze_finished
            and not (self.mode.selective or self.mode.attentive or self.mode.pruned)
            and not self.mode.growth
            and (self.mode.retrain_released or self.task == 0)
        ):
            # Nothing is owned and no mask is learned (the fine-tune / EWC
            # baselines): every mask below is 1 on the active channels, and
            # the output gate zeroes the others, value and gradient alike.
            return self.free_kernel, self.active
        owned = ops.greater(self.owner, 0)
        # Weights owned by earlier tasks come from the frozen store, all
        # others from the trainable free store.
        weights = ops.where(owned[spatial], self.frozen_kernel, self.free_kernel)
        mask, gate = self.kernel_mask(training=training, planned=False)
        return weights * ops.cast(mask, weights.dtype)[spatial], gate

    def finished_kernel(self, use, owner=None, frozen=None, free=None):
        """A finished task's kernel: `where(use, frozen, 0)` over its stored kernel mask `use`.

        The masked forward pass of a finished task and its compact export
        (`keras_grown.compact`) both compute it here. Without ownership
        (`freeze_finished_tasks=False`: the fine-tune / EWC baselines) the
        kernels nobody owns come from the shared free store. `owner`,
        `frozen` and `free` default to the layer's storage (NumPy arrays of
        it may be passed).
        """
        spatial = (None,) * len(self.kernel_spatial_shape)
        frozen = self.frozen_kernel if frozen is None else frozen
        if self.mode.freeze_finished:
            source = frozen
        else:
            owner = self.owner if owner is None else owner
            free = self.free_kernel if free is None else free
            source = ops.where(ops.greater(owner, 0)[spatial], frozen, free)
        return ops.where(use[spatial], source, 0.0)

    def _uses_every_kernel(self):
        """Whether the selected finished task's stored kernel mask is all on.

        Read when a step is traced (out of the trace: a finished task's mask
        never changes, and loading weights drops the traced steps).
        """
        with tf.init_scope():
            packed = ops.convert_to_numpy(self._current("kernel_mask"))
        size = self.input_dim * self.allocated_units
        return bool(np.all(np.unpackbits(packed.reshape(-1))[:size] == 1))

    def growth_state(self):
        """(active, candidate, grown_score, owned, attentive_score) of the current task.

        The tensors the l0 term and the growth ratio read: over the plan's
        on-part when the task has one (the attentive score is then the
        plan's kernel score, read where free), else over the allocated width.
        """
        plan = self.plan
        if plan is not None and not self.mode.finished:
            return plan.active, plan.candidate, plan.grown_score, plan.owned, plan.kernel_score
        if self.candidate_mask is None:
            candidate = 1.0 - self.active
        else:
            candidate = (1.0 - self.active) * np.asarray(self.candidate_mask, "float32")
        owned = ops.cast(ops.greater(self.owner, 0), "float32")
        return self.active, candidate, self.grown_score, owned, self.attentive_score

    def planned_kernel(self, training=False):
        """`effective_kernel()` over the plan's on-part only (the task being learned).

        The same masks (`kernel_mask()`), computed for the kernels between
        the plan's input and output channels and from the working variables:
        no kernel of a channel that cannot be on for the task is gathered,
        sampled or multiplied.
        """
        plan = self.plan
        spatial = (None,) * len(self.kernel_spatial_shape)
        if plan.any_owned:
            owned = ops.greater(plan.owned, 0.5)
            weights = ops.where(owned[spatial], plan.frozen_kernel, plan.free_kernel)
        else:
            weights = plan.free_kernel
        mask, gate = self.kernel_mask(training=training, planned=True)
        if mask is None:
            return weights, gate  # no mask learned, no gate
        return weights * ops.cast(mask, weights.dtype)[spatial], gate

    def kernel_mask(self, training=False, planned=None, gated=True):
        """The mask equation of the task being learned: `(M, gate)` (docs/design.md).

        `M[i, o]` is the selective mask where kernel (i, o) is owned by an
        earlier task and the attentive mask times the channel gate where it
        is free (Eq. 2); `gate[o]` is 1 on active channels and the grown mask
        on this round's candidates in a growth round (Eq. 3). The forward
        pass (`effective_kernel()`, `planned_kernel()`), `finish_task()`,
        PackNet's pruning and the growth monitor all take the masks from here.

        Args:
            training: masks are straight-through samples of their scores
                (Gumbel-Sigmoid, or WSN's top c) while the masks learn; else,
                and with the masks fixed, the hard rule `finish_task()`
                stores (`score > 0`, the top c).
            planned: over the plan's on-part (working variables) or, False,
                over the allocated width (storage); None: the plan when the
                task being learned has one.
            gated: False leaves the channel gate out of `M` (`gate` is then
                None): the kernel mask before channel gating.

        Returns:
            `M` (0/1 floats [in, out] of the part; None: no mask applies) and
            `gate` (floats [out]; None: every computed channel is on).
        """
        mode = self.mode
        if planned is None:
            planned = self.plan is not None and not mode.finished
        if planned:
            plan = self.plan
            owned = ops.greater(plan.owned, 0.5)
            any_owned, has_candidates, all_active = (
                plan.any_owned, plan.has_candidates, plan.all_active)
            active, candidate, grown_score = plan.active, plan.candidate, plan.grown_score
            score = plan.kernel_score  # the selective score where owned, attentive where free
        else:
            owned = ops.greater(self.owner, 0)
            any_owned, has_candidates, all_active = True, True, False
            active, grown_score = self.active, self.grown_score
            if self.candidate_mask is None:
                candidate = 1.0 - active
            else:
                candidate = ops.convert_to_tensor(np.asarray(self.candidate_mask, "float32"))
            # Only read when a mask is learned or pruned (not traced otherwise).
            score = (ops.where(owned, self.selective_score, self.attentive_score)
                     if mode.selective or mode.attentive or mode.pruned else None)
        # Owned and free kernels are disjoint: one sample over the combined
        # score serves both masks, and noise is drawn only when one is learned.
        learned = mode.selective or (mode.attentive and not mode.pruned)
        sample = self._kernel_sample(score, training) if learned else None
        selective = sample if mode.selective else 1.0
        if mode.pruned:
            attentive = masks.hard_mask(score)  # PackNet's fixed mask
        else:
            attentive = sample if mode.attentive else 1.0
        if not mode.retrain_released and self.task > 0:
            # Ablation "+Sel-mask"/"Grow": free weights inside channels that
            # earlier tasks activated (released) are not re-trained; only
            # grown channels receive new weights. The first task's seed is
            # fresh, not released.
            attentive = attentive * (1.0 - active)[None, :]
        if not gated:
            gate = None
        elif mode.growth and has_candidates:
            gate = active + candidate * self._mask(grown_score, True, training)
        elif all_active:
            gate = None  # every computed channel is on: skip the gate
        else:
            gate = active
        gated_attentive = attentive if gate is None else attentive * gate[None, :]
        if not any_owned:
            mask = gated_attentive  # nothing owned: no selective mask to apply
        elif selective is gated_attentive:
            mask = selective  # one sample, no gate: the masks coincide
        elif selective is attentive and planned:
            # One sample serves both masks, and an owned kernel sits in a
            # channel an earlier task activated, where the gate is exactly 1
            # (candidates are dormant channels): the `where` over owned
            # kernels would return the gated sample itself, value and gradient.
            # (The full-width reference path keeps the `where` and its rounding.)
            mask = gated_attentive
        else:
            mask = ops.where(owned, selective, gated_attentive)
        return (None if isinstance(mask, float) else mask), gate

    def call(self, inputs, training=None):
        planned = self.plan is not None and not self.mode.finished
        if planned:
            kernel, gate = self.planned_kernel(training=bool(training))
        else:
            kernel, gate = self.effective_kernel(training=bool(training))
        # Under a mixed-precision policy the masks are computed in float32
        # (scores and gates are never autocast) and the masked kernel is
        # cast to the compute dtype, as Keras' layers read their kernels.
        kernel = ops.cast(kernel, self.compute_dtype)
        outputs = self._apply_kernel(inputs, kernel)
        if self.use_bias:
            bias = self._current("bias")
            outputs = outputs + (ops.take(bias, self.plan.out_index, axis=0) if planned else bias)
        if self.normalization is not None:
            self.normalization.channel_index = self.plan.out_index if planned else None
            outputs = self.normalization(outputs, training=training)
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs if gate is None else outputs * ops.cast(gate, outputs.dtype)

    def compute_output_shape(self, input_shape):
        raise NotImplementedError

    @property
    def computed_units(self):
        """The output channels `call()` returns: the plan's on-part while the task has one."""
        if self.plan is not None and not self.mode.finished:
            return len(self.plan.out_index)
        return self.allocated_units

    # -- growth bookkeeping (eager, NumPy; never in a compiled step) -----
    def hard_channel_on(self):
        """Output channels on for the current task without noise."""
        on = ops.convert_to_numpy(self.active) > 0
        if self.mode.growth:
            on |= self.candidates() & (ops.convert_to_numpy(self.grown_score) > 0)
        return on

    def hard_kernel_mask(self):
        """`M` without noise and before channel gating, as a bool array [in, out].

        `kernel_mask()`'s hard rule over the allocated width; for WSN's top c
        over the plan's on-part (the kernels its training step ranks), and
        False elsewhere.
        """
        shape = (self.input_dim, self.allocated_units)
        planned = (
            self.mode.top_fraction is not None and self.plan is not None
            and not self.mode.finished
        )
        mask, _ = self.kernel_mask(training=False, planned=planned, gated=False)
        if mask is None:
            return np.ones(shape, bool)
        on = np.broadcast_to(ops.convert_to_numpy(mask) > 0.5, (
            (len(self.plan.in_index), len(self.plan.out_index)) if planned else shape))
        if not planned:
            return np.array(on)
        use = np.zeros(shape, bool)
        use[np.ix_(self.plan.in_index, self.plan.out_index)] = on
        return use

    def finish_task_state(self, input_on):
        """Hardens the masks of the current task and takes ownership.

        Args:
            input_on: bool array [input_dim], the input channels that are on
                for this task (a kernel is used only if its input channel and
                its output channel are both on).

        Returns:
            dict with the layer's growth summary for the task.
        """
        task = self.task
        output_on = self.hard_channel_on()
        use = self.hard_kernel_mask() & input_on[:, None] & output_on[None, :]
        owner = ops.convert_to_numpy(self.owner)
        if self.mode.top_fraction is not None:
            subnetwork.merge_scores(self, owner)
        taken = use & (owner == 0)
        if not self.mode.freeze_finished:
            taken = np.zeros_like(taken)
        active = ops.convert_to_numpy(self.active) > 0
        grown = output_on & ~active
        owner = np.where(taken, task + 1, owner).astype("int32")
        # In place: no third full-capacity copy (finish_task's peak memory).
        frozen = ops.convert_to_numpy(self.frozen_kernel)
        np.copyto(
            frozen, ops.convert_to_numpy(self.free_kernel),
            where=taken[(None,) * len(self.kernel_spatial_shape)],
        )
        self.frozen_kernel.assign(frozen)
        self.owner.assign(owner)
        self.active.assign((active | grown).astype("float32"))
        self._current("kernel_mask").assign(masks.pack_bits(use))
        self._current("channel_mask").assign(masks.pack_bits(output_on))
        self.freeze_task_state(task)
        kernel_elems = int(np.prod(self.kernel_spatial_shape, dtype=int))
        return {
            "channels_grown": int(grown.sum()),
            "channels_on": int(output_on.sum()),
            "kernels_taken": int(taken.sum()),
            "kernels_reused": int((use & (owner > 0) & ~taken).sum()),
            "weights_taken": int(taken.sum()) * kernel_elems,
        }

    def prune_free_kernels(self, ratio, input_on):
        """PackNet's magnitude pruning of the kernels the current task trains.

        Among the free kernels the task uses now (input and output channel
        on, attentive mask on), keeps the `1 - ratio` fraction with the
        largest L1 norm and fixes the attentive mask to them: from now on it
        is hard (no noise) and not trained. The pruned kernels stay free and
        are released to later tasks when the task finishes.

        Returns:
            (kernels kept, kernels pruned).
        """
        if not 0.0 <= float(ratio) < 1.0:
            raise ValueError(f"The pruning ratio must be in [0, 1). Received: ratio={ratio}")
        output_on = self.hard_channel_on()
        owner = ops.convert_to_numpy(self.owner)
        candidates = (
            self.hard_kernel_mask() & (owner == 0) & input_on[:, None] & output_on[None, :]
        )
        free = np.abs(ops.convert_to_numpy(self.free_kernel))
        magnitude = free.reshape((-1,) + owner.shape).sum(axis=0)
        count = int(candidates.sum())
        keep_count = int(round(count * (1.0 - float(ratio))))
        keep = np.zeros_like(candidates)
        if keep_count > 0:
            order = np.argsort(-np.where(candidates, magnitude, -np.inf), axis=None)
            keep.flat[order[:keep_count]] = True
        score = np.where(keep, _FIXED_ON, _FIXED_OFF).astype("float32")
        self.attentive_score.assign(score)
        self.mode = self.mode.replace(pruned=True)
        return keep_count, count - keep_count

    def task_kernel_mask(self, task):
        """Bool array [in, out]: the stored kernel mask of a finished task."""
        packed = ops.convert_to_numpy(self._task_variables[task]["kernel_mask"])
        bits = np.unpackbits(packed)[: self.input_dim * self.allocated_units]
        return bits.reshape(self.input_dim, self.allocated_units).astype(bool)

    def task_channel_mask(self, task):
        """Bool array [out]: the output channels a finished task uses."""
        packed = ops.convert_to_numpy(self._task_variables[task]["channel_mask"])
        return np.unpackbits(packed)[: self.allocated_units].astype(bool)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "units": self.units,
                "activation": keras.activations.serialize(self.activation),
                "use_bias": self.use_bias,
                "batch_norm": self.batch_norm,
                "seed_ratio": self.seed_ratio,
                "capacity": self.capacity,
                "kernel_initializer": keras.initializers.serialize(
                    self.kernel_initializer
                ),
                "temperature": self.temperature,
                "gumbel": self.gumbel,
                "selective_init": self.selective_init,
                "attentive_init": self.attentive_init,
                "grown_init": self.grown_init,
                "seed": self.seed,
                "num_tasks": self.num_task_states if self.built else self._initial_num_tasks,
            }
        )
        return config


# Scores of a fixed (pruned) attentive mask: far beyond the threshold.
_FIXED_ON, _FIXED_OFF = 10.0, -10.0


@contextlib.contextmanager
def _local_packed_masks():
    """Creates the packed (uint8) task masks as local variables under MultiWorkerMirroredStrategy.

    MultiWorkerMirroredStrategy broadcasts the initial value of every variable
    from the chief with collective ops that refuse uint8 ("Value for attr 'T'
    of uint8 is not in the list of allowed values"). The packed masks start
    at zero on every worker, are only written by `finish_task()` (eagerly,
    from values every worker computes alike from mirrored state) and never by
    a training step, so each worker keeps its own copy on its device instead.
    Elsewhere (no strategy, MirroredStrategy) nothing changes.
    """
    import tensorflow as tf

    strategy = tf.distribute.get_strategy()
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        yield
        return
    device = _framework.single_device(strategy)

    def creator(next_creator, **kwargs):
        # A `SingleDevice` placement makes the strategy create a plain
        # variable on that device, with no broadcast.
        kwargs["colocate_with"] = device
        return next_creator(**kwargs)

    with tf.variable_creator_scope(creator):
        yield


def _positive_int(value, name):
    if not is_integer(value, 1):
        raise ValueError(f"{name} must be a positive integer. Received: {name}={value!r}")
    return int(value)
