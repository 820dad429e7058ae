"""Smoke tests of the benchmarks (`benchmarks/`, `make bench`).

Every benchmark runs with `--quick` (tiny settings) into a temporary
BENCHMARKS file, and the section it writes is checked for its table and its
target lines. They assert nothing about speed: speed is measured by the
benchmarks themselves, never by tests.
"""

import importlib
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
SCRIPTS = {
    "train_step": "train_step",
    "stream": "stream",
    "inference": "inference",
    "memory": "memory",
    "scaling": "scaling",
    "profile_train_step": "profile",
    "profile_late_task": "profile_late_task",
}


def _module(name):
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))
    return importlib.import_module(name)


def _machine(device_key="cpu"):
    return {
        "device_key": device_key,
        "device": f"{device_key.upper()}: test",
        "platform": "p",
        "python": "3",
        "cpu_count": 2,
        "tensorflow": "t",
        "keras": "k",
        "keras_grown": "g",
        "date": "d",
        "load": "l",
    }


# The slowest smoke runs (42 s and 28 s on 2 cores; the late-task profile
# learns four tasks first) are in the slow suite.
SLOW_SCRIPTS = ("memory", "profile_train_step", "profile_late_task")
PROFILES = ("profile_train_step", "profile_late_task")  # tables, no targets


@pytest.mark.parametrize(
    "script",
    [
        pytest.param(name, marks=pytest.mark.slow) if name in SLOW_SCRIPTS else name
        for name in sorted(SCRIPTS)
    ],
)
def test_quick_run_writes_its_section(tmp_path, script):
    output = tmp_path / "BENCHMARKS.md"
    _module(script).main(["--quick", "--output", str(output)])
    harness = _module("harness")
    key, _ = harness.device()
    sections = harness.read_sections(output)
    assert set(sections) == {(SCRIPTS[script], key)}
    body = sections[(SCRIPTS[script], key)]
    assert "- Device: " in body and "- Software: " in body and "- Date: " in body
    assert "Smoke run (`--quick`)" in body
    table_rows = [line for line in body.splitlines() if line.startswith("| ")]
    assert len(table_rows) >= 3, body  # header, separator, at least one row
    if script not in PROFILES:
        assert any(line.startswith("- Target") for line in body.splitlines()), body


def test_summary_gathers_every_target_at_the_top(tmp_path):
    harness, run_all = _module("harness"), _module("run_all")
    path = tmp_path / "BENCHMARKS.md"
    key, _ = harness.device()
    machine = _machine(key)
    harness.write_section(path, "stream", "Stream", "- Target: a <= 2x: 1.00x, **met**", machine)
    harness.write_section(path, "memory", "Memory", "- Target: b\n- Target: c\ntext", machine)
    run_all.summarize(path)
    summary = harness.read_sections(path)[("summary", key)]
    targets = [line for line in summary.splitlines() if line.startswith("- Target")]
    assert targets == ["- Target: a <= 2x: 1.00x, **met**", "- Target: b", "- Target: c"]
    text = path.read_text()
    assert text.index("benchmark:summary") < text.index("benchmark:stream")


def test_a_new_run_replaces_the_section_of_its_device(tmp_path):
    harness = _module("harness")
    path = tmp_path / "BENCHMARKS.md"
    cpu, gpu = _machine("cpu"), _machine("gpu")
    harness.write_section(path, "stream", "Stream", "first cpu run", cpu)
    harness.write_section(path, "stream", "Stream", "gpu run", gpu)
    harness.write_section(path, "memory", "Memory", "memory run", cpu)
    harness.write_section(path, "stream", "Stream", "second cpu run", cpu)
    sections = harness.read_sections(path)
    assert set(sections) == {("stream", "cpu"), ("stream", "gpu"), ("memory", "cpu")}
    assert "second cpu run" in sections[("stream", "cpu")]
    text = path.read_text()
    assert "first cpu run" not in text and "gpu run" in text
    # A replaced section keeps its place.
    assert text.index("second cpu run") < text.index("gpu run") < text.index("memory run")


def test_verdict_says_met_or_by_how_much_it_is_missed():
    harness = _module("harness")
    assert harness.verdict("step", 1.2, 1.25).endswith("1.20x, **met**")
    assert "**missed** by 2.00x (2.50x against 1.25x)" in harness.verdict("step", 2.5, 1.25)
