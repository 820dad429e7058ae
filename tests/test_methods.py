"""The baselines and the ablation settings, each a policy of the one learn() loop."""

import keras
import numpy as np
import pytest
from keras import ops

import keras_grown as kg
from keras_grown import methods
from keras_grown.learning import TaskRun, prepare


@pytest.fixture(scope="module")
def permuted_stream():
    """Two tasks of real Fashion-MNIST under different pixel permutations."""
    return list(
        kg.datasets.permuted_fashion_mnist(
            num_tasks=2, train_per_task=512, val_fraction=0.125, test_per_task=200, seed=0
        )
    )


@pytest.fixture(scope="module")
def probe(permuted_stream):
    """A fixed batch of images to compare outputs on."""
    return np.stack([x.numpy() for x, _ in permuted_stream[0].test.take(64)])


class OutputRecorder(keras.callbacks.Callback):
    """Records every finished task's outputs on `probe` after each task (learn() calls on_task_end)."""

    def __init__(self, probe, method):
        super().__init__()
        self.probe = probe
        self.method = method
        self.outputs = []

    def on_task_end(self, model, summary):
        finished = len(self.outputs)
        row = []
        for task in range(finished + 1):
            evaluated, local = self.method.evaluation_model(task)
            evaluated.select_task(local)
            row.append(ops.convert_to_numpy(evaluated(self.probe, training=False)))
        self.outputs.append(row)


def _learn(method, stream, probe, epochs=1, **kwargs):
    recorder = OutputRecorder(probe, method)
    result = kg.learn(method, stream, epochs=epochs, batch_size=32, callbacks=[recorder], **kwargs)
    return result, recorder


# Each learned once for the module (`learned`): the zero-forgetting test and
# the method's own test below read the same run.
MASKED_METHODS = {
    "packnet": lambda: methods.PackNet(prune_ratio=0.5, seed=0),
    "piggyback": lambda: methods.Piggyback(seed=0),
    "grow_only": lambda: methods.GrowOnly(seed=0, l0_lambda=1.0),
}


@pytest.fixture(scope="module")
def learned(permuted_stream, probe):
    """`learned(name)`: (method, result, recorder) of MASKED_METHODS[name] learned on the stream.

    With target="scratch", which only GROWN reads (the zero-forgetting test
    checks that no Scratch reference is trained): the run is the one without it.
    """
    runs = {}

    def run(name):
        if name not in runs:
            method = MASKED_METHODS[name]()
            runs[name] = (method, *_learn(method, permuted_stream, probe, target="scratch"))
        return runs[name]

    return run


@pytest.mark.parametrize("name", list(MASKED_METHODS))
def test_zero_forgetting_is_bitwise(name, learned):
    _, result, recorder = learned(name)
    after_task_0, after_task_1 = recorder.outputs
    np.testing.assert_array_equal(after_task_0[0], after_task_1[0])
    assert result.accuracy.backward_transfer() == 0.0
    # Only GROWN reads learn()'s target: no Scratch reference is trained for the others.
    assert result.targets == [None, None]


def test_packnet_releases_the_pruned_weights_to_the_next_task(learned):
    method, result, _ = learned("packnet")
    # Half of every layer's kernels (rounded per layer) stay with task 0;
    # task 1 takes half of what was released.
    assert result.model_size[0] == pytest.approx(0.5, abs=2e-3)
    assert result.model_size[1] == pytest.approx(0.75, abs=2e-3)
    model = method.model
    for layer in model.grown_layers:
        # Task 1 reads every weight of task 0 (no selective mask in PackNet).
        owned_by_0 = ops.convert_to_numpy(layer.owner) == 1
        assert (layer.task_kernel_mask(1) >= owned_by_0).all()


def test_piggyback_trains_the_full_network_once_then_only_masks(learned):
    method, result, _ = learned("piggyback")
    assert result.model_size == [1.0, 1.0]
    model = method.model
    for layer in model.grown_layers:
        assert (ops.convert_to_numpy(layer.owner) == 1).all()
        # Task 1 learned a mask over task 0's weights: it reads a subset.
        assert layer.task_kernel_mask(1).sum() <= layer.task_kernel_mask(0).sum()


