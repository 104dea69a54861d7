#!/bin/sh
# Runs a test script with the interpreter CMake's SX_PYTHON names, or skips (exit 77, one
# line saying why) when there is none.
# Usage: tests/hf/with_python.sh PYTHON SCRIPT [ARGS...]
python=$1
shift
if [ ! -x "$python" ]; then
  echo "SKIPPED: no python at '$python' (SX_PYTHON; launch/install-py-deps.sh makes .venv, then reconfigure, or configure with -DSX_PYTHON=/path/to/python)"
  exit 77
fi
exec "$python" "$@"
