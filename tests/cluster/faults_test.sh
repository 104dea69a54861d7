#!/usr/bin/env bash
# Hosts that fail, on a cluster of 2 hosts x 2 ranks (launch/run.sh with a hostfile, mpirun on
# the head node):
#   crash       every process of host 2 killed mid-run: the job ends within
#               dist.collective_timeout plus a few seconds, one line names the lost host and
#               its ranks, every checkpoint stays readable and --resume auto continues;
#   partition   host 2's link down mid-step: the same, the line coming from the ranks that
#               stayed; host 2's ranks end by themselves (their MPI_Abort cannot reach mpirun);
#               once the link is back, --resume auto continues;
#   checkpoint  host 1's link down while rank 0 writes a checkpoint (rank 0 held mid-write):
#               the job ends in time, the checkpoint is whole and the run resumes from it;
#   runtime     host 2's Open MPI daemon hung (stopped) and rank 3 with it: rank 2 reaches its
#               deadline and its MPI_Abort, which needs that daemon, never returns; rank 2 must
#               end by itself within seconds all the same, and the job ends in time;
#   slow        a 10 Mbit/s link: steps slow down, nothing trips, the run finishes;
#   badhost     a hostfile naming a host that does not exist: exit 2 within seconds, one line;
#   nocallback  host 2 cut off before the launch: its launcher (the rsh agent) works but its
#               Open MPI daemon cannot call back: exit 2 once SX_START_TIMEOUT (10 s here) has
#               passed, one line naming host 2;
#   afterwork   2 hosts x 1 rank, host 2 cut off the moment rank 0 reports the final export
#               (after the last collective): the launcher still ends in time, exit 0 (rank 0
#               finished the job), its line naming host 2 (none if Open MPI had finished with
#               host 2 before the cut);
#   sigterm     host 2 cut off mid-run, then a SIGTERM to the launcher (a kill, a second
#               Ctrl-C): Open MPI waits for host 2's daemon ("Abort is in progress") until the
#               link returns; the launcher ends it SX_ABORT_GRACE s later, exit 1, one line;
#   requeuelost a stop (SIGUSR1) whose checkpoint rank 0 writes while host 2 is cut off: the
#               checkpoint is whole, so exit 75 (requeue), one line naming host 2; it resumes;
#   hostfiles   a hostfile with Windows line ends, one naming a host by name and by address,
#               one with fewer slots than ranks per node: exit 2 within seconds, one line each
#               (Open MPI's parse error, crashed ranks, its "not enough slots" page before).
# The crash scenario's hostfile names host 2 by its address (the lost host's line must still
# name its ranks).
# Usage: faults_test.sh BINARY FIXTURES SOURCE_DIR [SCENARIO...]   (CTest label "cluster")
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
source "$here/lib.sh" "$1" "$2" "$3" cluster-faults
shift 3
scenarios=${*:-badhost hostfiles nocallback crash partition checkpoint runtime slow afterwork sigterm requeuelost}
timeout=10                 # dist.collective_timeout of these runs
bound=$((timeout + 15))    # the job must be over this long after the fault
# ... or, once rank 0 has said its last line (a stop's checkpoint, the job's time), this long:
# run.sh waits for Open MPI to find the lost host (keepalive: the timeout + 8 s) and ends mpirun
# SX_ABORT_GRACE (5) s after that; 10 s to spare on a busy machine.
bound_after_last=$((timeout + 8 + 5 + 10))

make_cluster 2
make_job
hosts=$(hostfile hosts "$h1:2" "$h2:2")
address2=$("$cluster" exec "$cdir" head getent ahosts "$h2" | awk 'NR == 1 {print $1}')
long_run=("dist.collective_timeout=$timeout" train.max_steps=100000 train.checkpoint_every=2)

# Starts a long run on both hosts and waits until it has trained a few steps and written a
# checkpoint.
start_training() {
  launch_bg "$hosts" 2 run.dir="$work/$1" "${long_run[@]}" "${@:2}"
  wait_until 180 "training on 2 hosts" at_least_steps "$work/$1" 3
  wait_until 60 "a checkpoint" has_checkpoint "$work/$1"
}
has_checkpoint() { compgen -G "$1/checkpoints/step-*.h5" >/dev/null; }

