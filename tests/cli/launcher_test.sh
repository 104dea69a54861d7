#!/usr/bin/env bash
# launch/run.sh's choices before anything starts, with a stand-in mpirun that records its
# arguments: the cores it binds by (not OMP_NUM_THREADS), CUDA_VISIBLE_DEVICES values that name
# no GPU, environment knobs that are not numbers (exit 2, one line naming the knob), hostfiles
# with literal addresses and hostfile mistakes Open MPI takes badly, the exit code when rank 0
# reported its checkpoint but mpirun exited 1 (as it does after a SIGTERM) or lost a host, a
# SIGTERM mpirun does not finish, and no timer of the script outliving it. No MPI, no cluster:
# runs anywhere.
# Usage: launcher_test.sh SOURCE_DIR   (CTest label "cli")
set -euo pipefail
source_dir=$(cd "${1:?usage: launcher_test.sh SOURCE_DIR}" && pwd)
# shellcheck disable=SC2034  # (used by script_util.sh)
test_name=cli-launcher
# shellcheck source=../script_util.sh
source "$source_dir/tests/script_util.sh"
work=$(mktemp -d /tmp/sx-launcher.XXXXXX)
trap 'rm -rf "$work"' EXIT

# The stand-in: writes its arguments (one a line) to $work/args, then what $work/script says.
mkdir "$work/bin"
cat >"$work/bin/mpirun" <<'SH'
#!/usr/bin/env bash
printf '%s\n' "$@" >"$SX_TEST_WORK/args"
[ ! -f "$SX_TEST_WORK/script" ] || source "$SX_TEST_WORK/script"
exit 0
SH
chmod +x "$work/bin/mpirun"
rm -f "$work/bin/nvidia-smi"  # no GPU unless CUDA_VISIBLE_DEVICES says so

# run ENV... : launch/run.sh with ENV (VAR=value, or -u VAR); its code in $rc, output in $out
# (in a session of its own when $session is set)
run() {
  rc=0
  out=$(${session:+setsid -w} env -u CUDA_VISIBLE_DEVICES -u SX_HOSTFILE -u SX_RANKS_PER_NODE -u SX_CPU_RANKS \
    -u SLURM_JOB_ID "$@" PATH="$work/bin:$PATH" SX_TEST_WORK="$work" SX_BIN=/bin/true \
    "$source_dir/launch/run.sh" "$work/config.yaml" 2>&1) || rc=$?
}
args() { tr '\n' ' ' <"$work/args"; }
expect() {  # expect CODE WHAT
  [ "$rc" = "$1" ] || fail "$2: exit $rc, expected $1; said: $out"
}
cores=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)

# 1. Binding follows the cores, whatever OMP_NUM_THREADS says.
binding() { args | sed 's/-x OMP_[A-Z_]* //g'; }  # (the OMP_* variables it forwards aside)
run -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT SX_CPU_RANKS=1
expect 0 "one rank"
want=$(binding)
for omp in 1 64; do
  run SX_CPU_RANKS=1 OMP_NUM_THREADS=$omp OMP_THREAD_LIMIT=$omp
  expect 0 "OMP_NUM_THREADS=$omp"
  [ "$(binding)" = "$want" ] || fail "OMP_NUM_THREADS=$omp changed mpirun's arguments: $(args) (without: $want)"
done
grep -qx "slot:PE=$cores" "$work/args" || fail "one rank on $cores cores: $(args)"
log "binding from $cores cores whatever OMP_NUM_THREADS says: $(args | grep -o -- '--map-by [^ ]*\|--oversubscribe')"

# 3. CUDA_VISIBLE_DEVICES: what names no GPU gives the CPU ranks.
ranks() { sed -n '/^-np$/{n;p}' "$work/args"; }
for value in "" -1 NoDevFiles "-1,0" "none"; do
  run CUDA_VISIBLE_DEVICES="$value" SX_CPU_RANKS=3
  expect 0 "CUDA_VISIBLE_DEVICES='$value'"
  [ "$(ranks)" = 3 ] || fail "CUDA_VISIBLE_DEVICES='$value': $(ranks) ranks, expected the 3 CPU ranks"
