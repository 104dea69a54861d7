#!/usr/bin/env bash
# Configures and builds siamese-xlmr (Release with debug info) into build/.
# Usage: launch/build.sh [extra cmake arguments]
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${SX_BUILD_DIR:-build}
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
if [ ! -f "$build_dir/CMakeCache.txt" ]; then
  cmake -S . -B "$build_dir" "${generator[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
fi
cmake --build "$build_dir" --parallel "$(nproc)"
