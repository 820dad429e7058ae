"""Runs the test suite one file per process, a few processes at a time.

TensorFlow does not give back all the memory a trained Keras model used
(measured: a plain Keras model of 15M weights keeps about 190 MB per
fit() after it is deleted, `clear_session()` and `gc.collect()`), so a
long-lived pytest worker that trains hundreds of models grows until the
machine swaps. One process per test file (or per small group of files,
`SHARED_PROCESSES`, that pay TensorFlow's import once) bounds that;
processes run in parallel (longest first) to use the cores.

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

# Processes, in the order of their measured time, longest first: a worker
# takes the next one as soon as it is free, so the pool ends evenly
# (longest-processing-time-first). A file of its own is named by its file
# name, a shared process (SHARED_PROCESSES below) by its label. Idle host, per
# file, before the files were grouped: test_model 164 s, the ten short files
# 154 s, test_learning 147 s, test_schedule 121 s, test_bench 90 s,
# test_methods 89 s, test_export 86 s, test_docs 82 s, test_transactions 79 s,
# test_bad_inputs 62 s, test_recipes 59 s, test_wsn 58 s, test_tuning 48 s,
# test_benchmarks 44 s, test_checkpoint 43 s, test_mixed_precision 27 s,
# test_xla_distribute 16 s, test_graph 9 s. A file's time moves by up to a
# third between runs.
SHARED = "(shared process)"
SHARED_2 = "(second shared process)"
SHARED_3 = "(bench and methods)"
LONGEST_FIRST = (
    SHARED_3,
    SHARED,
    SHARED_2,
    "test_model.py",
    "test_learning.py",
    "test_schedule.py",
    "test_export.py",
    "test_transactions.py",
    "test_docs.py",
    "test_bad_inputs.py",
    "test_recipes.py",
    "test_wsn.py",
)

# Files that share a process, each process at its label's place above: every
# process pays about 7 s importing TensorFlow (and loads the session's
# Fashion-MNIST stream once), so files that do not need a process of their own
# share one. Each test frees its models (tests/conftest.py); a process of a
# few files stays far below the memory of the machine. None of these files
# needs a fresh TensorFlow: the tf.distribute and multi-worker tests start
# their own processes, the mixed-precision fixture puts the global policy
# back, the recipes' smoke runs undo their eager mode.
SHARED_PROCESSES = (
    # Short files that train little (about 154 s together).
    (SHARED, (
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
    )),
    # Six more files of under 50 s each (about 190 s together).
    (SHARED_2, (
        "test_tuning.py",
        "test_benchmarks.py",
        "test_checkpoint.py",
        "test_mixed_precision.py",
        "test_xla_distribute.py",
        "test_graph.py",
    )),
    # Two files of a minute and a half each. Not every pair gains: merged,
    # test_bad_inputs + test_transactions took 163 s where they take 67 + 73 s
    # apart (idle host, 2026-12-07), and test_recipes + test_wsn 153 s against
    # 59 + 58 s; they keep processes of their own.
    (SHARED_3, ("test_bench.py", "test_methods.py")),
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
    shared_of = {name: label for label, names in SHARED_PROCESSES for name in names}
    groups = [[f] for f in files if f.name not in shared_of]
    for label, names in SHARED_PROCESSES:
        shared = [f for f in files if f.name in names]
        if shared:
            groups.append(shared)
    # Longest first, each shared process at its own place (files not listed last).
    groups.sort(key=lambda paths: order.get(shared_of.get(paths[0].name, paths[0].name),
                                            len(order)))
    started = time.monotonic()
    # TensorFlow sizes its thread pools by the cores; with `jobs` processes
    # at once that oversubscribes them. One share each (unless the caller set
    # them): a pair of files ran in 82 s instead of 90 s on 2 cores.
    threads = str(max(1, (os.cpu_count() or 1) // max(1, args.jobs)))
    env = dict(os.environ)
    env.setdefault("TF_NUM_INTRAOP_THREADS", threads)
    env.setdefault("TF_NUM_INTEROP_THREADS", threads)

    def run(paths):
        begin = time.monotonic()
        label = str(paths[0]) if len(paths) == 1 else " + ".join(p.name for p in paths)
        completed = subprocess.run(
            [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *pytest_args,
             *map(str, paths)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
        )
        seconds = time.monotonic() - begin
        lines = completed.stdout.strip().splitlines()
        summary = lines[-1] if lines else "(no output)"
        # pytest exits 5 when every test of the file was deselected (slow).
        ok = completed.returncode in (0, 5)
        if args.log_dir:
            os.makedirs(args.log_dir, exist_ok=True)
            name = paths[0].name if len(paths) == 1 else f"shared-{paths[0].stem}"
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
