"""Profile: where the GrownModel's train-step and inference overhead comes from.

Ablations of one LeNet-5 step (task 1, one finished task, `grow()` on), each a
separate model traced under its own setting and timed interleaved with the
others and with the plain network of the same allocated width:

* **as is**: the GrownModel step.
* **auto_select noise (before 0.1.0)**: the same step with the Gumbel noise
  drawn as the library did before: `keras.random.uniform`, whose TensorFlow
  backend leaves the algorithm to `auto_select`, and two logs. The library
  now names Philox and takes one log. Same distribution; only the
  random-number kernel differs. (The benchmark patches
  `keras_grown.masks.logistic_noise` in its own process.)
* **sampling, scores not trained**: the masks are sampled as usual but the
  scores are not trainable: no gradient flows to them and the mask optimizer
  has nothing to update.
* **no sampling**: the masks are not sampled (selective, attentive and grown
  masks all ones, growth off): what is left is the owner/frozen/free storage
  (`where`), the mask multiply and the second optimizer.
* **mask math only**: the effective kernels of every layer and their gradient,
  without the convolutions and matmuls: the part of the step whose cost
  depends on the number of weights, not on the batch.

and, for inference of a finished task, the GrownModel as is (the packed masks
are unpacked and applied in every call) against the same model with its
effective kernels computed once (cached) and the plain full-size network.

    python benchmarks/profile_train_step.py
"""

import gc
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402

TITLE = "6. Profile: where the overhead comes from"


def main(argv=None):
    arguments = harness.parser(__doc__.splitlines()[0], repeats=5)
    arguments.add_argument("--modes", default="graph,jit")
    arguments.add_argument("--batch", type=int, default=64)
    arguments.add_argument("--inference-batch", type=int, default=256)
    harness.add_pool_options(arguments)
    arguments.add_argument("--seconds", type=float, default=1.0)
    args = harness.parse(arguments, argv)
    if args.quick:
        args.modes, args.batch, args.inference_batch, args.seconds = "graph", 16, 32, 0.0
    tf, keras = harness.setup(args.seed)
    import networks

    step_rows, step_results = [], []
    for mode in args.modes.split(","):
        result = train_ablations(networks, tf, mode, args)
        step_results.append(result)
        for name, label in ABLATIONS.items():
            step_rows.append(
                [
                    mode,
                    label,
                    harness.format_seconds(harness.summarize(result["times"][name])["median"]),
                    harness.format_ratio(
                        harness.ratios(result["times"][name], result["times"]["plain"])
                    ),
                ]
            )
            print(step_rows[-1], flush=True)
        keras.backend.clear_session()
        gc.collect()
    noise_rows = noise_kernels(tf, keras, args)
    sampling_rows = sampling_formulations(tf, keras, args)
    inference_rows = inference_ablations(networks, tf, args)

    lines = [
        f"LeNet-5, batch {args.batch}, seed_ratio {args.seed_ratio}, capacity {args.capacity}, "
        "task 1 with `grow()` on. Each variant is its own model, timed interleaved with the "
        f"others over {args.repeats} rounds; ratio = median [min-max] against the plain "
        "network of the same allocated width.",
        "",
        harness.table(["mode", "variant", "time per step", "/ plain allocated"], step_rows),
        "",
        "Noise of one 1600 x 1600 mask (the size of LeNet-5's fc1 mask at capacity 2), "
        "compiled alone:",
        "",
        harness.table(["mode", "random-number generator", "time"], noise_rows),
        "",
        "One mask of that size sampled (straight-through Gumbel-Sigmoid, concrete form) and "
        "its gradient, forward + backward, in the library's formulation and in a fused one "
        "with the same forward value and gradient:",
        "",
        harness.table(["mode", "formulation", "time"], sampling_rows),
        "",
        f"Inference of finished task 0, batch {args.inference_batch}, graph mode:",
        "",
        harness.table(["variant", "time per batch", "/ plain full-size"], inference_rows),
        "",
        "Reading: *as is* - *sampling, scores not trained* is the price of training the "
        "scores (their gradient and the mask optimizer's Adam over the selective and "
        "attentive scores, each as large as the mask); *scores not trained* - *no sampling* "
        "is the price of sampling the masks; *no sampling* "
        "- *plain* is the storage (`where` over owner/frozen/free, the mask multiply, the "
        "l0 and growth metrics); *mask math only* is the part that scales with the number of "
        "weights, not the batch, so the ratio falls as the batch grows.",
    ]
    harness.report(args, "profile", TITLE, "\n".join(lines))
    return step_results


