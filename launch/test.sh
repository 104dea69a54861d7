#!/usr/bin/env bash
# The test command of the README and CI: installs what is missing (Debian's packages, and the
# PyPI venv of launch/install-py-deps.sh), then builds and tests two trees:
#   build/       Debian's libtorch 1.13 (CPU), the demo's build: every test label (unit, mpi, cli,
#                e2e, slurm, hf, cluster; gpu tests skip without a GPU, saying why);
#   build-cuda/  PyPI's libtorch 2.x with CUDA (launch/build-cuda.sh): every source, GPU-only code
#                included, compiled and linked; its unit, multi-rank and gpu suites run on the CPU.
# Fixtures are read from ../shared/fixtures. Extra arguments go to both ctest runs.
#   SX_SKIP_CUDA_BUILD=1   test build/ only (a machine without the CUDA toolkit);
#   SX_REQUIRE_CUDA_BUILD=1 (CI) fail instead of skipping when the CUDA tree cannot be built.
set -euo pipefail
cd "$(dirname "$0")/.."
launch/install-deps.sh
launch/install-py-deps.sh >/dev/null
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
t0=$SECONDS
phase() { echo "=== test.sh: $* ($(( SECONDS - t0 )) s)"; }

phase "build/ (Debian libtorch)"
launch/build.sh
phase "ctest build/"
status=0
ctest --test-dir "${SX_BUILD_DIR:-build}" --output-on-failure --parallel 2 "$@" || status=1

if [ "${SX_SKIP_CUDA_BUILD:-0}" = 1 ]; then
  phase "build-cuda/ skipped (SX_SKIP_CUDA_BUILD=1)"
else
  phase "build-cuda/ (PyPI libtorch with CUDA)"
  cuda_status=0
  SX_BUILD_DIR=build-cuda launch/build-cuda.sh || cuda_status=$?
  if [ $cuda_status -eq 3 ] && [ "${SX_REQUIRE_CUDA_BUILD:-0}" != 1 ]; then
    echo "test.sh: the CUDA tree was not built (see the line above); its tests are skipped"
  elif [ $cuda_status -ne 0 ]; then
    echo "test.sh: the CUDA tree failed to build"
    status=1
  else
    phase "ctest build-cuda/ (labels unit, mpi, gpu)"
    ctest --test-dir build-cuda -L 'unit|mpi|gpu' --output-on-failure --parallel 2 "$@" || status=1
  fi
fi
phase "done, status $status"
exit $status
