# Shared by the Slurm tests (sourced after tests/script_util.sh): a Slurm of the test's own
# (munged, slurmctld, slurmd: Debian's 22.05, started without systemd from files in $work;
# nothing in /etc changes), the preemption each test makes, the comparison with an
# uninterrupted run, and a clean-up that ends only what the test started.
# The test sets $work and $token, runs what it starts with SX_TEST_TOKEN=$token in the
# environment (jobs inherit it), keeps its job's id in $job, and may set slurm_at=(command
# prefix) to run Slurm's commands where the controller is reachable.
slurm_at=()

slurm() { "${slurm_at[@]}" "$@"; }

# Exit 77 (skipped) unless root; exit 1 naming a missing Slurm or munge program.
slurm_needs() {
  [ "$(id -u)" -eq 0 ] || { echo "$test_name: skipped, needs root to run the daemons"; exit 77; }
  local tool
  for tool in slurmctld slurmd sbatch munged; do
    command -v "$tool" >/dev/null || fail "$tool missing (launch/install-deps.sh installs it)"
  done
}

# write_slurm_conf CONTROLLER NODE_LINE...: $work/slurm.conf for a controller on host
# CONTROLLER and the nodes of NODE_LINE ("NodeName=n1 CPUs=2 RealMemory=1000"); one partition
# of all nodes. Every slurmd keeps its own spool, pid and log file (%n: its node name).
# cred_expire: how long a requeued job waits before it starts again (default 120 s). Forcing an
# earlier start raced with the old instance's revoked credential ("Job credential revoked",
# then "already killed, do not launch batch job"), so the tests let Slurm start it, soon.
write_slurm_conf() {
  local controller=$1
  shift
  mkdir -p "$work/state" "$work/spool" "$work/munge"
  export SLURM_CONF=$work/slurm.conf
  cat >"$SLURM_CONF" <<CONF
ClusterName=sxtest
SlurmctldHost=$controller
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$work/munge/munge.socket,cred_expire=10
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
ReturnToService=2
StateSaveLocation=$work/state
SlurmdSpoolDir=$work/spool/%n
SlurmctldPidFile=$work/slurmctld.pid
SlurmdPidFile=$work/slurmd-%n.pid
SlurmctldLogFile=$work/slurmctld.log
SlurmdLogFile=$work/slurmd-%n.log
CONF
  printf '%s\n' "$@" >>"$SLURM_CONF"
  echo "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP" >>"$SLURM_CONF"
}

# munged with its own key, socket and pid file in $work/munge (it runs as user munge).
start_munge() {
  chmod 755 "$work"
  chown munge: "$work/munge" 2>/dev/null || true
  dd if=/dev/urandom of="$work/munge/munge.key" bs=1024 count=1 status=none
  chown munge: "$work/munge/munge.key"
  chmod 400 "$work/munge/munge.key"
  runuser -u munge -- /usr/sbin/munged --key-file="$work/munge/munge.key" \
    --socket="$work/munge/munge.socket" --pid-file="$work/munge/munged.pid" \
    --log-file="$work/munge/munged.log" --seed-file="$work/munge/seed" --force
}

idle_nodes() { slurm sinfo -h -N -o %t 2>/dev/null | grep -c '^idle$' || true; }
nodes_idle() { [ "$(idle_nodes)" -ge "$1" ]; }

# Waits until job JOB (log $work/job.out, run directory RUN_DIR) has trained STEPS steps, sends
# the warning signal to its batch shell as Slurm would before the time limit, and waits for the
# requeue, the second start and that start's end, which must be clean and resumed.
preempt_and_resume() {
  local job=$1 run_dir=$2 after=$3 out=$work/job.out
  wait_until 240 "job $job to train $after steps" at_least_steps "$run_dir" "$after"
  log "preempting job $job after $(steps "$run_dir") steps (warning signal to the batch shell)"
  slurm scancel --signal=USR1 --batch "$job"
  # The script requeues itself; Slurm starts the job again once cred_expire (10 s) has passed.
  wait_until 60 "job $job to requeue" grep -q "requeueing" "$out"
  # The second start, then its exit line (squeue can briefly not list a requeued job, so the
  # log, not squeue, says when it restarted).
  wait_until 180 "job $job to start again" grep -q '^=== job .* start 1 ' "$out"
  wait_until 300 "the restarted job $job to end" \
    awk '/^=== job .* start 1 /{s=1} s && /^=== .* exit /{f=1} END{exit !f}' "$out"
  grep '^===' "$out" || true
  grep -q "resumed from" "$run_dir/log/rank-0.log" || fail "the requeued job did not resume"
  awk '/^=== job .* start 1 /{s=1} s && /^=== .* exit 0$/{f=1} END{exit !f}' "$out" ||
    fail "the resumed job did not finish cleanly"
}