def test_naive_finetune_forgets(permuted_stream, probe):
    method = methods.FineTune(seed=0, learning_rate=3e-3)
    result, recorder = _learn(method, permuted_stream, probe, epochs=2)
    assert result.accuracy.backward_transfer() < 0
    assert not np.array_equal(recorder.outputs[0][0], recorder.outputs[1][0])
    assert result.model_size == [1.0, 1.0]


def test_shared_weights_without_masks_step_as_the_masked_path(permuted_stream, probe):
    """Fine-tune's layers read the shared kernel as it is (no owner/mask arithmetic).

    A twin with an attentive mask held on (scores +5, no noise, so every mask
    is exactly 1) takes the general masked path: one training step must leave
    the same weights, bitwise, and a finished task predict what its export does.
    """
    def build(attentive):
        keras.utils.set_random_seed(0)
        model = kg.GrownModel(
            backbone="lenet5", input_shape=(28, 28, 1), seed_ratio=1.0, capacity=1.0,
            selective_mask=False, attentive_mask=attentive, learnable_growth=False,
            freeze_finished_tasks=False, mask_noise=False, attentive_init=5.0,
        )
        model.add_task(permuted_stream[0].train, num_classes=10, grow=False)
        model.compile(optimizer=keras.optimizers.SGD(0.1))
        return model

    plain, masked = build(False), build(True)
    for a, b in zip(plain.grown_layers, masked.grown_layers):
        b.free_kernel.assign(a.free_kernel)
    x, y = probe[:32], np.arange(32) % 10
    np.testing.assert_array_equal(plain(x, training=True), masked(x, training=True))
    plain.train_on_batch(x, y)
    masked.train_on_batch(x, y)
    for a, b in zip(plain.grown_layers, masked.grown_layers):
        np.testing.assert_array_equal(a.free_kernel.numpy(), b.free_kernel.numpy())
    plain.finish_task()
    plain.select_task(0)
    exported = kg.export.build_task_model(plain, 0)
    np.testing.assert_allclose(
        plain.predict(probe, verbose=0), exported.predict(probe, verbose=0), atol=1e-6
    )


def test_finetune_copies_and_scratch_do_not_forget_and_grow_by_one_network_per_task(
    permuted_stream, probe
):
    for method in (methods.FineTune(keep_copies=True, seed=0), methods.Scratch(seed=0)):
        result, recorder = _learn(method, permuted_stream, probe)
        assert result.model_size == [1.0, 2.0]
        assert len(method.models) == 2
        np.testing.assert_array_equal(recorder.outputs[0][0], recorder.outputs[1][0])
        assert result.accuracy.backward_transfer() == 0.0


def test_finetune_copies_start_from_the_previous_copy(permuted_stream):
    method = methods.FineTune(keep_copies=True, seed=0)
    _, first = _trained_first_task(method, permuted_stream)
    first.finish_task()
    second = method.model_for_task(1)
    method.add_task(second, permuted_stream[1])
    for a, b in zip(first.grown_layers, second.grown_layers):
        np.testing.assert_array_equal(
            ops.convert_to_numpy(a.frozen_kernel), ops.convert_to_numpy(b.free_kernel)
        )
    scratch = methods.Scratch(seed=1)
    scratch.start(permuted_stream[0].input_shape)
    fresh = scratch.model_for_task(0)
    assert not np.array_equal(
        ops.convert_to_numpy(first.grown_layers[0].frozen_kernel),
        ops.convert_to_numpy(fresh.grown_layers[0].free_kernel),
    )


def _trained_first_task(method, stream, epochs=1):
    """(run, model): the method started on `stream` and its model trained on task 0."""
    method.start(stream[0].input_shape)
    run = TaskRun(stream[0], prepare(stream[0].train, 32), prepare(stream[0].val, 64),
                  epochs, epochs, 0, dict(verbose=0))
    model = method.model_for_task(0)
    method.train_task(run, model, 0, stream[0])
    return run, model


def _second_task_model(method, stream, epochs=1):
    """The method's model after task 0 finished and task 1 added (not trained)."""
    _, model = _trained_first_task(method, stream, epochs)
    model.finish_task()
    method.add_task(model, stream[1], grow=True)
    return model


