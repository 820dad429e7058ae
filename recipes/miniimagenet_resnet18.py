"""MiniImageNet with ResNet-18: the paper's 20-task experiment, from a folder of images.

MiniImageNet's 100 classes in 20 tasks of 5 classes (task-incremental), ResNet-18 (CIFAR
style, every convolution grown, task-specific batch norm), images resized to 84x84. The images
come from a folder you prepare, one folder per task, one folder per class inside it:

    miniimagenet_tasks/
      task_00/n01532829/*.jpg  task_00/n01558993/*.jpg  ... (5 classes)
      task_01/...
      ...
      task_19/...

(for instance the 100 class folders of MiniImageNet in sorted order, 5 per task). Per task,
20 % of the images of each class are held out for testing and 10 % of the rest for
validation (stratified, fixed by the seed); with `--test-subdir test`, each task folder holds
its test images in `test/<class>/` instead.

    python recipes/miniimagenet_resnet18.py --data-dir miniimagenet_tasks --seeds 0,1,2
    python recipes/miniimagenet_resnet18.py --data-dir some_tiny_folder --smoke
    keras-grown report runs/miniimagenet_resnet18                 # the tables and plots again

It writes `results.json`, `RESULTS.md` (tables in the form of the paper's Tables 1 and 3) and
PNG plots to `--out`; `--resume` skips the (method, seed) pairs already there. A GPU is
advised.
"""

import argparse
import tempfile

import tensorflow as tf

from keras_grown import bench
from keras_grown import datasets

# ---------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------

STREAM = datasets.from_directory  # one task per sub-folder of --data-dir
STREAM_KWARGS = dict(image_size=(84, 84), val_fraction=0.1, test_fraction=0.2)
METHODS = "scratch,finetune_copies,finetune,ewc,piggyback,packnet,grow_only,grown"
MODEL = dict(backbone="resnet18", seed_ratio=0.5, capacity=2.0, l0_lambda=0.1, learning_rate=1e-3)
EPOCHS = 30  # per stage (our choice)
BATCH_SIZE = 64
TARGET = "scratch"  # the paper's target: a full-size network trained from scratch on the task
SEEDS = "0,1,2"
OUT = "runs/miniimagenet_resnet18"
# XLA when a GPU is present.
JIT_COMPILE = bool(tf.config.list_physical_devices("GPU"))

# --smoke: the first 2 task folders at 32x32, 1 epoch, GROWN only, run eagerly (a few eager
# steps cost far less than tracing ResNet-18's training graph), a capacity of 1 (the
# capacity-2 pool costs seconds per eager step on a CPU), into a new temporary folder.
SMOKE_STREAM_KWARGS = dict(image_size=(32, 32), val_fraction=0.2, test_fraction=0.2)
SMOKE_MODEL = dict(MODEL, capacity=1.0)
SMOKE_METHODS = "grown"
SMOKE_TARGET = None  # one stage per task: no scratch reference, no growth rounds
SMOKE_FIRST_TASKS = 2


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", required=True, help="the folder of task folders")
    parser.add_argument("--test-subdir", default=None, help="each task's test folder, if any")
    parser.add_argument("--epochs", type=int, default=None, help=f"default {EPOCHS}; smoke: 1")
    parser.add_argument("--seeds", default=None, help=f"default {SEEDS}; smoke: 0")
    parser.add_argument("--methods", default=None, help=f"default {METHODS}")
    parser.add_argument("--out", default=None, help=f"default {OUT}; smoke: a temporary folder")
    parser.add_argument("--smoke", action="store_true", help="a few steps on tiny data")
    parser.add_argument("--resume", action="store_true", help="skip finished (method, seed) pairs")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    folder = dict(path=args.data_dir, test_subdir=args.test_subdir)
    run = dict(
        stream_kwargs=dict(STREAM_KWARGS, **folder),
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
            stream_kwargs=dict(SMOKE_STREAM_KWARGS, **folder),
            methods=args.methods or SMOKE_METHODS,
            seeds=args.seeds or "0",
            epochs=args.epochs or 1,
            out=args.out or tempfile.mkdtemp(prefix="miniimagenet_resnet18-smoke-"),
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
