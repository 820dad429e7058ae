"""Binary masks learned from real-valued scores.

GROWN learns three binary masks (selective, attentive, grown) with a
straight-through Gumbel-Sigmoid: the forward pass uses the hard 0/1 value, the
backward pass the gradient of the soft (relaxed) value. At inference there is no
noise and a mask is on exactly when `sigmoid(score) > 0.5`, that is when
`score > 0`.

Two forms of the relaxation are offered:

* `"concrete"` (default): the standard binary-Concrete form (Maddison et al.
  2017, Louizos et al. 2018). The score is the logit of the keep probability:

      m = sigmoid((score + log(u) - log(1 - u)) / T),  u ~ Uniform(0, 1)

  so the hard sample is on with probability `sigmoid(score)`, the same
  probability that the noise-free inference rule uses.

* `"paper"`: the paper's literal Eq. 6. With `pi0 = sigmoid(score)` and two
  Gumbel draws g0, g1 it writes

      m = exp((log(pi0) + g0) / T) / (exp((log(pi0) + g0) / T) + exp(g1 / T))
        = sigmoid((log(pi0) + g0 - g1) / T)

  The second logit is `g1 / T`, with no `log(1 - pi0)` term, so the logit is
  `log_sigmoid(score)` instead of `score`. Since `log(pi0) < 0`, a hard sample
  is on with probability `sigmoid(log(pi0)) = pi0 / (1 + pi0) < pi0`: the paper
  form is biased towards 0 during training compared with its own inference rule.
  It is here so that the paper's numbers can be reproduced; prefer `"concrete"`.

In both forms `g0 - g1` (difference of two standard Gumbels) has the logistic
distribution, which is how it is sampled.
"""

import math

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from keras_grown import _framework

GUMBEL_FORMS = ("concrete", "paper")
_PHILOX = tf.random.Algorithm.PHILOX.value


def validate_gumbel_form(gumbel):
    if gumbel not in GUMBEL_FORMS:
        raise ValueError(
            f"Unknown Gumbel-Sigmoid form. Expected one of {GUMBEL_FORMS}; "
            f"received: gumbel={gumbel!r}. Use 'concrete' (standard "
            "binary-Concrete, the default) or 'paper' (the paper's Eq. 6)."
        )
    return gumbel


def logistic_noise(shape, seed):
    """Samples `log(u / (1 - u))`, `u ~ U(0, 1)`: the difference of two
    standard Gumbel variables.

    `seed` is a `keras.random.SeedGenerator` (its state advances, as with
    `keras.random.uniform`) or an int. The generator is Philox, named
    explicitly: Keras' default (`auto_select`) compiles under XLA on a CPU
    to a counter-based generator about 70x slower (BENCHMARKS.md, profile).
    """
    seed = _framework.draw_seed(seed)
    if seed.dtype != tf.int32:
        seed = tf.cast(tf.math.floormod(seed, tf.int32.max - 1), tf.int32)
    low, high = 1e-6, 1.0 - 1e-6
    if _framework.compiled_by_xla() is False:
        # `tf.random.stateless_uniform(..., alg="philox")` derives Philox's key
        # and counter from the seed in about 25 small Python-built ops per
        # call; the kernel below derives the same ones in one op (the same
        # values in eager and graph mode, on CPU and GPU), which makes a traced
        # GROWN step cheaper to build and run.
        key, counter = tf.raw_ops.StatelessRandomGetKeyCounter(seed=seed)
        u = tf.raw_ops.StatelessRandomUniformV2(
            shape=shape, key=key, counter=counter, alg=_PHILOX, dtype=tf.float32
        )
        u = u * (high - low) + low
    else:
        # Under XLA that one op derives the key of XLA's own default generator
        # instead: other noise than in graph mode, and Philox fed that key
        # compiled on a CPU to a step about 75x slower (a 1600 x 1600 mask:
        # 1.57 s against 21 ms). TensorFlow's own Philox derivation compiles to
        # the same draw as graph mode, bit for bit.
        u = tf.random.stateless_uniform(shape, seed=seed, minval=low, maxval=high, alg="philox")
    return ops.log(u / (1.0 - u))


def hard_mask(score):
    """Noise-free inference rule: on exactly when `sigmoid(score) > 0.5`."""
    return ops.cast(ops.greater(score, 0.0), "float32")


