"""Benchmark 2: a whole stream, GROWN against what a user would train with plain Keras.

Split Fashion-MNIST (5 tasks of 2 classes), LeNet-5, the same data, epochs and
batch size for every contender. The yardsticks are plain Keras loops, written
the way a user would write them:

* **plain Fine-tune**: one full-size LeNet-5 (`Conv2D`/`Dense`) shared by
  every task, a new softmax head per task, `compile()` + `fit()` per task,
  then every task seen so far evaluated (it forgets; it is the cheapest
  thing a user can do);
* **plain Scratch**: a new full-size LeNet-5 per task, `fit()`, evaluate.

Against them, every one through `kg.learn()` on the same engine:

* **GROWN, target=None**: `GrownModel` with its defaults, one `fit()` per
  task with the growth decided inside it (`GrowWhenNecessary`; the same
  epochs as the plain loops): <= 2.0x plain Scratch (issue 26), <= 1.0x
  plain Fine-tune (issue 12) and <= 1.0x WSN in our engine (issue 28: the
  method a user would pick instead, on the same stream and epochs);
* **GROWN, target="scratch"**: a full-size Scratch reference per task sets
  the target of the same one-fit loop, <= 2.0x plain Scratch (which it
  contains);
* **WSN (our engine)** (`methods.WSN()`, capacity 0.5) and **PackNet (our
  engine)** (which trains each task twice: before and after pruning): no
  target, their ratio against plain Scratch;
* **Fine-tune in our engine** (`methods.FineTune()`): the engine's
  overhead, <= 1.1x plain Fine-tune.

Where the floor is (no target; ratio against plain Scratch): GROWN with no
fixed-mask epochs (`fixed_mask_epochs=0`), and the same with a quarter-width
growth window (`growth_candidates=0.25`), the settings that trade accuracy
for time.

Contenders are interleaved (A B C ..., then reversed); ratios are per round.

    python benchmarks/stream.py                      # 4,000 images per task, 3 epochs
    python benchmarks/stream.py --train-per-task 0   # all 12,000 images per task
"""

import gc
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402

TITLE = "2. Whole stream: GROWN against plain Keras"

GROWN = "GROWN, target=None"
WSN = "WSN (our engine)"
PACKNET = "PackNet (our engine)"
# (contender, the contender its wall time is divided by, the bound).
LIMITS = (
    (GROWN, "plain Scratch", 2.0),
    (GROWN, "plain Fine-tune", 1.0),
    (GROWN, WSN, 1.0),
    ('GROWN, target="scratch"', "plain Scratch", 2.0),
    ("Fine-tune (our engine)", "plain Fine-tune", 1.1),
)
ONE_STAGE = "GROWN, fixed_mask_epochs=0"
SMALL_WINDOW = "GROWN, fixed_mask_epochs=0, growth_candidates=0.25"
# The plain loop each contender's ratio is against in the table.
YARDSTICKS = {
    GROWN: "plain Scratch",
    'GROWN, target="scratch"': "plain Scratch",
    WSN: "plain Scratch",
    PACKNET: "plain Scratch",
    "Fine-tune (our engine)": "plain Fine-tune",
    ONE_STAGE: "plain Scratch",
    SMALL_WINDOW: "plain Scratch",
}


