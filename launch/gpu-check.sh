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
torch_prefix=$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)')
python3 -c 'import torch;print("torch", torch.__version__, "cuda", torch.version.cuda)'

# Libraries the image may lack: unpack Debian's packages (carried in .gpu-deps/debs).
deps_root=$PWD/.gpu-deps/root
mkdir -p "$deps_root"
need() {  # need HEADER DEB...
  local header=$1; shift
  if [ -e "/usr/include/$header" ] || [ -e "/usr/local/include/$header" ]; then return; fi
  echo "not on this machine: $header -> using Debian's $*"
  for deb in "$@"; do dpkg -x .gpu-deps/debs/${deb}_*.deb "$deps_root"; done
}
need CLI/CLI.hpp libcli11-dev
need nlohmann/json.hpp nlohmann-json3-dev
need utf8proc.h libutf8proc-dev libutf8proc2
need gtest/gtest.h libgtest-dev
need sentencepiece_processor.h libsentencepiece-dev libsentencepiece0
need xxhash.h libxxhash-dev
# Debian's -dev symlinks point at absolute /usr paths; make them relative to the root.
find "$deps_root" -type l | while read -r l; do
  t=$(readlink "$l"); case $t in /*) ln -sf "$deps_root$t" "$l";; esac
done
export LD_LIBRARY_PATH=$deps_root/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}

fixtures=$PWD/../shared/fixtures
[ -d "$fixtures" ] || fixtures=$PWD/.fixtures

step "configure (libtorch from $torch_prefix)"
cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$torch_prefix;$deps_root/usr" -DSX_FIXTURES_DIR="$fixtures" \
  || { echo "GPU CHECK FAILED: configure"; exit 1; }
step "build"
/usr/bin/time -f "build wall %e s" cmake --build build-gpu --parallel "$(nproc)" \
  || { echo "GPU CHECK FAILED: build"; exit 1; }
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