def straight_through_gumbel_sigmoid(
    score, temperature=1.0, seed=None, gumbel="concrete", training=True, noise=True
):
    """Samples a binary mask with a straight-through Gumbel-Sigmoid.

    Forward value: exactly 0.0 or 1.0. Gradient: that of the soft sample
    `sigmoid((logit + noise) / temperature)`.

    Args:
        score: float tensor of mask scores (logits).
        temperature: positive float, the relaxation temperature `T`.
        seed: a `keras.random.SeedGenerator` (or int) for the noise.
        gumbel: `"concrete"` or `"paper"` (see the module docstring).
        training: when False there is no noise and no gradient trick: the
            result is `hard_mask(score)`.
        noise: when False (and `training`), the straight-through estimator
            without the Gumbel noise: forward `hard_mask(score)`, gradient
            of `sigmoid(logit / temperature)`.

    Returns:
        A float32 tensor of the shape of `score`, with values in {0, 1}.
    """
    if not training:
        return hard_mask(score)
    logit = score if gumbel == "concrete" else ops.log_sigmoid(score)
    if noise:
        logit = logit + logistic_noise(ops.shape(score), seed)
        # On exactly when the soft sample is above 1/2, that is when the
        # noisy logit is positive.
        threshold = logit
    else:
        # Without noise the forward value is the inference rule itself.
        threshold = score
    return _straight_through(logit, threshold, float(temperature))


def _straight_through(logit, threshold, temperature):
    """`threshold > 0` as 0.0/1.0 forward; the gradient of `sigmoid(logit / T)` backward.

    Written as one custom gradient rather than `hard + soft - stop_gradient(soft)`:
    the forward pass is a comparison (no sigmoid, no adds), and the backward
    pass computes the soft sample once. The value and the gradient are those
    of the longer form.

    At the default temperature 1 the backward pass skips the two divisions
    by 1 (bitwise the same gradient, two element-wise passes fewer over
    every learned mask: `test_straight_through_gradient_is_the_sigmoid_derivative`).
    TensorFlow's fused `SigmoidGrad` would save two more, but it rounds
    `dy * (s * (1 - s))` where this computes `(dy * s) * (1 - s)`: a third of
    the gradients differ in the last bit, which would move every seeded
    result of record, for about 2 % of a LeNet-5 step (measured): not used.
    """

    @tf.custom_gradient
    def sample(logit, threshold):
        hard = tf.cast(threshold > 0, logit.dtype)

        def gradient(upstream):
            if temperature == 1.0:
                soft = tf.sigmoid(logit)
                return upstream * soft * (1.0 - soft), None
            soft = tf.sigmoid(logit / temperature)
            return upstream * soft * (1.0 - soft) / temperature, None

        return hard, gradient

    return sample(tf.convert_to_tensor(logit), tf.convert_to_tensor(threshold))


def top_fraction_count(size, fraction):
    """How many of `size` entries the top-`fraction` rule keeps: `round(fraction * size)`, >= 1."""
    return max(1, min(int(size), int(math.floor(float(fraction) * int(size) + 0.5))))


def top_fraction_mask(score, fraction):
    """WSN's hard rule: 1.0 on the `top_fraction_count(n, fraction)` entries of largest `|score|`.

    Kang et al. (2022), "Forget-free Continual Learning with Winning
    Subnetworks": a task's subnetwork is the top c of the magnitudes of its
    weight scores in each layer. Exactly that many entries are on (ties at
    the threshold go to the lower flat index, as `tf.math.top_k` orders
    them), whatever the scores. Works in a traced step (XLA included) and
    eagerly: the same function hardens the mask at `finish_task()`.

    The threshold is the k-th largest `|score|`, found by bisection over its
    float32 bit pattern (for non-negative floats the integer order of the
    bits is the order of the values): at most 32 counting passes over the
    scores. `tf.math.top_k` with k = n / 2 sorts instead, about 6x slower on
    a CPU for LeNet-5's 640,000-kernel fc1 (89 ms against 14 ms a call).

    Args:
        score: float tensor of a static shape.
        fraction: the fraction kept, in (0, 1].

    Returns:
        A float32 tensor of the shape of `score`, with values in {0, 1}.
    """
    score = tf.convert_to_tensor(score, tf.float32)
    size = int(np.prod(score.shape, dtype=np.int64))
    count = top_fraction_count(size, fraction)
    if count >= size:
        return tf.ones_like(score)
    bits = tf.bitcast(tf.abs(tf.reshape(score, (-1,))), tf.int32)
    threshold = _kth_largest(bits, count)
    above = bits > threshold
    tie = tf.equal(bits, threshold)
    missing = count - tf.reduce_sum(tf.cast(above, tf.int32))
    on = above | (tie & (tf.cumsum(tf.cast(tie, tf.int32)) <= missing))
    return tf.reshape(tf.cast(on, tf.float32), tf.shape(score))


def _kth_largest(values, k):
    """The k-th largest of non-negative int32 `values`: the largest t with k values >= t."""

    def body(low, high):
        middle = low + (high - low) // 2 + 1  # in (low, high]
        enough = tf.math.count_nonzero(values >= middle, dtype=tf.int32) >= k
        return tf.where(enough, middle, low), tf.where(enough, high, middle - 1)

    low, _ = tf.while_loop(
        lambda low, high: low < high, body,
        (tf.constant(0, tf.int32), tf.reduce_max(values)), maximum_iterations=32,
    )
    return low


