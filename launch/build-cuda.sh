#!/usr/bin/env bash
# Configures and builds the CUDA tree: every source, the GPU-only paths included, against a
# libtorch 2.x built with CUDA, with nvcc and NCCL. On the development and CI machines (CUDA 13
# toolkit, no GPU) it proves that the GPU code compiles and links, and its unit and multi-rank
# suites test libtorch 2.x's CPU paths; on a GPU machine the same build runs the GPU tests.
#
# Usage: launch/build-cuda.sh [extra cmake arguments]
#   SX_PYTHON       the interpreter whose torch to build against (default: the venv of
#                   launch/install-py-deps.sh, .venv, else python3 on PATH, as on the GPU machine)
#   SX_BUILD_DIR    the tree (default build-cuda)
#   SX_CUDA_ARCHS   TORCH_CUDA_ARCH_LIST (default 9.0: H100 and H200)
#   SX_BUILD_TYPE   CMAKE_BUILD_TYPE (default RelWithDebInfo)
# Exits 3 (and says why in one line) when there is no nvcc: the CUDA tree cannot be built here.
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${SX_BUILD_DIR:-build-cuda}
python=${SX_PYTHON:-}
if [ -z "$python" ]; then
  if [ -x .venv/bin/python ]; then python=$PWD/.venv/bin/python; else python=$(command -v python3); fi
fi
if ! command -v nvcc >/dev/null; then
  for d in /usr/local/cuda/bin /usr/local/cuda-13.0/bin; do
    [ -x "$d/nvcc" ] && export PATH=$d:$PATH && break
  done
fi
command -v nvcc >/dev/null || { echo "build-cuda: no nvcc (CUDA toolkit) on PATH or in /usr/local/cuda: the CUDA tree is not built" >&2; exit 3; }
torch_dir=$("$python" -c 'import os, torch; print(os.path.dirname(torch.__file__))') ||
  { echo "build-cuda: $python has no torch; run launch/install-py-deps.sh" >&2; exit 2; }
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
if [ ! -f "$build_dir/CMakeCache.txt" ]; then
  mkdir -p "$build_dir"
  # The torch directory itself first: its lib/ must win over a system libtorch (Debian's).
  cmake -S . -B "$build_dir" "${generator[@]}" -DCMAKE_BUILD_TYPE="${SX_BUILD_TYPE:-RelWithDebInfo}" \
    -DCMAKE_PREFIX_PATH="$torch_dir;$torch_dir/share/cmake" -DPython3_EXECUTABLE="$python" \
    -DTORCH_CUDA_ARCH_LIST="${SX_CUDA_ARCHS:-9.0}" -DSX_REQUIRE_CUDA=ON "$@" >"$build_dir/configure.log" 2>&1 ||
    { cat "$build_dir/configure.log" >&2; exit 1; }
  grep -E "siamese-xlmr: libtorch|Found NCCL" "$build_dir/configure.log" >&2 || true
fi
cmake --build "$build_dir" --parallel "$(nproc)"
