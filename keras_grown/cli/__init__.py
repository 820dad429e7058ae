"""The `keras-grown` command line: `keras-grown run|bench|report|tune ...`.

Every argparse definition of keras-grown lives in this package, one module
per command (`run`, `bench`, `report`, `tune`), with the argument types
they share in `arguments` and the runner of the scripts in `recipes/` in
`recipe`. The library modules take arguments, never `argv`.

This package module imports the commands only when the parser is built: `keras_grown/__init__.py`
imports `keras_grown.cli.quiet` (the quiet start of the command) before TensorFlow, and that import
runs this module first.
"""

import argparse
import sys

from keras_grown.version import __version__


def build_parser():
    """The `keras-grown` parser with its four commands."""
    from keras_grown.cli.bench import add_bench_command
    from keras_grown.cli.report import add_report_command
    from keras_grown.cli.run import add_run_command
    from keras_grown.cli.tune import add_tune_command

    parser = argparse.ArgumentParser(
        prog="keras-grown",
        description="GROWN continual learning for Keras 3.",
    )
    parser.add_argument("--version", action="version", version=f"keras-grown {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    add_run_command(commands)
    add_bench_command(commands)
    add_report_command(commands)
    add_tune_command(commands)
    return parser


def main(argv=None):
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # argparse printed the usage and one error line
        return stop.code
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, ImportError, TypeError, FloatingPointError) as error:
        print(f"keras-grown {args.command}: error: {error}", file=sys.stderr)
        return 2


def __getattr__(name):
    # `keras_grown.cli.STREAMS` and friends, read from `run` when asked for.
    if name in ("BACKBONES", "STRATEGIES", "STREAMS"):
        from keras_grown.cli import run

        return getattr(run, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["BACKBONES", "STRATEGIES", "STREAMS", "build_parser", "main"]
