"""CIFAR-100 superclass with VGG16-BN: the paper's 20-task experiment.

CIFAR-100 in 20 tasks, one per superclass, each with its 5 fine classes (task-incremental),
VGG16 with batch normalization (13 3x3 convolutions, task-specific batch-norm statistics and
affines). Per task: the 2,500 training images of the superclass, 10 % of them held out for
validation, and its 500 test images. tensorflow-datasets reads CIFAR-100 from `--data-dir` and
downloads it there the first time (about 160 MB).

    python recipes/cifar100_superclass_vgg16.py --seeds 0,1,2 --out runs/cifar100_superclass
    python recipes/cifar100_superclass_vgg16.py --smoke           # a few steps on tiny data
    keras-grown report runs/cifar100_superclass                   # the tables and plots again

It writes `results.json`, `RESULTS.md` (tables in the form of the paper's Tables 1 and 3) and
PNG plots to `--out`; `--resume` skips the (method, seed) pairs already there. A GPU is
advised: a capacity-2 VGG16 pool is slow on a CPU.
"""

import argparse
import tempfile

import tensorflow as tf

from keras_grown import bench

# ---------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------

STREAM = "cifar100_superclass"
STREAM_KWARGS = dict(val_fraction=0.1)  # all 2,500 training and 500 test images per task
METHODS = "scratch,finetune_copies,finetune,ewc,piggyback,packnet,grow_only,grown"
MODEL = dict(backbone="vgg16_bn", seed_ratio=0.5, capacity=2.0, l0_lambda=0.1, learning_rate=1e-3)
EPOCHS = 30  # per stage (our choice)
BATCH_SIZE = 128
TARGET = "scratch"  # the paper's target: a full-size network trained from scratch on the task
SEEDS = "0,1,2"
OUT = "runs/cifar100_superclass_vgg16"
# XLA when a GPU is present.
JIT_COMPILE = bool(tf.config.list_physical_devices("GPU"))

# --smoke: the first 2 tasks, a few images each, 1 epoch, GROWN only, run eagerly (a few eager
# steps cost far less than tracing VGG16's training graph), a capacity of 1 (the capacity-2
# pool costs seconds per eager step on a CPU), into a new temporary folder.
SMOKE_STREAM_KWARGS = dict(train_per_task=20, val_fraction=0.2, test_per_task=10)
SMOKE_MODEL = dict(MODEL, capacity=1.0)
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
            out=args.out or tempfile.mkdtemp(prefix="cifar100_superclass_vgg16-smoke-"),
            method_kwargs=dict(SMOKE_MODEL, jit_compile=False),
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
