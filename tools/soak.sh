#!/usr/bin/env bash
# Runs some tests N times in a row while two busy loops keep both cores loaded, as a flakiness
# check: a test that waits on guesses instead of conditions fails here. One line per run (time,
# load), the log of a failed run kept in /tmp.
# Usage: tools/soak.sh RUNS BUILD_DIR CTEST_SELECTION...   (after the build)
#   tools/soak.sh 5 build -L cluster                 # the cluster tests, 5 times
#   tools/soak.sh 10 build -R '^cluster\.slurm$'     # multi-node Slurm, 10 times
set -euo pipefail
[ $# -ge 3 ] || { echo "usage: tools/soak.sh RUNS BUILD_DIR CTEST_SELECTION..." >&2; exit 2; }
runs=$1 build=$2
shift 2
cd "$(dirname "$0")/.."
yes >/dev/null &
busy1=$!
yes >/dev/null &
busy2=$!
trap 'kill $busy1 $busy2 2>/dev/null || true' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
pass=0
for i in $(seq 1 "$runs"); do
  start=$(date +%s)
  log=/tmp/soak_$$_$i.log
  if ctest --test-dir "$build" "$@" --output-on-failure >"$log" 2>&1 &&
      ! grep -q 'No tests were found' "$log"; then
    pass=$((pass + 1))
    result=pass
    rm -f "$log"
  else
    result="FAIL ($log)"
  fi
  echo "run $i: $result, $(($(date +%s) - start)) s, load $(cut -d' ' -f1 /proc/loadavg)"
done
echo "passed $pass/$runs"
[ "$pass" -eq "$runs" ]
