"""A quiet start for the `keras-grown` command: no TensorFlow start-up lines on a CPU machine.

Importing TensorFlow prints lines meant for its developers: the CPU instructions it was not built
for, the oneDNN notice, and, on a machine without a GPU, the CUDA probes ("Could not find cuda
drivers on your machine", "failed call to cuInit"), the last ones before absl's logging starts,
where no environment variable reaches them. A user-facing command should not greet its user with
them, so when this process is the command line (`keras-grown ...` or `python -m keras_grown.cli`)
`start()`, which `keras_grown/__init__.py` calls before anything imports TensorFlow:

* sets `TF_CPP_MIN_LOG_LEVEL=2` when the user has not set it (TensorFlow's C++ INFO and WARNING
  lines: the CPU-instruction and oneDNN notices), so a value the user set wins;
* imports TensorFlow and lists the GPUs with the process's standard error captured, then writes
  back every captured line but the start-up lines of `START_UP_NOISE`: errors, Python warnings and
  anything else still show.

`TF_ENABLE_ONEDNN_OPTS` is left alone: it changes which kernels run (and their rounding), not only
what is printed, and the notice about it is an INFO line the log level already hides. When the user
set `TF_CPP_MIN_LOG_LEVEL` themselves, nothing is captured either: they asked for those lines. For a
program that imports keras-grown as a library, `start()` does nothing.

Standard library only: it runs while `keras_grown` is being imported.
"""

import contextlib
import os
import re
import sys
import tempfile

# The lines TensorFlow prints while it is imported and probes for devices on a machine without a
# GPU (or without CUDA's libraries), before absl's logging honours TF_CPP_MIN_LOG_LEVEL.
START_UP_NOISE = re.compile(
    r"^WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|^[IWE]\d{4} [\d:. ]+\d+ (cudart_stub|cuda_platform|cuda_dnn|cuda_fft|cuda_blas|"
    r"cuda_executor|cuda_diagnostics|cpu_feature_guard|port)\.cc:\d+\]"
    r"|^To enable the following instructions: .*rebuild TensorFlow"
    r"|TF-TRT Warning: Could not find TensorRT"
)

COMMANDS = ("keras-grown", "keras-grown.exe")
MODULES = ("keras_grown.cli", "keras_grown.cli.__main__")


def is_command_line():
    """Whether this process is `keras-grown ...` or `python -m keras_grown.cli ...`."""
    if sys.argv and os.path.basename(sys.argv[0]) in COMMANDS:
        return True
    # While `python -m` imports the package, sys.argv[0] is "-m"; the interpreter's own
    # arguments still say which module runs.
    arguments = list(getattr(sys, "orig_argv", ()))
    return any(flag == "-m" and module in MODULES
               for flag, module in zip(arguments, arguments[1:]))


@contextlib.contextmanager
def start_up_lines_hidden():
    """Captures the process's standard error (file descriptor 2) and writes it back, noise removed."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept = [line for line in captured.read().decode("utf-8", "replace").splitlines(True)
                    if not START_UP_NOISE.search(line)]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


def start():
    """Quiet start of the command line (see the module docstring); nothing for a library user."""
    if not is_command_line():
        return
    if "TF_CPP_MIN_LOG_LEVEL" in os.environ:
        return  # the user's own setting: TensorFlow prints what they asked for
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    try:
        os.fstat(2)
    except OSError:
        return  # no standard error to capture
    with start_up_lines_hidden():
        import tensorflow as tf

        # The CUDA probe ("failed call to cuInit") runs on the first device query.
        tf.config.list_physical_devices("GPU")
