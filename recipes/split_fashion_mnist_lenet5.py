"""Split Fashion-MNIST with LeNet-5: GROWN beside every baseline, on real data.

    python recipes/split_fashion_mnist_lenet5.py --seeds 0,1,2 --out runs/split_fashion_mnist
    python recipes/split_fashion_mnist_lenet5.py --smoke          # a few steps on tiny data
    keras-grown report runs/split_fashion_mnist                   # the tables and plots again

It writes `results.json`, `RESULTS.md` (tables in the form of the paper's Tables 1, 3 and 5)
and PNG plots to `--out`; `--resume` skips the (method, seed) pairs already there.

Fashion-MNIST's 10 classes in 5 tasks of 2 classes (task-incremental: each task has its own
head and the task id is known at test time), LeNet-5 (20-50-800-500). All 12,000 training
images of each task's classes, 10 % of them held out for validation, and the 2,000 test images.
The data is read from the files already on the machine (`make data`); nothing downloads.

Every method of `keras_grown.methods` runs through the same `learn()` loop with each seed,
including the ablation of the paper's Table 5 (`grow`, `grow_sel`, `grow_sel_lsg`, `grown`).
"""

import tensorflow as tf

from keras_grown.cli.recipe import Recipe

# ---------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------

MODEL = dict(backbone="lenet5", seed_ratio=0.5, capacity=2.0, l0_lambda=0.1, learning_rate=1e-3)

# Seeds 0,1,2, batch size 64 and the paper's target ("scratch": a full-size network trained
# from scratch on each task) are the runner's defaults, shared by every recipe.
RECIPE = Recipe(
    __doc__,
    stream="split_fashion_mnist",
    stream_kwargs=dict(num_tasks=5, val_fraction=0.1),
    methods="scratch,finetune,finetune_copies,ewc,piggyback,packnet,grow_only,"
    "grow,grow_sel,grow_sel_lsg,grown",
    model=MODEL,
    epochs=5,  # per stage
    out="runs/split_fashion_mnist_lenet5",
    jit_compile=bool(tf.config.list_physical_devices("GPU")),  # XLA when a GPU is present
    # --smoke: the first 2 tasks, a few images each, 1 epoch, GROWN only, run eagerly (a few
    # eager steps cost less than tracing the training graph), into a new temporary folder.
    smoke_stream_kwargs=dict(num_tasks=5, train_per_task=40, val_fraction=0.2, test_per_task=16),
)

# The flags, what --smoke runs and the run itself: keras_grown.cli.recipe.
if __name__ == "__main__":
    RECIPE.main()
