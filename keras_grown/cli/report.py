"""`keras-grown report OUT`: RESULTS.md and the plots again, from a bench folder's results.json."""

from pathlib import Path

from keras_grown.bench import REPORT_FILE, RESULTS_FILE, load_results, report, summary


def add_report_command(subparsers):
    """Adds `keras-grown report OUT` to the `subparsers` of the `keras-grown` parser; returns it."""
    parser = subparsers.add_parser(
        "report",
        help="rebuild RESULTS.md and the plots of a bench folder from its results.json",
        description="Rebuild RESULTS.md and the PNG plots from OUT/results.json (no training).",
    )
    parser.add_argument("out", help="the folder keras-grown bench wrote (--out)")
    parser.set_defaults(func=command_report)
    return parser


def command_report(args):
    """Runs `keras-grown report OUT`; returns the exit status."""
    paths = report(args.out)
    print_summary(load_results(args.out), args.out)
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0


def print_summary(payload, out):
    """Prints the Table 1 of a bench results.json and where its files are."""
    print(summary(payload))
    print(f"results: {Path(out) / RESULTS_FILE}, {Path(out) / REPORT_FILE}")