ABLATIONS = {
    "as_is": "GrownModel as is",
    "auto_select": "auto_select noise (before 0.1.0)",
    "frozen_scores": "sampling, scores not trained",
    "no_sampling": "no sampling (masks all ones)",
    "mask_math": "mask math only (no conv/matmul)",
    "plain": "plain, allocated width",
}


def auto_select_noise(shape, seed):
    """The noise before 0.1.0: `keras.random.uniform` (`auto_select`), two logs."""
    import keras

    u = keras.random.uniform(shape, minval=1e-6, maxval=1.0 - 1e-6, seed=seed)
    return keras.ops.log(u) - keras.ops.log1p(-u)


def train_ablations(networks, tf, mode, args):
    from keras_grown import masks

    jit = mode == "jit"
    data = networks.task_batches("lenet5", args.batch, seed=args.seed)
    x, y = data[1]

    def grown():
        return networks.grown_on_second_task(
            "lenet5",
            data,
            jit_compile=jit,
            seed_ratio=args.seed_ratio,
            capacity=args.capacity,
            task0_steps=1 if args.quick else 4,
        )

    models = {"as_is": grown()}
    models["auto_select"] = grown()
    models["frozen_scores"] = grown()
    for layer in models["frozen_scores"].grown_layers:
        for score in layer.score_variables:
            score.trainable = False
    models["frozen_scores"].train_function = None
    models["no_sampling"] = grown()
    for layer in models["no_sampling"].grown_layers:
        layer.set_mode(layer.mode.replace(selective=False, attentive=False, growth=False))
    models["no_sampling"].controller.mode = models["no_sampling"].mode.replace(growth=False)
    models["no_sampling"].train_function = None
    models["plain"] = networks.plain_twin(models["as_is"], "allocated", jit_compile=jit)

    runners = {}
    original = masks.logistic_noise
    for name, model in models.items():
        if name == "auto_select":
            masks.logistic_noise = auto_select_noise
        try:
            runners[name] = networks.step_runner(model, x, y, 1)
            runners[name]()  # trace under the patch
        finally:
            masks.logistic_noise = original
    runners["mask_math"] = mask_math_runner(tf, models["as_is"], jit)
    runners["mask_math"]()
    once = max(runners["as_is"](), 1e-6)
    steps = max(1, int(round(args.seconds / once)))
    timed = {}
    for name, model in models.items():
        timed[name] = networks.step_runner(model, x, y, steps)
    timed["mask_math"] = _repeat(runners["mask_math"], steps)
    times = harness.interleaved({name: timed[name] for name in ABLATIONS}, args.repeats)
    return {"mode": mode, "times": times, "steps": steps}


def mask_math_runner(tf, model, jit):
    """Seconds of the effective kernels of every layer and their gradient (no conv)."""
    layers = model.grown_layers
    variables = [v for layer in layers for v in (layer.free_kernel, *layer.score_variables)]

    @tf.function(jit_compile=jit)
    def step():
        with tf.GradientTape() as tape:
            total = 0.0
            for layer in layers:
                kernel, gate = layer.effective_kernel(training=True)
                total += tf.reduce_sum(kernel) + tf.reduce_sum(gate)
        gradients = tape.gradient(total, variables)
        return tf.add_n([tf.reduce_sum(g) for g in gradients if g is not None])

    def run():
        start = time.perf_counter()
        step().numpy()
        return time.perf_counter() - start

    return run


def _repeat(run, steps):
    def repeated():
        return sum(run() for _ in range(steps)) / steps

    return repeated


def noise_kernels(tf, keras, args):
    from keras_grown import masks

    generator = keras.random.SeedGenerator(args.seed)
    shape = (1600, 1600) if not args.quick else (64, 64)
    rows = []
    for mode in args.modes.split(","):
        jit = mode == "jit"
        functions = {
            "keras.random.uniform (auto_select), before 0.1.0": tf.function(
                lambda: auto_select_noise(shape, generator), jit_compile=jit
            ),
            'library now: tf.random.stateless_uniform(alg="philox")': tf.function(
                lambda: masks.logistic_noise(shape, generator), jit_compile=jit
            ),
        }
        for function in functions.values():
            function().numpy()
        rows += _median_rows(mode, functions, args.repeats, label="`{}`")
    return rows


def current_sampling(tf, score, generator):
    """`keras_grown.masks.straight_through_gumbel_sigmoid` as the library computes it."""
    from keras_grown import masks

    return masks.straight_through_gumbel_sigmoid(score, 1.0, generator, "concrete", True)


