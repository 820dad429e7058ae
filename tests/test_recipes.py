"""The recipes' --smoke runs, end to end, in this process (so that tfds' mock data applies).

Split Fashion-MNIST reads the real data; CIFAR-100 comes from `tfds.testing.mock_data` (no
CIFAR-100 files exist on these machines); MiniImageNet from a generated folder of images.
"""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from keras_grown import datasets

# Smoke runs are eager; tf.data says its own functions stay traced.
pytestmark = pytest.mark.filterwarnings("ignore:Even though the `tf.config.experimental_run")

RECIPES = Path(__file__).resolve().parent.parent / "recipes"
NAMES = (
    "split_fashion_mnist_lenet5",
    "split_cifar100_lenet5",
    "cifar100_superclass_vgg16",
    "miniimagenet_resnet18",
)


def load_recipe(name):
    spec = importlib.util.spec_from_file_location(f"recipe_{name}", RECIPES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def check_smoke_output(out, results, backbone, task_names=None):
    """One GROWN run with seed 0 on 2 tasks, 1 epoch; results.json, RESULTS.md and plots."""
    assert json.loads((out / "results.json").read_text()) == json.loads(json.dumps(results))
    assert [(run["method"], run["seed"]) for run in results["runs"]] == [("grown", 0)]
    assert results["num_tasks"] == 2 and results["settings"]["epochs"] == 1
    run = results["runs"][0]
    assert run["config"]["backbone"] == backbone and run["config"]["jit_compile"] is False
    # 2 tasks x one fit() of 1 epoch (too short for the growth schedule to
    # change phase: no fixed-mask epoch in a one-epoch fit).
    assert len(run["model_size"]) == 2 and run["epochs_trained"] == 2
    assert results["settings"]["target"] is None  # smoke: one learning stage per task
    if task_names is not None:
        assert results["task_names"] == task_names
    assert "| GROWN | " in (out / "RESULTS.md").read_text()
    for name in ("average_accuracy.png", "model_size.png", "accuracy_grown.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not tf.config.functions_run_eagerly()  # the smoke run's eager mode is undone


@pytest.mark.parametrize("name", NAMES)
def test_recipe_takes_epochs_seeds_out_and_smoke(name):
    recipe = load_recipe(name)
    argv = ["--epochs", "3", "--seeds", "0,1", "--out", "somewhere", "--smoke"]
    if name == "miniimagenet_resnet18":
        argv += ["--data-dir", "images"]
    args = recipe.RECIPE.parse_args(argv)
    assert (args.epochs, args.seeds, args.out, args.smoke) == (3, "0,1", "somewhere", True)
    # XLA exactly when a GPU is present.
    assert recipe.RECIPE.jit_compile == bool(tf.config.list_physical_devices("GPU"))
    assert (
        recipe.RECIPE.model["backbone"]
        == {
            "split_fashion_mnist_lenet5": "lenet5",
            "split_cifar100_lenet5": "lenet5",
            "cifar100_superclass_vgg16": "vgg16_bn",
            "miniimagenet_resnet18": "resnet18",
        }[name]
    )


def test_split_cifar100_recipe_is_the_papers_setting():
    recipe = load_recipe("split_cifar100_lenet5")
    assert recipe.RECIPE.stream_kwargs == dict(
        num_tasks=10, train_per_task=4000, val_per_task=1000, test_per_task=1000
    )


def test_split_fashion_mnist_smoke(tmp_path):
    out = tmp_path / "fashion"
    results = load_recipe("split_fashion_mnist_lenet5").RECIPE.main(["--smoke", "--out", str(out)])
    check_smoke_output(out, results, "lenet5", ["task_0", "task_1"])
    assert results["stream"] == "split_fashion_mnist"


def test_split_cifar100_smoke_on_mock_data(tmp_path):
    import tensorflow_datasets as tfds

    out = tmp_path / "cifar"
    with tfds.testing.mock_data(num_examples=1000, policy=tfds.testing.MockPolicy.USE_CODE):
        results = load_recipe("split_cifar100_lenet5").RECIPE.main(
            ["--smoke", "--out", str(out), "--data-dir", str(tmp_path / "tfds")]
        )
    check_smoke_output(out, results, "lenet5")
    assert results["stream"] == "split_cifar100"
    assert results["stream_kwargs"]["num_tasks"] == 10  # 10-class tasks, the first 2 learned


def consistent_cifar100(per_class):
    """A mock `_as_dataset`: `per_class[split]` images of every fine class, with the coarse
    label CIFAR-100 gives it (tfds' default mock draws the two labels independently)."""
    fine_to_coarse = np.asarray(datasets.CIFAR100_FINE_TO_COARSE)

    def as_dataset(self, split, decoders=None, read_config=None, shuffle_files=False, **kwargs):
        name = "train" if "train" in str(split) else "test"
        fine = np.tile(np.arange(100), per_class[name])
        rng = np.random.default_rng(len(name))
        return tf.data.Dataset.from_tensor_slices(
            dict(
                id=np.asarray([f"{name}_{k}" for k in range(len(fine))]),
                image=rng.integers(0, 256, size=(len(fine), 32, 32, 3), dtype=np.uint8),
                label=fine.astype(np.int64),
                coarse_label=fine_to_coarse[fine].astype(np.int64),
            )
        )

    return as_dataset


def test_cifar100_superclass_smoke_on_mock_data(tmp_path):
    import tensorflow_datasets as tfds

    out = tmp_path / "superclass"
    mock = consistent_cifar100({"train": 4, "test": 2})  # 20 and 10 images a superclass
    with tfds.testing.mock_data(as_dataset_fn=mock, policy=tfds.testing.MockPolicy.USE_CODE):
        results = load_recipe("cifar100_superclass_vgg16").RECIPE.main(
            ["--smoke", "--out", str(out), "--data-dir", str(tmp_path / "tfds")]
        )
    check_smoke_output(out, results, "vgg16_bn", ["aquatic_mammals", "fish"])


def write_image_folder(root, tasks=3, classes=2, per_class=8, size=(20, 24)):
    """Random colour PNGs: root/task_<t>/class_<c>/img_<k>.png."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for t in range(tasks):
        for c in range(classes):
            folder = root / f"task_{t:02d}" / f"class_{c}"
            folder.mkdir(parents=True)
            for k in range(per_class):
                pixels = rng.integers(0, 256, size=(*size, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"img_{k}.png")


def test_miniimagenet_smoke_on_a_generated_folder(tmp_path):
    images, out = tmp_path / "miniimagenet", tmp_path / "mini"
    write_image_folder(images)
    results = load_recipe("miniimagenet_resnet18").RECIPE.main(
        ["--smoke", "--out", str(out), "--data-dir", str(images)]
    )
    check_smoke_output(out, results, "resnet18", ["task_00", "task_01"])  # 2 of the 3 folders
    assert results["stream"] == "from_directory"
    assert results["stream_kwargs"]["path"] == str(images)
    assert results["stream_kwargs"]["image_size"] == [32, 32]
