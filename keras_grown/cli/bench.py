"""`keras-grown bench`: several methods x seeds on one stream (`keras_grown.bench.bench`)."""

import os
import shlex
import sys

from keras_grown import datasets as datasets_lib
from keras_grown import methods as methods_lib
from keras_grown.bench import DEFAULT_METHODS, bench, parse_methods, parse_seeds
from keras_grown.cli.report import print_summary


def add_bench_command(subparsers):
    """Adds `keras-grown bench` to the `subparsers` of the `keras-grown` parser; returns it."""
    parser = subparsers.add_parser(
        "bench",
        help="run several methods x seeds on one stream; write results.json, RESULTS.md, plots",
        description=(
            "Run every method with every seed on one task stream through the same learn() "
            "loop, and write results.json (after every finished run), RESULTS.md (the paper's "
            "Tables 1, 3 and 5) and PNG plots to --out. --resume skips the (method, seed) "
            "pairs already in --out/results.json."
        ),
    )
    parser.add_argument(
        "--stream", default="split_fashion_mnist", choices=datasets_lib.list_streams()
    )
    parser.add_argument(
        "--methods",
        default=",".join(DEFAULT_METHODS),
        help=f"comma-separated, from: {', '.join(methods_lib.METHODS)} "
        "(default: %(default)s; the ablation is grow,grow_sel,grow_sel_lsg,grown). A variant "
        "runs a method with settings of its own as a method of its own: name@key=value, "
        "several joined by @, e.g. wsn,wsn@capacity=0.1,packnet@prune_ratio=0.75@retrain_epochs=1",
    )
    parser.add_argument("--seeds", default="0", help="comma-separated seeds, e.g. 0,1,2")
    parser.add_argument("--epochs", type=int, default=2, help="epochs per stage")
    parser.add_argument(
        "--num-tasks", type=int, default=None, help="number of tasks (default: the stream's own)"
    )
    parser.add_argument(
        "--train-per-task", type=int, default=None, help="training examples per task"
    )
    parser.add_argument(
        "--first-tasks", type=int, default=None, help="learn only the first N tasks"
    )
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument(
        "--backbone", default=None, choices=("lenet5", "lenet_small", "vgg16_bn", "resnet18"),
        help="default: lenet5, or lenet_small for images smaller than 16x16 (split_digits)",
    )  # fmt: skip
    parser.add_argument("--l0-lambda", type=float, default=None)
    parser.add_argument("--seed-ratio", type=float, default=None, help="growing methods only")
    parser.add_argument("--capacity", type=float, default=None, help="growing methods only")
    parser.add_argument("--learning-rate", type=float, default=None)
    parser.add_argument(
        "--target", default="none",
        help="GROWN's accuracy target: 'none' (default: grow while a task underfits), an "
        "accuracy in (0, 1] or 'scratch'",
    )
    parser.add_argument("--max-growth-rounds", type=int, default=2)
    parser.add_argument("--jit-compile", action="store_true", help="compile with XLA")
    parser.add_argument(
        "--resume", action="store_true", help="skip the (method, seed) pairs already in --out"
    )
    parser.add_argument("--no-progress", dest="progress", action="store_false")
    parser.add_argument("--out", default=os.path.join("runs", "bench"), help="results folder")
    parser.set_defaults(func=command_bench)
    return parser


def command_bench(args):
    """Runs `keras-grown bench`; returns the exit status."""
    stream_kwargs = {
        key: getattr(args, key)
        for key in ("num_tasks", "train_per_task")
        if getattr(args, key) is not None
    }
    method_kwargs = {
        key: getattr(args, key)
        for key in ("backbone", "l0_lambda", "seed_ratio", "capacity", "learning_rate")
        if getattr(args, key) is not None
    }
    if args.jit_compile:
        method_kwargs["jit_compile"] = True
    names, seeds = parse_methods(args.methods), parse_seeds(args.seeds)
    print(
        f"keras-grown bench: {', '.join(names)} x seeds {', '.join(map(str, seeds))} on "
        f"{args.stream}, {args.epochs} epoch(s) per stage -> {args.out}",
        flush=True,
    )
    payload = bench(
        args.stream, methods=names, seeds=seeds, epochs=args.epochs, out=args.out,
        stream_kwargs=stream_kwargs, method_kwargs=method_kwargs, target=args.target,
        batch_size=args.batch_size, max_growth_rounds=args.max_growth_rounds,
        first_tasks=args.first_tasks, resume=args.resume, progress=args.progress,
        command=shlex.join(["keras-grown"] + sys.argv[1:]),
    )  # fmt: skip
    print_summary(payload, args.out)
    return 0
