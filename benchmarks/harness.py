"""What every benchmark shares: its command line, interleaved timing, statistics,
the machine description and the sections of BENCHMARKS.md.

Every benchmark measures *ratios inside one run*: the machines these run on are
shared, so absolute seconds alone mean little. Competing runs are interleaved
(A B C, then C B A, ...) so that a slow spell of the machine hits every
contender alike, and each ratio is reported as the median over the rounds with
its spread.

A benchmark writes one section of `BENCHMARKS.md` per device; a new run of the
same benchmark on the same device replaces its section, so the file holds the
latest run of every benchmark on every device.
"""

import argparse
import datetime
import os
import platform
import re
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

REPOSITORY = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = REPOSITORY / "BENCHMARKS.md"

FILE_HEADER = """# Benchmarks

Written by `make bench` (`benchmarks/run_all.py`); each script rewrites its own
section per device. See the README's "Performance" section.
"""


# ------------------------------------------------------------ command line
def parser(description, repeats, quick_repeats=2):
    """An `ArgumentParser` with the options every benchmark takes."""
    arguments = argparse.ArgumentParser(description=description)
    arguments.add_argument(
        "--quick",
        action="store_true",
        help="tiny settings for a smoke run (the numbers mean nothing)",
    )
    arguments.add_argument(
        "--repeats",
        type=_positive,
        default=None,
        help=f"interleaved rounds per measurement (default {repeats}; --quick: {quick_repeats})",
    )
    arguments.add_argument(
        "--output",
        type=Path,
        default=DEFAULT_OUTPUT,
        help="the Markdown file whose section is rewritten (default: BENCHMARKS.md)",
    )
    arguments.add_argument("--seed", type=int, default=0, help="seed of data and weights")
    arguments.set_defaults(default_repeats=repeats, quick_repeats=quick_repeats)
    return arguments


def add_pool_options(arguments):
    """`--capacity` and `--seed-ratio`: the GrownModel pool a benchmark builds."""
    arguments.add_argument("--capacity", type=float, default=2.0)
    arguments.add_argument("--seed-ratio", type=float, default=0.5)


def parse(arguments, argv=None):
    args = arguments.parse_args(argv)
    if args.repeats is None:
        args.repeats = args.quick_repeats if args.quick else args.default_repeats
    return args


