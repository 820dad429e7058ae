"""Runs the test suite one file per process, a few processes at a time.

TensorFlow does not give back all the memory a trained Keras model used
(measured: a plain Keras model of 15M weights keeps about 190 MB per
fit() after it is deleted, `clear_session()` and `gc.collect()`), so a
long-lived pytest worker that trains hundreds of models grows until the
machine swaps. One process per test file bounds that; files run in
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

# Files known to take longest go first, so the pool ends evenly.
LONGEST_FIRST = (
    "test_model.py",
    "test_methods.py",
    "test_checkpoint.py",
    "test_bad_inputs.py",
    "test_learning.py",
    "test_benchmarks.py",
    "test_export.py",
    "test_bench.py",
    "test_tuning.py",
    "test_recipes.py",
    "test_callbacks.py",
    "test_xla_distribute.py",
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
    started = time.monotonic()

    def run(path):
        begin = time.monotonic()
        completed = subprocess.run(
            [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *pytest_args,
             str(path)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        seconds = time.monotonic() - begin
        lines = completed.stdout.strip().splitlines()
        summary = lines[-1] if lines else "(no output)"
        # pytest exits 5 when every test of the file was deselected (slow).
        ok = completed.returncode in (0, 5)
        if args.log_dir:
            os.makedirs(args.log_dir, exist_ok=True)
            Path(args.log_dir, path.name + ".log").write_text(completed.stdout)
        print(f"{'ok  ' if ok else 'FAIL'} {path} ({seconds:.0f} s): {summary}", flush=True)
        return path, ok, completed.stdout

    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        results = list(pool.map(run, files))
    failed = [(path, output) for path, ok, output in results if not ok]
    for path, output in failed:
        print(f"\n===== {path} =====\n{output}")
    minutes = (time.monotonic() - started) / 60
    print(f"\n{len(files) - len(failed)} of {len(files)} test files passed in {minutes:.1f} min")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
