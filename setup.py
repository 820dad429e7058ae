"""Packaging for keras-grown."""

import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
VERSION = re.search(
    r'__version__ = "([^"]+)"', (HERE / "keras_grown" / "version.py").read_text()
).group(1)

setup(
    name="keras-grown",
    version=VERSION,
    description=(
        "GROWN continual learning for Keras 3: grow a small seed network only "
        "when necessary, with zero forgetting by construction."
    ),
    long_description=(HERE / "README.md").read_text(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["keras_grown", "keras_grown.*"]),
    python_requires=">=3.10",
    install_requires=[
        "tensorflow>=2.16",
        # keras_grown/_framework.py uses private Keras APIs checked on 3.10-3.15.
        "keras>=3.10,<3.16",
        "tensorflow-datasets>=4.9",
        "keras-tuner>=1.4",
        "tensorboard>=2.16",
        "numpy>=1.26",
        "matplotlib>=3.7",
    ],
    extras_require={
        "digits": ["scikit-learn>=1.3"],
        "test": ["pytest>=7.4", "scikit-learn>=1.3"],
        "gpu": ["tensorflow[and-cuda]>=2.16"],
        # `make docs`: the guides and the API reference (never needed to install or test).
        "docs": ["mkdocs>=1.6", "mkdocstrings[python]>=0.26"],
    },
    entry_points={"console_scripts": ["keras-grown=keras_grown.cli:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