# Seconds since the fault at $1 ($EPOCHREALTIME then), to a tenth; and how many of the $bound
# seconds the job has to end in are left (at least 1).
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }
left() { awk -v a="$1" -v b="$EPOCHREALTIME" -v n="$bound" 'BEGIN { l = int(n - (b - a)) + 1; print (l > 1 ? l : 1) }'; }

# Waits for the launcher and for every rank on HOSTS (default both), which must all have ended
# within $bound s of the fault at $1, the launcher with exit code $2; says how long each took
# (the time from the fault to the last rank's exit is the one the issue asks for).
expect_end() {
  local fault=$1 code=$2 hosts=${3:-n1 n2}
  wait_until "$(left "$fault")" "the job to end after the fault" test -f "$work/rc"
  wait "$launched" || true
  local rc took
  took=$(since "$fault")
  rc=$(cat "$work/rc")
  [ "$rc" = "$code" ] || { cat "$work/out"; fail "exit $rc, expected $code"; }
  # shellcheck disable=SC2086
  wait_until "$(left "$fault")" "every rank on $hosts to end" no_ranks_left_on $hosts
  log "launch/run.sh ended $took s and the last rank on $hosts $(since "$fault") s after the fault (dist.collective_timeout $timeout s), exit $rc; its last line:"
  tail -n 1 "$work/out"
}

# Every step checkpoint of the run opens and holds its parameters (none torn by the fault).
checkpoints_whole() {
  "$python" - "$work/$1/checkpoints" <<'PY'
import glob, sys, h5py
paths = sorted(glob.glob(sys.argv[1] + "/step-*.h5"))
assert paths, "no checkpoint"
for p in paths:
    with h5py.File(p, "r") as f:
        assert len(f["params"]) > 0 and "optimizer" in f, p
print(f"{len(paths)} checkpoints whole, newest {paths[-1].rsplit('/', 1)[1]}")
PY
}

