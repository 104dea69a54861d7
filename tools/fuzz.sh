#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan + UBSan) and runs each for SECONDS (default 60)
# from the regression corpus in tests/fuzz/corpus. New crashing inputs belong in that corpus.
# Usage: tools/fuzz.sh [SECONDS [TARGET...]]   (targets: csv safetensors checkpoint features)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
targets=("${@:2}")
((${#targets[@]})) || targets=(csv safetensors checkpoint features)
command -v clang++ >/dev/null || { echo "fuzz: needs clang (apt-get install clang libclang-rt-14-dev)"; exit 1; }
cmake -S . -B build-fuzz -G Ninja -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DSX_BUILD_FUZZERS=ON -DSX_BUILD_TESTS=OFF >/dev/null
cmake --build build-fuzz --target "${targets[@]/#/fuzz_}"
# -timeout / -rss_limit_mb: an input that takes over 10 s or 2 GB is a finding (libFuzzer's
# defaults, 20 min and 2 GB, let a slow input stall a short run unnoticed). LSAN_OPTIONS:
# leaks inside libhdf5 itself (each explained in the file); ours are never suppressed. A
# suppression matches a frame by name, so leak stacks must unwind through libhdf5, which has no
# frame pointers: hence the slow unwinder (fast_unwind_on_malloc=0). max_allocation_size_mb and
# allocator_may_return_null: HDF5 1.10 allocates what a crafted object header declares (8 GB
# or 2^62 bytes for a 64 KB file, before reading it) and handles the null it gets from malloc
# when that fails; here any request over 2 GB fails as it would under a 2 GB memory limit. Our
# own code refuses such sizes before allocating, and a std::bad_alloc escaping it still
# crashes the target (only UserErrors are caught), so these findings stay visible.
export LSAN_OPTIONS="suppressions=$PWD/tests/fuzz/lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
export ASAN_OPTIONS="fast_unwind_on_malloc=0:allocator_may_return_null=1:max_allocation_size_mb=2048${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
findings=()
for target in "${targets[@]}"; do
  work=$(mktemp -d)
  cp tests/fuzz/corpus/$target/* "$work/"
  out=build-fuzz/findings/$target
  mkdir -p "$out"
  echo "--- fuzz_$target for ${seconds}s (full log: $out.log, crashing inputs: $out/)"
  status=0
  build-fuzz/src/*/fuzz_$target "$work" -max_total_time="$seconds" -max_len=65536 -timeout=10 \
    -rss_limit_mb=2048 -artifact_prefix="$out/" -print_final_stats=1 >"$out.log" 2>&1 || status=$?
  grep -E "stat::number_of_executed_units|stat::peak_rss|ERROR|SUMMARY|DONE|Done|Test unit written" \
    "$out.log" || true
  rm -rf "$work"
  [[ $status == 0 ]] || findings+=("fuzz_$target (exit $status)")
done
if ((${#findings[@]})); then
  echo "fuzz: findings in ${findings[*]}: add each input under build-fuzz/findings to tests/fuzz/corpus"
  exit 1
fi
