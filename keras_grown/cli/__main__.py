"""`python -m keras_grown.cli`: the `keras-grown` command."""

import sys

from keras_grown.cli import main

sys.exit(main())
