import numpy as np
import pytest
import tensorflow as tf

from keras_grown import masks


def test_straight_through_forward_is_exactly_binary():
    score = tf.constant(np.linspace(-3, 3, 1000), tf.float32)
    sample = masks.straight_through_gumbel_sigmoid(score, 1.0, seed=1, training=True)
    values = set(np.unique(sample.numpy()).tolist())
    assert values == {0.0, 1.0}


def test_straight_through_gradient_is_the_soft_gradient():
    score = tf.Variable(np.linspace(-2, 2, 64).astype("float32"))
    temperature = 0.5
    seed = 7
    with tf.GradientTape() as tape:
        hard = masks.straight_through_gumbel_sigmoid(score, temperature, seed=seed, training=True)
        total = tf.reduce_sum(hard * tf.range(64, dtype=tf.float32))
    grad = tape.gradient(total, score).numpy()
    # Recompute the soft sample with the same noise.
    noise = masks.logistic_noise((64,), seed).numpy()
    soft = 1 / (1 + np.exp(-(score.numpy() + noise) / temperature))
    expected = np.arange(64) * soft * (1 - soft) / temperature
    np.testing.assert_allclose(grad, expected, rtol=1e-3, atol=1e-5)
    # and the forward value is the threshold of that soft sample
    np.testing.assert_array_equal(hard.numpy(), (soft > 0.5).astype("float32"))


@pytest.mark.parametrize("graph", [False, True], ids=["eager", "graph"])
def test_straight_through_gradient_is_the_sigmoid_derivative(graph):
    """At temperature 1 the backward pass (no divisions) is bitwise `up * s * (1 - s) / T`."""
    temperature = 1.0
    rng = np.random.default_rng(0)
    score = tf.Variable(rng.normal(2.0, 3.0, (301, 517)).astype("float32"))
    upstream = tf.constant(rng.normal(0.0, 1.0, (301, 517)).astype("float32"))

    def both():
        with tf.GradientTape() as tape:
            hard = masks.straight_through_gumbel_sigmoid(score, temperature, seed=5)
            total = tf.reduce_sum(hard * upstream)
        logit = score + masks.logistic_noise(score.shape, 5)
        soft = tf.sigmoid(logit / temperature)
        return tape.gradient(total, score), upstream * soft * (1.0 - soft) / temperature

    fused, unfused = tf.function(both)() if graph else both()
    np.testing.assert_array_equal(fused.numpy(), unfused.numpy())
    assert np.count_nonzero(fused.numpy()) > 0.9 * fused.shape.num_elements()


@pytest.mark.parametrize("mode", ["eager", "graph", "jit"])
def test_logistic_noise_is_the_logit_of_tensorflows_philox_uniform(mode):
    """The noise is exactly what `stateless_uniform(alg="philox")` draws in graph mode.

    Under XLA too (`jit_compile=True`): the one-op key derivation used outside
    XLA gave XLA's own generator key there (other noise, and a step ~75x slower
    on a CPU).
    """
    from keras.src.random.seed_generator import draw_seed

    for seed in (1, 123456, 2**30 + 5):
        def expected():
            u = tf.random.stateless_uniform(
                (37, 101), seed=tf.cast(draw_seed(seed), tf.int32), minval=1e-6,
                maxval=1.0 - 1e-6, alg="philox",
            )
            return tf.math.log(u / (1.0 - u))

        def draw():
            return masks.logistic_noise((37, 101), seed)

        if mode == "eager":
            noise = draw()
        else:
            noise = tf.function(draw, jit_compile=mode == "jit")()
        np.testing.assert_array_equal(noise.numpy(), tf.function(expected)().numpy())
    u = 1.0 / (1.0 + np.exp(-noise.numpy()))
    assert 0.45 < u.mean() < 0.55 and u.min() > 0.0 and u.max() < 1.0


def test_inference_rule_is_sigmoid_above_half_without_noise():
    score = tf.constant([-1.0, -1e-6, 0.0, 1e-6, 2.0])
    out = masks.straight_through_gumbel_sigmoid(score, 1.0, seed=3, training=False)
    np.testing.assert_array_equal(out.numpy(), [0, 0, 0, 1, 1])


