"""`bench()`: every method x seed on one task stream, and the paper-style report.

`bench()` runs each method of `keras_grown.methods` on the same stream with
each seed (the stream, the weights and the shuffling all follow the seed),
through the same `learn()` loop, and writes to its `out` folder:

* `results.json`: every run (method, label, settings, seed, accuracy matrix,
  model size, time and validation accuracy per task) with the versions, the
  machine, the command lines, the stream and its arguments. It is rewritten
  atomically after every finished (method, seed) pair, so a run that stops
  half-way loses at most the pair it was on, and `resume=True` skips the
  pairs it already holds.
* `RESULTS.md`: the tables in the form of the paper's Table 1 (average
  accuracy mean ± std over seeds, BWT, model size, training time), Table 3
  (model size after each task) and Table 5 (the ablation Grow, +Sel-mask,
  +LSG, +Re-train: the rows that were run), the mean accuracy matrices and
  one row per run.
* PNG plots: `average_accuracy.png` (average accuracy after each task per
  method), `model_size.png` (model size after each task per method) and one
  accuracy-matrix heat map per method (`accuracy_<method>.png`, mean over
  seeds).

A methods entry may be a variant, `name@key=value[@key=value...]`
(`"grown,wsn,wsn@capacity=0.1"`): the method with settings of its own, run,
stored (under its entry) and reported (as `WSN (capacity=0.1)`) as a method
of its own; `parse_variant` reads one.

`report(out)` rebuilds `RESULTS.md` and the plots from `results.json` alone.

The package holds one module per job: `running` (`bench()` and the checks
of its arguments), `results` (results.json), `progress` (the progress line)
and `reporting` (tables and plots). `keras-grown bench` and `keras-grown
report` are in `keras_grown.cli`.
"""

from keras_grown.bench.progress import BenchProgress
from keras_grown.bench.reporting import (
    ABLATION,
    REPORT_FILE,
    method_file_stem,
    plot_results,
    report,
    results_markdown,
    summary,
)
from keras_grown.bench.results import (
    RESULTS_FILE,
    RESULTS_FORMAT,
    RESULTS_FORMAT_VERSION,
    load_results,
)
from keras_grown.bench.running import (
    DEFAULT_METHODS,
    bench,
    parse_methods,
    parse_seeds,
    parse_target,
    parse_variant,
    variant_key,
    variant_label,
)

# The checks of bench()'s arguments, reachable here as they were in the
# one-file module (the tests call them).
from keras_grown.bench.running import _method_arguments, _planned_epochs  # noqa: F401

__all__ = [
    "ABLATION",
    "BenchProgress",
    "DEFAULT_METHODS",
    "bench",
    "load_results",
    "parse_methods",
    "parse_seeds",
    "parse_variant",
    "plot_results",
    "report",
    "results_markdown",
    "summary",
    "variant_key",
    "variant_label",
]