def fused_sampling(tf, score, generator, temperature=1.0):
    """The same forward value and gradient with fewer full-size operations.

    One Philox uniform; the logistic noise as `log(u / (1 - u))` (one log);
    the hard value as `score + noise > 0` (`sigmoid(z / T) > 0.5` exactly when
    `z > 0`); the straight-through gradient `dL/dm * sigmoid'(z / T) / T` in a
    custom gradient, so the sigmoid is computed in the backward pass only.
    """
    from keras.src.random.seed_generator import draw_seed

    seed = tf.cast(tf.math.floormod(draw_seed(generator), tf.int32.max - 1), "int32")
    u = tf.random.stateless_uniform(
        tf.shape(score), seed=seed, minval=1e-6, maxval=1.0 - 1e-6, alg="philox"
    )
    noise = tf.math.log(u / (1.0 - u))

    @tf.custom_gradient
    def straight_through(score):
        z = score + noise
        hard = tf.cast(z > 0.0, score.dtype)

        def gradient(upstream):
            soft = tf.sigmoid(z / temperature)
            return upstream * soft * (1.0 - soft) / temperature

        return hard, gradient

    return straight_through(score)


def sampling_formulations(tf, keras, args):
    """Forward + backward of one sampled mask (fc1's size) in the two formulations."""
    shape = (1600, 1600) if not args.quick else (64, 64)
    score = tf.Variable(tf.random.normal(shape))
    weights = tf.random.normal(shape)
    generator = keras.random.SeedGenerator(args.seed)
    rows = []
    for mode in args.modes.split(","):
        jit = mode == "jit"
        runners = {}
        for name, sample in (
            ("library (`straight_through_gumbel_sigmoid`)", current_sampling),
            ("fused (philox, one log, custom gradient)", fused_sampling),
        ):

            @tf.function(jit_compile=jit)
            def step(sample=sample):
                with tf.GradientTape() as tape:
                    loss = tf.reduce_sum(sample(tf, score, generator) * weights)
                return tape.gradient(loss, score)

            step().numpy()
            runners[name] = step
        rows += _median_rows(mode, runners, args.repeats)
    return rows


def _median_rows(mode, functions, repeats, label="{}"):
    """[mode, label, median seconds] per function of `{label: tf.function}`, timed interleaved."""

    def timer(function):
        return lambda: harness.timed(lambda: function().numpy())

    times = harness.interleaved(
        {name: timer(function) for name, function in functions.items()}, max(3, repeats)
    )
    return [
        [mode, label.format(name), harness.format_seconds(harness.summarize(times[name])["median"])]
        for name in functions
    ]


def inference_ablations(networks, tf, args):
    batch = args.inference_batch
    data = networks.task_batches("lenet5", batch, seed=args.seed)

    def finished_first_task():
        model = networks.grown_on_second_task(
            "lenet5",
            data,
            seed_ratio=args.seed_ratio,
            capacity=args.capacity,
            task0_steps=1 if args.quick else 4,
        )
        model.finish_task()
        model.select_task(0)
        return model

    model = finished_first_task()
    cached = finished_first_task()
    for layer in cached.grown_layers:
        kernel, gate = layer.effective_kernel(training=False)
        kernel, gate = tf.constant(kernel), tf.constant(gate)
        # An instance attribute shadows the method: the finished task's kernel,
        # computed once, is what every later call reads.
        object.__setattr__(
            layer, "effective_kernel", lambda training=False, k=kernel, g=gate: (k, g)
        )
    contenders = {
        "GrownModel as is (unpack + where per call)": model,
        "GrownModel, effective kernels cached": cached,
        "plain full-size": networks.plain_twin(model, "full", compile=False),
        "plain allocated width": networks.plain_twin(model, "allocated", compile=False),
    }
    x = data[0][0]
    warm = {k: networks.forward_runner(m, x, 1) for k, m in contenders.items()}
    for run in warm.values():
        run()
    once = max(warm["plain full-size"](), 1e-6)
    steps = max(1, int(round(args.seconds / 3 / once)))
    runners = {k: networks.forward_runner(m, x, steps) for k, m in contenders.items()}
    times = harness.interleaved(runners, args.repeats)
    rows = []
    for name in contenders:
        rows.append(
            [
                name,
                harness.format_seconds(harness.summarize(times[name])["median"]),
                harness.format_ratio(harness.ratios(times[name], times["plain full-size"])),
            ]
        )
        print(rows[-1], flush=True)
    return rows


if __name__ == "__main__":
    main()