def straight_through_top_fraction(score, fraction):
    """`top_fraction_mask` forward; the gradient passed to `|score|` unchanged backward.

    WSN's straight-through estimator: the upstream gradient of the hard
    mask goes to the score magnitude as it is, then through the `abs`
    (times `sign(score)`).
    """

    @tf.custom_gradient
    def sample(score):
        hard = top_fraction_mask(score, fraction)

        def gradient(upstream):
            return upstream * tf.sign(score)

        return hard, gradient

    return sample(tf.convert_to_tensor(score, tf.float32))


def mask_entropy_bits(bits):
    """Order-0 empirical entropy of a binary mask, in bits: `n * H(ones / n)`.

    What an arithmetic coder of the mask's bits, each coded with the mask's
    own frequency of ones, reaches (within a few bits for the count it must
    also store): the lower bound of every coder that codes the bits one by
    one, independently. An all-on or all-off mask costs 0 bits.
    """
    bits = np.asarray(bits, bool).reshape(-1)
    size = bits.size
    ones = int(bits.sum())
    if ones in (0, size):
        return 0.0
    p = ones / size
    return float(size * -(p * math.log2(p) + (1 - p) * math.log2(1 - p)))


def on_probability(score):
    """Probability that a mask entry is on under the relaxation: `sigmoid(score)`.

    For the `"concrete"` form it is the probability a Gumbel sample is on;
    for the `"paper"` form, the same inference-time probability.
    """
    return ops.sigmoid(score)


def expected_l0(score, where=None):
    """Expected number of `on` entries under the relaxation: `sum(where * sigmoid(score))`.

    `||m||_0` is not differentiable; its expectation under the binary-Concrete
    relaxation is the sum of `on_probability(score)`, here over the entries
    where `where` (a 0/1 or weight tensor of the score's shape) is non-zero.
    """
    probability = on_probability(score)
    if where is not None:
        probability = where * probability
    return ops.sum(probability)


def pack_bits(mask):
    """Packs a boolean NumPy array into uint8 bytes (big-endian bit order)."""
    import numpy as np

    return np.packbits(np.asarray(mask, dtype=bool).reshape(-1))


def unpack_bits(packed, shape):
    """Unpacks `pack_bits` output back to a float32 tensor of `shape` (in-graph)."""
    size = 1
    for dim in shape:
        size *= int(dim)
    shifts = ops.convert_to_tensor([7, 6, 5, 4, 3, 2, 1, 0], dtype="uint8")
    bits = ops.bitwise_and(
        ops.right_shift(ops.expand_dims(packed, -1), shifts), ops.cast(1, "uint8")
    )
    bits = ops.reshape(bits, (-1,))[:size]
    return ops.reshape(ops.cast(bits, "float32"), shape)


class ScoreAdam(keras.optimizers.Adam):
    """Adam for the mask scores: Keras' Adam, each variable updated by one fused kernel.

    The scores are as large as the masks (one per kernel, over the whole
    on-part of a task), and Keras' `Adam.update_step` spends about eight
    element-wise passes over each of them per step. This optimizer computes
    the same update (the same formula, step count, slots and variable names,
    so checkpoints and the slot re-indexing of `grow()` are unchanged) with
    TensorFlow's `ResourceApplyAdam`, one pass per variable: on LeNet-5 at
    the fifth task of a stream, a training step with masks learned goes from
    54.4 ms to 52.0 ms (BENCHMARKS.md §7). It runs under XLA and inside a
    `tf.distribute` update like Keras' own. Options the fused kernel does not
    have (`amsgrad`, sparse gradients) fall back to Keras' update.
    """

    def update_step(self, gradient, variable, learning_rate):
        if self.amsgrad or isinstance(gradient, tf.IndexedSlices):
            return super().update_step(gradient, variable, learning_rate)
        momentum, velocity = _framework.adam_slots(self, variable)
        dtype = variable.dtype

        def cast(value):
            return tf.cast(value, dtype)

        step = cast(self.iterations + 1)
        beta_1, beta_2 = cast(self.beta_1), cast(self.beta_2)
        tf.raw_ops.ResourceApplyAdam(
            var=variable.handle,
            m=momentum.handle,
            v=velocity.handle,
            beta1_power=tf.pow(beta_1, step),
            beta2_power=tf.pow(beta_2, step),
            lr=cast(learning_rate),
            beta1=beta_1,
            beta2=beta_2,
            epsilon=cast(self.epsilon),
            grad=tf.convert_to_tensor(gradient, dtype),
            use_locking=False,
        )
