"""The one walk over a backbone's graph (`keras_grown.graph`) and the channel rules it applies.

Backbone: two 3x3 convs `a`, `b` on a 6x6x2 image meet in an `Add`, a 2x2 pool
(channel-preserving) feeds a 1x1 conv `c`, the pool and `c` are concatenated
(4 + 3 channels), flattened over 3x3 positions and read by a dense layer `d`.
"""

import keras
import numpy as np
import pytest

import keras_grown as kg
from keras_grown import backbones, compact, graph
from keras_grown.layers import GrownConv2D, GrownDense, growth_scope


def branched(inputs):
    a = GrownConv2D(4, 3, padding="same", name="a")(inputs)
    b = GrownConv2D(4, 3, padding="same", name="b")(inputs)
    x = keras.layers.Add(name="add")([a, b])
    x = keras.layers.MaxPooling2D(2, name="pool")(x)
    c = GrownConv2D(3, 1, name="c")(x)
    x = keras.layers.Concatenate(name="concat")([x, c])
    x = keras.layers.Flatten(name="flatten")(x)
    return GrownDense(5, name="d")(x)


def _functional(backbone=branched):
    # Full size, no growth pool: every grown layer allocates exactly its units.
    with growth_scope(seed_ratio=1.0, capacity=1.0):
        inputs = keras.Input((6, 6, 2), name="image")
        return keras.Model(inputs, backbone(inputs))


def test_each_tensor_comes_once_after_its_inputs_with_its_rule():
    steps = graph.channel_steps(_functional().outputs[0])
    assert {step.op.name: step.rule for step in steps} == {
        "image": graph.INPUT, "a": graph.GROWN, "b": graph.GROWN, "add": graph.MERGE,
        "pool": graph.SAME, "c": graph.GROWN, "concat": graph.CONCATENATE,
        "flatten": graph.FLATTEN, "d": graph.GROWN,
    }
    assert len(steps) == 9 and steps[-1].op.name == "d"
    position = {id(step.tensor): index for index, step in enumerate(steps)}
    for index, step in enumerate(steps):
        assert all(position[id(parent)] < index for parent in step.parents), step.op.name


def test_masks_follow_the_rules():
    model = _functional()
    a, b, c, d = (model.get_layer(name) for name in "abcd")
    on = {
        a: np.array([1, 0, 0, 1], bool), b: np.array([0, 1, 0, 1], bool),
        c: np.array([0, 0, 1], bool), d: np.array([1, 1, 0, 0, 1], bool),
    }
    input_on = backbones.channel_sources(model)(on)
    np.testing.assert_array_equal(input_on[a], [True, True])  # the model input: all on
    np.testing.assert_array_equal(input_on[b], [True, True])
    union = np.array([1, 1, 0, 1], bool)  # Add: the union; the pool passes it on
    np.testing.assert_array_equal(input_on[c], union)
    # Concatenate: pool's 4 channels, then c's 3; Flatten: that over 3x3 positions.
    np.testing.assert_array_equal(input_on[d], np.tile(np.concatenate([union, on[c]]), 9))
    np.testing.assert_array_equal(input_on["__features__"], on[d])


def test_merges_join_the_tensors_that_hold_the_same_channels():
    model = _functional()
    steps = graph.channel_steps(model.outputs[0])
    classes = graph.channel_classes(steps)
    names = {id(step.tensor): step.op.name for step in steps}
    by_name = {
        names[key]: sorted(step.op.name for step in members) for key, members in classes.items()
    }
    assert by_name["a"] == by_name["b"] == by_name["pool"] == ["a", "add", "b", "pool"]
    assert by_name["image"] == ["image"]
    assert by_name["concat"] == ["concat"] and by_name["flatten"] == ["flatten"]
    assert by_name["c"] == ["c"] and by_name["d"] == ["d"]
    assert backbones.merged_channel_groups(model) == [[model.get_layer("a"), model.get_layer("b")]]


def test_a_layer_that_changes_the_channel_count_is_refused():
    def widened(inputs):
        x = GrownConv2D(4, 3, padding="same", name="a")(inputs)
        x = keras.layers.Conv2D(6, 1, name="wide")(x)
        x = keras.layers.Flatten(name="flatten")(x)
        return GrownDense(5, name="d")(x)

    model = _functional(widened)
    steps = graph.channel_steps(model.outputs[0])
    assert [step.rule for step in steps if step.op.name == "wide"] == [graph.OTHER]
    input_on = backbones.channel_sources(model)
    on = {layer: np.ones((layer.allocated_units,), bool) for layer in model.layers
          if isinstance(layer, kg.layers.GrownLayer)}
    with pytest.raises(ValueError, match=r"Cannot trace channels through layer 'wide' \(Conv2D\)"):
        input_on(on)


def test_a_concatenate_on_another_axis_is_refused_when_the_model_is_built():
    def stacked(inputs):
        a = GrownConv2D(4, 3, padding="same", name="a")(inputs)
        b = GrownConv2D(4, 3, padding="same", name="b")(inputs)
        x = keras.layers.Concatenate(axis=1, name="rows")([a, b])  # 12x6x4: not channels
        x = keras.layers.Flatten(name="flatten")(x)
        return GrownDense(5, name="d")(x)

    steps = graph.channel_steps(_functional(stacked).outputs[0])
    assert [step.rule for step in steps if step.op.name == "rows"] == [graph.OTHER]
    with pytest.raises(ValueError, match=r"Cannot trace channels through layer 'rows' "
                                         r"\(Concatenate\).*on the channel axis, axis=-1"):
        kg.GrownModel(stacked, input_shape=(6, 6, 2))


def test_compact_export_keeps_the_channels_the_rules_give():
    keras.utils.set_random_seed(0)
    model = kg.GrownModel(branched, input_shape=(6, 6, 2), seed_ratio=0.25, seed=1)
    rng = np.random.default_rng(0)
    images = rng.random((8, 6, 6, 2)).astype("float32")
    model.add_task((images, (np.arange(8) % 2).astype("int32")), grow=False)
    # b grows every channel it may, a none: the Add pads a's output.
    a, b, c, d = (model.backbone.get_layer(name) for name in "abcd")
    b.grown_score.assign(np.full(b.grown_score.shape, 5.0, "float32"))
    model.grow()
    model.finish_task()
    mask = {layer: layer.task_channel_mask(0) for layer in (a, b, c, d)}
    union = mask[a] | mask[b]
    assert not np.array_equal(mask[a], union)
    plan = compact.plan_channels(model, 0)
    expected = {
        a: (np.ones(2, bool), union), b: (np.ones(2, bool), union), c: (union, mask[c]),
        d: (np.tile(np.concatenate([union, mask[c]]), 9), mask[d]),
    }
    for layer, (inputs, outputs) in expected.items():
        np.testing.assert_array_equal(plan.layer_channels[layer][0], np.flatnonzero(inputs))
        np.testing.assert_array_equal(plan.layer_channels[layer][1], np.flatnonzero(outputs))
    np.testing.assert_array_equal(plan.features, np.flatnonzero(mask[d]))
    model.select_task(0)
    model.compact_inference = False
    masked = model.predict(images, verbose=0)
    plain = compact.build_task_model(model, 0)
    np.testing.assert_allclose(plain.predict(images, verbose=0), masked, rtol=0, atol=1e-5)
