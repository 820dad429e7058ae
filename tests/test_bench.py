"""keras_grown.bench on a tiny real benchmark: results.json, RESULTS.md, plots, report, resume.

One module-scoped run (GROWN and Scratch x seeds 0 and 1 on the first 2 tasks of
real split Fashion-MNIST, 64 training images a task, 1 epoch) serves every test that reads
its output; the tests that change a folder work on a copy of it.
"""

import argparse
import fcntl
import io
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from keras_grown import bench as bench_lib
from keras_grown import methods as methods_lib
from keras_grown.bench import running as bench_running
from keras_grown.cli import bench as bench_cli
from keras_grown.cli import report as report_cli
from keras_grown.evaluation import AccuracyMatrix

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ROOT = Path(__file__).resolve().parent.parent
STREAM_KWARGS = dict(num_tasks=5, train_per_task=64)  # 2 classes a task
# The paper's target, so that GROWN's runs train a Scratch reference (the
# default, None, trains none).
RUN = dict(
    methods="grown,scratch", seeds="0,1", epochs=1, stream_kwargs=STREAM_KWARGS,
    first_tasks=2, target="scratch",
)  # fmt: skip
# The same run from the command line.
CLI = [
    "bench", "--stream", "split_fashion_mnist", "--methods", "grown,scratch",
    "--seeds", "0,1", "--epochs", "1", "--num-tasks", "5", "--train-per-task", "64",
    "--first-tasks", "2", "--target", "scratch",
]  # fmt: skip


class CountingLearn:
    """Wraps `learn()` in keras_grown.bench and records (method name, seed) of every call."""

    def __init__(self):
        self.calls = []
        self.learn = bench_running.learn

    def __call__(self, method, stream, **kwargs):
        self.calls.append((method.config()["method"], kwargs["seed"], method.label))
        return self.learn(method, stream, **kwargs)


