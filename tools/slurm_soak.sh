#!/usr/bin/env bash
# Runs the real-Slurm preempt/requeue/resume test N times in a row (default 10) while two busy
# loops keep both cores loaded, as a flakiness check: a test that waits on guesses fails here.
# Usage: tools/slurm_soak.sh [runs] [build-dir]   (after the build; needs the Slurm test set-up)
set -euo pipefail
runs=${1:-10}
build=${2:-build}
cd "$(dirname "$0")/.."
yes >/dev/null &
busy1=$!
yes >/dev/null &
busy2=$!
trap 'kill $busy1 $busy2 2>/dev/null || true' EXIT
pass=0
for i in $(seq 1 "$runs"); do
  start=$(date +%s)
  if ctest --test-dir "$build" -R '^slurm\.preempt_requeue_resume$' --output-on-failure \
      >"/tmp/slurm_soak_$i.log" 2>&1; then
    pass=$((pass + 1))
    result=pass
  else
    result="FAIL (/tmp/slurm_soak_$i.log)"
  fi
  echo "run $i: $result, $(($(date +%s) - start)) s, load $(cut -d' ' -f1 /proc/loadavg)"
done
echo "passed $pass/$runs"
[ "$pass" -eq "$runs" ]
