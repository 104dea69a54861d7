#!/usr/bin/env bash
# One short device call for step-speed work (issue #10): builds the binary and the CUDA-graph
# tests against the machine's torch, runs those tests, then `bench train` at 32 and 128 pairs
# eagerly and with train.cuda_graphs, each followed by a kineto profile of a few steps
# (summary in the log, Chrome traces gzipped under $OUT/profile-*). Prepare and carry as for
# tools/bench_gpu.sh (launch/gpu-prepare.sh; carry .gpu-deps, .fixtures, .bench).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-/tmp/gpu-profile}
mkdir -p "$out"
exec > >(tee "$out/gpu-profile.log") 2>&1
step() { echo "=== $* ($(date +%T))"; }
step "machine"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
source launch/gpu-env.sh
step "build"
[ -f build-gpu/CMakeCache.txt ] && cmake -S . -B build-gpu -DSX_CUDA_GRAPHS=ON >/dev/null
if ! gpu_build siamese-xlmr test_step_graphs; then
  echo "BUILD FAILED with CUDA graphs; building without them (-DSX_CUDA_GRAPHS=OFF)"
  cmake -S . -B build-gpu -DSX_CUDA_GRAPHS=OFF >/dev/null &&
    cmake --build build-gpu --parallel "$(nproc)" --target siamese-xlmr test_step_graphs
fi
step "CUDA graph tests"
timeout -k 5 120 build-gpu/tests/test_step_graphs || echo "TESTS FAILED (exit $?)"
bin=build-gpu/src/app/siamese-xlmr
bench() {  # bench NAME WARMUP [overrides...]
  local name=$1 warmup=$2; shift 2
  step "bench train: $name"
  timeout -k 5 ${SX_BENCH_LIMIT:-150} "$bin" bench train --model configs/models/xlmr-base/config.json \
    --pairs 32,128 --warmup "$warmup" --steps "${SX_BENCH_STEPS:-20}" --max-len 128 \
    --layout packed --json "$out/$name.json" --profile "$out/profile-$name" --profile-steps 3 \
    model.device=cuda model.autocast_bf16=true model.attention=sdpa "$@" ||
    echo "bench $name FAILED (exit $?)"
  gzip -f "$out/profile-$name"/*.json 2>/dev/null || true
}
bench eager 5
bench graphs 40 train.cuda_graphs=true
step "done"
