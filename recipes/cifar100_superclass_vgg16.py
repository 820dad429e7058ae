"""CIFAR-100 superclass with VGG16-BN: the paper's 20-task experiment.

    python recipes/cifar100_superclass_vgg16.py --seeds 0,1,2 --out runs/cifar100_superclass
    python recipes/cifar100_superclass_vgg16.py --smoke           # a few steps on tiny data
    keras-grown report runs/cifar100_superclass                   # the tables and plots again

It writes `results.json`, `RESULTS.md` (tables in the form of the paper's Tables 1 and 3) and
PNG plots to `--out`; `--resume` skips the (method, seed) pairs already there. A GPU is
advised: a capacity-2 VGG16 pool is slow on a CPU.

CIFAR-100 in 20 tasks, one per superclass, each with its 5 fine classes (task-incremental),
VGG16 with batch normalization (13 3x3 convolutions, task-specific batch-norm statistics and
affines). Per task: the 2,500 training images of the superclass, 10 % of them held out for
validation, and its 500 test images. tensorflow-datasets reads CIFAR-100 from `--data-dir` and
downloads it there the first time (about 160 MB).
"""

import tensorflow as tf

from keras_grown.cli.recipe import Recipe, StreamFlag

# ---------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------

MODEL = dict(backbone="vgg16_bn", seed_ratio=0.5, capacity=2.0, l0_lambda=0.1, learning_rate=1e-3)

# Seeds 0,1,2, batch size 64 and the paper's target ("scratch": a full-size network trained
# from scratch on each task) are the runner's defaults, shared by every recipe.
RECIPE = Recipe(
    __doc__,
    stream="cifar100_superclass",
    stream_kwargs=dict(val_fraction=0.1),  # all 2,500 training and 500 test images per task
    stream_flags=[StreamFlag("--data-dir", "data_dir", "tensorflow-datasets' data folder")],
    methods="scratch,finetune_copies,finetune,ewc,piggyback,packnet,grow_only,grown",
    model=MODEL,
    epochs=30,  # per stage (our choice)
    batch_size=128,
    out="runs/cifar100_superclass_vgg16",
    jit_compile=bool(tf.config.list_physical_devices("GPU")),  # XLA when a GPU is present
    # --smoke: the first 2 tasks, a few images each, 1 epoch, GROWN only, run eagerly (a few
    # eager steps cost far less than tracing VGG16's training graph), a capacity of 1 (the
    # capacity-2 pool costs seconds per eager step on a CPU), into a new temporary folder.
    smoke_stream_kwargs=dict(train_per_task=20, val_fraction=0.2, test_per_task=10),
    smoke_model=dict(MODEL, capacity=1.0),
)

# The flags, what --smoke runs and the run itself: keras_grown.cli.recipe.
if __name__ == "__main__":
    RECIPE.main()
