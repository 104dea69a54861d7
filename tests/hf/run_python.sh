#!/bin/sh
# Runs a test script with the interpreter CMake's SX_PYTHON names, or skips the test (exit 77,
# ctest's SKIP_RETURN_CODE for the "hf" tests) with one line saying why when it is missing.
# Usage: run_python.sh PYTHON SCRIPT [ARGS...]
python=$1
shift
if [ ! -x "$python" ]; then
  echo "skipped: no Python at '$python' (launch/install-py-deps.sh makes .venv; or configure with -DSX_PYTHON=PATH)"
  exit 77
fi
exec "$python" "$@"
