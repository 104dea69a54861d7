#!/usr/bin/env bash
# The test command of the README and CI: installs what is missing, builds, runs every test
# (unit, multi-rank and end-to-end labels). Fixtures are read from ../shared/fixtures.
set -euo pipefail
cd "$(dirname "$0")/.."
launch/install-deps.sh
launch/build.sh
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
ctest --test-dir "${SX_BUILD_DIR:-build}" --output-on-failure --parallel 2 "$@"