def main(argv=None):
    arguments = harness.parser(__doc__.splitlines()[0], repeats=2, quick_repeats=1)
    arguments.add_argument("--tasks", type=int, default=5)
    arguments.add_argument("--epochs", type=int, default=3)
    arguments.add_argument(
        "--train-per-task", type=int, default=4445,
        help="images taken per task before the 10%% validation split (0: all 12,000)",
    )
    arguments.add_argument("--test-per-task", type=int, default=1000)
    arguments.add_argument("--batch-size", type=int, default=64)
    arguments.add_argument("--capacity", type=float, default=2.0)
    arguments.add_argument("--seed-ratio", type=float, default=0.5)
    arguments.add_argument(
        "--skip", default="",
        help="contenders to leave out, separated by ';' (their names hold commas), e.g. "
        "'GROWN, target=\"scratch\"'",
    )
    args = harness.parse(arguments, argv)
    if args.quick:
        args.tasks, args.train_per_task, args.test_per_task, args.epochs = 2, 64, 20, 1
        # Only GROWN's defaults against the plain loops: the other contenders
        # (a Scratch reference per task, WSN, PackNet, the floor rows) are
        # tested by their own tests and too slow for a smoke run.
        args.skip = ";".join(filter(None, [
            args.skip, 'GROWN, target="scratch"', "Fine-tune (our engine)", WSN, PACKNET,
            ONE_STAGE, SMALL_WINDOW,
        ]))
    tf, keras = harness.setup(args.seed)
    import networks

    import keras_grown as kg
    from keras_grown import methods
    from keras_grown.learning import prepare

    stream = kg.datasets.split_fashion_mnist(
        num_tasks=args.tasks,
        train_per_task=args.train_per_task or None,
        test_per_task=args.test_per_task or None,
        seed=args.seed,
    )
    grown = dict(backbone="lenet5", seed_ratio=args.seed_ratio, capacity=args.capacity)

    def plain_loop(shared):
        """A plain Keras continual loop: returns the average final test accuracy."""
        backbone = networks.plain_network("lenet5", "full", compile=False, head=False)
        models, accuracy = [], {}
        for index, task in enumerate(stream):
            if not shared:
                backbone = networks.plain_network("lenet5", "full", compile=False, head=False)
            model = keras.Sequential(
                [backbone, keras.layers.Dense(task.num_classes, activation="softmax")]
            )
            model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                          metrics=["accuracy"])
            model.fit(
                prepare(task.train, args.batch_size, shuffle=True, seed=args.seed + index),
                validation_data=prepare(task.val, 256), epochs=args.epochs, verbose=0,
            )
            models.append(model)
            for seen in range(index + 1):
                accuracy[seen] = models[seen].evaluate(
                    prepare(stream[seen].test, 256), verbose=0, return_dict=True
                )["accuracy"]
        return sum(accuracy.values()) / len(accuracy), float(shared) or len(stream), None

    class PhaseClock(keras.callbacks.Callback):
        """Wall time inside the fit() calls of a run: the training batches, by phase, and the rest.

        A batch is timed from its start to the next one's, and counts where
        the task stood when it began: masks learned (pick and reuse, growth
        rounds; every batch of a method without masks, PackNet's re-training
        included) or fixed (the last phase of a GROWN task). The first batch of a
        phase holds its trace. Only batch *starts* are hooked: a callback
        with `on_train_batch_end` makes Keras copy the logs to Python after
        every step, which the plain loops do not pay. So the last batch of
        each epoch counts in the rest of the fit() (with the validation).
        """

        def __init__(self):
            super().__init__()
            self.seconds = {"masks learned": 0.0, "masks fixed": 0.0, "rest of fit()": 0.0}
            self.in_fit = 0.0  # every fit() of the run, whole

        def on_train_begin(self, logs=None):
            self.fit_start = time.perf_counter()

        def on_epoch_begin(self, epoch, logs=None):
            self.batch_start = None

        def on_train_batch_begin(self, batch, logs=None):
            now = time.perf_counter()
            if self.batch_start is not None:
                self.seconds["masks fixed" if self.fixed else "masks learned"] += (
                    now - self.batch_start)
            self.fixed = bool(getattr(self.model, "masks_fixed", False))
            self.batch_start = now

        def on_train_end(self, logs=None):
            self.in_fit += time.perf_counter() - self.fit_start
            self.seconds["rest of fit()"] = (
                self.in_fit - self.seconds["masks learned"] - self.seconds["masks fixed"])

    def through_learn(method, target=None):
        clock = PhaseClock()
        result = kg.learn(
            method, stream, epochs=args.epochs, batch_size=args.batch_size,
            seed=args.seed, target=target, callbacks=[clock],
        )
        return result.accuracy.average_accuracy(), result.model_size[-1], clock.seconds

    factories = {
        "plain Fine-tune": lambda: plain_loop(shared=True),
        "plain Scratch": lambda: plain_loop(shared=False),
        GROWN: lambda: through_learn(methods.GROWN(**grown)),
        'GROWN, target="scratch"': lambda: through_learn(methods.GROWN(**grown), "scratch"),
        WSN: lambda: through_learn(methods.get("wsn", backbone="lenet5")),
        PACKNET: lambda: through_learn(methods.get("packnet", backbone="lenet5")),
        "Fine-tune (our engine)": lambda: through_learn(methods.FineTune(backbone="lenet5")),
        ONE_STAGE: lambda: through_learn(methods.GROWN(fixed_mask_epochs=0, **grown)),
        SMALL_WINDOW: lambda: through_learn(
            methods.GROWN(fixed_mask_epochs=0, growth_candidates=0.25, **grown)
        ),
    }
    skip = {name.strip() for name in args.skip.split(";") if name.strip()}
    factories = {k: v for k, v in factories.items() if k not in skip}
    outcomes = {name: [] for name in factories}

    def contender(name):
        def run():
            keras.backend.clear_session()
            gc.collect()
            keras.utils.set_random_seed(args.seed)
            start = time.perf_counter()
            outcome = factories[name]()
            wall = time.perf_counter() - start
            outcomes[name].append(outcome)
            print(f"{name}: {wall:.1f} s, accuracy {outcome[0]:.3f}, size {outcome[1]:.2f}x",
                  flush=True)
            return wall

        return run

    times = harness.interleaved({name: contender(name) for name in factories}, args.repeats)
    rows, stages = [], []
    for name in factories:
        accuracy, size, seconds = outcomes[name][-1]
        if seconds is not None:
            wall = times[name][-1]
            stages.append([
                name, harness.format_seconds(wall),
                *(f"{harness.format_seconds(value)} ({value / wall:.0%})"
                  for value in seconds.values()),
                harness.format_seconds(wall - sum(seconds.values())),
            ])
        reference = YARDSTICKS.get(name)
        rows.append([
            name,
            harness.format_seconds(harness.summarize(times[name])["median"]),
            harness.format_ratio(harness.ratios(times[name], times[reference]))
            if reference in times else "-",
            f"{accuracy:.3f}",
            f"{size:.2f}x",
        ])
    train_count = stream[0].sizes["train"]
    lines = [
        f"Split Fashion-MNIST, {args.tasks} tasks, LeNet-5, {args.epochs} epoch(s) per task, "
        f"{train_count} training images per task ({args.train_per_task or 'all'} taken, 10% "
        f"to validation), {stream[0].sizes['test']} test images per task, batch "
        f"{args.batch_size}, Adam, graph mode (no XLA). Wall time of the whole loop "
        "(train, evaluate every task seen after each task). GROWN: seed_ratio "
        f"{args.seed_ratio}, capacity {args.capacity}, the package defaults otherwise: one "
        "`fit()` of the plain loops' epochs per task, the growth decided inside it "
        "(`GrowWhenNecessary`: pick and reuse, growth while the task underfits, the last "
        "40 % of the epochs under the fixed masks). WSN at capacity 0.5; PackNet trains "
        "each task twice (before and after pruning). The two *fixed_mask_epochs=0* rows "
        "show where the floor is: the settings that trade accuracy for time (no target). "
        f"Contenders interleaved over {args.repeats} round(s); ratio = median "
        "[min-max] of the per-round ratios.",
        "",
        harness.table(
            ["contender", "wall", "/ its plain yardstick", "average accuracy", "model size"],
            rows,
        ),
        "",
        "Where the time of the runs through `kg.learn` goes (last round): the training "
        "batches while the masks learn (pick and reuse, growth rounds; every batch of a "
        "method without GROWN's fixed-mask phase, PackNet's re-training included) and while "
        "they are fixed, the first batch of each phase holding its trace, each batch timed "
        "from its start to the next one's; the rest of "
        "the `fit()` calls (the last batch of each epoch, validation, epoch ends, phase "
        "changes); and everything outside them (Scratch references, `add_task()`, "
        "`finish_task()`, evaluating every task seen).",
        "",
        harness.table(
            ["contender", "wall", "batches, masks learned", "batches, masks fixed",
             "rest of fit()", "outside fit()"],
            stages,
        ),
        "",
    ]
    for name, reference, limit in LIMITS:
        if name in times and reference in times:
            lines.append(harness.verdict(
                f"{name} wall time / {reference} wall time",
                harness.summarize(harness.ratios(times[name], times[reference]))["median"],
                limit,
            ))
    harness.report(args, "stream", TITLE, "\n".join(lines))
    return times


if __name__ == "__main__":
    main()