def run_tiny_bench(root):
    """Runs the tiny benchmark into root/fashion; keeps the learn() calls and the progress text."""
    counter, stderr = CountingLearn(), io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(bench_running, "learn", counter)
        patch.setattr(sys, "stderr", stderr)
        bench_lib.bench("split_fashion_mnist", out=root / "fashion", command="pytest bench", **RUN)
    seen = dict(calls=counter.calls, progress=stderr.getvalue())
    (root / "seen.json").write_text(json.dumps(seen))


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """(folder, learn calls, progress text) of the tiny benchmark, run once per test session.

    Under pytest-xdist the workers share one run: the first to take the lock runs it.
    """
    run_id = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    if run_id is None:
        root = tmp_path_factory.mktemp("bench")
        run_tiny_bench(root)
    else:
        root = tmp_path_factory.getbasetemp().parent / f"bench-{run_id}"
        root.mkdir(exist_ok=True)
        with open(root / "lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not (root / "seen.json").exists():
                run_tiny_bench(root)
    seen = json.loads((root / "seen.json").read_text())
    return root / "fashion", [tuple(call) for call in seen["calls"]], seen["progress"]


@pytest.fixture
def copy_of(finished, tmp_path):
    folder = tmp_path / "copy"
    shutil.copytree(finished[0], folder)
    return folder


def read(folder):
    return json.loads((folder / "results.json").read_text())


def test_every_method_and_seed_runs_once_in_order(finished):
    _, calls, _ = finished
    assert [(name, seed) for name, seed, _ in calls] == [
        ("grown", 0), ("scratch", 0), ("grown", 1), ("scratch", 1),
    ]  # fmt: skip


def test_results_json_holds_every_run_and_the_setting(finished):
    folder, _, _ = finished
    payload = read(folder)
    assert payload["format"] == bench_lib.RESULTS_FORMAT
    assert payload["stream"] == "split_fashion_mnist"
    assert payload["stream_kwargs"] == STREAM_KWARGS
    assert payload["settings"]["epochs"] == 1 and payload["settings"]["first_tasks"] == 2
    assert payload["methods"] == ["grown", "scratch"] and payload["seeds"] == [0, 1]
    assert payload["num_tasks"] == 2 and payload["task_names"] == ["task_0", "task_1"]
    assert set(payload["versions"]) >= {"keras_grown", "tensorflow", "keras", "python"}
    assert payload["machine"]["cpus"] >= 1 and "platform" in payload["machine"]
    assert payload["commands"] == ["pytest bench"]
    assert len(payload["runs"]) == 4
    labels = {"grown": "GROWN", "scratch": "Scratch"}
    for run in payload["runs"]:
        assert run["label"] == labels[run["method"]]
        assert run["config"]["seed"] == run["seed"]
        matrix = AccuracyMatrix.from_dict(run["accuracy"])
        assert matrix.num_filled == 2
        assert run["average_accuracy"] == matrix.average_accuracy()
        assert run["backward_transfer"] == matrix.backward_transfer()
        assert len(run["model_size"]) == len(run["time_per_task"]) == 2
        assert len(run["val_accuracy"]) == 2 and all(0 <= a <= 1 for a in run["val_accuracy"])
        assert run["seconds"] == pytest.approx(sum(run["time_per_task"]))
        # 2 tasks x one fit() of 1 epoch, for every method (GROWN's growth
        # schedule decides inside the fit; a one-epoch fit leaves no room).
        grown = run["method"] == "grown"
        assert run["epochs_trained"] == 2
        assert run["growth_rounds"] == [0, 0]
        assert (run["targets"][0] is not None) == grown  # only GROWN gets a reference
        assert run["ignored_settings"] == []
    sizes = {(r["method"], r["seed"]): r["model_size"] for r in payload["runs"]}
    assert sizes[("scratch", 0)] == sizes[("scratch", 1)] == [1.0, 2.0]  # T x after T tasks
    assert all(0 < size <= 2.0 for size in sizes[("grown", 0)] + sizes[("grown", 1)])


def test_results_md_has_the_three_tables_with_mean_and_std(finished):
    folder, _, _ = finished
    runs = read(folder)["runs"]
    text = (folder / "RESULTS.md").read_text()
    lines = text.splitlines()
    for name, label in (("grown", "GROWN"), ("scratch", "Scratch")):
        accuracies = [100 * r["average_accuracy"] for r in runs if r["method"] == name]
        expected = f"| {label} | {np.mean(accuracies):.2f} ± {np.std(accuracies, ddof=1):.2f} |"
        assert any(line.startswith(expected) for line in lines), expected
    scratch = next(line for line in lines if line.startswith("| Scratch | ") and "±" in line)
    assert "| 2.00x |" in scratch and scratch.endswith("| 2 |")  # size after 2 tasks, 2 seeds
    assert "| method | task 1 | task 2 |" in lines
    assert "| Scratch | 1.00x | 2.00x |" in lines
    # Only GROWN of the ablation ran: no Table 5 rows, and the line says how to get them.
    assert "Not run: add the methods grow,grow_sel,grow_sel_lsg" in text
    assert "```\npytest bench\n```" in text


def test_plots_are_valid_pngs(finished):
    from PIL import Image

    folder, _, _ = finished
    for name in ("average_accuracy", "model_size", "accuracy_grown", "accuracy_scratch"):
        path = folder / f"{name}.png"
        assert path.read_bytes()[:8] == PNG_SIGNATURE
        with Image.open(path) as image:
            image.verify()
            assert image.format == "PNG" and min(image.size) > 100


def test_progress_names_method_seed_task_and_times(finished):
    _, _, progress = finished  # not a terminal: one plain line per task and per run
    lines = progress.splitlines()
    assert "bench 1/4 GROWN seed 0: task 1/2 done" in lines[0]
    assert "elapsed" in lines[0] and "left" in lines[0]
    assert any(line.startswith("bench 4/4 Scratch seed 1: average accuracy") for line in lines)
    assert "100% |" in next(line for line in lines if "4/4 Scratch seed 1: task 2/2" in line)


def test_report_rebuilds_identical_results_md_and_the_plots(copy_of):
    before = (copy_of / "RESULTS.md").read_text()
    for path in list(copy_of.glob("*.png")) + [copy_of / "RESULTS.md"]:
        path.unlink()
    paths = bench_lib.report(copy_of)
    assert paths[0] == copy_of / "RESULTS.md"
    assert (copy_of / "RESULTS.md").read_text() == before
    assert sorted(p.name for p in paths[1:]) == [
        "accuracy_grown.png", "accuracy_scratch.png", "average_accuracy.png", "model_size.png",
    ]  # fmt: skip
    assert all(p.read_bytes()[:8] == PNG_SIGNATURE for p in paths[1:])


def test_resume_trains_only_the_missing_pairs(copy_of, monkeypatch):
    old = read(copy_of)["runs"]
    counter = CountingLearn()
    monkeypatch.setattr(bench_running, "learn", counter)
    payload = bench_lib.bench(
        "split_fashion_mnist", out=copy_of, resume=True, progress=False,
        **dict(RUN, methods="scratch,finetune_copies", seeds="0"),
    )  # fmt: skip
    assert [(name, seed) for name, seed, _ in counter.calls] == [("finetune_copies", 0)]
    assert payload["runs"][:4] == old  # the finished runs, untouched
    assert read(copy_of) == json.loads(json.dumps(payload))
    new = payload["runs"][4]
    assert (new["method"], new["seed"], new["label"]) == (
        "finetune_copies",
        0,
        "Fine-tune (copies)",
    )
    assert new["model_size"] == [1.0, 2.0]
    assert payload["methods"] == ["grown", "scratch", "finetune_copies"]
    assert len(payload["commands"]) == 2
    text = (copy_of / "RESULTS.md").read_text()
    assert "| Fine-tune (copies) | " in text
    assert "Not finished: finetune_copies seed 1. `--resume` runs them." in text


def test_cli_resume_of_a_finished_folder_trains_nothing(copy_of, monkeypatch, capsys):
    counter = CountingLearn()
    monkeypatch.setattr(bench_running, "learn", counter)
    args = cli_parser().parse_args(CLI + ["--resume", "--out", str(copy_of)])
    assert args.func is bench_cli.command_bench
    assert args.func(args) == 0
    assert counter.calls == []
    captured = capsys.readouterr()
    assert "| method | average accuracy (%) |" in captured.out
    assert captured.err.count("already in results.json, skipped") == 4
    assert len(read(copy_of)["commands"]) == 2 and len(read(copy_of)["runs"]) == 4


def test_an_existing_folder_is_refused_without_resume(copy_of):
    before = (copy_of / "results.json").read_bytes()
    with pytest.raises(ValueError, match=r"already holds 4 finished run\(s\). Pass resume=True"):
        bench_lib.bench("split_fashion_mnist", out=copy_of, progress=False, **RUN)
    assert (copy_of / "results.json").read_bytes() == before


def test_resume_with_other_settings_is_refused(copy_of):
    before = (copy_of / "results.json").read_bytes()
    with pytest.raises(ValueError, match=r"--resume continues .* settings=.*Use the same settings"):
        bench_lib.bench("split_fashion_mnist", out=copy_of, resume=True, progress=False,
                        **dict(RUN, epochs=2))  # fmt: skip
    with pytest.raises(ValueError, match=r"stream_kwargs="):
        bench_lib.bench(
            "split_fashion_mnist",
            out=copy_of,
            resume=True,
            progress=False,
            **dict(RUN, stream_kwargs=dict(num_tasks=5, train_per_task=32)),
        )
    assert (copy_of / "results.json").read_bytes() == before


def test_cli_report_rebuilds_the_folder(copy_of, capsys):
    (copy_of / "RESULTS.md").unlink()
    args = cli_parser().parse_args(["report", str(copy_of)])
    assert args.func is report_cli.command_report
    assert args.func(args) == 0
    assert (copy_of / "RESULTS.md").is_file()
    assert "| Scratch | " in capsys.readouterr().out


def test_variants_run_as_methods_of_their_own_beside_old_runs(copy_of, monkeypatch, capsys):
    # The fixture's file as written before variants (no "variant" in its runs).
    payload = read(copy_of)
    for run in payload["runs"]:
        run.pop("variant")
    (copy_of / "results.json").write_text(json.dumps(payload))
    old = payload["runs"]
    counter = CountingLearn()
    monkeypatch.setattr(bench_running, "learn", counter)
    payload = bench_lib.bench(
        "split_fashion_mnist", out=copy_of, resume=True, progress=False,
        **dict(RUN, methods="scratch,wsn,wsn@capacity=0.1", seeds="0"),
    )  # fmt: skip
    assert [(name, seed) for name, seed, _ in counter.calls] == [("wsn", 0), ("wsn", 0)]
    assert payload["runs"][:4] == old
    assert payload["methods"] == ["grown", "scratch", "wsn", "wsn@capacity=0.1"]
    plain, variant = payload["runs"][4:]
    assert (plain["method"], plain["label"], plain["variant"]) == ("wsn", "WSN", {})
    assert (variant["method"], variant["label"], variant["variant"]) == (
        "wsn@capacity=0.1", "WSN (capacity=0.1)", {"capacity": 0.1},
    )  # fmt: skip
    assert plain["config"]["capacity"] == 0.5 and variant["config"]["capacity"] == 0.1
    # Each task keeps the top c of every layer's kernels: c = 0.1 stores far fewer.
    assert variant["model_size"][0] < 0.5 * plain["model_size"][0]
    assert variant["mask_bytes"] == plain["mask_bytes"]  # the same 1-bit masks, other bits set
    text = (copy_of / "RESULTS.md").read_text()
    for label in ("WSN", "WSN (capacity=0.1)"):
        assert f"| {label} | " in text and f"\n### {label}\n" in text
    assert "![WSN (capacity=0.1)](accuracy_wsn-capacity=0.1.png)" in text
    assert "Not finished: wsn seed 1, wsn@capacity=0.1 seed 1." in text
    assert (copy_of / "accuracy_wsn-capacity=0.1.png").read_bytes()[:8] == PNG_SIGNATURE
    assert not (copy_of / "checkpoints" / "wsn-capacity=0.1-seed0").exists()
    # Resume is per variant, whichever way the entry is written: nothing trains.
    before = text
    args = cli_parser().parse_args(
        CLI + ["--methods", "scratch,wsn,wsn@capacity=.1", "--seeds", "0", "--resume",
               "--out", str(copy_of)]
    )  # fmt: skip
    assert args.func(args) == 0
    assert len(counter.calls) == 2
    assert capsys.readouterr().err.count("already in results.json, skipped") == 3
    assert len(read(copy_of)["runs"]) == 6
    assert (copy_of / "RESULTS.md").read_text().replace("```", "").count("keras-grown bench") == 1
    bench_lib.report(copy_of)
    assert (copy_of / "RESULTS.md").read_text().split("## Commands")[0] == before.split(
        "## Commands"
    )[0]


# ---------------------------------------------------------------- no training below


def cli_parser():
    """The keras-grown parser's subcommands, as keras_grown.cli wires them."""
    parser = argparse.ArgumentParser(prog="keras-grown")
    commands = parser.add_subparsers(dest="command")
    bench_cli.add_bench_command(commands)
    report_cli.add_report_command(commands)
    return parser


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(methods="grown,nope"), r"Unknown method 'nope' in methods. Choose from: grown,"),
        (dict(methods=""), r"methods is empty"),
        (dict(methods="grown,grown"), r"methods names grown more than once"),
        (dict(seeds="0,x"), r"seeds must be a comma-separated list of integers >= 0, e\.g\."),
        (dict(seeds="0,0"), r"seeds lists \[0\] more than once"),
        (dict(seeds=[-1]), r"seeds must be integers >= 0"),
        (dict(seeds=""), r"seeds must be a comma-separated list"),
        (dict(epochs=0), r"epochs must be an integer >= 1. Received: epochs=0"),
        (dict(target="high"), r"target takes an accuracy in \(0, 1\], 'scratch' or 'none'"),
        (dict(target=1.5), r"target must be an accuracy in \(0, 1\]"),
        (dict(first_tasks=0), r"first_tasks must be an integer >= 1"),
        (dict(stream="cifar10"), r"Unknown stream 'cifar10'. Known streams: "),
        (dict(stream_kwargs=dict(seed=3)), r"stream_kwargs sets seed; .*Remove seed"),
        (
            dict(stream_kwargs=dict(classes=3)),
            r"Stream 'split_fashion_mnist' does not take classes",
        ),
        (dict(method_kwargs=dict(seed=1)), r"method_kwargs sets seed"),
        (
            dict(method_kwargs=dict(prune_ratio=0.5)),
            r"method 'grown' \(GROWN\) takes no argument 'prune_ratio'.*method_overrides=",
        ),
        (dict(method_overrides=dict(packnet=dict(prune_ratio=0.5))), r"names packnet, which"),
        (
            dict(methods="packnet", method_overrides=dict(packnet=dict(prune_ratio=1.5))),
            r"prune_ratio must be in \[0, 1\)",
        ),
        # Variants: name@key=value[@key=value...].
        (
            dict(methods="grown,wsn@capacty=0.1"),
            r"methods entry 'wsn@capacty=0.1': method 'wsn' \(WSN\) takes no argument "
            r"'capacty'. It accepts .*\bcapacity\b.*reinit_scores",
        ),
        (
            dict(methods="wsn@capacity=2"),
            r"methods entry 'wsn@capacity=2': WSN's capacity .* must be in \(0, 1\]. Received: "
            r"capacity=2. Change the value in the entry",
        ),
        (dict(methods="wsn@reinit_scores=maybe"), r"reinit_scores is true or false \(write "),
        (dict(methods="wsn@capacity=nan"), r"capacity=nan is not a finite number"),
        (
            dict(methods="wsn,wsn@capacity=0.1,wsn@capacity=.1"),
            r"methods names wsn@capacity=0.1 more than once; give each method or variant once",
        ),
        (
            dict(methods="wsn@capacity"),
            r"methods entry 'wsn@capacity': the setting 'capacity' has no key=value. Write a "
            r"variant as name@key=value, several settings joined by @, e.g. wsn@capacity=0.1",
        ),
        (dict(methods="wsn@"), r"methods entry 'wsn@': an empty setting"),
        (dict(methods="wsn@capacity="), r"'capacity=' has no value \(none for None\)"),
        (dict(methods="wsn@capacity=1@capacity=2"), r"sets capacity more than once"),
        (dict(methods="wsm@capacity=0.1"), r"Unknown method 'wsm' in methods \(methods entry"),
        (dict(methods="wsn@seed=1"), r"methods entry 'wsn@seed=1' sets seed; .* from seeds"),
        (
            dict(methods="packnet@capacity=0.5"),
            r"'packnet@capacity=0.5': method 'packnet' \(PackNet\) fixes capacity",
        ),
        (
            dict(methods="grow@selective_mask=true"),
            r"method 'grow' sets this argument itself .* vary the method that takes it",
        ),
        (
            dict(methods="wsn@capacity=0.1", method_overrides={"wsn@capacity=0.1": {}}),
            r"method_overrides is keyed by method name; give a variant's settings in its methods",
        ),
    ],
)
def test_bad_arguments_fail_before_anything_is_written(tmp_path, changes, message):
    arguments = dict(RUN, stream="split_fashion_mnist", out=tmp_path / "out", progress=False)
    arguments.update(changes)
    with pytest.raises(ValueError, match=message):
        bench_lib.bench(**arguments)
    assert not (tmp_path / "out").exists()


