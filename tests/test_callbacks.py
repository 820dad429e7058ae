"""GrowthMonitor: TensorBoard summaries read back and compared with the model's own reports."""

import keras
import pytest
import tensorflow as tf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import keras_grown as kg
from keras_grown.callbacks import GrowthMonitor


def read_events(log_dir):
    """{tag: [(step, value)]}: floats for scalars, str for text, (counts, edges) for histograms."""
    events = EventAccumulator(str(log_dir), size_guidance={"tensors": 0})
    events.Reload()
    read = {}
    for tag in events.Tags()["tensors"]:
        plugin = events.SummaryMetadata(tag).plugin_data.plugin_name
        values = []
        for event in events.Tensors(tag):
            array = tf.make_ndarray(event.tensor_proto)
            if plugin == "scalars":
                value = float(array)
            elif plugin == "text":
                value = array.item().decode()
            else:
                assert plugin == "histograms", (tag, plugin)
                value = array
            values.append((event.step, value))
        read[tag] = values
    return read


def at(series, step):
    (value,) = [v for s, v in series if s == step]
    return value


def test_learn_writes_growth_size_selection_and_task_boundaries(tmp_path, fashion_stream):
    kg.set_seed(0)
    model = kg.GrownModel("lenet5", l0_lambda=1e-3, seed=0)
    monitor = GrowthMonitor(tmp_path / "growth")
    epoch_logs = []
    recorder = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: epoch_logs.append(dict(logs))
    )
    # One stage per task with growth on from the start (no fixed-mask
    # stage; one epoch, too short for the schedule to change anything), so
    # that the axis below reads one epoch per task.
    method = kg.methods.GROWN.from_model(model, fixed_mask_epochs=0, grow_from_start=True)
    result = kg.learn(
        method, list(fashion_stream)[:2], epochs=1, target=None, callbacks=[monitor, recorder],
        batch_size=64,
    )
    read = read_events(tmp_path / "growth")
    # One step per epoch and one per finished task, on one axis: 0 = task 0's
    # epoch, 1 = task 0 finished, 2 = task 1's epoch, 3 = task 1 finished.
    assert monitor.step == 4
    assert read["task"] == [(0, 0.0), (1, 0.0), (2, 1.0), (3, 1.0)]
    assert read["task/growing"] == [(0, 1.0), (1, 0.0), (2, 1.0), (3, 0.0)]
    events = read["task/events"]
    assert [s for s, _ in events] == [0, 1, 2, 3]
    assert at(events, 0) == "Task 0 started (growth on)."
    assert at(events, 1).startswith(
        f"Task 0 finished. Model size {result.summaries[0].size.ratio:.3f}x ("
    )
    assert at(events, 2) == "Task 1 started (growth on)."
    assert at(events, 3).startswith("Task 1 finished.")
    for name, entry in result.summaries[1].layers.items():
        row = (
            f"| {name} | {entry['channels_grown']} | {entry['channels_on']} | "
            f"{entry['kernels_taken']} | {entry['kernels_reused']} |"
        )
        assert row in at(events, 3)

    # The l0 term and the epoch metrics are the epoch's logs, on the global step.
    assert [s for s, _ in read["l0"]] == [0, 2]
    for step, logs in zip((0, 2), epoch_logs):
        assert at(read["l0"], step) == pytest.approx(logs["l0"], abs=1e-6)
        assert at(read["metrics/accuracy"], step) == pytest.approx(logs["accuracy"], abs=1e-6)
        assert at(read["metrics/val_loss"], step) == pytest.approx(logs["val_loss"], abs=1e-6)

    # Size after each task is model_size(); it only changes when a task finishes.
    full = model.model_size().full_size_weights
    for task, end_step in ((0, 1), (1, 3)):
        size = result.summaries[task].size
        assert at(read["size/model_size"], end_step) == pytest.approx(size.ratio, abs=1e-6)
        for k, owned in enumerate(size.owned_by_task):
            fraction = at(read[f"size/owned_task_{k}"], end_step)
            assert fraction == pytest.approx(owned / full, abs=1e-6)
            assert round(fraction * full) == owned
    assert at(read["size/model_size"], 0) == 0.0
    assert at(read["size/model_size"], 2) == at(read["size/model_size"], 1)
    assert at(read["size/model_size"], 3) == pytest.approx(model.model_size().ratio, abs=1e-6)
    assert [s for s, _ in read["size/owned_task_1"]] == [2, 3]

    # Growth per layer: after a task it is growth_report(); at the task's last
    # epoch the grown mask (no noise) already switched on exactly those channels.
    for task, (epoch_step, end_step) in enumerate(((0, 1), (2, 3))):
        for entry in result.growth[task]:
            series = read[f"growth/{entry['layer']}"]
            assert at(series, end_step) == pytest.approx(entry["growth_ratio"], abs=1e-6)
            assert at(series, epoch_step) == at(series, end_step)
    seed_width = model.grown_layers[0].seed_units / model.grown_layers[0].units
    assert at(read["growth/conv1"], 0) >= seed_width

    # Kernels task 1 reads from task 0: its stored mask over kernels owned by
    # earlier tasks, the same count finish_task() reported as reused.
    reused = sum(entry["kernels_reused"] for entry in result.summaries[1].layers.values())
    from_masks = sum(
        int((layer.task_kernel_mask(1) & (owner > 0) & (owner != 2)).sum())
        for layer in model.grown_layers
        for owner in [layer.owner.numpy()]
    )
    assert reused == from_masks > 0
    assert read["selected_kernels/task_1"] == [(2, float(reused)), (3, float(reused))]
    assert "selected_kernels/task_0" not in read

    # Score histograms per layer: selective over owned kernels (none during
    # task 0), attentive over free kernels of on-channels, grown over dormant ones.
    for layer, before in zip(model.grown_layers, result.growth[0]):
        prefix = f"scores/{layer.name}"
        assert [s for s, _ in read[f"{prefix}/attentive"]] == [0, 2]
        assert [s for s, _ in read[f"{prefix}/grown"]] == [0, 2]
        assert [s for s, _ in read[f"{prefix}/selective"]] == [2]
        selective = at(read[f"{prefix}/selective"], 2)
        assert selective[:, 2].sum() == before["kernels_owned_by_task"][0]
        grown = at(read[f"{prefix}/grown"], 0)
        assert grown[:, 2].sum() == layer.allocated_units - layer.seed_units
        grown = at(read[f"{prefix}/grown"], 2)
        assert grown[:, 2].sum() == layer.allocated_units - before["active_channels"]