done
for spec in "0:1" "0,1:2" "1, 3:2" "GPU-8b1f4b2e-8e2a-4d6e-9c2a-0d8b0e4c1a11,GPU-0c4e:2" \
  "MIG-GPU-8b1f4b2e/1/0:1" "0,1,-1,2:2"; do
  run CUDA_VISIBLE_DEVICES="${spec%:*}" SX_CPU_RANKS=3
  expect 0 "CUDA_VISIBLE_DEVICES='${spec%:*}'"
  [ "$(ranks)" = "${spec##*:}" ] || fail "CUDA_VISIBLE_DEVICES='${spec%:*}': $(ranks) ranks, expected ${spec##*:}"
done
log "CUDA_VISIBLE_DEVICES: '', -1, NoDevFiles name no GPU; device ids and UUIDs count up to the first that is neither"

# 4. Numeric knobs: one line naming the knob, what it was and what is expected; exit 2.
for spec in SX_CPU_RANKS=0 SX_CPU_RANKS=abc SX_CPU_RANKS=-1 SX_CPU_RANKS=1.5 SX_RANKS_PER_NODE=0 \
  SX_RANKS_PER_NODE=x SX_ABORT_GRACE=soon SX_START_TIMEOUT=-5; do
  rm -f "$work/args"
  run "$spec"
  expect 2 "$spec"
  [ "$(echo "$out" | grep -c .)" = 1 ] || fail "$spec: expected one line, said: $out"
  echo "$out" | grep -q "^launch/run.sh: ${spec%%=*} is '${spec#*=}'; expected a" || fail "$spec: said: $out"
  [ ! -f "$work/args" ] || fail "$spec: mpirun was started"
done
run SX_CPU_RANKS=08
expect 0 "SX_CPU_RANKS=08"
[ "$(ranks)" = 8 ] || fail "SX_CPU_RANKS=08: $(ranks) ranks"
log "numeric knobs: $(run SX_CPU_RANKS=0; echo "$out")"

# 2. A hostfile of literal addresses is taken; a name that does not resolve is not.
printf '192.0.2.2 slots=2\n# a comment\n\n192.0.2.3 slots=2\n' >"$work/hosts"
run SX_HOSTFILE="$work/hosts" SX_RANKS_PER_NODE=2 SX_START_TIMEOUT=0 OMPI_MCA_oob_tcp_keepalive_time=300
expect 0 "a hostfile of addresses"
[ "$(ranks)" = 4 ] && grep -qx -- "--hostfile" "$work/args" || fail "a hostfile of addresses: $(args)"
# refused CONTENT RANKS_PER_NODE LINE WHAT: a hostfile of CONTENT is refused, exit 2, the one
# line "launch/run.sh: HOSTFILE:LINE", then WHAT, then what a hostfile should be.
refused() {
  printf "$1" >"$work/hosts"
  run SX_HOSTFILE="$work/hosts" SX_RANKS_PER_NODE="$2"
  expect 2 "$4"
  [ "$out" = "launch/run.sh: $work/hosts:$3: $4; expected one 'nodename slots=N' line per node${5:-}" ] ||
    fail "$4: said: $out"
}
refused '192.0.2.2 slots=2\nsx-no-such-host.invalid slots=2\n' 2 2 \
  "host 'sx-no-such-host.invalid' does not resolve (getent ahosts)"
refused '192.0.2.2 slots=2\n192.0.2.3 slots=2\n192.0.2.2 slots=2\n' 2 3 \
  "host '192.0.2.2' is listed again (first on line 1)"
