"""Benchmark 1: the overhead of one GrownModel training step over plain Keras.

The GrownModel has one finished task and learns task 1 with `grow()` on, so
every step samples the selective, attentive and grown masks (Gumbel noise over
every kernel), builds the effective kernels from the owner/frozen/free stores
and updates the scores with their own optimizer. It is timed against

* a plain Keras network of the **same allocated width** (capacity x
  full-size: the same conv/dense shapes), the target's reference: the
  difference is the price of the masks and the storage;
* a plain Keras network of the **full-size width**: what a user without GROWN
  would train.

Each contender runs `model.train_function(iterator)` on one repeated batch
(input pipeline out of the measurement) after warm-up; the contenders are
interleaved (A B C, C B A, ...) and the per-round ratios reported as median
[min-max].

    python benchmarks/train_step.py                  # LeNet-5 and VGG16-BN, graph and XLA
    python benchmarks/train_step.py --backbones lenet5 --modes graph --repeats 9
"""

import gc
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402

TITLE = "1. Train-step overhead"


def main(argv=None):
    arguments = harness.parser(__doc__.splitlines()[0], repeats=5)
    arguments.add_argument("--backbones", default="lenet5,vgg16_bn")
    arguments.add_argument("--modes", default="graph,jit", help="graph (tf.function), jit (XLA)")
    arguments.add_argument("--batch-lenet", type=harness.int_list, default=[64, 256])
    arguments.add_argument("--batch-vgg", type=harness.int_list, default=[16])
    arguments.add_argument(
        "--repeats-vgg-jit",
        type=int,
        default=3,
        help="rounds for VGG16-BN under XLA (very slow on a CPU)",
    )
    arguments.add_argument("--capacity", type=float, default=2.0)
    arguments.add_argument("--seed-ratio", type=float, default=0.5)
    arguments.add_argument(
        "--seconds",
        type=float,
        default=1.5,
        help="aim of one timed measurement (steps per round are chosen from it)",
    )
    args = harness.parse(arguments, argv)
    if args.quick:
        args.backbones, args.modes = "lenet5", "graph"
        args.batch_lenet, args.seconds = [16], 0.0
    tf, keras = harness.setup(args.seed)
    import networks

    device_key, _ = harness.device()
    rows, results = [], []
    for backbone in args.backbones.split(","):
        batches = args.batch_lenet if backbone == "lenet5" else args.batch_vgg
        for mode in args.modes.split(","):
            for batch in batches:
                result = measure(networks, backbone, mode, batch, args)
                results.append(result)
                rows.append(_row(result))
                print(_row(result), flush=True)
                keras.backend.clear_session()
                gc.collect()

    lines = [
        "One training step of a GrownModel (task 1 of a stream, one finished task, `grow()` "
        f"on: selective, attentive and grown masks all sampled; seed_ratio {args.seed_ratio}, "
        f"capacity {args.capacity}) against plain Keras networks with the same conv/dense "
        "shapes at the allocated width (capacity x full-size) and at the full-size width. "
        "`train_function(iterator)` on one repeated batch, after warm-up; contenders "
        f"interleaved over {args.repeats} rounds ({min(args.repeats, args.repeats_vgg_jit)} for "
        "VGG16-BN with XLA); ratio = median [min-max] of the per-round "
        "ratios. LeNet-5 on real Fashion-MNIST, VGG16-BN on random 32x32x3 images. "
        "graph = `jit_compile=False` (tf.function), jit = `jit_compile=True` (XLA).",
        "",
        harness.table(
            [
                "backbone",
                "mode",
                "batch",
                "steps x rounds",
                "GrownModel",
                "plain, allocated",
                "plain, full-size",
                "GrownModel / plain allocated",
                "GrownModel / plain full-size",
            ],
            rows,
        ),
        "",
    ]
    for result in results:
        limit = 1.10 if device_key == "gpu" and result["mode"] == "jit" else 1.25
        lines.append(
            harness.verdict(
                f"{result['backbone']} {result['mode']} batch {result['batch']}, GrownModel "
                "step / plain step at the allocated width",
                harness.summarize(result["ratio_allocated"])["median"],
                limit,
            )
        )
    if device_key == "cpu":
        lines.append(
            "- The issue's XLA target (<= 1.10x) is for a GPU; on this CPU every mode is held "
            "to the CPU target (<= 1.25x)."
        )
    harness.report(args, "train_step", TITLE, "\n".join(lines))
    return results


def measure(networks, backbone, mode, batch, args):
    jit = mode == "jit"
    data = networks.task_batches(backbone, batch, seed=args.seed)
    grown = networks.grown_on_second_task(
        backbone,
        data,
        jit_compile=jit,
        seed_ratio=args.seed_ratio,
        capacity=args.capacity,
        task0_steps=1 if args.quick else 4,
    )
    contenders = {
        "grown": grown,
        "allocated": networks.plain_twin(grown, "allocated", jit_compile=jit),
        "full": networks.plain_twin(grown, "full", jit_compile=jit),
    }
    networks.check_same_shapes(grown, contenders["allocated"])
    x, y = data[1]
    # Warm up (trace, compile) with one step each, then time one more step
    # to choose how many steps a measurement runs.
    warm = {name: networks.step_runner(m, x, y, 1) for name, m in contenders.items()}
    for run in warm.values():
        run()
    once = warm["grown"]()
    steps = max(1, int(round(args.seconds / max(once, 1e-6))))
    runners = {name: networks.step_runner(m, x, y, steps) for name, m in contenders.items()}
    rounds = args.repeats
    if backbone != "lenet5" and mode == "jit":
        rounds = min(args.repeats, args.repeats_vgg_jit)
    times = harness.interleaved(runners, rounds)
    return {
        "backbone": backbone,
        "mode": mode,
        "batch": batch,
        "steps": steps,
        "rounds": rounds,
        "times": times,
        "ratio_allocated": harness.ratios(times["grown"], times["allocated"]),
        "ratio_full": harness.ratios(times["grown"], times["full"]),
    }


def _row(result):
    median = {k: harness.summarize(v)["median"] for k, v in result["times"].items()}
    return [
        result["backbone"],
        result["mode"],
        result["batch"],
        f"{result['steps']} x {result['rounds']}",
        harness.format_seconds(median["grown"]),
        harness.format_seconds(median["allocated"]),
        harness.format_seconds(median["full"]),
        harness.format_ratio(result["ratio_allocated"]),
        harness.format_ratio(result["ratio_full"]),
    ]


if __name__ == "__main__":
    main()
