"""The paper-style report of a benchmark: RESULTS.md's tables and the PNG plots.

Everything here reads the content of a results.json (no training):
`results_markdown()` writes the tables in the form of the paper's Table 1,
3 and 5, `plot_results()` the plots, `report(out)` both from a folder's
results.json, and `summary()` the Table 1 alone.
"""

import os
import re
import warnings
from pathlib import Path

import numpy as np

from keras_grown.bench.results import _results_path, load_results
from keras_grown.evaluation import AccuracyMatrix

REPORT_FILE = "RESULTS.md"

# The paper's Table 5: each row adds one component to the one above it.
# (method name, row name, (selective mask, learnable sparse growth, re-train released)).
ABLATION = (
    ("grow", "Grow", (False, False, False)),
    ("grow_sel", "+Sel-mask", (True, False, False)),
    ("grow_sel_lsg", "+LSG", (True, True, False)),
    ("grown", "+Re-train", (True, True, True)),
)


def method_file_stem(key):
    """A file name part for a methods entry: `grown`, `wsn@capacity=0.1` -> `wsn-capacity=0.1`.

    Plain method names are kept as they are (the files of results written
    before variants keep their names).
    """
    return re.sub(r"[^A-Za-z0-9._=-]", "-", key)


def _duration(seconds):
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"


def _mean_std(values):
    """(mean, sample std with n - 1, or None for one value)."""
    values = np.asarray(values, dtype=float)
    return float(values.mean()), (float(values.std(ddof=1)) if len(values) > 1 else None)


def _percent(values, signed=False):
    mean, std = _mean_std(100 * np.asarray(values, dtype=float))
    text = f"{mean:+.2f}" if signed else f"{mean:.2f}"
    return text if std is None else f"{text} ± {std:.2f}"


def _size(values):
    mean, std = _mean_std(values)
    return f"{mean:.2f}x" if std is None or std < 0.005 else f"{mean:.2f}x ± {std:.2f}"


def _mask_sizes(run):
    """The run's stored masks, packed / at their entropy bound (`ModelSize`), or '-' (older results)."""
    if "mask_entropy_bytes" not in run:
        return "-"
    return f"{run['mask_bytes'] / 1024:,.1f} / {run['mask_entropy_bytes'] / 1024:,.1f} KiB"


def _grouped(payload):
    """[(methods entry, label, [runs sorted by seed])] in the order methods were asked for.

    An entry is a method name or a variant (`wsn@capacity=0.1`): each is a row of its own.
    """
    groups = []
    for name in payload["methods"]:
        runs = sorted((r for r in payload["runs"] if r["method"] == name), key=lambda r: r["seed"])
        if runs:
            groups.append((name, runs[0]["label"], runs))
    return groups


def _mean_matrix(runs):
    matrices = [AccuracyMatrix.from_dict(run["accuracy"]) for run in runs]
    stacked = np.stack([m.values for m in matrices])
    with warnings.catch_warnings():  # cells no run recorded (above the diagonal) stay NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(stacked, axis=0)
    matrix = AccuracyMatrix.from_values(mean, task_names=matrices[0].task_names)
    sizes = np.mean([run["model_size"] for run in runs], axis=0)
    for i, size in enumerate(sizes):
        matrix.record_model_size(i, float(size))
    return matrix


def _describe(payload):
    stream_kwargs = ", ".join(f"{k}={v!r}" for k, v in payload["stream_kwargs"].items())
    settings = payload["settings"]
    method_kwargs = ", ".join(f"{k}={v!r}" for k, v in settings["method_kwargs"].items())
    seeds = ", ".join(str(s) for s in sorted({r["seed"] for r in payload["runs"]}))
    versions = payload.get("versions", {})
    machine = payload.get("machine", {})
    gpus = machine.get("gpus") or []
    lines = [
        f"# keras-grown bench: {payload['stream']}",
        "",
        f"Stream `{payload['stream']}` ({stream_kwargs or 'defaults'}): "
        f"{payload.get('num_tasks')} tasks"
        + (f" (the first {settings['first_tasks']})" if settings.get("first_tasks") else "")
        + f"; {settings['epochs']} epoch(s) per stage, batch size {settings['batch_size']}, "
        f"target {settings['target']}; method settings: {method_kwargs or 'defaults'}"
        + "".join(
            f"; {name}: " + ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
            for name, kwargs in settings.get("method_overrides", {}).items()
        )
        + f". Seeds: {seeds or 'none finished'}.",
        "",
        f"keras-grown {versions.get('keras_grown')}, TensorFlow {versions.get('tensorflow')}, "
        f"Keras {versions.get('keras')}, Python {versions.get('python')}; "
        f"{machine.get('platform')}, {machine.get('cpus')} CPUs, "
        + (f"GPU: {', '.join(gpus)}." if gpus else "no GPU."),
    ]
    return lines


