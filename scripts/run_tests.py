"""Runs the test suite one file per process, a few processes at a time.

TensorFlow does not give back all the memory a trained Keras model used
(measured: a plain Keras model of 15M weights keeps about 190 MB per
fit() after it is deleted, `clear_session()` and `gc.collect()`), so a
long-lived pytest worker that trains hundreds of models grows until the
machine swaps. One process per test file bounds that (a few short files
that train little share one); files run in
parallel (longest first) to use the cores.

    python scripts/run_tests.py [-j 2] [pytest arguments ...] [test files or folders]

Every argument that is not a test file or folder is passed to each pytest
run (for example `-m "not slow"`). Prints one line per file and the
output of every failing file; exits non-zero if any file fails.
"""

import argparse
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

# Files (and the shared process below, named SHARED) in the order of their
# measured time, longest first: a worker takes the next one as soon as it is
# free, so the pool ends evenly (longest-processing-time-first). Measured
# 2026-12-07 on 2 busy cores (a benchmark beside the suite), one run: test_model
# ~400 s, test_learning ~370 s, the shared process ~310 s, test_schedule ~220 s,
# test_export 180 s, test_transactions 160 s, test_methods and test_wsn ~150 s,
# test_docs 140 s, test_checkpoint and test_recipes ~110 s, the rest less (a
# file's time moves by up to a third between runs). test_docs.py was not
# listed and ran last, after every other file had finished; test_mixed_precision.py
# (two short fits) is placed among the short files, not yet measured.
SHARED = "(shared process)"
LONGEST_FIRST = (
    "test_model.py",
    "test_learning.py",
    SHARED,
    "test_schedule.py",
    "test_export.py",
    "test_transactions.py",
    "test_methods.py",
    "test_wsn.py",
    "test_docs.py",
    "test_checkpoint.py",
    "test_recipes.py",
    "test_bad_inputs.py",
    "test_tuning.py",
    "test_bench.py",
    "test_benchmarks.py",
    "test_xla_distribute.py",
    "test_mixed_precision.py",
    "test_graph.py",
)

# Short files that train little share one process (each process pays about
# 6 s importing TensorFlow); they run together, at SHARED's place above.
SHARED_PROCESS = (
    "test_compact_training.py",
    "test_datasets.py",
    "test_callbacks.py",
    "test_semantics.py",
    "test_masks.py",
    "test_layers.py",
    "test_evaluation.py",
    "test_layout.py",
    "test_loss_scaling.py",
    "test_mode.py",
)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-j", "--jobs", type=int, default=2, help="files run at once")
    parser.add_argument("--log-dir", help="also write each file's pytest output there")
    args, rest = parser.parse_known_args(argv)
    targets = [a for a in rest if Path(a).exists()]
    pytest_args = [a for a in rest if not Path(a).exists()]
    files = []
    for target in targets or ["tests"]:
        path = Path(target)
        files += sorted(path.glob("test_*.py")) if path.is_dir() else [path]
    order = {name: i for i, name in enumerate(LONGEST_FIRST)}
    files.sort(key=lambda f: (order.get(f.name, len(order)), f.name))
    shared = [f for f in files if f.name in SHARED_PROCESS]
    groups = [[f] for f in files if f.name not in SHARED_PROCESS]
    if shared:
        groups.append(shared)
    # Longest first, the shared process at its own place (files not listed last).
    groups.sort(key=lambda paths: order.get(
        SHARED if paths[0].name in SHARED_PROCESS else paths[0].name, len(order)
    ))
    started = time.monotonic()

    def run(paths):
        begin = time.monotonic()
        label = str(paths[0]) if len(paths) == 1 else " + ".join(p.name for p in paths)
        completed = subprocess.run(
            [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *pytest_args,
             *map(str, paths)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        seconds = time.monotonic() - begin
        lines = completed.stdout.strip().splitlines()
        summary = lines[-1] if lines else "(no output)"
        # pytest exits 5 when every test of the file was deselected (slow).
        ok = completed.returncode in (0, 5)
        if args.log_dir:
            os.makedirs(args.log_dir, exist_ok=True)
            name = paths[0].name if len(paths) == 1 else "shared-process"
            Path(args.log_dir, name + ".log").write_text(completed.stdout)
        print(f"{'ok  ' if ok else 'FAIL'} {label} ({seconds:.0f} s): {summary}", flush=True)
        return paths, label, ok, completed.stdout

    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        results = list(pool.map(run, groups))
    failed = [(paths, label, output) for paths, label, ok, output in results if not ok]
    for _, label, output in failed:
        print(f"\n===== {label} =====\n{output}")
    minutes = (time.monotonic() - started) / 60
    failed_files = sum(len(paths) for paths, _, _ in failed)
    print(f"\n{len(files) - failed_files} of {len(files)} test files passed in {minutes:.1f} min")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
