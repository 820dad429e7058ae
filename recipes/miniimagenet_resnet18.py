"""MiniImageNet with ResNet-18: the paper's 20-task experiment, from a folder of images.

    python recipes/miniimagenet_resnet18.py --data-dir miniimagenet_tasks --seeds 0,1,2
    python recipes/miniimagenet_resnet18.py --data-dir some_tiny_folder --smoke
    keras-grown report runs/miniimagenet_resnet18                 # the tables and plots again

It writes `results.json`, `RESULTS.md` (tables in the form of the paper's Tables 1 and 3) and
PNG plots to `--out`; `--resume` skips the (method, seed) pairs already there. A GPU is
advised.

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
"""

import tensorflow as tf

from keras_grown import datasets
from keras_grown.cli.recipe import Recipe, StreamFlag

# ---------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------

MODEL = dict(backbone="resnet18", seed_ratio=0.5, capacity=2.0, l0_lambda=0.1, learning_rate=1e-3)

# Seeds 0,1,2, batch size 64 and the paper's target ("scratch": a full-size network trained
# from scratch on each task) are the runner's defaults, shared by every recipe.
RECIPE = Recipe(
    __doc__,
    stream=datasets.from_directory,  # one task per sub-folder of --data-dir
    stream_kwargs=dict(image_size=(84, 84), val_fraction=0.1, test_fraction=0.2),
    stream_flags=[
        StreamFlag("--data-dir", "path", "the folder of task folders", required=True),
        StreamFlag("--test-subdir", "test_subdir", "each task's test folder, if any"),
    ],
    methods="scratch,finetune_copies,finetune,ewc,piggyback,packnet,grow_only,grown",
    model=MODEL,
    epochs=30,  # per stage (our choice)
    out="runs/miniimagenet_resnet18",
    jit_compile=bool(tf.config.list_physical_devices("GPU")),  # XLA when a GPU is present
    # --smoke: the first 2 task folders at 32x32, 1 epoch, GROWN only, run eagerly (a few eager
    # steps cost far less than tracing ResNet-18's training graph), a capacity of 1 (the
    # capacity-2 pool costs seconds per eager step on a CPU), into a new temporary folder.
    smoke_stream_kwargs=dict(image_size=(32, 32), val_fraction=0.2, test_fraction=0.2),
    smoke_model=dict(MODEL, capacity=1.0),
)

# The flags, what --smoke runs and the run itself: keras_grown.cli.recipe.
if __name__ == "__main__":
    RECIPE.main()
