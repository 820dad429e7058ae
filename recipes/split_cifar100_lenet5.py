"""Split CIFAR-100 with LeNet-5: the paper's 10-task experiment (Table 1).

    python recipes/split_cifar100_lenet5.py --seeds 0,1,2 --out runs/split_cifar100_lenet5
    python recipes/split_cifar100_lenet5.py --smoke               # a few steps on tiny data
    keras-grown report runs/split_cifar100_lenet5                 # the tables and plots again

It writes `results.json`, `RESULTS.md` (tables in the form of the paper's Tables 1, 3 and 5)
and PNG plots to `--out`; `--resume` skips the (method, seed) pairs already there.

CIFAR-100's 100 classes in 10 tasks of 10 classes (task-incremental), LeNet-5
(20-50-800-500). Per task: 4,000 training and 1,000 validation images, both carved from the
5,000 training images of the task's classes, and its 1,000 test images. tensorflow-datasets
reads CIFAR-100 from `--data-dir` and downloads it there the first time (about 160 MB).

Every baseline of the paper's Table 1 and the ablation of its Table 5 (`grow`, `grow_sel`,
`grow_sel_lsg`, `grown`) run through the same `learn()` loop with each seed.
"""

import tensorflow as tf

from keras_grown.cli.recipe import Recipe, StreamFlag

# ---------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------

MODEL = dict(backbone="lenet5", seed_ratio=0.5, capacity=2.0, l0_lambda=0.1, learning_rate=1e-3)

# Seeds 0,1,2, batch size 64 and the paper's target ("scratch": a full-size network trained
# from scratch on each task) are the runner's defaults, shared by every recipe.
RECIPE = Recipe(
    __doc__,
    stream="split_cifar100",
    stream_kwargs=dict(num_tasks=10, train_per_task=4000, val_per_task=1000, test_per_task=1000),
    stream_flags=[StreamFlag("--data-dir", "data_dir", "tensorflow-datasets' data folder")],
    methods="scratch,finetune_copies,finetune,ewc,piggyback,packnet,grow_only,"
    "grow,grow_sel,grow_sel_lsg,grown",
    model=MODEL,
    epochs=20,  # per stage (our choice)
    out="runs/split_cifar100_lenet5",
    jit_compile=bool(tf.config.list_physical_devices("GPU")),  # XLA when a GPU is present
    # --smoke: the first 2 tasks, a few images each, 1 epoch, GROWN only, run eagerly (a few
    # eager steps cost less than tracing the training graph), into a new temporary folder.
    smoke_stream_kwargs=dict(num_tasks=10, train_per_task=20, val_per_task=10, test_per_task=10),
)

# The flags, what --smoke runs and the run itself: keras_grown.cli.recipe.
if __name__ == "__main__":
    RECIPE.main()
