"""keras-grown: GROWN continual learning for Keras 3.

Grow a small seed network only when necessary, learn selective masks over
frozen old weights, and keep every finished task bitwise intact.
"""

import os as _os

_os.environ.setdefault("KERAS_BACKEND", "tensorflow")

# The `keras-grown` command starts without TensorFlow's start-up lines; for a program that imports
# keras-grown as a library this does nothing (keras_grown/cli/quiet.py says what and why).
from keras_grown.cli import quiet as _quiet  # noqa: E402  (standard library only)

_quiet.start()

from keras_grown import backbones  # noqa: E402
from keras_grown import bench  # noqa: E402
from keras_grown import callbacks  # noqa: E402
from keras_grown import datasets  # noqa: E402
from keras_grown import evaluation  # noqa: E402
from keras_grown import export  # noqa: E402
from keras_grown import layers  # noqa: E402
from keras_grown import masks  # noqa: E402
from keras_grown import methods  # noqa: E402
from keras_grown import tuning  # noqa: E402
from keras_grown import wsn  # noqa: E402  (registers methods.WSN / methods.get("wsn"))
from keras_grown.export import export_all  # noqa: E402
from keras_grown.learning import LearnResult, learn, set_seed  # noqa: E402
from keras_grown.model import GrownModel, ModelSize, TaskSummary  # noqa: E402
from keras_grown.version import __version__  # noqa: E402

__all__ = [
    "GrownModel",
    "LearnResult",
    "ModelSize",
    "TaskSummary",
    "__version__",
    "backbones",
    "bench",
    "callbacks",
    "datasets",
    "evaluation",
    "export",
    "export_all",
    "layers",
    "learn",
    "masks",
    "methods",
    "set_seed",
    "tuning",
]
