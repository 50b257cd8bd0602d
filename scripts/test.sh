#!/usr/bin/env bash
# The test command of the README (and of CI): set up, lint, the stand-alone C++ test of csrc/,
# then the whole pytest suite (slow end-to-end tests included; a bare `pytest` skips them) on two
# worker processes, one test file per worker at a time (a file's fixtures are built once).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
ruff check .
ruff format --check .
# The C++ build is kept between runs (an unchanged csrc/ is not compiled again); the build of a
# checkout that was moved or copied here is started afresh.
build=build/cpp-tests
if ! grep -qsx "CMAKE_HOME_DIRECTORY:INTERNAL=$(pwd -P)" "$build/CMakeCache.txt"; then
  rm -rf "$build"
fi
mkdir -p "$build"
cmake -S . -B "$build" -DTFBREAK_CPP_TESTS=ON -DTFBREAK_PYTHON_MODULE=OFF -DCMAKE_BUILD_TYPE=Release > "$build/configure.log" \
  || { cat "$build/configure.log"; exit 1; }
cmake --build "$build" --target test_native_core -j 2 > "$build/build.log" || { cat "$build/build.log"; exit 1; }
ctest --test-dir "$build" --output-on-failure
python3 -m pytest -q -p no:cacheprovider -m "slow or not slow" -n 2 --dist loadfile "$@"
