"""Benchmark 3: inference of a finished task, GrownModel and compact export vs plain Keras.

A GrownModel learns two tasks (task 0 with growth, task 1 with `grow()`),
both finished; task 0 is selected. Its predictions are computed

* through the GrownModel as a user calls it (`compact_inference=True`, the
  default: a finished task predicts through a cached plain model of what it
  uses, built on the first eager call);
* through the GrownModel's masked network (the stored packed masks of task 0
  are unpacked and applied to the frozen kernels at the allocated width: what
  `compact_inference=False` runs);
* through the compact export (`keras_grown.export.build_task_model`: a plain
  Keras model with only the channels task 0 uses);
* through a plain Keras network of the full-size width (the reference of the
  targets) and one of the allocated width.

Each is a compiled `model(x, training=False)` on one batch, after warm-up,
interleaved over the rounds.

    python benchmarks/inference.py
    python benchmarks/inference.py --backbones lenet5 --modes graph,jit --repeats 9
"""

import gc
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402

TITLE = "3. Inference of a finished task"


def main(argv=None):
    arguments = harness.parser(__doc__.splitlines()[0], repeats=7)
    arguments.add_argument("--backbones", default="lenet5,vgg16_bn")
    arguments.add_argument("--modes", default="graph,jit")
    arguments.add_argument("--batch-lenet", type=int, default=256)
    arguments.add_argument("--batch-vgg", type=int, default=32)
    arguments.add_argument(
        "--repeats-vgg-jit",
        type=int,
        default=3,
        help="rounds for VGG16-BN under XLA (very slow on a CPU)",
    )
    harness.add_pool_options(arguments)
    arguments.add_argument("--seconds", type=float, default=1.0)
    args = harness.parse(arguments, argv)
    if args.quick:
        args.backbones, args.modes, args.batch_lenet, args.seconds = "lenet5", "graph", 32, 0.0
    tf, keras = harness.setup(args.seed)
    import networks
    import numpy as np

    from keras_grown import export

    rows, results = [], []
    for backbone in args.backbones.split(","):
        batch = args.batch_lenet if backbone == "lenet5" else args.batch_vgg
        data = networks.task_batches(backbone, batch, seed=args.seed)
        grown = networks.grown_on_second_task(
            backbone,
            data,
            seed_ratio=args.seed_ratio,
            capacity=args.capacity,
            task0_steps=1 if args.quick else 8,
        )
        grown.fit(
            tf.data.Dataset.from_tensor_slices(data[1]).repeat().batch(batch),
            steps_per_epoch=1 if args.quick else 8,
            epochs=1,
            verbose=0,
        )
        grown.finish_task()
        grown.select_task(0)
        compact = export.build_task_model(grown, 0)
        size = grown.model_size()
        x = data[0][0]
        difference = float(
            np.max(np.abs(compact(x, training=False).numpy() - grown(x, training=False).numpy()))
        )
        for mode in args.modes.split(","):
            jit = mode == "jit"
            contenders = {
                "grown": grown,
                "masked": _MaskedNetwork(grown),
                "export": compact,
                "full": networks.plain_twin(grown, "full", compile=False),
                "allocated": networks.plain_twin(grown, "allocated", compile=False),
            }
            warm = {k: networks.forward_runner(m, x, 1, jit) for k, m in contenders.items()}
            for run in warm.values():
                run()
            once = max(warm["grown"](), 1e-6)
            steps = max(1, int(round(args.seconds / once)))
            runners = {k: networks.forward_runner(m, x, steps, jit) for k, m in contenders.items()}
            rounds = args.repeats
            if backbone != "lenet5" and mode == "jit":
                rounds = min(args.repeats, args.repeats_vgg_jit)
            times = harness.interleaved(runners, rounds)
            result = {
                "backbone": backbone,
                "mode": mode,
                "batch": batch,
                "steps": steps,
                "times": times,
                "grown_ratio": harness.ratios(times["grown"], times["full"]),
                "masked_ratio": harness.ratios(times["masked"], times["full"]),
                "export_ratio": harness.ratios(times["export"], times["full"]),
                "size": size.ratio,
                "export_width": export.export_size(grown, 0).kernel_weights
                / grown.full_size_weights,
                "difference": difference,
            }
            results.append(result)
            median = {k: harness.summarize(v)["median"] for k, v in times.items()}
            rows.append(
                [
                    backbone,
                    mode,
                    batch,
                    f"{steps} x {rounds}",
                    harness.format_seconds(median["grown"]),
                    harness.format_seconds(median["masked"]),
                    harness.format_seconds(median["export"]),
                    harness.format_seconds(median["full"]),
                    harness.format_seconds(median["allocated"]),
                    harness.format_ratio(result["grown_ratio"]),
                    harness.format_ratio(result["masked_ratio"]),
                    harness.format_ratio(result["export_ratio"]),
                    f"{result['export_width']:.2f}x",
                    f"{difference:.1e}",
                ]
            )
            print(rows[-1], flush=True)
        del grown, compact
        keras.backend.clear_session()
        gc.collect()

    lines = [
        "Predictions of task 0 (finished; the model has 2 finished tasks, seed_ratio "
        f"{args.seed_ratio}, capacity {args.capacity}) on one batch: compiled "
        "`model(x, training=False)` after warm-up, contenders interleaved (*GrownModel*: "
        "as a user calls it, compact inference on; *masked network*: "
        "`compact_inference=False`); ratio = median "
        "[min-max] of per-round ratios against the plain full-size network. "
        "*max diff* is the largest absolute difference between the export's and the "
        "GrownModel's probabilities; *export kernels / full-size kernels* is the size of the "
        "export's conv/dense kernels (kept input x kept output channels) over one full-size "
        "backbone's. LeNet-5 on real Fashion-MNIST, VGG16-BN on random "
        "images (briefly trained, so its masks are not those of a real run).",
        "",
        harness.table(
            [
                "backbone",
                "mode",
                "batch",
                "steps x rounds",
                "GrownModel",
                "masked network",
                "compact export",
                "plain full-size",
                "plain allocated",
                "GrownModel / full-size",
                "masked / full-size",
                "export / full-size",
                "export kernels / full-size kernels",
                "max diff",
            ],
            rows,
        ),
        "",
    ]
    for result in results:
        name = f"{result['backbone']} {result['mode']}"
        lines.append(
            harness.verdict(
                f"{name}, compact export / plain full-size",
                harness.summarize(result["export_ratio"])["median"],
                1.0,
            )
        )
        lines.append(
            harness.verdict(
                f"{name}, GrownModel / plain full-size",
                harness.summarize(result["grown_ratio"])["median"],
                1.3,
            )
        )
        lines.append(
            f"- {name}, masked network (compact_inference=False) / plain full-size: "
            f"{harness.format_ratio(result['masked_ratio'])} (no target; before compact "
            "inference this was the GrownModel's path)"
        )
    harness.report(args, "inference", TITLE, "\n".join(lines))
    return results


class _MaskedNetwork:
    """The GrownModel's masked path (`compact_inference=False`) as a callable."""

    def __init__(self, model):
        self.model = model

    def __call__(self, images, training=False):
        return self.model.heads(self.model.backbone(images, training=training))


if __name__ == "__main__":
    main()