def results_markdown(payload):
    """The text of RESULTS.md for the content of a results.json."""
    groups = _grouped(payload)
    lines = _describe(payload)
    if not groups:
        return "\n".join(lines + ["", "No run has finished yet.", ""])
    num_tasks = max(len(run["model_size"]) for _, _, runs in groups for run in runs)
    lines += [
        "",
        "## Average accuracy, backward transfer, model size, training time (as Table 1)",
        "",
        "| method | average accuracy (%) | BWT (%) | model size | training time | seeds |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for _, label, runs in groups:
        lines.append(
            f"| {label} | {_percent([r['average_accuracy'] for r in runs])} | "
            f"{_mean_std([100 * r['backward_transfer'] for r in runs])[0]:+.2f} | "
            f"{_size([r['model_size'][-1] for r in runs])} | "
            f"{_duration(_mean_std([r['seconds'] for r in runs])[0])} | {len(runs)} |"
        )
    lines += [
        "",
        "Average accuracy: the mean test accuracy over all tasks after the last one, mean ± "
        "standard deviation over the seeds (n - 1 in the denominator; no ± with one seed). "
        "BWT: backward transfer, mean over the seeds (below 0: forgetting). Model size: the "
        "weights owned by some task after the last task, in full-size backbones (one network "
        "per task for Scratch and Fine-tune with copies), mean over the seeds. Training time: "
        "wall time of the whole stream, mean over the seeds.",
        "",
        "## Model size after each task (as Table 3)",
        "",
        "| method | " + " | ".join(f"task {t + 1}" for t in range(num_tasks)) + " |",
        "| --- |" + " ---: |" * num_tasks,
    ]
    for _, label, runs in groups:
        sizes = np.mean([run["model_size"] for run in runs], axis=0)
        lines.append(f"| {label} | " + " | ".join(f"{s:.2f}x" for s in sizes) + " |")
    lines += ["", "## Ablation (as Table 5)", ""]
    run_names = {name for name, _, _ in groups}
    if run_names & {name for name, _, _ in ABLATION if name != "grown"}:
        lines += [
            "| | Sel-mask | LSG | Re-train | average accuracy (%) | model size |",
            "| --- | :---: | :---: | :---: | ---: | ---: |",
        ]
        by_name = {name: runs for name, _, runs in groups}
        for name, row, switches in ABLATION:
            if name in by_name:
                runs = by_name[name]
                marks = " | ".join("✓" if on else "" for on in switches)
                lines.append(
                    f"| {row} (`{name}`) | {marks} | "
                    f"{_percent([r['average_accuracy'] for r in runs])} | "
                    f"{_size([r['model_size'][-1] for r in runs])} |"
                )
        lines += [
            "",
            "Each row adds one component of GROWN to the row above it: the selective mask over "
            "frozen weights, learnable sparse growth (the attentive mask over grown channels), "
            "and re-training released weights. Only the settings that were run are listed.",
        ]
    else:
        lines.append(
            "Not run: add the methods grow,grow_sel,grow_sel_lsg (with grown) for the ablation "
            "of the paper's Table 5."
        )
    lines += ["", "## Plots", ""]
    lines += [
        "![average accuracy after each task](average_accuracy.png)",
        "",
        "![model size after each task](model_size.png)",
        "",
        "## Accuracy matrices (test accuracy in %, mean over the seeds)",
    ]
    for name, label, runs in groups:
        lines += [
            "",
            f"### {label}",
            "",
            _mean_matrix(runs).to_markdown(),
            "",
            f"![{label}](accuracy_{method_file_stem(name)}.png)",
        ]
    lines += [
        "",
        "## Runs",
        "",
        "| method | seed | average accuracy (%) | BWT (%) | model size | masks (packed / "
        "compressed) | time | epochs | ignored settings |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for _, label, runs in groups:
        for run in runs:
            lines.append(
                f"| {label} | {run['seed']} | {100 * run['average_accuracy']:.2f} | "
                f"{100 * run['backward_transfer']:+.2f} | {run['model_size'][-1]:.2f}x | "
                f"{_mask_sizes(run)} | "
                f"{_duration(run['seconds'])} | {run.get('epochs_trained', '')} | "
                f"{', '.join(run.get('ignored_settings') or []) or '-'} |"
            )
    finished = {(r["method"], r["seed"]) for r in payload["runs"]}
    missing = [
        f"{name} seed {seed}"
        for seed in payload["seeds"]
        for name in payload["methods"]
        if (name, seed) not in finished
    ]
    if missing:
        lines += ["", f"Not finished: {', '.join(missing)}. `--resume` runs them."]
    lines += ["", "## Commands", "", "```"] + list(payload.get("commands", [])) + ["```", ""]
    return "\n".join(lines)


def _write_markdown(payload, folder):
    path = Path(folder) / REPORT_FILE
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(results_markdown(payload))
    os.replace(temporary, path)
    return path


def _figure(size=(6.5, 4.2)):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=size)
    FigureCanvasAgg(figure)
    return figure, figure.add_subplot()


def _plot_curves(groups, path, curve, ylabel, title, reference=None):
    figure, axes = _figure()
    longest = 1
    for _, label, runs in groups:
        values = np.asarray([curve(run) for run in runs], dtype=float)
        steps = np.arange(1, values.shape[1] + 1)
        longest = max(longest, len(steps))
        mean = values.mean(axis=0)
        (line,) = axes.plot(steps, mean, marker="o", label=label)
        if len(values) > 1:
            std = values.std(axis=0, ddof=1)
            axes.fill_between(steps, mean - std, mean + std, color=line.get_color(), alpha=0.15)
    if reference is not None:
        axes.axhline(reference, color="grey", linestyle="--", linewidth=1)
    axes.set_xticks(np.arange(1, longest + 1))
    axes.set_xlabel("after task")
    axes.set_ylabel(ylabel)
    axes.set_title(title)
    axes.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path, format="png", dpi=100)
    return Path(path)