printf '# nothing\n\n' >"$work/hosts"
run SX_HOSTFILE="$work/hosts"
expect 2 "an empty hostfile"
log "hostfiles: addresses taken; $out"
# What Open MPI took badly: Windows line ends (a parse error, then "an internal error"), one
# host under two spellings (two daemons on it, ranks crashed in MPI), too few slots (its "not
# enough slots" page); each was exit 1 without a line of the script.
refused '192.0.2.2 slots=2\r\n192.0.2.3 slots=2\r\n' 2 1 "a carriage return (Windows line ends)" \
  ", with Unix line ends (dos2unix $work/hosts)"
refused 'localhost slots=2\n127.0.0.1 slots=2\n' 2 2 \
  "host '127.0.0.1' is line 1's host again (both are 127.0.0.1)"
if [ "$cores" -ge 2 ]; then  # (more ranks than cores oversubscribe, where slots do not count)
  # (the script's advice follows the expected line's place: checked apart)
  printf '192.0.2.2 slots=4\n192.0.2.3 max_slots=8 slots=1 # small\n' >"$work/hosts"
  run SX_HOSTFILE="$work/hosts" SX_RANKS_PER_NODE=2
  expect 2 "too few slots"
  [ "$out" = "launch/run.sh: $work/hosts:2: host '192.0.2.3' has slots=1, fewer than the 2 ranks per node (SX_RANKS_PER_NODE); give it slots=2 or more, or set SX_RANKS_PER_NODE" ] ||
    fail "too few slots: said: $out"
  printf '192.0.2.2 slots=4 # was slots=1\n192.0.2.3 max_slots=1\n' >"$work/hosts"
  run SX_HOSTFILE="$work/hosts" SX_RANKS_PER_NODE=2 SX_START_TIMEOUT=0
  expect 0 "max_slots and comments are not slots"
fi

# 5b. TMPDIR, where Open MPI keeps its session files: missing (fifty lines of Open MPI), or
# nearly full (mpirun hung for ever with two ranks): one line, exit 2, mpirun not started.
rm -f "$work/args"
run TMPDIR="$work/no-such-dir"
expect 2 "a missing TMPDIR"
[ "$out" = "launch/run.sh: TMPDIR=$work/no-such-dir is not a writable directory: Open MPI keeps its session files there; point TMPDIR at one or unset it" ] ||
  fail "a missing TMPDIR: said: $out"
[ ! -f "$work/args" ] || fail "a missing TMPDIR: mpirun was started"
if [ "$(id -u)" = 0 ] && command -v unshare >/dev/null; then
  mkdir "$work/small"
  rc=0
  out=$(unshare -m sh -c 'mount -t tmpfs -o size=1m sx-test "$1" && shift && exec env "$@"' sh \
    "$work/small" PATH="$work/bin:$PATH" SX_TEST_WORK="$work" SX_BIN=/bin/true TMPDIR="$work/small" \
    "$source_dir/launch/run.sh" "$work/config.yaml" 2>&1) || rc=$?
  expect 2 "a nearly full TMPDIR"
  [ "$out" = "launch/run.sh: TMPDIR=$work/small has 1 MiB free: Open MPI keeps its session files there and hangs when it fills up; free 32 MiB or more there, or point TMPDIR elsewhere" ] ||
    fail "a nearly full TMPDIR: said: $out"
  [ ! -f "$work/args" ] || fail "a nearly full TMPDIR: mpirun was started"
  log "TMPDIR: $out"
fi

