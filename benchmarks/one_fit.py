"""Benchmark 8: GROWN in one fit() per task against plain Keras Scratch, three streams.

The question of issue 26: does `kg.learn()` with its defaults (one `fit()` per
task, `GrowWhenNecessary` deciding at epoch boundaries) reach plain Scratch's
accuracy at a fraction of its size, in about its wall time? Per stream and
seed, in one process, interleaved:

* **plain Scratch** at E epochs (and, with `--scratch-budgets`, at 2E and 4E):
  a new full-size Keras LeNet-5 (`Conv2D`/`Dense`) per task, `compile()` +
  `fit()`, test accuracy of every task at the end;
* **GROWN, learn()**: `kg.learn(GrownModel(backbone="lenet5"), stream,
  epochs=E)` with every default;
* **GROWN, design-card loop**: `add_task`; one `fit(epochs=E,
  validation_data=val)`; `finish_task` (the README's quickstart), written
  out here as a user writes it;
* optionally other methods of our engine (`--methods packnet,wsn,finetune`;
  `--packnet` is `--methods packnet`) and GROWN with the paper's
  `target="scratch"` (`--scratch-target`).

With `--budgets 3,5,10` every contender but plain Scratch runs at each of
those epoch counts (plain Scratch at `--scratch-budgets` multiples of each),
the accuracy-against-wall-time curves of issue 26; `--plot FILE.png` draws
them from the outcomes (and `--plot` with `--from-json` redraws a saved run).

    python benchmarks/one_fit.py --streams split,confusable,permuted --seeds 0,1,2
    python benchmarks/one_fit.py --streams confusable --budgets 3,5,10 \
        --methods packnet,wsn,finetune --no-loop --json curve.json --plot curve.png
"""

import argparse
import gc
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402

def _seeds(text):
    return [int(part) for part in text.split(",") if part.strip()]


STREAMS = {
    "split": ("split_fashion_mnist", {}),
    "confusable": ("confusable_fashion_mnist", {}),
    "permuted": ("permuted_fashion_mnist", {"num_tasks": 5}),
}


