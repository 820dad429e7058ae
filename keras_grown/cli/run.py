"""`keras-grown run`: learn a stream with GROWN; write results, plots and TensorBoard logs."""

import json
import os
import platform
import sys
import time

from keras_grown.checkpoint import _json_default
from keras_grown.cli.arguments import (
    accuracy_target,
    growth_candidates,
    non_negative_int,
    positive_int,
)
from keras_grown.version import __version__

STRATEGIES = ("none", "mirrored", "multiworker")

BACKBONES = ("lenet5", "lenet_small", "vgg16_bn", "resnet18")

STREAMS = (
    "split_fashion_mnist",
    "confusable_fashion_mnist",
    "permuted_fashion_mnist",
    "split_digits",
    "split_cifar100",
    "cifar100_superclass",
)


def add_run_command(subparsers):
    """Adds `keras-grown run` to the `subparsers` of the `keras-grown` parser; returns it."""
    run = subparsers.add_parser(
        "run",
        help="learn a task stream with GROWN and write results, plots and TensorBoard logs",
        description=(
            "Learn every task of a stream with GROWN (kg.learn) and write "
            "results.json, accuracy.md, accuracy.png, growth.png and TensorBoard "
            "logs to --out."
        ),
    )
    run.add_argument("--stream", default="split_fashion_mnist", choices=STREAMS)
    run.add_argument("--num-tasks", type=positive_int, default=None,
                     help="number of tasks (default: the stream's own)")
    run.add_argument("--train-per-task", type=positive_int, default=None,
                     help="training examples per task (default: all)")
    run.add_argument("--first-tasks", type=positive_int, default=None,
                     help="learn only the first N tasks of the stream (default: all)")
    run.add_argument("--backbone", default=None, choices=BACKBONES,
                     help="default: lenet5, or lenet_small for images smaller than 16x16 "
                          "(split_digits)")
    run.add_argument("--epochs", type=positive_int, default=3,
                     help="epochs of each task's fit() (GROWN: one fit per task)")
    run.add_argument("--batch-size", type=positive_int, default=64)
    run.add_argument("--seed-ratio", type=float, default=0.5)
    run.add_argument("--capacity", type=float, default=2.0)
    run.add_argument("--l0-lambda", type=float, default=0.1)
    run.add_argument("--learning-rate", type=float, default=1e-3)
    run.add_argument("--mask-learning-rate", type=float, default=0.1)
    run.add_argument("--gumbel", default="concrete", choices=("concrete", "paper"))
    run.add_argument("--growth-candidates", type=growth_candidates, default=0.5,
                     help="dormant channels one growth round may switch on, as a fraction of "
                          "each layer's full-size width ('all': the whole pool)")
    run.add_argument("--target", type=accuracy_target, default=None,
                     help="'none' (default: grow while the task underfits its training data, "
                          "decided inside the task's one fit()), an accuracy in (0, 1] (grow "
                          "while below it), or 'scratch' (a full-size network trained on the "
                          "task first sets it: the paper's, about one more network's time)")
    run.add_argument("--max-growth-rounds", type=int, default=2)
    run.add_argument("--fixed-mask-epochs", type=non_negative_int, default=None,
                     help="epochs at the end of each task's fit(), trained under its fixed "
                          "hard masks (default: 40 %% of --epochs, at least 1; 0: none)")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--jit-compile", action="store_true", help="compile with XLA")
    run.add_argument("--strategy", default="none", choices=STRATEGIES,
                     help="train under a tf.distribute strategy: 'mirrored' (every local GPU, "
                          "MirroredStrategy) or 'multiworker' (the machines TF_CONFIG names, "
                          "MultiWorkerMirroredStrategy; start the same command on each). "
                          "--batch-size is the global batch, split between the replicas")
    run.add_argument("--compare-scratch", action="store_true",
                     help="also train one full-size plain network per task (Scratch) and report both")
    run.add_argument("--tensorboard", dest="tensorboard", action="store_true", default=True,
                     help="write TensorBoard logs of growth, size, l0 and mask scores to "
                          "OUT/tensorboard (the default)")
    run.add_argument("--no-tensorboard", dest="tensorboard", action="store_false",
                     help="do not write TensorBoard logs")
    run.add_argument("--out", default=os.path.join("runs", "grown"), help="results folder")
    run.add_argument("--resume", action="store_true",
                     help="continue from the last checkpoint in OUT/checkpoints (written "
                          "atomically after every task); same settings required")
    run.set_defaults(func=command_run)
    return run


def _distribution_strategy(name):
    """The tf.distribute strategy `--strategy` names (the default strategy for 'none')."""
    import tensorflow as tf

    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        if "TF_CONFIG" not in os.environ:
            print("keras-grown run: TF_CONFIG is not set; MultiWorkerMirroredStrategy runs "
                  "this machine as its only worker.", file=sys.stderr, flush=True)
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def _stream(args):
    from keras_grown import datasets

    kwargs = {}
    if args.num_tasks is not None:
        kwargs["num_tasks"] = args.num_tasks
    if args.train_per_task is not None:
        kwargs["train_per_task"] = args.train_per_task
    kwargs["seed"] = args.seed
    return datasets.load_stream(args.stream, **kwargs)


