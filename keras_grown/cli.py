"""The `keras-grown` command line."""

import argparse
import sys

from keras_grown.version import __version__


def build_parser():
    parser = argparse.ArgumentParser(
        prog="keras-grown",
        description="GROWN continual learning for Keras 3.",
    )
    parser.add_argument(
        "--version", action="version", version=f"keras-grown {__version__}"
    )
    parser.add_subparsers(dest="command", metavar="COMMAND")
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
