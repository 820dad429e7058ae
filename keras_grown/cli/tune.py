"""`keras-grown tune`: search GROWN's settings with KerasTuner (`keras_grown.tuning.tune`)."""

import json
import os

from keras_grown import backbones as backbones_lib
from keras_grown import datasets as datasets_lib
from keras_grown.cli.arguments import search_setting, tune_tasks
from keras_grown.tuning import OBJECTIVES, SEARCH_SPACE, TUNERS, tune


def add_tune_command(subparsers):
    """Adds `keras-grown tune` to the `subparsers` of the `keras-grown` parser.

    Returns the `tune` parser; `command_tune(args)` runs it.
    """
    parser = subparsers.add_parser(
        "tune",
        help="search l0_lambda, seed_ratio, learning rate and temperature with KerasTuner",
        description=(
            "Search GROWN's l0_lambda, seed_ratio, learning rate and Gumbel temperature with "
            "KerasTuner on the first tasks of a stream, scored on validation data only, and "
            "write best.json to --out. --l0-lambda/--seed-ratio/--learning-rate/--temperature "
            "take a number (fixed) or LOW:HIGH (the range to search)."
        ),
    )
    parser.add_argument(
        "--stream", default="split_fashion_mnist", choices=datasets_lib.list_streams()
    )
    parser.add_argument(
        "--num-tasks",
        type=int,
        default=None,
        help="number of tasks of the stream (default: the stream's own)",
    )
    parser.add_argument(
        "--train-per-task", type=int, default=None, help="training examples per task (default: all)"
    )
    parser.add_argument("--max-trials", type=int, default=10)
    parser.add_argument("--tuner", default="random", choices=sorted(TUNERS))
    parser.add_argument(
        "--epochs", type=int, default=1, help="epochs per stage (hyperband: the largest budget)"
    )
    parser.add_argument(
        "--tune-tasks",
        type=tune_tasks,
        default=2,
        help="tune on the first N tasks, or 'all' (default: 2)",
    )
    parser.add_argument("--objective", default="accuracy", choices=sorted(OBJECTIVES))
    parser.add_argument(
        "--size-penalty",
        type=float,
        default=0.1,
        help="accuracy_size = val_accuracy - size_penalty * " "max(0, model_size - size_budget)",
    )
    parser.add_argument("--size-budget", type=float, default=1.0)
    parser.add_argument(
        "--backbone", default=None, choices=tuple(backbones_lib.BACKBONES),
        help="default: lenet5, or lenet_small for images smaller than 16x16 (split_digits)",
    )
    parser.add_argument("--capacity", type=float, default=2.0)
    parser.add_argument("--batch-size", type=int, default=64)
    for flag in ("--l0-lambda", "--seed-ratio", "--learning-rate", "--temperature"):
        name = flag[2:].replace("-", "_")
        low, high, sampling = SEARCH_SPACE[name]
        parser.add_argument(
            flag,
            type=search_setting,
            default=None,
            help=f"fix it (a number) or search LOW:HIGH "
            f"(default: search {low:g}:{high:g}, {sampling})",
        )
    parser.add_argument("--out", default=os.path.join("runs", "tune"), help="results folder")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="start afresh instead of resuming a search in --out",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.set_defaults(func=command_tune)
    return parser


def command_tune(args):
    """Runs `keras-grown tune`: the search, then prints and saves the best settings."""
    stream_kwargs = {"seed": args.seed}
    if args.num_tasks is not None:
        stream_kwargs["num_tasks"] = args.num_tasks
    if args.train_per_task is not None:
        stream_kwargs["train_per_task"] = args.train_per_task
    for name in ("max_trials", "epochs", "batch_size"):
        value = getattr(args, name)
        if value < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1; received {value}")
    if args.tuner not in TUNERS:
        raise ValueError(
            f"Unknown tuner {args.tuner!r}. Choose one of {', '.join(sorted(TUNERS))}."
        )
    stream = datasets_lib.load_stream(args.stream, **stream_kwargs)
    if args.backbone is None:
        args.backbone = backbones_lib.default_backbone(stream.input_shape)
    where = "all tasks" if args.tune_tasks is None else f"the first {args.tune_tasks} task(s)"
    print(
        f"keras-grown tune: {args.tuner} search, {args.max_trials} trial(s), on {where} of "
        f"{args.stream} ({len(stream)} tasks), objective {args.objective}",
        flush=True,
    )
    # Every other flag is the tune() argument of the same name.
    same_name = (
        "max_trials", "tuner", "epochs", "tune_tasks", "objective", "size_penalty", "size_budget",
        "seed", "overwrite", "backbone", "capacity", "batch_size", *SEARCH_SPACE,
    )  # fmt: skip
    best, _ = tune(
        stream, directory=args.out, project_name="grown", verbose=1,
        **{name: getattr(args, name) for name in same_name},
    )  # fmt: skip
    with open(os.path.join(args.out, "best.json")) as handle:
        payload = json.load(handle)
    print(
        f"\nbest trial {payload['trial_id']}: {payload['objective']['name']} = "
        f"{payload['objective']['value']:.4f}  ({payload['objective']['formula']})"
    )
    for name, value in best.items():
        print(f"  {name:<14} {value:g}")
    print(f"  {'model_size':<14} {payload['metrics']['model_size']:.3f}x")
    print(f"wrote {os.path.join(args.out, 'best.json')}")
    data_flags = "".join(
        f" --{flag} {value}"
        for flag, value in (("num-tasks", args.num_tasks), ("train-per-task", args.train_per_task))
        if value is not None
    )
    print(
        f"learn the whole stream with them: keras-grown run --stream {args.stream}{data_flags} "
        f"--backbone {args.backbone} --capacity {args.capacity:g} --batch-size {args.batch_size} "
        f"--l0-lambda {best['l0_lambda']:g} --seed-ratio {best['seed_ratio']:g} "
        f"--learning-rate {best['learning_rate']:g} --epochs {best['epochs']} --seed {args.seed}"
    )
    if best["temperature"] != 1.0:
        # `keras-grown run` has no --temperature flag.
        print(f"  and GrownModel(temperature={best['temperature']:g}) in Python")
    return 0
