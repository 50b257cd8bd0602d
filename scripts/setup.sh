#!/usr/bin/env bash
# Everything tfbreak needs on a fresh Debian machine (as root): the real Fashion-MNIST from
# Debian's dataset-fashion-mnist package (the offline default data set), then the package with
# its native extension and the test tools. Idempotent: the install (about 30 s, mostly the
# compile) is skipped when this checkout is the one installed and pyproject.toml, CMakeLists.txt
# and csrc/ are unchanged since (a digest of them in build/setup.stamp).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist
fi
here=$(pwd -P)
digest="$(find pyproject.toml CMakeLists.txt csrc -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-64) $here"
installed() {
  (cd / && python3 -c "import sys, tfbreak, tfbreak._native
sys.exit(not tfbreak.__file__.startswith(sys.argv[1] + '/tfbreak/'))" "$here") 2>/dev/null
}
if [ "$(cat build/setup.stamp 2>/dev/null)" != "$digest" ] || ! installed; then
  python3 -m pip install -q -e ".[test]"
  mkdir -p build
  echo "$digest" > build/setup.stamp
fi
