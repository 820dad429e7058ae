"""Profile at a late task: where a step with masks learned goes once earlier tasks own weights.

Split Fashion-MNIST, LeNet-5, GROWN's defaults: `kg.learn()` trains the first
four tasks (2 epochs each, `target=None`), then the fifth task is added with
growth on, as `learn()` does, and its training step is timed (`fit()` on a
repeated dataset, the median time between batch ends after warm-up) under
these variants of the same model, each traced afresh:

* **as is**: the step `fit()` runs (the mask scores updated by
  `masks.ScoreAdam`, one fused kernel per variable);
* **scores with Keras' Adam**: the mask optimizer's update in Keras'
  element-wise form (what `ScoreAdam` replaced);
* **no noise**: the masks straight-through but without the Gumbel noise;
* **scores not trained**: the scores are not trainable: no score gradient,
  no mask optimizer (the masks are still sampled);

against a plain Keras network as wide as what the step computes (the plan's
widths, layer by layer) and the plain full-size LeNet-5, interleaved.

    python benchmarks/profile_late_task.py
"""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402

TITLE = "7. Profile at a late task: the step with masks learned"


def main(argv=None):
    arguments = harness.parser(__doc__.splitlines()[0], repeats=3, quick_repeats=1)
    arguments.add_argument("--train-per-task", type=int, default=1500)
    arguments.add_argument("--steps", type=int, default=60, help="timed steps per measurement")
    arguments.add_argument("--batch", type=int, default=64)
    args = harness.parse(arguments, argv)
    if args.quick:
        args.train_per_task, args.steps = 64, 8
    tf, keras = harness.setup(args.seed)
    import networks
    import numpy as np

    import keras_grown as kg
    from keras_grown import masks, methods
    from keras_grown.learning import prepare

    stream = kg.datasets.split_fashion_mnist(
        num_tasks=5, train_per_task=args.train_per_task, test_per_task=100, seed=args.seed
    )
    result = kg.learn(
        methods.GROWN(backbone="lenet5", seed_ratio=0.5, capacity=2.0), stream[:4],
        epochs=1 if args.quick else 2, batch_size=args.batch, seed=args.seed,
    )
    model = result.model
    model.add_task(stream[4].train, grow=True)
    data = prepare(stream[4].train, args.batch, shuffle=True, seed=args.seed).repeat()
    plans = [(layer.name, len(layer.plan.in_index), len(layer.plan.out_index))
             for layer in model.grown_layers]
    widths = [out for _, _, out in plans]
    plain = {
        "plain, as wide as the step computes": networks.plain_network("lenet5", widths),
        "plain full-size": networks.plain_network("lenet5", "full"),
    }

    class Clock(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.ends = []

        def on_train_batch_end(self, batch, logs=None):
            self.ends.append(time.perf_counter())

    def step_seconds(network):
        clock = Clock()
        warm = min(5, args.steps - 2)
        network.fit(data, steps_per_epoch=args.steps, epochs=1, verbose=0, callbacks=[clock])
        return float(np.median(np.diff(clock.ends[warm:])))

    score_class = type(model.mask_optimizer)

    def grown(variant):
        def run():
            model.mask_optimizer.__class__ = (
                keras.optimizers.Adam if variant == "scores with Keras' Adam" else score_class
            )
            for layer in model.grown_layers:
                layer.set_mode(layer.mode.replace(noise=variant != "no noise"))
                layer.plan.kernel_score.trainable = variant != "scores not trained"
                layer.plan.grown_score.trainable = variant != "scores not trained"
            model.train_function = None
            model.make_train_function(force=True)
            return step_seconds(model)

        return run

    variants = ["as is", "scores with Keras' Adam", "no noise", "scores not trained"]
    contenders = {f"GrownModel, {name}": grown(name) for name in variants}
    contenders.update({name: (lambda n=network: step_seconds(n)) for name, network in
                       plain.items()})
    times = harness.interleaved(contenders, args.repeats)
    assert score_class is masks.ScoreAdam
    reference = times["plain, as wide as the step computes"]
    full = times["plain full-size"]
    rows = [
        [name, harness.format_seconds(harness.summarize(values)["median"]),
         harness.format_ratio(harness.ratios(values, reference)),
         harness.format_ratio(harness.ratios(values, full))]
        for name, values in times.items()
    ]
    lines = [
        "Split Fashion-MNIST, LeNet-5, GROWN's defaults; four tasks learned by `kg.learn()` "
        f"({args.train_per_task} images per task), then the fifth added with growth on. The "
        "step's plan (input x output channels computed per layer): "
        + ", ".join(f"{name} {inputs} x {outputs}" for name, inputs, outputs in plans)
        + f". Batch {args.batch}, graph mode, median time per step over {args.steps} steps, "
        f"contenders interleaved over {args.repeats} round(s); ratio = median [min-max].",
        "",
        harness.table(
            ["contender", "time per step", "/ plain as wide", "/ plain full-size"], rows
        ),
        "",
        "Reading: *as is* - *scores not trained* is the price of training the scores (their "
        "gradient and their optimizer update, as large as the masks); *scores with Keras' "
        "Adam* - *as is* is what the fused update saves; *as is* - *no noise* the price of "
        "the Gumbel samples; *scores not trained* - *plain as wide* the storage (owner/frozen/"
        "free `where`, the mask multiply) and the sampling.",
        "",
    ]
    harness.report(args, "profile_late_task", TITLE, "\n".join(lines))
    return times


if __name__ == "__main__":
    main()