# --resume auto on both hosts continues from the newest checkpoint and finishes.
resumes() {
  local run=$work/$1 newest
  newest=$(ls "$run/checkpoints"/step-*.h5 | sort | tail -n 1)
  local step=$((10#$(basename "$newest" .h5 | sed 's/step-//')))
  launch "$hosts" 2 run.dir="$run" dist.collective_timeout=$timeout \
    train.max_steps=$((step + 2)) --resume auto || { cat "$work/out"; fail "the resume failed"; }
  grep -q "resumed from .*step-0*$step.h5" "$run/log/rank-0.log" ||
    fail "the resume did not start from $newest"
  log "--resume auto continued from step $step"
}

running() {  # running PID: a process that has not ended (a zombie has)
  local state
  state=$(awk '/^State:/ {print $2}' "/proc/$1/status" 2>/dev/null) || return 1
  [ -n "$state" ] && [ "$state" != Z ]
}
ended() { ! running "$1"; }

no_ranks_left_on() {  # no_ranks_left_on HOST...
  local host pid
  for host in "$@"; do
    for pid in $("$cluster" pids "$cdir" "$host"); do
      grep -q siamese-xlmr "/proc/$pid/cmdline" 2>/dev/null && return 1
    done
  done
  return 0
}

# Ends what a fault left on HOST (Open MPI's daemon of a cut-off host) and joins it again.
restore() {
  "$cluster" heal "$cdir" "$1"
  "$cluster" crash "$cdir" "$1"
}

scenario_badhost() {
  local bad
  bad=$(hostfile bad "$h1:2" "$PREFIX-n9:2")
  local start=$EPOCHREALTIME rc=0
  launch "$bad" 2 run.dir="$work/bad" || rc=$?
  [ "$rc" = 2 ] || { cat "$work/out"; fail "bad host: exit $rc, expected 2"; }
  local took
  took=$(since "$start")
  awk -v t="$took" 'BEGIN { exit !(t <= 10) }' || fail "bad host: took $took s"
  [ "$(grep -c . "$work/out")" = 1 ] || { cat "$work/out"; fail "bad host: expected one line"; }
  grep -q "$bad:2: host '$PREFIX-n9' does not resolve" "$work/out" || fail "bad host: $(cat "$work/out")"
  log "bad host: exit 2 within $took s: $(cat "$work/out")"
}

scenario_nocallback() {
  "$cluster" partition "$cdir" n2
  local start=$EPOCHREALTIME rc=0
  SX_START_TIMEOUT=10 launch "$hosts" 2 run.dir="$work/nocallback" || rc=$?
  local took
  took=$(since "$start")
  [ "$rc" = 2 ] || { cat "$work/out"; fail "no callback: exit $rc, expected 2"; }
  awk -v t="$took" 'BEGIN { exit !(t >= 10 && t <= 20) }' || fail "no callback: took $took s, expected 10 to 20"
  tail -n 1 "$work/out" | grep -q "^launch/run.sh: Open MPI could not start on every host within 10 s (SX_START_TIMEOUT): $h2 did not call back" ||
    { cat "$work/out"; fail "no callback: the last line does not name $h2"; }
  [ "$(grep -c '^launch/run.sh: ' "$work/out")" = 1 ] || { cat "$work/out"; fail "no callback: expected one line of the script"; }
  log "no callback: exit 2 after $took s: $(tail -n 1 "$work/out")"
  restore n2
}

scenario_afterwork() {
  local one
  one=$(hostfile one "$h1:1" "$h2:1")
  launch_bg "$one" 1 run.dir="$work/afterwork" "dist.collective_timeout=$timeout" train.max_steps=3
  wait_until 180 "rank 0 to report the final export" grep -q '\] features: ' "$work/out"
  "$cluster" partition "$cdir" n2
  local fault=$EPOCHREALTIME
  wait_until "$bound_after_last" "the launcher to end after host 2 was cut off" test -f "$work/rc"
  wait "$launched" || true
  local rc took
  took=$(since "$fault")
  rc=$(cat "$work/rc")
  [ "$rc" = 0 ] || { cat "$work/out"; fail "after the work: exit $rc, expected 0 (rank 0 finished the job)"; }
  if tail -n 1 "$work/out" | grep -q "^launch/run.sh: "; then
    tail -n 1 "$work/out" | grep -q "^launch/run.sh: rank 0 had finished the job (its job time line above: every file written); \(Open MPI then lost contact with a host it could no longer reach (lost host $h2 (rank 1))\|mpirun had not ended\)" ||
      { cat "$work/out"; fail "after the work: the last line does not say what happened"; }
  else
    log "after the work: Open MPI had finished with host 2 before the cut"
  fi
  wait_until "$bound_after_last" "every rank on n1 to end" no_ranks_left_on n1
  log "after the work: launch/run.sh ended $took s after host 2 was cut off (dist.collective_timeout $timeout s), exit $rc: $(tail -n 1 "$work/out")"
  restore n2
}

scenario_crash() {
  local saved=$hosts
  hosts=$(hostfile by-address "$h1:2" "$address2:2")  # (Open MPI names the lost host so)
  start_training crash
  local fault=$EPOCHREALTIME
  "$cluster" crash "$cdir" n2
  expect_end "$fault" 1
  grep -q "^launch/run.sh: lost host $address2 (ranks 2, 3)" "$work/out" || { cat "$work/out"; fail "crash: no line naming the lost host and ranks"; }
  hosts=$saved
  checkpoints_whole crash
  resumes crash
}

scenario_partition() {
  start_training partition
  local fault=$EPOCHREALTIME
  "$cluster" partition "$cdir" n2
  expect_end "$fault" 1
  grep -q "rank 0: the .* did not complete within dist.collective_timeout ($timeout s); no word within [0-9]* s from ranks 2, 3 on host $h2" "$work/out" ||
    { cat "$work/out"; fail "partition: no line naming the lost ranks and host"; }
  log "partition: $(grep 'no word' "$work/out" | sed 's/.*\] //')"
  # (host 2's ranks, cut off from mpirun, ended by themselves: expect_end waited for them)
  grep -q "rank 2: the .* no word within [0-9]* s from ranks 0, 1 on host $h1" "$work/partition/log/rank-2.log" ||
    fail "partition: rank 2's log does not name the other side"
  restore n2
  checkpoints_whole partition
  resumes partition
}

scenario_checkpoint() {
  start_training checkpoint train.checkpoint_every=1
  local rank0
  rank0=$(rank_pid "$work/checkpoint" 0)
  local caught
  caught=$("$python" "$here/stop_during_write.py" "$work/checkpoint/checkpoints" 'step-*.h5.tmp.*' "$rank0" 120) ||
    fail "rank 0 was never caught writing a checkpoint"
  local fault=$EPOCHREALTIME
  "$cluster" partition "$cdir" n1
  kill -CONT "$rank0"
  log "checkpoint: host 1 cut off while rank 0 wrote $caught"
  expect_end "$fault" 1
  restore n1
  checkpoints_whole checkpoint
  resumes checkpoint
}

scenario_runtime() {
  start_training runtime
  local rank2 rank3 daemon pid
  rank2=$(rank_pid "$work/runtime" 2)
  rank3=$(rank_pid "$work/runtime" 3)
  for pid in $("$cluster" pids "$cdir" n2); do
    grep -q '^orted' "/proc/$pid/cmdline" 2>/dev/null && daemon=$pid
  done
  kill -STOP "${daemon:?no Open MPI daemon on host 2}" "$rank3"
  local fault=$EPOCHREALTIME
  wait_until "$bound" "rank 2 to end although its MPI_Abort cannot return" ended "$rank2"
  log "runtime: rank 2 ended $(since "$fault") s after its host's daemon and rank 3 stopped"
  grep -q "MPI_Abort has not ended this rank within 3 s" "$work/runtime/log/rank-2.log" ||
    fail "rank 2 did not end by itself"
  expect_end "$fault" 1 n1  # (rank 3 is held stopped on n2)
  kill -CONT "$daemon" "$rank3" 2>/dev/null || true
  restore n2
}

scenario_slow() {
  "$cluster" link "$cdir" n2 10mbit
  launch "$hosts" 2 run.dir="$work/slow" dist.collective_timeout=$timeout train.max_steps=6 ||
    { cat "$work/out"; fail "slow link: the run failed"; }
  "$cluster" link "$cdir" n2 off
  [ "$(steps "$work/slow")" = 6 ] || fail "slow link: $(steps "$work/slow") steps, expected 6"
  ! grep -q "did not complete" "$work/out" || fail "slow link: a deadline tripped"
  # Each step's all-reduce sends at least its elements' bytes across the link (host 2 needs
  # host 1's sum of every element): the link held the steps back if they took that long.
  local elements
  elements=$(sed -n 's/.*all-reduce of step 1: .*, \([0-9]*\) elements.*/\1/p' "$work/slow/log/rank-0.log")
  "$python" - "$work/slow/metrics.jsonl" "${elements:?}" <<'PY'
import json, sys
times = [j["step_s"] for j in map(json.loads, open(sys.argv[1])) if j.get("type") == "step"]
floor = int(sys.argv[2]) * 4 * 8 / 10e6
mean = sum(times) / len(times)
assert mean >= 0.8 * floor, f"steps of {mean:.3f} s: the 10 Mbit/s link did not slow them ({floor:.3f} s)"
print(f"cluster-faults: slow link (10 Mbit/s): 6 steps of {mean:.3f} s on average, at least "
      f"{floor:.3f} s to move {sys.argv[2]} floats; nothing tripped")
PY
}

# The pid of launch/run.sh itself on the head node (not one of its subshells: timeout's child).
launcher_pid() {
  local pid parent
  for pid in $("$cluster" pids "$cdir" head); do
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "^bash $source/launch/run.sh " || continue
    parent=$(awk '{print $4}' "/proc/$pid/stat" 2>/dev/null) || continue
    [ "$(cat "/proc/$parent/comm" 2>/dev/null)" = timeout ] && { echo "$pid"; return 0; }
  done
  return 1
}

scenario_sigterm() {
  start_training sigterm
  "$cluster" partition "$cdir" n2
  local launcher fault
  launcher=$(launcher_pid) || fail "sigterm: no launch/run.sh on the head node"
  fault=$EPOCHREALTIME
  kill -TERM "$launcher"
  expect_end "$fault" 1
  tail -n 1 "$work/out" | grep -q "^launch/run.sh: mpirun had not ended 5 s after a SIGTERM passed on to it" ||
    { cat "$work/out"; fail "sigterm: the last line does not say why mpirun was ended"; }
  restore n2
}

scenario_requeuelost() {
  local run=$work/requeuelost
  launch_bg "$hosts" 2 run.dir="$run" "dist.collective_timeout=$timeout" train.max_steps=100000
  wait_until 180 "training on 2 hosts" at_least_steps "$run" 3
  local rank0 launcher catcher caught fault
  rank0=$(rank_pid "$run" 0)
  launcher=$(launcher_pid) || fail "requeuelost: no launch/run.sh on the head node"
  mkdir -p "$run/checkpoints"
  "$python" "$here/stop_during_write.py" "$run/checkpoints" 'step-*.h5.tmp.*' "$rank0" 120 \
    "$work/watching" >"$work/caught" &
  catcher=$!
  wait_until 30 "the checkpoint watch" test -f "$work/watching"
  kill -USR1 "$launcher"
  wait "$catcher" || fail "requeuelost: rank 0 was never caught writing the stop's checkpoint"
  caught=$(cat "$work/caught")
  "$cluster" partition "$cdir" n2
  fault=$EPOCHREALTIME
  kill -CONT "$rank0"
  log "requeuelost: host 2 cut off while rank 0 wrote the stop's $caught"
  wait_until "$bound_after_last" "the launcher to end" test -f "$work/rc"
  wait "$launched" || true
  [ "$(cat "$work/rc")" = 75 ] || { cat "$work/out"; fail "requeuelost: exit $(cat "$work/rc"), expected 75 (the checkpoint is whole)"; }
  tail -n 1 "$work/out" | grep -q "^launch/run.sh: rank 0 wrote the checkpoint and said it exits with 75; .*; exit 75 (resume with --resume auto)" ||
    { cat "$work/out"; fail "requeuelost: the last line does not say why 75"; }
  log "requeuelost: exit 75 $(since "$fault") s after the cut: $(tail -n 1 "$work/out")"
  restore n2
  checkpoints_whole requeuelost
  resumes requeuelost
}

# hostfile_refused NAME FILE LINE_NO TEXT: launch/run.sh with FILE exits 2 within seconds, its
# one line naming FILE:LINE_NO and saying TEXT, no rank started.
hostfile_refused() {
  local rc=0 start=$EPOCHREALTIME
  launch "$2" 2 run.dir="$work/$1" || rc=$?
  [ "$rc" = 2 ] || { cat "$work/out"; fail "$1: exit $rc, expected 2"; }
  [ "$(grep -c . "$work/out")" = 1 ] || { cat "$work/out"; fail "$1: expected one line"; }
  grep -qF "launch/run.sh: $2:$3: $4" "$work/out" || fail "$1: $(cat "$work/out")"
  [ ! -e "$work/$1" ] || fail "$1: the run started"
  log "$1: exit 2 after $(since "$start") s: $(cat "$work/out")"
}

scenario_hostfiles() {
  local file
  file=$(hostfile crlf "$h1:2" "$h2:2")
  sed -i 's/$/\r/' "$file"
  hostfile_refused crlf "$file" 1 "a carriage return (Windows line ends)"
  file=$(hostfile twice "$h1:2" "$h2:2" "$address2:2")
  hostfile_refused twice "$file" 3 "host '$address2' is line 2's host again (both are $address2)"
  file=$(hostfile slots "$h1:2" "$h2:1")
  hostfile_refused slots "$file" 2 "host '$h2' has slots=1, fewer than the 2 ranks per node (SX_RANKS_PER_NODE)"
}

for s in $scenarios; do
  log "--- $s"
  "scenario_$s"
done
log "passed"