def main(argv=None):
    arguments = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    arguments.add_argument("--streams", default="split,confusable,permuted")
    arguments.add_argument("--seeds", type=_seeds, default=[0])
    arguments.add_argument("--epochs", type=int, default=5)
    arguments.add_argument("--train-per-task", type=int, default=4445,
                           help="images per task before the 10%% validation split")
    arguments.add_argument("--test-per-task", type=int, default=1000)
    arguments.add_argument("--batch-size", type=int, default=64)
    arguments.add_argument("--scratch-budgets", type=harness.int_list, default=[1],
                           help="multiples of --epochs plain Scratch trains, e.g. 1,2,4")
    arguments.add_argument("--packnet", action="store_true", help="= --methods packnet")
    arguments.add_argument("--methods", default="",
                           help="engine methods beside GROWN, e.g. packnet,wsn,finetune")
    arguments.add_argument("--budgets", type=harness.int_list, default=None,
                           help="epoch counts to run every contender at (default: --epochs)")
    arguments.add_argument("--plot", default=None,
                           help="draw accuracy against wall time per contender into this PNG")
    arguments.add_argument("--from-json", default=None,
                           help="with --plot: redraw the outcomes of an earlier --json run")
    arguments.add_argument("--scratch-target", action="store_true")
    arguments.add_argument("--no-loop", action="store_true",
                           help="skip the design-card loop")
    arguments.add_argument("--skip", default="",
                           help="comma-separated contender names to leave out, e.g. "
                                "'GROWN learn() 5 epochs' (runs another job already made)")
    arguments.add_argument("--json", default=None, help="write every outcome there")
    args = arguments.parse_args(argv)
    if args.from_json:
        outcomes = json.loads(Path(args.from_json).read_text())
        plot(outcomes, args.plot or Path(args.from_json).with_suffix(".png"))
        return
    extra_methods = [m for m in args.methods.split(",") if m]
    if args.packnet and "packnet" not in extra_methods:
        extra_methods.append("packnet")
    tf, keras = harness.setup(args.seeds[0])
    import networks

    import keras_grown as kg
    from keras_grown import methods
    from keras_grown.learning import prepare

    outcomes = []

    def plain_scratch(stream, seed, epochs):
        accuracy = []
        for index, task in enumerate(stream):
            backbone = networks.plain_network("lenet5", "full", compile=False, head=False)
            model = keras.Sequential(
                [backbone, keras.layers.Dense(task.num_classes, activation="softmax")]
            )
            model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                          metrics=["accuracy"])
            model.fit(prepare(task.train, args.batch_size, shuffle=True, seed=seed + index),
                      validation_data=prepare(task.val, 256), epochs=epochs, verbose=0)
            accuracy.append(model.evaluate(prepare(task.test, 256), verbose=0,
                                           return_dict=True)["accuracy"])
        return sum(accuracy) / len(accuracy), float(len(stream)), {}

    def grown_learn(stream, seed, epochs, method=None, target=None):
        model = method or kg.GrownModel(backbone="lenet5", input_shape=(28, 28, 1))
        result = kg.learn(model, stream, epochs=epochs, batch_size=args.batch_size,
                          seed=seed, target=target)
        return (result.accuracy.average_accuracy(), result.model_size[-1],
                {"growth_rounds": result.growth_rounds})

    def design_card_loop(stream, seed, epochs):
        model = kg.GrownModel(backbone="lenet5", input_shape=(28, 28, 1))
        for index, task in enumerate(stream):
            keras.utils.set_random_seed(seed + index)
            model.add_task(task.train, num_classes=task.num_classes)
            model.fit(prepare(task.train, args.batch_size, shuffle=True, seed=seed + index),
                      validation_data=prepare(task.val, 256), epochs=epochs, verbose=0)
            model.finish_task()
        accuracy = []
        for index, task in enumerate(stream):
            model.select_task(index)
            accuracy.append(model.evaluate(prepare(task.test, 256), verbose=0,
                                           return_dict=True)["accuracy"])
        return sum(accuracy) / len(accuracy), model.model_size().ratio, {}

    for stream_key in args.streams.split(","):
        name, kwargs = STREAMS[stream_key]
        for seed in args.seeds:
            stream = kg.datasets.load_stream(
                name, train_per_task=args.train_per_task,
                test_per_task=args.test_per_task, seed=seed, **kwargs,
            )
            contenders = {}
            for epochs in args.budgets or [args.epochs]:
                for k in args.scratch_budgets:
                    contenders[f"plain Scratch {k * epochs} epochs"] = (
                        k * epochs, lambda e=k * epochs: plain_scratch(stream, seed, e))
                contenders[f"GROWN learn() {epochs} epochs"] = (
                    epochs, lambda e=epochs: grown_learn(stream, seed, e))
                if not args.no_loop:
                    contenders[f"GROWN design-card loop {epochs} epochs"] = (
                        epochs, lambda e=epochs: design_card_loop(stream, seed, e))
                for method_name in extra_methods:
                    label = methods.get(method_name).label
                    contenders[f"{label} (engine) {epochs} epochs"] = (
                        epochs, lambda e=epochs, n=method_name: grown_learn(
                            stream, seed, e, methods.get(n, backbone="lenet5")))
                if args.scratch_target:
                    contenders[f'GROWN learn(target="scratch") {epochs} epochs'] = (
                        epochs, lambda e=epochs: grown_learn(stream, seed, e, target="scratch"))
            for skipped in filter(None, (part.strip() for part in args.skip.split(","))):
                contenders.pop(skipped, None)
            for contender, (epochs, run) in contenders.items():
                keras.backend.clear_session()
                gc.collect()
                keras.utils.set_random_seed(seed)
                start = time.perf_counter()
                accuracy, size, extra = run()
                wall = time.perf_counter() - start
                outcome = dict(stream=stream_key, seed=seed, contender=contender,
                               method=contender.rsplit(" ", 2)[0], epochs=epochs, accuracy=accuracy, size=size, seconds=wall, **extra)
                outcomes.append(outcome)
                print(json.dumps(outcome), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(outcomes, indent=1))
    if args.plot:
        plot(outcomes, args.plot)
    print()
    print("| stream | seed | contender | accuracy | size | wall s | / plain Scratch E |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for outcome in outcomes:
        base = next(o for o in outcomes if o["stream"] == outcome["stream"]
                    and o["seed"] == outcome["seed"] and o["contender"].startswith("plain")
                    and o["epochs"] == outcome["epochs"])
        print(f"| {outcome['stream']} | {outcome['seed']} | {outcome['contender']} | "
              f"{100 * outcome['accuracy']:.2f} % | {outcome['size']:.2f}x | "
              f"{outcome['seconds']:.1f} | {outcome['seconds'] / base['seconds']:.2f}x |")


def plot(outcomes, path):
    """Average accuracy against wall time, one curve per method and stream (mean over seeds)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    streams = sorted({o["stream"] for o in outcomes})
    figure = Figure(figsize=(5.2 * len(streams), 4.2))
    FigureCanvasAgg(figure)
    for index, stream in enumerate(streams):
        axes = figure.add_subplot(1, len(streams), index + 1)
        rows = [o for o in outcomes if o["stream"] == stream]
        for method in dict.fromkeys(o["method"] for o in rows):
            points = {}
            for o in rows:
                if o["method"] == method:
                    points.setdefault(o["epochs"], []).append(o)
            xs, ys = [], []
            for epochs in sorted(points):
                runs = points[epochs]
                xs.append(sum(o["seconds"] for o in runs) / len(runs))
                ys.append(100 * sum(o["accuracy"] for o in runs) / len(runs))
            line, = axes.plot(xs, ys, marker="o", label=method)
            for x, y, epochs in zip(xs, ys, sorted(points)):
                axes.annotate(str(epochs), (x, y), textcoords="offset points", xytext=(3, 3),
                              fontsize=7, color=line.get_color())
        axes.set_title(f"{stream} (numbers: epochs per task)")
        axes.set_xlabel("wall time of the whole stream, s")
        axes.set_ylabel("average accuracy, %")
        axes.grid(alpha=0.3)
        axes.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