def plot_results(payload, folder):
    """Writes the PNG plots of a results.json's content into `folder`; returns their paths."""
    folder = Path(folder)
    groups = _grouped(payload)
    if not groups:
        return []
    seeds = f"mean over {len({r['seed'] for r in payload['runs']})} seed(s)"
    paths = [
        _plot_curves(
            groups, folder / "average_accuracy.png",
            lambda run: 100 * np.asarray(
                AccuracyMatrix.from_dict(run["accuracy"]).step_average_accuracy()
            ),
            "average accuracy over tasks learned (%)",
            f"Average accuracy after each task ({seeds})",
        ),
        _plot_curves(
            groups, folder / "model_size.png", lambda run: run["model_size"],
            "model size (x full-size backbone)", f"Model size after each task ({seeds})",
            reference=1.0,
        ),
    ]  # fmt: skip
    for name, label, runs in groups:
        matrix = _mean_matrix(runs)
        paths.append(
            matrix.plot_heatmap(
                folder / f"accuracy_{method_file_stem(name)}.png",
                title=f"{label}: accuracy (%), mean of {len(runs)} seed(s)",
            )
        )
    return paths


def report(out):
    """Rebuilds RESULTS.md and the plots from `out/results.json` alone (no training).

    Args:
        out: the folder `bench()` wrote (or the path of its results.json).

    Returns:
        The paths written: RESULTS.md first, then the PNG plots.

    Raises:
        ValueError: results.json is missing or is not a bench results file.
    """
    path = _results_path(out)
    payload = load_results(path)
    folder = path.parent
    return [_write_markdown(payload, folder)] + plot_results(payload, folder)


def summary(payload):
    """The Table 1 of RESULTS.md (method, average accuracy, BWT, size, time) as Markdown."""
    text = results_markdown(payload)
    start = text.find("| method |")
    return text[start : text.find("\n\n", start)] if start >= 0 else "No run has finished yet."