def test_cli_bad_methods_and_seeds_raise_value_error(tmp_path):
    parser = cli_parser()
    for flag, value, message in (
        ("--methods", "grown,nope", "Unknown method 'nope'"),
        ("--seeds", "0;1", "seeds must be a comma-separated list of integers"),
    ):
        args = parser.parse_args(CLI + [flag, value, "--out", str(tmp_path / "out")])
        with pytest.raises(ValueError, match=message):
            args.func(args)
    assert not (tmp_path / "out").exists()


def test_settings_a_method_fixes_are_left_out_for_it():
    arguments, ignored = bench_lib._method_arguments(
        "packnet", {"seed_ratio": 0.3, "capacity": 1.5, "l0_lambda": 0.1}, {}
    )
    assert arguments == {"l0_lambda": 0.1} and ignored == ["capacity", "seed_ratio"]
    arguments, ignored = bench_lib._method_arguments(
        "grown", {"seed_ratio": 0.3}, {"grown": {"l0_lambda": 2.0}}
    )
    assert arguments == {"seed_ratio": 0.3, "l0_lambda": 2.0} and ignored == []


def test_a_variant_overrides_method_kwargs_and_method_overrides():
    arguments, ignored = bench_lib._method_arguments(
        "wsn", {"l0_lambda": 0.1, "capacity": 1.5, "learning_rate": 0.01},
        {"wsn": {"capacity": 0.3, "reinit_scores": True, "learning_rate": 0.02}},
        {"capacity": 0.1, "learning_rate": 0.05},
    )  # fmt: skip
    # WSN fixes GrownModel's capacity (full size): the shared one is left out;
    # its own capacity (c) comes from the variant over method_overrides.
    assert arguments == {
        "l0_lambda": 0.1, "capacity": 0.1, "reinit_scores": True, "learning_rate": 0.05,
    }  # fmt: skip
    assert ignored == ["capacity"]


