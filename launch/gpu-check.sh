#!/usr/bin/env bash
# GPU check, run ON the GPU machine (offline, nothing installable): builds against the
# machine's torch with CUDA into build-gpu/ and runs the tests that matter on a GPU.
# Prepare here first with launch/gpu-prepare.sh and carry .gpu-deps and .fixtures.
# Writes the log to $OUT (when set) and exits non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-/tmp}
log="$out/gpu-check.log"
exec > >(tee "$log") 2>&1
step() { echo "=== $* ($(date +%T))"; }

step "machine"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python3 -c 'import torch;print("torch", torch.__version__, "cuda", torch.version.cuda)'
source launch/gpu-env.sh

step "configure and build (libtorch from $torch_prefix)"
gpu_build || { echo "GPU CHECK FAILED: build"; exit 1; }
step "version"
build-gpu/src/app/siamese-xlmr version

status=0
step "GPU tests (ctest -L gpu)"
ctest --test-dir build-gpu -L gpu --output-on-failure || status=1
step "unit tests on the 2.x build (ctest -L unit)"
ctest --test-dir build-gpu -L unit --output-on-failure --parallel 8 || status=1
if [ -x launch/gpu-check-extra.sh ]; then
  step "extra GPU checks"
  launch/gpu-check-extra.sh || status=1
fi
[ $status -eq 0 ] && echo "GPU CHECK PASSED" || echo "GPU CHECK FAILED"
exit $status
