"""Runs every benchmark of issues 8 and 12 and summarizes their targets in BENCHMARKS.md.

Each benchmark runs in its own Python process (a clean TensorFlow, and the
memory benchmark's subprocesses measure nothing else), one after the other; each
rewrites its own section of the output file. Then the target lines of every
section of this device are gathered into a summary section at the top.

    python benchmarks/run_all.py                 # what `make bench` runs
    python benchmarks/run_all.py --quick --output /tmp/BENCHMARKS.md
    python benchmarks/run_all.py --only train_step,inference
    python benchmarks/run_all.py --summary-only   # after running one script by hand
"""

import argparse
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402

BENCHMARKS = (
    "train_step", "stream", "inference", "memory", "scaling", "profile_train_step",
    "profile_late_task",
)
SECTIONS = {"profile_train_step": "profile"}


def main(argv=None):
    arguments = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    arguments.add_argument("--quick", action="store_true", help="smoke run of every benchmark")
    arguments.add_argument("--repeats", type=int, default=None, help="passed to every benchmark")
    arguments.add_argument("--output", type=Path, default=harness.DEFAULT_OUTPUT)
    arguments.add_argument("--only", default=",".join(BENCHMARKS))
    arguments.add_argument(
        "--summary-only", action="store_true", help="only rewrite the summary of the targets"
    )
    args = arguments.parse_args(argv)
    if args.summary_only:
        summarize(args.output, args.quick)
        return 0
    chosen = [name for name in args.only.split(",") if name]
    unknown = sorted(set(chosen) - set(BENCHMARKS))
    if unknown:
        arguments.error(f"unknown benchmark(s) {unknown}; choose from {list(BENCHMARKS)}")
    here = Path(__file__).resolve().parent
    failed = []
    for name in chosen:
        command = [sys.executable, str(here / f"{name}.py"), "--output", str(args.output)]
        if args.quick:
            command.append("--quick")
        if args.repeats:
            command += ["--repeats", str(args.repeats)]
        print(f"== {name}: {' '.join(command[1:])}", flush=True)
        start = time.perf_counter()
        code = subprocess.call(command)
        print(f"== {name}: exit {code} after {time.perf_counter() - start:.0f} s", flush=True)
        if code != 0:
            failed.append(name)
    summarize(args.output, args.quick)
    if failed:
        print(f"failed: {failed}", file=sys.stderr)
        return 1
    return 0


def summarize(path, quick=False):
    """Writes the 'Targets' section: every target line of this device's sections."""
    harness.setup(0)
    info = harness.machine()
    sections = harness.read_sections(path)
    lines = [
        "Every target of issues 8, 12, 26 and 28, as the latest run of each benchmark on this device "
        "measured it (details in the sections below). The machine is shared with other "
        "engineers' test runs: absolute times are noisy, the ratios are measured inside one "
        "run with the contenders interleaved.",
        "",
    ]
    for name in BENCHMARKS:
        body = sections.get((SECTIONS.get(name, name), info["device_key"]))
        if body is None:
            continue
        heading = next((l[3:] for l in body.splitlines() if l.startswith("## ")), name)
        date = next((l for l in body.splitlines() if l.startswith("- Date:")), "")
        lines.append(f"**{heading}** ({date[2:]})")
        lines.append("")
        lines += [l for l in body.splitlines() if l.startswith("- Target")] or ["- (no target)"]
        lines.append("")
    if quick:
        lines.insert(0, "_Smoke run (`--quick`): tiny settings, the numbers mean nothing._\n")
    harness.write_section(path, "summary", "Targets", "\n".join(lines), info, position="top")


if __name__ == "__main__":
    sys.exit(main())