def test_parse_methods_reads_variants_in_one_canonical_form():
    entries = bench_lib.parse_methods(
        " grown, wsn,wsn@capacity=.1 ,packnet@retrain_epochs=1@prune_ratio=0.75,"
        "grown@optimizer=sgd@fixed_mask_epochs=None@jit_compile=TRUE@learning_rate=1e-4"
    )
    assert entries == [
        "grown", "wsn", "wsn@capacity=0.1", "packnet@prune_ratio=0.75@retrain_epochs=1",
        "grown@fixed_mask_epochs=none@jit_compile=true@learning_rate=0.0001@optimizer=sgd",
    ]  # fmt: skip
    assert bench_lib.parse_methods(entries) == entries  # a list, and the canonical form again
    name, variant = bench_lib.parse_variant(entries[-1])
    assert name == "grown" and variant == {
        "fixed_mask_epochs": None, "jit_compile": True, "learning_rate": 1e-4, "optimizer": "sgd",
    }  # fmt: skip
    assert type(bench_lib.parse_variant("packnet@retrain_epochs=1")[1]["retrain_epochs"]) is int
    assert bench_lib.parse_variant("wsn") == ("wsn", {})
    assert bench_lib.variant_label("wsn", {"capacity": 0.1}) == "WSN (capacity=0.1)"
    assert bench_lib.variant_label("packnet", {"prune_ratio": 0.75, "retrain_epochs": 1}) == (
        "PackNet (prune_ratio=0.75, retrain_epochs=1)"
    )
    with pytest.raises(ValueError, match=r"methods names wsn@capacity=1 more than once"):
        bench_lib.parse_methods("wsn@capacity=1,wsn@capacity=1.0")  # one value, two spellings


