"""What one grown layer computes while a task is being learned: the on-part only.

Storage is allocated at full capacity once (`free_kernel`, `frozen_kernel`,
`owner`, the mask scores: `capacity` x the full-size width), but a task's
training step only needs the channels that can be on for it: the active
ones, plus this growth round's candidates, and the kernels whose input
channel is on. A `TrainingPlan` holds, for one layer and one task (and one
growth round):

* `in_index`, `out_index`: the input and output channels computed, as sorted
  int32 arrays into the allocated channels, fixed when the plan is made, so
  every traced step has static shapes (one XLA program per task and round);
* **working variables**, the task's trainable state over that on-part only:
  the free kernel, the kernel scores and the grown scores. The selective
  mask (over owned kernels) and the attentive mask (over free ones) score
  disjoint kernels, so one `kernel_score` variable holds both: one sample,
  one optimizer slot set.
  The optimizers train these, not the full-capacity storage: a step and its
  optimizer update cost what the on-part costs;
* constants of the task gathered once: the owner mask, the frozen kernel
  values, the active and candidate channels, a fixed (pruned) attentive mask.

Storage stays the truth the user sees: `GrownModel` loads the working
variables from storage before training or inference of the task starts and
writes them back (`store()`) at the end of `fit()` (and of every epoch when
`fit()` has callbacks), before saving, growing, pruning and finishing. Owned weights are never in a working
variable: bitwise zero forgetting stays a property of the storage.
"""

import itertools

import keras
import numpy as np
from keras import ops

_SERIALS = itertools.count()