def test_concrete_samples_on_with_probability_sigmoid_score_paper_form_less():
    score = tf.fill((200_000,), 0.5)
    concrete = masks.straight_through_gumbel_sigmoid(score, 1.0, seed=11, gumbel="concrete")
    paper = masks.straight_through_gumbel_sigmoid(score, 1.0, seed=11, gumbel="paper")
    pi = 1 / (1 + np.exp(-0.5))
    assert abs(concrete.numpy().mean() - pi) < 0.005
    # the paper's Eq. 6 is on with probability pi / (1 + pi)
    assert abs(paper.numpy().mean() - pi / (1 + pi)) < 0.005


def test_unknown_gumbel_form_is_named():
    with pytest.raises(ValueError, match="gumbel='bogus'"):
        masks.validate_gumbel_form("bogus")


def test_expected_l0_is_sum_of_sigmoids():
    assert float(masks.expected_l0(tf.constant([0.0, 0.0, 100.0]))) == pytest.approx(2.0)


def test_expected_l0_counts_only_where_asked():
    score = tf.constant([0.0, 0.0, 100.0])
    assert float(masks.expected_l0(score, where=tf.constant([1.0, 0.0, 1.0]))) == pytest.approx(1.5)
    assert float(masks.expected_l0(score, where=tf.constant([0.0, 0.0, 2.0]))) == pytest.approx(2.0)
    np.testing.assert_allclose(masks.on_probability(score).numpy(), [0.5, 0.5, 1.0])


@pytest.mark.parametrize("shape", [(3, 5), (1, 1), (7,), (16, 8)])
def test_pack_unpack_round_trip(shape):
    rng = np.random.default_rng(0)
    mask = rng.random(shape) > 0.5
    packed = masks.pack_bits(mask)
    assert packed.dtype == np.uint8 and packed.size == -(-mask.size // 8)
    unpacked = masks.unpack_bits(tf.constant(packed), shape).numpy()
    np.testing.assert_array_equal(unpacked, mask.astype("float32"))


def _adam_run(make_optimizer, mode, steps=6):
    """Six Adam steps on two variables from the same seeded gradients; their values."""
    import keras

    rng = np.random.RandomState(0)
    gradients = [
        [rng.randn(37, 11).astype("float32"), rng.randn(11).astype("float32")]
        for _ in range(steps)
    ]
    with tf.init_scope():
        variables = [keras.Variable(rng.randn(37, 11).astype("float32"), name="kernel_score"),
                     keras.Variable(rng.randn(11).astype("float32"), name="grown_score")]
        optimizer = make_optimizer()
        optimizer.build(variables)

    def apply(grads):
        optimizer.apply_gradients(zip(grads, variables))

    if mode == "eager":
        step = apply
    else:
        step = tf.function(apply, jit_compile=mode == "jit")
    for grads in gradients:
        step([tf.constant(g) for g in grads])
    values = [np.array(v.numpy()) for v in variables + list(optimizer.variables)]
    return values, [v.name for v in optimizer.variables]


@pytest.mark.parametrize("mode", ["eager", "graph", "jit"])
def test_score_adam_computes_keras_adam(mode):
    """The fused score optimizer: Keras Adam's update, state and variable names.

    (Under tf.distribute it runs in GROWN's distributed fits: test_xla_distribute.py.)
    """
    import keras

    expected, expected_names = _adam_run(
        lambda: keras.optimizers.Adam(0.1, name="mask_optimizer"), mode
    )
    got, names = _adam_run(lambda: masks.ScoreAdam(0.1, name="mask_optimizer"), mode)
    assert names == expected_names
    assert len(got) == 2 + 1 + 1 + 4  # two variables, iterations, learning rate, 2 slots each
    # The same formula in another order of float32 operations: six steps of
    # 0.1 move a score by about 0.6; the two agree to 2e-5 (a missing bias
    # correction or a misplaced epsilon would differ by more than 1e-3).
    for value, reference in zip(got, expected):
        np.testing.assert_allclose(value, reference, rtol=1e-5, atol=2e-5)
    # The variables moved: the update is not a no-op matching a no-op.
    unmoved, _ = _adam_run(lambda: masks.ScoreAdam(0.0), "eager")
    assert np.abs(got[0] - unmoved[0]).max() > 0.1
