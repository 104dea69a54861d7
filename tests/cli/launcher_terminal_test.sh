#!/usr/bin/env bash
# launch/run.sh run from a terminal (a pseudo-terminal of tests/cli/pty_run.py, on which Ctrl-C
# is typed as an operator types it):
#   1. with a stand-in mpirun that records the signals it gets and its session: the first Ctrl-C
#      reaches it as dist.stop_signal (USR1, or USR2 when configured); a second one a second
#      later as SIGTERM; it runs in a session of its own (so the terminal's Ctrl-C is not
#      its); the script says what each does and what the SIGTERM cost;
#   2. the script killed (SIGKILL) leaves no mpirun behind: the watch ends it with SIGTERM;
#   3. with the real mpirun and two CPU ranks: one Ctrl-C, the ranks checkpoint and the job
#      exits 75, their last lines on the terminal (Open MPI alone passes a Ctrl-C on as a
#      SIGTERM and kills the ranks a second later: the checkpoint was lost).
# Usage: launcher_terminal_test.sh SOURCE_DIR BINARY FIXTURES_DIR   (CTest label "mpi")
set -euo pipefail
source_dir=$(cd "${1:?usage: launcher_terminal_test.sh SOURCE_DIR BINARY FIXTURES_DIR}" && pwd)
bin=${2:?binary}
fixtures=${3:?fixtures dir}
# shellcheck disable=SC2034  # (used by script_util.sh)
test_name=cli-launcher-terminal
# shellcheck source=../script_util.sh
source "$source_dir/tests/script_util.sh"
pty_run=("python3" "$source_dir/tests/cli/pty_run.py")
work=$(mktemp -d /tmp/sx-terminal.XXXXXX)
stand_in_pid=""
finish() {
  set +e
  trap '' TERM INT
  # A stand-in left running by a failed check (its pid is in $work/mpirun.pid).
  [ -f "$work/mpirun.pid" ] && kill -KILL "$(cat "$work/mpirun.pid")" 2>/dev/null
  rm -rf "$work"
}
trap finish EXIT
dump() { [ -f "$work/out" ] && tail -30 "$work/out"; }

# The stand-ins: mpirun records each signal it gets (a second after it, so that the test's
# next Ctrl-C comes a second after the first; started in the background, it cannot trap
# SIGINT, hence the sessions), its session and its parent's (launch/run.sh's);
# `siamese-xlmr config --get` answers dist.stop_signal from $SX_TEST_STOP_SIGNAL.
mkdir "$work/bin"
cat >"$work/bin/mpirun" <<'SH'
#!/usr/bin/env bash
record() { sleep 1.1; echo "$1" >>"$SX_TEST_WORK/signals"; }
for sig in INT USR1 USR2 HUP QUIT; do trap "record $sig" "$sig"; done
trap 'record TERM; exit 1' TERM
if [ -n "${SX_TEST_REPORT_STOP:-}" ]; then  # rank 0's line after its checkpoint (a second on)
  trap 'sleep 1.1; echo "[2024-05-01 10:00:00.000] [0/2] [warning] stopped by signal 10; checkpoint written, exiting with 75 so the job can be requeued (resume with --resume auto)" >&2; record USR1' USR1
fi
session() { local f; read -r -a f <<<"$(sed 's/.*) //' "/proc/$1/stat")"; echo "${f[3]}"; }
echo "$(session $$) $(session $PPID)" >"$SX_TEST_WORK/sessions"
echo "$$" >"$SX_TEST_WORK/mpirun.pid"
echo ready >"$SX_TEST_WORK/ready"
while :; do sleep 0.1; done
SH
cat >"$work/bin/sx" <<'SH'
#!/usr/bin/env bash
[ "$1 $5" = "config dist.stop_signal" ] || exit 2
echo "${SX_TEST_STOP_SIGNAL:-USR1}"
SH
chmod +x "$work/bin/mpirun" "$work/bin/sx"
: >"$work/config.yaml"