class TrainingPlan:
    """The on-part of one grown layer for the task being learned (not tracked by Keras).

    Args:
        layer: the `GrownLayer`.
        in_index: int array, the input channels computed (sorted).
        out_index: int array, the output channels computed (sorted).
        candidates: bool array [allocated], the dormant channels this growth
            round may switch on (all False without growth).
    """

    def __init__(self, layer, in_index, out_index, candidates):
        self.layer = layer
        # Tells this plan's working variables from another's (a traced step
        # captures them: `GrownModel.trace_key()`).
        self.serial = next(_SERIALS)
        self.in_index = np.asarray(in_index, "int32")
        self.out_index = np.asarray(out_index, "int32")
        self.signature = self.signature_of(self.in_index, self.out_index, candidates)
        active = ops.convert_to_numpy(layer.active)[self.out_index] > 0
        candidate = np.asarray(candidates, bool)[self.out_index] & ~active
        self.has_candidates = bool(candidate.any())
        # Every computed channel active and no candidate: the gate is all ones.
        self.all_active = bool(active.all())
        self.any_owned = True  # set by load()
        self.ahead = False  # True while the working variables are newer than storage
        name = layer.name
        grid = (len(self.in_index), len(self.out_index))
        kernel_shape = tuple(layer.kernel_spatial_shape) + grid

        def variable(suffix, shape, dtype="float32", trainable=False, autocast=False):
            # Only kernels are cast to a mixed-precision compute dtype;
            # scores and 0/1 masks stay float32 (as the layer's own).
            with keras.name_scope(name):
                return keras.Variable(
                    np.zeros(shape, dtype), dtype=dtype, trainable=trainable, name=suffix,
                    autocast=autocast,
                )

        # Working (trainable) variables, named (and given the path) of the
        # storage they stand for: `conv1/free_kernel` is, during a task, the
        # on-part of `conv1`'s free kernel; `conv1/kernel_score` the on-part
        # of `selective_score` where owned and of `attentive_score` where
        # free. Names are stable across plans, so optimizer slots can be
        # matched when a plan grows. Created trainable (a gradient tape
        # watches only variables created so); `set_trainable()` says which
        # ones the optimizers train.
        self.free_kernel = variable("free_kernel", kernel_shape, trainable=True, autocast=True)
        self.kernel_score = variable("kernel_score", grid, trainable=True)
        self.grown_score = variable("grown_score", grid[1:], trainable=True)
        # Constants of the task (not trainable, loaded with the rest).
        # float 0/1 (collective broadcasts under MultiWorkerMirroredStrategy refuse bool)
        self.owned = variable("planned_owned", grid)
        self.frozen_kernel = variable("planned_frozen_kernel", kernel_shape, autocast=True)
        self.active = variable("planned_active", grid[1:])
        self.candidate = variable("planned_candidate", grid[1:])
        self.active.assign(active.astype("float32"))
        self.candidate.assign(candidate.astype("float32"))

    @staticmethod
    def signature_of(in_index, out_index, candidates):
        """What identifies a plan: equal signatures compute the same channels."""
        in_index = np.asarray(in_index, "int32")
        out_index = np.asarray(out_index, "int32")
        return (
            in_index.tobytes(), out_index.tobytes(),
            np.asarray(candidates, bool)[out_index].tobytes(),
        )

    @property
    def working_variables(self):
        return [self.free_kernel, self.kernel_score, self.grown_score]

    @property
    def score_variables(self):
        return [self.kernel_score, self.grown_score]

    def set_trainable(self, selective, attentive, grown):
        self.free_kernel.trainable = True
        self.kernel_score.trainable = bool(selective or attentive)
        self.grown_score.trainable = bool(grown)

    # -- storage <-> working (eager) --------------------------------------
    def _gather_grid(self, value):
        """`value[..., in_index, out_index]` of a full-capacity array."""
        value = ops.take(value, self.in_index, axis=-2)
        return ops.take(value, self.out_index, axis=-1)

    def load(self):
        """Reads the working variables and the task's constants from storage."""
        layer = self.layer
        self.free_kernel.assign(self._gather_grid(layer.free_kernel))
        self.frozen_kernel.assign(self._gather_grid(layer.frozen_kernel))
        owned = ops.greater(self._gather_grid(layer.owner), 0)
        self.owned.assign(ops.cast(owned, "float32"))
        # Read at trace time: a step over no owned kernel skips the frozen store.
        self.any_owned = bool(ops.convert_to_numpy(ops.any(owned)))
        self.kernel_score.assign(ops.where(
            ops.greater(self.owned, 0.5),
            self._gather_grid(layer.selective_score),
            self._gather_grid(layer.attentive_score),
        ))
        self.grown_score.assign(ops.take(layer.grown_score, self.out_index, axis=0))
        self.ahead = False

    def store(self):
        """Writes the working variables back into the full-capacity storage."""
        layer = self.layer
        rows, cols = self.in_index[:, None], self.out_index[None, :]
        owned = ops.convert_to_numpy(self.owned) > 0
        for storage, working, where in (
            (layer.free_kernel, self.free_kernel, None),
            (layer.selective_score, self.kernel_score, owned),
            (layer.attentive_score, self.kernel_score, ~owned),
        ):
            full = ops.convert_to_numpy(storage)  # a fresh, writable copy
            value = ops.convert_to_numpy(working)
            if where is not None:
                # The two score stores meet here: each keeps its own kernels.
                value = np.where(where, value, full[..., rows, cols])
            full[..., rows, cols] = value
            storage.assign(full)
        grown = ops.convert_to_numpy(layer.grown_score)
        grown[self.out_index] = ops.convert_to_numpy(self.grown_score)
        layer.grown_score.assign(grown)
        self.ahead = False

    def reindex_from(self, old):
        """A function mapping an array shaped like one of `old`'s working variables
        onto this plan's shape (channels in both plans keep their values; new
        ones start at zero), or None when the plans share no layout."""
        in_pos = _positions(old.in_index, self.in_index)
        out_pos = _positions(old.out_index, self.out_index)
        if in_pos is None or out_pos is None:
            return None

        def move(value, shape):
            value = np.asarray(value)
            result = np.zeros(shape, value.dtype)
            if value.ndim == 1:
                result[out_pos] = value
            else:
                result[..., in_pos[:, None], out_pos[None, :]] = value
            return result

        return move


def _positions(old, new):
    """Where each entry of `old` sits in `new` (both sorted), or None if one is missing."""
    position = np.searchsorted(new, old)
    if len(old) and (position.max(initial=0) >= len(new) or (new[position] != old).any()):
        return None
    return position