def test_default_methods_are_table_1_with_wsn_after_packnet():
    assert bench_lib.DEFAULT_METHODS == (
        "grown", "grow_only", "piggyback", "packnet", "wsn", "finetune", "scratch", "ewc",
    )  # fmt: skip
    args = cli_parser().parse_args(["bench"])
    assert bench_lib.parse_methods(args.methods) == list(bench_lib.DEFAULT_METHODS)


def test_report_of_results_written_before_variants(tmp_path, capsys):
    # A results.json as bench wrote it before variants: no "variant" in its
    # runs, plain names only (hand-written here, and a file kept in docs/).
    payload = synthetic_payload({"wsn": [0, 1], "packnet": [0]})
    (tmp_path / "results.json").write_text(json.dumps(payload))
    args = cli_parser().parse_args(["report", str(tmp_path)])
    assert args.func(args) == 0
    text = (tmp_path / "RESULTS.md").read_text()
    assert "| WSN | 55.00 ± 7.07 |" in text and "| PackNet | 50.00 |" in text
    assert "![WSN](accuracy_wsn.png)" in text
    assert "| WSN | " in capsys.readouterr().out
    assert (tmp_path / "accuracy_wsn.png").read_bytes()[:8] == PNG_SIGNATURE
    kept = ROOT / "docs" / "results" / "history" / "permuted_short_2026-11-25" / "results.json"
    if kept.is_file():
        (tmp_path / "kept").mkdir()
        shutil.copy(kept, tmp_path / "kept" / "results.json")
        paths = bench_lib.report(tmp_path / "kept")
        text = paths[0].read_text()
        for label in ("GROWN", "PackNet", "Piggyback", "Fine-tune", "Scratch"):
            assert f"\n| {label} | " in text
        assert (tmp_path / "kept" / "accuracy_packnet.png").is_file()


