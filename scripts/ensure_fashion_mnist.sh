#!/usr/bin/env bash
# Makes sure the real Fashion-MNIST IDX files are on this machine (Debian's
# dataset-fashion-mnist package) and visible in Keras' cache folder, so that
# nothing downloads at run time.
set -euo pipefail
src=/usr/share/datasets/fashion-mnist
files="train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz"
missing=0
for f in $files; do [ -f "$src/$f" ] || missing=1; done
if [ "$missing" = 1 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "Installing Fashion-MNIST from Debian (dataset-fashion-mnist) ..."
    (apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1) || \
      (apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist >/dev/null)
  else
    echo "Fashion-MNIST is missing. Install it with:" >&2
    echo "    sudo apt-get install -y dataset-fashion-mnist" >&2
    exit 1
  fi
fi
cache="${KERAS_HOME:-$HOME/.keras}/datasets/fashion-mnist"
mkdir -p "$cache"
for f in $files; do [ -e "$cache/$f" ] || ln -s "$src/$f" "$cache/$f"; done
echo "Fashion-MNIST ready in $cache"