def test_manual_loop_reports_an_unreported_task_at_the_next_fit(tmp_path, fashion_stream):
    kg.set_seed(1)
    model = kg.GrownModel("lenet5", l0_lambda=1e-3, seed=1)
    monitor = GrowthMonitor(str(tmp_path), histograms=True)
    tasks = list(fashion_stream)[:2]

    def fit(task):
        data = task.train.take(128).batch(64)
        model.fit(data, epochs=1, callbacks=[monitor], verbose=0, shuffle=False)

    model.add_task(tasks[0].train)
    fit(tasks[0])
    model.finish_task()  # no on_task_end(): written at the next fit()
    after_task_0 = model.growth_report()
    model.add_task(tasks[1].train, grow=False)
    fit(tasks[1])
    model.grow()
    fit(tasks[1])
    summary = model.finish_task()
    monitor.on_task_end(model, summary)
    monitor.on_task_end(model)  # already written: nothing more
    monitor.close()

    read = read_events(tmp_path)
    assert monitor.step == 5
    assert read["task"] == [(0, 0.0), (1, 0.0), (2, 1.0), (3, 1.0), (4, 1.0)]
    assert read["task/growing"] == [(0, 1.0), (1, 0.0), (2, 0.0), (3, 1.0), (4, 0.0)]
    events = dict(read["task/events"])
    assert sorted(events) == [0, 1, 2, 3, 4]
    assert events[1].startswith("Task 0 finished.")
    for entry in after_task_0:  # no summary given: the table comes from growth_report()
        row = (
            f"| {entry['layer']} | {entry['active_channels']} | {entry['full_width']} | "
            f"{entry['kernels_owned_by_task'][0]} |"
        )
        assert row in events[1]
    assert events[2] == "Task 1 started (growth off)."
    assert events[3] == "Task 1: growth switched on."
    assert events[4].startswith("Task 1 finished.")
    for entry in after_task_0:
        assert at(read[f"growth/{entry['layer']}"], 1) == pytest.approx(entry["growth_ratio"])
    size = model.model_size()
    assert at(read["size/model_size"], 4) == pytest.approx(size.ratio, abs=1e-6)
    assert at(read["size/owned_task_1"], 4) * size.full_size_weights == pytest.approx(
        size.owned_by_task[1], abs=0.5
    )
    # Growth is off in the first fit of task 1: no grown-score histogram there.
    assert [s for s, _ in read["scores/conv1/grown"]] == [0, 3]
    reused = sum(entry["kernels_reused"] for entry in summary.layers.values())
    assert at(read["selected_kernels/task_1"], 4) == reused