def command_run(args):
    # MultiWorkerMirroredStrategy must exist before TensorFlow runs any op.
    strategy = _distribution_strategy(args.strategy)
    if not strategy.extended.should_checkpoint:
        # Every worker runs the same program; only the chief writes to --out.
        args.out = os.path.join(args.out, f"worker_{strategy.cluster_resolver.task_id}")
    # The model, its optimizers and every model learn() builds or restores
    # (scratch references, a resumed checkpoint) belong to the strategy.
    with strategy.scope():
        return _learn_and_report(args, strategy)


def _learn_and_report(args, strategy):
    import keras

    import keras_grown as kg
    from keras_grown.learning import learn, scratch_baseline, set_seed

    set_seed(args.seed)
    stream = _stream(args)
    if args.backbone is None:
        args.backbone = kg.backbones.default_backbone(stream.input_shape)
    if args.first_tasks is not None:
        stream = stream[: args.first_tasks]
    model = kg.GrownModel(
        backbone=args.backbone, input_shape=stream.input_shape, seed_ratio=args.seed_ratio,
        capacity=args.capacity, l0_lambda=args.l0_lambda, gumbel=args.gumbel,
        mask_learning_rate=args.mask_learning_rate, seed=args.seed,
        growth_candidates=args.growth_candidates,
    )
    model.compile(optimizer=keras.optimizers.Adam(args.learning_rate),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                  jit_compile=bool(args.jit_compile))
    # Only once the stream and the model are built: a bad setting leaves no folder.
    os.makedirs(args.out, exist_ok=True)
    callbacks = []
    if args.tensorboard:
        # One step axis across tasks (Keras' TensorBoard restarts it at every fit).
        callbacks.append(kg.callbacks.GrowthMonitor(os.path.join(args.out, "tensorboard")))
    print(f"keras-grown {__version__}: GROWN on {args.stream} ({len(stream)} tasks), "
          f"backbone {args.backbone}, seed_ratio {args.seed_ratio}, capacity {args.capacity}, "
          f"l0_lambda {args.l0_lambda}, target {args.target}, "
          f"{strategy.num_replicas_in_sync} replica(s)", flush=True)
    start = time.perf_counter()
    from keras_grown.methods import GROWN

    result = learn(
        GROWN.from_model(model, fixed_mask_epochs=args.fixed_mask_epochs), stream,
        epochs=args.epochs, target=args.target,
        max_growth_rounds=args.max_growth_rounds, batch_size=args.batch_size,
        callbacks=callbacks, verbose=2, seed=args.seed,
        checkpoint_dir=os.path.join(args.out, "checkpoints"), resume=args.resume,
    )
    elapsed = time.perf_counter() - start
    matrix = result.accuracy
    scratch = None
    if args.compare_scratch:
        print("Scratch: one full-size plain network per task ...", flush=True)
        scratch = scratch_baseline(model, stream, epochs=args.epochs, batch_size=args.batch_size,
                                   seed=args.seed)
    payload = {
        "command": " ".join(["keras-grown"] + sys.argv[1:]),
        "version": __version__,
        "machine": {"platform": platform.platform(), "python": platform.python_version(),
                    "cpus": os.cpu_count(), "replicas": strategy.num_replicas_in_sync},
        "settings": {k: v for k, v in vars(args).items() if k != "func"},
        "average_accuracy": matrix.average_accuracy(),
        "backward_transfer": matrix.backward_transfer(),
        "final_model_size": result.model_size[-1],
        "model_size": result.model.model_size().__dict__,
        "seconds": elapsed,
        "result": result.to_dict(),
    }
    if scratch is not None:
        payload["scratch"] = {
            "average_accuracy": scratch.accuracy.average_accuracy(),
            "final_model_size": scratch.model_size[-1],
            "seconds": sum(scratch.time_per_task),
            "result": scratch.to_dict(),
        }
    with open(os.path.join(args.out, "results.json"), "w") as handle:
        json.dump(payload, handle, indent=2, default=_json_default)
    comparison = _comparison(matrix, result, elapsed, scratch)
    with open(os.path.join(args.out, "accuracy.md"), "w") as handle:
        handle.write(matrix.to_markdown() + "\n\n" + comparison + "\n")
    matrix.plot_heatmap(os.path.join(args.out, "accuracy.png"))
    result.plot_growth(os.path.join(args.out, "growth.png"))
    print(matrix.to_markdown())
    print()
    print(comparison)
    print(f"\naverage accuracy {matrix.average_accuracy():.4f}  BWT {matrix.backward_transfer():+.4f}"
          f"  model size {result.model_size[-1]:.3f}x  ({elapsed:.0f} s)")
    print(f"\nResults in {os.path.abspath(args.out)}: results.json, accuracy.md, accuracy.png, "
          "growth.png" + (", tensorboard/" if args.tensorboard else ""))
    if args.tensorboard:
        print(f"TensorBoard: tensorboard --logdir {os.path.join(args.out, 'tensorboard')}")
    return 0


def _comparison(matrix, result, elapsed, scratch):
    rows = [
        "| method | average accuracy | BWT | model size | training time |",
        "| --- | --- | --- | --- | --- |",
        f"| GROWN | {100 * matrix.average_accuracy():.2f} % | "
        f"{100 * matrix.backward_transfer():+.2f} | {result.model_size[-1]:.3f}x | {elapsed:.0f} s |",
    ]
    if scratch is not None:
        rows.append(
            f"| Scratch | {100 * scratch.accuracy.average_accuracy():.2f} % | "
            f"{100 * scratch.accuracy.backward_transfer():+.2f} | {scratch.model_size[-1]:.0f}x | "
            f"{sum(scratch.time_per_task):.0f} s |"
        )
    return "\n".join(rows)
