"""Benchmark 5: time per task and model size as the number of tasks grows.

GROWN (LeNet-5, `target=None`: one stage per task, growth on) learns a stream
of Permuted Fashion-MNIST tasks, each with the same small training set and one
epoch, through `keras_grown.learn()`. Every layer is allocated at its full
capacity from the start (static shapes), so the compute of one step does not
depend on how far the network has grown: the time of task t should stay flat
in t. Anything that grows with t is overhead (more per-task variables to trace
and save, more tasks to evaluate).

One run of `--tasks` tasks (default 20) gives the numbers at every checkpoint
(default 5, 10, 20): the 5- and 10-task streams are the first tasks of the
20-task stream (same seed, same permutations and images).

    python benchmarks/scaling.py
    python benchmarks/scaling.py --tasks 10 --checkpoints 5,10 --train-per-task 2000
"""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402
import keras  # noqa: E402

TITLE = "5. Scaling with the number of tasks"


class _Clock(keras.callbacks.Callback):
    """A learn() callback that records when each task's training ends.

    `learn()` calls `on_task_end` after `finish_task()` and before it evaluates
    the tasks seen so far, so the time between two calls is one task's turn.
    """

    def __init__(self):
        super().__init__()
        self.ends = []

    def on_task_end(self, model, summary):
        self.ends.append((time.perf_counter(), summary.size.mask_bytes))


def main(argv=None):
    arguments = harness.parser(__doc__.splitlines()[0], repeats=1, quick_repeats=1)
    arguments.add_argument("--tasks", type=int, default=20)
    arguments.add_argument("--checkpoints", type=harness.int_list, default=[5, 10, 20])
    arguments.add_argument("--train-per-task", type=int, default=1000)
    arguments.add_argument("--test-per-task", type=int, default=500)
    arguments.add_argument("--epochs", type=int, default=1)
    arguments.add_argument("--batch-size", type=int, default=64)
    harness.add_pool_options(arguments)
    args = harness.parse(arguments, argv)
    if args.quick:
        args.tasks, args.checkpoints, args.train_per_task, args.test_per_task = 2, [2], 64, 20
    args.checkpoints = [c for c in args.checkpoints if c <= args.tasks] or [args.tasks]
    tf, keras = harness.setup(args.seed)
    import numpy as np

    import keras_grown as kg
    from keras_grown import methods

    stream = kg.datasets.permuted_fashion_mnist(
        num_tasks=args.tasks,
        train_per_task=args.train_per_task,
        test_per_task=args.test_per_task,
        seed=args.seed,
    )
    runs = []
    for _ in range(args.repeats):
        keras.backend.clear_session()
        keras.utils.set_random_seed(args.seed)
        clock = _Clock()
        method = methods.GROWN(
            backbone="lenet5", seed_ratio=args.seed_ratio, capacity=args.capacity
        )
        start = time.perf_counter()
        result = kg.learn(
            method,
            stream,
            epochs=args.epochs,
            batch_size=args.batch_size,
            seed=args.seed,
            callbacks=[clock],
        )
        stop = time.perf_counter()
        wall = stop - start
        # Task t's evaluation of tasks 1..t runs between its on_task_end and
        # the start of task t + 1 (whose training is time_per_task[t + 1]).
        train = np.asarray(result.time_per_task)
        ends = np.asarray([end for end, _ in clock.ends] + [stop])
        evaluate = np.diff(ends) - np.append(train[1:], 0.0)
        runs.append(
            {
                "train": train,
                "evaluate": evaluate,
                "size": list(result.model_size),
                "mask_bytes": [b for _, b in clock.ends],
                "width": [
                    np.mean([layer["growth_ratio"] for layer in report]) for report in result.growth
                ],
                "wall": wall,
                "accuracy": result.accuracy,
            }
        )
        print(f"{args.tasks} tasks: {wall:.1f} s", flush=True)
    train = np.median([run["train"] for run in runs], axis=0)
    evaluate = np.median([run["evaluate"] for run in runs], axis=0)
    last = runs[-1]
    rows = []
    for index in range(args.tasks):
        rows.append(
            [
                index + 1,
                harness.format_seconds(train[index]),
                harness.format_seconds(evaluate[index]),
                f"{last['size'][index]:.2f}x",
                f"{last['width'][index]:.2f}",
                f"{last['mask_bytes'][index]:,}",
            ]
        )
    tasks = np.arange(1, args.tasks + 1)
    checkpoint_rows = []
    for count in args.checkpoints:
        part = train[:count]
        slope, intercept = np.polyfit(tasks[:count], part, 1) if count > 1 else (0.0, part[0])
        checkpoint_rows.append(
            [
                count,
                harness.format_seconds(float(part.mean())),
                harness.format_seconds(float(train[:count].sum() + evaluate[:count].sum())),
                f"{1000 * slope:+.0f} ms ({100 * slope / np.median(part):+.1f}%)",
                f"{last['size'][count - 1]:.2f}x",
                f"{last['accuracy'].step_average_accuracy()[count - 1]:.3f}",
            ]
        )
    later = train[1:]
    if len(later) >= 4:
        quarter = max(1, len(later) // 4)
        growth = float(later[-quarter:].mean() / later[:quarter].mean())
    else:
        growth = float(train[-1] / train[0])
    lines = [
        f"GROWN on Permuted Fashion-MNIST, {args.tasks} tasks of 10 classes, LeNet-5 "
        f"(seed_ratio {args.seed_ratio}, capacity {args.capacity}), "
        f"{stream[0].sizes['train']} training images per task, {args.epochs} epoch(s), batch "
        f"{args.batch_size}, {stream[0].sizes['test']} test images per task, `target=None`, "
        "eager graph. *train* = `learn()`'s `time_per_task` (add the task, train, finish it, "
        "validate); *evaluate* = the rest of that task's turn (testing every task seen so "
        f"far). Median of {args.repeats} run(s). The 5- and 10-task numbers are the first "
        "tasks of the same run.",
        "",
        harness.table(
            [
                "task t",
                "train",
                "evaluate tasks 1..t",
                "model size",
                "mean active width",
                "mask bytes",
            ],
            rows,
        ),
        "",
        harness.table(
            [
                "tasks",
                "mean train time per task",
                "total (train + evaluate)",
                "slope of train time per task",
                "model size",
                "average accuracy",
            ],
            checkpoint_rows,
        ),
        "",
        f"- Train time of the last quarter of the tasks over the first quarter (task 1, "
        f"which also traces the first steps, left out): {growth:.2f}x. A step computes the "
        "channels the task can use (its active ones, which include what earlier tasks own), "
        "not the allocated pool, so its cost follows the mean active width "
        f"({last['width'][0]:.2f} -> {last['width'][-1]:.2f}), which grows with the model "
        f"size ({last['size'][0]:.2f}x -> {last['size'][-1]:.2f}x) until the capacity is "
        "taken; the times of single tasks vary with the noise of a shared machine.",
        "- The accuracy column is context, not a result: this budget (one epoch of a small "
        "training set) measures time; on 10-class tasks GROWN's noisy masks learn slower in "
        "the first steps than a plain network does.",
        harness.verdict(
            "train time per task, last quarter / first quarter (flat = 1.0)", growth, 1.1
        ),
    ]
    harness.report(args, "scaling", TITLE, "\n".join(lines))
    return runs


if __name__ == "__main__":
    main()