@pytest.mark.parametrize(
    "switches, label",
    [
        (dict(selective_mask=False, learnable_growth=False, retrain_released=False), "Grow"),
        (dict(learnable_growth=False, retrain_released=False), "Grow +Sel-mask"),
        (dict(retrain_released=False), "Grow +Sel-mask +LSG"),
        (dict(), "GROWN"),
    ],
)
def test_each_ablation_switch_changes_what_is_trained(switches, label, permuted_stream):
    method = methods.GROWN(seed=0, attentive_init=0.0, **switches)
    assert method.label == label
    model = _second_task_model(method, permuted_stream)
    score_names = ("selective_score", "attentive_score", "grown_score")
    scores_before = {
        (l.name, n): ops.convert_to_numpy(getattr(l, n)) for l in model.grown_layers
        for n in score_names
    }
    # Released weights: free kernels inside channels task 0 left active.
    kernel_before = {l.name: ops.convert_to_numpy(l.free_kernel) for l in model.grown_layers}
    released = {
        l.name: (ops.convert_to_numpy(l.owner) == 0) & (ops.convert_to_numpy(l.active) > 0)[None]
        for l in model.grown_layers
    }
    model.fit(prepare(permuted_stream[1].train, 32), epochs=1, verbose=0)
    trained = {
        name: any(
            (ops.convert_to_numpy(getattr(l, name)) != scores_before[(l.name, name)]).any()
            for l in model.grown_layers
        )
        for name in score_names
    }
    assert trained["selective_score"] == method.selective_mask
    assert trained["attentive_score"] == method.learnable_growth
    assert trained["grown_score"]  # every setting grows
    changed = 0
    for layer in model.grown_layers:
        spatial = (None,) * len(layer.kernel_spatial_shape)
        mask = np.broadcast_to(released[layer.name][spatial], kernel_before[layer.name].shape)
        after = ops.convert_to_numpy(layer.free_kernel)
        changed += int((after[mask] != kernel_before[layer.name][mask]).sum())
    if method.retrain_released and method.learnable_growth:
        assert sum(int(r.sum()) for r in released.values()) > 0
        assert changed > 0
    elif not method.retrain_released:
        assert changed == 0


def test_ewc_penalty_is_zero_at_the_anchor_and_grows_when_weights_move(permuted_stream):
    method = methods.EWC(ewc_lambda=10.0, fisher_samples=16, seed=0)
    run, model = _trained_first_task(method, permuted_stream)
    model.finish_task()
    assert model.penalties == []
    method.end_task(run, model, 0, permuted_stream[0])
    (penalty,) = model.penalties
    assert float(penalty()) == 0.0
    assert all(float(np.sum(f.numpy())) > 0 for f in method._fisher)
    method.add_task(model, permuted_stream[1])
    model.fit(prepare(permuted_stream[1].train, 32), epochs=1, verbose=0)
    assert float(penalty()) > 0.0


def test_method_errors_name_the_problem():
    with pytest.raises(ValueError, match="Unknown method 'gronw'"):
        methods.get("gronw")
    with pytest.raises(ValueError, match="PackNet fixes \\['seed_ratio'\\]"):
        methods.PackNet(seed_ratio=0.5)
    with pytest.raises(ValueError, match="prune_ratio must be in"):
        methods.PackNet(prune_ratio=1.0)
    with pytest.raises(ValueError, match="ewc_lambda must be >= 0"):
        methods.EWC(ewc_lambda=-1)
    with pytest.raises(ValueError, match="takes input_shape from the stream"):
        methods.GROWN(input_shape=(28, 28, 1))
    with pytest.raises(TypeError, match="learn\\(\\) takes a GrownModel or a method"):
        kg.learn("grown", [])
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="fixed_mask_epochs must be None .* or an integer"):
            methods.GROWN(fixed_mask_epochs=bad)
    assert methods.GROWN(fixed_mask_epochs=0).config()["fixed_mask_epochs"] == 0


def test_every_named_method_builds(permuted_stream):
    for name in methods.METHODS:
        method = methods.get(name, seed=0)
        method.start(permuted_stream[0].input_shape)
        model = method.model_for_task(0)
        assert isinstance(model, kg.GrownModel)
        assert method.config()["method"] == method.name
