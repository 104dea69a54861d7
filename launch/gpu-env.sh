# Sourced by the scripts that run ON the GPU machine (gpu-check.sh, tools/bench_gpu.sh):
# the machine's torch, the Debian libraries it may lack (unpacked from .gpu-deps/debs, see
# gpu-prepare.sh), the fixtures, and gpu_build [TARGET...] to configure and build build-gpu/.
# Sets: torch_prefix, deps_root, fixtures; exports LD_LIBRARY_PATH.
torch_prefix=$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)')

# Libraries the image may lack: unpack Debian's packages (carried in .gpu-deps/debs).
deps_root=$PWD/.gpu-deps/root
mkdir -p "$deps_root"
need() {  # need HEADER DEB...
  local header=$1; shift
  if [ -e "/usr/include/$header" ] || [ -e "/usr/local/include/$header" ]; then return; fi
  echo "not on this machine: $header -> using Debian's $*"
  for deb in "$@"; do dpkg -x .gpu-deps/debs/"${deb}"_*.deb "$deps_root"; done
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

# gpu_build [TARGET...]: configure build-gpu/ against the machine's torch and build the targets
# (default: everything). CUDA is required (SX_REQUIRE_CUDA: the configure fails if this torch has
# none); the kernels are built for this GPU's compute capability (9.0 if nvidia-smi cannot say).
# Returns non-zero on failure.
gpu_build() {
  local arch
  arch=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d ' ')
  [[ $arch =~ ^[0-9]+\.[0-9]+$ ]] || arch=9.0
  echo "gpu_build: TORCH_CUDA_ARCH_LIST=$arch, Python3 $(command -v python3)"
  cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_PREFIX_PATH="$torch_prefix;$deps_root/usr" -DSX_FIXTURES_DIR="$fixtures" \
    -DSX_REQUIRE_CUDA=ON -DTORCH_CUDA_ARCH_LIST="$arch" -DPython3_EXECUTABLE="$(command -v python3)" ||
    { echo "gpu_build: configure FAILED (SX_REQUIRE_CUDA: a torch without CUDA fails here)"; return 1; }
  local targets=()
  for t in "$@"; do targets+=(--target "$t"); done
  local t0=$SECONDS
  cmake --build build-gpu --parallel "$(nproc)" "${targets[@]}" || return 1
  echo "build wall $((SECONDS - t0)) s"
}
