#!/usr/bin/env bash
# Multi-node training with launch/run.sh and a hostfile (mpirun on the head node): 2 hosts x 2
# ranks train to the parameters of 1 host x 4 ranks (within 1e-6) on the same pair sequence;
# each host has one builder of the node-shared data; rank 0's files land in the shared
# run.dir; a run started on 1 host continues on 2 with --resume auto and ends where the
# uninterrupted run ends.
# Usage: train_test.sh BINARY FIXTURES SOURCE_DIR   (CTest label "cluster")
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
source "$here/lib.sh" "$1" "$2" "$3" cluster-train
steps=10

make_cluster 2
make_job
one=$(hostfile one "$h1:4")
two=$(hostfile two "$h1:2" "$h2:2")

train() {  # train NAME HOSTFILE RANKS_PER_HOST STEPS [args]
  local name=$1
  launch "$2" "$3" run.dir="$work/$name" train.max_steps="$4" "${@:5}" ||
    { cat "$work/out"; fail "run $name failed"; }
  cp "$work/out" "$work/$name.out"
}
train one "$one" 4 "$steps"
train two "$two" 2 "$steps"
train resumed "$one" 4 $((steps / 2))
train resumed "$two" 2 "$steps" --resume auto

# The layout rank 0 logs, as launch/run.sh reads it.
grep -q "layout: 4 ranks on 2 hosts: $h1 ranks 0, 1; $h2 ranks 2, 3" "$work/two.out" ||
  { cat "$work/two.out"; fail "no layout line for 2 hosts"; }
grep -q "layout: 4 ranks on 1 host: $h1 ranks 0-3" "$work/one.out" || fail "no layout line for 1 host"

# Each rank where it should be, each host with one builder of the node-shared data.
for r in 0 1 2 3; do
  host=$h1; [ "$r" -ge 2 ] && host=$h2
  grep -q "rank $r/4 (local $((r % 2))/2) pid [0-9]* on $host" "$work/two/log/rank-$r.log" ||
    fail "rank $r did not run on $host"
done
builders=$(cat "$work"/two/log/rank-*.log | grep -c "builds the node-shared data" || true)
[ "$builders" = 2 ] || fail "expected one builder per host, found $builders"
grep -q "host $h1: rank 0 builds the node-shared data for the 2 ranks" "$work/two/log/rank-0.log" &&
  grep -q "host $h2: rank 2 builds the node-shared data for the 2 ranks" "$work/two/log/rank-2.log" ||
  fail "the builders are not ranks 0 and 2"
log "one builder per host: ranks 0 ($h1) and 2 ($h2)"

# The same pair sequence on every rank of every run.
fingerprints=$(cat "$work"/{one,two}/log/rank-*.log | sed -n 's/.*pair sequences: \(.*\)/\1/p' | sort -u)
[ "$(echo "$fingerprints" | grep -c .)" = 1 ] || fail "pair sequences differ: $fingerprints"
log "pair sequences on all 8 ranks: $fingerprints"

# Rank 0's files in the shared run.dir.
for f in metrics.jsonl config.resolved.yaml features.h5 log/rank-3.log \
  "checkpoints/step-$(printf %010d "$steps").h5"; do
  [ -e "$work/two/$f" ] || fail "run.dir lacks $f"
done
grep -q "resumed from .*step-$(printf %010d $((steps / 2))).h5" "$work/resumed/log/rank-0.log" ||
  fail "the run on 2 hosts did not resume the run of 1 host"

"$python" - "$work" "$(printf %010d "$steps")" <<'PY'
import sys, h5py, numpy as np
work, step = sys.argv[1:3]
def params(run):
    with h5py.File(f"{work}/{run}/checkpoints/step-{step}.h5", "r") as f:
        return {n: f["params"][n][()] for n in f["params"]}
one = params("one")
for run in ("two", "resumed"):
    other = params(run)
    assert sorted(other) == sorted(one), f"{run}: other parameter names"
    worst = max(float(np.max(np.abs(one[n] - other[n]))) for n in one)
    assert worst <= 1e-6, f"{run}: parameters differ from 1 host x 4 ranks by up to {worst}"
    print(f"cluster-train: {run}: {len(one)} parameters within {worst:.1e} of 1 host x 4 ranks")
PY
log "passed"