def test_growth_and_fixed_masks_decided_inside_one_fit_are_written_where_they_happen(
        tmp_path, fashion_stream):
    kg.set_seed(2)
    model = kg.GrownModel("lenet5", l0_lambda=1e-3, seed=2)
    monitor = GrowthMonitor(str(tmp_path), histograms=False)
    tasks = list(fashion_stream)[:2]
    model.add_task(tasks[0].train)
    model.fit(tasks[0].train.take(128).batch(64), epochs=1, callbacks=[monitor], verbose=0)
    monitor.on_task_end(model, model.finish_task())
    model.add_task(tasks[1].train)
    # A target no task reaches: 3 epochs are reuse, one growth round, fixed masks
    # (reuse_epochs=1: the phases change at epoch ends, where the monitor writes).
    schedule = kg.callbacks.GrowWhenNecessary(target=1.0, reuse_epochs=1)
    model.fit(tasks[1].train.take(128).batch(64), validation_data=tasks[1].val.batch(64),
              epochs=3, callbacks=[monitor, schedule], verbose=0)
    assert [p["phase"] for p in schedule.phases] == ["reuse", "grow", "fixed"]
    monitor.on_task_end(model, model.finish_task())
    monitor.close()
    read = read_events(tmp_path)
    # Fixing the masks keeps the grown channels' round on (their masks hard).
    assert read["task/growing"][2:] == [(2, 0.0), (3, 1.0), (4, 1.0), (5, 0.0)]
    events = dict(read["task/events"])
    assert sorted(events) == [0, 1, 2, 3, 4, 5]
    assert events[2] == "Task 1 started (growth off)."
    assert events[3] == "Task 1: growth switched on."
    assert events[4] == "Task 1: masks fixed."
    assert events[5].startswith("Task 1 finished.")


def test_log_dir_that_is_a_file_is_refused_with_its_path(tmp_path):
    existing_file = tmp_path / "events.txt"
    existing_file.write_text("not a folder")
    with pytest.raises(ValueError, match="existing file") as error:
        GrowthMonitor(existing_file)
    assert str(existing_file) in str(error.value)
    below_a_file = existing_file / "run1"
    with pytest.raises(ValueError, match="cannot create the folder") as error:
        GrowthMonitor(below_a_file)
    assert str(below_a_file) in str(error.value)
    GrowthMonitor(tmp_path / "new" / "run")  # a new folder is created
    assert (tmp_path / "new" / "run").is_dir()


def test_on_task_end_needs_a_finished_task_of_a_grown_model(tmp_path):
    monitor = GrowthMonitor(tmp_path)
    with pytest.raises(ValueError, match=r"the model has none\. Call model.finish_task\(\)"):
        monitor.on_task_end(kg.GrownModel("lenet5"))
    with pytest.raises(TypeError, match="monitors a GrownModel; received Sequential"):
        monitor.on_task_end(keras.Sequential([keras.layers.Dense(1)]))
    assert monitor.step == 0
    assert not list(tmp_path.iterdir())  # nothing written: no event file
    assert kg.callbacks.GrowthMonitor is GrowthMonitor