# 6. Across hosts, Open MPI's connections get a keepalive of dist.collective_timeout + 8 s.
printf '192.0.2.2 slots=1\n' >"$work/hosts"
cat >"$work/bin/sx-config" <<'SH'
#!/usr/bin/env bash
# stands in for `siamese-xlmr config --config C --get dist.collective_timeout [overrides]`
value=600
for a in "$@"; do case $a in dist.collective_timeout=*) value=${a#*=} ;; --resume|--force) exit 2 ;; esac; done
echo "$value"
SH
chmod +x "$work/bin/sx-config"
rc=0
out=$(env PATH="$work/bin:$PATH" SX_TEST_WORK="$work" SX_BIN="$work/bin/sx-config" SX_HOSTFILE="$work/hosts" \
  SX_RANKS_PER_NODE=1 SX_START_TIMEOUT=0 "$source_dir/launch/run.sh" "$work/config.yaml" \
  dist.collective_timeout=10 --resume auto 2>&1) || rc=$?
expect 0 "keepalive"
args | grep -q -- "--mca oob_tcp_keepalive_time 1 --mca oob_tcp_keepalive_intvl 1 --mca oob_tcp_keepalive_probes 18 " ||
  fail "keepalive for a 10 s timeout: $(args)"
out=$(env PATH="$work/bin:$PATH" SX_TEST_WORK="$work" SX_BIN="$work/bin/sx-config" SX_HOSTFILE="$work/hosts" \
  SX_RANKS_PER_NODE=1 SX_START_TIMEOUT=0 "$source_dir/launch/run.sh" "$work/config.yaml" 2>&1) || rc=$?
args | grep -q -- "--mca oob_tcp_keepalive_time 1 --mca oob_tcp_keepalive_intvl 7 --mca oob_tcp_keepalive_probes 87 " ||
  fail "keepalive for the default 600 s: $(args)"
log "keepalive: $(args | grep -o -- '--mca oob_tcp_keepalive_time.*probes [0-9]*')"

# 7. Rank 0 reported the checkpoint and the stop, mpirun exited 1 (SIGTERM): exit 75, one line.
cat >"$work/script" <<'SH'
echo "[2024-05-01 10:00:00.000] [0/2] [warning] stopped by signal 15; checkpoint written, exiting with 75 so the job can be requeued (resume with --resume auto)" >&2
exit 1
SH
run
expect 75 "a stop after the checkpoint, mpirun exiting 1"
[ "$(echo "$out" | grep -c '^launch/run.sh: ')" = 1 ] || fail "the stop: expected one line of the script, said: $out"
log "stop: $(echo "$out" | grep '^launch/run.sh: ')"
printf 'exit 1\n' >"$work/script"
run
expect 1 "mpirun exiting 1 without a stop"
# 7b. A SIGTERM to the script after rank 0's last line (the job time, after the final export):
# mpirun's 1 was reported as "a checkpoint or features file ... is incomplete", exit 1, for a
# job that had written every file.
cat >"$work/script" <<'SH'
echo "[2024-05-01 10:00:00.000] [0/2] [info] job time 6.546 s: set-up 0.298 s, export before training 0.331 s, training 5.621 s, wrap-up and final export 0.296 s" >&2
trap 'exit 1' TERM
kill -TERM "$PPID"
for _ in $(seq 300); do sleep 0.1; done  # until launch/run.sh passes the SIGTERM on
exit 1
SH
run
expect 0 "a SIGTERM after rank 0's job time line"
echo "$out" | grep -q "^launch/run.sh: mpirun exited with 1 after a SIGTERM passed on to it, but rank 0 had finished the job" ||
  fail "a SIGTERM after the job time line: said: $out"
log "SIGTERM after the job: $(echo "$out" | grep '^launch/run.sh: ')"
rm -f "$work/script"

# 7c. A SIGTERM that mpirun cannot finish (a host it cannot reach: Open MPI's "Abort is in
# progress" waits for its daemon until the link returns): the script ended it SX_ABORT_GRACE s
# later, one line, instead of waiting with it.
cat >"$work/script" <<'SH'
trap '' TERM
kill -TERM "$PPID"
for _ in $(seq 300); do sleep 0.1; done
exit 0
SH
start=$SECONDS
run SX_ABORT_GRACE=1  # (at least 5 s after a SIGTERM: Open MPI's own kill comes 1 s after it)
expect 1 "a SIGTERM mpirun does not end on"
[ $((SECONDS - start)) -lt 20 ] || fail "a SIGTERM mpirun does not end on: the script took $((SECONDS - start)) s"
echo "$out" | grep -q "^launch/run.sh: mpirun had not ended 5 s after a SIGTERM passed on to it .*; exit 1$" ||
  fail "a SIGTERM mpirun does not end on: said: $out"
log "SIGTERM that mpirun cannot finish: $(echo "$out" | grep '^launch/run.sh: ')"

# 7d. Rank 0 wrote the stop's checkpoint, then Open MPI lost a host (its ranks waited in the
# barrier after it): the checkpoint is whole, so 75 (it was 1: no requeue). Across hosts the
# script's timers (sleep) must not outlive it: each run's session is searched afterwards.
cat >"$work/script" <<'SH'
ps -o sid= -p $$ | tr -d ' ' >"$SX_TEST_WORK/sid"
echo "[2024-05-01 10:00:00.000] [0/4] [info] layout: 4 ranks on 2 hosts: sx-a ranks 0, 1; sx-b ranks 2, 3" >&2
echo "[2024-05-01 10:00:01.000] [0/4] [warning] stopped by signal 10; checkpoint written, exiting with 75 so the job can be requeued (resume with --resume auto)" >&2
printf '%s\n' "$(printf -- '-%.0s' $(seq 74))" "ORTE has lost communication with a remote daemon." "" \
  "  HNP daemon   : [[1234,0],0] on node sx-head" "  Remote daemon: [[1234,0],2] on node sx-b" \
  "$(printf -- '-%.0s' $(seq 74))" >&2
exit 1
SH
printf '192.0.2.2 slots=2\n192.0.2.3 slots=2\n' >"$work/hosts"
session=1 run SX_HOSTFILE="$work/hosts" SX_RANKS_PER_NODE=2 SX_START_TIMEOUT=0
expect 75 "a host lost after rank 0's stop checkpoint"
[ "$(echo "$out" | grep '^launch/run.sh: ')" = "launch/run.sh: rank 0 wrote the checkpoint and said it exits with 75; Open MPI then lost contact with a host it could no longer reach (lost host sx-b (ranks 2, 3)); exit 75 (resume with --resume auto)" ] ||
  fail "a host lost after the stop's checkpoint: said: $out"
left_in_session() { ps -eo sid=,pid=,args= | awk -v s="$(cat "$work/sid")" '$1 == s'; }
no_process_left() { [ -z "$(left_in_session)" ]; }
dump() {  # (and ends them: they are this test's)
  echo "--- left in the script's session:"
  left_in_session
  left_in_session | awk '{print $2}' | xargs -r kill 2>/dev/null || true
}
wait_until 10 "no process of the script left in its session" no_process_left
unset -f dump
log "host lost after the stop's checkpoint: $(echo "$out" | grep '^launch/run.sh: ')"
rm -f "$work/script"

# 8. The script rewritten in place while mpirun runs (cp over it, an editor; a job's checkout
# updated): the running one goes on as it was read, not with the new file's bytes.
mkdir -p "$work/copy/launch"
cp "$source_dir/launch/run.sh" "$work/copy/launch/run.sh"
{ printf '#!/usr/bin/env bash\n'; for _ in $(seq 200); do echo "# a longer header, shifting every offset"; done
  tail -n +2 "$source_dir/launch/run.sh"; } >"$work/run.sh.new"
printf 'cat "$SX_TEST_WORK/run.sh.new" >"$SX_TEST_WORK/copy/launch/run.sh"\nexit 0\n' >"$work/script"
rc=0
out=$(env PATH="$work/bin:$PATH" SX_TEST_WORK="$work" SX_BIN=/bin/true SX_CPU_RANKS=1 \
  "$work/copy/launch/run.sh" "$work/config.yaml" 2>&1) || rc=$?
expect 0 "the script rewritten while mpirun ran"
cmp -s "$work/run.sh.new" "$work/copy/launch/run.sh" || fail "the stand-in did not rewrite the script"
rm -f "$work/script"
log "rewritten while running: exit $rc"
log "passed"
