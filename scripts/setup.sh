#!/usr/bin/env bash
# Everything tfbreak needs on a fresh Debian machine (as root): the real Fashion-MNIST from
# Debian's dataset-fashion-mnist package (the offline default data set), then the package with
# its native extension and the test tools. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist
fi
python3 -m pip install -q -e ".[test]"