def test_planned_epochs_count_packnet_twice():
    assert bench_lib._planned_epochs(methods_lib.get("grown"), 3, 2) == 6
    assert bench_lib._planned_epochs(methods_lib.get("packnet"), 3, 2) == 12
    assert bench_lib._planned_epochs(methods_lib.get("packnet", retrain_epochs=1), 3, 2) == 9


def test_report_errors_name_the_file(tmp_path):
    missing = tmp_path / "results.json"
    with pytest.raises(ValueError, match=f"{missing} does not exist. Run `keras-grown bench"):
        bench_lib.report(tmp_path)
    missing.write_text("{not json")
    with pytest.raises(ValueError, match=f"{missing} is not a readable results.json"):
        bench_lib.report(tmp_path)
    missing.write_text(json.dumps({"command": "keras-grown run", "result": {}}))
    with pytest.raises(ValueError, match=f"{missing} is not a results.json written by"):
        bench_lib.report(tmp_path)
    payload = synthetic_payload({"grown": [0]})
    payload["runs"][0]["accuracy"]["accuracy"] = [[2.0]]
    missing.write_text(json.dumps(payload))
    with pytest.raises(ValueError, match=f"{missing}: run 0 \\(grown seed 0\\) holds no valid"):
        bench_lib.report(tmp_path)
    assert not (tmp_path / "RESULTS.md").exists()


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_bar_redraws_one_line_on_a_terminal(monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    terminal = FakeTerminal()
    progress = bench_lib.BenchProgress([4, 0, 8], file=terminal)
    progress.start_run("PackNet", 0, 2)
    assert progress.remaining_seconds() is None  # no epoch finished yet
    for _ in range(2):
        progress.on_epoch_end(0)
    assert progress.remaining_epochs() == 2 + 8
    progress.on_task_end()
    progress.on_epoch_end(0)
    text = terminal.getvalue()
    assert "\n" not in text and text.count("\r") == 5
    last = text.split("\r")[-1].rstrip()
    assert last.startswith("bench 1/3 PackNet seed 0 | task 2/2 epoch 1 | [##")
    assert "elapsed, ~" in last and last.endswith(" left")
    progress.end_run("done")
    progress.skip_run("Scratch", 0)
    assert terminal.getvalue().endswith("bench 1/3 PackNet seed 0: done\n"
                                        "bench 2/3 Scratch seed 0: already in results.json, "
                                        "skipped\n")  # fmt: skip
    monkeypatch.setenv("COLUMNS", "80")  # too narrow for the bar: it goes, the times stay
    narrow = FakeTerminal()
    progress = bench_lib.BenchProgress([4], file=narrow)
    progress.start_run("PackNet", 0, 2)
    progress.on_epoch_end(0)
    last = narrow.getvalue().split("\r")[-1].rstrip()  # padded over the longer line before
    assert len(last) <= 79 and "[" not in last and last.endswith(" left")
    quiet = io.StringIO()
    silent = bench_lib.BenchProgress([2], file=quiet, enabled=False)
    silent.start_run("GROWN", 0, 2)
    silent.on_epoch_end(0)
    silent.on_task_end()
    assert quiet.getvalue() == "" and silent.epochs_done == 1


# ---------------------------------------------------------------- tables from a given payload


def synthetic_payload(runs_by_method, num_tasks=2):
    """A results.json content with hand-written runs: accuracy 0.5 + 0.1 * seed everywhere."""
    labels = {name: methods_lib.get(name).label for name in runs_by_method}
    runs = []
    for name, seeds in runs_by_method.items():
        for seed in seeds:
            value = 0.5 + 0.1 * seed
            values = np.tril(np.full((num_tasks, num_tasks), value))
            values[np.triu_indices(num_tasks, 1)] = np.nan
            matrix = AccuracyMatrix.from_values(values)
            sizes = [0.5 * (t + 1) + 0.1 * seed for t in range(num_tasks)]
            runs.append(dict(
                method=name, label=labels[name], seed=seed, config={}, accuracy=matrix.to_dict(),
                average_accuracy=value, backward_transfer=0.0, model_size=sizes,
                time_per_task=[1.0] * num_tasks, seconds=float(num_tasks), val_accuracy=[],
                ignored_settings=[],
            ))  # fmt: skip
    return dict(
        format=bench_lib.RESULTS_FORMAT, stream="split_fashion_mnist", stream_kwargs={},
        settings=dict(epochs=1, batch_size=64, target=None, first_tasks=None, method_kwargs={},
                      method_overrides={}),
        methods=list(runs_by_method), seeds=sorted({s for v in runs_by_method.values() for s in v}),
        num_tasks=num_tasks, commands=["by hand"], runs=runs,
    )  # fmt: skip


def test_ablation_table_lists_the_settings_that_ran_in_table_5_order():
    payload = synthetic_payload({"grown": [0, 1], "grow": [0, 1], "grow_sel": [0]})
    text = bench_lib.results_markdown(payload)
    table = text[text.index("## Ablation") :].split("\n\n")[1].splitlines()
    assert table[2:] == [
        "| Grow (`grow`) |  |  |  | 55.00 ± 7.07 | 1.05x ± 0.07 |",
        "| +Sel-mask (`grow_sel`) | ✓ |  |  | 50.00 | 1.00x |",
        "| +Re-train (`grown`) | ✓ | ✓ | ✓ | 55.00 ± 7.07 | 1.05x ± 0.07 |",
    ]
    assert "Not finished: grow_sel seed 1." in text


def test_plots_of_a_given_payload(tmp_path):
    payload = synthetic_payload({"grown": [0, 1, 2], "scratch": [0]}, num_tasks=3)
    paths = bench_lib.plot_results(payload, tmp_path)
    assert [p.name for p in paths] == [
        "average_accuracy.png", "model_size.png", "accuracy_grown.png", "accuracy_scratch.png",
    ]  # fmt: skip
    assert all(p.read_bytes()[:8] == PNG_SIGNATURE for p in paths)


def test_bench_is_part_of_the_public_api():
    import keras_grown as kg

    assert "bench" in kg.__all__ and kg.bench is bench_lib
    assert kg.bench.bench is bench_lib.bench and kg.bench.report is bench_lib.report


def test_ablation_settings_carry_their_own_names():
    # results.json keys runs by these names; config()["method"] must tell the steps apart.
    for name, label, _ in bench_lib.ABLATION:
        method = methods_lib.get(name)
        assert method.name == method.config()["method"] == name
    assert methods_lib.GROWN(selective_mask=False).name == "grown"  # not a Table 5 step