def _positive(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, received {text!r}")
    return value


def int_list(text):
    """`"5,10,20"` -> `[5, 10, 20]` (an argparse type)."""
    return [_positive(part) for part in text.split(",") if part.strip()]


def setup(seed):
    """Seeds everything and imports TensorFlow quietly; returns (tf, keras)."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    return tf, keras


# ----------------------------------------------------------------- timing
def interleaved(contenders, rounds):
    """Times `contenders` ({name: fn() -> seconds per unit}) in alternating order.

    Round r runs the contenders in their order when r is even and in reverse
    when r is odd (A B C, C B A, ...), so a slow spell of a shared machine
    falls on all of them.

    Returns:
        {name: [seconds per unit, one per round]}.
    """
    names = list(contenders)
    times = {name: [] for name in names}
    for index in range(rounds):
        for name in names if index % 2 == 0 else names[::-1]:
            times[name].append(float(contenders[name]()))
    return times


def timed(function, units=1):
    """Runs `function()` once; returns seconds per unit of work."""
    start = time.perf_counter()
    function()
    return (time.perf_counter() - start) / units


def summarize(values):
    """Median, quartiles, min, max and count of a list of numbers."""
    values = np.asarray(values, dtype=float)
    return {
        "median": float(np.median(values)),
        "q1": float(np.percentile(values, 25)),
        "q3": float(np.percentile(values, 75)),
        "min": float(values.min()),
        "max": float(values.max()),
        "n": int(values.size),
    }


def ratios(numerators, denominators):
    """Per-round ratios of two lists measured in the same rounds."""
    return [a / b for a, b in zip(numerators, denominators)]


def format_ratio(values):
    """`1.23x [1.20-1.31]`: median and min-max of per-round ratios."""
    stats = summarize(values)
    if stats["n"] == 1:
        return f"{stats['median']:.2f}x"
    return f"{stats['median']:.2f}x [{stats['min']:.2f}-{stats['max']:.2f}]"


def format_seconds(seconds):
    if seconds >= 10:
        return f"{seconds:.1f} s"
    if seconds >= 1:
        return f"{seconds:.2f} s"
    return f"{seconds * 1000:.1f} ms" if seconds >= 1e-3 else f"{seconds * 1e6:.0f} us"


def format_bytes(count):
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(count) < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024.0


def verdict(name, value, limit, unit="x", digits=2):
    """One line of a section's target list (lower is better): met, or missed by how much."""
    shown = f"{value:.{digits}f}{unit}"
    if value <= limit:
        state = "**met**"
    else:
        state = f"**missed** by {value / limit:.2f}x ({shown} against {limit:g}{unit})"
    return f"- Target: {name} <= {limit:g}{unit}: {shown}, {state}"


# ---------------------------------------------------------------- machine
def device():
    """(key, description) of the device TensorFlow computes on."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        details = tf.config.experimental.get_device_details(gpus[0])
        name = details.get("device_name", gpus[0].name)
        return "gpu", f"GPU: {name} (x{len(gpus)})"
    return "cpu", f"CPU: {_cpu_model()}, {os.cpu_count()} logical cores"


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine():
    """A description of the machine and the software, for the section header."""
    import keras
    import tensorflow as tf

    import keras_grown

    key, description = device()
    try:
        load = "{:.1f} / {:.1f} / {:.1f}".format(*os.getloadavg())
    except OSError:
        load = "n/a"
    return {
        "device_key": key,
        "device": description,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "keras_grown": keras_grown.__version__,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "load": load,
    }


def machine_lines(info):
    return [
        f"- Device: {info['device']}",
        f"- Machine: {info['platform']}, {info['cpu_count']} logical CPUs, "
        f"load average at start {info['load']} (1/5/15 min)",
        f"- Software: Python {info['python']}, TensorFlow {info['tensorflow']}, "
        f"Keras {info['keras']}, keras-grown {info['keras_grown']}",
        f"- Date: {info['date']}",
    ]


# ---------------------------------------------------------------- Markdown
def table(header, rows):
    """A Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _markers(benchmark, device_key):
    tag = f"benchmark:{benchmark} device:{device_key}"
    return f"<!-- {tag} -->", f"<!-- end {tag} -->"


SECTION_PATTERN = re.compile(
    r"<!-- benchmark:(?P<benchmark>\S+) device:(?P<device>\S+) -->\n(?P<body>.*?)"
    r"<!-- end benchmark:(?P=benchmark) device:(?P=device) -->\n?",
    re.DOTALL,
)


def write_section(path, benchmark, title, body, info, position=None):
    """Writes (or replaces) the section of `benchmark` on this device in `path`.

    Args:
        path: the Markdown file (created with a short header if missing).
        benchmark: the benchmark's key (`"train_step"`, ...).
        title: the section's heading.
        body: Markdown below the machine description.
        info: `machine()`.
        position: None to keep a replaced section where it is and append a
            new one at the end; `"top"` to put the section right after the
            file header.

    Returns:
        The text of the section.
    """
    path = Path(path)
    start, end = _markers(benchmark, info["device_key"])
    heading = f"## {title} ({info['device_key'].upper()})"
    section = "\n".join([start, heading, "", *machine_lines(info), "", body.rstrip(), end]) + "\n"
    text = path.read_text() if path.exists() else FILE_HEADER
    existing = [
        m
        for m in SECTION_PATTERN.finditer(text)
        if m.group("benchmark") == benchmark and m.group("device") == info["device_key"]
    ]
    if existing and position is None:
        match = existing[0]
        text = text[: match.start()] + section + text[match.end() :]
    else:
        for match in reversed(existing):
            text = text[: match.start()] + text[match.end() :]
        if position == "top":
            first = SECTION_PATTERN.search(text)
            cut = first.start() if first else len(text)
            text = text[:cut].rstrip("\n") + "\n\n" + section + "\n" + text[cut:]
        else:
            text = text.rstrip("\n") + "\n\n" + section
    text = re.sub(r"\n{3,}", "\n\n", text)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text)
    os.replace(temporary, path)
    return section


def read_sections(path):
    """{(benchmark, device): body} of the sections in `path`."""
    path = Path(path)
    if not path.exists():
        return {}
    return {
        (m.group("benchmark"), m.group("device")): m.group("body")
        for m in SECTION_PATTERN.finditer(path.read_text())
    }


def report(args, benchmark, title, body, echo=True):
    """Writes the section and prints it."""
    info = machine()
    if args.quick:
        body = "_Smoke run (`--quick`): tiny settings, the numbers mean nothing._\n\n" + body
    section = write_section(args.output, benchmark, title, body, info)
    if echo:
        print(section)
    return section
