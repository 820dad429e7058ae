"""Benchmark 2: a whole stream, GROWN against Fine-tune and Scratch, in wall time.

Split Fashion-MNIST (5 tasks of 2 classes), LeNet-5, the same epochs per task
for every method, run through the same `keras_grown.learn()` loop (training,
finishing the task, evaluating every task seen so far). GROWN runs with
`target=None` (one stage per task with growth on: no extra growth rounds, so
every method trains the same number of epochs). The methods are interleaved
(A B C D, D C B A, ...); ratios are per round.

    python benchmarks/stream.py                         # 1 epoch, 2,000 images per task
    python benchmarks/stream.py --train-per-task 0      # all 12,000 images per task
"""

import gc
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402

TITLE = "2. Whole stream: GROWN vs Fine-tune and Scratch"


def main(argv=None):
    arguments = harness.parser(__doc__.splitlines()[0], repeats=2, quick_repeats=1)
    arguments.add_argument("--tasks", type=int, default=5)
    arguments.add_argument("--epochs", type=int, default=1)
    arguments.add_argument(
        "--train-per-task",
        type=int,
        default=2000,
        help="images taken per task before the 10%% validation split (0: all 12,000)",
    )
    arguments.add_argument("--test-per-task", type=int, default=1000)
    arguments.add_argument("--batch-size", type=int, default=64)
    arguments.add_argument("--capacity", type=float, default=2.0)
    arguments.add_argument("--seed-ratio", type=float, default=0.5)
    args = harness.parse(arguments, argv)
    if args.quick:
        args.tasks, args.train_per_task, args.test_per_task = 1, 64, 20
    tf, keras = harness.setup(args.seed)
    import keras_grown as kg
    from keras_grown import methods

    stream = kg.datasets.split_fashion_mnist(
        num_tasks=args.tasks,
        train_per_task=args.train_per_task or None,
        test_per_task=args.test_per_task or None,
        seed=args.seed,
    )
    grown_settings = dict(backbone="lenet5", seed_ratio=args.seed_ratio, capacity=args.capacity)
    factories = {
        "GROWN": lambda: methods.GROWN(**grown_settings),
        "Fine-tune": lambda: methods.FineTune(backbone="lenet5"),
        "Fine-tune (copies)": lambda: methods.FineTune(keep_copies=True, backbone="lenet5"),
        "Scratch": lambda: methods.Scratch(backbone="lenet5"),
    }
    outcomes = {name: [] for name in factories}

    def contender(name):
        def run():
            keras.backend.clear_session()
            gc.collect()
            keras.utils.set_random_seed(args.seed)
            start = time.perf_counter()
            result = kg.learn(
                factories[name](),
                stream,
                epochs=args.epochs,
                batch_size=args.batch_size,
                seed=args.seed,
            )
            wall = time.perf_counter() - start
            outcomes[name].append((wall, result))
            print(f"{name}: {wall:.1f} s", flush=True)
            return wall

        return run

    times = harness.interleaved({name: contender(name) for name in factories}, args.repeats)
    rows = []
    for name in factories:
        walls = times[name]
        training = [sum(r.time_per_task) for _, r in outcomes[name]]
        result = outcomes[name][-1][1]
        rows.append(
            [
                name,
                harness.format_seconds(harness.summarize(walls)["median"]),
                harness.format_seconds(harness.summarize(training)["median"]),
                harness.format_ratio(harness.ratios(times["GROWN"], walls)),
                f"{result.accuracy.average_accuracy():.3f}",
                f"{result.model_size[-1]:.2f}x",
            ]
        )
    train_count = stream[0].sizes["train"]
    lines = [
        f"Split Fashion-MNIST, {args.tasks} tasks, LeNet-5, {args.epochs} epoch(s) per task, "
        f"{train_count} training images per task ({args.train_per_task or 'all'} taken, 10% "
        f"to validation), {stream[0].sizes['test']} test images per task, batch "
        f"{args.batch_size}, eager graph (no XLA). One `keras_grown.learn()` call per method "
        "(train, finish, evaluate all tasks seen); GROWN with `target=None` (one stage per "
        f"task, growth on; seed_ratio {args.seed_ratio}, capacity {args.capacity}). Methods "
        f"interleaved over {args.repeats} round(s). *Wall* is the whole `learn()` call; "
        "*training* is the sum of `time_per_task` (train + finish the task, the evaluation "
        "of old tasks left out). The default size keeps a run to a few minutes on a shared "
        "2-core machine; `--train-per-task 0` uses all 12,000 images per task.",
        "",
        harness.table(
            [
                "method",
                "wall",
                "training",
                "GROWN wall / method wall",
                "average accuracy",
                "model size",
            ],
            rows,
        ),
        "",
        harness.verdict(
            "GROWN wall time / Fine-tune (shared, naive) wall time",
            harness.summarize(harness.ratios(times["GROWN"], times["Fine-tune"]))["median"],
            2.0,
        ),
        harness.verdict(
            "GROWN wall time / Fine-tune (copies, the paper's) wall time",
            harness.summarize(harness.ratios(times["GROWN"], times["Fine-tune (copies)"]))[
                "median"
            ],
            2.0,
        ),
    ]
    harness.report(args, "stream", TITLE, "\n".join(lines))
    return times


if __name__ == "__main__":
    main()