# stand_in STOP_SIGNAL [pty_run.py options] [-- COMMAND...]: launch/run.sh (or COMMAND) on a
# terminal with the stand-ins; exit code in $rc, the terminal's output in $work/out.
stand_in() {
  local stop=$1 options=()
  shift
  while [ $# -gt 0 ] && [ "$1" != -- ]; do options+=("$1") && shift; done
  [ $# -gt 0 ] || set -- -- "$source_dir/launch/run.sh" "$work/config.yaml"
  rm -f "$work/signals" "$work/sessions" "$work/mpirun.pid" "$work/ready"
  rc=0
  env PATH="$work/bin:$PATH" SX_TEST_WORK="$work" SX_BIN="$work/bin/sx" SX_CPU_RANKS=1 \
    SX_TEST_STOP_SIGNAL="$stop" "${pty_run[@]}" --limit 60 ${options[@]+"${options[@]}"} "$@" \
    >"$work/out" 2>&1 || rc=$?
}
signals() { tr '\n' ' ' <"$work/signals" 2>/dev/null; }

# 1. Ctrl-C, then Ctrl-C again (TERM configured: USR1, since mpirun kills the ranks a second
# after passing on a SIGTERM).
for stop in USR1 USR2 TERM; do
  want=$stop
  [ "$stop" != TERM ] || want=USR1
  stand_in "$stop" --ctrl-c-when "$work/ready:ready:1" --ctrl-c-when "$work/signals:$want:1"
  [ "$rc" = 1 ] || fail "stop signal $stop: exit $rc, expected mpirun's 1 after its SIGTERM"
  [ "$(signals)" = "$want TERM " ] ||
    fail "stop signal $stop: mpirun got '$(signals)', expected '$want TERM '"
  read -r own parents <"$work/sessions"
  [ "$own" != "$parents" ] || fail "stop signal $stop: mpirun runs in its script's session $own"
  grep -q "launch/run.sh: Ctrl-C: the ranks checkpoint at the next step boundary and stop (SIG$want)" "$work/out" ||
    fail "stop signal $stop: the first Ctrl-C's line is missing"
  grep -q "launch/run.sh: Ctrl-C again: ending the job without waiting for the checkpoint (SIGTERM to mpirun)" "$work/out" ||
    fail "stop signal $stop: the second Ctrl-C's line is missing"
  grep -q "launch/run.sh: mpirun exited with 1 after a SIGTERM passed on to it .*; resume with --resume auto; exit 1" "$work/out" ||
    fail "stop signal $stop: no line saying what the SIGTERM cost"
  log "Ctrl-C twice, dist.stop_signal $stop: mpirun got $(signals)"
done

# ... also when its output goes through a pipe that the first Ctrl-C ends (`| tee`): the
# script outlives its reader.
stand_in USR1 --ctrl-c-when "$work/ready:ready:1" --ctrl-c-when "$work/signals:USR1:1" -- \
  bash -c '"$0" "$1" 2>&1 | tee "$2"; echo "exit codes ${PIPESTATUS[*]}"' \
  "$source_dir/launch/run.sh" "$work/config.yaml" "$work/tee.out"
grep -q "exit codes 1 130\b" "$work/out" ||
  fail "through | tee: expected the script's 1 and tee's 130, said: $(tail -3 "$work/out")"
[ "$(signals)" = "USR1 TERM " ] || fail "through | tee: mpirun got '$(signals)', expected 'USR1 TERM '"
log "Ctrl-C twice through | tee: mpirun got $(signals)"

# ... and once rank 0 has said its checkpoint is written, the second Ctrl-C says so (it said
# "without waiting for the checkpoint"), and the exit is 75.
SX_TEST_REPORT_STOP=1 stand_in USR1 --ctrl-c-when "$work/ready:ready:1" \
  --ctrl-c-when "$work/out:exiting with 75 so the job can be requeued:1"
[ "$rc" = 75 ] || fail "Ctrl-C after the checkpoint: exit $rc, expected 75"
grep -q "launch/run.sh: Ctrl-C again: the checkpoint is already written and the ranks are ending" "$work/out" ||
  fail "Ctrl-C after the checkpoint: the second Ctrl-C's line is missing"
! grep -q "without waiting for the checkpoint (SIGTERM" "$work/out" ||
  fail "Ctrl-C after the checkpoint: said it did not wait for the checkpoint"
log "Ctrl-C again after rank 0's checkpoint: exit $rc, mpirun got $(signals)"

# 2. The script killed: the watch ends mpirun. (pty_run.py kills the script, the session's
# leader, with its process group when --limit passes; mpirun is in another session.)
stand_in USR1 --limit 8
[ "$rc" = 124 ] || fail "the script's kill: pty_run.py exited $rc, expected its 124"
[ -f "$work/mpirun.pid" ] || fail "the script's kill: mpirun never started"
gone() { ! kill -0 "$(cat "$work/mpirun.pid")" 2>/dev/null; }
wait_until 15 "the watch to end mpirun after its script was killed" gone
[ "$(signals)" = "TERM " ] || fail "the script's kill: mpirun got '$(signals)', expected 'TERM '"
log "the script killed: its mpirun got $(signals)and ended"
rm -f "$work/mpirun.pid"

# 3. The real mpirun: one Ctrl-C after three steps.
mkdir "$work/job"
tiny_job "$bin" "$fixtures" "$work/job" 3000
rc=0
OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 SX_BIN="$bin" SX_CPU_RANKS=2 \
  "${pty_run[@]}" --limit 150 --ctrl-c-when "$work/run/metrics.jsonl:\"type\":\"step\":3" -- \
  "$source_dir/launch/run.sh" "$work/job/config.yaml" run.dir="$work/run" \
  train.steps_per_epoch=100000 >"$work/out" 2>&1 || rc=$?
[ "$rc" = 75 ] || fail "real mpirun: exit $rc after a Ctrl-C, expected 75"
stopped=$(sed -n 's/.*training stopped at step \([0-9]*\).*/\1/p' "$work/out" | head -1)
[ -n "$stopped" ] || fail "real mpirun: the ranks' 'training stopped' line is not on the terminal"
grep -q "stopped by signal 10; checkpoint written, exiting with 75" "$work/out" ||
  fail "real mpirun: rank 0's checkpoint line is not on the terminal"
[ -f "$work/run/checkpoints/step-$(printf '%010d' "$stopped").h5" ] ||
  fail "real mpirun: no checkpoint of step $stopped: $(ls "$work/run/checkpoints" 2>&1)"
log "real mpirun: one Ctrl-C, checkpoint of step $stopped, exit 75"
log "passed"
