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
* optionally **PackNet** of our engine (`--packnet`) and GROWN with the
  paper's `target="scratch"` (`--scratch-target`).

    python benchmarks/one_fit.py --streams split,confusable,permuted --seeds 0,1,2
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
    arguments.add_argument("--packnet", action="store_true")
    arguments.add_argument("--scratch-target", action="store_true")
    arguments.add_argument("--no-loop", action="store_true",
                           help="skip the design-card loop")
    arguments.add_argument("--json", default=None, help="write every outcome there")
    args = arguments.parse_args(argv)
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

    def grown_learn(stream, seed, method=None, target=None):
        model = method or kg.GrownModel(backbone="lenet5", input_shape=(28, 28, 1))
        result = kg.learn(model, stream, epochs=args.epochs, batch_size=args.batch_size,
                          seed=seed, target=target)
        return (result.accuracy.average_accuracy(), result.model_size[-1],
                {"growth_rounds": result.growth_rounds})

    def design_card_loop(stream, seed):
        model = kg.GrownModel(backbone="lenet5", input_shape=(28, 28, 1))
        for index, task in enumerate(stream):
            keras.utils.set_random_seed(seed + index)
            model.add_task(task.train, num_classes=task.num_classes)
            model.fit(prepare(task.train, args.batch_size, shuffle=True, seed=seed + index),
                      validation_data=prepare(task.val, 256), epochs=args.epochs, verbose=0)
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
            contenders = {
                f"plain Scratch {k * args.epochs} epochs":
                    (lambda k=k: plain_scratch(stream, seed, k * args.epochs))
                for k in args.scratch_budgets
            }
            contenders["GROWN learn()"] = lambda: grown_learn(stream, seed)
            if not args.no_loop:
                contenders["GROWN design-card loop"] = lambda: design_card_loop(stream, seed)
            if args.packnet:
                contenders["PackNet (engine)"] = lambda: grown_learn(
                    stream, seed, methods.PackNet(backbone="lenet5"))
            if args.scratch_target:
                contenders['GROWN learn(target="scratch")'] = lambda: grown_learn(
                    stream, seed, target="scratch")
            for contender, run in contenders.items():
                keras.backend.clear_session()
                gc.collect()
                keras.utils.set_random_seed(seed)
                start = time.perf_counter()
                accuracy, size, extra = run()
                wall = time.perf_counter() - start
                outcome = dict(stream=stream_key, seed=seed, contender=contender,
                               accuracy=accuracy, size=size, seconds=wall, **extra)
                outcomes.append(outcome)
                print(json.dumps(outcome), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(outcomes, indent=1))
    print()
    print("| stream | seed | contender | accuracy | size | wall s | / plain Scratch E |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for outcome in outcomes:
        base = next(o for o in outcomes if o["stream"] == outcome["stream"]
                    and o["seed"] == outcome["seed"] and o["contender"].startswith("plain"))
        print(f"| {outcome['stream']} | {outcome['seed']} | {outcome['contender']} | "
              f"{100 * outcome['accuracy']:.2f} % | {outcome['size']:.2f}x | "
              f"{outcome['seconds']:.1f} | {outcome['seconds'] / base['seconds']:.2f}x |")


if __name__ == "__main__":
    main()
