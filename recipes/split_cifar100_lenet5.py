"""Split CIFAR-100 with LeNet-5: the paper's 10-task experiment (Table 1).

CIFAR-100's 100 classes in 10 tasks of 10 classes (task-incremental), LeNet-5
(20-50-800-500). Per task: 4,000 training and 1,000 validation images, both carved from the
5,000 training images of the task's classes, and its 1,000 test images. tensorflow-datasets
reads CIFAR-100 from `--data-dir` and downloads it there the first time (about 160 MB).

Every baseline of the paper's Table 1 and the ablation of its Table 5 (`grow`, `grow_sel`,
`grow_sel_lsg`, `grown`) run through the same `learn()` loop with each seed.

    python recipes/split_cifar100_lenet5.py --seeds 0,1,2 --out runs/split_cifar100_lenet5
    python recipes/split_cifar100_lenet5.py --smoke               # a few steps on tiny data
    keras-grown report runs/split_cifar100_lenet5                 # the tables and plots again

It writes `results.json`, `RESULTS.md` (tables in the form of the paper's Tables 1, 3 and 5)
and PNG plots to `--out`; `--resume` skips the (method, seed) pairs already there.
"""

import argparse
import tempfile

import tensorflow as tf

from keras_grown import bench

# ---------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------

STREAM = "split_cifar100"
STREAM_KWARGS = dict(num_tasks=10, train_per_task=4000, val_per_task=1000, test_per_task=1000)
METHODS = (
    "scratch,finetune_copies,finetune,ewc,piggyback,packnet,grow_only,"
    "grow,grow_sel,grow_sel_lsg,grown"
)
MODEL = dict(backbone="lenet5", seed_ratio=0.5, capacity=2.0, l0_lambda=0.1, learning_rate=1e-3)
EPOCHS = 20  # per stage (our choice)
BATCH_SIZE = 64
TARGET = "scratch"  # the paper's target: a full-size network trained from scratch on the task
SEEDS = "0,1,2"
OUT = "runs/split_cifar100_lenet5"
# XLA when a GPU is present.
JIT_COMPILE = bool(tf.config.list_physical_devices("GPU"))

# --smoke: the first 2 tasks, a few images each, 1 epoch, GROWN only, run eagerly (a few eager
# steps cost less than tracing the training graph), into a new temporary folder.
SMOKE_STREAM_KWARGS = dict(num_tasks=10, train_per_task=20, val_per_task=10, test_per_task=10)
SMOKE_METHODS = "grown"
SMOKE_TARGET = None  # one stage per task: no scratch reference, no growth rounds
SMOKE_FIRST_TASKS = 2


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=None, help=f"default {EPOCHS}; smoke: 1")
    parser.add_argument("--seeds", default=None, help=f"default {SEEDS}; smoke: 0")
    parser.add_argument("--methods", default=None, help=f"default {METHODS}")
    parser.add_argument("--out", default=None, help=f"default {OUT}; smoke: a temporary folder")
    parser.add_argument("--data-dir", default=None, help="tensorflow-datasets' data folder")
    parser.add_argument("--smoke", action="store_true", help="a few steps on tiny data")
    parser.add_argument("--resume", action="store_true", help="skip finished (method, seed) pairs")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    run = dict(
        stream_kwargs=dict(STREAM_KWARGS, data_dir=args.data_dir),
        methods=args.methods or METHODS,
        seeds=args.seeds or SEEDS,
        epochs=args.epochs or EPOCHS,
        out=args.out or OUT,
        method_kwargs=dict(MODEL, jit_compile=JIT_COMPILE),
        first_tasks=None,
        target=TARGET,
    )
    if args.smoke:
        run.update(
            stream_kwargs=dict(SMOKE_STREAM_KWARGS, data_dir=args.data_dir),
            methods=args.methods or SMOKE_METHODS,
            seeds=args.seeds or "0",
            epochs=args.epochs or 1,
            out=args.out or tempfile.mkdtemp(prefix="split_cifar100_lenet5-smoke-"),
            method_kwargs=dict(MODEL, jit_compile=False),
            first_tasks=SMOKE_FIRST_TASKS,
            target=SMOKE_TARGET,
        )
    eager = tf.config.functions_run_eagerly()
    tf.config.run_functions_eagerly(args.smoke or eager)
    try:
        results = bench.bench(STREAM, batch_size=BATCH_SIZE, resume=args.resume, **run)
    finally:
        tf.config.run_functions_eagerly(eager)
    print(bench.summary(results))
    print(f"Tables and plots: {run['out']}/{bench.REPORT_FILE}")
    return results


if __name__ == "__main__":
    main()
