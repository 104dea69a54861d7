#!/usr/bin/env bash
# The test command of the README and CI: installs what is missing (Debian's packages, and the
# PyPI venv of launch/install-py-deps.sh), then builds and tests two trees:
#   build/       Debian's libtorch 1.13 (CPU), the demo's build: every test label (unit, mpi, cli,
#                e2e, slurm, hf, cluster; gpu tests skip without a GPU, saying why);
#   build-cuda/  PyPI's libtorch 2.x with CUDA (launch/build-cuda.sh): every source, GPU-only code
#                included, compiled and linked (at nice 19 while build/'s tests run); its unit,
#                multi-rank and gpu suites run on the CPU afterwards.
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

# The CUDA tree compiles at the lowest priority while build/'s tests run: much of their time
# they wait on processes, timeouts and network namespaces, and a nice-19 compile takes only the
# cores they leave idle (the tests pass on busy machines; tools/soak.sh checks that). It stays
# in this script's session and process group: a new session is a scheduling group of its own
# (autogroup), where nice would not lower it against the tests, and a kill of the group (CI
# cancelling, Ctrl-C) ends it with the tests.
cuda_pid=
# kill_tree PID: PID and every process below it.
kill_tree() {
  local child
  for child in $(pgrep -P "$1"); do kill_tree "$child"; done
  kill "$1" 2>/dev/null || true
}
if [ "${SX_SKIP_CUDA_BUILD:-0}" != 1 ]; then
  cuda_log=$(mktemp /tmp/sx-build-cuda.XXXXXX)
  trap 'rm -f "$cuda_log"; [ -z "$cuda_pid" ] || kill_tree "$cuda_pid"' EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  phase "build-cuda/ (PyPI libtorch with CUDA) started beside the tests, at nice 19"
  idle_io=()
  command -v ionice >/dev/null && idle_io=(ionice -c 3)
  SX_BUILD_DIR=build-cuda nice -n 19 ${idle_io[@]+"${idle_io[@]}"} launch/build-cuda.sh \
    >"$cuda_log" 2>&1 &
  cuda_pid=$!
fi

phase "ctest build/"
status=0
ctest --test-dir "${SX_BUILD_DIR:-build}" --output-on-failure --parallel 2 "$@" || status=1

if [ -z "$cuda_pid" ]; then
  phase "build-cuda/ skipped (SX_SKIP_CUDA_BUILD=1)"
else
  phase "waiting for build-cuda/"
  cuda_status=0
  wait "$cuda_pid" || cuda_status=$?
  cuda_pid=
  cat "$cuda_log"
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
