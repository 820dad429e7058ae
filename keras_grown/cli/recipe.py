"""The runner of the scripts in `recipes/`: their flags, the `--smoke` switch and one `bench()`.

A recipe is its settings, a `Recipe`, and nothing else: this module owns
what every recipe does with them. `Recipe.main(argv)` reads the flags

* `--epochs`, `--seeds`, `--methods`, `--out`: replace the recipe's own;
* `--resume`: skip the (method, seed) pairs already in `--out`;
* `--smoke`: a few steps on tiny data: the recipe's `smoke_stream_kwargs`,
  the first `SMOKE_FIRST_TASKS` tasks, `SMOKE_EPOCHS` epoch, the methods
  `SMOKE_METHODS`, seed `SMOKE_SEEDS`, no target (one stage per task), no
  XLA, run eagerly (a few eager steps cost less than tracing the training
  graph), into a new temporary folder;
* the recipe's `stream_flags` (e.g. `--data-dir`), whose values go to the
  stream function,

then runs `keras_grown.bench.bench()` and prints the Table 1 of its report.

Example (a recipe, whole):

```python
from keras_grown.cli.recipe import Recipe

RECIPE = Recipe(
    __doc__,
    stream="split_fashion_mnist",
    stream_kwargs=dict(num_tasks=5),
    methods="finetune,grown",
    model=dict(backbone="lenet5"),
    epochs=5,
    out="runs/fashion",
    smoke_stream_kwargs=dict(num_tasks=5, train_per_task=40, test_per_task=16),
)

if __name__ == "__main__":
    RECIPE.main()
```
"""

import argparse
import dataclasses
import os
import tempfile

import tensorflow as tf

from keras_grown import bench as bench_lib

# What `--smoke` runs, in every recipe.
SMOKE_METHODS = "grown"
SMOKE_SEEDS = "0"
SMOKE_EPOCHS = 1
SMOKE_FIRST_TASKS = 2
SMOKE_TARGET = None  # one stage per task: no scratch reference, no growth rounds


@dataclasses.dataclass(frozen=True)
class StreamFlag:
    """A recipe flag whose value goes to the stream function: `--data-dir DIR` -> `data_dir=DIR`.

    Args:
        flag: the flag, e.g. `"--data-dir"`.
        argument: the stream function's argument it sets, e.g. `"data_dir"`
            (`"path"` for `keras_grown.datasets.from_directory`).
        help: the flag's help text.
        required: whether the recipe cannot run without it.
    """

    flag: str
    argument: str
    help: str
    required: bool = False


@dataclasses.dataclass(frozen=True)
class Recipe:
    """The settings of one recipe: what `keras_grown.bench.bench()` runs, and its smoke run.

    Args:
        description: the recipe's docstring; its first paragraph is the
            `--help` description.
        stream: a stream name of `keras_grown.datasets.list_streams()`, or a
            stream function such as `keras_grown.datasets.from_directory`.
        stream_kwargs: the stream function's arguments.
        methods: the methods, comma-separated, in the order they run.
        model: the arguments every method gets (`backbone`, `seed_ratio`, ...).
        epochs: epochs per stage.
        out: the results folder.
        smoke_stream_kwargs: the stream function's arguments under `--smoke`.
        batch_size: training batch size (64).
        target: `learn()`'s target: `"scratch"` (the default, the paper's: a
            full-size network trained from scratch on the task), a number or None.
        seeds: the seeds, comma-separated (`"0,1,2"`).
        jit_compile: compile with XLA (never under `--smoke`).
        smoke_model: the methods' arguments under `--smoke` (default: `model`).
        stream_flags: `StreamFlag`s: flags whose values go to the stream function.
    """

    description: str
    stream: object
    stream_kwargs: dict
    methods: str
    model: dict
    epochs: int
    out: str
    smoke_stream_kwargs: dict
    batch_size: int = 64
    target: object = "scratch"
    seeds: str = "0,1,2"
    jit_compile: bool = False
    smoke_model: dict = None
    stream_flags: tuple = ()

    def parse_args(self, argv=None):
        """The recipe's flags, read from `argv` (default: `sys.argv[1:]`)."""
        parser = argparse.ArgumentParser(description=self.description.split("\n\n")[0])
        for flag in self.stream_flags:
            parser.add_argument(flag.flag, required=flag.required, default=None, help=flag.help)
        parser.add_argument(
            "--epochs", type=int, default=None, help=f"default {self.epochs}; smoke: {SMOKE_EPOCHS}"
        )
        parser.add_argument(
            "--seeds", default=None, help=f"default {self.seeds}; smoke: {SMOKE_SEEDS}"
        )
        parser.add_argument("--methods", default=None, help=f"default {self.methods}")
        parser.add_argument(
            "--out", default=None, help=f"default {self.out}; smoke: a temporary folder"
        )
        parser.add_argument("--smoke", action="store_true", help="a few steps on tiny data")
        parser.add_argument(
            "--resume", action="store_true", help="skip finished (method, seed) pairs"
        )
        return parser.parse_args(argv)

    def bench_arguments(self, args):
        """The arguments of `bench()` for the flags `args` (without `resume`)."""
        from_flags = {
            flag.argument: getattr(args, flag.flag.lstrip("-").replace("-", "_"))
            for flag in self.stream_flags
        }
        if not args.smoke:
            return dict(
                stream=self.stream,
                stream_kwargs=dict(self.stream_kwargs, **from_flags),
                methods=args.methods or self.methods,
                seeds=args.seeds or self.seeds,
                epochs=args.epochs or self.epochs,
                out=args.out or self.out,
                method_kwargs=dict(self.model, jit_compile=self.jit_compile),
                first_tasks=None,
                target=self.target,
                batch_size=self.batch_size,
            )
        prefix = f"{os.path.basename(os.path.normpath(self.out))}-smoke-"
        return dict(
            stream=self.stream,
            stream_kwargs=dict(self.smoke_stream_kwargs, **from_flags),
            methods=args.methods or SMOKE_METHODS,
            seeds=args.seeds or SMOKE_SEEDS,
            epochs=args.epochs or SMOKE_EPOCHS,
            out=args.out or tempfile.mkdtemp(prefix=prefix),
            method_kwargs=dict(self.smoke_model or self.model, jit_compile=False),
            first_tasks=SMOKE_FIRST_TASKS,
            target=SMOKE_TARGET,
            batch_size=self.batch_size,
        )

    def main(self, argv=None):
        """Runs the recipe with the flags in `argv`; returns `bench()`'s results."""
        args = self.parse_args(argv)
        run = self.bench_arguments(args)
        eager = tf.config.functions_run_eagerly()
        tf.config.run_functions_eagerly(args.smoke or eager)
        try:
            results = bench_lib.bench(resume=args.resume, **run)
        finally:
            tf.config.run_functions_eagerly(eager)
        print(bench_lib.summary(results))
        print(f"Tables and plots: {run['out']}/{bench_lib.REPORT_FILE}")
        return results


__all__ = ["Recipe", "StreamFlag"]
