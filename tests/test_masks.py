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


@pytest.mark.parametrize("shape", [(3, 5), (1, 1), (7,), (16, 8)])
def test_pack_unpack_round_trip(shape):
    rng = np.random.default_rng(0)
    mask = rng.random(shape) > 0.5
    packed = masks.pack_bits(mask)
    assert packed.dtype == np.uint8 and packed.size == -(-mask.size // 8)
    unpacked = masks.unpack_bits(tf.constant(packed), shape).numpy()
    np.testing.assert_array_equal(unpacked, mask.astype("float32"))
