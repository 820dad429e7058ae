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
NAMES = ("train_step", "stream", "inference", "memory", "scaling")


def _module(name):
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))
    return importlib.import_module(name)


@pytest.fixture(scope="module")
def quick_report(tmp_path_factory):
    """Runs every benchmark with --quick into one temporary file; returns its path."""
    output = tmp_path_factory.mktemp("bench") / "BENCHMARKS.md"
    for name in NAMES:
        _module(name).main(["--quick", "--output", str(output)])
    _module("run_all").summarize(output, quick=True)
    return output


@pytest.mark.parametrize("name", NAMES)
def test_quick_run_writes_its_section(quick_report, name):
    harness = _module("harness")
    key, _ = harness.device()
    sections = harness.read_sections(quick_report)
    body = sections[(name, key)]
    assert "- Device: " in body and "- Software: " in body and "- Date: " in body
    assert "Smoke run (`--quick`)" in body
    table_rows = [line for line in body.splitlines() if line.startswith("| ")]
    assert len(table_rows) >= 3, body  # header, separator, at least one row
    assert any(line.startswith("- Target") for line in body.splitlines()), body


def test_summary_gathers_every_target(quick_report):
    harness = _module("harness")
    key, _ = harness.device()
    sections = harness.read_sections(quick_report)
    summary = sections[("summary", key)]
    targets = [line for line in summary.splitlines() if line.startswith("- Target")]
    expected = sum(
        line.startswith("- Target") for name in NAMES for line in sections[(name, key)].splitlines()
    )
    assert len(targets) == expected > 0
    text = quick_report.read_text()
    assert text.index("benchmark:summary") < min(text.index(f"benchmark:{name} ") for name in NAMES)


def test_a_new_run_replaces_the_section_of_its_device(tmp_path):
    harness = _module("harness")
    path = tmp_path / "BENCHMARKS.md"
    cpu = {
        "device_key": "cpu",
        "device": "CPU: test",
        "platform": "p",
        "python": "3",
        "cpu_count": 2,
        "tensorflow": "t",
        "keras": "k",
        "keras_grown": "g",
        "date": "d",
        "load": "l",
    }
    gpu = dict(cpu, device_key="gpu", device="GPU: test")
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
