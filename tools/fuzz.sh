#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan + UBSan) and runs each for SECONDS (default 60)
# from the regression corpus in tests/fuzz/corpus. New crashing inputs belong in that corpus.
# Usage: tools/fuzz.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
command -v clang++ >/dev/null || { echo "fuzz: needs clang (apt-get install clang libclang-rt-14-dev)"; exit 1; }
cmake -S . -B build-fuzz -G Ninja -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DSX_BUILD_FUZZERS=ON -DSX_BUILD_TESTS=OFF >/dev/null
cmake --build build-fuzz --target fuzz_csv fuzz_safetensors fuzz_checkpoint fuzz_features
for target in csv safetensors checkpoint features; do
  work=$(mktemp -d)
  cp tests/fuzz/corpus/$target/* "$work/"
  echo "--- fuzz_$target for ${seconds}s"
  build-fuzz/src/*/fuzz_$target "$work" -max_total_time="$seconds" -max_len=65536 -print_final_stats=1 2>&1 |
    grep -E "stat::number_of_executed_units|stat::peak_rss|ERROR|SUMMARY|DONE|Done" || true
  rm -rf "$work"
done