# same_final_params A.h5 B.h5: parameters and Adam's moments bitwise equal.
same_final_params() {
  local python=/usr/bin/python3
  [ -x $python ] || python=python3
  $python - "$1" "$2" "$test_name" <<'PY'
import sys, h5py, numpy as np
a, b = (h5py.File(p, "r") for p in sys.argv[1:3])
names = sorted(a["params"])
assert names == sorted(b["params"]), "different parameter sets"
diff = [n for n in names if not np.array_equal(a["params"][n][()], b["params"][n][()])]
assert not diff, f"parameters differ: {diff[:3]}"
for m in ("optimizer/m", "optimizer/v"):
    assert np.array_equal(a[m][()], b[m][()]), f"{m} differs"
print(f"{sys.argv[3]}: final parameters bitwise equal to the uninterrupted run ({len(names)} tensors)")
PY
}

# Ends what the test started: its jobs (scancel, while the controller is up), then every
# process carrying its token (the batch script, launch/run.sh, mpirun, the ranks), never
# anything else on the machine; then the daemons, by their pid files.
stop_slurm_test() {
  [ -n "${job:-}" ] && slurm scancel --quiet "$job" 2>/dev/null || true
  local pids i
  for i in $(seq 50); do
    pids=$(grep -lsz "^SX_TEST_TOKEN=$token\$" /proc/[0-9]*/environ 2>/dev/null | cut -d/ -f3 || true)
    [ -n "$pids" ] || break
    # shellcheck disable=SC2086
    kill -TERM $pids 2>/dev/null || true
    [ "$i" -gt 20 ] && kill -KILL $pids 2>/dev/null || true
    sleep 0.1
  done
  local file daemons=()
  for file in "$work"/slurmctld.pid "$work"/slurmd-*.pid "$work/munge/munged.pid"; do
    [ -f "$file" ] && daemons+=("$(cat "$file")")
  done
  [ "${#daemons[@]}" -gt 0 ] || return 0
  kill "${daemons[@]}" 2>/dev/null || true
  # slurmctld saves its state into $work/state as it ends: the test's directory can go only
  # once every daemon has gone (an rm racing with that save failed, "Directory not empty").
  # They are not the test's children, so their /proc entries are what is waited on.
  for i in $(seq 300); do
    alive_pids "${daemons[@]}" || return 0
    [ "$i" -eq 200 ] && kill -KILL "${daemons[@]}" 2>/dev/null
    sleep 0.1
  done
  echo "$test_name: the Slurm daemons ${daemons[*]} did not end" >&2
}

# alive_pids PID...: whether any of them still runs (a zombie counts as ended).
alive_pids() {
  local pid state
  for pid; do
    state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) || continue
    [ -n "$state" ] && [ "$state" != Z ] && return 0
  done
  return 1
}

# Someone else's training on this machine, known by its name only: a clean-up that ends
# processes by name ends it too. bystander_left_alone says whether it survived (and ends it).
start_bystander() {
  # Its output goes nowhere: a bystander left running must not hold CTest's pipe open.
  bash -c 'exec -a "siamese-xlmr train --config someone-elses.yaml" sleep 3600' \
    </dev/null >/dev/null 2>&1 &
  bystander=$!
}
bystander_left_alone() {
  kill -0 "$bystander" 2>/dev/null || return 1
  kill "$bystander"
}

# What helps when a Slurm test fails.
dump() {
  slurm scontrol show job "${job:-0}" 2>/dev/null | head -25 || true
  slurm sinfo 2>/dev/null || true
  local f
  for f in "$work"/job.out "$work"/slurmctld.log "$work"/slurmd-*.log; do
    [ -f "$f" ] && { echo "--- $f"; tail -25 "$f"; }
  done
}
