"""Searching `l0_lambda` and friends with KerasTuner.

One trial is one run of GROWN (`keras_grown.learning.learn`) over the first
`tune_tasks` tasks of a stream (or the whole stream), scored on
**validation** data only:

* `val_accuracy` = the mean, over the tuning tasks, of each task's
  validation accuracy when it finished (`LearnResult.val_accuracy`);
* `model_size` = the model-size ratio after the last tuning task;
* `accuracy_size` = `val_accuracy - size_penalty * max(0, model_size - size_budget)`.

`objective="accuracy"` maximizes `val_accuracy`; `objective="accuracy_size"`
maximizes `accuracy_size`. Test data is never read: during a trial every
tuning task's test split is replaced by its validation split, so even the
accuracy matrix `learn()` fills holds validation accuracies.

Searched (each can be fixed by passing a number, or given another range as
a `(low, high)` pair):

| name | default range | sampling |
| --- | --- | --- |
| `l0_lambda` | 1e-3 .. 10 | log |
| `seed_ratio` | 0.2 .. 0.8 | linear |
| `learning_rate` | 1e-4 .. 1e-2 (Adam, the weights) | log |
| `temperature` | 0.5 .. 2.0 (Gumbel-Sigmoid) | linear |

Example:

```python
import keras_grown as kg

stream = kg.datasets.split_fashion_mnist(num_tasks=5, train_per_task=2000)
best, tuner = kg.tuning.tune(stream, max_trials=20, tuner="bayesian", epochs=2,
                             tune_tasks=2, directory="runs/tune", seed_ratio=0.5)
model = kg.GrownModel("lenet5", input_shape=stream.input_shape,
                      l0_lambda=best["l0_lambda"], seed_ratio=best["seed_ratio"],
                      temperature=best["temperature"])
```

The package holds the `GrownHyperModel` with its search space
(`hypermodel`) and the tuners with `tune()` (`tuners`); `keras-grown tune`
is in `keras_grown.cli`.
"""

from keras_grown.tuning.hypermodel import (
    OBJECTIVE_FORMULAS,
    OBJECTIVES,
    SEARCH_SPACE,
    GrownHyperModel,
)
from keras_grown.tuning.tuners import (
    TUNERS,
    GrownBayesianOptimization,
    GrownHyperband,
    GrownRandomSearch,
    tune,
)

__all__ = [
    "GrownBayesianOptimization",
    "GrownHyperModel",
    "GrownHyperband",
    "GrownRandomSearch",
    "OBJECTIVES",
    "SEARCH_SPACE",
    "TUNERS",
    "tune",
]
