#!/usr/bin/env bash
# Configures and builds siamese-xlmr (Release with debug info) into build/.
# Usage: launch/build.sh [extra cmake arguments]
#   SX_BUILD_DIR      the tree (default build)
#   SX_BUILD_TARGETS  build only these targets (space-separated; default: everything, tests
#                     included). The demo builds only what it runs: siamese-xlmr.
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${SX_BUILD_DIR:-build}
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
if [ ! -f "$build_dir/CMakeCache.txt" ]; then
  cmake -S . -B "$build_dir" "${generator[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
fi
targets=()
for t in ${SX_BUILD_TARGETS:-}; do targets+=(--target "$t"); done
cmake --build "$build_dir" --parallel "$(nproc)" "${targets[@]}"
